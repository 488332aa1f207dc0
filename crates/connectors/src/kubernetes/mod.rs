//! `kubernetes`: tunes the CPU, memory, replicas and environment of containers in Deployments
//! (ServoX's `kubernetes` connector, `default` strategy).
//!
//! **Components.** Each configured container is one component, named by its `alias` or
//! `<deployment>/<container>` (as ServoX names them). Its settings are `cpu` (cores), `mem` (GiB,
//! ServoX's name on the wire), the configured `env` variables, and `replicas` — a Deployment has
//! one replica count, so it is a setting of the deployment's *first* configured container only:
//! two components could otherwise be asked for two different counts in one adjustment.
//!
//! **Adjust.** Each Deployment gets one strategic-merge patch (resources / env by container name,
//! `spec.replicas`), then its rollout is polled every 500 ms until settled within `timeout`
//! (see `rollout.rs` for what settled and failed mean), then held healthy for `settlement`. A
//! failure is handled by `on_failure`: `rollback` (the default here — ServoX's default is
//! `exception`, which leaves the broken template in place) restores the previous pod template and
//! replica count with a JSON patch and waits for it to be healthy again; `shutdown` (or ServoX's
//! `destroy`) scales the Deployment to zero; `exception` leaves it; `ignore` reports success. All
//! but `ignore` return [`ConnectorError::Rejected`] with reason `unstable` and the Kubernetes reason
//! (OOMKilled, Unschedulable: Insufficient cpu, ProgressDeadlineExceeded...). Deployments are
//! adjusted one after the other; a failure stops before the next one.
//!
//! **Checks.** The API answers; servo may get/patch deployments and list pods in each namespace
//! (SelfSubjectAccessReview); each deployment and container exists; cpu/memory requirements are
//! set and, with the replica count, within the configured ranges; the rollout is settled.
//!
//! **Not supported** (yet): the `canary` strategy (tuning pods), StatefulSets, ServoX's
//! configurable `permissions` list, and the credential kinds listed in `client.rs`.

mod client;
mod rollout;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use servo_core::connector::{BuildContext, ConnectorSettings, EventContext, Handlers};
use servo_core::types::{
    Adjustment, Check, Component, Control, Description, MeasureRequest, Measurement, Metric,
    Reading, Setting, SettingKind, SettingValue, Severity,
};
use servo_core::units::{Cpu, Duration, Memory};
use servo_core::{BuildConnector, Connector, ConnectorError, Event, KeyPath, Problem};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use client::{Api, JSON_PATCH, STRATEGIC_MERGE_PATCH};
use rollout::State;

/// What the connector does in each namespace: (verb, API group, resource).
const PERMISSIONS: [(&str, &str, &str); 3] = [
    ("get", "apps", "deployments"),
    ("patch", "apps", "deployments"),
    ("list", "", "pods"),
];

const COST: &str = "cost";

fn cost_metric() -> Metric {
    Metric::new(COST, "$/h")
}

/// Replicas × the requested cpu and memory of every container of the pod template, priced. A
/// container with limits but no requests is requested at its limits, as Kubernetes defaults them.
fn hourly_cost(deployment: &Value, prices: &Prices) -> f64 {
    let replicas = rollout::desired_replicas(deployment) as f64;
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let both = default_requirements();
    let per_pod: f64 = containers
        .iter()
        .map(|c| {
            let cores = requirement(c, "cpu", &both)
                .and_then(cpu_of)
                .map_or(0.0, |v| v.cores());
            let gib = requirement(c, "memory", &both)
                .and_then(memory_of)
                .map_or(0.0, |v| v.gib());
            cores * prices.cpu + gib * prices.memory
        })
        .sum();
    replicas * per_pod
}

/// Consecutive failed reads of a rollout after which it counts as failed.
const MAX_READ_ERRORS: u32 = 5;

/// How often a rollout is polled.
const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Settings of the `kubernetes` connector (a ServoX `kubernetes:` section loads unchanged).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Path to a kubeconfig file (relative to the config file). Default: the first file in
    /// `KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use. Default: its `current-context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespace of the deployments that do not set their own.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// How long a rollout may take before it counts as failed.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// How long the application must stay healthy after a rollout. The optimizer's
    /// `control.settlement` takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<Duration>,
    /// What to do when an adjustment does not become healthy.
    #[serde(default)]
    pub on_failure: FailureMode,
    /// The Deployments to optimize.
    pub deployments: Vec<DeploymentSettings>,
    /// Prices behind the `cost` metric.
    #[serde(default)]
    pub prices: Prices,
    /// ServoX's list of required RBAC permissions. Accepted so ServoX sections load; servo checks
    /// the permissions it actually needs itself (`servo check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<serde_json::Value>>,
    /// ServoX's StatefulSets to optimize. Not supported yet: a non-empty list is an error rather than
    /// silently untuned workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stateful_sets: Vec<serde_json::Value>,
    /// ServoX: include container logs in errors. Accepted; servo's errors always carry the pod
    /// status reasons (OOMKilled, Insufficient cpu...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_logs_in_error_status: Option<bool>,
    /// ServoX: optimize through a separate tuning pod. Not supported yet: `true` is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_tuning_pod: Option<bool>,
}

/// Prices of requested resources, for the `cost` metric (currency per hour; the defaults are
/// round illustrative on-demand cloud prices — set your own).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Price of one requested core for one hour.
    #[serde(default = "default_cpu_price")]
    pub cpu: f64,
    /// Price of one requested GiB of memory for one hour.
    #[serde(default = "default_memory_price")]
    pub memory: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            cpu: default_cpu_price(),
            memory: default_memory_price(),
        }
    }
}

fn default_cpu_price() -> f64 {
    0.03
}

fn default_memory_price() -> f64 {
    0.004
}

fn default_namespace() -> String {
    "default".to_string()
}

fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

/// What to do when an adjustment does not become healthy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Restore the previous pod template and replica count, wait for it to be healthy again.
    #[default]
    Rollback,
    /// Scale the Deployment to zero replicas.
    Shutdown,
    /// ServoX's deprecated name for `shutdown`.
    Destroy,
    /// Report the failure and leave the Deployment as it is.
    Exception,
    /// Log the failure and report success.
    Ignore,
}

/// ServoX's optimization strategies; only `default` (patch the Deployment itself) is supported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Patch the Deployment itself.
    #[default]
    Default,
    /// Tuning pods (not supported: rejected when the config is loaded).
    Canary,
}

/// One Deployment to optimize. `namespace`, `timeout`, `settlement` and `on_failure` default to
/// the connector's.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSettings {
    /// The Deployment's name.
    pub name: String,
    /// Its namespace, if not the connector's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How long its rollout may take, if not the connector's `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// How long it must stay healthy after a rollout, if not the connector's `settlement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<Duration>,
    /// What to do when its adjustment fails, if not the connector's `on_failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<FailureMode>,
    /// How it is optimized: `default` patches the Deployment itself.
    #[serde(default)]
    pub strategy: Strategy,
    /// The replica count's range.
    pub replicas: ReplicasSettings,
    /// The containers to tune (at least one).
    pub containers: Vec<ContainerSettings>,
}

/// Range of `spec.replicas`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicasSettings {
    /// Fewest replicas the optimizer may choose.
    pub min: u32,
    /// Most replicas the optimizer may choose.
    pub max: u32,
    /// Granularity of the choice.
    #[serde(default = "default_replicas_step")]
    pub step: u32,
    /// Described but never changed.
    #[serde(default)]
    pub pinned: bool,
}

fn default_replicas_step() -> u32 {
    1
}

/// Which resource requirements a value is read from (first present wins) or written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// `resources.requests`: what the scheduler reserves.
    Request,
    /// `resources.limits`: what the container may use at most.
    Limit,
}

impl Requirement {
    fn key(self) -> &'static str {
        match self {
            Requirement::Request => "requests",
            Requirement::Limit => "limits",
        }
    }
}

fn default_requirements() -> Vec<Requirement> {
    vec![Requirement::Request, Requirement::Limit]
}

/// One container of a Deployment.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerSettings {
    /// The container's name in the pod template.
    pub name: String,
    /// The component name; default `<deployment>/<container>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The `cpu` setting's range and where it is read from and written to.
    pub cpu: CpuSettings,
    /// The `mem` setting's range and where it is read from and written to.
    pub memory: MemorySettings,
    /// Environment variables to tune.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvSetting>,
    /// ServoX: a command override for the container. Accepted for compatibility; servo leaves the
    /// container's command as the Deployment has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<serde_json::Value>,
    /// ServoX: environment variables set to fixed values. Not supported yet: a non-empty map is an
    /// error (they would silently not be set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_environment_variables: Option<std::collections::BTreeMap<String, String>>,
}

/// Range of the container's CPU, in cores or millicores (`250m`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CpuSettings {
    /// Least CPU the optimizer may choose.
    pub min: Cpu,
    /// Most CPU the optimizer may choose.
    pub max: Cpu,
    /// Granularity of the choice.
    #[serde(default = "default_cpu_step")]
    pub step: Cpu,
    /// Described but never changed.
    #[serde(default)]
    pub pinned: bool,
    /// Where the current value is read from, first present wins.
    #[serde(default = "default_requirements")]
    pub get: Vec<Requirement>,
    /// Which requirements an adjustment writes.
    #[serde(default = "default_requirements")]
    pub set: Vec<Requirement>,
}

fn default_cpu_step() -> Cpu {
    Cpu::from_millicores(125)
}

/// Range of the container's memory (`256Mi`, `4Gi`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    /// Least memory the optimizer may choose.
    pub min: Memory,
    /// Most memory the optimizer may choose.
    pub max: Memory,
    /// Granularity of the choice.
    #[serde(default = "default_memory_step")]
    pub step: Memory,
    /// Described but never changed.
    #[serde(default)]
    pub pinned: bool,
    /// Where the current value is read from, first present wins.
    #[serde(default = "default_requirements")]
    pub get: Vec<Requirement>,
    /// Which requirements an adjustment writes.
    #[serde(default = "default_requirements")]
    pub set: Vec<Requirement>,
}

fn default_memory_step() -> Memory {
    Memory::from_bytes(128 << 20)
}

/// An environment variable setting: numeric (`min`/`max`/`step`) or one of `values`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvSetting {
    /// The setting's name (and the variable's, unless `variable_name` is set).
    pub name: String,
    /// The variable in the container, when it differs from `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable_name: Option<String>,
    /// `range` or `enum` (ServoX's); inferred from `values` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<EnvKind>,
    /// Smallest value of a `range` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest value of a `range` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Granularity of a `range` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    /// The choices of an `enum` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// Unit shown with the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Described but never changed.
    #[serde(default)]
    pub pinned: bool,
}

/// The kind of an env setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvKind {
    /// A number between `min` and `max`.
    Range,
    /// One of `values`.
    Enum,
}

impl EnvSetting {
    fn variable(&self) -> &str {
        self.variable_name.as_deref().unwrap_or(&self.name)
    }

    fn setting(&self) -> Setting {
        let mut s = match &self.values {
            Some(values) => Setting::enumeration(&self.name, values.clone()),
            None => Setting::range(
                &self.name,
                self.min.unwrap_or(0.0),
                self.max.unwrap_or(0.0),
                self.step.unwrap_or(0.0),
            ),
        };
        s.kind = SettingKind::Env;
        s.unit = self.unit.clone();
        s.pinned(self.pinned)
    }
}

impl ConnectorSettings for Settings {
    fn example() -> Self {
        Settings {
            description: Some(
                "update the namespace, deployment and container names to match your cluster".into(),
            ),
            kubeconfig: None,
            context: None,
            namespace: default_namespace(),
            timeout: default_timeout(),
            settlement: Some(Duration::from_secs(30)),
            on_failure: FailureMode::Rollback,
            deployments: vec![DeploymentSettings {
                name: "web".into(),
                namespace: None,
                timeout: None,
                settlement: None,
                on_failure: None,
                strategy: Strategy::Default,
                replicas: ReplicasSettings {
                    min: 1,
                    max: 4,
                    step: 1,
                    pinned: false,
                },
                containers: vec![ContainerSettings {
                    name: "main".into(),
                    alias: None,
                    cpu: CpuSettings {
                        min: Cpu::from_millicores(250),
                        max: Cpu::from_millicores(4000),
                        step: default_cpu_step(),
                        pinned: false,
                        get: default_requirements(),
                        set: default_requirements(),
                    },
                    memory: MemorySettings {
                        min: Memory::from_bytes(256 << 20),
                        max: Memory::from_bytes(4 << 30),
                        step: default_memory_step(),
                        pinned: false,
                        get: default_requirements(),
                        set: default_requirements(),
                    },
                    env: Vec::new(),
                    command: None,
                    static_environment_variables: None,
                }],
            }],
            prices: Prices::default(),
            permissions: None,
            stateful_sets: Vec::new(),
            container_logs_in_error_status: None,
            create_tuning_pod: None,
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let root = KeyPath::root();
        if !self.stateful_sets.is_empty() {
            problems.push(
                Problem::new(
                    root.key("stateful_sets"),
                    "StatefulSets are not supported yet",
                )
                .with_help("optimize Deployments, or remove `stateful_sets`"),
            );
        }
        if self.create_tuning_pod == Some(true) {
            problems.push(
                Problem::new(
                    root.key("create_tuning_pod"),
                    "tuning pods are not supported yet",
                )
                .with_help("set `create_tuning_pod: false`: servo adjusts the Deployment itself"),
            );
        }
        for (d, deployment) in self.deployments.iter().enumerate() {
            for (c, container) in deployment.containers.iter().enumerate() {
                if container
                    .static_environment_variables
                    .as_ref()
                    .is_some_and(|v| !v.is_empty())
                {
                    problems.push(
                        Problem::new(
                            root.key("deployments")
                                .index(d)
                                .key("containers")
                                .index(c)
                                .key("static_environment_variables"),
                            "fixed environment variables are not supported yet",
                        )
                        .with_help("set them in the Deployment itself"),
                    );
                }
            }
        }
        for (key, price) in [("cpu", self.prices.cpu), ("memory", self.prices.memory)] {
            if !price.is_finite() || price < 0.0 {
                problems.push(Problem::new(
                    root.key("prices").key(key),
                    format!("a price must be a number ≥ 0 (found {price})"),
                ));
            }
        }
        if self.deployments.is_empty() {
            problems.push(
                Problem::new(root.key("deployments"), "no deployments to optimize")
                    .with_help("list at least one deployment with its containers"),
            );
        }
        let mut names: BTreeMap<String, KeyPath> = BTreeMap::new();
        for (i, d) in self.deployments.iter().enumerate() {
            let at = root.key("deployments").index(i);
            if d.strategy == Strategy::Canary {
                problems.push(
                    Problem::new(at.key("strategy"), "the `canary` strategy is not supported")
                        .with_help("use `strategy: default` (adjusts the Deployment itself)"),
                );
            }
            let r = &d.replicas;
            if r.min > r.max || r.step == 0 {
                problems.push(Problem::new(
                    at.key("replicas"),
                    format!(
                        "replicas need min ≤ max and step ≥ 1 (found min {}, max {}, step {})",
                        r.min, r.max, r.step
                    ),
                ));
            }
            if d.containers.is_empty() {
                problems.push(Problem::new(at.key("containers"), "no containers to tune"));
            }
            for (j, c) in d.containers.iter().enumerate() {
                let at = at.key("containers").index(j);
                let component = component_name(d, c);
                if let Some(first) = names.insert(component.clone(), at.clone()) {
                    problems.push(
                        Problem::new(
                            at.clone(),
                            format!("component `{component}` is already defined at {first}"),
                        )
                        .with_help("give one of the containers a distinct `alias`"),
                    );
                }
                let (cpu, mem) = (&c.cpu, &c.memory);
                let ranges = [
                    (
                        "cpu",
                        cpu.min > cpu.max || cpu.step.millicores() == 0,
                        [
                            cpu.min.to_string(),
                            cpu.max.to_string(),
                            cpu.step.to_string(),
                        ],
                    ),
                    (
                        "memory",
                        mem.min > mem.max || mem.step.bytes() == 0,
                        [
                            mem.min.to_string(),
                            mem.max.to_string(),
                            mem.step.to_string(),
                        ],
                    ),
                ];
                for (key, wrong, [min, max, step]) in ranges {
                    if wrong {
                        let message = format!(
                            "{key} needs min ≤ max and a step above 0 (found min {min}, max {max}, step {step})"
                        );
                        problems.push(Problem::new(at.key(key), message));
                    }
                }
                for (key, get, set) in [("cpu", &cpu.get, &cpu.set), ("memory", &mem.get, &mem.set)]
                {
                    if get.is_empty() || set.is_empty() {
                        problems.push(Problem::new(
                            at.key(key),
                            "`get` and `set` need at least one of `request`, `limit`",
                        ));
                    }
                }
                for (k, e) in c.env.iter().enumerate() {
                    let at = at.key("env").index(k);
                    let reserved = ["cpu", "mem", "memory", "replicas"];
                    if reserved.contains(&e.name.as_str()) {
                        problems.push(
                            Problem::new(
                                at.key("name"),
                                format!("`{}` is the name of a built-in setting", e.name),
                            )
                            .with_help("rename the setting and set `variable_name`"),
                        );
                    }
                    let problem = match (&e.values, e.kind) {
                        (Some(v), None | Some(EnvKind::Enum)) if !v.is_empty() => None,
                        (None, None | Some(EnvKind::Range)) => match (e.min, e.max) {
                            (Some(min), Some(max)) if min <= max => None,
                            _ => Some("a range env setting needs `min` ≤ `max`"),
                        },
                        _ => Some(
                            "an env setting is either `type: range` with `min`/`max` or `type: enum` with `values`",
                        ),
                    };
                    if let Some(message) = problem {
                        problems.push(Problem::new(at.clone(), message));
                    }
                }
            }
        }
        problems
    }
}

fn component_name(d: &DeploymentSettings, c: &ContainerSettings) -> String {
    c.alias
        .clone()
        .unwrap_or_else(|| format!("{}/{}", d.name, c.name))
}

/// The connector: its settings and, once first needed, its API client.
pub struct Kubernetes {
    settings: Settings,
    kubeconfig: Option<PathBuf>,
    api: OnceCell<Api>,
}

servo_core::register!(Kubernetes {
    name: "kubernetes",
    description: "Tunes CPU, memory, replicas and env of Deployment containers; rolls back unhealthy rollouts",
});

impl BuildConnector for Kubernetes {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        // Reading credentials waits for the first event: `servo validate` must work anywhere.
        // `~/.kube/config`, as ServoX configs write it, means the home directory.
        let kubeconfig = settings.kubeconfig.as_ref().map(|p| {
            match (p.strip_prefix("~"), std::env::var_os("HOME")) {
                (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => cx.base_dir.join(p),
            }
        });
        Ok(Self {
            settings,
            kubeconfig,
            api: OnceCell::new(),
        })
    }
}

/// A deployment's effective settings (its own, else the connector's).
struct Target<'a> {
    config: &'a DeploymentSettings,
    namespace: &'a str,
    timeout: Duration,
    on_failure: FailureMode,
}

/// Why a rollout did not become healthy.
enum Unhealthy {
    /// The Kubernetes reason, or a timeout description.
    Reason(String),
    /// The API failed or the event was cancelled: not the adjustment's fault.
    Error(ConnectorError),
}

impl From<ConnectorError> for Unhealthy {
    fn from(e: ConnectorError) -> Self {
        Unhealthy::Error(e)
    }
}

/// Waits one `POLL`, or until `cancel`.
async fn pause(cancel: &CancellationToken) -> Result<(), ConnectorError> {
    cancel
        .run_until_cancelled(tokio::time::sleep(POLL))
        .await
        .ok_or(ConnectorError::Cancelled)
}

fn cpu_of(text: &Value) -> Option<Cpu> {
    match text {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64().and_then(|c| Cpu::from_cores(c).ok()),
        _ => None,
    }
}

fn memory_of(text: &Value) -> Option<Memory> {
    match text {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().map(Memory::from_bytes),
        _ => None,
    }
}

/// The first of `get` that the container's resources define.
fn requirement<'a>(container: &'a Value, resource: &str, get: &[Requirement]) -> Option<&'a Value> {
    get.iter()
        .map(|r| &container["resources"][r.key()][resource])
        .find(|v| !v.is_null())
}

fn find_container<'a>(deployment: &'a Value, name: &str) -> Option<&'a Value> {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

fn container_names(deployment: &Value) -> String {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

impl Kubernetes {
    async fn api(&self) -> Result<&Api, ConnectorError> {
        self.api
            .get_or_try_init(|| async {
                // Reading the kubeconfig and certificates is file I/O: off the runtime's threads.
                let (path, context) = (self.kubeconfig.clone(), self.settings.context.clone());
                tokio::task::spawn_blocking(move || {
                    Api::connect(path.as_deref(), context.as_deref())
                })
                .await
                .map_err(|e| {
                    ConnectorError::failed(format!("loading the kubeconfig failed: {e}"))
                })?
            })
            .await
    }

    fn targets(&self) -> impl Iterator<Item = Target<'_>> {
        self.settings.deployments.iter().map(|d| Target {
            config: d,
            namespace: d.namespace.as_deref().unwrap_or(&self.settings.namespace),
            timeout: d.timeout.unwrap_or(self.settings.timeout),
            on_failure: d.on_failure.unwrap_or(self.settings.on_failure),
        })
    }

    /// The components of one deployment, with current values from its live object.
    fn components_of(
        &self,
        target: &Target<'_>,
        deployment: &Value,
    ) -> Result<Vec<Component>, ConnectorError> {
        let d = target.config;
        let mut out = Vec::new();
        for (i, c) in d.containers.iter().enumerate() {
            let Some(container) = find_container(deployment, &c.name) else {
                return Err(ConnectorError::failed(format!(
                    "deployment {} -n {} has no container `{}` (it has: {})",
                    d.name,
                    target.namespace,
                    c.name,
                    container_names(deployment)
                ))
                .with_hint("fix `containers[].name` in servo's config"));
            };
            let mut cpu =
                Setting::cpu("cpu", c.cpu.min, c.cpu.max, c.cpu.step).pinned(c.cpu.pinned);
            cpu.value = requirement(container, "cpu", &c.cpu.get)
                .and_then(cpu_of)
                .map(|v| SettingValue::Float(v.cores()));
            let mut mem = Setting::memory("mem", c.memory.min, c.memory.max, c.memory.step)
                .pinned(c.memory.pinned);
            mem.value = requirement(container, "memory", &c.memory.get)
                .and_then(memory_of)
                .map(|v| SettingValue::Float(v.gib()));
            let mut settings = vec![cpu, mem];
            if i == 0 {
                let r = &d.replicas;
                settings.push(
                    Setting::replicas("replicas", r.min.into(), r.max.into(), r.step.into())
                        .pinned(r.pinned)
                        .with_value(rollout::desired_replicas(deployment)),
                );
            }
            for e in &c.env {
                let mut s = e.setting();
                s.value = container["env"]
                    .as_array()
                    .and_then(|vars| vars.iter().find(|v| v["name"] == e.variable()))
                    .and_then(|v| v["value"].as_str())
                    .map(|text| match (&e.values, text.parse::<f64>()) {
                        (None, Ok(n)) => SettingValue::Float(n),
                        _ => SettingValue::String(text.to_string()),
                    });
                settings.push(s);
            }
            out.push(Component::new(component_name(d, c), settings));
        }
        Ok(out)
    }

    async fn describe_all(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Vec<Component>, ConnectorError> {
        let api = self.api().await?;
        let mut components = Vec::new();
        for target in self.targets() {
            let deployment = api
                .deployment(target.namespace, &target.config.name, cancel)
                .await?;
            components.extend(self.components_of(&target, &deployment)?);
        }
        Ok(components)
    }

    /// The strategic-merge patch for one deployment's adjustments, or `None` when none address it.
    fn patch_for(
        &self,
        target: &Target<'_>,
        adjustments: &[Adjustment],
    ) -> Result<Option<Value>, ConnectorError> {
        let d = target.config;
        let mut containers = Vec::new();
        let mut replicas = None;
        for (i, c) in d.containers.iter().enumerate() {
            let name = component_name(d, c);
            let mut requests = serde_json::Map::new();
            let mut limits = serde_json::Map::new();
            let mut env = Vec::new();
            for a in adjustments.iter().filter(|a| a.component == name) {
                let number = || {
                    a.value
                        .as_f64()
                        .filter(|n| n.is_finite())
                        .ok_or_else(|| ConnectorError::invalid(format!("{a}: expected a number")))
                };
                let (quantity, resource, set) = match a.setting.as_str() {
                    "cpu" => {
                        let cpu = Cpu::from_cores(number()?)
                            .map_err(|e| ConnectorError::invalid(format!("{a}: {e}")))?;
                        (cpu.to_string(), "cpu", &c.cpu.set)
                    }
                    "mem" | "memory" => {
                        let mem = Memory::from_gib(number()?)
                            .map_err(|e| ConnectorError::invalid(format!("{a}: {e}")))?;
                        (mem.to_string(), "memory", &c.memory.set)
                    }
                    "replicas" if i == 0 => {
                        let n = number()?;
                        if n.fract() != 0.0 || n < 0.0 || n > f64::from(u32::MAX) {
                            return Err(ConnectorError::invalid(format!(
                                "{a}: replicas must be a whole number ≥ 0"
                            )));
                        }
                        replicas = Some(n as u64);
                        continue;
                    }
                    other => {
                        let Some(e) = c.env.iter().find(|e| e.name == other) else {
                            return Err(ConnectorError::invalid(format!(
                                "component `{name}` has no setting `{other}`"
                            )));
                        };
                        env.push(json!({"name": e.variable(), "value": a.value.to_string()}));
                        continue;
                    }
                };
                for r in set {
                    let map = match r {
                        Requirement::Request => &mut requests,
                        Requirement::Limit => &mut limits,
                    };
                    map.insert(resource.to_string(), Value::String(quantity.clone()));
                }
            }
            let mut patch = serde_json::Map::new();
            let mut resources = serde_json::Map::new();
            if !requests.is_empty() {
                resources.insert("requests".into(), Value::Object(requests));
            }
            if !limits.is_empty() {
                resources.insert("limits".into(), Value::Object(limits));
            }
            if !resources.is_empty() {
                patch.insert("resources".into(), Value::Object(resources));
            }
            if !env.is_empty() {
                patch.insert("env".into(), Value::Array(env));
            }
            if !patch.is_empty() {
                patch.insert("name".into(), Value::String(c.name.clone()));
                containers.push(Value::Object(patch));
            }
        }
        if containers.is_empty() && replicas.is_none() {
            return Ok(None);
        }
        let mut spec = serde_json::Map::new();
        if let Some(n) = replicas {
            spec.insert("replicas".into(), json!(n));
        }
        if !containers.is_empty() {
            spec.insert(
                "template".into(),
                json!({"spec": {"containers": containers}}),
            );
        }
        Ok(Some(json!({ "spec": spec })))
    }

    /// Polls the rollout until settled (within `timeout`), then holds it healthy for `settlement`.
    /// With `pods` false only the Deployment's status counts (used after a rollback, when pods
    /// of the failed template may linger).
    async fn watch(
        &self,
        api: &Api,
        target: &Target<'_>,
        settlement: Duration,
        pods: bool,
        cancel: &CancellationToken,
    ) -> Result<(), Unhealthy> {
        let name = &target.config.name;
        let started = Instant::now();
        let mut settled_at: Option<Instant> = None;
        let mut read_errors = 0;
        loop {
            let read = async {
                let deployment = api.deployment(target.namespace, name, cancel).await?;
                let pod_list = match (pods, rollout::selector(&deployment)) {
                    (true, Some(selector)) => api.pods(target.namespace, &selector, cancel).await?,
                    _ => Vec::new(),
                };
                Ok::<_, ConnectorError>((deployment, pod_list))
            };
            let (deployment, pod_list) = match read.await {
                Ok(read) => {
                    read_errors = 0;
                    read
                }
                Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled.into()),
                // A blip must not abandon a half-done rollout; a lasting error ends the watch as
                // a failure, so `on_failure` still restores the Deployment.
                Err(e) => {
                    read_errors += 1;
                    tracing::warn!(deployment = %name, error = %e, attempt = read_errors, "cannot read the rollout");
                    if read_errors >= MAX_READ_ERRORS {
                        return Err(Unhealthy::Reason(format!(
                            "the rollout's state could not be read {read_errors} times in a row: {e}"
                        )));
                    }
                    pause(cancel).await?;
                    continue;
                }
            };
            match (rollout::state(&deployment, &pod_list), settled_at) {
                (State::Failed(reason), _) => return Err(Unhealthy::Reason(reason)),
                (State::Settled, None) => {
                    tracing::info!(deployment = %name, elapsed = ?started.elapsed(), "rollout settled");
                    settled_at = Some(Instant::now());
                }
                (State::Settled, Some(at)) => {
                    if at.elapsed() >= settlement.as_std() {
                        return Ok(());
                    }
                }
                (State::Progressing(what), Some(_)) => {
                    return Err(Unhealthy::Reason(format!(
                        "became unhealthy during the {settlement} settlement: {what}"
                    )));
                }
                (State::Progressing(what), None) => {
                    if started.elapsed() >= target.timeout.as_std() {
                        return Err(Unhealthy::Reason(format!(
                            "the rollout did not finish within {}: {what}",
                            target.timeout
                        )));
                    }
                }
            }
            if settled_at.is_some_and(|at| at.elapsed() >= settlement.as_std()) {
                return Ok(());
            }
            pause(cancel).await?;
        }
    }

    /// Applies one deployment's patch and sees it through, handling failure per `on_failure`.
    async fn adjust_one(
        &self,
        api: &Api,
        target: &Target<'_>,
        patch: &Value,
        settlement: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), ConnectorError> {
        let name = &target.config.name;
        let ns = target.namespace;
        let before = api.deployment(ns, name, cancel).await?;
        if before["spec"]["paused"] == true {
            // A paused Deployment never rolls out: the adjustment would only time out.
            return Err(ConnectorError::failed(format!(
                "deployment {name} -n {ns} is paused: an adjustment would never roll out"
            ))
            .with_hint(format!(
                "resume it with `kubectl rollout resume deployment/{name} -n {ns}`"
            )));
        }
        let previous = json!([
            {"op": "replace", "path": "/spec/template", "value": before["spec"]["template"]},
            {"op": "replace", "path": "/spec/replicas", "value": rollout::desired_replicas(&before)},
        ]);
        tracing::info!(deployment = %name, namespace = %ns, %patch, "patching");
        api.patch_deployment(ns, name, STRATEGIC_MERGE_PATCH, patch, cancel)
            .await?;
        let reason = match self.watch(api, target, settlement, true, cancel).await {
            Ok(()) => return Ok(()),
            Err(Unhealthy::Reason(reason)) => reason,
            Err(Unhealthy::Error(ConnectorError::Cancelled)) => {
                if target.on_failure == FailureMode::Rollback {
                    // Best effort, bounded by the request timeout: do not leave a half-tried
                    // template behind because the user pressed Ctrl-C.
                    let quick = CancellationToken::new();
                    if let Err(e) = api
                        .patch_deployment(ns, name, JSON_PATCH, &previous, &quick)
                        .await
                    {
                        tracing::error!(deployment = %name, error = %e, "could not roll back after cancellation");
                    }
                }
                return Err(ConnectorError::Cancelled);
            }
            Err(Unhealthy::Error(e)) => return Err(e),
        };
        tracing::error!(deployment = %name, %reason, on_failure = ?target.on_failure, "adjustment failed");
        let unstable = |message: String| ConnectorError::Rejected {
            reason: "unstable".into(),
            message,
        };
        let what = format!("deployment {name} -n {ns}: {reason}");
        match target.on_failure {
            FailureMode::Ignore => {
                tracing::warn!(deployment = %name, "ignoring the failed adjustment (on_failure: ignore)");
                Ok(())
            }
            FailureMode::Exception => Err(unstable(format!(
                "{what} (left as is: on_failure is exception)"
            ))),
            FailureMode::Shutdown | FailureMode::Destroy => {
                api.patch_deployment(
                    ns,
                    name,
                    STRATEGIC_MERGE_PATCH,
                    &json!({"spec": {"replicas": 0}}),
                    cancel,
                )
                .await?;
                Err(unstable(format!(
                    "{what}; scaled to 0 replicas (on_failure: shutdown)"
                )))
            }
            FailureMode::Rollback => {
                api.patch_deployment(ns, name, JSON_PATCH, &previous, cancel)
                    .await?;
                match self.watch(api, target, Duration::ZERO, false, cancel).await {
                    Ok(()) => Err(unstable(format!(
                        "{what}; rolled back to the previous pod template"
                    ))),
                    Err(Unhealthy::Reason(again)) => Err(unstable(format!(
                        "{what}; rolled back to the previous pod template, which is not healthy either: {again}"
                    ))),
                    Err(Unhealthy::Error(e)) => Err(e),
                }
            }
        }
    }

    /// One check per namespace: may servo read and patch its deployments and list their pods?
    async fn check_permissions(
        &self,
        api: &Api,
        cancel: &CancellationToken,
    ) -> Result<Vec<Check>, ConnectorError> {
        let namespaces: std::collections::BTreeSet<&str> =
            self.targets().map(|t| t.namespace).collect();
        let mut checks = Vec::new();
        for ns in namespaces {
            let name = format!("Required permissions in namespace \"{ns}\"");
            let mut denied = Vec::new();
            for (verb, group, resource) in PERMISSIONS {
                match api.can(verb, group, resource, ns, cancel).await {
                    Ok(true) => {}
                    Ok(false) => denied.push(format!("{verb} {resource}")),
                    Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
                    Err(e) => {
                        denied.push(format!("{verb} {resource} (the review failed: {e})"));
                    }
                }
            }
            checks.push(if denied.is_empty() {
                Check::pass(name, "get/patch deployments, list pods")
            } else {
                Check::fail(name, format!("not allowed to {}", denied.join(", "))).with_hint(
                    "grant servo's user or service account these verbs with a Role and RoleBinding in the namespace",
                )
            });
        }
        Ok(checks)
    }

    async fn check_target(
        &self,
        api: &Api,
        target: &Target<'_>,
        cancel: &CancellationToken,
    ) -> Vec<Check> {
        let d = target.config;
        let mut checks = Vec::new();
        let readable = format!("Deployment \"{}\" is readable", d.name);
        let deployment = match api.deployment(target.namespace, &d.name, cancel).await {
            Ok(deployment) => {
                checks.push(Check::pass(
                    readable,
                    format!("found in namespace {}", target.namespace),
                ));
                deployment
            }
            Err(e) => {
                let hint = e.hint().map(str::to_string);
                let mut check = Check::fail(readable, e.to_string());
                check.hint = hint;
                checks.push(check);
                return checks;
            }
        };
        let replicas = rollout::desired_replicas(&deployment);
        let r = &d.replicas;
        let in_range = (i64::from(r.min)..=i64::from(r.max)).contains(&replicas);
        let name = format!("Deployment \"{}\" replicas are in range", d.name);
        checks.push(if in_range {
            Check::pass(name, format!("{replicas} in {}..{}", r.min, r.max))
        } else {
            Check::fail(
                name,
                format!("{replicas} replicas, outside {}..{}", r.min, r.max),
            )
            .with_severity(Severity::Warning)
            .with_hint("the first adjustment will move it into range; widen `replicas` to keep it")
        });
        for c in &d.containers {
            let name = format!(
                "Container \"{}\" exists in deployment \"{}\"",
                c.name, d.name
            );
            let Some(container) = find_container(&deployment, &c.name) else {
                checks.push(
                    Check::fail(
                        name,
                        format!("the pod template has: {}", container_names(&deployment)),
                    )
                    .with_hint("fix `containers[].name` in servo's config"),
                );
                continue;
            };
            checks.push(Check::pass(name, "found in the pod template"));
            let cpu = requirement(container, "cpu", &c.cpu.get).and_then(cpu_of);
            let mem = requirement(container, "memory", &c.memory.get).and_then(memory_of);
            let resources = format!(
                "Container \"{}\" has resource requirements in range",
                c.name
            );
            let mut problems = Vec::new();
            match cpu {
                None => problems.push("no cpu request or limit is set".to_string()),
                Some(v) if v < c.cpu.min || v > c.cpu.max => {
                    problems.push(format!("cpu {v} is outside {}..{}", c.cpu.min, c.cpu.max))
                }
                Some(_) => {}
            }
            match mem {
                None => problems.push("no memory request or limit is set".to_string()),
                Some(v) if v < c.memory.min || v > c.memory.max => problems.push(format!(
                    "memory {v} is outside {}..{}",
                    c.memory.min, c.memory.max
                )),
                Some(_) => {}
            }
            checks.push(if problems.is_empty() {
                Check::pass(resources, format!("cpu {}, memory {}", cpu.map(|c| c.to_string()).unwrap_or_default(), mem.map(|m| m.to_string()).unwrap_or_default()))
            } else {
                Check::fail(resources, problems.join("; "))
                    .with_severity(Severity::Warning)
                    .with_hint("set requests/limits in the Deployment or widen the ranges in servo's config")
            });
        }
        let ready = format!("Deployment \"{}\" is ready", d.name);
        checks.push(match rollout::deployment_state(&deployment) {
            State::Settled => Check::pass(ready, format!("{replicas} replicas ready")),
            State::Progressing(what) | State::Failed(what) => Check::fail(ready, what)
                .with_severity(Severity::Warning)
                .with_hint("adjustments start from a settled rollout; `kubectl rollout status` shows progress"),
        });
        checks
    }
}

#[async_trait]
impl Connector for Kubernetes {
    fn handlers(&self) -> Handlers {
        Handlers::on(&[
            Event::Check,
            Event::Describe,
            Event::Adjust,
            Event::Metrics,
            Event::Measure,
        ])
    }

    async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        Ok(vec![cost_metric()])
    }

    /// `cost` is read from the live Deployments when the measurement starts: it depends on the
    /// applied settings only, not on load.
    async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        if !request.metrics.is_empty() && !request.metrics.iter().any(|m| m == COST) {
            return Ok(Measurement::default());
        }
        let api = self.api().await?;
        let mut total = 0.0;
        for target in self.targets() {
            let deployment = api
                .deployment(target.namespace, &target.config.name, &cx.cancel)
                .await?;
            total += hourly_cost(&deployment, &self.settings.prices);
        }
        Ok(Measurement {
            readings: vec![Reading::new(cost_metric(), total)],
            annotations: BTreeMap::new(),
        })
    }

    async fn check(&self, cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        let connectivity = "Connectivity to Kubernetes";
        let api = match self.api().await {
            Ok(api) => api,
            Err(e) => {
                let hint = e.hint().map(str::to_string);
                let mut check = Check::fail(connectivity, e.to_string());
                check.hint = hint;
                return Ok(vec![check]);
            }
        };
        let mut checks = Vec::new();
        match api.version(&cx.cancel).await {
            Ok(v) => checks.push(Check::pass(
                connectivity,
                format!(
                    "{} answers ({}), Kubernetes {}",
                    api.server(),
                    api.source,
                    v["gitVersion"].as_str().unwrap_or("of unknown version")
                ),
            )),
            Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
            Err(e) => {
                let hint = e.hint().map(str::to_string);
                let mut check = Check::fail(connectivity, e.to_string());
                check.hint = hint;
                return Ok(vec![check]);
            }
        }
        checks.extend(self.check_permissions(api, &cx.cancel).await?);
        for target in self.targets() {
            checks.extend(self.check_target(api, &target, &cx.cancel).await);
        }
        Ok(checks)
    }

    async fn describe(&self, cx: &EventContext) -> Result<Description, ConnectorError> {
        Ok(Description {
            components: self.describe_all(&cx.cancel).await?,
            metrics: Vec::new(),
        })
    }

    async fn adjust(
        &self,
        adjustments: &[Adjustment],
        control: &Control,
        cx: &EventContext,
    ) -> Result<Description, ConnectorError> {
        let api = self.api().await?;
        // Every patch is built before the first is sent: a bad value changes nothing.
        let mut work = Vec::new();
        for target in self.targets() {
            if let Some(patch) = self.patch_for(&target, adjustments)? {
                work.push((target, patch));
            }
        }
        for (target, patch) in &work {
            let settlement = control
                .settlement
                .or(target.config.settlement)
                .or(self.settings.settlement)
                .unwrap_or(Duration::ZERO);
            self.adjust_one(api, target, patch, settlement, &cx.cancel)
                .await?;
        }
        self.describe(cx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cost_prices_requested_resources_times_replicas() {
        let deployment = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}},
            {"name": "c"}]}}}});
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
        section["deployments"][0]["strategy"] = json!("canary");
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
}
