//! What each trial was judged against: the measurement of the baseline its bounds relative to
//! the baseline were made concrete by, and its constraint values relative to those limits. The
//! summary, the breach counts, the optimizer's history and warm starts all judge a trial the same
//! way, from here.

use std::collections::BTreeMap;

use servo_optimizer::Outcome;

use super::journal::{Trial, TrialState};
use super::objective::{Constraint, Expr};

/// A constraint as written, with a bound relative to the baseline made concrete by `baseline`'s
/// readings; `None` if it does not parse (journals hold only constraints that parsed).
pub fn resolved(text: &str, baseline: Option<&Trial>) -> Option<Constraint> {
    let mut c = Constraint::parse(text).ok()?;
    if let Some(b) = baseline {
        c.resolve(&b.readings);
    }
    Some(c)
}

/// The trial that measured the baseline: the first one that ran to its end (complete or failed).
///
/// Not simply trial 0: a signal or a crash can interrupt the baseline, and the resumed study then
/// measures it again under the next number. Until some trial has run to its end, every trial the
/// study starts is the baseline's (see [`super::next_config`]), so the first such trial is the
/// baseline.
/// Trials reused from an earlier study are not this study's: none of them is its baseline.
pub fn baseline_trial(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.state != TrialState::Interrupted && t.reused.is_none())
        .min_by_key(|t| t.number)
}

/// The baseline measurement trial `number` was judged against: the latest complete measurement
/// of the baseline (the first one, or a re-measurement of `optimizer.baseline_every`) begun
/// before it; a measurement of the baseline is judged against itself. Falls back on
/// [`baseline_trial`] (which may have failed) when none completed. Each trial keeps the limits
/// of its time: a later re-measurement never re-judges an earlier trial.
pub fn judging_baseline(trials: &[Trial], number: i64) -> Option<&Trial> {
    Baselines::new(trials).judging(number)
}

/// The measurements of the baseline among a study's trials, found once so that judging each of
/// many trials (see [`judging_baseline`]) does not scan them all again.
pub struct Baselines<'t> {
    first: Option<&'t Trial>,
    /// The complete measurements, by number.
    complete: Vec<&'t Trial>,
}

impl<'t> Baselines<'t> {
    pub fn new(trials: &'t [Trial]) -> Self {
        let first = baseline_trial(trials);
        let mut complete: Vec<&Trial> = trials
            .iter()
            .filter(|t| t.reused.is_none() && t.state == TrialState::Complete)
            .filter(|t| {
                t.role == Some(super::journal::TrialRole::Baseline)
                    || first.is_some_and(|f| f.number == t.number)
            })
            .collect();
        complete.sort_by_key(|t| t.number);
        Self { first, complete }
    }

    /// The measurement trial `number` was judged against.
    pub fn judging(&self, number: i64) -> Option<&'t Trial> {
        let after = self.complete.partition_point(|t| t.number <= number);
        after
            .checked_sub(1)
            .map(|i| self.complete[i])
            .or(self.first)
    }
}

/// Each trial's constraint values relative to the limit the trial was judged against
/// (`violation / |limit|`, so 1 is twice the limit), as the optimizer takes them and the breach
/// counts rank them: only relative values compare across constraints in different units. A
/// constraint whose limit is 0, or that cannot be parsed or resolved, has no relative value.
pub struct Violations<'t> {
    baselines: Baselines<'t>,
    /// The constraints made concrete by each baseline measurement (by its number), parsed once.
    resolved: BTreeMap<Option<i64>, Vec<Option<Constraint>>>,
}

impl<'t> Violations<'t> {
    /// For `trials` of a study with `constraints` (as written).
    pub fn new(trials: &'t [Trial], constraints: &[String]) -> Self {
        let baselines = Baselines::new(trials);
        let resolved = std::iter::once(None)
            .chain(baselines.first.map(Some))
            .chain(baselines.complete.iter().copied().map(Some))
            .map(|baseline| {
                let parsed = constraints
                    .iter()
                    .map(|text| resolved(text, baseline))
                    .collect();
                (baseline.map(|b| b.number), parsed)
            })
            .collect();
        Self {
            baselines,
            resolved,
        }
    }

    /// Constraint `i`'s value in `trial`, relative to its limit; `None` without one.
    pub fn relative(&self, trial: &Trial, i: usize) -> Option<f64> {
        let violation = *trial.constraints.get(i)?;
        let baseline = self.baselines.judging(trial.number).map(|b| b.number);
        let constraint = self.resolved.get(&baseline)?.get(i)?.as_ref()?;
        let unit = match &constraint.left {
            Expr::Var(name) => trial.readings.get(name).map_or("", |r| r.unit.as_str()),
            _ => "",
        };
        let limit = constraint.limit(unit)?.abs();
        (limit > 0.0).then(|| violation / limit)
    }

    /// Every constraint value of `trial` for the optimizer: relative where there is a limit, in
    /// the metric's unit where there is none (see `servo_optimizer::Outcome`).
    pub fn for_optimizer(&self, trial: &Trial) -> Vec<f64> {
        (0..trial.constraints.len())
            .map(|i| self.relative(trial, i).unwrap_or(trial.constraints[i]))
            .collect()
    }

    /// `trial` as the optimizer takes it: its objective (negated when it is maximized) and
    /// [`Violations::for_optimizer`], or a failure; `None` for a trial that did not run to its
    /// end or has no objective.
    pub fn outcome(&self, trial: &Trial, maximize: bool) -> Option<Outcome> {
        match (trial.state, trial.objective) {
            (TrialState::Complete, Some(objective)) => Some(Outcome::Complete {
                objective: if maximize { -objective } else { objective },
                constraints: self.for_optimizer(trial),
            }),
            (TrialState::Failed, _) => Some(Outcome::Failed),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    pub(in crate::study) fn trial(number: i64, state: TrialState) -> Trial {
        Trial {
            state,
            ..Trial::running(number, BTreeMap::new(), 0.0)
        }
    }

    #[test]
    fn each_trial_is_judged_against_the_latest_complete_measurement_of_the_baseline_before_it() {
        use super::super::journal::{Reused, TrialRole};
        use TrialState::{Complete, Failed};
        let remeasured = |number: i64, state: TrialState| Trial {
            role: Some(TrialRole::Baseline),
            ..trial(number, state)
        };
        let mut reused = trial(-1, Complete);
        reused.reused = Some(Reused { study: 1, trial: 0 });
        let trials = vec![
            reused,
            trial(0, Complete),
            trial(1, Complete),
            remeasured(2, Complete),
            trial(3, Complete),
            remeasured(4, Failed),
            trial(5, Complete),
        ];
        let against = |n: i64| judging_baseline(&trials, n).map(|t| t.number);
        // The reused trial is never the baseline; a failed re-measurement gives no limit.
        assert_eq!(
            [-1, 0, 1, 2, 3, 4, 5, i64::MAX].map(against),
            [
                Some(0),
                Some(0),
                Some(0),
                Some(2),
                Some(2),
                Some(2),
                Some(2),
                Some(2)
            ]
        );
        // A failed first baseline is still the one trials are judged against.
        let failed = [trial(0, Failed), trial(1, Complete)];
        assert_eq!(judging_baseline(&failed, 1).map(|t| t.number), Some(0));
    }

    #[test]
    fn the_baseline_is_the_first_trial_that_ran_to_its_end() {
        use TrialState::{Complete, Failed, Interrupted};
        let number = |trials: &[Trial]| baseline_trial(trials).map(|t| t.number);
        assert_eq!(number(&[]), None);
        assert_eq!(number(&[trial(0, Interrupted)]), None);
        assert_eq!(
            number(&[trial(0, Complete), trial(1, Interrupted)]),
            Some(0)
        );
        // Interrupted, then measured again under the next number when the study resumed.
        assert_eq!(
            number(&[
                trial(0, Interrupted),
                trial(1, Interrupted),
                trial(2, Complete),
                trial(3, Complete)
            ]),
            Some(2)
        );
        // A failed baseline is still the baseline: the study moves on from it.
        assert_eq!(number(&[trial(0, Failed), trial(1, Complete)]), Some(0));
    }

    #[test]
    fn the_optimizer_sees_each_constraint_relative_to_the_limit_it_was_judged_against() {
        use super::super::journal::{RecordedReading, TrialRole};
        let measured = |number: i64, p99: f64, unit: &str, constraints: Vec<f64>| {
            let mut t = trial(number, TrialState::Complete);
            t.readings.insert(
                "p99".into(),
                RecordedReading {
                    value: p99,
                    unit: unit.into(),
                },
            );
            t.constraints = constraints;
            t
        };
        let constraints = [
            "p99 <= 120ms".to_string(),
            "errors <= 0".to_string(),
            "p99 <= 1.1 * baseline.p99".to_string(),
        ];
        // Violations as journaled: in the metric's unit, against the limits of their time.
        let mut remeasured = measured(2, 200.0, "ms", vec![80.0, 0.0, 200.0 - 110.0]);
        remeasured.role = Some(TrialRole::Baseline);
        let trials = vec![
            measured(0, 100.0, "ms", vec![-20.0, 0.0, 100.0 - 110.0]),
            measured(1, 150.0, "ms", vec![30.0, 0.02, 150.0 - 110.0]),
            remeasured,
            measured(3, 150.0, "ms", vec![30.0, 0.02, 150.0 - 220.0]),
            // The same p99 read in seconds: its violation is in seconds, its relative value not.
            measured(4, 0.15, "s", vec![0.03, 0.02, 0.15 - 0.22]),
        ];
        let violations = Violations::new(&trials, &constraints);
        let seen = |n: usize| violations.for_optimizer(&trials[n]);
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
        // A limit of 0 has nothing to be relative to: the error rate stays in its own unit.
        assert!(
            close(&seen(1), &[0.25, 0.02, 40.0 / 110.0]),
            "{:?}",
            seen(1)
        );
        assert!(
            close(&seen(3), &[0.25, 0.02, -70.0 / 220.0]),
            "{:?}",
            seen(3)
        );
        assert!(close(&seen(4), &seen(3)), "{:?}", seen(4));
        assert_eq!(violations.relative(&trials[1], 1), None);
    }
}
