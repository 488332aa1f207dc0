//! The SLO unit check of `servo run` happens before anything runs, wherever a goal is given:
//! `servo validate` and `servo check` refuse a bound whose unit cannot be compared with the unit
//! the connector declares for its metric (exit 2, at the constraint's line, naming the metric,
//! both units and the fix), and `servo optimizer app create` refuses a unit on an expression.
//! Through the real binary, with the `command` connector declaring `latency_p99`.

mod common;

use std::path::PathBuf;

/// A study whose constraint is `latency_p99 < 50ms` and whose connector declares `latency_p99` in
/// `unit`; every command the connector could run leaves a mark in `ran`, so the test can tell
/// that nothing ran.
fn study(unit: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ran = dir.path().join("ran");
    let mark = format!("[sh, -c, 'echo x >> {}']", ran.display());
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
name: slo
optimizer:
  trials: 3
  objective:
    minimize: app.workers
  constraints:
    - error_rate < 1%
    - latency_p99 < 50ms
command:
  components:
    app:
      settings:
        workers: {{ type: int, min: 1, max: 8, step: 1, value: 4 }}
  metrics:
    - {{ name: latency_p99, unit: "{unit}" }}
  describe: {mark}
  adjust: {mark}
  measure: {mark}
"#
        ),
    )
    .expect("write config");
    (dir, config, ran)
}

fn assert_refused(command: &str, unit: &str, expected: &[&str]) {
    let (_dir, config, ran) = study(unit);
    let (code, _, stderr) = common::run(&config, &[command]);
    assert_eq!(code, 2, "servo {command} with unit `{unit}`: {stderr}");
    for text in expected {
        assert!(
            stderr.contains(text),
            "servo {command} with unit `{unit}`: the error lacks `{text}`: {stderr}"
        );
    }
    assert!(
        !ran.exists(),
        "servo {command} ran a command of the connector"
    );
}

#[test]
fn validate_refuses_a_bound_in_ms_on_a_metric_declared_without_a_unit() {
    assert_refused(
        "validate",
        "",
        &[
            // At the constraint's line and column, as the file's other errors are.
            "servo.yaml:9:7: optimizer.constraints[1]: ",
            "latency_p99 < 50ms",
            "(`ms`)",
            "reports no unit",
            "declare the metric's `unit:`",
            "bare number",
        ],
    );
}

#[test]
fn validate_refuses_a_bound_in_ms_on_a_metric_declared_in_bytes() {
    assert_refused(
        "validate",
        "bytes",
        &[
            "latency_p99",
            "(`ms`)",
            "(`bytes`)",
            "declare the metric's `unit:`",
        ],
    );
}

#[test]
fn validate_accepts_a_bound_in_ms_on_a_metric_declared_in_seconds() {
    let (_dir, config, _) = study("seconds");
    let (code, stdout, stderr) = common::run(&config, &["validate"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn check_refuses_an_unconvertible_bound_before_anything_runs() {
    assert_refused(
        "check",
        "",
        &[
            "latency_p99",
            "(`ms`)",
            "reports no unit",
            "declare the metric's `unit:`",
        ],
    );
}

#[test]
fn app_create_refuses_a_unit_on_an_expression() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = common::servo()
        .args(["optimizer", "app", "create", "acme/web", "--store"])
        .arg(dir.path().join("optimizer.db"))
        .args(["--minimize", "web.cpu"])
        .args(["--constraint", "latency_p50 + latency_p99 < 50ms"])
        .output()
        .expect("servo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for text in [
        "optimizer.constraints[0]",
        "latency_p50 + latency_p99 < 50ms",
        "one metric on the left",
        "bare number",
    ] {
        assert!(stderr.contains(text), "the error lacks `{text}`: {stderr}");
    }
}
