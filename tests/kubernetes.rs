//! The `kubernetes` connector through the real binary, against a **fake API server**: an axum
//! server on 127.0.0.1 that speaks the Kubernetes JSON for Deployments, Pods and `/version`,
//! applies strategic-merge and JSON patches (recording each), and simulates rollouts from the
//! pod template it is given:
//!
//! - a container whose memory limit is below 256Mi is OOM-killed and crash-loops;
//! - a container requesting more than 2 cores cannot be scheduled (`Insufficient cpu`);
//! - with `progress_deadline` set, any new template ends in `ProgressDeadlineExceeded`;
//! - with `stuck` set, the controller never observes a new template;
//! - anything else rolls out, after one stale read (the controller has not observed the new
//!   generation yet), so the connector's polling is exercised.
//!
//! servo reaches it through a generated kubeconfig with a bearer token, which the fake checks.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::run;
use serde_json::{Value, json};

const TOKEN: &str = "fake-token";
const CPU_CAPACITY_MILLICORES: u64 = 2000;
const OOM_BELOW_BYTES: u64 = 256 << 20;

/// One recorded PATCH: its content type and body.
#[derive(Clone, Debug)]
struct Patch {
    content_type: String,
    body: Value,
}

#[derive(Default)]
struct Cluster {
    deployments: BTreeMap<String, Value>,
    /// The template each deployment started with: the fake's known-good state.
    original: BTreeMap<String, Value>,
    /// Deployments whose next read shows a status from before the last patch.
    stale: BTreeMap<String, bool>,
    patches: Vec<Patch>,
    progress_deadline: bool,
    stuck: bool,
    /// `verb resource` pairs the SelfSubjectAccessReview endpoint denies.
    denied: Vec<String>,
    /// How many of the next pod lists answer 500 (an API server blip).
    failing_pod_lists: u32,
}

type Shared = Arc<Mutex<Cluster>>;

fn lock(state: &Shared) -> MutexGuard<'_, Cluster> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

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
        },
        "status": {}
    })
}

fn millicores(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(0),
        None => (q.parse::<f64>().unwrap_or(0.0) * 1000.0).round() as u64,
    }
}

fn bytes(q: &str) -> u64 {
    for (suffix, factor) in [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap_or(0) * factor;
        }
    }
    q.parse().unwrap_or(0)
}

/// What the fake cluster does with a pod template.
enum Outcome {
    Healthy,
    OomKilled,
    Unschedulable,
}

fn outcome(template: &Value) -> Outcome {
    let containers = template["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &containers {
        let r = &c["resources"];
        if r["requests"]["cpu"]
            .as_str()
            .is_some_and(|q| millicores(q) > CPU_CAPACITY_MILLICORES)
        {
            return Outcome::Unschedulable;
        }
        if r["limits"]["memory"]
            .as_str()
            .is_some_and(|q| bytes(q) < OOM_BELOW_BYTES)
        {
            return Outcome::OomKilled;
        }
    }
    Outcome::Healthy
}

/// The deployment with the status the fake's controller would report now.
fn with_status(cluster: &mut Cluster, key: &str) -> Option<Value> {
    let stale = cluster
        .stale
        .insert(key.to_string(), false)
        .unwrap_or(false);
    let mut d = cluster.deployments.get(key)?.clone();
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let changed = cluster.original.get(key) != Some(&d["spec"]["template"]);
    let observed = if stale || (cluster.stuck && changed) {
        generation - 1
    } else {
        generation
    };
    let (ready, conditions) = match outcome(&d["spec"]["template"]) {
        _ if cluster.progress_deadline && changed => (
            0,
            json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet \"web-2\" has timed out progressing."}]),
        ),
        Outcome::Healthy => (
            replicas,
            json!([{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]),
        ),
        _ => (
            0,
            json!([{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]),
        ),
    };
    d["status"] = json!({
        "observedGeneration": observed, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": ready, "availableReplicas": ready, "conditions": conditions,
    });
    Some(d)
}

fn pods_of(deployment: &Value) -> Vec<Value> {
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let template = &deployment["spec"]["template"];
    let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(1);
    (0..replicas)
        .map(|i| {
            let name = format!("web-{generation}-{i}");
            let status = match outcome(template) {
                Outcome::Healthy => json!({"phase": "Running", "containerStatuses": [
                    {"name": "main", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
                Outcome::OomKilled => json!({"phase": "Running", "containerStatuses": [
                    {"name": "main", "ready": false, "restartCount": 3,
                     "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
                     "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}),
                Outcome::Unschedulable => json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/1 nodes are available: 1 Insufficient cpu."}]}),
            };
            json!({"metadata": {"name": name, "labels": template["metadata"]["labels"]}, "status": status})
        })
        .collect()
}

fn status(code: StatusCode, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code.as_u16()});
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"))
}

/// Strategic merge as the API server applies it to these fields: objects merge, lists of
/// objects with a `name` merge by name, everything else is replaced.
fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (Value::Array(t), Value::Array(p)) if p.iter().all(|v| v["name"].is_string()) => {
            for item in p {
                match t.iter_mut().find(|x| x["name"] == item["name"]) {
                    Some(existing) => strategic_merge(existing, item),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().ok_or("a JSON patch is an array")? {
        if op["op"] != "replace" {
            return Err(format!("the fake only supports replace, got {op}"));
        }
        let path = op["path"].as_str().ok_or("no path")?;
        let slot = target.pointer_mut(path).ok_or(format!("no {path}"))?;
        *slot = op["value"].clone();
    }
    Ok(())
}

async fn version(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    ok(&json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake"}))
}

async fn get_deployment(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    match with_status(&mut lock(&state), &format!("{ns}/{name}")) {
        Some(d) => ok(&d),
        None => status(
            StatusCode::NOT_FOUND,
            &format!("deployments.apps \"{name}\" not found"),
        ),
    }
}

async fn patch_deployment(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "the patch is not JSON");
    };
    let key = format!("{ns}/{name}");
    let mut cluster = lock(&state);
    cluster.patches.push(Patch {
        content_type: content_type.clone(),
        body: patch.clone(),
    });
    let Some(deployment) = cluster.deployments.get_mut(&key) else {
        return status(
            StatusCode::NOT_FOUND,
            &format!("deployments.apps \"{name}\" not found"),
        );
    };
    let before = deployment["spec"].clone();
    let mut spec = before.clone();
    let applied = match content_type.as_str() {
        "application/strategic-merge-patch+json" => {
            let mut whole = json!({"spec": spec});
            strategic_merge(&mut whole, &patch);
            spec = whole["spec"].take();
            Ok(())
        }
        "application/json-patch+json" => {
            let mut whole = json!({"spec": spec});
            let r = json_patch(&mut whole, &patch);
            spec = whole["spec"].take();
            r
        }
        other => {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported patch type {other}"),
            );
        }
    };
    if let Err(e) = applied {
        return status(StatusCode::UNPROCESSABLE_ENTITY, &e);
    }
    if spec != before {
        deployment["spec"] = spec;
        let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        deployment["metadata"]["generation"] = json!(generation);
        cluster.stale.insert(key.clone(), true);
    }
    let current = cluster.deployments.get(&key).cloned().unwrap_or_default();
    ok(&current)
}

async fn list_pods(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    {
        let mut cluster = lock(&state);
        if cluster.failing_pod_lists > 0 {
            cluster.failing_pod_lists -= 1;
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "etcdserver: request timed out",
            );
        }
    }
    let query = query.unwrap_or_default();
    let selector = query
        .strip_prefix("labelSelector=")
        .unwrap_or("")
        .replace("%3D", "=")
        .replace("%2C", ",");
    let cluster = lock(&state);
    let items: Vec<Value> = cluster
        .deployments
        .iter()
        .filter(|(key, _)| key.starts_with(&format!("{ns}/")))
        .filter(|(_, d)| {
            let labels = d["spec"]["selector"]["matchLabels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let joined: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            joined.join(",") == selector
        })
        .flat_map(|(_, d)| pods_of(d))
        .collect();
    ok(&json!({"kind": "PodList", "apiVersion": "v1", "items": items}))
}

async fn access_review(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let Ok(mut review) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "the review is not JSON");
    };
    let attributes = &review["spec"]["resourceAttributes"];
    let asked = format!(
        "{} {}",
        attributes["verb"].as_str().unwrap_or(""),
        attributes["resource"].as_str().unwrap_or("")
    );
    let allowed = !lock(&state).denied.contains(&asked);
    review["status"] = json!({"allowed": allowed});
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        review.to_string(),
    )
        .into_response()
}

/// The fake API server, stopped (and its thread joined) on drop.
struct FakeApi {
    addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    fn start() -> FakeApi {
        let mut cluster = Cluster::default();
        let web = web_deployment();
        cluster
            .original
            .insert("shop/web".into(), web["spec"]["template"].clone());
        cluster.deployments.insert("shop/web".into(), web);
        let state: Shared = Arc::new(Mutex::new(cluster));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/version", get(version))
            .route(
                "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                get(get_deployment).patch(patch_deployment),
            )
            .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
            .route(
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                axum::routing::post(access_review),
            )
            .with_state(state.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        FakeApi {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn cluster(&self) -> MutexGuard<'_, Cluster> {
        lock(&self.state)
    }

    fn patches(&self) -> Vec<Patch> {
        self.cluster().patches.clone()
    }

    fn deployment(&self) -> Value {
        self.cluster().deployments["shop/web"].clone()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A temporary directory with a kubeconfig pointing at the fake and a servo config using it.
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(api: &FakeApi, extra: Value) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": format!("http://{}", api.addr)}}],
        "users": [{"name": "servo", "user": {"token": TOKEN}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "servo"}}],
    });
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig.to_string())
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
    Setup { _dir: dir, config }
}

fn setting<'a>(description: &'a Value, component: &str, name: &str) -> &'a Value {
    common::setting(description, component, name)
        .map(|s| &s["value"])
        .unwrap_or(&Value::Null)
}

#[test]
fn describe_reports_the_live_values_of_each_container() {
    let api = FakeApi::start();
    let s = setup(&api, json!({}));
    let (code, stdout, stderr) = run(&s.config, &["describe", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let d: Value = serde_json::from_str(&stdout).expect("json");
    // `get` defaults to [request, limit]: the request wins when both are set.
    assert_eq!(setting(&d, "web/main", "cpu"), &json!(0.5));
    assert_eq!(setting(&d, "web/main", "mem"), &json!(0.5));
    assert_eq!(setting(&d, "web/main", "replicas"), &json!(2));
    assert_eq!(setting(&d, "web/main", "WORKERS"), &json!(2.0));
    assert!(api.patches().is_empty(), "describe must not patch");
}

#[test]
fn adjust_sends_one_strategic_merge_patch_and_waits_for_the_rollout() {
    let api = FakeApi::start();
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
    let patches = api.patches();
    assert_eq!(patches.len(), 1, "{patches:?}");
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
    let api = FakeApi::start();
    let original = api.deployment();
    let s = setup(&api, json!({}));
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.mem=128Mi"]);
    assert_ne!(code, 0, "a failed rollout fails the command");
    assert!(stderr.contains("OOMKilled"), "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");
    let patches = api.patches();
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert_eq!(patches[1].content_type, "application/json-patch+json");
    assert_eq!(
        patches[1].body,
        json!([
            {"op": "replace", "path": "/spec/template", "value": original["spec"]["template"]},
            {"op": "replace", "path": "/spec/replicas", "value": 2},
        ])
    );
    assert_eq!(
        api.deployment()["spec"],
        original["spec"],
        "the deployment is as before"
    );
}

#[test]
fn an_unschedulable_rollout_with_on_failure_exception_is_reported_and_left() {
    let api = FakeApi::start();
    let s = setup(&api, json!({"on_failure": "exception"}));
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.cpu=3"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("Insufficient cpu"), "{stderr}");
    assert_eq!(
        api.patches().len(),
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
    let api = FakeApi::start();
    api.cluster().progress_deadline = true;
    let s = setup(&api, json!({"on_failure": "destroy"}));
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.cpu=1"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("ProgressDeadlineExceeded"), "{stderr}");
    let patches = api.patches();
    assert_eq!(
        patches.last().map(|p| &p.body),
        Some(&json!({"spec": {"replicas": 0}}))
    );
    assert_eq!(api.deployment()["spec"]["replicas"], 0);
}

#[test]
fn a_rollout_that_never_finishes_times_out_and_is_rolled_back() {
    let api = FakeApi::start();
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

#[test]
fn an_interrupted_adjustment_restores_the_previous_template_before_exiting() {
    let api = FakeApi::start();
    api.cluster().stuck = true;
    let original = api.deployment();
    let s = setup(&api, json!({"timeout": "60s"}));
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
    // Ready when the fake has received the adjustment's patch.
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.patches().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(api.patches().len(), 1, "servo patched the deployment");
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
    let patches = api.patches();
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert_eq!(patches[1].content_type, "application/json-patch+json");
    assert_eq!(api.deployment()["spec"], original["spec"]);
}

#[test]
fn api_blips_during_a_rollout_are_retried_and_lasting_errors_roll_back() {
    let api = FakeApi::start();
    api.cluster().failing_pod_lists = 3;
    let s = setup(&api, json!({}));
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.cpu=1"]);
    assert_eq!(code, 0, "three failed reads are a blip: {stderr}");
    assert_eq!(api.patches().len(), 1);

    let original = api.deployment();
    api.cluster().failing_pod_lists = 1000;
    let (code, _, stderr) = run(&s.config, &["adjust", "web/main.cpu=1500m"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("could not be read 5 times in a row"),
        "{stderr}"
    );
    assert!(stderr.contains("etcdserver: request timed out"), "{stderr}");
    assert_eq!(api.deployment()["spec"], original["spec"], "rolled back");
}

#[test]
fn check_passes_against_a_healthy_deployment_and_names_missing_containers() {
    let api = FakeApi::start();
    let s = setup(&api, json!({}));
    let (code, stdout, stderr) = run(&s.config, &["check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("v1.31.0-fake"), "{stdout}");

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
    let api = FakeApi::start();
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
    let api = FakeApi::start();
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
    let api = FakeApi::start();
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
    let api = FakeApi::start();
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
        api.patches().len() >= 4,
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

    std::fs::write(
        &config,
        servox.replace("stateful_sets: []", "stateful_sets: [{name: db}]"),
    )
    .expect("write");
    let (code, _, stderr) = run(&config, &["validate"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("kubernetes.stateful_sets: StatefulSets are not supported yet"),
        "{stderr}"
    );
}
