use super::settings::*;
use super::*;
use serde_json::{Value, json};
use servo_core::connector::ConnectorSettings;

fn settings(yaml: Value) -> Settings {
    serde_json::from_value(yaml).expect("settings parse")
}

fn servox_section() -> Value {
    json!({
        "namespace": "apps", "timeout": "2m", "on_failure": "destroy", "settlement": "10s",
        "deployments": [{
            "name": "web", "strategy": "default",
            "replicas": {"min": 1, "max": 4},
            "containers": [{
                "name": "main", "alias": "front",
                "cpu": {"min": "250m", "max": 4, "step": "125m", "get": ["request"], "set": ["request", "limit"]},
                "memory": {"min": "256Mi", "max": "4Gi", "step": "128Mi"},
                "env": [{"name": "WORKERS", "type": "range", "min": 1, "max": 8, "step": 1},
                        {"name": "MODE", "type": "enum", "values": ["fast", "safe"]}]
            }]
        }]
    })
}

#[test]
fn a_servox_section_loads_and_validates() {
    let s = settings(servox_section());
    assert!(s.validate().is_empty(), "{:?}", s.validate());
    assert_eq!(s.on_failure, FailureMode::Destroy);
    assert_eq!(
        s.deployments[0].containers[0].cpu.get,
        vec![Requirement::Request]
    );
    assert!(Settings::example().validate().is_empty());
}

#[test]
fn a_bare_memory_number_is_gibibytes_as_in_servox() {
    let mut section = servox_section();
    section["deployments"][0]["containers"][0]["memory"] =
        json!({"min": 0.25, "max": 4, "step": "128.0MiB"});
    let s = settings(section);
    let memory = &s.deployments[0].containers[0].memory;
    assert_eq!(memory.min, Memory::from_bytes(256 << 20));
    assert_eq!(memory.max, Memory::from_bytes(4 << 30));
    assert_eq!(memory.step, Memory::from_bytes(128 << 20));
    assert!(s.validate().is_empty(), "{:?}", s.validate());
}

#[test]
fn cost_prices_requested_resources_times_replicas() {
    let deployment: Deployment = serde_json::from_value(json!({"spec": {"replicas": 3,
        "selector": {}, "template": {"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}},
            {"name": "c"}]}}}}))
    .expect("a deployment");
    let prices = Prices {
        cpu: 0.04,
        memory: 0.01,
    };
    let expected = 3.0 * ((0.5 + 1.0) * 0.04 + (1.0 + 0.5) * 0.01);
    assert!((hourly_cost(&deployment, &prices) - expected).abs() < 1e-12);
}

#[test]
fn validate_reports_inverted_ranges_and_canary() {
    let mut section = servox_section();
    section["deployments"][0]["strategy"] = json!({"type": "canary", "alias": "tuning"});
    section["create_tuning_pod"] = json!(false);
    section["deployments"][0]["replicas"] = json!({"min": 5, "max": 2});
    let problems = settings(section).validate();
    let paths: Vec<String> = problems.iter().map(|p| p.path.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(paths.iter().any(|p| p.contains("strategy")), "{paths:?}");
    assert!(paths.iter().any(|p| p.contains("replicas")), "{paths:?}");
}

#[test]
fn one_patch_per_deployment_writes_the_configured_requirements() {
    let connector = Kubernetes {
        settings: settings(servox_section()),
        kubeconfig: None,
        api: OnceCell::new(),
        owner: OnceCell::new(),
    };
    let target = connector.targets().next().expect("a target");
    let adjust = |setting: &str, value: SettingValue| Adjustment {
        component: "front".into(),
        setting: setting.into(),
        value,
    };
    let patch = connector
        .patch_for(
            &target,
            &[
                adjust("cpu", SettingValue::Float(0.75)),
                adjust("mem", SettingValue::Float(0.5)),
                adjust("replicas", SettingValue::Int(3)),
                adjust("WORKERS", SettingValue::Float(4.0)),
            ],
        )
        .expect("valid")
        .expect("a patch");
    assert_eq!(
        patch,
        json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{
            "resources": {"requests": {"cpu": "750m", "memory": "512Mi"}, "limits": {"cpu": "750m", "memory": "512Mi"}},
            "env": [{"name": "WORKERS", "value": "4"}],
            "name": "main"}]}}}})
    );
    assert!(connector.patch_for(&target, &[]).expect("valid").is_none());
    let err = connector
        .patch_for(&target, &[adjust("cpuu", SettingValue::Float(1.0))])
        .expect_err("unknown");
    assert!(err.to_string().contains("no setting `cpuu`"), "{err}");
}
