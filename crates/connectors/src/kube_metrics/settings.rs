//! The `kube_metrics` connector's settings (a ServoX `kube_metrics:` section loads unchanged), its
//! metrics and their validation.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use servo_core::connector::ConnectorSettings;
use servo_core::units::Duration;
use servo_core::{KeyPath, Problem};
use std::path::PathBuf;

/// Settings of the `kube_metrics` connector (a ServoX `kube_metrics:` section loads unchanged).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Namespace of the target resource.
    pub namespace: String,
    /// Name of the target resource (its tuning Pod, if any, is `<name>-tuning`).
    pub name: String,
    /// Kind of the target resource.
    #[serde(default)]
    pub kind: TargetKind,
    /// Name of the target resource's container; required when its pods have more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The metrics this connector reports. Default: all of them.
    #[serde(default = "default_metrics_to_collect")]
    pub metrics_to_collect: Vec<KubeMetric>,
    /// How often the metrics-server is read during a measurement.
    #[serde(default = "default_metric_collection_frequency")]
    pub metric_collection_frequency: Duration,
    /// Path to a kubeconfig file (relative to the config file). Default: the first file in
    /// `KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use. Default: its `current-context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

fn default_metrics_to_collect() -> Vec<KubeMetric> {
    KubeMetric::ALL.to_vec()
}

fn default_metric_collection_frequency() -> Duration {
    Duration::from_secs(60)
}

/// The kind of the target resource, spelled as ServoX accepts it (`Deployment` or `deployment`,
/// `StatefulSet`, `statefulset`...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetKind {
    #[default]
    #[serde(alias = "deployment")]
    Deployment,
    #[serde(alias = "statefulset", alias = "Statefulset", alias = "statefulSet")]
    StatefulSet,
}

impl JsonSchema for TargetKind {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TargetKind".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Deployment or StatefulSet (ServoX also accepts deployment, statefulset, Statefulset, statefulSet).",
            "type": "string",
            "enum": ["Deployment", "deployment", "StatefulSet", "statefulset", "Statefulset", "statefulSet"]
        })
    }
}

/// A metric of the `kube_metrics` connector, by ServoX's name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum KubeMetric {
    TuningCpuUsage,
    TuningCpuRequest,
    TuningCpuLimit,
    TuningCpuSaturation,
    TuningMemUsage,
    TuningMemRequest,
    TuningMemLimit,
    TuningMemSaturation,
    TuningPodRestartCount,
    MainCpuUsage,
    MainCpuRequest,
    MainCpuLimit,
    MainCpuSaturation,
    MainMemUsage,
    MainMemRequest,
    MainMemLimit,
    MainMemSaturation,
    MainPodRestartCount,
}

/// Which pods a metric is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pods {
    /// The target's pods but the tuning Pod.
    Main,
    /// The tuning Pod `<name>-tuning`.
    Tuning,
}

/// What a metric measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    CpuUsage,
    CpuRequest,
    CpuLimit,
    /// CPU usage as a percentage of the request (of the limit when there is no request).
    CpuSaturation,
    MemUsage,
    MemRequest,
    MemLimit,
    /// Memory usage as a percentage of the request (of the limit when there is no request).
    MemSaturation,
    RestartCount,
}

impl KubeMetric {
    pub const ALL: [KubeMetric; 18] = [
        KubeMetric::TuningCpuUsage,
        KubeMetric::TuningCpuRequest,
        KubeMetric::TuningCpuLimit,
        KubeMetric::TuningCpuSaturation,
        KubeMetric::TuningMemUsage,
        KubeMetric::TuningMemRequest,
        KubeMetric::TuningMemLimit,
        KubeMetric::TuningMemSaturation,
        KubeMetric::TuningPodRestartCount,
        KubeMetric::MainCpuUsage,
        KubeMetric::MainCpuRequest,
        KubeMetric::MainCpuLimit,
        KubeMetric::MainCpuSaturation,
        KubeMetric::MainMemUsage,
        KubeMetric::MainMemRequest,
        KubeMetric::MainMemLimit,
        KubeMetric::MainMemSaturation,
        KubeMetric::MainPodRestartCount,
    ];

    /// ServoX's name: `main_cpu_usage`.
    pub fn name(self) -> &'static str {
        use KubeMetric::*;
        match self {
            TuningCpuUsage => "tuning_cpu_usage",
            TuningCpuRequest => "tuning_cpu_request",
            TuningCpuLimit => "tuning_cpu_limit",
            TuningCpuSaturation => "tuning_cpu_saturation",
            TuningMemUsage => "tuning_mem_usage",
            TuningMemRequest => "tuning_mem_request",
            TuningMemLimit => "tuning_mem_limit",
            TuningMemSaturation => "tuning_mem_saturation",
            TuningPodRestartCount => "tuning_pod_restart_count",
            MainCpuUsage => "main_cpu_usage",
            MainCpuRequest => "main_cpu_request",
            MainCpuLimit => "main_cpu_limit",
            MainCpuSaturation => "main_cpu_saturation",
            MainMemUsage => "main_mem_usage",
            MainMemRequest => "main_mem_request",
            MainMemLimit => "main_mem_limit",
            MainMemSaturation => "main_mem_saturation",
            MainPodRestartCount => "main_pod_restart_count",
        }
    }

    pub fn pods(self) -> Pods {
        if self.name().starts_with("tuning_") {
            Pods::Tuning
        } else {
            Pods::Main
        }
    }

    pub fn quantity(self) -> Quantity {
        use KubeMetric::*;
        match self {
            TuningCpuUsage | MainCpuUsage => Quantity::CpuUsage,
            TuningCpuRequest | MainCpuRequest => Quantity::CpuRequest,
            TuningCpuLimit | MainCpuLimit => Quantity::CpuLimit,
            TuningCpuSaturation | MainCpuSaturation => Quantity::CpuSaturation,
            TuningMemUsage | MainMemUsage => Quantity::MemUsage,
            TuningMemRequest | MainMemRequest => Quantity::MemRequest,
            TuningMemLimit | MainMemLimit => Quantity::MemLimit,
            TuningMemSaturation | MainMemSaturation => Quantity::MemSaturation,
            TuningPodRestartCount | MainPodRestartCount => Quantity::RestartCount,
        }
    }

    /// The unit of its values: cores, GiB, % or a count (empty). ServoX's backend knows them
    /// without units (`float`), except `%`.
    pub fn unit(self, remote_optimizer: bool) -> &'static str {
        match self.quantity() {
            Quantity::CpuSaturation | Quantity::MemSaturation => "%",
            Quantity::RestartCount => "",
            _ if remote_optimizer => "",
            Quantity::CpuUsage | Quantity::CpuRequest | Quantity::CpuLimit => "cores",
            Quantity::MemUsage | Quantity::MemRequest | Quantity::MemLimit => "GiB",
        }
    }

    /// Whether it needs the metrics API (usage and saturation do; requests, limits and restarts
    /// are read from the workload and its pods).
    pub fn needs_metrics_api(self) -> bool {
        matches!(
            self.quantity(),
            Quantity::CpuUsage
                | Quantity::CpuSaturation
                | Quantity::MemUsage
                | Quantity::MemSaturation
        )
    }
}

/// Whether `name` is a DNS subdomain (RFC 1123), as Kubernetes requires of a namespace.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl ConnectorSettings for Settings {
    fn example() -> Self {
        Settings {
            description: Some(
                "Update the namespace, resource name, etc. to match the resource to monitor".into(),
            ),
            namespace: "default".into(),
            name: "app".into(),
            kind: TargetKind::Deployment,
            container: Some("app_container_name".into()),
            metrics_to_collect: default_metrics_to_collect(),
            metric_collection_frequency: default_metric_collection_frequency(),
            kubeconfig: None,
            context: None,
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let root = KeyPath::root();
        let mut problems = Vec::new();
        if !is_dns_subdomain(&self.namespace) {
            problems.push(
                Problem::new(
                    root.key("namespace"),
                    format!("`{}` is not a valid namespace name", self.namespace),
                )
                .with_help("lower-case letters, digits, `-` and `.`, such as `default` or `shop`"),
            );
        }
        if self.name.trim().is_empty() {
            problems.push(Problem::new(root.key("name"), "the name is empty"));
        }
        if self
            .container
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            problems.push(
                Problem::new(root.key("container"), "the container name is empty").with_help(
                    "name the container, or leave `container` out for a single-container pod",
                ),
            );
        }
        if self.metric_collection_frequency.is_zero() {
            problems.push(
                Problem::new(
                    root.key("metric_collection_frequency"),
                    "the metrics-server cannot be read continuously",
                )
                .with_help(
                    "give a period such as 15s (metrics-server refreshes every 15s by default)",
                ),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servox_spellings_of_the_kind_parse_and_print_canonically() {
        for (written, kind) in [
            ("deployment", TargetKind::Deployment),
            ("Deployment", TargetKind::Deployment),
            ("statefulset", TargetKind::StatefulSet),
            ("Statefulset", TargetKind::StatefulSet),
            ("statefulSet", TargetKind::StatefulSet),
            ("StatefulSet", TargetKind::StatefulSet),
        ] {
            let parsed: TargetKind =
                serde_json::from_value(serde_json::json!(written)).expect("parses");
            assert_eq!(parsed, kind);
        }
        assert_eq!(
            serde_json::to_value(TargetKind::StatefulSet).ok(),
            Some(serde_json::json!("StatefulSet"))
        );
    }

    #[test]
    fn every_metric_is_named_as_servox_names_it() {
        for metric in KubeMetric::ALL {
            let via_serde = serde_json::to_value(metric).expect("serializes");
            assert_eq!(via_serde, serde_json::json!(metric.name()));
        }
        assert_eq!(KubeMetric::MainCpuSaturation.unit(true), "%");
        assert_eq!(KubeMetric::MainMemUsage.unit(false), "GiB");
        assert_eq!(KubeMetric::MainMemUsage.unit(true), "");
        assert_eq!(KubeMetric::TuningPodRestartCount.pods(), Pods::Tuning);
    }

    #[test]
    fn namespaces_must_be_dns_subdomains() {
        assert!(is_dns_subdomain("shop"));
        assert!(is_dns_subdomain("a.b-c"));
        for bad in ["", "Shop", "-a", "a..b", "a_b"] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }
}
