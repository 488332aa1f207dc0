//! Nothing outlives servo: `servo run` tunes the demo app (the `process` connector, loaded by
//! `vegeta`, as in the quickstart) and the test SIGKILLs servo at one moment of a trial per test —
//! a fixed time after start, the instant servo has forked the child, once the child runs the demo
//! app, once the app has set up its SIGTERM handling, while it prewarms its cache, while it serves
//! load, while servo stops it for a new configuration, while the next one starts, settles and
//! serves load. After each kill no process servo started may be left, within a bound.
//!
//! Survivors are found by a marker in the environment, set on servo and inherited by everything it
//! starts (even a child between fork and exec, or one re-parented to init): no pid can escape the
//! search. A moment that is never reached fails the test; each moment is watched from outside
//! (`/proc`, the app's `/healthz` and `/metrics`), never guessed from a sleep, except the fixed
//! offsets that sweep servo's own start.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/live.rs"]
mod live;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use live::{alive, children_running};

/// The environment variable carrying the marker (not `SERVO_*`: the `process` connector keeps
/// those from its child).
const MARKER: &str = "NOTHING_OUTLIVES_SERVO";

/// How long a moment may take to come: the demo app's start, a 5 s prewarm at most, a 3 s
/// measurement and a restart, on a loaded 2-core machine in a debug build.
const PATIENCE: Duration = Duration::from_secs(120);

/// How long what servo started may take to end after servo is killed: the demo app's graceful
/// shutdown waits at most 5 s for requests in flight and 5 s for its workers.
const DEATH_BOUND: Duration = Duration::from_secs(20);

/// SIGTERM's bit in `/proc/PID/status` masks.
const SIGTERM_BIT: u64 = 1 << (15 - 1);

/// When servo is killed.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// A fixed time after servo started.
    After(Duration),
    /// Servo has a child process (perhaps not yet the demo app: between fork and exec).
    Forked,
    /// The child runs the demo app.
    Execed,
    /// The demo app catches SIGTERM and is not ready yet.
    HandlerSetUp,
    /// `/healthz` answers 503: the cache is being prewarmed.
    Prewarming,
    /// The first app has answered load.
    ServingLoad,
    /// The first app, after serving load, no longer answers: servo is stopping it to restart.
    Stopping,
    /// A second demo app (the next configuration) exists.
    Restarting,
    /// The second app is ready and no load has reached it yet (its settlement).
    Settling,
    /// The second app has answered load.
    ServingLoadAgain,
}

/// What the test has seen of the study so far.
#[derive(Default)]
struct Seen {
    first: Option<u32>,
    first_served: bool,
}

impl Moment {
    /// Whether the moment has come, judging from `/proc` and the app on `port`.
    fn reached(self, servo: u32, port: u16, seen: &mut Seen) -> bool {
        let apps = children_running(servo, "demo-app");
        if seen.first.is_none() {
            seen.first = apps.first().copied();
        }
        let first = seen.first;
        let second = apps.iter().copied().find(|pid| Some(*pid) != first);
        match self {
            Moment::After(_) => true,
            Moment::Forked => !children_running(servo, "").is_empty(),
            Moment::Execed => first.is_some(),
            Moment::HandlerSetUp => {
                first.is_some_and(catches_sigterm)
                    && get(port, "/healthz").is_none_or(|(status, _)| status != 200)
            }
            Moment::Prewarming => get(port, "/healthz").is_some_and(|(status, _)| status == 503),
            Moment::ServingLoad => requests_served(port) > 0,
            Moment::Stopping => {
                seen.first_served |= requests_served(port) > 0;
                seen.first_served && second.is_none() && get(port, "/healthz").is_none()
            }
            Moment::Restarting => second.is_some(),
            Moment::Settling => {
                second.is_some()
                    && get(port, "/healthz").is_some_and(|(status, _)| status == 200)
                    && requests_served(port) == 0
            }
            Moment::ServingLoadAgain => second.is_some() && requests_served(port) > 0,
        }
    }
}

/// `GET path` on the app: its status and body, `None` when it does not answer.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

/// How many `/work` requests the app has answered 200 (0 when it does not answer).
fn requests_served(port: u16) -> u64 {
    get(port, "/metrics")
        .and_then(|(_, text)| {
            text.lines()
                .find_map(|l| l.strip_prefix("demo_requests_total{code=\"200\"} "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A line of `/proc/PID/status` (`SigCgt`, `PPid`...).
fn status_field(pid: u32, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
}

fn catches_sigterm(pid: u32) -> bool {
    status_field(pid, "SigCgt")
        .and_then(|mask| u64::from_str_radix(&mask, 16).ok())
        .is_some_and(|mask| mask & SIGTERM_BIT != 0)
}

/// The live processes whose environment holds `marker`.
fn marked(marker: &str) -> Vec<u32> {
    let needle = format!("{MARKER}={marker}\0");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            alive(*pid)
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

/// A survivor as a person debugging it wants to see it.
fn describe(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default();
    let fields: Vec<String> = [
        "State", "PPid", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt",
    ]
    .iter()
    .map(|f| format!("{f} {}", status_field(pid, f).unwrap_or_default()))
    .collect();
    format!("pid {pid} `{}` ({})", cmdline.trim(), fields.join(", "))
}

/// The study: four trials, so that a restart follows the baseline; a 128 MiB cache prewarmed by
/// one worker, so that prewarming lasts; a settlement after each restart, so that the app is
/// ready before load reaches it.
fn study(dir: &Path, port: u16) -> PathBuf {
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"name: nothing-outlives-servo
optimizer:
  trials: 4
  seed: 3
  objective:
    minimize: demo.workers + demo.cache_mb / 64
  constraints:
    - error_rate < 1%
  control: {{ duration: 3s, settlement: 2s }}
  store: study.db
{demo}"#,
            demo = common::demo_app(
                port,
                &[
                    (
                        "workers",
                        "{ type: int, min: 1, max: 3, step: 1, value: 1 }"
                    ),
                    (
                        "cache_mb",
                        "{ type: int, min: 0, max: 128, step: 32, value: 128, unit: MiB }"
                    ),
                ],
                "50/1s",
                None,
            )
        ),
    )
    .expect("write the config");
    config
}

/// Servo and everything carrying its marker, killed on drop whatever happens.
struct Cell {
    servo: Child,
    marker: String,
    _dir: tempfile::TempDir,
    stderr: PathBuf,
}

impl Drop for Cell {
    fn drop(&mut self) {
        let _ = self.servo.kill();
        let _ = self.servo.wait();
        for pid in marked(&self.marker) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Runs the study, SIGKILLs servo at `moment` and asserts that nothing it started survives.
fn kill_servo_at(moment: Moment) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let config = study(dir.path(), port);
    let stderr = dir.path().join("servo.log");
    let marker = format!("{}-{moment:?}", std::process::id());
    let servo = common::servo_process("warn")
        .env(MARKER, &marker)
        // No pre-flight checks: vegeta's check would send a request before the measurement.
        .args(["run", "--no-checks", "-c"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("a log file"))
        .spawn()
        .expect("servo starts");
    let mut cell = Cell {
        servo,
        marker,
        _dir: dir,
        stderr,
    };
    let pid = cell.servo.id();
    let log = |cell: &Cell| std::fs::read_to_string(&cell.stderr).unwrap_or_default();

    let started = Instant::now();
    if let Moment::After(offset) = moment {
        std::thread::sleep(offset);
    }
    let mut seen = Seen::default();
    while !moment.reached(pid, port, &mut seen) {
        assert!(
            cell.servo.try_wait().expect("try_wait").is_none(),
            "servo ended before {moment:?}:\n{}",
            log(&cell)
        );
        assert!(
            started.elapsed() < PATIENCE,
            "{moment:?} never came within {PATIENCE:?}:\n{}",
            log(&cell)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let children = children_running(pid, "");
    cell.servo.kill().expect("SIGKILL to servo");
    cell.servo.wait().expect("servo is reaped");
    let killed = Instant::now();

    loop {
        let survivors = marked(&cell.marker);
        if survivors.is_empty() {
            break;
        }
        if killed.elapsed() > DEATH_BOUND {
            let shown: Vec<String> = survivors.iter().map(|p| describe(*p)).collect();
            panic!(
                "servo SIGKILLed at {moment:?} ({:?} after start, children {children:?}); \
                 {DEATH_BOUND:?} later these still run:\n{}\nservo's log:\n{}",
                killed.duration_since(started),
                shown.join("\n"),
                log(&cell)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "{moment:?}: SIGKILL {:?} after start with children {children:?}; all gone {:?} later",
        killed.duration_since(started),
        killed.elapsed()
    );
}

#[test]
fn servo_killed_as_it_starts_leaves_nothing() {
    for millis in [0, 20, 60, 150, 400] {
        kill_servo_at(Moment::After(Duration::from_millis(millis)));
    }
}

#[test]
fn servo_killed_the_moment_it_forks_the_child_leaves_nothing() {
    kill_servo_at(Moment::Forked);
}

#[test]
fn servo_killed_once_the_child_runs_the_demo_app_leaves_nothing() {
    kill_servo_at(Moment::Execed);
}

#[test]
fn servo_killed_once_the_app_handles_sigterm_leaves_nothing() {
    kill_servo_at(Moment::HandlerSetUp);
}

#[test]
fn servo_killed_while_the_app_prewarms_leaves_nothing() {
    kill_servo_at(Moment::Prewarming);
}

#[test]
fn servo_killed_while_the_app_serves_load_leaves_nothing() {
    kill_servo_at(Moment::ServingLoad);
}

#[test]
fn servo_killed_while_it_stops_the_app_for_a_new_configuration_leaves_nothing() {
    kill_servo_at(Moment::Stopping);
}

#[test]
fn servo_killed_while_the_next_configuration_starts_leaves_nothing() {
    kill_servo_at(Moment::Restarting);
}

#[test]
fn servo_killed_while_the_restarted_app_settles_leaves_nothing() {
    kill_servo_at(Moment::Settling);
}

#[test]
fn servo_killed_while_the_restarted_app_serves_load_leaves_nothing() {
    kill_servo_at(Moment::ServingLoadAgain);
}

/// A stage of the demo app's life, seen from outside.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Just spawned: its SIGTERM handling may not be set up yet.
    Spawned,
    /// `/healthz` answers 503.
    Prewarming,
    /// `/healthz` answers 200 and it has answered a request.
    Serving,
}

/// `servo demo-app` with its stdout and stderr closed, as a SIGKILLed servo leaves them: SIGTERM at
/// `stage` must end it (it used to panic writing "received SIGTERM" and serve on, orphaned).
fn demo_app_ends_on_sigterm_when(stage: Stage) {
    let port = common::free_port();
    let mut app = std::process::Command::new(env!("CARGO_BIN_EXE_servo"))
        .args(["demo-app", "--port", &port.to_string()])
        .args(["--workers", "1", "--cache-mb", "128"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo app starts");
    struct Reaped<'a>(&'a mut Child);
    impl Drop for Reaped<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Closing the read ends: every write the app makes from now on fails with EPIPE.
    drop(app.stdout.take());
    drop(app.stderr.take());
    let app = Reaped(&mut app);
    let pid = app.0.id();
    let started = Instant::now();
    loop {
        let reached = match stage {
            Stage::Spawned => true,
            Stage::Prewarming => get(port, "/healthz").is_some_and(|(status, _)| status == 503),
            Stage::Serving => {
                get(port, "/healthz").is_some_and(|(status, _)| status == 200)
                    && get(port, "/work?key=1").is_some_and(|(status, _)| status == 200)
            }
        };
        if reached {
            break;
        }
        assert!(
            app.0.try_wait().expect("try_wait").is_none(),
            "the demo app ended before {stage:?}"
        );
        assert!(
            started.elapsed() < PATIENCE,
            "{stage:?} never came within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {pid}");
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = app.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            signalled.elapsed() < DEATH_BOUND,
            "SIGTERM at {stage:?}: the demo app still runs {DEATH_BOUND:?} later ({})",
            describe(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // A graceful shutdown exits 0; before the handler is set up, SIGTERM's default action ends it.
    // Anything else (a panic's 101) is the app ending for another reason than the signal.
    let by_default_action = matches!(stage, Stage::Spawned) && status.signal() == Some(15);
    assert!(
        status.success() || by_default_action,
        "SIGTERM at {stage:?}: the demo app ended with {status}"
    );
}

#[test]
fn the_demo_app_ends_on_sigterm_before_its_handler_is_set_up() {
    demo_app_ends_on_sigterm_when(Stage::Spawned);
}

#[test]
fn the_demo_app_ends_on_sigterm_while_prewarming_with_its_output_closed() {
    demo_app_ends_on_sigterm_when(Stage::Prewarming);
}

#[test]
fn the_demo_app_ends_on_sigterm_while_serving_with_its_output_closed() {
    demo_app_ends_on_sigterm_when(Stage::Serving);
}
