//! What a study optimizes (the objective and its SLOs) and how one measurement scores against it.

use std::collections::BTreeMap;

use super::journal::RecordedReading;
use super::objective::{Constraint, Expr};
use super::{Plan, StudyError, config_error, param_number};
use crate::config::optimizer::{EmbeddedOptimizer, Select, Target};
use servo_core::suggest::did_you_mean;
use servo_core::types::{Description, Measurement};
use servo_optimizer::ParamValue;

/// What is optimized: the objectives (minimized internally) and the SLOs.
///
/// `objectives` always holds at least one (see [`Goal::primary`]); with several, the study
/// searches for their Pareto front, settling on the point `select` picks.
#[derive(Clone, Debug)]
pub struct Goal {
    pub constraints: Vec<Constraint>,
    pub objectives: Vec<Term>,
    pub select: Select,
}

/// One objective: its expression as written, parsed, and its direction.
#[derive(Clone, Debug)]
pub struct Term {
    pub text: String,
    pub expr: Expr,
    pub maximize: bool,
    /// Where it is written (`optimizer.objective.minimize[1]`), for messages.
    pub place: String,
}

impl Goal {
    pub fn from_settings(settings: &EmbeddedOptimizer) -> Result<Goal, StudyError> {
        let Some(objective) = &settings.objective else {
            return Err(config_error(
                "the optimizer has no objective: servo run needs to know what to optimize",
                Some("add `optimizer: {objective: {minimize: <metric or expression>}}`, e.g. `minimize: main.cpu`".into()),
            ));
        };
        let targets = objective.targets();
        let single = targets.len() == 1;
        let objectives = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let place = if single {
                    "optimizer.objective".to_string()
                } else {
                    let key = if t.maximize { "maximize" } else { "minimize" };
                    let same: Vec<usize> = (0..targets.len())
                        .filter(|&j| targets[j].maximize == t.maximize)
                        .collect();
                    match same.iter().position(|&j| j == i) {
                        Some(k) if same.len() > 1 => format!("optimizer.objective.{key}[{k}]"),
                        _ => format!("optimizer.objective.{key}"),
                    }
                };
                let expr = Expr::parse(&t.expression)
                    .map_err(|e| config_error(format!("{place} `{}`: {e}", t.expression), None))?;
                Ok(Term {
                    text: t.expression.clone(),
                    expr,
                    maximize: t.maximize,
                    place,
                })
            })
            .collect::<Result<Vec<_>, StudyError>>()?;
        let constraints = settings
            .constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Constraint::parse(c).map_err(|e| {
                    config_error(format!("optimizer.constraints[{i}] `{c}`: {e}"), None)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Goal {
            constraints,
            objectives,
            select: objective.select(),
        })
    }

    /// The objective a trial's `objective` holds, in its direction: the only one, or the first
    /// of several (the minimized ones come first). The sampler, the reported best and the
    /// confirmation rank trials by it; a study with several objectives ranks by their front too.
    pub fn primary(&self) -> &Term {
        // `from_settings` makes at least one: the schema refuses an objective list shorter than 2.
        &self.objectives[0]
    }

    /// Whether the study has several objectives, and so a Pareto front.
    pub fn is_pareto(&self) -> bool {
        self.objectives.len() > 1
    }

    /// The objectives as the journal keeps them (empty for a study with one: its objective is
    /// the study's `objective` text, as always).
    pub fn targets(&self) -> Vec<Target> {
        if !self.is_pareto() {
            return Vec::new();
        }
        self.objectives
            .iter()
            .map(|t| Target::new(&t.text, t.maximize))
            .collect()
    }

    /// Checks every name in the objective and constraints against the metrics and settings.
    pub fn check_names(&self, description: &Description, plan: &Plan) -> Result<(), StudyError> {
        let mut known: Vec<String> = description.metrics.iter().map(|m| m.name.clone()).collect();
        known.extend(plan.params.iter().map(|p| p.name.clone()));
        let mut used: Vec<(&str, String)> = self
            .objectives
            .iter()
            .flat_map(|t| t.expr.variables().into_iter().map(|v| (v, t.place.clone())))
            .collect();
        for (i, c) in self.constraints.iter().enumerate() {
            used.extend(
                c.left
                    .variables()
                    .into_iter()
                    .map(|v| (v, format!("optimizer.constraints[{i}]"))),
            );
        }
        for (name, place) in used {
            if !known.iter().any(|k| k == name) {
                let hint = did_you_mean(name, known.iter().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("metrics and settings: {}", known.join(", ")));
                return Err(config_error(
                    format!("{place}: no metric or setting is named `{name}`"),
                    Some(hint),
                ));
            }
        }
        // A relative SLO compares with trial 0, which only a fully described baseline provides.
        if let Some((i, c)) = self.relative().next()
            && plan.ordered(&plan.baseline).is_none()
        {
            return Err(config_error(
                format!(
                    "optimizer.constraints[{i}] `{}`: the bound is relative to the baseline, but the description does not give every setting's current value, so no baseline is measured",
                    c.text
                ),
                Some(
                    "give each setting its current `value:`, or write the bound as a number".into(),
                ),
            ));
        }
        Ok(())
    }

    /// Every name the objective and the constraints read, the baseline's metrics included.
    pub fn names(&self) -> Vec<&str> {
        let mut names = self.primary().expr.variables();
        for c in &self.constraints {
            names.extend(c.left.variables());
            names.extend(c.baseline.as_ref().map(|r| r.metric.as_str()));
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The constraints as written.
    pub fn constraint_texts(&self) -> Vec<String> {
        self.constraints.iter().map(|c| c.text.clone()).collect()
    }

    /// The constraints whose bound is relative to the baseline, with their index.
    fn relative(&self) -> impl Iterator<Item = (usize, &Constraint)> {
        self.constraints
            .iter()
            .enumerate()
            .filter(|(_, c)| c.baseline.is_some())
    }

    /// The goal with every bound relative to the baseline made concrete by the baseline's
    /// readings (trial 0's, as journaled; or the baseline's own measurement while it is scored).
    pub fn with_baseline(&self, readings: &BTreeMap<String, RecordedReading>) -> Goal {
        let mut goal = self.clone();
        for c in &mut goal.constraints {
            c.resolve(readings);
        }
        goal
    }

    /// Checks that every bound with a unit can be converted to its metric's unit, before trial 0:
    /// comparing `0.3` (seconds) with `50` (milliseconds) would call a meltdown feasible.
    pub fn check_units(&self, description: &Description) -> Result<(), StudyError> {
        self.unit_problem(description)
            .map_err(UnitProblem::into_error)
    }

    /// [`Goal::check_units`], saying which constraint is at fault, so that a caller holding the
    /// file can point at its line.
    pub fn unit_problem(&self, description: &Description) -> Result<(), UnitProblem> {
        for (i, c) in self.relative() {
            self.check_relative(i, c, description)?;
        }
        for (i, c) in self.constraints.iter().enumerate() {
            if c.unit.is_none() {
                continue;
            }
            let Expr::Var(name) = &c.left else {
                return Err(UnitProblem::new(
                    i,
                    format!(
                        "`{}`: a bound with a unit needs one metric on the left, not an expression",
                        c.text
                    ),
                    Some("write the bound as a bare number in the expression's unit".into()),
                ));
            };
            let Some(metric) = description.metrics.iter().find(|m| &m.name == name) else {
                return Err(UnitProblem::new(
                    i,
                    format!(
                        "`{}`: `{name}` is a setting, whose values have no unit to convert the bound to",
                        c.text
                    ),
                    Some("write the bound as a bare number in the setting's unit".into()),
                ));
            };
            c.check_unit(name, &metric.unit)
                .map_err(|message| UnitProblem::new(i, message, None))?;
        }
        Ok(())
    }
}

impl Goal {
    /// A bound relative to the baseline reads a metric the description names, in a unit that
    /// converts to the unit of the one metric on the left: the baseline's reading and the trial's
    /// are then compared in the same unit (a factor has none).
    fn check_relative(
        &self,
        i: usize,
        c: &Constraint,
        description: &Description,
    ) -> Result<(), UnitProblem> {
        let Some(relative) = &c.baseline else {
            return Ok(());
        };
        let metric = match &c.left {
            Expr::Var(name) => description.metrics.iter().find(|m| &m.name == name),
            _ => None,
        };
        let Some(metric) = metric else {
            return Err(UnitProblem::new(
                i,
                format!(
                    "`{}`: a bound relative to the baseline needs one metric on the left, not an expression or a setting",
                    c.text
                ),
                Some(format!(
                    "compare the metric itself, such as `{0} <= 1.1 * baseline.{0}`",
                    relative.metric
                )),
            ));
        };
        let names = description.metrics.iter().map(|m| m.name.as_str());
        let Some(reference) = description
            .metrics
            .iter()
            .find(|m| m.name == relative.metric)
        else {
            let hint = did_you_mean(&relative.metric, names.clone())
                .map(|s| format!("did you mean `baseline.{s}`?"))
                .unwrap_or_else(|| {
                    format!(
                        "the baseline measures: {}",
                        names.collect::<Vec<_>>().join(", ")
                    )
                });
            return Err(UnitProblem::new(
                i,
                format!(
                    "`{}`: the baseline measures no metric named `{}`",
                    c.text, relative.metric
                ),
                Some(hint),
            ));
        };
        if super::objective::convert(1.0, &reference.unit, &metric.unit).is_none() {
            let unit = |u: &str| {
                if u.is_empty() {
                    "no unit".to_string()
                } else {
                    format!("`{u}`")
                }
            };
            return Err(UnitProblem::new(
                i,
                format!(
                    "`{}`: `{}` is measured in {} but the baseline's `{}` in {}, which do not convert",
                    c.text,
                    metric.name,
                    unit(&metric.unit),
                    reference.name,
                    unit(&reference.unit)
                ),
                Some(format!(
                    "compare `{0}` with its own baseline: `{0} <= 1.1 * baseline.{0}`",
                    metric.name
                )),
            ));
        }
        Ok(())
    }
}

/// A bound that cannot be compared with its metric, before trial 0: which constraint, why, and
/// the fix.
#[derive(Debug)]
pub struct UnitProblem {
    /// Its index in `optimizer.constraints`.
    pub constraint: usize,
    /// Why, starting with the constraint as written.
    pub message: String,
    pub hint: Option<String>,
}

impl UnitProblem {
    fn new(constraint: usize, message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            constraint,
            message: message.into(),
            hint,
        }
    }

    /// The problem as a config error naming the constraint's key path in words.
    pub fn into_error(self) -> StudyError {
        config_error(
            format!(
                "optimizer.constraints[{}] {}",
                self.constraint, self.message
            ),
            self.hint,
        )
    }
}

/// How one trial's measurement scores.
pub struct Score {
    pub readings: BTreeMap<String, RecordedReading>,
    pub objective: f64,
    /// Every objective's value when the study has several (the first is `objective`); empty
    /// otherwise.
    pub objectives: Vec<f64>,
    pub constraints: Vec<f64>,
    pub feasible: bool,
}

/// A measurement's readings as the journal records them.
pub fn recorded(measurement: &Measurement) -> BTreeMap<String, RecordedReading> {
    measurement
        .readings
        .iter()
        .map(|r| {
            (
                r.metric.name.clone(),
                RecordedReading {
                    value: r.value,
                    unit: r.metric.unit.clone(),
                },
            )
        })
        .collect()
}

/// What an expression may read: the readings by metric name, and the numeric settings.
pub(super) fn variables(
    readings: &BTreeMap<String, RecordedReading>,
    config: &BTreeMap<String, ParamValue>,
) -> BTreeMap<String, f64> {
    let mut vars: BTreeMap<String, f64> =
        readings.iter().map(|(k, r)| (k.clone(), r.value)).collect();
    for (name, value) in config {
        if let Some(n) = param_number(value) {
            vars.insert(name.clone(), n);
        }
    }
    vars
}

/// Scores a measurement against the goal; an error names the expression that could not be evaluated.
pub fn score(
    goal: &Goal,
    config: &BTreeMap<String, ParamValue>,
    measurement: &Measurement,
) -> Result<Score, String> {
    score_readings(goal, config, recorded(measurement))
}

/// Scores journaled readings against the goal: how a trial reused from an earlier study is
/// judged by this study's objectives and SLOs.
pub fn score_readings(
    goal: &Goal,
    config: &BTreeMap<String, ParamValue>,
    readings: BTreeMap<String, RecordedReading>,
) -> Result<Score, String> {
    let vars = variables(&readings, config);
    let primary = goal.primary();
    let objective = primary
        .expr
        .eval(&vars)
        .map_err(|e| format!("objective `{}`: {e}", primary.text))?;
    let objectives = if goal.is_pareto() {
        goal.objectives
            .iter()
            .map(|t| {
                t.expr
                    .eval(&vars)
                    .map_err(|e| format!("objective `{}`: {e}", t.text))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let mut constraints = Vec::new();
    let mut feasible = true;
    for c in &goal.constraints {
        let value = c
            .left
            .eval(&vars)
            .map_err(|e| format!("constraint `{}`: {e}", c.text))?;
        // A bound's unit converts to the unit of the metric on the left, when it is one metric.
        let unit = match &c.left {
            Expr::Var(name) => readings.get(name).map(|r| r.unit.as_str()).unwrap_or(""),
            _ => "",
        };
        if c.limit(unit).is_none() {
            return Err(format!(
                "constraint `{}`: its baseline has no reading of `{}` to compare with",
                c.text,
                c.baseline.as_ref().map_or("", |r| r.metric.as_str())
            ));
        }
        constraints.push(c.violation(value, unit));
        feasible &= c.holds(value, unit);
    }
    Ok(Score {
        readings,
        objective,
        objectives,
        constraints,
        feasible,
    })
}
