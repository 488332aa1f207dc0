//! `servo run` against a remote optimizer, end to end: the real `servo` binary talks to a fake
//! Opsani/ServoX optimizer that plays a scripted session and records every request, and the tests
//! assert each request against the shapes of `/work/shared/optimizer-protocol.md`.
//!
//! The servo's application is the `wait` connector with an in-memory component, so describe, adjust
//! and measure are real and fast. A session ends the way a real one can: `--max-cycles N` (servo says
//! `GOODBYE {"reason": "max-cycles"}` after N commands and exits 0) or a signal (`GOODBYE` with the
//! signal's name, exit 130).
//!
//! The fake optimizer is an axum server on 127.0.0.1:0 in its own thread and runtime, owned by a
//! guard that stops it on drop; `servo` processes are owned by a guard that kills and reaps them.

mod common;

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const TOKEN: &str = "sekrit-token";
const PATH: &str = "/accounts/example.com/applications/app/servo";
/// How long a test waits for servo to reach a point or to exit.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The fake optimizer.

/// One scripted answer.
#[derive(Clone, Debug)]
enum Reply {
    /// Answer with this status code and JSON body.
    Json(u16, Value),
    /// Never answer (until the server stops): the client's read timeout must end the request.
    Hang,
}

fn ok() -> Reply {
    Reply::Json(200, json!({"status": "ok"}))
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
    at: Instant,
}

impl Seen {
    fn event(&self) -> &str {
        self.body["event"].as_str().unwrap_or("")
    }
}

#[derive(Default)]
struct Script {
    /// Answers in order, each for the event it expects; a request for another event (or after the
    /// script ran out) gets a 409, which the test then sees as a failure of servo.
    replies: VecDeque<(&'static str, Reply)>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Script>>;

struct FakeOptimizer {
    addr: SocketAddr,
    script: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeOptimizer {
    fn start(replies: Vec<(&'static str, Reply)>) -> FakeOptimizer {
        let script: Shared = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            seen: Vec::new(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&script);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the fake optimizer");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = axum::Router::new().fallback(answer).with_state(state);
                // Not a graceful shutdown: a hung request must not keep the test waiting.
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here drops every connection task still running.
        });
        FakeOptimizer {
            addr,
            script,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.script.lock().expect("script lock").seen.clone()
    }

    fn events(&self) -> Vec<String> {
        self.seen().iter().map(|s| s.event().to_string()).collect()
    }

    /// Waits until the fake has received `count` requests for `event`.
    fn wait_for(&self, event: &str, count: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.seen().iter().filter(|s| s.event() == event).count() < count {
            assert!(
                Instant::now() < deadline,
                "the optimizer never received {count} {event}; it saw {:?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeOptimizer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn answer(
    State(script): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let event = body["event"].as_str().unwrap_or("").to_string();
    let reply = {
        let mut script = script.lock().expect("script lock");
        script.seen.push(Seen {
            path: uri.path().to_string(),
            headers,
            body,
            at: Instant::now(),
        });
        match script.replies.front() {
            Some((expected, _)) if *expected == event => script.replies.pop_front().map(|(_, r)| r),
            _ => None,
        }
    };
    match reply {
        Some(Reply::Json(code, value)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response(),
        Some(Reply::Hang) => {
            std::future::pending::<()>().await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        None => (
            StatusCode::CONFLICT,
            format!("the test's script did not expect {event}"),
        )
            .into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// The servo under test.

/// `settings:` of the config (backoff and timeouts), as YAML flow mappings.
fn config(dir: &Path, base_url: &str, settings: &str) -> PathBuf {
    let text = format!(
        r#"
name: remote
optimizer:
  id: example.com/app
  token: {TOKEN}
  base_url: {base_url}
settings: {settings}
wait:
  measure_enabled: true
  duration: 1s
  components:
    web:
      settings:
        cpu: {{ type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }}
        memory: {{ type: memory, min: 0.25, max: 8, step: 0.25, value: 1 }}
        replicas: {{ type: replicas, min: 1, max: 8, step: 1, value: 2 }}
        mode: {{ type: enum, values: [fast, balanced], value: balanced }}
"#
    );
    let path = dir.join("servo.yaml");
    std::fs::write(&path, text).expect("write the config");
    path
}

/// A running `servo run`; killed and reaped on drop whatever happens.
struct Servo {
    child: Child,
}

impl Servo {
    fn start(config: &Path, args: &[&str]) -> Servo {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_servo"));
        for (key, _) in std::env::vars() {
            if key.starts_with("SERVO_") || key.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .env("NO_COLOR", "1")
            .env("SERVO_LOG_LEVEL", "warn")
            .arg("run")
            .args(args)
            .arg("-c")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("servo starts");
        Servo { child }
    }

    /// Sends `signal` (`TERM`, `INT`) with the shell's built-in `kill`.
    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", self.child.id())])
            .status()
            .expect("sh runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for servo to exit: (exit code, stdout, stderr).
    fn finish(&mut self) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "servo did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            let _ = pipe.read_to_string(&mut stdout);
        }
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status.code(), stdout, stderr)
    }
}

impl Drop for Servo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every request carries the transport headers of the protocol.
fn assert_transport(seen: &[Seen]) {
    for s in seen {
        assert_eq!(s.path, PATH, "{:?}", s.body);
        let header = |name: header::HeaderName| {
            s.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header(header::AUTHORIZATION), format!("Bearer {TOKEN}"));
        assert!(
            header(header::CONTENT_TYPE).starts_with("application/json"),
            "{}",
            header(header::CONTENT_TYPE)
        );
        let agent = header(header::USER_AGENT);
        assert!(
            agent.starts_with("github.com/opsani/servo v"),
            "user agent {agent}"
        );
        assert!(s.body["servo_uid"].is_null(), "{}", s.body);
        assert!(
            s.body.get("param").is_some(),
            "param is always sent: {}",
            s.body
        );
    }
}

fn param(seen: &Seen) -> &Value {
    &seen.body["param"]
}

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
    let mut servo = Servo::start(&config, &["--max-cycles", "6", "-o", "json"]);
    let (code, stdout, stderr) = servo.finish();
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
fn sigterm_while_sleeping_says_goodbye_and_exits_130() {
    let fake = FakeOptimizer::start(vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "SLEEP", "cmd_uid": "s-1", "param": {"duration": 3600}}),
            ),
        ),
        ("GOODBYE", ok()),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), &fake.base_url(), "{}");
    let mut servo = Servo::start(&config, &[]);
    // servo installs its signal handlers before it says HELLO.
    fake.wait_for("WHATS_NEXT", 1);
    let signalled = Instant::now();
    servo.signal("TERM");
    let (code, _, stderr) = servo.finish();
    assert_eq!(code, Some(130), "stderr: {stderr}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "servo took {:?} to stop",
        signalled.elapsed()
    );
    let seen = fake.seen();
    assert_eq!(fake.events(), ["HELLO", "WHATS_NEXT", "GOODBYE"]);
    assert_transport(&seen);
    assert_eq!(param(&seen[2]), &json!({"reason": "SIGTERM"}));
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
    let mut servo = Servo::start(&config, &[]);
    fake.wait_for("WHATS_NEXT", 1);
    servo.signal("INT");
    let (code, _, stderr) = servo.finish();
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
    let mut servo = Servo::start(&config, &["--max-cycles", "1"]);
    let (code, _, stderr) = servo.finish();
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
    let mut servo = Servo::start(&config, &[]);
    let (code, _, stderr) = servo.finish();
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
    let mut servo = Servo::start(&config, &[]);
    let (code, _, stderr) = servo.finish();
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
    let mut servo = Servo::start(&config, &[]);
    fake.wait_for("WHATS_NEXT", 1);
    // ServoX sleeps an hour for deprovisioning; servo must still be running, not retrying.
    let still_running = servo.child.try_wait().expect("try_wait").is_none();
    servo.signal("TERM");
    let (code, _, stderr) = servo.finish();
    assert!(still_running, "servo exited on 410: {stderr}");
    assert_eq!(code, Some(130), "stderr: {stderr}");
    assert!(stderr.contains("unexpected servo_uid"), "{stderr}");
    assert_eq!(fake.events(), ["HELLO", "WHATS_NEXT", "GOODBYE"]);
}
