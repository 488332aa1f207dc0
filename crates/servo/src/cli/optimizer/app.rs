//! `servo optimizer app`: the applications a server optimizes, each with its own token and study
//! settings (the same keys as a servo's embedded `optimizer:` section).

use std::io::Read as _;
use std::path::PathBuf;

use serde::Serialize;

use super::StoreArg;
use crate::cli::shared::check_units_declared;
use crate::cli::{CliError, CommandResult, Exit, Globals};
use crate::config::optimizer::{Algorithm, EmbeddedOptimizer, Objective, OnFinish};
use crate::output::{Render, Table, emit};
use crate::server::store::StoreError;
use crate::study::Goal;
use servo_core::units::Duration;

/// Create or list the applications the optimizer server optimizes.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Create(Box<Create>),
    List(List),
}

/// Add an application (or replace its settings with `--replace`) and print its token.
///
/// The token is printed once and stored only as a SHA-256 digest. Settings come from flags, or
/// from `--settings FILE`: a YAML file with the keys of a servo's embedded `optimizer:` section
/// (`trials`, `objective`, `constraints`, `algorithm`, `seed`, `on_finish`, `control`); flags win.
///
/// Example:
///
///   servo optimizer app create example.com/web --minimize 'web.cpu * 0.03 + web.mem * 0.004' \
///       --constraint 'latency_p99 < 200ms' --trials 40 --duration 2m
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct Create {
    /// `ORG/APP`, the servo's `optimizer.id`.
    #[arg(value_name = "ORG/APP")]
    name: String,
    #[command(flatten)]
    store: StoreArg,
    /// A YAML file of optimizer settings.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Minimize this metric or expression.
    #[arg(long, value_name = "EXPR", conflicts_with = "maximize")]
    minimize: Option<String>,
    /// Maximize this metric or expression.
    #[arg(long, value_name = "EXPR")]
    maximize: Option<String>,
    /// An SLO every acceptable configuration meets (repeat for several): `'latency_p99 < 200ms'`.
    #[arg(long = "constraint", value_name = "EXPR")]
    constraints: Vec<String>,
    /// How many trials, the baseline included.
    #[arg(long)]
    trials: Option<u32>,
    #[arg(long, value_enum)]
    algorithm: Option<AlgorithmArg>,
    #[arg(long)]
    seed: Option<u64>,
    /// How long each measurement runs.
    #[arg(long, value_name = "DURATION")]
    duration: Option<Duration>,
    /// Load before each measurement window opens.
    #[arg(long, value_name = "DURATION")]
    warmup: Option<Duration>,
    /// Which configuration the application is left on when the study ends.
    #[arg(long, value_enum)]
    on_finish: Option<OnFinishArg>,
    /// Read the token from this file (`-` for stdin) instead of generating one.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Replace the settings of an existing application; its current study is retired (the token
    /// is kept unless `--token-file` gives a new one).
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AlgorithmArg {
    Bayesian,
    Random,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OnFinishArg {
    Best,
    Baseline,
    Keep,
}

/// List the applications: name, objective, trials and when each was created.
#[derive(Debug, clap::Args)]
struct List {
    #[command(flatten)]
    store: StoreArg,
}

pub async fn run(args: Args, globals: &Globals) -> CommandResult {
    match args.command {
        Command::Create(create) => run_create(*create, globals).await,
        Command::List(list) => run_list(list, globals).await,
    }
}

/// Checks an application name: `ORG/APP`, each part printable and at most 200 characters.
fn check_name(name: &str) -> Result<(), CliError> {
    let parts: Vec<&str> = name.split('/').collect();
    // Characters, not bytes: the server's path check and its OpenAPI `maxLength` count the same.
    let fine =
        |p: &str| !p.is_empty() && p.chars().count() <= 200 && !p.chars().any(char::is_control);
    if parts.len() == 2 && parts.iter().all(|p| fine(p)) {
        Ok(())
    } else {
        Err(CliError::usage_with_hint(
            format!("`{name}` is not an application name"),
            "write ORG/APP, as in a servo's `optimizer.id` (e.g. example.com/web)",
        ))
    }
}

fn settings_of(create: &Create) -> Result<EmbeddedOptimizer, CliError> {
    let mut settings = match &create.settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
            let shown = path.display();
            let document = servo_yaml::parse_documents(&text)
                .map_err(|e| CliError::usage(format!("{shown}: {e}")))?
                .into_iter()
                .next()
                .map(|d| d.value)
                .unwrap_or(serde_json::Value::Null);
            serde_path_to_error::deserialize::<_, EmbeddedOptimizer>(document).map_err(|e| {
                CliError::usage_with_hint(
                    format!("{shown}: at `{}`: {}", e.path(), e.inner()),
                    "the file holds the keys of a servo's embedded `optimizer:` section",
                )
            })?
        }
        None => EmbeddedOptimizer::default(),
    };
    if let Some(expr) = &create.minimize {
        settings.objective = Some(Objective::Minimize(expr.clone()));
    }
    if let Some(expr) = &create.maximize {
        settings.objective = Some(Objective::Maximize(expr.clone()));
    }
    if !create.constraints.is_empty() {
        settings.constraints = create.constraints.clone();
    }
    if let Some(n) = create.trials {
        settings.trials = n;
    }
    if let Some(a) = create.algorithm {
        settings.algorithm = match a {
            AlgorithmArg::Bayesian => Algorithm::Bayesian,
            AlgorithmArg::Random => Algorithm::Random,
        };
    }
    if create.seed.is_some() {
        settings.seed = create.seed;
    }
    if let Some(d) = create.duration {
        settings.control.duration = d;
    }
    if let Some(d) = create.warmup {
        settings.control.warmup = d;
    }
    if let Some(o) = create.on_finish {
        settings.on_finish = match o {
            OnFinishArg::Best => OnFinish::Best,
            OnFinishArg::Baseline => OnFinish::Baseline,
            OnFinishArg::Keep => OnFinish::Keep,
        };
    }
    if settings.store.is_some() || settings.max_duration.is_some() {
        return Err(CliError::usage_with_hint(
            "`store` and `max_duration` mean nothing to the server",
            "every study lives in the server's --store; remove them from the settings file",
        ));
    }
    if settings.baseline_every.is_some_and(|n| n > 0) {
        return Err(CliError::usage_with_hint(
            "`baseline_every` is not supported by the optimizer server: its studies measure the baseline once",
            "remove it from the settings file, or run the study with `servo run` and the embedded optimizer",
        ));
    }
    if settings.trials == 0 {
        return Err(CliError::usage("--trials must be at least 1"));
    }
    // The same checks `servo run` makes before its first trial, as far as they go without the
    // servo's description (which the server checks when it arrives): a unit on an expression.
    let to_cli = |e| match e {
        crate::study::StudyError::Config { message, hint } => CliError::Usage { message, hint },
        other => CliError::Failure(other.to_string()),
    };
    if let Some(Objective::Pareto { .. }) = &settings.objective {
        return Err(CliError::usage_with_hint(
            format!(
                "{}: the optimizer server has one objective per application: the ServoX protocol reports one score per measurement",
                settings_source(create)
            ),
            "give the application one expression (`minimize: cost`), or run the study with the embedded optimizer (`servo run`), which finds a Pareto front",
        ));
    }
    let goal = Goal::from_settings(&settings).map_err(to_cli)?;
    check_units_declared(goal, Vec::new()).map_err(|problem| to_cli(problem.into_error()))?;
    Ok(settings)
}

/// Where the objective came from, for messages: the settings file or the flags.
fn settings_source(create: &Create) -> String {
    match &create.settings {
        Some(path) => format!("{}: `objective`", path.display()),
        None => "the objective".to_string(),
    }
}

fn read_token(path: &PathBuf) -> Result<String, CliError> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    }
    let token = text.trim().to_string();
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CliError::usage_with_hint(
            format!("the token in {} is unusable", path.display()),
            "a token is one line of at least 16 printable characters without spaces",
        ));
    }
    Ok(token)
}

fn new_token() -> Result<String, CliError> {
    crate::server::application::new_token("servo_")
        .map_err(|e| CliError::Failure(format!("cannot read random bytes: {e}")))
}

#[derive(Serialize)]
struct Created {
    application: String,
    /// Present only when generated: the one time it is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    replaced: bool,
}

impl Render for Created {
    fn human(&self) -> String {
        let verb = if self.replaced { "updated" } else { "created" };
        match &self.token {
            Some(token) => format!(
                "{verb} application {}\ntoken (shown once; keep it secret): {token}\n\
                 servo config: optimizer: {{id: {}, token: <the token>, base_url: http://<this server>}}\n",
                self.application, self.application
            ),
            None => format!("{verb} application {}\n", self.application),
        }
    }
}

async fn run_create(create: Create, globals: &Globals) -> CommandResult {
    check_name(&create.name)?;
    let settings = settings_of(&create)?;
    let (token, shown) = match &create.token_file {
        Some(path) => (Some(read_token(path)?), None),
        None if create.replace => (None, None),
        None => {
            let token = new_token()?;
            (Some(token.clone()), Some(token))
        }
    };
    let store = create.store.open().await?;
    let result = store
        .put_application(&create.name, token.as_deref(), &settings, create.replace)
        .await;
    store.close().await;
    match result {
        Ok(_) => {}
        Err(StoreError::Exists(name)) => {
            return Err(CliError::usage_with_hint(
                format!("application `{name}` exists"),
                "add --replace to change its settings (its current study is retired)",
            ));
        }
        Err(e) => return Err(CliError::Failure(e.to_string())),
    }
    emit(
        globals.format,
        &Created {
            application: create.name,
            token: shown,
            replaced: create.replace,
        },
    )?;
    Ok(Exit::Ok)
}

#[derive(Serialize)]
struct Listed {
    name: String,
    objective: String,
    constraints: Vec<String>,
    trials: u32,
    created_at: f64,
    /// Why its study is stopped: the optimizer could not suggest a configuration.
    error: Option<String>,
}

#[derive(Serialize)]
struct Applications(Vec<Listed>);

impl Render for Applications {
    fn human(&self) -> String {
        if self.0.is_empty() {
            return "no applications (add one with `servo optimizer app create ORG/APP`)\n".into();
        }
        let mut table = Table::new(["APPLICATION", "OBJECTIVE", "CONSTRAINTS", "TRIALS", "ERROR"]);
        for a in &self.0 {
            table.row([
                a.name.clone(),
                a.objective.clone(),
                a.constraints.join("; "),
                a.trials.to_string(),
                a.error.clone().unwrap_or_default(),
            ]);
        }
        table.render()
    }
}

async fn run_list(list: List, globals: &Globals) -> CommandResult {
    let Some(store) = list.store.open_to_read().await? else {
        emit(globals.format, &Applications(Vec::new()))?;
        return Ok(Exit::Ok);
    };
    let applications = async {
        let mut listed = Vec::new();
        for application in store.applications().await? {
            let (_, session) = store.session(application.id).await?;
            listed.push((application, session.optimizer_error));
        }
        Ok::<_, crate::study::journal::JournalError>(listed)
    }
    .await;
    store.close().await;
    let applications = applications.map_err(|e| CliError::Failure(e.to_string()))?;
    let listed = applications
        .into_iter()
        .map(|(a, error)| Listed {
            error,
            objective: a
                .settings
                .objective
                .as_ref()
                .map(Objective::describe)
                .unwrap_or_default(),
            constraints: a.settings.constraints.clone(),
            trials: a.settings.trials,
            created_at: a.created_at,
            name: a.name,
        })
        .collect();
    emit(globals.format, &Applications(listed))?;
    Ok(Exit::Ok)
}
