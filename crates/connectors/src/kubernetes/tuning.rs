//! The `canary` strategy, as ServoX's `CanaryOptimization`: a standalone **tuning Pod**
//! `<deployment>-tuning`, built from the Deployment's current pod template (labels plus
//! `opsani_role: tuning`, annotation `opsani.com/opsani_tuning_for: <tuning component>`, the
//! container's `static_environment_variables`), is adjusted instead of the Deployment, which is
//! never written. Each adjustment deletes the tuning Pod and creates it again with the new
//! resources and env, then waits (a watch on the Pod) until it is ready within `timeout` and
//! stays so for `settlement`.
//!
//! Components, as ServoX names them: the main one (`alias` or `<deployment>/<container>`, every
//! setting pinned, replicas 0..99999 read from the Deployment) and the tuning one (the strategy's
//! `alias` or `<deployment>/<container>-tuning`, replicas 0..1 pinned).

use super::adjust::{Wanted, wanted};
use super::client::Client;
use super::rollout;
use super::settings::{ContainerSettings, FailureMode, Requirement, tuning_name};
use super::{
    Kubernetes, Target, Unhealthy, component_name, container_names, container_settings,
    find_container, pause,
};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher::{self, Event, watcher};
use servo_core::ConnectorError;
use servo_core::types::{Adjustment, Component, Setting};
use servo_core::units::Duration;
use std::collections::BTreeMap;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// The label ServoX puts on tuning Pods.
pub const ROLE_LABEL: &str = "opsani_role";
/// The annotation naming the component a tuning Pod tunes.
pub const TUNING_FOR: &str = "opsani.com/opsani_tuning_for";

/// The tuning Pod's name, as ServoX names it.
pub fn pod_name(deployment: &str) -> String {
    format!("{deployment}-tuning")
}

fn missing_container(target: &Target<'_>, deployment: &Deployment) -> ConnectorError {
    let d = target.config;
    ConnectorError::failed(format!(
        "deployment {} -n {} has no container `{}` (it has: {})",
        d.name,
        target.namespace,
        d.containers.first().map_or("", |c| c.name.as_str()),
        container_names(deployment)
    ))
    .with_hint("fix `containers[].name` in servo's config")
}

/// The tuning Pod for `deployment`'s current template, its container given `resources` and the
/// env values of `env`, plus the static variables.
fn build_pod(
    target: &Target<'_>,
    c: &ContainerSettings,
    deployment: &Deployment,
    resources: Option<ResourceRequirements>,
    env: &[(String, String)],
) -> Result<Pod, ConnectorError> {
    let d = target.config;
    let template = deployment
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut metadata = template.metadata.unwrap_or_default();
    metadata.name = Some(pod_name(&d.name));
    metadata.namespace = Some(target.namespace.to_string());
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(ROLE_LABEL.into(), "tuning".into());
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(TUNING_FOR.into(), tuning_name(d, c));
    let mut spec = template.spec.unwrap_or_default();
    let container: &mut Container = spec
        .containers
        .iter_mut()
        .find(|x| x.name == c.name)
        .ok_or_else(|| missing_container(target, deployment))?;
    if let Some(resources) = resources {
        container.resources = Some(resources);
    }
    let vars = container.env.get_or_insert_with(Vec::new);
    let statics = c.static_environment_variables.clone().unwrap_or_default();
    let fixed = statics.iter().map(|(k, v)| (k.clone(), v.clone()));
    for (name, value) in fixed.chain(env.iter().cloned()) {
        vars.retain(|v| v.name != name);
        vars.push(EnvVar {
            name,
            value: Some(value),
            ..EnvVar::default()
        });
    }
    Ok(Pod {
        metadata,
        spec: Some(spec),
        status: None,
    })
}

/// The first tuning Pod's resources, as ServoX sets them: the Deployment container's, each
/// `request`/`limit` the settings give replacing or filling in its own.
fn first_resources(c: &ContainerSettings, deployment: &Deployment) -> ResourceRequirements {
    let mut resources = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.iter().find(|x| x.name == c.name))
        .and_then(|x| x.resources.clone())
        .unwrap_or_default();
    let given = [
        (
            "cpu",
            Requirement::Request,
            c.cpu.request.map(|q| q.to_string()),
        ),
        (
            "cpu",
            Requirement::Limit,
            c.cpu.limit.map(|q| q.to_string()),
        ),
        (
            "memory",
            Requirement::Request,
            c.memory.request.map(|q| q.to_string()),
        ),
        (
            "memory",
            Requirement::Limit,
            c.memory.limit.map(|q| q.to_string()),
        ),
    ];
    for (resource, requirement, quantity) in given {
        let Some(quantity) = quantity else { continue };
        let map = match requirement {
            Requirement::Request => &mut resources.requests,
            Requirement::Limit => &mut resources.limits,
        };
        map.get_or_insert_with(BTreeMap::new)
            .insert(resource.into(), Quantity(quantity));
    }
    resources
}

/// The controller among an object's owners.
fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// servo's own Deployment as an owner, and its namespace, when servo runs in the cluster
/// (`POD_NAME` and `POD_NAMESPACE`, as servo's manifests set them): found by following controllers
/// from servo's Pod through its ReplicaSet. Outside a cluster, `None`; a read that fails (no
/// permission to read ReplicaSets) is logged and the tuning Pods are left without an owner.
async fn servo_owner(api: &Client, cancel: &CancellationToken) -> Option<(String, OwnerReference)> {
    let pod_name = std::env::var("POD_NAME").ok()?;
    let namespace = std::env::var("POD_NAMESPACE").ok()?;
    let found = async {
        let what = format!("pod {pod_name} -n {namespace}");
        let pod: Pod = api
            .call(
                api.api::<Pod>(&namespace).get(&pod_name),
                "GET",
                &what,
                cancel,
            )
            .await?;
        let mut owner = controller_of(&pod.metadata).cloned();
        if let Some(rs) = owner.as_ref().filter(|o| o.kind == "ReplicaSet") {
            let what = format!("replicaset {} -n {namespace}", rs.name);
            let rs: ReplicaSet = api
                .call(
                    api.api::<ReplicaSet>(&namespace).get(&rs.name),
                    "GET",
                    &what,
                    cancel,
                )
                .await?;
            owner = controller_of(&rs.metadata).cloned();
        }
        let Some(owner) = owner.filter(|o| o.kind == "Deployment") else {
            return Ok(None);
        };
        let deployment = api.deployment(&namespace, &owner.name, cancel).await?;
        Ok::<_, ConnectorError>(deployment.metadata.uid.map(|uid| OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: owner.name,
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        }))
    };
    match found.await {
        Ok(Some(owner)) => {
            tracing::info!(deployment = %owner.name, %namespace, "tuning pods here are owned by servo's deployment");
            Some((namespace, owner))
        }
        Ok(None) => {
            tracing::info!(pod = %pod_name, %namespace, "servo's pod has no deployment: tuning pods are left without an owner");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot find servo's deployment: tuning pods are left without an owner");
            None
        }
    }
}

/// Whether the pod's `Ready` condition is true.
fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Kubernetes {
    /// The tuning Pod, created from the Deployment's template when missing (ServoX creates it
    /// when the connector starts).
    async fn tuning_pod(
        &self,
        api: &Client,
        target: &Target<'_>,
        deployment: &Deployment,
        cancel: &CancellationToken,
    ) -> Result<Pod, ConnectorError> {
        let name = pod_name(&target.config.name);
        let pods = api.api::<Pod>(target.namespace);
        let what = format!("pod {name} -n {}", target.namespace);
        if let Some(pod) = api.call(pods.get_opt(&name), "GET", &what, cancel).await? {
            return Ok(pod);
        }
        let c = self.tuning_container(target)?;
        let mut pod = build_pod(
            target,
            c,
            deployment,
            Some(first_resources(c, deployment)),
            &[],
        )?;
        self.own(api, target, &mut pod, cancel).await;
        tracing::info!(pod = %name, namespace = %target.namespace, "creating the tuning pod");
        api.call(
            pods.create(&PostParams::default(), &pod),
            "POST",
            &what,
            cancel,
        )
        .await
    }

    /// Makes servo's own Deployment the tuning Pod's controller when servo runs in the cluster
    /// and in the Pod's namespace (an owner in another namespace would get the Pod
    /// garbage-collected), as ServoX does: deleting servo then deletes its tuning Pods, and no other
    /// controller adopts them.
    async fn own(
        &self,
        api: &Client,
        target: &Target<'_>,
        pod: &mut Pod,
        cancel: &CancellationToken,
    ) {
        let owner = self.owner.get_or_init(|| servo_owner(api, cancel)).await;
        if let Some((namespace, owner)) = owner
            && namespace == target.namespace
        {
            pod.metadata.owner_references = Some(vec![owner.clone()]);
        }
    }

    fn tuning_container<'a>(
        &self,
        target: &Target<'a>,
    ) -> Result<&'a ContainerSettings, ConnectorError> {
        target.config.containers.first().ok_or_else(|| {
            ConnectorError::failed(format!(
                "deployment {} has no container to tune",
                target.config.name
            ))
        })
    }

    /// The main and tuning components of a canary deployment.
    pub(super) async fn canary_components(
        &self,
        api: &Client,
        target: &Target<'_>,
        cancel: &CancellationToken,
    ) -> Result<Vec<Component>, ConnectorError> {
        let d = target.config;
        let c = self.tuning_container(target)?;
        let deployment = api.deployment(target.namespace, &d.name, cancel).await?;
        let main = find_container(&deployment, &c.name)
            .ok_or_else(|| missing_container(target, &deployment))?;
        let mut main_settings: Vec<Setting> = container_settings(c, main)
            .into_iter()
            .map(|s| s.pinned(true))
            .collect();
        main_settings.insert(
            2,
            Setting::replicas("replicas", 0, 99999, 1)
                .pinned(true)
                .with_value(rollout::desired_replicas(&deployment)),
        );
        let pod = self.tuning_pod(api, target, &deployment, cancel).await?;
        let tuning = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|x| x.name == c.name))
            .ok_or_else(|| missing_container(target, &deployment))?;
        let mut tuning_settings = container_settings(c, tuning);
        tuning_settings.insert(
            2,
            Setting::replicas("replicas", 0, 1, 1)
                .pinned(true)
                .with_value(1),
        );
        Ok(vec![
            Component::new(component_name(d, c), main_settings),
            Component::new(tuning_name(d, c), tuning_settings),
        ])
    }

    /// Applies the adjustments of a canary deployment's tuning component: a new tuning Pod.
    pub(super) async fn adjust_canary(
        &self,
        api: &Client,
        target: &Target<'_>,
        adjustments: &[Adjustment],
        settlement: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), ConnectorError> {
        let d = target.config;
        let c = self.tuning_container(target)?;
        let main = component_name(d, c);
        let tuning = tuning_name(d, c);
        if let Some(a) = adjustments.iter().find(|a| a.component == main) {
            return Err(ConnectorError::invalid(format!(
                "{a}: `{main}` is the Deployment itself, which the canary strategy never changes; adjust `{tuning}`"
            )));
        }
        let mine: Vec<&Adjustment> = adjustments
            .iter()
            .filter(|a| a.component == tuning)
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let deployment = api.deployment(target.namespace, &d.name, cancel).await?;
        let current = self.tuning_pod(api, target, &deployment, cancel).await?;
        let mut resources = current
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|x| x.name == c.name))
            .and_then(|x| x.resources.clone())
            .unwrap_or_default();
        let mut env = Vec::new();
        for a in mine {
            let (quantity, resource, set) = match wanted(a, c, &tuning)? {
                Wanted::Resource {
                    resource,
                    quantity,
                    set,
                } => (quantity, resource, set),
                Wanted::Replicas(_) => {
                    return Err(ConnectorError::invalid(format!(
                        "{a}: a tuning Pod is one replica (the setting is pinned)"
                    )));
                }
                Wanted::Env { variable, value } => {
                    env.push((variable, value));
                    continue;
                }
            };
            for r in set {
                let map = match r {
                    Requirement::Request => &mut resources.requests,
                    Requirement::Limit => &mut resources.limits,
                };
                map.get_or_insert_with(BTreeMap::new)
                    .insert(resource.to_string(), Quantity(quantity.clone()));
            }
        }
        // The env of the previous tuning Pod carries over, then this adjustment's values.
        let mut carried: Vec<(String, String)> = current
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|x| x.name == c.name))
            .and_then(|x| x.env.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|v| c.env.iter().any(|e| e.variable() == v.name))
            .filter_map(|v| Some((v.name, v.value?)))
            .collect();
        carried.retain(|(name, _)| !env.iter().any(|(n, _)| n == name));
        carried.extend(env);
        let mut pod = build_pod(target, c, &deployment, Some(resources), &carried)?;
        self.own(api, target, &mut pod, cancel).await;
        self.delete_tuning_pod(api, target, cancel).await?;
        let name = pod_name(&d.name);
        tracing::info!(pod = %name, namespace = %target.namespace, "creating the tuning pod");
        api.call(
            api.api::<Pod>(target.namespace)
                .create(&PostParams::default(), &pod),
            "POST",
            &format!("pod {name} -n {}", target.namespace),
            cancel,
        )
        .await?;
        let reason = match self.watch_pod(api, target, settlement, cancel).await {
            Ok(()) => return Ok(()),
            Err(Unhealthy::Reason(reason)) => reason,
            Err(Unhealthy::Error(e)) => return Err(e),
        };
        tracing::error!(pod = %name, %reason, on_failure = ?target.on_failure, "tuning pod failed");
        let what = format!("tuning pod {name} -n {}: {reason}", target.namespace);
        let unstable = |message: String| ConnectorError::Rejected {
            reason: "unstable".into(),
            message,
        };
        match target.on_failure {
            FailureMode::Ignore => Ok(()),
            FailureMode::Exception => Err(unstable(format!(
                "{what} (left as is: on_failure is exception)"
            ))),
            FailureMode::Rollback | FailureMode::Shutdown | FailureMode::Destroy => {
                self.delete_tuning_pod(api, target, cancel).await?;
                Err(unstable(format!(
                    "{what}; the tuning Pod was deleted (the Deployment was not changed)"
                )))
            }
        }
    }

    /// Deletes the tuning Pod, if any, and waits until it is gone.
    pub(super) async fn delete_tuning_pod(
        &self,
        api: &Client,
        target: &Target<'_>,
        cancel: &CancellationToken,
    ) -> Result<(), ConnectorError> {
        let name = pod_name(&target.config.name);
        let pods = api.api::<Pod>(target.namespace);
        let what = format!("pod {name} -n {}", target.namespace);
        let Some(pod) = api.call(pods.get_opt(&name), "GET", &what, cancel).await? else {
            return Ok(());
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        tracing::info!(pod = %name, namespace = %target.namespace, "deleting the tuning pod");
        match cancel
            .run_until_cancelled(pods.delete(&name, &DeleteParams::default()))
            .await
            .ok_or(ConnectorError::Cancelled)?
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(api.error(e, "DELETE", &what)),
        }
        let gone = await_condition(pods, &name, conditions::is_deleted(&uid));
        let waited = cancel
            .run_until_cancelled(tokio::time::timeout(target.timeout.as_std(), gone))
            .await
            .ok_or(ConnectorError::Cancelled)?;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ConnectorError::failed(format!(
                "waiting for {what} to be deleted: {e}"
            ))),
            Err(_) => Err(ConnectorError::failed(format!(
                "{what} was not deleted within {}",
                target.timeout
            ))),
        }
    }

    /// Watches the tuning Pod until ready (within `timeout`) and ready for `settlement`.
    async fn watch_pod(
        &self,
        api: &Client,
        target: &Target<'_>,
        settlement: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), Unhealthy> {
        let name = pod_name(&target.config.name);
        let deadline = Instant::now() + target.timeout.as_std();
        let mut events = watcher(
            api.api::<Pod>(target.namespace),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .boxed();
        let mut pod: Option<Pod> = None;
        let mut ready_at: Option<Instant> = None;
        let mut errors = 0;
        loop {
            let wake = ready_at.map_or(deadline, |at| at + settlement.as_std());
            let event = tokio::select! {
                event = events.next() => event,
                () = tokio::time::sleep_until(wake.into()) => {
                    if ready_at.is_some() {
                        return Ok(());
                    }
                    let phase = pod
                        .as_ref()
                        .and_then(|p| p.status.as_ref())
                        .and_then(|s| s.phase.clone())
                        .unwrap_or_else(|| "not created".into());
                    return Err(Unhealthy::Reason(format!(
                        "the tuning pod was not ready within {} (phase {phase})",
                        target.timeout
                    )));
                }
                () = cancel.cancelled() => return Err(ConnectorError::Cancelled.into()),
            };
            match event {
                Some(Ok(Event::Apply(p) | Event::InitApply(p))) => {
                    errors = 0;
                    pod = Some(p);
                }
                Some(Ok(Event::Delete(_))) => {
                    return Err(Unhealthy::Reason("the tuning pod was deleted".into()));
                }
                Some(Ok(Event::Init | Event::InitDone)) => continue,
                Some(Err(e)) => {
                    errors += 1;
                    if errors >= super::MAX_READ_ERRORS {
                        return Err(Unhealthy::Reason(format!(
                            "the tuning pod could not be read {errors} times in a row: {e}"
                        )));
                    }
                    pause(cancel).await?;
                    continue;
                }
                None => {
                    return Err(Unhealthy::Reason(
                        "the watch of the tuning pod ended".into(),
                    ));
                }
            }
            let Some(p) = &pod else { continue };
            if let Some(reason) = rollout::pod_failure(p) {
                return Err(Unhealthy::Reason(reason));
            }
            match (ready(p), ready_at) {
                (true, None) => {
                    if settlement == Duration::ZERO {
                        return Ok(());
                    }
                    ready_at = Some(Instant::now());
                }
                (false, Some(_)) => {
                    return Err(Unhealthy::Reason(format!(
                        "the tuning pod became unready during the {settlement} settlement"
                    )));
                }
                _ => {}
            }
        }
    }
}
