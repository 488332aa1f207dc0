//! `servo run` under a remote optimizer cuts a measurement short when the optimizer's SLO
//! conditions (`control.userdata.slo`, ServoX's fast fail) are violated by the readings so far of a
//! measure connector other than Prometheus (vegeta), and reports it as ServoX does: `aborted`,
//! reason `slo-violation`.
//!
//! - Against `servo optimizer serve`: the server sends the study's SLOs as conditions, and a trial
//!   of the demo app that melts down is cut short on the servo and recorded so on the server.
//! - Against a ServoX-shaped optimizer (`common/fake_optimizer.rs`): vegeta loads a port nothing
//!   listens on, so every request fails; a condition on `error_rate` stops the measurement, one on
//!   a metric no connector reports leaves it to run to its end (where vegeta fails it for a load
//!   that never got through, its own verdict).
#![cfg(target_os = "linux")]

#[path = "common/background.rs"]
mod background;
mod common;
#[path = "common/fake_optimizer.rs"]
mod fake_optimizer;
#[path = "common/http.rs"]
mod http;
#[path = "common/live.rs"]
mod live;
#[path = "common/optimizer_serve.rs"]
mod optimizer_serve;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_success, output};
use fake_optimizer::{FakeOptimizer, Reply, ok, param};
use serde_json::{Value, json};

const TOKEN: &str = "cut-token-0123456789abcdef";

/// The servo of `acme/cut`: the demo app with one worker, no cache and 400 requests/s, a
/// meltdown whichever algorithm is tried (`common::melting_demo_app`).
fn servo_config(dir: &Path, server: u16, app: u16) -> PathBuf {
    let path = dir.join("servo.yaml");
    std::fs::write(
        &path,
        common::remote_optimizer_of(
            "acme/cut",
            TOKEN,
            &format!("http://127.0.0.1:{server}"),
            "{ backoff: { __default__: { max_time: 60s } } }",
        ) + &common::melting_demo_app(app),
    )
    .expect("servo config");
    path
}

/// The measurement window of the remote studies: long, so a cut is plain in the wall time.
const WINDOW_SECS: f64 = 20.0;

#[test]
fn a_remote_trial_that_melts_down_is_cut_short_on_the_servo_and_recorded_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("optimizer.db");
    common::create_app(
        &dir.path().join("token"),
        store.as_os_str(),
        "acme/cut",
        TOKEN,
        &[
            "--minimize",
            "latency_p50",
            "--constraint",
            "error_rate < 1%",
            "--constraint",
            "latency_p99 < 40ms",
            "--trials",
            "2",
            "--seed",
            "2",
            "--warmup",
            "1s",
            "--duration",
            "20s",
        ],
    );
    let port = common::free_port();
    let _server = optimizer_serve::start(dir.path(), &store, port, &[]);
    let config = servo_config(dir.path(), port, common::free_port());
    // DESCRIBE, the baseline's MEASURE, then trial 1's ADJUST and MEASURE.
    let out = output(&config, &["run", "--max-cycles", "4"]);
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("measurement cut short, an SLO the optimizer set is violated: ("),
        "{stderr}"
    );

    let (status, body) = http::exchange(
        http::local(port),
        "GET",
        "/accounts/acme/applications/cut/trials",
        Some(TOKEN),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let trials: Vec<Value> = serde_json::from_str(&body).expect("json");
    assert_eq!(trials.len(), 2, "{trials:#?}");
    assert_eq!(
        trials[0]["state"], "complete",
        "the baseline is measured whole"
    );
    assert!(
        trials[0].get("cut_short").is_none_or(Value::is_null),
        "{:#}",
        trials[0]
    );
    let trial = &trials[1];
    assert_eq!(trial["state"], "failed", "{trial:#}");
    let cut = trial["cut_short"].as_str().unwrap_or_default();
    assert!(cut.starts_with("SLO violation(s) observed: ("), "{trial:#}");
    assert!(
        cut.contains("error_rate below 1 -> error_rate < 1%")
            || cut.contains("latency_p99 below 40 -> latency_p99 < 40ms"),
        "{cut}"
    );
    // Adjusting (restarting the app) and the warmup included, far below the 20 s window.
    let took = trial["finished_at"].as_f64().unwrap_or(f64::NAN)
        - trial["started_at"].as_f64().unwrap_or(f64::NAN);
    eprintln!("trial 1 took {took:.1} s, adjusting included, of a {WINDOW_SECS} s window");
    assert!(took < WINDOW_SECS * 0.6, "trial 1 took {took} s: {trial:#}");
}

/// A servo measuring with vegeta against a port nothing listens on: every request fails.
fn refused_load(dir: &Path, base_url: &str) -> PathBuf {
    let remote = common::remote_optimizer(fake_optimizer::TOKEN, base_url, "{}");
    let closed = common::free_port();
    let path = dir.join("servo.yaml");
    std::fs::write(
        &path,
        format!(
            "name: remote\n{remote}vegeta:\n  rate: 50/1s\n  target: GET http://127.0.0.1:{closed}/\n  timeout: 1s\n  reporting_interval: 1s\n"
        ),
    )
    .expect("write the config");
    path
}

/// One MEASURE with `conditions`, then the result: the optimizer's side of one measurement.
/// A progress report (every 5 s) is acknowledged too.
fn measure_once(duration: &str, conditions: Value) -> FakeOptimizer {
    FakeOptimizer::start(vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "MEASURE", "cmd_uid": "m-1", "param": {
                    "metrics": ["error_rate", "throughput"],
                    "control": {"duration": duration, "userdata": {"slo": {"conditions": conditions}}},
                }}),
            ),
        ),
        ("MEASUREMENT", ok()),
        ("MEASUREMENT", ok()),
        ("GOODBYE", ok()),
    ])
}

/// The MEASUREMENT that reports the result (not a progress report), and how long after the
/// MEASURE it came.
fn result(fake: &FakeOptimizer) -> (Value, Duration) {
    let seen = fake.seen();
    let asked = seen
        .iter()
        .rfind(|s| s.event() == "WHATS_NEXT")
        .expect("a WHATS_NEXT")
        .at;
    let reported = seen
        .iter()
        .find(|s| s.event() == "MEASUREMENT" && param(s).get("status").is_some())
        .unwrap_or_else(|| panic!("no result: {:?}", fake.events()));
    (param(reported).clone(), reported.at - asked)
}

#[test]
fn a_servox_fast_fail_condition_stops_a_vegeta_measurement_reported_as_servox_reports_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = measure_once(
        "30s",
        json!([{"metric": "error_rate", "threshold": 5, "description": "errors"}]),
    );
    let config = refused_load(dir.path(), &fake.base_url());
    let out = output(&config, &["run", "--no-checks", "--max-cycles", "1"]);
    assert_success(&out);
    let (status, took) = result(&fake);
    assert_eq!(status["status"], "aborted", "{status:#}");
    assert_eq!(status["reason"], "slo-violation", "{status:#}");
    assert_eq!(status["cmd_uid"], "m-1", "{status:#}");
    assert!(
        status.get("metrics").is_none(),
        "ServoX sends none: {status:#}"
    );
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("SLO violation(s) observed: (error_rate below 5 -> errors) failed 1 of the last 1 checks (100 > 5)"),
        "{message}"
    );
    eprintln!("the 30 s measurement was reported after {took:.1?}");
    assert!(
        took < Duration::from_secs(15),
        "the 30 s window took {took:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("measurement cut short"), "{stderr}");
}

#[test]
fn a_condition_on_a_metric_no_connector_reports_leaves_the_measurement_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = measure_once(
        "6s",
        json!([{"metric": "latency_from_prometheus", "threshold": 0}]),
    );
    let config = refused_load(dir.path(), &fake.base_url());
    let out = output(&config, &["run", "--no-checks", "--max-cycles", "1"]);
    assert_success(&out);
    let (status, took) = result(&fake);
    // Measured to its end, where vegeta gives its own verdict on a load that never got through.
    assert_ne!(status["reason"], "slo-violation", "{status:#}");
    assert_eq!(status["status"], "failed", "{status:#}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("every request of the attack failed"),
        "{message}"
    );
    // The attack's last request leaves just before the window's end.
    assert!(took >= Duration::from_secs(5), "measured whole: {took:?}");
}
