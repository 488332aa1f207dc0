//! The `scripts` connector through the real binary: its shell commands write to a log file in the
//! config's directory, and the tests read the order they ran in, and servo's reports of failures.
//! Whether a process is still running is read from /proc, hence Linux only.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/live.rs"]
mod live;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::run;
use live::{Servo, assert_gone};

/// A temporary directory with `servo.yaml`: a `command` mount whose measure hook logs itself and
/// reports one metric, plus the `scripts` section given.
struct Scene {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn scene(scripts: &str) -> Scene {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let measure = r#"echo measure-hook >> events.log; echo '{"metrics": {"x": {"value": 1}}}'"#;
    let yaml = format!(
        "command:\n  measure: [sh, -c, {measure:?}]\n  metrics: [{{name: x}}]\nscripts:\n{scripts}"
    );
    let config = dir.path().join("servo.yaml");
    std::fs::write(&config, yaml).expect("config written");
    Scene { dir, config }
}

impl Scene {
    /// The pid a script wrote to `name`, once it has.
    fn pid(&self, name: &str) -> u32 {
        let path = self.dir.path().join(name);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
            assert!(Instant::now() < deadline, "the script never wrote {name}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The lines the scripts and the hook wrote, in order.
    fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("events.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

const LOG: &str = r#"echo \"$SERVO_PREPOSITION $SERVO_EVENT $SERVO_MOUNT\" >> events.log"#;

#[test]
fn before_on_and_after_commands_run_in_order_around_the_measurement() {
    let s = scene(&format!(
        "  before:\n    measure: [\"echo first >> events.log\", \"{LOG}\"]\n  on:\n    measure: [\"{LOG}\"]\n  after:\n    measure: [\"{LOG}\"]\n"
    ));
    let (code, stdout, stderr) = run(&s.config, &["measure", "-o", "json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let events = s.events();
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(events[..2], ["first", "before measure scripts"]);
    // The `on` command runs alongside the command mount's measure hook, in either order.
    let mut middle = events[2..4].to_vec();
    middle.sort();
    assert_eq!(middle, ["measure-hook", "on measure scripts"]);
    assert_eq!(events[4], "after measure scripts");
}

#[test]
fn a_failing_before_command_stops_the_event_and_quotes_its_exit_code_and_stderr() {
    let s = scene(&format!(
        "  before:\n    measure: [\"echo cache is cold >&2; exit 3\", \"echo never >> events.log\"]\n  after:\n    measure: [\"{LOG}\"]\n"
    ));
    let (code, stdout, stderr) = run(&s.config, &["measure"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr
            .contains("before-measure script `echo cache is cold >&2; exit 3` exited with code 3"),
        "{stderr}"
    );
    assert!(stderr.contains("| cache is cold"), "{stderr}");
    // Neither the next command, nor the measurement, nor the after hook ran.
    assert!(s.events().is_empty(), "{:?}", s.events());
}

#[test]
fn a_failing_after_command_is_a_warning_and_the_measurement_stands() {
    let s = scene("  after:\n    measure: [\"echo late >&2; exit 4\"]\n");
    let (code, stdout, stderr) = run(&s.config, &["measure", "-o", "json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let m: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(m["metrics"]["x"]["value"], 1.0);
    assert!(stderr.contains("after-measure"), "{stderr}");
    assert!(stderr.contains("exited with code 4"), "{stderr}");
    assert_eq!(s.events(), ["measure-hook"]);
}

#[test]
fn on_check_commands_are_checks_that_pass_when_they_exit_zero() {
    let s = scene("  on:\n    check: [\"test -f ready\", \"true\"]\n");
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("script `test -f ready`"), "{stdout}");
    assert!(stdout.contains("exited with code 1"), "{stdout}");

    std::fs::write(s.dir.path().join("ready"), "").expect("ready");
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_command_over_its_timeout_is_killed_with_its_process_group() {
    let s = scene(
        "  timeout: 1s\n  before:\n    measure: [\"sleep 60 & echo $! > child.pid; echo $$ > script.pid; wait\"]\n",
    );
    let (code, stdout, stderr) = run(&s.config, &["measure"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "did not finish within its `timeout` of 1s; servo killed it and its process group"
        ),
        "{stderr}"
    );
    assert_gone(s.pid("script.pid"), "the script");
    assert_gone(s.pid("child.pid"), "the script's child");
}

#[test]
fn sigint_during_a_before_command_exits_130_and_leaves_no_process() {
    let s = scene(
        "  before:\n    measure: [\"sleep 60 & echo $! > child.pid; echo $$ > script.pid; wait\"]\n",
    );
    let mut servo = Servo::start(&s.config, &["measure"]);
    let (script, child) = (s.pid("script.pid"), s.pid("child.pid"));
    servo.wait_until_it_catches(2);
    servo.signal("INT");
    let ended = servo.finish(Duration::from_secs(20));
    assert_eq!(ended.code, Some(130), "{}", ended.stderr);
    assert_gone(script, "the script");
    assert_gone(child, "the script's child");
    assert!(!s.events().contains(&"measure-hook".to_string()));
}

#[test]
fn url_passwords_in_a_failing_command_are_masked() {
    let s =
        scene("  before:\n    measure: [\"exit 7; curl https://bob:hunter2@example.com/warm\"]\n");
    let (code, _, stderr) = run(&s.config, &["measure"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("https://bob:**********@example.com/warm"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn config_mistakes_are_reported_at_their_key() {
    let s = scene("  on:\n    adjust: [\"echo\"]\n  before:\n    mesure: [\"echo\"]\n");
    let (code, _, stderr) = run(&s.config, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("mesure"), "{stderr}");
    assert!(stderr.contains("measure"), "a did-you-mean: {stderr}");
}

#[test]
fn on_adjust_is_refused_with_where_to_put_it() {
    let s = scene("  on:\n    adjust: [\"echo\"]\n");
    let (code, _, stderr) = run(&s.config, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("scripts.on.adjust"), "{stderr}");
    assert!(stderr.contains("after: {adjust"), "{stderr}");
}
