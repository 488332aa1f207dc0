//! The `kubernetes` connector's settings (a ServoX `kubernetes:` section loads unchanged), their
//! defaults and their validation.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use servo_core::connector::ConnectorSettings;
use servo_core::types::{Setting, SettingKind};
use servo_core::units::{Cpu, Duration, Memory};
use servo_core::{KeyPath, Problem};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    #[serde(default)]
    pub deployments: Vec<DeploymentSettings>,
    /// Prices behind the `cost` metric.
    #[serde(default)]
    pub prices: Prices,
    /// ServoX's list of required RBAC permissions. Accepted so ServoX sections load; servo checks
    /// the permissions it actually needs itself (`servo check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<serde_json::Value>>,
    /// The StatefulSets to optimize, with the same settings as Deployments (the `default`
    /// strategy only, as in ServoX).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stateful_sets: Vec<DeploymentSettings>,
    /// ServoX: include container logs in errors. Accepted; servo's errors always carry the pod
    /// status reasons (OOMKilled, Insufficient cpu...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_logs_in_error_status: Option<bool>,
    /// ServoX: whether a `canary` deployment may be tuned through a tuning Pod (the default);
    /// `false` with a `canary` strategy is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_tuning_pod: Option<bool>,
    /// Leave the tuning Pods running when servo shuts down (default: delete them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_tuning_pods: bool,
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

pub(super) fn default_cpu_price() -> f64 {
    0.03
}

pub(super) fn default_memory_price() -> f64 {
    0.004
}

pub(super) fn default_namespace() -> String {
    "default".to_string()
}

pub(super) fn default_timeout() -> Duration {
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

/// ServoX's optimization strategies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Patch the Deployment itself.
    #[default]
    Default,
    /// Tune a separate Pod (`<deployment>-tuning`) built from the Deployment's pod template; the
    /// Deployment itself is never changed.
    Canary,
}

/// How a Deployment is optimized: a strategy name, or ServoX's mapping (`{type: canary, alias:
/// tuning}`, the alias naming the tuning component).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StrategySetting {
    /// `default` or `canary`.
    Name(Strategy),
    /// `{type: ..., alias: ...}`.
    Config(StrategyConfig),
}

impl Default for StrategySetting {
    fn default() -> Self {
        StrategySetting::Name(Strategy::Default)
    }
}

/// ServoX's strategy mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// The strategy.
    #[serde(rename = "type")]
    pub kind: Strategy,
    /// The tuning component's name (canary); default `<deployment>/<container>-tuning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl StrategySetting {
    pub fn kind(&self) -> Strategy {
        match self {
            StrategySetting::Name(kind) => *kind,
            StrategySetting::Config(c) => c.kind,
        }
    }

    pub fn alias(&self) -> Option<&str> {
        match self {
            StrategySetting::Name(_) => None,
            StrategySetting::Config(c) => c.alias.as_deref(),
        }
    }
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
    /// How it is optimized: `default` patches the Deployment itself, `canary` tunes a separate
    /// tuning Pod.
    #[serde(default)]
    pub strategy: StrategySetting,
    /// The replica count's range.
    pub replicas: ReplicasSettings,
    /// The containers to tune (at least one).
    pub containers: Vec<ContainerSettings>,
    /// ServoX cascades these from the connector's section (`generate --defaults` writes them
    /// here too); accepted for compatibility, servo reads the connector's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_logs_in_error_status: Option<bool>,
    /// ServoX cascades this from the connector's section; accepted, the strategy decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_tuning_pod: Option<bool>,
}

/// ServoX's fixed `type` of range settings (`generate --defaults` writes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RangeKind {
    /// A number between `min` and `max`.
    Range,
}

/// Range of `spec.replicas`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicasSettings {
    /// ServoX's fixed setting name, `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ServoX's fixed setting type, `range`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<RangeKind>,
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

pub(super) fn default_replicas_step() -> u32 {
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

pub(crate) fn default_requirements() -> Vec<Requirement> {
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
    /// ServoX: environment variables set to fixed values in the tuning Pod (`canary`); with the
    /// `default` strategy a non-empty map is an error (they would silently not be set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_environment_variables: Option<std::collections::BTreeMap<String, String>>,
}

/// Range of the container's CPU, in cores or millicores (`250m`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CpuSettings {
    /// ServoX's fixed setting name, `cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ServoX's fixed setting type, `range`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<RangeKind>,
    /// ServoX's display unit (`cores`); values are always read with their own suffixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
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
    /// ServoX's CPU request for the tuning Pod's container when it is first created, replacing the
    /// Deployment's (or filling it in where the Deployment has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Cpu>,
    /// ServoX's CPU limit for the tuning Pod's container when it is first created, as `request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Cpu>,
}

pub(super) fn default_cpu_step() -> Cpu {
    Cpu::from_millicores(125)
}

/// Range of the container's memory (`256Mi`, `4Gi`, `128.0MiB`). A bare number is gibibytes, as in
/// ServoX (`{min: 0.25, max: 4}` is 256Mi to 4Gi), never bytes.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    /// ServoX's fixed setting name, `mem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ServoX's fixed setting type, `range`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<RangeKind>,
    /// ServoX's display unit (`GiB`); values are always read with their own suffixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Least memory the optimizer may choose.
    #[serde(deserialize_with = "Memory::deserialize_servox")]
    pub min: Memory,
    /// Most memory the optimizer may choose.
    #[serde(deserialize_with = "Memory::deserialize_servox")]
    pub max: Memory,
    /// Granularity of the choice.
    #[serde(
        default = "default_memory_step",
        deserialize_with = "Memory::deserialize_servox"
    )]
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
    /// ServoX's memory request for the tuning Pod's container when it is first created, replacing
    /// the Deployment's (or filling it in where the Deployment has none).
    #[serde(
        default,
        deserialize_with = "servox_memory",
        skip_serializing_if = "Option::is_none"
    )]
    pub request: Option<Memory>,
    /// ServoX's memory limit for the tuning Pod's container when it is first created, as
    /// `request`.
    #[serde(
        default,
        deserialize_with = "servox_memory",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<Memory>,
}

/// An optional size read as ServoX reads one (a bare number is GiB).
fn servox_memory<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Memory>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => Memory::deserialize_servox(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

pub(super) fn default_memory_step() -> Memory {
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
    /// ServoX's name for `variable_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// ServoX: `int` writes a range setting's value as a whole number, `float` as a decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_type: Option<ValueType>,
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

/// How a range env setting's value is written into the variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// A whole number (`4`).
    Int,
    /// A decimal number (`4.0`, `0.25`).
    Float,
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
    pub(super) fn variable(&self) -> &str {
        self.variable_name
            .as_deref()
            .or(self.literal.as_deref())
            .unwrap_or(&self.name)
    }

    /// The variable's text for a value, per `value_type`.
    pub(super) fn text(&self, value: &servo_core::types::SettingValue) -> String {
        match (self.value_type, value.as_f64()) {
            (Some(ValueType::Int), Some(n)) => format!("{}", n.round() as i64),
            (Some(ValueType::Float), Some(n)) if n.fract() == 0.0 => format!("{n:.1}"),
            _ => value.to_string(),
        }
    }

    pub(super) fn setting(&self) -> Setting {
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
                strategy: StrategySetting::default(),
                container_logs_in_error_status: None,
                create_tuning_pod: None,
                replicas: ReplicasSettings {
                    name: None,
                    kind: None,
                    min: 1,
                    max: 4,
                    step: 1,
                    pinned: false,
                },
                containers: vec![ContainerSettings {
                    name: "main".into(),
                    alias: None,
                    cpu: CpuSettings {
                        name: None,
                        kind: None,
                        unit: None,
                        min: Cpu::from_millicores(250),
                        max: Cpu::from_millicores(4000),
                        step: default_cpu_step(),
                        pinned: false,
                        get: default_requirements(),
                        set: default_requirements(),
                        request: None,
                        limit: None,
                    },
                    memory: MemorySettings {
                        name: None,
                        kind: None,
                        unit: None,
                        min: Memory::from_bytes(256 << 20),
                        max: Memory::from_bytes(4 << 30),
                        step: default_memory_step(),
                        pinned: false,
                        get: default_requirements(),
                        set: default_requirements(),
                        request: None,
                        limit: None,
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
            keep_tuning_pods: false,
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let root = KeyPath::root();
        for (i, set) in self.stateful_sets.iter().enumerate() {
            if set.strategy.kind() == Strategy::Canary {
                problems.push(
                    Problem::new(
                        root.key("stateful_sets").index(i).key("strategy"),
                        "the `canary` strategy is not supported on StatefulSets (nor in ServoX)",
                    )
                    .with_help("use `strategy: default`"),
                );
            }
        }
        for (d, deployment) in self.deployments.iter().enumerate() {
            let canary = deployment.strategy.kind() == Strategy::Canary;
            if canary && self.create_tuning_pod == Some(false) {
                problems.push(
                    Problem::new(
                        root.key("deployments").index(d).key("strategy"),
                        "the `canary` strategy tunes a tuning Pod, but `create_tuning_pod` is false",
                    )
                    .with_help("remove `create_tuning_pod: false`, or use `strategy: default`"),
                );
            }
            if canary && deployment.containers.len() != 1 {
                problems.push(
                    Problem::new(
                        root.key("deployments").index(d).key("containers"),
                        format!(
                            "the `canary` strategy tunes one container (as ServoX does), found {}",
                            deployment.containers.len()
                        ),
                    )
                    .with_help("list only the container to tune"),
                );
            }
            for (c, container) in deployment.containers.iter().enumerate() {
                if !canary
                    && container
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
                            "fixed environment variables apply to a tuning Pod only",
                        )
                        .with_help("set them in the Deployment itself, or use `strategy: canary`"),
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
        if self.deployments.is_empty() && self.stateful_sets.is_empty() {
            problems.push(
                Problem::new(
                    root.key("deployments"),
                    "no deployments or stateful_sets to optimize",
                )
                .with_help("list at least one deployment with its containers"),
            );
        }
        let mut names: BTreeMap<String, KeyPath> = BTreeMap::new();
        let workloads = (self.deployments.iter().enumerate())
            .map(|(i, d)| (root.key("deployments").index(i), d))
            .chain(
                (self.stateful_sets.iter().enumerate())
                    .map(|(i, d)| (root.key("stateful_sets").index(i), d)),
            );
        for (at, d) in workloads {
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
                let mut components = vec![component_name(d, c)];
                if d.strategy.kind() == Strategy::Canary {
                    components.push(tuning_name(d, c));
                }
                for component in components {
                    if let Some(first) = names.insert(component.clone(), at.clone()) {
                        problems.push(
                            Problem::new(
                                at.clone(),
                                format!("component `{component}` is already defined at {first}"),
                            )
                            .with_help("give one of the containers a distinct `alias`"),
                        );
                    }
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

/// A container's component name: its `alias`, else `<deployment>/<container>`.
pub(super) fn component_name(d: &DeploymentSettings, c: &ContainerSettings) -> String {
    c.alias
        .clone()
        .unwrap_or_else(|| format!("{}/{}", d.name, c.name))
}

/// The tuning component's name: the strategy's alias, else `<deployment>/<container>-tuning`.
pub(super) fn tuning_name(d: &DeploymentSettings, c: &ContainerSettings) -> String {
    d.strategy
        .alias()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}/{}-tuning", d.name, c.name))
}
