//! Reading a rollout's state from a Deployment and its Pods: pure functions over the typed objects,
//! so every rule is unit-tested without a server.
//!
//! A rollout is *settled* when the controller has seen the latest spec (`observedGeneration` ≥
//! `generation`) and every replica is updated, ready and available with no old replica left.
//! It has *failed* — and waiting longer will not help — when the Deployment reports
//! `ProgressDeadlineExceeded`, or a pod cannot be scheduled, or a container was OOM-killed, is
//! crash-looping, or cannot pull or configure its image. Anything else is *progressing*.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};

/// What one look at a Deployment (and its pods) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Settled,
    /// Not done yet; the text says what is missing (for the timeout message).
    Progressing(String),
    /// Will not get better by waiting; the text carries the Kubernetes reason (`OOMKilled`...).
    Failed(String),
}

/// The desired replica count (`spec.replicas`, 1 when absent as in Kubernetes).
pub fn desired_replicas(deployment: &Deployment) -> i64 {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .map_or(1, i64::from)
}

/// The Deployment's own view: generation observed, replica counts, the Progressing condition.
pub fn deployment_state(deployment: &Deployment) -> State {
    let status = deployment.status.clone().unwrap_or_default();
    for c in status.conditions.iter().flatten() {
        if c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            let message = c
                .message
                .as_deref()
                .unwrap_or("the rollout made no progress");
            return State::Failed(format!("ProgressDeadlineExceeded: {message}"));
        }
    }
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return State::Progressing(format!(
            "the controller has not observed generation {generation} yet (observed {observed})"
        ));
    }
    let desired = desired_replicas(deployment);
    let count = |n: Option<i32>| i64::from(n.unwrap_or(0));
    let updated = count(status.updated_replicas);
    let ready = count(status.ready_replicas);
    let available = count(status.available_replicas);
    let total = count(status.replicas);
    if updated < desired {
        return State::Progressing(format!("{updated} of {desired} replicas updated"));
    }
    if total > updated {
        return State::Progressing(format!(
            "{} old replicas are still terminating",
            total - updated
        ));
    }
    if ready < desired || available < desired {
        return State::Progressing(format!(
            "{ready} of {desired} replicas ready, {available} available"
        ));
    }
    State::Settled
}

/// Waiting reasons that mean the container will not start on its own.
const FATAL_WAITING: [&str; 6] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

fn oom_killed(t: Option<&ContainerStateTerminated>) -> bool {
    t.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
}

/// The fatal problem of one pod, if any. A pod being deleted has none: it belongs to the replica
/// set being replaced.
pub fn pod_failure(pod: &Pod) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let status = pod.status.as_ref()?;
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
        {
            let message = c.message.as_deref().unwrap_or("no node fits the pod");
            return Some(format!("pod {name} is Unschedulable: {message}"));
        }
    }
    for cs in status.container_statuses.iter().flatten() {
        let container = &cs.name;
        let restarts = cs.restart_count;
        let terminated = |s: &Option<k8s_openapi::api::core::v1::ContainerState>| {
            s.as_ref().and_then(|s| s.terminated.as_ref()).cloned()
        };
        if oom_killed(terminated(&cs.state).as_ref())
            || oom_killed(terminated(&cs.last_state).as_ref())
        {
            return Some(format!(
                "container {container} of pod {name} was OOMKilled (restarted {restarts} times): its memory limit is too low"
            ));
        }
        let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(waiting) = waiting
            && let Some(reason) = waiting.reason.as_deref()
            && FATAL_WAITING.contains(&reason)
        {
            let message = waiting.message.as_deref().unwrap_or("");
            return Some(format!(
                "container {container} of pod {name} is in {reason} (restarted {restarts} times){}{message}",
                if message.is_empty() { "" } else { ": " }
            ));
        }
    }
    None
}

/// The label selector of a Deployment's pods (`spec.selector.matchLabels`) as query text.
pub fn selector(deployment: &Deployment) -> Option<String> {
    let labels = deployment.spec.as_ref()?.selector.match_labels.as_ref()?;
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The Deployment's and its pods' state together: a pod failure wins over "progressing".
pub fn state<'a>(deployment: &Deployment, pods: impl IntoIterator<Item = &'a Pod>) -> State {
    match deployment_state(deployment) {
        State::Failed(reason) => State::Failed(reason),
        other => match pods.into_iter().find_map(pod_failure) {
            Some(reason) => State::Failed(reason),
            None => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    fn deployment(generation: i64, observed: i64, counts: [i64; 4]) -> Deployment {
        typed(deployment_json(generation, observed, counts))
    }

    fn deployment_json(generation: i64, observed: i64, counts: [i64; 4]) -> Value {
        json!({
            "metadata": {"generation": generation},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {
                "observedGeneration": observed,
                "replicas": counts[0], "updatedReplicas": counts[1],
                "readyReplicas": counts[2], "availableReplicas": counts[3],
            }
        })
    }

    #[test]
    fn settled_needs_the_new_generation_observed_and_every_replica_updated_ready_available() {
        assert_eq!(
            deployment_state(&deployment(2, 2, [2, 2, 2, 2])),
            State::Settled
        );
        assert!(matches!(
            deployment_state(&deployment(3, 2, [2, 2, 2, 2])),
            State::Progressing(m) if m.contains("generation 3")
        ));
        assert!(matches!(
            deployment_state(&deployment(2, 2, [3, 2, 2, 2])),
            State::Progressing(m) if m.contains("terminating")
        ));
        assert!(matches!(
            deployment_state(&deployment(2, 2, [2, 2, 1, 1])),
            State::Progressing(m) if m.contains("1 of 2 replicas ready")
        ));
    }

    #[test]
    fn progress_deadline_exceeded_fails_with_its_message() {
        let mut d = deployment_json(2, 2, [2, 1, 1, 1]);
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-2\" has timed out progressing."}]);
        let d: Deployment = typed(d);
        assert!(
            matches!(deployment_state(&d), State::Failed(m) if m.starts_with("ProgressDeadlineExceeded: ReplicaSet"))
        );
    }

    #[test]
    fn pod_failures_name_the_kubernetes_reason() {
        let oom = json!({"metadata": {"name": "web-1"}, "status": {"containerStatuses": [{
            "name": "main", "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}});
        let failure = pod_failure(&typed(oom)).expect("a failure");
        assert!(
            failure.contains("OOMKilled") && failure.contains("main"),
            "{failure}"
        );

        let pending = json!({"metadata": {"name": "web-2"}, "status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu."}]}});
        assert!(
            pod_failure(&typed(pending))
                .expect("a failure")
                .contains("Insufficient cpu")
        );

        let terminating = json!({"metadata": {"name": "old", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [{"name": "main", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_failure(&typed(terminating)), None);
    }

    #[test]
    fn selector_joins_match_labels() {
        let d = typed(
            json!({"spec": {"selector": {"matchLabels": {"app": "web", "tier": "front"}}, "template": {}}}),
        );
        assert_eq!(selector(&d).as_deref(), Some("app=web,tier=front"));
        assert_eq!(selector(&Deployment::default()), None);
    }
}
