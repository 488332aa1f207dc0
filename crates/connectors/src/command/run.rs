//! Running one hook: its environment, its pipes, its deadline, and what it left behind.

use super::protocol::{DocumentProblem, result_document, snippet};
use super::{Hook, Hooks};
use crate::util::child::{self, Ended, OutputTail};
use servo_core::ConnectorError;
use servo_core::connector::EventContext;
use servo_core::units::Duration;
use std::process::{ExitStatus, Stdio};

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
            stdout_lines,
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
        child::without_servo_variables(&mut command);
        command.envs(self.settings.env.iter().map(|(k, v)| (k, &v.0)));
        command
            .env("SERVO_MOUNT", &self.mount)
            .env("SERVO_HOOK", hook.name());
        command.envs(env);
        // SIGKILL when servo dies: a hook has no state worth a graceful end.
        let mut running = child::Group::spawn(command, child::Signal::KILL).await.map_err(|e| {
            ConnectorError::failed(format!("cannot start the {label} ({}): {e}", program.display()))
                .with_hint("check that it is a program this system can run, with a valid `#!` line if it is a script")
        })?;
        tracing::debug!(mount = %self.mount, hook = hook.name(), pid = running.pid(), "started {label}");

        let deadline = window.saturating_add(self.settings.timeout.as_std());
        let mount = self.mount.clone();
        let log = |line: &str| {
            tracing::debug!(mount = %mount, hook = hook.name(), "stderr: {line}");
        };
        let ended = cx
            .run(running.run_to_end(input, deadline, STDOUT_LIMIT, stdout_lines, log))
            .await;
        let exited = match ended {
            Ok(Ended::Exited(exited)) => exited,
            Err(cancelled) => {
                running.kill().await;
                return Err(cancelled);
            }
            Ok(Ended::Overran(tail)) => {
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
        let exited = exited
            .map_err(|e| ConnectorError::failed(format!("lost track of the {label}: {e}")))?;
        if exited.held_open {
            tracing::warn!(
                mount = %self.mount,
                "the {label} exited, but a process it started outside its process group kept its output open; servo stopped reading it"
            );
        }
        if exited.overflow {
            return Err(ConnectorError::failed(format!(
                "the {label} printed more than {} MiB on stdout",
                STDOUT_LIMIT >> 20
            ))
            .with_hint("print the JSON result on stdout and everything else on stderr"));
        }
        Ok(Finished {
            status: exited.status,
            stdout: exited.stdout,
            stderr: exited.stderr,
        })
    }
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
    /// Handed each line of stdout as the hook prints it (a measurement's progress reports).
    pub(super) stdout_lines: Option<&'a mut (dyn FnMut(&str) + Send)>,
}

/// What a hook left behind when it exited.
pub(super) struct Finished {
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: OutputTail,
}

impl Finished {
    pub(super) fn succeeded(&self, label: &str) -> Result<(), ConnectorError> {
        if self.status.success() {
            return Ok(());
        }
        Err(ConnectorError::failed(format!(
            "the {label} {}{}",
            child::exit_text(&self.status),
            self.stderr.quoted()
        ))
        .with_hint("run it by hand with the same environment to see why"))
    }

    /// The hook's result document, typed.
    pub(super) fn document<T: serde::de::DeserializeOwned>(
        &self,
        label: &str,
        example: &str,
    ) -> Result<T, ConnectorError> {
        let fail = |message: String| {
            ConnectorError::failed(format!("the {label} {message}{}", self.stderr.quoted()))
                .with_hint(format!("it must print one JSON object such as {example}"))
        };
        let document = match result_document(&self.stdout) {
            Ok(document) => document,
            Err(DocumentProblem::Empty) if self.stdout.trim_ascii().is_empty() => {
                return Err(fail("printed nothing on stdout".into()));
            }
            Err(DocumentProblem::Empty) => {
                return Err(fail(
                    "printed only progress reports on stdout, no result".into(),
                ));
            }
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
    child::truncate(&text, 120)
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
