//! What several study commands share: reading the journaled study and turning study failures into
//! CLI errors. Commands import from here, never from one another.

use super::{CliError, Globals};
use crate::study::journal::Journal;
use crate::study::{self, StudyError, Summary};
use servo_core::connector::Registry;

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
    let journal = Journal::open(&path)
        .await
        .map_err(|e| CliError::Failure(e.to_string()))?;
    let current = journal
        .current(&assembly.name)
        .await
        .map_err(|e| CliError::Failure(e.to_string()))?;
    let Some(current) = current else {
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
    Ok(Summary::from_trials(&current, &path, trials, maximize))
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
