//! ServoX's command-line and config habits that do not collide with servo's work too, through the
//! real binary: `-f/--format`, `config KEYS`, connectors named by ServoX class or dotted path,
//! `checks.halt_on: common`, and ServoX's `checks:` keys each understood or warned about.

mod common;

use serde_json::Value;

fn write(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("servo.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn f_is_format_and_config_keys_prints_only_those_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "servo_uid: uid-1\nno_diagnostics: true\nchecks:\n  halt_on: common\n  delay: 5s\n  wait: 1m\nwait:\n  measure_enabled: true\n",
    );
    let (code, stdout, stderr) =
        common::run(&config, &["config", "checks", "servo_uid", "-f", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).expect("-f json prints JSON");
    let keys: Vec<&str> = printed
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["servo_uid", "checks"], "{printed}");
    assert_eq!(printed["servo_uid"], "uid-1");
    // `common` halts on every failure but a warning: servo's critical.
    assert_eq!(printed["checks"]["halt_on"], "critical", "{printed}");
    assert_eq!(printed["checks"]["delay"], "5s", "{printed}");
    assert_eq!(printed["checks"]["wait"], "1m", "{printed}");

    let (code, _, stderr) = common::run(&config, &["config", "chekcs"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean `checks`"), "{stderr}");
}

#[test]
fn connectors_named_by_servox_class_or_dotted_path_mount_under_their_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for listed in [
        "[WaitConnector]",
        "[servo.connectors.wait.WaitConnector]",
        "{pause: servo.connectors.wait.WaitConnector}",
    ] {
        let key = if listed.starts_with('{') {
            "pause"
        } else {
            "wait"
        };
        let config = write(
            dir.path(),
            &format!("connectors: {listed}\n{key}:\n  measure_enabled: true\n"),
        );
        let (code, stdout, stderr) = common::run(&config, &["config", "-o", "json"]);
        assert_eq!(code, 0, "{listed}: {stderr}");
        let printed: Value = serde_json::from_str(&stdout).expect("JSON");
        assert_eq!(printed[key]["measure_enabled"], true, "{listed}: {printed}");
    }
}

#[test]
fn servox_checks_keys_without_meaning_for_servo_warn_once_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "no_diagnostics: false\nchecks:\n  quiet: true\n  remedy: true\n  check_halting: false\n  tag: [slow]\nwait:\n  measure_enabled: true\n",
    );
    let (code, _, stderr) = common::run(&config, &["validate"]);
    assert_eq!(code, 0, "{stderr}");
    // `checks.remedy` is honoured (opsani_dev's checks have remedies): no warning.
    assert!(!stderr.contains("checks.remedy"), "{stderr}");
    for path in [
        "checks.quiet",
        "checks.check_halting",
        "checks.tag",
        "no_diagnostics",
    ] {
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("warning:") && l.contains(&format!(": {path}: ")))
            .collect();
        assert_eq!(warnings.len(), 1, "{path}: {stderr}");
    }
}

#[test]
fn list_names_the_servos_of_a_multi_servo_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "name: a\ndescription: the first\nwait: {}\n---\nname: b\noptimizer:\n  id: example.com/b\n  token: t0123456789\nconnectors: {pause: wait}\npause: {}\n",
    );
    let (code, stdout, stderr) = common::run(&config, &["list", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let servos: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(servos[0]["name"], "a");
    assert_eq!(servos[0]["optimizer"], "embedded");
    assert_eq!(servos[0]["description"], "the first");
    assert_eq!(servos[1]["name"], "b");
    assert_eq!(servos[1]["optimizer"], "example.com/b");
    assert_eq!(servos[1]["connectors"][0], "pause (wait)");
    assert!(!stdout.contains("t0123456789"));
}
