//! Child processes that never outlive servo, for every connector that runs programs.
//!
//! A child runs in a process group of its own, so that a terminal's Ctrl-C reaches servo only and
//! servo decides what dies; servo signals the whole group, so the workers a child forked go with
//! it. On Linux the kernel also signals the child when servo dies, even by SIGKILL
//! (`PR_SET_PDEATHSIG`). A [`Group`] dropped while its child runs kills the group and reaps the
//! child in the background. Output is read in chunks, cut into bounded lines, and its last lines
//! kept for error messages.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::OnceLock;

pub(crate) use rustix::process::Signal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// How long to wait for a child to be reaped after SIGKILL (it may be stuck in the kernel).
const REAP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Puts `command`'s child in a new process group of its own and, on Linux, has the kernel send it
/// `death_signal` when the thread that spawns it ends (see [`spawn_from_a_lasting_thread`]).
pub(crate) fn isolate(command: &mut Command, death_signal: Signal) {
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(target_os = "linux")]
    die_with_parent(command, death_signal);
    #[cfg(not(target_os = "linux"))]
    let _ = death_signal;
}

/// `PR_SET_PDEATHSIG`: the child gets `signal` when servo dies, even by SIGKILL. The signal is tied
/// to the parent *thread*, not the process (see [`spawn_from_a_lasting_thread`]).
///
/// Between fork and `exec` the child still runs servo's code with servo's signal handlers, which
/// would catch the death signal and drop it (`exec` then starts the program as if nothing had
/// happened). So the signal gets its default action first: from the moment it is armed, servo's
/// death ends the child, before `exec` or after, until the program installs its own handler.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command, signal: Signal) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before `exec`, where only async-signal-safe work
    // is allowed. It makes raw system calls (sigaction through `signal`, prctl, getppid) and builds
    // an `io::Error` from an errno, none of which allocates, locks or touches shared state.
    unsafe {
        command.pre_exec(move || {
            // SIGKILL cannot be caught, nor its disposition changed.
            if signal != Signal::KILL
                && libc::signal(signal.as_raw(), libc::SIG_DFL) == libc::SIG_ERR
            {
                return Err(io::Error::last_os_error());
            }
            rustix::process::set_parent_process_death_signal(Some(signal))?;
            // servo died between fork and prctl: the signal would never come.
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

/// Keeps servo's own `SERVO_*` variables from `command`'s child: they may hold secrets such as the
/// optimizer's token, and a program that runs servo must not take them for its config.
pub(crate) fn without_servo_variables(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SERVO_") {
            command.env_remove(key);
        }
    }
}

/// `text` cut to `max` characters, with `…` when cut: a command line in a message.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// A request to the spawning thread: the command, the runtime the child belongs to, where to answer.
type SpawnJob = (
    Command,
    tokio::runtime::Handle,
    tokio::sync::oneshot::Sender<io::Result<Child>>,
);

/// Spawns `command` from a thread that lives as long as servo. `PR_SET_PDEATHSIG` fires when the
/// thread that forked the child exits: tokio's blocking threads exit when idle, and a worker that ran
/// `block_in_place` becomes one of them, so spawning from whichever thread runs the handler could
/// terminate the child at a random moment. This thread never exits before servo does.
pub(crate) async fn spawn_from_a_lasting_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<std::sync::mpsc::Sender<SpawnJob>> = OnceLock::new();
    let spawner = match SPAWNER.get() {
        Some(spawner) => spawner,
        None => {
            let (jobs, queue) = std::sync::mpsc::channel::<SpawnJob>();
            std::thread::Builder::new()
                .name("servo-process-spawner".into())
                .spawn(move || {
                    for (mut command, runtime, answer) in queue {
                        // The child registers with the runtime that will wait for it.
                        let _runtime = runtime.enter();
                        let _ = answer.send(command.spawn());
                    }
                })?;
            // Two first spawns may race: the loser's thread ends with its dropped sender.
            SPAWNER.get_or_init(|| jobs)
        }
    };
    let (answer, answered) = tokio::sync::oneshot::channel();
    spawner
        .send((command, tokio::runtime::Handle::current(), answer))
        .map_err(|_| io::Error::other("the process-spawning thread is gone"))?;
    answered
        .await
        .map_err(|_| io::Error::other("the process-spawning thread did not answer"))?
}

/// A spawned child, the leader of its own process group.
#[derive(Debug)]
pub(crate) struct Group {
    /// Taken only by `drop`, to reap the child in the background.
    child: Option<Child>,
    /// The leader's pid, which is also the process group's id.
    pid: u32,
    /// Set once the leader has been reaped. Its group gets SIGKILL at that moment, and from then on
    /// the child is never waited for again.
    status: Option<ExitStatus>,
}

impl Group {
    /// Spawns `command` [`isolate`]d (with `death_signal` when servo dies) from the lasting thread,
    /// and takes charge of it.
    pub(crate) async fn spawn(mut command: Command, death_signal: Signal) -> io::Result<Self> {
        isolate(&mut command, death_signal);
        let child = spawn_from_a_lasting_thread(command).await?;
        Self::new(child)
            .ok_or_else(|| io::Error::other("the child exited before servo could see its pid"))
    }

    /// Takes charge of a child spawned after [`isolate`]; `None` if it has no pid (already reaped).
    pub(crate) fn new(child: Child) -> Option<Self> {
        let pid = child.id()?;
        Some(Self {
            child: Some(child),
            pid,
            status: None,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The child itself, to take its pipes.
    pub(crate) fn child(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// How the leader ended, once it has been reaped.
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Whether the leader has exited, and how (reaping it if so).
    pub(crate) fn exited(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none()
            && let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.reaped(status);
        }
        Ok(self.status)
    }

    /// Waits for the leader to exit and reaps it.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Some(child) = self.child.as_mut() else {
            return Err(io::Error::other("the child was already reaped"));
        };
        let status = child.wait().await?;
        self.reaped(status);
        Ok(status)
    }

    /// Records the leader's end, and kills the members of its group that outlived it (workers it
    /// forked) right away, while the group id still names them: Linux keeps a pid allocated while it
    /// is some process group's id, but may give it to a new process once the group is empty.
    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        self.signal(Signal::KILL);
    }

    /// Sends `signal` to the whole process group (the leader and whatever it started that stayed in
    /// the group). A no-op once the group is empty.
    pub(crate) fn signal(&self, signal: Signal) {
        // The group id is the leader's pid, never 0 or 1 (which would mean "our group" or init).
        if self.pid <= 1 {
            return;
        }
        if let Some(pgid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            // ESRCH: nobody is left in the group, which is what we want.
            let _ = rustix::process::kill_process_group(pgid, signal);
        }
    }

    /// SIGTERM to the group, then up to `grace` for the leader to exit: what
    /// `tokio::time::timeout` of the wait answers. Follow with [`Group::kill`] unless it exited.
    pub(crate) async fn terminate(
        &mut self,
        grace: std::time::Duration,
    ) -> Result<io::Result<ExitStatus>, tokio::time::error::Elapsed> {
        self.signal(Signal::TERM);
        tokio::time::timeout(grace, self.wait()).await
    }

    /// SIGKILL to the group (and the leader, should it have left it), then up to `REAP_TIMEOUT` for
    /// the leader to be reaped; `None` if it was not.
    pub(crate) async fn kill(&mut self) -> Option<ExitStatus> {
        self.signal(Signal::KILL);
        if self.status.is_none()
            && let Some(child) = self.child.as_mut()
        {
            let _ = child.start_kill();
            // After SIGKILL the child is gone within microseconds unless the kernel holds it in an
            // uninterruptible wait; then the background reaper of `drop` takes over.
            if let Ok(Ok(status)) = tokio::time::timeout(REAP_TIMEOUT, child.wait()).await {
                self.reaped(status);
            }
        }
        self.status
    }
}

impl Drop for Group {
    /// A child that was never reaped (its handler was dropped, servo is exiting) is killed with its
    /// group and reaped in the background.
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        self.signal(Signal::KILL);
        if let (Some(mut child), Ok(runtime)) =
            (self.child.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let _ = child.wait().await;
            });
        }
        // Without a runtime, dropping the child (kill_on_drop) hands it to tokio's orphan reaper.
    }
}

/// Reads `pipe` until end of file (or an error), or until `stop` resolves, handing each chunk to
/// `each`; returns whether `stop` came first. Never stops early otherwise: a full pipe would block
/// the child.
pub(crate) async fn read_chunks(
    mut pipe: impl AsyncRead + Unpin,
    stop: impl Future<Output = ()>,
    mut each: impl FnMut(&[u8]),
) -> bool {
    let mut buffer = vec![0u8; 64 << 10];
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            read = pipe.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return false,
                Ok(n) => each(&buffer[..n]),
            },
            () = &mut stop => return true,
        }
    }
}

/// Cuts a stream of output into lines, each at most `max_bytes` long: an error message quotes
/// lines, not megabytes. Line ends (`\n`, `\r\n`) are dropped and invalid UTF-8 is replaced.
#[derive(Debug)]
pub(crate) struct Lines {
    partial: Vec<u8>,
    /// The current line was longer than `max_bytes`; the rest of it is dropped.
    cut: bool,
    max_bytes: usize,
    /// Appended to a line that was cut.
    cut_mark: &'static str,
}

impl Lines {
    pub(crate) fn new(max_bytes: usize, cut_mark: &'static str) -> Self {
        Self {
            partial: Vec::new(),
            cut: false,
            max_bytes,
            cut_mark,
        }
    }

    /// Takes a chunk of output and hands `each` the lines it completes.
    pub(crate) fn push(&mut self, chunk: &[u8], mut each: impl FnMut(String)) {
        for part in chunk.split_inclusive(|b| *b == b'\n') {
            let (body, ends) = match part.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (part, false),
            };
            let room = self.max_bytes.saturating_sub(self.partial.len());
            self.cut |= body.len() > room;
            self.partial
                .extend_from_slice(&body[..body.len().min(room)]);
            if ends {
                each(self.complete());
            }
        }
    }

    /// Completes a last line that had no newline.
    pub(crate) fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty() || self.cut).then(|| self.complete())
    }

    fn complete(&mut self) -> String {
        let mut line = String::from_utf8_lossy(&self.partial)
            .trim_end_matches('\r')
            .to_string();
        if self.cut {
            line.push_str(self.cut_mark);
        }
        self.partial.clear();
        self.cut = false;
        line
    }
}

/// The last lines of a child's output, oldest first.
#[derive(Debug)]
pub(crate) struct Tail {
    lines: VecDeque<String>,
    capacity: usize,
    /// How many older lines made room for these.
    dropped: usize,
}

impl Tail {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::with_capacity(capacity),
            capacity,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, line: String) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
    }

    pub(crate) fn dropped(&self) -> usize {
        self.dropped
    }
}

/// Read-only: the lines themselves.
impl std::ops::Deref for Tail {
    type Target = VecDeque<String>;

    fn deref(&self) -> &VecDeque<String> {
        &self.lines
    }
}

/// Whether `metadata` is that of a file anyone may execute (elsewhere than Unix: any file).
pub(crate) fn is_executable(metadata: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    metadata.is_file()
}

/// Looks a bare program name up on `path` like `execvp` does: the first executable file named
/// `program` in its directories. Relative directories start at `cwd`, or at servo's own working
/// directory when `None`.
pub(crate) fn on_path(
    program: &OsStr,
    path: Option<&OsStr>,
    cwd: Option<&Path>,
) -> Option<PathBuf> {
    match cwd {
        Some(cwd) => which::which_in(program, path, cwd).ok(),
        None => which::which_in_global(program, path).ok()?.next(),
    }
}

/// How a child run by [`Group::run_to_end`] ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// It exited; `Err` when servo lost track of it.
    Exited(io::Result<Exited>),
    /// It was still running at the deadline; it and its group were killed.
    Overran(OutputTail),
}

/// What a child left behind when it exited.
#[derive(Debug)]
pub(crate) struct Exited {
    pub(crate) status: ExitStatus,
    /// At most the `stdout_limit` given to [`Group::run_to_end`].
    pub(crate) stdout: Vec<u8>,
    /// It printed more than that on stdout (the rest was read and dropped).
    pub(crate) overflow: bool,
    /// A process it started outside its group kept its output open past [`DRAIN_GRACE`].
    pub(crate) held_open: bool,
    pub(crate) stderr: OutputTail,
}

impl Group {
    /// Feeds `input` to the child's stdin (then closes it), reads its stdout (up to
    /// `stdout_limit`; each line also to `stdout_lines` as it arrives, when given) and stderr
    /// (each line to `log`, the last ones kept), until it exits or `deadline` passes; then kills
    /// whatever is left of its group. Spawn the child with piped stdout and stderr, and piped
    /// stdin when there is input. Run it through `EventContext::run` and [`Group::kill`] the
    /// group when that says cancelled.
    pub(crate) async fn run_to_end(
        &mut self,
        input: Option<Vec<u8>>,
        deadline: std::time::Duration,
        stdout_limit: usize,
        stdout_lines: Option<&mut (dyn FnMut(&str) + Send)>,
        log: impl FnMut(&str),
    ) -> Ended {
        let exited = CancellationToken::new();
        let stdin = self.child().and_then(|c| c.stdin.take());
        let stdout = self.child().and_then(|c| c.stdout.take());
        let stderr = self.child().and_then(|c| c.stderr.take());
        // Outside the run's future, so a child that overruns can still be quoted.
        let mut tail = OutputTail::default();
        let finished = {
            let completion = async {
                let wait = async {
                    // The child is gone; whatever it left running in its group goes too.
                    let status = self.wait().await;
                    exited.cancel();
                    status
                };
                tokio::join!(
                    wait,
                    feed(stdin, input, &exited),
                    read_stdout(stdout, stdout_limit, stdout_lines, &exited),
                    read_stderr(stderr, &exited, &mut tail, log),
                )
            };
            tokio::time::timeout(deadline, completion).await
        };
        match finished {
            Ok((status, (), (stdout, overflow, held_open), ())) => {
                Ended::Exited(status.map(|status| Exited {
                    status,
                    stdout,
                    overflow,
                    held_open,
                    stderr: tail,
                }))
            }
            Err(_) => {
                self.kill().await;
                tail.finish();
                Ended::Overran(tail)
            }
        }
    }
}

/// "exited with code 3", "was killed by signal 9": how a child ended, for messages.
pub(crate) fn exit_text(status: &ExitStatus) -> String {
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

/// After a child exits, how long its pipes may stay open: they only do when a process it started
/// outside its group inherited them.
pub(crate) const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves `DRAIN_GRACE` after `exited` is cancelled.
async fn drained(exited: &CancellationToken) {
    exited.cancelled().await;
    tokio::time::sleep(DRAIN_GRACE).await;
}

/// Writes the input to the child's stdin and closes it. A child that exits without reading it is
/// fine.
async fn feed(
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

/// Reads stdout up to `limit`, draining (and dropping) the rest so the child never blocks.
/// Returns the bytes, whether there were more, and whether the pipe was still open after the grace.
async fn read_stdout(
    pipe: Option<impl AsyncRead + Unpin>,
    limit: usize,
    mut each_line: Option<&mut (dyn FnMut(&str) + Send)>,
    exited: &CancellationToken,
) -> (Vec<u8>, bool, bool) {
    let mut out = Vec::new();
    let mut overflow = false;
    let Some(pipe) = pipe else {
        return (out, overflow, false);
    };
    // Lines read as they come are small documents (a progress report); a longer one is cut and
    // its reader sees invalid JSON.
    let mut lines = Lines::new(STDOUT_LINE_BYTES, " …");
    let held_open = read_chunks(pipe, drained(exited), |chunk| {
        if let Some(each) = each_line.as_deref_mut() {
            lines.push(chunk, |line| each(&line));
        }
        let room = limit.saturating_sub(out.len());
        overflow |= chunk.len() > room;
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
    })
    .await;
    if let (Some(each), Some(line)) = (each_line, lines.finish()) {
        each(&line);
    }
    (out, overflow, held_open)
}

/// The longest stdout line handed over as it arrives.
const STDOUT_LINE_BYTES: usize = 64 << 10;

/// Reads stderr, handing each line to `log` and keeping the last ones for error messages.
async fn read_stderr(
    pipe: Option<impl AsyncRead + Unpin>,
    exited: &CancellationToken,
    tail: &mut OutputTail,
    mut log: impl FnMut(&str),
) {
    if let Some(pipe) = pipe {
        read_chunks(pipe, drained(exited), |chunk| {
            for line in tail.push(chunk) {
                log(&line);
            }
        })
        .await;
    }
    if let Some(line) = tail.finish() {
        log(&line);
    }
}

/// The last lines a child wrote to stderr, bounded in count and length, to quote in errors.
#[derive(Debug)]
pub(crate) struct OutputTail {
    pub(crate) lines: Tail,
    split: Lines,
}

impl Default for OutputTail {
    fn default() -> Self {
        Self {
            lines: Tail::new(Self::LINES),
            split: Lines::new(Self::LINE_BYTES, "…"),
        }
    }
}

impl OutputTail {
    pub(crate) const LINES: usize = 20;
    pub(crate) const LINE_BYTES: usize = 1000;

    /// Takes a chunk of output; returns the lines it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut completed = Vec::new();
        self.split.push(chunk, |line| completed.push(line));
        for line in &completed {
            self.lines.push(line.clone());
        }
        completed
    }

    /// Completes a last line that had no newline.
    pub(crate) fn finish(&mut self) -> Option<String> {
        let line = self.split.finish()?;
        self.lines.push(line.clone());
        Some(line)
    }

    /// The tail as an indented block to append to a message, or nothing when stderr was empty.
    pub(crate) fn quoted(&self) -> String {
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

    /// The last non-empty line, if any: for messages that must be one line.
    pub(crate) fn last_line(&self) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_tail_keeps_the_last_lines_bounded() {
        let mut tail = OutputTail::default();
        let mut logged = Vec::new();
        for i in 0..30 {
            logged.extend(tail.push(format!("line {i}\n").as_bytes()));
        }
        logged.extend(tail.push(b"split "));
        logged.extend(tail.push(b"line"));
        logged.extend(tail.finish());
        assert_eq!(logged.len(), 31);
        assert_eq!(tail.lines.len(), OutputTail::LINES);
        assert_eq!(tail.lines.back().map(String::as_str), Some("split line"));
        assert!(
            tail.quoted()
                .starts_with("\n  the last 20 lines of its stderr:\n    | line 11")
        );

        let mut long = OutputTail::default();
        long.push(&vec![b'x'; 5000]);
        let line = long.finish().expect("a line");
        assert_eq!(line.chars().count(), OutputTail::LINE_BYTES + 1);
        assert!(line.ends_with('…'));
    }
}
