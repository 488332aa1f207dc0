//! The Kubernetes API client every Kubernetes-facing connector shares: credentials resolved the way
//! `kubectl` resolves them, typed objects, and errors that say what was asked of which server.
//!
//! It is a thin layer over `kube` (rustls on ring): kubeconfig with contexts, `token`/`tokenFile`,
//! client certificates, `exec` credential plugins (`aws eks get-token`, `gke-gcloud-auth-plugin`,
//! `kubelogin`; run when the client is set up and again when the token expires), or the in-cluster
//! service account. [`Client::kube`] hands out the `kube::Client`
//! for typed `kube::Api`s and `kube::runtime` watchers; [`Client::error`] turns a `kube::Error` into
//! a [`ConnectorError`] with a hint.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Config};
use servo_core::ConnectorError;
use tokio_util::sync::CancellationToken;

const CONNECT_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Times a read-modify-replace is retried when another writer changed the object (409 Conflict).
const CONFLICT_RETRIES: u32 = 5;

/// The kinds of workload the connectors tune.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    /// The `kubectl` noun, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        }
    }
}

/// A StatefulSet seen as a Deployment: its pod template, replicas, selector and the status
/// fields the rollout rules read. Its update is finished only when `currentRevision` has caught
/// up with `updateRevision`, so until then one replica counts as not updated.
pub fn as_deployment(set: StatefulSet) -> Deployment {
    let spec = set.spec.map(|s| DeploymentSpec {
        replicas: s.replicas,
        selector: s.selector,
        template: s.template,
        ..DeploymentSpec::default()
    });
    let status = set.status.map(|s| {
        let finished = s.current_revision == s.update_revision;
        let updated = s.updated_replicas.unwrap_or(0);
        DeploymentStatus {
            observed_generation: s.observed_generation,
            replicas: Some(s.replicas),
            updated_replicas: Some(if finished {
                updated
            } else {
                updated.min(s.replicas - 1).max(0)
            }),
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            ..DeploymentStatus::default()
        }
    });
    Deployment {
        metadata: set.metadata,
        spec,
        status,
    }
}

/// A connected client: the `kube` client and where its credentials came from.
#[derive(Clone)]
pub struct Client {
    kube: kube::Client,
    server: String,
    /// Where the credentials came from, for messages (`kubeconfig /x, context kind-kind`).
    pub source: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn kubeconfig_hint() -> &'static str {
    "set `kubeconfig:` (or KUBECONFIG) to a kubeconfig that `kubectl` can use, or run servo in a \
     pod with a service account"
}

/// Which kubeconfig file to read: the setting, else the first path in `KUBECONFIG`, else
/// `~/.kube/config` when it exists. `None` means: use the in-cluster service account.
pub fn kubeconfig_path(setting: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = setting {
        return Some(path.to_path_buf());
    }
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Some(first);
    }
    let home = std::env::var_os("HOME")?;
    let default = Path::new(&home).join(".kube").join("config");
    default.exists().then_some(default)
}

/// A `kubeconfig:` setting as a path: `~/...` (as ServoX configs write it) in the home directory,
/// anything else relative to the config file's directory.
pub fn kubeconfig_setting(setting: Option<&Path>, base_dir: &Path) -> Option<PathBuf> {
    setting.map(|p| match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => base_dir.join(p),
    })
}

/// The names of a kubeconfig's contexts, for a did-you-mean.
fn context_names(config: &Kubeconfig) -> Vec<String> {
    config.contexts.iter().map(|c| c.name.clone()).collect()
}

impl Client {
    /// Connects with the kubeconfig at `kubeconfig` (else see [`kubeconfig_path`]) and its
    /// `context` (else its current context), or with the in-cluster service account. Nothing is
    /// sent yet; an `exec` plugin runs at the first request.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Self, ConnectorError> {
        servo_core::http::install_crypto();
        let (mut config, source) = match kubeconfig_path(kubeconfig) {
            Some(path) => {
                // Reading the file (and the certificates it names) is blocking file I/O.
                let read_path = path.clone();
                let file = tokio::task::spawn_blocking(move || Kubeconfig::read_from(&read_path))
                    .await
                    .map_err(|e| ConnectorError::failed(format!("reading the kubeconfig: {e}")))?
                    .map_err(|e| {
                        ConnectorError::failed(format!(
                            "cannot load the kubeconfig {}: {e}",
                            path.display()
                        ))
                        .with_hint(kubeconfig_hint())
                    })?;
                let name = context
                    .map(str::to_string)
                    .or_else(|| file.current_context.clone())
                    .unwrap_or_default();
                if !file.contexts.iter().any(|c| c.name == name) {
                    let names = context_names(&file);
                    let mut error = ConnectorError::failed(format!(
                        "the kubeconfig {} has no context `{name}`",
                        path.display()
                    ));
                    let known = names.join(", ");
                    let suggestion = servo_core::suggest::did_you_mean(&name, names.iter().map(String::as_str));
                    error = error.with_hint(match suggestion {
                        Some(s) => format!("did you mean `{s}`? its contexts: {known}"),
                        None => format!("its contexts: {known}"),
                    });
                    return Err(error);
                }
                let options = KubeConfigOptions {
                    context: Some(name.clone()),
                    ..KubeConfigOptions::default()
                };
                let config = Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| {
                        ConnectorError::failed(format!(
                            "cannot use context `{name}` of the kubeconfig {}: {e}",
                            path.display()
                        ))
                        .with_hint(kubeconfig_hint())
                    })?;
                (
                    config,
                    format!("kubeconfig {}, context `{name}`", path.display()),
                )
            }
            None => (
                Config::incluster().map_err(|e| {
                    ConnectorError::failed(format!(
                        "no kubeconfig was found (no `kubeconfig:` setting, no KUBECONFIG, no ~/.kube/config) and servo cannot use an in-cluster service account: {e}"
                    ))
                    .with_hint(kubeconfig_hint())
                })?,
                "in-cluster service account".to_string(),
            ),
        };
        // No read timeout: a watch may rightly stay silent for minutes (kube bounds idle watches
        // itself); single requests are bounded by their event's cancellation and `timeout`.
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        // An `exec` credential plugin runs here, a blocking child process.
        let kube = tokio::task::spawn_blocking(move || kube::Client::try_from(config))
            .await
            .map_err(|e| ConnectorError::failed(format!("setting up the client: {e}")))?
            .map_err(|e| {
                ConnectorError::failed(format!("cannot set up a client for {source}: {e}"))
                    .with_hint(
                        "check the kubeconfig's user: its credential plugin must run and print an ExecCredential",
                    )
            })?;
        Ok(Self {
            kube,
            server,
            source,
        })
    }

    /// The `kube` client, for typed `kube::Api`s and watchers.
    pub fn kube(&self) -> &kube::Client {
        &self.kube
    }

    /// The server's base URL (for messages; it holds no credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// A namespaced typed API.
    pub fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.kube().clone(), namespace)
    }

    /// The error for a failed request: `action` (`GET`, `PATCH`...) on `what`
    /// (`deployment web -n shop`), with a hint by status.
    pub fn error(&self, error: kube::Error, action: &str, what: &str) -> ConnectorError {
        match error {
            kube::Error::Api(status) => {
                let e = ConnectorError::failed(format!(
                    "the Kubernetes API refused to {action} {what}: {} {}: {}",
                    status.code, status.reason, status.message
                ));
                match status.code {
                    404 => e.with_hint(format!(
                        "check the name and the namespace in servo's config (`kubectl get {what}`)"
                    )),
                    401 => e.with_hint(format!(
                        "the credentials of {} were not accepted",
                        self.source
                    )),
                    403 => e.with_hint(
                        "grant servo's user or service account the verbs `servo check` lists (RBAC Role + RoleBinding)",
                    ),
                    _ => e,
                }
            }
            kube::Error::Auth(e) => ConnectorError::failed(format!(
                "cannot get credentials from {} to {action} {what}: {e}",
                self.source
            ))
            .with_hint("run the kubeconfig's credential plugin by hand (`kubectl get pods` does) to see why it fails"),
            other => ConnectorError::failed(format!(
                "cannot reach the Kubernetes API at {} ({}) to {action} {what}: {other}",
                self.server, self.source
            ))
            .with_hint(
                "check the kubeconfig's `server` and that the cluster is up (`kubectl version`)",
            ),
        }
    }

    /// Runs one request, raced against `cancel`, mapping its error.
    pub async fn call<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
        action: &str,
        what: &str,
        cancel: &CancellationToken,
    ) -> Result<T, ConnectorError> {
        cancel
            .run_until_cancelled(request)
            .await
            .ok_or(ConnectorError::Cancelled)?
            .map_err(|e| self.error(e, action, what))
    }

    pub async fn version(&self, cancel: &CancellationToken) -> Result<Info, ConnectorError> {
        self.call(
            self.kube.apiserver_version(),
            "GET",
            "the server version",
            cancel,
        )
        .await
    }

    pub async fn deployment(
        &self,
        namespace: &str,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<Deployment, ConnectorError> {
        let api = self.api::<Deployment>(namespace);
        self.call(
            api.get(name),
            "GET",
            &format!("deployment {name} -n {namespace}"),
            cancel,
        )
        .await
    }

    /// A strategic-merge patch (lists of containers and env merged by `name`).
    pub async fn patch_deployment(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
        cancel: &CancellationToken,
    ) -> Result<Deployment, ConnectorError> {
        let api = self.api::<Deployment>(namespace);
        let params = PatchParams::default();
        self.call(
            api.patch(name, &params, &Patch::Strategic(patch)),
            "PATCH",
            &format!("deployment {name} -n {namespace}"),
            cancel,
        )
        .await
    }

    /// Reads the Deployment, lets `change` edit it and replaces it, again from a fresh read when
    /// another writer got there first (409 Conflict): how a whole pod template is restored.
    pub async fn replace_deployment(
        &self,
        namespace: &str,
        name: &str,
        change: impl Fn(&mut Deployment),
        cancel: &CancellationToken,
    ) -> Result<Deployment, ConnectorError> {
        self.replace(namespace, name, change, cancel).await
    }

    /// Read-modify-replace of any namespaced object, retried on 409 Conflict.
    pub async fn replace<K>(
        &self,
        namespace: &str,
        name: &str,
        change: impl Fn(&mut K),
        cancel: &CancellationToken,
    ) -> Result<K, ConnectorError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
        <K as kube::Resource>::DynamicType: Default,
    {
        let api = self.api::<K>(namespace);
        let what = format!(
            "{} {name} -n {namespace}",
            K::kind(&Default::default()).to_lowercase()
        );
        let mut attempt = 0;
        loop {
            let mut current = self.call(api.get(name), "GET", &what, cancel).await?;
            change(&mut current);
            let replaced = cancel
                .run_until_cancelled(api.replace(name, &PostParams::default(), &current))
                .await
                .ok_or(ConnectorError::Cancelled)?;
            match replaced {
                Ok(done) => return Ok(done),
                Err(kube::Error::Api(status))
                    if status.code == 409 && attempt < CONFLICT_RETRIES =>
                {
                    attempt += 1;
                    tracing::debug!(object = %what, attempt, "conflict replacing; reading again");
                }
                Err(e) => return Err(self.error(e, "PUT", &what)),
            }
        }
    }

    /// A Deployment or a StatefulSet, as a Deployment (see [`as_deployment`]).
    pub async fn workload(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<Deployment, ConnectorError> {
        match kind {
            WorkloadKind::Deployment => self.deployment(namespace, name, cancel).await,
            WorkloadKind::StatefulSet => {
                let api = self.api::<StatefulSet>(namespace);
                let what = format!("statefulset {name} -n {namespace}");
                let set = self.call(api.get(name), "GET", &what, cancel).await?;
                Ok(as_deployment(set))
            }
        }
    }

    /// A strategic-merge patch of a Deployment or StatefulSet.
    pub async fn patch_workload(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
        cancel: &CancellationToken,
    ) -> Result<(), ConnectorError> {
        match kind {
            WorkloadKind::Deployment => {
                self.patch_deployment(namespace, name, patch, cancel)
                    .await?;
            }
            WorkloadKind::StatefulSet => {
                let api = self.api::<StatefulSet>(namespace);
                let what = format!("statefulset {name} -n {namespace}");
                let params = PatchParams::default();
                self.call(
                    api.patch(name, &params, &Patch::Strategic(patch)),
                    "PATCH",
                    &what,
                    cancel,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Puts a workload's pod template and replica count back (read, edit, replace; again on a
    /// conflict).
    pub async fn restore_workload(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
        template: &PodTemplateSpec,
        replicas: Option<i32>,
        cancel: &CancellationToken,
    ) -> Result<(), ConnectorError> {
        match kind {
            WorkloadKind::Deployment => {
                let restore = |d: &mut Deployment| {
                    let spec = d.spec.get_or_insert_with(Default::default);
                    spec.template = template.clone();
                    spec.replicas = replicas;
                };
                self.replace_deployment(namespace, name, restore, cancel)
                    .await?;
            }
            WorkloadKind::StatefulSet => {
                let restore = |d: &mut StatefulSet| {
                    let spec = d.spec.get_or_insert_with(Default::default);
                    spec.template = template.clone();
                    spec.replicas = replicas;
                };
                self.replace(namespace, name, restore, cancel).await?;
            }
        }
        Ok(())
    }

    /// Whether the API allows this client `verb` on `resource` (of API `group`) in `namespace`:
    /// a SelfSubjectAccessReview, which any authenticated user may create.
    pub async fn can(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: &str,
        cancel: &CancellationToken,
    ) -> Result<bool, ConnectorError> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    verb: Some(verb.to_string()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(self.kube.clone());
        let answer = self
            .call(
                api.create(&PostParams::default(), &review),
                "POST",
                "a selfsubjectaccessreview",
                cancel,
            )
            .await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config");
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    const CONFIG: &str = "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1/\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n- name: b\n  context: {cluster: c, user: e}\nusers:\n- name: u\n  user: {token: abc}\n- name: e\n  user:\n    exec: {command: servo-no-such-credential-plugin, apiVersion: client.authentication.k8s.io/v1beta1}\n";

    #[tokio::test]
    async fn reads_the_current_context_and_names_the_known_ones() {
        let dir = std::env::temp_dir().join(format!("servo-k8s-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = write(&dir, CONFIG);
        let client = Client::connect(Some(&path), None).await.expect("a client");
        assert_eq!(client.server(), "http://127.0.0.1:1");
        assert!(client.source.contains("context `a`"));

        // The exec plugin runs when the client is set up; its failure names the context.
        let err = Client::connect(Some(&path), Some("b"))
            .await
            .expect_err("no such plugin");
        assert!(
            err.to_string().contains("context `b`") && err.to_string().contains("exec"),
            "{err}"
        );

        let err = Client::connect(Some(&path), Some("aa"))
            .await
            .expect_err("unknown context");
        let hint = err.hint().unwrap_or_default().to_string();
        assert!(hint.contains("a, b") && hint.contains("`a`"), "{err:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
