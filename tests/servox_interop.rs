//! Interoperability with the real ServoX (Opsani's Python servo, 25.3.0 from PyPI) as a client of
//! `servo optimizer serve`, over loopback.
//!
//! ServoX is installed once into a virtualenv (`tests/common/servox.rs`: under the target directory,
//! wherever `CARGO_TARGET_DIR` puts it) behind a file lock, so parallel test processes install it
//! once and later runs skip the install. The first run needs PyPI; without it the test fails and
//! says so, rather than skipping: a skipped interop test looks exactly like a passing one.
//!
//! ServoX's only connectors that need no cluster (`wait`, `scripts`) describe nothing, so ServoX
//! loads, beside its stock `wait` connector, a small connector of ours by class path
//! (`tests/fixtures/servox/servox_interop.py`): an in-process application with ServoX's own CPU,
//! Memory, Replicas and enum settings, whose measurement (one time series, one single reading) is
//! a known function of those settings. That makes every shape ServoX puts on the wire cross it —
//! the descriptor, both reading shapes, the ADJUST state and the ADJUSTMENT answer — and lets the
//! test check the readings our server recorded against the configurations it asked for.
//!
//! Asserted: the server answers every ServoX request with 200 (ServoX only logs 4xx and keeps
//! polling, so the counters are the place to look); HELLO, WHATS_NEXT, DESCRIPTION, MEASUREMENT,
//! ADJUSTMENT and (after SIGTERM) GOODBYE were each served; every trial completed, the baseline
//! with the described values and ServoX's readings (the series counted as its mean), each later
//! one with readings that match its configuration, replicas integral.
#![cfg(unix)]

#[path = "common/http.rs"]
mod http;
#[path = "common/servox.rs"]
mod servox;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use servox::{Process, log_file, servox_venv, tail};

/// ServoX requires an organization of 5 to 50 characters in the optimizer id.
const ORG: &str = "example.com";
const APP: &str = "web";
const TOKEN: &str = "servox-interop-token-0123456789";
/// Baseline plus three adjusted trials: enough to see ADJUST values typed as ServoX wants them.
const TRIALS: usize = 4;
/// The settings our connector starts with (`_STATE` in the fixture).
const BASELINE: [(&str, &str); 4] = [
    ("web.cpu", "1.0"),
    ("web.mem", "2.0"),
    ("web.replicas", "2"),
    ("web.mode", "fast"),
];

/// One HTTP/1.1 GET with `Connection: close`; returns the status and the body.
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    http::exchange(http::local(port), "GET", path, token, b"")
}

/// `servo_optimizer_requests_total{route="servo",...}` as (event, status) → count.
fn servo_requests(port: u16) -> BTreeMap<(String, u16), u64> {
    let (status, text) = get(port, "/metrics", None);
    assert_eq!(status, 200, "/metrics answered {status}: {text}");
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("servo_optimizer_requests_total{") else {
            continue;
        };
        let Some((labels, count)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        if label("route") != "servo" {
            continue;
        }
        let status: u16 = label("status").parse().unwrap_or(0);
        let count: u64 = count.trim().parse().unwrap_or(0);
        *counts.entry((label("event"), status)).or_default() += count;
    }
    counts
}

fn served(counts: &BTreeMap<(String, u16), u64>, event: &str) -> u64 {
    counts.get(&(event.to_string(), 200)).copied().unwrap_or(0)
}

/// The trials of the application's current study (empty before its first DESCRIPTION).
fn trials(port: u16) -> Vec<Value> {
    let path = format!("/accounts/{ORG}/applications/{APP}/trials");
    match get(port, &path, Some(TOKEN)) {
        (200, body) => match serde_json::from_str(&body) {
            Ok(Value::Array(trials)) => trials,
            other => panic!("GET {path} is not a JSON array: {other:?} ({body})"),
        },
        (404, _) => Vec::new(),
        (status, body) => panic!("GET {path} answered {status}: {body}"),
    }
}

/// `servo optimizer serve` on an ephemeral loopback port; returns the process and the port.
fn start_server(dir: &Path, store: &Path) -> (Process, u16) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_servo"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SERVO_") {
            cmd.env_remove(key);
        }
    }
    let mut server = Process::spawn(
        cmd.env("NO_COLOR", "1")
            .args([
                "optimizer",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--sleep",
                "1s",
            ])
            .args(["--log-level", "debug", "--store"])
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&dir.join("server.log"))),
        "servo optimizer serve",
    );
    // The first stdout line names the address; the thread then drains the rest so the server
    // never blocks on a full pipe.
    let stdout = server.child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
        for _ in lines {}
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "the server printed no address; its log:\n{}",
                tail(&dir.join("server.log"), 30)
            )
        });
    let port = first
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no loopback address in the server's first line: {first:?}"));
    (server, port)
}

/// The JSON body of each request ServoX sent, in order, from the `curl` command line it logs at
/// TRACE after each exchange (`curl -X POST ... -d '{...}' http://...`; shell-quoted, so a `'` in
/// the body reads `'"'"'`).
fn servox_requests(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|line| line.contains("curl -X POST"))
        .filter_map(|line| {
            let start = line.find(" -d '")? + " -d '".len();
            let end = line.rfind("' http")?;
            let body = line.get(start..end)?.replace("'\"'\"'", "'");
            serde_json::from_str(&body).ok()
        })
        .collect()
}

/// `tests/fixtures/servox`, where ServoX finds `servox_interop.py`.
fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join("servox")
}

fn number(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, found {v}"))
}

#[test]
fn servox_optimizes_against_our_server() {
    let install_started = Instant::now();
    let venv = servox_venv();
    let install_took = install_started.elapsed();

    let tmp = tempfile::tempdir().expect("a tempdir");
    let dir = tmp.path();
    let store = dir.join("optimizer.db");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).expect("the token file is written");
    let created = Command::new(env!("CARGO_BIN_EXE_servo"))
        .env("NO_COLOR", "1")
        .args([
            "optimizer",
            "app",
            "create",
            &format!("{ORG}/{APP}"),
            "--store",
        ])
        .arg(&store)
        .args(["--minimize", "latency_p99 + web.cpu"])
        .args([
            "--trials",
            &TRIALS.to_string(),
            "--duration",
            "10ms",
            "--seed",
            "7",
        ])
        .arg("--token-file")
        .arg(&token_file)
        .output()
        .expect("servo runs");
    assert!(
        created.status.success(),
        "app create failed: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let (_server, port) = start_server(dir, &store);

    // ServoX's own config format. The optimizer comes from ServoX's environment variables, as a
    // ServoX deployment usually gets it.
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        "connectors:\n  interop: servox_interop.InteropConnector\n  wait: wait\n\
         interop:\n  component: web\n\
         wait:\n  measure_enabled: false\n",
    )
    .expect("the ServoX config is written");
    let servox_log = dir.join("servox.log");
    let run_started = Instant::now();
    let mut servox = Process::spawn(
        Command::new(venv.join("bin/python"))
            // The console script's shebang names the venv's python; calling it directly keeps the
            // test independent of how the venv was created.
            .args(["-c", "from servo.entry_points import run_cli; run_cli()"])
            .args(["--no-color", "--log-level", "TRACE", "--config-file"])
            .arg(&config)
            .arg("run")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("LANG", "C.UTF-8")
            .env("PYTHONPATH", fixtures_dir())
            // No __pycache__ in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("OPSANI_OPTIMIZER", format!("{ORG}/{APP}"))
            .env("OPSANI_TOKEN", TOKEN)
            .env("OPSANI_BASE_URL", format!("http://127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file(&servox_log))
            .stderr(log_file(&servox_log)),
        "ServoX",
    );
    let logs = || {
        format!(
            "\n--- ServoX log (tail) ---\n{}\n--- server log (tail) ---\n{}",
            tail(&servox_log, 60),
            tail(&dir.join("server.log"), 30)
        )
    };

    // Until the study is over: every trial finished and ServoX told to sleep (the server answers
    // SLEEP mid-study only when it cannot go on, which the trials' states then show).
    let deadline = Instant::now() + Duration::from_secs(90);
    let (counts, recorded) = loop {
        let counts = servo_requests(port);
        let refused: Vec<_> = counts.iter().filter(|((_, s), _)| *s != 200).collect();
        assert!(
            refused.is_empty(),
            "our server refused ServoX's requests: {refused:?}{}",
            logs()
        );
        let recorded = trials(port);
        let finished = recorded.iter().filter(|t| t["state"] != "running").count();
        let sleeping = std::fs::read_to_string(&servox_log)
            .unwrap_or_default()
            .contains("What's Next? => SLEEP");
        if sleeping {
            break (counts, recorded);
        }
        if let Some(status) = servox.exited() {
            panic!("ServoX exited early ({status}){}", logs());
        }
        assert!(
            Instant::now() < deadline,
            "the study did not finish within 90s: {finished} of {TRIALS} trials, requests \
             {counts:?}{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let run_took = run_started.elapsed();

    // SIGTERM: ServoX says GOODBYE before it exits.
    servox.terminate();
    let status = servox.wait_for(Duration::from_secs(20));
    assert!(
        status.is_some(),
        "ServoX did not exit within 20s of SIGTERM{}",
        logs()
    );
    let after = servo_requests(port);
    assert_eq!(
        served(&after, "GOODBYE"),
        1,
        "no GOODBYE after SIGTERM: {after:?}{}",
        logs()
    );

    for event in [
        "HELLO",
        "WHATS_NEXT",
        "DESCRIPTION",
        "MEASUREMENT",
        "ADJUSTMENT",
    ] {
        assert!(
            served(&counts, event) >= 1,
            "no {event} was served: {counts:?}{}",
            logs()
        );
    }
    assert!(
        served(&counts, "MEASUREMENT") >= TRIALS as u64,
        "one MEASUREMENT per trial: {counts:?}"
    );
    assert!(
        served(&counts, "ADJUSTMENT") >= TRIALS as u64 - 1,
        "one ADJUSTMENT per trial after the baseline: {counts:?}"
    );
    // ServoX only logs what it could not use (a 4xx, an answer its models refuse) and goes on.
    let servox_text = std::fs::read_to_string(&servox_log).unwrap_or_default();
    for complaint in [
        "server reported unexpected event",
        "command execution failed",
        "HTTP error",
    ] {
        assert!(
            !servox_text.contains(complaint),
            "ServoX logged `{complaint}`{}",
            logs()
        );
    }

    // Every trial completed with ServoX's readings, in line with its configuration.
    assert_eq!(recorded.len(), TRIALS, "trials: {recorded:#?}");
    for trial in &recorded {
        assert_eq!(trial["state"], "complete", "trial: {trial:#}{}", logs());
        let config = &trial["config"];
        let cpu = number(&config["web.cpu"]);
        let mem = number(&config["web.mem"]);
        let replicas = config["web.replicas"]
            .as_i64()
            .unwrap_or_else(|| panic!("replicas must be integral: {trial:#}"));
        let mode = config["web.mode"].as_str().unwrap_or_default();
        let capacity = cpu * replicas as f64 * if mode == "safe" { 0.8 } else { 1.0 };
        let readings = &trial["readings"];
        // The series [100c, 100c+1, 100c+2] counts as its mean.
        let throughput = number(&readings["throughput"]["value"]);
        assert!(
            (throughput - (100.0 * capacity + 1.0)).abs() < 1e-6,
            "throughput {throughput} for {config}: {trial:#}"
        );
        assert_eq!(readings["throughput"]["unit"], "rps");
        let latency = number(&readings["latency_p99"]["value"]);
        assert!(
            (latency - (200.0 / capacity + mem)).abs() < 1e-3,
            "latency_p99 {latency} for {config}: {trial:#}"
        );
        assert_eq!(readings["latency_p99"]["unit"], "ms");
        let objective = number(&trial["objective"]);
        assert!(
            (objective - (latency + cpu)).abs() < 1e-6,
            "objective: {trial:#}"
        );
    }
    let baseline = recorded
        .iter()
        .find(|t| t["number"] == 0)
        .unwrap_or_else(|| panic!("no trial 0: {recorded:#?}"));
    for (name, value) in BASELINE {
        assert_eq!(
            baseline["config"][name].to_string().trim_matches('"'),
            value,
            "baseline {name}: {baseline:#}"
        );
    }

    // The server had nothing to complain about either (a failed final adjustment is a warning).
    let server_log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let complaints: Vec<&str> = server_log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(complaints.is_empty(), "the server logged: {complaints:#?}");

    // What ServoX sent, for the record (`cargo test -- --nocapture` shows it).
    let bodies = servox_requests(&servox_log);
    for event in ["DESCRIPTION", "MEASUREMENT"] {
        let body = bodies
            .iter()
            .find(|b| b["event"] == event && b["param"]["status"] == "ok")
            .unwrap_or_else(|| panic!("ServoX's log has no {event} body{}", logs()));
        eprintln!("ServoX's {event} body: {body}");
    }
    eprintln!(
        "ServoX install/cache check {:.1}s, study of {TRIALS} trials {:.1}s",
        install_took.as_secs_f64(),
        run_took.as_secs_f64()
    );
}
