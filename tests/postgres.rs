//! The journal and `servo optimizer serve` on a real PostgreSQL (a throwaway cluster per test, see
//! `common/postgres.rs`).
//!
//! - Migrations: several journals opening one empty database at once apply each migration exactly
//!   once, and opening again changes nothing; a schema newer than this servo is refused.
//! - Round trip: every field of a trial (configs with integer, float and categorical values,
//!   readings, objective, constraints, feasible true/false/null, errors, timestamps) reads back
//!   exactly as written, and exactly as SQLite gives it back.
//! - The server on PostgreSQL: what a servo reports through the protocol is what `GET .../trials`
//!   shows and what the database holds, even when its connections are cut mid-study; the store URL's
//!   password is never shown; `app list` and `app create --replace` work on it.
//! - A failure message holding U+0000 (which PostgreSQL text cannot store) is recorded, not a 503.
//! - Two server processes sharing one database, with simulated servos hitting both at random: no
//!   trial number is issued twice, every MEASURE is recorded once, and no request gets a 5xx.
//! - The database down: 503 (and `/healthz` 503), then the study resumes where it was.
//!
//! Every test starts its own cluster (about a second), so they run in parallel and share nothing.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/postgres.rs"]
mod postgres;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::Postgres;
use serde_json::{Value, json};
use servo::server::store::Store;
use servo::study::journal::{
    Journal, JournalError, RecordedReading, Reused, Trial, TrialRole, TrialState,
};
use servo_optimizer::{Domain, ParamValue, Space};

/// How long a server may take to start, and a request to be answered.
const PATIENCE: Duration = Duration::from_secs(30);

const APP: &str = "acme/web";
/// Where the protocol and read API of `APP` live.
const APP_PATH: &str = "/accounts/acme/applications/web";
const TOKEN: &str = "postgres-test-token-0123456789";

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

// ---------------------------------------------------------------------------------------------
// The journal through the library.

#[test]
fn migrations_apply_once_when_journals_open_an_empty_database_together() {
    let pg = Postgres::start();
    let url = pg.url();
    block_on(async {
        // Four servers starting at once on an empty database: the advisory lock serializes them.
        let opening: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Store::open(&url).await })
            })
            .collect();
        for open in opening {
            let journal = open
                .await
                .expect("the task runs")
                .unwrap_or_else(|e| panic!("a concurrent open failed: {e}\n{}", pg.log()));
            journal.close().await;
        }
        // And again, on a database already migrated, by the other name of the scheme.
        let other_scheme = url.replacen("postgres://", "postgresql://", 1);
        Store::open(&other_scheme)
            .await
            .unwrap_or_else(|e| panic!("reopening {other_scheme} failed: {e}"))
            .close()
            .await;
    });
    assert_eq!(
        pg.query("SELECT version FROM servo_schema ORDER BY version"),
        (1..=servo::study::journal::SCHEMA_VERSION)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        "each migration recorded exactly once"
    );
    assert_eq!(
        pg.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"),
        "applications\naudit\noperators\nservo_schema\nsessions\nstudies\ntrials"
    );

    // A database a newer servo migrated is refused, not misread.
    pg.query("INSERT INTO servo_schema (version) VALUES (99)");
    let refused = block_on(Journal::open_store(&url));
    match refused {
        Err(e @ JournalError::Database { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("newer servo") && message.contains("schema 99"),
                "{message}"
            );
        }
        Err(other) => panic!("expected a Database error, got {other}"),
        Ok(_) => panic!("a journal of schema 99 was opened"),
    }
}

/// The search space of the round-trip tests: one parameter of each kind.
fn space() -> Space {
    serde_json::from_value(json!({"params": [
        {"name": "web.cpu", "domain": {"type": "float", "low": 0.25, "high": 4.0, "step": 0.25}},
        {"name": "web.replicas", "domain": {"type": "int", "low": 1, "high": 8, "step": 1}},
        {"name": "web.mode", "domain": {"type": "categorical",
            "choices": ["fast", "it's \"balanced\"", "ünïcødé ✓"]}},
    ]}))
    .expect("a space")
}

fn config(cpu: f64, replicas: i64, mode: &str) -> BTreeMap<String, ParamValue> {
    BTreeMap::from([
        ("web.cpu".to_string(), ParamValue::Float(cpu)),
        ("web.replicas".to_string(), ParamValue::Int(replicas)),
        ("web.mode".to_string(), ParamValue::Categorical(mode.into())),
    ])
}

fn reading(value: f64, unit: &str) -> RecordedReading {
    RecordedReading {
        value,
        unit: unit.into(),
    }
}

/// Writes the same study into `journal` and checks every trial reads back exactly; returns the
/// trials as read (after the running ones were interrupted).
async fn round_trip(journal: &Journal) -> Vec<Trial> {
    let constraints = vec!["latency < 100".to_string(), "errors <= 0.01".to_string()];
    let objective = "latency + web.cpu * 0.5";
    let study = journal
        .study("acme/round-trip", &space(), objective, &constraints, false)
        .await
        .expect("a study");
    assert_eq!(
        journal.current("acme/round-trip").await.expect("current"),
        Some(study.clone()),
        "the study reads back as created"
    );

    let before = servo::study::journal::now();
    let configs = [
        config(1.0, 2, "fast"),
        config(0.25, 8, "it's \"balanced\""),
        config(3.75, 1, "ünïcødé ✓"),
        config(4.0, 5, "fast"),
        config(2.5, 3, "ünïcødé ✓"),
    ];
    let mut numbers = Vec::new();
    for config in &configs {
        numbers.push(journal.begin(&study, config).await.expect("begin"));
    }
    let after = servo::study::journal::now();
    assert_eq!(numbers, vec![0, 1, 2, 3, 4], "numbered in order from 0");

    // Values chosen to catch a lossy column: 0.1 + 0.2 is not 0.3, 1e-300 underflows a REAL,
    // and a timestamp with sub-microsecond digits.
    let ended: Vec<Trial> = vec![
        Trial {
            number: 0,
            state: TrialState::Complete,
            config: configs[0].clone(),
            readings: BTreeMap::from([
                ("latency".into(), reading(0.1 + 0.2, "ms")),
                ("errors".into(), reading(1e-300, "")),
                ("throughput".into(), reading(123_456_789.012_345_67, "rps")),
            ]),
            objective: Some(0.1 + 0.2 + 0.5),
            // Several objectives' values, as a two-objective study journals them.
            objectives: vec![0.1 + 0.2 + 0.5, 1e-300],
            constraints: vec![-99.7, -0.01],
            feasible: Some(true),
            error: None,
            cut_short: None,
            started_at: 0.0,
            finished_at: Some(1_732_370_000.123_456_7),
            reused: None,
            role: None,
        },
        Trial {
            number: 1,
            state: TrialState::Complete,
            config: configs[1].clone(),
            readings: BTreeMap::from([
                ("latency".into(), reading(250.5, "ms")),
                ("errors".into(), reading(-0.0, "")),
            ]),
            objective: Some(-1.5e10),
            objectives: Vec::new(),
            constraints: vec![150.5, -0.01],
            feasible: Some(false),
            error: None,
            cut_short: Some("`latency < 100ms` read 250.5 ms, 2.5× its limit; rolled back".into()),
            started_at: 0.0,
            finished_at: Some(after + 1.5),
            reused: None,
            role: None,
        },
        Trial {
            number: 2,
            state: TrialState::Failed,
            config: configs[2].clone(),
            readings: BTreeMap::new(),
            objective: None,
            objectives: Vec::new(),
            constraints: Vec::new(),
            feasible: None,
            error: Some(
                "the servo reported failed: rollout of 'web' stuck (\"unstable\")\nline 2 ✗ \u{0}"
                    .into(),
            ),
            cut_short: None,
            started_at: 0.0,
            finished_at: Some(after + 2.0),
            reused: None,
            role: None,
        },
    ];
    for trial in &ended {
        journal.finish(&study, trial).await.expect("finish");
    }

    let read = journal.trials(&study).await.expect("trials");
    assert_eq!(read.len(), 5, "{read:#?}");
    for trial in &read {
        assert!(
            (before..=after).contains(&trial.started_at),
            "trial {} started at {}, between {before} and {after}",
            trial.number,
            trial.started_at
        );
    }
    for (expected, got) in ended.iter().zip(&read) {
        let expected = Trial {
            started_at: got.started_at,
            // PostgreSQL cannot store U+0000 in text; both databases keep U+FFFD instead.
            error: expected.error.as_ref().map(|e| e.replace('\0', "\u{FFFD}")),
            ..expected.clone()
        };
        assert_eq!(got, &expected, "trial {} reads back as written", got.number);
    }
    assert_eq!(
        read[1].readings["errors"].value.to_bits(),
        (-0.0f64).to_bits(),
        "even the sign of zero survives"
    );
    for running in &read[3..] {
        assert_eq!(running.state, TrialState::Running);
        assert_eq!(running.config, configs[running.number as usize]);
        assert!(running.readings.is_empty() && running.constraints.is_empty());
        assert_eq!(
            (running.objective, running.feasible, &running.error),
            (None, None, &None)
        );
        assert_eq!(running.finished_at, None);
    }

    // A servo that died mid-trial: its running trials become interrupted, the others stay.
    let interrupted_at = servo::study::journal::now();
    assert_eq!(
        journal.interrupt_running(&study).await.expect("interrupt"),
        2
    );
    let read = journal.trials(&study).await.expect("trials");
    for trial in &read[3..] {
        assert_eq!(trial.state, TrialState::Interrupted);
        assert_eq!(
            trial.error.as_deref(),
            Some("servo stopped during this trial")
        );
        assert!(trial.finished_at.is_some_and(|t| t >= interrupted_at));
    }

    // The same space resumes the study; another one is refused; `fresh` starts over.
    let again = journal
        .study("acme/round-trip", &space(), objective, &constraints, false)
        .await
        .expect("the same study");
    assert_eq!(again.id, study.id);
    let mut wider = space();
    wider.params[1].domain = Domain::Int {
        low: 1,
        high: 16,
        step: 1,
        log: false,
    };
    match journal
        .study("acme/round-trip", &wider, objective, &constraints, false)
        .await
    {
        Err(JournalError::SpaceChanged { change, .. }) => {
            assert!(change.contains("`web.replicas`"), "{change}");
        }
        other => panic!("a changed space must be refused, got {other:?}"),
    }
    let fresh = journal
        .study("acme/round-trip", &wider, objective, &constraints, true)
        .await
        .expect("a fresh study");
    assert_ne!(fresh.id, study.id);
    assert!(journal.trials(&fresh).await.expect("trials").is_empty());
    assert_eq!(
        journal.begin(&fresh, &configs[0]).await.expect("begin"),
        0,
        "a new study numbers from 0"
    );

    // A warm start takes trials over, numbered before 0 and naming where they were measured, in
    // the transaction that creates the study; a re-measured baseline keeps its role.
    let (earlier, earlier_trials) = journal
        .latest_measured("acme/round-trip")
        .await
        .expect("latest")
        .expect("a study with a complete trial");
    assert_eq!(earlier.id, study.id, "the fresh study completed nothing");
    let mut reused = earlier_trials[0].clone();
    reused.number = -1;
    reused.reused = Some(Reused {
        study: study.id,
        trial: 0,
    });
    let warm = journal
        .new_study(
            "acme/round-trip",
            &wider,
            objective,
            &constraints,
            std::slice::from_ref(&reused),
        )
        .await
        .expect("a warm study");
    let remeasured = journal
        .begin_as(&warm, &configs[0], Some(TrialRole::Baseline))
        .await
        .expect("begin");
    assert_eq!(remeasured, 0, "its own trials still number from 0");
    let read_warm = journal.trials(&warm).await.expect("trials");
    assert_eq!(read_warm.len(), 2);
    assert_eq!(read_warm[0], reused, "a reused trial reads back as written");
    assert_eq!(
        (read_warm[1].role, read_warm[1].reused),
        (Some(TrialRole::Baseline), None)
    );
    read
}

#[test]
fn trials_read_back_exactly_as_written_and_as_sqlite_reads_them() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (on_postgres, on_sqlite) = block_on(async {
        let journal = Journal::open_store(&pg.url())
            .await
            .unwrap_or_else(|e| panic!("open: {e}\n{}", pg.log()));
        assert_eq!(journal.dialect(), servo::study::journal::Dialect::Postgres);
        let on_postgres = round_trip(&journal).await;
        journal.close().await;

        let journal = Journal::open(&dir.path().join("journal.db"))
            .await
            .expect("a SQLite journal");
        let on_sqlite = round_trip(&journal).await;
        journal.close().await;
        (on_postgres, on_sqlite)
    });
    // Timestamps aside (they are the clock's), both databases give back the same trials.
    let timeless = |trials: Vec<Trial>| -> Vec<Trial> {
        trials
            .into_iter()
            .map(|t| Trial {
                started_at: 0.0,
                finished_at: t.finished_at.map(|_| 0.0),
                ..t
            })
            .collect()
    };
    assert_eq!(timeless(on_postgres), timeless(on_sqlite));
    assert_eq!(
        pg.query("SELECT COUNT(*) FROM studies WHERE name = 'acme/round-trip' AND retired = 0"),
        "1",
        "starting fresh retired the old study"
    );
}

// ---------------------------------------------------------------------------------------------
// `servo optimizer serve` on PostgreSQL.

/// A `servo optimizer serve` process on 127.0.0.1:0; killed and reaped on drop.
struct OptimizerServer {
    child: Child,
    log: PathBuf,
    /// The first line of stdout, which names the address.
    first_line: mpsc::Receiver<String>,
    /// That line, once read.
    banner: String,
}

impl OptimizerServer {
    /// Starts a server without waiting for it (so that several start at once); see
    /// [`OptimizerServer::wait_listening`].
    fn spawn(store: &str, log: PathBuf) -> OptimizerServer {
        let mut child = common::servo_process("warn")
            .args(["optimizer", "serve", "--store", store])
            .args(["--listen", "127.0.0.1:0", "--sleep", "1s"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create the server log"))
            .spawn()
            .expect("start servo optimizer serve");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, first_line) = mpsc::channel();
        // Reads until the server exits, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = sender.send(line);
            }
            for _ in lines {}
        });
        OptimizerServer {
            child,
            log,
            first_line,
            banner: String::new(),
        }
    }

    /// Starts a server and waits until it listens; (the server, its address).
    fn start(store: &str, log: PathBuf) -> (OptimizerServer, SocketAddr) {
        let mut server = Self::spawn(store, log);
        let addr = server.wait_listening();
        (server, addr)
    }

    /// Waits for the "listening on http://ADDR" line.
    fn wait_listening(&mut self) -> SocketAddr {
        let line = self.first_line.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            panic!(
                "the server did not say where it listens (exit: {:?}):\n{}",
                self.child.try_wait(),
                self.log()
            )
        });
        let addr = line
            .split_once("http://")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        self.banner = line;
        addr
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OptimizerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `servo optimizer app create acme/web --store URL --token-file ... EXTRA`.
fn create_app(dir: &Path, store: &str, extra: &[&str]) {
    common::create_app(&dir.join("token"), store.as_ref(), APP, TOKEN, extra);
}

/// A fresh cluster with `APP` created on it (`extra`: the study's flags of `app create`), a
/// directory for the token file and the server logs, and the cluster's URL.
fn postgres_with_app(extra: &[&str]) -> (Postgres, tempfile::TempDir, String) {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url();
    create_app(dir.path(), &url, extra);
    (pg, dir, url)
}

/// One HTTP/1.1 exchange with the bearer token; (status, body as JSON, or as a string when it is
/// not JSON).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let (status, text) = http::exchange(addr, method, path, Some(TOKEN), body.as_bytes());
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Sends one protocol event; (HTTP status, answer).
fn event(addr: SocketAddr, name: &str, param: Value) -> (u16, Value) {
    http(
        addr,
        "POST",
        &format!("{APP_PATH}/servo"),
        Some(&json!({ "event": name, "param": param, "servo_uid": null })),
    )
}

fn get(addr: SocketAddr, what: &str) -> (u16, Value) {
    http(addr, "GET", &format!("{APP_PATH}/{what}"), None)
}

/// What the simulated servos describe: a float, an integer and a categorical setting.
fn descriptor() -> Value {
    json!({
        "application": {"components": {"web": {"settings": {
            "cpu": {"type": "range", "min": 0.25, "max": 4, "step": 0.25, "value": 1, "unit": "cores", "pinned": false},
            "replicas": {"type": "range", "min": 1, "max": 8, "step": 1, "value": 2, "pinned": false},
            "mode": {"type": "enum", "values": ["fast", "balanced", "thorough"], "value": "balanced", "unit": "", "pinned": false},
        }}}},
        "measurement": {"metrics": {"latency": {"unit": "ms"}, "throughput": {"unit": "rps"}}},
    })
}

/// The configuration `descriptor()` starts at, as the journal records it.
fn baseline_config() -> Value {
    json!({"web.cpu": 1.0, "web.mode": "balanced", "web.replicas": 2})
}

/// An ADJUST's `state` as a journal config: `{"web.cpu": 1.5, ...}`.
fn config_of(state: &Value) -> Value {
    let mut config = serde_json::Map::new();
    if let Some(components) = state["application"]["components"].as_object() {
        for (component, body) in components {
            if let Some(settings) = body["settings"].as_object() {
                for (setting, value) in settings {
                    config.insert(format!("{component}.{setting}"), value["value"].clone());
                }
            }
        }
    }
    Value::Object(config)
}

/// How the scripted servo of the single-server test answers each trial.
#[derive(Debug)]
enum Outcome {
    /// MEASUREMENT with this latency (ms) and a throughput series.
    Measured(f64),
    /// ADJUSTMENT `failed`, reason `unstable`.
    AdjustFails,
    /// MEASUREMENT without `latency`, which the objective needs.
    LatencyMissing,
}

#[test]
fn the_server_on_postgres_records_every_field_a_servo_reports() {
    let (pg, dir, url) = postgres_with_app(&[
        "--minimize",
        "latency + web.cpu",
        "--constraint",
        "latency < 50",
        "--trials",
        "4",
        "--algorithm",
        "random",
        "--seed",
        "7",
        "--duration",
        "10ms",
        "--on-finish",
        "best",
    ]);
    // A password in the URL (trust authentication ignores it) is never shown.
    let with_password = url.replacen("postgres@", "postgres:s3cret-pw@", 1);
    let (server, addr) = OptimizerServer::start(&with_password, dir.path().join("server.log"));
    assert!(
        server.banner.contains("postgres:**********@127.0.0.1")
            && !server.banner.contains("s3cret"),
        "{}",
        server.banner
    );
    let started = servo::study::journal::now();

    let mut script = std::collections::VecDeque::from([
        Outcome::Measured(41.7),
        Outcome::Measured(75.0),
        Outcome::AdjustFails,
        Outcome::LatencyMissing,
    ]);
    // The configuration of each trial, as the server commanded it.
    let mut commanded: Vec<Value> = Vec::new();
    let mut final_adjust = None;
    let mut adjusted = false;
    let mut sleep_reason = None;
    let mut connections_cut = false;
    let (status, answer) = event(addr, "HELLO", json!({"agent": "postgres-test"}));
    assert_eq!((status, &answer), (200, &json!({"status": "ok"})));
    for _ in 0..40 {
        let (status, command) = event(addr, "WHATS_NEXT", Value::Null);
        assert_eq!(status, 200, "{command}\n{}", server.log());
        let uid = command["cmd_uid"].clone();
        let (name, reply) = match command["cmd"].as_str() {
            Some("DESCRIBE") => (
                "DESCRIPTION",
                json!({"status": "ok", "cmd_uid": uid, "descriptor": descriptor()}),
            ),
            Some("ADJUST") => {
                let state = command["param"]["state"].clone();
                match script.front() {
                    None => {
                        final_adjust = Some(config_of(&state));
                        (
                            "ADJUSTMENT",
                            json!({"status": "ok", "cmd_uid": uid, "state": state}),
                        )
                    }
                    Some(Outcome::AdjustFails) => {
                        script.pop_front();
                        commanded.push(config_of(&state));
                        (
                            "ADJUSTMENT",
                            json!({"status": "failed", "cmd_uid": uid, "reason": "unstable",
                                   "message": "rollout of 'web' stuck ✗"}),
                        )
                    }
                    Some(_) => {
                        commanded.push(config_of(&state));
                        adjusted = true;
                        (
                            "ADJUSTMENT",
                            json!({"status": "ok", "cmd_uid": uid, "state": state}),
                        )
                    }
                }
            }
            Some("MEASURE") => {
                if !std::mem::take(&mut adjusted) {
                    // The baseline is measured as the application is.
                    commanded.push(baseline_config());
                }
                let throughput = json!({"unit": "rps", "values": [{"id": "1", "data": [[1_732_370_001, 48.0], [1_732_370_016, 52.0]]}]});
                let metrics = match script.pop_front() {
                    Some(Outcome::Measured(latency)) => json!({
                        "latency": {"unit": "ms", "value": latency},
                        "throughput": throughput,
                    }),
                    Some(Outcome::LatencyMissing) => json!({"throughput": throughput}),
                    other => panic!("MEASURE when the script expects {other:?}"),
                };
                (
                    "MEASUREMENT",
                    json!({"status": "ok", "cmd_uid": uid, "metrics": metrics, "annotations": {}}),
                )
            }
            Some("SLEEP") => {
                sleep_reason = command["param"]["data"]["reason"]
                    .as_str()
                    .map(String::from);
                break;
            }
            _ => panic!("not a command: {command}"),
        };
        let (status, answer) = event(addr, name, reply);
        assert_eq!(
            (status, &answer),
            (200, &json!({"status": "ok"})),
            "{name} for {command}\n{}",
            server.log()
        );
        if name == "MEASUREMENT" && !connections_cut {
            // As in a database failover: every connection the server holds is closed under it.
            // Its pool replaces them; no request may fail for it.
            let cut = pg.query(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = 'servo' AND pid <> pg_backend_pid()",
            );
            assert_ne!(cut, "0", "the server holds connections to cut");
            connections_cut = true;
        }
    }
    let finished = servo::study::journal::now();
    assert!(script.is_empty(), "the study ended early: {script:?}");
    assert!(connections_cut);
    let sleep_reason = sleep_reason.expect("the study ends with SLEEP");
    assert!(
        sleep_reason.starts_with("study complete: best trial 0"),
        "{sleep_reason}"
    );

    let (status, listed) = get(addr, "trials");
    assert_eq!(status, 200, "{listed}");
    let trials = listed.as_array().expect("a list of trials");
    assert_eq!(trials.len(), 4, "{listed:#}");
    for (number, trial) in trials.iter().enumerate() {
        assert_eq!(trial["number"], json!(number));
        assert_eq!(
            trial["config"], commanded[number],
            "trial {number} journaled the configuration the server commanded"
        );
        assert!(trial["config"]["web.replicas"].is_i64(), "{trial}");
        assert!(trial["config"]["web.cpu"].is_f64(), "{trial}");
        assert!(trial["config"]["web.mode"].is_string(), "{trial}");
        let started_at = trial["started_at"].as_f64().expect("started_at");
        let finished_at = trial["finished_at"].as_f64().expect("finished_at");
        assert!(
            started <= started_at && started_at <= finished_at && finished_at <= finished,
            "{trial}"
        );
    }
    let cpu = |n: usize| trials[n]["config"]["web.cpu"].as_f64().expect("a cpu");
    let throughput = json!({"value": 50.0, "unit": "rps"});

    assert_eq!(trials[0]["state"], "complete");
    assert_eq!(
        trials[0]["readings"],
        json!({"latency": {"value": 41.7, "unit": "ms"}, "throughput": throughput})
    );
    assert_eq!(trials[0]["objective"].as_f64(), Some(41.7 + cpu(0)));
    assert_eq!(trials[0]["feasible"], true);
    let violation = trials[0]["constraints"][0].as_f64().expect("a constraint");
    assert!(violation <= 0.0, "{}", trials[0]);

    assert_eq!(trials[1]["state"], "complete");
    assert_eq!(trials[1]["objective"].as_f64(), Some(75.0 + cpu(1)));
    assert_eq!(trials[1]["feasible"], false);
    let violation = trials[1]["constraints"][0].as_f64().expect("a constraint");
    assert!(violation > 0.0, "{}", trials[1]);

    for failed in [&trials[2], &trials[3]] {
        assert_eq!(failed["state"], "failed", "{failed}");
        assert_eq!(failed["objective"], Value::Null, "{failed}");
        assert_eq!(failed["feasible"], Value::Null, "{failed}");
        assert_eq!(failed["constraints"], json!([]), "{failed}");
    }
    assert_eq!(trials[2]["readings"], json!({}));
    let error = trials[2]["error"].as_str().expect("an error");
    assert!(
        error.contains("rollout of 'web' stuck ✗") && error.contains("unstable"),
        "{error}"
    );
    let error = trials[3]["error"].as_str().expect("an error");
    assert!(error.contains("latency + web.cpu"), "{error}");

    if let Some(config) = final_adjust {
        assert_eq!(
            config, trials[0]["config"],
            "the final ADJUST goes to the best"
        );
    }

    // The database holds what the server answered.
    let from_database = block_on(async {
        let journal = Journal::open_store(&url).await.expect("open");
        let study = journal.current(APP).await.expect("read").expect("a study");
        let trials = journal.trials(&study).await.expect("trials");
        journal.close().await;
        trials
    });
    assert_eq!(
        serde_json::to_value(&from_database).expect("trials serialize"),
        listed
    );

    let (status, best) = get(addr, "best");
    assert_eq!(status, 200, "{best}");
    assert_eq!(best["best"]["number"], 0, "{best}");
    let (status, metrics) = http(addr, "GET", "/metrics", None);
    assert_eq!(status, 200, "{metrics}");
    let metrics = metrics.as_str().unwrap_or_default();
    for line in [
        "servo_optimizer_trials{application=\"acme/web\",state=\"complete\"} 2",
        "servo_optimizer_trials{application=\"acme/web\",state=\"failed\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert_eq!(
        http(addr, "GET", "/healthz", None),
        (200, json!({"status": "ok"}))
    );
    assert!(
        !server.log().contains("ERROR"),
        "the server logged errors:\n{}",
        server.log()
    );

    // The application commands work on PostgreSQL too: listing, and replacing the settings,
    // which retires the study and restarts the conversation with DESCRIBE.
    let listed = common::servo()
        .args(["optimizer", "app", "list", "--store", &url, "-o", "json"])
        .output()
        .expect("servo runs");
    assert!(listed.status.success(), "{listed:?}");
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(listed[0]["name"], APP, "{listed}");
    assert_eq!(listed[0]["trials"], 4, "{listed}");
    let revision = |pg: &Postgres| -> i64 {
        pg.query("SELECT revision FROM sessions")
            .parse()
            .expect("one session")
    };
    let before = revision(&pg);
    create_app(
        dir.path(),
        &url,
        &["--minimize", "latency", "--trials", "2", "--replace"],
    );
    assert_eq!(get(addr, "trials").0, 404, "the replaced study is retired");
    // The session's revision keeps counting through the replacement: a server holding a decision
    // made on revision N must never match a new conversation that reached N again.
    assert_eq!(revision(&pg), before + 1);
    let (status, command) = event(addr, "WHATS_NEXT", Value::Null);
    assert_eq!(
        (status, &command["cmd"]),
        (200, &json!("DESCRIBE")),
        "{command}"
    );
    assert_eq!(revision(&pg), before + 2);
    assert!(!server.banner.contains("s3cret") && !server.log().contains("s3cret"));
}

/// PostgreSQL cannot store the character U+0000 in a `TEXT` column (SQLite can): a servo's
/// failure message holding one used to fail the whole commit, answered 503 to every retry of the
/// result, and so stalled the study for good.
#[test]
fn a_failure_message_with_a_nul_character_is_recorded_not_refused() {
    let (_pg, dir, url) = postgres_with_app(&[
        "--minimize",
        "latency",
        "--trials",
        "2",
        "--duration",
        "10ms",
    ]);
    let (server, addr) = OptimizerServer::start(&url, dir.path().join("server.log"));
    let mut measured = false;
    for _ in 0..6 {
        let (status, command) = event(addr, "WHATS_NEXT", Value::Null);
        assert_eq!(status, 200, "{command}");
        if command["cmd"] == "MEASURE" {
            let failed = json!({"status": "failed", "cmd_uid": command["cmd_uid"],
                                "message": "load generator crashed: \u{0} in its output"});
            let (status, answer) = event(addr, "MEASUREMENT", failed);
            assert_eq!(
                (status, &answer),
                (200, &json!({"status": "ok"})),
                "{}",
                server.log()
            );
            measured = true;
            break;
        }
        let (name, result) = result_for(&command, 0.0).expect("a command");
        assert_eq!(event(addr, name, result).0, 200);
    }
    assert!(measured, "the server never asked for the baseline");
    let (status, trials) = get(addr, "trials");
    assert_eq!(status, 200, "{trials}");
    assert_eq!(trials[0]["state"], "failed", "{trials}");
    let error = trials[0]["error"].as_str().expect("an error");
    assert!(
        error.contains("load generator crashed: \u{FFFD} in its output"),
        "the NUL is shown as U+FFFD: {error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two servers, one database.

/// How many trials the shared study runs.
const SHARED_TRIALS: usize = 12;
/// Simulated servos, each sending every request to one of the two servers at random.
const SERVOS: usize = 6;
/// The whole simulation must end well within this.
const SIMULATION_DEADLINE: Duration = Duration::from_secs(45);

/// The successful result of a DESCRIBE, ADJUST or MEASURE (measuring `latency`), as a servo
/// reports it: (event, param). `None` for SLEEP or an answer that is no command.
fn result_for(command: &Value, latency: f64) -> Option<(&'static str, Value)> {
    let uid = &command["cmd_uid"];
    match command["cmd"].as_str()? {
        "DESCRIBE" => Some((
            "DESCRIPTION",
            json!({"status": "ok", "cmd_uid": uid, "descriptor": descriptor()}),
        )),
        "ADJUST" => Some((
            "ADJUSTMENT",
            json!({"status": "ok", "cmd_uid": uid, "state": command["param"]["state"]}),
        )),
        "MEASURE" => Some((
            "MEASUREMENT",
            json!({"status": "ok", "cmd_uid": uid,
                   "metrics": {"latency": {"unit": "ms", "value": latency},
                               "throughput": {"unit": "rps", "value": 50}}}),
        )),
        _ => None,
    }
}

/// Whether a WHATS_NEXT answer is the SLEEP that ends a study.
fn study_complete(command: &Value) -> bool {
    command["cmd"] == "SLEEP"
        && command["param"]["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("study complete"))
}

/// A small deterministic generator for the servos' choices (xorshift64*).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// One request of a simulated servo and its answer.
#[derive(Debug)]
struct Exchange {
    servo: usize,
    server: usize,
    event: &'static str,
    /// The `cmd_uid` the request answered (for results).
    cmd_uid: Option<String>,
    status: u16,
    answer: Value,
}

/// A servo that speaks the protocol to two servers, choosing one at random for every request,
/// until its study is complete (or the deadline passes). Returns every exchange.
fn simulated_servo(index: usize, servers: [SocketAddr; 2], deadline: Instant) -> Vec<Exchange> {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D));
    let mut log = Vec::new();
    let mut send = |dice: &mut Dice, event_name: &'static str, param: Value| -> Value {
        let server = dice.below(2) as usize;
        let cmd_uid = param["cmd_uid"].as_str().map(String::from);
        let (status, answer) = event(servers[server], event_name, param);
        log.push(Exchange {
            servo: index,
            server,
            event: event_name,
            cmd_uid,
            status,
            answer: answer.clone(),
        });
        answer
    };
    send(&mut dice, "HELLO", json!({"agent": format!("sim-{index}")}));
    while Instant::now() < deadline {
        let command = send(&mut dice, "WHATS_NEXT", Value::Null);
        if study_complete(&command) {
            break;
        }
        // A SLEEP for another reason, or an error answer: ask again (the assertions afterwards
        // report errors).
        let latency = 10.0 + dice.below(900) as f64 / 10.0;
        if let Some((name, result)) = result_for(&command, latency) {
            send(&mut dice, name, result);
        }
        // Stagger the servos a little so that their requests interleave differently.
        std::thread::sleep(Duration::from_millis(dice.below(4)));
    }
    send(&mut dice, "GOODBYE", json!({"reason": "done"}));
    log
}

#[test]
fn two_servers_sharing_one_database_never_issue_a_trial_twice() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = pg.url();
    // Both servers start at once on the empty database: they race to migrate it.
    let mut servers = [
        OptimizerServer::spawn(&url, dir.path().join("server-0.log")),
        OptimizerServer::spawn(&url, dir.path().join("server-1.log")),
    ];
    let addrs = [servers[0].wait_listening(), servers[1].wait_listening()];
    let logs = |servers: &[OptimizerServer; 2]| {
        format!(
            "server 0:\n{}\nserver 1:\n{}\npostgres:\n{}",
            servers[0].log(),
            servers[1].log(),
            pg.log()
        )
    };
    // Applications are read per request: one created after the servers started is served.
    create_app(
        dir.path(),
        &url,
        &[
            "--minimize",
            "latency",
            "--trials",
            &SHARED_TRIALS.to_string(),
            "--algorithm",
            "random",
            "--seed",
            "11",
            "--duration",
            "10ms",
            "--on-finish",
            "keep",
        ],
    );

    let started = Instant::now();
    let deadline = started + SIMULATION_DEADLINE;
    let exchanges: Vec<Exchange> = std::thread::scope(|scope| {
        let servos: Vec<_> = (0..SERVOS)
            .map(|i| scope.spawn(move || simulated_servo(i, addrs, deadline)))
            .collect();
        servos
            .into_iter()
            .flat_map(|s| s.join().expect("a simulated servo panicked"))
            .collect()
    });
    let took = started.elapsed();

    // No 5xx, and indeed no error of any kind.
    let failures: Vec<&Exchange> = exchanges.iter().filter(|e| e.status != 200).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:#?}\n{}",
        failures.len(),
        exchanges.len(),
        logs(&servers)
    );
    assert!(
        Instant::now() < deadline,
        "the study did not complete within {SIMULATION_DEADLINE:?}"
    );
    for server in 0..2 {
        assert!(
            exchanges.iter().any(|e| e.server == server),
            "server {server} got no request"
        );
    }

    // Both servers show the same trials: numbered 0..n once each, all complete.
    let (status, listed) = get(addrs[0], "trials");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        get(addrs[1], "trials"),
        (200, listed.clone()),
        "both servers read the same study"
    );
    let trials = listed.as_array().expect("a list of trials");
    let numbers: Vec<i64> = trials.iter().filter_map(|t| t["number"].as_i64()).collect();
    assert_eq!(
        numbers,
        (0..SHARED_TRIALS as i64).collect::<Vec<_>>(),
        "every trial number issued once"
    );
    for trial in trials {
        assert!(
            trial["state"] == "complete" || trial["state"] == "running",
            "{trial}"
        );
    }
    let complete = trials.iter().filter(|t| t["state"] == "complete").count();
    assert_eq!(complete, SHARED_TRIALS, "{listed:#}");

    // One command per cmd_uid, whichever server answered and however often it was asked.
    let mut commands: BTreeMap<String, (&Value, &Exchange)> = BTreeMap::new();
    for exchange in exchanges.iter().filter(|e| e.event == "WHATS_NEXT") {
        let Some(uid) = exchange.answer["cmd_uid"].as_str() else {
            continue;
        };
        let (first, by) = commands
            .entry(uid.to_string())
            .or_insert((&exchange.answer, exchange));
        assert_eq!(
            *first, &exchange.answer,
            "cmd_uid {uid} named two commands: to servo {} via server {}, and to servo {} via server {}",
            by.servo, by.server, exchange.servo, exchange.server
        );
    }
    let issued = |cmd: &str| commands.values().filter(|(c, _)| c["cmd"] == cmd).count();
    assert_eq!(issued("MEASURE"), SHARED_TRIALS, "one MEASURE per trial");
    assert_eq!(
        issued("ADJUST"),
        SHARED_TRIALS - 1,
        "one ADJUST per trial but the baseline (on_finish: keep)"
    );

    // Each trial's MEASUREMENT was recorded once: as many distinct accepted results as trials.
    let accepted: BTreeSet<&str> = exchanges
        .iter()
        .filter(|e| e.event == "MEASUREMENT" && e.answer == json!({"status": "ok"}))
        .filter_map(|e| e.cmd_uid.as_deref())
        .collect();
    assert_eq!(
        accepted.len(),
        complete,
        "accepted MEASUREMENTs: {accepted:?}"
    );
    let measure_uids: BTreeSet<&str> = commands
        .iter()
        .filter(|(_, (c, _))| c["cmd"] == "MEASURE")
        .map(|(uid, _)| uid.as_str())
        .collect();
    assert_eq!(accepted, measure_uids);

    // The database agrees, and the session moved forward one committed revision at a time.
    assert_eq!(
        pg.query("SELECT COUNT(*), COUNT(DISTINCT number) FROM trials t JOIN studies s ON s.id = t.study_id WHERE s.retired = 0"),
        format!("{SHARED_TRIALS}|{SHARED_TRIALS}")
    );
    let revision = pg.query("SELECT revision FROM sessions");
    eprintln!(
        "two servers, {SERVOS} servos: {} requests ({} results), {SHARED_TRIALS} trials, session revision {revision}, in {took:?}",
        exchanges.len(),
        exchanges
            .iter()
            .filter(|e| matches!(e.event, "DESCRIPTION" | "ADJUSTMENT" | "MEASUREMENT"))
            .count(),
    );
    for server in &mut servers {
        assert!(
            matches!(server.child.try_wait(), Ok(None)),
            "a server exited:\n{}",
            server.log()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A database outage.

#[test]
fn a_database_outage_is_a_503_and_the_study_resumes_where_it_was() {
    let (mut pg, dir, url) = postgres_with_app(&[
        "--minimize",
        "latency",
        "--trials",
        "3",
        "--algorithm",
        "random",
        "--duration",
        "10ms",
        "--on-finish",
        "keep",
    ]);
    let (server, addr) = OptimizerServer::start(&url, dir.path().join("server.log"));

    // Up to the baseline MEASURE.
    let mut command = Value::Null;
    for _ in 0..4 {
        command = event(addr, "WHATS_NEXT", Value::Null).1;
        if command["cmd"] == "MEASURE" {
            break;
        }
        let (name, result) = result_for(&command, 0.0).expect("a command");
        assert_eq!(event(addr, name, result).0, 200);
    }
    assert_eq!(command["cmd"], "MEASURE", "{command}");
    let (name, measurement) = result_for(&command, 40.0).expect("a MEASURE");

    pg.stop();
    // The result and a health check at once: each waits out the pool's acquire timeout.
    let outage = Instant::now();
    let ((status, answer), (health_status, health)) = std::thread::scope(|scope| {
        let health = scope.spawn(|| http(addr, "GET", "/healthz", None));
        let result = event(addr, name, measurement.clone());
        (result, health.join().expect("the health check ran"))
    });
    let first_503 = outage.elapsed();
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("storage is unavailable")),
        "{answer}"
    );
    assert_eq!(
        (health_status, &health["status"]),
        (503, &json!("unavailable")),
        "{health}"
    );
    // The pool tries to connect for its acquire timeout (10 s) before giving up.
    assert!(first_503 < PATIENCE, "{first_503:?}");
    eprintln!("with the database down, a result got 503 after {first_503:?}");

    pg.restart();
    // The servo retries the result it could not deliver: it is recorded once.
    let (status, answer) = event(addr, name, measurement);
    assert_eq!(
        (status, answer),
        (200, json!({"status": "ok"})),
        "{}",
        server.log()
    );
    assert_eq!(
        http(addr, "GET", "/healthz", None),
        (200, json!({"status": "ok"}))
    );
    for _ in 0..20 {
        let command = event(addr, "WHATS_NEXT", Value::Null).1;
        if study_complete(&command) {
            break;
        }
        let (name, result) = result_for(&command, 30.0).expect("a command");
        assert_eq!(event(addr, name, result).0, 200, "{}", server.log());
    }
    let (status, trials) = get(addr, "trials");
    assert_eq!(status, 200, "{trials}");
    let trials = trials.as_array().expect("a list");
    let summary: Vec<(i64, &str)> = trials
        .iter()
        .filter_map(|t| Some((t["number"].as_i64()?, t["state"].as_str()?)))
        .collect();
    assert_eq!(
        summary,
        vec![(0, "complete"), (1, "complete"), (2, "complete")],
        "the study went on where it was"
    );
    assert_eq!(
        trials[0]["readings"]["latency"]["value"], 40.0,
        "the baseline is the measurement retried after the outage"
    );
}
