//! `servo run` stops a trial whose readings so far break an SLO badly and puts the application
//! back on a known configuration: the demo app under `process`, loaded by `vegeta`, whose partial
//! readings reach the study while it measures.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_success, output};
use serde_json::Value;

/// One worker, no cache and 400 requests/s: at least 1.2 cores of misses for one core, whichever
/// algorithm the study picks, so the queue fills and most requests are refused. The baseline is
/// measured whole (it is the reference); every later trial is a meltdown to cut.
fn study(dir: &Path, port: u16) -> PathBuf {
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"name: cut-short
optimizer:
  trials: 3
  seed: 2
  algorithm: random
  objective:
    minimize: latency_p50
  constraints:
    - error_rate < 1%
    - latency_p99 < 40ms
  control: {{ warmup: 1s, duration: 8s }}
  store: study.db
{demo}"#,
            demo = common::melting_demo_app(port)
        ),
    )
    .expect("write the config");
    config
}

#[test]
fn a_meltdown_is_cut_short_journaled_with_its_breach_and_rolled_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = study(dir.path(), common::free_port());
    assert_success(&output(&config, &["run", "-o", "json"]));

    let out = output(&config, &["trials", "-o", "json"]);
    assert_success(&out);
    let trials: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(trials.len(), 3, "{trials:#?}");
    assert!(
        trials[0].get("cut_short").is_none(),
        "the baseline is the reference, measured whole: {:#}",
        trials[0]
    );
    for trial in &trials[1..] {
        let cut = trial["cut_short"]
            .as_str()
            .unwrap_or_else(|| panic!("not cut short: {trial:#}"));
        assert!(
            cut.contains("× its limit, after ")
                && cut.ends_with("rolled back to the baseline configuration (trial 0)"),
            "{cut}"
        );
        assert!(
            cut.starts_with("`error_rate < 1%`") || cut.starts_with("`latency_p99 < 40ms`"),
            "{cut}"
        );
        // Scored on the readings it had: a breach the optimizer learns from.
        assert_eq!(trial["state"], "complete", "{trial:#}");
        assert_eq!(trial["feasible"], false, "{trial:#}");
        assert!(
            trial["readings"]["error_rate"]["value"].is_number(),
            "{trial:#}"
        );
    }

    let table = output(&config, &["trials"]);
    assert_success(&table);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(
        text.matches("missed, cut short: `").count(),
        2,
        "each cut trial says so in the table: {text}"
    );
    assert!(
        text.contains("3 of 3 trials missed an SLO (2 cut short); worst: trial "),
        "{text}"
    );
}
