//! A study: the embedded optimizer driving describe → suggest → adjust → measure → score → journal,
//! trial after trial, resumable from its journal.

pub mod journal;
pub mod objective;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::bus::{Bus, BusError};
use crate::config::Assembly;
use crate::config::optimizer::{
    Algorithm, EmbeddedOptimizer, Objective, OnFinish, OptimizerSettings,
};
use journal::{Journal, JournalError, RecordedReading, Study, Trial, TrialState, now};
use objective::{Constraint, Expr};
use servo_core::connector::{ConnectorError, EventContext};
use servo_core::suggest::did_you_mean;
use servo_core::types::{
    Adjustment, Control, Description, Domain as SettingDomain, MeasureRequest, Measurement,
    SettingKind, SettingValue,
};
use servo_optimizer::{
    Bayesian, Domain, Observation, Outcome, Param, ParamValue, RandomSearch, Sampler, Space,
    SuggestError,
};

/// Why a study could not run.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The optimizer section cannot drive a study as written.
    #[error("{message}")]
    Config {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The journal failed (`error`) after the study had begun changing the application, which was
    /// then put back on a known configuration (`left_on`), as after an interruption.
    #[error("{error}\nthe application was put back on {left_on}")]
    Stopped {
        error: JournalError,
        left_on: String,
    },
}

impl StudyError {
    /// What to do about it, when there is something to say beyond the message.
    pub fn hint(&self) -> Option<String> {
        match self {
            StudyError::Config { hint, .. } => hint.clone(),
            StudyError::Journal(e) => e.hint(),
            StudyError::Bus(_) => None,
            StudyError::Stopped { error, .. } => error.hint(),
        }
    }
}

/// Why `drive` stopped short.
enum Halted {
    /// Before any trial began: the application is as servo found it.
    Before(StudyError),
    /// The journal failed once trials had begun, with what was journaled until then: enough to put
    /// the application back on a known configuration before reporting the error.
    Journal {
        error: JournalError,
        summary: Box<Summary>,
        plan: Plan,
    },
}

impl From<StudyError> for Halted {
    fn from(error: StudyError) -> Self {
        Halted::Before(error)
    }
}

impl From<JournalError> for Halted {
    fn from(error: JournalError) -> Self {
        StudyError::from(error).into()
    }
}

impl From<BusError> for Halted {
    fn from(error: BusError) -> Self {
        StudyError::from(error).into()
    }
}

fn config_error(message: impl Into<String>, hint: Option<String>) -> StudyError {
    StudyError::Config {
        message: message.into(),
        hint,
    }
}

/// What is optimized: the objective (minimized internally) and the SLOs.
#[derive(Clone, Debug)]
pub struct Goal {
    pub text: String,
    pub expr: Expr,
    pub maximize: bool,
    pub constraints: Vec<Constraint>,
}

impl Goal {
    pub fn from_settings(settings: &EmbeddedOptimizer) -> Result<Goal, StudyError> {
        let (text, maximize) = match &settings.objective {
            Some(Objective::Minimize(t)) => (t.clone(), false),
            Some(Objective::Maximize(t)) => (t.clone(), true),
            None => {
                return Err(config_error(
                    "the optimizer has no objective: servo run needs to know what to optimize",
                    Some("add `optimizer: {objective: {minimize: <metric or expression>}}`, e.g. `minimize: main.cpu`".into()),
                ));
            }
        };
        let expr = Expr::parse(&text)
            .map_err(|e| config_error(format!("optimizer.objective `{text}`: {e}"), None))?;
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
            text,
            expr,
            maximize,
            constraints,
        })
    }

    /// Checks every name in the objective and constraints against the metrics and settings.
    pub fn check_names(&self, description: &Description, plan: &Plan) -> Result<(), StudyError> {
        let mut known: Vec<String> = description.metrics.iter().map(|m| m.name.clone()).collect();
        known.extend(plan.params.iter().map(|p| p.name.clone()));
        let mut used: Vec<(&str, String)> = self
            .expr
            .variables()
            .into_iter()
            .map(|v| (v, "optimizer.objective".to_string()))
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
        Ok(())
    }
}

/// The search space derived from a description, and how its parameters map back to settings.
#[derive(Clone, Debug)]
pub struct Plan {
    pub space: Space,
    pub params: Vec<PlanParam>,
    /// The application's configuration when the study began.
    pub baseline: BTreeMap<String, ParamValue>,
}

#[derive(Clone, Debug)]
pub struct PlanParam {
    pub name: String,
    pub component: String,
    pub setting: String,
    pub integer: bool,
    pub unit: Option<String>,
}

impl Plan {
    /// Every unpinned setting becomes a parameter named `component.setting`.
    pub fn from_description(description: &Description) -> Plan {
        let mut params = Vec::new();
        let mut space = Vec::new();
        let mut baseline = BTreeMap::new();
        for component in &description.components {
            for setting in component.settings.iter().filter(|s| !s.pinned) {
                let name = format!("{}.{}", component.name, setting.name);
                let (domain, integer) = match setting.domain() {
                    SettingDomain::Categorical(values) => (
                        Domain::Categorical {
                            choices: values.to_vec(),
                        },
                        false,
                    ),
                    SettingDomain::Numeric {
                        min,
                        max,
                        step,
                        integer,
                    } => {
                        if integer
                            || matches!(setting.kind, SettingKind::Int | SettingKind::Replicas)
                        {
                            (
                                Domain::Int {
                                    low: min.round() as i64,
                                    high: max.round() as i64,
                                    step: step.map_or(1, |s| s.round().max(1.0) as i64),
                                    log: false,
                                },
                                true,
                            )
                        } else {
                            (
                                Domain::Float {
                                    low: min,
                                    high: max,
                                    step,
                                    log: false,
                                },
                                false,
                            )
                        }
                    }
                };
                if let Some(value) = &setting.value {
                    baseline.insert(name.clone(), to_param(value, integer));
                }
                space.push(Param::new(name.clone(), domain));
                params.push(PlanParam {
                    name,
                    component: component.name.clone(),
                    setting: setting.name.clone(),
                    integer,
                    unit: setting.unit.clone(),
                });
            }
        }
        Plan {
            space: Space::new(space),
            params,
            baseline,
        }
    }

    pub fn adjustments(&self, config: &BTreeMap<String, ParamValue>) -> Vec<Adjustment> {
        self.params
            .iter()
            .filter_map(|p| {
                config.get(&p.name).map(|v| Adjustment {
                    component: p.component.clone(),
                    setting: p.setting.clone(),
                    value: from_param(v, p.integer),
                })
            })
            .collect()
    }

    fn ordered(&self, config: &BTreeMap<String, ParamValue>) -> Option<Vec<ParamValue>> {
        self.params
            .iter()
            .map(|p| config.get(&p.name).cloned())
            .collect()
    }

    fn named(&self, values: Vec<ParamValue>) -> BTreeMap<String, ParamValue> {
        self.params
            .iter()
            .map(|p| p.name.clone())
            .zip(values)
            .collect()
    }
}

fn to_param(value: &SettingValue, integer: bool) -> ParamValue {
    match value {
        SettingValue::Int(i) if integer => ParamValue::Int(*i),
        SettingValue::Int(i) => ParamValue::Float(*i as f64),
        SettingValue::Float(f) if integer => ParamValue::Int(f.round() as i64),
        SettingValue::Float(f) => ParamValue::Float(*f),
        SettingValue::String(s) => ParamValue::Categorical(s.clone()),
    }
}

fn from_param(value: &ParamValue, integer: bool) -> SettingValue {
    match value {
        ParamValue::Int(i) => SettingValue::Int(*i),
        ParamValue::Float(f) if integer => SettingValue::Int(f.round() as i64),
        ParamValue::Float(f) => SettingValue::Float(*f),
        ParamValue::Categorical(s) => SettingValue::String(s.clone()),
    }
}

pub fn param_number(value: &ParamValue) -> Option<f64> {
    match value {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(f) => Some(*f),
        ParamValue::Categorical(_) => None,
    }
}

/// How one trial's measurement scores.
pub struct Score {
    pub readings: BTreeMap<String, RecordedReading>,
    pub objective: f64,
    pub constraints: Vec<f64>,
    pub feasible: bool,
}

/// Scores a measurement against the goal; an error names the expression that could not be evaluated.
pub fn score(
    goal: &Goal,
    config: &BTreeMap<String, ParamValue>,
    measurement: &Measurement,
) -> Result<Score, String> {
    let readings: BTreeMap<String, RecordedReading> = measurement
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
        .collect();
    let mut vars: BTreeMap<String, f64> =
        readings.iter().map(|(k, r)| (k.clone(), r.value)).collect();
    for (name, value) in config {
        if let Some(n) = param_number(value) {
            vars.insert(name.clone(), n);
        }
    }
    let objective = goal
        .expr
        .eval(&vars)
        .map_err(|e| format!("objective `{}`: {e}", goal.text))?;
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
        constraints.push(c.violation(value, unit));
        feasible &= c.holds(value, unit);
    }
    Ok(Score {
        readings,
        objective,
        constraints,
        feasible,
    })
}

/// Options of `servo run` that are not in the config.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Retire the journal's current study and start a new one.
    pub new_study: bool,
    /// Skip the pre-flight checks.
    pub no_checks: bool,
}

/// Where a study stands, for progress displays.
#[derive(Clone, Debug)]
pub enum Progress {
    Resumed {
        complete: usize,
        interrupted: u64,
    },
    TrialStarted {
        number: i64,
        finished: usize,
        total: u32,
        adjustments: Vec<Adjustment>,
    },
    TrialFinished {
        trial: Trial,
        best: Option<f64>,
        finished: usize,
        total: u32,
    },
}

/// The outcome of a finished (or interrupted) study.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub study: String,
    pub journal: PathBuf,
    pub objective: String,
    pub maximize: bool,
    pub constraints: Vec<String>,
    pub trials: Vec<Trial>,
    pub baseline: Option<Trial>,
    pub best: Option<Trial>,
    /// Which configuration the application was left on.
    pub left_on: String,
    pub interrupted: bool,
    pub elapsed_seconds: f64,
}

impl Summary {
    pub fn from_trials(
        study: &Study,
        journal: &std::path::Path,
        trials: Vec<Trial>,
        maximize: bool,
    ) -> Summary {
        let baseline = baseline_trial(&trials)
            .filter(|t| t.state == TrialState::Complete)
            .cloned();
        let best = best_trial(&trials, maximize).cloned();
        Summary {
            study: study.name.clone(),
            journal: journal.to_path_buf(),
            objective: study.objective.clone(),
            maximize,
            constraints: study.constraints.clone(),
            trials,
            baseline,
            best,
            left_on: String::new(),
            interrupted: false,
            elapsed_seconds: 0.0,
        }
    }
}

/// The trial that measured the baseline: the first one that ran to its end (complete or failed).
///
/// Not simply trial 0: a signal or a crash can interrupt the baseline, and the resumed study then
/// measures it again under the next number. Until some trial has run to its end, every trial the
/// study starts is the baseline's (see [`next_config`]), so the first such trial is the baseline.
pub fn baseline_trial(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.state != TrialState::Interrupted)
        .min_by_key(|t| t.number)
}

/// The best complete trial meeting every constraint.
pub fn best_trial(trials: &[Trial], maximize: bool) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.feasible == Some(true))
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

/// The embedded optimizer's settings, or why `servo run` cannot use this optimizer yet.
pub fn embedded(assembly: &Assembly) -> Result<&EmbeddedOptimizer, StudyError> {
    match &assembly.optimizer {
        OptimizerSettings::Embedded(e) => Ok(e),
        OptimizerSettings::Remote(r) => Err(config_error(
            format!(
                "the study journal belongs to the embedded optimizer; the remote optimizer ({}) keeps its own trials",
                r.id
            ),
            Some("see them in the optimizer's own UI, or remove `id`/`token` from `optimizer:` to use the embedded optimizer".into()),
        )),
    }
}

/// The journal file: `optimizer.store`, relative to the config file, or `.servo/<name>.db` beside it.
pub fn journal_path(assembly: &Assembly, settings: &EmbeddedOptimizer) -> PathBuf {
    match &settings.store {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => assembly.base_dir.join(p),
        None => assembly
            .base_dir
            .join(".servo")
            .join(format!("{}.db", assembly.name)),
    }
}

/// Runs (or resumes) the study of one servo.
pub async fn run(
    assembly: &Assembly,
    options: &RunOptions,
    cx: &EventContext,
    mut on_progress: impl FnMut(Progress),
) -> Result<Summary, StudyError> {
    let started = Instant::now();
    let settings = embedded(assembly)?;
    let goal = Goal::from_settings(settings)?;
    let bus = Bus::new(&assembly.mounts);
    // Open the journal before touching the application: a read-only or full disk must stop us
    // before any adjustment is made.
    let journal = Journal::open(&journal_path(assembly, settings)).await?;

    let outcome = match bus.startup(cx).await {
        Ok(()) => {
            drive(
                assembly,
                settings,
                &goal,
                &bus,
                &journal,
                options,
                cx,
                &mut on_progress,
            )
            .await
        }
        Err(e) => Err(e.into()),
    };
    // Leave the application on a known configuration, even when interrupted: a fresh context, since
    // the run's own token may be cancelled.
    let calm = EventContext::default();
    let summary = match outcome {
        Ok((mut s, plan)) => {
            s.left_on = finish(settings, &bus, &s, &plan, &calm).await;
            s.elapsed_seconds = started.elapsed().as_secs_f64();
            Ok(s)
        }
        // The journal failed mid-study (a full disk, say): the application is on the
        // configuration of a trial that may not even be journaled. Leave it where an interruption
        // would: on the best journaled trial, or the baseline.
        Err(Halted::Journal {
            error,
            mut summary,
            plan,
        }) => {
            summary.interrupted = true;
            let left_on = finish(settings, &bus, &summary, &plan, &calm).await;
            Err(StudyError::Stopped { error, left_on })
        }
        Err(Halted::Before(error)) => Err(error),
    };
    if let Err(e) = bus.shutdown(&calm).await {
        tracing::warn!(error = %e, "shutdown failed");
    }
    journal.close().await;
    summary
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    assembly: &Assembly,
    settings: &EmbeddedOptimizer,
    goal: &Goal,
    bus: &Bus,
    journal: &Journal,
    options: &RunOptions,
    cx: &EventContext,
    on_progress: &mut impl FnMut(Progress),
) -> Result<(Summary, Plan), Halted> {
    if !options.no_checks {
        let checks = bus.check(cx).await?;
        let failing: Vec<String> = checks
            .iter()
            .filter(|c| {
                !c.success
                    && c.severity >= assembly.checks.halt_on
                    && !assembly.checks.skip.contains(&c.name)
            })
            .map(|c| match &c.hint {
                Some(h) => format!(
                    "{}: {}: {} (hint: {h})",
                    c.connector,
                    c.name,
                    c.message.clone().unwrap_or_default()
                ),
                None => format!(
                    "{}: {}: {}",
                    c.connector,
                    c.name,
                    c.message.clone().unwrap_or_default()
                ),
            })
            .collect();
        if !failing.is_empty() {
            return Err(Halted::from(BusError::Failed {
                event: servo_core::connector::Event::Check,
                failures: failing
                    .into_iter()
                    .map(|f| ("check".to_string(), ConnectorError::failed(f)))
                    .collect(),
            }));
        }
    }
    let description = bus.describe(cx).await?;
    let plan = Plan::from_description(&description);
    if plan.params.is_empty() {
        return Err(config_error(
            "nothing to optimize: no connector describes an unpinned setting",
            Some("mount a connector with settings (process, kubernetes, command, wait with components)".into()),
        )
        .into());
    }
    goal.check_names(&description, &plan)?;
    let study = journal
        .study(&assembly.name, &plan.space, &goal.text, &settings.constraints, options.new_study)
        .await
        .map_err(|e| match e {
            JournalError::SpaceChanged { .. } => config_error(
                e.to_string(),
                Some("start a new study with `servo run --new-study` (the old one stays in the journal)".into()),
            ),
            other => StudyError::Journal(other),
        })?;
    let interrupted = journal.interrupt_running(&study).await?;
    let mut trials = journal.trials(&study).await?;
    let finished = |trials: &[Trial]| {
        trials
            .iter()
            .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Failed))
            .count()
    };
    if !trials.is_empty() {
        on_progress(Progress::Resumed {
            complete: finished(&trials),
            interrupted,
        });
    }
    let sampler = sampler(settings.algorithm);
    let seed = settings.seed.unwrap_or(0);
    let control = trial_control(settings);
    let deadline = settings.max_duration.map(|d| Instant::now() + d.as_std());
    // Once trials have begun, a journal that fails must not leave the application on whatever it
    // was last adjusted to: `run` puts it back on a journaled configuration first.
    let halt = |error: JournalError, trials: &[Trial], plan: &Plan| Halted::Journal {
        error,
        summary: Box::new(Summary::from_trials(
            &study,
            journal.path(),
            trials.to_vec(),
            goal.maximize,
        )),
        plan: plan.clone(),
    };

    while finished(&trials) < settings.trials as usize {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::info!("optimizer.max_duration reached");
            break;
        }
        let config = match next_config(&plan, goal, &trials, sampler.as_ref(), seed)? {
            Some(config) => config,
            None => break,
        };
        let number = match journal.begin(&study, &config).await {
            Ok(number) => number,
            Err(e) => return Err(halt(e, &trials, &plan)),
        };
        let adjustments = plan.adjustments(&config);
        on_progress(Progress::TrialStarted {
            number,
            finished: finished(&trials),
            total: settings.trials,
            adjustments: adjustments.clone(),
        });
        let mut trial = Trial {
            number,
            state: TrialState::Running,
            config: config.clone(),
            readings: BTreeMap::new(),
            objective: None,
            constraints: Vec::new(),
            feasible: None,
            error: None,
            started_at: now(),
            finished_at: None,
        };
        let outcome = run_trial(bus, &adjustments, &control, cx).await;
        trial.finished_at = Some(now());
        match outcome {
            Ok(measurement) => match score(goal, &config, &measurement) {
                Ok(s) => {
                    trial.state = TrialState::Complete;
                    trial.readings = s.readings;
                    trial.objective = Some(s.objective);
                    trial.constraints = s.constraints;
                    trial.feasible = Some(s.feasible);
                }
                Err(message) => {
                    trial.state = TrialState::Failed;
                    trial.error = Some(message);
                }
            },
            Err(TrialError::Interrupted) => {
                trial.state = TrialState::Interrupted;
                trial.error = Some("interrupted by a signal".into());
                if let Err(e) = journal.finish(&study, &trial).await {
                    return Err(halt(e, &trials, &plan));
                }
                trials.push(trial);
                let mut summary =
                    Summary::from_trials(&study, journal.path(), trials, goal.maximize);
                summary.interrupted = true;
                return Ok((summary, plan));
            }
            Err(TrialError::Failed(message)) => {
                trial.state = TrialState::Failed;
                trial.error = Some(message);
            }
        }
        if let Err(e) = journal.finish(&study, &trial).await {
            return Err(halt(e, &trials, &plan));
        }
        trials.push(trial.clone());
        let best = best_trial(&trials, goal.maximize).and_then(|t| t.objective);
        on_progress(Progress::TrialFinished {
            trial,
            best,
            finished: finished(&trials),
            total: settings.trials,
        });
    }
    Ok((
        Summary::from_trials(&study, journal.path(), trials, goal.maximize),
        plan,
    ))
}

/// The sampler an algorithm names.
pub fn sampler(algorithm: Algorithm) -> Box<dyn Sampler> {
    match algorithm {
        Algorithm::Bayesian => Box::new(Bayesian::default()),
        Algorithm::Random => Box::new(RandomSearch),
    }
}

/// How each trial is adjusted and measured.
pub fn trial_control(settings: &EmbeddedOptimizer) -> Control {
    Control {
        duration: settings.control.duration,
        warmup: settings.control.warmup,
        delay: settings.control.delay,
        settlement: Some(settings.control.settlement),
        userdata: None,
    }
}

/// What the next trial tries: the baseline first (when the description gave every value), then
/// the sampler's suggestion from the history. `None` when the sampler has nothing left to try.
/// Shared by `servo run` and the optimizer server, so both run the same study.
pub fn next_config(
    plan: &Plan,
    goal: &Goal,
    trials: &[Trial],
    sampler: &dyn Sampler,
    seed: u64,
) -> Result<Option<BTreeMap<String, ParamValue>>, StudyError> {
    let baseline_done = baseline_trial(trials).is_some();
    if !baseline_done && plan.ordered(&plan.baseline).is_some() {
        return Ok(Some(plan.baseline.clone()));
    }
    let history: Vec<Observation> = trials
        .iter()
        .filter_map(|t| observation(plan, goal, t))
        .collect();
    match sampler.suggest(&plan.space, &history, seed) {
        Ok(values) => Ok(Some(plan.named(values))),
        Err(e @ SuggestError::Exhausted { .. }) => {
            tracing::warn!(error = %e, "the optimizer has nothing left to suggest");
            Ok(None)
        }
        Err(SuggestError::InvalidSpace(e)) => Err(config_error(
            format!("the described settings cannot be searched: {e}"),
            Some("fix the setting's range in the connector's section".into()),
        )),
    }
}

/// A journaled trial as the optimizer sees it (objective negated for `maximize`).
fn observation(plan: &Plan, goal: &Goal, trial: &Trial) -> Option<Observation> {
    let config = plan.ordered(&trial.config)?;
    let outcome = match (trial.state, trial.objective) {
        (TrialState::Complete, Some(objective)) => Outcome::Complete {
            objective: if goal.maximize { -objective } else { objective },
            constraints: trial.constraints.clone(),
        },
        (TrialState::Failed, _) => Outcome::Failed,
        _ => return None,
    };
    Some(Observation { config, outcome })
}

enum TrialError {
    Interrupted,
    Failed(String),
}

async fn run_trial(
    bus: &Bus,
    adjustments: &[Adjustment],
    control: &Control,
    cx: &EventContext,
) -> Result<Measurement, TrialError> {
    let classify = |e: BusError| {
        if e.is_interrupted() || cx.cancel.is_cancelled() {
            TrialError::Interrupted
        } else {
            TrialError::Failed(e.to_string())
        }
    };
    bus.adjust(adjustments, control, cx)
        .await
        .map_err(classify)?;
    let request = MeasureRequest {
        metrics: Vec::new(),
        control: control.clone(),
    };
    bus.measure(&request, cx).await.map_err(classify)
}

/// Applies `on_finish` (or, when interrupted, the best known configuration) and says which it was.
async fn finish(
    settings: &EmbeddedOptimizer,
    bus: &Bus,
    summary: &Summary,
    plan: &Plan,
    cx: &EventContext,
) -> String {
    // An interrupted baseline (nothing else ran) still holds the configuration to go back to.
    let baseline = baseline_trial(&summary.trials).or_else(|| summary.trials.first());
    let target = match (summary.interrupted, settings.on_finish) {
        (false, OnFinish::Keep) => {
            return "the last trial's configuration (on_finish: keep)".into();
        }
        (false, OnFinish::Baseline) => baseline.map(|t| ("baseline", t)),
        (_, OnFinish::Best) | (true, _) => summary
            .best
            .as_ref()
            .map(|t| ("best", t))
            .or_else(|| baseline.map(|t| ("baseline", t))),
    };
    let (label, config, done) = match target {
        Some((label, trial)) => (
            label,
            &trial.config,
            format!("the {label} configuration (trial {})", trial.number),
        ),
        // Stopped before any trial was journaled (the journal failed at the first one): the
        // application may still be on an unjournaled trial's values; the described ones are known.
        None if summary.interrupted && plan.ordered(&plan.baseline).is_some() => (
            "starting",
            &plan.baseline,
            "the configuration it had when the study began".to_string(),
        ),
        None => return "unchanged (no trial to return to)".into(),
    };
    let adjustments = plan.adjustments(config);
    let control = Control::default();
    let applied = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        bus.adjust(&adjustments, &control, cx),
    )
    .await;
    match applied {
        Ok(Ok(_)) => done,
        Ok(Err(e)) => format!("unknown: applying the {label} configuration failed: {e}"),
        Err(_) => format!("unknown: applying the {label} configuration timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(number: i64, state: TrialState) -> Trial {
        Trial {
            number,
            state,
            config: BTreeMap::new(),
            readings: BTreeMap::new(),
            objective: None,
            constraints: Vec::new(),
            feasible: None,
            error: None,
            started_at: 0.0,
            finished_at: None,
        }
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
}
