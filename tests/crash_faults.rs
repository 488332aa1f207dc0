//! Fault injection, end to end through the real `servo` binary: the application crashing in the
//! middle of a trial, and the journal's disk filling up in the middle of a study.
//!
//! - **The target dies mid-measurement.** `servo run` tunes `servo demo-app` (the `process`
//!   connector) loaded by the `vegeta` connector, as the quickstart does. Once vegeta's load reaches
//!   the demo app (its own `demo_requests_total` counter says so: a readiness signal, not a guess),
//!   the test SIGKILLs it. A trial whose target died measured nothing about its configuration: it
//!   must be journaled `failed`, saying the process was killed and by which signal; the next trial
//!   starts the process again and completes; the study reaches its trial count and exits 0.
//! - **The journal cannot grow.** servo runs under a file-size limit (`ulimit -f`, with SIGXFSZ
//!   ignored so that writes past it fail with EFBIG instead of killing servo; an ignored signal
//!   stays ignored across `exec`). SQLite then reports "disk I/O error" (it says "database or disk
//!   is full" only for ENOSPC). servo must stop with exit 1 and one error naming the journal, the
//!   trial it could not record and the limit; put the application back on a journaled
//!   configuration (the `command` connector's adjust hook logs every adjustment it receives, as in
//!   `tests/signals.rs`); keep every trial it reported finished readable by `servo trials`; and
//!   resume the study once the limit is gone.
//! - **The journal cannot be written at all at start** (the same limit, below one page):
//!   `tests/run.rs` covers a journal whose directory cannot be created (root ignores permissions,
//!   so `chmod 555` proves nothing in CI); here the file is created but no write succeeds. servo
//!   must fail at once with the cause, before adjusting anything.
//!
//! Everything runs on loopback, every wait is bounded, and every process is owned by a guard (or
//! `assert_cmd`'s timeout) that kills it. Process trees are read from `/proc`: Linux only.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/live.rs"]
mod live;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use live::{Servo, assert_gone, children_running};
use serde_json::Value;

/// How long a whole `servo run` may take before the test calls it a hang. Three trials of 3 s, each
/// starting the demo app (which prewarms its cache for up to 5 s), take 20-30 s on a loaded 2-core
/// machine.
const PATIENCE: Duration = Duration::from_secs(150);

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The journal as `servo trials -o json` shows it.
fn journal(config: &Path) -> Vec<Value> {
    let (code, stdout, stderr) = common::run(config, &["trials", "-o", "json"]);
    assert_eq!(code, 0, "servo trials: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("trials as JSON ({e}): {stdout}"))
}

fn states(trials: &[Value]) -> Vec<&str> {
    trials
        .iter()
        .map(|t| t["state"].as_str().unwrap_or("?"))
        .collect()
}

/// How many `/work` requests the demo app on `port` has answered 200 (its Prometheus counter), or
/// `None` when it does not answer.
fn requests_served(port: u16) -> Option<u64> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("demo_requests_total{code=\"200\"} "))?
        .trim()
        .parse()
        .ok()
}

fn kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

// ---------------------------------------------------------------------------------------------
// The target dies mid-measurement.

/// Three trials of the demo app under vegeta's load; `{port}` is free loopback port.
fn demo_study(dir: &Path, port: u16) -> PathBuf {
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"name: crash
optimizer:
  trials: 3
  seed: 1
  objective:
    minimize: demo.workers + demo.cache_mb / 64
  constraints:
    - error_rate < 1%
  control: {{ duration: 3s }}
  store: study.db
{demo}"#,
            demo = common::demo_app(
                port,
                &[
                    (
                        "workers",
                        "{ type: int, min: 1, max: 4, step: 1, value: 2 }"
                    ),
                    (
                        "cache_mb",
                        "{ type: int, min: 0, max: 64, step: 16, value: 16, unit: MiB }"
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

#[test]
fn a_target_killed_mid_measurement_fails_its_trial_and_the_next_trial_restarts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let config = demo_study(dir.path(), port);
    let started = Instant::now();
    // No pre-flight checks: vegeta's check sends one request to /work, and the first request the
    // demo app answers must be the measurement's.
    let mut servo = Servo::start(&config, &["run", "--no-checks", "-o", "json"]);

    // Wait for the first demo app under load: the measurement of trial 0 (the baseline) is under way.
    let deadline = Instant::now() + PATIENCE;
    let victim = loop {
        assert!(servo.running(), "servo ended before any measurement");
        assert!(
            Instant::now() < deadline,
            "vegeta never reached the demo app"
        );
        let apps = children_running(servo.pid(), "demo-app");
        if let [app] = apps[..]
            && requests_served(port).is_some_and(|n| n > 0)
        {
            break app;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed = Instant::now();
    kill(victim, "-KILL");
    assert_gone(victim, "the killed demo app");

    // Every demo app servo starts from now on, until it exits.
    let mut restarted: Vec<u32> = Vec::new();
    while servo.running() {
        assert!(
            Instant::now() < started + PATIENCE,
            "servo still running after {PATIENCE:?}: a hang"
        );
        for app in children_running(servo.pid(), "demo-app") {
            if app != victim && !restarted.contains(&app) {
                restarted.push(app);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ended = servo.finish(Duration::from_secs(5));
    let stderr = &ended.stderr;
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(ended.code, Some(0), "the study ends normally: {stderr}");
    let summary: Value = serde_json::from_str(&ended.stdout)
        .unwrap_or_else(|e| panic!("a JSON summary ({e}): {}\n{stderr}", ended.stdout));
    assert_eq!(summary["interrupted"], false, "{summary:#}");

    // Trial 0 failed, saying its process was killed and how; the others were measured.
    let trials = journal(&config);
    assert_eq!(
        states(&trials),
        ["failed", "complete", "complete"],
        "{trials:#?}"
    );
    let error = trials[0]["error"].as_str().unwrap_or_default();
    for expected in [
        "was killed during the measurement (signal: 9 (SIGKILL))",
        "out-of-memory killer",
        &format!("demo-app --port {port} --workers 2 --cache-mb 16"),
    ] {
        assert!(
            error.contains(expected),
            "trial 0's error lacks `{expected}`: {error}"
        );
    }
    assert_eq!(
        trials[0]["readings"],
        serde_json::json!({}),
        "no reading of a dead target is kept"
    );
    for trial in &trials[1..] {
        for metric in ["cpu_seconds", "rss_max_bytes", "error_rate", "latency_p99"] {
            assert!(
                trial["readings"][metric]["value"].is_number(),
                "trial {} has no `{metric}`: {trial:#}",
                trial["number"]
            );
        }
    }

    // The next trial started the application again (a new process), and none outlived servo.
    assert!(
        !restarted.is_empty(),
        "no demo app was started after the kill"
    );
    for app in &restarted {
        assert_gone(*app, "a demo app started after the kill");
    }
    eprintln!(
        "demo app SIGKILLed {:?} after servo started; servo exited 0 {:?} later, {} demo app(s) \
         started after the kill; trial 0: {}",
        killed.duration_since(started),
        killed.elapsed(),
        restarted.len(),
        error.lines().next().unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------------------------
// The journal cannot grow.

/// The file-size limit (in 512-byte blocks: `ulimit -f` of a POSIX `sh`) under which the journal
/// opens and records a few trials, then cannot record more: its write-ahead log grows by a few
/// 4 KiB pages per trial. Measured with this config: 72 blocks fail while the study is created,
/// 100 at trial 0, 150 at trial 2, 200 at trial 4, 300 at trial 9.
const BLOCKS: u32 = 200;

/// Below one page: the journal file is created, and nothing more can be written to it.
const BLOCKS_AT_START: u32 = 8;

/// A study of 8 trials whose adjust hook logs every adjustment it receives; journal `study.db`.
fn hooked_study(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("adjust.sh"),
        "printf '%s\\n' \"$(cat)\" >> adjust.jsonl\n",
    )
    .expect("write adjust.sh");
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"name: full
optimizer:
  trials: 8
  seed: 5
  objective:
    minimize: main.cpu * 2 + main.memory
  control: {{ duration: 10ms }}
  store: study.db
command:
{components}  adjust: [sh, adjust.sh]
  timeout: 1m
"#,
            components = common::MAIN_CPU_MEMORY
        ),
    )
    .expect("write the config");
    config
}

/// `servo run -c CONFIG` at info level under `ulimit -f BLOCKS`, with SIGXFSZ ignored; (exit
/// code, stderr). stdout and stderr are pipes: a file would be limited too.
fn run_limited(config: &Path, blocks: u32) -> (Option<i32>, String) {
    let mut cmd = assert_cmd::Command::new("sh");
    for (key, _) in std::env::vars() {
        if key.starts_with("SERVO_") || key.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(key);
        }
    }
    let output = cmd
        .current_dir(config.parent().expect("the config's directory"))
        .env("NO_COLOR", "1")
        .env("SERVO_LOG_LEVEL", "info")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_servo"))
        .args(["run", "-c"])
        .arg(config)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("sh runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The adjustments the hook received, in order, as `component.setting → value`.
fn adjustments(dir: &Path) -> Vec<BTreeMap<String, f64>> {
    std::fs::read_to_string(dir.join("adjust.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let input: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("the hook logged {line:?}: {e}"));
            input["adjustments"]
                .as_array()
                .expect("adjustments")
                .iter()
                .map(|a| {
                    (
                        format!("{}.{}", a["component"], a["setting"]).replace('"', ""),
                        a["value"].as_f64().expect("a number"),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_full_journal_stops_the_run_restores_a_journaled_configuration_and_loses_no_trial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hooked_study(dir.path());
    let journal_file = dir.path().join("study.db");
    let started = Instant::now();
    let (code, stderr) = run_limited(&config, BLOCKS);
    let took = started.elapsed();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");

    // One error: the journal, the trial it could not record, SQLite's words, the limit, what to do.
    let error = stderr
        .split_once("error: ")
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no error: {stderr}"));
    for expected in [
        &format!("journal {}: cannot record", journal_file.display()),
        "disk I/O error",
        &format!(
            "may not write files larger than {} bytes (`ulimit -f`)",
            BLOCKS * 512
        ),
        "the trials journaled so far are kept and the study resumes after them",
    ] {
        assert!(error.contains(expected), "no `{expected}` in: {error}");
    }

    // Every trial servo said had finished is in the journal, complete; at most the one it could
    // not record is left `running` (the next run marks it interrupted).
    let reported: Vec<i64> = stderr
        .lines()
        .filter_map(|l| l.split_once("trial finished trial=")?.1.split(' ').next())
        .map(|n| n.parse().expect("a trial number"))
        .collect();
    let trials = journal(&config);
    let complete: Vec<i64> = trials
        .iter()
        .filter(|t| t["state"] == "complete")
        .filter_map(|t| t["number"].as_i64())
        .collect();
    assert_eq!(complete, reported, "{trials:#?}");
    assert!(
        !complete.is_empty() && complete.len() < 8,
        "the limit lets a few trials through, not all: {trials:#?}"
    );
    assert!(
        trials.len() <= complete.len() + 1
            && trials[complete.len()..]
                .iter()
                .all(|t| t["state"] == "running"),
        "{trials:#?}"
    );

    // The application is back on the best journaled configuration: one more adjust after the
    // last trial's, and the error says which.
    let best = common::best_complete(&trials);
    let adjusts = adjustments(dir.path());
    assert_eq!(
        adjusts.len(),
        trials.len() + 1,
        "one adjust per trial begun, then one back: {adjusts:#?}"
    );
    assert_eq!(
        adjusts.last(),
        Some(&common::configuration(best)),
        "the last adjustment restores the best trial {best:#}"
    );
    assert!(
        error.contains(&format!(
            "the application was put back on the best configuration (trial {})",
            best["number"]
        )),
        "{error}"
    );

    // Without the limit, the same command resumes the study and finishes it.
    let (code, _, resumed) = common::run(&config, &["run"]);
    assert_eq!(code, 0, "{resumed}");
    let after = journal(&config);
    assert_eq!(
        after[..complete.len()],
        trials[..complete.len()],
        "the journaled trials are untouched"
    );
    let finished = after
        .iter()
        .filter(|t| t["state"] == "complete" || t["state"] == "failed")
        .count();
    assert_eq!(finished, 8, "{after:#?}");
    eprintln!(
        "ulimit -f {BLOCKS} ({} bytes): {} trial(s) journaled, servo exited 1 after {took:?}:\n{}",
        BLOCKS * 512,
        complete.len(),
        error.trim_end()
    );
}

#[test]
fn a_journal_that_cannot_be_written_at_start_fails_at_once_before_any_adjustment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hooked_study(dir.path());
    let journal_file = dir.path().join("study.db");
    let started = Instant::now();
    let (code, stderr) = run_limited(&config, BLOCKS_AT_START);
    let took = started.elapsed();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    for expected in [
        &format!("cannot open the journal {}: ", journal_file.display()),
        "disk I/O error",
        &format!(
            "may not write files larger than {} bytes",
            BLOCKS_AT_START * 512
        ),
    ] {
        assert!(stderr.contains(expected), "no `{expected}` in: {stderr}");
    }
    // SQLite's pool used to retry the failing connection for 30 s, then say only "pool timed out".
    assert!(!stderr.contains("timed out"), "{stderr}");
    assert!(took < Duration::from_secs(10), "failed only after {took:?}");
    assert!(
        adjustments(dir.path()).is_empty(),
        "nothing may be adjusted without a journal"
    );
    eprintln!(
        "ulimit -f {BLOCKS_AT_START}: servo exited 1 after {took:?}: {}",
        stderr.trim_end()
    );
}
