//! `servo trials`: the journaled trials of a study.

use std::fmt::Write as _;

use super::{CliError, CommandResult, Exit, Globals};
use crate::output::{Format, Table};
use crate::study::journal::{Journal, TrialState};
use crate::study::objective::{Constraint, Expr};
use crate::study::{self, Summary, param_number};
use servo_core::connector::Registry;

/// List the trials journaled for this servo's study: settings, objective, SLOs met, state.
///
/// Formats: a table (default), `-o json`, `-o yaml`, or `-o csv` for spreadsheets.
///
/// Example: servo trials -c examples/quickstart.yaml -o csv > trials.csv
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Loads the journaled study of the config's servo.
pub(super) async fn load_summary(
    globals: &Globals,
    registry: &Registry,
) -> Result<Summary, CliError> {
    let assembly = globals.load_one(registry)?;
    let settings = study::embedded(&assembly).map_err(super::run::into_cli)?;
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

/// The baseline vs best table `servo run` ends with.
pub(super) fn comparison(summary: &Summary) -> String {
    let mut out = String::new();
    let complete = summary
        .trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count();
    let _ = writeln!(
        out,
        "study `{}`: {} trial(s), {complete} complete{}",
        summary.study,
        summary.trials.len(),
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
            table.row([
                format!("objective ({})", summary.objective),
                baseline
                    .objective
                    .map(|o| format!("{o:.4}"))
                    .unwrap_or_default(),
                best.objective
                    .map(|o| format!("{o:.4}"))
                    .unwrap_or_default(),
                change(baseline.objective, best.objective),
            ]);
            // The metrics the goal reads; every reading is in `servo trials -o json` and the report.
            let mut wanted: Vec<String> = Vec::new();
            if let Ok(e) = Expr::parse(&summary.objective) {
                wanted.extend(e.variables().into_iter().map(String::from));
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
            let _ = writeln!(out, "best: trial {}", best.number);
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

/// One CSV row per trial, settings as columns.
fn csv(summary: &Summary, names: &[String]) -> String {
    let mut out = String::from("number,state");
    for n in names {
        let _ = write!(out, ",{n}");
    }
    out.push_str(",objective,feasible,error\n");
    for t in &summary.trials {
        let _ = write!(out, "{},{}", t.number, t.state.as_str());
        for n in names {
            let _ = write!(
                out,
                ",{}",
                t.config.get(n).map(ToString::to_string).unwrap_or_default()
            );
        }
        let error = t.error.as_deref().unwrap_or("").replace('"', "\"\"");
        let _ = writeln!(
            out,
            ",{},{},\"{error}\"",
            t.objective.map(|o| o.to_string()).unwrap_or_default(),
            t.feasible.map(|f| f.to_string()).unwrap_or_default()
        );
    }
    out
}

pub async fn run(_args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let summary = load_summary(globals, registry).await?;
    let names: Vec<String> = summary
        .trials
        .first()
        .map(|t| t.config.keys().cloned().collect())
        .unwrap_or_default();
    match globals.format {
        Format::Csv => print!("{}", csv(&summary, &names)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&summary.trials)
                .map_err(|e| CliError::Failure(e.to_string()))?
        ),
        Format::Yaml => print!(
            "{}",
            crate::output::to_yaml(&summary.trials).map_err(CliError::Failure)?
        ),
        Format::Table => {
            let mut headers = vec!["#".to_string(), "STATE".to_string()];
            headers.extend(names.iter().cloned());
            headers.extend(["OBJECTIVE".to_string(), "SLOS".to_string()]);
            let mut table = Table::new(headers);
            for t in &summary.trials {
                let mut row = vec![t.number.to_string(), t.state.as_str().to_string()];
                row.extend(
                    names
                        .iter()
                        .map(|n| t.config.get(n).map(ToString::to_string).unwrap_or_default()),
                );
                row.push(t.objective.map(|o| format!("{o:.4}")).unwrap_or_default());
                row.push(match t.feasible {
                    Some(true) => "met".into(),
                    Some(false) => "missed".into(),
                    None => t.error.clone().unwrap_or_default(),
                });
                table.row(row);
            }
            print!("{}", table.render());
        }
    }
    Ok(Exit::Ok)
}
