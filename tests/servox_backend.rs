//! servo talks to ServoX's backend as ServoX does, through the real binary and a fake optimizer on
//! 127.0.0.1 (`common/fake_optimizer.rs`): the `X-SF-Token` header, `servo_uid` in every body,
//! ServoX's `OPSANI_*` variables alone driving a session, the AppDynamics form's OAuth2 client
//! credentials with refresh, and progressive checks that let a run wait for its dependencies.

#[path = "common/background.rs"]
mod background;
mod common;
#[path = "common/fake_optimizer.rs"]
mod fake_optimizer;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use axum::http::header;
use fake_optimizer::{FakeOptimizer, PATH, PATIENCE, Reply, Seen, TOKEN, ok};
use serde_json::json;

/// The wait connector with one component: describe and measure are real and instant.
const APPLICATION: &str = r#"wait:
  measure_enabled: true
  duration: 1s
  components:
    web:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }
"#;

/// HELLO, one DESCRIBE, GOODBYE: the shortest session that reports a result.
fn describe_once() -> Vec<(&'static str, Reply)> {
    vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "DESCRIBE", "cmd_uid": "d-1", "param": {}}),
            ),
        ),
        ("DESCRIPTION", ok()),
        ("GOODBYE", ok()),
    ]
}

/// [`describe_once`] after a two-second SLEEP: long enough for a credential to change between
/// the session's first request and its last.
fn sleep_then_describe() -> Vec<(&'static str, Reply)> {
    let mut script = describe_once();
    script.insert(
        1,
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "SLEEP", "cmd_uid": "s-1", "param": {"duration": 2}}),
            ),
        ),
    );
    script
}

fn header_of(seen: &Seen, name: &str) -> Option<String> {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `servo run --max-cycles N` to its end, with `env` set; returns (exit code, stderr).
fn run(config: &Path, cycles: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = common::servo();
    for (key, _) in std::env::vars() {
        if key.starts_with("OPSANI_") || key.starts_with("APPD_") {
            cmd.env_remove(key);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["run", "--max-cycles", cycles, "-c"])
        .arg(config)
        .timeout(PATIENCE)
        .output()
        .expect("servo runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn x_sf_token_is_its_own_header_and_servo_uid_is_in_every_request() {
    let fake = FakeOptimizer::start(describe_once());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            "servo_uid: uid-0123\noptimizer:\n  id: example.com/app\n  token: X-SF-Token sf-0123456789\n  base_url: {}\n{APPLICATION}",
            fake.base_url()
        ),
    )
    .expect("write config");
    let (code, stderr) = run(&config, "1", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let seen = fake.seen();
    assert_eq!(
        fake.events(),
        ["HELLO", "WHATS_NEXT", "DESCRIPTION", "GOODBYE"]
    );
    for s in &seen {
        assert_eq!(s.path, PATH);
        assert_eq!(
            header_of(s, "x-sf-token").as_deref(),
            Some("sf-0123456789"),
            "{}",
            s.event()
        );
        assert_eq!(header_of(s, "authorization"), None, "{}", s.event());
        assert_eq!(s.body["servo_uid"], "uid-0123", "{}", s.body);
    }
}

#[test]
fn opsani_variables_alone_drive_a_session() {
    let fake = FakeOptimizer::start(describe_once());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(&config, APPLICATION).expect("write config");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
    let base = fake.base_url();
    let env = [
        ("OPSANI_OPTIMIZER", "example.com/app"),
        (
            "OPSANI_TOKEN_FILE",
            token_file.to_str().expect("utf-8 path"),
        ),
        ("OPSANI_BASE_URL", base.as_str()),
        ("SERVO_UID", "uid-from-env"),
    ];
    let (code, stderr) = run(&config, "1", &env);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        fake.events(),
        ["HELLO", "WHATS_NEXT", "DESCRIPTION", "GOODBYE"]
    );
    for s in fake.seen() {
        assert_eq!(s.path, PATH);
        assert_eq!(
            header_of(&s, "authorization"),
            Some(format!("Bearer {TOKEN}"))
        );
        assert_eq!(s.body["servo_uid"], "uid-from-env", "{}", s.body);
    }

    // OPSANI_URL names the application's URL itself; `servo config --origins` says where each
    // value came from, and a value in the file wins over the variable, as in ServoX.
    let url = format!("{base}/accounts/example.com/applications/app/");
    let out = common::servo()
        .env("OPSANI_OPTIMIZER", "example.com/app")
        .env("OPSANI_TOKEN", TOKEN)
        .env("OPSANI_URL", &url)
        .args(["config", "--origins", "-c"])
        .arg(&config)
        .output()
        .expect("servo config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for (key, variable) in [
        ("optimizer.id", "OPSANI_OPTIMIZER"),
        ("optimizer.token", "OPSANI_TOKEN"),
        ("optimizer.url", "OPSANI_URL"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(key) && l.contains(variable)),
            "{key} from {variable}:\n{text}"
        );
    }
    assert!(!text.contains(TOKEN), "the token is printed:\n{text}");
}

#[test]
fn appdynamics_client_credentials_are_fetched_and_refreshed() {
    let fake = FakeOptimizer::start(sleep_then_describe());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    // ServoX derives `{base_url}/rest/optimize/co/v1/optimizers/{optimizer_id}/` and the token URL
    // `{base_url}/auth/{tenant_id}/default/oauth2/token`; `url` points the first at the fake.
    std::fs::write(
        &config,
        format!(
            "optimizer:\n  optimizer_id: app\n  tenant_id: tenant-1\n  client_id: client-1\n  client_secret: secret-1\n  base_url: {base}\n  url: {base}/accounts/example.com/applications/app/\n{APPLICATION}",
            base = fake.base_url()
        ),
    )
    .expect("write config");
    let (code, stderr) = run(&config, "2", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let seen = fake.seen();
    let token_requests: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.ends_with("/oauth2/token"))
        .collect();
    let expected_basic = "Basic Y2xpZW50LTE6c2VjcmV0LTE="; // client-1:secret-1
    for t in &token_requests {
        assert_eq!(t.path, "/auth/tenant-1/default/oauth2/token");
        assert_eq!(
            header_of(t, "authorization").as_deref(),
            Some(expected_basic)
        );
        assert_eq!(t.body, "grant_type=client_credentials");
    }
    // The first token is due for refresh a second after it was issued (its lifetime is one
    // second past servo's leeway): after the two-second SLEEP, servo fetches another.
    assert!(
        token_requests.len() >= 2,
        "{} token requests",
        token_requests.len()
    );
    let events: Vec<&Seen> = seen.iter().filter(|s| s.path == PATH).collect();
    assert_eq!(
        header_of(events[0], "authorization").as_deref(),
        Some("Bearer at-1")
    );
    let last = events.last().expect("requests");
    assert_ne!(
        header_of(last, "authorization").as_deref(),
        Some("Bearer at-1"),
        "the token was never refreshed"
    );
    assert!(
        header_of(last, "authorization").is_some_and(|a| a.starts_with("Bearer at-")),
        "{:?}",
        last.headers.get(header::AUTHORIZATION)
    );
}

/// The AppDynamics sidecar rotates the `Authorization` of its connection file in place: servo
/// reads it again when the file changes, as ServoX watches it, and never restarts for it.
#[test]
fn a_rotated_connection_file_token_is_used_from_the_next_request() {
    let fake = FakeOptimizer::start(sleep_then_describe());
    let dir = tempfile::tempdir().expect("tempdir");
    let connection = dir.path().join("connection.yaml");
    let write_connection = |token: &str| {
        let text = format!(
            "Authorization: Bearer {token}\nEndpoint: {}\nTenantId: tenant-1\n",
            fake.base_url()
        );
        // Written beside and renamed, as the sidecar replaces it.
        let next = dir.path().join("connection.yaml.next");
        std::fs::write(&next, text).expect("write connection file");
        std::fs::rename(&next, &connection).expect("replace connection file");
    };
    write_connection("first-token-1234");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            "optimizer:\n  optimizer_id: app\n  connection_file: {}\n  url: {}/accounts/example.com/applications/app/\n{APPLICATION}",
            connection.display(),
            fake.base_url()
        ),
    )
    .expect("write config");
    let servo = std::thread::spawn({
        let config = config.clone();
        move || run(&config, "2", &[])
    });
    // While servo sleeps on the first command, the sidecar rotates the token.
    fake.wait_for("WHATS_NEXT", 1);
    write_connection("second-token-5678");
    let (code, stderr) = servo.join().expect("servo thread");
    assert_eq!(code, Some(0), "{stderr}");
    let events: Vec<Seen> = fake.seen().into_iter().filter(|s| s.path == PATH).collect();
    assert_eq!(
        header_of(&events[0], "authorization").as_deref(),
        Some("Bearer first-token-1234")
    );
    let last = events.last().expect("requests");
    assert_eq!(
        header_of(last, "authorization").as_deref(),
        Some("Bearer second-token-5678"),
        "{}",
        last.event()
    );
    assert!(!stderr.contains("second-token-5678"), "{stderr}");
}

#[test]
fn a_check_that_fails_three_times_then_passes_lets_the_run_proceed() {
    let fake = FakeOptimizer::start(describe_once());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    // The command connector checks that its working directory exists: it does not yet, as a
    // dependency that is not ready when the servo's pod starts.
    std::fs::write(
        &config,
        format!(
            "optimizer:\n  id: example.com/app\n  token: {TOKEN}\n  base_url: {}\nchecks:\n  delay: 2s\n  wait: 5m\ncommand:\n  working_dir: later\n  measure: [\"true\"]\n{APPLICATION}",
            fake.base_url()
        ),
    )
    .expect("write config");
    let mut child = common::servo_process("warn")
        .args(["run", "--max-cycles", "1", "-c"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("servo starts");
    let guard = KillOnDrop(&mut child);
    let stderr = guard.0.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut failed_rounds = 0;
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        if line.contains("checks failed; re-running them") {
            assert!(line.contains("working directory"), "{line}");
            failed_rounds += 1;
            if failed_rounds == 3 {
                break;
            }
        }
    }
    assert_eq!(failed_rounds, 3, "servo stopped before its third round");
    assert!(
        fake.events().is_empty(),
        "servo spoke to the optimizer before its checks passed"
    );
    std::fs::create_dir(dir.path().join("later")).expect("create the directory");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = guard.0.wait().expect("servo exits");
    assert_eq!(status.code(), Some(0), "{}", rest.join("\n"));
    assert_eq!(
        fake.events(),
        ["HELLO", "WHATS_NEXT", "DESCRIPTION", "GOODBYE"]
    );
}

/// Kills and reaps a child on drop, so a failing test leaves nothing running.
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// HELLO, then a ten-minute MEASURE whose first progress report is answered with `answer`.
fn long_measure_answered(
    answer: serde_json::Value,
    then: Vec<(&'static str, Reply)>,
) -> FakeOptimizer {
    let mut script = vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "MEASURE", "cmd_uid": "m-1",
                       "param": {"metrics": ["time_waited"], "control": {"duration": 600}}}),
            ),
        ),
        ("MEASUREMENT", Reply::Json(200, answer)),
    ];
    script.extend(then);
    FakeOptimizer::start(script)
}

fn remote_config(dir: &Path, base_url: &str) -> std::path::PathBuf {
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!("optimizer:\n  id: example.com/app\n  token: {TOKEN}\n  base_url: {base_url}\n{APPLICATION}"),
    )
    .expect("write config");
    config
}

#[test]
fn a_cancel_answer_to_a_progress_report_cancels_the_running_measurement() {
    let fake = long_measure_answered(
        json!({"status": "cancelled", "reason": "operator stopped it"}),
        vec![("MEASUREMENT", ok()), ("GOODBYE", ok())],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = remote_config(dir.path(), &fake.base_url());
    // A ten-minute measurement: only the cancel can end it within the test's patience.
    let (code, stderr) = run(&config, "1", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        fake.events(),
        [
            "HELLO",
            "WHATS_NEXT",
            "MEASUREMENT",
            "MEASUREMENT",
            "GOODBYE"
        ]
    );
    let seen = fake.seen();
    let report = &seen[2].body["param"];
    assert_eq!(report["cmd_uid"], "m-1", "{report}");
    assert!(
        report["progress"].is_number() && report["runtime"].is_number(),
        "{report}"
    );
    let result = &seen[3].body["param"];
    assert_eq!(result["status"], "cancelled", "{result}");
    assert_eq!(result["cmd_uid"], "m-1", "{result}");
    let gap = seen[3].at.duration_since(seen[2].at);
    eprintln!("cancelled {gap:?} after the optimizer's answer");
}

#[test]
fn unexpected_answers_to_a_progress_report_go_back_to_whats_next() {
    for answer in [
        json!({"status": "unexpected-event", "reason": "not measuring"}),
        json!({"status": "invalid", "reason": "unexpected cmd_uid"}),
    ] {
        let fake = long_measure_answered(
            answer.clone(),
            vec![
                (
                    "WHATS_NEXT",
                    Reply::Json(
                        200,
                        json!({"cmd": "DESCRIBE", "cmd_uid": "d-1", "param": {}}),
                    ),
                ),
                ("DESCRIPTION", ok()),
                ("GOODBYE", ok()),
            ],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = remote_config(dir.path(), &fake.base_url());
        let (code, stderr) = run(&config, "2", &[]);
        assert_eq!(code, Some(0), "{answer}: {stderr}");
        // The dropped measurement is not reported: the next request asks what is next.
        assert_eq!(
            fake.events(),
            [
                "HELLO",
                "WHATS_NEXT",
                "MEASUREMENT",
                "WHATS_NEXT",
                "DESCRIPTION",
                "GOODBYE"
            ],
            "{answer}"
        );
    }
}

#[test]
fn a_multi_servo_file_runs_every_servo_at_once_and_name_picks_one() {
    let a = FakeOptimizer::start(describe_once());
    let b = FakeOptimizer::start(describe_once());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    let document = |name: &str, base: &str| {
        format!(
            "name: {name}\noptimizer:\n  id: example.com/app\n  token: {TOKEN}\n  base_url: {base}\n{APPLICATION}"
        )
    };
    std::fs::write(
        &config,
        format!(
            "{}---\n{}",
            document("servo-a", &a.base_url()),
            document("servo-b", &b.base_url())
        ),
    )
    .expect("write config");
    let (code, stderr) = run(&config, "1", &[("POD_NAMESPACE", "shop")]);
    assert_eq!(code, Some(0), "{stderr}");
    for fake in [&a, &b] {
        assert_eq!(
            fake.events(),
            ["HELLO", "WHATS_NEXT", "DESCRIPTION", "GOODBYE"]
        );
        // HELLO's telemetry has the keys ServoX sends.
        let hello = &fake.seen()[0].body["param"];
        let telemetry = &hello["telemetry"];
        assert!(telemetry["servox.version"].is_string(), "{hello}");
        assert!(telemetry["servox.platform"].is_string(), "{hello}");
        assert_eq!(telemetry["servox.namespace"], "shop", "{hello}");
    }

    let c = FakeOptimizer::start(describe_once());
    std::fs::write(
        &config,
        format!(
            "{}---\n{}",
            document("servo-a", &c.base_url()),
            document("servo-b", "http://127.0.0.1:9")
        ),
    )
    .expect("write config");
    let (code, stderr) = run(&config, "1", &[("SERVO_NAME", "servo-a")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        c.events(),
        ["HELLO", "WHATS_NEXT", "DESCRIPTION", "GOODBYE"]
    );
}

#[test]
fn run_dry_run_runs_the_checks_and_nothing_else() {
    let fake = FakeOptimizer::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            "optimizer:\n  id: example.com/app\n  token: {TOKEN}\n  base_url: {}\nchecks:\n  progressive: false\ncommand:\n  working_dir: missing\n  measure: [\"true\"]\n{APPLICATION}",
            fake.base_url()
        ),
    )
    .expect("write config");
    let out = common::servo()
        .args(["run", "--dry-run", "-c"])
        .arg(&config)
        .output()
        .expect("servo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("working directory"), "{stderr}");
    std::fs::create_dir(dir.path().join("missing")).expect("mkdir");
    let out = common::servo()
        .args(["run", "--dry-run", "-c"])
        .arg(&config)
        .output()
        .expect("servo runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fake.events().is_empty(), "{:?}", fake.events());
}

#[test]
fn a_remote_optimizer_sees_vegeta_metrics_under_servox_names_and_units() {
    let fake = FakeOptimizer::start(vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "MEASURE", "cmd_uid": "m-1", "param": {
                    "metrics": ["throughput", "error_rate", "latency_total", "latency_mean",
                                "latency_50th", "latency_90th", "latency_95th", "latency_99th",
                                "latency_max", "latency_min"],
                    "control": {"duration": 2}}}),
            ),
        ),
        ("MEASUREMENT", ok()),
        ("GOODBYE", ok()),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    let port = always_ok(400);
    std::fs::write(
        &config,
        format!(
            "optimizer:\n  id: example.com/app\n  token: {TOKEN}\n  base_url: {base}\nvegeta:\n  rate: 50/1s\n  target: GET http://127.0.0.1:{port}/\n",
            base = fake.base_url()
        ),
    )
    .expect("write config");
    let (code, stderr) = run(&config, "1", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let seen: Vec<Seen> = fake.seen().into_iter().filter(|s| s.path == PATH).collect();
    let result = seen
        .iter()
        .find(|s| s.event() == "MEASUREMENT")
        .map(|s| &s.body["param"])
        .expect("a MEASUREMENT");
    assert_eq!(result["status"], "ok", "{result}");
    let metrics = result["metrics"].as_object().expect("metrics");
    for name in [
        "throughput",
        "error_rate",
        "latency_total",
        "latency_mean",
        "latency_50th",
        "latency_90th",
        "latency_95th",
        "latency_99th",
        "latency_max",
        "latency_min",
    ] {
        assert!(metrics.contains_key(name), "{name} missing: {result}");
    }
    assert_eq!(metrics["throughput"]["unit"], "rpm", "{result}");
    assert_eq!(metrics["latency_99th"]["unit"], "ms", "{result}");
    // 50 requests per second, paced open-loop, is 3000 per minute (per second it would be 50);
    // the series is per reporting interval, so its mean is compared, with room for the edges.
    let points: Vec<f64> = metrics["throughput"]["values"][0]["data"]
        .as_array()
        .expect("a throughput series")
        .iter()
        .filter_map(|p| p[1].as_f64())
        .collect();
    assert!(!points.is_empty(), "{result}");
    let mean = points.iter().sum::<f64>() / points.len() as f64;
    assert!(
        (2000.0..=3100.0).contains(&mean),
        "throughput {mean} rpm: {result}"
    );
}

/// A server on loopback that answers every request `200` and closes; stops after `limit`
/// connections.
fn always_ok(limit: usize) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(limit) {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}
