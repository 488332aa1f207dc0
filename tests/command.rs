//! The `command` connector through the real binary, with real hook processes.
//!
//! Hooks are small `sh` scripts in a temporary directory. They are run as `[sh, hook.sh]` rather
//! than executed directly: a script written by one test thread can be briefly held open by a fork
//! in another, and executing it would then fail with "text file busy". The example test executes
//! its committed scripts directly. Whether a process is still running is read from /proc, hence
//! Linux only.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/live.rs"]
mod live;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{example, root, run, servo};
use live::{Servo, alive, assert_gone};
use serde_json::Value;

/// A temporary directory holding a config and its hooks.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an executable `sh` script.
    fn hook(&self, name: &str, body: &str) -> &Self {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -eu\n{body}\n")).expect("hook written");
        set_mode(&path, 0o755);
        self
    }

    /// Writes `servo.yaml` and returns its path.
    fn config(&self, yaml: &str) -> PathBuf {
        let path = self.path("servo.yaml");
        std::fs::write(&path, yaml).expect("config written");
        path
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_else(|e| panic!("the hook should have written {name}: {e}"))
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_str(&self.read(name)).expect("a hook wrote valid JSON")
    }

    /// The `SERVO_*` variables a hook saved with `env > FILE`, as `NAME=value` lines.
    fn servo_vars(&self, name: &str) -> Vec<String> {
        let mut vars: Vec<String> = self
            .read(name)
            .lines()
            .filter(|l| l.starts_with("SERVO_"))
            .map(String::from)
            .collect();
        vars.sort();
        vars
    }

    fn pid(&self, name: &str) -> u32 {
        self.read(name).trim().parse().expect("a pid")
    }

    /// Waits until the hook has written `name` (the readiness signal of the signal tests).
    fn wait_for(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.path(name).exists() || self.read(name).trim().is_empty() {
            assert!(Instant::now() < deadline, "the hook never wrote {name}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("servo printed JSON ({e}): {stdout}"))
}

fn setting<'a>(description: &'a Value, component: &str, name: &str) -> &'a Value {
    common::setting(description, component, name)
        .unwrap_or_else(|| panic!("{component}.{name} in {description}"))
}

const COMPONENTS: &str = "
  components:
    main:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }
        workers: { type: int, min: 1, max: 16, value: 2 }
        max-conns: { type: int, min: 10, max: 1000, step: 10, value: 100 }
";

#[test]
fn describe_lays_the_hooks_values_over_the_declared_settings() {
    let scene = Scene::new();
    scene.hook(
        "describe.sh",
        r#"env > describe.env
printf '{"progress": 50, "message": "asking the app"}\n'
cat <<'EOF'
{"components": {"main": {"settings": {
  "cpu": {"value": 1.5},
  "mode": {"type": "enum", "values": ["fast", "safe"], "value": "safe"}
}}}}
EOF"#,
    );
    let config = scene.config(&format!(
        "command:\n  describe: [sh, describe.sh]\n  env: {{ GREETING: hello, PORT: 8080 }}\n{COMPONENTS}"
    ));
    let (code, stdout, stderr) = run(&config, &["describe", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let d = json(&stdout);
    let cpu = setting(&d, "main", "cpu");
    assert_eq!(cpu["value"], 1.5, "the hook's value");
    assert_eq!(cpu["min"], 0.25, "the declared domain");
    assert_eq!(
        setting(&d, "main", "workers")["value"],
        2,
        "declared values the hook leaves out stay"
    );
    let mode = setting(&d, "main", "mode");
    assert_eq!(
        (mode["type"].as_str(), mode["value"].as_str()),
        (Some("enum"), Some("safe"))
    );

    let env = scene.read("describe.env");
    assert!(
        env.contains("\nGREETING=hello\n") && env.contains("\nPORT=8080\n"),
        "{env}"
    );
    assert_eq!(
        scene.servo_vars("describe.env"),
        ["SERVO_HOOK=describe", "SERVO_MOUNT=command"],
        "servo's own SERVO_* variables (SERVO_LOG_LEVEL here) are not passed on"
    );
}

#[test]
fn adjust_passes_every_value_as_variables_and_the_changes_as_json() {
    let scene = Scene::new();
    scene.hook(
        "adjust.sh",
        "env > adjust.env\ncat > adjust.json\necho 'applied' >&2",
    );
    let config = scene.config(&format!(
        "command:\n  adjust: [sh, adjust.sh]\n{COMPONENTS}"
    ));
    let (code, stdout, stderr) = run(
        &config,
        &[
            "adjust",
            "main.cpu=500m",
            "main.max-conns=250",
            "--settlement",
            "100ms",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        scene.servo_vars("adjust.env"),
        [
            "SERVO_HOOK=adjust",
            "SERVO_MOUNT=command",
            "SERVO_SETTING_MAIN_CPU=0.5",
            "SERVO_SETTING_MAIN_MAX_CONNS=250",
            "SERVO_SETTING_MAIN_WORKERS=2",
        ]
    );
    let input = scene.json("adjust.json");
    assert_eq!(
        input["adjustments"],
        serde_json::json!([
            {"component": "main", "setting": "cpu", "value": 0.5},
            {"component": "main", "setting": "max-conns", "value": 250}
        ])
    );
    assert_eq!(input["control"]["settlement"], 0.1);
    assert_eq!(input["control"]["duration"], 0.0);

    let report = json(&stdout);
    assert_eq!(setting(&report["description"], "main", "cpu")["value"], 0.5);
    assert_eq!(
        setting(&report["description"], "main", "max-conns")["value"],
        250
    );
}

#[test]
fn adjust_reports_what_describe_sees_afterwards() {
    let scene = Scene::new();
    scene
        .hook(
            "adjust.sh",
            r#"echo "$SERVO_SETTING_MAIN_WORKERS" > workers"#,
        )
        .hook(
            "describe.sh",
            r#"w=2; [ -f workers ] && w=$(cat workers)
printf '{"components": {"main": {"settings": {"workers": {"value": %s}}}}}\n' "$w""#,
        );
    let config = scene.config(&format!(
        "command:\n  adjust: [sh, adjust.sh]\n  describe: [sh, describe.sh]\n{COMPONENTS}"
    ));
    let (code, stdout, stderr) = run(&config, &["adjust", "main.workers=7", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        setting(&json(&stdout)["description"], "main", "workers")["value"],
        7
    );
}

#[test]
fn a_failing_adjust_quotes_its_stderr() {
    let scene = Scene::new();
    scene.hook(
        "adjust.sh",
        "echo 'connecting to the API' >&2\necho 'deployment main not found' >&2\nexit 1",
    );
    let config = scene.config(&format!(
        "command:\n  adjust: [sh, adjust.sh]\n{COMPONENTS}"
    ));
    let (code, _, stderr) = run(&config, &["adjust", "main.workers=4"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("adjust command `sh adjust.sh` exited with code 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    | connecting to the API\n    | deployment main not found"),
        "{stderr}"
    );
}

#[test]
fn an_adjust_that_reports_rejected_is_a_rejected_adjustment() {
    let scene = Scene::new();
    scene.hook(
        "adjust.sh",
        r#"echo 'rolling out'
echo '{"status": "rejected", "reason": "unstable", "message": "main crash-loops with workers=16"}'
exit 1"#,
    );
    let config = scene.config(&format!(
        "command:\n  adjust: [sh, adjust.sh]\n{COMPONENTS}"
    ));
    let (code, _, stderr) = run(&config, &["adjust", "main.workers=16"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("adjustment rejected (unstable): main crash-loops with workers=16"),
        "{stderr}"
    );
}

#[test]
fn adjusting_without_an_adjust_command_is_an_error_not_a_silent_no_op() {
    let scene = Scene::new();
    scene.hook("describe.sh", r#"echo '{"components": {}}'"#);
    let config = scene.config(&format!(
        "command:\n  describe: [sh, describe.sh]\n{COMPONENTS}"
    ));
    let (code, _, stderr) = run(&config, &["adjust", "main.workers=4"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("has no adjust command"), "{stderr}");
}

const METRICS: &str = "
  metrics:
    - { name: latency_p99, unit: ms }
    - { name: throughput, unit: rps }
";

#[test]
fn measure_passes_the_control_and_reads_metrics_series_and_annotations() {
    let scene = Scene::new();
    scene.hook(
        "measure.sh",
        r#"env > measure.env
cat > measure.json
cat <<'EOF'
{
  "metrics": {
    "latency_p99": {"value": 12.5},
    "throughput": {"values": [[1700000000, 10], [1700000001, 30]], "unit": "rps"},
    "queue_depth": {"value": 3}
  },
  "annotations": {"build": "abc123", "runs": 2}
}
EOF"#,
    );
    let config = scene.config(&format!("command:\n  measure: [sh, measure.sh]\n{METRICS}"));
    let (code, stdout, stderr) = run(
        &config,
        &[
            "measure",
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        scene.servo_vars("measure.env"),
        [
            "SERVO_HOOK=measure",
            "SERVO_MEASURE_DELAY=0",
            "SERVO_MEASURE_DURATION=2",
            "SERVO_MEASURE_WARMUP=0.5",
            "SERVO_METRICS=latency_p99,throughput",
            "SERVO_MOUNT=command",
        ]
    );
    let input = scene.json("measure.json");
    assert_eq!(
        input["metrics"],
        serde_json::json!(["latency_p99", "throughput"])
    );
    assert_eq!(input["control"]["duration"], 2.0);
    assert_eq!(input["control"]["warmup"], 0.5);

    let m = json(&stdout);
    assert_eq!(m["metrics"]["latency_p99"]["value"], 12.5);
    assert_eq!(
        m["metrics"]["latency_p99"]["unit"], "ms",
        "the declared unit"
    );
    assert_eq!(
        m["metrics"]["throughput"]["value"], 20.0,
        "the mean of the series"
    );
    assert_eq!(
        m["metrics"]["throughput"]["series"][1],
        serde_json::json!([1700000001.0, 30.0])
    );
    assert_eq!(
        m["metrics"]["queue_depth"]["value"], 3.0,
        "undeclared metrics are still reported"
    );
    assert_eq!(m["annotations"]["runs"], "2");
    assert_eq!(
        stderr
            .matches("`queue_depth`, which `metrics` does not declare")
            .count(),
        1,
        "one warning: {stderr}"
    );
}

#[test]
fn measure_asks_only_for_the_requested_metrics() {
    let scene = Scene::new();
    scene.hook(
        "measure.sh",
        r#"echo "$SERVO_METRICS" > metrics
echo '{"metrics": {"latency_p99": {"value": 9}, "throughput": {"value": 100}}}'"#,
    );
    let config = scene.config(&format!("command:\n  measure: [sh, measure.sh]\n{METRICS}"));
    let (code, stdout, stderr) = run(&config, &["measure", "latency_p99", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(scene.read("metrics").trim(), "latency_p99");
    let m = json(&stdout);
    assert_eq!(m["metrics"].as_object().map(|o| o.len()), Some(1), "{m}");
}

#[test]
fn garbage_on_stdout_is_an_error_that_points_at_it() {
    let scene = Scene::new();
    scene.hook(
        "measure.sh",
        "echo 'measuring...' >&2\nprintf '{\"metrics\": {\\n  \"latency\": high\\n}}\\n'",
    );
    let config = scene.config("command:\n  measure: [sh, measure.sh]\n");
    let (code, _, stderr) = run(&config, &["measure"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("printed invalid JSON on stdout: expected value at line 2 column 14"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    |   \"latency\": high\n    |              ^"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    | measuring..."),
        "stderr quoted: {stderr}"
    );
    assert!(
        stderr.contains("it must print one JSON object such as"),
        "{stderr}"
    );
}

#[test]
fn well_formed_json_of_the_wrong_shape_names_the_field() {
    let scene = Scene::new();
    scene.hook(
        "measure.sh",
        r#"echo '{"metrics": {"latency": {"value": "fast"}}}'"#,
    );
    let config = scene.config("command:\n  measure: [sh, measure.sh]\n");
    let (code, _, stderr) = run(&config, &["measure"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("at `metrics.latency.value`"), "{stderr}");
}

#[test]
fn a_failing_measure_quotes_the_end_of_its_stderr() {
    let scene = Scene::new();
    scene.hook(
        "measure.sh",
        "i=0; while [ $i -lt 40 ]; do echo \"noise $i\" >&2; i=$((i+1)); done\necho 'prometheus unreachable' >&2\nexit 3",
    );
    let config = scene.config("command:\n  measure: [sh, measure.sh]\n");
    let (code, _, stderr) = run(&config, &["measure"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("exited with code 3\n  the last 20 lines of its stderr:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    | noise 39\n    | prometheus unreachable"),
        "{stderr}"
    );
    assert!(!stderr.contains("noise 20\n"), "only the tail: {stderr}");
}

/// A hook that starts a grandchild, records both pids, and waits forever.
const HANG: &str = "sleep 300 &\necho $! > grandchild.pid\necho $$ > hook.pid\necho 'waiting for the rollout' >&2\nwait";

#[test]
fn a_hook_that_hangs_is_killed_with_its_children_at_the_timeout() {
    let scene = Scene::new();
    scene.hook("measure.sh", HANG);
    let config = scene.config("command:\n  measure: [sh, measure.sh]\n  timeout: 2s\n");
    let started = Instant::now();
    let (code, _, stderr) = run(&config, &["measure"]);
    let took = started.elapsed();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "did not finish within its `timeout` of 2s; servo killed it and its process group"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("    | waiting for the rollout"),
        "what it said is quoted: {stderr}"
    );
    assert!(
        took < Duration::from_secs(15),
        "took {took:?} for a 2s timeout"
    );
    assert_gone(scene.pid("hook.pid"), "the hook");
    assert_gone(scene.pid("grandchild.pid"), "the hook's child");
}

#[test]
fn leftover_processes_of_a_finished_hook_are_killed() {
    let scene = Scene::new();
    scene.hook(
        "measure.sh",
        "sleep 300 > /dev/null 2>&1 &\necho $! > straggler.pid\necho '{\"metrics\": {}}'",
    );
    let config = scene.config("command:\n  measure: [sh, measure.sh]\n");
    let (code, _, stderr) = run(&config, &["measure"]);
    assert_eq!(code, 0, "{stderr}");
    assert_gone(
        scene.pid("straggler.pid"),
        "the process the hook left behind",
    );
}

fn interrupt_leaves_no_process(signal: &str, number: u32) {
    let scene = Scene::new();
    scene.hook("measure.sh", HANG);
    let config = scene.config("command:\n  measure: [sh, measure.sh]\n  timeout: 5m\n");
    let mut servo = Servo::start(&config, &["measure"]);
    scene.wait_for("hook.pid");
    scene.wait_for("grandchild.pid");
    servo.wait_until_it_catches(number);
    servo.signal(signal);
    let ended = servo.finish(Duration::from_secs(20));
    assert_eq!(ended.code, Some(130), "{}", ended.stderr);
    assert_gone(scene.pid("hook.pid"), "the hook");
    assert_gone(scene.pid("grandchild.pid"), "the hook's child");
}

#[test]
fn sigterm_during_measure_exits_130_and_leaves_no_process() {
    interrupt_leaves_no_process("TERM", 15);
}

#[test]
fn ctrl_c_during_measure_exits_130_and_leaves_no_process() {
    interrupt_leaves_no_process("INT", 2);
}

#[test]
fn a_hook_dies_with_a_servo_killed_without_warning() {
    let scene = Scene::new();
    scene.hook("measure.sh", "echo $$ > hook.pid\nexec sleep 300");
    let config = scene.config("command:\n  measure: [sh, measure.sh]\n");
    let mut servo = Servo::start(&config, &["measure"]);
    scene.wait_for("hook.pid");
    let hook = scene.pid("hook.pid");
    assert!(alive(hook));
    servo.signal("KILL");
    let ended = servo.finish(Duration::from_secs(20));
    assert_eq!(ended.code, None, "killed by the signal");
    assert_gone(hook, "the hook (PR_SET_PDEATHSIG)");
}

#[test]
fn check_resolves_each_program_and_says_what_to_do() {
    let scene = Scene::new();
    scene.hook("adjust.sh", "exit 0");
    std::fs::write(scene.path("describe.sh"), "#!/bin/sh\n").expect("written");
    set_mode(&scene.path("describe.sh"), 0o644);
    let config = scene.config(&format!(
        "command:\n  describe: [./describe.sh]\n  adjust: [./adjust.sh]\n  measure: [no-such-measure-tool, --fast]\n{COMPONENTS}"
    ));
    let (code, stdout, stderr) = run(&config, &["check", "-o", "json"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    let report = json(&stdout);
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no check {name}: {report}"))
    };
    let adjust = check("adjust command");
    assert_eq!(adjust["success"], true, "{adjust}");
    let describe = check("describe command");
    assert_eq!(describe["success"], false);
    assert!(
        describe["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("describe.sh is not executable"))
    );
    assert!(
        describe["hint"]
            .as_str()
            .is_some_and(|h| h.starts_with("make it executable: chmod +x"))
    );
    let measure = check("measure command");
    assert_eq!(measure["success"], false);
    assert!(
        measure["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("`no-such-measure-tool` is not on PATH")),
        "{measure}"
    );
}

#[test]
fn config_mistakes_are_reported_at_their_keys() {
    let scene = Scene::new();
    let config = scene.config(
        "command:
  adjust: [sh, adjust.sh]
  components:
    a_b: { settings: { c: { type: int, min: 1, max: 2 } } }
    a: { settings: { b_c: { type: int, min: 3, max: 1 } } }
",
    );
    let (code, _, stderr) = run(&config, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("command.components.a.settings.b_c.min: `min` (3) is above `max` (1)"),
        "{stderr}"
    );

    let config = scene.config(
        "command:
  adjust: [sh, adjust.sh]
  components:
    a_b: { settings: { c: { type: int, min: 1, max: 2 } } }
    a: { settings: { b_c: { type: int, min: 1, max: 3 } } }
",
    );
    let (code, _, stderr) = run(&config, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("would both be passed to the adjust command as SERVO_SETTING_A_B_C"),
        "{stderr}"
    );

    let config = scene.config("command:\n  measure: []\n  metrics: [{ name: x, unit: ms }]\n");
    let (code, _, stderr) = run(&config, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("command.measure"), "{stderr}");
}

/// Runs `servo ARGS -c examples/command.yaml -o json` from the repository root, as the example's
/// comment says, with its state (and journal) in `state` instead of the source tree.
fn example_in_root(state: &Path, args: &[&str]) -> Value {
    // `env` is a map; `--set` replaces it whole (it cannot address one of its keys).
    let env = format!(
        r#"command.env={{"STATE_FILE": "{}"}}"#,
        state.join("example.state").display()
    );
    let store = format!("optimizer.store={}", state.join("study.db").display());
    let output = servo()
        .current_dir(root())
        .args(args)
        .args([
            "-c",
            "examples/command.yaml",
            "-o",
            "json",
            "--set",
            &env,
            "--set",
            &store,
        ])
        .output()
        .expect("servo runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    json(&String::from_utf8_lossy(&output.stdout))
}

#[test]
fn the_example_describes_adjusts_and_measures_from_the_repository_root() {
    let state = tempfile::tempdir().expect("a temporary directory");
    let before = example_in_root(state.path(), &["describe"]);
    assert_eq!(setting(&before, "app", "workers")["value"], 8);
    assert_eq!(setting(&before, "app", "cache")["value"], "none");
    let baseline = example_in_root(state.path(), &["measure", "--duration", "100ms"]);

    let adjusted = example_in_root(state.path(), &["adjust", "app.workers=4", "app.cache=lfu"]);
    assert_eq!(
        setting(&adjusted["description"], "app", "workers")["value"],
        4
    );
    assert_eq!(
        setting(&adjusted["description"], "app", "cache")["value"],
        "lfu"
    );
    assert!(
        state.path().join("example.state").exists(),
        "the example keeps its state where it is told"
    );
    let cached = example_in_root(state.path(), &["measure", "--duration", "100ms"]);
    let p99 = |m: &Value| {
        m["metrics"]["latency_p99"]["value"]
            .as_f64()
            .expect("latency_p99")
    };
    assert!(
        p99(&cached) < p99(&baseline),
        "half the workers with a cache are faster"
    );
    assert_eq!(cached["metrics"]["latency_p99"]["unit"], "ms");

    let (code, stdout, stderr) = run(&example("command.yaml"), &["check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn servo_run_tunes_the_example_through_its_hooks() {
    let state = tempfile::tempdir().expect("a temporary directory");
    let summary = example_in_root(
        state.path(),
        &[
            "run",
            "--no-checks",
            "--set",
            "optimizer.control.duration=50ms",
        ],
    );
    let text = summary.to_string();
    let describe = example_in_root(state.path(), &["describe"]);
    let workers = setting(&describe, "app", "workers")["value"]
        .as_i64()
        .expect("workers");
    assert!(
        workers < 8,
        "left on a configuration better than the baseline's 8 workers: {text}"
    );
    let measured = example_in_root(state.path(), &["measure", "--duration", "10ms"]);
    let p99 = measured["metrics"]["latency_p99"]["value"]
        .as_f64()
        .expect("latency_p99");
    assert!(p99 < 110.0, "and it meets the SLO: {p99}ms; {text}");
}

#[test]
fn servo_run_cuts_short_a_measure_hook_whose_progress_breaks_an_slo() {
    let scene = Scene::new();
    scene.hook("adjust.sh", "echo \"$SERVO_SETTING_APP_WORKERS\" > workers");
    // The baseline's 8 workers measure well at once; any other count reports a meltdown every
    // 0.2 s and would go on until killed.
    scene.hook(
        "measure.sh",
        r#"if [ "$(cat workers)" != 8 ]; then
  echo $$ > melting.pid
  while :; do
    echo '{"progress": 10, "metrics": {"latency_p99": {"value": 5000}}}'
    sleep 0.2
  done
fi
echo '{"metrics": {"latency_p99": {"value": 20}, "throughput": {"value": 100}}}'"#,
    );
    let config = scene.config(&format!(
        "{}command:
  components:
    app:
      settings:
        workers: {{ type: int, min: 1, max: 16, step: 1, value: 8 }}
  adjust: [sh, adjust.sh]
  measure: [sh, measure.sh]
  timeout: 10s
{METRICS}",
        common::two_trial_study("app.workers", "latency_p99 < 100ms", "20s")
    ));
    let trial = common::run_two_trials(&config);
    assert_gone(scene.pid("melting.pid"), "the cut measure hook");
    let (cut, after) = common::cut_short(&trial);
    assert!(
        cut.starts_with("`latency_p99 < 100ms` read 5000.0000 ms, 50.0× its limit, after "),
        "{cut}"
    );
    assert!(after < 10.0, "stopped {after} s into a 20 s window: {cut}");
    assert_eq!(trial["feasible"], false, "{trial:#}");
}
