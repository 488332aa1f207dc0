//! SIGTERM and SIGINT stop `servo run` cleanly wherever they land (DESIGN §9: both exit 130).
//!
//! With the embedded optimizer, the application is a `command` connector whose hooks are `sh`
//! scripts that log every invocation (an adjust logs its stdin, i.e. the settings it was asked to
//! apply) and turn slow on a chosen invocation: they start a `sleep 30`, record its pid and their
//! own (which is also their process group's id), and wait. The test waits for that record, signals
//! servo, and asserts that servo
//!
//! - exits 130 within [`STOP_BOUND`],
//! - leaves no process of the hook's group behind (no orphan `sleep`),
//! - journals every earlier trial `complete` and the interrupted one `interrupted`,
//! - puts the application back on a known configuration: the hook's last adjustment is the best
//!   trial's configuration (or the baseline's), and the summary says so.
//!
//! With a remote optimizer, a fake answers `WHATS_NEXT` with `SLEEP 60`; the signal must end the
//! sleep, servo must say `GOODBYE` with the signal's name and exit 130 within the same bound.
//!
//! A signal (SIGKILL too) during the baseline, then a restart: the resumed study measures the
//! baseline once more, then explores; it loses nothing, repeats nothing, and knows its baseline.
//!
//! Each scenario is one function run for every signal. SIGKILL mid-trial followed by a restart is
//! `tests/run.rs`' `sigkill_mid_trial_then_restart_loses_no_completed_trial`; the hook dying with a
//! killed servo is `tests/command.rs`' `a_hook_dies_with_a_servo_killed_without_warning`. What a
//! hook started does *not* die with a SIGKILLed servo: `PR_SET_PDEATHSIG` is not inherited across
//! fork, and servo is given no chance to kill the hook's process group. That test only checks the
//! hook itself and cleans up after it.
//!
//! Hooks are run as `[sh, hook.sh]` rather than executed directly, for the "text file busy" reason
//! given in `tests/command.rs`. Process liveness is read from /proc, hence Linux only.
#![cfg(target_os = "linux")]

#[path = "common/background.rs"]
mod background;
mod common;
#[path = "common/fake_optimizer.rs"]
mod fake_optimizer;
#[path = "common/live.rs"]
mod live;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fake_optimizer::{FakeOptimizer, Reply, ok, param};
use live::{Servo, assert_gone, assert_group_gone};
use serde_json::{Value, json};

/// How long servo may take from the signal to its exit. Stopping is a few hundred milliseconds of
/// work (kill the hook's group, journal the trial, one fast adjust back, close the journal); the
/// margin is for a loaded CI machine.
const STOP_BOUND: Duration = Duration::from_secs(15);

/// How long the test waits for a hook to reach its slow part.
const PATIENCE: Duration = Duration::from_secs(60);

/// The signals the tests send: SIGTERM and SIGINT must stop servo gracefully; SIGKILL cannot be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    Term,
    Int,
    Kill,
}

impl Signal {
    /// The name `kill -NAME` takes.
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Int => "INT",
            Signal::Kill => "KILL",
        }
    }

    /// Sends it once servo handles it (a graceful signal sent earlier would kill servo outright).
    fn send(self, servo: &Servo) {
        match self {
            Signal::Term => servo.wait_until_it_catches(15),
            Signal::Int => servo.wait_until_it_catches(2),
            Signal::Kill => {}
        }
        servo.signal(self.name());
    }
}

// ---------------------------------------------------------------------------------------------
// The embedded optimizer, with `command` hooks.

/// Where the study is interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Adjust,
    Measure,
}

/// The invocation (1-based) of the hook that turns slow. Each trial runs each hook once, so a hook's
/// third invocation belongs to trial 2: trials 0 (the baseline) and 1 complete first.
const SLOW_INVOCATION: usize = 3;

/// The shared body of both hooks: log the invocation, and on invocation `$SLOW` start a `sleep`,
/// record its pid then the hook's (the marker the test waits for, written last and atomically), and
/// wait for it. `$1` names the log.
const HOOK: &str = r#"set -eu
log="$1"
printf '%s\n' "$(cat)" >> "$log.jsonl"
if [ "$(wc -l < "$log.jsonl")" -eq "$SLOW" ]; then
  sleep 30 &
  echo $! > "$log-sleep.pid"
  echo $$ > "$log-hook.pid.tmp"
  mv "$log-hook.pid.tmp" "$log-hook.pid"
  wait
fi
"#;

/// A study of 6 trials over two settings, whose measure hook reports a fixed latency: the objective
/// depends on the configuration only, so which trial is best is known from the journal.
fn embedded_config(dir: &Path, phase: Phase, slow: usize) -> PathBuf {
    let (slow_adjust, slow_measure) = match phase {
        Phase::Adjust => (slow, 0),
        Phase::Measure => (0, slow),
    };
    std::fs::write(dir.join("adjust.sh"), format!("SLOW={slow_adjust}\n{HOOK}"))
        .expect("write adjust.sh");
    std::fs::write(
        dir.join("measure.sh"),
        format!(
            "SLOW={slow_measure}\n{HOOK}echo '{{\"metrics\": {{\"latency\": {{\"value\": 12, \"unit\": \"ms\"}}}}}}'\n"
        ),
    )
    .expect("write measure.sh");
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
name: signals
optimizer:
  trials: 6
  seed: 11
  objective:
    minimize: main.cpu * 2 + main.memory + latency / 1000
  control: {{ duration: 10ms }}
command:
{components}  metrics:
    - {{ name: latency, unit: ms }}
  adjust: [sh, adjust.sh, adjust]
  measure: [sh, measure.sh, measure]
  timeout: 5m
"#,
            components = common::MAIN_CPU_MEMORY
        ),
    )
    .expect("write the config");
    config
}

/// The journal as `servo trials -o json` shows it.
fn journal(config: &Path) -> Vec<Value> {
    let (code, stdout, stderr) = common::run(config, &["trials", "-o", "json"]);
    assert_eq!(code, 0, "servo trials: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("trials as JSON ({e}): {stdout}"))
}

/// The lines a hook logged (`adjust.jsonl`: the JSON each adjust read on stdin).
fn logged(dir: &Path, log: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(format!("{log}.jsonl")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{log} logged {l:?}: {e}")))
        .collect()
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("{} holds a pid", path.display()))
}

/// Waits (bounded) until the slow hook has recorded its pids; returns (hook, its sleep).
fn wait_for_slow_hook(dir: &Path, log: &str, servo: &mut Servo) -> (u32, u32) {
    let marker = dir.join(format!("{log}-hook.pid"));
    let deadline = Instant::now() + PATIENCE;
    while !marker.exists() {
        assert!(
            servo.running(),
            "servo ended before the {log} hook turned slow"
        );
        assert!(
            Instant::now() < deadline,
            "the {log} hook never turned slow"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (
        read_pid(&marker),
        read_pid(&dir.join(format!("{log}-sleep.pid"))),
    )
}

/// An adjustment as a hook received it, as `component.setting → value`.
fn adjusted(input: &Value) -> BTreeMap<String, f64> {
    input["adjustments"]
        .as_array()
        .expect("adjustments on stdin")
        .iter()
        .map(|a| {
            (
                format!(
                    "{}.{}",
                    a["component"].as_str().expect("component"),
                    a["setting"].as_str().expect("setting")
                ),
                a["value"].as_f64().expect("a numeric value"),
            )
        })
        .collect()
}

/// Signals `servo run` while trial 2 is in `phase`, and checks everything a graceful stop promises.
fn interrupt_a_trial(phase: Phase, signal: Signal) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = embedded_config(dir.path(), phase, SLOW_INVOCATION);
    let mut servo = Servo::start(&config, &["run", "-o", "json"]);
    let log = match phase {
        Phase::Adjust => "adjust",
        Phase::Measure => "measure",
    };
    let (hook, sleep) = wait_for_slow_hook(dir.path(), log, &mut servo);
    signal.send(&servo);
    let ended = servo.finish(STOP_BOUND);
    eprintln!(
        "SIG{} during {log}: servo exited {:?} {:?} after the signal",
        signal.name(),
        ended.code,
        ended.took
    );
    assert_eq!(ended.code, Some(130), "stderr:\n{}", ended.stderr);
    assert!(
        !ended.stderr.contains("panicked"),
        "stderr:\n{}",
        ended.stderr
    );

    // The hook and everything it started are gone (the group's id is the hook's pid).
    assert_gone(hook, "the slow hook");
    assert_gone(sleep, "the slow hook's `sleep`");
    assert_group_gone(hook, "the slow hook's process group");

    // Earlier trials complete, this one interrupted, nothing left running.
    let trials = journal(&config);
    let states: Vec<&str> = trials
        .iter()
        .map(|t| t["state"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        states,
        ["complete", "complete", "interrupted"],
        "the journal: {trials:#?}"
    );
    let numbers: Vec<i64> = trials.iter().filter_map(|t| t["number"].as_i64()).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert_eq!(
        trials[2]["error"], "interrupted by a signal",
        "{:#}",
        trials[2]
    );

    // The application is back on a known configuration: the best complete trial's (none misses
    // an SLO, there are none), applied by one more adjust after the interrupted trial's.
    let best = common::best_complete(&trials);
    let adjusts = logged(dir.path(), "adjust");
    assert_eq!(
        adjusts.len(),
        4,
        "one adjust per trial, then one back to the best: {adjusts:#?}"
    );
    assert_eq!(
        adjusted(&adjusts[3]),
        common::configuration(best),
        "the last adjustment restores the best trial ({:#})",
        best
    );
    assert_eq!(
        adjusted(&adjusts[2]),
        common::configuration(&trials[2]),
        "the interrupted trial's adjustment is the one journaled"
    );
    if phase == Phase::Measure {
        assert_eq!(logged(dir.path(), "measure").len(), 3);
    }

    // The summary on stdout tells the same story.
    let summary: Value = serde_json::from_str(&ended.stdout)
        .unwrap_or_else(|e| panic!("a JSON summary ({e}): {}", ended.stdout));
    assert_eq!(summary["interrupted"], true);
    let left_on = summary["left_on"].as_str().unwrap_or_default();
    assert!(
        left_on.contains(&format!("best configuration (trial {})", best["number"])),
        "left on: {left_on}"
    );
}

#[test]
fn sigterm_during_adjust_kills_the_hook_journals_the_trial_and_restores_the_best() {
    interrupt_a_trial(Phase::Adjust, Signal::Term);
}

#[test]
fn sigint_during_adjust_kills_the_hook_journals_the_trial_and_restores_the_best() {
    interrupt_a_trial(Phase::Adjust, Signal::Int);
}

#[test]
fn sigterm_during_measure_kills_the_hook_journals_the_trial_and_restores_the_best() {
    interrupt_a_trial(Phase::Measure, Signal::Term);
}

#[test]
fn sigint_during_measure_kills_the_hook_journals_the_trial_and_restores_the_best() {
    interrupt_a_trial(Phase::Measure, Signal::Int);
}

/// Stops `servo run` with `signal` during the baseline's adjust (trial 0), then runs it again: the
/// resumed study must run the baseline once, not lose or repeat anything, and still know which
/// trial is the baseline.
fn interrupt_the_baseline_then_resume(signal: Signal) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = embedded_config(dir.path(), Phase::Adjust, 1);
    let mut servo = Servo::start(&config, &["run", "-o", "json"]);
    let (hook, sleep) = wait_for_slow_hook(dir.path(), "adjust", &mut servo);
    signal.send(&servo);
    let ended = servo.finish(STOP_BOUND);
    eprintln!(
        "SIG{} during the baseline: servo exited {:?} {:?} after the signal",
        signal.name(),
        ended.code,
        ended.took
    );
    let expected = if signal == Signal::Kill {
        None
    } else {
        Some(130)
    };
    assert_eq!(ended.code, expected, "stderr:\n{}", ended.stderr);
    if signal == Signal::Kill {
        // servo had no chance to kill the hook's group; PR_SET_PDEATHSIG kills the hook itself.
        // It is not inherited across fork, so what the hook started outlives a killed servo (a
        // known limit, see the module's doc): the test removes it, to leave nothing behind.
        assert_gone(hook, "the slow hook (PR_SET_PDEATHSIG)");
        live::kill_group(hook);
    } else {
        assert_gone(hook, "the slow hook");
        assert_gone(sleep, "the slow hook's `sleep`");
    }
    assert_group_gone(hook, "the slow hook's process group");
    let before = journal(&config);
    assert_eq!(before.len(), 1, "{before:#?}");
    // A killed servo could not journal the end of its trial: the restart marks it interrupted.
    let state = if signal == Signal::Kill {
        "running"
    } else {
        "interrupted"
    };
    assert_eq!(before[0]["state"], state, "{before:#?}");
    let baseline = common::configuration(&before[0]);
    if signal != Signal::Kill {
        // No trial completed: the interrupted baseline's configuration is the one to go back to.
        let adjusts = logged(dir.path(), "adjust");
        assert_eq!(adjusts.len(), 2, "{adjusts:#?}");
        assert_eq!(adjusted(&adjusts[1]), baseline, "restored to the baseline");
    }

    let (code, stdout, stderr) = common::run(&config, &["run", "-o", "json"]);
    assert_eq!(code, 0, "the resumed run: {stderr}");
    let after = journal(&config);
    let states: Vec<&str> = after
        .iter()
        .map(|t| t["state"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        states,
        [
            "interrupted",
            "complete",
            "complete",
            "complete",
            "complete",
            "complete",
            "complete"
        ],
        "the interrupted baseline stays in the journal; `trials` complete after it"
    );
    let configs: Vec<BTreeMap<String, f64>> =
        after[1..].iter().map(common::configuration).collect();
    assert_eq!(
        configs[0], baseline,
        "the resumed study starts with the baseline"
    );
    let distinct: std::collections::BTreeSet<String> =
        configs.iter().map(|c| format!("{c:?}")).collect();
    assert_eq!(
        distinct.len(),
        configs.len(),
        "no configuration is tried twice: {configs:#?}"
    );
    let summary: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("a JSON summary ({e}): {stdout}"));
    assert_eq!(
        summary["baseline"]["number"], 1,
        "the summary knows the baseline: {:#}",
        summary["baseline"]
    );
}

#[test]
fn sigterm_during_the_baseline_then_a_restart_runs_the_baseline_once() {
    interrupt_the_baseline_then_resume(Signal::Term);
}

#[test]
fn sigint_during_the_baseline_then_a_restart_runs_the_baseline_once() {
    interrupt_the_baseline_then_resume(Signal::Int);
}

#[test]
fn sigkill_during_the_baseline_then_a_restart_runs_the_baseline_once() {
    interrupt_the_baseline_then_resume(Signal::Kill);
}

// ---------------------------------------------------------------------------------------------
// A remote optimizer.

/// Signals a servo that a remote optimizer told to `SLEEP` for a minute.
fn interrupt_a_sleep(signal: Signal) {
    let fake = FakeOptimizer::start(vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "SLEEP", "cmd_uid": "s-1", "param": {"duration": 60, "data": {"reason": "signals test"}}}),
            ),
        ),
        ("GOODBYE", ok()),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = fake_optimizer::config(dir.path(), &fake.base_url(), "{}");
    let mut servo = Servo::start(&config, &["run", "-o", "json", "--log-level", "info"]);
    // The fake seeing WHATS_NEXT is not enough: its answer may still be on the way, and a signal
    // then interrupts the request, not the sleep.
    servo.wait_for_log("the optimizer asked to sleep");
    signal.send(&servo);
    let ended = servo.finish(STOP_BOUND);
    eprintln!(
        "SIG{} during SLEEP: servo exited {:?} {:?} after the signal",
        signal.name(),
        ended.code,
        ended.took
    );
    assert_eq!(ended.code, Some(130), "stderr:\n{}", ended.stderr);
    assert_eq!(
        fake.events(),
        ["HELLO", "WHATS_NEXT", "GOODBYE"],
        "stderr:\n{}",
        ended.stderr
    );
    let seen = fake.seen();
    fake_optimizer::assert_transport(&seen);
    let signal_name = format!("SIG{}", signal.name());
    assert_eq!(param(&seen[2]), &json!({ "reason": signal_name }));
    let summary: Value = serde_json::from_str(&ended.stdout)
        .unwrap_or_else(|e| panic!("a JSON summary ({e}): {}", ended.stdout));
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["ended"], signal_name.as_str());
    assert_eq!(summary["slept"], 1);
}

#[test]
fn sigterm_during_a_remote_sleep_says_goodbye_and_exits_130() {
    interrupt_a_sleep(Signal::Term);
}

#[test]
fn sigint_during_a_remote_sleep_says_goodbye_and_exits_130() {
    interrupt_a_sleep(Signal::Int);
}
