//! A study: the embedded optimizer driving describe → suggest → adjust → measure → score → journal,
//! trial after trial, resumable from its journal.

mod cut;
mod goal;
pub mod journal;
mod judged;
pub mod lock;
pub mod objective;
pub mod pareto;
mod plan;
mod summary;
mod warm;

pub use cut::fast_fail_conditions;
pub use goal::{Goal, Score, UnitProblem, recorded, score};
pub use judged::{Baselines, baseline_trial, judging_baseline, resolved};
pub use plan::{Plan, PlanParam, param_number};
pub use summary::{
    Breach, Breaches, Confidence, Limit, Summary, best_trial, breaches, limits, limits_against,
    recommendation,
};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::bus::{Bus, BusError, Watched};
use crate::config::Assembly;
use crate::config::optimizer::{Algorithm, EmbeddedOptimizer, OnFinish, OptimizerSettings, Risk};
use journal::{Journal, JournalError, Trial, TrialRole, TrialState, now};
use servo_core::connector::{ConnectorError, EventContext};
use servo_core::types::{Adjustment, Control, MeasureRequest, Measurement};
use servo_optimizer::{
    Bayesian, FitCache, Observation, ParamValue, RandomSearch, Sampler, SuggestError,
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
    /// The sampler failed (a panic in the model): nothing is wrong with the journal, which a next
    /// run resumes.
    #[error("the optimizer could not suggest the next configuration: {0}")]
    Optimizer(String),
    /// The study stopped on `error` (the journal or the optimizer failed) after it had begun
    /// changing the application, which was then put back on a known configuration (`left_on`), as
    /// after an interruption.
    #[error("{error}\nthe application was put back on {left_on}")]
    Stopped {
        error: Box<StudyError>,
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
            StudyError::Optimizer(_) => Some(
                "every finished trial is in the journal: run servo again to resume the study"
                    .into(),
            ),
            StudyError::Stopped { error, .. } => error.hint(),
        }
    }
}

/// Why `drive` stopped short.
enum Halted {
    /// Before any trial began: the application is as servo found it.
    Before(StudyError),
    /// The journal or the optimizer failed once trials had begun, with what was journaled until
    /// then: enough to put the application back on a known configuration before reporting the
    /// error.
    Midway {
        error: StudyError,
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

/// Options of `servo run` that are not in the config.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Retire the journal's current study and start a new one.
    pub new_study: bool,
    /// Skip the pre-flight checks.
    pub no_checks: bool,
    /// With `new_study`: start from nothing rather than from the earlier study's trials that fit.
    pub no_warm_start: bool,
}

/// Where a study stands, for progress displays.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A new study took over trials of the earlier one (`describe` says how many and why not the
    /// others).
    WarmStart {
        reused: usize,
        considered: usize,
        describe: String,
    },
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
        trial: Box<Trial>,
        /// The best objective so far (one objective).
        best: Option<f64>,
        /// How many trials are on the Pareto front so far (several objectives).
        front: Option<usize>,
        finished: usize,
        total: u32,
    },
}

/// The embedded optimizer's settings, or why `servo run` cannot use this optimizer yet.
pub fn embedded(assembly: &Assembly) -> Result<&EmbeddedOptimizer, StudyError> {
    match &assembly.optimizer {
        OptimizerSettings::Embedded(e) => Ok(e),
        OptimizerSettings::Remote(r) => Err(config_error(
            format!(
                "the study journal belongs to the embedded optimizer; the remote optimizer ({}) keeps its own trials",
                r.display_id()
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
    if settings.cut_short > 0.0 && settings.cut_short < 1.0 {
        return Err(config_error(
            format!(
                "optimizer.cut_short is {}: it is how many times its limit an SLO must be breached to stop a trial, so 1 or more (or 0 to never stop one)",
                settings.cut_short
            ),
            Some("write `cut_short: 2` to stop a trial at twice a limit".into()),
        ));
    }
    if goal.is_pareto() && settings.confirm.is_some_and(|n| n > 0) {
        tracing::warn!(
            "optimizer.confirm does not apply to several objectives: the best is a point of their Pareto front, not one modelled best to measure again"
        );
    }
    let bus = Bus::new(&assembly.mounts);
    // Open the journal before touching the application: a read-only or full disk must stop us
    // before any adjustment is made.
    let journal_path = journal_path(assembly, settings);
    let _writer = lock::StudyLock::acquire(&journal_path)?;
    let journal = Journal::open(&journal_path).await?;

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
        // The journal failed mid-study (a full disk, say), or the optimizer did: the application
        // is on the configuration of a trial that may not even be journaled. Leave it where an
        // interruption would: on the best journaled trial, or the baseline.
        Err(Halted::Midway {
            error,
            mut summary,
            plan,
        }) => {
            summary.interrupted = true;
            let left_on = finish(settings, &bus, &summary, &plan, &calm).await;
            Err(StudyError::Stopped {
                error: Box::new(error),
                left_on,
            })
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
    // Trials rank by their `objective`, the primary objective's value, in its direction.
    let maximize = goal.primary().maximize;
    if !options.no_checks {
        let failing: Vec<String> = bus
            .check_until_ready(&assembly.checks, cx)
            .await?
            .iter()
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
    goal.check_units(&description)?;
    // The earlier study's trials that fit, read before it is retired (see `warm`).
    let warm = if options.new_study && !options.no_warm_start {
        journal
            .latest_measured(&assembly.name)
            .await?
            .map(|(earlier, trials)| warm::seed(&plan, goal, &description, &earlier, &trials))
    } else {
        None
    };
    let opened = match &warm {
        Some(w) => {
            journal
                .new_study(
                    &assembly.name,
                    &plan.space,
                    &goal.primary().text,
                    &settings.constraints,
                    &w.reused,
                )
                .await
        }
        None => {
            journal
                .study(
                    &assembly.name,
                    &plan.space,
                    &goal.primary().text,
                    &settings.constraints,
                    options.new_study,
                )
                .await
        }
    };
    let mut study = opened.map_err(|e| match e {
        JournalError::SpaceChanged { .. } => config_error(
            e.to_string(),
            Some(
                "start a new study with `servo run --new-study` (the old one stays in the journal)"
                    .into(),
            ),
        ),
        other => StudyError::Journal(other),
    })?;
    journal
        .record_objectives(&mut study, &goal.targets())
        .await?;
    if let Some(w) = &warm {
        on_progress(Progress::WarmStart {
            reused: w.reused.len(),
            considered: w.considered,
            describe: w.describe(),
        });
    }
    let interrupted = journal.interrupt_running(&study).await?;
    let mut trials = journal.trials(&study).await?;
    // The trials this study ran for its search: not those it reused, nor re-measurements of the
    // baseline (`baseline_every` adds them on top of `trials`).
    let finished = |trials: &[Trial]| {
        trials
            .iter()
            .filter(|t| t.reused.is_none() && t.role.is_none())
            .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Failed))
            .count()
    };
    let baseline_every = match settings.baseline_every.filter(|n| *n > 0) {
        Some(_) if plan.ordered(&plan.baseline).is_none() => {
            tracing::warn!(
                "optimizer.baseline_every has no effect: the description does not give every setting's current value, so no baseline is measured"
            );
            None
        }
        Some(n) => {
            if goal.constraints.iter().all(|c| c.baseline.is_none()) {
                tracing::info!(
                    "no SLO is relative to the baseline: its re-measurements (optimizer.baseline_every) only show drift"
                );
            }
            Some(n as usize)
        }
        None => None,
    };
    if trials.iter().any(|t| t.reused.is_none()) {
        on_progress(Progress::Resumed {
            complete: finished(&trials),
            interrupted,
        });
    }
    let sampler = sampler(settings.algorithm, settings.risk);
    let seed = settings.seed.unwrap_or(0);
    let control = trial_control(settings);
    let deadline = settings.max_duration.map(|d| Instant::now() + d.as_std());
    // Once trials have begun, a journal that fails must not leave the application on whatever it
    // was last adjusted to: `run` puts it back on a journaled configuration first.
    let halt = |error: StudyError, trials: &[Trial], plan: &Plan| Halted::Midway {
        error,
        summary: Box::new(Summary::from_trials(
            &study,
            journal.path(),
            trials.to_vec(),
            maximize,
            &goal.select,
        )),
        plan: plan.clone(),
    };

    // Since the last measurement ended, and how long its result took to journal: the trial's own
    // overhead, logged at debug level before each adjustment (`benches/trial-overhead.sh`).
    let mut since_measured: Option<(Instant, std::time::Duration)> = None;
    // The next suggestion, computed while the last result was being committed.
    let mut suggested_early: Option<Result<Option<BTreeMap<String, ParamValue>>, StudyError>> =
        None;
    let mut suggesting_early = std::time::Duration::ZERO;
    // The model fits the suggestions share; a resumed study starts with none (see `FitCache`).
    let mut fits = FitCache::default();
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::info!("optimizer.max_duration reached");
            break;
        }
        let suggesting = Instant::now();
        // Time to measure the baseline again, when a trial is still to run.
        let remeasure = baseline_every
            .filter(|n| searched_since_baseline(&trials) >= *n)
            .and_then(|_| baseline_trial(&trials))
            .filter(|_| {
                finished(&trials) < settings.trials as usize
                    || confirmation(
                        &study.space,
                        &trials,
                        maximize,
                        settings,
                        finished(&trials) - settings.trials as usize,
                    )
                    .is_some()
            })
            .map(|b| b.config.clone());
        let role = remeasure.is_some().then_some(TrialRole::Baseline);
        let config = if let Some(config) = remeasure {
            // The history gains an observation: a suggestion made without it is stale.
            suggested_early = None;
            tracing::info!("measuring the baseline again (optimizer.baseline_every)");
            config
        } else if finished(&trials) < settings.trials as usize {
            let next = suggested_early.take().unwrap_or_else(|| {
                next_config(&plan, goal, &trials, sampler.as_ref(), seed, &mut fits)
            });
            match next {
                Ok(Some(config)) => config,
                Ok(None) => break,
                Err(e) if trials.is_empty() => return Err(e.into()),
                Err(e) => {
                    tracing::error!(error = %e, "the optimizer failed; stopping the study");
                    return Err(halt(e, &trials, &plan));
                }
            }
        } else if goal.is_pareto() {
            // Confirmation re-measures the single objective's model choice; a front has none.
            break;
        } else {
            let done = finished(&trials) - settings.trials as usize;
            match confirmation(&study.space, &trials, maximize, settings, done) {
                Some(config) => {
                    tracing::info!("measuring a candidate for best again (optimizer.confirm)");
                    config
                }
                None => break,
            }
        };
        let suggested = suggesting.elapsed() + std::mem::take(&mut suggesting_early);
        let beginning = Instant::now();
        let number = match journal.begin_as(&study, &config, role).await {
            Ok(number) => number,
            Err(e) => return Err(halt(e.into(), &trials, &plan)),
        };
        let begun = beginning.elapsed();
        let adjustments = plan.adjustments(&config);
        on_progress(Progress::TrialStarted {
            number,
            finished: finished(&trials),
            total: settings.trials,
            adjustments: adjustments.clone(),
        });
        let mut trial = Trial {
            role,
            ..Trial::running(number, config.clone(), now())
        };
        // The baseline is where the application was: it is measured whole, as the reference.
        // Bounds relative to it are concrete from then on, from its journaled readings (also
        // when the study resumes): those of its latest measurement, with `baseline_every`. A
        // measurement of the baseline is judged against itself.
        let baseline = judging_baseline(&trials, i64::MAX).filter(|_| role.is_none());
        let factor = if baseline.is_some() {
            settings.cut_short
        } else {
            0.0
        };
        let judged = baseline.map(|b| goal.with_baseline(&b.readings));
        let watch = cut::Watch::new(
            judged.as_ref().unwrap_or(goal),
            &config,
            factor,
            control.warmup.as_std(),
        );
        if let Some((measured, finishing)) = since_measured {
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            tracing::debug!(
                trial = number,
                overhead_ms = ms(measured.elapsed()),
                suggest_ms = ms(suggested),
                journal_ms = ms(finishing + begun),
                "trial overhead"
            );
        }
        let outcome = run_trial(bus, &adjustments, &control, watch, cx).await;
        let measured = Instant::now();
        trial.finished_at = Some(now());
        let outcome = match outcome {
            Ok((measurement, Some(cut))) => {
                let back = roll_back(bus, &plan, &trials, maximize, &control, cx).await;
                tracing::warn!(trial = number, "cut short: {}; {back}", cut.describe());
                trial.cut_short = Some(format!("{}; {back}", cut.describe()));
                Ok(measurement)
            }
            Ok((measurement, None)) => Ok(measurement),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(measurement) => match score(
                // The baseline itself is judged by its own readings: it meets a relative SLO
                // with a factor of 1 or more, as the reference it is.
                &judged.unwrap_or_else(|| goal.with_baseline(&recorded(&measurement))),
                &config,
                &measurement,
            ) {
                Ok(s) => {
                    trial.state = TrialState::Complete;
                    trial.readings = s.readings;
                    trial.objective = Some(s.objective);
                    trial.objectives = s.objectives;
                    trial.constraints = s.constraints;
                    trial.feasible = Some(s.feasible);
                }
                Err(message) => {
                    trial.state = TrialState::Failed;
                    trial.error = Some(match &trial.cut_short {
                        // Cut before a metric the objective needs was read.
                        Some(_) => format!("cut short before it could be scored: {message}"),
                        None => message,
                    });
                }
            },
            Err(TrialError::Interrupted) => {
                trial.state = TrialState::Interrupted;
                trial.error = Some("interrupted by a signal".into());
                if let Err(e) = journal.finish(&study, &trial).await {
                    return Err(halt(e.into(), &trials, &plan));
                }
                trials.push(trial);
                let mut summary =
                    Summary::from_trials(&study, journal.path(), trials, maximize, &goal.select);
                summary.recommend(settings.risk.into(), seed);
                summary.interrupted = true;
                return Ok((summary, plan));
            }
            Err(TrialError::Failed(message)) => {
                trial.state = TrialState::Failed;
                trial.error = Some(message);
            }
        }
        let finishing = Instant::now();
        // The result commits (on the database's own thread) while the optimizer works out the
        // next suggestion from it: the sampler is deterministic, so the suggestion is the one it
        // would make after the commit, and it is dropped if the commit fails.
        let recording = {
            let (journal, study, trial) = (journal.clone(), study.clone(), trial.clone());
            tokio::spawn(async move { journal.finish(&study, &trial).await })
        };
        trials.push(trial.clone());
        if finished(&trials) < settings.trials as usize {
            let suggesting = Instant::now();
            suggested_early = Some(next_config(
                &plan,
                goal,
                &trials,
                sampler.as_ref(),
                seed,
                &mut fits,
            ));
            suggesting_early = suggesting.elapsed();
        }
        let recorded = recording
            .await
            .unwrap_or_else(|e| Err(journal.db(format!("recording the trial failed: {e}"))));
        if let Err(e) = recorded {
            trials.pop();
            return Err(halt(e.into(), &trials, &plan));
        }
        // What the commit added to the suggestion's time, if anything.
        since_measured = Some((
            measured,
            finishing.elapsed().saturating_sub(suggesting_early),
        ));
        let best = best_trial(&trials, maximize).and_then(|t| t.objective);
        let front = goal.is_pareto().then(|| {
            pareto::front(&study.objectives, &trials, &goal.select)
                .trials
                .len()
        });
        on_progress(Progress::TrialFinished {
            trial: Box::new(trial),
            best: if goal.is_pareto() { None } else { best },
            front,
            finished: finished(&trials),
            total: settings.trials,
        });
    }
    let mut summary = Summary::from_trials(&study, journal.path(), trials, maximize, &goal.select);
    summary.recommend(settings.risk.into(), seed);
    Ok((summary, plan))
}

/// Candidates re-measured before a study finishes when `optimizer.confirm` is not set and the
/// best is in doubt.
const AUTO_CONFIRM: usize = 2;

/// Below this probability of meeting every SLO, the models' best is worth measuring again.
const SURE: f64 = 0.99;

/// The configuration to measure again before finishing (`optimizer.confirm`), once the trials
/// are done: among the first `confirm` candidates of the models' ranking (`AUTO_CONFIRM` by default
/// when the models give the best less than `SURE` a chance of meeting every SLO, that is when its
/// readings are near a limit for their noise; none otherwise), the one measured the fewest times, until each was measured twice
/// or `done` confirmations ran. Each is journaled as a trial of its own, so the reported best
/// averages every reading of its configuration and an interrupted study resumes here.
fn confirmation(
    space: &servo_optimizer::Space,
    trials: &[Trial],
    maximize: bool,
    settings: &EmbeddedOptimizer,
    done: usize,
) -> Option<BTreeMap<String, ParamValue>> {
    let seed = settings.seed.unwrap_or(0);
    let (recommendation, used) = recommendation(
        space,
        trials,
        &settings.constraints,
        maximize,
        settings.risk.into(),
        seed,
    )?;
    let wanted = match settings.confirm {
        Some(n) => n as usize,
        None if recommendation.feasibility.is_some_and(|p| p < SURE) => AUTO_CONFIRM,
        None => 0,
    };
    if done >= wanted {
        return None;
    }
    let mut candidates: Vec<&BTreeMap<String, ParamValue>> = Vec::new();
    for &k in &recommendation.ranked {
        let config = &used[k].config;
        if !candidates.contains(&config) {
            candidates.push(config);
        }
    }
    let measured = |config: &BTreeMap<String, ParamValue>| {
        trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && &t.config == config)
            .filter(|t| t.reused.is_none())
            .count()
    };
    candidates
        .into_iter()
        .take(wanted)
        .map(|c| (measured(c), c))
        .filter(|(n, _)| *n < 2)
        .min_by_key(|(n, _)| *n)
        .map(|(_, c)| c.clone())
}

/// How many trials of the search finished (complete or failed) since the baseline was last
/// measured (first, or again for `optimizer.baseline_every`).
fn searched_since_baseline(trials: &[Trial]) -> usize {
    let first = baseline_trial(trials).map(|t| t.number);
    let last = trials
        .iter()
        .filter(|t| t.role == Some(TrialRole::Baseline))
        .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Failed))
        .map(|t| t.number)
        .chain(first)
        .max();
    let Some(last) = last else {
        return 0;
    };
    trials
        .iter()
        .filter(|t| t.number > last && t.reused.is_none() && t.role.is_none())
        .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Failed))
        .count()
}

/// The sampler an algorithm names, taking the given risk of breaching a constraint.
pub fn sampler(algorithm: Algorithm, risk: Risk) -> Box<dyn Sampler> {
    match algorithm {
        Algorithm::Bayesian => Box::new(Bayesian::with_risk(risk.into())),
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
/// Shared by `servo run` and the optimizer server, so both run the same study. `fits` is the
/// study's [`FitCache`], kept by the caller between suggestions: it saves model fits and never
/// changes the suggestion, so an empty one (after a restart) only costs one slower suggestion.
pub fn next_config(
    plan: &Plan,
    goal: &Goal,
    trials: &[Trial],
    sampler: &dyn Sampler,
    seed: u64,
    fits: &mut FitCache,
) -> Result<Option<BTreeMap<String, ParamValue>>, StudyError> {
    let baseline_done = baseline_trial(trials).is_some();
    if !baseline_done && plan.ordered(&plan.baseline).is_some() {
        return Ok(Some(plan.baseline.clone()));
    }
    let history: Vec<Observation> = if goal.is_pareto() {
        pareto::scalarized_history(plan, goal, trials, seed)
    } else {
        let violations = judged::Violations::new(trials, &goal.constraint_texts());
        trials
            .iter()
            .filter_map(|t| observation(plan, goal, &violations, t))
            .collect()
    };
    // A panic in the model is a bug, but it must not take servo (or the optimizer server's worker)
    // down with it: it is an error like any other, and the journal stays resumable.
    let suggested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if goal.is_pareto() {
            // ParEGO scalarizes the whole history afresh before every suggestion, so an earlier
            // fit is never of a prefix of this history: a cache would only add a fit.
            sampler.suggest(&plan.space, &history, seed)
        } else {
            sampler.suggest_with(&plan.space, &history, seed, fits)
        }
    }))
    .map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        StudyError::Optimizer(format!("the sampler panicked ({what})"))
    })?;
    match suggested {
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

/// A journaled trial as the optimizer sees it (objective negated for `maximize`, constraints
/// relative to their limits).
fn observation(
    plan: &Plan,
    goal: &Goal,
    violations: &judged::Violations<'_>,
    trial: &Trial,
) -> Option<Observation> {
    Some(Observation {
        config: plan.ordered(&trial.config)?,
        outcome: violations.outcome(trial, goal.primary().maximize)?,
    })
}

enum TrialError {
    Interrupted,
    Failed(String),
}

/// Adjusts and measures one trial. The measurement's readings so far go to `watch`; when they
/// break an SLO badly the measurement is stopped and the trial scored on them, with the cut.
async fn run_trial(
    bus: &Bus,
    adjustments: &[Adjustment],
    control: &Control,
    mut watch: cut::Watch<'_>,
    cx: &EventContext,
) -> Result<(Measurement, Option<cut::Cut>), TrialError> {
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
    if !watch.is_active() {
        return Ok((bus.measure(&request, cx).await.map_err(classify)?, None));
    }
    watch.begin();
    match bus
        .measure_watched(&request, cx, |readings| watch.observe(readings))
        .await
    {
        Watched::Measured(result) => Ok((result.map_err(classify)?, None)),
        Watched::Stopped(_) if cx.cancel.is_cancelled() => Err(TrialError::Interrupted),
        Watched::Stopped(cut) => Ok((watch.measurement(), Some(cut))),
    }
}

/// Puts the application back on the best configuration known to meet every SLO, or the
/// baseline, after a trial was cut short; says where it went.
async fn roll_back(
    bus: &Bus,
    plan: &Plan,
    trials: &[Trial],
    maximize: bool,
    control: &Control,
    cx: &EventContext,
) -> String {
    let target = best_trial(trials, maximize)
        .map(|t| ("best", t))
        .or_else(|| baseline_trial(trials).map(|t| ("baseline", t)));
    let Some((label, trial)) = target else {
        return "no known configuration to roll back to".into();
    };
    match bus
        .adjust(&plan.adjustments(&trial.config), control, cx)
        .await
    {
        Ok(_) => format!(
            "rolled back to the {label} configuration (trial {})",
            trial.number
        ),
        Err(e) => format!(
            "rolling back to the {label} configuration (trial {}) failed: {e}",
            trial.number
        ),
    }
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
    use servo_core::types::{Component, Description, Setting};
    use servo_optimizer::{Observation, Outcome, Space};

    /// A study of one setting, `web.workers` from 1 to `max`, minimizing it under `constraints`.
    fn workers_study(max: i64, constraints: &[&str]) -> (Plan, Goal) {
        let description = Description {
            components: vec![Component::new(
                "web",
                vec![Setting::int("workers", 1, max, 1)],
            )],
            metrics: Vec::new(),
        };
        let settings = EmbeddedOptimizer {
            objective: Some(crate::config::optimizer::Objective::Minimize(
                "web.workers".into(),
            )),
            constraints: constraints.iter().map(|c| c.to_string()).collect(),
            ..EmbeddedOptimizer::default()
        };
        let goal = Goal::from_settings(&settings).expect("a goal");
        (Plan::from_description(&description), goal)
    }

    /// A sampler with a bug.
    struct Panicking;

    impl Sampler for Panicking {
        fn suggest(
            &self,
            _space: &Space,
            _history: &[Observation],
            _seed: u64,
        ) -> Result<Vec<ParamValue>, SuggestError> {
            panic!("the model diverged");
        }
    }

    /// A sampler that keeps the history it was given.
    #[derive(Default)]
    struct Recording(std::sync::Mutex<Vec<Observation>>);

    impl Sampler for Recording {
        fn suggest(
            &self,
            _space: &Space,
            history: &[Observation],
            _seed: u64,
        ) -> Result<Vec<ParamValue>, SuggestError> {
            *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = history.to_vec();
            Ok(vec![ParamValue::Int(3)])
        }
    }

    #[test]
    fn the_optimizer_sees_slos_relative_to_their_limits_whatever_unit_a_metric_reports() {
        use journal::RecordedReading;
        let (plan, goal) = workers_study(8, &["p99 <= 120ms", "errors <= 0"]);
        // Trials as journaled: violations in the unit the metric reported, `scale` per ms.
        let journal = |unit: &str, scale: f64| -> Vec<Trial> {
            [(0, 4, 100.0, 0.0), (1, 2, 150.0, 0.02)]
                .into_iter()
                .map(|(number, workers, p99_ms, errors)| Trial {
                    state: TrialState::Complete,
                    readings: BTreeMap::from([(
                        "p99".into(),
                        RecordedReading {
                            value: p99_ms * scale,
                            unit: unit.into(),
                        },
                    )]),
                    objective: Some(workers as f64),
                    constraints: vec![(p99_ms - 120.0) * scale, errors],
                    feasible: Some(p99_ms <= 120.0 && errors <= 0.0),
                    finished_at: Some(1.0),
                    ..Trial::running(
                        number,
                        BTreeMap::from([("web.workers".into(), ParamValue::Int(workers))]),
                        0.0,
                    )
                })
                .collect()
        };
        let seen = |trials: &[Trial]| {
            let sampler = Recording::default();
            next_config(&plan, &goal, trials, &sampler, 0, &mut FitCache::default())
                .expect("a suggestion");
            let history = sampler
                .0
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            history
                .into_iter()
                .map(|o| match o.outcome {
                    Outcome::Complete { constraints, .. } => constraints,
                    Outcome::Failed => Vec::new(),
                })
                .collect::<Vec<_>>()
        };
        let in_ms = seen(&journal("ms", 1.0));
        // A limit of 0 has nothing to be relative to: the error rate stays in its own unit.
        let expected = [vec![-20.0 / 120.0, 0.0], vec![0.25, 0.02]];
        assert_eq!(in_ms.len(), expected.len());
        for (got, want) in in_ms.iter().zip(&expected) {
            assert!(
                got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-9),
                "{in_ms:?}"
            );
        }
        let in_s = seen(&journal("s", 0.001));
        for (a, b) in in_ms.iter().flatten().zip(in_s.iter().flatten()) {
            assert!((a - b).abs() < 1e-9, "{in_ms:?} against {in_s:?}");
        }
    }

    #[test]
    fn a_panic_in_the_sampler_is_an_optimizer_error_that_names_it() {
        let (plan, goal) = workers_study(4, &[]);
        let error = next_config(&plan, &goal, &[], &Panicking, 0, &mut FitCache::default())
            .expect_err("an error");
        assert!(
            matches!(&error, StudyError::Optimizer(m) if m.contains("the model diverged")),
            "{error}"
        );
        assert!(error.hint().is_some_and(|h| h.contains("resume")));
    }
}
