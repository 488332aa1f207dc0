//! `servo run`: optimize until the study is done.

use std::fmt::Write as _;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::shared::into_cli;
use super::{CliError, CommandResult, Exit, Globals, interrupt_token};
use crate::output::{Render, Table, emit};
use crate::study::journal::TrialState;
use crate::study::objective::{Constraint, Expr};
use crate::study::{self, Progress, RunOptions, Summary, param_number};
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
    /// Start a new study even if the journal holds one for this servo (the old one is kept). It
    /// starts warm: the latest earlier study's completed trials that fit the new search space
    /// seed the optimizer, scored again by the current objective and SLOs.
    #[arg(long)]
    new_study: bool,
    /// With --new-study: start from nothing, reusing no earlier trial (when the application
    /// itself changed, say, and earlier measurements no longer describe it).
    #[arg(long, requires = "new_study")]
    no_warm_start: bool,
    /// Skip the pre-flight checks.
    #[arg(long)]
    no_checks: bool,
    /// With a remote optimizer: stop, saying GOODBYE, after this many commands (default: run until
    /// interrupted, as ServoX does).
    #[arg(long, value_name = "N")]
    max_cycles: Option<u64>,
    /// ServoX's "verify all checks pass before running": servo always does (progressively, as
    /// `checks:` says) unless --no-checks; accepted for ServoX's command lines.
    #[arg(long, conflicts_with = "no_checks")]
    check: bool,
    /// Run the checks (progressively, as `checks:` says) and exit without running: 0 when they
    /// pass, 3 when one that halts still fails (ServoX's `run --dry-run`).
    #[arg(long, conflicts_with = "no_checks")]
    dry_run: bool,
}

pub(super) struct Outcome(pub Summary);

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Render for Outcome {
    fn human(&self) -> String {
        comparison(&self.0)
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
    let mut assemblies = globals.load(registry)?;
    if args.dry_run {
        return dry_run(&assemblies).await;
    }
    if assemblies.len() > 1 {
        return run_many(&args, globals, &assemblies).await;
    }
    let assembly = assemblies
        .pop()
        .ok_or_else(|| CliError::Failure("the config holds no servo".into()))?;
    if let crate::config::optimizer::OptimizerSettings::Remote(remote) = &assembly.optimizer {
        let cx = EventContext::new(interrupt_token());
        return run_remote(&args, globals, &assembly, remote, &cx).await;
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
        no_warm_start: args.no_warm_start,
    };
    let result = study::run(&assembly, &options, &cx, |progress| match progress {
        Progress::WarmStart { describe, .. } => match &bar {
            Some(bar) => bar.println(&describe),
            None => tracing::info!("{describe}"),
        },
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
        Progress::TrialFinished { trial, best, front, finished, total } => {
            // Several objectives: every value, in the study's order.
            let value = |o: f64| match trial.objectives.as_slice() {
                [] => format!("objective {o:.4}"),
                all => format!(
                    "objectives {}",
                    all.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", ")
                ),
            };
            let outcome = match (trial.objective, trial.feasible, &trial.error) {
                (Some(o), Some(true), _) => value(o),
                (Some(o), _, _) => match &trial.cut_short {
                    Some(cut) => format!("{} (cut short: {cut})", value(o)),
                    None => format!("{} (misses an SLO)", value(o)),
                },
                (_, _, Some(e)) => format!("failed: {e}"),
                _ => "failed".to_string(),
            };
            let best = best.map(|b| format!("{b:.4}")).unwrap_or_else(|| "none yet".into());
            let standing = match front {
                Some(n) => format!("{n} on the Pareto front"),
                None => format!("best {best}"),
            };
            match &bar {
                Some(bar) => {
                    bar.set_position(finished as u64);
                    bar.println(format!("trial {}: {outcome}; {standing}", trial.number));
                }
                None => match front {
                    Some(front) => tracing::info!(trial = trial.number, finished, total, %outcome, front, "trial finished"),
                    None => tracing::info!(trial = trial.number, finished, total, %outcome, %best, "trial finished"),
                },
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

/// ServoX's `run --dry-run`: every servo's checks, progressively, and no run.
async fn dry_run(assemblies: &[crate::config::Assembly]) -> CommandResult {
    let mut failed = false;
    for assembly in assemblies {
        let failing = super::with_connectors(assembly, async |bus, cx| {
            Ok(bus.check_until_ready(&assembly.checks, cx).await?)
        })
        .await?;
        for c in &failing {
            eprintln!(
                "{}: {}.{}: {}",
                assembly.name,
                c.connector,
                c.name,
                c.message.as_deref().unwrap_or("failed")
            );
        }
        failed |= !failing.is_empty();
    }
    Ok(if failed { Exit::CheckFailed } else { Exit::Ok })
}

/// Every servo of a multi-servo file at once, as ServoX's `run` does (`--name` picks one). Each
/// talks to its own remote optimizer; the embedded optimizer runs one study at a time.
async fn run_many(
    args: &Args,
    globals: &Globals,
    assemblies: &[crate::config::Assembly],
) -> CommandResult {
    use crate::config::optimizer::OptimizerSettings;
    let mut remotes = Vec::new();
    for assembly in assemblies {
        match &assembly.optimizer {
            OptimizerSettings::Remote(remote) => remotes.push((assembly, remote)),
            OptimizerSettings::Embedded(_) => {
                return Err(CliError::usage_with_hint(
                    format!(
                        "{} holds {} servos and `{}` uses the embedded optimizer, which runs one study at a time",
                        globals.config_file.display(),
                        assemblies.len(),
                        assembly.name
                    ),
                    "choose one with --name, or give every servo a remote optimizer",
                ));
            }
        }
    }
    let cx = EventContext::new(interrupt_token());
    let results = futures_util::future::join_all(
        remotes
            .iter()
            .map(|(assembly, remote)| run_remote(args, globals, assembly, remote, &cx)),
    )
    .await;
    let mut exit = Exit::Ok;
    let mut first_error = None;
    for (result, (assembly, _)) in results.into_iter().zip(&remotes) {
        match result {
            Ok(Exit::Ok) => {}
            Ok(other) => exit = other,
            Err(e) => {
                tracing::error!(servo = %assembly.name, "{e}");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(exit),
    }
}

/// `servo run` against a remote (Opsani/ServoX protocol) optimizer: see [`crate::protocol`].
async fn run_remote(
    args: &Args,
    globals: &Globals,
    assembly: &crate::config::Assembly,
    remote: &crate::config::optimizer::RemoteOptimizer,
    cx: &EventContext,
) -> CommandResult {
    use crate::protocol::{self, Progress as RemoteProgress, RemoteError};
    let options = protocol::RunOptions {
        no_checks: args.no_checks,
        max_cycles: args.max_cycles,
        pod_namespace: std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|s| !s.is_empty()),
    };
    let servo = assembly.name.as_str();
    let result = protocol::run(assembly, remote, &options, cx, |progress| match progress {
        RemoteProgress::Connected { url } => {
            tracing::info!(servo, %url, "connected to the optimizer")
        }
        RemoteProgress::Command { cmd, cmd_uid } => {
            tracing::info!(servo, %cmd, cmd_uid = cmd_uid.unwrap_or(""), "command received")
        }
        RemoteProgress::Reported { cmd, status } => {
            tracing::info!(servo, %cmd, status = %status.status, "result reported")
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

/// The baseline vs best table `servo run` ends with.
fn comparison(summary: &Summary) -> String {
    let mut out = String::new();
    let (reused, own): (Vec<_>, Vec<_>) = summary.trials.iter().partition(|t| t.reused.is_some());
    let complete = own
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count();
    let reused = match reused.len() {
        0 => String::new(),
        n => format!(", {n} reused from an earlier study"),
    };
    let _ = writeln!(
        out,
        "study `{}`: {} trial(s), {complete} complete{reused}{}",
        summary.study,
        own.len(),
        if summary.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    match (&summary.baseline, &summary.best) {
        (Some(baseline), Some(best)) => {
            let mut table = Table::new(["", "BASELINE", "BEST", "CHANGE"]);
            let change = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if a != 0.0 => format!("{:+.1}%", (b - a) / a.abs() * 100.0),
                _ => String::new(),
            };
            for (name, value) in &baseline.config {
                let b = best.config.get(name);
                table.row([
                    name.clone(),
                    value.to_string(),
                    b.map(ToString::to_string).unwrap_or_default(),
                    change(param_number(value), b.and_then(param_number)),
                ]);
            }
            // One objective, or each of several.
            let objectives: Vec<(String, Option<f64>, Option<f64>)> = match &summary.front {
                None => vec![(
                    summary.objective.clone(),
                    baseline.objective,
                    best.objective,
                )],
                Some(front) => front
                    .objectives
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        (
                            o.expression.clone(),
                            baseline.objectives.get(i).copied(),
                            best.objectives.get(i).copied(),
                        )
                    })
                    .collect(),
            };
            for (text, before, after) in &objectives {
                table.row([
                    format!("objective ({text})"),
                    before.map(|o| format!("{o:.4}")).unwrap_or_default(),
                    after.map(|o| format!("{o:.4}")).unwrap_or_default(),
                    change(*before, *after),
                ]);
            }
            // The metrics the goal reads; every reading is in `servo trials -o json` and the report.
            let mut wanted: Vec<String> = Vec::new();
            for (text, _, _) in &objectives {
                if let Ok(e) = Expr::parse(text) {
                    wanted.extend(e.variables().into_iter().map(String::from));
                }
            }
            for c in summary
                .constraints
                .iter()
                .filter_map(|c| Constraint::parse(c).ok())
            {
                wanted.extend(c.left.variables().into_iter().map(String::from));
            }
            for (metric, r) in baseline.readings.iter().filter(|(m, _)| wanted.contains(m)) {
                let b = best.readings.get(metric);
                table.row([
                    format!("{metric} ({})", r.unit),
                    format!("{:.3}", r.value),
                    b.map(|b| format!("{:.3}", b.value)).unwrap_or_default(),
                    change(Some(r.value), b.map(|b| b.value)),
                ]);
            }
            out.push_str(&table.render());
            match (&summary.confidence, &summary.front) {
                (_, Some(front)) => {
                    let _ = writeln!(
                        out,
                        "best: trial {}, selected by {} among the {} trial(s) of the Pareto front (servo trials --pareto)",
                        best.number,
                        front.rule,
                        front.trials.len()
                    );
                }
                (Some(confidence), None) => {
                    let _ = writeln!(out, "{}", confidence.describe());
                }
                (None, None) => {
                    let _ = writeln!(out, "best: trial {}", best.number);
                }
            }
        }
        (None, Some(best)) => {
            let _ = writeln!(
                out,
                "best: trial {} (the baseline did not complete)",
                best.number
            );
        }
        (_, None) => out.push_str("no trial met every SLO yet\n"),
    }
    if !summary.left_on.is_empty() {
        let _ = writeln!(out, "the application was left on {}", summary.left_on);
    }
    let _ = writeln!(
        out,
        "journal: {}; report: servo report --output report.html",
        summary.journal.display()
    );
    out
}
