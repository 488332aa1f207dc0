//! The Envoy sidecar ServoX's `opsani_dev` measures through, in one place for the remedy of
//! opsani_dev's check and for `servo inject-sidecar` / `servo eject-sidecar`.
//!
//! Injecting appends ServoX's `opsani-envoy` container (its image, resources, ports and
//! `OPSANI_ENVOY_*` environment) to a Deployment's pod template, proxying port 9980 to the
//! container port behind the Service's target port, and points that Service port's `targetPort`
//! at 9980. Both are strategic-merge patches (the Service's `ports` merge by `port`, as the API
//! server merges them). What the Service pointed at before is kept in the sidecar's environment
//! (`OPSANI_ENVOY_SERVICE*`), so ejecting removes the container and puts the Service's
//! `targetPort` back as it was, a name staying a name: inject then eject leaves both objects as
//! they were. Either is a no-op when already done.

use super::client::Client;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use servo_core::ConnectorError;
use tokio_util::sync::CancellationToken;

/// The sidecar container's name (ServoX's).
pub const NAME: &str = "opsani-envoy";
/// The port Envoy accepts the Service's traffic on (ServoX's `ENVOY_SIDECAR_DEFAULT_PORT`).
pub const PROXY_PORT: i32 = 9980;
/// The port Envoy serves its metrics on (`/stats/prometheus`).
pub const METRICS_PORT: i32 = 9901;
/// ServoX's default sidecar image.
pub const DEFAULT_IMAGE: &str = "opsani/envoy-proxy:v1.24.0";
/// The sidecar's record of the Service port it took over: the Service, the port, and its target.
const SERVICE_ENV: &str = "OPSANI_ENVOY_SERVICE";
const SERVICE_PORT_ENV: &str = "OPSANI_ENVOY_SERVICE_PORT";
const TARGET_PORT_ENV: &str = "OPSANI_ENVOY_SERVICE_TARGET_PORT";

/// A port given by number or by name (`--port 8080`, `--port http`, opsani_dev's `port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    Number(i32),
    Name(String),
}

impl PortRef {
    /// A number when the text is one, else a name.
    pub fn parse(text: &str) -> PortRef {
        match text.parse() {
            Ok(n) => PortRef::Number(n),
            Err(_) => PortRef::Name(text.to_string()),
        }
    }

    fn matches(&self, port: &ServicePort) -> bool {
        match self {
            PortRef::Number(n) => port.port == *n,
            PortRef::Name(name) => port.name.as_deref() == Some(name),
        }
    }
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => f.write_str(name),
        }
    }
}

/// The changes an injection or ejection makes: each a strategic-merge patch, `None` when that
/// object is already as wanted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub deployment: Option<Value>,
    /// The Service's name and its patch.
    pub service: Option<(String, Value)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.deployment.is_none() && self.service.is_none()
    }
}

fn containers(deployment: &Deployment) -> &[Container] {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
}

/// Whether the pod template has the sidecar.
pub fn has_sidecar(deployment: &Deployment) -> bool {
    containers(deployment).iter().any(|c| c.name == NAME)
}

/// The Service port to proxy: `port` when given, else the only one.
pub fn service_port<'a>(
    service: &'a Service,
    port: Option<&PortRef>,
) -> Result<&'a ServicePort, ConnectorError> {
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let listed = || {
        ports
            .iter()
            .map(|p| match &p.name {
                Some(n) => format!("{n} ({})", p.port),
                None => p.port.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match port {
        Some(wanted) => ports.iter().find(|p| wanted.matches(p)).ok_or_else(|| {
            ConnectorError::invalid(format!(
                "Service {name} has no port `{wanted}` (it has: {})",
                listed()
            ))
            .with_hint("give a port of the Service by name or number")
        }),
        None => match ports {
            [only] => Ok(only),
            [] => Err(ConnectorError::invalid(format!(
                "Service {name} exposes no ports"
            ))),
            _ => Err(ConnectorError::invalid(format!(
                "Service {name} exposes several ports ({}): which one is proxied is ambiguous",
                listed()
            ))
            .with_hint("give the port by name or number (`--port`, opsani_dev's `port`)")),
        },
    }
}

fn int_or_string(value: &IntOrString) -> Value {
    match value {
        IntOrString::Int(n) => json!(n),
        IntOrString::String(s) => json!(s),
    }
}

/// The container port a Service target port reaches: a number as is, a name through the pod
/// template's container ports.
fn container_port(deployment: &Deployment, target: &IntOrString) -> Result<i32, ConnectorError> {
    match target {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(name) => containers(deployment)
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .ok_or_else(|| {
                ConnectorError::invalid(format!(
                    "the Service targets port `{name}`, which no container of the Deployment names"
                ))
            }),
    }
}

/// ServoX's sidecar container, proxying `PROXY_PORT` to `proxied`; `record` keeps the Service
/// port it takes over (name, port, original target) for ejection.
fn container(image: &str, proxied: i32, record: Option<(&str, i32, &IntOrString)>) -> Value {
    let mut env = vec![
        json!({"name": "OPSANI_ENVOY_PROXY_SERVICE_PORT", "value": PROXY_PORT.to_string()}),
        json!({"name": "OPSANI_ENVOY_PROXIED_CONTAINER_PORT", "value": proxied.to_string()}),
        json!({"name": "OPSANI_ENVOY_PROXY_METRICS_PORT", "value": METRICS_PORT.to_string()}),
    ];
    if let Some((service, port, target)) = record {
        let target = match target {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => s.clone(),
        };
        env.push(json!({"name": SERVICE_ENV, "value": service}));
        env.push(json!({"name": SERVICE_PORT_ENV, "value": port.to_string()}));
        env.push(json!({"name": TARGET_PORT_ENV, "value": target}));
    }
    json!({
        "name": NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {
            "requests": {"cpu": "125m", "memory": "128Mi"},
            "limits": {"cpu": "250m", "memory": "256Mi"},
        },
        "env": env,
        "ports": [
            {"name": "opsani-proxy", "containerPort": PROXY_PORT},
            {"name": "opsani-metrics", "containerPort": METRICS_PORT},
        ],
    })
}

/// What injecting the sidecar into `deployment` changes: the container (unless present) and the
/// Service port's target (unless already the proxy). Without a Service, `port` is a container
/// port of the Deployment (ServoX's `--port` alone).
pub fn plan_inject(
    deployment: &Deployment,
    service: Option<&Service>,
    port: Option<&PortRef>,
    image: &str,
) -> Result<Plan, ConnectorError> {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let mut plan = Plan::default();
    let ports: Vec<&ContainerPort> = containers(deployment)
        .iter()
        .filter(|c| c.name != NAME)
        .flat_map(|c| c.ports.iter().flatten())
        .collect();
    let Some(service) = service else {
        if has_sidecar(deployment) {
            return Ok(plan);
        }
        let proxied = match port {
            Some(PortRef::Number(n)) => ports.iter().find(|p| p.container_port == *n),
            Some(PortRef::Name(n)) => ports.iter().find(|p| p.name.as_deref() == Some(n)),
            None => None,
        }
        .ok_or_else(|| {
            ConnectorError::invalid(format!(
                "deployment {name} has no container port `{}`",
                port.map(ToString::to_string).unwrap_or_default()
            ))
            .with_hint("give --service, or --port naming a container port")
        })?;
        plan.deployment = Some(template_patch(container(
            image,
            proxied.container_port,
            None,
        )));
        return Ok(plan);
    };
    let service_name = service.metadata.name.clone().unwrap_or_default();
    let chosen = service_port(service, port)?;
    let target = chosen
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(chosen.port));
    let proxied_already = target == IntOrString::Int(PROXY_PORT);
    if !has_sidecar(deployment) {
        if ports.iter().any(|p| p.container_port == PROXY_PORT) {
            return Err(ConnectorError::invalid(format!(
                "port conflict: deployment {name} already exposes port {PROXY_PORT} through a container"
            )));
        }
        let sidecar = if proxied_already {
            // Someone pointed the Service at 9980 already: nothing to record or restore.
            container(image, PROXY_PORT, None)
        } else {
            let proxied = container_port(deployment, &target)?;
            container(image, proxied, Some((&service_name, chosen.port, &target)))
        };
        plan.deployment = Some(template_patch(sidecar));
    }
    if !proxied_already {
        plan.service = Some((
            service_name,
            json!({"spec": {"ports": [{"port": chosen.port, "targetPort": PROXY_PORT}]}}),
        ));
    }
    Ok(plan)
}

fn template_patch(container: Value) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [container]}}}})
}

/// What ejecting the sidecar changes: the container goes, and the Service port it recorded gets
/// its target back. Empty when there is no sidecar.
pub fn plan_eject(deployment: &Deployment) -> Plan {
    let Some(sidecar) = containers(deployment).iter().find(|c| c.name == NAME) else {
        return Plan::default();
    };
    let env = |name: &str| {
        sidecar
            .env
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .and_then(|v| v.value.clone())
    };
    let service = match (
        env(SERVICE_ENV),
        env(SERVICE_PORT_ENV),
        env(TARGET_PORT_ENV),
    ) {
        (Some(service), Some(port), Some(target)) => port.parse::<i32>().ok().map(|port| {
            let target = match target.parse::<i32>() {
                Ok(n) => IntOrString::Int(n),
                Err(_) => IntOrString::String(target),
            };
            let patch = json!({"spec": {"ports": [
                {"port": port, "targetPort": int_or_string(&target)}
            ]}});
            (service, patch)
        }),
        _ => None,
    };
    Plan {
        deployment: Some(template_patch(json!({"name": NAME, "$patch": "delete"}))),
        service,
    }
}

/// Applies a plan: the Deployment first (the proxy exists before traffic is sent to it on
/// injection), then the Service.
pub async fn apply(
    api: &Client,
    namespace: &str,
    deployment: &str,
    plan: &Plan,
    cancel: &CancellationToken,
) -> Result<(), ConnectorError> {
    if let Some(patch) = &plan.deployment {
        api.patch_deployment(namespace, deployment, patch, cancel)
            .await?;
    }
    if let Some((name, patch)) = &plan.service {
        api.call(
            api.api::<Service>(namespace).patch(
                name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            ),
            "PATCH",
            &format!("service {name} -n {namespace}"),
            cancel,
        )
        .await?;
    }
    Ok(())
}

/// Reads a Service.
pub async fn service(
    api: &Client,
    namespace: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Service, ConnectorError> {
    api.call(
        api.api::<Service>(namespace).get(name),
        "GET",
        &format!("service {name} -n {namespace}"),
        cancel,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(target_port_name: bool) -> Deployment {
        let port = if target_port_name {
            json!([{"name": "http", "containerPort": 8080}])
        } else {
            json!([{"containerPort": 8080}])
        };
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "main", "ports": port}]}}}}))
        .expect("a deployment")
    }

    fn service(ports: Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"ports": ports}}))
            .expect("a service")
    }

    #[test]
    fn injection_records_a_named_target_port_and_ejection_restores_it() {
        let d = deployment(true);
        let s = service(json!([{"name": "http", "port": 80, "targetPort": "http"}]));
        let plan = plan_inject(&d, Some(&s), None, DEFAULT_IMAGE).expect("a plan");
        let patch = plan.deployment.clone().expect("a container to add");
        let sidecar = &patch["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(sidecar["env"][1]["value"], "8080", "{sidecar}");
        assert_eq!(
            plan.service,
            Some((
                "web".into(),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 9980}]}})
            ))
        );
        let mut injected = serde_json::to_value(&d).expect("json");
        injected["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(sidecar.clone());
        let injected: Deployment = serde_json::from_value(injected).expect("a deployment");
        let eject = plan_eject(&injected);
        assert_eq!(
            eject.service,
            Some((
                "web".into(),
                json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}})
            ))
        );
        assert!(
            plan_eject(&d).is_empty(),
            "nothing to eject without a sidecar"
        );
    }

    #[test]
    fn several_service_ports_need_a_choice() {
        let d = deployment(false);
        let s = service(json!([{"name": "a", "port": 80}, {"name": "b", "port": 81}]));
        let e = plan_inject(&d, Some(&s), None, DEFAULT_IMAGE).expect_err("ambiguous");
        assert!(e.to_string().contains("a (80), b (81)"), "{e}");
        let plan =
            plan_inject(&d, Some(&s), Some(&PortRef::parse("b")), DEFAULT_IMAGE).expect("a plan");
        // No targetPort means the port itself.
        let (_, patch) = plan.service.expect("a service patch");
        assert_eq!(patch["spec"]["ports"][0]["port"], 81);
    }
}
