//! Adjusting: the patch for each deployment, applying it, and watching the rollout until it is
//! healthy or rolled back.

use super::client::{Api, JSON_PATCH, STRATEGIC_MERGE_PATCH};
use super::rollout::{self, State};
use super::settings::{FailureMode, Requirement};
use super::{Kubernetes, MAX_READ_ERRORS, Target, Unhealthy, component_name, pause};
use serde_json::{Value, json};
use servo_core::ConnectorError;
use servo_core::types::Adjustment;
use servo_core::units::{Cpu, Duration, Memory};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

impl Kubernetes {
    /// The strategic-merge patch for one deployment's adjustments, or `None` when none address it.
    pub(super) fn patch_for(
        &self,
        target: &Target<'_>,
        adjustments: &[Adjustment],
    ) -> Result<Option<Value>, ConnectorError> {
        let d = target.config;
        let mut containers = Vec::new();
        let mut replicas = None;
        for (i, c) in d.containers.iter().enumerate() {
            let name = component_name(d, c);
            let mut requests = serde_json::Map::new();
            let mut limits = serde_json::Map::new();
            let mut env = Vec::new();
            for a in adjustments.iter().filter(|a| a.component == name) {
                let number = || {
                    a.value
                        .as_f64()
                        .filter(|n| n.is_finite())
                        .ok_or_else(|| ConnectorError::invalid(format!("{a}: expected a number")))
                };
                let (quantity, resource, set) = match a.setting.as_str() {
                    "cpu" => {
                        let cpu = Cpu::from_cores(number()?)
                            .map_err(|e| ConnectorError::invalid(format!("{a}: {e}")))?;
                        (cpu.to_string(), "cpu", &c.cpu.set)
                    }
                    "mem" | "memory" => {
                        let mem = Memory::from_gib(number()?)
                            .map_err(|e| ConnectorError::invalid(format!("{a}: {e}")))?;
                        (mem.to_string(), "memory", &c.memory.set)
                    }
                    "replicas" if i == 0 => {
                        let n = number()?;
                        if n.fract() != 0.0 || n < 0.0 || n > f64::from(u32::MAX) {
                            return Err(ConnectorError::invalid(format!(
                                "{a}: replicas must be a whole number ≥ 0"
                            )));
                        }
                        replicas = Some(n as u64);
                        continue;
                    }
                    other => {
                        let Some(e) = c.env.iter().find(|e| e.name == other) else {
                            return Err(ConnectorError::invalid(format!(
                                "component `{name}` has no setting `{other}`"
                            )));
                        };
                        env.push(json!({"name": e.variable(), "value": a.value.to_string()}));
                        continue;
                    }
                };
                for r in set {
                    let map = match r {
                        Requirement::Request => &mut requests,
                        Requirement::Limit => &mut limits,
                    };
                    map.insert(resource.to_string(), Value::String(quantity.clone()));
                }
            }
            let mut patch = serde_json::Map::new();
            let mut resources = serde_json::Map::new();
            if !requests.is_empty() {
                resources.insert("requests".into(), Value::Object(requests));
            }
            if !limits.is_empty() {
                resources.insert("limits".into(), Value::Object(limits));
            }
            if !resources.is_empty() {
                patch.insert("resources".into(), Value::Object(resources));
            }
            if !env.is_empty() {
                patch.insert("env".into(), Value::Array(env));
            }
            if !patch.is_empty() {
                patch.insert("name".into(), Value::String(c.name.clone()));
                containers.push(Value::Object(patch));
            }
        }
        if containers.is_empty() && replicas.is_none() {
            return Ok(None);
        }
        let mut spec = serde_json::Map::new();
        if let Some(n) = replicas {
            spec.insert("replicas".into(), json!(n));
        }
        if !containers.is_empty() {
            spec.insert(
                "template".into(),
                json!({"spec": {"containers": containers}}),
            );
        }
        Ok(Some(json!({ "spec": spec })))
    }

    /// Polls the rollout until settled (within `timeout`), then holds it healthy for `settlement`.
    /// With `pods` false only the Deployment's status counts (used after a rollback, when pods
    /// of the failed template may linger).
    pub(super) async fn watch(
        &self,
        api: &Api,
        target: &Target<'_>,
        settlement: Duration,
        pods: bool,
        cancel: &CancellationToken,
    ) -> Result<(), Unhealthy> {
        let name = &target.config.name;
        let started = Instant::now();
        let mut settled_at: Option<Instant> = None;
        let mut read_errors = 0;
        loop {
            let read = async {
                let deployment = api.deployment(target.namespace, name, cancel).await?;
                let pod_list = match (pods, rollout::selector(&deployment)) {
                    (true, Some(selector)) => api.pods(target.namespace, &selector, cancel).await?,
                    _ => Vec::new(),
                };
                Ok::<_, ConnectorError>((deployment, pod_list))
            };
            let (deployment, pod_list) = match read.await {
                Ok(read) => {
                    read_errors = 0;
                    read
                }
                Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled.into()),
                // A blip must not abandon a half-done rollout; a lasting error ends the watch as
                // a failure, so `on_failure` still restores the Deployment.
                Err(e) => {
                    read_errors += 1;
                    tracing::warn!(deployment = %name, error = %e, attempt = read_errors, "cannot read the rollout");
                    if read_errors >= MAX_READ_ERRORS {
                        return Err(Unhealthy::Reason(format!(
                            "the rollout's state could not be read {read_errors} times in a row: {e}"
                        )));
                    }
                    pause(cancel).await?;
                    continue;
                }
            };
            match (rollout::state(&deployment, &pod_list), settled_at) {
                (State::Failed(reason), _) => return Err(Unhealthy::Reason(reason)),
                (State::Settled, None) => {
                    tracing::info!(deployment = %name, elapsed = ?started.elapsed(), "rollout settled");
                    settled_at = Some(Instant::now());
                }
                (State::Settled, Some(at)) => {
                    if at.elapsed() >= settlement.as_std() {
                        return Ok(());
                    }
                }
                (State::Progressing(what), Some(_)) => {
                    return Err(Unhealthy::Reason(format!(
                        "became unhealthy during the {settlement} settlement: {what}"
                    )));
                }
                (State::Progressing(what), None) => {
                    if started.elapsed() >= target.timeout.as_std() {
                        return Err(Unhealthy::Reason(format!(
                            "the rollout did not finish within {}: {what}",
                            target.timeout
                        )));
                    }
                }
            }
            if settled_at.is_some_and(|at| at.elapsed() >= settlement.as_std()) {
                return Ok(());
            }
            pause(cancel).await?;
        }
    }

    /// Applies one deployment's patch and sees it through, handling failure per `on_failure`.
    pub(super) async fn adjust_one(
        &self,
        api: &Api,
        target: &Target<'_>,
        patch: &Value,
        settlement: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), ConnectorError> {
        let name = &target.config.name;
        let ns = target.namespace;
        let before = api.deployment(ns, name, cancel).await?;
        if before["spec"]["paused"] == true {
            // A paused Deployment never rolls out: the adjustment would only time out.
            return Err(ConnectorError::failed(format!(
                "deployment {name} -n {ns} is paused: an adjustment would never roll out"
            ))
            .with_hint(format!(
                "resume it with `kubectl rollout resume deployment/{name} -n {ns}`"
            )));
        }
        let previous = json!([
            {"op": "replace", "path": "/spec/template", "value": before["spec"]["template"]},
            {"op": "replace", "path": "/spec/replicas", "value": rollout::desired_replicas(&before)},
        ]);
        tracing::info!(deployment = %name, namespace = %ns, %patch, "patching");
        api.patch_deployment(ns, name, STRATEGIC_MERGE_PATCH, patch, cancel)
            .await?;
        let reason = match self.watch(api, target, settlement, true, cancel).await {
            Ok(()) => return Ok(()),
            Err(Unhealthy::Reason(reason)) => reason,
            Err(Unhealthy::Error(ConnectorError::Cancelled)) => {
                if target.on_failure == FailureMode::Rollback {
                    // Best effort, bounded by the request timeout: do not leave a half-tried
                    // template behind because the user pressed Ctrl-C.
                    let quick = CancellationToken::new();
                    if let Err(e) = api
                        .patch_deployment(ns, name, JSON_PATCH, &previous, &quick)
                        .await
                    {
                        tracing::error!(deployment = %name, error = %e, "could not roll back after cancellation");
                    }
                }
                return Err(ConnectorError::Cancelled);
            }
            Err(Unhealthy::Error(e)) => return Err(e),
        };
        tracing::error!(deployment = %name, %reason, on_failure = ?target.on_failure, "adjustment failed");
        let unstable = |message: String| ConnectorError::Rejected {
            reason: "unstable".into(),
            message,
        };
        let what = format!("deployment {name} -n {ns}: {reason}");
        match target.on_failure {
            FailureMode::Ignore => {
                tracing::warn!(deployment = %name, "ignoring the failed adjustment (on_failure: ignore)");
                Ok(())
            }
            FailureMode::Exception => Err(unstable(format!(
                "{what} (left as is: on_failure is exception)"
            ))),
            FailureMode::Shutdown | FailureMode::Destroy => {
                api.patch_deployment(
                    ns,
                    name,
                    STRATEGIC_MERGE_PATCH,
                    &json!({"spec": {"replicas": 0}}),
                    cancel,
                )
                .await?;
                Err(unstable(format!(
                    "{what}; scaled to 0 replicas (on_failure: shutdown)"
                )))
            }
            FailureMode::Rollback => {
                api.patch_deployment(ns, name, JSON_PATCH, &previous, cancel)
                    .await?;
                match self.watch(api, target, Duration::ZERO, false, cancel).await {
                    Ok(()) => Err(unstable(format!(
                        "{what}; rolled back to the previous pod template"
                    ))),
                    Err(Unhealthy::Reason(again)) => Err(unstable(format!(
                        "{what}; rolled back to the previous pod template, which is not healthy either: {again}"
                    ))),
                    Err(Unhealthy::Error(e)) => Err(e),
                }
            }
        }
    }
}
