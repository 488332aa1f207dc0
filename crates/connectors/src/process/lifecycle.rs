//! Starting, probing, stopping and sampling the process: the work behind the events.

use super::checks::{NOT_ON_PATH_HINT, WORKING_DIR_HINT, busy_hint, busy_message, is_bare_name};
use super::running::{
    Failure, Halt, Running, Tail, Trouble, exited, forward, is_taken, later, root_cause,
    shell_quote,
};
use super::template::{Invocation, Target, Values};
use super::usage::{
    Window, peak_rss, read_usage_async, reset_peak_rss, ticks_per_second, unix_now,
};
use super::{Process, SAMPLE_INTERVAL};
use crate::util::child;
use servo_core::ConnectorError;
use servo_core::connector::EventContext;
use servo_core::types::Component;
use std::io;
use std::process::Stdio;
use std::sync::Arc;
use tokio::process::Command;

/// How often a measurement reports its window so far (see `servo_core::PartialReadings`).
const PARTIAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Process {
    pub(super) fn values(&self) -> Values {
        self.values.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub(super) fn set_values(&self, values: Values) {
        if let Ok(mut current) = self.values.lock() {
            *current = values;
        }
    }

    pub(super) fn component(&self, values: &Values) -> Component {
        let settings = self
            .settings
            .settings
            .iter()
            .map(|(name, spec)| {
                let mut setting = spec.setting(name);
                setting.value = values.get(name).cloned().or(setting.value);
                setting
            })
            .collect();
        Component::new(self.settings.component.clone(), settings)
    }

    pub(super) fn invocation(&self, values: &Values) -> Result<Invocation, ConnectorError> {
        let ready = match &self.launch.ready {
            Some(probe) => Some(probe.render(values).map_err(|message| {
                ConnectorError::invalid(format!("ready.{}: {message}", probe.key()))
                    .with_hint("the probe is rendered from the setting values: choose values that make it valid")
            })?),
            None => None,
        };
        Ok(Invocation {
            args: self.launch.args.iter().map(|t| t.render(values)).collect(),
            env: self
                .launch
                .env
                .iter()
                .map(|(n, t)| (n.clone(), t.render(values)))
                .collect(),
            ready,
        })
    }

    /// The command line as a person would type it (environment left out: it may hold secrets).
    pub(super) fn command_line(&self, invocation: &Invocation) -> String {
        let program = self.program.to_string_lossy();
        std::iter::once(program.as_ref())
            .chain(invocation.args.iter().map(String::as_str))
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(super) async fn spawn(&self, invocation: Invocation) -> Result<Running, Trouble> {
        let mut command = Command::new(&self.program);
        command
            .args(&invocation.args)
            .current_dir(&self.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SERVO_") {
                command.env_remove(name);
            }
        }
        command.envs(invocation.env.iter().map(|(n, v)| (n, v)));
        // SIGTERM when servo dies: the process gets to clean up, as on `shutdown`.
        child::isolate(&mut command, child::Signal::TERM);
        let child = child::spawn_from_a_lasting_thread(command)
            .await
            .map_err(Trouble::Spawn)?;
        let Some(mut group) = child::Group::new(child) else {
            // Only a reaped child has no pid, and nothing could have reaped this one yet.
            return Err(Trouble::Spawn(io::Error::other(
                "the process vanished as it started",
            )));
        };
        let pid = group.pid();
        let (stdout, stderr) = group
            .child()
            .map(|c| (c.stdout.take(), c.stderr.take()))
            .unwrap_or_default();
        let tail = Arc::new(Tail::default());
        let mut readers = Vec::new();
        if let Some(stdout) = stdout {
            readers.push(tokio::spawn(forward(
                stdout,
                "stdout",
                pid,
                self.mount.clone(),
                Arc::clone(&tail),
            )));
        }
        if let Some(stderr) = stderr {
            readers.push(tokio::spawn(forward(
                stderr,
                "stderr",
                pid,
                self.mount.clone(),
                Arc::clone(&tail),
            )));
        }
        tracing::info!(mount = %self.mount, pid, "started {}", self.command_line(&invocation));
        Ok(Running {
            group,
            pid,
            invocation,
            tail,
            readers,
        })
    }

    /// Starts the process with `invocation` into `slot` (which must be empty) and waits until it is
    /// ready. On failure the process is stopped and the failure quotes its last output; on
    /// cancellation it stays in `slot` for `shutdown`.
    pub(super) async fn start(
        &self,
        slot: &mut Option<Running>,
        invocation: Invocation,
        cx: &EventContext,
    ) -> Result<(), Halt> {
        if let Some(target) = &invocation.ready
            && is_taken(target).await
        {
            let trouble = Trouble::Busy(target.clone());
            return Err(Halt::Failed(self.explain(
                trouble,
                &invocation,
                None,
                "before it started",
            )));
        }
        let running = match self.spawn(invocation.clone()).await {
            Ok(running) => slot.insert(running),
            Err(trouble) => return Err(Halt::Failed(self.explain(trouble, &invocation, None, ""))),
        };
        let outcome = match invocation.ready.clone() {
            Some(target) => self.wait_until_ready(running, &target, cx).await,
            None => Ok(()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(mount = %self.mount, pid = running.pid, "ready");
                Ok(())
            }
            Err(trouble) => Err(self.fail(slot, trouble, "before it was ready").await),
        }
    }

    /// Stops `running` gracefully (see [`Running::stop`]) and logs how it ended.
    pub(super) async fn stop(&self, running: &mut Running) {
        let status = running.stop(self.settings.stop_timeout.as_std()).await;
        let how = status.map_or_else(|| "not reaped".to_string(), |s| s.to_string());
        tracing::info!(mount = %self.mount, pid = running.pid, "stopped ({how})");
    }

    /// Stops the process in `slot` after `trouble` and explains it with the process' last output.
    /// A cancellation leaves the process in place for `shutdown`.
    pub(super) async fn fail(
        &self,
        slot: &mut Option<Running>,
        trouble: Trouble,
        when: &str,
    ) -> Halt {
        if matches!(trouble, Trouble::Cancelled) {
            return Halt::Cancelled;
        }
        let Some(running) = slot.as_mut() else {
            return Halt::Failed(self.explain(trouble, &Invocation::default(), None, when));
        };
        self.stop(running).await;
        let output = running.tail.lines();
        let failure = self.explain(trouble, &running.invocation, Some(output), when);
        *slot = None;
        Halt::Failed(failure)
    }

    pub(super) async fn wait_until_ready(
        &self,
        running: &mut Running,
        target: &Target,
        cx: &EventContext,
    ) -> Result<(), Trouble> {
        let (timeout, interval) = match &self.settings.ready {
            Some(ready) => (ready.timeout, ready.interval.as_std()),
            None => return Ok(()),
        };
        let started = tokio::time::Instant::now();
        let deadline = later(started, timeout.as_std());
        let mut last = String::from("no probe finished");
        loop {
            if let Some(status) = running.exited().map_err(Trouble::Wait)? {
                return Err(Trouble::Exited(status));
            }
            let probe = tokio::time::timeout_at(deadline, self.probe(target));
            let answer = cx.run(probe).await.map_err(|_| Trouble::Cancelled)?;
            match answer {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(why)) => last = why,
                Err(_) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Trouble::NotReady {
                    waited: timeout,
                    last,
                });
            }
            cx.sleep_until(deadline.min(later(now, interval)))
                .await
                .map_err(|_| Trouble::Cancelled)?;
        }
    }

    /// One readiness probe; the error says what was seen instead.
    pub(super) async fn probe(&self, target: &Target) -> Result<(), String> {
        match target {
            Target::Http(url) => match self.http.get()?.get(url.clone()).send().await {
                Ok(response)
                    if response.status().is_success() || response.status().is_redirection() =>
                {
                    Ok(())
                }
                Ok(response) => Err(format!("GET {url} answered {}", response.status())),
                Err(e) => Err(format!("GET {url}: {}", root_cause(&e))),
            },
            Target::Tcp { host, port } => tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map(drop)
                .map_err(|e| format!("connecting to {host}:{port}: {e}")),
        }
    }

    /// Turns a trouble into a failure that says what happened and what to do, with the last output
    /// of the process when one ran.
    pub(super) fn explain(
        &self,
        trouble: Trouble,
        invocation: &Invocation,
        output: Option<Vec<String>>,
        when: &str,
    ) -> Failure {
        let program = self.program.display();
        let command_line = self.command_line(invocation);
        let (message, hint) = match trouble {
            // Callers turn a cancellation into `Halt::Cancelled` before it gets here.
            Trouble::Cancelled => ("cancelled".to_string(), String::new()),
            Trouble::Spawn(e) if !self.working_dir.is_dir() => (
                format!(
                    "cannot start `{program}`: its working directory {} does not exist ({e})",
                    self.working_dir.display()
                ),
                WORKING_DIR_HINT.to_string(),
            ),
            Trouble::Spawn(e) => {
                let hint = match e.kind() {
                    io::ErrorKind::NotFound if is_bare_name(&self.program) => {
                        format!("`{program}` is not on PATH: {NOT_ON_PATH_HINT}")
                    }
                    io::ErrorKind::NotFound => format!("`{program}` does not exist: fix `command`"),
                    io::ErrorKind::PermissionDenied => {
                        format!("make it executable: chmod +x {program}")
                    }
                    _ => format!("try it by hand: {command_line}"),
                };
                (format!("cannot start `{program}`: {e}"), hint)
            }
            Trouble::Busy(target) => (busy_message(&target, when), busy_hint(&target)),
            Trouble::Exited(status) => exited(&program.to_string(), when, status, &command_line),
            Trouble::NotReady { waited, last } => (
                format!("`{program}` was not ready within {waited}; the last probe: {last}"),
                "check that it listens where `ready` points, or raise `ready.timeout`".to_string(),
            ),
            Trouble::Wait(e) => (
                format!("cannot tell whether `{program}` is alive: {e}"),
                "this is unexpected; the process is stopped: run servo again".to_string(),
            ),
        };
        Failure {
            message,
            hint,
            output,
        }
    }

    /// Samples the process every [`SAMPLE_INTERVAL`] for `duration`.
    pub(super) async fn sample(
        &self,
        running: &mut Running,
        duration: std::time::Duration,
        cx: &EventContext,
    ) -> Result<Window, Trouble> {
        let pid = running.pid;
        let first = read_usage_async(pid).await.map_err(Trouble::Wait)?;
        let peak_reset = tokio::task::spawn_blocking(move || reset_peak_rss(pid))
            .await
            .unwrap_or(false);
        let start = tokio::time::Instant::now();
        let end = later(start, duration);
        let mut window = Window::new(first, ticks_per_second(), std::time::Instant::now());
        // Samples on a fixed grid from the start, so waking late once does not shift the rest.
        let mut next = start;
        let mut reported = start;
        while next < end {
            next = end.min(next + SAMPLE_INTERVAL);
            cx.sleep_until(next).await.map_err(|_| Trouble::Cancelled)?;
            if let Some(status) = running.exited().map_err(Trouble::Wait)? {
                return Err(Trouble::Exited(status));
            }
            match read_usage_async(pid).await {
                Ok(usage) => window.add(usage, std::time::Instant::now(), unix_now()),
                // Exited between the two checks: the next round reports how.
                Err(_) => continue,
            }
            // The window so far, for a study that stops a trial far past an SLO (a memory
            // ceiling, most likely): once a second, as vegeta reports.
            if cx.partial.is_watched() && next.duration_since(reported) >= PARTIAL_INTERVAL {
                reported = next;
                cx.partial.report(window.readings());
            }
        }
        window.finish(unix_now());
        if peak_reset {
            window.peak_rss = tokio::task::spawn_blocking(move || peak_rss(pid))
                .await
                .ok()
                .flatten();
        }
        Ok(window)
    }
}
