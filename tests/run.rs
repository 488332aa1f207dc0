//! `servo run` end to end with the `wait` connector: trials journaled, resumed after SIGKILL and
//! SIGTERM, search-space changes refused, reports written.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{BackgroundRun, assert_success, count, output, servo, trials};
use serde_json::Value;

const CONFIG: &str = r#"
name: study
optimizer:
  trials: TRIALS
  seed: 3
  objective:
    minimize: main.cpu * 2 + main.memory
  constraints:
    - time_waited < 10s
  control: { duration: DURATION }
wait:
  measure_enabled: true
  components:
    main:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 2 }
        memory: { type: memory, min: 0.5, max: 8, step: 0.5, value: 4 }
        mode: { type: enum, values: [a, b, c], value: a }
"#;

fn study_dir(trials: u32, duration: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        CONFIG
            .replace("TRIALS", &trials.to_string())
            .replace("DURATION", duration),
    )
    .expect("write config");
    (dir, config)
}

/// [`study_dir`] with one more line in the `optimizer` section.
fn study_with(trials: u32, duration: &str, optimizer_line: &str) -> (tempfile::TempDir, PathBuf) {
    let (dir, config) = study_dir(trials, duration);
    edit(
        &config,
        "  seed: 3\n",
        &format!("  seed: 3\n  {optimizer_line}\n"),
    );
    (dir, config)
}

/// Rewrites the config file, replacing `from` with `to`.
fn edit(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).expect("read");
    assert!(text.contains(from), "the config has no `{from}`");
    std::fs::write(config, text.replace(from, to)).expect("write");
}

/// `servo run` to its end; its JSON summary.
fn run_to_end(config: &Path) -> Value {
    let out = output(config, &["run", "-o", "json"]);
    assert_success(&out);
    serde_json::from_slice(&out.stdout).expect("json summary")
}

#[test]
fn a_study_runs_its_trials_baseline_first_and_reports_the_best() {
    let (_dir, config) = study_dir(6, "50ms");
    let summary = run_to_end(&config);
    let list = summary["trials"].as_array().expect("trials");
    assert_eq!(list.len(), 6);
    assert!(list.iter().all(|t| t["state"] == "complete"));
    assert_eq!(
        list[0]["config"]["main.cpu"], 2.0,
        "trial 0 is the baseline"
    );
    assert_eq!(list[0]["config"]["main.mode"], "a");
    let configs: std::collections::HashSet<String> =
        list.iter().map(|t| t["config"].to_string()).collect();
    assert_eq!(configs.len(), 6, "no configuration is tried twice");
    let best = summary["best"]["objective"].as_f64().expect("a best trial");
    let min = list
        .iter()
        .filter_map(|t| t["objective"].as_f64())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best, min);
    assert!(
        summary["left_on"]
            .as_str()
            .unwrap_or_default()
            .contains("best")
    );

    let csv = output(&config, &["trials", "-o", "csv"]);
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(
        text.starts_with(
            "number,state,main.cpu,main.memory,main.mode,objective,feasible,error,cut_short,reused_from,role\n"
        ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 7);

    let report = config.parent().expect("dir").join("report.html");
    let out = servo()
        .args(["report", "--output"])
        .arg(&report)
        .arg("-c")
        .arg(&config)
        .output()
        .expect("runs");
    assert_success(&out);
    let html = std::fs::read_to_string(&report).expect("report written");
    let data = common::report_data(&html);
    let trials = data["trials"].as_array().expect("trials");
    assert!(!trials.is_empty(), "{data}");
    assert!(
        data["settings"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "main.cpu")),
        "{data}"
    );
    assert!(
        html.contains("ServoCharts.mount"),
        "the report draws its charts"
    );
}

#[test]
fn a_minimal_risk_study_runs_past_its_design_to_a_best() {
    // Three settings: six design trials, then four the models choose under `risk: minimal`.
    let (_dir, config) = study_with(10, "20ms", "risk: minimal");
    let summary = run_to_end(&config);
    let list = summary["trials"].as_array().expect("trials");
    assert_eq!(list.len(), 10);
    assert!(list.iter().all(|t| t["state"] == "complete"), "{summary:#}");
    let configs: std::collections::HashSet<String> =
        list.iter().map(|t| t["config"].to_string()).collect();
    assert_eq!(configs.len(), 10, "no configuration is tried twice");
    assert!(
        summary["best"]["objective"].as_f64().is_some(),
        "{summary:#}"
    );
}

#[test]
fn confirm_measures_the_best_candidates_again_and_the_best_reported_averages_them() {
    let (_dir, config) = study_with(6, "50ms", "confirm: 2");
    let summary = run_to_end(&config);
    let list = summary["trials"].as_array().expect("trials");
    assert_eq!(list.len(), 8, "6 trials, then 2 confirmations");
    let first: Vec<&Value> = list[..6].iter().map(|t| &t["config"]).collect();
    let distinct: std::collections::HashSet<String> = first.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        distinct.len(),
        6,
        "the search itself tries no configuration twice"
    );
    for again in &list[6..] {
        assert!(
            first.contains(&&again["config"]),
            "a confirmation repeats a searched configuration: {again:#}"
        );
    }
    assert_ne!(
        list[6]["config"], list[7]["config"],
        "two different candidates"
    );

    // The best is the models' choice, with every reading of its configuration.
    let best = &summary["best"];
    let confidence = &summary["confidence"];
    assert_eq!(confidence["trial"], best["number"], "{summary:#}");
    let measured = list
        .iter()
        .filter(|t| t["config"] == best["config"])
        .count();
    assert_eq!(
        confidence["objectives"].as_array().map(Vec::len),
        Some(measured),
        "{confidence:#}"
    );
    assert!(
        confidence["feasibility"].as_f64().is_some_and(|p| p > 0.5),
        "{confidence:#}"
    );
    // `on_finish: best` applies that choice.
    assert!(
        summary["left_on"]
            .as_str()
            .is_some_and(|l| l.contains(&format!("best configuration (trial {})", best["number"]))),
        "{summary:#}"
    );

    // `servo trials` shows the same best and how sure the study is of it.
    let table = output(&config, &["trials"]);
    assert_success(&table);
    let text = String::from_utf8_lossy(&table.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("best: trial "))
        .unwrap_or_else(|| panic!("no best line in {text}"));
    assert!(
        line.starts_with(&format!("best: trial {},", best["number"]))
            && line.contains("likely to meet every SLO by the models"),
        "{line}"
    );
}

#[test]
fn trials_and_the_report_count_slo_breaches_and_their_severity() {
    // Each trial waits 50 ms against a 20 ms limit: every one breaches, at about 2.5× the limit.
    let (_dir, config) = study_dir(3, "50ms");
    edit(&config, "time_waited < 10s", "time_waited < 20ms");
    assert_success(&output(&config, &["run", "-o", "json"]));

    let table = output(&config, &["trials"]);
    assert_success(&table);
    let text = String::from_utf8_lossy(&table.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("missed an SLO"))
        .unwrap_or_else(|| panic!("no breach line in {text}"));
    assert!(
        line.starts_with("3 of 3 trials missed an SLO; worst: trial ")
            && line.contains("`time_waited < 20ms` at "),
        "{line}"
    );
    let times: f64 = line
        .rsplit(" at ")
        .next()
        .and_then(|rest| rest.split('×').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no severity in {line}"));
    assert!((2.4..10.0).contains(&times), "{line}");

    let report = config.parent().expect("dir").join("report.html");
    let out = servo()
        .args(["report", "--output"])
        .arg(&report)
        .arg("-c")
        .arg(&config)
        .output()
        .expect("runs");
    assert_success(&out);
    let html = std::fs::read_to_string(&report).expect("report written");
    let data = common::report_data(&html);
    assert_eq!(data["breaches"]["count"], 3, "{data}");
    assert!(
        data["breaches_text"]
            .as_str()
            .is_some_and(|t| t.starts_with("3 of 3 trials missed an SLO; worst: trial")),
        "{data}"
    );
}

#[test]
fn sigkill_mid_trial_then_restart_loses_no_completed_trial() {
    let (_dir, config) = study_dir(8, "400ms");
    let mut run = BackgroundRun::start(&config, &[]);
    run.wait_for("3 trials never completed", |t| count(t, "complete") >= 3);
    std::thread::sleep(Duration::from_millis(150));
    run.kill();
    let before = trials(&config);
    let completed_before: Vec<String> = before
        .iter()
        .filter(|t| t["state"] == "complete")
        .map(|t| t["config"].to_string())
        .collect();
    assert!(completed_before.len() >= 3);
    assert_eq!(
        count(&before, "running"),
        1,
        "the killed trial is left running in the journal"
    );

    let out = output(&config, &["run"]);
    assert_success(&out);
    let after = trials(&config);
    assert_eq!(
        count(&after, "complete"),
        8,
        "the study finishes with exactly `trials` complete"
    );
    assert_eq!(
        count(&after, "interrupted"),
        1,
        "the killed trial is marked interrupted"
    );
    assert_eq!(count(&after, "running"), 0);
    for config in &completed_before {
        assert!(
            after
                .iter()
                .any(|t| t["state"] == "complete" && &t["config"].to_string() == config)
        );
    }
}

/// `servo trials` run over and over while studies start and write their journals never makes one
/// fail, and itself only ever says there is nothing to show yet. It reads through a read-only
/// connection; when it opened the journal as a writer does (setting it up, migrating it,
/// checkpointing on closing), one `servo run` in 22 failed with "database is locked".
#[test]
fn servo_trials_beside_starting_studies_never_breaks_one() {
    for _ in 0..100 {
        let (_dir, config) = study_dir(2, "0s");
        let mut run = BackgroundRun::start(&config, &["--no-checks"]);
        let status = loop {
            let out = output(&config, &["trials", "-o", "json"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success()
                    || stderr.contains("no journal")
                    || stderr.contains("holds no study"),
                "servo trials beside a starting study: {stderr}"
            );
            if let Some(status) = run.child.try_wait().expect("the run's status") {
                break status;
            }
        };
        assert!(status.success(), "servo run {status}:\n{}", run.log());
    }
}

#[test]
fn sigterm_stops_the_trial_marks_it_and_exits_130() {
    let (_dir, config) = study_dir(20, "2s");
    let mut run = BackgroundRun::start(&config, &[]);
    run.wait_for("no trial completed", |t| count(t, "complete") >= 1);
    std::thread::sleep(Duration::from_millis(300));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &run.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = Instant::now();
    let status = run.child.wait().expect("exits");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "graceful stop is bounded"
    );
    assert_eq!(status.code(), Some(130));
    let list = trials(&config);
    assert_eq!(count(&list, "interrupted"), 1);
    assert_eq!(count(&list, "running"), 0);
}

#[test]
fn a_changed_search_space_is_refused_unless_a_new_study_is_asked_for() {
    let (_dir, config) = study_dir(2, "10ms");
    assert!(output(&config, &["run"]).status.success());
    edit(&config, "max: 8,", "max: 16,");
    let out = output(&config, &["run"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("changed the range of `main.memory`"),
        "{stderr}"
    );
    assert!(stderr.contains("--new-study"), "{stderr}");
    let out = output(&config, &["run", "--new-study"]);
    assert_success(&out);
    let list = trials(&config);
    let reused = list.iter().filter(|t| t.get("reused").is_some()).count();
    // A wider range holds every earlier trial: the new study starts warm from both.
    assert_eq!((list.len(), reused), (4, 2), "{list:#?}");
}

#[test]
fn an_objective_naming_an_unknown_metric_is_a_usage_error_before_any_trial() {
    let (_dir, config) = study_dir(2, "10ms");
    edit(&config, "time_waited < 10s", "time_waitd < 10s");
    let out = output(&config, &["run"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did you mean `time_waited`?"), "{stderr}");
}

#[test]
fn an_unwritable_journal_stops_the_run_before_anything_is_adjusted() {
    let (dir, config) = study_dir(3, "10ms");
    // Root ignores directory permissions, so make the journal's directory impossible instead: a
    // directory cannot be created below a regular file.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "").expect("write");
    edit(
        &config,
        "  seed: 3\n",
        "  seed: 3\n  store: not-a-directory/study.db\n",
    );
    let out = output(&config, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open the journal"), "{stderr}");
    assert!(stderr.contains("not-a-directory"), "{stderr}");
    assert!(
        !stderr.contains("trial started"),
        "no trial may start: {stderr}"
    );
}
