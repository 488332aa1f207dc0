//! `servo run` against a remote optimizer, end to end: the real `servo` binary talks to a fake
//! Opsani/ServoX optimizer that plays a scripted session and records every request, and the tests
//! assert each request against the shapes of `/work/shared/optimizer-protocol.md`.
//!
//! The servo's application is the `wait` connector with an in-memory component, so describe, adjust
//! and measure are real and fast. A session ends the way a real one can: `--max-cycles N` (servo says
//! `GOODBYE {"reason": "max-cycles"}` after N commands and exits 0) or a signal (`GOODBYE` with the
//! signal's name, exit 130).
//!
//! The fake optimizer (`common/fake_optimizer.rs`) is an axum server on 127.0.0.1:0 in its own
//! thread and runtime, owned by a guard that stops it on drop; `servo` processes are owned by a
//! guard that kills and reaps them (`common/live.rs`). Signals during a `SLEEP` are tested, for
//! SIGTERM and SIGINT, in `tests/signals.rs`.

#[path = "common/background.rs"]
mod background;
mod common;
#[path = "common/fake_optimizer.rs"]
mod fake_optimizer;
#[path = "common/live.rs"]
mod live;

use std::time::{Duration, Instant};

use fake_optimizer::{FakeOptimizer, PATIENCE, Reply, TOKEN, assert_transport, config, ok, param};
use live::{Ended, Servo};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Scenarios.

#[test]
fn a_full_session_speaks_the_servox_protocol() {
    let adjust_state = json!({"application": {"components": {"web": {"settings": {
        "cpu": {"value": 0.5}, "memory": {"value": 2}, "replicas": {"value": 3}, "mode": {"value": "fast"}
    }}}}});
    let fake = FakeOptimizer::start(vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "DESCRIBE", "cmd_uid": "d-1", "param": {"control": {}}}),
            ),
        ),
        ("DESCRIPTION", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "MEASURE", "cmd_uid": "m-1",
            "param": {"metrics": ["time_waited"], "control": {"duration": "200ms", "past": 0}}}),
            ),
        ),
        ("MEASUREMENT", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "ADJUST", "cmd_uid": "a-1",
            "param": {"state": adjust_state, "control": {"settlement": 0}}}),
            ),
        ),
        ("ADJUSTMENT", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "ADJUST", "cmd_uid": "a-2",
            "param": {"state": {"application": {"components": {"web": {"settings": {"cpu": {"value": 9}}}}}}}}),
            ),
        ),
        ("ADJUSTMENT", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "MEASURE", "cmd_uid": "m-2",
            "param": {"metrics": {"throughput": {}}, "control": {"duration": 1}}}),
            ),
        ),
        ("MEASUREMENT", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "SLEEP", "cmd_uid": "s-1",
            "param": {"duration": 1, "data": {"status": "ok", "reason": "waiting"}}}),
            ),
        ),
        ("GOODBYE", ok()),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), &fake.base_url(), "{}");
    let mut servo = Servo::start(&config, &["run", "--max-cycles", "6", "-o", "json"]);
    let Ended {
        code,
        stdout,
        stderr,
        ..
    } = servo.finish(PATIENCE);
    assert_eq!(code, Some(0), "stderr: {stderr}");

    let seen = fake.seen();
    assert_eq!(
        fake.events(),
        [
            "HELLO",
            "WHATS_NEXT",
            "DESCRIPTION",
            "WHATS_NEXT",
            "MEASUREMENT",
            "WHATS_NEXT",
            "ADJUSTMENT",
            "WHATS_NEXT",
            "ADJUSTMENT",
            "WHATS_NEXT",
            "MEASUREMENT",
            "WHATS_NEXT",
            "GOODBYE"
        ],
        "stderr: {stderr}"
    );
    assert_transport(&seen);

    // HELLO: agent and telemetry.
    let hello = param(&seen[0]);
    assert!(
        hello["agent"]
            .as_str()
            .is_some_and(|a| a.starts_with("github.com/opsani/servo v")),
        "{hello}"
    );
    assert!(hello["telemetry"].is_object(), "{hello}");
    // WHATS_NEXT: no param.
    for s in seen.iter().filter(|s| s.event() == "WHATS_NEXT") {
        assert!(param(s).is_null(), "{}", s.body);
    }

    // DESCRIPTION: the descriptor in ServoX's shape, CPU in cores, memory in GiB.
    let description = param(&seen[2]);
    assert_eq!(description["status"], "ok");
    assert_eq!(description["cmd_uid"], "d-1");
    let settings = &description["descriptor"]["application"]["components"]["web"]["settings"];
    assert_eq!(
        settings["cpu"],
        json!({"type": "range", "min": 0.25, "max": 4.0, "step": 0.25, "value": 1.0, "unit": "cores", "pinned": false})
    );
    assert_eq!(settings["memory"]["unit"], "GiB");
    assert_eq!(settings["memory"]["value"], 1.0);
    assert_eq!(
        settings["replicas"],
        json!({"type": "range", "min": 1, "max": 8, "step": 1, "value": 2, "pinned": false})
    );
    assert_eq!(
        settings["mode"],
        json!({"type": "enum", "values": ["fast", "balanced"], "value": "balanced", "unit": "", "pinned": false})
    );
    assert_eq!(
        description["descriptor"]["measurement"]["metrics"]["time_waited"],
        json!({"unit": "s"})
    );

    // MEASUREMENT: the reading, measured with the control's duration.
    let measurement = param(&seen[4]);
    assert_eq!(measurement["status"], "ok");
    assert_eq!(measurement["cmd_uid"], "m-1");
    let waited = &measurement["metrics"]["time_waited"];
    assert_eq!(waited["unit"], "s");
    let value = waited["value"].as_f64().expect("a value");
    assert!(
        (0.2..5.0).contains(&value),
        "waited {value}s for a 200ms measurement"
    );
    assert!(measurement["annotations"].is_object(), "{measurement}");

    // ADJUSTMENT: the state after adjusting.
    let adjustment = param(&seen[6]);
    assert_eq!(adjustment["status"], "ok");
    assert_eq!(adjustment["cmd_uid"], "a-1");
    let state = &adjustment["state"]["application"]["components"]["web"]["settings"];
    assert_eq!(state["cpu"]["value"], 0.5);
    assert_eq!(state["memory"]["value"], 2.0);
    assert_eq!(state["replicas"]["value"], 3);
    assert_eq!(state["mode"]["value"], "fast");

    // A value outside the domain is rejected, reported, and the loop goes on.
    let rejected = param(&seen[8]);
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert_eq!(rejected["reason"], "invalid");
    assert_eq!(rejected["cmd_uid"], "a-2");
    assert!(
        rejected["message"]
            .as_str()
            .is_some_and(|m| m.contains("web.cpu") && m.contains("out of range")),
        "{rejected}"
    );
    // So is a metric nobody provides.
    let unknown = param(&seen[10]);
    assert_eq!(unknown["status"], "rejected", "{unknown}");
    assert_eq!(unknown["cmd_uid"], "m-2");
    assert!(
        unknown["message"]
            .as_str()
            .is_some_and(|m| m.contains("throughput")),
        "{unknown}"
    );

    // SLEEP really sleeps, then max-cycles ends the session with GOODBYE.
    let slept = seen[12].at.duration_since(seen[11].at);
    assert!(slept >= Duration::from_millis(900), "slept only {slept:?}");
    assert_eq!(param(&seen[12]), &json!({"reason": "max-cycles"}));

    let summary: Value = serde_json::from_str(&stdout).expect("a JSON summary on stdout");
    assert_eq!(summary["commands"], 6);
    assert_eq!(summary["failed"], 2);
    assert_eq!(summary["ended"], "max-cycles");
    assert_eq!(summary["interrupted"], false);
}

#[test]
fn sigint_during_a_measurement_reports_it_aborted_then_says_goodbye() {
    let fake = FakeOptimizer::start(vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "MEASURE", "cmd_uid": "m-1",
            "param": {"metrics": ["time_waited"], "control": {"duration": 3600}}}),
            ),
        ),
        ("MEASUREMENT", ok()),
        ("GOODBYE", ok()),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), &fake.base_url(), "{}");
    let mut servo = Servo::start(&config, &["run"]);
    fake.wait_for("WHATS_NEXT", 1);
    servo.signal("INT");
    let Ended { code, stderr, .. } = servo.finish(PATIENCE);
    assert_eq!(code, Some(130), "stderr: {stderr}");
    let seen = fake.seen();
    assert_eq!(
        fake.events(),
        ["HELLO", "WHATS_NEXT", "MEASUREMENT", "GOODBYE"]
    );
    assert_transport(&seen);
    let aborted = param(&seen[2]);
    assert_eq!(aborted["status"], "aborted", "{aborted}");
    assert_eq!(aborted["cmd_uid"], "m-1");
    assert_eq!(param(&seen[3]), &json!({"reason": "SIGINT"}));
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let unavailable = || Reply::Json(503, json!({"detail": "try later"}));
    let fake = FakeOptimizer::start(vec![
        ("HELLO", unavailable()),
        ("HELLO", unavailable()),
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(404, json!({"detail": "Not Found"})),
        ),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "SLEEP", "cmd_uid": "s-1", "param": {"duration": 0}}),
            ),
        ),
        ("GOODBYE", ok()),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(
        dir.path(),
        &fake.base_url(),
        "{backoff: {connect: {max_tries: 5}, __default__: {max_time: 1m}}}",
    );
    let started = Instant::now();
    let mut servo = Servo::start(&config, &["run", "--max-cycles", "1"]);
    let Ended { code, stderr, .. } = servo.finish(PATIENCE);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        fake.events(),
        [
            "HELLO",
            "HELLO",
            "HELLO",
            "WHATS_NEXT",
            "WHATS_NEXT",
            "GOODBYE"
        ]
    );
    assert_transport(&fake.seen());
    // Full jitter: the three pauses are at most 0.5s, 1s and 0.5s.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_unauthorized_token_stops_at_once_with_a_hint() {
    let fake = FakeOptimizer::start(vec![(
        "HELLO",
        Reply::Json(401, json!({"detail": "Invalid token"})),
    )]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), &fake.base_url(), "{}");
    let mut servo = Servo::start(&config, &["run"]);
    let Ended { code, stderr, .. } = servo.finish(PATIENCE);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("the optimizer rejected the token"),
        "{stderr}"
    );
    assert!(stderr.contains("SERVO_OPTIMIZER_TOKEN"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token leaked: {stderr}");
    assert_eq!(fake.events(), ["HELLO"]);
}

#[test]
fn an_optimizer_that_never_answers_is_given_up_on_within_the_bounds() {
    let fake = FakeOptimizer::start(vec![
        ("HELLO", ok()),
        ("WHATS_NEXT", Reply::Hang),
        ("WHATS_NEXT", Reply::Hang),
        ("WHATS_NEXT", Reply::Hang),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(
        dir.path(),
        &fake.base_url(),
        "{timeouts: {read: 1s}, backoff: {whats_next: {max_tries: 2}}}",
    );
    let started = Instant::now();
    let mut servo = Servo::start(&config, &["run"]);
    let Ended { code, stderr, .. } = servo.finish(PATIENCE);
    let elapsed = started.elapsed();
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("WHATS_NEXT failed after 2 tries"),
        "{stderr}"
    );
    assert!(stderr.contains("timed out"), "{stderr}");
    assert_eq!(fake.events(), ["HELLO", "WHATS_NEXT", "WHATS_NEXT"]);
    assert!(
        elapsed >= Duration::from_secs(2),
        "two 1s timeouts took only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
}

#[test]
fn an_unknown_servo_uid_makes_servo_wait_instead_of_exiting() {
    let fake = FakeOptimizer::start(vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(410, json!({"detail": "unexpected servo_uid"})),
        ),
        ("GOODBYE", ok()),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), &fake.base_url(), "{}");
    let mut servo = Servo::start(&config, &["run"]);
    fake.wait_for("WHATS_NEXT", 1);
    // ServoX sleeps an hour for deprovisioning; servo must still be running, not retrying.
    let still_running = servo.running();
    servo.signal("TERM");
    let Ended { code, stderr, .. } = servo.finish(PATIENCE);
    assert!(still_running, "servo exited on 410: {stderr}");
    assert_eq!(code, Some(130), "stderr: {stderr}");
    assert!(stderr.contains("unexpected servo_uid"), "{stderr}");
    assert_eq!(fake.events(), ["HELLO", "WHATS_NEXT", "GOODBYE"]);
}
