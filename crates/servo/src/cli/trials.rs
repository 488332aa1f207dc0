//! `servo trials`: the journaled trials of a study.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::shared::load_summary;
use super::{CliError, CommandResult, Exit, Globals};
use crate::output::{Format, Table};
use crate::study::pareto::{self, Front, ObjectiveView};
use crate::study::{Baselines, Summary, limits_against};
use servo_core::connector::Registry;

/// List the trials journaled for this servo's study: settings, objective, SLOs met, state.
///
/// Formats: a table (default), `-o json`, `-o yaml`, or `-o csv` for spreadsheets.
///
/// Example: servo trials -c examples/quickstart.yaml -o csv > trials.csv
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the Pareto front of a study with several objectives: the trials that met every SLO
    /// and that no other such trial beats on every objective, each objective with its unit, and
    /// the one selected as best (`objective.select`).
    #[arg(long)]
    pub pareto: bool,
}

/// A column heading for an objective: its expression, with its unit when it has one.
fn heading(o: &ObjectiveView) -> String {
    let direction = if o.maximize { "max " } else { "" };
    match o.unit.as_str() {
        "" => format!("{direction}{}", o.expression),
        unit => format!("{direction}{} ({unit})", o.expression),
    }
}

/// The front as `-o json`/`yaml` give it: the objectives, the rule, the selected trial, and each
/// trial of the front with its settings and every objective's value and unit.
fn front_json(summary: &Summary, front: &Front) -> serde_json::Value {
    let trials: Vec<serde_json::Value> = front
        .trials
        .iter()
        .filter_map(|n| summary.trials.iter().find(|t| t.number == *n))
        .map(|t| {
            let values = pareto::values_of(t, &summary.objectives).unwrap_or_default();
            serde_json::json!({
                "number": t.number,
                "config": t.config,
                "objectives": front.objectives.iter().zip(&values).map(|(o, v)| serde_json::json!({
                    "expression": o.expression,
                    "maximize": o.maximize,
                    "value": v,
                    "unit": o.unit,
                })).collect::<Vec<_>>(),
                "selected": front.selected == Some(t.number),
            })
        })
        .collect();
    serde_json::json!({
        "objectives": front.objectives,
        "rule": front.rule,
        "selected": front.selected,
        "trials": trials,
    })
}

/// `servo trials --pareto`.
fn print_front(summary: &Summary, names: &[String], format: Format) -> CommandResult {
    let Some(front) = &summary.front else {
        return Err(CliError::usage_with_hint(
            format!(
                "study `{}` has one objective (`{}`): it has a best, not a Pareto front",
                summary.study, summary.objective
            ),
            "list two or more objectives (`objective: {minimize: [cost, latency_p99]}`) for a front; `servo trials` lists every trial",
        ));
    };
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&front_json(summary, front))
                .map_err(|e| CliError::Failure(e.to_string()))?;
            text.push('\n');
            crate::output::print(&text)?;
        }
        Format::Yaml => crate::output::print(
            &crate::output::to_yaml(&front_json(summary, front)).map_err(CliError::Failure)?,
        )?,
        Format::Csv | Format::Configmap => {
            return Err(CliError::usage(
                "servo trials --pareto prints a table, JSON or YAML: use -o table, json or yaml",
            ));
        }
        Format::Table => {
            let mut headers = vec!["#".to_string()];
            headers.extend(names.iter().cloned());
            headers.extend(front.objectives.iter().map(heading));
            headers.push("SELECTED".into());
            let mut table = Table::new(headers);
            for t in front
                .trials
                .iter()
                .filter_map(|n| summary.trials.iter().find(|t| t.number == *n))
            {
                let mut row = vec![t.number.to_string()];
                row.extend(
                    names
                        .iter()
                        .map(|n| t.config.get(n).map(ToString::to_string).unwrap_or_default()),
                );
                let values = pareto::values_of(t, &summary.objectives).unwrap_or_default();
                row.extend(values.iter().map(|v| format!("{v:.4}")));
                row.push(if front.selected == Some(t.number) {
                    format!("best ({})", front.rule)
                } else {
                    String::new()
                });
                table.row(row);
            }
            let mut text = table.render();
            let met = summary
                .trials
                .iter()
                .filter(|t| t.feasible == Some(true))
                .count();
            text.push_str(&format!(
                "{} trial(s) on the Pareto front of the {met} that met every SLO; ",
                front.trials.len()
            ));
            match front.selected {
                Some(n) => text.push_str(&format!("best: trial {n} ({})\n", front.rule)),
                None => text.push_str("no trial met every SLO yet\n"),
            }
            crate::output::print(&text)?;
        }
    }
    Ok(Exit::Ok)
}

/// One CSV row per trial, settings as columns.
fn csv(summary: &Summary, names: &[String]) -> String {
    let mut out = String::from("number,state");
    for n in names {
        let _ = write!(out, ",{n}");
    }
    out.push_str(",objective");
    for o in summary.front.iter().flat_map(|f| &f.objectives) {
        let _ = write!(out, ",{}", o.expression.replace(',', ";"));
    }
    out.push_str(",feasible,error,cut_short,reused_from,role\n");
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
        let cut_short = t.cut_short.as_deref().unwrap_or("").replace('"', "\"\"");
        let _ = write!(
            out,
            ",{}",
            t.objective.map(|o| o.to_string()).unwrap_or_default()
        );
        if summary.front.is_some() {
            let values = pareto::values_of(t, &summary.objectives).unwrap_or_default();
            for i in 0..summary.objectives.len() {
                let _ = write!(
                    out,
                    ",{}",
                    values.get(i).map(ToString::to_string).unwrap_or_default()
                );
            }
        }
        let _ = writeln!(
            out,
            ",{},\"{error}\",\"{cut_short}\",{},{}",
            t.feasible.map(|f| f.to_string()).unwrap_or_default(),
            t.reused
                .map(|r| format!("{}#{}", r.study, r.trial))
                .unwrap_or_default(),
            t.role.map(|r| r.as_str()).unwrap_or_default()
        );
    }
    out
}

/// The trials, each with the limits it was judged by when an SLO is relative to the baseline
/// (`limits`: constraint, limit, unit, the baseline's reading, and the limit described) and the
/// baseline measurement they came from (`judged_against`: the first, or the latest re-measurement
/// before it with `optimizer.baseline_every`). A reused trial was judged against its own study's
/// baseline, which is not among these trials.
fn with_limits(summary: &Summary) -> Result<serde_json::Value, CliError> {
    let failure = |e: serde_json::Error| CliError::Failure(e.to_string());
    let mut trials = serde_json::to_value(&summary.trials).map_err(failure)?;
    if summary.limits.iter().any(|l| l.baseline.is_some()) {
        let baselines = Baselines::new(&summary.trials);
        // The limits each baseline measurement makes, worked out once per measurement.
        let mut by_baseline: BTreeMap<Option<i64>, serde_json::Value> = BTreeMap::new();
        for (value, trial) in trials
            .as_array_mut()
            .into_iter()
            .flatten()
            .zip(&summary.trials)
        {
            let Some(value) = value.as_object_mut().filter(|_| trial.reused.is_none()) else {
                continue;
            };
            let baseline = baselines.judging(trial.number);
            let key = baseline.map(|b| b.number);
            let limits = match by_baseline.entry(key) {
                std::collections::btree_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => slot.insert(
                    serde_json::to_value(limits_against(
                        &summary.trials,
                        &summary.constraints,
                        baseline,
                    ))
                    .map_err(failure)?,
                ),
            };
            value.insert("limits".into(), limits.clone());
            if let Some(number) = key {
                value.insert("judged_against".into(), number.into());
            }
        }
    }
    Ok(trials)
}

/// A trial's state, with what it was run for or where it came from.
fn state(t: &crate::study::journal::Trial) -> String {
    match (t.reused, t.role) {
        (Some(r), _) => format!("reused (study {}, trial {})", r.study, r.trial),
        (None, Some(role)) => format!("{} ({})", t.state.as_str(), role.as_str()),
        (None, None) => t.state.as_str().to_string(),
    }
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let summary = load_summary(globals, registry).await?;
    let names: Vec<String> = summary
        .trials
        .first()
        .map(|t| t.config.keys().cloned().collect())
        .unwrap_or_default();
    if args.pareto {
        return print_front(&summary, &names, globals.format);
    }
    match globals.format {
        Format::Csv => crate::output::print(&csv(&summary, &names))?,
        Format::Configmap => {
            return Err(CliError::usage(
                "only `servo config` prints a ConfigMap: use -o table, json, yaml or csv",
            ));
        }
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&with_limits(&summary)?)
                .map_err(|e| CliError::Failure(e.to_string()))?;
            text.push('\n');
            crate::output::print(&text)?;
        }
        Format::Yaml => crate::output::print(
            &crate::output::to_yaml(&with_limits(&summary)?).map_err(CliError::Failure)?,
        )?,
        Format::Table => {
            let mut headers = vec!["#".to_string(), "STATE".to_string()];
            headers.extend(names.iter().cloned());
            match &summary.front {
                None => headers.push("OBJECTIVE".to_string()),
                Some(front) => headers.extend(front.objectives.iter().map(heading)),
            }
            headers.push("SLOS".to_string());
            let mut table = Table::new(headers);
            for t in &summary.trials {
                let mut row = vec![t.number.to_string(), state(t)];
                row.extend(
                    names
                        .iter()
                        .map(|n| t.config.get(n).map(ToString::to_string).unwrap_or_default()),
                );
                match pareto::values_of(t, &summary.objectives).filter(|_| summary.front.is_some())
                {
                    Some(values) => row.extend(values.iter().map(|v| format!("{v:.4}"))),
                    None if summary.front.is_some() => {
                        row.extend(summary.objectives.iter().map(|_| String::new()));
                    }
                    None => row.push(t.objective.map(|o| format!("{o:.4}")).unwrap_or_default()),
                }
                row.push(match (t.feasible, &t.cut_short) {
                    (Some(false), Some(cut)) => format!("missed, cut short: {cut}"),
                    (Some(true), _) => "met".into(),
                    (Some(false), None) => "missed".into(),
                    (None, _) => t.error.clone().unwrap_or_default(),
                });
                table.row(row);
            }
            let mut text = table.render();
            // A bound relative to the baseline: the limit its readings made of it.
            // With `baseline_every`, the latest measurement's: each trial's are in `-o json`.
            let latest = crate::study::judging_baseline(&summary.trials, i64::MAX)
                .filter(|b| b.role.is_some())
                .map(|b| format!(" (baseline measured again in trial {})", b.number))
                .unwrap_or_default();
            for limit in summary.limits.iter().filter(|l| l.baseline.is_some()) {
                text.push_str(&format!("SLO {}{latest}\n", limit.describe));
            }
            if !summary.constraints.is_empty() {
                text.push_str(
                    &crate::study::breaches(&summary.trials, &summary.constraints).describe(),
                );
                text.push('\n');
            }
            if let (Some(front), Some(best)) = (&summary.front, &summary.best) {
                text.push_str(&format!(
                    "best: trial {}, selected by {} among the {} trial(s) of the Pareto front (servo trials --pareto)\n",
                    best.number,
                    front.rule,
                    front.trials.len()
                ));
            }
            if let Some(confidence) = &summary.confidence {
                text.push_str(&confidence.describe());
                text.push('\n');
            }
            crate::output::print(&text)?;
        }
    }
    Ok(Exit::Ok)
}
