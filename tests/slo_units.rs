//! An SLO means what it says: a bound with a unit is converted to its metric's unit, and refused
//! before trial 0 when it cannot be (a metric with no unit, or an unknown one). Through the real
//! binary with the `command` connector, whose metric reports 0.3 under `latency_p99 < 50ms`.

mod common;

use common::{assert_success, output};
use serde_json::Value;

fn config(unit: &str) -> String {
    format!(
        r#"
name: slo
optimizer:
  trials: 3
  seed: 4
  objective:
    minimize: app.workers
  constraints:
    - latency_p99 < 50ms
  control: {{ duration: 10ms }}
command:
  components:
    app:
      settings:
        workers: {{ type: int, min: 1, max: 8, step: 1, value: 4 }}
  metrics:
    - {{ name: latency_p99, unit: "{unit}" }}
  adjust: ["true"]
  measure: [sh, -c, 'echo "{{\"metrics\": {{\"latency_p99\": {{\"value\": 0.3, \"unit\": \"{unit}\"}}}}}}"']
"#
    )
}

fn study(unit: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("servo.yaml");
    std::fs::write(&path, config(unit)).expect("write config");
    (dir, path)
}

#[test]
fn seconds_against_a_bound_in_milliseconds_are_converted_so_300ms_breaks_a_50ms_slo() {
    let (_dir, path) = study("seconds");
    assert_success(&output(&path, &["run"]));
    let out = output(&path, &["trials", "-o", "json"]);
    assert_success(&out);
    let trials: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON trials");
    assert!(!trials.is_empty());
    for t in &trials {
        assert_eq!(t["feasible"], false, "0.3 s is over 50 ms: {t}");
    }
}

#[test]
fn a_bound_with_a_unit_against_a_metric_without_one_is_refused_before_trial_0() {
    let (_dir, path) = study("");
    let out = output(&path, &["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("latency_p99"), "{stderr}");
    assert!(stderr.contains("`ms`"), "names the bound's unit: {stderr}");
    assert!(stderr.contains("reports no unit"), "{stderr}");
    assert!(
        stderr.contains("declare the metric's `unit:`"),
        "says the fix: {stderr}"
    );
    let trials = output(&path, &["trials", "-o", "json"]);
    let list: Vec<Value> = serde_json::from_slice(&trials.stdout).unwrap_or_default();
    assert!(list.is_empty(), "no trial ran: {list:?}");
}

#[test]
fn an_unknown_metric_unit_is_refused_naming_both_units() {
    let (_dir, path) = study("furlongs");
    let out = output(&path, &["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`furlongs`") && stderr.contains("`ms`"),
        "{stderr}"
    );
}
