//! `servo optimizer serve` end to end: the real binary serving over loopback, real `servo run`
//! processes as its clients, a SQLite store in a tempdir.
//!
//! - Security: 401 without a token, with an unknown one or another application's (one answer for all), 413 for
//!   a body over `--max-body`, 400 with a message for malformed JSON or a body that is not the
//!   protocol, and no 5xx for any of them.
//! - Two servos optimize two applications at once; the server is SIGKILLed mid-study and restarted
//!   on the same store and port: both studies finish with every trial complete, numbered without
//!   gaps or repeats, none lost and none run twice.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/live.rs"]
mod live;
#[path = "common/optimizer_serve.rs"]
mod optimizer_serve;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use live::Servo;
use serde_json::{Value, json};

const TOKEN_WEB: &str = "web-token-0123456789abcdef";
const TOKEN_API: &str = "api-token-0123456789abcdef";

fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    http::exchange(http::local(port), method, path, token, body)
}

fn post(port: u16, app: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http(
        port,
        "POST",
        &format!("/accounts/acme/applications/{app}/servo"),
        token,
        body.to_string().as_bytes(),
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn get_json(port: u16, path: &str, token: &str) -> (u16, Value) {
    let (status, text) = http(port, "GET", path, Some(token), b"");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `servo optimizer app create acme/APP` with a known token.
fn create_app(dir: &Path, store: &Path, app: &str, token: &str, extra: &[&str]) {
    let token_file = dir.join(format!("{app}.token"));
    common::create_app(
        &token_file,
        store.as_os_str(),
        &format!("acme/{app}"),
        token,
        extra,
    );
}

/// The server on `port`, started and waited for (its `/healthz` answers).
fn start_server(dir: &Path, store: &Path, port: u16, extra: &[&str]) -> Servo {
    optimizer_serve::start(dir, store, port, extra)
}

fn servo_config(dir: &Path, app: &str, token: &str, port: u16) -> PathBuf {
    let path = dir.join(format!("{app}.yaml"));
    std::fs::write(
        &path,
        format!(
            r#"optimizer:
  id: acme/{app}
  token: {token}
  base_url: http://127.0.0.1:{port}
settings:
  backoff:
    __default__: {{ max_time: 60s }}
wait:
  measure_enabled: true
  components:
    main:
      settings:
        cpu: {{ type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }}
        replicas: {{ type: replicas, min: 1, max: 8, step: 1, value: 2 }}
        mode: {{ type: enum, values: [fast, balanced, thorough], value: balanced }}
"#
        ),
    )
    .expect("servo config");
    path
}

#[test]
fn bad_requests_get_4xx_with_a_reason_and_never_a_5xx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("optimizer.db");
    create_app(
        dir.path(),
        &store,
        "web",
        TOKEN_WEB,
        &["--minimize", "main.cpu"],
    );
    create_app(
        dir.path(),
        &store,
        "api",
        TOKEN_API,
        &["--minimize", "main.cpu"],
    );
    let port = common::free_port();
    let _server = start_server(dir.path(), &store, port, &["--max-body", "4Ki"]);
    let hello = json!({"event": "HELLO", "param": {"agent": "test"}, "servo_uid": null});

    let (status, body) = post(port, "web", None, &hello);
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("bearer")),
        "{body}"
    );
    let (status, _) = post(port, "web", Some("not-a-token-of-anyone"), &hello);
    assert_eq!(status, 401);
    // Another application's token, and an application that does not exist, get exactly the
    // answer an unknown token gets: a stranger learns nothing about which tokens exist.
    let (_, unknown) = post(port, "web", Some("not-a-token-of-anyone"), &hello);
    for (app, token) in [
        ("web", TOKEN_API),
        ("nope", TOKEN_WEB),
        ("nope", "not-a-token-of-anyone"),
    ] {
        let (status, body) = post(port, app, Some(token), &hello);
        assert_eq!(status, 401, "{body}");
        assert_eq!(body, unknown, "{app} with {token}");
    }

    let path = "/accounts/acme/applications/web/servo";
    let oversized = format!(
        r#"{{"event": "HELLO", "param": {{"agent": "{}"}}}}"#,
        "x".repeat(16 * 1024)
    );
    let (status, _) = http(port, "POST", path, Some(TOKEN_WEB), oversized.as_bytes());
    assert_eq!(status, 413);
    // Without a token nothing is read: the answer is 401, not 413, however large the body.
    let (status, _) = http(port, "POST", path, None, oversized.as_bytes());
    assert_eq!(status, 401);
    let (status, _) = http(
        port,
        "POST",
        path,
        Some("not-a-token-of-anyone"),
        oversized.as_bytes(),
    );
    assert_eq!(status, 401);

    for (body, expected) in [
        (&b"{not json"[..], "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (br#"{"param": null}"#, "no `event`"),
        (br#"{"event": 7}"#, "`event` must be a string"),
        (br#"{"event": "DANCE"}"#, "unknown event `DANCE`"),
        (
            br#"{"event": "HELLO", "servo_uid": {}}"#,
            "`servo_uid` must be a string or null",
        ),
        (
            br#"{"event": "MEASUREMENT", "param": {"status": 5}}"#,
            "not a status",
        ),
    ] {
        let (status, text) = http(port, "POST", path, Some(TOKEN_WEB), body);
        assert_eq!(status, 400, "{:?} → {text}", String::from_utf8_lossy(body));
        let detail: Value = serde_json::from_str(&text).expect("a JSON error");
        assert!(
            detail["detail"]
                .as_str()
                .is_some_and(|d| d.contains(expected)),
            "{:?} → {text}",
            String::from_utf8_lossy(body)
        );
    }
    // A result nobody asked for is a protocol answer, not an HTTP error.
    let (status, body) = post(
        port,
        "web",
        Some(TOKEN_WEB),
        &json!({"event": "MEASUREMENT", "param": {"status": "ok", "metrics": {}}}),
    );
    assert_eq!(status, 200);
    assert_eq!(body["status"], "unexpected-event", "{body}");

    // The read API is authenticated the same way; an application with no study yet is a 404.
    let (status, _) = get_json(
        port,
        "/accounts/acme/applications/web/trials",
        "wrong-token-123456",
    );
    assert_eq!(status, 401);
    let (status, body) = get_json(port, "/accounts/acme/applications/web/trials", TOKEN_WEB);
    assert_eq!(status, 404, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no study yet"))
    );
    let (status, body) = get_json(port, "/nowhere", TOKEN_WEB);
    assert_eq!(status, 404);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("GET /nowhere"))
    );

    // /metrics counts every one of those answers, and none was a 5xx.
    let (status, metrics) = http(port, "GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    assert!(metrics.contains("status=\"401\""), "{metrics}");
    assert!(metrics.contains("status=\"400\""), "{metrics}");
    assert!(!metrics.contains("status=\"5"), "{metrics}");
}

#[test]
fn the_openapi_document_describes_every_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("optimizer.db");
    let port = common::free_port();
    let _server = start_server(dir.path(), &store, port, &[]);
    let (status, text) = http(port, "GET", "/openapi.json", None, b"");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/accounts/{org}/applications/{app}/servo",
        "/accounts/{org}/applications/{app}/trials",
        "/accounts/{org}/applications/{app}/best",
        "/accounts/{org}/applications/{app}/report",
        "/healthz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
    let responses = &paths["/accounts/{org}/applications/{app}/servo"]["post"]["responses"];
    for code in ["200", "400", "401", "413"] {
        assert!(responses.get(code).is_some(), "{code} is not described");
    }
}

/// The trials of `acme/APP` on the server.
fn trials(port: u16, app: &str, token: &str) -> Vec<Value> {
    let (status, body) = get_json(
        port,
        &format!("/accounts/acme/applications/{app}/trials"),
        token,
    );
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

fn finished(trials: &[Value]) -> usize {
    trials
        .iter()
        .filter(|t| t["state"] == "complete" || t["state"] == "failed")
        .count()
}

fn wait_for(what: &str, within: Duration, done: impl FnMut() -> bool) {
    assert!(reached(within, done), "timed out waiting for {what}");
}

/// Whether `done` holds within `within`, asked every 50 ms.
fn reached(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[test]
fn two_servos_finish_their_studies_across_a_server_crash_without_losing_or_repeating_a_trial() {
    const TRIALS: usize = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("optimizer.db");
    let trials_arg = TRIALS.to_string();
    let settings = [
        "--minimize",
        "main.cpu * main.replicas + time_waited",
        "--trials",
        &trials_arg,
        "--duration",
        "150ms",
        "--seed",
        "3",
    ];
    create_app(dir.path(), &store, "web", TOKEN_WEB, &settings);
    create_app(dir.path(), &store, "api", TOKEN_API, &settings);
    let port = common::free_port();
    let mut server = start_server(dir.path(), &store, port, &[]);
    let web = servo_config(dir.path(), "web", TOKEN_WEB, port);
    let api = servo_config(dir.path(), "api", TOKEN_API, port);
    // At `info`, so that a study that never finishes shows each request and command.
    let mut servo_web = Servo::start_logging(&web, &["run"], "info");
    let mut servo_api = Servo::start_logging(&api, &["run"], "info");

    // Crash the server mid-study: both studies have started, neither has finished.
    wait_for(
        "two finished trials of each study",
        Duration::from_secs(60),
        || {
            finished(&trials(port, "web", TOKEN_WEB)) >= 2
                && finished(&trials(port, "api", TOKEN_API)) >= 2
        },
    );
    server.signal("KILL");
    let crashed = server.finish(Duration::from_secs(10));
    assert_eq!(crashed.code, None, "SIGKILL ends the server");
    std::thread::sleep(Duration::from_millis(500));
    let mut restarted = optimizer_serve::start_logging(dir.path(), &store, port, &[], "info");

    let both_finished = || {
        finished(&trials(port, "web", TOKEN_WEB)) >= TRIALS
            && finished(&trials(port, "api", TOKEN_API)) >= TRIALS
    };
    if !reached(Duration::from_secs(90), both_finished) {
        // What each process said, to tell a server that hangs from a servo that gave up.
        let (web, api) = (
            trials(port, "web", TOKEN_WEB),
            trials(port, "api", TOKEN_API),
        );
        let mut logs = String::new();
        for (name, process) in [
            ("the restarted server", &mut restarted),
            ("the web servo", &mut servo_web),
            ("the api servo", &mut servo_api),
        ] {
            if process.running() {
                process.signal("KILL");
            }
            let ended = process.finish(Duration::from_secs(10));
            logs.push_str(&format!(
                "--- {name} (exit {:?}):\n{}\n",
                ended.code, ended.stderr
            ));
        }
        panic!(
            "timed out waiting for both studies to finish: {} and {} of {TRIALS} trials\n{logs}",
            finished(&web),
            finished(&api)
        );
    }
    for (app, token) in [("web", TOKEN_WEB), ("api", TOKEN_API)] {
        let trials = trials(port, app, token);
        let numbers: Vec<i64> = trials.iter().filter_map(|t| t["number"].as_i64()).collect();
        assert_eq!(
            numbers,
            (0..TRIALS as i64).collect::<Vec<_>>(),
            "{app}: {trials:#?}"
        );
        for t in &trials {
            assert_eq!(t["state"], "complete", "{app}: {t:#}");
            assert!(
                t["readings"]["time_waited"]["value"].as_f64().is_some(),
                "{t:#}"
            );
        }
        let mut configs: Vec<String> = trials.iter().map(|t| t["config"].to_string()).collect();
        configs.sort();
        configs.dedup();
        assert_eq!(
            configs.len(),
            TRIALS,
            "{app}: a configuration was tried twice"
        );
        assert_eq!(
            trials[0]["config"],
            json!({"main.cpu": 1.0, "main.mode": "balanced", "main.replicas": 2}),
            "{app}: the baseline comes first"
        );
        let (status, best) = get_json(
            port,
            &format!("/accounts/acme/applications/{app}/best"),
            token,
        );
        assert_eq!(status, 200);
        assert!(best["best"]["number"].as_i64().is_some(), "{best}");
        let (status, report) = http(
            port,
            "GET",
            &format!("/accounts/acme/applications/{app}/report"),
            Some(token),
            b"",
        );
        assert_eq!(status, 200);
        let data = common::report_data(&report);
        assert_eq!(
            data["best"], best["best"]["number"],
            "the report and /best agree on the best trial"
        );
    }
    // The servos carried on against the restarted server (they hold no state of their own).
    let (_, metrics) = http(port, "GET", "/metrics", None, b"");
    assert!(
        metrics.contains("event=\"MEASUREMENT\",status=\"200\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("servo_optimizer_trials{application=\"acme/web\",state=\"complete\"} 8"),
        "{metrics}"
    );
    for servo in [&mut servo_web, &mut servo_api] {
        servo.signal("TERM");
        let ended = servo.finish(Duration::from_secs(20));
        assert_eq!(ended.code, Some(130), "{}", ended.stderr);
        assert!(!ended.stderr.contains("panicked"), "{}", ended.stderr);
        // Each servo met the dead server and retried its request until the new one answered.
        assert!(ended.stderr.contains("retrying"), "{}", ended.stderr);
    }
    drop(restarted);
}

#[test]
fn app_create_refuses_bad_names_duplicates_and_goals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("optimizer.db");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_servo"))
            .env("NO_COLOR", "1")
            .args(["optimizer", "app", "create"])
            .args(args)
            .arg("--store")
            .arg(&store)
            .output()
            .expect("servo runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stdout, _) = run(&["acme/web", "--minimize", "cost"]);
    assert_eq!(code, Some(0));
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once; keep it secret): "))
        .expect("the generated token is printed once");
    assert!(token.starts_with("servo_") && token.len() == 70, "{token}");

    let (code, _, stderr) = run(&["acme/web", "--minimize", "cost"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("exists") && stderr.contains("--replace"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["acme", "--minimize", "cost"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("ORG/APP"), "{stderr}");
    let (code, _, stderr) = run(&["acme/api"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no objective"), "{stderr}");
    let (code, _, stderr) = run(&["acme/api", "--minimize", "cost", "--constraint", "p99 <"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("constraints[0]"), "{stderr}");

    // The example settings file creates an application; `app list` shows what it holds.
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/fleet/web.optimizer.yaml"
    );
    let (code, _, stderr) = run(&["acme/fleet", "--settings", example]);
    assert_eq!(code, Some(0), "{stderr}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "trials: 5\nobjectiv: {minimize: cost}\n").expect("write");
    let (code, _, stderr) = run(&["acme/bad", "--settings", bad.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("objectiv"), "{stderr}");
    let list = |store: &std::ffi::OsStr| {
        std::process::Command::new(env!("CARGO_BIN_EXE_servo"))
            .env("NO_COLOR", "1")
            .args(["optimizer", "app", "list", "-o", "json", "--store"])
            .arg(store)
            .output()
            .expect("servo runs")
    };
    let listed = list(store.as_os_str());
    // Listing only reads: the store is left as its last writer left it, with no `-wal` or
    // `-shm` file beside it.
    for suffix in ["db-wal", "db-shm"] {
        assert!(
            !store.with_extension(suffix).exists(),
            "{suffix} after list"
        );
    }
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(listed[0]["name"], "acme/fleet");
    assert_eq!(
        listed[0]["objective"],
        "minimize main.cpu * main.replicas + main.memory * 0.5"
    );
    assert_eq!(listed[0]["trials"], 20);
    assert_eq!(listed[1]["name"], "acme/web");
    // A mistyped store is an error, and is not created.
    let typo = dir.path().join("typo/optimizer.db");
    let listed = list(typo.as_os_str());
    assert_eq!(listed.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(
        stderr.contains(&format!("no optimizer store at {}", typo.display())),
        "{stderr}"
    );
    assert!(!dir.path().join("typo").exists(), "list created the store");
    // A file that is not a database is named as the store it was given as, not as a journal.
    let not_a_store = dir.path().join("notes.txt");
    std::fs::write(&not_a_store, "not a database\n").expect("write");
    let listed = list(not_a_store.as_os_str());
    assert_eq!(listed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(
        stderr.contains(&format!("optimizer store {}: ", not_a_store.display()))
            && stderr.contains("not a database")
            && !stderr.contains("journal"),
        "{stderr}"
    );
    // A PostgreSQL store that refuses connections says so at once (not "pool timed out" after
    // the pool's wait), without the password.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://servo:hunter2@127.0.0.1:{closed}/studies");
    let listed = list(url.as_ref());
    assert_eq!(listed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(
        stderr.contains("cannot open the optimizer store postgres://servo:")
            && stderr.contains("refused")
            && !stderr.contains("hunter2"),
        "{stderr}"
    );

    // The token is stored hashed: the store file never holds it.
    let bytes = std::fs::read(&store).expect("store");
    let wal = std::fs::read(store.with_extension("db-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    for content in [&bytes, &wal] {
        assert!(
            !content.windows(needle.len()).any(|w| w == needle),
            "the token is stored in clear"
        );
    }
}
