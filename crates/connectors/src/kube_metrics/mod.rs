//! `kube_metrics`: CPU and memory usage, requests, limits and saturation, and restart counts of a
//! Deployment's (or StatefulSet's) pods and of its tuning Pod, from the Kubernetes metrics API
//! (`metrics.k8s.io/v1beta1`, served by metrics-server). ServoX's `kube_metrics` connector: same
//! settings, same metric names and values.
//!
//! **Needs** a metrics-server in the cluster, and permission to get the workload, list and get its
//! pods, and list `pods.metrics.k8s.io` in the namespace. It talks to the cluster through the one
//! Kubernetes client (`kubernetes/client.rs`): the same kubeconfig, context and credentials rules.
//!
//! **Metrics** (`metrics_to_collect`, all by default). `main_*` are about the target's pods but the
//! tuning Pod (label `opsani_role` other than `tuning`); `tuning_*` about the tuning Pod
//! `<name>-tuning` that the `kubernetes` connector's canary strategy creates. For each:
//! `cpu_usage` (cores) and `mem_usage` (GiB) from the metrics API; `cpu_request`, `cpu_limit`,
//! `mem_request`, `mem_limit` from the pod template (main) or the tuning Pod's spec;
//! `cpu_saturation` and `mem_saturation`, usage as a percentage of the request (of the limit when
//! no request is set, as Kubernetes defaults it); `pod_restart_count`, the restarts of the pods'
//! containers (0 for a tuning Pod that does not exist). Only the target container counts
//! (`container`, needed when the pods have several). A quantity that is not set (no limit) gives no
//! reading, as in ServoX. To a remote ServoX optimizer cores and GiB are sent without a unit, as
//! ServoX sends them.
//!
//! **Measure** waits for the warmup, then reads the metrics API every
//! `metric_collection_frequency` from the start of the window until its end (at least once): each
//! reading's series has a point per read and pod, and its value is the mean over pods of each
//! pod's mean (the series then holds the per-read mean over pods, and an annotation names them).
//! Usage is compared with requests in nanocores and bytes, never across units.
//!
//! **Checks**, in ServoX's order: the workload is readable; the metrics API may be listed (a
//! SelfSubjectAccessReview); the metrics API answers for the workload's pods; the container is
//! configured or the pods have a single one.

mod settings;

use crate::kubernetes::client::{self, Client, WorkloadKind};
use crate::kubernetes::{rollout, tuning};
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::ListParams;
use serde::{Deserialize, Serialize};
use servo_core::connector::{BuildContext, EventContext, Handlers};
use servo_core::time::unix_now;
use servo_core::types::{Check, MeasureRequest, Measurement, Metric, Reading, TimeSeries};
use servo_core::units::{Cpu, CpuUsage, Memory};
use servo_core::{BuildConnector, Connector, ConnectorError, Event};
use settings::{KubeMetric, Pods, Quantity, Settings, TargetKind};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `PodMetrics` of `metrics.k8s.io/v1beta1`, as metrics-server serves it (k8s-openapi has no
/// type for this API group).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PodMetrics {
    pub metadata: ObjectMeta,
    /// When the usage was sampled.
    pub timestamp: Time,
    /// Over how long the usage was averaged (`10.5s`).
    pub window: String,
    pub containers: Vec<ContainerMetrics>,
}

/// One container's usage: `cpu` (`249623n`) and `memory` (`307200Ki`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    pub usage: BTreeMap<String, K8sQuantity>,
}

impl kube::Resource for PodMetrics {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "PodMetrics".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "metrics.k8s.io".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1beta1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The verb, API group and resource the metrics need, as ServoX's permission check names them.
const METRICS_PERMISSION: (&str, &str, &str) = ("list", "metrics.k8s.io", "pods");

servo_core::register!(KubeMetrics {
    name: "kube_metrics",
    description: "Reports CPU and memory usage, requests, limits and restarts of a workload's pods and its tuning Pod from the Kubernetes metrics API",
});

/// The connector: its settings and, once first needed, its API client.
pub struct KubeMetrics {
    settings: Settings,
    kubeconfig: Option<PathBuf>,
    remote_optimizer: bool,
    api: OnceCell<Client>,
}

impl BuildConnector for KubeMetrics {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        // Credentials are read at the first event: `servo validate` must work anywhere.
        let kubeconfig = client::kubeconfig_setting(settings.kubeconfig.as_deref(), &cx.base_dir);
        Ok(Self {
            settings,
            kubeconfig,
            remote_optimizer: cx.remote_optimizer,
            api: OnceCell::new(),
        })
    }
}

/// The requests and limits of the target container, as Kubernetes reads them.
#[derive(Clone, Copy, Debug, Default)]
struct Resources {
    cpu_request: Option<Cpu>,
    cpu_limit: Option<Cpu>,
    mem_request: Option<Memory>,
    mem_limit: Option<Memory>,
}

impl Resources {
    fn of(container: &Container) -> Result<Self, ConnectorError> {
        let get = |requests: bool, resource: &str| {
            let resources = container.resources.as_ref()?;
            let map = if requests {
                resources.requests.as_ref()
            } else {
                resources.limits.as_ref()
            };
            map?.get(resource).map(|q| q.0.clone())
        };
        let bad = |what: &str, text: &str, e: servo_core::units::UnitError| {
            ConnectorError::failed(format!(
                "container {} has a {what} servo cannot read ({text:?}): {e}",
                container.name
            ))
        };
        let cpu = |requests: bool, what: &str| -> Result<Option<Cpu>, ConnectorError> {
            get(requests, "cpu")
                .map(|t| t.parse().map_err(|e| bad(what, &t, e)))
                .transpose()
        };
        let mem = |requests: bool, what: &str| -> Result<Option<Memory>, ConnectorError> {
            get(requests, "memory")
                .map(|t| t.parse().map_err(|e| bad(what, &t, e)))
                .transpose()
        };
        Ok(Self {
            cpu_request: cpu(true, "cpu request")?,
            cpu_limit: cpu(false, "cpu limit")?,
            mem_request: mem(true, "memory request")?,
            mem_limit: mem(false, "memory limit")?,
        })
    }

    /// What saturation is measured against: the request, else the limit (Kubernetes requests a
    /// container's limit when it sets no request).
    fn cpu_base(&self) -> Option<Cpu> {
        self.cpu_request.or(self.cpu_limit)
    }

    fn mem_base(&self) -> Option<Memory> {
        self.mem_request.or(self.mem_limit)
    }

    /// The value of a request or limit quantity, in its metric's unit.
    fn value(&self, quantity: Quantity) -> Option<f64> {
        match quantity {
            Quantity::CpuRequest => self.cpu_base().map(|c| c.cores()),
            Quantity::CpuLimit => self.cpu_limit.map(|c| c.cores()),
            Quantity::MemRequest => self.mem_base().map(|m| m.gib()),
            Quantity::MemLimit => self.mem_limit.map(|m| m.gib()),
            _ => None,
        }
    }
}

/// One container's usage as the metrics API reported it.
#[derive(Clone, Copy, Debug)]
struct Usage {
    cpu: CpuUsage,
    memory: Memory,
}

impl Usage {
    fn value(&self, quantity: Quantity, resources: &Resources) -> Option<f64> {
        match quantity {
            Quantity::CpuUsage => Some(self.cpu.cores()),
            Quantity::MemUsage => Some(self.memory.gib()),
            Quantity::CpuSaturation => self.cpu.percent_of(resources.cpu_base()?),
            Quantity::MemSaturation => {
                let base = resources.mem_base()?.bytes();
                (base > 0).then(|| 100.0 * self.memory.bytes() as f64 / base as f64)
            }
            _ => None,
        }
    }
}

/// The points of one read: (metric, pod) → (unix seconds, value).
type Points = Vec<(KubeMetric, String, f64, f64)>;

/// Every read of a measurement: its points, read by read.
#[derive(Default)]
struct Collected {
    reads: Vec<Points>,
}

/// The restarts of all of a pod's containers.
fn restart_count(pod: &Pod) -> f64 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |statuses| {
            statuses.iter().map(|c| c.restart_count).sum::<i32>()
        }) as f64
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn is_tuning(meta: &ObjectMeta, tuning_name: &str) -> bool {
    meta.name.as_deref() == Some(tuning_name)
        || meta
            .labels
            .as_ref()
            .and_then(|l| l.get(tuning::ROLE_LABEL))
            .is_some_and(|role| role == "tuning")
}

impl KubeMetrics {
    async fn api(&self) -> Result<&Client, ConnectorError> {
        self.api
            .get_or_try_init(|| {
                Client::connect(self.kubeconfig.as_deref(), self.settings.context.as_deref())
            })
            .await
    }

    fn kind(&self) -> WorkloadKind {
        match self.settings.kind {
            TargetKind::Deployment => WorkloadKind::Deployment,
            TargetKind::StatefulSet => WorkloadKind::StatefulSet,
        }
    }

    fn what(&self) -> String {
        format!(
            "{} {} -n {}",
            self.kind().noun(),
            self.settings.name,
            self.settings.namespace
        )
    }

    fn tuning_name(&self) -> String {
        tuning::pod_name(&self.settings.name)
    }

    async fn workload(
        &self,
        api: &Client,
        cancel: &CancellationToken,
    ) -> Result<Deployment, ConnectorError> {
        api.workload(
            self.kind(),
            &self.settings.namespace,
            &self.settings.name,
            cancel,
        )
        .await
    }

    /// The workload's pods' label selector, as query text.
    fn selector(&self, workload: &Deployment) -> Result<String, ConnectorError> {
        rollout::selector(workload).ok_or_else(|| {
            ConnectorError::failed(format!(
                "{} has no `spec.selector.matchLabels`: servo cannot tell its pods",
                self.what()
            ))
        })
    }

    /// The target container among `containers`: the configured one, or the only one.
    fn target<'a, T>(
        &self,
        containers: &'a [T],
        name_of: impl Fn(&T) -> &str,
        owner: &str,
    ) -> Result<&'a T, ConnectorError> {
        let names = || {
            containers
                .iter()
                .map(&name_of)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.settings.container {
            Some(wanted) => containers
                .iter()
                .find(|c| name_of(c) == wanted)
                .ok_or_else(|| {
                    ConnectorError::failed(format!(
                        "{owner} has no container `{wanted}` (it has: {})",
                        names()
                    ))
                    .with_hint("fix `container` in servo's config")
                }),
            None => match containers {
                [only] => Ok(only),
                _ => Err(ConnectorError::failed(format!(
                    "{owner} has {} containers ({}); servo cannot tell which to measure",
                    containers.len(),
                    names()
                ))
                .with_hint("set `container` to the one to measure")),
            },
        }
    }

    fn pod_template_containers(workload: &Deployment) -> &[Container] {
        workload
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
    }

    /// The target container's usage in one `PodMetrics`.
    fn usage(&self, metrics: &PodMetrics) -> Result<Usage, ConnectorError> {
        let pod = metrics.metadata.name.clone().unwrap_or_default();
        let owner = format!("the metrics of pod {pod}");
        let container = self.target(&metrics.containers, |c| c.name.as_str(), &owner)?;
        let read =
            |resource: &str| {
                container.usage.get(resource).map(|q| q.0.clone()).ok_or_else(|| {
                ConnectorError::failed(format!(
                    "the metrics API reports no {resource} usage for container {} of pod {pod}",
                    container.name
                ))
            })
            };
        let bad = |resource: &str, text: &str, e: servo_core::units::UnitError| {
            ConnectorError::failed(format!(
                "the metrics API reports a {resource} usage servo cannot read for pod {pod} ({text:?}): {e}"
            ))
        };
        let cpu = read("cpu")?;
        let memory = read("memory")?;
        Ok(Usage {
            cpu: cpu.parse().map_err(|e| bad("cpu", &cpu, e))?,
            memory: memory.parse().map_err(|e| bad("memory", &memory, e))?,
        })
    }

    /// The metrics API's `PodMetrics` of the pods `selector` picks.
    async fn pod_metrics(
        &self,
        api: &Client,
        selector: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<PodMetrics>, ConnectorError> {
        let ns = &self.settings.namespace;
        let list = api
            .call(
                api.api::<PodMetrics>(ns)
                    .list(&ListParams::default().labels(selector)),
                "LIST",
                &format!("pods.metrics.k8s.io -n {ns} -l {selector}"),
                cancel,
            )
            .await
            .map_err(metrics_api_hint)?;
        Ok(list.items)
    }

    /// One read of every metric in `wanted`: the workload, its pods, the tuning Pod and their
    /// usage now.
    async fn read(
        &self,
        api: &Client,
        wanted: &[KubeMetric],
        cancel: &CancellationToken,
    ) -> Result<Points, ConnectorError> {
        let ns = &self.settings.namespace;
        let wants = |pods: Pods, f: fn(KubeMetric) -> bool| {
            wanted.iter().any(|m| m.pods() == pods && f(*m))
        };
        let workload = self.workload(api, cancel).await?;
        let selector = self.selector(&workload)?;
        let template = self.target(
            Self::pod_template_containers(&workload),
            |c| c.name.as_str(),
            &self.what(),
        )?;
        let main = Resources::of(template)?;
        let tuning_name = self.tuning_name();
        let now = unix_now();
        let mut points = Points::new();
        let mut add = |metric: KubeMetric, pod: &str, time: f64, value: Option<f64>| {
            if let Some(value) = value
                && wanted.contains(&metric)
            {
                points.push((metric, pod.to_string(), time, value));
            }
        };

        if wants(Pods::Main, KubeMetric::needs_metrics_api) {
            let selector = format!("{selector},{}!=tuning", tuning::ROLE_LABEL);
            for item in self.pod_metrics(api, &selector, cancel).await? {
                if is_tuning(&item.metadata, &tuning_name) {
                    continue;
                }
                let usage = self.usage(&item)?;
                let pod = item.metadata.name.clone().unwrap_or_default();
                let time = unix_seconds(&item.timestamp);
                for &metric in wanted.iter().filter(|m| m.pods() == Pods::Main) {
                    add(metric, &pod, time, usage.value(metric.quantity(), &main));
                }
            }
        }
        for &metric in wanted.iter().filter(|m| m.pods() == Pods::Main) {
            add(
                metric,
                &self.settings.name,
                now,
                main.value(metric.quantity()),
            );
        }
        if wanted.contains(&KubeMetric::MainPodRestartCount) {
            let pods = api
                .call(
                    api.api::<Pod>(ns)
                        .list(&ListParams::default().labels(&selector)),
                    "LIST",
                    &format!("pods -n {ns} -l {selector}"),
                    cancel,
                )
                .await?;
            for pod in pods
                .items
                .iter()
                .filter(|p| !is_tuning(&p.metadata, &tuning_name))
            {
                add(
                    KubeMetric::MainPodRestartCount,
                    &pod_name(pod),
                    now,
                    Some(restart_count(pod)),
                );
            }
        }

        if !wanted.iter().any(|m| m.pods() == Pods::Tuning) {
            return Ok(points);
        }
        let what = format!("pod {tuning_name} -n {ns}");
        let pod = api
            .call(
                api.api::<Pod>(ns).get_opt(&tuning_name),
                "GET",
                &what,
                cancel,
            )
            .await?;
        let Some(pod) = pod else {
            // ServoX reports a tuning Pod that does not exist as never restarted.
            add(
                KubeMetric::TuningPodRestartCount,
                &tuning_name,
                now,
                Some(0.0),
            );
            return Ok(points);
        };
        add(
            KubeMetric::TuningPodRestartCount,
            &tuning_name,
            now,
            Some(restart_count(&pod)),
        );
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let resources = Resources::of(self.target(containers, |c| c.name.as_str(), &what)?)?;
        for &metric in wanted.iter().filter(|m| m.pods() == Pods::Tuning) {
            add(
                metric,
                &tuning_name,
                now,
                resources.value(metric.quantity()),
            );
        }
        if wants(Pods::Tuning, KubeMetric::needs_metrics_api) {
            let item = api
                .call(
                    api.api::<PodMetrics>(ns).get_opt(&tuning_name),
                    "GET",
                    &format!("pods.metrics.k8s.io {tuning_name} -n {ns}"),
                    cancel,
                )
                .await
                .map_err(metrics_api_hint)?;
            // None: metrics-server has not scraped the tuning Pod yet.
            if let Some(item) = item {
                let usage = self.usage(&item)?;
                let time = unix_seconds(&item.timestamp);
                for &metric in wanted.iter().filter(|m| m.pods() == Pods::Tuning) {
                    add(
                        metric,
                        &tuning_name,
                        time,
                        usage.value(metric.quantity(), &resources),
                    );
                }
            }
        }
        Ok(points)
    }

    /// The readings of `wanted` from every read, in `wanted`'s order.
    fn readings(&self, wanted: &[KubeMetric], collected: &Collected) -> Measurement {
        let mut measurement = Measurement::default();
        for &metric in wanted {
            // Per pod, its points; per read, the points of every pod.
            let mut per_pod: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
            let mut per_read: Vec<Vec<(f64, f64)>> = Vec::new();
            for read in &collected.reads {
                let points: Vec<(f64, f64)> = read
                    .iter()
                    .filter(|(m, ..)| *m == metric)
                    .map(|(_, pod, t, v)| {
                        per_pod.entry(pod.as_str()).or_default().push((*t, *v));
                        (*t, *v)
                    })
                    .collect();
                if !points.is_empty() {
                    per_read.push(points);
                }
            }
            if per_pod.is_empty() {
                continue;
            }
            let means: Vec<f64> = per_pod
                .values()
                .map(|points| mean(points.iter().map(|p| p.1)))
                .collect();
            let value = mean(means.iter().copied());
            let unit = metric.unit(self.remote_optimizer);
            let series = match per_pod.iter().next() {
                Some((pod, points)) if per_pod.len() == 1 => TimeSeries {
                    id: Some(pod.to_string()),
                    points: points.clone(),
                },
                _ => {
                    let pods: Vec<&str> = per_pod.keys().copied().collect();
                    measurement.annotations.insert(
                        metric.name().to_string(),
                        format!("mean of {} pods: {}", pods.len(), pods.join(", ")),
                    );
                    TimeSeries {
                        id: None,
                        points: per_read
                            .iter()
                            .map(|points| {
                                (
                                    mean(points.iter().map(|p| p.0)),
                                    mean(points.iter().map(|p| p.1)),
                                )
                            })
                            .collect(),
                    }
                }
            };
            measurement
                .readings
                .push(Reading::new(Metric::new(metric.name(), unit), value).with_series(series));
        }
        measurement
    }

    /// The metrics of `metrics_to_collect` that `request` asks for (all when it names none).
    fn wanted(&self, request: &MeasureRequest) -> Vec<KubeMetric> {
        let mut wanted: Vec<KubeMetric> = Vec::new();
        for &m in &self.settings.metrics_to_collect {
            let asked = request.metrics.is_empty() || request.metrics.iter().any(|r| r == m.name());
            if asked && !wanted.contains(&m) {
                wanted.push(m);
            }
        }
        wanted
    }
}

fn unix_seconds(time: &Time) -> f64 {
    time.0.as_millisecond() as f64 / 1000.0
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

/// A 404 from the metrics API means it is not served: metrics-server is missing.
fn metrics_api_hint(e: ConnectorError) -> ConnectorError {
    if e.to_string().contains(" 404 ") {
        e.with_hint("the metrics API (metrics.k8s.io) is not served: install metrics-server (`kubectl top pods` needs it too)")
    } else {
        e
    }
}

fn failed_check(name: &str, e: &ConnectorError) -> Check {
    let mut check = Check::fail(name, e.to_string());
    check.hint = e.hint().map(str::to_string);
    check
}

#[async_trait]
impl Connector for KubeMetrics {
    fn handlers(&self) -> Handlers {
        Handlers::on(&[Event::Check, Event::Metrics, Event::Measure])
    }

    async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        let mut metrics: Vec<Metric> = Vec::new();
        for m in &self.settings.metrics_to_collect {
            let metric = Metric::new(m.name(), m.unit(self.remote_optimizer));
            if !metrics.contains(&metric) {
                metrics.push(metric);
            }
        }
        Ok(metrics)
    }

    async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        let wanted = self.wanted(request);
        if wanted.is_empty() {
            return Ok(Measurement::default());
        }
        let api = self.api().await?;
        cx.sleep(request.control.warmup.as_std()).await?;
        let end = Instant::now() + request.control.duration.as_std();
        let every = self.settings.metric_collection_frequency.as_std();
        let mut collected = Collected::default();
        loop {
            let started = Instant::now();
            collected
                .reads
                .push(self.read(api, &wanted, &cx.cancel).await?);
            let next = started + every;
            if next >= end {
                break;
            }
            cx.sleep_until(next).await?;
        }
        Ok(self.readings(&wanted, &collected))
    }

    async fn check(&self, cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        let cancel = &cx.cancel;
        let kind = match self.kind() {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        };
        let readable = format!("{kind} \"{}\" is readable", self.settings.name);
        let api = match self.api().await {
            Ok(api) => api,
            Err(e) => return Ok(vec![failed_check(&readable, &e)]),
        };
        let workload = match self.workload(api, cancel).await {
            Ok(w) => w,
            Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
            Err(e) => return Ok(vec![failed_check(&readable, &e)]),
        };
        let mut checks = vec![Check::pass(
            readable,
            format!("found in namespace {}", self.settings.namespace),
        )];

        let permissions = "Metrics API Permissions";
        let (verb, group, resource) = METRICS_PERMISSION;
        checks.push(
            match api.can(verb, group, resource, &self.settings.namespace, cancel).await {
                Ok(true) => Check::pass(permissions, format!("may {verb} {resource}.{group}")),
                Ok(false) => Check::fail(
                    permissions,
                    format!("not allowed to \"{verb}\" resource \"{resource}\" in group \"{group}\""),
                )
                .with_hint("grant servo's user or service account `list` on `pods.metrics.k8s.io` with a Role and RoleBinding in the namespace"),
                Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
                Err(e) => failed_check(permissions, &e),
            },
        );

        let connectivity = "Metrics API connectivity";
        let listed = match self.selector(&workload) {
            Ok(selector) => self.pod_metrics(api, &selector, cancel).await,
            Err(e) => Err(e),
        };
        checks.push(match listed {
            Ok(items) => Check::pass(
                connectivity,
                format!(
                    "the metrics API answers; {} of the pods report usage",
                    items.len()
                ),
            ),
            Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
            Err(e) => failed_check(connectivity, &e),
        });

        let containers = "Container configured or target is single container application";
        checks.push(
            match self.target(
                Self::pod_template_containers(&workload),
                |c| c.name.as_str(),
                &self.what(),
            ) {
                Ok(c) => Check::pass(containers, format!("measuring container {}", c.name)),
                Err(e) => failed_check(containers, &e),
            },
        );
        Ok(checks)
    }
}
