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

const TWO_WAITS: &str = "name: shop\nconnectors: {fast: wait, slow: wait}\nfast:\n  measure_enabled: true\n  duration: 10ms\n  components:\n    web:\n      settings:\n        cpu: {type: cpu, min: 0.25, max: 4, step: 0.25, value: 1}\nslow:\n  measure_enabled: true\n  duration: 20ms\n  components:\n    db:\n      settings:\n        cpu: {type: cpu, min: 0.25, max: 4, step: 0.25, value: 2}\n";

#[test]
fn describe_and_measure_use_only_the_mounts_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), TWO_WAITS);

    // Both mounts measure `time_waited`, so together each reading is qualified by its mount.
    let (code, stdout, stderr) = common::run(&config, &["measure", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let all: Value = serde_json::from_str(&stdout).expect("JSON");
    let mut names: Vec<&String> = all["metrics"]
        .as_object()
        .expect("metrics")
        .keys()
        .collect();
    names.sort();
    assert_eq!(names, ["fast.time_waited", "slow.time_waited"], "{all}");

    let (code, stdout, stderr) =
        common::run(&config, &["measure", "--connectors", "slow", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let slow: Value = serde_json::from_str(&stdout).expect("JSON");
    let metrics = slow["metrics"].as_object().expect("metrics");
    assert_eq!(metrics.len(), 1, "{slow}");
    let waited = metrics["time_waited"]["value"].as_f64().expect("a number");
    assert!(
        (0.02..1.0).contains(&waited),
        "slow waits its own 20ms: {slow}"
    );

    // A connector's name picks all its mounts; both are described.
    let (code, stdout, stderr) = common::run(&config, &["describe", "wait", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let described: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        described["metrics"].as_array().map(Vec::len),
        Some(2),
        "{described}"
    );

    let (code, stdout, stderr) = common::run(&config, &["describe", "fast", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let described: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        described["metrics"][0]["name"], "time_waited",
        "{described}"
    );
    assert_eq!(
        described["metrics"].as_array().map(Vec::len),
        Some(1),
        "{described}"
    );

    for args in [
        &["describe", "slwo"][..],
        &["measure", "--connectors", "fast,slwo"],
    ] {
        let (code, stdout, stderr) = common::run(&config, args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "nothing measured or described: {stdout}");
        assert!(stderr.contains("no connector named `slwo`"), "{stderr}");
        assert!(stderr.contains("did you mean `slow`?"), "{stderr}");
    }
}

#[test]
fn show_lists_connectors_components_metrics_and_events_per_mount() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), TWO_WAITS);
    let show = |what: &str| -> Value {
        let (code, stdout, stderr) = common::run(&config, &["show", what, "-o", "json"]);
        assert_eq!(code, 0, "show {what}: {stderr}");
        serde_json::from_str(&stdout).expect("JSON")
    };
    let connectors = show("connectors");
    assert_eq!(connectors[0]["mount"], "fast");
    assert_eq!(connectors[1]["mount"], "slow");
    assert_eq!(connectors[1]["connector"], "wait");

    let metrics = show("metrics");
    let rows: Vec<(&str, &str)> = metrics
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["mount"].as_str().unwrap_or(""),
                r["metric"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("fast", "fast.time_waited"), ("slow", "slow.time_waited")]
    );

    let components = show("components");
    assert_eq!(components.as_array().map(Vec::len), Some(2), "{components}");
    assert!(
        components[0]["settings"][0]
            .as_str()
            .is_some_and(|s| s.starts_with("cpu=")),
        "{components}"
    );

    let events = show("events");
    let adjust = events
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["event"] == "adjust")
        .expect("wait adjusts");
    assert_eq!(adjust["mounts"], serde_json::json!(["fast", "slow"]));
    assert!(
        !events
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["event"] == "check"),
        "wait declares no check: {events}"
    );
}

#[test]
fn config_as_a_configmap_holds_a_config_that_loads_without_the_optimizer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "name: shop\noptimizer:\n  id: example.com/shop\n  token: t0123456789\nwait:\n  measure_enabled: true\n",
    );
    let (code, stdout, stderr) = common::run(&config, &["config", "-f", "configmap"]);
    assert_eq!(code, 0, "{stderr}");
    // The real API type reads it: a ConfigMap kubectl would apply.
    let map: k8s_openapi::api::core::v1::ConfigMap =
        serde_saphyr::from_str(&stdout).expect("a ConfigMap");
    assert_eq!(map.metadata.name.as_deref(), Some("opsani-servo-config"));
    let annotations = map.metadata.annotations.expect("annotations");
    let listed: Value =
        serde_json::from_str(&annotations["servo.opsani.com/connectors"]).expect("JSON list");
    assert_eq!(listed[0]["name"], "wait");
    let data = map.data.expect("data");
    let text = &data["servo.yaml"];
    assert!(!text.contains("optimizer"), "the token stays out: {text}");
    assert!(!stdout.contains("t0123456789"));

    // What it holds loads back as the same servo.
    let back = dir.path().join("from-configmap.yaml");
    std::fs::write(&back, text).expect("write");
    let (code, stdout, stderr) = common::run(&back, &["config", "wait", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(printed["wait"]["measure_enabled"], true);

    // Other commands have no ConfigMap form: a usage error.
    let (code, _, stderr) = common::run(&config, &["show", "connectors", "-f", "configmap"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("only `servo config`"), "{stderr}");
}

#[test]
fn generate_takes_servox_name_append_quiet_and_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("servo.yaml");
    let generate = |args: &[&str]| {
        let out = common::servo()
            .current_dir(dir.path())
            .arg("generate")
            .args(args)
            .output()
            .expect("servo runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = generate(&["vegeta", "--name", "first", "--defaults", "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "--quiet: {stderr}");
    let text = std::fs::read_to_string(&file).expect("written");
    assert!(text.contains("name: first"), "{text}");
    // Every default is written anyway, so --defaults changes nothing but is accepted.
    let example = common::servo()
        .args(["generate", "vegeta", "--name", "first", "--output", "-"])
        .output()
        .expect("servo runs");
    let example = String::from_utf8_lossy(&example.stdout);
    assert!(text.contains("connections: 10000"), "{text}");
    assert_eq!(
        text.lines().skip(1).collect::<Vec<_>>(),
        example.lines().collect::<Vec<_>>(),
        "the same settings, but for the schema line of a written file"
    );
    assert!(
        !example.contains("$schema"),
        "stdout gets no schema, so names none"
    );

    let (code, stderr) = generate(&["wait", "--name", "second", "--append"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("appended"), "{stderr}");
    let (code, stdout, stderr) = common::run(&file, &["list", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let servos: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(servos[0]["name"], "first");
    assert_eq!(servos[0]["connectors"][0], "vegeta");
    assert_eq!(servos[1]["name"], "second");
    assert_eq!(servos[1]["connectors"][0], "wait");
    let (code, _, stderr) = common::run(&file, &["validate"]);
    assert_eq!(code, 0, "both documents validate: {stderr}");

    let (code, stderr) = generate(&["wait", "--standalone", "--alias", "a=wait"]);
    assert_eq!(code, 2, "{stderr}");
}
