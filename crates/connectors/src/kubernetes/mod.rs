//! `kubernetes`: tunes the CPU, memory, replicas and environment of containers in Deployments and
//! StatefulSets (ServoX's `kubernetes` connector, `default` and `canary` strategies).
//!
//! **Components.** Each configured container is one component, named by its `alias` or
//! `<deployment>/<container>` (as ServoX names them). Its settings are `cpu` (cores), `mem` (GiB,
//! ServoX's name on the wire), the configured `env` variables, and `replicas` — a Deployment has
//! one replica count, so it is a setting of the deployment's *first* configured container only:
//! two components could otherwise be asked for two different counts in one adjustment.
//!
//! **Adjust.** Each Deployment gets one strategic-merge patch (resources / env by container name,
//! `spec.replicas`), then its rollout is watched (the Deployment and its Pods, through
//! `kube::runtime` watchers) until settled within `timeout`
//! (see `rollout.rs` for what settled and failed mean), then held healthy for `settlement`. A
//! failure is handled by `on_failure`: `rollback` (the default here — ServoX's default is
//! `exception`, which leaves the broken template in place) restores the previous pod template and
//! replica count (read, edit, replace; again on a 409 conflict) and waits for it to be healthy again; `shutdown` (or ServoX's
//! `destroy`) scales the Deployment to zero; `exception` leaves it; `ignore` reports success. All
//! but `ignore` return [`ConnectorError::Rejected`] with reason `unstable` and the Kubernetes reason
//! (OOMKilled, Unschedulable: Insufficient cpu, ProgressDeadlineExceeded...). Deployments are
//! adjusted one after the other; a failure stops before the next one.
//!
//! **Checks.** The API answers; servo may get/patch deployments and list pods in each namespace
//! (SelfSubjectAccessReview); each deployment and container exists; cpu/memory requirements are
//! set and, with the replica count, within the configured ranges; the rollout is settled.
//!
//! **Canary.** `strategy: canary` (or ServoX's `{type: canary, alias: ...}`) tunes a tuning Pod
//! beside the untouched Deployment: see `tuning.rs`.
//!
//! **StatefulSets** (`stateful_sets:`) take the same settings and the same rollout tracking and
//! rollback (the `default` strategy only, as in ServoX); `client::as_deployment` reads them as a
//! Deployment.
//!
//! **Not supported** (yet): ServoX's configurable `permissions` list.

mod adjust;
mod checks;
pub mod client;
pub(crate) mod rollout;
pub(crate) mod settings;
pub(crate) mod sidecar;
#[cfg(test)]
mod tests;
pub(crate) mod tuning;

use async_trait::async_trait;
use client::{Client, WorkloadKind};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use servo_core::connector::{BuildContext, EventContext, Handlers};
use servo_core::types::{
    Adjustment, Check, Component, Control, Description, MeasureRequest, Measurement, Metric,
    Reading, Setting, SettingValue,
};
use servo_core::units::{Cpu, Duration, Memory};
use servo_core::{BuildConnector, Connector, ConnectorError, Event};
use settings::{
    ContainerSettings, DeploymentSettings, FailureMode, Prices, Requirement, Settings, Strategy,
    component_name, default_requirements,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// The containers of a Deployment's pod template.
fn containers(deployment: &Deployment) -> &[Container] {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
}

/// What the connector does in each namespace: (verb, API group, resource).
const PERMISSIONS: [(&str, &str, &str); 7] = [
    ("get", "apps", "deployments"),
    ("list", "apps", "deployments"),
    ("watch", "apps", "deployments"),
    ("patch", "apps", "deployments"),
    ("update", "apps", "deployments"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
];

/// What a `canary` deployment needs besides: its tuning Pod is created and deleted.
const CANARY_PERMISSIONS: [(&str, &str, &str); 3] = [
    ("get", "", "pods"),
    ("create", "", "pods"),
    ("delete", "", "pods"),
];

const COST: &str = "cost";

fn cost_metric() -> Metric {
    Metric::new(COST, "$/h")
}

/// Replicas × the requested cpu and memory of every container of the pod template, priced. A
/// container with limits but no requests is requested at its limits, as Kubernetes defaults them.
fn hourly_cost(deployment: &Deployment, prices: &Prices) -> f64 {
    let replicas = rollout::desired_replicas(deployment) as f64;
    let both = default_requirements();
    let per_pod: f64 = containers(deployment)
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

/// How long a watch waits before it starts again after an API error.
const RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// How long HELLO's telemetry waits for the API server's version.
const TELEMETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

servo_core::register!(Kubernetes {
    name: "kubernetes",
    description: "Tunes CPU, memory, replicas and env of Deployment and StatefulSet containers, or of a tuning Pod (canary); rolls back unhealthy rollouts",
});

/// The connector: its settings and, once first needed, its API client.
pub struct Kubernetes {
    settings: Settings,
    kubeconfig: Option<PathBuf>,
    api: OnceCell<Client>,
    /// servo's own Deployment and its namespace, when servo runs in the cluster: the owner of
    /// tuning Pods in that namespace (see `tuning::servo_owner`).
    owner: OnceCell<
        Option<(
            String,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
        )>,
    >,
}

impl BuildConnector for Kubernetes {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        // Reading credentials waits for the first event: `servo validate` must work anywhere.
        let kubeconfig = client::kubeconfig_setting(settings.kubeconfig.as_deref(), &cx.base_dir);
        Ok(Self {
            settings,
            kubeconfig,
            api: OnceCell::new(),
            owner: OnceCell::new(),
        })
    }
}

/// A workload's effective settings (its own, else the connector's).
struct Target<'a> {
    kind: WorkloadKind,
    config: &'a DeploymentSettings,
    namespace: &'a str,
    timeout: Duration,
    on_failure: FailureMode,
}

impl Target<'_> {
    /// Whether it is tuned through a tuning Pod.
    fn canary(&self) -> bool {
        self.config.strategy.kind() == Strategy::Canary
    }
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

/// Waits before a watch starts again after an error, or until `cancel`.
async fn pause(cancel: &CancellationToken) -> Result<(), ConnectorError> {
    cancel
        .run_until_cancelled(tokio::time::sleep(RETRY))
        .await
        .ok_or(ConnectorError::Cancelled)
}

fn cpu_of(q: &Quantity) -> Option<Cpu> {
    q.0.parse().ok()
}

fn memory_of(q: &Quantity) -> Option<Memory> {
    q.0.parse().ok()
}

/// The first of `get` that the container's resources define.
fn requirement<'a>(
    container: &'a Container,
    resource: &str,
    get: &[Requirement],
) -> Option<&'a Quantity> {
    let resources = container.resources.as_ref()?;
    get.iter().find_map(|r| {
        match r {
            Requirement::Request => resources.requests.as_ref(),
            Requirement::Limit => resources.limits.as_ref(),
        }?
        .get(resource)
    })
}

/// A container's `cpu`, `mem` and env settings, valued from `container`.
fn container_settings(c: &ContainerSettings, container: &Container) -> Vec<Setting> {
    let mut cpu = Setting::cpu("cpu", c.cpu.min, c.cpu.max, c.cpu.step).pinned(c.cpu.pinned);
    cpu.value = requirement(container, "cpu", &c.cpu.get)
        .and_then(cpu_of)
        .map(|v| SettingValue::Float(v.cores()));
    let mut mem =
        Setting::memory("mem", c.memory.min, c.memory.max, c.memory.step).pinned(c.memory.pinned);
    mem.value = requirement(container, "memory", &c.memory.get)
        .and_then(memory_of)
        .map(|v| SettingValue::Float(v.gib()));
    let mut settings = vec![cpu, mem];
    for e in &c.env {
        let mut s = e.setting();
        s.value = container
            .env
            .iter()
            .flatten()
            .find(|v| v.name == e.variable())
            .and_then(|v| v.value.as_deref())
            .map(|text| match (&e.values, text.parse::<f64>()) {
                (None, Ok(n)) => SettingValue::Float(n),
                _ => SettingValue::String(text.to_string()),
            });
        settings.push(s);
    }
    settings
}

fn find_container<'a>(deployment: &'a Deployment, name: &str) -> Option<&'a Container> {
    containers(deployment).iter().find(|c| c.name == name)
}

fn container_names(deployment: &Deployment) -> String {
    containers(deployment)
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Kubernetes {
    /// The API client, connected at the first call: a connector composing this one (opsani_dev)
    /// talks to the cluster through it rather than through a client of its own.
    pub(crate) async fn client(&self) -> Result<&Client, ConnectorError> {
        self.api().await
    }

    async fn api(&self) -> Result<&Client, ConnectorError> {
        self.api
            .get_or_try_init(|| {
                Client::connect(self.kubeconfig.as_deref(), self.settings.context.as_deref())
            })
            .await
    }

    fn targets(&self) -> impl Iterator<Item = Target<'_>> {
        let deployments = (self.settings.deployments.iter()).map(|d| (WorkloadKind::Deployment, d));
        let sets = (self.settings.stateful_sets.iter()).map(|d| (WorkloadKind::StatefulSet, d));
        deployments.chain(sets).map(|(kind, d)| Target {
            kind,
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
        deployment: &Deployment,
    ) -> Result<Vec<Component>, ConnectorError> {
        let d = target.config;
        let mut out = Vec::new();
        for (i, c) in d.containers.iter().enumerate() {
            let Some(container) = find_container(deployment, &c.name) else {
                return Err(ConnectorError::failed(format!(
                    "{} {} -n {} has no container `{}` (it has: {})",
                    target.kind.noun(),
                    d.name,
                    target.namespace,
                    c.name,
                    container_names(deployment)
                ))
                .with_hint("fix `containers[].name` in servo's config"));
            };
            let mut settings = container_settings(c, container);
            if i == 0 {
                let r = &d.replicas;
                settings.insert(
                    2,
                    Setting::replicas("replicas", r.min.into(), r.max.into(), r.step.into())
                        .pinned(r.pinned)
                        .with_value(rollout::desired_replicas(deployment)),
                );
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
            if target.canary() {
                components.extend(self.canary_components(api, &target, cancel).await?);
                continue;
            }
            let deployment = api
                .workload(target.kind, target.namespace, &target.config.name, cancel)
                .await?;
            components.extend(self.components_of(&target, &deployment)?);
        }
        Ok(components)
    }
}

#[async_trait]
impl Connector for Kubernetes {
    fn handlers(&self) -> Handlers {
        Handlers::on(&[
            Event::Shutdown,
            Event::Check,
            Event::Describe,
            Event::Adjust,
            Event::Metrics,
            Event::Measure,
        ])
    }

    /// ServoX's: the namespace, and the API server's `major.minor` version and platform when the
    /// server answers within a few seconds (HELLO is not held up by a slow cluster).
    async fn telemetry(&self, cx: &EventContext) -> Vec<(String, String)> {
        let mut facts = vec![("namespace".to_string(), self.settings.namespace.clone())];
        let version = async {
            let api = self.api().await?;
            api.version(&cx.cancel).await
        };
        match tokio::time::timeout(TELEMETRY_WAIT, version).await {
            Ok(Ok(info)) => {
                facts.push(("version".into(), format!("{}.{}", info.major, info.minor)));
                facts.push(("platform".into(), info.platform));
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "no Kubernetes version for telemetry"),
            Err(_) => tracing::debug!("no Kubernetes version for telemetry: no answer in time"),
        }
        facts
    }

    /// Deletes the tuning Pods (unless `keep_tuning_pods`), as ServoX does when it stops.
    async fn shutdown(&self, cx: &EventContext) -> Result<(), ConnectorError> {
        if self.settings.keep_tuning_pods || !self.targets().any(|t| t.canary()) {
            return Ok(());
        }
        let api = self.api().await?;
        for target in self.targets().filter(Target::canary) {
            self.delete_tuning_pod(api, &target, &cx.cancel).await?;
        }
        Ok(())
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
                .workload(
                    target.kind,
                    target.namespace,
                    &target.config.name,
                    &cx.cancel,
                )
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
                    v.git_version
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
        let settlement_of = |target: &Target<'_>| {
            control
                .settlement
                .or(target.config.settlement)
                .or(self.settings.settlement)
                .unwrap_or(Duration::ZERO)
        };
        // Every patch is built before the first is sent: a bad value changes nothing.
        let mut work = Vec::new();
        for target in self.targets().filter(|t| !t.canary()) {
            if let Some(patch) = self.patch_for(&target, adjustments)? {
                work.push((target, patch));
            }
        }
        for (target, patch) in &work {
            self.adjust_one(api, target, patch, settlement_of(target), &cx.cancel)
                .await?;
        }
        for target in self.targets().filter(Target::canary) {
            let settlement = settlement_of(&target);
            self.adjust_canary(api, &target, adjustments, settlement, &cx.cancel)
                .await?;
        }
        self.describe(cx).await
    }
}
