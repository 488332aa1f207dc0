//! servo is a drop-in for ServoX: every config ServoX 25.3.0 itself writes loads, and every key in
//! it is understood.
//!
//! The configs come from ServoX, not from us: its `servo generate CONNECTOR` and `servo generate
//! --defaults CONNECTOR` run in the virtualenv the interop test installs (`tests/common/servox.rs`,
//! PyPI `servox==25.3.0`), and the `servo.yaml` its official Helm chart renders into its ConfigMap
//! with its default values, for both `connectionSettingsType`s (`tests/fixtures/servox/helm/`, with
//! the script that regenerates them).
//!
//! For each: `servo validate` succeeds, then `servo config -o json` shows that every key of the
//! file was understood: each key path of the file is in the effective config (honoured), or a
//! warning located at it says why it is accepted and ignored. Nothing is dropped silently.
//!
//! The cases are a table, one line each: every connector ServoX 25.3.0 ships, in both its
//! `generate` forms, and both Helm renderings.
#![cfg(unix)]

#[path = "common/kube_api.rs"]
mod kube_api;
#[path = "common/servox.rs"]
mod servox;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// Where a config comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// `servo generate CONNECTOR` of ServoX.
    Generate(&'static str),
    /// `servo generate --defaults CONNECTOR` of ServoX.
    Defaults(&'static str),
    /// The Helm chart's rendered `servo.yaml` (`tests/fixtures/servox/helm/NAME.servo.yaml`).
    Helm(&'static str),
}

/// Configs that load today, every key understood.
const CASES: &[Source] = &[
    Source::Generate("vegeta"),
    Source::Defaults("vegeta"),
    Source::Generate("prometheus"),
    Source::Defaults("prometheus"),
    Source::Generate("wait"),
    Source::Defaults("wait"),
    Source::Generate("kubernetes"),
    Source::Defaults("kubernetes"),
    Source::Generate("kube_metrics"),
    Source::Defaults("kube_metrics"),
    Source::Generate("scripts"),
    Source::Defaults("scripts"),
    Source::Generate("opsani_dev"),
    Source::Defaults("opsani_dev"),
    Source::Helm("static"),
    Source::Helm("sidecar"),
];

impl Source {
    fn label(self) -> String {
        match self {
            Source::Generate(c) => format!("generate {c}"),
            Source::Defaults(c) => format!("generate --defaults {c}"),
            Source::Helm(t) => format!("helm {t}"),
        }
    }

    /// Writes the config into `dir` and returns its path.
    fn write(self, dir: &Path) -> PathBuf {
        let (connector, defaults) = match self {
            Source::Helm(kind) => {
                let name = format!("{kind}.servo.yaml");
                let from = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/servox/helm")
                    .join(&name);
                let text = std::fs::read_to_string(&from)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
                let to = dir.join(format!("helm-{name}"));
                std::fs::write(&to, text)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
                return to;
            }
            Source::Generate(c) => (c, false),
            Source::Defaults(c) => (c, true),
        };
        let file = dir.join(format!(
            "{connector}{}.yaml",
            if defaults { "-defaults" } else { "" }
        ));
        let mut cmd = Command::new(servox::servox_bin());
        cmd.current_dir(dir).arg("generate");
        if defaults {
            cmd.arg("--defaults");
        }
        let out = cmd
            .args(["--quiet", "--force", "--file"])
            .arg(&file)
            .arg(connector)
            .env_remove("SERVO_CONFIG_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ServoX's servo: {e}"));
        assert!(
            out.status.success() && file.exists(),
            "ServoX `{}` failed ({}): {}",
            self.label(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        file
    }
}

fn servo(args: &[&str], config: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_servo"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SERVO_") || key.starts_with("OPSANI_") || key.starts_with("APPD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1")
        .arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run servo: {e}"))
}

/// Every key path of a YAML value, as `servo config` prints paths: `a.b[0].c`. Lists of scalars
/// are one path; a mapping's key is a path even when its value is a mapping.
fn key_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.push(path.clone());
                key_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if item.is_object() {
                    key_paths(item, &format!("{prefix}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The value at a path written as [`key_paths`] writes it.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = value;
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        at = at.get(key)?;
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            at = at.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(at)
}

/// Validates one config and checks that `servo config` understood each of its keys; returns
/// what went wrong, if anything.
fn understood(source: Source, dir: &Path) -> Result<(), String> {
    let file = source.write(dir);
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let label = source.label();
    let validate = servo(&["validate"], &file);
    let stderr = String::from_utf8_lossy(&validate.stderr).into_owned();
    if !validate.status.success() {
        return Err(format!(
            "{label}: servo validate failed ({}):\n{stderr}{}\n--- the config:\n{text}",
            validate.status,
            String::from_utf8_lossy(&validate.stdout)
        ));
    }
    let config = servo(&["config", "-o", "json"], &file);
    if !config.status.success() {
        return Err(format!(
            "{label}: servo config failed: {}",
            String::from_utf8_lossy(&config.stderr)
        ));
    }
    let effective: Value = serde_json::from_slice(&config.stdout)
        .map_err(|e| format!("{label}: servo config -o json is not JSON: {e}"))?;
    // As PyYAML reads it: the Helm chart writes `optimizer.url` twice.
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    let written: Value = serde_saphyr::from_str_with_options(&text, options)
        .map_err(|e| format!("{label}: the config is not YAML: {e}"))?;
    let mut paths = Vec::new();
    key_paths(&written, "", &mut paths);
    let mut lost = Vec::new();
    for path in &paths {
        // `connectors: [prometheus]` is understood when its connectors are mounted.
        if path == "connectors" {
            let listed = written["connectors"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for name in listed.iter().filter_map(Value::as_str) {
                if effective.get(name).is_none() {
                    lost.push(format!("connectors: {name} is not mounted"));
                }
            }
            continue;
        }
        let warned = stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(&format!(": {path}: ")));
        if lookup(&effective, path).is_none() && !warned {
            lost.push(path.clone());
        }
    }
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{label}: keys neither in `servo config` nor warned about: {}\n--- validate said:\n{stderr}--- servo config:\n{}",
            lost.join(", "),
            String::from_utf8_lossy(&config.stdout)
        ))
    }
}

#[test]
fn every_config_servox_writes_loads_and_every_key_is_understood() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = CASES
            .iter()
            .map(|&case| scope.spawn(move || understood(case, dir)))
            .collect();
        runs.into_iter()
            .filter_map(|run| run.join().expect("a case panicked").err())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} ServoX configs:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

/// ServoX's `generate opsani_dev` output, unchanged, runs `servo check` against a fake cluster
/// holding what it names (Deployment `app-deployment` with container `main`, Service `app`, in
/// `default`): every Kubernetes check passes, up to the Prometheus at its default address.
#[test]
fn servox_opsani_dev_config_checks_a_cluster_as_generated() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = Source::Generate("opsani_dev").write(tmp.path());
    let api = kube_api::FakeApi::start(vec![serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app-deployment", "namespace": "default", "generation": 1},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [
                {"name": "main", "image": "example/app:1",
                 "ports": [{"name": "http", "containerPort": 8080}],
                 "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}]}}}
    })]);
    api.cluster().add_service(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {"selector": {"app": "app"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }));
    let kubeconfig = tmp.path().join("kubeconfig");
    let user = serde_json::json!({"token": kube_api::TOKEN});
    std::fs::write(&kubeconfig, api.kubeconfig(user).to_string()).expect("kubeconfig");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_servo"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SERVO_") || key.starts_with("OPSANI_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", &kubeconfig)
        .args(["check", "-o", "json", "-c"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("servo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "servo check -o json ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = report["checks"].as_array().expect("checks");
    let prometheus = checks
        .iter()
        .position(|c| c["name"] == "Prometheus is accessible")
        .unwrap_or_else(|| panic!("the checks reach Prometheus: {stdout}"));
    // Optimizer, 3 of the cluster, 7 of the Deployment, 4 of the Service, then Prometheus.
    assert_eq!(prometheus, 14, "{stdout}");
    for check in &checks[..prometheus] {
        assert_eq!(check["success"], true, "{check}");
    }
}
