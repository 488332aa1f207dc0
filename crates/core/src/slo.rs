//! Fast fail: the SLO conditions an optimizer sends with a measurement, evaluated while it runs, so
//! a configuration that visibly breaks an SLO is abandoned early instead of measured to the end.
//!
//! This is ServoX's `servo/fast_fail.py`: the optimizer puts `{"slo": {"conditions": [...]}}` in
//! `control.userdata`; each observation gives every condition's metric its current value, and a
//! condition that failed `trigger_count` times among its last `trigger_window` observations stops
//! the measurement. The field names, defaults and rules below are ServoX's `SloCondition`, so an
//! optimizer written for ServoX drives this unchanged.
//!
//! Only the judging lives here; who observes is the caller's business: the Prometheus connector
//! queries the conditions' metrics every `fast_fail.period`, and `servo run` under a remote
//! optimizer judges the readings so far that measure connectors report
//! ([`crate::PartialReadings`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

/// The `reason` of the status that reports a measurement stopped by a violated condition
/// (ServoX's `SLO_FAILED_REASON`, with the status `aborted`).
pub const SLO_FAILED_REASON: &str = "slo-violation";

/// `control.userdata.slo`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SloInput {
    conditions: Vec<SloCondition>,
}

/// Which side of the threshold a metric must stay on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    Above,
    #[default]
    Below,
}

/// One SLO: `metric` must stay below (or above) a fixed `threshold` or another metric's value.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloCondition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub metric: String,
    /// With `threshold_metric`: metric values from 0 to this are too small to judge.
    #[serde(default = "default_minimum")]
    pub slo_metric_minimum: f64,
    #[serde(default = "default_multiplier")]
    pub threshold_multiplier: f64,
    #[serde(default)]
    pub keep: Keep,
    #[serde(default = "default_trigger_count")]
    pub trigger_count: u32,
    /// Defaults to `trigger_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_window: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_metric: Option<String>,
    /// With `threshold_metric`: threshold values from 0 to this are too small to judge.
    #[serde(default = "default_minimum")]
    pub slo_threshold_minimum: f64,
}

fn default_minimum() -> f64 {
    0.25
}

fn default_multiplier() -> f64 {
    1.0
}

fn default_trigger_count() -> u32 {
    1
}

impl SloCondition {
    /// A condition on `metric` against a fixed `threshold`, with ServoX's defaults otherwise.
    pub fn fixed(metric: impl Into<String>, keep: Keep, threshold: f64) -> Self {
        Self {
            description: None,
            metric: metric.into(),
            slo_metric_minimum: default_minimum(),
            threshold_multiplier: default_multiplier(),
            keep,
            trigger_count: default_trigger_count(),
            trigger_window: None,
            threshold: Some(threshold),
            threshold_metric: None,
            slo_threshold_minimum: default_minimum(),
        }
    }

    fn window(&self) -> usize {
        self.trigger_window.unwrap_or(self.trigger_count) as usize
    }

    fn problems(&self) -> Option<String> {
        match (self.threshold, &self.threshold_metric) {
            (Some(_), Some(_)) => {
                return Some(format!(
                    "{self}: give `threshold` or `threshold_metric`, not both"
                ));
            }
            (None, None) => {
                return Some(format!("{self}: needs `threshold` or `threshold_metric`"));
            }
            _ => {}
        }
        if self.trigger_count == 0 || self.trigger_window == Some(0) {
            return Some(format!(
                "{self}: `trigger_count` and `trigger_window` must be at least 1"
            ));
        }
        if self.trigger_count as usize > self.window() {
            return Some(format!(
                "{self}: `trigger_count` ({}) cannot be greater than `trigger_window` ({})",
                self.trigger_count,
                self.window()
            ));
        }
        None
    }
}

impl fmt::Display for SloCondition {
    /// ServoX's spelling: `(latency_p99 below 200)`, `(error_rate below baseline -> errors)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keep = match self.keep {
            Keep::Above => "above",
            Keep::Below => "below",
        };
        write!(f, "({} {keep}", self.metric)?;
        match (self.threshold, &self.threshold_metric) {
            (Some(t), _) => write!(f, " {t}")?,
            (None, Some(m)) => write!(f, " {m}")?,
            (None, None) => {}
        }
        match &self.description {
            Some(d) => write!(f, " -> {d})"),
            None => f.write_str(")"),
        }
    }
}

/// Reads the SLO conditions from a measurement's `control.userdata`, if it carries any.
pub fn conditions(
    userdata: Option<&serde_json::Value>,
) -> Result<Option<Vec<SloCondition>>, String> {
    let Some(slo) = userdata.and_then(|u| u.get("slo")).filter(|s| !s.is_null()) else {
        return Ok(None);
    };
    let input: SloInput = serde_json::from_value(slo.clone()).map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    for c in &input.conditions {
        if let Some(problem) = c.problems() {
            return Err(problem);
        }
        if !seen.insert(c.to_string()) {
            return Err(format!("{c} is given twice; SLO conditions must be unique"));
        }
    }
    Ok((!input.conditions.is_empty()).then_some(input.conditions))
}

/// What one observation of one condition found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    /// The metric had no value (or zero, with `treat_zero_as_missing`).
    MissingMetric,
    MissingThreshold,
    /// Too small to judge (`slo_metric_minimum`).
    ZeroMetric,
    ZeroThreshold,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub metric: Option<f64>,
    pub threshold: Option<f64>,
}

impl Outcome {
    fn new(status: Status, metric: Option<f64>, threshold: Option<f64>) -> Self {
        Self {
            status,
            metric,
            threshold,
        }
    }
}

/// Keeps each condition's recent outcomes and decides when they add up to a violation.
#[derive(Debug)]
pub struct Observer {
    conditions: Vec<SloCondition>,
    treat_zero_as_missing: bool,
    history: Vec<VecDeque<Outcome>>,
}

impl Observer {
    pub fn new(conditions: Vec<SloCondition>, treat_zero_as_missing: bool) -> Self {
        let history = conditions.iter().map(|_| VecDeque::new()).collect();
        Self {
            conditions,
            treat_zero_as_missing,
            history,
        }
    }

    pub fn conditions(&self) -> &[SloCondition] {
        &self.conditions
    }

    /// Every metric the conditions read (their metrics and threshold metrics).
    pub fn metrics(&self) -> BTreeSet<&str> {
        self.conditions
            .iter()
            .flat_map(|c| std::iter::once(c.metric.as_str()).chain(c.threshold_metric.as_deref()))
            .collect()
    }

    /// Records one observation of every condition, given the current value of each metric that has
    /// one. Returns the violation when some condition failed `trigger_count` times within its last
    /// `trigger_window` observations.
    pub fn observe(&mut self, values: &BTreeMap<String, f64>) -> Result<(), String> {
        let mut violations = Vec::new();
        for (condition, history) in self.conditions.iter().zip(self.history.iter_mut()) {
            let outcome = evaluate(condition, values, self.treat_zero_as_missing);
            history.push_back(outcome);
            while history.len() > condition.window() {
                history.pop_front();
            }
            let failed: Vec<&Outcome> = history
                .iter()
                .filter(|o| o.status == Status::Failed)
                .collect();
            if failed.len() >= condition.trigger_count as usize {
                let keep = if condition.keep == Keep::Below {
                    ">"
                } else {
                    "<"
                };
                let observed: Vec<String> = failed
                    .iter()
                    .map(|o| format!("{} {keep} {}", number(o.metric), number(o.threshold)))
                    .collect();
                violations.push(format!(
                    "{condition} failed {} of the last {} checks ({})",
                    failed.len(),
                    history.len(),
                    observed.join(", ")
                ));
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations.join("; "))
        }
    }

    /// The latest outcome of each condition, for logging.
    pub fn latest(&self) -> impl Iterator<Item = (&SloCondition, Option<&Outcome>)> {
        self.conditions
            .iter()
            .zip(self.history.iter().map(|h| h.back()))
    }
}

fn number(v: Option<f64>) -> String {
    v.map_or_else(|| "?".into(), |v| format!("{v}"))
}

/// One observation of one condition, with ServoX's rules and in its order.
pub fn evaluate(
    condition: &SloCondition,
    values: &BTreeMap<String, f64>,
    zero_is_missing: bool,
) -> Outcome {
    let missing = |v: f64| v.is_nan() || (zero_is_missing && v == 0.0);
    let Some(metric) = values.get(&condition.metric).copied() else {
        return Outcome::new(Status::MissingMetric, None, None);
    };
    if missing(metric) {
        return Outcome::new(Status::MissingMetric, Some(metric), None);
    }
    let threshold = match (&condition.threshold, &condition.threshold_metric) {
        (Some(fixed), _) => fixed * condition.threshold_multiplier,
        (None, Some(name)) => {
            let Some(base) = values.get(name).copied() else {
                return Outcome::new(Status::MissingThreshold, Some(metric), None);
            };
            let threshold = base * condition.threshold_multiplier;
            if missing(threshold) {
                return Outcome::new(Status::MissingThreshold, Some(metric), Some(threshold));
            }
            // Near-zero values say more about an idle application than about the SLO; like ServoX,
            // this applies to metric-relative thresholds only.
            if (0.0..=condition.slo_metric_minimum).contains(&metric) {
                return Outcome::new(Status::ZeroMetric, Some(metric), Some(threshold));
            }
            if (0.0..=condition.slo_threshold_minimum).contains(&threshold) {
                return Outcome::new(Status::ZeroThreshold, Some(metric), Some(threshold));
            }
            threshold
        }
        // Rejected when the conditions were read.
        (None, None) => return Outcome::new(Status::MissingThreshold, Some(metric), None),
    };
    let passed = match condition.keep {
        Keep::Below => metric <= threshold,
        Keep::Above => metric >= threshold,
    };
    let status = if passed {
        Status::Passed
    } else {
        Status::Failed
    };
    Outcome::new(status, Some(metric), Some(threshold))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(value: serde_json::Value) -> SloCondition {
        let list = conditions(Some(&json!({ "slo": { "conditions": [value] } })))
            .expect("a valid condition")
            .expect("one condition");
        list.into_iter().next().expect("one condition")
    }

    fn values(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn userdata_without_slo_means_no_fast_fail() {
        assert_eq!(conditions(None), Ok(None));
        assert_eq!(conditions(Some(&json!({"other": 1}))), Ok(None));
        assert_eq!(conditions(Some(&json!({"slo": null}))), Ok(None));
        assert_eq!(
            conditions(Some(&json!({"slo": {"conditions": []}}))),
            Ok(None)
        );
    }

    #[test]
    fn conditions_follow_servox_rules() {
        let c = condition(json!({"metric": "p99", "threshold": 200}));
        assert_eq!((c.keep, c.trigger_count, c.window()), (Keep::Below, 1, 1));
        assert_eq!(c.to_string(), "(p99 below 200)");

        let both = json!({"slo": {"conditions": [{"metric": "a", "threshold": 1, "threshold_metric": "b"}]}});
        assert!(conditions(Some(&both)).unwrap_err().contains("not both"));
        let neither = json!({"slo": {"conditions": [{"metric": "a"}]}});
        assert!(
            conditions(Some(&neither))
                .unwrap_err()
                .contains("needs `threshold`")
        );
        let window = json!({"slo": {"conditions": [{"metric": "a", "threshold": 1, "trigger_count": 3, "trigger_window": 2}]}});
        assert!(
            conditions(Some(&window))
                .unwrap_err()
                .contains("cannot be greater")
        );
        let twice = json!({"slo": {"conditions": [{"metric": "a", "threshold": 1}, {"metric": "a", "threshold": 1}]}});
        assert!(conditions(Some(&twice)).unwrap_err().contains("unique"));
        let unknown =
            json!({"slo": {"conditions": [{"metric": "a", "threshold": 1, "treshold": 2}]}});
        assert!(conditions(Some(&unknown)).unwrap_err().contains("treshold"));
    }

    #[test]
    fn fixed_thresholds_compare_with_the_multiplier_and_keep_side() {
        let below =
            condition(json!({"metric": "p99", "threshold": 100, "threshold_multiplier": 2}));
        assert_eq!(
            evaluate(&below, &values(&[("p99", 200.0)]), false).status,
            Status::Passed
        );
        assert_eq!(
            evaluate(&below, &values(&[("p99", 201.0)]), false).status,
            Status::Failed
        );
        let above = condition(json!({"metric": "rps", "threshold": 50, "keep": "above"}));
        assert_eq!(
            evaluate(&above, &values(&[("rps", 49.0)]), false).status,
            Status::Failed
        );
        assert_eq!(
            evaluate(&above, &values(&[("rps", 0.1)]), false).status,
            Status::Failed,
            "no minimum with fixed thresholds"
        );
        assert_eq!(
            evaluate(&above, &values(&[]), false).status,
            Status::MissingMetric
        );
        assert_eq!(
            evaluate(&above, &values(&[("rps", 0.0)]), true).status,
            Status::MissingMetric
        );
    }

    #[test]
    fn metric_thresholds_skip_near_zero_values() {
        let c = condition(
            json!({"metric": "errors", "threshold_metric": "baseline", "threshold_multiplier": 1.5}),
        );
        assert_eq!(
            evaluate(&c, &values(&[("errors", 2.0)]), false).status,
            Status::MissingThreshold
        );
        assert_eq!(
            evaluate(&c, &values(&[("errors", 0.1), ("baseline", 4.0)]), false).status,
            Status::ZeroMetric
        );
        assert_eq!(
            evaluate(&c, &values(&[("errors", 2.0), ("baseline", 0.1)]), false).status,
            Status::ZeroThreshold
        );
        let failed = evaluate(&c, &values(&[("errors", 7.0), ("baseline", 4.0)]), false);
        assert_eq!(
            (failed.status, failed.threshold),
            (Status::Failed, Some(6.0))
        );
        assert_eq!(
            evaluate(&c, &values(&[("errors", 0.0), ("baseline", 4.0)]), true).status,
            Status::MissingMetric
        );
    }

    #[test]
    fn a_violation_needs_trigger_count_failures_within_the_window() {
        let c = condition(
            json!({"metric": "p99", "threshold": 100, "trigger_count": 2, "trigger_window": 3}),
        );
        let mut observer = Observer::new(vec![c], false);
        assert_eq!(observer.metrics().into_iter().collect::<Vec<_>>(), ["p99"]);
        let (bad, good) = (values(&[("p99", 150.0)]), values(&[("p99", 50.0)]));
        assert!(observer.observe(&bad).is_ok(), "one failure of two needed");
        assert!(observer.observe(&good).is_ok());
        assert!(observer.observe(&good).is_ok());
        assert!(
            observer.observe(&bad).is_ok(),
            "the first failure left the window"
        );
        let violation = observer
            .observe(&bad)
            .expect_err("two failures in the last three");
        assert!(
            violation
                .contains("(p99 below 100) failed 2 of the last 3 checks (150 > 100, 150 > 100)"),
            "{violation}"
        );
    }

    #[test]
    fn a_condition_built_here_reads_back_as_servox_sends_it() {
        let mut c = SloCondition::fixed("p99", Keep::Below, 30.0);
        c.threshold_multiplier = 2.0;
        c.trigger_count = 2;
        let sent = json!({ "slo": { "conditions": [c] } });
        assert_eq!(
            sent["slo"]["conditions"][0],
            json!({"metric": "p99", "keep": "below", "threshold": 30.0, "threshold_multiplier": 2.0,
                   "trigger_count": 2, "slo_metric_minimum": 0.25, "slo_threshold_minimum": 0.25})
        );
        assert_eq!(conditions(Some(&sent)), Ok(Some(vec![c])));
    }

    #[test]
    fn missing_metrics_never_count_as_failures() {
        let c = condition(json!({"metric": "p99", "threshold": 100}));
        let mut observer = Observer::new(vec![c], false);
        for _ in 0..5 {
            assert!(observer.observe(&values(&[])).is_ok());
        }
        let latest: Vec<Status> = observer
            .latest()
            .filter_map(|(_, o)| o.map(|o| o.status))
            .collect();
        assert_eq!(latest, [Status::MissingMetric]);
    }
}
