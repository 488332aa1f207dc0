//! The `servo` command line. Each subcommand is one file holding its `Args` and its `run`; this file
//! is the command tree and the plumbing they share (globals, config loading, errors, exit codes).

mod adjust;
mod check;
mod completions;
mod config;
mod connectors;
mod describe;
mod generate;
mod list;
mod measure;
mod optimizer;
mod report;
mod run;
mod schema;
mod shared;
mod show;
mod trials;
mod validate;
mod version;

use std::ffi::{OsStr, OsString};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusError};
use crate::config::{Assembly, ConfigError, LoadOptions};
use crate::output::Format;
use servo_core::command::ExternalCommand;
use servo_core::connector::{EventContext, Registry, registry};
use servo_core::path::ENV_PREFIX;

/// What an exit status means (DESIGN §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// Something failed at run time.
    Failure = 1,
    /// Bad usage or a bad config.
    Usage = 2,
    /// A check failed.
    CheckFailed = 3,
    /// Interrupted by a signal.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// servo continuously optimizes the settings of a running application.
///
/// A config file names connectors (what to measure and adjust) and an optimizer; servo assembles them,
/// then describes, adjusts and measures the application until it finds the cheapest configuration
/// that meets your SLOs.
///
/// Start with `servo generate wait --output servo.yaml`, then `servo validate`.
#[derive(Debug, Parser)]
#[command(
    name = "servo",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Clone, Debug, clap::Args)]
pub struct Globals {
    /// The config file.
    #[arg(
        short = 'c',
        long = "config-file",
        global = true,
        env = "SERVO_CONFIG_FILE",
        default_value = "servo.yaml",
        value_name = "FILE"
    )]
    pub config_file: PathBuf,

    /// Output format: a table for people, json or yaml for programs (`-f` too, as in ServoX).
    #[arg(short = 'o', short_alias = 'f', long = "format", global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Only act on the servo with this name (a config file may hold several).
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "SERVO_NAME",
        value_name = "NAME"
    )]
    pub name: Option<String>,

    /// Set a config value, overriding the file and the environment: `--set prometheus.base_url=URL`.
    #[arg(long = "set", global = true, value_name = "PATH=VALUE")]
    pub sets: Vec<String>,

    /// Log level or filter (`info`, `debug`, `servo=debug,warn`).
    #[arg(
        short = 'l',
        long,
        global = true,
        env = "SERVO_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: String,

    /// Log format on stderr.
    #[arg(long, global = true, env = "SERVO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Never print colour (also: NO_COLOR or SERVO_NO_COLOR set to anything).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// The commands that only read a config and print it or its schema, with the same globals, name and
/// version as [`Cli`]. Building clap's command tree and propagating the global options through it
/// was a fifth of such a command's time, most of it for the other subcommands, so `main` parses
/// these with this tree of three when it can: a command line that this tree accepts is parsed
/// the same by [`Cli`], and one that it does not (help, a typo, another command) goes to [`Cli`].
#[derive(Debug, Parser)]
#[command(
    name = "servo",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct ConfigCli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    Validate(validate::Args),
    Config(config::Args),
    Schema(schema::Args),
}

impl ConfigCli {
    /// The command line parsed, if it runs one of these commands and this tree accepts it.
    fn parse(args: &[OsString]) -> Option<Cli> {
        let names = ["validate", "config", "schema"];
        if !args.iter().skip(1).any(|a| names.iter().any(|n| a == n)) {
            return None;
        }
        let command = ConfigCli::command();
        // The same globals as the whole tree's, so the same variables.
        let _ = OWN_VARIABLES.set(own_variables(&command));
        let matches = command.try_get_matches_from(args).ok()?;
        let ConfigCli { globals, command } = ConfigCli::from_arg_matches(&matches).ok()?;
        let command = match command {
            ConfigCommand::Validate(args) => Command::Validate(args),
            ConfigCommand::Config(args) => Command::Config(args),
            ConfigCommand::Schema(args) => Command::Schema(args),
        };
        Some(Cli { globals, command })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
    Config(config::Args),
    Schema(schema::Args),
    Generate(generate::Args),
    Connectors(connectors::Args),
    List(list::Args),
    Check(check::Args),
    Describe(describe::Args),
    Measure(measure::Args),
    Show(show::Args),
    Adjust(adjust::Args),
    Run(run::Args),
    Trials(trials::Args),
    Optimizer(optimizer::Args),
    Report(report::Args),
    Version(version::Args),
    Completions(completions::Args),
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

impl Command {
    /// Whether the command only reads the config (or nothing) and prints: no connector is started,
    /// nothing is contacted, so one thread runs it.
    fn is_one_shot(&self) -> bool {
        matches!(
            self,
            Command::Validate(_)
                | Command::Config(_)
                | Command::Schema(_)
                | Command::Generate(_)
                | Command::Connectors(_)
                | Command::Version(_)
                | Command::Completions(_)
        )
    }
}

/// Why a command failed; decides the message and the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("{0}")]
    Failure(String),
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    fn exit(&self) -> Exit {
        match self {
            CliError::Config(_) | CliError::Usage { .. } => Exit::Usage,
            CliError::Bus(e) if e.is_interrupted() => Exit::Interrupted,
            CliError::Bus(e) if e.is_usage() => Exit::Usage,
            CliError::Bus(_) | CliError::Failure(_) => Exit::Failure,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        // `output::emit` refuses a format the command does not print with InvalidInput.
        match e.kind() {
            std::io::ErrorKind::InvalidInput => CliError::usage(e.to_string()),
            _ => CliError::Failure(e.to_string()),
        }
    }
}

pub type CommandResult = Result<Exit, CliError>;

/// Turns colour off when set to anything; read here, not through a flag's `env`.
const NO_COLOR_VARIABLE: &str = "SERVO_NO_COLOR";

/// The process's `SERVO_*` variables that may be config overrides (and ServoX's `OPSANI_*` and
/// `APPD_*`, which fill the optimizer section): all but the CLI's own, which
/// are the `env` of the global flags, as the clap definition declares them, and
/// [`NO_COLOR_VARIABLE`]. Values that are not UTF-8 are read lossily; such names are skipped.
fn config_variables(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(String, String)> {
    let own = OWN_VARIABLES.get_or_init(|| own_variables(&Cli::command()));
    vars.into_iter()
        .filter(|(name, _)| !own.iter().any(|v| v == name))
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            (name.starts_with(ENV_PREFIX) || crate::config::is_servox_variable(&name))
                .then(|| (name, value.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The CLI's own variables, taken from the command `main` parses with (building the clap command
/// a second time only to read them cost every command that loads a config about 0.06 ms).
static OWN_VARIABLES: std::sync::OnceLock<Vec<OsString>> = std::sync::OnceLock::new();

fn own_variables(command: &clap::Command) -> Vec<OsString> {
    command
        .get_arguments()
        .filter_map(clap::Arg::get_env)
        .chain([OsStr::new(NO_COLOR_VARIABLE)])
        .map(OsStr::to_os_string)
        .collect()
}

impl Globals {
    pub fn color(&self) -> bool {
        !self.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::env::var_os(NO_COLOR_VARIABLE).is_none()
            && std::io::stderr().is_terminal()
    }

    /// What the config loader reads besides the file, read here so the loader gets it as data.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            env: config_variables(std::env::vars_os()),
            sets: self.sets.clone(),
        }
    }

    /// Loads the config file, prints its warnings, and keeps the servo chosen by `--name`.
    pub fn load(&self, registry: &Registry) -> Result<Vec<Assembly>, CliError> {
        let loaded = crate::config::load(&self.config_file, registry, &self.load_options())?;
        if let Some(warnings) = &loaded.warnings {
            eprint!("{}", warnings.render_plain());
        }
        let mut assemblies = loaded.assemblies;
        if let Some(name) = &self.name {
            let names: Vec<String> = assemblies.iter().map(|a| a.name.clone()).collect();
            assemblies.retain(|a| &a.name == name);
            if assemblies.is_empty() {
                let hint =
                    servo_core::suggest::did_you_mean(name, names.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| format!("servos in this file: {}", names.join(", ")));
                return Err(CliError::usage_with_hint(
                    format!("{} has no servo named `{name}`", self.config_file.display()),
                    hint,
                ));
            }
        }
        Ok(assemblies)
    }

    /// Loads the config and insists on exactly one servo (one-shot commands act on one).
    pub fn load_one(&self, registry: &Registry) -> Result<Assembly, CliError> {
        let mut assemblies = self.load(registry)?;
        if assemblies.len() > 1 {
            let names: Vec<String> = assemblies.iter().map(|a| a.name.clone()).collect();
            return Err(CliError::usage_with_hint(
                format!(
                    "{} holds {} servos; this command acts on one",
                    self.config_file.display(),
                    assemblies.len()
                ),
                format!("choose one with --name ({})", names.join(", ")),
            ));
        }
        assemblies
            .pop()
            .ok_or_else(|| CliError::Failure("the config holds no servo".into()))
    }
}

/// Keeps only the mounts `names` picks (ServoX's `describe CONNECTOR...`, `measure --connectors`):
/// a name is a mount's key, or a connector's name for every mount of it. All names are checked
/// before anything runs, and an unknown one gets a did-you-mean.
pub fn keep_mounts(assembly: &mut Assembly, names: &[String]) -> Result<(), CliError> {
    if names.is_empty() {
        return Ok(());
    }
    let picks = |mount: &crate::config::Mount, name: &str| {
        mount.key == name || mount.connector.name == name
    };
    for name in names {
        if !assembly.mounts.iter().any(|m| picks(m, name)) {
            let keys: Vec<&str> = assembly.mounts.iter().map(|m| m.key.as_str()).collect();
            let hint = servo_core::suggest::did_you_mean(name, keys.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("mounted connectors: {}", keys.join(", ")));
            return Err(CliError::usage_with_hint(
                format!(
                    "servo `{}` mounts no connector named `{name}`",
                    assembly.name
                ),
                hint,
            ));
        }
    }
    assembly
        .mounts
        .retain(|m| names.iter().any(|name| picks(m, name)));
    Ok(())
}

/// Runs `work` between the connectors' startup and shutdown. Shutdown runs whatever happened, a
/// failed startup included, so a connector that did start (a child process) is always stopped.
pub async fn with_connectors<T>(
    assembly: &Assembly,
    work: impl AsyncFnOnce(&Bus, &EventContext) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let bus = Bus::new(&assembly.mounts);
    let cx = EventContext::new(interrupt_token());
    let result = match bus.startup(&cx).await {
        Ok(()) => work(&bus, &cx).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = bus.shutdown(&cx).await {
        tracing::warn!(error = %e, "shutting the connectors down failed");
    }
    result
}

/// A spinner with `message` on a terminal (nothing otherwise: logs tell the story there), for
/// one-shot commands that wait on connectors.
pub fn spinner(message: String) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

/// A token cancelled on Ctrl-C or SIGTERM, for commands that do long work.
///
/// The handlers are registered before this returns (not inside the spawned task), so a signal that
/// arrives right after start-up cancels the work instead of killing servo with the default action.
pub fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let (mut term, mut int) = (term, int);
            tokio::select! {
                Some(_) = async { match term.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {}
                Some(_) = async { match int.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::warn!("interrupted: stopping");
        child.cancel();
    });
    token
}

fn init_logging(globals: &Globals) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&globals.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match globals.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(globals.color()).try_init(),
    };
}

fn render_error(error: &CliError, globals: &Globals) {
    if globals.format == Format::Json {
        let body = match error {
            CliError::Config(e) => serde_json::json!({
                "error": "invalid config",
                "file": e.file.display().to_string(),
                "diagnostics": e.diagnostics,
            }),
            CliError::Usage { message, hint }
            | CliError::Bus(BusError::Invalid { message, hint }) => {
                serde_json::json!({ "error": message, "hint": hint })
            }
            other => serde_json::json!({ "error": other.to_string() }),
        };
        eprintln!("{body}");
        return;
    }
    match error {
        CliError::Config(e) if globals.color() || std::io::stderr().is_terminal() => {
            eprint!("{}", e.render_fancy(globals.color()));
        }
        CliError::Config(e) => {
            eprint!("{}", e.render_plain());
            let count = e.errors().count();
            eprintln!(
                "{count} error{} in {}",
                if count == 1 { "" } else { "s" },
                e.file.display()
            );
        }
        CliError::Usage { message, hint } | CliError::Bus(BusError::Invalid { message, hint }) => {
            eprintln!("error: {message}");
            if let Some(hint) = hint {
                eprintln!("  = help: {hint}");
            }
        }
        other => eprintln!("error: {other}"),
    }
}

/// Parses the command line with the whole command tree.
fn parse(args: Vec<OsString>, externals: &[&ExternalCommand]) -> Cli {
    let mut command = Cli::command();
    if !externals.is_empty() {
        let mut extra = String::from("More commands:\n");
        for e in externals {
            extra.push_str(&format!("  {:<12} {}\n", e.name, e.about));
        }
        command = command.after_help(extra);
    }
    let _ = OWN_VARIABLES.set(own_variables(&command));
    let matches = command.get_matches_from(args);
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let externals: Vec<&ExternalCommand> = inventory::iter::<ExternalCommand>.into_iter().collect();
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match ConfigCli::parse(&args) {
        Some(cli) => cli,
        None => parse(args, &externals),
    };
    let Cli { globals, command } = cli;

    if let Command::External(args) = &command {
        let name = args.first().and_then(|a| a.to_str()).unwrap_or_default();
        return match externals.iter().find(|e| e.name == name) {
            Some(e) => (e.run)(args[1..].to_vec()),
            None => {
                let mut names: Vec<String> = Cli::command()
                    .get_subcommands()
                    .map(|c| c.get_name().to_string())
                    .collect();
                names.extend(externals.iter().map(|e| e.name.to_string()));
                eprintln!("error: unrecognized subcommand `{name}`");
                if let Some(s) =
                    servo_core::suggest::did_you_mean(name, names.iter().map(String::as_str))
                {
                    eprintln!("  = help: did you mean `{s}`?");
                }
                eprintln!("  = help: `servo --help` lists the commands");
                Exit::Usage.into()
            }
        };
    }

    init_logging(&globals);
    let registry = match registry() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure.into();
        }
    };
    // Commands that only read the config and print need no worker threads: starting and joining
    // them cost each such command a quarter of a millisecond of CPU, and more of wall time on a
    // busy machine.
    let mut builder = if command.is_one_shot() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Validate(args) => validate::run(args, &globals, registry).await,
            Command::Config(args) => config::run(args, &globals, registry).await,
            Command::Schema(args) => schema::run(args, &globals, registry).await,
            Command::Generate(args) => generate::run(args, &globals, registry).await,
            Command::Connectors(args) => connectors::run(args, &globals, registry).await,
            Command::List(args) => list::run(args, &globals, registry).await,
            Command::Check(args) => check::run(args, &globals, registry).await,
            Command::Describe(args) => describe::run(args, &globals, registry).await,
            Command::Measure(args) => measure::run(args, &globals, registry).await,
            Command::Show(args) => show::run(args, &globals, registry).await,
            Command::Adjust(args) => adjust::run(args, &globals, registry).await,
            Command::Run(args) => run::run(args, &globals, registry).await,
            Command::Trials(args) => trials::run(args, &globals, registry).await,
            Command::Optimizer(args) => optimizer::run(args, &globals, registry).await,
            Command::Report(args) => report::run(args, &globals, registry).await,
            Command::Version(args) => version::run(args, &globals, registry).await,
            Command::Completions(args) => completions::run(args, &globals, registry).await,
            Command::External(_) => Ok(Exit::Usage),
        }
    });
    // Connectors may hold child processes or connections: give their drop-time cleanup a moment.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            render_error(&e, &globals);
            e.exit().into()
        }
    }
}

/// The clap command, for completions and docs.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_keeps_its_own_variables_from_the_config() {
        let vars = [
            "SERVO_CONFIG_FILE",
            "SERVO_LOG_LEVEL",
            "SERVO_LOG_FORMAT",
            "SERVO_NO_COLOR",
            "SERVO_NAME",
            "SERVO_VEGETA_RATE",
            "SERVO_OPTIMIZER_STORE",
            "HOME",
        ]
        .map(|name| (OsString::from(name), OsString::from("x")));
        let names: Vec<String> = config_variables(vars).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["SERVO_VEGETA_RATE", "SERVO_OPTIMIZER_STORE"]);
    }

    fn words(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn the_config_commands_parse_alike_in_their_own_tree_and_in_the_whole_one() {
        for line in [
            "servo validate",
            "servo -c x.yaml validate -o json",
            "servo config --origins optimizer checks --set a.b=1",
            "servo schema --all --output out.json",
            "servo -c schema config validate",
            "servo --log-level debug schema --connector wait -n prod --no-color",
        ] {
            let args = words(line);
            let quick = ConfigCli::parse(&args)
                .unwrap_or_else(|| panic!("the config commands' tree takes `{line}`"));
            let matches = Cli::command()
                .try_get_matches_from(&args)
                .unwrap_or_else(|e| panic!("`{line}`: {e}"));
            let whole = Cli::from_arg_matches(&matches).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(format!("{quick:?}"), format!("{whole:?}"), "`{line}`");
        }
    }

    #[test]
    fn what_the_config_commands_tree_does_not_take_goes_to_the_whole_one() {
        for line in [
            "servo --help",
            "servo --version",
            "servo validate --help",
            "servo help validate",
            "servo validate --version",
            "servo run",
            "servo validat",
            "servo config --bogus",
            "servo generate config",
        ] {
            assert!(ConfigCli::parse(&words(line)).is_none(), "`{line}`");
        }
    }

    #[test]
    fn the_config_commands_have_the_same_help_in_their_own_tree() {
        for name in ["validate", "config", "schema"] {
            let help = |mut command: clap::Command| {
                command.build();
                command
                    .find_subcommand_mut(name)
                    .map(|c| c.render_long_help().to_string())
                    .unwrap_or_else(|| panic!("no `{name}` subcommand"))
            };
            assert_eq!(help(ConfigCli::command()), help(Cli::command()), "{name}");
        }
    }
}
