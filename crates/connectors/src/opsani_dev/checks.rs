//! ServoX's `OpsaniDevChecks`, in its order: Kubernetes essentials, the Deployment and its
//! container, the Service, Prometheus, the pod template's annotations, labels and Envoy sidecar,
//! the proxying of traffic, the tuning Pod and the traffic itself.
//!
//! Each is ServoX's `require` (a failure stops the checks after it), `check` or `warn` (a
//! warning). A failure that can be fixed carries its remedy: the hint shows it as a command, and
//! with `checks.remedy` (the [`EventContext::remedies`] flag) it is logged and then applied, so
//! the next round of checks finds it done.

use super::OpsaniDev;
use crate::kubernetes::client::Client;
use crate::kubernetes::rollout::{self, State};
use crate::kubernetes::sidecar::{self, PROXY_PORT, Plan};
use crate::kubernetes::tuning::{ROLE_LABEL, pod_name};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use serde_json::{Value, json};
use servo_core::connector::EventContext;
use servo_core::types::{Check, Severity};
use servo_core::units::{Cpu, Memory};
use servo_core::{Connector, ConnectorError};
use std::collections::BTreeMap;

/// ServoX's Prometheus annotations of the pod template (`PROMETHEUS_ANNOTATION_DEFAULTS`).
const PROMETHEUS_ANNOTATIONS: [(&str, &str); 4] = [
    ("prometheus.opsani.com/scrape", "true"),
    ("prometheus.opsani.com/scheme", "http"),
    ("prometheus.opsani.com/path", "/stats/prometheus"),
    ("prometheus.opsani.com/port", "9901"),
];
/// The annotation and label naming the optimizer.
const OPTIMIZER_KEY: &str = "servo.opsani.com/optimizer";
/// ServoX's `ENVOY_SIDECAR_LABELS`.
const SIDECAR_LABEL: (&str, &str) = ("sidecar.opsani.com/type", "envoy");

/// What ServoX's permission check asks for in the namespace: (group, resources, verbs).
const PERMISSIONS: [(&str, &[&str], &[&str]); 3] = [
    (
        "apps",
        &["deployments", "deployments/status", "replicasets"],
        &["get", "list", "watch", "update", "patch"],
    ),
    ("", &["namespaces"], &["get"]),
    (
        "",
        &[
            "pods",
            "pods/logs",
            "pods/status",
            "pods/exec",
            "pods/portforward",
            "services",
        ],
        &[
            "create", "delete", "get", "list", "watch", "update", "patch",
        ],
    ),
];

/// ServoX's check kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// A failure stops the checks after it.
    Require,
    /// A failure is reported and the checks go on.
    Check,
    /// A failure is a warning.
    Warn,
}

/// A fix for a failed check.
enum Remedy {
    /// A patch of the Deployment's pod template metadata.
    Template(Value),
    /// Injecting the Envoy sidecar, or pointing the Service at it.
    Sidecar(Plan),
}

/// Why a check failed, and what would fix it.
struct Failure {
    message: String,
    hint: Option<String>,
    /// Boxed: most failures have none, and a `Result` carries this around.
    remedy: Option<Box<Remedy>>,
    /// The event was cancelled: the checks end, nothing is reported.
    cancelled: bool,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            hint: None,
            remedy: None,
            cancelled: false,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn remedy(mut self, remedy: Remedy) -> Self {
        self.remedy = Some(Box::new(remedy));
        self
    }
}

impl From<ConnectorError> for Failure {
    fn from(e: ConnectorError) -> Self {
        let hint = e.hint().map(str::to_string);
        Failure {
            message: e.to_string(),
            hint,
            remedy: None,
            cancelled: matches!(e, ConnectorError::Cancelled),
        }
    }
}

type Outcome = Result<String, Failure>;

/// The checks run so far, and whether a required one failed.
struct Report<'a> {
    connector: &'a OpsaniDev,
    cx: &'a EventContext,
    checks: Vec<Check>,
    halted: bool,
}

impl Report<'_> {
    /// Records one check; applies its remedy when allowed. A cancellation ends the checks.
    async fn record(
        &mut self,
        gate: Gate,
        name: String,
        outcome: Outcome,
    ) -> Result<(), ConnectorError> {
        let check = match outcome {
            Ok(message) => Check::pass(name, message),
            Err(failure) => {
                if failure.cancelled {
                    return Err(ConnectorError::Cancelled);
                }
                let mut message = failure.message;
                if let Some(remedy) = &failure.remedy
                    && self.cx.remedies
                {
                    let shown = failure.hint.as_deref().unwrap_or("the fix");
                    tracing::warn!(check = %name, "applying the remedy: {shown}");
                    match self.connector.apply(remedy, self.cx).await {
                        Ok(()) => message.push_str("; remedy applied, the next check will see it"),
                        Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
                        Err(e) => message.push_str(&format!("; the remedy failed: {e}")),
                    }
                }
                let severity = if gate == Gate::Warn {
                    Severity::Warning
                } else {
                    Severity::Critical
                };
                let mut check = Check::fail(name, message).with_severity(severity);
                check.hint = failure.hint;
                self.halted = gate == Gate::Require;
                check
            }
        };
        self.checks.push(check);
        Ok(())
    }
}

fn cpu_of(q: &Quantity) -> Option<Cpu> {
    q.0.parse().ok()
}

fn memory_of(q: &Quantity) -> Option<Memory> {
    q.0.parse().ok()
}

fn find<'a>(deployment: &'a Deployment, name: &str) -> Option<&'a Container> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.iter().find(|c| c.name == name))
}

/// The first of the `get` requirements a container sets for `resource`.
fn requirement<'a>(
    container: &'a Container,
    resource: &str,
    get: &[crate::kubernetes::settings::Requirement],
) -> Option<&'a Quantity> {
    use crate::kubernetes::settings::Requirement;
    let resources = container.resources.as_ref()?;
    get.iter().find_map(|r| {
        match r {
            Requirement::Request => resources.requests.as_ref(),
            Requirement::Limit => resources.limits.as_ref(),
        }?
        .get(resource)
    })
}

/// ServoX's `dns_labelize`: a string made a valid label value.
fn labelize(name: &str) -> String {
    let mut out: String = name
        .replace('/', "_")
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(63)
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out = format!("0-{out}").chars().take(63).collect();
    }
    if !out.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        out = format!("{}-1", out.chars().take(61).collect::<String>());
    }
    out
}

fn merge_patch_command(namespace: &str, workload: &str, patch: &Value) -> String {
    format!(
        "kubectl --namespace {namespace} patch deployment {workload} --type='merge' -p '{patch}'"
    )
}

impl OpsaniDev {
    /// Applies a remedy through the `kubernetes` connector's client.
    async fn apply(&self, remedy: &Remedy, cx: &EventContext) -> Result<(), ConnectorError> {
        let api = self.kubernetes.client().await?;
        let (ns, workload) = (&self.settings.namespace, self.settings.workload());
        match remedy {
            Remedy::Template(patch) => api
                .patch_deployment(ns, workload, patch, &cx.cancel)
                .await
                .map(drop),
            Remedy::Sidecar(plan) => sidecar::apply(api, ns, workload, plan, &cx.cancel).await,
        }
    }

    async fn deployment(&self, api: &Client, cx: &EventContext) -> Result<Deployment, Failure> {
        Ok(api
            .deployment(
                &self.settings.namespace,
                self.settings.workload(),
                &cx.cancel,
            )
            .await?)
    }

    async fn service(&self, api: &Client, cx: &EventContext) -> Result<Service, Failure> {
        let s = &self.settings;
        Ok(sidecar::service(api, &s.namespace, &s.service, &cx.cancel).await?)
    }

    fn port(&self) -> Option<sidecar::PortRef> {
        self.settings.port.as_ref().map(|p| p.port_ref())
    }

    /// Every check in ServoX's order, up to the first failed required one.
    pub(super) async fn run_checks(&self, cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        let s = &self.settings;
        let (ns, workload, container) = (&s.namespace, s.workload(), &s.container);
        let mut report = Report {
            connector: self,
            cx,
            checks: Vec::new(),
            halted: false,
        };
        let optimizer = if self.remote_optimizer {
            Ok(format!("optimizer {}", self.optimizer))
        } else {
            Ok(format!(
                "embedded optimizer: the pod template is labelled with the servo's name `{}`",
                self.optimizer
            ))
        };
        report
            .record(Gate::Require, "Optimizer Configuration".into(), optimizer)
            .await?;
        let api = match self.kubernetes.client().await {
            Ok(api) => Some(api),
            Err(e) => {
                let outcome = Err(Failure::from(e));
                report
                    .record(Gate::Require, "Connectivity to Kubernetes".into(), outcome)
                    .await?;
                None
            }
        };
        let Some(api) = api else {
            return Ok(report.checks);
        };
        let version = api.version(&cx.cancel).await;
        let connectivity = match &version {
            Ok(v) => Ok(format!(
                "{} answers, Kubernetes {}",
                api.server(),
                v.git_version
            )),
            Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
            Err(e) => Err(Failure::new(e.to_string()).hint(e.hint().unwrap_or_default())),
        };
        report
            .record(
                Gate::Require,
                "Connectivity to Kubernetes".into(),
                connectivity,
            )
            .await?;
        if report.halted {
            return Ok(report.checks);
        }
        let version = version.map_err(Failure::from).and_then(|v| {
            let minor: u32 = v
                .minor
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(0);
            let major: u32 = v.major.parse().unwrap_or(0);
            if major >= 1 && (major > 1 || minor >= 16) {
                Ok(format!("{}.{}", v.major, v.minor))
            } else {
                Err(Failure::new(format!(
                    "Kubernetes {}.{} is older than 1.16",
                    v.major, v.minor
                )))
            }
        });
        report
            .record(Gate::Warn, "Kubernetes version".into(), version)
            .await?;

        let steps: [(Gate, String); 12] = [
            (Gate::Require, "Kubernetes permissions".into()),
            (Gate::Require, format!("Namespace \"{ns}\" is readable")),
            (
                Gate::Require,
                format!("Deployment \"{workload}\" is readable"),
            ),
            (
                Gate::Require,
                format!("Container \"{container}\" is readable"),
            ),
            (
                Gate::Require,
                format!("Container \"{container}\" has resource requirements"),
            ),
            (
                Gate::Require,
                "Target container resources fall within optimization range".into(),
            ),
            (Gate::Require, format!("Deployment \"{workload}\" is ready")),
            (Gate::Require, format!("Service {} is readable", s.service)),
            (
                Gate::Warn,
                format!("Service {} has compatible type", s.service),
            ),
            (
                Gate::Check,
                format!("Service {} has unambiguous target port", s.service),
            ),
            (
                Gate::Check,
                format!("Service routes traffic to {workload} Pods"),
            ),
            (Gate::Require, "Prometheus is accessible".into()),
        ];
        for (i, (gate, name)) in steps.into_iter().enumerate() {
            let outcome = match i {
                0 => self.check_permissions(api, cx).await,
                1 => self.check_namespace(api, cx).await,
                2 => self
                    .deployment(api, cx)
                    .await
                    .map(|_| format!("found in namespace {ns}")),
                3 => self.check_container(api, cx).await,
                4 => self.check_requirements(api, cx, false).await,
                5 => self.check_requirements(api, cx, true).await,
                6 => self.check_ready(api, cx).await,
                7 => self
                    .service(api, cx)
                    .await
                    .map(|_| format!("found in namespace {ns}")),
                8 => self.check_service_type(api, cx).await,
                9 => self.check_service_port(api, cx).await,
                10 => self.check_service_selector(api, cx).await,
                _ => self.check_prometheus(cx).await,
            };
            report.record(gate, name, outcome).await?;
            if report.halted {
                return Ok(report.checks);
            }
        }

        let steps: [(Gate, String); 9] = [
            (
                Gate::Check,
                format!("{workload} PodSpec has expected annotations"),
            ),
            (Gate::Check, "Deployment PodSpec has expected labels".into()),
            (
                Gate::Require,
                "Deployment has Envoy sidecar container".into(),
            ),
            (Gate::Check, "Pods have Envoy sidecar containers".into()),
            (Gate::Check, "Prometheus is discovering targets".into()),
            (Gate::Check, "Envoy proxies are being scraped".into()),
            (Gate::Require, "Traffic is proxied through Envoy".into()),
            (Gate::Check, "Tuning pod is running".into()),
            (Gate::Check, "Pods are processing traffic".into()),
        ];
        for (i, (gate, name)) in steps.into_iter().enumerate() {
            let outcome = match i {
                0 => self.check_annotations(api, cx).await,
                1 => self.check_labels(api, cx).await,
                2 => self.check_sidecar(api, cx).await,
                3 => self.check_pod_sidecars(api, cx).await,
                4 => self.check_targets(cx).await,
                5 => self.check_scraped(cx).await,
                6 => self.check_proxied(api, cx).await,
                7 => self.check_tuning_pod(api, cx).await,
                _ => self.check_traffic(cx).await,
            };
            report.record(gate, name, outcome).await?;
            if report.halted {
                break;
            }
        }
        Ok(report.checks)
    }

    async fn check_permissions(&self, api: &Client, cx: &EventContext) -> Outcome {
        let mut denied = Vec::new();
        for (group, resources, verbs) in PERMISSIONS {
            for resource in resources {
                for verb in verbs {
                    let allowed = api
                        .can(verb, group, resource, &self.settings.namespace, &cx.cancel)
                        .await?;
                    if !allowed {
                        denied.push(format!("{verb} {resource}"));
                    }
                }
            }
        }
        if denied.is_empty() {
            Ok("deployments, replicasets, namespaces, pods and services as ServoX needs".into())
        } else {
            Err(Failure::new(format!("not allowed to {}", denied.join(", "))).hint(
                "grant servo's service account these verbs with a Role and RoleBinding in the namespace",
            ))
        }
    }

    async fn check_namespace(&self, api: &Client, cx: &EventContext) -> Outcome {
        let ns = &self.settings.namespace;
        let namespaces: kube::Api<Namespace> = kube::Api::all(api.kube().clone());
        api.call(
            namespaces.get(ns),
            "GET",
            &format!("namespace {ns}"),
            &cx.cancel,
        )
        .await?;
        Ok("readable".into())
    }

    async fn check_container(&self, api: &Client, cx: &EventContext) -> Outcome {
        let deployment = self.deployment(api, cx).await?;
        let s = &self.settings;
        match find(&deployment, &s.container) {
            Some(_) => Ok("found in the pod template".into()),
            None => Err(Failure::new(format!(
                "failed reading Container '{}' in Deployment '{}'",
                s.container,
                s.workload()
            ))
            .hint("fix `container` in servo's config")),
        }
    }

    /// That the container sets cpu and memory (`within`: inside the configured ranges).
    async fn check_requirements(&self, api: &Client, cx: &EventContext, within: bool) -> Outcome {
        let deployment = self.deployment(api, cx).await?;
        let s = &self.settings;
        let container = find(&deployment, &s.container)
            .ok_or_else(|| Failure::new(format!("no container `{}`", s.container)))?;
        let cpu = requirement(container, "cpu", &s.cpu.get).and_then(cpu_of);
        let memory = requirement(container, "memory", &s.memory.get).and_then(memory_of);
        let (Some(cpu), Some(memory)) = (cpu, memory) else {
            let missing = if cpu.is_none() { "cpu" } else { "memory" };
            return Err(Failure::new(format!(
                "Deployment {} target container {} spec does not define the resource {missing}",
                s.workload(),
                s.container
            ))
            .hint("set requests (or limits) for cpu and memory in the Deployment's container"));
        };
        if !within {
            return Ok(format!("cpu {cpu}, memory {memory}"));
        }
        let mut problems = Vec::new();
        if cpu < s.cpu.min || cpu > s.cpu.max {
            problems.push(format!("cpu {cpu} is outside {}..{}", s.cpu.min, s.cpu.max));
        }
        if memory < s.memory.min || memory > s.memory.max {
            problems.push(format!(
                "memory {memory} is outside {}..{}",
                s.memory.min, s.memory.max
            ));
        }
        if problems.is_empty() {
            Ok(format!("cpu {cpu}, memory {memory}"))
        } else {
            Err(Failure::new(problems.join("; "))
                .hint("widen `cpu`/`memory` in servo's config or change the Deployment's requests"))
        }
    }

    async fn check_ready(&self, api: &Client, cx: &EventContext) -> Outcome {
        let deployment = self.deployment(api, cx).await?;
        match rollout::deployment_state(&deployment) {
            State::Settled => Ok(format!(
                "{} replicas ready",
                rollout::desired_replicas(&deployment)
            )),
            State::Progressing(what) | State::Failed(what) => Err(Failure::new(format!(
                "Deployment \"{}\" is not ready: {what}",
                self.settings.workload()
            ))
            .hint("`kubectl rollout status` shows its progress")),
        }
    }

    async fn check_service_type(&self, api: &Client, cx: &EventContext) -> Outcome {
        let service = self.service(api, cx).await?;
        let kind = service
            .spec
            .and_then(|s| s.type_)
            .unwrap_or_else(|| "ClusterIP".into());
        if matches!(kind.as_str(), "ClusterIP" | "LoadBalancer" | "NodePort") {
            Ok(kind)
        } else {
            Err(Failure::new(format!(
                "expected service type of ClusterIP, LoadBalancer, or NodePort but found {kind}"
            )))
        }
    }

    async fn check_service_port(&self, api: &Client, cx: &EventContext) -> Outcome {
        let service = self.service(api, cx).await?;
        let port = sidecar::service_port(&service, self.port().as_ref())?;
        let target = match &port.target_port {
            Some(IntOrString::Int(n)) => n.to_string(),
            Some(IntOrString::String(s)) => s.clone(),
            None => port.port.to_string(),
        };
        Ok(format!(
            "Service Port: {} {}:{target}/{}",
            port.name.as_deref().unwrap_or(""),
            port.port,
            port.protocol.as_deref().unwrap_or("TCP")
        ))
    }

    async fn check_service_selector(&self, api: &Client, cx: &EventContext) -> Outcome {
        let service = self.service(api, cx).await?;
        let deployment = self.deployment(api, cx).await?;
        let wanted = service.spec.and_then(|s| s.selector).unwrap_or_default();
        let labels = deployment
            .spec
            .and_then(|s| s.selector.match_labels)
            .unwrap_or_default();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|(k, v)| labels.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if missing.is_empty() {
            Ok("the Service's selector matches the Deployment's".into())
        } else {
            Err(Failure::new(format!(
                "Service selector does not match Deployment labels. Missing labels: {}",
                missing.join(" ")
            )))
        }
    }

    async fn check_prometheus(&self, cx: &EventContext) -> Outcome {
        self.prometheus.active_targets(&cx.cancel).await?;
        Ok(format!(
            "Prometheus is accessible at {}",
            self.settings.prometheus_base_url
        ))
    }

    async fn check_annotations(&self, api: &Client, cx: &EventContext) -> Outcome {
        let deployment = self.deployment(api, cx).await?;
        let present = deployment
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .unwrap_or_default();
        let optimizer = self.optimizer.as_str();
        // Only the keys are checked, as in ServoX.
        let missing: BTreeMap<&str, &str> = PROMETHEUS_ANNOTATIONS
            .into_iter()
            .chain([(OPTIMIZER_KEY, optimizer)])
            .filter(|(k, _)| !present.contains_key(*k))
            .collect();
        if missing.is_empty() {
            return Ok("the Prometheus and optimizer annotations are set".into());
        }
        let patch = json!({"spec": {"template": {"metadata": {"annotations": missing}}}});
        let s = &self.settings;
        let keys: Vec<&str> = missing.keys().copied().collect();
        Err(Failure::new(format!(
            "Deployment '{}' is missing annotations: {}",
            s.workload(),
            keys.join(", ")
        ))
        .hint(format!(
            "Patch annotations via: `{}`",
            merge_patch_command(&s.namespace, s.workload(), &patch)
        ))
        .remedy(Remedy::Template(patch)))
    }

    async fn check_labels(&self, api: &Client, cx: &EventContext) -> Outcome {
        let deployment = self.deployment(api, cx).await?;
        let present = deployment
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .unwrap_or_default();
        let optimizer = labelize(&self.optimizer);
        // The values too: they are not configurable.
        let missing: BTreeMap<&str, &str> = [SIDECAR_LABEL, (OPTIMIZER_KEY, optimizer.as_str())]
            .into_iter()
            .filter(|(k, v)| present.get(*k).map(String::as_str) != Some(*v))
            .collect();
        if missing.is_empty() {
            return Ok("the Envoy and optimizer labels are set".into());
        }
        let patch = json!({"spec": {"template": {"metadata": {"labels": missing}}}});
        let s = &self.settings;
        let shown: Vec<String> = missing.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Err(Failure::new(format!(
            "Deployment '{}' is missing labels: {}",
            s.workload(),
            shown.join(", ")
        ))
        .hint(format!(
            "Patch labels via: `{}`",
            merge_patch_command(&s.namespace, s.workload(), &patch)
        ))
        .remedy(Remedy::Template(patch)))
    }

    async fn check_sidecar(&self, api: &Client, cx: &EventContext) -> Outcome {
        let deployment = self.deployment(api, cx).await?;
        if sidecar::has_sidecar(&deployment) {
            return Ok(format!(
                "container `{}` is in the pod template",
                sidecar::NAME
            ));
        }
        let s = &self.settings;
        let service = self.service(api, cx).await?;
        let plan = sidecar::plan_inject(
            &deployment,
            Some(&service),
            self.port().as_ref(),
            &s.envoy_sidecar_image,
        )?;
        let port = match &s.port {
            Some(p) => format!(" --port {}", p.port_ref()),
            None => String::new(),
        };
        Err(Failure::new(format!(
            "Deployment '{}' pod template spec does not include envoy sidecar container ('{}')",
            s.workload(),
            sidecar::NAME
        ))
        .hint(format!(
            "Inject Envoy sidecar container via: `servo inject-sidecar --image {} --namespace {} --service {}{port} deployment/{}`",
            s.envoy_sidecar_image, s.namespace, s.service, s.workload()
        ))
        .remedy(Remedy::Sidecar(plan)))
    }

    async fn check_pod_sidecars(&self, api: &Client, cx: &EventContext) -> Outcome {
        let deployment = self.deployment(api, cx).await?;
        let ns = &self.settings.namespace;
        let selector = rollout::selector(&deployment).unwrap_or_default();
        let pods = api
            .call(
                api.api::<Pod>(ns)
                    .list(&ListParams::default().labels(&selector)),
                "LIST",
                &format!("pods -n {ns}"),
                &cx.cancel,
            )
            .await?;
        // The Deployment's own pods: not the tuning Pod, not those on their way out.
        let own: Vec<&Pod> = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.metadata.labels.as_ref().and_then(|l| l.get(ROLE_LABEL))
                    != Some(&"tuning".to_string())
            })
            .collect();
        let without: Vec<&str> = own
            .iter()
            .filter(|p| {
                !p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers.iter().any(|c| c.name == sidecar::NAME))
            })
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        if without.is_empty() {
            Ok(format!("{} pods have the sidecar", own.len()))
        } else {
            Err(Failure::new(format!(
                "pods '{}' do not have envoy sidecar container ('{}')",
                without.join(", "),
                sidecar::NAME
            ))
            .hint("they are replaced as the Deployment rolls out; wait for the rollout"))
        }
    }

    async fn check_targets(&self, cx: &EventContext) -> Outcome {
        let active = self.prometheus.active_targets(&cx.cancel).await?;
        if active == 0 {
            return Err(Failure::new("no active targets were found"));
        }
        Ok(format!("found {active} active targets"))
    }

    /// The sum of a counter of the main or tuning Pods in the namespace, and its query.
    async fn total(&self, tuning: bool, cx: &EventContext) -> Result<(f64, String), Failure> {
        let role = if tuning { "=" } else { "!=" };
        let query = format!(
            "sum(envoy_cluster_upstream_rq_total{{opsani_role{role}\"tuning\", kubernetes_namespace=\"{}\"}})",
            self.settings.namespace
        );
        let values = self.prometheus.instant(&query, &cx.cancel).await?;
        match values.as_slice() {
            [(_, value)] => Ok((*value, query)),
            _ => Err(Failure::new(format!(
                "expected Prometheus API to return a single result for `{query}` but found {}",
                values.len()
            ))),
        }
    }

    async fn check_scraped(&self, cx: &EventContext) -> Outcome {
        let (value, query) = self.total(false, cx).await?;
        if value == 0.0 {
            return Err(Failure::new(format!(
                "Envoy is not reporting any traffic to Prometheus for metric 'main_request_total' ({query})"
            ))
            .hint(format!(
                "Send traffic to your application on port {PROXY_PORT}, e.g. `kubectl port-forward --namespace={} deployment/{} {PROXY_PORT}` and a load generator",
                self.settings.namespace,
                self.settings.workload()
            )));
        }
        Ok(format!("main_request_total={value}"))
    }

    async fn check_proxied(&self, api: &Client, cx: &EventContext) -> Outcome {
        let service = self.service(api, cx).await?;
        let port = sidecar::service_port(&service, self.port().as_ref())?;
        if port.target_port == Some(IntOrString::Int(PROXY_PORT)) {
            return Ok(format!("Service port {} targets Envoy", port.port));
        }
        let deployment = self.deployment(api, cx).await?;
        let s = &self.settings;
        let mut plan = sidecar::plan_inject(
            &deployment,
            Some(&service),
            self.port().as_ref(),
            &s.envoy_sidecar_image,
        )?;
        // The sidecar is there (a required check said so): only the Service changes.
        plan.deployment = None;
        let patch = plan
            .service
            .as_ref()
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        Err(Failure::new(format!(
            "service '{}' is not routing traffic through Envoy sidecar on port {PROXY_PORT}",
            s.service
        ))
        .hint(format!(
            "Update target port via: `kubectl --namespace {} patch service {} -p '{patch}'`",
            s.namespace, s.service
        ))
        .remedy(Remedy::Sidecar(plan)))
    }

    async fn check_tuning_pod(&self, api: &Client, cx: &EventContext) -> Outcome {
        if !self.settings.create_tuning_pod {
            return Ok("skipped: create_tuning_pod is false".into());
        }
        // Describing the canary creates the tuning Pod when it is missing, as ServoX's check does.
        self.kubernetes.describe(cx).await?;
        let name = pod_name(self.settings.workload());
        let ns = &self.settings.namespace;
        let pod = api
            .call(
                api.api::<Pod>(ns).get_opt(&name),
                "GET",
                &format!("pod {name} -n {ns}"),
                &cx.cancel,
            )
            .await?;
        match pod {
            Some(_) => Ok(format!("tuning pod '{name}' exists")),
            None => Err(Failure::new(format!("could not find tuning pod '{name}'"))),
        }
    }

    async fn check_traffic(&self, cx: &EventContext) -> Outcome {
        let mut summaries = Vec::new();
        let roles: &[bool] = if self.settings.create_tuning_pod {
            &[false, true]
        } else {
            &[false]
        };
        for &tuning in roles {
            let name = if tuning {
                "tuning_request_total"
            } else {
                "main_request_total"
            };
            let (value, query) = self.total(tuning, cx).await?;
            if value <= 0.0 {
                return Err(Failure::new(format!(
                    "Envoy is reporting a value of {value} which is not greater than zero for metric '{name}' ({query})"
                )));
            }
            summaries.push(format!("{name}={value}"));
        }
        Ok(summaries.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::labelize;

    #[test]
    fn optimizer_ids_become_label_values_as_servox_makes_them() {
        assert_eq!(labelize("example.com/app"), "example.com_app");
        assert_eq!(labelize("-a b-"), "0--a-b--1");
        assert_eq!(labelize(&"x".repeat(70)).len(), 63);
    }
}
