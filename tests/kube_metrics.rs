//! The `kube_metrics` connector through the real binary, against the fake API server of
//! `common/kube_api.rs` and its fake metrics-server (`metrics.k8s.io/v1beta1` PodMetrics in the
//! API's JSON). The test sets each pod's usage in metrics-server's own units (nanocores, Ki) and
//! checks that `servo measure` reports it in cores, GiB and percent of the requests.

mod common;
#[path = "common/kube_api.rs"]
mod kube_api;

use std::path::PathBuf;

use common::run;
use kube_api::{FakeApi, TOKEN};
use serde_json::{Value, json};

fn web_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "generation": 1},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "main", "image": "example/web:1",
                     "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                   "limits": {"cpu": "1", "memory": "1Gi"}}},
                    {"name": "envoy", "image": "example/envoy:1"}
                ]}
            }
        }
    })
}

/// The tuning Pod the `kubernetes` connector's canary strategy makes: the Deployment's labels plus
/// `opsani_role: tuning`. Its memory limit is below the fake kubelet's OOM threshold, so it
/// restarts (3 times).
fn tuning_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-tuning", "namespace": "shop",
                     "labels": {"app": "web", "opsani_role": "tuning"}},
        "spec": {"containers": [
            {"name": "main", "image": "example/web:1",
             "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                           "limits": {"memory": "192Mi"}}},
            {"name": "envoy", "image": "example/envoy:1"}
        ]}
    })
}

/// The fake cluster with the Deployment's two pods (`web-1-0`, `web-1-1`), optionally the tuning
/// Pod, and metrics-server usage for each.
fn start(with_tuning_pod: bool) -> FakeApi {
    let api = FakeApi::start(vec![web_deployment()]);
    {
        let mut cluster = api.cluster();
        let pods: Vec<String> = cluster
            .pods("shop")
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        assert_eq!(pods, ["web-1-0", "web-1-1"], "the fake's pod names");
        let m = &mut cluster.metrics;
        m.set("shop", "web-1-0", "main", "250000000n", "262144Ki");
        m.set("shop", "web-1-0", "envoy", "5m", "20Mi");
        m.set("shop", "web-1-1", "main", "150m", "393216Ki");
        m.set("shop", "web-1-1", "envoy", "7m", "21Mi");
        m.set("shop", "web-tuning", "main", "100000u", "131072Ki");
        m.set("shop", "web-tuning", "envoy", "3m", "19Mi");
        if with_tuning_pod {
            cluster.add_pod(tuning_pod());
        }
    }
    api
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

/// A kubeconfig for the fake and a config whose `kube_metrics` section is `section`.
fn setup(api: &FakeApi, section: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("kubeconfig"),
        api.kubeconfig(json!({"token": TOKEN})).to_string(),
    )
    .expect("write kubeconfig");
    let config = dir.path().join("servo.yaml");
    std::fs::write(&config, section).expect("write config");
    Setup { _dir: dir, config }
}

const SECTION: &str =
    "kube_metrics:\n  kubeconfig: kubeconfig\n  namespace: shop\n  name: web\n  container: main\n";

fn measure(api: &FakeApi, section: &str, args: &[&str]) -> Value {
    let s = setup(api, section);
    let mut all = vec!["measure", "-o", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(&s.config, &all);
    assert_eq!(code, 0, "{stdout}{stderr}");
    serde_json::from_str(&stdout).expect("json")
}

fn value(m: &Value, metric: &str) -> Option<f64> {
    m["metrics"][metric]["value"].as_f64()
}

fn assert_close(m: &Value, metric: &str, expected: f64, unit: &str) {
    let found = value(m, metric).unwrap_or_else(|| panic!("no `{metric}` in {m:#}"));
    assert!(
        (found - expected).abs() < 1e-9,
        "{metric}: {found}, expected {expected}: {m:#}"
    );
    assert_eq!(m["metrics"][metric]["unit"], unit, "{metric}");
}

#[test]
fn measure_returns_the_usage_the_metrics_server_serves_in_cores_gib_and_percent() {
    let api = start(true);
    let m = measure(&api, SECTION, &[]);
    // Main pods: 250m and 150m of a 500m request, 256Mi and 384Mi of a 512Mi request; the envoy
    // container and the tuning Pod (which carries the Deployment's labels too) do not count.
    assert_close(&m, "main_cpu_usage", 0.2, "cores");
    assert_close(&m, "main_mem_usage", 0.3125, "GiB");
    assert_close(&m, "main_cpu_saturation", 40.0, "%");
    assert_close(&m, "main_mem_saturation", 62.5, "%");
    assert_close(&m, "main_cpu_request", 0.5, "cores");
    assert_close(&m, "main_cpu_limit", 1.0, "cores");
    assert_close(&m, "main_mem_request", 0.5, "GiB");
    assert_close(&m, "main_mem_limit", 1.0, "GiB");
    assert_close(&m, "main_pod_restart_count", 0.0, "");
    assert!(
        m["annotations"]["main_cpu_usage"]
            .as_str()
            .is_some_and(|a| a.contains("web-1-0") && a.contains("web-1-1")),
        "{m:#}"
    );
    // The tuning Pod: 100000u (100m) of 250m, 128Mi of 128Mi, OOM-killed 3 times, no cpu limit.
    assert_close(&m, "tuning_cpu_usage", 0.1, "cores");
    assert_close(&m, "tuning_mem_usage", 0.125, "GiB");
    assert_close(&m, "tuning_cpu_saturation", 40.0, "%");
    assert_close(&m, "tuning_mem_saturation", 100.0, "%");
    assert_close(&m, "tuning_cpu_request", 0.25, "cores");
    assert_close(&m, "tuning_mem_request", 0.125, "GiB");
    assert_close(&m, "tuning_mem_limit", 0.1875, "GiB");
    assert_close(&m, "tuning_pod_restart_count", 3.0, "");
    assert!(
        value(&m, "tuning_cpu_limit").is_none(),
        "no limit, no reading: {m:#}"
    );

    let requests = api.cluster().metrics.requests.clone();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/pods?") && r.contains("opsani_role%21%3Dtuning")),
        "main pods are listed without the tuning Pod: {requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.ends_with("/pods/web-tuning")),
        "{requests:?}"
    );
}

#[test]
fn a_window_is_read_every_collection_period_into_a_series() {
    let api = start(false);
    let section = format!("{SECTION}  metric_collection_frequency: 100ms\n");
    let m = measure(&api, &section, &["main_cpu_usage", "--duration", "2s"]);
    let series = m["metrics"]["main_cpu_usage"]["series"]
        .as_array()
        .expect("a series");
    assert!(series.len() >= 2, "several reads: {m:#}");
    for point in series {
        assert!(
            (point[1].as_f64().unwrap_or_default() - 0.2).abs() < 1e-9,
            "{m:#}"
        );
    }
    assert_close(&m, "main_cpu_usage", 0.2, "cores");
}

#[test]
fn named_metrics_read_only_what_they_need() {
    let api = start(true);
    let m = measure(&api, SECTION, &["main_mem_request"]);
    assert_eq!(m["metrics"].as_object().map(|o| o.len()), Some(1), "{m:#}");
    assert_close(&m, "main_mem_request", 0.5, "GiB");
    let requests = api.cluster().metrics.requests.clone();
    assert!(
        requests.is_empty(),
        "requests come from the template: {requests:?}"
    );
}

#[test]
fn without_a_tuning_pod_only_its_restart_count_is_reported_as_zero() {
    let api = start(false);
    let m = measure(&api, SECTION, &[]);
    assert_close(&m, "tuning_pod_restart_count", 0.0, "");
    for metric in [
        "tuning_cpu_usage",
        "tuning_mem_request",
        "tuning_cpu_saturation",
    ] {
        assert!(value(&m, metric).is_none(), "{metric}: {m:#}");
    }
    assert_close(&m, "main_cpu_usage", 0.2, "cores");
}

#[test]
fn check_passes_against_the_fake_metrics_server() {
    let api = start(true);
    let s = setup(&api, SECTION);
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for name in [
        "Deployment \"web\" is readable",
        "Metrics API Permissions",
        "Metrics API connectivity",
        "Container configured or target is single container application",
    ] {
        assert!(stdout.contains(name), "{name}: {stdout}");
    }
}

#[test]
fn check_fails_without_metrics_server_or_permission_and_says_what_to_do() {
    let api = start(false);
    api.cluster().metrics.missing = true;
    api.cluster().denied.push("list pods".into());
    let s = setup(&api, SECTION);
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("install metrics-server"), "{stdout}");
    assert!(
        stdout.contains("not allowed to \"list\" resource \"pods\" in group \"metrics.k8s.io\""),
        "{stdout}"
    );
}

#[test]
fn check_and_measure_name_the_containers_when_none_is_configured() {
    let api = start(false);
    let section = SECTION.replace("  container: main\n", "");
    let s = setup(&api, &section);
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("main, envoy"), "{stdout}");
    let (code, _, stderr) = run(&s.config, &["measure"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("set `container`"), "{stderr}");
}

/// ServoX 25.3.0's `servo generate --defaults kube_metrics` section (tests/fixtures/servox/kube_metrics), pointed
/// at the fake: it loads and its checks pass.
#[test]
fn servox_generated_section_checks_against_the_fake_cluster() {
    let api = start(true);
    let generated = std::fs::read_to_string(common::fixture(
        "servox/kube_metrics/generate-defaults.yaml",
    ))
    .expect("the fixture");
    let section = generated
        .replace("namespace: default", "namespace: shop")
        .replace("name: app", "name: web")
        .replace("container: app_container_name", "container: main")
        .replace(
            "\nkube_metrics:\n",
            "\nkube_metrics:\n  kubeconfig: kubeconfig\n",
        );
    let s = setup(&api, &section);
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 0, "{stdout}{stderr}\n{section}");
}

#[test]
fn mistakes_in_the_section_are_reported_at_their_key() {
    let api = start(false);
    let s = setup(
        &api,
        "kube_metrics:\n  namespace: Shop\n  name: web\n  kind: Deploy\n  metrics_to_collect: [main_cpu_usge]\n",
    );
    let (code, _, stderr) = run(&s.config, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("kind"), "{stderr}");
    assert!(stderr.contains("main_cpu_usge"), "{stderr}");
    let s = setup(&api, "kube_metrics:\n  namespace: Shop\n  name: web\n");
    let (code, _, stderr) = run(&s.config, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a valid namespace name"), "{stderr}");
}

#[test]
fn a_remote_servox_optimizer_gets_cores_and_gib_without_a_unit_as_servox_sends_them() {
    let api = start(false);
    let section = format!(
        "optimizer:\n  id: example.com/app\n  token: not-used\n  base_url: http://127.0.0.1:9/\n{SECTION}"
    );
    let m = measure(
        &api,
        &section,
        &["main_cpu_usage", "main_mem_request", "main_cpu_saturation"],
    );
    assert_close(&m, "main_cpu_usage", 0.2, "");
    assert_close(&m, "main_mem_request", 0.5, "");
    assert_close(&m, "main_cpu_saturation", 40.0, "%");
}

#[test]
fn servo_run_cuts_short_a_trial_whose_pods_use_far_more_memory_than_its_slo() {
    let api = start(false);
    // The pods hold 0.25 and 0.375 GiB: far over a 0.1 GiB ceiling at every trial. The baseline is
    // measured whole (it is the reference); the other trial stops after two reads.
    let section = format!(
        "{}command:
  components:
    app:
      settings:
        workers: {{ type: int, min: 1, max: 16, step: 1, value: 8 }}
  adjust: [sh, -c, 'true']
{SECTION}  metric_collection_frequency: 500ms
",
        common::two_trial_study("app.workers", "main_mem_usage < 0.1GiB", "6s")
    );
    let s = setup(&api, &section);
    let trial = common::run_two_trials(&s.config);
    let (cut, after) = common::cut_short(&trial);
    assert!(cut.starts_with("`main_mem_usage < 0.1GiB` read "), "{cut}");
    assert!(after < 4.0, "stopped {after} s into a 6 s window: {cut}");
}
