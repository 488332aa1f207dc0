//! One read of the metrics API, the workload and its pods, and the readings of a measurement's
//! reads.

use super::settings::{KubeMetric, Pods, Quantity};
use super::{KubeMetrics, PodMetrics};
use crate::kubernetes::client::Client;
use crate::kubernetes::tuning;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::ListParams;
use servo_core::ConnectorError;
use servo_core::time::unix_now;
use servo_core::types::{MeasureRequest, Measurement, Metric, Reading, TimeSeries};
use servo_core::units::{Cpu, CpuUsage, Memory};
use std::collections::BTreeMap;
use tokio_util::sync::CancellationToken;

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
pub(super) type Points = Vec<(KubeMetric, String, f64, f64)>;

/// Every read of a measurement: its points, read by read.
#[derive(Default)]
pub(super) struct Collected {
    pub(super) reads: Vec<Points>,
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
    pub(super) async fn pod_metrics(
        &self,
        api: &Client,
        selector: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<PodMetrics>, ConnectorError> {
        let ns = &self.settings.namespace;
        let pods = api.api::<PodMetrics>(ns);
        let params = ListParams::default().labels(selector);
        let list = cancel
            .run_until_cancelled(pods.list(&params))
            .await
            .ok_or(ConnectorError::Cancelled)?
            .map_err(|e| {
                // The API server answers 404 for a group no APIService serves.
                let unserved = matches!(&e, kube::Error::Api(status) if status.code == 404);
                let error = api.error(e, "LIST", &format!("pods.metrics.k8s.io -n {ns} -l {selector}"));
                if unserved {
                    error.with_hint("the metrics API (metrics.k8s.io) is not served: install metrics-server (`kubectl top pods` needs it too)")
                } else {
                    error
                }
            })?;
        Ok(list.items)
    }

    /// One read of every metric in `wanted`: the workload, its pods, the tuning Pod and their
    /// usage now.
    pub(super) async fn read(
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
                .await?;
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
    pub(super) fn readings(&self, wanted: &[KubeMetric], collected: &Collected) -> Measurement {
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
    pub(super) fn wanted(&self, request: &MeasureRequest) -> Vec<KubeMetric> {
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
