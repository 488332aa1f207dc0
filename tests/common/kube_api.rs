//! A fake Kubernetes API server on 127.0.0.1 for the `kubernetes` connector's end-to-end tests
#![allow(dead_code)]
//! (no control plane can run on the test machines). It speaks the API's JSON: every object it
//! stores or returns is round-tripped through the `k8s-openapi` type of its kind, so a shape the
//! real API would not accept is refused with 422.
//!
//! Opt-in (`#[path = "common/kube_api.rs"] mod kube_api;`).
//!
//! **Emulated**: `/version`; Deployments and StatefulSets (`apps/v1`) GET, list, watch, strategic-merge PATCH
//! (each field as the v1.33 OpenAPI's `x-kubernetes-patch-strategy`/`-merge-key` says, read from
//! `tests/fixtures/kubernetes/patch-keys-v1.33.json`; `$patch: delete` on list items), merge PATCH, PUT with `resourceVersion` optimistic concurrency
//! (409 Conflict); Pods (`v1`) GET, list, watch, POST, DELETE; list `fieldSelector=metadata.name=`
//! and equality `labelSelector`s; watches from a `resourceVersion` replaying a change log, with
//! `BOOKMARK`s when asked and `410 Gone` on demand; a PATCH answered late, after it was applied
//! (`patch_answer_delay`), and a PUT lost before it was applied (`unanswered_puts`);
//! SelfSubjectAccessReviews; bearer tokens;
//! metrics-server's `metrics.k8s.io/v1beta1` PodMetrics (list and get, see its section).
//! ReplicaSets GET (added by a test; the controller does not make them).
//! A controller loop (every 25 ms) plays the Deployment controller and the kubelet: it observes
//! each new generation, replaces the Deployment's pods, and gives every pod the fate of its spec
//! (see [`Fate`]).
//!
//! Services (`v1`, see the "Services and Namespaces" section) GET, list, strategic-merge PATCH
//! (by the same OpenAPI table: `ports` merge by `port`), merge PATCH and PUT; Namespaces GET (every
//! namespace that holds an object exists).
//!
//! **Not emulated**: admission, defaulting (objects are stored as sent), other resources
//! (ReplicaSets beyond GET, ConfigMaps), set-based label selectors, other field selectors,
//! server-side apply, JSON patch, `$patch: replace`, `$retainKeys`, `$setElementOrder` and
//! `$deleteFromPrimitiveList` directives, graceful deletion, pagination
//! (`limit`/`continue`), protobuf, RBAC beyond the access reviews it is told to deny.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use serde_json::{Value, json};

/// The bearer token the fake accepts.
pub const TOKEN: &str = "fake-token";
/// A pod asking for more CPU than this cannot be scheduled.
pub const CPU_CAPACITY_MILLICORES: u64 = 2000;
/// A container's working set unless its env's `FAKE_MEMORY_USAGE` says otherwise: limited to less
/// memory than this, it is OOM-killed.
pub const OOM_BELOW_BYTES: u64 = 256 << 20;
const TICK: Duration = Duration::from_millis(25);
/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_millis(500);

/// One write the fake received: method, content type and body.
#[derive(Clone, Debug)]
pub struct Write {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
    /// The status code the fake answered.
    pub status: u16,
}

/// One entry of the change log watches replay.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    kind: &'static str,
    namespace: String,
    kind_of_change: &'static str,
    object: Value,
}

/// The fake cluster's state; tests change the knobs through [`FakeApi::cluster`].
#[derive(Default)]
pub struct Cluster {
    rv: u64,
    /// (kind, namespace, name) → object, kind being the resource's plural (`deployments`).
    objects: BTreeMap<(&'static str, String, String), Value>,
    log: Vec<Change>,
    /// The template each deployment started with: what `stuck` lets through.
    original: BTreeMap<String, Value>,
    pub writes: Vec<Write>,
    /// New templates end in `ProgressDeadlineExceeded`.
    pub progress_deadline: bool,
    /// The controller never observes a template other than the original.
    pub stuck: bool,
    /// `verb resource` pairs the SelfSubjectAccessReview endpoint denies.
    pub denied: Vec<String>,
    /// How many of the next pod list or watch requests answer 500 (an API server blip).
    pub failing_pod_reads: u32,
    /// How many of the next PUTs answer 409 Conflict (another writer got there first).
    pub conflicts: u32,
    /// How long a PATCH waits, once applied, before it is answered (a slow API server).
    pub patch_answer_delay: Option<std::time::Duration>,
    /// How many of the next PUTs are lost on their way: recorded (as 504), never applied, and
    /// answered only after a minute, when the client has long given up.
    pub unanswered_puts: u32,
    /// How many of the next watches answer `410 Gone` (their resourceVersion was compacted).
    pub expired_watches: u32,
    /// Watches answered 410, bookmarks sent.
    pub gone_served: u32,
    pub bookmarks_sent: u32,
    /// The bearer tokens requests carried, in order (deduplicated runs).
    pub tokens: Vec<String>,
    /// What the metrics API serves (see the `metrics.k8s.io` section).
    pub metrics: PodMetricsServer,
}

type Shared = Arc<(Mutex<Cluster>, tokio::sync::Notify)>;

fn lock(state: &Shared) -> MutexGuard<'_, Cluster> {
    state.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Round-trips `object` through the k8s-openapi type of `kind`: the API's own shape.
fn typed(kind: &str, object: Value) -> Result<Value, String> {
    let check = |r: Result<Value, serde_json::Error>| r.map_err(|e| format!("invalid {kind}: {e}"));
    match kind {
        "deployments" => {
            check(serde_json::from_value::<Deployment>(object).and_then(serde_json::to_value))
        }
        "statefulsets" => {
            check(serde_json::from_value::<StatefulSet>(object).and_then(serde_json::to_value))
        }
        "pods" => check(serde_json::from_value::<Pod>(object).and_then(serde_json::to_value)),
        "replicasets" => {
            check(serde_json::from_value::<ReplicaSet>(object).and_then(serde_json::to_value))
        }
        "services" => typed_service(object),
        _ => Err(format!("the fake does not serve {kind}")),
    }
}

impl Cluster {
    /// Stores `object` (if it changed), stamping a new resourceVersion and logging the change.
    fn put(&mut self, kind: &'static str, ns: &str, name: &str, mut object: Value) {
        let key = (kind, ns.to_string(), name.to_string());
        object["metadata"]["namespace"] = json!(ns);
        object["metadata"]["name"] = json!(name);
        let existed = match self.objects.get(&key) {
            Some(old) => {
                let mut a = old.clone();
                a["metadata"]["resourceVersion"] = Value::Null;
                object["metadata"]["resourceVersion"] = Value::Null;
                if a == object {
                    return;
                }
                true
            }
            None => false,
        };
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("{kind}-{ns}-{name}-{}", self.rv));
        }
        self.log.push(Change {
            rv: self.rv,
            kind,
            namespace: ns.to_string(),
            kind_of_change: if existed { "MODIFIED" } else { "ADDED" },
            object: object.clone(),
        });
        self.objects.insert(key, object);
    }

    fn remove(&mut self, kind: &'static str, ns: &str, name: &str) -> Option<Value> {
        let mut object = self
            .objects
            .remove(&(kind, ns.to_string(), name.to_string()))?;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.log.push(Change {
            rv: self.rv,
            kind,
            namespace: ns.to_string(),
            kind_of_change: "DELETED",
            object: object.clone(),
        });
        Some(object)
    }

    /// Adds a Deployment or StatefulSet (any JSON its k8s-openapi type accepts).
    pub fn add_deployment(&mut self, deployment: Value) {
        let kind = match deployment["kind"].as_str() {
            Some("StatefulSet") => "statefulsets",
            _ => "deployments",
        };
        let deployment = typed(kind, deployment).expect("a valid workload");
        let ns = deployment["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = deployment["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.original.insert(
            format!("{kind}/{ns}/{name}"),
            deployment["spec"]["template"].clone(),
        );
        self.put(kind, &ns, &name, deployment);
        self.reconcile();
    }

    /// Adds a ReplicaSet (served read-only).
    pub fn add_replica_set(&mut self, replica_set: Value) {
        let replica_set = typed("replicasets", replica_set).expect("a valid replica set");
        let ns = replica_set["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = replica_set["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.put("replicasets", &ns, &name, replica_set);
    }

    pub fn stateful_set(&self, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&("statefulsets", ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn deployment(&self, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&("deployments", ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&("pods", ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn pods(&self, ns: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((kind, n, _), _)| *kind == "pods" && n == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// One pass of the controller and the kubelet.
    fn reconcile(&mut self) {
        let workloads: Vec<(&'static str, String, String, Value)> = self
            .objects
            .iter()
            .filter(|((kind, _, _), _)| matches!(*kind, "deployments" | "statefulsets"))
            .map(|((kind, ns, name), d)| (*kind, ns.clone(), name.clone(), d.clone()))
            .collect();
        let mut owned = std::collections::BTreeSet::new();
        for (kind, ns, name, mut d) in workloads {
            let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
            let changed =
                self.original.get(&format!("{kind}/{ns}/{name}")) != Some(&d["spec"]["template"]);
            if self.stuck && changed {
                // Nothing observed: the pods of the last observed template stay.
                for ((kind, n, pod), p) in &self.objects {
                    if *kind == "pods"
                        && *n == ns
                        && p["metadata"]["ownerReferences"][0]["name"] == name
                    {
                        owned.insert(pod.clone());
                    }
                }
                continue;
            }
            let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
            let template = d["spec"]["template"].clone();
            let fate = Fate::of(&template["spec"]);
            // The kubelet's part: this generation's pods exist, older ones are gone.
            for i in 0..replicas {
                let pod_name = format!("{name}-{generation}-{i}");
                owned.insert(pod_name.clone());
                let existing = self.pod(&ns, &pod_name);
                if existing.is_none() {
                    let owner = if kind == "deployments" {
                        "Deployment"
                    } else {
                        "StatefulSet"
                    };
                    let pod = json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod_name, "labels": template["metadata"]["labels"],
                                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner,
                                        "name": name, "uid": name, "controller": true}]},
                        "spec": template["spec"]});
                    self.put("pods", &ns, &pod_name, pod);
                }
            }
            let ready = if fate == Fate::Runs { replicas } else { 0 };
            let conditions = if self.progress_deadline && changed {
                json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                        "message": format!("ReplicaSet \"{name}-{generation}\" has timed out progressing.")}])
            } else if ready == replicas {
                json!([{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}])
            } else {
                json!([{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}])
            };
            d["status"] = if kind == "deployments" {
                json!({
                    "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                    "readyReplicas": ready, "availableReplicas": ready, "conditions": conditions,
                })
            } else {
                // A StatefulSet's update is done when its current revision is the update revision.
                let revision = format!("{name}-{generation}");
                let current = if ready == replicas {
                    revision.clone()
                } else {
                    d["status"]["currentRevision"]
                        .as_str()
                        .unwrap_or(&revision)
                        .to_string()
                };
                json!({
                    "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                    "currentReplicas": ready, "readyReplicas": ready, "availableReplicas": ready,
                    "currentRevision": current, "updateRevision": revision,
                })
            };
            self.put(kind, &ns, &name, d);
        }
        // Pods of a Deployment's older generations go; every pod gets the fate of its spec.
        let pods: Vec<(String, String, Value)> = self
            .objects
            .iter()
            .filter(|((kind, _, _), _)| *kind == "pods")
            .map(|((_, ns, name), p)| (ns.clone(), name.clone(), p.clone()))
            .collect();
        for (ns, name, mut pod) in pods {
            // Only the pods this controller made (their owner's uid is its name) are replaced;
            // others with owners (a tuning Pod owned by servo's Deployment) are left alone.
            let owner = &pod["metadata"]["ownerReferences"][0];
            let made_here = !owner.is_null() && owner["uid"] == owner["name"];
            if made_here && !owned.contains(&name) {
                self.remove("pods", &ns, &name);
                continue;
            }
            pod["status"] = Fate::of(&pod["spec"]).pod_status(&pod["spec"]);
            self.put("pods", &ns, &name, pod);
        }
    }
}

/// What the fake kubelet does with a pod spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Running and ready.
    Runs,
    /// A container's memory limit is below its working set ([`OOM_BELOW_BYTES`], or its env's
    /// `FAKE_MEMORY_USAGE` quantity): OOMKilled, then CrashLoopBackOff.
    OomKilled,
    /// A container requests more than [`CPU_CAPACITY_MILLICORES`]: Pending, Unschedulable.
    Unschedulable,
    /// A container's env has `FAKE_CRASH=1`: exits 1, CrashLoopBackOff.
    CrashLoops,
    /// A container's env has `FAKE_NEVER_READY=1`: running, never ready.
    NeverReady,
}

pub fn millicores(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(0),
        None => (q.parse::<f64>().unwrap_or(0.0) * 1000.0).round() as u64,
    }
}

pub fn bytes(q: &str) -> u64 {
    for (suffix, factor) in [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
        if let Some(n) = q.strip_suffix(suffix) {
            return (n.parse::<f64>().unwrap_or(0.0) * factor as f64) as u64;
        }
    }
    q.parse().unwrap_or(0)
}

impl Fate {
    pub fn of(pod_spec: &Value) -> Fate {
        let containers = pod_spec["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let env_is = |c: &Value, name: &str| {
            c["env"]
                .as_array()
                .is_some_and(|vars| vars.iter().any(|v| v["name"] == name && v["value"] == "1"))
        };
        for c in &containers {
            let r = &c["resources"];
            if r["requests"]["cpu"]
                .as_str()
                .is_some_and(|q| millicores(q) > CPU_CAPACITY_MILLICORES)
            {
                return Fate::Unschedulable;
            }
            let usage = c["env"]
                .as_array()
                .and_then(|vars| vars.iter().find(|v| v["name"] == "FAKE_MEMORY_USAGE"))
                .and_then(|v| v["value"].as_str())
                .map_or(OOM_BELOW_BYTES, bytes);
            if r["limits"]["memory"]
                .as_str()
                .is_some_and(|q| bytes(q) < usage)
            {
                return Fate::OomKilled;
            }
            if env_is(c, "FAKE_CRASH") {
                return Fate::CrashLoops;
            }
            if env_is(c, "FAKE_NEVER_READY") {
                return Fate::NeverReady;
            }
        }
        Fate::Runs
    }

    fn pod_status(self, pod_spec: &Value) -> Value {
        let first = pod_spec["containers"][0]["name"].as_str().unwrap_or("main");
        match self {
            Fate::Runs => json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": first, "ready": true, "restartCount": 0,
                    "image": "", "imageID": "", "state": {"running": {}}}]}),
            Fate::NeverReady => json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [{"name": first, "ready": false, "restartCount": 0,
                    "image": "", "imageID": "", "state": {"running": {}}}]}),
            Fate::OomKilled => json!({"phase": "Running", "containerStatuses": [
                {"name": first, "ready": false, "restartCount": 3, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
                 "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}),
            Fate::CrashLoops => json!({"phase": "Running", "containerStatuses": [
                {"name": first, "ready": false, "restartCount": 4, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
                 "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}),
            Fate::Unschedulable => json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient cpu."}]}),
        }
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found(kind: &str, name: &str) -> Response {
    let group = match kind {
        "deployments" => "deployments.apps",
        "statefulsets" => "statefulsets.apps",
        other => other,
    };
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{group} \"{name}\" not found"),
    )
}

/// Records the bearer token; `false` unless it is [`TOKEN`].
fn authorized(state: &Shared, headers: &HeaderMap) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let mut cluster = lock(state);
    if cluster.tokens.last() != Some(&token) {
        cluster.tokens.push(token.clone());
    }
    token == TOKEN
}

/// How the API server's strategic merge treats each field, from the Kubernetes v1.33 OpenAPI
/// (`x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`): generated by
/// `scripts/kube-patch-keys.py`, read once.
struct PatchKeys {
    /// Kind (`Deployment`) → its OpenAPI definition.
    roots: BTreeMap<String, String>,
    /// Definition → field → how it merges and what it holds.
    types: BTreeMap<String, BTreeMap<String, PatchField>>,
}

struct PatchField {
    /// The definition the field holds (itself, as list items, or as map values).
    of: Option<String>,
    /// `merge` (lists merge; by `key` when the items are objects), `retainKeys`, or both.
    strategy: Option<String>,
    key: Option<String>,
}

fn patch_keys() -> &'static PatchKeys {
    static KEYS: std::sync::OnceLock<PatchKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/kubernetes/patch-keys-v1.33.json"
        );
        let text = std::fs::read_to_string(path).expect("the OpenAPI patch keys fixture");
        let file: Value = serde_json::from_str(&text).expect("the patch keys fixture is JSON");
        let text_of = |v: &Value| v.as_str().map(String::from);
        let roots = file["roots"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(kind, d)| Some((kind.clone(), text_of(d)?)))
            .collect();
        let types = file["types"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, fields)| {
                let fields = fields
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(field, f)| {
                        let entry = PatchField {
                            of: text_of(&f["type"]),
                            strategy: text_of(&f["strategy"]),
                            key: text_of(&f["key"]),
                        };
                        (field.clone(), entry)
                    })
                    .collect();
                (name.clone(), fields)
            })
            .collect();
        PatchKeys { roots, types }
    })
}

/// Strategic merge as the API server applies it to an object of `kind` (`Deployment`): maps
/// merge and `null` deletes a key; a list whose field the OpenAPI marks `merge` merges, items
/// matched by its merge key (`containers` and `env` by `name`, a Service's `ports` by `port`,
/// `ownerReferences` by `uid`; primitive lists such as `finalizers` as a union); every other list
/// and scalar is replaced. `$patch: delete` on a merged item removes it.
pub fn strategic_merge(kind: &str, target: &mut Value, patch: &Value) {
    let keys = patch_keys();
    merge_as(
        keys,
        keys.roots.get(kind).map(String::as_str),
        target,
        patch,
    );
}

fn merge_as(keys: &PatchKeys, definition: Option<&str>, target: &mut Value, patch: &Value) {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        *target = patch.clone();
        return;
    };
    let fields = definition.and_then(|d| keys.types.get(d));
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let field = fields.and_then(|f| f.get(k));
        let of = field.and_then(|f| f.of.as_deref());
        let merges = field
            .and_then(|f| f.strategy.as_deref())
            .is_some_and(|s| s.split(',').any(|s| s == "merge"));
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match (slot, v) {
            (Value::Array(existing), Value::Array(items)) if merges => {
                merge_list(
                    keys,
                    of,
                    field.and_then(|f| f.key.as_deref()),
                    existing,
                    items,
                );
            }
            // Objects merge, maps of strings (labels, annotations, quantities) by key too.
            (slot @ Value::Object(_), Value::Object(_)) => merge_as(keys, of, slot, v),
            (slot, v) => *slot = v.clone(),
        }
    }
}

fn merge_list(
    keys: &PatchKeys,
    of: Option<&str>,
    key: Option<&str>,
    existing: &mut Vec<Value>,
    items: &[Value],
) {
    for item in items {
        match key {
            Some(key) => {
                let found = existing.iter().position(|x| x[key] == item[key]);
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (found, delete) {
                    (Some(i), true) => {
                        existing.remove(i);
                    }
                    (Some(i), false) => merge_as(keys, of, &mut existing[i], item),
                    (None, true) => {}
                    (None, false) => existing.push(item.clone()),
                }
            }
            None if !existing.contains(item) => existing.push(item.clone()),
            None => {}
        }
    }
}

/// RFC 7386 merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The query's parameters, percent-decoded.
fn query(raw: Option<String>) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && let Some(hex) = bytes.get(i + 1..i + 3)
                && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Whether `object` passes the `fieldSelector` and `labelSelector` of a list or watch.
fn selected(object: &Value, q: &BTreeMap<String, String>) -> bool {
    if let Some(fields) = q.get("fieldSelector").filter(|f| !f.is_empty()) {
        for term in fields.split(',') {
            match term.split_once('=') {
                Some(("metadata.name", name)) if object["metadata"]["name"] == name => {}
                _ => return false,
            }
        }
    }
    if let Some(labels) = q.get("labelSelector").filter(|l| !l.is_empty()) {
        for term in labels.split(',') {
            let Some((k, v)) = term.split_once('=') else {
                return false;
            };
            if object["metadata"]["labels"][k] != v {
                return false;
            }
        }
    }
    true
}

fn kind_meta(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "deployments" => ("apps/v1", "Deployment"),
        "statefulsets" => ("apps/v1", "StatefulSet"),
        "services" => ("v1", "Service"),
        "replicasets" => ("apps/v1", "ReplicaSet"),
        _ => ("v1", "Pod"),
    }
}

/// A list, or with `watch=true` a stream of watch events.
async fn list_or_watch(
    state: Shared,
    kind: &'static str,
    ns: String,
    raw: Option<String>,
) -> Response {
    let q = query(raw);
    if kind == "pods" {
        let mut cluster = lock(&state);
        if cluster.failing_pod_reads > 0 {
            cluster.failing_pod_reads -= 1;
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "etcdserver: request timed out",
            );
        }
    }
    let (api_version, kind_name) = kind_meta(kind);
    if q.get("watch").map(String::as_str) != Some("true") {
        let cluster = lock(&state);
        let items: Vec<Value> = cluster
            .objects
            .iter()
            .filter(|((k, n, _), o)| *k == kind && *n == ns && selected(o, &q))
            .map(|(_, o)| o.clone())
            .collect();
        return ok(
            StatusCode::OK,
            &json!({"kind": format!("{kind_name}List"), "apiVersion": api_version,
                "metadata": {"resourceVersion": cluster.rv.to_string()}, "items": items}),
        );
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
        .min(Duration::from_secs(60));
    {
        let mut cluster = lock(&state);
        if cluster.expired_watches > 0 {
            cluster.expired_watches -= 1;
            cluster.gone_served += 1;
            let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410,
                "message": format!("too old resource version: {from} ({})", cluster.rv)}});
            return ok(StatusCode::OK, &gone);
        }
    }
    // The watch: replay the log after `from`, then follow it, until the timeout.
    struct Cursor {
        state: Shared,
        kind: &'static str,
        ns: String,
        q: BTreeMap<String, String>,
        seen: u64,
        deadline: tokio::time::Instant,
        next_bookmark: tokio::time::Instant,
        bookmarks: bool,
        api_version: &'static str,
        kind_name: &'static str,
    }
    let cursor = Cursor {
        state,
        kind,
        ns,
        q,
        seen: from,
        deadline: tokio::time::Instant::now() + timeout,
        next_bookmark: tokio::time::Instant::now() + BOOKMARK_EVERY,
        bookmarks,
        api_version,
        kind_name,
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            let state = c.state.clone();
            let notified = state.1.notified();
            let mut out = String::new();
            {
                let cluster = lock(&c.state);
                for change in cluster.log.iter().filter(|ch| ch.rv > c.seen) {
                    if change.kind == c.kind
                        && change.namespace == c.ns
                        && selected(&change.object, &c.q)
                    {
                        out.push_str(
                            &json!({"type": change.kind_of_change, "object": change.object})
                                .to_string(),
                        );
                        out.push('\n');
                    }
                }
                c.seen = cluster.rv;
            }
            if !out.is_empty() {
                return Some((Ok::<_, std::convert::Infallible>(Bytes::from(out)), c));
            }
            if tokio::time::Instant::now() >= c.deadline {
                return None;
            }
            let bookmark_due = tokio::time::sleep_until(c.next_bookmark);
            tokio::select! {
                () = notified => {}
                () = bookmark_due, if c.bookmarks => {
                    c.next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                    let line = {
                        let mut cluster = lock(&state);
                        cluster.bookmarks_sent += 1;
                        json!({"type": "BOOKMARK", "object": {"kind": c.kind_name,
                            "apiVersion": c.api_version,
                            "metadata": {"resourceVersion": cluster.rv.to_string()}}})
                    };
                    return Some((Ok(Bytes::from(format!("{line}\n"))), c));
                }
                () = tokio::time::sleep_until(c.deadline) => return None,
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn record(
    state: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
    code: StatusCode,
) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    lock(state).writes.push(Write {
        method: method.to_string(),
        path: path.to_string(),
        content_type,
        body: body.clone(),
        status: code.as_u16(),
    });
}

/// GET, PATCH, PUT or DELETE of one object.
async fn one(
    state: Shared,
    kind: &'static str,
    ns: String,
    name: String,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("{kind}/{ns}/{name}");
    let current = lock(&state)
        .objects
        .get(&(kind, ns.clone(), name.clone()))
        .cloned();
    let Some(current) = current else {
        return not_found(kind, &name);
    };
    if method == Method::GET {
        return ok(StatusCode::OK, &current);
    }
    if method == Method::DELETE {
        record(
            &state,
            &method,
            &path,
            &headers,
            &Value::Null,
            StatusCode::OK,
        );
        let removed = lock(&state).remove(kind, &ns, &name);
        state.1.notify_waiters();
        return ok(StatusCode::OK, &removed.unwrap_or_default());
    }
    let Ok(sent) = serde_json::from_slice::<Value>(&body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not JSON",
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut next = current.clone();
    // In a block: a guard held across the slow answer's await would make the handler `!Send`.
    let code = {
        let mut cluster = lock(&state);
        match (method.as_str(), content_type.as_str()) {
            ("PATCH", "application/strategic-merge-patch+json") => {
                strategic_merge(kind_meta(kind).1, &mut next, &sent);
                StatusCode::OK
            }
            ("PATCH", "application/merge-patch+json") => {
                merge_patch(&mut next, &sent);
                StatusCode::OK
            }
            ("PATCH", _) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ("PUT", _) if cluster.unanswered_puts > 0 => {
                cluster.unanswered_puts -= 1;
                StatusCode::GATEWAY_TIMEOUT
            }
            ("PUT", _) => {
                if cluster.conflicts > 0
                    || sent["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
                {
                    cluster.conflicts = cluster.conflicts.saturating_sub(1);
                    StatusCode::CONFLICT
                } else {
                    next = sent.clone();
                    StatusCode::OK
                }
            }
            _ => StatusCode::METHOD_NOT_ALLOWED,
        }
    };
    record(&state, &method, &path, &headers, &sent, code);
    match code {
        StatusCode::OK => {}
        StatusCode::GATEWAY_TIMEOUT => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return status(code, "Timeout", "the request never reached the API server");
        }
        StatusCode::CONFLICT => {
            return status(
                code,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            );
        }
        other => {
            return status(
                other,
                "BadRequest",
                &format!("{method} {content_type} is not supported by the fake"),
            );
        }
    }
    // The main resource's endpoint ignores status; the spec's changes bump the generation.
    next["status"] = current["status"].clone();
    next["metadata"]["generation"] = current["metadata"]["generation"].clone();
    next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    let next = match typed(kind, next) {
        Ok(next) => next,
        Err(e) => return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e),
    };
    let (stored, delay) = {
        let mut cluster = lock(&state);
        let mut next = next;
        // Services have no generation.
        if next["spec"] != current["spec"] && kind != "services" {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            next["metadata"]["generation"] = json!(generation);
        }
        cluster.put(kind, &ns, &name, next);
        let stored = cluster.objects[&(kind, ns, name)].clone();
        let delay = cluster
            .patch_answer_delay
            .filter(|_| method == Method::PATCH);
        (stored, delay)
    };
    state.1.notify_waiters();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    ok(StatusCode::OK, &stored)
}

async fn stateful_sets(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    list_or_watch(state, "statefulsets", ns, q).await
}

/// A ReplicaSet, read only: the fake's controller does not use them (a Deployment owns its pods
/// directly); a test adds one to stand between a Pod and its Deployment.
async fn replica_set(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    one(
        state,
        "replicasets",
        ns,
        name,
        Method::GET,
        headers,
        Bytes::new(),
    )
    .await
}

async fn stateful_set(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    one(state, "statefulsets", ns, name, method, headers, body).await
}

async fn deployments(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    list_or_watch(state, "deployments", ns, q).await
}

async fn deployment(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    one(state, "deployments", ns, name, method, headers, body).await
}

async fn pods(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    if method != Method::POST {
        return list_or_watch(state, "pods", ns, q).await;
    }
    let Ok(sent) = serde_json::from_slice::<Value>(&body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not JSON",
        );
    };
    let name = sent["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let exists = lock(&state).pod(&ns, &name).is_some();
    let code = if exists {
        StatusCode::CONFLICT
    } else {
        StatusCode::CREATED
    };
    record(
        &state,
        &method,
        &format!("pods/{ns}/{name}"),
        &headers,
        &sent,
        code,
    );
    if exists {
        return status(
            code,
            "AlreadyExists",
            &format!("pods \"{name}\" already exists"),
        );
    }
    let pod = match typed("pods", sent) {
        Ok(pod) => pod,
        Err(e) => return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e),
    };
    let mut cluster = lock(&state);
    cluster.put("pods", &ns, &name, pod);
    let stored = cluster.pod(&ns, &name).unwrap_or_default();
    drop(cluster);
    state.1.notify_waiters();
    ok(code, &stored)
}

async fn pod(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    one(state, "pods", ns, name, method, headers, body).await
}

async fn version(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    ok(
        StatusCode::OK,
        &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64"}),
    )
}

async fn access_review(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let Ok(mut review) = serde_json::from_slice::<Value>(&body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the review is not JSON",
        );
    };
    let attributes = &review["spec"]["resourceAttributes"];
    let asked = format!(
        "{} {}",
        attributes["verb"].as_str().unwrap_or(""),
        attributes["resource"].as_str().unwrap_or("")
    );
    let allowed = !lock(&state).denied.contains(&asked);
    review["status"] = json!({"allowed": allowed});
    ok(StatusCode::CREATED, &review)
}

/// The fake API server, stopped (and its thread joined) on drop.
pub struct FakeApi {
    pub addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    /// Starts the server with the given Deployments.
    pub fn start(initial: Vec<Value>) -> FakeApi {
        let mut cluster = Cluster::default();
        for d in initial {
            cluster.add_deployment(d);
        }
        let state: Shared = Arc::new((Mutex::new(cluster), tokio::sync::Notify::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/version", get(version))
            .route(
                "/apis/apps/v1/namespaces/{ns}/deployments",
                get(deployments),
            )
            .route(
                "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                get(deployment).patch(deployment).put(deployment),
            )
            .route(
                "/apis/apps/v1/namespaces/{ns}/statefulsets",
                get(stateful_sets),
            )
            .route(
                "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
                get(stateful_set).patch(stateful_set).put(stateful_set),
            )
            .route(
                "/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
                get(replica_set),
            )
            .route("/api/v1/namespaces/{ns}/pods", get(pods).post(pods))
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}",
                get(pod).delete(pod).patch(pod),
            )
            .route(
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                post(access_review),
            )
            .merge(pod_metrics_routes())
            .route("/api/v1/namespaces/{ns}", get(namespace))
            .route("/api/v1/namespaces/{ns}/services", get(services))
            .route(
                "/api/v1/namespaces/{ns}/services/{name}",
                get(service).patch(service).put(service),
            )
            .with_state(state.clone());
        let controller = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let (done, is_done) = tokio::sync::watch::channel(false);
                let serve = axum::serve(listener, app).with_graceful_shutdown({
                    let mut is_done = is_done.clone();
                    async move {
                        let _ = is_done.changed().await;
                    }
                });
                let control = async move {
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            () = tokio::time::sleep(TICK) => {
                                let changed = {
                                    let mut cluster = lock(&controller);
                                    let before = cluster.rv;
                                    cluster.reconcile();
                                    cluster.rv != before
                                };
                                if changed {
                                    controller.1.notify_waiters();
                                }
                            }
                        }
                    }
                    let _ = done.send(true);
                };
                // Streaming watches would hold a graceful shutdown open: stop after a grace.
                let _ = tokio::join!(control, async {
                    let mut is_done = is_done.clone();
                    tokio::select! {
                        _ = serve => {}
                        _ = async {
                            let _ = is_done.changed().await;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        } => {}
                    }
                });
            });
        });
        FakeApi {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn cluster(&self) -> MutexGuard<'_, Cluster> {
        lock(&self.state)
    }

    pub fn writes(&self) -> Vec<Write> {
        self.cluster().writes.clone()
    }

    /// A kubeconfig for this server whose user is `user` (e.g. `{"token": TOKEN}`).
    pub fn kubeconfig(&self, user: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": format!("http://{}", self.addr)}}],
            "users": [{"name": "servo", "user": user}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "servo", "namespace": "shop"}}],
        })
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

// ─── metrics.k8s.io/v1beta1: PodMetrics, as metrics-server serves them ─────────────────────────
//
// metrics-server reports, for each running pod it has scraped, each container's CPU (nanocores)
// and memory (Ki) usage, with the pod's labels. Here the test sets the usage per pod and
// container ([`PodMetricsServer::set`]); a pod that exists, runs and has usage set is served.
// Label selectors take `=`, `==`, `!=`, `key` and `!key` terms, as the API server does. Objects are
// built with k8s-openapi's `ObjectMeta`, `Quantity` and `Time`, in the API's JSON shape.

/// The usage the fake metrics-server reports, and whether the metrics API is served at all.
#[derive(Default)]
pub struct PodMetricsServer {
    /// (namespace, pod) → container → (cpu, memory), as metrics-server spells them.
    usage: BTreeMap<(String, String), BTreeMap<String, (String, String)>>,
    /// No metrics-server: every `metrics.k8s.io` request answers 404, as an API server without
    /// its APIService does.
    pub missing: bool,
    /// Requests the metrics API answered, as `GET <path>?<query>`.
    pub requests: Vec<String>,
}

impl PodMetricsServer {
    /// Sets what a pod's container uses: `cpu` as `250000000n` or `250m`, `memory` as `262144Ki`.
    pub fn set(&mut self, ns: &str, pod: &str, container: &str, cpu: &str, memory: &str) {
        self.usage
            .entry((ns.to_string(), pod.to_string()))
            .or_default()
            .insert(container.to_string(), (cpu.to_string(), memory.to_string()));
    }
}

impl Cluster {
    /// Adds a standalone pod (a tuning Pod made by hand); the fake kubelet gives it a status.
    pub fn add_pod(&mut self, pod: Value) {
        let pod = typed("pods", pod).expect("a valid pod");
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.put("pods", &ns, &name, pod);
        self.reconcile();
    }

    /// The PodMetrics of a pod, if metrics-server would serve it.
    fn pod_metrics(&self, ns: &str, name: &str) -> Option<Value> {
        let pod = self.pod(ns, name)?;
        if pod["status"]["phase"] != "Running" {
            return None;
        }
        let usage = self
            .metrics
            .usage
            .get(&(ns.to_string(), name.to_string()))?;
        let metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(json!({
                "name": name, "namespace": ns, "labels": pod["metadata"]["labels"],
                "creationTimestamp": k8s_openapi::jiff::Timestamp::now().to_string(),
            }))
            .expect("valid metadata");
        let containers: Vec<Value> = usage
            .iter()
            .map(|(container, (cpu, memory))| {
                let usage: BTreeMap<
                    String,
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                > = [("cpu", cpu), ("memory", memory)]
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.clone()),
                        )
                    })
                    .collect();
                json!({"name": container, "usage": usage})
            })
            .collect();
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        );
        Some(json!({
            "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": metadata, "timestamp": now, "window": "15.012s",
            "containers": containers,
        }))
    }
}

/// Whether `labels` pass a label selector of `=`, `==`, `!=`, `key` and `!key` terms.
fn labels_select(labels: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k.trim()] != v.trim()
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels[k.trim()] == v.trim()
        } else if let Some(k) = term.strip_prefix('!') {
            labels[k.trim()].is_null()
        } else {
            !labels[term.trim()].is_null()
        }
    })
}

fn pod_metrics_routes() -> Router<Shared> {
    Router::new()
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
            get(list_pod_metrics),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}",
            get(get_pod_metrics),
        )
}

/// The 404 of an API server that does not serve `metrics.k8s.io`.
fn metrics_api_missing() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn list_pod_metrics(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let mut cluster = lock(&state);
    cluster.metrics.requests.push(format!(
        "GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?{}",
        raw.clone().unwrap_or_default()
    ));
    if cluster.metrics.missing {
        return metrics_api_missing();
    }
    let q = query(raw);
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    let items: Vec<Value> = cluster
        .pods(&ns)
        .iter()
        .filter(|p| labels_select(&p["metadata"]["labels"], &selector))
        .filter_map(|p| cluster.pod_metrics(&ns, p["metadata"]["name"].as_str()?))
        .map(|mut m| {
            // List items carry no kind of their own.
            if let Some(o) = m.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            m
        })
        .collect();
    ok(
        StatusCode::OK,
        &json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {}, "items": items}),
    )
}

async fn get_pod_metrics(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let mut cluster = lock(&state);
    cluster.metrics.requests.push(format!(
        "GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}"
    ));
    if cluster.metrics.missing {
        return metrics_api_missing();
    }
    match cluster.pod_metrics(&ns, &name) {
        Some(metrics) => ok(StatusCode::OK, &metrics),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("podmetrics.metrics.k8s.io \"{name}\" not found"),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Services and Namespaces (for opsani_dev and the sidecar commands).

fn typed_service(object: Value) -> Result<Value, String> {
    serde_json::from_value::<Service>(object)
        .and_then(serde_json::to_value)
        .map_err(|e| format!("invalid services: {e}"))
}

impl Cluster {
    /// Adds a Service (any JSON `k8s-openapi`'s `Service` accepts).
    pub fn add_service(&mut self, service: Value) {
        let service = typed_service(service).expect("a valid service");
        let ns = service["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = service["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.put("services", &ns, &name, service);
    }

    pub fn service(&self, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&("services", ns.to_string(), name.to_string()))
            .cloned()
    }
}

async fn services(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    list_or_watch(state, "services", ns, q).await
}

async fn service(
    State(state): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    one(state, "services", ns, name, method, headers, body).await
}

/// A namespace exists when it holds an object (or is `default`).
async fn namespace(
    State(state): State<Shared>,
    Path(ns): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let exists = ns == "default" || lock(&state).objects.keys().any(|(_, n, _)| *n == ns);
    if !exists {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("namespaces \"{ns}\" not found"),
        );
    }
    let object = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns}, "status": {"phase": "Active"}});
    match serde_json::from_value::<Namespace>(object).and_then(serde_json::to_value) {
        Ok(object) => ok(StatusCode::OK, &object),
        Err(e) => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
        ),
    }
}
