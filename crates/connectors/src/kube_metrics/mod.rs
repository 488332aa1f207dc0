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

mod measure;
mod settings;

use crate::kubernetes::client::{self, Client, WorkloadKind};
use crate::kubernetes::{rollout, tuning};
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use measure::Collected;
use serde::{Deserialize, Serialize};
use servo_core::connector::{BuildContext, EventContext, Handlers};
use servo_core::types::{Check, MeasureRequest, Measurement, Metric};
use servo_core::{BuildConnector, Connector, ConnectorError, Event};
use settings::{Settings, TargetKind};
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
            // The window so far, for a study that stops a trial far past an SLO.
            if cx.partial.is_watched() {
                cx.partial
                    .report(self.readings(&wanted, &collected).readings);
            }
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
