//! Cutting a trial short: the readings a measurement reports while it runs
//! ([`servo_core::PartialReadings`]) are checked against the SLOs, and a trial whose readings put
//! one far past its limit is stopped, so a configuration that melts the service costs seconds.
//!
//! This is the Prometheus connector's `fast_fail` for every measurement, judged by the study's own
//! constraints (their parser and unit conversion), so no connector needs to know the SLOs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use servo_core::slo::{Keep, SloCondition};
use servo_core::types::{Description, Measurement, Reading};
use servo_optimizer::ParamValue;

use super::goal::Goal;
use super::objective::{Comparison, Expr};
use super::param_number;

/// Consecutive reports that must show the breach: one report can be a fluke of the first
/// seconds (a single slow request is the whole p99 of a few dozen).
const STRIKES: usize = 2;

/// Why a trial was stopped: the SLO its readings so far put furthest past its limit.
#[derive(Clone, Debug, PartialEq)]
pub struct Cut {
    /// The constraint with its concrete limit (see [`super::objective::Constraint::describe`]).
    pub constraint: String,
    /// The reading of its left side, in the metric's unit.
    pub value: f64,
    pub unit: String,
    /// How many times its limit (`1 + violation / |limit|`, as the study's breach counts).
    pub times: f64,
    /// How long the measurement had run.
    pub after: Duration,
}

impl Cut {
    /// `latency_p99 < 30ms: 812.4 ms, 27.1× its limit, after 3 s`.
    pub fn describe(&self) -> String {
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.unit)
        };
        format!(
            "`{}` read {:.4}{unit}, {:.1}× its limit, after {:.0} s of measurement",
            self.constraint,
            self.value,
            self.times,
            self.after.as_secs_f64()
        )
    }
}

/// Watches one measurement's readings so far.
pub struct Watch<'a> {
    goal: &'a Goal,
    config: &'a BTreeMap<String, ParamValue>,
    /// Cut at this many times a limit; 0 never cuts.
    factor: f64,
    warmup: Duration,
    started: Instant,
    latest: BTreeMap<String, Reading>,
    strikes: usize,
}

impl<'a> Watch<'a> {
    pub fn new(
        goal: &'a Goal,
        config: &'a BTreeMap<String, ParamValue>,
        factor: f64,
        warmup: Duration,
    ) -> Self {
        Self {
            goal,
            config,
            factor,
            warmup,
            started: Instant::now(),
            latest: BTreeMap::new(),
            strikes: 0,
        }
    }

    /// Starts the clock: the measurement begins now (the adjustment before it is not measured).
    pub fn begin(&mut self) {
        self.started = Instant::now();
    }

    /// Whether cutting short is on and there is an SLO to judge by.
    pub fn is_active(&self) -> bool {
        self.factor > 0.0 && !self.goal.constraints.is_empty()
    }

    /// Takes a report; returns the breach once it has lasted [`STRIKES`] reports past the warmup.
    pub fn observe(&mut self, readings: Vec<Reading>) -> Option<Cut> {
        for r in readings {
            self.latest.insert(r.metric.name.clone(), r);
        }
        let after = self.started.elapsed();
        if !self.is_active() || after < self.warmup {
            return None;
        }
        match self.worst(after) {
            Some(cut) => {
                self.strikes += 1;
                (self.strikes >= STRIKES).then_some(cut)
            }
            None => {
                self.strikes = 0;
                None
            }
        }
    }

    /// The readings last reported, as the measurement to score the trial by.
    pub fn measurement(&self) -> Measurement {
        Measurement {
            readings: self.latest.values().cloned().collect(),
            ..Measurement::default()
        }
    }

    /// The constraint furthest past `factor` times its limit, among those whose metrics have been
    /// reported. A limit of 0 has no multiple: such a constraint never cuts.
    fn worst(&self, after: Duration) -> Option<Cut> {
        let mut vars: BTreeMap<String, f64> = self
            .latest
            .iter()
            .map(|(name, r)| (name.clone(), r.value))
            .collect();
        for (name, value) in self.config {
            if let Some(n) = param_number(value) {
                vars.insert(name.clone(), n);
            }
        }
        let mut worst: Option<Cut> = None;
        for c in &self.goal.constraints {
            let Ok(value) = c.left.eval(&vars) else {
                continue;
            };
            let unit = match &c.left {
                Expr::Var(name) => self.latest.get(name).map_or("", |r| r.metric.unit.as_str()),
                _ => "",
            };
            // A bound relative to a baseline not measured yet cannot be breached.
            let Some(limit) = c.limit(unit).map(f64::abs) else {
                continue;
            };
            if limit == 0.0 || !value.is_finite() {
                continue;
            }
            let times = 1.0 + c.violation(value, unit) / limit;
            if times >= self.factor && worst.as_ref().is_none_or(|w| times > w.times) {
                worst = Some(Cut {
                    constraint: c.describe(unit),
                    value,
                    unit: unit.to_string(),
                    times,
                    after,
                });
            }
        }
        worst
    }
}

/// The SLOs of `goal` as the fast-fail conditions of a remote optimizer's MEASURE
/// (`control.userdata.slo.conditions`), so the servo cuts a trial short as [`Watch`] would: at
/// `factor` times a limit, on the [`STRIKES`]th report in a row. `goal`'s bounds relative to the
/// baseline must be resolved ([`Goal::with_baseline`]): a condition compares with a fixed number,
/// in the unit `description` gives its metric. A constraint a condition cannot express (an
/// expression, a setting, a bound not measured yet or in a unit its metric's cannot be converted
/// to, a limit of 0) is left out, with the reason logged; none at all when `factor` is 0.
pub fn fast_fail_conditions(
    goal: &Goal,
    description: &Description,
    factor: f64,
) -> Vec<SloCondition> {
    if factor <= 0.0 || !factor.is_finite() {
        return Vec::new();
    }
    let mut conditions = Vec::new();
    for c in &goal.constraints {
        let skip =
            |why: &str| tracing::debug!(constraint = %c.text, "no fast-fail condition: {why}");
        let Expr::Var(name) = &c.left else {
            skip("its left side is an expression, not one metric");
            continue;
        };
        let Some(metric) = description.metrics.iter().find(|m| m.name == *name) else {
            skip("not a metric the servo describes");
            continue;
        };
        // In the metric's unit: the servo's readings are compared with it as they are.
        let Some(limit) = c.limit(&metric.unit) else {
            skip("its limit is relative to a baseline not measured yet, or in another unit");
            continue;
        };
        if limit == 0.0 || !limit.is_finite() {
            skip("a limit of 0 has no multiple");
            continue;
        }
        // Where `1 + violation / |limit|` reaches `factor`, as `Watch::worst` judges.
        let (keep, cut_at) = match c.comparison {
            Comparison::Less | Comparison::LessEqual => {
                (Keep::Below, limit + (factor - 1.0) * limit.abs())
            }
            Comparison::Greater | Comparison::GreaterEqual => {
                (Keep::Above, limit - (factor - 1.0) * limit.abs())
            }
        };
        let mut condition = SloCondition::fixed(name.clone(), keep, limit);
        condition.threshold_multiplier = cut_at / limit;
        condition.trigger_count = STRIKES as u32;
        condition.description = Some(c.describe(&metric.unit));
        conditions.push(condition);
    }
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::optimizer::{EmbeddedOptimizer, Objective};
    use servo_core::types::Metric;

    fn goal(constraints: &[&str]) -> Goal {
        Goal::from_settings(&EmbeddedOptimizer {
            objective: Some(Objective::Minimize("web.workers".into())),
            constraints: constraints.iter().map(|c| c.to_string()).collect(),
            ..EmbeddedOptimizer::default()
        })
        .expect("a goal")
    }

    fn p99(ms: f64) -> Vec<Reading> {
        vec![Reading::new(Metric::new("latency_p99", "ms"), ms)]
    }

    #[test]
    fn a_breach_past_the_factor_cuts_on_its_second_report_with_units_converted() {
        let goal = goal(&["latency_p99 < 0.03s"]);
        let config = BTreeMap::new();
        let mut watch = Watch::new(&goal, &config, 2.0, Duration::ZERO);
        // 59 ms is under twice 30 ms: a breach, but not one to cut for.
        assert_eq!(watch.observe(p99(59.0)), None);
        assert_eq!(watch.observe(p99(59.0)), None);
        assert_eq!(watch.observe(p99(90.0)), None, "one report is not enough");
        let cut = watch.observe(p99(600.0)).expect("cut on the second report");
        assert_eq!(cut.constraint, "latency_p99 < 0.03s");
        assert!((cut.times - 20.0).abs() < 1e-9, "{}", cut.times);
        assert!(
            cut.describe().contains("20.0× its limit"),
            "{}",
            cut.describe()
        );
        assert_eq!(watch.measurement().readings, p99(600.0));
    }

    #[test]
    fn a_report_back_under_the_factor_resets_the_count() {
        let goal = goal(&["latency_p99 < 30ms"]);
        let config = BTreeMap::new();
        let mut watch = Watch::new(&goal, &config, 2.0, Duration::ZERO);
        assert_eq!(watch.observe(p99(100.0)), None);
        assert_eq!(watch.observe(p99(20.0)), None);
        assert_eq!(watch.observe(p99(100.0)), None);
        assert!(watch.observe(p99(100.0)).is_some());
    }

    #[test]
    fn nothing_is_cut_during_the_warmup_when_off_or_against_a_zero_limit() {
        let config = BTreeMap::new();
        let slo = goal(&["latency_p99 < 30ms"]);
        let mut warming = Watch::new(&slo, &config, 2.0, Duration::from_secs(3600));
        let mut off = Watch::new(&slo, &config, 0.0, Duration::ZERO);
        let zero = goal(&["latency_p99 <= 0"]);
        let mut unmeasurable = Watch::new(&zero, &config, 2.0, Duration::ZERO);
        for _ in 0..5 {
            assert_eq!(warming.observe(p99(1e6)), None);
            assert_eq!(off.observe(p99(1e6)), None);
            assert_eq!(unmeasurable.observe(p99(1e6)), None);
        }
    }

    #[test]
    fn a_relative_slo_cuts_at_the_limit_the_baseline_made_of_it_and_never_before() {
        let config = BTreeMap::new();
        let slo = goal(&["latency_p99 <= 2 * baseline.latency_p99"]);
        // No baseline yet: nothing can breach it.
        let mut unmeasured = Watch::new(&slo, &config, 2.0, Duration::ZERO);
        for _ in 0..5 {
            assert_eq!(unmeasured.observe(p99(1e6)), None);
        }
        let baseline = crate::study::recorded(&Measurement {
            readings: p99(15.0),
            ..Measurement::default()
        });
        let judged = slo.with_baseline(&baseline);
        let mut watch = Watch::new(&judged, &config, 2.0, Duration::ZERO);
        // The limit is 30 ms: 59 ms is under twice it, 600 ms is 20 times it.
        assert_eq!(watch.observe(p99(59.0)), None);
        assert_eq!(watch.observe(p99(59.0)), None);
        assert_eq!(watch.observe(p99(600.0)), None);
        let cut = watch.observe(p99(600.0)).expect("cut");
        assert!((cut.times - 20.0).abs() < 1e-9, "{}", cut.times);
        assert_eq!(cut.constraint, "latency_p99 <= 2 × baseline (30 ms)");
    }
}
