//! Fault injection, end to end through the real `servo` binary: what servo does when the optimizer
//! answers garbage or drops connections, and when Prometheus dies or freezes in the middle of a
//! measurement.
//!
//! The expectations are the same for every fault: servo retries what may recover, paced by
//! `settings.backoff` (full-jitter exponential backoff), gives up within those bounds, and ends with
//! one clear error that names the problem and the endpoint; it exits 1 (a run-time failure, DESIGN
//! §9), never panics and never hangs.
//!
//! Garbage from the optimizer (a 200 whose body is not JSON, an HTML page, JSON of the wrong shape)
//! is retried like a transport error: what sends it is usually a gateway or proxy in between that
//! recovers, and ServoX's main loop also asks again after a validation error. See
//! `crates/servo/src/protocol/client.rs`.
//!
//! The faulty optimizer is a raw `tokio::net::TcpListener` on 127.0.0.1:0 in its own thread and
//! runtime, so it can misbehave below HTTP (close at once, close mid-answer); each connection
//! serves one request and closes, so every try of servo is one connection it can count. Prometheus
//! is the real `/usr/bin/prometheus` (Debian package `prometheus`, as in `tests/prometheus.rs`) on a
//! free loopback port. Every server and every `servo` process is owned by a guard that stops, kills
//! and reaps it on drop.

#[path = "common/background.rs"]
mod background;
mod common;
#[path = "common/prometheus.rs"]
mod prometheus;

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use background::Background;
use prometheus::PrometheusProcess;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "sekrit-token-0123456789";
const PATH: &str = "/accounts/example.com/applications/app/servo";
/// The longest any servo process in these tests may run before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(40);
/// `settings:` for the optimizer tests: three tries at most, two seconds at most.
const BOUNDED: &str = "{backoff: {whats_next: {max_time: 2s, max_tries: 3}}, timeouts: {read: 2s}}";

// ---------------------------------------------------------------------------------------------
// The faulty optimizer.

/// How the optimizer answers every `WHATS_NEXT` (`HELLO` is always answered `{"status": "ok"}`).
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// HTTP 200 with this content type and body.
    Answer(&'static str, &'static str),
    /// Accept the connection and close it at once, reading nothing (the connection after HELLO's).
    Drop,
    /// Read the request, write part of the status line and headers, close.
    HalfHead,
    /// Read the request, write a 200 whose body is shorter than its `Content-Length`, close.
    HalfBody,
}

/// One connection as the fake saw it: the request's event (`-` when it was dropped unread).
#[derive(Clone, Debug)]
struct Seen {
    event: String,
    path: String,
    at: Instant,
}

struct FaultyOptimizer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _server: Background,
}

impl FaultyOptimizer {
    fn start(fault: Fault) -> FaultyOptimizer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let (server, addr) = Background::start(move |listener| async move {
            let mut index = 0usize;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(stream, index, fault, Arc::clone(&log)));
                index += 1;
            }
        });
        FaultyOptimizer {
            addr,
            seen,
            _server: server,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn endpoint(&self) -> String {
        format!("{}{PATH}", self.base_url())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    fn events(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.event).collect()
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    index: usize,
    fault: Fault,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let record = |event: &str, path: &str| {
        seen.lock().expect("seen lock").push(Seen {
            event: event.to_string(),
            path: path.to_string(),
            at: Instant::now(),
        });
    };
    // The first connection says HELLO; every later one is dropped unread.
    if matches!(fault, Fault::Drop) && index > 0 {
        record("-", "");
        return;
    }
    let Ok(Some((path, body))) =
        tokio::time::timeout(Duration::from_secs(5), read_request(&mut stream)).await
    else {
        record("?", "");
        return;
    };
    let event = body["event"].as_str().unwrap_or("?").to_string();
    record(&event, &path);
    let reply = match (event.as_str(), fault) {
        ("HELLO" | "GOODBYE", _) | (_, Fault::Drop) => {
            response("application/json", r#"{"status": "ok"}"#)
        }
        (_, Fault::Answer(content_type, body)) => response(content_type, body),
        (_, Fault::HalfHead) => b"HTTP/1.1 200 OK\r\nContent-Ty".to_vec(),
        (_, Fault::HalfBody) => b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
              Content-Length: 64\r\nConnection: close\r\n\r\n{\"cmd\": \"SLE"
            .to_vec(),
    };
    let _ = stream.write_all(&reply).await;
    let _ = stream.shutdown().await;
}

/// A complete HTTP/1.1 answer that closes the connection.
fn response(content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one request: (path, JSON body), or `None` if the client went away first.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<(String, Value)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let body = serde_json::from_slice(&data[head_end..head_end + length]).unwrap_or(Value::Null);
    Some((path, body))
}

// ---------------------------------------------------------------------------------------------
// `servo` processes.

/// A spawned `servo`, killed and reaped on drop; its stderr is read line by line in a thread so a
/// test can wait for a log line.
struct Servo {
    child: Child,
    started: Instant,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

/// What a finished `servo` left.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// From spawn to exit.
    elapsed: Duration,
}

impl Servo {
    fn start(args: &[&str], config: &Path, log_level: &str) -> Servo {
        let started = Instant::now();
        let mut child = common::spawn_servo(args, config, log_level);
        let pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let mut reader = std::io::BufReader::new(pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let _ = tx.send(line.clone());
                text.push_str(&line);
                line.clear();
            }
            text
        });
        Servo {
            child,
            started,
            lines,
            stderr: Some(stderr),
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for_line(&self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("servo never logged `{needle}`"),
            }
        }
    }

    /// Waits for servo to exit; a servo still running after [`PATIENCE`] is a hang.
    fn finish(&mut self) -> Finished {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                self.started.elapsed() < PATIENCE,
                "servo still running after {PATIENCE:?}: a hang"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        let mut stdout = String::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            let _ = pipe.read_to_string(&mut stdout);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        Finished {
            code: status.code(),
            stdout,
            stderr,
            elapsed,
        }
    }
}

impl Drop for Servo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `servo run` config against the fake optimizer, with `settings` (a YAML flow mapping).
fn remote_config(dir: &Path, base_url: &str, settings: &str) -> PathBuf {
    let remote = common::remote_optimizer(TOKEN, base_url, settings);
    let text = format!(
        "name: faults
{remote}wait:
  components:
    web:
      settings:
        cpu: {{ type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }}
"
    );
    let path = dir.join("servo.yaml");
    std::fs::write(&path, text).expect("write the config");
    path
}

/// Runs `servo run` against an optimizer with `fault` and `settings`; returns what it left and
/// what the optimizer saw.
fn run_against(fault: Fault, settings: &str) -> (Finished, FaultyOptimizer) {
    let fake = FaultyOptimizer::start(fault);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = remote_config(dir.path(), &fake.base_url(), settings);
    let mut servo = Servo::start(&["run"], &config, "warn");
    let finished = servo.finish();
    (finished, fake)
}

/// The common verdict on a run that had to give up on `WHATS_NEXT`: exit 1, no panic, no token,
/// one HELLO, then `tries` tries of WHATS_NEXT, all within the backoff's `max_time` of the first.
fn assert_gave_up(case: &str, out: &Finished, fake: &FaultyOptimizer, tries: usize) {
    let stderr = &out.stderr;
    assert_eq!(out.code, Some(1), "{case}: {stderr}");
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    assert!(
        !stderr.contains(TOKEN),
        "{case}: the token leaked: {stderr}"
    );
    assert!(
        stderr.contains(&format!("WHATS_NEXT failed after {tries} tries")),
        "{case}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("(POST {})", fake.endpoint())),
        "{case}: the error names the endpoint: {stderr}"
    );
    let seen = fake.seen();
    let tried: Vec<&Seen> = seen.iter().filter(|s| s.event != "HELLO").collect();
    assert_eq!(seen[0].event, "HELLO", "{case}: {:?}", fake.events());
    assert_eq!(seen[0].path, PATH, "{case}");
    assert_eq!(
        tried.len(),
        tries,
        "{case}: one connection per try, no more: {:?}",
        fake.events()
    );
    assert!(
        tried
            .iter()
            .all(|s| s.event == "WHATS_NEXT" || s.event == "-"),
        "{case}: {:?}",
        fake.events()
    );
    let span = tried[tries - 1].at.duration_since(tried[0].at);
    assert!(
        span <= Duration::from_millis(2_500),
        "{case}: the last try came {span:?} after the first, beyond max_time 2s"
    );
    assert!(
        out.elapsed < Duration::from_secs(15),
        "{case}: gave up only after {:?}",
        out.elapsed
    );
    eprintln!(
        "{case}: {} WHATS_NEXT tries over {span:?}; servo exited 1 after {:?}:\n{}",
        tried.len(),
        out.elapsed,
        stderr.trim_end()
    );
}

// ---------------------------------------------------------------------------------------------
// The optimizer answers garbage.

#[test]
fn garbage_from_the_optimizer_is_retried_with_backoff_then_named() {
    let cases: [(&str, Fault, &[&str]); 4] = [
        (
            "not JSON",
            Fault::Answer("application/json", "{not json"),
            &["the answer is not JSON", "(body: {not json)"],
        ),
        (
            "an HTML page",
            Fault::Answer(
                "text/html",
                "<!DOCTYPE html>\n<html>\n  <head><title>Sign in to the proxy</title></head>\n  \
                 <body><form action=\"/login\"></form></body>\n</html>\n",
            ),
            &[
                "the answer is not JSON",
                // Quoted on one line, whatever the page's layout.
                "(body: <!DOCTYPE html> <html> <head><title>Sign in to the proxy</title>",
            ],
        ),
        (
            "an unknown command",
            Fault::Answer("application/json", r#"{"cmd": "DANCE"}"#),
            &["the answer is not a command", "unknown variant `DANCE`"],
        ),
        (
            "a status where a command belongs",
            Fault::Answer("application/json", r#"{"status": "ok"}"#),
            &["the answer is not a command", "missing field `cmd`"],
        ),
    ];
    for (case, fault, expected) in cases {
        let (out, fake) = run_against(fault, BOUNDED);
        assert_gave_up(case, &out, &fake, 3);
        for text in expected {
            assert!(
                out.stderr.contains(text),
                "{case}: no `{text}` in {}",
                out.stderr
            );
        }
        assert!(
            out.stderr.contains("not in the ServoX protocol"),
            "{case}: the hint says what is wrong: {}",
            out.stderr
        );
    }
}

#[test]
fn garbage_is_bounded_by_max_time_alone() {
    // No max_tries: the two seconds of max_time bound the tries (0.5s, 1s, 2s jitter ceilings).
    let (out, fake) = run_against(
        Fault::Answer("application/json", r#"{"cmd": "DANCE"}"#),
        "{backoff: {whats_next: {max_time: 2s}}}",
    );
    let tries = fake.events().iter().filter(|e| *e == "WHATS_NEXT").count();
    assert!(tries >= 2, "it retried: {:?}", fake.events());
    assert!(tries <= 20, "bounded: {tries} tries");
    assert_gave_up("max_time only", &out, &fake, tries);
}

// ---------------------------------------------------------------------------------------------
// The optimizer closes connections.

#[test]
fn closed_connections_are_retried_with_backoff_then_named() {
    let cases = [
        ("closed at once", Fault::Drop),
        ("closed mid-headers", Fault::HalfHead),
        ("closed mid-body", Fault::HalfBody),
    ];
    for (case, fault) in cases {
        let (out, fake) = run_against(fault, BOUNDED);
        assert_gave_up(case, &out, &fake, 3);
        // A transport failure, not garbage: the hint is about reaching the optimizer.
        assert!(
            out.stderr.contains("is reachable"),
            "{case}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("the answer is not"),
            "{case}: {}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus dies or freezes mid-measurement.

/// The real Prometheus on a free loopback port with its storage in a temporary directory.
struct Prometheus {
    process: PrometheusProcess,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start() -> Prometheus {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Nothing to scrape: the tests take Prometheus away before any query.
        let process =
            PrometheusProcess::start(dir.path(), "global:\n  scrape_interval: 1s\n", "", PATIENCE);
        Prometheus { process, dir }
    }

    fn url(&self) -> String {
        format!("http://{}", self.process.addr)
    }
}

/// A `servo measure` config reading `up` from `prometheus`, every request bounded by 2s.
fn prometheus_config(prometheus: &Prometheus) -> PathBuf {
    let path = prometheus.dir.path().join("servo.yaml");
    std::fs::write(
        &path,
        format!(
            "prometheus:\n  base_url: {}\n  timeout: 2s\n  metrics:\n    - {{ name: up, query: up, step: 1s }}\n",
            prometheus.url()
        ),
    )
    .expect("write servo.yaml");
    path
}

#[test]
fn prometheus_killed_mid_measure_fails_naming_it() {
    let mut prometheus = Prometheus::start();
    let config = prometheus_config(&prometheus);
    let url = prometheus.url();
    let mut servo = Servo::start(&["measure", "--duration", "4s"], &config, "info");
    // The connector logs when the window opens.
    servo.wait_for_line("measuring up for 4s");
    let killed = Instant::now();
    prometheus.process.kill();
    let out = servo.finish();
    let after_kill = killed.elapsed();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cannot reach Prometheus at {url}/")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("check that Prometheus is running"),
        "{}",
        out.stderr
    );
    // The rest of the 4s window, then a refused connection: no retry loop, no hang.
    assert!(after_kill < Duration::from_secs(12), "{after_kill:?}");
    eprintln!(
        "prometheus killed: servo exited 1 {after_kill:?} after the kill ({:?} in all)",
        out.elapsed
    );
}

#[test]
fn prometheus_frozen_mid_measure_fails_within_the_timeout() {
    let prometheus = Prometheus::start();
    let config = prometheus_config(&prometheus);
    let url = prometheus.url();
    let mut servo = Servo::start(&["measure", "--duration", "4s"], &config, "info");
    servo.wait_for_line("measuring up for 4s");
    let frozen = Instant::now();
    prometheus.process.freeze();
    let out = servo.finish();
    let after_freeze = frozen.elapsed();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "Prometheus at {url}/ did not answer the query of metric `up` within 2s"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("timeout"), "the hint: {}", out.stderr);
    // At most the window, then the 2s timeout.
    assert!(after_freeze >= Duration::from_secs(2), "{after_freeze:?}");
    assert!(after_freeze < Duration::from_secs(14), "{after_freeze:?}");
    eprintln!(
        "prometheus frozen: servo exited 1 {after_freeze:?} after the freeze ({:?} in all)",
        out.elapsed
    );
}

#[test]
fn an_embedded_study_records_trials_failed_when_prometheus_dies() {
    let mut prometheus = Prometheus::start();
    let url = prometheus.url();
    let config = prometheus.dir.path().join("study.yaml");
    std::fs::write(
        &config,
        format!(
            "name: faults
optimizer:
  trials: 2
  seed: 1
  objective: {{ minimize: up }}
  control: {{ duration: 3s }}
  store: {store}
prometheus:
  base_url: {url}
  timeout: 2s
  metrics:
    - {{ name: up, query: up, step: 1s }}
wait:
  components:
    main:
      settings:
        cpu: {{ type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }}
",
            store = prometheus.dir.path().join("study.db").display()
        ),
    )
    .expect("write the study config");
    // No pre-flight checks: `up` has no data in a Prometheus that scrapes nothing.
    let mut servo = Servo::start(&["run", "--no-checks", "-o", "json"], &config, "info");
    servo.wait_for_line("measuring up for 3s");
    prometheus.process.kill();
    let out = servo.finish();
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // The study ends normally: failed trials are results the optimizer learns from.
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    assert_eq!(summary["interrupted"], false, "{summary}");

    let trials = common::servo()
        .args(["trials", "-o", "json", "-c"])
        .arg(&config)
        .output()
        .expect("servo trials runs");
    assert!(
        trials.status.success(),
        "{}",
        String::from_utf8_lossy(&trials.stderr)
    );
    let trials: Vec<Value> = serde_json::from_slice(&trials.stdout).expect("trials as JSON");
    assert_eq!(trials.len(), 2, "{trials:?}");
    for trial in &trials {
        assert_eq!(trial["state"], "failed", "{trial}");
        let error = trial["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("cannot reach Prometheus at {url}/")),
            "{trial}"
        );
    }
    eprintln!(
        "embedded study: 2 trials failed, servo exited 0 after {:?}",
        out.elapsed
    );
}
