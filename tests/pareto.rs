//! Several objectives through the real binary: a two-objective study on the demo app runs end to
//! end and resumes, journals both objectives, `servo trials --pareto` prints a front whose points
//! are truly non-dominated, the knee is applied on finish and the report carries the front; a
//! study killed mid-trial resumes; and the config errors of a list of objectives exit 2.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{BackgroundRun, assert_success, count, number, output};
use serde_json::Value;

/// Cost: what the configuration reserves (a setting-only expression, so no unit).
const COST: &str = "demo.workers + demo.cache_mb / 64";

/// The demo app under `process`, loaded by `vegeta`, with two objectives.
fn demo_study(dir: &Path, port: u16, trials: u32) -> PathBuf {
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"name: pareto
optimizer:
  trials: {trials}
  seed: 5
  objective:
    minimize: [{COST}, latency_p99]
  constraints:
    - error_rate <= 5%
  control: {{ warmup: 1s, duration: 3s }}
  store: study.db
{demo}"#,
            demo = common::searched_demo_app(port)
        ),
    )
    .expect("write the config");
    config
}

fn json(config: &Path, args: &[&str]) -> Value {
    let out = output(config, args);
    assert_success(&out);
    serde_json::from_slice(&out.stdout).expect("json")
}

fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// Checks the front `servo trials --pareto -o json` printed against every trial of
/// `servo trials -o json` (both objectives minimized): the front is exactly the feasible trials
/// no feasible trial dominates, and the selected one is its knee, worked out here from the
/// definition (each objective rescaled over the front, smallest sum, earlier trial on a tie).
/// Returns the selected trial's number.
fn check_front(trials: &[Value], front: &Value) -> i64 {
    let feasible: Vec<(i64, Vec<f64>)> = trials
        .iter()
        .filter(|t| t["state"] == "complete" && t["feasible"] == true)
        .map(|t| {
            let values: Vec<f64> = t["objectives"]
                .as_array()
                .expect("objectives")
                .iter()
                .map(number)
                .collect();
            (t["number"].as_i64().expect("number"), values)
        })
        .collect();
    assert!(!feasible.is_empty(), "some trial met the SLO: {trials:#?}");
    let expected: Vec<i64> = feasible
        .iter()
        .filter(|(_, p)| !feasible.iter().any(|(_, q)| dominates(q, p)))
        .map(|(n, _)| *n)
        .collect();
    let listed: Vec<i64> = front["trials"]
        .as_array()
        .expect("front trials")
        .iter()
        .map(|t| t["number"].as_i64().expect("number"))
        .collect();
    assert_eq!(listed, expected, "{front:#}");
    // Each point's values are the journaled ones, with the unit of the metric.
    for t in front["trials"].as_array().expect("front") {
        let n = t["number"].as_i64().expect("number");
        let values = &feasible.iter().find(|(m, _)| *m == n).expect("feasible").1;
        let objectives = t["objectives"].as_array().expect("objectives");
        assert_eq!(objectives[0]["expression"], COST);
        assert_eq!(objectives[0]["unit"], "");
        assert_eq!(objectives[1]["expression"], "latency_p99");
        assert!(
            !objectives[1]["unit"].as_str().expect("unit").is_empty(),
            "latency has a unit: {t:#}"
        );
        for (o, v) in objectives.iter().zip(values) {
            assert!((number(&o["value"]) - v).abs() < 1e-9, "{t:#}");
        }
    }
    let points: Vec<&Vec<f64>> = expected
        .iter()
        .map(|n| &feasible.iter().find(|(m, _)| m == n).expect("feasible").1)
        .collect();
    let range = |j: usize| {
        let low = points.iter().map(|p| p[j]).fold(f64::INFINITY, f64::min);
        let high = points
            .iter()
            .map(|p| p[j])
            .fold(f64::NEG_INFINITY, f64::max);
        (low, if high > low { high - low } else { 1.0 })
    };
    let (r0, r1) = (range(0), range(1));
    let score = |p: &Vec<f64>| (p[0] - r0.0) / r0.1 + (p[1] - r1.0) / r1.1;
    let knee = (0..points.len())
        .min_by(|&i, &j| {
            score(points[i])
                .total_cmp(&score(points[j]))
                .then(i.cmp(&j))
        })
        .map(|i| expected[i])
        .expect("a knee");
    assert_eq!(front["selected"].as_i64(), Some(knee), "{front:#}");
    assert_eq!(front["rule"], "knee");
    let marked: Vec<&Value> = front["trials"]
        .as_array()
        .expect("front")
        .iter()
        .filter(|t| t["selected"] == true)
        .collect();
    assert_eq!(marked.len(), 1, "{front:#}");
    knee
}

#[test]
fn a_two_objective_study_on_the_demo_app_finds_a_front_and_finishes_on_its_knee() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = demo_study(dir.path(), common::free_port(), 4);
    assert_success(&output(&config, &["run"]));
    // Resumed for two more trials: the weights and history are the journal's.
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, text.replace("trials: 4", "trials: 6")).expect("write");
    let summary = json(&config, &["run", "-o", "json"]);

    let trials = json(&config, &["trials", "-o", "json"]);
    let trials = trials.as_array().expect("trials");
    assert_eq!(trials.len(), 6, "{trials:#?}");
    for t in trials {
        assert_eq!(t["state"], "complete", "{t:#}");
        // Both objectives journaled: the cost from the settings, the latency as read.
        let objectives = t["objectives"].as_array().expect("objectives");
        assert_eq!(objectives.len(), 2, "{t:#}");
        let cost =
            number(&t["config"]["demo.workers"]) + number(&t["config"]["demo.cache_mb"]) / 64.0;
        assert!((number(&objectives[0]) - cost).abs() < 1e-9, "{t:#}");
        let latency = number(&t["readings"]["latency_p99"]["value"]);
        assert!((number(&objectives[1]) - latency).abs() < 1e-9, "{t:#}");
        assert_eq!(t["objective"], objectives[0], "the first is the objective");
    }

    let front = json(&config, &["trials", "--pareto", "-o", "json"]);
    let knee = check_front(trials, &front);
    assert_eq!(front["objectives"][1]["expression"], "latency_p99");

    // On finish, the application was put on the knee.
    assert_eq!(
        summary["best"]["number"].as_i64(),
        Some(knee),
        "{summary:#}"
    );
    assert_eq!(
        summary["left_on"],
        format!("the best configuration (trial {knee})"),
        "{summary:#}"
    );
    assert_eq!(summary["front"]["selected"].as_i64(), Some(knee));

    // The tables: one column per objective, the front marked.
    let table = output(&config, &["trials", "--pareto"]);
    assert_success(&table);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("latency_p99 (") && text.contains("best (knee)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("best: trial {knee} (knee)")),
        "{text}"
    );
    let all = output(&config, &["trials"]);
    assert_success(&all);
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(
        text.contains(COST) && text.contains("latency_p99 ("),
        "{text}"
    );

    // The report carries the front and the selected point for its scatter (tests/ui.rs draws it).
    let report = dir.path().join("report.html");
    assert_success(&output(
        &config,
        &["report", "--output", report.to_str().expect("utf-8")],
    ));
    let data = common::report_data(&std::fs::read_to_string(&report).expect("report"));
    assert_eq!(data["pareto"]["selected"].as_i64(), Some(knee), "{data:#}");
    let on_front: Vec<i64> = data["pareto"]["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter(|p| p["front"] == true)
        .map(|p| p["trial"].as_i64().expect("trial"))
        .collect();
    let listed: Vec<i64> = front["trials"]
        .as_array()
        .expect("front")
        .iter()
        .map(|t| t["number"].as_i64().expect("number"))
        .collect();
    assert_eq!(on_front, listed);
}

/// A fast study on the `wait` connector: cost against memory left unreserved, in conflict.
fn wait_study(dir: &Path, trials: u32, duration: &str, extra: &str) -> PathBuf {
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"name: study
optimizer:
  trials: {trials}
  seed: 4
  objective:
    minimize: [main.cpu * 2 + main.memory, 9 - main.memory + main.cpu / 4]
{extra}  constraints: [time_waited < 10s]
  control: {{ duration: {duration} }}
wait:
  measure_enabled: true
  components:
    main:
      settings:
        cpu: {{ type: cpu, min: 0.25, max: 4, step: 0.25, value: 2 }}
        memory: {{ type: memory, min: 0.5, max: 8, step: 0.5, value: 4 }}
"#
        ),
    )
    .expect("write the config");
    config
}

#[test]
fn a_two_objective_study_killed_mid_trial_resumes_with_both_objectives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = wait_study(dir.path(), 8, "400ms", "");
    let mut run = BackgroundRun::start(&config, &[]);
    run.wait_for("3 trials never completed", |t| count(t, "complete") >= 3);
    std::thread::sleep(Duration::from_millis(150));
    run.kill();

    assert_success(&output(&config, &["run"]));
    let trials = json(&config, &["trials", "-o", "json"]);
    let trials = trials.as_array().expect("trials");
    let finished: Vec<&Value> = trials.iter().filter(|t| t["state"] == "complete").collect();
    assert_eq!(finished.len(), 8, "{trials:#?}");
    assert_eq!(count(trials, "interrupted"), 1);
    for t in &finished {
        let c = common::configuration(t);
        let expected = [
            c["main.cpu"] * 2.0 + c["main.memory"],
            9.0 - c["main.memory"] + c["main.cpu"] / 4.0,
        ];
        let values: Vec<f64> = t["objectives"]
            .as_array()
            .expect("objectives")
            .iter()
            .map(number)
            .collect();
        assert_eq!(values.len(), 2, "{t:#}");
        for (v, e) in values.iter().zip(expected) {
            assert!((v - e).abs() < 1e-9, "{t:#}");
        }
    }
    // No configuration was measured twice: the resumed search went on from the journal.
    let mut configs: Vec<String> = finished.iter().map(|t| t["config"].to_string()).collect();
    configs.sort();
    configs.dedup();
    assert_eq!(configs.len(), 8);
    let front = json(&config, &["trials", "--pareto", "-o", "json"]);
    assert!(!front["trials"].as_array().expect("front").is_empty());
    for p in front["trials"].as_array().expect("front") {
        let mine: Vec<f64> = p["objectives"]
            .as_array()
            .expect("objectives")
            .iter()
            .map(|o| number(&o["value"]))
            .collect();
        for t in &finished {
            let theirs: Vec<f64> = t["objectives"]
                .as_array()
                .expect("objectives")
                .iter()
                .map(number)
                .collect();
            assert!(!dominates(&theirs, &mine), "{p:#} is dominated by {t:#}");
        }
    }
}

#[test]
fn weights_select_another_point_and_the_random_algorithm_searches_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = wait_study(
        dir.path(),
        8,
        "50ms",
        "    select: {weights: {\"9 - main.memory + main.cpu / 4\": 1}}\n  algorithm: random\n",
    );
    let summary = json(&config, &["run", "-o", "json"]);
    let front = json(&config, &["trials", "--pareto", "-o", "json"]);
    assert_eq!(front["rule"], "weights 9 - main.memory + main.cpu / 4 = 1");
    // All the weight on the second objective: the front's best on it.
    let best = front["trials"]
        .as_array()
        .expect("front")
        .iter()
        .min_by(|a, b| {
            number(&a["objectives"][1]["value"]).total_cmp(&number(&b["objectives"][1]["value"]))
        })
        .expect("a front");
    assert_eq!(front["selected"], best["number"], "{front:#}");
    assert_eq!(summary["best"]["number"], best["number"]);
    let trials = json(&config, &["trials", "-o", "json"]);
    assert_eq!(trials.as_array().map(Vec::len), Some(8));
}

#[test]
fn a_bad_list_of_objectives_is_a_config_error_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, objective: &str| {
        let config = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                r#"name: study
optimizer:
  trials: 3
  objective: {objective}
  constraints: [time_waited < 10s]
  control: {{ duration: 50ms }}
wait:
  measure_enabled: true
  components:
    main:
      settings:
        cpu: {{ type: cpu, min: 0.25, max: 4, step: 0.25, value: 2 }}
"#
            ),
        )
        .expect("write");
        config
    };
    let refused = |config: &Path, command: &str, wanted: &[&str]| {
        let out = output(config, &[command]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        for w in wanted {
            assert!(stderr.contains(w), "{command}: no `{w}` in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    // A list of one: with the line, the key path and what to write instead.
    let one = write("one", "{minimize: [main.cpu]}");
    refused(
        &one,
        "validate",
        &[
            "one.yaml:4",
            "optimizer.objective.minimize",
            "too few items",
            "for one, write it alone",
        ],
    );
    // An unknown metric in one item: named by its place, with a suggestion.
    let unknown = write("unknown", "{minimize: [main.cpu, time_waitd]}");
    assert_success(&output(&unknown, &["validate"]));
    refused(
        &unknown,
        "run",
        &[
            "optimizer.objective.minimize[1]",
            "no metric or setting is named `time_waitd`",
            "did you mean `time_waited`?",
        ],
    );
    // Weights must name the objectives.
    let weights = write(
        "weights",
        "{minimize: [main.cpu, time_waited], select: {weights: {time_waitd: 1}}}",
    );
    refused(
        &weights,
        "validate",
        &["optimizer.objective", "did you mean `time_waited`?"],
    );
    // `select` needs a front.
    let lone = write("lone", "{minimize: main.cpu, select: knee}");
    refused(&lone, "validate", &["two or more objectives"]);
    // Nothing ran: no study was journaled.
    let out = output(&unknown, &["trials"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no study"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A study with one objective has a best, not a front.
    let single = write("single", "{minimize: main.cpu}");
    assert_success(&output(&single, &["run"]));
    let out = output(&single, &["trials", "--pareto"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has one objective") && stderr.contains("minimize: [cost, latency_p99]"),
        "{stderr}"
    );

    // The optimizer server speaks the ServoX protocol, one score per measurement: it refuses a
    // list when the application is created.
    let settings = dir.path().join("app.yaml");
    std::fs::write(
        &settings,
        "objective: {minimize: [cost, latency_p99]}\ntrials: 5\n",
    )
    .expect("write");
    let out = common::servo()
        .args(["optimizer", "app", "create", "example.com/web", "--store"])
        .arg(dir.path().join("server.db"))
        .arg("--token-file")
        .arg(dir.path().join("token"))
        .arg("--settings")
        .arg(&settings)
        .output()
        .expect("servo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("one objective per application") && stderr.contains("servo run"),
        "{stderr}"
    );
    // A servo on a remote optimizer has no objective of its own to list.
    let remote = dir.path().join("remote.yaml");
    std::fs::write(
        &remote,
        "optimizer:\n  id: example.com/web\n  token: t\n  objective: {minimize: [cost, latency_p99]}\nwait: {}\n",
    )
    .expect("write");
    refused(&remote, "validate", &["unknown field `objective`"]);
}
