//! `optimizer.baseline_every` through the real binary with the `command` connector, under real
//! drift: the measure hook's latency grows by 10 ms at every measurement (a counter file), and the
//! SLO `latency <= baseline.latency + 15ms` allows one measurement's drift. The baseline is measured
//! again after every two trials of the search, journaled as such; each trial is judged against
//! the latest measurement before it, so the first trial after each one meets the SLO and the
//! second does not. A crash during a re-measurement resumes by measuring the baseline again.
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{assert_success, number, output, trials};
use serde_json::Value;

/// Counts measurements in `count`; the measurement numbered `HANG` (from 0) writes `measuring`
/// and hangs, once, for the crash test.
const MEASURE: &str = r#"n=$(cat count 2>/dev/null || echo 0)
echo $((n + 1)) > count
if [ "$n" = "HANG" ]; then : > measuring; exec sleep 30; fi
printf '{"metrics": {"latency": {"value": %d, "unit": "ms"}}}\n' $((100 + 10 * n))
"#;

fn study(dir: &Path, hang: Option<u32>) -> PathBuf {
    let hang = hang.map_or("none".to_string(), |n| n.to_string());
    std::fs::write(dir.join("measure.sh"), MEASURE.replace("HANG", &hang)).expect("write");
    std::fs::write(dir.join("adjust.sh"), "cat > /dev/null\n").expect("write");
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"name: drift
optimizer:
  trials: 7
  seed: 2
  confirm: 0
  baseline_every: 2
  objective:
    minimize: main.cpu * 2 + main.memory
  constraints:
    - latency <= baseline.latency + 15ms
  control: {{ duration: 10ms }}
  store: study.db
command:
{components}  adjust: [sh, adjust.sh]
  measure: [sh, measure.sh]
  metrics:
    - {{ name: latency, unit: ms }}
  timeout: 1m
"#,
            components = common::MAIN_CPU_MEMORY
        ),
    )
    .expect("write the config");
    config
}

/// The trials' numbers whose `key` is `value`.
fn numbers(trials: &[Value], key: &str, value: &str) -> Vec<i64> {
    trials
        .iter()
        .filter(|t| t[key] == value)
        .map(|t| t["number"].as_i64().expect("a number"))
        .collect()
}

/// Every complete trial was judged against `judged[i]` (trial number → the baseline measurement
/// it names), with the limit that measurement's latency makes, and its feasibility follows.
fn assert_judged(trials: &[Value], judged: &[(i64, i64)]) {
    let by_number = |n: i64| {
        trials
            .iter()
            .find(|t| t["number"] == n)
            .unwrap_or_else(|| panic!("trial {n} in {trials:#?}"))
    };
    for &(n, against) in judged {
        let t = by_number(n);
        assert_eq!(t["judged_against"], against, "{t:#}");
        let reference = number(&by_number(against)["readings"]["latency"]["value"]);
        let limit = &t["limits"][0];
        assert!(
            (number(&limit["baseline"]) - reference).abs() < 1e-9,
            "{t:#}"
        );
        assert!(
            (number(&limit["limit"]) - (reference + 15.0)).abs() < 1e-9,
            "{t:#}"
        );
        let latency = number(&t["readings"]["latency"]["value"]);
        assert_eq!(t["feasible"], latency <= reference + 15.0, "{t:#}");
    }
}

#[test]
fn the_baseline_is_measured_again_every_n_trials_and_later_trials_are_judged_against_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = study(dir.path(), None);
    assert_success(&output(&config, &["run"]));
    let list = trials(&config);
    assert_eq!(list.len(), 9, "7 trials and 2 re-measurements: {list:#?}");
    assert!(list.iter().all(|t| t["state"] == "complete"), "{list:#?}");
    assert_eq!(numbers(&list, "role", "baseline"), [3, 6]);
    for n in [3, 6] {
        assert_eq!(
            list[n]["config"], list[0]["config"],
            "the baseline's configuration"
        );
    }
    // The drift is real: each measurement read 10 ms more than the one before.
    for (i, t) in list.iter().enumerate() {
        assert_eq!(
            number(&t["readings"]["latency"]["value"]),
            100.0 + 10.0 * i as f64
        );
    }
    assert_judged(
        &list,
        &[
            (0, 0),
            (1, 0),
            (2, 0),
            (3, 3),
            (4, 3),
            (5, 3),
            (6, 6),
            (7, 6),
            (8, 6),
        ],
    );
    // The limit followed the baseline: one measurement's drift passes, two do not.
    let feasible: Vec<bool> = list.iter().map(|t| t["feasible"] == true).collect();
    assert_eq!(
        feasible,
        [true, true, false, true, true, false, true, true, false]
    );

    let table = output(&config, &["trials"]);
    assert_success(&table);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(text.matches("complete (baseline)").count(), 2, "{text}");
    assert!(
        text.contains(
            "SLO latency <= baseline + 15ms (175 ms) (baseline measured again in trial 6)"
        ),
        "{text}"
    );
}

#[test]
fn a_crash_while_measuring_the_baseline_again_measures_it_again_on_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Measurement 3 is trial 3, the first re-measurement.
    let config = study(dir.path(), Some(3));
    let mut child = common::servo_process("warn")
        .args(["run", "-c"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.path().join("measuring").exists() {
        assert!(Instant::now() < deadline, "the re-measurement never began");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before = trials(&config);
    assert_eq!(before[3]["state"], "running", "{before:#?}");
    assert_eq!(before[3]["role"], "baseline", "{before:#?}");

    assert_success(&output(&config, &["run"]));
    let list = trials(&config);
    assert_eq!(numbers(&list, "state", "interrupted"), [3]);
    assert_eq!(numbers(&list, "role", "baseline"), [3, 4, 7], "{list:#?}");
    // Trials 0-2 as before; the hung measurement (count 3) read nothing, so trial n read
    // measurement n from then on.
    assert_judged(
        &list,
        &[
            (1, 0),
            (2, 0),
            (4, 4),
            (5, 4),
            (6, 4),
            (7, 7),
            (8, 7),
            (9, 7),
        ],
    );
    let own_search = list
        .iter()
        .filter(|t| t.get("role").is_none() && t["state"] == "complete")
        .count();
    assert_eq!(own_search, 7, "`trials` counts the search only: {list:#?}");
}

#[test]
fn the_optimizer_server_refuses_baseline_every() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = dir.path().join("web.yaml");
    std::fs::write(
        &settings,
        "objective: {minimize: cost}\nconstraints: [\"p99 <= 1.1 * baseline.p99\"]\nbaseline_every: 5\n",
    )
    .expect("write");
    let out = common::servo()
        .args(["optimizer", "app", "create", "acme/web", "--settings"])
        .arg(&settings)
        .arg("--store")
        .arg(dir.path().join("optimizer.db"))
        .output()
        .expect("servo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`baseline_every` is not supported by the optimizer server"),
        "{stderr}"
    );
}
