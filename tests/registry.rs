//! The binary links every built-in connector (inventory only sees linked crates).

mod common;

/// The built-in connectors, sorted by name.
const BUILT_IN: [&str; 9] = [
    "command",
    "kube_metrics",
    "kubernetes",
    "opsani_dev",
    "process",
    "prometheus",
    "scripts",
    "vegeta",
    "wait",
];

#[test]
fn the_registry_holds_exactly_the_built_in_connectors_sorted() {
    servo_connectors::link();
    let registry = servo_core::connector::registry().expect("no duplicate connector names");
    let names: Vec<&str> = registry.names().collect();
    assert_eq!(names, BUILT_IN);
}

#[test]
fn servo_connectors_lists_them_as_json() {
    let output = common::servo()
        .args(["connectors", "-o", "json"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, BUILT_IN);
    assert_eq!(listed[8]["default_key"], "wait");
}
