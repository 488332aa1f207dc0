//! `servo run`: optimize until the study is done.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::{CliError, CommandResult, Exit, Globals, interrupt_token};
use crate::output::{Render, emit};
use crate::study::{self, Progress, RunOptions, StudyError, Summary};
use servo_core::connector::{EventContext, Registry};

/// Optimize the application: describe it, then adjust and measure trial after trial until the
/// optimizer has used its `trials`, and leave it on the best configuration that met every SLO.
///
/// Every trial is journaled (SQLite, `optimizer.store`, default `.servo/<name>.db` beside the
/// config) before the next one starts: run the same command again after a crash or Ctrl-C and the
/// study resumes where it stopped. Ctrl-C/SIGTERM stops the current trial, puts the application back on
/// the best known configuration and exits 130.
///
/// Example: servo run -c examples/quickstart.yaml
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Start a new study even if the journal holds one for this servo (the old one is kept).
    #[arg(long)]
    new_study: bool,
    /// Skip the pre-flight checks.
    #[arg(long)]
    no_checks: bool,
    /// With a remote optimizer: stop, saying GOODBYE, after this many commands (default: run until
    /// interrupted, as ServoX does).
    #[arg(long, value_name = "N")]
    max_cycles: Option<u64>,
}

pub(super) struct Outcome(pub Summary);

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Render for Outcome {
    fn human(&self) -> String {
        super::trials::comparison(&self.0)
    }
}

fn progress_bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{spinner} trial {pos}/{len} [{bar:30}] {elapsed} {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let assembly = globals.load_one(registry)?;
    if let crate::config::optimizer::OptimizerSettings::Remote(remote) = &assembly.optimizer {
        return run_remote(&args, globals, &assembly, remote).await;
    }
    if args.max_cycles.is_some() {
        return Err(CliError::usage_with_hint(
            "--max-cycles applies to remote optimizers only",
            "the embedded optimizer stops after `optimizer.trials`",
        ));
    }
    let settings = study::embedded(&assembly).map_err(into_cli)?;
    let bar = progress_bar(u64::from(settings.trials));
    let cx = EventContext::new(interrupt_token());
    let options = RunOptions {
        new_study: args.new_study,
        no_checks: args.no_checks,
    };
    let result = study::run(&assembly, &options, &cx, |progress| match progress {
        Progress::Resumed { complete, interrupted } => {
            let message = format!("resuming: {complete} trial(s) already done, {interrupted} marked interrupted");
            match &bar {
                Some(bar) => bar.println(message),
                None => tracing::info!("{message}"),
            }
        }
        Progress::TrialStarted { number, finished, adjustments, .. } => {
            let settings: Vec<String> = adjustments.iter().map(ToString::to_string).collect();
            match &bar {
                Some(bar) => {
                    bar.set_position(finished as u64);
                    bar.set_message(format!("trial {number}: {}", settings.join(" ")));
                }
                None => tracing::info!(trial = number, settings = %settings.join(" "), "trial started"),
            }
        }
        Progress::TrialFinished { trial, best, finished, total } => {
            let outcome = match (trial.objective, trial.feasible, &trial.error) {
                (Some(o), Some(true), _) => format!("objective {o:.4}"),
                (Some(o), _, _) => format!("objective {o:.4} (misses an SLO)"),
                (_, _, Some(e)) => format!("failed: {e}"),
                _ => "failed".to_string(),
            };
            let best = best.map(|b| format!("{b:.4}")).unwrap_or_else(|| "none yet".into());
            match &bar {
                Some(bar) => {
                    bar.set_position(finished as u64);
                    bar.println(format!("trial {}: {outcome}; best {best}", trial.number));
                }
                None => tracing::info!(trial = trial.number, finished, total, %outcome, %best, "trial finished"),
            }
        }
    })
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = result.map_err(into_cli)?;
    let interrupted = summary.interrupted;
    emit(globals.format, &Outcome(summary))?;
    Ok(if interrupted {
        Exit::Interrupted
    } else {
        Exit::Ok
    })
}

/// `servo run` against a remote (Opsani/ServoX protocol) optimizer: see [`crate::protocol`].
async fn run_remote(
    args: &Args,
    globals: &Globals,
    assembly: &crate::config::Assembly,
    remote: &crate::config::optimizer::RemoteOptimizer,
) -> CommandResult {
    use crate::protocol::{self, Progress as RemoteProgress, RemoteError};
    let cx = EventContext::new(interrupt_token());
    let options = protocol::RunOptions {
        no_checks: args.no_checks,
        max_cycles: args.max_cycles,
    };
    let result = protocol::run(assembly, remote, &options, &cx, |progress| match progress {
        RemoteProgress::Connected { url } => tracing::info!(%url, "connected to the optimizer"),
        RemoteProgress::Command { cmd, cmd_uid } => {
            tracing::info!(%cmd, cmd_uid = cmd_uid.unwrap_or(""), "command received")
        }
        RemoteProgress::Reported { cmd, status } => {
            tracing::info!(%cmd, status = %status.status, "result reported")
        }
    })
    .await;
    let summary = match result {
        Ok(summary) => summary,
        Err(RemoteError::Bus(e)) => return Err(CliError::Bus(e)),
        Err(e) => {
            let message = match e.hint() {
                Some(hint) => format!("{e}\n  = help: {hint}"),
                None => e.to_string(),
            };
            return Err(CliError::Failure(message));
        }
    };
    emit(globals.format, &summary)?;
    Ok(if summary.interrupted {
        Exit::Interrupted
    } else {
        Exit::Ok
    })
}

pub(super) fn into_cli(e: StudyError) -> CliError {
    match e {
        StudyError::Config { message, hint } => CliError::Usage { message, hint },
        StudyError::Bus(b) => CliError::Bus(b),
        e @ (StudyError::Journal(_) | StudyError::Stopped { .. }) => {
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
