//! Running one hook: its environment, its pipes, its deadline, and what it left behind.

use super::protocol::{DocumentProblem, result_document, snippet};
use super::{Hook, Hooks};
use crate::util::child;
use servo_core::ConnectorError;
use servo_core::connector::EventContext;
use servo_core::units::Duration;
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

impl Hooks {
    /// Runs one hook to completion, its deadline or the event's cancellation, whichever comes first.
    pub(super) async fn run(
        &self,
        invocation: Invocation<'_>,
        cx: &EventContext,
    ) -> Result<Finished, ConnectorError> {
        let Invocation {
            hook,
            argv,
            env,
            input,
            window,
        } = invocation;
        let label = label(hook, argv);
        if !self.working_dir.is_dir() {
            return Err(ConnectorError::failed(format!(
                "cannot run the {label}: its working directory {} does not exist",
                self.working_dir.display()
            ))
            .with_hint(
                "create it, or fix `working_dir` (it is relative to the config file's directory)",
            ));
        }
        let program = self.resolve(argv).map_err(|u| {
            ConnectorError::failed(format!("cannot run the {label}: {u}"))
                .with_hint(u.hint(&self.working_dir))
        })?;

        let mut command = tokio::process::Command::new(&program);
        command
            .args(&argv[1..])
            .current_dir(&self.working_dir)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SERVO_") {
                command.env_remove(key);
            }
        }
        command.envs(self.settings.env.iter().map(|(k, v)| (k, &v.0)));
        command
            .env("SERVO_MOUNT", &self.mount)
            .env("SERVO_HOOK", hook.name());
        command.envs(env);
        // SIGKILL when servo dies: a hook has no state worth a graceful end.
        child::isolate(&mut command, child::Signal::KILL);

        let spawned = command.spawn().and_then(|child| {
            child::Group::new(child).ok_or_else(|| {
                std::io::Error::other("the hook exited before servo could see its pid")
            })
        });
        let mut running = spawned.map_err(|e| {
            ConnectorError::failed(format!("cannot start the {label} ({}): {e}", program.display()))
                .with_hint("check that it is a program this system can run, with a valid `#!` line if it is a script")
        })?;
        tracing::debug!(mount = %self.mount, hook = hook.name(), pid = running.pid(), "started {label}");

        let deadline = window.saturating_add(self.settings.timeout.as_std());
        let exited = CancellationToken::new();
        let stdin = running.child().and_then(|c| c.stdin.take());
        let stdout = running.child().and_then(|c| c.stdout.take());
        let stderr = running.child().and_then(|c| c.stderr.take());
        let mount = self.mount.clone();
        // Outside the run's future, so a hook that overruns can still be quoted.
        let mut tail = Tail::default();
        let completion = async {
            let wait = async {
                // The hook is gone; whatever it left running in its group goes too.
                let status = running.wait().await;
                exited.cancel();
                status
            };
            tokio::join!(
                wait,
                feed(stdin, input, &exited),
                read_stdout(stdout, &exited),
                read_stderr(stderr, &exited, &mut tail, |line| {
                    tracing::debug!(mount = %mount, hook = hook.name(), "stderr: {line}");
                }),
            )
        };
        let end = tokio::select! {
            outcome = completion => End::Exited(outcome),
            () = tokio::time::sleep(deadline) => End::Overran,
            () = cx.cancel.cancelled() => End::Cancelled,
        };
        let (status, (), (stdout, overflow, held_open), ()) = match end {
            End::Exited(outcome) => outcome,
            End::Cancelled => {
                running.kill().await;
                return Err(ConnectorError::Cancelled);
            }
            End::Overran => {
                running.kill().await;
                tail.finish();
                let limit = if window.is_zero() {
                    format!("its `timeout` of {}", self.settings.timeout)
                } else {
                    format!(
                        "{} (the measurement's {} plus `timeout` {})",
                        Duration::from(deadline),
                        Duration::from(window),
                        self.settings.timeout
                    )
                };
                return Err(ConnectorError::failed(format!(
                    "the {label} did not finish within {limit}; servo killed it and its process group{}",
                    tail.quoted()
                ))
                .with_hint("raise `timeout`, or run the command by hand to see where it hangs"));
            }
        };
        let status = status
            .map_err(|e| ConnectorError::failed(format!("lost track of the {label}: {e}")))?;
        if held_open {
            tracing::warn!(
                mount = %self.mount,
                "the {label} exited, but a process it started outside its process group kept its output open; servo stopped reading it"
            );
        }
        if overflow {
            return Err(ConnectorError::failed(format!(
                "the {label} printed more than {} MiB on stdout",
                STDOUT_LIMIT >> 20
            ))
            .with_hint("print the JSON result on stdout and everything else on stderr"));
        }
        Ok(Finished {
            status,
            stdout,
            stderr: tail,
        })
    }
}

/// How a hook's run ended.
pub(super) enum End<T> {
    Exited(T),
    Overran,
    Cancelled,
}

/// One run of a hook, as the event handlers ask for it.
pub(super) struct Invocation<'a> {
    pub(super) hook: Hook,
    pub(super) argv: &'a [String],
    /// The hook's protocol variables, set last so `env` cannot shadow them.
    pub(super) env: Vec<(String, String)>,
    /// Written to stdin, which is then closed; `None` connects stdin to /dev/null.
    pub(super) input: Option<Vec<u8>>,
    /// Time the hook legitimately needs besides `timeout` (a measurement's window).
    pub(super) window: std::time::Duration,
}

/// What a hook left behind when it exited.
pub(super) struct Finished {
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Tail,
}

impl Finished {
    pub(super) fn succeeded(&self, label: &str) -> Result<(), ConnectorError> {
        if self.status.success() {
            return Ok(());
        }
        Err(ConnectorError::failed(format!(
            "the {label} {}{}",
            exit_text(&self.status),
            self.stderr.quoted()
        ))
        .with_hint("run it by hand with the same environment to see why"))
    }

    /// The hook's result document, typed; `key` is the field that marks it (`metrics`).
    pub(super) fn document<T: serde::de::DeserializeOwned>(
        &self,
        label: &str,
        key: &str,
        example: &str,
    ) -> Result<T, ConnectorError> {
        let fail = |message: String| {
            ConnectorError::failed(format!("the {label} {message}{}", self.stderr.quoted()))
                .with_hint(format!("it must print one JSON object such as {example}"))
        };
        let document = match result_document(&self.stdout, key) {
            Ok(document) => document,
            Err(DocumentProblem::Empty) => return Err(fail("printed nothing on stdout".into())),
            Err(DocumentProblem::Several(n)) => {
                return Err(fail(format!(
                    "printed {n} JSON documents on stdout; expected one"
                )));
            }
            Err(DocumentProblem::Syntax(e)) => {
                return Err(fail(format!(
                    "printed invalid JSON on stdout: {e}{}",
                    snippet(&self.stdout, e.line(), e.column())
                )));
            }
        };
        serde_path_to_error::deserialize(document).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                String::new()
            } else {
                format!(" at `{path}`")
            };
            fail(format!("printed unexpected JSON{at}: {}", e.into_inner()))
        })
    }
}

pub(super) fn exit_text(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => format!("ended with {status}"),
    }
}

/// "measure command `./measure.sh --fast`", for messages.
pub(super) fn label(hook: Hook, argv: &[String]) -> String {
    format!("{} command `{}`", hook.name(), argv_text(argv))
}

pub(super) fn argv_text(argv: &[String]) -> String {
    let text = argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    truncate(&text, 120)
}

pub(super) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Seconds as the hooks get them: `30`, or `0.25` when not whole.
pub(super) fn seconds(d: Duration) -> String {
    let d = d.as_std();
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

/// The most a hook may print on stdout: results are small, and a runaway hook must not exhaust
/// servo's memory.
pub(super) const STDOUT_LIMIT: usize = 16 << 20;

/// After the hook exits, how long its pipes may stay open: they only do when a process it started
/// outside its group inherited them.
pub(super) const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves `DRAIN_GRACE` after `exited` is cancelled.
pub(super) async fn drained(exited: &CancellationToken) {
    exited.cancelled().await;
    tokio::time::sleep(DRAIN_GRACE).await;
}

/// Writes the input to the hook's stdin and closes it. A hook that exits without reading it is fine.
pub(super) async fn feed(
    stdin: Option<impl AsyncWrite + Unpin>,
    input: Option<Vec<u8>>,
    exited: &CancellationToken,
) {
    let (Some(mut stdin), Some(input)) = (stdin, input) else {
        return;
    };
    tokio::select! {
        _ = async {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        } => {}
        () = drained(exited) => {}
    }
}

/// Reads stdout up to `STDOUT_LIMIT`, draining (and dropping) the rest so the hook never blocks.
/// Returns the bytes, whether there were more, and whether the pipe was still open after the grace.
pub(super) async fn read_stdout(
    pipe: Option<impl AsyncRead + Unpin>,
    exited: &CancellationToken,
) -> (Vec<u8>, bool, bool) {
    let mut out = Vec::new();
    let mut overflow = false;
    let held_open = read_chunks(pipe, exited, |chunk| {
        let room = STDOUT_LIMIT.saturating_sub(out.len());
        overflow |= chunk.len() > room;
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
    })
    .await;
    (out, overflow, held_open)
}

/// Reads stderr, handing each line to `log` and keeping the last ones for error messages.
pub(super) async fn read_stderr(
    pipe: Option<impl AsyncRead + Unpin>,
    exited: &CancellationToken,
    tail: &mut Tail,
    mut log: impl FnMut(&str),
) {
    read_chunks(pipe, exited, |chunk| {
        for line in tail.push(chunk) {
            log(&line);
        }
    })
    .await;
    if let Some(line) = tail.finish() {
        log(&line);
    }
}

/// Calls `each` with every chunk read until end of file, or until `DRAIN_GRACE` after the hook
/// exited; returns whether the grace ran out.
pub(super) async fn read_chunks(
    pipe: Option<impl AsyncRead + Unpin>,
    exited: &CancellationToken,
    each: impl FnMut(&[u8]),
) -> bool {
    let Some(pipe) = pipe else { return false };
    child::read_chunks(pipe, drained(exited), each).await
}

/// The last lines a hook wrote to stderr, bounded in count and length.
#[derive(Debug)]
pub(super) struct Tail {
    pub(super) lines: child::Tail,
    pub(super) split: child::Lines,
}

impl Default for Tail {
    fn default() -> Self {
        Self {
            lines: child::Tail::new(Self::LINES),
            split: child::Lines::new(Self::LINE_BYTES, "…"),
        }
    }
}

impl Tail {
    pub(super) const LINES: usize = 20;
    pub(super) const LINE_BYTES: usize = 1000;

    /// Takes a chunk of output; returns the lines it completed.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut completed = Vec::new();
        self.split.push(chunk, |line| completed.push(line));
        for line in &completed {
            self.lines.push(line.clone());
        }
        completed
    }

    /// Completes a last line that had no newline.
    pub(super) fn finish(&mut self) -> Option<String> {
        let line = self.split.finish()?;
        self.lines.push(line.clone());
        Some(line)
    }

    /// The tail as an indented block to append to a message, or nothing when stderr was empty.
    pub(super) fn quoted(&self) -> String {
        let lines: Vec<&String> = self.lines.iter().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            return String::new();
        }
        let mut out = if self.lines.dropped() > 0 {
            format!("\n  the last {} lines of its stderr:", lines.len())
        } else {
            "\n  its stderr:".to_string()
        };
        for line in lines {
            out.push_str("\n    | ");
            out.push_str(line);
        }
        out
    }

    /// The last non-empty line, or a generic text: for messages that must be one line.
    pub(super) fn summary(&self, label: &str) -> String {
        self.lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| format!("the {label} rejected the settings"))
    }
}
