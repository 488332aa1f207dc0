//! `servo run` against a remote optimizer: the ServoX command loop.
//!
//! startup → checks (any failing check stops us before the optimizer hears of us) → `HELLO` → then,
//! until interrupted or `max_cycles` commands have run: `WHATS_NEXT`, execute the command, report its
//! result. `DESCRIBE` answers `DESCRIPTION`, `MEASURE` answers `MEASUREMENT`, `ADJUST` answers
//! `ADJUSTMENT` with the state after adjusting, `SLEEP` just waits. Every result echoes the
//! command's `cmd_uid`.
//!
//! A failed connector action is reported to the optimizer as a failed/rejected/cancelled/aborted
//! status and the loop goes on: the optimizer decides what to do about a bad trial, as with ServoX.
//! Only problems no further command can fix end the run: the optimizer refusing us (401, other
//! 4xx), or not answering usably within `settings.backoff` (no answer, 5xx, or an answer that is not
//! the protocol: the client retries those, paced and bounded, so the loop never spins on them).
//!
//! ServoX runs until stopped; so does this loop, unless `max_cycles` bounds it (for cron-style runs,
//! smoke tests and the end-to-end tests). A signal ends the current command, reports it as
//! `aborted`, says `GOODBYE` with the signal's name, shuts the connectors down and exits 130.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::client::{Client, ClientError};
use super::wire::{
    self, AdjustParam, Command, CommandName, DescribeParam, EventName, MeasureParam, SleepParam,
    Status, statuses,
};
use crate::bus::{Bus, BusError, Watched};
use crate::config::Assembly;
use crate::config::optimizer::RemoteOptimizer;
use crate::output::Render;
use servo_core::connector::{ConnectorError, Event, EventContext};
use servo_core::slo;
use servo_core::types::{Control, MeasureRequest, Reading};
use servo_core::units::Duration;

/// How long ServoX sleeps when the optimizer no longer knows the servo (HTTP 410).
const DEPROVISIONED_SLEEP: std::time::Duration = std::time::Duration::from_secs(3600);
/// ServoX's `SLEEP` duration when the command gives none.
const DEFAULT_SLEEP: Duration = Duration::from_secs(120);
/// How long the last words (the interrupted command's status, `GOODBYE`) may take after a signal.
const LAST_WORDS: std::time::Duration = std::time::Duration::from_secs(5);

/// How to run the loop.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Skip the pre-flight checks.
    pub no_checks: bool,
    /// Stop (saying `GOODBYE`) after this many commands; `None` runs until interrupted.
    pub max_cycles: Option<u64>,
    /// The pod's namespace (`POD_NAMESPACE`), for HELLO's telemetry as ServoX sends it.
    pub pod_namespace: Option<String>,
}

/// What happened, for progress displays.
#[derive(Debug)]
pub enum Progress<'a> {
    /// `HELLO` was accepted.
    Connected { url: &'a str },
    /// The optimizer asked for a command.
    Command {
        cmd: CommandName,
        cmd_uid: Option<&'a str>,
    },
    /// A command's result was reported.
    Reported {
        cmd: CommandName,
        status: &'a Status,
    },
}

/// Why the loop could not run.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl RemoteError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RemoteError::Client(e) => e.hint(),
            RemoteError::Bus(_) => None,
        }
    }
}

/// The outcome of a session with the optimizer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RemoteSummary {
    /// The optimizer's application id (`org/app`).
    pub optimizer: String,
    pub url: String,
    /// Commands received.
    pub commands: u64,
    pub described: u64,
    pub measured: u64,
    pub adjusted: u64,
    pub slept: u64,
    /// Commands whose result was a failure status.
    pub failed: u64,
    /// Measurements stopped early because an SLO the optimizer set was violated (counted in
    /// `failed` too).
    pub cut_short: u64,
    /// Why the session ended: `max-cycles`, or the signal's name.
    pub ended: String,
    pub interrupted: bool,
    pub elapsed_seconds: f64,
}

impl Render for RemoteSummary {
    fn human(&self) -> String {
        format!(
            "optimizer {} ({}): {} command(s): {} describe, {} measure, {} adjust, {} sleep; {} failed ({} cut short); ended: {} after {:.1}s\n",
            self.optimizer,
            self.url,
            self.commands,
            self.described,
            self.measured,
            self.adjusted,
            self.slept,
            self.failed,
            self.cut_short,
            self.ended,
            self.elapsed_seconds
        )
    }
}

/// Runs the command loop of one servo against `remote` until interrupted or `max_cycles` commands
/// have run. Connectors are always shut down, whatever happened.
pub async fn run(
    assembly: &Assembly,
    remote: &RemoteOptimizer,
    options: &RunOptions,
    cx: &EventContext,
    mut on_progress: impl FnMut(Progress<'_>),
) -> Result<RemoteSummary, RemoteError> {
    let started = Instant::now();
    let client = Client::new(remote, &assembly.settings, assembly.servo_uid.as_deref())?;
    let mut signals = SignalNames::install();
    let bus = Bus::new(&assembly.mounts);
    let mut summary = RemoteSummary {
        optimizer: remote.display_id(),
        url: client.endpoint().to_string(),
        ..RemoteSummary::default()
    };
    let outcome = match bus.startup(cx).await {
        Ok(()) => {
            session(
                assembly,
                &client,
                &bus,
                options,
                cx,
                &mut summary,
                &mut on_progress,
            )
            .await
        }
        Err(e) => Err(RemoteError::Bus(e)),
    };
    let interrupted = cx.cancel.is_cancelled()
        || matches!(&outcome, Err(RemoteError::Client(ClientError::Cancelled)))
        || matches!(&outcome, Err(RemoteError::Bus(b)) if b.is_interrupted());
    let result = match outcome {
        Ok(Ended::MaxCycles) => {
            summary.ended = "max-cycles".into();
            goodbye(&client, "max-cycles").await;
            Ok(())
        }
        Ok(Ended::Interrupted { greeted }) => {
            summary.ended = signals.name().await.to_string();
            summary.interrupted = true;
            if greeted {
                goodbye(&client, &summary.ended).await;
            }
            Ok(())
        }
        Err(_) if interrupted => {
            summary.ended = signals.name().await.to_string();
            summary.interrupted = true;
            Ok(())
        }
        Err(e) => Err(e),
    };
    let calm = EventContext::default();
    if let Err(e) = bus.shutdown(&calm).await {
        tracing::warn!(error = %e, "shutdown failed");
    }
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    result.map(|()| summary)
}

enum Ended {
    MaxCycles,
    /// `greeted`: `HELLO` was accepted, so the optimizer should hear `GOODBYE`.
    Interrupted {
        greeted: bool,
    },
}

async fn session(
    assembly: &Assembly,
    client: &Client,
    bus: &Bus,
    options: &RunOptions,
    cx: &EventContext,
    summary: &mut RemoteSummary,
    on_progress: &mut impl FnMut(Progress<'_>),
) -> Result<Ended, RemoteError> {
    if !options.no_checks {
        preflight(assembly, bus, cx).await?;
    }
    let hello = json!({
        "agent": servo_core::http::USER_AGENT,
        "telemetry": telemetry(bus, options, cx).await,
    });
    loop {
        match client
            .post::<Value>(EventName::Hello, Some(hello.clone()), &cx.cancel)
            .await
        {
            Ok(answer) => {
                warn_unexpected(EventName::Hello, &answer);
                break;
            }
            Err(ClientError::Deprovisioned) => {
                if !deprovisioned_wait(cx).await {
                    return Ok(Ended::Interrupted { greeted: false });
                }
            }
            Err(ClientError::Cancelled) => return Ok(Ended::Interrupted { greeted: false }),
            Err(e) => return Err(e.into()),
        }
    }
    on_progress(Progress::Connected {
        url: client.endpoint(),
    });
    loop {
        if options
            .max_cycles
            .is_some_and(|max| summary.commands >= max)
        {
            return Ok(Ended::MaxCycles);
        }
        let command = match client
            .post::<Command>(EventName::WhatsNext, None, &cx.cancel)
            .await
        {
            Ok(command) => command,
            Err(ClientError::Cancelled) => return Ok(Ended::Interrupted { greeted: true }),
            Err(ClientError::Deprovisioned) => {
                if !deprovisioned_wait(cx).await {
                    return Ok(Ended::Interrupted { greeted: true });
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        summary.commands += 1;
        on_progress(Progress::Command {
            cmd: command.cmd,
            cmd_uid: command.cmd_uid.as_deref(),
        });
        let cmd = command.cmd;
        let cmd_uid = command.cmd_uid.clone();
        let executed = match progress_event(cmd) {
            Some(event) => {
                let expected = expected_duration(&command.param);
                let op = EventContext::new(cx.cancel.child_token());
                let work = execute(command, bus, &op, summary);
                let reports = report_progress(client, event, cmd_uid.as_deref(), expected, &op);
                tokio::pin!(work, reports);
                let mut verdict = None;
                let executed = loop {
                    tokio::select! {
                        done = &mut work => break done,
                        v = &mut reports, if verdict.is_none() => {
                            verdict = Some(v);
                            op.cancel.cancel();
                        }
                    }
                };
                match verdict {
                    // Out of step with the optimizer: ServoX drops the command and asks again.
                    Some(Verdict::Resync(why)) => {
                        tracing::error!("{why}: dropping {cmd} and asking WHATS_NEXT again");
                        continue;
                    }
                    Some(Verdict::Cancelled(reason)) if !cx.cancel.is_cancelled() => {
                        tracing::warn!("the optimizer cancelled {cmd} ({reason})");
                        let status = Status::failure(
                            statuses::CANCELLED,
                            "cancelled",
                            format!("the optimizer cancelled {cmd}: {reason}"),
                        );
                        Some((event, status))
                    }
                    _ => executed,
                }
            }
            None => execute(command, bus, cx, summary).await,
        };
        let Some((event, status)) = executed else {
            // SLEEP: nothing to report.
            if cx.cancel.is_cancelled() {
                return Ok(Ended::Interrupted { greeted: true });
            }
            continue;
        };
        let status = status.with_cmd_uid(cmd_uid);
        if !status.is_ok() {
            summary.failed += 1;
            tracing::warn!(
                command = %cmd, status = %status.status,
                reason = status.reason.as_deref().unwrap_or(""),
                message = status.message.as_deref().unwrap_or(""),
                "command did not succeed; reporting it to the optimizer"
            );
        }
        let param = serde_json::to_value(&status).ok();
        if cx.cancel.is_cancelled() {
            // The run is ending, but the optimizer must still learn what became of its command.
            if let Err(e) = client.post_once(event, param, LAST_WORDS).await {
                tracing::warn!(error = %e, "could not report the interrupted {cmd}");
            }
            on_progress(Progress::Reported {
                cmd,
                status: &status,
            });
            return Ok(Ended::Interrupted { greeted: true });
        }
        match client.post::<Value>(event, param, &cx.cancel).await {
            Ok(answer) => warn_unexpected(event, &answer),
            Err(ClientError::Cancelled) => return Ok(Ended::Interrupted { greeted: true }),
            Err(ClientError::Deprovisioned) => {
                if !deprovisioned_wait(cx).await {
                    return Ok(Ended::Interrupted { greeted: true });
                }
            }
            Err(e) => return Err(e.into()),
        }
        on_progress(Progress::Reported {
            cmd,
            status: &status,
        });
    }
}

/// ServoX reports the progress of a long operation this often (`DurationProgress.watch`).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long one progress report may take: a slow optimizer must not hold the operation up.
const PROGRESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The event reporting the progress and result of a command that runs long (`MEASURE`,
/// `ADJUST`); `None` for the others.
fn progress_event(cmd: CommandName) -> Option<EventName> {
    match cmd {
        CommandName::Measure => Some(EventName::Measurement),
        CommandName::Adjust => Some(EventName::Adjustment),
        CommandName::Describe | CommandName::Sleep => None,
    }
}

/// How long a command's `control` says it will take (`warmup + duration + delay`), for the
/// percentage of a progress report.
fn expected_duration(param: &Option<Value>) -> Option<std::time::Duration> {
    let control = param.as_ref()?.get("control")?;
    let total: std::time::Duration = ["warmup", "duration", "delay"]
        .iter()
        .filter_map(|key| control.get(*key))
        .filter_map(|v| serde_json::from_value::<Duration>(v.clone()).ok())
        .map(std::time::Duration::from)
        .sum();
    (!total.is_zero()).then_some(total)
}

/// What an optimizer's answer to a progress report asks for.
#[derive(Debug)]
enum Verdict {
    /// `cancelled`: stop the operation and report it cancelled.
    Cancelled(String),
    /// `unexpected-event`, or `invalid` with `unexpected cmd_uid`: the optimizer has moved on.
    Resync(String),
}

/// Reports the progress of the operation running under `op` every [`PROGRESS_EVERY`], as
/// ServoX does (`{progress, runtime, cmd_uid}` on the operation's own event), until an answer
/// asks to stop it; never returns otherwise (the operation's end drops it).
async fn report_progress(
    client: &Client,
    event: EventName,
    cmd_uid: Option<&str>,
    expected: Option<std::time::Duration>,
    op: &EventContext,
) -> Verdict {
    let started = Instant::now();
    loop {
        if op.sleep(PROGRESS_EVERY).await.is_err() {
            std::future::pending::<()>().await;
        }
        let runtime = started.elapsed();
        let progress = expected.map_or(0.0, |e| {
            (runtime.as_secs_f64() / e.as_secs_f64() * 100.0).min(99.0)
        });
        let param = json!({
            "progress": progress.floor(),
            "runtime": runtime.as_secs_f64(),
            "cmd_uid": cmd_uid,
        });
        let answer = match client
            .post_once(event, Some(param), PROGRESS_DEADLINE)
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, "could not report the progress of {event}");
                continue;
            }
        };
        let status = answer.get("status").and_then(Value::as_str).unwrap_or("");
        let reason = answer
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match status {
            statuses::CANCELLED => return Verdict::Cancelled(reason),
            statuses::UNEXPECTED_EVENT => {
                return Verdict::Resync(format!("the optimizer did not expect {event} ({reason})"));
            }
            "invalid" if reason == "unexpected cmd_uid" => {
                return Verdict::Resync(format!(
                    "the optimizer moved past this command ({reason})"
                ));
            }
            statuses::OK | "" => {}
            other => {
                tracing::warn!(status = other, %reason, "the optimizer rejected a progress report")
            }
        }
    }
}

/// HELLO's telemetry with ServoX's keys (`servox.version`, `servox.platform`,
/// `servox.namespace`; each mount's own under `MOUNT.`, such as a kubernetes mount's
/// `MOUNT.namespace` and `MOUNT.version`), which the backend reads.
async fn telemetry(
    bus: &Bus,
    options: &RunOptions,
    cx: &EventContext,
) -> serde_json::Map<String, Value> {
    let mut telemetry = serde_json::Map::new();
    telemetry.insert(
        "servox.version".into(),
        Value::String(env!("CARGO_PKG_VERSION").into()),
    );
    telemetry.insert(
        "servox.platform".into(),
        Value::String(format!(
            "{}-{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        )),
    );
    if let Some(namespace) = &options.pod_namespace {
        telemetry.insert("servox.namespace".into(), Value::String(namespace.clone()));
    }
    for (key, value) in bus.telemetry(cx).await {
        telemetry.insert(key, Value::String(value));
    }
    telemetry
}

/// Runs one command; returns the event to report it with and its status (`None` for `SLEEP`).
async fn execute(
    command: Command,
    bus: &Bus,
    cx: &EventContext,
    summary: &mut RemoteSummary,
) -> Option<(EventName, Status)> {
    match command.cmd {
        CommandName::Describe => {
            summary.described += 1;
            let status = match wire::param::<DescribeParam>(command.param) {
                Err(e) => invalid_param(CommandName::Describe, &e),
                Ok(_) => match bus.describe(cx).await {
                    Ok(d) => Status {
                        descriptor: Some(wire::description(&d)),
                        ..Status::ok()
                    },
                    Err(e) => failure(&e, cx),
                },
            };
            Some((EventName::Description, status))
        }
        CommandName::Measure => {
            summary.measured += 1;
            let status = match wire::param::<MeasureParam>(command.param) {
                Err(e) => invalid_param(CommandName::Measure, &e),
                Ok(p) => {
                    let request = MeasureRequest {
                        metrics: p.metrics,
                        control: p.control.map(Control::from).unwrap_or_default(),
                    };
                    measure(&request, bus, cx, summary).await
                }
            };
            Some((EventName::Measurement, status))
        }
        CommandName::Adjust => {
            summary.adjusted += 1;
            let status = match wire::param::<AdjustParam>(command.param) {
                Err(e) => invalid_param(CommandName::Adjust, &e),
                Ok(p) => adjust(p, bus, cx).await,
            };
            Some((EventName::Adjustment, status))
        }
        CommandName::Sleep => {
            summary.slept += 1;
            let p = wire::param::<SleepParam>(command.param).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "SLEEP has an invalid parameter; sleeping {DEFAULT_SLEEP}");
                SleepParam::default()
            });
            let duration = p.duration.unwrap_or(DEFAULT_SLEEP);
            let why = p
                .data
                .as_ref()
                .and_then(|d| d.get("reason").or_else(|| d.get("status")))
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            tracing::info!("the optimizer asked to sleep {duration} ({why})");
            // Cut short by a signal: the loop sees the cancellation and says GOODBYE.
            let _ = cx.sleep(duration.into()).await;
            None
        }
    }
}

/// Measures; when the optimizer sent SLO conditions (`control.userdata.slo`, ServoX's fast fail),
/// the measure connectors' readings so far are judged by them while it runs, and a violation
/// stops the measurement and is reported as ServoX reports its fast fail: `aborted`, reason
/// `slo-violation`, no metrics. A condition on a metric no connector reports never fails here:
/// a connector that reads it itself (Prometheus) judges it.
async fn measure(
    request: &MeasureRequest,
    bus: &Bus,
    cx: &EventContext,
    summary: &mut RemoteSummary,
) -> Status {
    // Like ServoX, only a connector that judges them itself (Prometheus) refuses conditions it
    // cannot read; the measurement goes on, measured whole.
    let conditions = slo::conditions(request.control.userdata.as_ref()).unwrap_or_else(|e| {
        tracing::warn!("the SLO conditions in `control.userdata.slo` are invalid, not judged: {e}");
        None
    });
    let measured = match conditions {
        None => bus.measure(request, cx).await,
        Some(conditions) => {
            let mut judge = SloJudge::new(conditions);
            match bus
                .measure_watched(request, cx, |readings| judge.observe(readings))
                .await
            {
                Watched::Measured(result) => result,
                Watched::Stopped(_) if cx.cancel.is_cancelled() => Err(BusError::Interrupted),
                Watched::Stopped(violation) => {
                    summary.cut_short += 1;
                    tracing::warn!(
                        "measurement cut short, an SLO the optimizer set is violated: {violation}"
                    );
                    return Status::failure(
                        statuses::ABORTED,
                        slo::SLO_FAILED_REASON,
                        format!("SLO violation(s) observed: {violation}"),
                    );
                }
            }
        }
    };
    match measured {
        Ok(m) => {
            let (metrics, annotations) = wire::measurement(&m);
            Status {
                metrics: Some(metrics),
                annotations: Some(annotations),
                ..Status::ok()
            }
        }
        Err(e) => failure(&e, cx),
    }
}

/// Judges the readings so far of one measurement by the optimizer's SLO conditions: each report
/// is one observation, of the latest reading of every metric reported so far.
struct SloJudge {
    observer: slo::Observer,
    latest: BTreeMap<String, f64>,
}

impl SloJudge {
    fn new(conditions: Vec<slo::SloCondition>) -> Self {
        let described: Vec<String> = conditions.iter().map(ToString::to_string).collect();
        tracing::info!(
            "fast fail watches the readings so far: {}",
            described.join(", ")
        );
        Self {
            // Readings so far are summaries the connectors computed: a 0 is a value, not a gap.
            observer: slo::Observer::new(conditions, false),
            latest: BTreeMap::new(),
        }
    }

    /// Takes one report; returns the violation once a condition failed often enough.
    fn observe(&mut self, readings: Vec<Reading>) -> Option<String> {
        for r in readings {
            self.latest.insert(r.metric.name, r.value);
        }
        let verdict = self.observer.observe(&self.latest);
        for (condition, outcome) in self.observer.latest() {
            let status = outcome.map(|o| o.status);
            tracing::debug!("fast fail: {condition}: {status:?}");
        }
        verdict.err()
    }
}

async fn adjust(p: AdjustParam, bus: &Bus, cx: &EventContext) -> Status {
    let current = match bus.describe(cx).await {
        Ok(d) => d,
        Err(e) => return failure(&e, cx),
    };
    let adjustments = match wire::adjustments(&p.state, &current) {
        Ok(a) => a,
        Err(message) => return Status::failure(statuses::REJECTED, "invalid", message),
    };
    let control = p.control.map(Control::from).unwrap_or_default();
    match bus.adjust(&adjustments, &control, cx).await {
        Ok(after) => Status {
            state: Some(wire::description(&after)),
            ..Status::ok()
        },
        Err(e) => failure(&e, cx),
    }
}

fn invalid_param(cmd: CommandName, error: &str) -> Status {
    Status::failure(
        statuses::REJECTED,
        "invalid",
        format!("{cmd} has an invalid param: {error}"),
    )
}

/// The status that tells the optimizer how an action failed, as ServoX words it.
fn failure(e: &BusError, cx: &EventContext) -> Status {
    let message = e.to_string();
    if cx.cancel.is_cancelled() || e.is_interrupted() {
        return Status::failure(statuses::ABORTED, "interrupted", message);
    }
    match e {
        BusError::Invalid { .. } => Status::failure(statuses::REJECTED, "invalid", message),
        BusError::Cancelled { .. } => Status::failure(statuses::CANCELLED, "cancelled", message),
        BusError::Failed { failures, .. } => {
            let rejected = failures.iter().find_map(|(_, e)| match e {
                ConnectorError::Rejected { reason, .. } => Some(reason.clone()),
                _ => None,
            });
            match rejected {
                Some(reason) => Status::failure(statuses::REJECTED, reason, message),
                None if e.is_usage() => Status::failure(statuses::REJECTED, "invalid", message),
                None => Status::failure(statuses::FAILED, "unknown", message),
            }
        }
        BusError::Interrupted => Status::failure(statuses::ABORTED, "interrupted", message),
    }
}

/// The checks of `servo check`, progressively as `checks:` says; any failure that still halts
/// (`checks.halt_on` and its filters) stops the run before the optimizer is contacted.
async fn preflight(assembly: &Assembly, bus: &Bus, cx: &EventContext) -> Result<(), BusError> {
    let failing: Vec<(String, ConnectorError)> = bus
        .check_until_ready(&assembly.checks, cx)
        .await?
        .into_iter()
        .map(|c| {
            let message = format!(
                "{}: {}",
                c.name,
                c.message.unwrap_or_else(|| "failed".into())
            );
            let error = match c.hint {
                Some(hint) => ConnectorError::failed(message).with_hint(hint),
                None => ConnectorError::failed(message),
            };
            (c.connector, error)
        })
        .collect();
    if failing.is_empty() {
        Ok(())
    } else {
        Err(BusError::Failed {
            event: Event::Check,
            failures: failing,
        })
    }
}

/// Logs an optimizer's `unexpected-event` answer: it means we are out of step with it.
fn warn_unexpected(event: EventName, answer: &Value) {
    if answer.get("status").and_then(Value::as_str) == Some(statuses::UNEXPECTED_EVENT) {
        let reason = answer.get("reason").and_then(Value::as_str).unwrap_or("");
        tracing::warn!(%event, reason, "the optimizer did not expect this event");
    }
}

/// Says `GOODBYE` once, within a few seconds: the run is ending either way.
async fn goodbye(client: &Client, reason: &str) {
    if let Err(e) = client
        .post_once(
            EventName::Goodbye,
            Some(json!({ "reason": reason })),
            LAST_WORDS,
        )
        .await
    {
        tracing::warn!(error = %e, "could not say GOODBYE to the optimizer");
    }
}

/// ServoX's answer to HTTP 410 `unexpected servo_uid`: wait an hour for the servo to be
/// deprovisioned. Returns `false` when interrupted.
async fn deprovisioned_wait(cx: &EventContext) -> bool {
    tracing::warn!(
        "the optimizer no longer knows this servo (HTTP 410 unexpected servo_uid); waiting an hour for deprovisioning"
    );
    cx.sleep(DEPROVISIONED_SLEEP).await.is_ok()
}

/// Which signal ended the run, for `GOODBYE`'s reason (ServoX sends `SIGTERM`/`SIGINT`).
///
/// The run's cancellation token says *that* a signal came, not which; these listeners record the
/// name. Tokio delivers a signal to every listener, so the name is known by the time the
/// cancellation has been noticed, give or take a scheduling round; [`SignalNames::name`] waits a
/// bounded moment for it.
struct SignalNames {
    name: watch::Receiver<Option<&'static str>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SignalNames {
    fn install() -> Self {
        let (tx, name) = watch::channel(None);
        #[allow(unused_mut)]
        let mut tasks = Vec::new();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            for (kind, label) in [
                (SignalKind::terminate(), "SIGTERM"),
                (SignalKind::interrupt(), "SIGINT"),
            ] {
                if let Ok(mut stream) = signal(kind) {
                    let tx = tx.clone();
                    tasks.push(tokio::spawn(async move {
                        if stream.recv().await.is_some() {
                            let _ = tx.send(Some(label));
                        }
                    }));
                }
            }
        }
        Self { name, tasks }
    }

    /// The signal's name, or `interrupted` when the run was cancelled some other way.
    async fn name(&mut self) -> &'static str {
        let wait = self.name.wait_for(Option::is_some);
        match tokio::time::timeout(std::time::Duration::from_millis(500), wait).await {
            Ok(Ok(name)) => name.unwrap_or("interrupted"),
            _ => "interrupted",
        }
    }
}

impl Drop for SignalNames {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_servox_statuses() {
        let cx = EventContext::default();
        let invalid = BusError::Invalid {
            message: "no connector provides the metric `x`".into(),
            hint: None,
        };
        let s = failure(&invalid, &cx);
        assert_eq!(
            (s.status.as_str(), s.reason.as_deref()),
            ("rejected", Some("invalid"))
        );

        let unstable = BusError::Failed {
            event: Event::Adjust,
            failures: vec![(
                "k8s".into(),
                ConnectorError::Rejected {
                    reason: "unstable".into(),
                    message: "crash loop".into(),
                },
            )],
        };
        let s = failure(&unstable, &cx);
        assert_eq!(
            (s.status.as_str(), s.reason.as_deref()),
            ("rejected", Some("unstable"))
        );

        let failed = BusError::Failed {
            event: Event::Measure,
            failures: vec![("p".into(), ConnectorError::failed("boom"))],
        };
        let s = failure(&failed, &cx);
        assert_eq!(s.status, "failed");
        assert!(s.message.as_deref().is_some_and(|m| m.contains("boom")));

        cx.cancel.cancel();
        assert_eq!(failure(&failed, &cx).status, "aborted");
    }
}
