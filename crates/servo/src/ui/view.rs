//! What the charts draw, as one JSON document: the report embeds it, the server's application page
//! fetches it. Built once from a [`Summary`], so both show the same thing.

use std::collections::BTreeMap;

use serde::Serialize;
use servo_optimizer::{Domain, ParamValue};

use super::importance;
use crate::study::journal::{Trial, TrialState};
use crate::study::objective::{Comparison, Expr};
use crate::study::pareto::{self, ObjectiveView};
use crate::study::{Breaches, Summary, baseline_trial, breaches, resolved};

/// A study as the charts see it.
#[derive(Debug, Serialize)]
pub struct StudyView {
    pub study: String,
    pub objective: Objective,
    pub settings: Vec<Setting>,
    pub slos: Vec<Slo>,
    pub trials: Vec<Trial>,
    pub baseline: Option<i64>,
    pub best: Option<i64>,
    /// Best feasible objective after each trial number, for the best-so-far line.
    pub best_so_far: Vec<(i64, f64)>,
    pub importance: Vec<importance::Importance>,
    pub counts: Counts,
    /// The SLO breaches the search caused and the worst of them (`None` without constraints).
    pub breaches: Option<Breaches>,
    /// [`Breaches::describe`], the line people read.
    pub breaches_text: Option<String>,
    /// [`crate::study::Confidence::describe`]: how sure the study is of its best.
    pub best_text: Option<String>,
    /// With several objectives: each complete trial's values, the front and the selected point,
    /// for the front's scatter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pareto: Option<Pareto>,
}

/// The trials of a study with several objectives in objective space.
#[derive(Debug, Serialize)]
pub struct Pareto {
    pub objectives: Vec<ObjectiveView>,
    /// Every complete trial with its values, in the order of `objectives`.
    pub points: Vec<ParetoPoint>,
    /// The trial `objective.select` picked, on the front.
    pub selected: Option<i64>,
    /// The rule that picked it: `knee` or the weights.
    pub rule: String,
}

#[derive(Debug, Serialize)]
pub struct ParetoPoint {
    pub trial: i64,
    pub values: Vec<f64>,
    pub feasible: bool,
    /// On the Pareto front (meets every SLO, and no such trial beats it on every objective).
    pub front: bool,
}

#[derive(Debug, Serialize)]
pub struct Objective {
    pub text: String,
    pub maximize: bool,
    /// The unit of the metric, when the objective is one metric's reading.
    pub unit: String,
}

/// A tuned setting: numeric (a slice plot against the objective) or categorical (one column per
/// choice).
#[derive(Debug, Serialize)]
pub struct Setting {
    pub name: String,
    pub categorical: bool,
    /// The choices of a categorical setting, in the space's order.
    pub choices: Vec<String>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Whole numbers only: the axis ticks stay on them.
    pub integer: bool,
}

/// One SLO: its metric's readings are drawn against `limit`.
#[derive(Debug, Serialize)]
pub struct Slo {
    pub text: String,
    pub metric: String,
    pub unit: String,
    /// The value at which the constraint's violation is zero, in the metric's unit.
    pub limit: Option<f64>,
    /// `true` for an upper bound (`<`, `<=`).
    pub upper: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub complete: usize,
    pub failed: usize,
    pub running: usize,
    pub interrupted: usize,
    /// Complete trials that missed at least one SLO.
    pub breaches: usize,
}

impl StudyView {
    pub fn new(summary: &Summary) -> StudyView {
        // What this study measured: trials reused from an earlier one (`servo trials` lists them)
        // seeded its optimizer but were measured elsewhere, under the earlier study's load.
        let own;
        let summary = if summary.trials.iter().any(|t| t.reused.is_some()) {
            own = Summary {
                trials: summary
                    .trials
                    .iter()
                    .filter(|t| t.reused.is_none())
                    .cloned()
                    .collect(),
                ..summary.clone()
            };
            &own
        } else {
            summary
        };
        let complete: Vec<&Trial> = summary
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.objective.is_some())
            .collect();
        let mut counts = Counts::default();
        for t in &summary.trials {
            match t.state {
                TrialState::Complete => counts.complete += 1,
                TrialState::Failed => counts.failed += 1,
                TrialState::Running => counts.running += 1,
                TrialState::Interrupted => counts.interrupted += 1,
            }
        }
        counts.breaches = complete
            .iter()
            .filter(|t| t.feasible == Some(false))
            .count();

        let settings = settings(summary);
        let slos = summary
            .constraints
            .iter()
            .map(|text| slo(text, &complete, baseline_trial(&summary.trials)))
            .collect();
        let objective_unit = complete
            .iter()
            .find_map(|t| t.readings.get(summary.objective.trim()))
            .map(|r| r.unit.clone())
            .unwrap_or_default();

        let mut best_so_far = Vec::new();
        let mut best: Option<f64> = None;
        let mut ordered: Vec<&Trial> = summary.trials.iter().collect();
        ordered.sort_by_key(|t| t.number);
        for t in ordered {
            if let (TrialState::Complete, Some(true), Some(o)) = (t.state, t.feasible, t.objective)
            {
                let better = match best {
                    None => true,
                    Some(b) if summary.maximize => o > b,
                    Some(b) => o < b,
                };
                if better {
                    best = Some(o);
                }
            }
            if let Some(b) = best {
                best_so_far.push((t.number, b));
            }
        }

        let breaches = (!summary.constraints.is_empty())
            .then(|| breaches(&summary.trials, &summary.constraints));
        let pareto = summary.front.as_ref().map(|front| Pareto {
            objectives: front.objectives.clone(),
            points: summary
                .trials
                .iter()
                .filter_map(|t| {
                    Some(ParetoPoint {
                        trial: t.number,
                        values: pareto::values_of(t, &summary.objectives)?,
                        feasible: t.feasible == Some(true),
                        front: front.trials.contains(&t.number),
                    })
                })
                .collect(),
            selected: front.selected,
            rule: front.rule.clone(),
        });
        StudyView {
            pareto,
            breaches_text: breaches.as_ref().map(Breaches::describe),
            breaches,
            study: summary.study.clone(),
            objective: Objective {
                text: summary.objective.clone(),
                maximize: summary.maximize,
                unit: objective_unit,
            },
            importance: importance::of(
                &settings
                    .iter()
                    .map(|s| importance::Factor {
                        name: &s.name,
                        categorical: s.categorical,
                    })
                    .collect::<Vec<_>>(),
                &complete,
            ),
            settings,
            slos,
            trials: summary.trials.clone(),
            baseline: summary.baseline.as_ref().map(|t| t.number),
            best: summary.best.as_ref().map(|t| t.number),
            best_text: summary.confidence.as_ref().map(|c| c.describe()),
            best_so_far,
            counts,
        }
    }
}

/// The space's parameters; a journal from before the space was kept in the summary falls back to
/// the names and values its trials show.
fn settings(summary: &Summary) -> Vec<Setting> {
    if !summary.space.params.is_empty() {
        return summary
            .space
            .params
            .iter()
            .map(|p| match &p.domain {
                Domain::Categorical { choices } => Setting {
                    name: p.name.clone(),
                    categorical: true,
                    choices: choices.clone(),
                    low: None,
                    high: None,
                    integer: false,
                },
                Domain::Float { low, high, .. } => numeric(&p.name, *low, *high, false),
                Domain::Int { low, high, .. } => numeric(&p.name, *low as f64, *high as f64, true),
            })
            .collect();
    }
    let mut seen: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for t in &summary.trials {
        for (name, value) in &t.config {
            let choices = seen.entry(name).or_default();
            if let ParamValue::Categorical(c) = value
                && !choices.contains(c)
            {
                choices.push(c.clone());
            }
        }
    }
    seen.into_iter()
        .map(|(name, choices)| Setting {
            name: name.to_string(),
            categorical: !choices.is_empty(),
            choices,
            low: None,
            high: None,
            integer: false,
        })
        .collect()
}

fn numeric(name: &str, low: f64, high: f64, integer: bool) -> Setting {
    Setting {
        name: name.to_string(),
        categorical: false,
        choices: Vec::new(),
        low: Some(low),
        high: Some(high),
        integer,
    }
}

/// The metric a constraint bounds and its limit, in the metric's own unit whatever unit the bound
/// was written in (the study's own parser and conversion, as the scores were computed).
/// A bound relative to the baseline is drawn at the limit the baseline's readings made of it.
fn slo(text: &str, complete: &[&Trial], baseline: Option<&Trial>) -> Slo {
    let Some(constraint) = resolved(text, baseline) else {
        // Journals hold only constraints that parsed when the study began; say nothing more.
        return Slo {
            text: text.to_string(),
            metric: text.to_string(),
            unit: String::new(),
            limit: None,
            upper: true,
        };
    };
    let metric = constraint.left.to_string();
    let unit = complete
        .iter()
        .find_map(|t| t.readings.get(&metric))
        .map(|r| r.unit.clone());
    Slo {
        text: match &unit {
            Some(unit) => constraint.describe(unit),
            None => text.to_string(),
        },
        limit: match (&constraint.left, &unit) {
            (Expr::Var(_), Some(unit)) => constraint.limit(unit),
            _ => None,
        },
        unit: unit.unwrap_or_default(),
        metric,
        upper: matches!(
            constraint.comparison,
            Comparison::Less | Comparison::LessEqual
        ),
    }
}
