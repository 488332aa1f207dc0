//! The vegeta connector end to end: real attacks on a real HTTP server (servo's demo app, started by
//! the process connector) on loopback.

mod common;

use common::{example, run, servo};
use serde_json::Value;

#[test]
fn measure_reports_every_metric_and_keeps_the_open_loop_schedule() {
    let (code, stdout, stderr) = run(
        &example("vegeta.yaml"),
        &["measure", "-o", "json", "--duration", "3s"],
    );
    assert_eq!(code, 0, "{stderr}");
    let m: Value = serde_json::from_str(&stdout).expect("one JSON document");
    let metric = |name: &str| {
        m["metrics"][name]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("no {name} in {m:#}"))
    };
    // Open-loop pacing: the schedule decides how many requests are sent, not the server.
    assert_eq!(metric("requests"), 600.0, "200/s for 3s");
    assert_eq!(metric("error_rate"), 0.0);
    assert_eq!(metric("success_rate"), 100.0);
    let throughput = metric("throughput");
    assert!(
        (190.0..=202.0).contains(&throughput),
        "throughput {throughput}"
    );
    let (p50, p99, max) = (
        metric("latency_p50"),
        metric("latency_p99"),
        metric("latency_max"),
    );
    assert!(
        0.0 < p50 && p50 <= p99 && p99 <= max,
        "p50 {p50} p99 {p99} max {max}"
    );
    assert_eq!(m["metrics"]["latency_p99"]["unit"], "ms");
    let series = m["metrics"]["throughput"]["series"]
        .as_array()
        .expect("a per-interval series");
    assert!(series.len() >= 2, "{series:?}");
}

#[test]
fn an_unreachable_target_fails_check_and_measure_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bind then drop a listener to get one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        format!("vegeta:\n  rate: 20/1s\n  duration: 1s\n  target: GET http://127.0.0.1:{port}/\n  timeout: 2s\n"),
    )
    .expect("write");
    let (code, stdout, stderr) = run(&config, &["check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.to_lowercase().contains("refused"), "{stdout}");
    let (code, _, stderr) = run(&config, &["measure"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("every request of the attack failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn a_malformed_targets_file_is_a_config_error_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let targets = common::fixture("vegeta/bad-targets.txt");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        format!("vegeta:\n  rate: 10/1s\n  targets: {}\n", targets.display()),
    )
    .expect("write");
    let (code, _, stderr) = run(&config, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("vegeta.targets"), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(stderr.contains("GTE"), "{stderr}");
}

#[test]
fn target_and_targets_are_exclusive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        "vegeta:\n  rate: 10/1s\n  target: GET http://127.0.0.1:1/\n  targets: t.txt\n",
    )
    .expect("write");
    let out = servo()
        .args(["validate", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot both be set"));
}

/// A server on loopback that answers every request `500` and closes; stops after `limit` requests.
fn always_500(limit: usize) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(limit) {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops",
            );
        }
    });
    port
}

#[test]
fn a_target_answering_500_is_measured_as_all_errors_not_a_failed_measurement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = always_500(200);
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        format!("vegeta:\n  rate: 20/1s\n  duration: 1s\n  target: GET http://127.0.0.1:{port}/\n  timeout: 2s\n"),
    )
    .expect("write");
    let (code, stdout, stderr) = run(&config, &["measure", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let m: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(m["metrics"]["error_rate"]["value"], 100.0, "{m:#}");
    assert_eq!(m["metrics"]["success_rate"]["value"], 0.0, "{m:#}");
    assert_eq!(m["metrics"]["requests"]["value"], 20.0, "{m:#}");
    let codes = m["annotations"]["status_codes"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(codes, "500 ×20", "{m:#}");
}
