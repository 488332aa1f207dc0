//! What `servo check` reports about the process: its program, its working directory, its state.

use super::Process;
use super::running::{is_taken, quote_output};
use super::template::Target;
use crate::util::child;
use servo_core::ConnectorError;
use servo_core::types::Check;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Looks `program` up like `execvp` does: a path is taken as is, a bare name is searched on `path`.
pub(super) fn find_program(program: &Path, path: Option<OsString>) -> Option<PathBuf> {
    if !is_bare_name(program) {
        return std::fs::metadata(program)
            .is_ok_and(|m| child::is_executable(&m))
            .then(|| program.to_path_buf());
    }
    child::on_path(program.as_os_str(), path.as_deref(), None)
}

/// Checks: what `servo check` reports (after `startup`, so normally about a running process).
impl Process {
    pub(super) fn check_command(&self) -> Check {
        let path = match self.settings.env.get("PATH") {
            Some(path) => Some(OsString::from(path)),
            None => std::env::var_os("PATH"),
        };
        let program = self.program.display();
        match find_program(&self.program, path) {
            Some(found) => Check::pass("command", format!("{} is executable", found.display())),
            None if is_bare_name(&self.program) => {
                Check::fail("command", format!("`{program}` is not on PATH"))
                    .with_hint(NOT_ON_PATH_HINT)
            }
            None => Check::fail("command", format!("{program} is not an executable file"))
                .with_hint(format!(
                    "fix `command`, or make it executable: chmod +x {program}"
                )),
        }
    }

    pub(super) fn check_working_dir(&self) -> Check {
        let dir = self.working_dir.display();
        if self.working_dir.is_dir() {
            Check::pass("working_dir", format!("{dir} exists"))
        } else {
            Check::fail("working_dir", format!("{dir} is not a directory"))
                .with_hint(WORKING_DIR_HINT)
        }
    }

    /// The running process is alive; when none runs, its ready port is free (a common mistake is
    /// another copy of the application still listening there).
    pub(super) async fn check_process(&self) -> Result<Check, ConnectorError> {
        let mut slot = self.running.lock().await;
        let Some(running) = slot.as_mut() else {
            return Ok(match self.invocation(&self.values())?.ready {
                Some(target) if is_taken(&target).await => Check::fail(
                    "process",
                    busy_message(&target, "while the process is stopped"),
                )
                .with_hint(busy_hint(&target)),
                Some(target) => {
                    Check::pass("process", format!("not running; {target} is free for it"))
                }
                None => Check::pass("process", "not running"),
            });
        };
        Ok(match running.exited() {
            Ok(None) => Check::pass(
                "process",
                match &running.invocation.ready {
                    Some(target) => format!("running as pid {}, ready at {target}", running.pid),
                    None => format!("running as pid {}", running.pid),
                },
            ),
            Ok(Some(status)) => Check::fail(
                "process",
                format!("exited ({status}){}", quote_output(&running.tail.lines())),
            )
            .with_hint(format!(
                "run it by hand to see why: {}",
                self.command_line(&running.invocation)
            )),
            Err(e) => Check::fail("process", format!("cannot tell whether it runs: {e}")),
        })
    }
}

pub(super) const NOT_ON_PATH_HINT: &str = "install it, or set `command` to its full path";
pub(super) const WORKING_DIR_HINT: &str =
    "create it, or fix `working_dir` (relative paths start at the config file's directory)";

/// Whether `program` is looked up on PATH (`python3`) rather than taken as a path (`./app`).
pub(super) fn is_bare_name(program: &Path) -> bool {
    program.components().count() == 1 && !program.is_absolute()
}

pub(super) fn busy_message(target: &Target, when: &str) -> String {
    let (host, port) = target.address();
    format!(
        "{host}:{port} already accepts connections {when}: another program listens there, and \
         servo would take it for the process ({target})"
    )
}

pub(super) fn busy_hint(target: &Target) -> String {
    let (_, port) = target.address();
    format!(
        "stop the other program (`ss -ltnp 'sport = :{port}'` names it) or move the process to \
         another port"
    )
}
