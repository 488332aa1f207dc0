//! What `servo check` reports: permissions in each namespace, and each deployment and container.

use super::client::{Client, WorkloadKind};
use super::rollout::{self, State};
use super::{
    CANARY_PERMISSIONS, Kubernetes, PERMISSIONS, Target, container_names, cpu_of, find_container,
    memory_of, requirement,
};
use servo_core::ConnectorError;
use servo_core::types::{Check, Severity};
use tokio_util::sync::CancellationToken;

impl Kubernetes {
    /// One check per namespace: may servo read and patch its deployments and list their pods?
    pub(super) async fn check_permissions(
        &self,
        api: &Client,
        cancel: &CancellationToken,
    ) -> Result<Vec<Check>, ConnectorError> {
        // Per namespace: whether it has canaries, whether it has StatefulSets.
        let mut namespaces: std::collections::BTreeMap<&str, (bool, bool)> = Default::default();
        for t in self.targets() {
            let entry = namespaces.entry(t.namespace).or_default();
            entry.0 |= t.canary();
            entry.1 |= t.kind == WorkloadKind::StatefulSet;
        }
        let mut checks = Vec::new();
        for (ns, (canary, sets)) in namespaces {
            let name = format!("Required permissions in namespace \"{ns}\"");
            let mut denied = Vec::new();
            let mut needed: Vec<(&str, &str, &str)> = PERMISSIONS.to_vec();
            if canary {
                needed.extend(CANARY_PERMISSIONS);
            }
            if sets {
                // The same verbs on StatefulSets as on Deployments.
                let on_sets = PERMISSIONS.iter().filter(|p| p.2 == "deployments");
                needed.extend(on_sets.map(|&(verb, group, _)| (verb, group, "statefulsets")));
            }
            for (verb, group, resource) in needed {
                match api.can(verb, group, resource, ns, cancel).await {
                    Ok(true) => {}
                    Ok(false) => denied.push(format!("{verb} {resource}")),
                    Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
                    Err(e) => {
                        denied.push(format!("{verb} {resource} (the review failed: {e})"));
                    }
                }
            }
            checks.push(if denied.is_empty() {
                Check::pass(
                    name,
                    if canary {
                        "get/list/watch/patch/update deployments; get/list/watch/create/delete pods"
                    } else {
                        "get/list/watch/patch/update deployments; list/watch pods"
                    },
                )
            } else {
                Check::fail(name, format!("not allowed to {}", denied.join(", "))).with_hint(
                    "grant servo's user or service account these verbs with a Role and RoleBinding in the namespace",
                )
            });
        }
        Ok(checks)
    }

    pub(super) async fn check_target(
        &self,
        api: &Client,
        target: &Target<'_>,
        cancel: &CancellationToken,
    ) -> Vec<Check> {
        let d = target.config;
        let mut checks = Vec::new();
        let noun = target.kind.noun();
        let readable = format!("{noun} \"{}\" is readable", d.name);
        let deployment = match api
            .workload(target.kind, target.namespace, &d.name, cancel)
            .await
        {
            Ok(deployment) => {
                checks.push(Check::pass(
                    readable,
                    format!("found in namespace {}", target.namespace),
                ));
                deployment
            }
            Err(e) => {
                let hint = e.hint().map(str::to_string);
                let mut check = Check::fail(readable, e.to_string());
                check.hint = hint;
                checks.push(check);
                return checks;
            }
        };
        let replicas = rollout::desired_replicas(&deployment);
        let r = &d.replicas;
        // A canary never scales the Deployment: its replica count is whatever it is.
        let in_range = target.canary() || (i64::from(r.min)..=i64::from(r.max)).contains(&replicas);
        let name = format!("{noun} \"{}\" replicas are in range", d.name);
        checks.push(if in_range {
            Check::pass(name, format!("{replicas} in {}..{}", r.min, r.max))
        } else {
            Check::fail(
                name,
                format!("{replicas} replicas, outside {}..{}", r.min, r.max),
            )
            .with_severity(Severity::Warning)
            .with_hint("the first adjustment will move it into range; widen `replicas` to keep it")
        });
        for c in &d.containers {
            let name = format!(
                "Container \"{}\" exists in deployment \"{}\"",
                c.name, d.name
            );
            let Some(container) = find_container(&deployment, &c.name) else {
                checks.push(
                    Check::fail(
                        name,
                        format!("the pod template has: {}", container_names(&deployment)),
                    )
                    .with_hint("fix `containers[].name` in servo's config"),
                );
                continue;
            };
            checks.push(Check::pass(name, "found in the pod template"));
            let cpu = requirement(container, "cpu", &c.cpu.get).and_then(cpu_of);
            let mem = requirement(container, "memory", &c.memory.get).and_then(memory_of);
            let resources = format!(
                "Container \"{}\" has resource requirements in range",
                c.name
            );
            let mut problems = Vec::new();
            match cpu {
                None => problems.push("no cpu request or limit is set".to_string()),
                Some(v) if v < c.cpu.min || v > c.cpu.max => {
                    problems.push(format!("cpu {v} is outside {}..{}", c.cpu.min, c.cpu.max))
                }
                Some(_) => {}
            }
            match mem {
                None => problems.push("no memory request or limit is set".to_string()),
                Some(v) if v < c.memory.min || v > c.memory.max => problems.push(format!(
                    "memory {v} is outside {}..{}",
                    c.memory.min, c.memory.max
                )),
                Some(_) => {}
            }
            checks.push(if problems.is_empty() {
                Check::pass(resources, format!("cpu {}, memory {}", cpu.map(|c| c.to_string()).unwrap_or_default(), mem.map(|m| m.to_string()).unwrap_or_default()))
            } else {
                Check::fail(resources, problems.join("; "))
                    .with_severity(Severity::Warning)
                    .with_hint("set requests/limits in the Deployment or widen the ranges in servo's config")
            });
        }
        let ready = format!("{noun} \"{}\" is ready", d.name);
        checks.push(match rollout::deployment_state(&deployment) {
            State::Settled => Check::pass(ready, format!("{replicas} replicas ready")),
            State::Progressing(what) | State::Failed(what) => Check::fail(ready, what)
                .with_severity(Severity::Warning)
                .with_hint("adjustments start from a settled rollout; `kubectl rollout status` shows progress"),
        });
        checks
    }
}
