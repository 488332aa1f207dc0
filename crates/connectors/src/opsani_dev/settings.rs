//! The `opsani_dev` connector's settings (a ServoX `opsani_dev:` section loads unchanged) and the
//! `kubernetes` and `prometheus` settings they become, as ServoX's `generate_kubernetes_config`
//! and `generate_prometheus_config` make them.

use crate::kubernetes::settings::{
    ContainerSettings, CpuSettings, DeploymentSettings, EnvSetting, FailureMode, MemorySettings,
    Prices, ReplicasSettings, Settings as KubernetesSettings, Strategy, StrategyConfig,
    StrategySetting, default_requirements,
};
use crate::kubernetes::sidecar::{DEFAULT_IMAGE, PortRef};
use crate::prometheus::settings::{
    Absent, FastFail, PrometheusMetric, Settings as PrometheusSettings,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use servo_core::connector::ConnectorSettings;
use servo_core::units::{Cpu, Duration, Memory};
use servo_core::{KeyPath, Problem};
use std::collections::BTreeMap;

/// Settings of the `opsani_dev` connector (ServoX's `OpsaniDevConfiguration`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The namespace of the workload and its Service.
    pub namespace: String,
    /// The name of the Deployment to optimize (ServoX's newer key; give it or `deployment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_name: Option<String>,
    /// The name of the Deployment to optimize (ServoX's older key, what its `generate` writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The kind of the workload: `Deployment` (ServoX 25.3.0 accepts nothing else; Argo
    /// Rollouts came later).
    #[serde(default = "default_workload_kind")]
    pub workload_kind: String,
    /// The container to optimize.
    pub container: String,
    /// The Service in front of the workload, whose traffic the Envoy sidecar proxies.
    pub service: String,
    /// The Service port to proxy, by number or name; needed when the Service has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSetting>,
    /// The CPU range of the tuning Pod.
    pub cpu: CpuSettings,
    /// The memory range of the tuning Pod.
    pub memory: MemorySettings,
    /// Environment variables to tune in the tuning Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvSetting>>,
    /// Environment variables set to fixed values in the tuning Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_environment_variables: Option<BTreeMap<String, String>>,
    /// The Prometheus that scrapes the Envoy sidecars (ServoX's sidecar Prometheus by default).
    /// ServoX 25.3.0 measures at its default whatever this says; servo measures here.
    #[serde(default = "default_prometheus_base_url")]
    pub prometheus_base_url: String,
    /// The image of the Envoy sidecar the checks' remedy injects.
    #[serde(default = "default_envoy_sidecar_image")]
    pub envoy_sidecar_image: String,
    /// How long the tuning Pod may take to become ready.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// How long the tuning Pod must stay healthy after an adjustment. The optimizer's
    /// `control.settlement` takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<Duration>,
    /// ServoX: include container logs in errors. Accepted; servo's errors carry the pod status
    /// reasons.
    #[serde(default)]
    pub container_logs_in_error_status: bool,
    /// Tune a tuning Pod beside the Deployment (the default). `false` only observes: the
    /// Deployment's settings are pinned and the tuning metrics are left out, as in ServoX.
    #[serde(default = "default_create_tuning_pod")]
    pub create_tuning_pod: bool,
}

/// A Service port by number or by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortSetting {
    /// The port's number.
    Number(i32),
    /// The port's name.
    Name(String),
}

impl PortSetting {
    pub(super) fn port_ref(&self) -> PortRef {
        match self {
            PortSetting::Number(n) => PortRef::Number(*n),
            PortSetting::Name(name) => PortRef::Name(name.clone()),
        }
    }
}

fn default_workload_kind() -> String {
    "Deployment".into()
}

/// ServoX's `PROMETHEUS_SIDECAR_BASE_URL`.
fn default_prometheus_base_url() -> String {
    "http://localhost:9090".into()
}

fn default_envoy_sidecar_image() -> String {
    DEFAULT_IMAGE.into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_create_tuning_pod() -> bool {
    true
}

impl Settings {
    /// The Deployment's name, from whichever key gave it.
    pub fn workload(&self) -> &str {
        self.workload_name
            .as_deref()
            .or(self.deployment.as_deref())
            .unwrap_or_default()
    }

    /// The `kubernetes` connector this mounts (ServoX's `generate_kubernetes_config`): the
    /// Deployment's one container aliased `main`, tuned through a tuning Pod aliased `tuning`.
    pub fn kubernetes(&self) -> KubernetesSettings {
        let (strategy, replicas, cpu, memory) = if self.create_tuning_pod {
            let strategy = StrategySetting::Config(StrategyConfig {
                kind: Strategy::Canary,
                alias: Some("tuning".into()),
            });
            (strategy, (0, 1), self.cpu.clone(), self.memory.clone())
        } else {
            // ServoX never adjusts the main Deployment through opsani_dev: everything is pinned.
            let (mut cpu, mut memory) = (self.cpu.clone(), self.memory.clone());
            cpu.pinned = true;
            memory.pinned = true;
            (StrategySetting::default(), (0, 99999), cpu, memory)
        };
        KubernetesSettings {
            description: Some(
                "Update the namespace, deployment, etc. to match your Kubernetes cluster".into(),
            ),
            kubeconfig: None,
            context: None,
            namespace: self.namespace.clone(),
            timeout: self.timeout,
            settlement: self.settlement,
            on_failure: FailureMode::default(),
            deployments: vec![DeploymentSettings {
                name: self.workload().to_string(),
                namespace: None,
                timeout: None,
                settlement: None,
                on_failure: None,
                strategy,
                replicas: ReplicasSettings {
                    name: None,
                    kind: None,
                    min: replicas.0,
                    max: replicas.1,
                    step: 1,
                    pinned: true,
                },
                containers: vec![ContainerSettings {
                    name: self.container.clone(),
                    alias: Some("main".into()),
                    cpu,
                    memory,
                    env: self.env.clone().unwrap_or_default(),
                    command: None,
                    static_environment_variables: self
                        .static_environment_variables
                        .clone()
                        .filter(|_| self.create_tuning_pod),
                }],
                container_logs_in_error_status: None,
                create_tuning_pod: None,
            }],
            prices: Prices::default(),
            permissions: None,
            stateful_sets: Vec::new(),
            container_logs_in_error_status: Some(self.container_logs_in_error_status),
            create_tuning_pod: Some(self.create_tuning_pod),
            keep_tuning_pods: false,
        }
    }

    /// The `prometheus` connector this mounts (ServoX's `generate_prometheus_config`): the Envoy
    /// metrics of the main Pods against the tuning Pod, with ServoX's names, units and PromQL.
    pub fn prometheus(&self) -> PrometheusSettings {
        let mut metrics: Vec<PrometheusMetric> = METRICS
            .iter()
            .map(|&(name, unit, query, absent)| PrometheusMetric {
                name: name.into(),
                unit: unit.into(),
                query: query.into(),
                step: Duration::from_secs(60),
                absent,
            })
            .collect();
        if !self.create_tuning_pod {
            metrics.retain(|m| !m.query.contains("opsani_role=\"tuning\""));
        }
        PrometheusSettings {
            description: Some(
                "A sidecar configuration for aggregating metrics from Envoy sidecar proxies."
                    .into(),
            ),
            base_url: self.prometheus_base_url.clone(),
            metrics,
            streaming_interval: None,
            targets: None,
            fast_fail: FastFail::default(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// ServoX's Envoy metrics: name, unit (ServoX's `count` is unitless), PromQL, absent policy.
const METRICS: [(&str, &str, &str, Absent); 13] = [
    (
        "main_instance_count",
        "",
        r#"sum(envoy_cluster_membership_healthy{opsani_role!="tuning"})"#,
        Absent::Ignore,
    ),
    (
        "tuning_instance_count",
        "",
        r#"envoy_cluster_membership_healthy{opsani_role="tuning"}"#,
        Absent::Ignore,
    ),
    (
        "total_request_rate",
        "rps",
        "sum(rate(envoy_cluster_upstream_rq_total[1m]))",
        Absent::Ignore,
    ),
    (
        "main_request_rate",
        "rps",
        r#"avg(rate(envoy_cluster_upstream_rq_total{opsani_role!="tuning"}[1m]))"#,
        Absent::Ignore,
    ),
    (
        "tuning_request_rate",
        "rps",
        r#"avg(rate(envoy_cluster_upstream_rq_total{opsani_role="tuning"}[1m]))"#,
        Absent::Ignore,
    ),
    (
        "main_success_rate",
        "rps",
        r#"avg(sum by(kubernetes_pod_name)(rate(envoy_cluster_upstream_rq_xx{opsani_role!="tuning", envoy_response_code_class=~"2|3"}[1m])))"#,
        Absent::Ignore,
    ),
    (
        "tuning_success_rate",
        "rps",
        r#"avg(sum by(kubernetes_pod_name)(rate(envoy_cluster_upstream_rq_xx{opsani_role="tuning", envoy_response_code_class=~"2|3"}[1m])))"#,
        Absent::Zero,
    ),
    (
        "main_error_rate",
        "rps",
        r#"avg(sum by(kubernetes_pod_name)(rate(envoy_cluster_upstream_rq_xx{opsani_role!="tuning", envoy_response_code_class=~"4|5"}[1m])))"#,
        Absent::Zero,
    ),
    (
        "tuning_error_rate",
        "rps",
        r#"avg(sum by(kubernetes_pod_name)(rate(envoy_cluster_upstream_rq_xx{opsani_role="tuning", envoy_response_code_class=~"4|5"}[1m])))"#,
        Absent::Zero,
    ),
    (
        "main_p90_latency",
        "ms",
        r#"avg(histogram_quantile(0.9,rate(envoy_cluster_upstream_rq_time_bucket{opsani_role!="tuning"}[1m])))"#,
        Absent::Ignore,
    ),
    (
        "tuning_p90_latency",
        "ms",
        r#"avg(histogram_quantile(0.9,rate(envoy_cluster_upstream_rq_time_bucket{opsani_role="tuning"}[1m])))"#,
        Absent::Ignore,
    ),
    (
        "main_p50_latency",
        "ms",
        r#"avg(histogram_quantile(0.5,rate(envoy_cluster_upstream_rq_time_bucket{opsani_role!="tuning"}[1m])))"#,
        Absent::Ignore,
    ),
    (
        "tuning_p50_latency",
        "ms",
        r#"avg(histogram_quantile(0.5,rate(envoy_cluster_upstream_rq_time_bucket{opsani_role="tuning"}[1m])))"#,
        Absent::Ignore,
    ),
];

impl ConnectorSettings for Settings {
    /// ServoX's `OpsaniDevConfiguration.generate()`.
    fn example() -> Self {
        Settings {
            description: None,
            namespace: "default".into(),
            workload_name: None,
            deployment: Some("app-deployment".into()),
            workload_kind: default_workload_kind(),
            container: "main".into(),
            service: "app".into(),
            port: None,
            cpu: CpuSettings {
                name: None,
                kind: None,
                unit: None,
                min: Cpu::from_millicores(250),
                max: Cpu::from_millicores(4000),
                step: Cpu::from_millicores(125),
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
                step: Memory::from_bytes(128 << 20),
                pinned: false,
                get: default_requirements(),
                set: default_requirements(),
                request: None,
                limit: None,
            },
            env: None,
            static_environment_variables: None,
            prometheus_base_url: default_prometheus_base_url(),
            envoy_sidecar_image: default_envoy_sidecar_image(),
            timeout: default_timeout(),
            settlement: None,
            container_logs_in_error_status: false,
            create_tuning_pod: true,
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let root = KeyPath::root();
        let mut problems = Vec::new();
        match (&self.workload_name, &self.deployment) {
            (Some(_), Some(_)) => problems.push(
                Problem::new(
                    root.key("deployment"),
                    "both `workload_name` and `deployment` are set",
                )
                .with_help("they are the same setting: keep `workload_name`"),
            ),
            (None, None) => problems.push(
                Problem::new(
                    root.key("workload_name"),
                    "the Deployment to optimize is not named",
                )
                .with_help("set `workload_name` (or ServoX's older `deployment`)"),
            ),
            _ => {}
        }
        if !matches!(self.workload_kind.as_str(), "Deployment" | "deployment") {
            problems.push(
                Problem::new(
                    root.key("workload_kind"),
                    format!(
                        "workload kind `{}` is not supported: opsani_dev optimizes Deployments (as ServoX 25.3.0 does)",
                        self.workload_kind
                    ),
                )
                .with_help("use `workload_kind: Deployment`"),
            );
        }
        if let Err(message) = crate::prometheus::settings::parse_base_url(&self.prometheus_base_url)
        {
            problems.push(Problem::new(root.key("prometheus_base_url"), message));
        }
        // The generated sections' own rules (ranges, env settings), reported at this section's keys.
        let generated = root.key("deployments").index(0).key("containers").index(0);
        for problem in self.kubernetes().validate() {
            let text = problem.path.to_string();
            let at = ["cpu", "memory", "env"]
                .into_iter()
                .find(|key| text.starts_with(&generated.key(*key).to_string()))
                .map_or_else(|| root.clone(), |key| root.key(key));
            problems.push(Problem {
                path: at,
                ..problem
            });
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servox_generated() -> Settings {
        // ServoX 25.3.0's `servo generate opsani_dev` section.
        let yaml = "namespace: default\ndeployment: app-deployment\ncontainer: main\nservice: app\n\
                    cpu: {unit: cores, min: 250m, max: '4'}\nmemory: {unit: GiB, min: 256.0Mi, max: 4.0Gi}\n";
        serde_saphyr::from_str(yaml).expect("ServoX's section parses")
    }

    #[test]
    fn a_tuning_pod_is_tuned_beside_the_pinned_main_deployment() {
        let s = servox_generated();
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        let k = s.kubernetes();
        let d = &k.deployments[0];
        assert_eq!(
            (d.name.as_str(), d.strategy.kind()),
            ("app-deployment", Strategy::Canary)
        );
        assert_eq!(d.strategy.alias(), Some("tuning"));
        assert_eq!(d.containers[0].alias.as_deref(), Some("main"));
        assert!(k.validate().is_empty());
        let p = s.prometheus();
        assert_eq!(p.metrics.len(), 13);
        assert_eq!(p.base_url, "http://localhost:9090");
    }

    #[test]
    fn without_a_tuning_pod_everything_is_pinned_and_tuning_metrics_are_left_out() {
        let mut s = servox_generated();
        s.create_tuning_pod = false;
        let k = s.kubernetes();
        let d = &k.deployments[0];
        assert_eq!(d.strategy.kind(), Strategy::Default);
        assert!(d.containers[0].cpu.pinned && d.containers[0].memory.pinned && d.replicas.pinned);
        let names: Vec<String> = s.prometheus().metrics.into_iter().map(|m| m.name).collect();
        assert!(names.iter().all(|n| !n.starts_with("tuning_")), "{names:?}");
        assert!(names.contains(&"main_p90_latency".to_string()));
    }

    #[test]
    fn the_workload_is_named_once_and_is_a_deployment() {
        let mut s = servox_generated();
        s.workload_name = Some("web".into());
        s.workload_kind = "Rollout".into();
        let problems: Vec<String> = s.validate().iter().map(|p| p.path.to_string()).collect();
        assert_eq!(problems, ["deployment", "workload_kind"]);
        let mut s = servox_generated();
        s.cpu.min = Cpu::from_millicores(8000);
        let problems: Vec<String> = s.validate().iter().map(|p| p.path.to_string()).collect();
        assert_eq!(
            problems,
            ["cpu"],
            "a range problem is reported at this section's key"
        );
    }
}
