//! Adjusting: the patch for each deployment, applying it, and watching the rollout until it is
//! healthy or rolled back.

use super::client::{Client, WorkloadKind, as_deployment};
use super::rollout::{self, State};
use super::settings::{ContainerSettings, FailureMode, Requirement};
use super::{Kubernetes, MAX_READ_ERRORS, Target, Unhealthy, component_name, pause};
use futures_util::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event, watcher};
use serde_json::{Value, json};
use servo_core::ConnectorError;
use servo_core::types::Adjustment;
use servo_core::units::{Cpu, Duration, Memory};
use std::collections::BTreeMap;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long the rollback after a cancelled adjustment may take.
const RESTORE_AFTER_CANCEL: std::time::Duration = std::time::Duration::from_secs(30);

/// A StatefulSet's watch event, its object seen as a Deployment.
fn seen_as_deployment(e: Event<StatefulSet>) -> Event<Deployment> {
    match e {
        Event::Apply(s) => Event::Apply(as_deployment(s)),
        Event::InitApply(s) => Event::InitApply(as_deployment(s)),
        Event::Delete(s) => Event::Delete(as_deployment(s)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// One event of either watch.
enum Seen {
    Deployment(Box<Event<Deployment>>),
    Pod(Box<Event<Pod>>),
}

impl Seen {
    /// `Init` comes before the listing it announces: it proves nothing was read.
    fn is_init(&self) -> bool {
        match self {
            Seen::Deployment(e) => matches!(**e, Event::Init),
            Seen::Pod(e) => matches!(**e, Event::Init),
        }
    }
}

/// What the watches have shown of a rollout so far.
struct Rollout {
    deployment: Option<Deployment>,
    pods: BTreeMap<String, Pod>,
    /// The pods of a (re)listing in progress: they replace `pods` when it is done.
    listing: Option<BTreeMap<String, Pod>>,
    pods_known: bool,
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

impl Rollout {
    fn apply(&mut self, seen: Seen) {
        match seen {
            Seen::Deployment(e) => match *e {
                Event::Apply(d) | Event::InitApply(d) => self.deployment = Some(d),
                Event::Delete(_) => self.deployment = None,
                Event::Init | Event::InitDone => {}
            },
            Seen::Pod(e) => match *e {
                Event::Init => self.listing = Some(BTreeMap::new()),
                Event::InitApply(p) => {
                    self.listing
                        .get_or_insert_with(BTreeMap::new)
                        .insert(pod_name(&p), p);
                }
                Event::InitDone => {
                    self.pods = self.listing.take().unwrap_or_default();
                    self.pods_known = true;
                }
                Event::Apply(p) => {
                    self.pods.insert(pod_name(&p), p);
                }
                Event::Delete(p) => {
                    self.pods.remove(&pod_name(&p));
                }
            },
        }
    }

    /// The rollout's state, once the Deployment and its pods have been seen.
    fn state(&self) -> Option<State> {
        let deployment = self.deployment.as_ref()?;
        self.pods_known
            .then(|| rollout::state(deployment, self.pods.values()))
    }
}

/// What one adjustment of a container's component asks for: read here once, for the rollout and
/// the tuning-pod strategies alike.
pub(super) enum Wanted<'a> {
    /// A quantity of `resource` (`cpu` or `memory`) for the requirements in `set`.
    Resource {
        resource: &'static str,
        quantity: String,
        set: &'a [Requirement],
    },
    Replicas(u64),
    /// An environment variable and its text.
    Env {
        variable: String,
        value: String,
    },
}

/// Reads adjustment `a` of container `c` (component `component`): cpu in cores, memory in GiB,
/// replicas a whole number, or one of its env settings.
pub(super) fn wanted<'a>(
    a: &Adjustment,
    c: &'a ContainerSettings,
    component: &str,
) -> Result<Wanted<'a>, ConnectorError> {
    let number = || {
        a.value
            .as_f64()
            .filter(|n| n.is_finite())
            .ok_or_else(|| ConnectorError::invalid(format!("{a}: expected a number")))
    };
    let invalid = |e: servo_core::units::UnitError| ConnectorError::invalid(format!("{a}: {e}"));
    Ok(match a.setting.as_str() {
        "cpu" => Wanted::Resource {
            resource: "cpu",
            quantity: Cpu::from_cores(number()?).map_err(invalid)?.to_string(),
            set: &c.cpu.set,
        },
        "mem" | "memory" => Wanted::Resource {
            resource: "memory",
            quantity: Memory::from_gib(number()?).map_err(invalid)?.to_string(),
            set: &c.memory.set,
        },
        "replicas" => {
            let n = number()?;
            if n.fract() != 0.0 || n < 0.0 || n > f64::from(u32::MAX) {
                return Err(ConnectorError::invalid(format!(
                    "{a}: replicas must be a whole number ≥ 0"
                )));
            }
            Wanted::Replicas(n as u64)
        }
        other => {
            let Some(e) = c.env.iter().find(|e| e.name == other) else {
                return Err(ConnectorError::invalid(format!(
                    "component `{component}` has no setting `{other}`"
                )));
            };
            Wanted::Env {
                variable: e.variable().to_string(),
                value: e.text(&a.value),
            }
        }
    })
}

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
                let (quantity, resource, set) = match wanted(a, c, &name)? {
                    Wanted::Resource {
                        resource,
                        quantity,
                        set,
                    } => (quantity, resource, set),
                    // Replicas belong to the workload: its first container's component has them.
                    Wanted::Replicas(n) if i == 0 => {
                        replicas = Some(n);
                        continue;
                    }
                    Wanted::Replicas(_) => {
                        return Err(ConnectorError::invalid(format!(
                            "component `{name}` has no setting `replicas`"
                        )));
                    }
                    Wanted::Env { variable, value } => {
                        env.push(json!({"name": variable, "value": value}));
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

    /// Watches the Deployment (and, with `pods`, its Pods) until the rollout is settled (within
    /// `timeout`), then holds it healthy for `settlement`. With `pods` false only the Deployment's
    /// status counts (used after a rollback, when pods of the failed template may linger).
    pub(super) async fn watch(
        &self,
        api: &Client,
        target: &Target<'_>,
        settlement: Duration,
        pods: bool,
        cancel: &CancellationToken,
    ) -> Result<(), Unhealthy> {
        let name = &target.config.name;
        let ns = target.namespace;
        let started = Instant::now();
        let deadline = started + target.timeout.as_std();
        let selector = match pods {
            true => rollout::selector(&api.workload(target.kind, ns, name, cancel).await?),
            false => None,
        };
        let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let deployments = match target.kind {
            WorkloadKind::Deployment => watcher(api.api::<Deployment>(ns), by_name)
                .map(|e| e.map(|e| Seen::Deployment(Box::new(e))).map_err(|e| (0, e)))
                .boxed(),
            WorkloadKind::StatefulSet => watcher(api.api::<StatefulSet>(ns), by_name)
                .map(|e| {
                    e.map(|e| Seen::Deployment(Box::new(seen_as_deployment(e))))
                        .map_err(|e| (0, e))
                })
                .boxed(),
        };
        let pod_events = match &selector {
            Some(selector) => watcher(
                api.api::<Pod>(ns),
                watcher::Config::default().labels(selector),
            )
            .map(|e| e.map(|e| Seen::Pod(Box::new(e))).map_err(|e| (1, e)))
            .boxed(),
            None => stream::empty().boxed(),
        };
        let mut events = stream::select(deployments, pod_events);
        let mut rollout = Rollout {
            deployment: None,
            pods: BTreeMap::new(),
            listing: None,
            pods_known: selector.is_none(),
        };
        let mut settled_at: Option<Instant> = None;
        // Consecutive errors of the Deployment's watch and of the Pods'.
        let mut read_errors = [0u32; 2];
        loop {
            let wake = settled_at.map_or(deadline, |at| at + settlement.as_std());
            let event = tokio::select! {
                event = events.next() => event,
                () = tokio::time::sleep_until(wake.into()) => {
                    if settled_at.is_some() {
                        return Ok(());
                    }
                    let what = match rollout.state() {
                        Some(State::Progressing(what) | State::Failed(what)) => what,
                        Some(State::Settled) | None => "its state could not be read".to_string(),
                    };
                    return Err(Unhealthy::Reason(format!(
                        "the rollout did not finish within {}: {what}",
                        target.timeout
                    )));
                }
                () = cancel.cancelled() => return Err(ConnectorError::Cancelled.into()),
            };
            match event {
                Some(Ok(seen)) => {
                    if !seen.is_init() {
                        read_errors[usize::from(matches!(seen, Seen::Pod(_)))] = 0;
                    }
                    rollout.apply(seen);
                }
                // A blip must not abandon a half-done rollout (the watcher lists again on the
                // next poll); a lasting error ends the watch as a failure, so `on_failure` still
                // restores the Deployment.
                Some(Err((which, e))) => {
                    let errors = &mut read_errors[which];
                    *errors += 1;
                    tracing::warn!(deployment = %name, error = %e, attempt = *errors, "cannot watch the rollout");
                    if *errors >= MAX_READ_ERRORS {
                        return Err(Unhealthy::Reason(format!(
                            "the rollout's state could not be read {errors} times in a row: {e}"
                        )));
                    }
                    pause(cancel).await?;
                    continue;
                }
                None => {
                    return Err(Unhealthy::Reason(
                        "the watch of the rollout ended".to_string(),
                    ));
                }
            }
            match (rollout.state(), settled_at) {
                (None, _) => {}
                (Some(State::Failed(reason)), _) => return Err(Unhealthy::Reason(reason)),
                (Some(State::Settled), None) => {
                    tracing::info!(deployment = %name, elapsed = ?started.elapsed(), "rollout settled");
                    if settlement == Duration::ZERO {
                        return Ok(());
                    }
                    settled_at = Some(Instant::now());
                }
                (Some(State::Settled), Some(_)) => {}
                (Some(State::Progressing(what)), Some(_)) => {
                    return Err(Unhealthy::Reason(format!(
                        "became unhealthy during the {settlement} settlement: {what}"
                    )));
                }
                (Some(State::Progressing(_)), None) => {}
            }
        }
    }

    /// Applies one deployment's patch and sees it through, handling failure per `on_failure`.
    pub(super) async fn adjust_one(
        &self,
        api: &Client,
        target: &Target<'_>,
        patch: &Value,
        settlement: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), ConnectorError> {
        let name = &target.config.name;
        let ns = target.namespace;
        let kind = target.kind;
        let noun = kind.noun();
        let before = api.workload(kind, ns, name, cancel).await?;
        if before.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            // A paused Deployment never rolls out: the adjustment would only time out.
            return Err(ConnectorError::failed(format!(
                "{noun} {name} -n {ns} is paused: an adjustment would never roll out"
            ))
            .with_hint(format!(
                "resume it with `kubectl rollout resume deployment/{name} -n {ns}`"
            )));
        }
        // The pod template and replica count the adjustment started from.
        let previous = before.spec.clone().unwrap_or_default();
        // What a rollback after cancellation runs under, since the adjustment's own token has
        // fired by then.
        let quick = CancellationToken::new();
        let restore = |cancel| {
            api.restore_workload(
                kind,
                ns,
                name,
                &previous.template,
                previous.replicas,
                cancel,
            )
        };
        // Best effort, bounded in time: do not leave a half-tried template behind because the
        // user pressed Ctrl-C.
        let restore_after_cancel = || async {
            if target.on_failure != FailureMode::Rollback {
                return;
            }
            match tokio::time::timeout(RESTORE_AFTER_CANCEL, restore(&quick)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(workload = %name, error = %e, "could not roll back after cancellation");
                }
                Err(_) => {
                    tracing::error!(workload = %name, "rolling back after cancellation timed out");
                }
            }
        };
        // A write cancelled in flight may or may not have reached the API server: the PATCH may
        // have been applied, the restoring PUT lost. Either way the previous template is put
        // back (again), which is harmless if it is there already.
        let or_restore = |written: Result<(), ConnectorError>| async {
            if matches!(written, Err(ConnectorError::Cancelled)) {
                restore_after_cancel().await;
            }
            written
        };
        tracing::info!(workload = %name, namespace = %ns, %patch, "patching");
        or_restore(api.patch_workload(kind, ns, name, patch, cancel).await).await?;
        let reason = match self.watch(api, target, settlement, true, cancel).await {
            Ok(()) => return Ok(()),
            Err(Unhealthy::Reason(reason)) => reason,
            Err(Unhealthy::Error(ConnectorError::Cancelled)) => {
                restore_after_cancel().await;
                return Err(ConnectorError::Cancelled);
            }
            Err(Unhealthy::Error(e)) => return Err(e),
        };
        tracing::error!(deployment = %name, %reason, on_failure = ?target.on_failure, "adjustment failed");
        let unstable = |message: String| ConnectorError::Rejected {
            reason: "unstable".into(),
            message,
        };
        let what = format!("{noun} {name} -n {ns}: {reason}");
        match target.on_failure {
            FailureMode::Ignore => {
                tracing::warn!(deployment = %name, "ignoring the failed adjustment (on_failure: ignore)");
                Ok(())
            }
            FailureMode::Exception => Err(unstable(format!(
                "{what} (left as is: on_failure is exception)"
            ))),
            FailureMode::Shutdown | FailureMode::Destroy => {
                api.patch_workload(kind, ns, name, &json!({"spec": {"replicas": 0}}), cancel)
                    .await?;
                Err(unstable(format!(
                    "{what}; scaled to 0 replicas (on_failure: shutdown)"
                )))
            }
            FailureMode::Rollback => {
                or_restore(restore(cancel).await).await?;
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
