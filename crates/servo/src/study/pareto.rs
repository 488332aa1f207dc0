//! A study with several objectives: what the sampler is asked to minimize (ParEGO's scalarized
//! history), and the Pareto front of the journaled trials with the point the study settles on.
//!
//! The search is ParEGO (see `servo_optimizer::pareto`) on the study's own sampler: before each
//! suggestion the trials' objectives are normalized over the history and combined by the
//! augmented Chebyshev function under a weight vector drawn from the seed and the next trial's
//! number. Constraints and failures reach the sampler unchanged, so safe exploration and the
//! failure model apply as with one objective; the random algorithm ignores the scores as always.

use serde::Serialize;

use super::goal::Goal;
use super::journal::{Trial, TrialState};
use super::objective::Expr;
use super::plan::Plan;
use crate::config::optimizer::{Select, Target};
use servo_optimizer::Observation;
use servo_optimizer::pareto::{
    MultiObservation, non_dominated, parego_history, parego_weights, select,
};

/// The history the sampler sees for the next suggestion of a study with several objectives:
/// [`servo_optimizer::pareto::parego_history`] of the trials (objectives negated where
/// maximized), under the weights of the next trial's number.
pub fn scalarized_history(
    plan: &Plan,
    goal: &Goal,
    trials: &[Trial],
    seed: u64,
) -> Vec<Observation> {
    let next = trials
        .iter()
        .map(|t| t.number + 1)
        .max()
        .unwrap_or(0)
        .max(0);
    let weights = parego_weights(goal.objectives.len(), seed, next as u64);
    let targets = goal.targets();
    let violations = super::judged::Violations::new(trials, &goal.constraint_texts());
    let history: Vec<MultiObservation> = trials
        .iter()
        .filter_map(|t| {
            let config = plan.ordered(&t.config)?;
            let objectives = match t.state {
                // A trial journaled before the study had these objectives and missing a metric
                // one of them reads is left out, as an unscored trial is with one objective.
                TrialState::Complete => Some(oriented(
                    &values_of(t, &targets)?,
                    targets.iter().map(|t| t.maximize),
                )),
                TrialState::Failed => None,
                _ => return None,
            };
            Some(MultiObservation {
                config,
                objectives,
                constraints: violations.for_optimizer(t),
            })
        })
        .collect();
    parego_history(&history, &weights)
}

/// Values as written turned into values to minimize.
fn oriented(values: &[f64], maximize: impl Iterator<Item = bool>) -> Vec<f64> {
    values
        .iter()
        .zip(maximize)
        .map(|(v, max)| if max { -v } else { *v })
        .collect()
}

/// One objective of a study with several, as `servo trials` and the report show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectiveView {
    pub expression: String,
    pub maximize: bool,
    /// The metric's unit when the expression is one metric; empty otherwise (an expression's
    /// result has no unit servo could name).
    pub unit: String,
}

/// The Pareto front of a study's trials and the point chosen on it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Front {
    pub objectives: Vec<ObjectiveView>,
    /// The trials on the front: complete, meeting every SLO, and beaten on every objective by no
    /// other such trial; in trial order.
    pub trials: Vec<i64>,
    /// The trial the rule picked.
    pub selected: Option<i64>,
    /// The rule, for people: `knee` or `weights cost = 0.7, latency_p99 = 0.3`.
    pub rule: String,
}

/// Each objective's value of `trial`: the journaled ones, or evaluated from its readings and
/// settings for a trial journaled before the study had these objectives.
pub fn values_of(trial: &Trial, targets: &[Target]) -> Option<Vec<f64>> {
    if trial.state != TrialState::Complete {
        return None;
    }
    let values: Vec<f64> = if trial.objectives.len() == targets.len() {
        trial.objectives.clone()
    } else {
        let vars = super::goal::variables(&trial.readings, &trial.config);
        targets
            .iter()
            .map(|t| Expr::parse(&t.expression).ok()?.eval(&vars).ok())
            .collect::<Option<_>>()?
    };
    values.iter().all(|v| v.is_finite()).then_some(values)
}

/// The front of `trials` for the objectives `targets`, with the point `rule` selects.
pub fn front(targets: &[Target], trials: &[Trial], rule: &Select) -> Front {
    let objectives = targets
        .iter()
        .map(|t| ObjectiveView {
            expression: t.expression.clone(),
            maximize: t.maximize,
            unit: trials
                .iter()
                .find_map(|tr| tr.readings.get(t.expression.trim()))
                .map(|r| r.unit.clone())
                .unwrap_or_default(),
        })
        .collect();
    let mut candidates: Vec<&Trial> = Vec::new();
    let mut points = Vec::new();
    // Trials reused from an earlier study seed the search but are not this study's to report,
    // as with one objective (`summary::best_trial`).
    for t in trials
        .iter()
        .filter(|t| t.feasible == Some(true) && t.reused.is_none())
    {
        if let Some(values) = values_of(t, targets) {
            candidates.push(t);
            points.push(oriented(&values, targets.iter().map(|t| t.maximize)));
        }
    }
    let on_front = non_dominated(&points);
    let front_points: Vec<Vec<f64>> = on_front.iter().map(|&i| points[i].clone()).collect();
    let (weights, rule) = match rule {
        Select::Knee => (None, "knee".to_string()),
        Select::Weights(w) => (
            Some(
                targets
                    .iter()
                    .map(|t| w.get(&t.expression).copied().unwrap_or(0.0))
                    .collect::<Vec<f64>>(),
            ),
            format!(
                "weights {}",
                w.iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    };
    let selected =
        select(&front_points, weights.as_deref()).map(|k| candidates[on_front[k]].number);
    Front {
        objectives,
        trials: on_front.iter().map(|&i| candidates[i].number).collect(),
        selected,
        rule,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::study::journal::RecordedReading;

    fn trial(number: i64, cost: f64, latency: f64, feasible: bool) -> Trial {
        Trial {
            state: TrialState::Complete,
            readings: BTreeMap::from([(
                "latency".to_string(),
                RecordedReading {
                    value: latency,
                    unit: "ms".into(),
                },
            )]),
            objective: Some(cost),
            objectives: vec![cost, latency],
            feasible: Some(feasible),
            ..Trial::running(number, BTreeMap::new(), 0.0)
        }
    }

    fn study(maximize_second: bool) -> Vec<Target> {
        vec![
            Target::new("cost", false),
            Target::new("latency", maximize_second),
        ]
    }

    #[test]
    fn the_front_holds_the_feasible_trials_nothing_beats_and_the_knee_is_selected() {
        let trials = vec![
            trial(0, 10.0, 1.0, true),
            trial(1, 1.0, 10.0, true),
            trial(2, 3.0, 3.0, true),
            trial(3, 4.0, 4.0, true),  // dominated by 2
            trial(4, 0.5, 0.5, false), // beats everything but misses an SLO
            trial(5, 6.0, 2.0, true),
        ];
        let front = front(&study(false), &trials, &Select::Knee);
        assert_eq!(front.trials, vec![0, 1, 2, 5]);
        assert_eq!(front.selected, Some(2));
        assert_eq!(front.objectives[1].unit, "ms");
        assert_eq!(front.objectives[0].unit, "", "cost is no metric");
        let leaning = Select::Weights(BTreeMap::from([("latency".to_string(), 1.0)]));
        let weighted = super::front(&study(false), &trials, &leaning);
        assert_eq!(weighted.selected, Some(0));
        assert_eq!(weighted.rule, "weights latency = 1");
        // Maximizing the second objective turns the front around.
        let turned = super::front(&study(true), &trials, &Select::Knee);
        assert_eq!(turned.trials, vec![1]);
    }
}
