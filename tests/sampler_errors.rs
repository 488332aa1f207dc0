//! A sampler that cannot suggest (here: a space it refuses, a float setting stepped into 3.5e12
//! grid points) never ends a study as "complete" without a word.
//!
//! - `servo optimizer serve`, driven through the protocol as a servo would: after the baseline the
//!   servo is told to SLEEP with the reason, the server logs it at error level, `/best` and
//!   `servo optimizer app list` show it, the study is not finished, and once the servo describes a
//!   searchable space the study goes on.
//! - `servo run`: the error says what failed and how to fix it (exit 2), the application is put back
//!   on the best trial (here the baseline), and the journal keeps the baseline trial with nothing left running.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/live.rs"]
mod live;

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use live::Servo;
use serde_json::{Value, json};

const TOKEN: &str = "web-token-0123456789abcdef";
const APP: &str = "/accounts/acme/applications/web";

/// A float setting no grid of at most 1e12 points can step through.
const FINE_STEP: f64 = 1e-12;

fn request(port: u16, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (status, text) = http::exchange(http::local(port), method, path, Some(TOKEN), &body);
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// One protocol event; the server's answer.
fn event(port: u16, name: &str, param: Value) -> Value {
    let (status, answer) = request(
        port,
        "POST",
        &format!("{APP}/servo"),
        &json!({ "event": name, "param": param, "servo_uid": "test" }),
    );
    assert_eq!(status, 200, "{name}: {answer}");
    answer
}

/// A description with one float setting stepped by `step`.
fn description(step: f64) -> Value {
    json!({
        "application": {"components": {"web": {"settings": {
            "cpu": {"type": "range", "min": 0.5, "max": 4.0, "step": step, "value": 1.0, "unit": "cores", "pinned": false},
        }}}},
        "measurement": {"metrics": {"latency": {"unit": "ms"}}},
    })
}

fn measurement(latency: f64) -> Value {
    json!({ "latency": { "unit": "ms", "value": latency } })
}

/// `servo optimizer app list -o json` of `store`.
fn app_list(store: &Path) -> Value {
    let output = common::servo()
        .args(["optimizer", "app", "list", "-o", "json", "--store"])
        .arg(store)
        .output()
        .expect("servo runs");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

#[test]
fn a_sampler_error_stops_the_servers_study_visibly_and_it_goes_on_once_fixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("optimizer.db");
    common::create_app(
        &dir.path().join("token"),
        store.as_os_str(),
        "acme/web",
        TOKEN,
        &["--minimize", "web.cpu", "--trials", "4", "--duration", "1s"],
    );
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let store_arg = store.to_str().expect("utf-8 path");
    let args = [
        "optimizer",
        "serve",
        "--store",
        store_arg,
        "--listen",
        &listen,
        "--sleep",
        "1s",
    ];
    let mut server = Servo::start(&dir.path().join("unused.yaml"), &args);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(server.running(), "the server exited");
        assert!(Instant::now() < deadline, "the server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }

    // DESCRIBE, then the baseline is measured as it is.
    event(port, "HELLO", json!({ "agent": "test" }));
    let describe = event(port, "WHATS_NEXT", Value::Null);
    assert_eq!(describe["cmd"], "DESCRIBE", "{describe}");
    let described = json!({ "status": "ok", "cmd_uid": describe["cmd_uid"], "descriptor": description(FINE_STEP) });
    event(port, "DESCRIPTION", described);
    let baseline = event(port, "WHATS_NEXT", Value::Null);
    assert_eq!(baseline["cmd"], "MEASURE", "{baseline}");
    let measured =
        json!({ "status": "ok", "cmd_uid": baseline["cmd_uid"], "metrics": measurement(20.0) });
    event(port, "MEASUREMENT", measured);

    // The sampler refuses the space: a SLEEP that says why, not the end of the study.
    let told = event(port, "WHATS_NEXT", Value::Null);
    assert_eq!(told["cmd"], "SLEEP", "{told}");
    let reason = told["param"]["data"]["reason"].as_str().unwrap_or_default();
    for expected in ["could not suggest", "web.cpu", "grid points", "tries again"] {
        assert!(
            reason.contains(expected),
            "the reason lacks `{expected}`: {reason}"
        );
    }
    assert!(!reason.contains("complete"), "{reason}");
    let (status, best) = request(port, "GET", &format!("{APP}/best"), &Value::Null);
    assert_eq!(status, 200, "{best}");
    let error = best["error"].as_str().unwrap_or_default();
    assert!(error.contains("grid points"), "/best: {best:#}");
    assert_eq!(best["trials"], 1, "{best:#}");
    let listed = app_list(&store);
    let listed_error = listed[0]["error"].as_str().unwrap_or_default();
    assert!(listed_error.contains("grid points"), "{listed:#}");

    // Asking again after the sleep: describe again (the servo's settings may have been fixed),
    // and with a searchable space the study goes on.
    let again = event(port, "WHATS_NEXT", Value::Null);
    assert_eq!(again["cmd"], "DESCRIBE", "{again}");
    let fixed =
        json!({ "status": "ok", "cmd_uid": again["cmd_uid"], "descriptor": description(0.5) });
    event(port, "DESCRIPTION", fixed);
    let next = event(port, "WHATS_NEXT", Value::Null);
    assert!(
        next["cmd"] == "MEASURE" || next["cmd"] == "ADJUST",
        "the study goes on: {next}"
    );
    let (_, best) = request(port, "GET", &format!("{APP}/best"), &Value::Null);
    assert!(best["error"].is_null(), "the error is cleared: {best:#}");
    assert!(app_list(&store)[0]["error"].is_null());

    server.signal("TERM");
    let ended = server.finish(Duration::from_secs(20));
    assert!(
        ended.stderr.contains("ERROR") && ended.stderr.contains("study is stopped"),
        "logged at error level: {}",
        ended.stderr
    );
}

#[test]
fn a_sampler_error_in_servo_run_is_an_error_that_restores_the_best_trial_and_keeps_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            "optimizer:
  trials: 3
  objective: {{ minimize: web.x }}
  store: study.db
  control: {{ duration: 0s }}
wait:
  measure_enabled: true
  components:
    web:
      settings:
        x: {{ type: range, min: 0.5, max: 4, step: {FINE_STEP:.12}, value: 1 }}
"
        ),
    )
    .expect("write the config");
    for run in 0..2 {
        let (code, _, stderr) = common::run(&config, &["run"]);
        assert_eq!(code, 2, "run {run}: {stderr}");
        for expected in [
            "the described settings cannot be searched",
            "web.x",
            "grid points",
            "the application was put back on the best configuration (trial 0)",
        ] {
            assert!(
                stderr.contains(expected),
                "run {run}: the error lacks `{expected}`: {stderr}"
            );
        }
        let (code, stdout, stderr) = common::run(&config, &["trials", "-o", "json"]);
        assert_eq!(code, 0, "{stderr}");
        let trials: Vec<Value> = serde_json::from_str(&stdout).expect("trials as JSON");
        let states: Vec<&str> = trials
            .iter()
            .map(|t| t["state"].as_str().unwrap_or("?"))
            .collect();
        // The second run resumes the same study: still the one baseline, nothing left running.
        assert_eq!(states, ["complete"], "run {run}: {trials:#?}");
    }
}
