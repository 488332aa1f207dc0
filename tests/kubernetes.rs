//! The `kubernetes` connector through the real binary, against the fake API server of
//! `common/kube_api.rs` (real Kubernetes JSON through the k8s-openapi types, watches from a
//! `resourceVersion`, a controller loop that rolls Deployments out). Its kubelet decides each pod's
//! fate from the pod spec:
//!
//! - a container whose memory limit is below 256Mi is OOM-killed and crash-loops;
//! - a container requesting more than 2 cores cannot be scheduled (`Insufficient cpu`);
//! - with `progress_deadline` set, any new template ends in `ProgressDeadlineExceeded`;
//! - with `stuck` set, the controller never observes a new template.
//!
//! servo reaches it through a generated kubeconfig with a bearer token (or an `exec` credential
//! plugin), which the fake checks.

#[path = "common/background.rs"]
mod background;
mod common;
#[path = "common/fake_optimizer.rs"]
mod fake_optimizer;
#[path = "common/kube_api.rs"]
mod kube_api;

use std::path::PathBuf;
use std::time::{Duration, Instant};

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
                                   "limits": {"cpu": "1", "memory": "1Gi"}},
                     "env": [{"name": "WORKERS", "value": "2"}]},
                    {"name": "sidecar", "image": "example/proxy:1"}
                ]}
            }
        }
    })
}

fn start() -> FakeApi {
    FakeApi::start(vec![web_deployment()])
}

trait Web {
    fn deployment(&self) -> Value;
    fn deployment_named(&self, name: &str) -> Value;
    /// The writes that changed something (PATCH, PUT, POST, DELETE answered 2xx).
    fn accepted(&self) -> Vec<kube_api::Write>;
}

impl Web for FakeApi {
    fn deployment(&self) -> Value {
        self.cluster()
            .deployment("shop", "web")
            .expect("the web deployment")
    }

    fn deployment_named(&self, name: &str) -> Value {
        self.cluster()
            .deployment("shop", name)
            .expect("the deployment")
    }

    fn accepted(&self) -> Vec<kube_api::Write> {
        self.writes()
            .into_iter()
            .filter(|w| (200..300).contains(&w.status))
            .collect()
    }
}

/// A temporary directory with a kubeconfig pointing at the fake and a servo config using it.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(api: &FakeApi, extra: Value) -> Setup {
    setup_with_user(api, json!({"token": TOKEN}), extra)
}

fn setup_with_user(api: &FakeApi, user: Value, extra: Value) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("kubeconfig"),
        api.kubeconfig(user).to_string(),
    )
    .expect("write kubeconfig");
    let mut section = json!({
        "kubeconfig": "kubeconfig",
        "namespace": "shop",
        "timeout": "10s",
        "deployments": [{
            "name": "web",
            "replicas": {"min": 1, "max": 4},
            "containers": [{
                "name": "main",
                "cpu": {"min": "250m", "max": 4, "step": "125m"},
                "memory": {"min": "128Mi", "max": "4Gi", "step": "128Mi"},
                "env": [{"name": "WORKERS", "type": "range", "min": 1, "max": 8, "step": 1}],
            }],
        }],
    });
    for (k, v) in extra.as_object().expect("a mapping") {
        section[k] = v.clone();
    }
    let config = dir.path().join("servo.yaml");
    std::fs::write(&config, json!({"kubernetes": section}).to_string()).expect("write config");
    Setup { dir, config }
}

fn setting<'a>(description: &'a Value, component: &str, name: &str) -> &'a Value {
    common::setting(description, component, name)
        .map(|s| &s["value"])
        .unwrap_or(&Value::Null)
}

#[test]
fn describe_reports_the_live_values_of_each_container() {
    let api = start();
    let s = setup(&api, json!({}));
    let (code, stdout, stderr) = run(&s.config, &["describe", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let d: Value = serde_json::from_str(&stdout).expect("json");
    // `get` defaults to [request, limit]: the request wins when both are set.
    assert_eq!(setting(&d, "web/main", "cpu"), &json!(0.5));
    assert_eq!(setting(&d, "web/main", "mem"), &json!(0.5));
    assert_eq!(setting(&d, "web/main", "replicas"), &json!(2));
    assert_eq!(setting(&d, "web/main", "WORKERS"), &json!(2.0));
    assert!(api.accepted().is_empty(), "describe must not write");
}

#[test]
fn adjust_sends_one_strategic_merge_patch_and_waits_for_the_rollout() {
    let api = start();
    let s = setup(&api, json!({}));
    let started = Instant::now();
    let (code, stdout, stderr) = run(
        &s.config,
        &[
            "adjust",
            "web/main.cpu=750m",
            "web/main.mem=1",
            "web/main.replicas=3",
            "web/main.WORKERS=4",
            "--settlement",
            "1s",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the settlement was held"
    );
    let patches = api.accepted();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].method, "PATCH");
    assert_eq!(
        patches[0].content_type,
        "application/strategic-merge-patch+json"
    );
    assert_eq!(
        patches[0].body,
        json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{
            "resources": {"requests": {"cpu": "750m", "memory": "1Gi"},
                          "limits": {"cpu": "750m", "memory": "1Gi"}},
            "env": [{"name": "WORKERS", "value": "4"}],
            "name": "main"}]}}}})
    );
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        setting(&report["description"], "web/main", "cpu"),
        &json!(0.75)
    );
    assert_eq!(
        setting(&report["description"], "web/main", "replicas"),
        &json!(3)
    );
    // The sidecar was left alone by the merge.
    assert_eq!(
        api.deployment()["spec"]["template"]["spec"]["containers"][1]["name"],
        "sidecar"
    );
}

#[test]
fn an_oom_killed_rollout_is_rolled_back_to_the_previous_template() {
    let api = start();
    api.cluster().conflicts = 1;
    let original = api.deployment();
    let s = setup(&api, json!({}));
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.mem=128Mi"]);
    assert_ne!(code, 0, "a failed rollout fails the command");
    assert!(stderr.contains("OOMKilled"), "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");
    let writes = api.writes();
    // The restore is read-modify-replace: the first PUT meets a conflict and is retried.
    let methods: Vec<(&str, u16)> = writes
        .iter()
        .map(|w| (w.method.as_str(), w.status))
        .collect();
    assert_eq!(
        methods,
        [("PATCH", 200), ("PUT", 409), ("PUT", 200)],
        "{writes:?}"
    );
    assert_eq!(
        writes[2].body["spec"]["template"],
        original["spec"]["template"]
    );
    assert_eq!(
        api.deployment()["spec"],
        original["spec"],
        "the deployment is as before"
    );
}

#[test]
fn an_unschedulable_rollout_with_on_failure_exception_is_reported_and_left() {
    let api = start();
    let s = setup(&api, json!({"on_failure": "exception"}));
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.cpu=3"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("Insufficient cpu"), "{stderr}");
    assert_eq!(
        api.accepted().len(),
        1,
        "no rollback with on_failure: exception"
    );
    assert_eq!(
        api.deployment()["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "3"
    );
}

#[test]
fn progress_deadline_exceeded_with_servox_destroy_scales_to_zero() {
    let api = start();
    api.cluster().progress_deadline = true;
    let s = setup(&api, json!({"on_failure": "destroy"}));
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.cpu=1"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("ProgressDeadlineExceeded"), "{stderr}");
    let patches = api.accepted();
    assert_eq!(
        patches.last().map(|p| &p.body),
        Some(&json!({"spec": {"replicas": 0}}))
    );
    assert_eq!(api.deployment()["spec"]["replicas"], 0);
}

#[test]
fn a_rollout_that_never_finishes_times_out_and_is_rolled_back() {
    let api = start();
    api.cluster().stuck = true;
    let original = api.deployment();
    let s = setup(&api, json!({"timeout": "2s"}));
    let started = Instant::now();
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.cpu=1"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("did not finish within 2s"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(api.deployment()["spec"], original["spec"]);
}

/// A child process killed and reaped on drop, so a failing test leaves none behind.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `servo adjust` on `api`'s deployment, interrupts it once the fake's writes are
/// `ready`, and checks that servo exits 130 after putting the original template back: the
/// accepted writes are the patch and the restoring PUT.
fn interrupt_when(api: &FakeApi, ready: fn(&[kube_api::Write]) -> bool) {
    let original = api.deployment();
    let s = setup(api, json!({"timeout": "60s"}));
    let mut child = Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_servo"))
            .args(["adjust", "web/main.cpu=1", "-c"])
            .arg(&s.config)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("servo starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(&api.writes()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(api.accepted().len(), 1, "servo patched the deployment");
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut stderr = String::new();
    if let Some(mut pipe) = child.0.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    let status = child.0.wait().expect("servo exits");
    assert_eq!(status.code(), Some(130), "{stderr}");
    let writes = api.accepted();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[1].method, "PUT");
    assert_eq!(api.deployment()["spec"], original["spec"]);
}

#[test]
fn an_interrupted_adjustment_restores_the_previous_template_before_exiting() {
    let api = start();
    api.cluster().stuck = true;
    interrupt_when(&api, |writes| !writes.is_empty());
}

#[test]
fn an_adjustment_interrupted_before_its_patch_is_answered_is_rolled_back_too() {
    // The API server applied the patch but its answer had not arrived when Ctrl-C came: servo
    // cannot tell whether the patch took, so it puts the previous template back anyway.
    let api = start();
    api.cluster().patch_answer_delay = Some(Duration::from_secs(5));
    interrupt_when(&api, |writes| !writes.is_empty());
}

#[test]
fn a_rollback_interrupted_before_it_lands_is_finished_before_exiting() {
    // The rollout fails, and the PUT that restores the template is lost on its way when Ctrl-C
    // comes: servo puts the template back again before it exits.
    let api = start();
    api.cluster().progress_deadline = true;
    api.cluster().unanswered_puts = 1;
    interrupt_when(&api, |writes| writes.iter().any(|w| w.method == "PUT"));
}

#[test]
fn api_blips_during_a_rollout_are_retried_and_lasting_errors_roll_back() {
    let api = start();
    api.cluster().failing_pod_reads = 3;
    let s = setup(&api, json!({}));
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.cpu=1"]);
    assert_eq!(code, 0, "three failed reads are a blip: {stderr}");
    assert_eq!(api.accepted().len(), 1);

    let original = api.deployment();
    api.cluster().failing_pod_reads = 1000;
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.cpu=1500m"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("could not be read 5 times in a row"),
        "{stderr}"
    );
    assert!(stderr.contains("etcdserver: request timed out"), "{stderr}");
    assert_eq!(api.deployment()["spec"], original["spec"], "rolled back");
}

/// Writes an `exec` credential plugin printing `token` as an ExecCredential, and a kubeconfig
/// using it; the plugin counts its runs in `calls`.
fn exec_setup(api: &FakeApi, token: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = dir.path().join("credential-plugin");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho run >> \"$(dirname \"$0\")/calls\"\nprintf '%s\\n' '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n"
        ),
    )
    .expect("write plugin");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let user = json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": plugin,
        "args": ["--cluster", "fake"],
        "interactiveMode": "Never",
    }});
    let s = setup_with_user(api, user, json!({}));
    // One directory for both: the plugin next to the config.
    std::fs::rename(&plugin, s.dir.path().join("credential-plugin")).expect("move plugin");
    let kubeconfig = s.dir.path().join("kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig)
        .expect("kubeconfig")
        .replace(
            &plugin.display().to_string(),
            &s.dir.path().join("credential-plugin").display().to_string(),
        );
    std::fs::write(&kubeconfig, text).expect("rewrite kubeconfig");
    s
}

#[test]
fn an_exec_credential_plugin_authenticates_and_its_token_is_checked() {
    let api = start();
    let s = exec_setup(&api, TOKEN);
    let (code, stdout, stderr) = run(&s.config, &["describe", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let d: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(setting(&d, "web/main", "cpu"), &json!(0.5));
    let calls = std::fs::read_to_string(s.dir.path().join("calls")).expect("the plugin ran");
    assert!(!calls.is_empty());
    assert_eq!(
        api.cluster().tokens,
        [TOKEN],
        "every request carried the plugin's token"
    );

    let api = start();
    let s = exec_setup(&api, "expired");
    let (code, _, stderr) = run(&s.config, &["describe"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("not accepted"), "{stderr}");
    assert_eq!(api.cluster().tokens, ["expired"]);
}

#[test]
fn rollouts_are_watched_through_410_gone_and_bookmarks() {
    let api = start();
    api.cluster().expired_watches = 1;
    let s = setup(&api, json!({}));
    let (code, _, stderr) = run(
        &s.config,
        &["adjust", "web/main.cpu=750m", "--settlement", "2s"],
    );
    assert_eq!(code, 0, "{stderr}");
    let cluster = api.cluster();
    assert_eq!(cluster.gone_served, 1, "a watch was answered 410 Gone");
    assert!(
        cluster.bookmarks_sent >= 1,
        "the watch idled long enough for a bookmark"
    );
    drop(cluster);
    assert_eq!(
        api.deployment()["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "750m"
    );
}

#[test]
fn check_passes_against_a_healthy_deployment_and_names_missing_containers() {
    let api = start();
    let s = setup(&api, json!({}));
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("v1.33.0-fake"), "{stdout}");

    let s = setup(
        &api,
        json!({"deployments": [{
        "name": "web", "replicas": {"min": 1, "max": 4},
        "containers": [{"name": "app", "cpu": {"min": "250m", "max": 4}, "memory": {"min": "256Mi", "max": "4Gi"}}]}]}),
    );
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("main, sidecar"), "{stdout}");

    let s = setup(&api, json!({"namespace": "nope"}));
    let (code, stdout, _) = run(&s.config, &["check"]);
    assert_eq!(code, 3);
    assert!(stdout.contains("not found"), "{stdout}");
}

#[test]
fn check_reports_missing_permissions_from_access_reviews() {
    let api = start();
    api.cluster().denied.push("patch deployments".into());
    let s = setup(&api, json!({}));
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stdout.contains("not allowed to patch deployments"),
        "{stdout}"
    );
}

#[test]
fn measure_reports_the_hourly_cost_of_requested_resources() {
    let api = start();
    let s = setup(&api, json!({"prices": {"cpu": 0.04, "memory": 0.01}}));
    let (code, stdout, stderr) = run(&s.config, &["measure", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let m: Value = serde_json::from_str(&stdout).expect("json");
    // 2 replicas × (0.5 core × 0.04 + 0.5 GiB × 0.01); the sidecar requests nothing.
    let cost = m["metrics"]["cost"]["value"].as_f64().expect("a cost");
    assert!(
        (cost - 2.0 * (0.5 * 0.04 + 0.5 * 0.01)).abs() < 1e-9,
        "{m:#}"
    );
    assert_eq!(m["metrics"]["cost"]["unit"], "$/h");
}

#[test]
fn a_wrong_token_is_reported_with_the_kubeconfig_it_came_from() {
    let api = start();
    let s = setup(&api, json!({}));
    let kubeconfig = s.config.with_file_name("kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig)
        .expect("kubeconfig")
        .replace(TOKEN, "wrong");
    std::fs::write(&kubeconfig, text).expect("rewrite");
    let (code, _, stderr) = run(&s.config, &["describe"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("not accepted"), "{stderr}");
}

#[test]
fn the_example_validates() {
    let (code, _, stderr) = run(&common::example("kubernetes.yaml"), &["validate"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_short_study_tunes_the_deployment_and_leaves_it_on_the_cheapest_healthy_config() {
    let api = start();
    let s = setup(&api, json!({}));
    // Add an embedded optimizer minimizing the connector's own cost metric.
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.config).expect("read")).expect("json");
    config["optimizer"] = json!({
        "trials": 4,
        "seed": 2,
        "objective": {"minimize": "cost"},
        "control": {"duration": "1ms"},
        "store": "study.db",
    });
    std::fs::write(&s.config, config.to_string()).expect("write");
    let (code, stdout, stderr) = run(&s.config, &["run", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let summary: Value = serde_json::from_str(&stdout).expect("json summary");
    let trials = summary["trials"].as_array().expect("trials");
    // Failed trials (a rollout the fake cluster cannot schedule) count against the budget.
    assert_eq!(trials.len(), 4);
    for t in trials {
        match t["state"].as_str() {
            Some("complete") => assert!(t["objective"].as_f64().is_some()),
            Some("failed") => {
                let error = t["error"].as_str().unwrap_or_default();
                assert!(
                    error.contains("rolled back"),
                    "a failed trial is rolled back: {error}"
                );
            }
            other => panic!("unexpected trial state {other:?}"),
        }
    }
    let baseline = trials[0]["objective"].as_f64().expect("baseline cost");
    let best = summary["best"]["objective"].as_f64().expect("best cost");
    assert!(best <= baseline, "best {best} vs baseline {baseline}");
    assert!(
        api.accepted().len() >= 4,
        "each trial patched the Deployment, and on_finish applied the best"
    );
    assert!(
        summary["left_on"]
            .as_str()
            .unwrap_or_default()
            .contains("best"),
        "{summary:#}"
    );
}

#[test]
fn servox_only_keys_load_and_unsupported_ones_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    let servox = r#"
kubernetes:
  namespace: default
  timeout: 5m
  container_logs_in_error_status: false
  create_tuning_pod: false
  stateful_sets: []
  permissions:
    - group: apps
      resources: [deployments, deployments/status]
      verbs: [get, list, watch, patch]
  deployments:
    - name: fiber-http
      replicas: { min: 1, max: 6 }
      containers:
        - name: fiber-http
          command: ["/bin/fiber-http"]
          cpu: { min: 125m, max: 875m, step: 125m }
          memory: { min: 128Mi, max: 0.75Gi, step: 32Mi }
"#;
    std::fs::write(&config, servox).expect("write");
    let (code, stdout, stderr) = run(&config, &["validate"]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // StatefulSets take the Deployments' settings, but not the canary strategy (nor in ServoX).
    std::fs::write(
        &config,
        servox.replace(
            "stateful_sets: []",
            "stateful_sets: [{name: db, strategy: canary, replicas: {min: 1, max: 3}, containers: [{name: pg, cpu: {min: 1, max: 2}, memory: {min: 1Gi, max: 2Gi}}]}]",
        ),
    )
    .expect("write");
    let (code, _, stderr) = run(&config, &["validate"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("kubernetes.stateful_sets[0].strategy: the `canary` strategy is not supported on StatefulSets"),
        "{stderr}"
    );
}

/// ServoX's Helm chart's section (`helm/templates/configmap.yaml` with its `values.yaml`): a
/// canary aliased `tuning`, `get`/`set` over request and limit, replicas pinned.
fn canary_section(extra: Value) -> Value {
    let mut d = json!({
        "name": "web",
        "strategy": {"type": "canary", "alias": "tuning"},
        "replicas": {"min": 0, "max": 1, "pinned": true},
        "containers": [{
            "name": "main",
            "alias": "main",
            "cpu": {"min": "125m", "max": "2.5", "step": "125m", "get": ["request", "limit"], "set": ["request", "limit"]},
            "memory": {"min": "128Mi", "max": "2.5Gi", "step": "128Mi", "get": ["request", "limit"], "set": ["request", "limit"]},
            "env": [{"name": "WORKERS", "type": "range", "min": 1, "max": 8, "step": 1}],
            "static_environment_variables": {"MODE": "tuning"},
        }],
    });
    for (k, v) in extra.as_object().expect("a mapping") {
        d[k] = v.clone();
    }
    json!({"deployments": [d]})
}

fn tuning_pod(api: &FakeApi) -> Option<Value> {
    api.cluster().pod("shop", "web-tuning")
}

#[test]
fn a_canary_tunes_a_tuning_pod_and_never_writes_the_deployment() {
    let api = start();
    let original = serde_json::to_string(&api.deployment()["spec"]).expect("spec");
    // One-shot commands keep their tuning pod here, so the test can look at it.
    let mut section = canary_section(json!({}));
    section["keep_tuning_pods"] = json!(true);
    let s = setup(&api, section);
    let (code, stdout, stderr) = run(&s.config, &["describe", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let d: Value = serde_json::from_str(&stdout).expect("json");
    // The main component reads the Deployment, every setting pinned; the tuning one the Pod.
    assert_eq!(setting(&d, "main", "cpu"), &json!(0.5));
    assert_eq!(setting(&d, "main", "replicas"), &json!(2));
    assert_eq!(setting(&d, "tuning", "cpu"), &json!(0.5));
    assert_eq!(setting(&d, "tuning", "replicas"), &json!(1));
    let main_cpu = common::setting(&d, "main", "cpu").expect("main cpu");
    assert_eq!(main_cpu["pinned"], true, "{main_cpu}");
    let pod = tuning_pod(&api).expect("describe created the tuning pod, as ServoX does");
    assert_eq!(pod["metadata"]["labels"]["opsani_role"], "tuning");
    assert_eq!(
        pod["metadata"]["labels"]["app"], "web",
        "the template's labels are kept"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["opsani.com/opsani_tuning_for"],
        "tuning"
    );

    let (code, stdout, stderr) = run(
        &s.config,
        &[
            "adjust",
            "tuning.cpu=750m",
            "tuning.mem=0.5",
            "tuning.WORKERS=3",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        setting(&report["description"], "tuning", "cpu"),
        &json!(0.75)
    );
    let pod = tuning_pod(&api).expect("the new tuning pod");
    let main = &pod["spec"]["containers"][0];
    assert_eq!(
        main["resources"]["requests"],
        json!({"cpu": "750m", "memory": "512Mi"})
    );
    assert_eq!(
        main["resources"]["limits"],
        json!({"cpu": "750m", "memory": "512Mi"})
    );
    let env = main["env"].as_array().expect("env");
    assert!(
        env.contains(&json!({"name": "MODE", "value": "tuning"})),
        "{env:?}"
    );
    assert!(
        env.contains(&json!({"name": "WORKERS", "value": "3"})),
        "{env:?}"
    );
    let methods: Vec<String> = api
        .accepted()
        .iter()
        .map(|w| format!("{} {}", w.method, w.path))
        .collect();
    assert_eq!(
        methods,
        [
            "POST pods/shop/web-tuning",
            "DELETE pods/shop/web-tuning",
            "POST pods/shop/web-tuning"
        ],
        "deleted and recreated; the Deployment is never written"
    );
    assert_eq!(
        serde_json::to_string(&api.deployment()["spec"]).expect("spec"),
        original,
        "the Deployment's spec is byte-for-byte unchanged"
    );

    // The main component is the Deployment: refused, nothing written.
    let (code, _, stderr) = run(&s.config, &["adjust", "main.cpu=1"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("never changes"), "{stderr}");
}

#[test]
fn a_failing_tuning_pod_is_rejected_with_the_kubernetes_reason_and_deleted() {
    let api = start();
    let s = setup(&api, canary_section(json!({})));
    let (code, _, stderr) = run(&s.config, &["adjust", "tuning.mem=128Mi"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("OOMKilled"), "{stderr}");
    assert!(stderr.contains("tuning Pod was deleted"), "{stderr}");
    assert!(tuning_pod(&api).is_none());

    let (code, _, stderr) = run(&s.config, &["adjust", "tuning.cpu=2.5"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("Insufficient cpu"), "{stderr}");

    // on_failure: exception leaves the failed pod for inspection.
    let s = setup(
        &api,
        json!({"on_failure": "exception", "timeout": "1s", "keep_tuning_pods": true}),
    );
    let s = {
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&s.config).expect("read")).expect("json");
        config["kubernetes"]["deployments"] = canary_section(json!({}))["deployments"].clone();
        std::fs::write(&s.config, config.to_string()).expect("write");
        s
    };
    let (code, _, stderr) = run(&s.config, &["adjust", "tuning.cpu=2.5"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("left as is"), "{stderr}");
    assert!(tuning_pod(&api).is_some());
}

#[test]
fn servo_run_with_a_canary_removes_the_tuning_pod_on_sigterm() {
    let api = start();
    let original = serde_json::to_string(&api.deployment()["spec"]).expect("spec");
    let s = setup(&api, canary_section(json!({})));
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.config).expect("read")).expect("json");
    config["optimizer"] = json!({
        "trials": 1000,
        "seed": 3,
        "objective": {"minimize": "cost"},
        "control": {"duration": "1ms"},
        "store": "study.db",
    });
    std::fs::write(&s.config, config.to_string()).expect("write");
    let mut child = Reaped(
        common::servo_process("warn")
            .args(["run", "-c"])
            .arg(&s.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("servo starts"),
    );
    // Ready after a few adjustments: each one deleted and recreated the tuning pod.
    let posts = |api: &FakeApi| {
        api.accepted()
            .into_iter()
            .filter(|w| w.method == "POST")
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while posts(&api).len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let created = posts(&api);
    assert!(created.len() >= 4, "{created:?}");
    // The first is the template's copy (describe); each ADJUST's sets requests and limits.
    for (i, pod) in created.iter().enumerate() {
        assert_eq!(pod.body["metadata"]["name"], "web-tuning");
        assert_eq!(pod.body["metadata"]["labels"]["opsani_role"], "tuning");
        let resources = &pod.body["spec"]["containers"][0]["resources"];
        if i > 0 {
            assert_eq!(
                resources["requests"], resources["limits"],
                "set: [request, limit]"
            );
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut stderr = String::new();
    if let Some(mut pipe) = child.0.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    let status = child.0.wait().expect("servo exits");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        tuning_pod(&api).is_none(),
        "the tuning pod is gone after SIGTERM: {stderr}"
    );
    assert_eq!(
        serde_json::to_string(&api.deployment()["spec"]).expect("spec"),
        original
    );
    assert!(
        api.accepted().iter().all(|w| w.path.starts_with("pods/")),
        "only the tuning pod was written"
    );
}

#[test]
fn servox_generated_kubernetes_sections_load() {
    for name in ["generate.yaml", "generate-defaults.yaml"] {
        let path = common::fixture("servox").join("kubernetes").join(name);
        let (code, stdout, stderr) = run(&path, &["validate"]);
        assert_eq!(code, 0, "{name}: {stdout}{stderr}");
    }
}

#[test]
fn env_settings_take_servox_literal_and_value_type() {
    let api = start();
    let s = setup(
        &api,
        json!({"deployments": [{
            "name": "web", "replicas": {"min": 1, "max": 4},
            "containers": [{"name": "main",
                "cpu": {"min": "250m", "max": 4}, "memory": {"min": "128Mi", "max": "4Gi"},
                "env": [{"name": "workers", "literal": "WORKERS", "type": "range",
                         "min": 1, "max": 8, "step": 1, "value_type": "int"}]}]}]}),
    );
    let (code, stdout, stderr) = run(&s.config, &["describe", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let d: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(setting(&d, "web/main", "workers"), &json!(2.0));
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.workers=5"]);
    assert_eq!(code, 0, "{stderr}");
    let env = &api.deployment()["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env, &json!([{"name": "WORKERS", "value": "5"}]));
}

fn db_stateful_set() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "shop", "generation": 1},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [
                    {"name": "postgres", "image": "postgres:17",
                     "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}
                ]}
            }
        }
    })
}

#[test]
fn a_stateful_set_adjust_rolls_out_and_a_failing_one_rolls_back() {
    let api = FakeApi::start(vec![web_deployment(), db_stateful_set()]);
    let s = setup(
        &api,
        json!({"deployments": [], "stateful_sets": [{
            "name": "db", "replicas": {"min": 1, "max": 5},
            "containers": [{"name": "postgres",
                "cpu": {"min": "500m", "max": 4, "get": ["request"], "set": ["request"]},
                "memory": {"min": "128Mi", "max": "8Gi", "get": ["request", "limit"], "set": ["limit"]}}]}]}),
    );
    let (code, stdout, stderr) = run(&s.config, &["describe", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let d: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(setting(&d, "db/postgres", "cpu"), &json!(1.0));
    assert_eq!(setting(&d, "db/postgres", "mem"), &json!(2.0));
    assert_eq!(setting(&d, "db/postgres", "replicas"), &json!(3));

    let (code, _, stderr) = run(
        &s.config,
        &["adjust", "db/postgres.cpu=1500m", "db/postgres.replicas=2"],
    );
    assert_eq!(code, 0, "{stderr}");
    let set = api.cluster().stateful_set("shop", "db").expect("db");
    assert_eq!(set["spec"]["replicas"], 2);
    // `set: [request]` for cpu: the request only; the workload had no limits and gets none.
    assert_eq!(
        set["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "1500m", "memory": "2Gi"}})
    );
    assert_eq!(
        set["status"]["currentRevision"],
        set["status"]["updateRevision"]
    );

    let before = api.cluster().stateful_set("shop", "db").expect("db")["spec"].clone();
    let (code, _, stderr) = run(&s.config, &["adjust", "db/postgres.mem=128Mi"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("OOMKilled"), "{stderr}");
    assert!(stderr.contains("statefulset db -n shop"), "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");
    assert_eq!(
        api.cluster().stateful_set("shop", "db").expect("db")["spec"],
        before
    );
    assert!(
        api.accepted()
            .iter()
            .all(|w| w.path.starts_with("statefulsets/")),
        "the Deployment beside it was not touched"
    );
}

#[test]
fn hello_tells_a_remote_optimizer_the_namespace_and_the_cluster_version() {
    use fake_optimizer::{FakeOptimizer, Reply, ok};
    let api = start();
    let fake = FakeOptimizer::start(vec![
        ("HELLO", ok()),
        (
            "WHATS_NEXT",
            Reply::Json(
                200,
                json!({"cmd": "DESCRIBE", "cmd_uid": "d-1", "param": {}}),
            ),
        ),
        ("DESCRIPTION", ok()),
        ("GOODBYE", ok()),
    ]);
    let setup = setup(&api, json!({}));
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&setup.config).expect("read")).expect("JSON");
    config["optimizer"] = json!({
        "id": "example.com/app",
        "token": fake_optimizer::TOKEN,
        "base_url": fake.base_url(),
    });
    std::fs::write(&setup.config, config.to_string()).expect("write");
    let out = common::servo()
        .args(["run", "--no-checks", "--max-cycles", "1", "-c"])
        .arg(&setup.config)
        .timeout(fake_optimizer::PATIENCE)
        .output()
        .expect("servo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let hello = &fake.seen()[0].body["param"];
    let telemetry = &hello["telemetry"];
    // ServoX's keys: the mount's namespace, and the API server's version and platform as the
    // fake's /version answers them.
    assert_eq!(telemetry["kubernetes.namespace"], "shop", "{hello}");
    assert_eq!(telemetry["kubernetes.version"], "1.33", "{hello}");
    assert_eq!(telemetry["kubernetes.platform"], "linux/amd64", "{hello}");
    assert!(telemetry["servox.version"].is_string(), "{hello}");
}

/// The fake's strategic merge follows the OpenAPI's patch keys, not a rule of thumb: a container's
/// `ports` merge by `containerPort`, `ownerReferences` by `uid`, `finalizers` as a set, while
/// `tolerations` (no patch strategy) are replaced and `$patch: delete` removes a container.
#[test]
fn the_fake_merges_patches_by_the_openapi_patch_keys() {
    let mut deployment = json!({
        "metadata": {"name": "web", "finalizers": ["a"], "labels": {"app": "web"},
                     "ownerReferences": [{"uid": "1", "name": "x", "kind": "K", "apiVersion": "v1"}]},
        "spec": {"template": {"spec": {
            "containers": [
                {"name": "main", "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "proxy:1"}
            ],
            "tolerations": [{"key": "a"}]
        }}}
    });
    let patch = json!({
        "metadata": {"finalizers": ["b", "a"], "labels": {"tier": "front"},
                     "ownerReferences": [{"uid": "1", "name": "y"}]},
        "spec": {"template": {"spec": {
            "containers": [
                {"name": "main", "ports": [{"containerPort": 8080}]},
                {"name": "sidecar", "$patch": "delete"}
            ],
            "tolerations": [{"key": "b"}]
        }}}
    });
    kube_api::strategic_merge("Deployment", &mut deployment, &patch);
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"].as_array().map(Vec::len),
        Some(1),
        "{deployment}"
    );
    assert_eq!(
        spec["containers"][0]["ports"],
        json!([{"containerPort": 80}, {"containerPort": 8080}])
    );
    assert_eq!(spec["tolerations"], json!([{"key": "b"}]));
    let meta = &deployment["metadata"];
    assert_eq!(meta["finalizers"], json!(["a", "b"]));
    assert_eq!(meta["labels"], json!({"app": "web", "tier": "front"}));
    assert_eq!(meta["ownerReferences"][0]["name"], "y");
    assert_eq!(meta["ownerReferences"].as_array().map(Vec::len), Some(1));
}

/// The Deployment of one of ServoX's own test manifests (`tests/manifests/resource_requirements/`,
/// copied with their origin under `tests/fixtures/kubernetes/servox/`), put in namespace `shop`.
/// fiber-http's working set is small, so the fake's kubelet is told so (`FAKE_MEMORY_USAGE`): the
/// manifests' 128Mi limits run, as they do on a real cluster.
fn servox_deployment(file: &str) -> Value {
    let path = common::fixture(&format!("kubernetes/servox/{file}"));
    let text = std::fs::read_to_string(&path).expect("the ServoX manifest");
    let mut deployment = text
        .split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .find(|doc| doc["kind"] == "Deployment")
        .expect("a Deployment document");
    deployment["metadata"]["namespace"] = json!("shop");
    let container = &mut deployment["spec"]["template"]["spec"]["containers"][0];
    container["env"] = json!([{"name": "FAKE_MEMORY_USAGE", "value": "64Mi"}]);
    deployment
}

/// ServoX's `tuning_config` for fiber-http, with `cpu`/`memory` settings merged in.
fn servox_tuning_section(cpu: Value, memory: Value) -> Value {
    let mut container = json!({
        "name": "fiber-http",
        "alias": "fiber-http",
        "cpu": {"min": "125m", "max": "875m", "step": "125m"},
        "memory": {"min": "128MiB", "max": "0.75GiB", "step": "32MiB"},
    });
    for (key, extra) in [("cpu", cpu), ("memory", memory)] {
        for (k, v) in extra.as_object().expect("a mapping") {
            container[key][k] = v.clone();
        }
    }
    json!({
        "keep_tuning_pods": true,
        "deployments": [{
            "name": "fiber-http",
            "strategy": {"type": "canary", "alias": "tuning"},
            "replicas": {"min": 0, "max": 1, "pinned": true},
            "containers": [container],
        }],
    })
}

fn servox_tuning_pod(api: &FakeApi) -> Value {
    api.cluster()
        .pod("shop", "fiber-http-tuning")
        .expect("the tuning pod")
}

/// ServoX's `test_reading_values_from_no_limits_optimization_class` and
/// `..._bursty_memory_...`: what describe reads for main and tuning from each manifest.
#[test]
fn servox_resource_requirement_manifests_describe_as_servox_reads_them() {
    let cases = [
        // (manifest, `get`, cpu cores, memory GiB)
        (
            "fiber-http_no_resource_limits.yaml",
            json!(["request", "limit"]),
            0.125,
            0.125,
        ),
        ("fiber-http_bursty_memory.yaml", json!(["limit"]), 0.25, 2.0),
        (
            "fiber-http_bursty_memory.yaml",
            json!(["request"]),
            0.125,
            0.125,
        ),
    ];
    for (manifest, get, cpu, memory) in cases {
        let api = FakeApi::start(vec![servox_deployment(manifest)]);
        let section =
            servox_tuning_section(json!({"get": get}), json!({"get": get, "max": "3GiB"}));
        let s = setup(&api, section);
        let (code, stdout, stderr) = run(&s.config, &["describe", "-o", "json"]);
        assert_eq!(code, 0, "{manifest}: {stderr}");
        let d: Value = serde_json::from_str(&stdout).expect("json");
        for component in ["fiber-http", "tuning"] {
            assert_eq!(
                setting(&d, component, "cpu"),
                &json!(cpu),
                "{manifest} {component}: {d}"
            );
            assert_eq!(
                setting(&d, component, "mem"),
                &json!(memory),
                "{manifest} {component}: {d}"
            );
        }
        // The tuning Pod carries the Deployment's own requirements (no defaults configured).
        let pod = servox_tuning_pod(&api);
        let deployment = &servox_deployment(manifest)["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            pod["spec"]["containers"][0]["resources"], deployment["resources"],
            "{manifest}"
        );
    }
}

/// ServoX's `test_initialize_tuning_pod_set_defaults_for_no_limits` and `test_no_cpu_limit`: the
/// settings' `request`/`limit` fill in what the Deployment lacks on the first tuning Pod, and an
/// adjustment then writes only the requirements `set` names.
#[test]
fn servox_request_and_limit_defaults_fill_in_the_first_tuning_pod() {
    let api = FakeApi::start(vec![servox_deployment(
        "fiber-http_no_resource_limits.yaml",
    )]);
    let section = servox_tuning_section(json!({"limit": "1000m"}), json!({"limit": "1GiB"}));
    let s = setup(&api, section);
    let (code, _, stderr) = run(&s.config, &["describe"]);
    assert_eq!(code, 0, "{stderr}");
    let pod = servox_tuning_pod(&api);
    let resources = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(
        resources["limits"],
        json!({"cpu": "1", "memory": "1Gi"}),
        "{pod}"
    );
    assert_eq!(
        resources["requests"],
        json!({"cpu": "125m", "memory": "128Mi"}),
        "{pod}"
    );

    let api = FakeApi::start(vec![servox_deployment("fiber-http_no_cpu_limit.yaml")]);
    let section = servox_tuning_section(json!({"limit": "1000m", "set": ["request"]}), json!({}));
    let s = setup(&api, section);
    let (code, stdout, stderr) = run(&s.config, &["adjust", "tuning.cpu=.250", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        setting(&report["description"], "tuning", "cpu"),
        &json!(0.25)
    );
    let pod = servox_tuning_pod(&api);
    let resources = &pod["spec"]["containers"][0]["resources"];
    // CPU picks up the 1000m default, then its request is adjusted; memory is the manifest's.
    assert_eq!(
        resources["requests"],
        json!({"cpu": "250m", "memory": "128Mi"}),
        "{pod}"
    );
    assert_eq!(
        resources["limits"],
        json!({"cpu": "1", "memory": "128Mi"}),
        "{pod}"
    );
}

/// In the cluster (`POD_NAME`, `POD_NAMESPACE`), servo makes its own Deployment the tuning Pod's
/// controller, found from its Pod through its ReplicaSet, as ServoX does; in another namespace than
/// the tuning Pod's it sets no owner (one across namespaces would get the Pod garbage-collected).
#[test]
fn in_the_cluster_the_tuning_pod_is_owned_by_servos_deployment() {
    let api = start();
    let servo_deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "servo", "namespace": "shop"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "servo"}},
                 "template": {"metadata": {"labels": {"app": "servo"}},
                              "spec": {"containers": [{"name": "servo", "image": "servo:1"}]}}}
    });
    api.cluster().add_deployment(servo_deployment);
    let uid = api.deployment_named("servo")["metadata"]["uid"].clone();
    api.cluster().add_replica_set(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "servo-5d8f", "namespace": "shop",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": "servo", "uid": uid, "controller": true}]},
        "spec": {"selector": {"matchLabels": {"app": "servo"}}}
    }));
    api.cluster().add_pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "servo-5d8f-x2", "namespace": "shop", "labels": {"app": "servo"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "servo-5d8f", "uid": "rs-1", "controller": true}]},
        "spec": {"containers": [{"name": "servo", "image": "servo:1"}]}
    }));
    let mut section = canary_section(json!({}));
    section["keep_tuning_pods"] = json!(true);
    let s = setup(&api, section);
    let adjust = |namespace: &str| {
        let out = common::servo()
            .env("POD_NAME", "servo-5d8f-x2")
            .env("POD_NAMESPACE", namespace)
            .args(["adjust", "tuning.cpu=750m", "-c"])
            .arg(&s.config)
            .output()
            .expect("servo runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let pod = tuning_pod(&api).expect("the tuning pod");
        (pod["metadata"]["ownerReferences"].clone(), stderr)
    };
    let (owners, stderr) = adjust("shop");
    assert_eq!(
        owners,
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "servo", "uid": uid,
                "controller": true, "blockOwnerDeletion": true}]),
        "{stderr}"
    );
    let (owners, stderr) = adjust("ops");
    assert_eq!(
        owners,
        Value::Null,
        "servo runs in another namespace: {stderr}"
    );
}
