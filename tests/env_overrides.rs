//! `SERVO_*` variables and `--set` flags override the file: defaults < file < env < flags.

mod common;

use common::{example, servo};
use serde_json::Value;

fn effective(config: &str, env: &[(&str, &str)], args: &[&str]) -> (i32, Value, String) {
    let mut cmd = servo();
    cmd.args(["config", "-o", "json", "-c"])
        .arg(example(config))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), json, stderr)
}

#[test]
fn alias_mount_takes_env_override_with_underscore_field() {
    let (code, config, stderr) = effective(
        "multi-mount.yaml",
        &[
            ("SERVO_STAGING_WAIT_MEASURE_ENABLED", "false"),
            ("SERVO_PROD_WAIT_DURATION", "90s"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(config["staging-wait"]["measure_enabled"], false);
    assert_eq!(config["prod_wait"]["duration"], "1m30s");
}

#[test]
fn whole_section_json_merges_into_the_section() {
    let (code, config, stderr) = effective(
        "wait.yaml",
        &[(
            "SERVO_WAIT",
            r#"{"duration": "20m", "measure_enabled": false}"#,
        )],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(config["wait"]["duration"], "20m");
    assert_eq!(config["wait"]["measure_enabled"], false);
    // Untouched keys of the file survive the merge.
    assert_eq!(
        config["wait"]["components"]["main"]["settings"]["mode"]["value"],
        "balanced"
    );
}

#[test]
fn flags_beat_env_which_beats_the_file() {
    let (code, config, stderr) = effective(
        "wait.yaml",
        &[
            ("SERVO_WAIT_DURATION", "7s"),
            ("SERVO_WAIT", r#"{"duration": "3s"}"#),
        ],
        &["--set", "wait.duration=9s"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(config["wait"]["duration"], "9s");

    let (_, config, _) = effective(
        "wait.yaml",
        &[
            ("SERVO_WAIT_DURATION", "7s"),
            ("SERVO_WAIT", r#"{"duration": "3s"}"#),
        ],
        &[],
    );
    assert_eq!(
        config["wait"]["duration"], "7s",
        "a field variable beats a section variable"
    );
}

#[test]
fn optimizer_token_from_env_is_used_but_never_printed() {
    let (code, config, stderr) = effective(
        "remote-optimizer.yaml",
        &[("SERVO_OPTIMIZER_TOKEN", "s3cr3t-token-value")],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(config["optimizer"]["token"], "**********");
    assert!(!config.to_string().contains("s3cr3t"));
    assert!(!stderr.contains("s3cr3t"));
}

#[test]
fn a_bad_env_value_exits_2_naming_the_variable() {
    let (code, _, stderr) = effective(
        "wait.yaml",
        &[("SERVO_WAIT_MEASURE_ENABLED", "perhaps")],
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("SERVO_WAIT_MEASURE_ENABLED"), "{stderr}");
    assert!(stderr.contains("true or false"), "{stderr}");

    let (code, _, stderr) = effective("wait.yaml", &[("SERVO_WAIT_DURATION", "soon")], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("\"origin\":\"env SERVO_WAIT_DURATION\""),
        "{stderr}"
    );
    assert!(stderr.contains("duration"), "{stderr}");

    let (code, _, stderr) = effective("wait.yaml", &[("SERVO_WAIT", "{not json")], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("SERVO_WAIT is not valid JSON"), "{stderr}");
}

#[test]
fn a_near_miss_variable_warns_with_a_suggestion() {
    let (code, _, stderr) = effective("wait.yaml", &[("SERVO_WAIT_MEASURE_ENABLD", "true")], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(
        stderr.contains("did you mean SERVO_WAIT_MEASURE_ENABLED?"),
        "{stderr}"
    );
}

#[test]
fn origins_say_where_each_value_came_from() {
    let mut cmd = servo();
    cmd.args(["config", "--origins", "-o", "json", "-c"])
        .arg(example("wait.yaml"))
        .env("SERVO_WAIT_DURATION", "4s");
    let output = cmd.output().expect("runs");
    assert!(output.status.success());
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout).expect("json rows");
    let origin = |path: &str| {
        rows.iter()
            .find(|r| r["path"] == path)
            .map(|r| r["origin"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(origin("wait.duration"), "env SERVO_WAIT_DURATION");
    assert_eq!(origin("wait.measure_enabled"), "file:6:20");
    assert_eq!(origin("optimizer.trials"), "default");
}
