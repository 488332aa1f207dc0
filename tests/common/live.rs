//! A long-running `servo` the test drives with signals, and what the test can see of processes.
//!
//! Opt-in (`#[path = "common/live.rs"] mod live;`) rather than part of `common`: only the tests
//! that signal a running servo need it. Process liveness and signal dispositions are read from
//! `/proc`: those helpers mean something on Linux only.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A `servo` process; killed and reaped on drop whatever happens, so a failing test leaves nothing
/// behind.
pub struct Servo {
    child: Child,
    /// Threads draining stdout and stderr: a servo that logs more than a pipe holds must not block
    /// on a test that only reads after it exited.
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    /// Each stderr line as it is written, for [`Servo::wait_for_log`].
    stderr_lines: Receiver<String>,
}

/// How a servo ended.
#[derive(Debug)]
pub struct Ended {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// From the call to [`Servo::finish`] until the process was seen gone (to within 10ms).
    pub took: Duration,
}

impl Servo {
    /// Starts `servo ARGS -c CONFIG` with the environment of `common::servo_process`.
    pub fn start(config: &Path, args: &[&str]) -> Servo {
        Self::start_logging(config, args, "warn")
    }

    /// [`Servo::start`] logging at `level`, for a test that waits for an `info` line.
    pub fn start_logging(config: &Path, args: &[&str], level: &str) -> Servo {
        let mut child = crate::common::spawn_servo(args, config, level);
        let stdout = drain(child.stdout.take());
        let (lines, stderr_lines) = channel();
        let stderr = drain_lines(child.stderr.take(), lines);
        Servo {
            child,
            stdout,
            stderr,
            stderr_lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether servo is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits (at most 20 s) until servo logs a line containing `needle` on stderr: the way to know
    /// it reached a point no outside observer can see, such as the start of a SLEEP.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("servo never logged {needle:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("servo closed stderr without logging {needle:?}")
                }
            }
        }
    }

    /// Waits until servo handles `signal` (its number), read from `/proc/PID/status`: a signal sent
    /// before servo installed its handler would kill it without any cleanup.
    pub fn wait_until_it_catches(&self, signal: u32) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
                .unwrap_or_default();
            let caught = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .is_some_and(|mask| mask & (1 << (signal - 1)) != 0);
            if caught {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "servo never installed a handler for signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`) to servo alone (not its process group) with the
    /// shell's built-in `kill`, so the tests need no package beyond a POSIX shell.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", self.child.id())])
            .status()
            .expect("sh runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits at most `within` for servo to exit (panicking, and so killing it, if it does not).
    pub fn finish(&mut self, within: Duration) -> Ended {
        let started = Instant::now();
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.take().map(join).unwrap_or_default();
                panic!("servo did not exit within {within:?}; stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = started.elapsed();
        Ended {
            code: status.code(),
            stdout: self.stdout.take().map(join).unwrap_or_default(),
            stderr: self.stderr.take().map(join).unwrap_or_default(),
            took,
        }
    }
}

/// Reads `pipe` to its end in a thread of its own.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<String>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    })
}

/// Like [`drain`], also sending each line as it arrives.
fn drain_lines<R: Read + Send + 'static>(
    pipe: Option<R>,
    lines: Sender<String>,
) -> Option<JoinHandle<String>> {
    pipe.map(|pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = lines.send(line.clone());
                text.push_str(&line);
                text.push('\n');
            }
            text
        })
    })
}

fn join(thread: JoinHandle<String>) -> String {
    thread.join().unwrap_or_default()
}

impl Drop for Servo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `Z`...), `None` when there is no such process.
fn state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
}

/// Whether `pid` is a live process (a zombie awaiting its reaper counts as gone).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    !matches!(state(&stat), Some('Z' | 'X') | None)
}

/// The live processes of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    live_processes(|fields, _| fields.get(2).and_then(|g| g.parse().ok()) == Some(pgid))
}

/// The live children of `parent` whose command line contains `word`.
pub fn children_running(parent: u32, word: &str) -> Vec<u32> {
    live_processes(|fields, cmdline| {
        fields.get(1).and_then(|p| p.parse().ok()) == Some(parent) && cmdline.contains(word)
    })
}

/// The live processes for which `keep(fields, command line)` holds, where `fields` are those of
/// `/proc/PID/stat` after the command name (state, ppid, pgrp, ...).
fn live_processes(keep: impl Fn(&[&str], &str) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !matches!(fields.first(), Some(&"Z" | &"X") | None)
                && keep(&fields, &String::from_utf8_lossy(&cmdline))
        })
        .collect()
}

/// Asserts that `pid` dies within a few seconds: signals are delivered asynchronously.
pub fn assert_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) is still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills what is left of process group `pgid`, if anything (test hygiene).
pub fn kill_group(pgid: u32) {
    let _ = std::process::Command::new("sh")
        .args(["-c", &format!("kill -KILL -{pgid} 2>/dev/null")])
        .status();
}

/// Asserts that process group `pgid` empties within a few seconds.
pub fn assert_group_gone(pgid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members = group_members(pgid);
        if members.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} (process group {pgid}) still has processes {members:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
