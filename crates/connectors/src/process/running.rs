//! A started process, its output, and why it stopped serving.

use super::template::{Invocation, Target};
use super::{BUSY_PROBE_TIMEOUT, DRAIN_TIMEOUT, MAX_LINE_BYTES, SAMPLE_INTERVAL, TAIL_LINES};
use crate::util::child;
use servo_core::ConnectorError;
use servo_core::connector::EventContext;
use servo_core::units::Duration;
use std::fmt::Write as _;
use std::io;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncRead;
use tokio::task::JoinHandle;

/// The last lines a process printed on stdout and stderr, oldest first.
#[derive(Debug)]
pub(super) struct Tail(Mutex<child::Tail>);

impl Default for Tail {
    fn default() -> Self {
        Self(Mutex::new(child::Tail::new(TAIL_LINES)))
    }
}

impl Tail {
    pub(super) fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    pub(super) fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Forwards one output stream to tracing (debug) and the tail, line by line, until it closes.
/// Never stops reading early: a full pipe would block the process.
pub(super) async fn forward(
    stream: impl AsyncRead + Unpin,
    stream_name: &'static str,
    pid: u32,
    mount: String,
    tail: Arc<Tail>,
) {
    let mut lines = child::Lines::new(MAX_LINE_BYTES, "");
    let mut emit = |text: String| {
        tracing::debug!(mount = %mount, pid, stream = stream_name, "{text}");
        tail.push(text);
    };
    child::read_chunks(stream, std::future::pending(), |chunk| {
        lines.push(chunk, &mut emit);
    })
    .await;
    if let Some(text) = lines.finish() {
        emit(text);
    }
}

/// A started process: the leader of its own process group.
pub(super) struct Running {
    pub(super) group: child::Group,
    /// The leader's pid, which is also the process group's id.
    pub(super) pid: u32,
    pub(super) invocation: Invocation,
    pub(super) tail: Arc<Tail>,
    pub(super) readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Whether the process has exited, and how (reaping it if so).
    pub(super) fn exited(&mut self) -> io::Result<Option<ExitStatus>> {
        self.group.exited()
    }

    /// Stops the process: SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL
    /// to the group. Reaps the leader, and waits (briefly) for the output pipes to drain so the tail
    /// holds the last words. Idempotent.
    pub(super) async fn stop(&mut self, grace: std::time::Duration) -> Option<ExitStatus> {
        if self.exited().ok().flatten().is_none() {
            match self.group.terminate(grace).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(pid = self.pid, error = %e, "cannot wait for the process")
                }
                Err(_) => {
                    tracing::warn!(
                        pid = self.pid,
                        "the process did not exit within {} of SIGTERM: killing it",
                        Duration::from(grace)
                    );
                }
            }
            if self.group.status().is_none() && self.group.kill().await.is_none() {
                tracing::error!(
                    pid = self.pid,
                    "the process survived SIGKILL; it will be reaped when it dies"
                );
            }
        }
        let readers = std::mem::take(&mut self.readers);
        let aborts: Vec<_> = readers.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(DRAIN_TIMEOUT, join_all(readers))
            .await
            .is_err()
        {
            // A grandchild that left the group still holds the pipes open; stop reading them.
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        self.group.status()
    }

    /// Waits `duration`, checking that the process stays alive.
    pub(super) async fn watch(
        &mut self,
        duration: std::time::Duration,
        cx: &EventContext,
    ) -> Result<(), Trouble> {
        let end = later(tokio::time::Instant::now(), duration);
        loop {
            if let Some(status) = self.exited().map_err(Trouble::Wait)? {
                return Err(Trouble::Exited(status));
            }
            let now = tokio::time::Instant::now();
            if now >= end {
                return Ok(());
            }
            cx.sleep_until(end.min(now + SAMPLE_INTERVAL))
                .await
                .map_err(|_| Trouble::Cancelled)?;
        }
    }
}

pub(super) async fn join_all(handles: Vec<JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// Why the process is not, or no longer, serving.
#[derive(Debug)]
pub(super) enum Trouble {
    /// It could not be started at all.
    Spawn(io::Error),
    /// Something already answers where the process is expected to listen.
    Busy(Target),
    Exited(ExitStatus),
    NotReady {
        waited: Duration,
        last: String,
    },
    Wait(io::Error),
    Cancelled,
}

/// Why starting, restarting or measuring stopped short.
#[derive(Debug)]
pub(super) enum Halt {
    /// Cancelled: the process stays where it is, for `shutdown`.
    Cancelled,
    Failed(Failure),
}

impl From<Halt> for ConnectorError {
    fn from(halt: Halt) -> Self {
        match halt {
            Halt::Cancelled => ConnectorError::Cancelled,
            Halt::Failed(failure) => failure.into_error(),
        }
    }
}

/// A failure of the process, explained: what happened, what to do, and what the process said.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) message: String,
    pub(super) hint: String,
    /// Its last lines of output, when a process ran.
    pub(super) output: Option<Vec<String>>,
}

impl Failure {
    /// The error of `startup` or `measure`. With output, the hint goes before the quoted lines, so
    /// that they close the message.
    pub(super) fn into_error(self) -> ConnectorError {
        if self.output.is_none() {
            ConnectorError::failed(self.message).with_hint(self.hint)
        } else {
            ConnectorError::failed(self.text(""))
        }
    }

    /// The error of an adjustment that failed and was undone.
    pub(super) fn rejected(self) -> ConnectorError {
        ConnectorError::Rejected {
            reason: "unstable".into(),
            message: self.text("; servo restored the previous values and the process runs again"),
        }
    }

    /// The message, then `news`, then the hint and the quoted output.
    pub(super) fn text(&self, news: &str) -> String {
        let quoted = self.output.as_deref().map(quote_output).unwrap_or_default();
        format!("{}{news}; {}{quoted}", self.message, self.hint)
    }
}

/// What to say about a process that ended on its own while it should have been running. A signal
/// is named as such: SIGKILL in particular never comes from the program itself, and most often
/// from the kernel's out-of-memory killer, which "run it by hand" would not reveal.
pub(super) fn exited(
    program: &str,
    when: &str,
    status: ExitStatus,
    command_line: &str,
) -> (String, String) {
    use std::os::unix::process::ExitStatusExt as _;
    match status.signal() {
        Some(9) => (
            format!("`{program}` was killed {when} ({status})"),
            format!(
                "SIGKILL comes from outside the process: the kernel's out-of-memory killer (see `dmesg`), a supervisor or a person; to see whether it happens again, run it by hand: {command_line}"
            ),
        ),
        Some(_) => (
            format!("`{program}` died {when} ({status})"),
            format!("run it by hand to see why: {command_line}"),
        ),
        None => (
            format!("`{program}` exited {when} ({status})"),
            format!("run it by hand to see why: {command_line}"),
        ),
    }
}

/// `at + after`, saturating: durations come from users (`ready.timeout: 1000000y`), and an instant
/// that overflows would panic.
pub(super) fn later(at: tokio::time::Instant, after: std::time::Duration) -> tokio::time::Instant {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(after.min(CENTURY)).unwrap_or(at)
}

/// The innermost cause of an HTTP error ("Connection refused (os error 111)"): reqwest's outer
/// layers repeat the URL and say little more.
pub(super) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Whether something already accepts connections at the target's address.
pub(super) async fn is_taken(target: &Target) -> bool {
    let (host, port) = target.address();
    matches!(
        tokio::time::timeout(
            BUSY_PROBE_TIMEOUT,
            tokio::net::TcpStream::connect((host.as_str(), port))
        )
        .await,
        Ok(Ok(_))
    )
}

pub(super) fn quote_output(lines: &[String]) -> String {
    if lines.is_empty() {
        return "; it printed nothing".into();
    }
    let mut text = String::from("; its last output:");
    for line in lines {
        let _ = write!(text, "\n  | {line}");
    }
    text
}

/// Quotes a word for a POSIX shell when it needs it, so a printed command line can be pasted.
pub(super) fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
