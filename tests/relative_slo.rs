//! A relative SLO (`latency_p99 <= 1.5 * baseline.latency_p99`) through the real binary on the
//! demo app: its limit derives from the baseline (trial 0) as measured, every trial is judged by
//! that concrete limit (also after the study resumes), `servo trials` shows it, and a bound naming
//! a metric the baseline does not measure is a config error before anything runs.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_success, number, output, trials};

/// The demo app under `process`, loaded by `vegeta`; short windows, `trials` trials.
fn study(dir: &Path, port: u16, trials: u32, latency: &str) -> PathBuf {
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"name: relative-slo
optimizer:
  trials: {trials}
  seed: 3
  algorithm: random
  objective:
    minimize: demo.workers + demo.cache_mb / 64
  constraints:
    - {latency}
    - error_rate <= baseline.error_rate + 1%
  control: {{ warmup: 1s, duration: 3s }}
  store: study.db
{demo}"#,
            demo = common::searched_demo_app(port)
        ),
    )
    .expect("write the config");
    config
}

#[test]
fn a_relative_slo_is_judged_by_the_limit_the_measured_baseline_makes_of_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = study(
        dir.path(),
        common::free_port(),
        2,
        "latency_p99 <= 1.5 * baseline.latency_p99",
    );
    assert_success(&output(&config, &["run", "-o", "json"]));
    // One more trial: the resumed study makes the limit again from the journaled baseline.
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, text.replace("trials: 2", "trials: 3")).expect("write");
    assert_success(&output(&config, &["run", "-o", "json"]));

    let trials = trials(&config);
    assert_eq!(trials.len(), 3, "{trials:#?}");
    let baseline = &trials[0]["readings"];
    let p99 = number(&baseline["latency_p99"]["value"]);
    let unit = baseline["latency_p99"]["unit"].as_str().expect("a unit");
    let errors = number(&baseline["error_rate"]["value"]);
    let errors_unit = baseline["error_rate"]["unit"].as_str().expect("a unit");
    assert!(p99 > 0.0, "{baseline:#}");
    let expected_errors = errors
        + match errors_unit {
            "%" | "percent" => 1.0,
            "ratio" | "fraction" | "" => 0.01,
            other => panic!("error_rate in {other}"),
        };
    for trial in &trials {
        assert_eq!(trial["state"], "complete", "{trial:#}");
        let limits = trial["limits"].as_array().expect("limits");
        assert_eq!(limits.len(), 2, "{trial:#}");
        let latency = &limits[0];
        assert_eq!(
            latency["constraint"],
            "latency_p99 <= 1.5 * baseline.latency_p99"
        );
        assert_eq!(latency["unit"], unit);
        assert!(
            (number(&latency["baseline"]) - p99).abs() < 1e-9,
            "{latency:#}"
        );
        let limit = number(&latency["limit"]);
        assert!((limit - 1.5 * p99).abs() < 1e-9, "{latency:#}");
        let describe = latency["describe"].as_str().expect("describe");
        assert!(
            describe.starts_with("latency_p99 <= 1.5 × baseline (")
                && describe.ends_with(&format!(" {unit})")),
            "{describe}"
        );
        assert!(
            (number(&limits[1]["limit"]) - expected_errors).abs() < 1e-9,
            "{:#}",
            limits[1]
        );
        // Each trial was judged by these limits: its violations are its readings past them.
        let readings = &trial["readings"];
        let over_latency = number(&readings["latency_p99"]["value"]) - limit;
        let over_errors = number(&readings["error_rate"]["value"]) - expected_errors;
        let violations = trial["constraints"].as_array().expect("constraints");
        assert!(
            (number(&violations[0]) - over_latency).abs() < 1e-9,
            "{trial:#}"
        );
        assert!(
            (number(&violations[1]) - over_errors).abs() < 1e-9,
            "{trial:#}"
        );
        assert_eq!(
            trial["feasible"],
            over_latency <= 0.0 && over_errors <= 0.0,
            "{trial:#}"
        );
    }
    assert_eq!(
        trials[0]["feasible"], true,
        "the baseline meets its own SLO"
    );

    let table = output(&config, &["trials"]);
    assert_success(&table);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("SLO latency_p99 <= 1.5 × baseline (")
            && text.contains("SLO error_rate <= baseline + 1% ("),
        "{text}"
    );
}

#[test]
fn a_bound_naming_a_metric_the_baseline_does_not_measure_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = study(
        dir.path(),
        common::free_port(),
        2,
        "latency_p99 <= 1.5 * baseline.latncy_p99",
    );
    for command in ["validate", "run"] {
        let out = output(&config, &[command]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("optimizer.constraints[0]")
                && stderr.contains("no metric named `latncy_p99`")
                && stderr.contains("did you mean `baseline.latency_p99`?"),
            "{command}: {stderr}"
        );
    }
    // Refused before any study began, so before any trial.
    let out = output(&config, &["trials", "-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("holds no study"),
        "{stderr}"
    );
}
