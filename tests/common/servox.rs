//! ServoX 25.3.0 from PyPI, installed once into a virtualenv under the target directory
//! (`target/servox-venv`, wherever `CARGO_TARGET_DIR` puts it) behind a file lock, so parallel
//! test processes install it once and later runs skip the install. The first run needs PyPI;
//! without it a test fails and says so, rather than skipping: a skipped interop test looks exactly
//! like a passing one. Shared by the tests that run the real ServoX.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const SERVOX: &str = "servox==25.3.0";
/// ServoX 25.3.0's bundled typer crashes at `servo --help` with a newer click.
const CLICK: &str = "click==8.1.7";
/// ServoX 25.3.0 declares `Requires-Python: >=3.9,<3.13`.
const PYTHONS: [&str; 5] = [
    "python3",
    "python3.12",
    "python3.11",
    "python3.10",
    "python3.9",
];
/// The directory cargo builds into (`target/` or `CARGO_TARGET_DIR`), from the binary's path:
/// `<target>/debug/servo`.
pub fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_servo"));
    bin.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("cannot find the target directory above {}", bin.display()))
}

/// The last `lines` lines of a log, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// A child process, killed and reaped on drop whatever happens, so a failing test leaves nothing
/// running.
pub struct Process {
    pub child: Child,
    what: &'static str,
}

impl Process {
    pub fn spawn(cmd: &mut Command, what: &'static str) -> Process {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Process { child, what }
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.what))
    }

    /// Waits at most `within` for the process to exit; `None` if it is still running (it is then
    /// left to the caller, or to drop).
    pub fn wait_for(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM with the shell's `kill`, so the test needs no crate for signals.
    pub fn terminate(&self) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .unwrap_or_else(|e| panic!("cannot run sh to signal {}: {e}", self.what));
        assert!(status.success(), "kill -TERM {} failed", self.what);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion with its output appended to `log`, killing it after `within`.
pub fn run_logged(
    cmd: &mut Command,
    what: &'static str,
    log: &Path,
    within: Duration,
) -> Result<(), String> {
    let out = log_file(log);
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
    let mut process = Process::spawn(cmd.stdin(Stdio::null()).stdout(out).stderr(err), what);
    match process.wait_for(within) {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{what} failed ({status})")),
        None => Err(format!(
            "{what} did not finish within {within:?} and was killed"
        )),
    }
}

/// A Python that can make a virtualenv and that ServoX supports, or why there is none.
pub fn python() -> String {
    let mut tried = Vec::new();
    let candidates: Vec<String> = match std::env::var("SERVOX_PYTHON") {
        Ok(python) if !python.is_empty() => vec![python],
        _ => PYTHONS.iter().map(|p| p.to_string()).collect(),
    };
    // Exit 3: a version ServoX does not support; 4: no `venv`/`ensurepip` (Debian ships them in
    // `python3-venv`).
    let probe = "import sys\n\
                 try:\n    import venv, ensurepip\nexcept ImportError:\n    sys.exit(4)\n\
                 sys.exit(0 if (3, 9) <= sys.version_info[:2] < (3, 13) else 3)";
    for candidate in candidates {
        let outcome = Command::new(&candidate)
            .args(["-c", probe])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match outcome.map(|s| s.code()) {
            Ok(Some(0)) => return candidate,
            Ok(Some(3)) => tried.push(format!("{candidate}: not 3.9 to 3.12")),
            Ok(Some(4)) => tried.push(format!("{candidate}: no venv/ensurepip module")),
            Ok(other) => tried.push(format!("{candidate}: probe exited with {other:?}")),
            Err(e) => tried.push(format!("{candidate}: {e}")),
        }
    }
    panic!(
        "no Python can run ServoX 25.3.0 (it needs 3.9 to 3.12 with venv): {}. \
         On Debian install `python3 python3-venv` (bookworm's 3.11 fits), or point \
         SERVOX_PYTHON at a suitable interpreter.",
        tried.join("; ")
    );
}

/// The virtualenv holding ServoX, installed on first use. Returns its directory.
pub fn servox_venv() -> PathBuf {
    let target = target_dir();
    let venv = target.join("servox-venv");
    // Written last, so a venv an interrupted install left half-made is never taken as ready; its
    // name carries the pins, so changing them reinstalls.
    let ready = venv.join(format!(".ready-{SERVOX}-{CLICK}"));
    if ready.exists() {
        return venv;
    }
    std::fs::create_dir_all(&target)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
    let lock_path = target.join("servox-venv.lock");
    let lock = log_file(&lock_path);
    // Blocks while another test process installs; that install is itself bounded below.
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if ready.exists() {
        return venv;
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .unwrap_or_else(|e| panic!("cannot remove the unfinished {}: {e}", venv.display()));
    }
    let log = target.join("servox-venv-install.log");
    let _ = std::fs::remove_file(&log);
    let python = python();
    let started = Instant::now();
    let made = run_logged(
        Command::new(&python).arg("-m").arg("venv").arg(&venv),
        "python -m venv",
        &log,
        Duration::from_secs(120),
    );
    if let Err(e) = made {
        panic!(
            "cannot create a virtualenv with {python}: {e}\n{}\n(on Debian: apt-get install python3-venv)",
            tail(&log, 20)
        );
    }
    let installed = run_logged(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
            ])
            .args(["--timeout", "20", "--retries", "2", SERVOX, CLICK]),
        "pip install servox",
        &log,
        Duration::from_secs(600),
    );
    if let Err(e) = installed {
        panic!(
            "cannot install {SERVOX} {CLICK} from PyPI: {e}. This test needs PyPI (or the pip \
             index your pip config names) once; later runs reuse {}. pip said:\n{}",
            venv.display(),
            tail(&log, 30)
        );
    }
    std::fs::write(&ready, "").unwrap_or_else(|e| panic!("cannot write {}: {e}", ready.display()));
    eprintln!(
        "installed {SERVOX} into {} in {:.1}s",
        venv.display(),
        started.elapsed().as_secs_f64()
    );
    venv
}

/// The virtualenv's `servo` (ServoX's command line).
pub fn servox_bin() -> PathBuf {
    servox_venv().join("bin").join("servo")
}
