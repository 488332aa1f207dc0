//! The protocol as the optimizer speaks it, per application: DESCRIBE first, then the baseline
//! MEASURE, then ADJUST/MEASURE pairs chosen by the embedded optimizer, then (when the study is done)
//! one ADJUST to the best configuration and SLEEP from there on.
//!
//! [`decide`] is a pure function of the session, the study's trials and the request: it returns the
//! answer, the new session and the journal writes, which [`super::store::Store::commit`] applies
//! atomically. A command stays `pending` until its result arrives, and a `WHATS_NEXT` while one is
//! pending gets the same command again: a servo that restarted, or lost an answer to a timeout,
//! picks up where it was, and no trial is issued twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::optimizer::{EmbeddedOptimizer, OnFinish};
use crate::protocol::wire::{self, CommandName, EventName, Status, statuses};
use crate::study::journal::{Study, Trial, TrialState, now};
use crate::study::{self, Goal, Plan, best_trial};
use servo_core::slo;
use servo_core::types::{Adjustment, Control, Description, SettingValue};
use servo_core::units::Duration;
use servo_optimizer::{ParamValue, Space};

use super::application::Application;

/// A change to the journal made in the same transaction as a session update.
#[derive(Clone, Debug)]
pub enum Write {
    /// Retire the application's studies and start a new one; the session's `study_id` becomes it.
    NewStudy {
        space: Space,
        objective: String,
        constraints: Vec<String>,
    },
    /// Insert running trial `number` of the session's study, started at `started_at` (Unix
    /// seconds; decided here so the server's memory of the trial and its row agree).
    BeginTrial {
        number: i64,
        config: BTreeMap<String, ParamValue>,
        started_at: f64,
    },
    /// Record how a trial of the session's study ended.
    FinishTrial(Trial),
}

/// What the server remembers of one application's conversation. Every field may be missing: a
/// session an older server wrote reads with the defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    /// The study the trials go to.
    pub study_id: Option<i64>,
    /// The last description the servo sent (wire form).
    pub description: Option<Value>,
    /// The command issued and not yet answered.
    pub pending: Option<Pending>,
    /// The trial whose ADJUST succeeded and which awaits its MEASURE.
    pub adjusted: Option<i64>,
    /// The `cmd_uid` of the last command whose result was recorded, so a result posted twice (a
    /// retry after a lost answer) is acknowledged without being recorded twice.
    pub last_done: Option<String>,
    /// Why the study cannot go on (told to the servo in its next SLEEP, then described again).
    pub blocked: Option<String>,
    /// Why an operator paused the study: the servo is told to SLEEP until it is resumed.
    pub paused: Option<String>,
    /// The sampler has nothing left to try.
    pub exhausted: bool,
    /// Why the optimizer could not suggest the next configuration (an invalid space, a panic in
    /// the model): the study is stopped, not complete. Shown by `/best` and `servo optimizer app
    /// list`; each `WHATS_NEXT` after the SLEEP tries again, and a suggestion clears it.
    pub optimizer_error: Option<String>,
    /// The study ended and the final configuration was applied (or could not be).
    pub finished: bool,
    pub agent: Option<String>,
    pub sequence: u64,
}

/// An issued command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub cmd: CommandName,
    pub cmd_uid: String,
    /// The trial it belongs to (`None` for DESCRIBE and the final ADJUST).
    pub trial: Option<i64>,
    pub param: Value,
    pub issued_at: f64,
}

impl Pending {
    pub fn to_json(&self) -> Value {
        json!({ "cmd": self.cmd, "cmd_uid": self.cmd_uid, "param": self.param })
    }
}

/// Server-wide choices that shape the conversation.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a servo sleeps when there is nothing to do.
    pub sleep: Duration,
}

/// What a request does.
#[derive(Debug)]
pub enum Decision {
    /// Answer without changing anything.
    Answer(Value),
    /// Answer once the new session and writes are committed.
    Commit {
        answer: Value,
        session: Box<Session>,
        writes: Vec<Write>,
    },
    /// Ask the optimizer for a configuration, then decide again (kept out of `decide` so the
    /// sampler runs off the async threads).
    Suggest { plan: Plan, goal: Goal },
}

/// What a decision reads besides the session: the application, the server's options, and the
/// session's study with its trials.
#[derive(Clone, Copy)]
pub struct Known<'a> {
    pub app: &'a Application,
    pub options: &'a Options,
    pub study: Option<&'a Study>,
    pub trials: &'a [Trial],
}

/// What the sampler answered after a [`Decision::Suggest`].
#[derive(Clone, Debug)]
pub enum Suggestion {
    Config(BTreeMap<String, ParamValue>),
    /// Nothing left to try: the study is complete.
    Exhausted,
    /// The sampler failed; the reason is told to the servo and kept in the session.
    Failed(String),
}

/// A request the protocol cannot accept: answered with HTTP 400 and this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Decides what `event` does. `suggestion` is the sampler's answer after a [`Decision::Suggest`].
pub fn decide(
    known: &Known<'_>,
    mut session: Session,
    event: EventName,
    param: Option<Value>,
    suggestion: Option<Suggestion>,
) -> Result<Decision, Invalid> {
    let Known {
        app,
        options,
        study,
        trials,
    } = *known;
    match event {
        EventName::Hello => {
            let agent = param
                .as_ref()
                .and_then(|p| p.get("agent"))
                .and_then(Value::as_str)
                .map(str::to_string);
            if agent.is_some() && agent != session.agent {
                session.agent = agent;
                return commit(ok(), session, Vec::new());
            }
            Ok(Decision::Answer(ok()))
        }
        EventName::Goodbye => Ok(Decision::Answer(ok())),
        EventName::WhatsNext => whats_next(app, options, session, trials, suggestion),
        EventName::Description | EventName::Adjustment | EventName::Measurement => {
            result(app, session, study, trials, event, param)
        }
    }
}

fn ok() -> Value {
    json!({ "status": statuses::OK })
}

fn unexpected(reason: String) -> Value {
    json!({ "status": statuses::UNEXPECTED_EVENT, "reason": reason })
}

/// Makes `cmd` the outstanding command and commits it, with `writes`.
fn send(
    mut session: Session,
    cmd: CommandName,
    trial: Option<i64>,
    param: Value,
    writes: Vec<Write>,
) -> Result<Decision, Invalid> {
    session.sequence += 1;
    let pending = Pending {
        cmd,
        cmd_uid: format!("{}-{}", session.study_id.unwrap_or(0), session.sequence),
        trial,
        param,
        issued_at: now(),
    };
    let answer = pending.to_json();
    session.pending = Some(pending);
    commit(answer, session, writes)
}

fn sleep(options: &Options, reason: &str) -> Value {
    json!({
        "cmd": CommandName::Sleep,
        "param": {
            "duration": options.sleep.as_secs_f64(),
            "data": { "status": statuses::OK, "reason": reason },
        },
    })
}

fn control_json(control: &Control) -> Value {
    let mut out = Map::new();
    out.insert("duration".into(), json!(control.duration.as_secs_f64()));
    out.insert("warmup".into(), json!(control.warmup.as_secs_f64()));
    out.insert("delay".into(), json!(control.delay.as_secs_f64()));
    if let Some(settlement) = control.settlement.filter(|s| !s.is_zero()) {
        out.insert("settlement".into(), json!(settlement.as_secs_f64()));
    }
    Value::Object(out)
}

/// A MEASURE of trial `number` that asks the servo to cut it short as `servo run` would: the
/// study's SLOs as fast-fail conditions (`control.userdata.slo`), at `cut_short` times their
/// limits, judged against the baseline's readings. Like `servo run`, nothing is cut before the
/// baseline was measured, nor the baseline itself (it is the reference).
fn with_fast_fail(
    mut measure: Value,
    settings: &EmbeddedOptimizer,
    goal: &Goal,
    description: &Description,
    trials: &[Trial],
    number: i64,
) -> Value {
    let Some(baseline) = study::baseline_trial(trials).filter(|b| b.number != number) else {
        return measure;
    };
    let judged = goal.with_baseline(&baseline.readings);
    let conditions = study::fast_fail_conditions(&judged, description, settings.cut_short);
    if !conditions.is_empty() {
        measure["control"]["userdata"] = json!({ "slo": { "conditions": conditions } });
    }
    measure
}

fn state_json(adjustments: &[Adjustment]) -> Value {
    let mut components: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for a in adjustments {
        let value = match &a.value {
            SettingValue::Int(i) => json!(i),
            SettingValue::Float(f) => json!(f),
            SettingValue::String(s) => json!(s),
        };
        components
            .entry(a.component.as_str())
            .or_default()
            .insert(a.setting.clone(), json!({ "value": value }));
    }
    let components: Map<String, Value> = components
        .into_iter()
        .map(|(name, settings)| (name.to_string(), json!({ "settings": settings })))
        .collect();
    json!({ "application": { "components": components } })
}

fn commit(answer: Value, session: Session, writes: Vec<Write>) -> Result<Decision, Invalid> {
    Ok(Decision::Commit {
        answer,
        session: Box::new(session),
        writes,
    })
}

fn whats_next(
    app: &Application,
    options: &Options,
    mut session: Session,
    trials: &[Trial],
    suggestion: Option<Suggestion>,
) -> Result<Decision, Invalid> {
    if let Some(pending) = &session.pending {
        return Ok(Decision::Answer(pending.to_json()));
    }
    if let Some(reason) = &session.paused {
        return Ok(Decision::Answer(sleep(options, reason)));
    }
    if let Some(reason) = session.blocked.take() {
        // Sleep on it, then describe again: the servo's config may have been fixed meanwhile.
        session.description = None;
        return commit(sleep(options, &reason), session, Vec::new());
    }
    let Some(descriptor) = session.description.clone() else {
        let param = json!({ "control": {} });
        return send(session, CommandName::Describe, None, param, Vec::new());
    };
    let settings = &app.settings;
    let (description, plan, goal) = match understand(app, &descriptor) {
        Ok(parts) => parts,
        Err(reason) => {
            session.description = None;
            return commit(sleep(options, &reason), session, Vec::new());
        }
    };
    let control = study::trial_control(settings);
    let metrics: Vec<&str> = description
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    let measure = json!({ "metrics": metrics, "control": control_json(&control) });

    if let Some(number) = session.adjusted {
        let param = with_fast_fail(measure, settings, &goal, &description, trials, number);
        return send(
            session,
            CommandName::Measure,
            Some(number),
            param,
            Vec::new(),
        );
    }
    let finished = trials
        .iter()
        .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Failed))
        .count();
    let next_number = trials.iter().map(|t| t.number + 1).max().unwrap_or(0);
    let no_settings = plan.params.is_empty();
    let done =
        session.exhausted || finished >= settings.trials as usize || (no_settings && finished > 0);
    // `no_settings` is false wherever a suggestion can come back empty (a study with nothing to
    // tune is never sampled), so one way to finish serves both.
    let finish_now = |session| {
        finish(
            options,
            session,
            trials,
            &plan,
            &goal,
            settings.on_finish,
            no_settings,
        )
    };
    if done {
        return finish_now(session);
    }
    if no_settings {
        // Nothing to tune: measure the baseline once, so the servo's metrics are on record.
        let begin = Write::BeginTrial {
            number: next_number,
            config: BTreeMap::new(),
            started_at: now(),
        };
        return send(
            session,
            CommandName::Measure,
            Some(next_number),
            measure,
            vec![begin],
        );
    }
    let config = match suggestion {
        None => return Ok(Decision::Suggest { plan, goal }),
        Some(Suggestion::Exhausted) => {
            session.exhausted = true;
            return finish_now(session);
        }
        Some(Suggestion::Failed(reason)) => {
            // Not the end of the study: sleep on it, describe again (the servo's settings may
            // have been fixed meanwhile) and ask the sampler again.
            let told = format!(
                "the optimizer could not suggest the next configuration: {reason}; the study is \
                 stopped until it can, and tries again after this sleep"
            );
            session.optimizer_error = Some(reason);
            session.description = None;
            return commit(sleep(options, &told), session, Vec::new());
        }
        Some(Suggestion::Config(config)) => config,
    };
    session.optimizer_error = None;
    // The very first trial measures the application as it is; any later one adjusts first, the
    // baseline included (a failed trial may have left the application elsewhere).
    let (cmd, param) = if trials.is_empty() && config == plan.baseline {
        (CommandName::Measure, measure)
    } else {
        let adjustments = plan.adjustments(&config);
        let param = json!({ "state": state_json(&adjustments), "control": control_json(&control) });
        (CommandName::Adjust, param)
    };
    let begin = Write::BeginTrial {
        number: next_number,
        config,
        started_at: now(),
    };
    send(session, cmd, Some(next_number), param, vec![begin])
}

/// The description, the search space and the goal, or why the study cannot run on them.
fn understand(app: &Application, descriptor: &Value) -> Result<(Description, Plan, Goal), String> {
    let description = wire::parse_description(descriptor)
        .map_err(|e| format!("the servo's description cannot be used: {e}"))?;
    let plan = Plan::from_description(&description);
    let goal = Goal::from_settings(&app.settings).map_err(|e| e.to_string())?;
    goal.check_names(&description, &plan)
        .and_then(|()| goal.check_units(&description))
        .map_err(|e| match e {
            study::StudyError::Config {
                message,
                hint: Some(hint),
            } => format!("{message} ({hint})"),
            other => other.to_string(),
        })?;
    Ok((description, plan, goal))
}

/// The study is over: apply the final configuration once (`on_finish`), then sleep.
fn finish(
    options: &Options,
    mut session: Session,
    trials: &[Trial],
    plan: &Plan,
    goal: &Goal,
    on_finish: OnFinish,
    no_settings: bool,
) -> Result<Decision, Invalid> {
    let best = best_trial(trials, goal.primary().maximize);
    let summary = match best {
        Some(t) => format!(
            "study complete: best trial {} ({} = {})",
            t.number,
            goal.primary().text,
            t.objective.map(|o| format!("{o:.6}")).unwrap_or_default()
        ),
        None if no_settings => {
            "nothing to optimize: the servo describes no unpinned setting".into()
        }
        None => "study complete: no trial met every constraint".into(),
    };
    if session.finished {
        return Ok(Decision::Answer(sleep(options, &summary)));
    }
    if no_settings {
        session.finished = true;
        return commit(sleep(options, &summary), session, Vec::new());
    }
    let baseline = study::baseline_trial(trials).filter(|t| t.state == TrialState::Complete);
    let target = match on_finish {
        OnFinish::Keep => None,
        OnFinish::Baseline => baseline,
        OnFinish::Best => best.or(baseline),
    };
    let last = trials.iter().max_by_key(|t| t.number);
    match target {
        Some(target) if last.is_none_or(|l| l.config != target.config) => {
            let adjustments = plan.adjustments(&target.config);
            let param = json!({ "state": state_json(&adjustments), "control": {} });
            send(session, CommandName::Adjust, None, param, Vec::new())
        }
        _ => {
            session.finished = true;
            commit(sleep(options, &summary), session, Vec::new())
        }
    }
}

/// A DESCRIPTION, ADJUSTMENT or MEASUREMENT: the result of the pending command.
fn result(
    app: &Application,
    mut session: Session,
    study: Option<&Study>,
    trials: &[Trial],
    event: EventName,
    param: Option<Value>,
) -> Result<Decision, Invalid> {
    let param = param.unwrap_or(Value::Null);
    // ServoX reports progress of a long command as the same event without a `status`.
    if param.get("status").is_none() && param.get("progress").is_some() {
        return Ok(Decision::Answer(ok()));
    }
    let status: Status = wire::param(Some(param))
        .map_err(|e| Invalid(format!("{event}'s param is not a status: {e}")))?;
    let expected = match event {
        EventName::Description => CommandName::Describe,
        EventName::Adjustment => CommandName::Adjust,
        _ => CommandName::Measure,
    };
    if status.cmd_uid.is_some() && status.cmd_uid == session.last_done {
        // A retry of a result already recorded.
        return Ok(Decision::Answer(ok()));
    }
    let pending = match session.pending.take() {
        Some(p)
            if p.cmd == expected && status.cmd_uid.as_ref().is_none_or(|uid| *uid == p.cmd_uid) =>
        {
            p
        }
        Some(p) => {
            return Ok(Decision::Answer(unexpected(format!(
                "{event} does not answer the outstanding {} (cmd_uid {})",
                p.cmd, p.cmd_uid
            ))));
        }
        None => {
            return Ok(Decision::Answer(unexpected(format!(
                "no command is outstanding; {event} was not asked for"
            ))));
        }
    };
    session.last_done = Some(pending.cmd_uid.clone());
    let message = || {
        let mut text = status.message.clone().unwrap_or_default();
        if let Some(reason) = &status.reason {
            text = format!(
                "{} ({reason})",
                if text.is_empty() { "failed" } else { &text }
            );
        }
        format!("the servo reported {}: {text}", status.status)
    };
    // A servo stopped by a signal reports `aborted`/`cancelled`: the configuration was not at fault.
    let ended_state = if matches!(
        status.status.as_str(),
        statuses::CANCELLED | statuses::ABORTED
    ) {
        TrialState::Interrupted
    } else {
        TrialState::Failed
    };
    let trial = pending
        .trial
        .and_then(|n| trials.iter().find(|t| t.number == n).cloned());
    let ended = |mut trial: Trial, state: TrialState, error: Option<String>| {
        trial.state = state;
        trial.error = error;
        trial.finished_at = Some(now());
        Write::FinishTrial(trial)
    };
    let mut writes = Vec::new();
    match expected {
        CommandName::Describe => {
            if status.is_ok() {
                let descriptor = status.descriptor.clone().unwrap_or(Value::Null);
                match understand(app, &descriptor) {
                    Ok((_, plan, goal)) => {
                        // A new study when there is none or the settings' ranges changed; the
                        // same space (a servo describing again after a restart) keeps its trials.
                        let stale = study.is_none_or(|s| {
                            crate::study::journal::describe_change(&s.space, &plan.space).is_some()
                        });
                        if stale {
                            writes.push(Write::NewStudy {
                                space: plan.space.clone(),
                                objective: goal.primary().text.clone(),
                                constraints: app.settings.constraints.clone(),
                            });
                            session.adjusted = None;
                            session.exhausted = false;
                            session.finished = false;
                            session.optimizer_error = None;
                        }
                        session.description = Some(descriptor);
                    }
                    Err(reason) => session.blocked = Some(reason),
                }
            } else {
                session.blocked = Some(format!(
                    "the servo could not describe the application: {}",
                    message()
                ));
            }
        }
        // Matched on the command's trial, not on finding it: a trial missing from the study must
        // not be taken for the final adjustment.
        CommandName::Adjust => match (pending.trial, status.is_ok()) {
            (Some(_), true) => session.adjusted = pending.trial,
            (Some(_), false) => {
                if let Some(t) = trial {
                    writes.push(ended(t, ended_state, Some(message())));
                }
                session.adjusted = None;
            }
            (None, ok) => {
                if !ok {
                    tracing::warn!(application = %app.name, "the final adjustment failed: {}", message());
                }
                session.finished = true;
            }
        },
        _ => {
            if let Some(mut t) = trial {
                let write = if status.reason.as_deref() == Some(slo::SLO_FAILED_REASON) {
                    // Stopped for breaking an SLO (ServoX's fast fail reports `aborted`): the
                    // configuration's fault, a failure the optimizer learns from.
                    t.cut_short = Some(status.message.clone().unwrap_or_default());
                    ended(t, TrialState::Failed, Some(message()))
                } else if !status.is_ok() {
                    ended(t, ended_state, Some(message()))
                } else {
                    measured(app, t, &status, trials)
                };
                writes.push(write);
            }
            session.adjusted = None;
        }
    }
    commit(ok(), session, writes)
}

/// Scores a measured trial. Bounds relative to the baseline are made concrete from the baseline
/// trial's readings, as `servo run` does (the baseline itself from its own).
fn measured(app: &Application, mut trial: Trial, status: &Status, trials: &[Trial]) -> Write {
    trial.finished_at = Some(now());
    let scored = Goal::from_settings(&app.settings)
        .map_err(|e| e.to_string())
        .and_then(|goal| {
            let measurement =
                wire::parse_measurement(status.metrics.as_ref().unwrap_or(&Value::Null))?;
            let baseline = study::baseline_trial(trials).filter(|b| b.number != trial.number);
            let goal = match baseline {
                Some(b) => goal.with_baseline(&b.readings),
                None => goal.with_baseline(&study::recorded(&measurement)),
            };
            study::score(&goal, &trial.config, &measurement)
        });
    match scored {
        Ok(score) => {
            trial.state = TrialState::Complete;
            trial.readings = score.readings;
            trial.objective = Some(score.objective);
            trial.constraints = score.constraints;
            trial.feasible = Some(score.feasible);
        }
        Err(e) => {
            trial.state = TrialState::Failed;
            trial.error = Some(e);
        }
    }
    Write::FinishTrial(trial)
}
