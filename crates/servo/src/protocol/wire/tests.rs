//! The wire shapes and conversions against ServoX's examples.

use serde_json::json;
use servo_core::types::{Description, Domain, Measurement, Setting, SettingKind, SettingValue};

use super::*;
use servo_core::types::{Component, Metric, Reading, TimeSeries};
use servo_core::units::{Cpu, Memory};

fn app() -> Description {
    Description {
        components: vec![Component::new(
            "web",
            vec![
                Setting::cpu(
                    "cpu",
                    Cpu::from_millicores(250),
                    Cpu::from_millicores(4000),
                    Cpu::from_millicores(125),
                )
                .with_value(1.0),
                Setting::memory(
                    "mem",
                    Memory::from_bytes(256 << 20),
                    Memory::from_bytes(4 << 30),
                    Memory::from_bytes(128 << 20),
                )
                .with_value(2.0),
                Setting::replicas("replicas", 1, 4, 1).with_value(2i64),
                Setting::enumeration("mode", vec!["a".into(), "b".into()]).with_value("a"),
                Setting::int("fixed", 1, 9, 1).with_value(3i64).pinned(true),
            ],
        )],
        metrics: vec![Metric::new("throughput", "rps")],
    }
}

#[test]
fn description_has_servox_shape_with_cores_gib_and_integral_replicas() {
    let d = description(&app());
    let web = &d["application"]["components"]["web"]["settings"];
    assert_eq!(
        web["cpu"],
        json!({"type": "range", "min": 0.25, "max": 4.0, "step": 0.125, "value": 1.0, "unit": "cores", "pinned": false})
    );
    assert_eq!(web["mem"]["unit"], "GiB");
    assert_eq!(web["mem"]["min"], 0.25);
    assert_eq!(
        web["replicas"],
        json!({"type": "range", "min": 1, "max": 4, "step": 1, "value": 2, "pinned": false})
    );
    assert_eq!(
        web["mode"],
        json!({"type": "enum", "values": ["a", "b"], "value": "a", "unit": "", "pinned": false})
    );
    assert_eq!(
        d["measurement"]["metrics"]["throughput"],
        json!({"unit": "rps"})
    );
}

#[test]
fn commands_decode_with_lenient_durations_and_metric_shapes() {
    let cmd: Command = serde_json::from_value(json!({
        "cmd": "MEASURE", "cmd_uid": "u1",
        "param": {"metrics": {"throughput": {}}, "control": {"duration": "5m", "past": 10}}
    }))
    .expect("decodes");
    assert_eq!(cmd.cmd, CommandName::Measure);
    let p: MeasureParam = param(cmd.param).expect("param decodes");
    assert_eq!(p.metrics, vec!["throughput"]);
    let control = Control::from(p.control.unwrap_or_default());
    assert_eq!(control.duration, Duration::from_secs(300));
    assert_eq!(control.delay, Duration::from_secs(10));

    let p: MeasureParam = param(Some(
        json!({"metrics": ["a", "b"], "control": {"duration": 1.5}}),
    ))
    .expect("ok");
    assert_eq!(p.metrics, vec!["a", "b"]);
    assert_eq!(
        p.control.and_then(|c| c.duration),
        Some(Duration::from_millis(1500))
    );
    let p: SleepParam = param(Some(json!({"duration": 7, "data": {"reason": "x"}}))).expect("ok");
    assert_eq!(p.duration, Some(Duration::from_secs(7)));
    let err = param::<SleepParam>(Some(json!({"duration": "soon"}))).unwrap_err();
    assert!(err.contains("duration"), "{err}");
}

#[test]
fn adjustments_are_typed_by_the_description_and_checked() {
    let state: State = serde_json::from_value(json!({"application": {"components": {"web": {"settings": {
        "cpu": {"value": 0.5}, "mem": {"value": "512Mi"}, "replicas": {"value": 3}, "mode": {"value": "b"},
        "fixed": {"value": 3}
    }}}}}))
    .expect("state decodes");
    let adjusted = adjustments(&state, &app()).expect("valid");
    let text: Vec<String> = adjusted.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "web.cpu=0.5",
            "web.fixed=3",
            "web.mem=0.5",
            "web.mode=b",
            "web.replicas=3"
        ]
    );
    assert_eq!(adjusted[4].value, SettingValue::Int(3));

    let bad: State = serde_json::from_value(json!({"application": {"components": {
        "web": {"settings": {"cpu": {"value": 9}, "fixed": {"value": 4}, "nope": {"value": 1}}},
        "db": {"settings": {}}
    }}}))
    .expect("state decodes");
    let err = adjustments(&bad, &app()).unwrap_err();
    assert!(err.contains("no component is named `db`"), "{err}");
    assert!(err.contains("web.cpu: 9 is out of range"), "{err}");
    assert!(err.contains("web.fixed is pinned"), "{err}");
    assert!(err.contains("no setting `nope`"), "{err}");
}

#[test]
fn measurement_sends_series_as_values_and_scalars_as_value() {
    let m = Measurement {
        readings: vec![
            Reading::new(Metric::new("throughput", "rps"), 49.0).with_series(TimeSeries {
                id: Some("1".into()),
                points: vec![(1.0, 48.0), (2.0, 50.0)],
            }),
            Reading::new(Metric::new("latency", "ms"), 41.7),
        ],
        annotations: BTreeMap::from([("note".to_string(), "x".to_string())]),
    };
    let (metrics, annotations) = measurement(&m);
    assert_eq!(
        metrics,
        json!({
            "throughput": {"unit": "rps", "values": [{"id": "1", "data": [[1.0, 48.0], [2.0, 50.0]]}]},
            "latency": {"unit": "ms", "value": 41.7}
        })
    );
    assert_eq!(annotations, json!({"note": "x"}));
}

#[test]
fn requests_send_null_param_and_uid_like_servox() {
    let r = Request {
        event: EventName::WhatsNext,
        param: None,
        servo_uid: None,
    };
    assert_eq!(
        serde_json::to_value(&r).expect("serializes"),
        json!({"event": "WHATS_NEXT", "param": null, "servo_uid": null})
    );
    assert_eq!(EventName::WhatsNext.backoff_key(), "whats_next");
    let status =
        Status::failure(statuses::REJECTED, "invalid", "bad").with_cmd_uid(Some("u".into()));
    assert_eq!(
        serde_json::to_value(&status).expect("serializes"),
        json!({"status": "rejected", "reason": "invalid", "message": "bad", "cmd_uid": "u"})
    );
}

#[test]
fn descriptions_read_back_from_the_wire_keep_domains_and_values() {
    let original = app();
    let parsed = parse_description(&description(&original)).expect("parses");
    let web = parsed.component("web").expect("web");
    let cpu = web.setting("cpu").expect("cpu");
    assert_eq!(
        (cpu.min, cpu.max, cpu.step),
        (Some(0.25), Some(4.0), Some(0.125))
    );
    assert_eq!(cpu.value, Some(SettingValue::Float(1.0)));
    assert_eq!(cpu.unit.as_deref(), Some("cores"));
    let replicas = web.setting("replicas").expect("replicas");
    assert_eq!(replicas.kind, SettingKind::Replicas);
    assert_eq!(replicas.value, Some(SettingValue::Int(2)));
    let mode = web.setting("mode").expect("mode");
    assert_eq!(
        mode.domain(),
        Domain::Categorical(&["a".to_string(), "b".to_string()])
    );
    assert!(web.setting("fixed").expect("fixed").pinned);
    assert_eq!(parsed.metrics, vec![Metric::new("throughput", "rps")]);

    let err = parse_description(&json!({"application": {"components": {"web": {"settings": {
        "cpu": {"type": "range", "min": "1", "max": 2}}}}}}))
    .unwrap_err();
    assert!(
        err.contains("application.components.web.settings.cpu"),
        "{err}"
    );
    let err = parse_description(&json!({"application": {"components": {"web": {"settings": {
        "x": {"type": "dial"}}}}}}))
    .unwrap_err();
    assert!(err.contains("unknown setting type `dial`"), "{err}");
    assert!(
        parse_description(&json!({}))
            .expect("empty is fine")
            .components
            .is_empty()
    );
}

#[test]
fn measurements_read_back_as_values_or_series_means() {
    let readings = parse_measurement(&json!({
        "throughput": {"unit": "rps", "values": [{"id": "1", "data": [[1, 48.0], [2, "52"]]}]},
        "latency": {"unit": "ms", "value": 41.7},
        "empty": {"unit": "ms", "values": []},
    }))
    .expect("parses");
    assert_eq!(readings.reading("throughput").map(|r| r.value), Some(50.0));
    assert_eq!(readings.reading("latency").map(|r| r.value), Some(41.7));
    assert!(readings.reading("empty").is_none());
    assert!(parse_measurement(&json!([1])).is_err());
}
