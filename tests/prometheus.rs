//! The `prometheus` connector against a real Prometheus server, through the real `servo` binary.
//!
//! Each test starts `/usr/bin/prometheus` (Debian package `prometheus`; `scripts/test.sh` installs
//! it) on a free loopback port with its storage in a temporary directory, scraping every second a
//! tiny exporter the test owns, so the expected values are known exactly: a counter growing by
//! `RATE` per second, a gauge at `QUEUE_DEPTH`, and a gauge with two series. Guards kill Prometheus
//! and stop the exporter when a test ends, whatever happens.

mod common;
#[path = "common/prometheus.rs"]
mod prometheus;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::run;
use prometheus::{Exporter, PrometheusProcess, free_port, http_get};
use serde_json::Value;

/// The exporter's counter grows by this much per second.
const RATE: f64 = 10.0;
/// The exporter's constant gauge.
const QUEUE_DEPTH: f64 = 7.0;
/// The two series of the exporter's latency gauge, and their mean.
const LATENCIES: [(&str, f64); 2] = [("a", 0.1), ("b", 0.3)];
const MEAN_LATENCY: f64 = 0.2;

/// How long a test waits for Prometheus to start or to have scraped enough.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The exporter: a `/metrics` endpoint on 127.0.0.1:0 whose values the test knows.

/// The exporter's one page, whatever the path.
fn page(_path: &str, elapsed: f64) -> Option<String> {
    // Starting far from zero keeps rate()'s extrapolation from being clamped at the counter's
    // origin.
    let requests = 1_000.0 + RATE * elapsed;
    let mut body = format!(
        "# TYPE servo_test_requests_total counter\nservo_test_requests_total {requests}\n\
         # TYPE servo_test_queue_depth gauge\nservo_test_queue_depth {QUEUE_DEPTH}\n\
         # TYPE servo_test_latency_seconds gauge\n"
    );
    for (route, latency) in LATENCIES {
        body.push_str(&format!(
            "servo_test_latency_seconds{{route=\"{route}\"}} {latency}\n"
        ));
    }
    Some(body)
}

// ---------------------------------------------------------------------------------------------
// Prometheus: a child process on a free loopback port, killed and reaped on drop.

struct Prometheus {
    process: PrometheusProcess,
    /// The path prefix it serves under (`--web.external-url`), `""` for none.
    prefix: String,
    dir: tempfile::TempDir,
    // Declared last: dropped after Prometheus, so its last scrape finds it.
    _exporter: Exporter,
}

impl Prometheus {
    /// Starts Prometheus scraping a fresh exporter every second, and waits until it is ready.
    fn start() -> Prometheus {
        Self::start_with_prefix("")
    }

    fn start_with_prefix(prefix: &str) -> Prometheus {
        let exporter = Exporter::start(page);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let process = PrometheusProcess::start(
            dir.path(),
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: servo-test\n    static_configs:\n      - targets: ['{}']\n",
                exporter.addr
            ),
            prefix,
            PATIENCE,
        );
        Prometheus {
            process,
            prefix: prefix.to_string(),
            dir,
            _exporter: exporter,
        }
    }

    /// The `base_url` servo should use.
    fn url(&self) -> String {
        format!("http://{}{}", self.process.addr, self.prefix)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The address without the prefix: what a user who forgot it would configure.
    fn unprefixed_url(&self) -> String {
        format!("http://{}", self.process.addr)
    }

    /// Runs an instant query and returns the first value of its result, if any.
    fn value(&self, query: &str) -> Option<f64> {
        let path = format!("{}/api/v1/query?query={}", self.prefix, encode(query));
        let (_, body) = http_get(self.process.addr, &path).ok()?;
        let answer: Value = serde_json::from_str(&body).ok()?;
        answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    }

    /// Waits until the exporter has been scraped `samples` times.
    fn wait_for_samples(&self, samples: u32) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self
                .value("count_over_time(servo_test_requests_total[1m])")
                .unwrap_or(0.0)
                >= f64::from(samples)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "Prometheus did not scrape the exporter {samples} times in {PATIENCE:?}:\n{}",
            self.log()
        );
    }

    /// Writes a servo config with these metrics (YAML list items) and returns its path.
    fn config(&self, metrics: &str) -> PathBuf {
        write_config(self.dir.path(), &self.url(), metrics)
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn write_config(dir: &Path, base_url: &str, metrics: &str) -> PathBuf {
    let path = dir.join("servo.yaml");
    std::fs::write(
        &path,
        format!("prometheus:\n  base_url: {base_url}\n  timeout: 5s\n  metrics:\n{metrics}"),
    )
    .expect("write servo.yaml");
    path
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

// ---------------------------------------------------------------------------------------------

/// Metrics as YAML list items under `prometheus.metrics`.
const METRICS: &str = "    - { name: requests_per_second, unit: rps, query: 'rate(servo_test_requests_total[5s])', step: 1s }
    - { name: queue_depth, query: servo_test_queue_depth, step: 1s }
    - { name: latency, unit: s, query: servo_test_latency_seconds, step: 1s }
    - { name: nothing_as_zero, query: servo_test_nothing, step: 1s, absent: zero }
    - { name: nothing_ignored, query: servo_test_nothing, step: 1s, absent: ignore }
";

#[test]
fn measure_returns_the_known_rate_the_gauges_and_their_series() {
    let prometheus = Prometheus::start();
    // rate(...[5s]) needs five seconds of samples before the window opens.
    prometheus.wait_for_samples(6);
    let config = prometheus.config(METRICS);

    let (code, stdout, stderr) = run(&config, &["measure", "--duration", "3s", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}\n{}", prometheus.log());
    let m = json(&stdout);
    let metrics = &m["metrics"];

    let rps = &metrics["requests_per_second"];
    assert_eq!(rps["unit"], "rps");
    let value = rps["value"].as_f64().expect("a value");
    assert!(
        (value - RATE).abs() < RATE * 0.02,
        "rate {value}, expected {RATE}"
    );
    let series = rps["series"].as_array().expect("a series");
    assert!(
        series.len() >= 3,
        "a 3s window at 1s steps has 3 or 4 points: {series:?}"
    );
    for point in series {
        let v = point[1].as_f64().expect("a point value");
        assert!((v - RATE).abs() < RATE * 0.02, "point {point}");
    }
    let times: Vec<f64> = series.iter().filter_map(|p| p[0].as_f64()).collect();
    assert!(
        times.windows(2).all(|w| (w[1] - w[0] - 1.0).abs() < 1e-6),
        "one point per step: {times:?}"
    );

    assert_eq!(metrics["queue_depth"]["value"].as_f64(), Some(QUEUE_DEPTH));
    let latency = metrics["latency"]["value"].as_f64().expect("a latency");
    assert!(
        (latency - MEAN_LATENCY).abs() < 1e-9,
        "the mean of both series: {latency}"
    );
    let note = m["annotations"]["prometheus.latency"]
        .as_str()
        .expect("an annotation for the averaged series");
    assert!(note.starts_with("mean of 2 series"), "{note}");

    assert_eq!(
        metrics["nothing_as_zero"]["value"].as_f64(),
        Some(0.0),
        "absent: zero reads 0"
    );
    assert!(
        metrics.get("nothing_ignored").is_none(),
        "absent: ignore gives no reading: {metrics}"
    );
}

#[test]
fn measure_fails_on_an_absent_metric_with_absent_fail_and_says_what_to_check() {
    let prometheus = Prometheus::start();
    let config = prometheus
        .config("    - { name: required, query: servo_test_nothing, step: 1s, absent: fail }\n");
    let (code, _, stderr) = run(&config, &["measure", "--duration", "1s"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("metric `required` is absent"), "{stderr}");
    assert!(
        stderr.contains("`up` is 1"),
        "the hint says to check the target: {stderr}"
    );
}

#[test]
fn check_passes_under_a_path_prefix_reporting_version_queries_and_targets() {
    let prometheus = Prometheus::start_with_prefix("/prom");
    // rate(...[5s]) needs two samples.
    prometheus.wait_for_samples(3);
    let config = prometheus.config(METRICS);

    let (code, stdout, stderr) = run(&config, &["check", "-o", "json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report = json(&stdout);
    let checks = report["checks"].as_array().expect("checks");
    let find = |name: &str, metric: &str| {
        checks
            .iter()
            .find(|c| {
                c["name"].as_str().is_some_and(|n| n.starts_with(name))
                    && c["message"].as_str().is_some_and(|m| m.contains(metric))
            })
            .unwrap_or_else(|| panic!("no `{name}` check for `{metric}` in {checks:?}"))
    };
    let connect = find("Connect to", "");
    assert!(
        connect["name"]
            .as_str()
            .is_some_and(|n| n.contains("/prom")),
        "{connect}"
    );
    assert!(
        connect["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Prometheus 2.")),
        "{connect}"
    );
    let rate = find(
        "Run query \"rate(servo_test_requests_total[5s])\"",
        "requests_per_second",
    );
    assert_eq!(rate["success"], true, "{rate}");
    let targets = find("Active targets", "");
    assert_eq!(targets["success"], true, "{targets}");
    assert_eq!(targets["message"], "1 active target, all up");

    // The valid query that finds nothing warns, with the hint to look at `up`, without failing.
    let empty = find("Run query \"servo_test_nothing\"", "nothing_ignored");
    assert_eq!(empty["success"], false);
    assert_eq!(empty["severity"], "warning");
    assert!(
        empty["hint"]
            .as_str()
            .is_some_and(|h| h.contains("check `up`")),
        "{empty}"
    );

    // Without the prefix, the server answers 404, and the hint says why.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let unprefixed = write_config(elsewhere.path(), &prometheus.unprefixed_url(), METRICS);
    let (code, stdout, _) = run(&unprefixed, &["check"]);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("404"), "{stdout}");
    assert!(stdout.contains("path prefix"), "{stdout}");
}

#[test]
fn a_bad_query_fails_check_and_measure_quoting_prometheus() {
    let prometheus = Prometheus::start();
    let config = prometheus
        .config("    - { name: broken, query: 'rate(servo_test_requests_total[5s]', step: 1s }\n");

    let (code, stdout, stderr) = run(&config, &["check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stdout.contains("unclosed left parenthesis"),
        "Prometheus' own words: {stdout}"
    );
    assert!(
        stdout.contains("prometheus.metrics[0].query"),
        "where to fix it: {stdout}"
    );

    let (code, _, stderr) = run(&config, &["measure", "--duration", "1s"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("Prometheus rejected the query `rate(servo_test_requests_total[5s]`"),
        "{stderr}"
    );
    assert!(stderr.contains("unclosed left parenthesis"), "{stderr}");
}

#[test]
fn prometheus_down_fails_naming_the_url_and_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://{}", free_port());
    let config = write_config(
        dir.path(),
        &url,
        "    - { name: up, query: up, step: 1s }\n",
    );

    let (code, _, stderr) = run(&config, &["measure", "--duration", "200ms"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach Prometheus at {url}/")),
        "{stderr}"
    );
    assert!(
        stderr.contains("SERVO_PROMETHEUS_BASE_URL"),
        "the hint names the override: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, stdout, stderr) = run(&config, &["check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains(&url), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_section_servox_generates_loads_unchanged() {
    let (code, stdout, stderr) = run(
        &common::fixture("prometheus/servox-generated.yaml"),
        &["config", "-o", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let section = &json(&stdout)["prometheus"];
    assert_eq!(section["base_url"], "https://prometheus:9090");
    assert_eq!(section["metrics"][1]["unit"], "%");
    assert_eq!(section["fast_fail"]["skip"], "0s");
    assert_eq!(section["timeout"], "10s", "servo's extension, defaulted");
}

#[test]
fn a_measurement_without_a_duration_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        "    - { name: up, query: up }\n",
    );
    let (code, _, stderr) = run(&config, &["measure"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--duration"), "{stderr}");
}

#[test]
fn interrupting_a_measurement_stops_it_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        "    - { name: up, query: up }\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_servo"))
        .args(["measure", "--duration", "60s", "-c"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .env("SERVO_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("servo starts");
    let guard = Reaper(&mut child);
    // The connector logs when the window opens: the signal handler is installed by then.
    let stderr = guard.0.stderr.take().expect("piped stderr");
    let (opened, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut reader = std::io::BufReader::new(stderr);
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut reader, &mut line).is_ok_and(|n| n > 0) {
            if line.contains("measuring up") {
                let _ = opened.send(());
            }
            text.push_str(&line);
            line.clear();
        }
    });
    log.recv_timeout(PATIENCE).expect("the measurement starts");
    // servo installs its SIGINT handler from a task; until the kernel says it is caught, a SIGINT
    // would kill servo by default rather than reach the connector.
    let pid = guard.0.id();
    let deadline = Instant::now() + PATIENCE;
    while !catches_sigint(pid) {
        assert!(
            Instant::now() < deadline,
            "servo never installed its SIGINT handler"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let interrupted = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &guard.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = guard.0.try_wait().expect("wait on servo") {
            break status.code();
        }
        assert!(
            Instant::now() < deadline,
            "servo still measuring 10s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(130));
    assert!(
        interrupted.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        interrupted.elapsed()
    );
}

/// Whether a process has a handler for SIGINT (bit 1 of `SigCgt` in /proc/PID/status).
fn catches_sigint(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << 1) != 0)
}

/// Kills and reaps a child when the test ends, passed or not.
struct Reaper<'a>(&'a mut Child);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
