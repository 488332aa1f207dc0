//! Reading a rollout's state from a Deployment and its Pods: pure functions over the API's JSON,
//! so every rule is unit-tested without a server.
//!
//! A rollout is *settled* when the controller has seen the latest spec (`observedGeneration` ≥
//! `generation`) and every replica is updated, ready and available with no old replica left.
//! It has *failed* — and waiting longer will not help — when the Deployment reports
//! `ProgressDeadlineExceeded`, or a pod cannot be scheduled, or a container was OOM-killed, is
//! crash-looping, or cannot pull or configure its image. Anything else is *progressing*.

use serde_json::Value;

/// What one look at a Deployment (and its pods) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Settled,
    /// Not done yet; the text says what is missing (for the timeout message).
    Progressing(String),
    /// Will not get better by waiting; the text carries the Kubernetes reason (`OOMKilled`...).
    Failed(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The desired replica count (`spec.replicas`, 1 when absent as in Kubernetes).
pub fn desired_replicas(deployment: &Value) -> i64 {
    deployment["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// The Deployment's own view: generation observed, replica counts, the Progressing condition.
pub fn deployment_state(deployment: &Value) -> State {
    let status = &deployment["status"];
    if let Some(conditions) = status["conditions"].as_array() {
        for c in conditions {
            if c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded" {
                let message = c["message"]
                    .as_str()
                    .unwrap_or("the rollout made no progress");
                return State::Failed(format!("ProgressDeadlineExceeded: {message}"));
            }
        }
    }
    let generation = int(&deployment["metadata"]["generation"]);
    let observed = int(&status["observedGeneration"]);
    if observed < generation {
        return State::Progressing(format!(
            "the controller has not observed generation {generation} yet (observed {observed})"
        ));
    }
    let desired = desired_replicas(deployment);
    let updated = int(&status["updatedReplicas"]);
    let ready = int(&status["readyReplicas"]);
    let available = int(&status["availableReplicas"]);
    let total = int(&status["replicas"]);
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

/// The first fatal problem among the pods, if any. Pods being deleted are ignored: they belong
/// to the replica set being replaced.
pub fn pod_failure(pods: &[Value]) -> Option<String> {
    for pod in pods {
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        let status = &pod["status"];
        for c in status["conditions"].as_array().into_iter().flatten() {
            if c["type"] == "PodScheduled"
                && c["status"] == "False"
                && c["reason"] == "Unschedulable"
            {
                let message = c["message"].as_str().unwrap_or("no node fits the pod");
                return Some(format!("pod {name} is Unschedulable: {message}"));
            }
        }
        for cs in status["containerStatuses"].as_array().into_iter().flatten() {
            let container = cs["name"].as_str().unwrap_or("?");
            let restarts = int(&cs["restartCount"]);
            for state in [&cs["state"], &cs["lastState"]] {
                if state["terminated"]["reason"] == "OOMKilled" {
                    return Some(format!(
                        "container {container} of pod {name} was OOMKilled (restarted {restarts} times): its memory limit is too low"
                    ));
                }
            }
            let waiting = &cs["state"]["waiting"];
            if let Some(reason) = waiting["reason"].as_str()
                && FATAL_WAITING.contains(&reason)
            {
                let message = waiting["message"].as_str().unwrap_or("");
                return Some(format!(
                    "container {container} of pod {name} is in {reason} (restarted {restarts} times){}{message}",
                    if message.is_empty() { "" } else { ": " }
                ));
            }
        }
    }
    None
}

/// The label selector of a Deployment's pods (`spec.selector.matchLabels`) as query text.
pub fn selector(deployment: &Value) -> Option<String> {
    let labels = deployment["spec"]["selector"]["matchLabels"].as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The Deployment's and its pods' state together: a pod failure wins over "progressing".
pub fn state(deployment: &Value, pods: &[Value]) -> State {
    match deployment_state(deployment) {
        State::Failed(reason) => State::Failed(reason),
        other => match pod_failure(pods) {
            Some(reason) => State::Failed(reason),
            None => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, observed: i64, counts: [i64; 4]) -> Value {
        json!({
            "metadata": {"generation": generation},
            "spec": {"replicas": 2},
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
        let mut d = deployment(2, 2, [2, 1, 1, 1]);
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-2\" has timed out progressing."}]);
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
        let failure = pod_failure(&[oom]).expect("a failure");
        assert!(
            failure.contains("OOMKilled") && failure.contains("main"),
            "{failure}"
        );

        let pending = json!({"metadata": {"name": "web-2"}, "status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu."}]}});
        assert!(
            pod_failure(&[pending])
                .expect("a failure")
                .contains("Insufficient cpu")
        );

        let terminating = json!({"metadata": {"name": "old", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [{"name": "main", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_failure(&[terminating]), None);
    }

    #[test]
    fn selector_joins_match_labels() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "web", "tier": "front"}}}});
        assert_eq!(selector(&d).as_deref(), Some("app=web,tier=front"));
        assert_eq!(selector(&json!({})), None);
    }
}
