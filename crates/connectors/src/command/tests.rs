use super::program::*;
use super::protocol::*;
use super::run::*;
use super::settings::*;
use super::*;
use servo_core::connector::ConnectorSettings;
use servo_core::types::SettingKind;
use servo_core::units::Duration;
use std::path::Path;
use std::process::ExitStatus;

#[test]
fn setting_variables_upper_case_and_replace_other_characters() {
    assert_eq!(setting_variable("main", "cpu"), "SERVO_SETTING_MAIN_CPU");
    assert_eq!(
        setting_variable("web-app", "max.conns"),
        "SERVO_SETTING_WEB_APP_MAX_CONNS"
    );
    assert_eq!(setting_variable("café", "x"), "SERVO_SETTING_CAF__X");
}

#[test]
fn settings_that_share_a_variable_are_a_config_problem() {
    let yaml = serde_json::json!({
        "adjust": ["./adjust.sh"],
        "components": {
            "a_b": {"settings": {"c": {"type": "int", "min": 1, "max": 2}}},
            "a": {"settings": {"b_c": {"type": "int", "min": 1, "max": 2}}}
        }
    });
    let settings: Settings = serde_json::from_value(yaml).expect("parses");
    let problems = settings.validate();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].message.contains("SERVO_SETTING_A_B_C"),
        "{problems:?}"
    );
}

#[test]
fn a_section_must_name_a_command_and_each_command_a_program() {
    let none: Settings = serde_json::from_value(serde_json::json!({})).expect("parses");
    assert!(none.validate()[0].message.contains("no command to run"));
    let empty: Settings =
        serde_json::from_value(serde_json::json!({"measure": []})).expect("parses");
    assert_eq!(empty.validate()[0].path.to_string(), "measure");
    let orphan_metrics: Settings = serde_json::from_value(serde_json::json!({
        "describe": ["d"], "metrics": [{"name": "x"}]
    }))
    .expect("parses");
    assert_eq!(orphan_metrics.validate()[0].path.to_string(), "metrics");
}

#[test]
fn env_values_accept_yaml_scalars() {
    let settings: Settings = serde_json::from_value(serde_json::json!({
        "measure": ["m"], "env": {"PORT": 8080, "RATIO": 0.5, "DEBUG": true, "NAME": "x"}
    }))
    .expect("parses");
    let text: Vec<&str> = settings.env.values().map(|v| v.0.as_str()).collect();
    assert_eq!(text, ["true", "x", "8080", "0.5"]);
    assert!(
        serde_json::from_value::<Settings>(
            serde_json::json!({"measure": ["m"], "env": {"A": [1]}})
        )
        .is_err()
    );
}

#[test]
fn the_example_is_valid() {
    assert!(Settings::example().validate().is_empty());
}

#[test]
fn seconds_are_whole_when_they_can_be() {
    assert_eq!(seconds(Duration::from_secs(30)), "30");
    assert_eq!(seconds(Duration::from_millis(250)), "0.25");
    assert_eq!(seconds(Duration::ZERO), "0");
}

#[test]
fn the_result_document_skips_progress_and_rejects_extras() {
    let out = br#"{"progress": 50, "message": "halfway"}
            {"progress": 80, "metrics": {"x": {"value": 7}}}
            {"metrics": {"x": {"value": 1}}}"#;
    let doc = result_document(out).ok().expect("one result");
    assert_eq!(doc["metrics"]["x"]["value"], 1);
    assert!(matches!(
        result_document(b"  \n"),
        Err(DocumentProblem::Empty)
    ));
    assert!(matches!(
        result_document(b"{} {}"),
        Err(DocumentProblem::Several(2))
    ));
    assert!(
        matches!(
            result_document(br#"{"progress": 100, "metrics": {"x": {"value": 1}}}"#),
            Err(DocumentProblem::Empty)
        ),
        "readings so far are never the result"
    );
    match result_document(b"{\"metrics\": {\n  \"x\": oops\n}}") {
        Err(DocumentProblem::Syntax(e)) => {
            assert_eq!(e.line(), 2);
            let shown = snippet(b"{\"metrics\": {\n  \"x\": oops\n}}", e.line(), e.column());
            assert_eq!(shown, "\n    |   \"x\": oops\n    |        ^");
        }
        _ => panic!("a syntax error"),
    }
}

#[test]
fn a_progress_line_carries_the_readings_so_far_only_with_metrics() {
    let metrics = progress_metrics(
        r#"  {"progress": 40, "metrics": {"p99": {"value": 812.5, "unit": "ms"}}}"#,
    )
    .expect("readings so far");
    assert_eq!(metrics["p99"].value, Some(812.5));
    assert_eq!(metrics["p99"].unit.as_deref(), Some("ms"));
    for line in [
        r#"{"progress": 40, "message": "warming up"}"#,
        r#"{"metrics": {"p99": {"value": 1}}}"#,
        r#"{"progress": 40, "metrics": {"p99": {"value": "#,
        "progress 40%",
    ] {
        assert!(progress_metrics(line).is_none(), "{line}");
    }
}

#[test]
fn adjust_status_is_the_last_status_line() {
    let out = b"applying\n{\"progress\": 10}\n{\"status\": \"rejected\", \"reason\": \"unstable\", \"message\": \"crashloop\"}\n";
    let status = adjust_status(out).expect("a status");
    assert_eq!(status.status, "rejected");
    assert_eq!(status.message.as_deref(), Some("crashloop"));
    assert!(adjust_status(b"all good\n").is_none());
}

fn hooks(settings: serde_json::Value) -> Hooks {
    let settings: Settings = serde_json::from_value(settings).expect("parses");
    let cx = BuildContext {
        mount: "command".into(),
        servo: "servo".into(),
        base_dir: PathBuf::from("."),
        remote_optimizer: false,
        optimizer_id: None,
    };
    Hooks::build(settings, &cx).expect("builds")
}

#[test]
fn describe_output_overrides_declared_settings_and_adds_described_ones() {
    let h = hooks(serde_json::json!({
        "describe": ["d"],
        "components": {"main": {"settings": {
            "cpu": {"type": "cpu", "min": 0.25, "max": 4, "value": 1},
            "workers": {"type": "int", "min": 1, "max": 8, "value": 2}
        }}}
    }));
    let mut known = h.declared.clone();
    if let Some(w) = find_setting(&mut known, "main", "workers") {
        w.value = Some(SettingValue::Int(6));
    }
    let output: DescribeOutput = serde_json::from_value(serde_json::json!({"components": {
            "main": {"settings": {"cpu": {"value": 2, "max": 8}, "mode": {"type": "enum", "values": ["a", "b"], "value": "a"}}}
        }}))
        .expect("parses");
    let merged = merge(&h.declared, &known, output).expect("merges");
    let main = &merged[0];
    let cpu = main.setting("cpu").expect("cpu");
    assert_eq!(
        (cpu.value.clone(), cpu.max, cpu.kind),
        (Some(SettingValue::Int(2)), Some(8.0), SettingKind::Cpu)
    );
    assert_eq!(
        main.setting("workers").and_then(|s| s.value.clone()),
        Some(SettingValue::Int(6)),
        "last known value kept"
    );
    assert_eq!(
        main.setting("mode").map(|s| s.kind),
        Some(SettingKind::Enum)
    );

    let bare: DescribeOutput = serde_json::from_value(
        serde_json::json!({"components": {"main": {"settings": {"threads": {"value": 3}}}}}),
    )
    .expect("parses");
    let error = merge(&h.declared, &known, bare).expect_err("no domain");
    assert!(
        error.contains("`main.threads`") && error.contains("min"),
        "{error}"
    );
}

#[test]
fn measurements_use_declared_units_series_means_and_report_undeclared_metrics() {
    let h = hooks(serde_json::json!({
        "measure": ["m"],
        "metrics": [{"name": "latency", "unit": "ms"}, {"name": "throughput", "unit": "rps"}]
    }));
    let output: MeasureOutput = serde_json::from_value(serde_json::json!({
        "metrics": {
            "throughput": {"values": [[1, 10.0], [2, 20.0]]},
            "latency": {"value": 12.5},
            "errors": {"value": 1, "unit": "%"}
        },
        "annotations": {"note": "warm", "runs": 3}
    }))
    .expect("parses");
    let run = Finished {
        status: ExitStatus::default(),
        stdout: Vec::new(),
        stderr: crate::util::child::OutputTail::default(),
    };
    let m = h
        .measurement(output, &run, "measure command `m`")
        .expect("a measurement");
    let names: Vec<&str> = m.readings.iter().map(|r| r.metric.name.as_str()).collect();
    assert_eq!(
        names,
        ["latency", "throughput", "errors"],
        "declared order, then the others"
    );
    assert_eq!(
        m.reading("latency").map(|r| r.metric.unit.as_str()),
        Some("ms")
    );
    let throughput = m.reading("throughput").expect("throughput");
    assert_eq!(throughput.value, 15.0);
    assert_eq!(throughput.series.as_ref().map(|s| s.points.len()), Some(2));
    assert_eq!(m.annotations.get("runs").map(String::as_str), Some("3"));
    assert!(
        h.warned
            .lock()
            .expect("not poisoned")
            .contains("metric:errors")
    );
    assert!(
        !h.warned
            .lock()
            .expect("not poisoned")
            .contains("metric:latency")
    );
}

#[test]
fn programs_resolve_against_the_working_dir_and_path() {
    let root = Path::new("/");
    let sh = resolve_program(
        "sh",
        root,
        Some(std::ffi::OsStr::new("/nonexistent:/bin:/usr/bin")),
    );
    assert!(sh.as_ref().is_ok_and(|p| p.ends_with("sh")), "{sh:?}");
    assert!(matches!(
        resolve_program(
            "no-such-program-here",
            root,
            Some(std::ffi::OsStr::new("/bin"))
        ),
        Err(Unresolved::NotOnPath { .. })
    ));
    assert_eq!(
        resolve_program("./missing.sh", Path::new("/tmp"), None),
        Err(Unresolved::Missing(PathBuf::from("/tmp/missing.sh")))
    );
    assert!(matches!(
        resolve_program("etc", root, Some(std::ffi::OsStr::new("/"))),
        Err(Unresolved::NotOnPath { .. })
    ));
    assert_eq!(resolve_program("", root, None), Err(Unresolved::Empty));
}
