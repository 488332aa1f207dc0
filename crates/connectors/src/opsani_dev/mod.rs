//! `opsani_dev`: optimizes one service through a tuning Pod and an Envoy sidecar (ServoX's
//! `opsani_dev`, "Opsani Dev").
//!
//! One short section mounts what ServoX's `opsani_dev` mounts, by building the two connectors it
//! is made of from settings it generates (`settings.rs`, as ServoX's `generate_kubernetes_config`
//! and `generate_prometheus_config`) and handing each event to them:
//! - the `kubernetes` connector's `canary` strategy: a tuning Pod `<deployment>-tuning` beside
//!   the Deployment, components `main` (pinned) and `tuning`; `describe`, `adjust`, `shutdown`
//!   (the tuning Pod is deleted) and its `cost` metric (of the Deployment, a servo extension);
//! - the `prometheus` connector with ServoX's Envoy metrics of the main Pods against the tuning
//!   Pod (`main_`/`tuning_` request rate, success and error rates, p50/p90 latency, instance
//!   counts, `total_request_rate`), measured at `prometheus_base_url`.
//!
//! Needs a cluster (kubeconfig as `kubectl` finds it: `KUBECONFIG`, `~/.kube/config`, or the
//! in-cluster service account) and a Prometheus scraping the Envoy sidecars with the labels
//! ServoX's sidecar Prometheus gives them (`opsani_role`, `kubernetes_pod_name`,
//! `kubernetes_namespace`).
//!
//! **Checks** (`checks.rs`) are ServoX's onboarding checks in ServoX's order; a failed *required*
//! one stops the rest, as in ServoX. Those that can fix what they found (the Prometheus
//! annotations and the optimizer label of the pod template, the Envoy sidecar, the Service's
//! target port) have a remedy: logged, then applied when `checks.remedy` allows (ServoX's
//! default), otherwise left in the hint. The sidecar is the one `servo inject-sidecar` adds
//! (`kubernetes/sidecar.rs`).
//!
//! **Not mounted**: ServoX's `kube_metrics` part (its own connector). **Not checked**: ServoX's
//! checks of its own Prometheus sidecar (its ConfigMap, container, readiness, restarts and port),
//! which are about ServoX's deployment manifests rather than the application; the checks that
//! Prometheus answers and scrapes the Envoy sidecars stand for them.

mod checks;
pub(crate) mod command;
mod settings;

use crate::kubernetes::Kubernetes;
use crate::prometheus::Prometheus;
use async_trait::async_trait;
use servo_core::connector::{BuildContext, EventContext, Handlers};
use servo_core::types::{
    Adjustment, Check, Control, Description, MeasureRequest, Measurement, Metric,
};
use servo_core::{BuildConnector, Connector, ConnectorError, ConnectorSettings, Event};
use settings::Settings;

servo_core::register!(OpsaniDev {
    name: "opsani_dev",
    description: "Optimizes one service through a tuning Pod and an Envoy sidecar: Kubernetes canary tuning, Envoy metrics from Prometheus, onboarding checks with remedies",
});

/// The connector: its settings and the two connectors it is made of.
pub struct OpsaniDev {
    settings: Settings,
    /// The optimizer's id (the servo's name with the embedded optimizer), for the annotation
    /// and label ServoX puts on the pod template.
    optimizer: String,
    remote_optimizer: bool,
    kubernetes: Kubernetes,
    prometheus: Prometheus,
}

impl BuildConnector for OpsaniDev {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        let kubernetes = settings.kubernetes();
        let prometheus = settings.prometheus();
        // Generated, so valid when `settings` is; a problem here would be this connector's bug.
        let problems: Vec<_> = (kubernetes.validate().into_iter())
            .chain(prometheus.validate())
            .collect();
        if !problems.is_empty() {
            return Err(ConnectorError::Settings(problems));
        }
        Ok(Self {
            optimizer: cx.optimizer_id.clone().unwrap_or_else(|| cx.servo.clone()),
            remote_optimizer: cx.optimizer_id.is_some(),
            kubernetes: Kubernetes::build(kubernetes, cx)?,
            prometheus: Prometheus::build(prometheus, cx)?.with_base_url_key("prometheus_base_url"),
            settings,
        })
    }
}

#[async_trait]
impl Connector for OpsaniDev {
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

    async fn shutdown(&self, cx: &EventContext) -> Result<(), ConnectorError> {
        self.kubernetes.shutdown(cx).await
    }

    async fn check(&self, cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        self.run_checks(cx).await
    }

    async fn describe(&self, cx: &EventContext) -> Result<Description, ConnectorError> {
        self.kubernetes.describe(cx).await
    }

    async fn adjust(
        &self,
        adjustments: &[Adjustment],
        control: &Control,
        cx: &EventContext,
    ) -> Result<Description, ConnectorError> {
        self.kubernetes.adjust(adjustments, control, cx).await
    }

    /// The Envoy metrics, then the `kubernetes` connector's `cost` (of the Deployment).
    async fn metrics(&self, cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        let mut metrics = self.prometheus.metrics(cx).await?;
        metrics.extend(self.kubernetes.metrics(cx).await?);
        Ok(metrics)
    }

    /// Both measure together: Prometheus over the window, the cost when it starts.
    async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        let (envoy, cost) = tokio::join!(
            self.prometheus.measure(request, cx),
            self.kubernetes.measure(request, cx)
        );
        let mut measurement = envoy?;
        let cost = cost?;
        measurement.readings.extend(cost.readings);
        measurement.annotations.extend(cost.annotations);
        Ok(measurement)
    }
}
