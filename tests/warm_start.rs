//! Warm starts through the real binary with the `wait` connector: a study whose search space
//! changed (`servo run --new-study`) takes over exactly the earlier trials that fit the new space,
//! scores them again by the new objective, says how many it reused and why not the others, and
//! suggests differently from a cold start (`--no-warm-start`); a crash mid-study resumes without
//! taking them over twice.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{BackgroundRun, assert_success, number, output, servo, trials};
use serde_json::Value;

const EARLIER: &str = r#"
name: study
optimizer:
  trials: 8
  seed: 3
  objective:
    minimize: main.cpu * 2 + main.memory
  constraints:
    - time_waited < 10s
  control: { duration: 10ms }
wait:
  measure_enabled: true
  components:
    main:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 2 }
        memory: { type: memory, min: 0.5, max: 8, step: 0.5, value: 4 }
        mode: { type: enum, values: [a, b, c], value: a }
"#;

/// The earlier study's servo with its space changed: `memory` narrowed to 4 GiB, `mode` pinned
/// at `a` (so no longer searched), `threads` added; and a new objective.
fn changed(config: &Path, trials: u32, duration: &str) {
    let text = EARLIER
        .replace("max: 8,", "max: 4,")
        .replace(
            "value: a }",
            "value: a, pinned: true }\n        threads: { type: int, min: 1, max: 8, value: 2 }",
        )
        .replace(
            "main.cpu * 2 + main.memory",
            "main.cpu * 3 + main.memory + main.threads",
        )
        .replace("trials: 8", &format!("trials: {trials}"))
        .replace("duration: 10ms", &format!("duration: {duration}"));
    std::fs::write(config, text).expect("write the changed config");
}

/// A directory whose journal holds the earlier study, run to its end.
fn earlier_study() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(&config, EARLIER).expect("write config");
    assert_success(&output(&config, &["run"]));
    (dir, config)
}

/// `servo ARGS` at info level, succeeding; (stdout, stderr).
fn run_logged(config: &Path, args: &[&str]) -> (Vec<u8>, String) {
    let out = servo()
        .env("SERVO_LOG_LEVEL", "info")
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("runs");
    assert_success(&out);
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Why each earlier trial does not fit the changed space (`None`: it fits), by the documented
/// rules: the new space's settings first (`memory` at most 4), then the settings it lost (`mode`
/// must be `a`, what the application runs now).
fn misfit(trial: &Value) -> Option<&'static str> {
    if trial["state"] != "complete" {
        return Some("failed");
    }
    if number(&trial["config"]["main.memory"]) > 4.0 {
        return Some("`main.memory` outside its new range");
    }
    if trial["config"]["main.mode"] != "a" {
        return Some("`main.mode` not at its current value a");
    }
    None
}

#[test]
fn a_new_study_takes_over_exactly_the_earlier_trials_that_fit_and_rescores_them() {
    let (_dir, config) = earlier_study();
    let earlier = trials(&config);
    assert_eq!(earlier.len(), 8);
    changed(&config, 4, "10ms");
    let (stdout, stderr) = run_logged(&config, &["run", "--new-study", "-o", "json"]);

    let fitting: Vec<&Value> = earlier.iter().filter(|t| misfit(t).is_none()).collect();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in earlier.iter().filter_map(misfit) {
        *reasons.entry(reason).or_default() += 1;
    }
    // The change must keep some trials out, or this test would prove nothing about fitting.
    assert!(!reasons.is_empty() && fitting.len() >= 2, "{earlier:#?}");
    let mut ranked: Vec<(&str, usize)> = reasons.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let expected = format!(
        "reused {} of 8 earlier trials (study 1) ({} did not fit the new space: {})",
        fitting.len(),
        8 - fitting.len(),
        ranked
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(stderr.contains(&expected), "{expected}\n{stderr}");

    let now = trials(&config);
    let reused: Vec<&Value> = now.iter().filter(|t| t.get("reused").is_some()).collect();
    let own: Vec<&Value> = now.iter().filter(|t| t.get("reused").is_none()).collect();
    assert_eq!(reused.len(), fitting.len(), "{now:#?}");
    let k = fitting.len() as i64;
    for (i, (t, was)) in reused.iter().zip(&fitting).enumerate() {
        // Numbered before 0, in the order they were measured, naming where they came from.
        assert_eq!(t["number"], i as i64 - k, "{t:#}");
        assert_eq!(t["reused"]["study"], 1, "{t:#}");
        assert_eq!(t["reused"]["trial"], was["number"], "{t:#}");
        assert_eq!(t["state"], "complete");
        let config = t["config"].as_object().expect("config");
        // The new space's settings only; `threads` at the application's current value.
        let mut names: Vec<&String> = config.keys().collect();
        names.sort();
        assert_eq!(names, ["main.cpu", "main.memory", "main.threads"], "{t:#}");
        assert_eq!(config["main.threads"], 2);
        assert_eq!(config["main.cpu"], was["config"]["main.cpu"]);
        assert_eq!(config["main.memory"], was["config"]["main.memory"]);
        // Scored again by the new objective, not copied.
        let cpu = number(&config["main.cpu"]);
        let memory = number(&config["main.memory"]);
        let objective = number(&t["objective"]);
        assert!(
            (objective - (cpu * 3.0 + memory + 2.0)).abs() < 1e-9,
            "{t:#}"
        );
        assert!((number(&was["objective"]) - (cpu * 2.0 + memory)).abs() < 1e-9);
        assert_eq!(t["readings"], was["readings"]);
        assert_eq!(t["feasible"], true);
    }
    // The study still measures its own baseline first, and runs `trials` trials of its own.
    assert_eq!(own.len(), 4, "{now:#?}");
    assert_eq!(own[0]["number"], 0);
    assert_eq!(
        common::configuration(own[0]),
        BTreeMap::from([
            ("main.cpu".to_string(), 2.0),
            ("main.memory".to_string(), 4.0),
            ("main.threads".to_string(), 2.0)
        ])
    );
    assert!(own.iter().all(|t| t["state"] == "complete"));

    // The table marks them too; the best reported is one of the study's own trials.
    let table = output(&config, &["trials"]);
    assert_success(&table);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(
        text.matches("reused (study 1, trial ").count(),
        fitting.len(),
        "{text}"
    );
    let summary: Value = serde_json::from_slice(&stdout).expect("json");
    // The report draws what this study measured.
    let report = config.parent().expect("dir").join("report.html");
    let out = servo()
        .args(["report", "--output"])
        .arg(&report)
        .arg("-c")
        .arg(&config)
        .output()
        .expect("runs");
    assert_success(&out);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("(4 trials)"), "{said}");
    let data = common::report_data(&std::fs::read_to_string(&report).expect("report"));
    assert_eq!(data["counts"]["complete"], 4, "{}", data["counts"]);
    assert!(
        summary["best"]["number"].as_i64().is_some_and(|n| n >= 0),
        "{summary:#}"
    );
}

#[test]
fn a_warm_start_suggests_differently_from_a_cold_one_and_can_be_declined() {
    let first_suggestion = |warm: bool| {
        let (_dir, config) = earlier_study();
        changed(&config, 3, "10ms");
        let args: &[&str] = if warm {
            &["run", "--new-study"]
        } else {
            &["run", "--new-study", "--no-warm-start"]
        };
        let (_, stderr) = run_logged(&config, args);
        assert_eq!(stderr.contains("earlier trials"), warm, "{stderr}");
        let now = trials(&config);
        assert_eq!(
            now.iter().any(|t| t.get("reused").is_some()),
            warm,
            "{now:#?}"
        );
        let suggested = now
            .iter()
            .find(|t| t["number"] == 1)
            .unwrap_or_else(|| panic!("trial 1 in {now:#?}"));
        common::configuration(suggested)
    };
    let (warm, cold) = (first_suggestion(true), first_suggestion(false));
    assert_ne!(
        warm, cold,
        "the reused trials must change what the optimizer tries first"
    );

    // Declining needs a new study to decline it for.
    let (_dir, config) = earlier_study();
    let out = output(&config, &["run", "--no-warm-start"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_warm_started_study_killed_mid_trial_resumes_without_taking_the_trials_over_twice() {
    let (_dir, config) = earlier_study();
    changed(&config, 6, "400ms");
    let mut run = BackgroundRun::start(&config, &["--new-study"]);
    let own_complete = |trials: &[Value]| {
        trials
            .iter()
            .filter(|t| t.get("reused").is_none() && t["state"] == "complete")
            .count()
    };
    // The new study (the one holding reused trials), two of its own trials done.
    let before = run.wait_for("two trials never completed", |t| {
        t.iter().any(|t| t.get("reused").is_some()) && own_complete(t) >= 2
    });
    run.kill();
    let reused = |trials: &[Value]| -> Vec<Value> {
        trials
            .iter()
            .filter(|t| t.get("reused").is_some())
            .cloned()
            .collect()
    };
    let taken_over = reused(&before);
    assert!(!taken_over.is_empty());

    let (_, stderr) = run_logged(&config, &["run"]);
    assert!(!stderr.contains("earlier trials"), "{stderr}");
    let after = trials(&config);
    assert_eq!(reused(&after), taken_over, "the same trials, once");
    assert_eq!(own_complete(&after), 6, "{after:#?}");
}

/// A new study with two objectives takes over the earlier single-objective trials with both
/// objectives computed from their readings, and its Pareto front holds only its own trials.
#[test]
fn a_two_objective_study_reuses_earlier_trials_scored_for_each_objective() {
    let (_dir, config) = earlier_study();
    let text = std::fs::read_to_string(&config)
        .expect("read")
        .replace(
            "minimize: main.cpu * 2 + main.memory",
            "minimize: [main.cpu * 2 + main.memory, main.memory]",
        )
        // The baseline alone: the earlier search found trials better on both objectives, so a
        // front that took reused trials in would differ from the one of its own trials.
        .replace("trials: 8", "trials: 1");
    std::fs::write(&config, text).expect("write");
    let (_, stderr) = run_logged(&config, &["run", "--new-study"]);
    assert!(stderr.contains("reused "), "{stderr}");

    let now = trials(&config);
    let reused: Vec<&Value> = now.iter().filter(|t| t.get("reused").is_some()).collect();
    assert!(!reused.is_empty(), "{now:#?}");
    for t in &reused {
        let cpu = number(&t["config"]["main.cpu"]);
        let memory = number(&t["config"]["main.memory"]);
        let values = t["objectives"].as_array().expect("both objectives");
        assert_eq!(values.len(), 2, "{t:#}");
        assert!(
            (number(&values[0]) - (cpu * 2.0 + memory)).abs() < 1e-9,
            "{t:#}"
        );
        assert!((number(&values[1]) - memory).abs() < 1e-9, "{t:#}");
    }
    let front: Value = {
        let out = output(&config, &["trials", "--pareto", "-o", "json"]);
        assert_success(&out);
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let listed: Vec<i64> = front["trials"]
        .as_array()
        .unwrap_or_else(|| panic!("a front: {front:#}"))
        .iter()
        .map(|p| p["number"].as_i64().expect("a trial number"))
        .collect();
    // The front is made of this study's feasible trials that none of them dominates.
    let own: Vec<(i64, Vec<f64>)> = now
        .iter()
        .filter(|t| t.get("reused").is_none() && t["state"] == "complete" && t["feasible"] == true)
        .map(|t| {
            let values = t["objectives"].as_array().expect("objectives");
            (
                t["number"].as_i64().expect("number"),
                values.iter().map(number).collect(),
            )
        })
        .collect();
    let dominates = |a: &[f64], b: &[f64]| {
        a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
    };
    let expected: Vec<i64> = own
        .iter()
        .filter(|(_, p)| !own.iter().any(|(_, q)| dominates(q, p)))
        .map(|(n, _)| *n)
        .collect();
    assert!(!expected.is_empty(), "{now:#?}");
    assert_eq!(listed, expected, "{front:#}");
}
