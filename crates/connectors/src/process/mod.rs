//! `process`: a local child process as the thing being tuned.
//!
//! servo starts `command` with `args` and `env` rendered from the current setting values
//! (`--workers {{ workers }}`), waits until it is ready (an HTTP URL answers 2xx/3xx, or a TCP port
//! accepts connections), restarts it with new values on `adjust`, and reports the CPU time and
//! resident memory of the process and its descendants, read from `/proc`, on `measure`. It is the
//! quickstart's target (`command: servo` runs `servo demo-app`) and a real tool for tuning any local
//! service. No shell is involved: arguments are passed to the program as a vector.
//!
//! Needs: Linux (`/proc`, process groups, `PR_SET_PDEATHSIG`) and the program itself.
//! Events: `startup` (start with the baseline values), `shutdown` (stop: SIGTERM, then SIGKILL after
//! `stop_timeout`), `describe`, `metrics`, `measure`, `adjust` (restart; on failure restore the
//! previous values and reject the adjustment as `unstable`), `check`.
//!
//! The child never outlives servo: it runs in its own process group, which servo signals as a whole;
//! it gets SIGTERM if servo dies, even by SIGKILL (`PR_SET_PDEATHSIG`; what it started itself is then
//! up to it); and a child still running when the connector is dropped is killed with its group.
//! Cancellation (Ctrl-C, SIGTERM to servo) interrupts any wait here and leaves the process in place
//! for `shutdown`, which stops it gracefully and always runs.
//!
//! What `measure` counts: the process **and its descendants** (found through
//! `/proc/PID/task/TID/children`), because many servers do their work in forked workers, and tuning
//! `workers` while measuring only the parent would reward the wrong thing. Every `SAMPLE_INTERVAL`
//! it reads `utime + stime + cutime + cstime` from `/proc/PID/stat` (the `c` fields carry the time
//! of children that exited and were reaped, so none is lost when a worker exits) and `VmRSS` from
//! `/proc/PID/status`, summed over the tree. Metrics: `cpu_seconds` used in the window,
//! `cpu_cores_avg` (that over the window's length, with a per-second series), `rss_mean_bytes` (with
//! a per-second series) and `rss_max_bytes`, the highest sample or the leader's `VmHWM` (reset at the
//! window's start through `/proc/PID/clear_refs`), whichever is higher, so that a spike between two
//! samples still counts. RSS sums count pages shared between processes once per process, like `top`.
//! Every second the window so far is reported as partial readings (`VmHWM` only at the end), so
//! a study stops a trial already far over a memory or CPU SLO.

mod checks;
mod lifecycle;
mod running;
mod settings;
mod template;
#[cfg(test)]
mod tests;
mod usage;

use async_trait::async_trait;
use running::{Halt, Running};
use servo_core::connector::{BuildContext, EventContext, Handlers};
use servo_core::types::{
    Adjustment, Check, Control, Description, MeasureRequest, Measurement, Metric,
};
use servo_core::units::Duration;
use servo_core::{BuildConnector, Connector, ConnectorError, Event};
use settings::{Restart, Settings};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use template::{Launch, Values};

servo_core::register!(Process {
    name: "process",
    description: "Runs a local process with templated arguments, restarts it on adjust, measures its CPU and memory",
});

/// The connector: settings, parsed templates, and the running process.
pub struct Process {
    settings: Settings,
    mount: String,
    /// What to execute: this binary for `servo`, an absolute path, or a bare name looked up on PATH.
    program: PathBuf,
    working_dir: PathBuf,
    launch: Launch,
    http: crate::util::http::LazyClient,
    /// The values the process runs with (or will start with); `describe` reads them without waiting
    /// for a measurement that holds `running`.
    values: Mutex<Values>,
    /// The process, from the moment it is spawned until it is reaped: a cancelled handler leaves it
    /// here for `shutdown`, never in a local that would be dropped.
    running: tokio::sync::Mutex<Option<Running>>,
}

impl BuildConnector for Process {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        let launch = settings.launch().map_err(|problems| {
            let messages: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            ConnectorError::invalid(messages.join("; "))
        })?;
        let program = if settings.command == "servo" {
            std::env::current_exe().map_err(|e| {
                ConnectorError::failed(format!(
                    "cannot find the servo binary to run `servo {}`: {e}",
                    settings.args.join(" ")
                ))
                .with_hint("set `command` to the path of a servo binary")
            })?
        } else if settings.command.contains('/') {
            cx.base_dir.join(&settings.command)
        } else {
            PathBuf::from(&settings.command)
        };
        let working_dir = match &settings.working_dir {
            Some(dir) => cx.base_dir.join(dir),
            None => cx.base_dir.clone(),
        };
        // Built on first probe. No pooling: a kept-alive connection would outlive the process it
        // was opened to; no proxy: the process is local.
        let http = crate::util::http::LazyClient::new(|builder| {
            builder
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .pool_max_idle_per_host(0)
        });
        Ok(Self {
            values: Mutex::new(settings.baseline()),
            mount: cx.mount.clone(),
            program,
            working_dir,
            launch,
            http,
            running: tokio::sync::Mutex::new(None),
            settings,
        })
    }
}

/// Lines of output kept per process, quoted when it fails.
const TAIL_LINES: usize = 50;
/// Longer output lines are cut: an error message quotes lines, not megabytes.
const MAX_LINE_BYTES: usize = 1000;
/// How often a wait checks that the process is still alive, and a measurement samples `/proc`.
const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// Spacing of the points of the measured series.
const SERIES_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How long to wait for the output pipes of an exited process to close (a grandchild that left the
/// group may hold them open forever).
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// Bound of the connection attempt that tells whether a port is already taken.
const BUSY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
fn metrics() -> [Metric; 4] {
    [
        Metric::new("cpu_seconds", "s"),
        Metric::new("cpu_cores_avg", "cores"),
        Metric::new("rss_max_bytes", "bytes"),
        Metric::new("rss_mean_bytes", "bytes"),
    ]
}

#[async_trait]
impl Connector for Process {
    fn handlers(&self) -> Handlers {
        Handlers::on(&[
            Event::Startup,
            Event::Shutdown,
            Event::Check,
            Event::Describe,
            Event::Metrics,
            Event::Measure,
            Event::Adjust,
        ])
    }

    async fn startup(&self, cx: &EventContext) -> Result<(), ConnectorError> {
        let mut slot = self.running.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        let invocation = self.invocation(&self.values())?;
        Ok(self.start(&mut slot, invocation, cx).await?)
    }

    async fn shutdown(&self, _cx: &EventContext) -> Result<(), ConnectorError> {
        let mut slot = self.running.lock().await;
        if let Some(running) = slot.as_mut() {
            self.stop(running).await;
        }
        *slot = None;
        Ok(())
    }

    async fn describe(&self, _cx: &EventContext) -> Result<Description, ConnectorError> {
        Ok(Description {
            components: vec![self.component(&self.values())],
            metrics: Vec::new(),
        })
    }

    async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        Ok(metrics().to_vec())
    }

    async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        let duration = request
            .control
            .requested_duration()
            .unwrap_or(self.settings.duration);
        let control = &request.control;
        let mut slot = self.running.lock().await;
        let Some(running) = slot.as_mut() else {
            return Err(ConnectorError::failed("cannot measure: the process is not running")
                .with_hint("it failed to start or to restart earlier; see that error, fix it and run servo again"));
        };
        tracing::debug!(mount = %self.mount, pid = running.pid, "measuring for {duration}");
        let outcome = async {
            running.watch(control.warmup.as_std(), cx).await?;
            let window = self.sample(running, duration.as_std(), cx).await?;
            running.watch(control.delay.as_std(), cx).await?;
            Ok(window)
        }
        .await;
        match outcome {
            Ok(window) => Ok(Measurement {
                readings: window.readings(),
                annotations: BTreeMap::new(),
            }),
            Err(trouble) => Err(self
                .fail(&mut slot, trouble, "during the measurement")
                .await
                .into()),
        }
    }

    async fn adjust(
        &self,
        adjustments: &[Adjustment],
        control: &Control,
        cx: &EventContext,
    ) -> Result<Description, ConnectorError> {
        let previous = self.values();
        let mut values = previous.clone();
        for a in adjustments {
            if a.component != self.settings.component
                || !self.settings.settings.contains_key(&a.setting)
            {
                return Err(ConnectorError::invalid(format!(
                    "`{a}` does not name a setting of this process"
                )));
            }
            values.insert(a.setting.clone(), a.value.clone());
        }
        let invocation = self.invocation(&values)?;
        let mut slot = self.running.lock().await;
        let unchanged = slot
            .as_mut()
            .is_some_and(|r| r.invocation == invocation && matches!(r.exited(), Ok(None)));
        if unchanged && self.settings.restart == Restart::OnChange {
            self.set_values(values.clone());
            return Ok(Description {
                components: vec![self.component(&values)],
                metrics: Vec::new(),
            });
        }
        if let Some(running) = slot.as_mut() {
            self.stop(running).await;
            *slot = None;
        }
        let settlement = control.settlement.unwrap_or(Duration::ZERO).as_std();
        let mut outcome = self.start(&mut slot, invocation, cx).await;
        if outcome.is_ok()
            && let Some(running) = slot.as_mut()
            && let Err(trouble) = running.watch(settlement, cx).await
        {
            outcome = Err(self.fail(&mut slot, trouble, "while settling").await);
        }
        let failure = match outcome {
            Ok(()) => {
                self.set_values(values.clone());
                return Ok(Description {
                    components: vec![self.component(&values)],
                    metrics: Vec::new(),
                });
            }
            Err(Halt::Cancelled) => return Err(ConnectorError::Cancelled),
            Err(Halt::Failed(failure)) => failure,
        };
        let shown: Vec<String> = adjustments.iter().map(ToString::to_string).collect();
        tracing::warn!(
            mount = %self.mount,
            "{} failed: {}; restoring the previous values",
            shown.join(" "),
            failure.message
        );
        let restore = self.invocation(&previous)?;
        match self.start(&mut slot, restore, cx).await {
            Ok(()) => Err(failure.rejected()),
            Err(Halt::Cancelled) => Err(ConnectorError::Cancelled),
            Err(Halt::Failed(again)) => Err(ConnectorError::failed(format!(
                "{}\nrestoring the previous values failed too: {}",
                failure.text(""),
                again.text("")
            ))
            .with_hint("the process is not running: fix the cause above and start servo again")),
        }
    }

    async fn check(&self, _cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        Ok(vec![
            self.check_command(),
            self.check_working_dir(),
            self.check_process().await?,
        ])
    }
}
