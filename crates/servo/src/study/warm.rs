//! Warm starts: a new study of a servo (`servo run --new-study`) seeded with the trials of the
//! latest earlier study that still fit its space, judged anew by its own objective and SLOs.
//!
//! The rules, in the order a trial is checked:
//! - Only trials the earlier study measured itself and that completed: a failed trial says
//!   nothing about a space it was not in, a trial cut short holds a partial window, and a trial
//!   the earlier study had itself reused is left with it.
//! - Every setting of the new space has a value inside its new range, on its step, or among its
//!   choices. A setting new to the space takes the value the application has now (its
//!   baseline): it was not being changed while the earlier study ran.
//! - A setting the space no longer has (pinned or gone) must have had, in the trial, the value
//!   the application runs now; one no longer described at all cannot be compared, so the trial
//!   does not fit.
//! - Every metric the goal reads was measured, in the unit described now or one that converts
//!   to it (the reading is converted, never compared across units).
//! - Its objective and SLOs are scored again from its readings by the new goal, never copied. A
//!   bound relative to the baseline takes the baseline of the trial's own time: the earlier
//!   study's baseline measurement it was judged against, measured under the same load.

use std::collections::BTreeMap;

use servo_core::types::Description;
use servo_optimizer::{Domain, ParamValue};

use super::goal::{Goal, score_readings};
use super::journal::{RecordedReading, Reused, Study, Trial, TrialState};
use super::judged::Baselines;
use super::objective::convert;
use super::plan::{Plan, param_number, to_param};

/// The trials a new study takes over, and why the others did not fit.
#[derive(Clone, Debug)]
pub struct WarmStart {
    /// The earlier study's id.
    pub from: i64,
    /// The fitting trials, rescored and numbered before 0 in the order they were measured.
    pub reused: Vec<Trial>,
    /// The earlier study's finished trials (complete or failed) of its own.
    pub considered: usize,
    /// Each reason a trial did not fit, with how many it kept out.
    pub misfits: BTreeMap<String, usize>,
}

impl WarmStart {
    /// `reused 4 of 6 earlier trials (study 1) (2 did not fit the new space: 2 `main.memory`
    /// outside its new range)`.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "reused {} of {} earlier trials (study {})",
            self.reused.len(),
            self.considered,
            self.from
        );
        let left = self.considered - self.reused.len();
        if left > 0 {
            let mut reasons: Vec<(&String, &usize)> = self.misfits.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            text.push_str(&format!(
                " ({left} did not fit the new space: {})",
                reasons.join(", ")
            ));
        }
        text
    }
}

/// The trials of `earlier` (with `trials`, its trials) that fit the new study's plan and goal,
/// rescored by the goal (see the module's rules).
pub fn seed(
    plan: &Plan,
    goal: &Goal,
    description: &Description,
    earlier: &Study,
    trials: &[Trial],
) -> WarmStart {
    let mut reused = Vec::new();
    let mut misfits: BTreeMap<String, usize> = BTreeMap::new();
    let mut considered = 0;
    let baselines = Baselines::new(trials);
    for trial in trials.iter().filter(|t| t.reused.is_none()) {
        if !matches!(trial.state, TrialState::Complete | TrialState::Failed) {
            continue;
        }
        considered += 1;
        match fit(plan, goal, description, &baselines, trial) {
            Ok(mut t) => {
                t.reused = Some(Reused {
                    study: earlier.id,
                    trial: trial.number,
                });
                reused.push(t);
            }
            Err(reason) => *misfits.entry(reason).or_default() += 1,
        }
    }
    let count = reused.len() as i64;
    for (i, t) in reused.iter_mut().enumerate() {
        t.number = i as i64 - count;
    }
    WarmStart {
        from: earlier.id,
        reused,
        considered,
        misfits,
    }
}

/// The trial as the new study sees it, or why it does not fit.
fn fit(
    plan: &Plan,
    goal: &Goal,
    description: &Description,
    baselines: &Baselines,
    trial: &Trial,
) -> Result<Trial, String> {
    if trial.state != TrialState::Complete {
        return Err("failed".into());
    }
    if trial.cut_short.is_some() {
        return Err("cut short".into());
    }
    let mut config = BTreeMap::new();
    for (param, planned) in plan.space.params.iter().zip(&plan.params) {
        let value = match trial.config.get(&param.name) {
            Some(value) => {
                within(&param.domain, value).map_err(|why| format!("`{}` {why}", param.name))?
            }
            None => plan
                .baseline
                .get(&planned.name)
                .cloned()
                .ok_or_else(|| format!("`{}` new, with no current value", param.name))?,
        };
        config.insert(param.name.clone(), value);
    }
    for (name, value) in trial
        .config
        .iter()
        .filter(|(n, _)| !config.contains_key(*n))
    {
        let now =
            current(description, name).ok_or_else(|| format!("`{name}` no longer described"))?;
        let same = match (param_number(value), param_number(&now)) {
            (Some(a), Some(b)) => a == b,
            _ => *value == now,
        };
        if !same {
            return Err(format!("`{name}` not at its current value {now}"));
        }
    }
    let mut readings: BTreeMap<String, RecordedReading> = trial.readings.clone();
    for name in goal.names() {
        let Some(metric) = description.metrics.iter().find(|m| m.name == name) else {
            // A setting: its value is in the configuration.
            continue;
        };
        let reading = readings
            .get_mut(name)
            .ok_or_else(|| format!("`{name}` not measured"))?;
        if reading.unit != metric.unit {
            reading.value =
                convert(reading.value, &reading.unit, &metric.unit).ok_or_else(|| {
                    format!("`{name}` read in `{}`, now `{}`", reading.unit, metric.unit)
                })?;
            reading.unit = metric.unit.clone();
        }
    }
    let judged = match baselines.judging(trial.number) {
        // The earlier baseline's readings, in this study's units as well.
        Some(b) => goal.with_baseline(&b.readings),
        None => goal.clone(),
    };
    let score = score_readings(&judged, &config, readings)
        .map_err(|e| format!("not scored by the new goal ({e})"))?;
    Ok(Trial {
        number: trial.number,
        state: TrialState::Complete,
        config,
        readings: score.readings,
        objective: Some(score.objective),
        objectives: score.objectives,
        constraints: score.constraints,
        feasible: Some(score.feasible),
        error: None,
        cut_short: None,
        started_at: trial.started_at,
        finished_at: trial.finished_at,
        reused: None,
        role: None,
    })
}

/// `value` as a value of `domain`, or why it is not one.
fn within(domain: &Domain, value: &ParamValue) -> Result<ParamValue, &'static str> {
    // A step's multiples computed in floating point land near, not on, the grid.
    const EPS: f64 = 1e-9;
    match (domain, value) {
        (Domain::Categorical { choices }, ParamValue::Categorical(c)) => {
            if choices.contains(c) {
                Ok(value.clone())
            } else {
                Err("no longer offers that choice")
            }
        }
        (Domain::Categorical { .. }, _) | (_, ParamValue::Categorical(_)) => {
            Err("changed between a choice and a number")
        }
        (
            Domain::Int {
                low, high, step, ..
            },
            v,
        ) => {
            let x = param_number(v).unwrap_or(f64::NAN);
            if x.fract() != 0.0 {
                return Err("is an integer now");
            }
            let i = x as i64;
            if i < *low || i > *high {
                return Err("outside its new range");
            }
            if (i - low) % (*step).max(1) != 0 {
                return Err("off its new step");
            }
            Ok(ParamValue::Int(i))
        }
        (
            Domain::Float {
                low, high, step, ..
            },
            v,
        ) => {
            let x = param_number(v).unwrap_or(f64::NAN);
            let span = (high - low).abs().max(1.0);
            if !(x >= low - EPS * span && x <= high + EPS * span) {
                return Err("outside its new range");
            }
            if let Some(step) = step.filter(|s| *s > 0.0) {
                let k = (x - low) / step;
                if (k - k.round()).abs() > 1e-6 {
                    return Err("off its new step");
                }
            }
            Ok(ParamValue::Float(x))
        }
    }
}

/// The value the application describes now for `component.setting`, pinned or not.
fn current(description: &Description, name: &str) -> Option<ParamValue> {
    description.components.iter().find_map(|c| {
        let setting = name.strip_prefix(c.name.as_str())?.strip_prefix('.')?;
        let s = c.settings.iter().find(|s| s.name == setting)?;
        let integer = matches!(
            s.kind,
            servo_core::types::SettingKind::Int | servo_core::types::SettingKind::Replicas
        );
        s.value.as_ref().map(|v| to_param(v, integer))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_fits_a_domain_inside_its_range_on_its_step_or_among_its_choices() {
        let int = Domain::Int {
            low: 2,
            high: 10,
            step: 2,
            log: false,
        };
        assert_eq!(within(&int, &ParamValue::Int(4)), Ok(ParamValue::Int(4)));
        assert_eq!(
            within(&int, &ParamValue::Float(6.0)),
            Ok(ParamValue::Int(6))
        );
        assert_eq!(
            within(&int, &ParamValue::Int(12)),
            Err("outside its new range")
        );
        assert_eq!(within(&int, &ParamValue::Int(5)), Err("off its new step"));
        assert_eq!(
            within(&int, &ParamValue::Float(4.5)),
            Err("is an integer now")
        );
        let float = Domain::Float {
            low: 0.25,
            high: 4.0,
            step: Some(0.25),
            log: false,
        };
        assert_eq!(
            within(&float, &ParamValue::Float(0.75)),
            Ok(ParamValue::Float(0.75))
        );
        assert_eq!(
            within(&float, &ParamValue::Int(3)),
            Ok(ParamValue::Float(3.0))
        );
        assert_eq!(
            within(&float, &ParamValue::Float(0.8)),
            Err("off its new step")
        );
        assert_eq!(
            within(&float, &ParamValue::Float(4.25)),
            Err("outside its new range")
        );
        let choice = Domain::Categorical {
            choices: vec!["a".into(), "b".into()],
        };
        assert!(within(&choice, &ParamValue::Categorical("b".into())).is_ok());
        assert_eq!(
            within(&choice, &ParamValue::Categorical("c".into())),
            Err("no longer offers that choice")
        );
        assert_eq!(
            within(&choice, &ParamValue::Int(1)),
            Err("changed between a choice and a number")
        );
    }
}
