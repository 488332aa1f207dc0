//! The one-shot commands on the examples, through the real binary.

mod common;

use common::{example, examples, run, servo};
use serde_json::Value;

#[test]
fn every_example_validates() {
    let files = examples();
    assert!(files.len() >= 5, "examples/ looks empty");
    for file in files {
        let (code, stdout, stderr) = run(&file, &["validate"]);
        assert_eq!(code, 0, "{}:\n{stderr}", file.display());
        assert!(stdout.contains("is valid"), "{stdout}");
    }
}

#[test]
fn validate_summarises_the_mounts() {
    let (code, stdout, _) = run(&example("multi-mount.yaml"), &["validate"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("√ staging-wait (wait)"), "{stdout}");
    assert!(stdout.contains("√ prod_wait (wait)"), "{stdout}");
}

#[test]
fn config_fills_defaults_and_keeps_file_values() {
    let (code, stdout, stderr) = run(&example("multi-mount.yaml"), &["config", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let config: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(config["connectors"]["staging-wait"], "wait");
    assert_eq!(config["staging-wait"]["duration"], "2s");
    assert_eq!(config["prod_wait"]["measure_enabled"], false);
    assert_eq!(config["optimizer"]["trials"], 30, "default filled in");
    assert_eq!(config["checks"]["halt_on"], "critical");
}

#[test]
fn config_prints_yaml_that_validates_again() {
    let (code, stdout, _) = run(
        &example("embedded-optimizer.yaml"),
        &["config", "-o", "yaml"],
    );
    assert_eq!(code, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let again = dir.path().join("again.yaml");
    std::fs::write(&again, stdout).expect("write");
    let (code, _, stderr) = run(&again, &["validate"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn multi_document_files_hold_several_servos() {
    let (code, stdout, _) = run(&example("multi-servo.yaml"), &["validate", "-o", "json"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&stdout).expect("json");
    let names: Vec<&str> = report["servos"]
        .as_array()
        .expect("servos")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["frontend", "backend"]);

    let (code, _, stderr) = run(&example("multi-servo.yaml"), &["describe"]);
    assert_eq!(
        code, 2,
        "one-shot commands need --name on a multi-servo file"
    );
    assert!(stderr.contains("--name"), "{stderr}");

    let (code, stdout, stderr) = run(
        &example("multi-servo.yaml"),
        &["describe", "--name", "backend"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("workers"), "{stdout}");
}

#[test]
fn generate_writes_a_config_that_validates_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("servo.yaml");
    let status = servo()
        .args(["generate", "wait", "--alias", "second=wait", "--output"])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = std::fs::read_to_string(&out).expect("written");
    assert!(
        text.starts_with("# yaml-language-server: $schema=servo.schema.json\n"),
        "{text}"
    );
    assert!(dir.path().join("servo.schema.json").exists());
    let (code, stdout, stderr) = run(&out, &["validate"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("second (wait)"), "{stdout}");

    let again = servo()
        .args(["generate", "wait", "--output"])
        .arg(&out)
        .output()
        .expect("runs");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(&out).expect("still there"),
        text,
        "nothing lost"
    );

    let forced = servo()
        .args(["generate", "wait", "--force", "--output"])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(forced.status.success());
}

#[test]
fn generate_suggests_a_connector_name() {
    let output = servo()
        .args(["generate", "wiat", "--output", "-"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("did you mean `wait`?"));
}

#[test]
fn describe_lists_settings_with_domains() {
    let (code, stdout, stderr) = run(&example("wait.yaml"), &["describe", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let d: Value = serde_json::from_str(&stdout).expect("json");
    let main = &d["components"][0];
    assert_eq!(main["name"], "main");
    let cpu = main["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|s| s["name"] == "cpu")
        .expect("cpu");
    assert_eq!(cpu["type"], "cpu");
    assert_eq!(cpu["min"], 0.25);
    assert_eq!(d["metrics"][0]["name"], "time_waited");
}

#[test]
fn measure_prints_one_json_document_with_a_value_per_metric() {
    let (code, stdout, stderr) = run(
        &example("wait.yaml"),
        &["measure", "--duration", "200ms", "-o", "json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let m: Value = serde_json::from_str(&stdout).expect("json");
    let waited = m["metrics"]["time_waited"]["value"]
        .as_f64()
        .expect("a value");
    assert!(
        (0.2..5.0).contains(&waited),
        "waited {waited}s for a 200ms measurement"
    );
    assert_eq!(m["metrics"]["time_waited"]["unit"], "s");
}

#[test]
fn measure_rejects_an_unknown_metric_with_a_suggestion() {
    let (code, _, stderr) = run(&example("wait.yaml"), &["measure", "time_waitd"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("did you mean `time_waited`?"), "{stderr}");
}

#[test]
fn adjust_applies_values_in_their_units_and_checks_domains() {
    let (code, stdout, stderr) = run(
        &example("wait.yaml"),
        &[
            "adjust",
            "main.cpu=500m",
            "main.memory=512Mi",
            "main.mode=thorough",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let r: Value = serde_json::from_str(&stdout).expect("json");
    let settings = r["description"]["components"][0]["settings"]
        .as_array()
        .expect("settings")
        .clone();
    let value = |name: &str| {
        settings
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["value"].clone())
    };
    assert_eq!(value("cpu"), Some(Value::from(0.5)));
    assert_eq!(value("memory"), Some(Value::from(0.5)));
    assert_eq!(value("mode"), Some(Value::from("thorough")));

    for (arg, needle) in [
        ("main.cpu=300m", "step grid"),
        ("main.cpu=16", "out of range"),
        ("main.mode=fsat", "did you mean `fast`"),
        ("main.cpuu=1", "did you mean `cpu`"),
        ("mian.cpu=1", "did you mean `main`"),
        ("main.cpu", "COMPONENT.SETTING=VALUE"),
    ] {
        let (code, _, stderr) = run(&example("wait.yaml"), &["adjust", arg]);
        assert_eq!(code, 2, "{arg}: {stderr}");
        assert!(stderr.contains(needle), "{arg}: {stderr}");
    }
}

#[test]
fn check_with_no_checks_passes() {
    let (code, stdout, _) = run(&example("wait.yaml"), &["check"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("no checks"), "{stdout}");
}

#[test]
fn check_honours_the_checks_filters_as_run_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    // Nothing listens on port 9: vegeta's target check fails.
    let write = |checks: &str| {
        std::fs::write(
            &config,
            format!(
                "vegeta:\n  rate: 10/1s\n  target: GET http://127.0.0.1:9/\n  timeout: 1s\n{checks}"
            ),
        )
        .expect("config");
    };
    write("");
    let (code, stdout, stderr) = run(&config, &["check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    for filtered_out in [
        "checks:\n  connectors: [prometheus]\n",
        "checks:\n  name: [/^no such check/]\n",
    ] {
        write(filtered_out);
        let (code, stdout, stderr) = run(&config, &["check", "-o", "json"]);
        assert_eq!(code, 0, "{filtered_out}: {stdout}{stderr}");
        let report: Value = serde_json::from_str(&stdout).expect("json");
        assert_eq!(report["checks"], serde_json::json!([]), "{filtered_out}");
    }
}

#[test]
fn version_and_completions_work() {
    let out = servo()
        .args(["version", "-o", "json"])
        .output()
        .expect("runs");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["servo"], env!("CARGO_PKG_VERSION"));
    let out = servo()
        .args(["completions", "bash"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("servo"));
}
