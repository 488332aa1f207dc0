//! A small Kubernetes API client: kubeconfig / in-cluster credentials, and the handful of calls the
//! connector makes (read a Deployment, patch it, list its Pods, read the server version).
//!
//! It deliberately is not the `kube` crate: servo needs five endpoints, and `kube` + `k8s-openapi`
//! cost minutes of compile time for them. Objects stay `serde_json::Value`s; `rollout.rs` reads
//! the few fields it needs with explicit defaults, so an unexpected shape is a clear error rather
//! than a panic.
//!
//! Supported credentials: `token`, `tokenFile`, `client-certificate(-data)` + `client-key(-data)`,
//! `certificate-authority(-data)`, `insecure-skip-tls-verify`, and the in-cluster service account.
//! Not supported (a clear error names them): `exec` credential plugins, `auth-provider`, basic
//! auth, and merging several files listed in `KUBECONFIG` (the first one is used).

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use servo_core::ConnectorError;
use tokio_util::sync::CancellationToken;

/// Where the in-cluster service account's credentials are mounted.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// One API request may take this long; rollouts are bounded separately by the `timeout` setting.
const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(30);
const CONNECT_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// The content types of the two patch flavours the connector sends.
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";

/// How to reach the API server, resolved from a kubeconfig or the in-cluster environment.
#[derive(Debug)]
pub struct Api {
    client: reqwest::Client,
    server: String,
    token: Option<String>,
    /// Where the credentials came from, for messages (`kubeconfig /x, context kind-kind`).
    pub source: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    item: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: Option<String>,
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
    exec: Option<Value>,
    auth_provider: Option<Value>,
    username: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Context {
    cluster: String,
    user: Option<String>,
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

fn read(path: &Path, what: &str) -> Result<Vec<u8>, ConnectorError> {
    std::fs::read(path).map_err(|e| {
        ConnectorError::failed(format!("cannot read the {what} {}: {e}", path.display()))
            .with_hint(kubeconfig_hint())
    })
}

fn decode(data: &str, what: &str) -> Result<Vec<u8>, ConnectorError> {
    use base64::Engine as _;
    let compact: String = data.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| ConnectorError::failed(format!("the kubeconfig's {what} is not base64: {e}")))
}

/// Inline data, else a file relative to the kubeconfig's directory.
fn data_or_file(
    data: Option<&str>,
    file: Option<&Path>,
    base: &Path,
    what: &str,
) -> Result<Option<Vec<u8>>, ConnectorError> {
    match (data, file) {
        (Some(d), _) => decode(d, what).map(Some),
        (None, Some(f)) => read(&base.join(f), what).map(Some),
        (None, None) => Ok(None),
    }
}

impl Api {
    /// Resolves credentials: the kubeconfig (`setting`, `KUBECONFIG`, `~/.kube/config`) with the
    /// given context (or its `current-context`), else the in-cluster service account.
    pub fn connect(setting: Option<&Path>, context: Option<&str>) -> Result<Api, ConnectorError> {
        match kubeconfig_path(setting) {
            Some(path) => Self::from_kubeconfig(&path, context),
            None => Self::in_cluster(),
        }
    }

    fn from_kubeconfig(path: &Path, context: Option<&str>) -> Result<Api, ConnectorError> {
        let text = String::from_utf8(read(path, "kubeconfig")?).map_err(|_| {
            ConnectorError::failed(format!("the kubeconfig {} is not UTF-8", path.display()))
        })?;
        // A kubeconfig is plain YAML (no spans needed): serde-saphyr reads it as the YAML it is.
        let document: Value = serde_saphyr::from_str(&text).map_err(|e| {
            ConnectorError::failed(format!(
                "the kubeconfig {} is not valid YAML: {e}",
                path.display()
            ))
        })?;
        let config: Kubeconfig = if document.is_null() {
            Kubeconfig::default()
        } else {
            serde_json::from_value(document).map_err(|e| {
                ConnectorError::failed(format!(
                    "the kubeconfig {} is malformed: {e}",
                    path.display()
                ))
            })?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let name = context
            .map(str::to_string)
            .or(config.current_context.clone())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ConnectorError::failed(format!(
                    "the kubeconfig {} has no current-context and no `context` is set",
                    path.display()
                ))
                .with_hint("set `context:` to one of the kubeconfig's contexts")
            })?;
        let find_context = config.contexts.iter().find(|c| c.name == name);
        let Some(ctx) = find_context.and_then(|c| c.item.as_ref()) else {
            let known: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(ConnectorError::failed(format!(
                "the kubeconfig {} has no context `{name}`",
                path.display()
            ))
            .with_hint(format!("its contexts are: {}", known.join(", "))));
        };
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.item.as_ref())
            .ok_or_else(|| {
                ConnectorError::failed(format!(
                    "context `{name}` names cluster `{}`, which the kubeconfig does not define",
                    ctx.cluster
                ))
            })?;
        let default_user = User::default();
        let user = match &ctx.user {
            Some(u) => config
                .users
                .iter()
                .find(|x| &x.name == u)
                .and_then(|x| x.item.as_ref())
                .ok_or_else(|| {
                    ConnectorError::failed(format!(
                        "context `{name}` names user `{u}`, which the kubeconfig does not define"
                    ))
                })?,
            None => &default_user,
        };
        let unsupported = if user.exec.is_some() {
            Some("an `exec` credential plugin")
        } else if user.auth_provider.is_some() {
            Some("an `auth-provider`")
        } else if user.username.is_some() && user.token.is_none() {
            Some("basic auth")
        } else {
            None
        };
        if let Some(what) = unsupported {
            return Err(ConnectorError::failed(format!(
                "the kubeconfig's user for context `{name}` authenticates with {what}, which servo does not support"
            ))
            .with_hint(
                "give servo a kubeconfig with a bearer `token` (e.g. a service account token) or a client certificate",
            ));
        }
        let server = cluster.server.clone().ok_or_else(|| {
            ConnectorError::failed(format!("cluster `{}` has no `server`", ctx.cluster))
        })?;
        let ca = data_or_file(
            cluster.certificate_authority_data.as_deref(),
            cluster.certificate_authority.as_deref(),
            base,
            "certificate-authority",
        )?;
        let token = match (&user.token, &user.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(
                String::from_utf8_lossy(&read(&base.join(f), "tokenFile")?)
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        let cert = data_or_file(
            user.client_certificate_data.as_deref(),
            user.client_certificate.as_deref(),
            base,
            "client-certificate",
        )?;
        let key = data_or_file(
            user.client_key_data.as_deref(),
            user.client_key.as_deref(),
            base,
            "client-key",
        )?;
        let identity = match (cert, key) {
            (Some(mut cert), Some(key)) => {
                cert.push(b'\n');
                cert.extend_from_slice(&key);
                Some(cert)
            }
            _ => None,
        };
        Self::build(
            server,
            ca,
            cluster.insecure_skip_tls_verify,
            token,
            identity,
            format!("kubeconfig {}, context `{name}`", path.display()),
        )
    }

    fn in_cluster() -> Result<Api, ConnectorError> {
        let (Ok(host), Ok(port)) = (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) else {
            return Err(ConnectorError::failed(
                "no kubeconfig was found (no `kubeconfig:` setting, no KUBECONFIG, no ~/.kube/config) and servo is not running in a Kubernetes pod",
            )
            .with_hint(kubeconfig_hint()));
        };
        let dir = Path::new(SERVICE_ACCOUNT);
        let token = String::from_utf8_lossy(&read(&dir.join("token"), "service account token")?)
            .trim()
            .to_string();
        let ca = read(&dir.join("ca.crt"), "service account CA")?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Self::build(
            format!("https://{host}:{port}"),
            Some(ca),
            false,
            Some(token),
            None,
            "in-cluster service account".to_string(),
        )
    }

    fn build(
        server: String,
        ca: Option<Vec<u8>>,
        insecure: bool,
        token: Option<String>,
        identity: Option<Vec<u8>>,
        source: String,
    ) -> Result<Api, ConnectorError> {
        let mut builder = crate::util::http::client_builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(pem) = ca {
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConnectorError::failed(format!(
                    "the certificate authority of {source} is not PEM: {e}"
                ))
            })?;
            builder = builder.tls_certs_only(certs);
        }
        if insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = identity {
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                ConnectorError::failed(format!(
                    "the client certificate/key of {source} is not usable: {e}"
                ))
            })?;
            builder = builder.identity(identity);
        }
        let client = builder.build().map_err(|e| {
            ConnectorError::failed(format!("cannot set up an HTTP client for {source}: {e}"))
        })?;
        Ok(Api {
            client,
            server: server.trim_end_matches('/').to_string(),
            token,
            source,
        })
    }

    /// The server's base URL (for messages; it holds no credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// One request, raced against cancellation. `what` names the object for messages.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, &Value)>,
        what: &str,
        cancel: &CancellationToken,
    ) -> Result<Value, ConnectorError> {
        let url = format!("{}{path}", self.server);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, body)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.to_string());
        }
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        };
        let (status, bytes) = cancel
            .run_until_cancelled(exchange)
            .await
            .ok_or(ConnectorError::Cancelled)?
            .map_err(|e| {
                ConnectorError::failed(format!(
                    "cannot reach the Kubernetes API at {} ({}) to {method} {what}: {e}",
                    self.server, self.source
                ))
                .with_hint("check the kubeconfig's `server` and that the cluster is up (`kubectl version`)")
            })?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
        let error = ConnectorError::failed(format!(
            "the Kubernetes API refused to {method} {what}: {status}: {message}"
        ));
        Err(match status {
            StatusCode::NOT_FOUND => error.with_hint(format!(
                "check the name and the namespace in servo's config (`kubectl get {what}`)"
            )),
            StatusCode::UNAUTHORIZED => {
                error.with_hint(format!("the credentials of {} were not accepted", self.source))
            }
            StatusCode::FORBIDDEN => error.with_hint(
                "grant servo's user or service account get/list/patch on deployments and get/list on pods (RBAC Role + RoleBinding)",
            ),
            _ => error,
        })
    }

    pub async fn version(&self, cancel: &CancellationToken) -> Result<Value, ConnectorError> {
        self.call(Method::GET, "/version", None, "the server version", cancel)
            .await
    }

    pub async fn deployment(
        &self,
        namespace: &str,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<Value, ConnectorError> {
        self.call(
            Method::GET,
            &deployment_path(namespace, name),
            None,
            &format!("deployment {name} -n {namespace}"),
            cancel,
        )
        .await
    }

    pub async fn patch_deployment(
        &self,
        namespace: &str,
        name: &str,
        content_type: &'static str,
        patch: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, ConnectorError> {
        self.call(
            Method::PATCH,
            &deployment_path(namespace, name),
            Some((content_type, patch)),
            &format!("deployment {name} -n {namespace}"),
            cancel,
        )
        .await
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
        let review = serde_json::json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "namespace": namespace, "group": group, "resource": resource, "verb": verb,
            }},
        });
        let answer = self
            .call(
                Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                Some(("application/json", &review)),
                "a selfsubjectaccessreview",
                cancel,
            )
            .await?;
        Ok(answer["status"]["allowed"].as_bool().unwrap_or(false))
    }

    /// The pods matching a label selector (`app=web,tier=front`), as a JSON array.
    pub async fn pods(
        &self,
        namespace: &str,
        selector: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<Value>, ConnectorError> {
        let path = format!(
            "/api/v1/namespaces/{}/pods?labelSelector={}",
            encode(namespace),
            encode(selector)
        );
        let list = self
            .call(
                Method::GET,
                &path,
                None,
                &format!("pods -n {namespace} -l {selector}"),
                cancel,
            )
            .await?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }
}

fn deployment_path(namespace: &str, name: &str) -> String {
    format!(
        "/apis/apps/v1/namespaces/{}/deployments/{}",
        encode(namespace),
        encode(name)
    )
}

/// Percent-encodes everything but unreserved characters (names are DNS labels, selectors are not).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config");
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    const CONFIG: &str = "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1/\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n- name: b\n  context: {cluster: c, user: e}\nusers:\n- name: u\n  user: {token: abc}\n- name: e\n  user:\n    exec: {command: aws}\n";

    #[test]
    fn reads_the_current_context_with_a_token() {
        let dir = std::env::temp_dir().join(format!("servo-k8s-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = write(&dir, CONFIG);
        let api = Api::connect(Some(&path), None).expect("a client");
        assert_eq!(api.server(), "http://127.0.0.1:1");
        assert_eq!(api.token.as_deref(), Some("abc"));
        assert!(api.source.contains("context `a`"));

        let err = Api::connect(Some(&path), Some("b")).expect_err("exec is unsupported");
        assert!(
            err.to_string().contains("`exec` credential plugin"),
            "{err}"
        );
        let err = Api::connect(Some(&path), Some("nope")).expect_err("unknown context");
        assert!(err.hint().unwrap_or_default().contains("a, b"), "{err:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn certificate_data_and_client_certificates_are_loaded() {
        use base64::Engine as _;
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        // rcgen is built without its `pem` feature: wrap the DER by hand.
        let pem = |label: &str, der: &[u8]| {
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                lines.join("\n")
            )
        };
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a CA");
        let client = rcgen::generate_simple_self_signed(vec!["servo".to_owned()]).expect("a cert");
        let dir = std::env::temp_dir().join(format!("servo-k8s-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let config = format!(
            "current-context: t\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority-data: {}\ncontexts:\n- name: t\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&pem("CERTIFICATE", ca.cert.der())),
            b64(&pem("CERTIFICATE", client.cert.der())),
            b64(&pem("PRIVATE KEY", &client.signing_key.serialize_der())),
        );
        let path = write(&dir, &config);
        let api = Api::connect(Some(&path), None).expect("a TLS client");
        assert_eq!(api.token, None);

        let broken = config.replace(
            "certificate-authority-data: ",
            "certificate-authority-data: $",
        );
        let path = write(&dir, &broken);
        let err = Api::connect(Some(&path), None).expect_err("not base64");
        assert!(
            err.to_string()
                .contains("certificate-authority is not base64"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn selectors_are_percent_encoded() {
        assert_eq!(
            encode("app=web,tier in (a)"),
            "app%3Dweb%2Ctier%20in%20%28a%29"
        );
    }
}
