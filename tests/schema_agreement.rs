//! The published schemas and the loader agree: an independent JSON Schema validator (the `jsonschema`
//! crate, fed by an independent YAML parser, serde-saphyr) accepts every example and rejects the
//! broken fixtures; and the committed `schemas/` are what the binary prints now.

mod common;

use std::path::Path;

use common::{example, examples, fixture, root, servo};
use serde_json::Value;

fn schema_for(config: &Path) -> Value {
    let output = servo()
        .args(["schema", "-c"])
        .arg(config)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("schema is JSON")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable");
    serde_saphyr::from_multiple::<Value>(&text).expect("parses as YAML")
}

fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .expect("the schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path().as_str()))
        .collect()
}

#[test]
fn every_example_is_valid_under_its_own_schema() {
    for file in examples() {
        let schema = schema_for(&file);
        for doc in documents(&file) {
            let errs = errors(&schema, &doc);
            assert!(errs.is_empty(), "{}: {errs:#?}", file.display());
        }
    }
}

#[test]
fn implicit_examples_are_valid_under_the_all_connectors_schema() {
    let output = servo().args(["schema", "--all"]).output().expect("runs");
    let schema: Value = serde_json::from_slice(&output.stdout).expect("json");
    for name in [
        "wait.yaml",
        "remote-optimizer.yaml",
        "embedded-optimizer.yaml",
    ] {
        for doc in documents(&example(name)) {
            let errs = errors(&schema, &doc);
            assert!(errs.is_empty(), "{name}: {errs:#?}");
        }
    }
}

#[test]
fn broken_configs_are_rejected_by_the_schema_too() {
    for name in [
        "unknown_field",
        "wrong_type",
        "bad_unit",
        "typo_root_key",
        "many_errors",
        "alias_unknown_connector",
    ] {
        let path = fixture(&format!("invalid/{name}.yaml"));
        let output = servo().args(["schema", "--all"]).output().expect("runs");
        let schema: Value = serde_json::from_slice(&output.stdout).expect("json");
        let docs = documents(&path);
        assert!(
            docs.iter().any(|d| !errors(&schema, d).is_empty()),
            "{name} passes the schema but the loader rejects it"
        );
    }
}

#[test]
fn committed_schemas_are_up_to_date() {
    let stale = |path: &Path, args: &[&str]| {
        let output = servo().args(args).output().expect("runs");
        assert!(output.status.success());
        let fresh: Value = serde_json::from_slice(&output.stdout).expect("json");
        let committed: Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        assert!(
            fresh == committed,
            "{} is stale: regenerate with `scripts/schemas.sh` (see README)",
            path.display()
        );
    };
    let schemas = root().join("schemas");
    stale(&schemas.join("servo.schema.json"), &["schema", "--all"]);
    servo_connectors::link();
    let registry = servo_core::connector::registry().expect("registry");
    let mut expected = vec!["servo.schema.json".to_string()];
    for c in registry.all() {
        let file = format!("{}.schema.json", c.name);
        stale(&schemas.join(&file), &["schema", "--connector", c.name]);
        expected.push(file);
    }
    let mut present: Vec<String> = std::fs::read_dir(&schemas)
        .expect("schemas/")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    present.sort();
    expected.sort();
    assert_eq!(
        present, expected,
        "schemas/ holds a file for a connector that no longer exists"
    );
}
