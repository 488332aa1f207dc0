//! What several study commands share: reading the journaled study and turning study failures into
//! CLI errors. Commands import from here, never from one another.

use super::{CliError, Globals};
use crate::bus::Bus;
use crate::config::{Assembly, ConfigError, Diagnostic, OptimizerSettings};
use crate::study::journal::Journal;
use crate::study::objective::Expr;
use crate::study::{self, Goal, StudyError, Summary, UnitProblem};
use servo_core::connector::{EventContext, Registry};
use servo_core::path::KeyPath;
use servo_core::types::{Description, Metric};

/// Loads the journaled study of the config's servo.
pub(super) async fn load_summary(
    globals: &Globals,
    registry: &Registry,
) -> Result<Summary, CliError> {
    let assembly = globals.load_one(registry)?;
    let settings = study::embedded(&assembly).map_err(into_cli)?;
    let path = study::journal_path(&assembly, settings);
    if !path.exists() {
        return Err(CliError::usage_with_hint(
            format!("no journal at {}", path.display()),
            "run `servo run` first (the journal is `optimizer.store`, default .servo/<name>.db)",
        ));
    }
    // Read-only: the study may be running beside this command (see `Journal::open_read_only`).
    let journal = Journal::open_read_only(&path)
        .await
        .map_err(|e| CliError::Failure(e.to_string()))?;
    let current = match &journal {
        Some(journal) => journal
            .current(&assembly.name)
            .await
            .map_err(|e| CliError::Failure(e.to_string()))?,
        None => None,
    };
    let (Some(journal), Some(current)) = (journal, current) else {
        return Err(CliError::usage(format!(
            "{} holds no study for servo `{}`",
            path.display(),
            assembly.name
        )));
    };
    let trials = journal
        .trials(&current)
        .await
        .map_err(|e| CliError::Failure(e.to_string()))?;
    journal.close().await;
    let maximize = matches!(
        settings.objective,
        Some(crate::config::optimizer::Objective::Maximize(_))
    );
    // Several objectives: the point of the front the config's rule selects, as `servo run` did.
    let select = settings
        .objective
        .as_ref()
        .map(|o| o.select())
        .unwrap_or_default();
    let mut summary = Summary::from_trials(&current, &path, trials, maximize, &select);
    // The same choice of best as `servo run` made, from the same journal and seed.
    summary.recommend(settings.risk.into(), settings.seed.unwrap_or(0));
    Ok(summary)
}

pub(super) fn into_cli(e: StudyError) -> CliError {
    match e {
        StudyError::Config { message, hint } => CliError::Usage { message, hint },
        StudyError::Bus(b) => CliError::Bus(b),
        // A config problem found mid-study is still a config problem (exit 2).
        StudyError::Stopped { error, left_on } if matches!(*error, StudyError::Config { .. }) => {
            let hint = error.hint();
            CliError::Usage {
                message: format!("{error}\nthe application was put back on {left_on}"),
                hint,
            }
        }
        e @ (StudyError::Journal(_) | StudyError::Optimizer(_) | StudyError::Stopped { .. }) => {
            let hint = e.hint();
            CliError::Failure(with_hint(e.to_string(), hint))
        }
    }
}

/// A failure's message with its hint in the form the other failures print (`  = help: ...`).
fn with_hint(message: String, hint: Option<String>) -> String {
    match hint {
        Some(hint) => format!("{message}\n  = help: {hint}"),
        None => message,
    }
}

/// The SLO unit check of `servo run` ([`Goal::check_units`]), before anything runs: against the
/// units the mounted connectors declare for their metrics. A constraint on a name no connector
/// declares (a setting, or a metric only a description reveals) is left to `servo run`, which
/// checks it against the description before trial 0. Exit 2 naming the metric, both units and the
/// fix.
pub(super) async fn check_declared_units(
    assembly: &Assembly,
    file: &std::path::Path,
) -> Result<(), CliError> {
    let OptimizerSettings::Embedded(settings) = &assembly.optimizer else {
        // A remote optimizer holds the SLOs, and checks them when the servo describes itself.
        return Ok(());
    };
    if settings.objective.is_none() {
        // Not a study (yet): `servo run` says what is missing.
        return Ok(());
    }
    let goal = Goal::from_settings(settings).map_err(into_cli)?;
    let metrics = Bus::new(&assembly.mounts)
        .metrics_quiet(&EventContext::default())
        .await
        .unwrap_or_default();
    check_units_declared(goal, metrics).map_err(|problem| {
        // Pointed at the constraint's line (or the variable that set it), as the file's other
        // errors are.
        let at = KeyPath::root()
            .key("optimizer")
            .key("constraints")
            .index(problem.constraint);
        let diagnostic = Diagnostic::error(problem.message)
            .help_opt(problem.hint)
            .placed(&assembly.spans, &assembly.origins, &at, false);
        CliError::Config(ConfigError::file(file, diagnostic))
    })
}

/// [`Goal::check_units`] against `metrics` alone: a constraint whose single metric is not among
/// them keeps its bound unchecked (its unit is set aside), so that only what can be known is
/// refused (so is a bound relative to the baseline: its metrics are known only to a description).
/// With no metrics (`servo optimizer app create`), what remains is a unit on an
/// expression, which no description can make right.
pub(super) fn check_units_declared(
    mut goal: Goal,
    metrics: Vec<Metric>,
) -> Result<(), UnitProblem> {
    for constraint in &mut goal.constraints {
        if let Expr::Var(name) = &constraint.left
            && !metrics.iter().any(|m| &m.name == name)
        {
            constraint.unit = None;
            constraint.baseline = None;
        }
    }
    goal.unit_problem(&Description {
        components: Vec::new(),
        metrics,
    })
}
