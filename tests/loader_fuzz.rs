//! Property tests: no input reachable by a user panics the loader, whatever the YAML or environment.
//! (The long run — 100k+ cases — is `benches/fuzz-loader.sh`; CI runs a bounded number here.)

use std::path::Path;

use proptest::prelude::*;
use servo::config::{LoadOptions, load_str};

fn registry() -> &'static servo_core::connector::Registry {
    servo_connectors::link();
    servo_core::connector::registry().expect("registry")
}

fn cases() -> u32 {
    std::env::var("SERVO_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512)
}

/// Fragments that steer random text towards the loader's interesting paths.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("wait:".to_string()),
        Just("connectors:".to_string()),
        Just("optimizer:".to_string()),
        Just("settings:".to_string()),
        Just("  measure_enabled: true".to_string()),
        Just("  duration: 5m".to_string()),
        Just("  components: {main: {settings: {cpu: {type: cpu, min: 1, max: 2}}}}".to_string()),
        Just("  - wait".to_string()),
        Just("  a: wait".to_string()),
        Just("---".to_string()),
        Just("&a [*a]".to_string()),
        Just("<<: *x".to_string()),
        Just("  id: o/a".to_string()),
        Just("  token: t".to_string()),
        "[ -~]{0,12}".prop_map(String::from),
        "\\PC{0,6}".prop_map(String::from),
    ];
    prop::collection::vec(token, 0..12).prop_map(|lines| lines.join("\n"))
}

fn env_var() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        Just("SERVO_WAIT".to_string()),
        Just("SERVO_WAIT_DURATION".to_string()),
        Just("SERVO_WAIT_MEASURE_ENABLED".to_string()),
        Just("SERVO_WAIT_COMPONENTS".to_string()),
        Just("SERVO_WAIT_COMPONENTS_MAIN_SETTINGS".to_string()),
        Just("SERVO_OPTIMIZER".to_string()),
        Just("SERVO_OPTIMIZER_TRIALS".to_string()),
        Just("SERVO_OPTIMIZER_TOKEN".to_string()),
        Just("SERVO_SETTINGS_BACKOFF".to_string()),
        "SERVO_[A-Z_0-9]{0,20}".prop_map(String::from),
    ];
    let value = prop_oneof![
        "[ -~]{0,16}".prop_map(String::from),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just("null".to_string()),
        Just(r#"{"duration": 5, "x": {"y": []}}"#.to_string()),
        Just("1e400".to_string()),
        Just("-1".to_string()),
    ];
    (name, value)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_yaml_never_panics(text in yamlish()) {
        let _ = load_str(Path::new("fuzz.yaml"), &text, registry(), &LoadOptions::default());
    }

    #[test]
    fn arbitrary_bytes_never_panic(text in "\\PC{0,200}") {
        let _ = load_str(Path::new("fuzz.yaml"), &text, registry(), &LoadOptions::default());
    }

    #[test]
    fn arbitrary_environments_never_panic(
        env in prop::collection::vec(env_var(), 0..6),
        sets in prop::collection::vec("[a-z_.\\[\\]0-9]{0,20}=[ -~]{0,10}", 0..3),
    ) {
        let text = "wait:\n  measure_enabled: true\n  components:\n    main:\n      settings:\n        cpu: {type: cpu, min: 1, max: 2}\noptimizer:\n  trials: 3\n";
        let options = LoadOptions { env, sets };
        let _ = load_str(Path::new("fuzz.yaml"), text, registry(), &options);
    }
}
