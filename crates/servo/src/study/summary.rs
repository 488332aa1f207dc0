//! What a finished (or interrupted) study comes to: its trials, baseline and best.

use std::path::PathBuf;

use serde::Serialize;

use super::journal::{Study, Trial, TrialState};
use super::judged::{Violations, baseline_trial, judging_baseline, resolved};
use super::objective::Expr;

/// The outcome of a finished (or interrupted) study.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub study: String,
    pub journal: PathBuf,
    pub objective: String,
    pub maximize: bool,
    pub constraints: Vec<String>,
    /// Each constraint's limit as the trials were judged by it (in the order of `constraints`).
    pub limits: Vec<Limit>,
    pub trials: Vec<Trial>,
    pub baseline: Option<Trial>,
    pub best: Option<Trial>,
    /// With several objectives: their Pareto front, and `best` is the point its rule selected
    /// (see [`Summary::choose`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front: Option<super::pareto::Front>,
    /// How sure the study is of `best`, once the models chose it (see [`Summary::recommend`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// Which configuration the application was left on.
    pub left_on: String,
    pub interrupted: bool,
    pub elapsed_seconds: f64,
    /// The study's search space, for the charts (already in the journal, so not repeated in JSON).
    #[serde(skip)]
    pub space: servo_optimizer::Space,
    /// The study's objectives when it has several (the front's `objectives` say it in JSON).
    #[serde(skip)]
    pub objectives: Vec<crate::config::optimizer::Target>,
}

impl Summary {
    /// The summary of `trials`; with several objectives, the best is the point of their front
    /// that `select` picks (see [`Summary::choose`]).
    pub fn from_trials(
        study: &Study,
        journal: &std::path::Path,
        trials: Vec<Trial>,
        maximize: bool,
        select: &crate::config::optimizer::Select,
    ) -> Summary {
        let baseline = baseline_trial(&trials)
            .filter(|t| t.state == TrialState::Complete)
            .cloned();
        let best = best_trial(&trials, maximize).cloned();
        let mut summary = Summary {
            study: study.name.clone(),
            journal: journal.to_path_buf(),
            objective: study.objective.clone(),
            maximize,
            constraints: study.constraints.clone(),
            limits: limits(&trials, &study.constraints),
            trials,
            baseline,
            best,
            front: None,
            confidence: None,
            left_on: String::new(),
            interrupted: false,
            elapsed_seconds: 0.0,
            space: study.space.clone(),
            objectives: study.objectives.clone(),
        };
        summary.choose(select);
        summary
    }

    /// With several objectives, makes the front of the trials and reports as best the point
    /// `select` picks on it (none when no trial met every SLO); nothing otherwise.
    fn choose(&mut self, select: &crate::config::optimizer::Select) {
        if self.objectives.len() < 2 {
            return;
        }
        let front = super::pareto::front(&self.objectives, &self.trials, select);
        self.best = front
            .selected
            .and_then(|n| self.trials.iter().find(|t| t.number == n))
            .cloned();
        self.front = Some(front);
    }
}

impl Summary {
    /// Reports as best the trial the models choose rather than the luckiest reading (see
    /// [`servo_optimizer::Bayesian::recommendation`]), with how sure they are of it.
    /// With several objectives the best is the front's selected point, and this does nothing.
    pub fn recommend(&mut self, risk: servo_optimizer::Risk, seed: u64) {
        if self.front.is_some() {
            return;
        }
        let Some((recommendation, trials)) = recommendation(
            &self.space,
            &self.trials,
            &self.constraints,
            self.maximize,
            risk,
            seed,
        ) else {
            return;
        };
        let best = trials[recommendation.index].clone();
        let objectives = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.config == best.config)
            .filter_map(|t| t.objective)
            .collect();
        self.confidence = Some(Confidence {
            trial: best.number,
            feasibility: recommendation.feasibility,
            objectives,
        });
        self.best = Some(best);
    }
}

/// A constraint's concrete limit: for one relative to the baseline, what the baseline's journaled
/// readings made of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Limit {
    /// The constraint as written.
    pub constraint: String,
    /// The limit in the unit of its metric; `None` for an expression, or a bound relative to a
    /// baseline not measured yet.
    pub limit: Option<f64>,
    pub unit: String,
    /// The baseline's reading the limit derives from, for a bound relative to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// `latency_p99 <= 1.1 × baseline (34.1 ms)`.
    pub describe: String,
}

/// The constraints (as written) made concrete by the latest measurement of the baseline among
/// `trials` (the one a next trial would be judged against), each in the unit its metric was read
/// in.
pub fn limits(trials: &[Trial], constraints: &[String]) -> Vec<Limit> {
    limits_against(trials, constraints, judging_baseline(trials, i64::MAX))
}

/// The limits a trial judged against `baseline` (see [`judging_baseline`]) was judged by.
pub fn limits_against(
    trials: &[Trial],
    constraints: &[String],
    baseline: Option<&Trial>,
) -> Vec<Limit> {
    constraints
        .iter()
        .map(|text| {
            let Some(c) = resolved(text, baseline) else {
                return Limit {
                    constraint: text.clone(),
                    limit: None,
                    unit: String::new(),
                    baseline: None,
                    describe: text.clone(),
                };
            };
            let unit = match &c.left {
                Expr::Var(name) => trials.iter().find_map(|t| t.readings.get(name)),
                _ => None,
            }
            .map(|r| r.unit.clone());
            let limit = match (&c.left, &unit) {
                (Expr::Var(_), Some(unit)) => c.limit(unit),
                _ => None,
            };
            let unit = unit.unwrap_or_default();
            Limit {
                constraint: text.clone(),
                limit,
                baseline: c
                    .baseline
                    .as_ref()
                    .and_then(|r| r.reading.as_ref())
                    .and_then(|r| super::objective::convert(r.value, &r.unit, &unit)),
                describe: c.describe(&unit),
                unit,
            }
        })
        .collect()
}

/// How sure a study is of the configuration it reports as best.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Confidence {
    /// The trial reported as best.
    pub trial: i64,
    /// The models' probability that its configuration meets every SLO; `None` when too few trials
    /// ran to fit them, and the best reading was taken.
    pub feasibility: Option<f64>,
    /// The objective each time its configuration was measured (more than one after `confirm`).
    pub objectives: Vec<f64>,
}

impl Confidence {
    /// `best: trial 7, measured 2 times (objective 3.1 to 3.3), 97 % likely to meet every SLO by
    /// the models`.
    pub fn describe(&self) -> String {
        let mut text = format!("best: trial {}", self.trial);
        let low = self
            .objectives
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let high = self
            .objectives
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        match self.objectives.len() {
            0 | 1 => text.push_str(", measured once"),
            n => text.push_str(&format!(
                ", measured {n} times (objective {low:.4} to {high:.4})"
            )),
        }
        match self.feasibility {
            // A model is never sure: 99.97 % must not read as 100.
            Some(p) if p >= 0.99 => {
                text.push_str(", over 99 % likely to meet every SLO by the models");
            }
            Some(p) => text.push_str(&format!(
                ", {:.0} % likely to meet every SLO by the models",
                (p * 100.0).floor()
            )),
            None => text.push_str(", the best reading (too few trials for the models)"),
        }
        text
    }
}

/// The models' choice of best among `trials` (journaled in `space`'s study), with the trials the
/// recommendation's indices refer to: the complete and failed ones whose configuration fits.
pub fn recommendation<'t>(
    space: &servo_optimizer::Space,
    trials: &'t [Trial],
    constraints: &[String],
    maximize: bool,
    risk: servo_optimizer::Risk,
    seed: u64,
) -> Option<(servo_optimizer::Recommendation, Vec<&'t Trial>)> {
    let violations = Violations::new(trials, constraints);
    let mut used = Vec::new();
    let mut history = Vec::new();
    for t in trials.iter().filter(|t| t.reused.is_none()) {
        let Some(config) = space
            .params
            .iter()
            .map(|p| t.config.get(&p.name).cloned())
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let Some(outcome) = violations.outcome(t, maximize) else {
            continue;
        };
        used.push(t);
        history.push(servo_optimizer::Observation { config, outcome });
    }
    let recommendation =
        servo_optimizer::Bayesian::with_risk(risk).recommendation(space, &history, seed)?;
    Some((recommendation, used))
}

/// The best complete trial meeting every constraint.
///
/// Trials reused from an earlier study seed the optimizer but are never reported as best: the
/// best is a configuration this study measured.
pub fn best_trial(trials: &[Trial], maximize: bool) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.feasible == Some(true))
        .filter(|t| t.reused.is_none())
        .filter_map(|t| t.objective.map(|o| (t, o)))
        .min_by(|(_, a), (_, b)| {
            if maximize {
                b.total_cmp(a)
            } else {
                a.total_cmp(b)
            }
        })
        .map(|(t, _)| t)
}

/// The SLO breaches a study caused while searching: every complete trial that missed a constraint
/// (each one was a configuration that ran against users while it was measured).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Breaches {
    /// Complete trials that missed at least one constraint.
    pub count: usize,
    /// Complete trials judged against the constraints.
    pub judged: usize,
    /// Of the breaches, the trials stopped early for it (`optimizer.cut_short`).
    pub cut_short: usize,
    /// The breach furthest past its limit.
    pub worst: Option<Breach>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Breach {
    pub trial: i64,
    /// The constraint as written.
    pub constraint: String,
    /// How far past the limit, as a fraction of the limit (1 = twice the limit); `None` when the
    /// limit is 0 or the constraint's left side is an expression without a unit of its own, and
    /// then `violation` alone says how far.
    pub relative: Option<f64>,
    /// How far past the limit, in the metric's unit.
    pub violation: f64,
}

impl Breaches {
    /// One line for people: `3 of 20 trials missed an SLO; worst: trial 7, `p99 < 120ms` at 2.5×
    /// its limit`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} of {} trials missed an SLO", self.count, self.judged);
        if self.cut_short > 0 {
            text.push_str(&format!(" ({} cut short)", self.cut_short));
        }
        if let Some(worst) = &self.worst {
            let how_far = match worst.relative {
                Some(r) => format!("{:.2}× its limit", 1.0 + r),
                None => format!("{} past its limit", worst.violation),
            };
            text.push_str(&format!(
                "; worst: trial {}, `{}` at {how_far}",
                worst.trial, worst.constraint
            ));
        }
        text
    }
}

/// Counts the breaches of `constraints` (as written) among `trials`, and finds the worst one
/// relative to its limit (by absolute violation where no relative figure exists).
pub fn breaches(trials: &[Trial], constraints: &[String]) -> Breaches {
    let violations = Violations::new(trials, constraints);
    let mut result = Breaches::default();
    for t in trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.feasible.is_some())
        .filter(|t| t.reused.is_none())
    {
        result.judged += 1;
        if t.feasible == Some(true) {
            continue;
        }
        result.count += 1;
        result.cut_short += usize::from(t.cut_short.is_some());
        for (i, violation) in t.constraints.iter().enumerate() {
            if servo_optimizer::satisfied(*violation) {
                continue;
            }
            let breach = Breach {
                trial: t.number,
                constraint: constraints.get(i).cloned().unwrap_or_default(),
                // Judged against the baseline of its time.
                relative: violations.relative(t, i),
                violation: *violation,
            };
            // Relative figures rank above absolute ones: only they compare across constraints.
            let key = |b: &Breach| {
                (
                    u8::from(b.relative.is_some()),
                    b.relative.unwrap_or(b.violation),
                )
            };
            if result.worst.as_ref().is_none_or(|w| {
                key(&breach).partial_cmp(&key(w)) == Some(std::cmp::Ordering::Greater)
            }) {
                result.worst = Some(breach);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::judged::tests::trial;

    #[test]
    fn breaches_are_counted_and_the_worst_is_relative_to_its_limit() {
        use super::super::journal::RecordedReading;
        let measured = |number: i64, p99_ms: f64, errors: f64| {
            let mut t = trial(number, TrialState::Complete);
            t.readings.insert(
                "p99".into(),
                RecordedReading {
                    value: p99_ms,
                    unit: "ms".into(),
                },
            );
            t.constraints = vec![p99_ms - 120.0, errors - 0.01];
            t.feasible = Some(t.constraints.iter().all(|v| servo_optimizer::satisfied(*v)));
            t
        };
        let constraints = vec!["p99 <= 120ms".to_string(), "errors <= 0.01".to_string()];
        let trials = vec![
            measured(0, 80.0, 0.0),
            measured(1, 300.0, 0.0),
            measured(2, 15_000.0, 0.2),
            trial(3, TrialState::Failed),
            measured(4, 100.0, 0.011),
        ];
        let found = breaches(&trials, &constraints);
        assert_eq!((found.count, found.judged), (3, 4));
        let worst = found.worst.clone().expect("trial 2 breached");
        assert_eq!(
            (worst.trial, worst.constraint.as_str()),
            (2, "p99 <= 120ms")
        );
        let relative = worst.relative.expect("the limit is 120 ms");
        assert!((relative - 14_880.0 / 120.0).abs() < 1e-9, "{relative}");
        assert!(
            found
                .describe()
                .starts_with("3 of 4 trials missed an SLO; worst: trial 2")
        );
        assert_eq!(
            breaches(&trials[..1], &constraints).describe(),
            "0 of 1 trials missed an SLO"
        );
    }
}
