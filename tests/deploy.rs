//! Running servo in a cluster: the manifests in `deploy/kubernetes/` and
//! `servo generate kubernetes --manifests`.
//!
//! Every manifest is read into the real Kubernetes API types (k8s-openapi, which checks `apiVersion`
//! and `kind`) and serialized back: a misspelt field, which the API server would silently drop,
//! makes the round trip differ. Then the objects are checked against each other (the Deployment runs
//! as the ServiceAccount the RoleBinding binds, reads the token from the Secret, mounts the
//! ConfigMap) and against what servo needs: the Role grants exactly the connector's `PERMISSIONS`,
//! the pod cannot run as root, and the ConfigMap's servo.yaml passes `servo validate`.
//!
//! The checked-in files are the generator's template rendered for Deployment `app` in namespace
//! `default`; `SERVO_BLESS=1 cargo test --test deploy` rewrites them after the template changes.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::serde::Serialize;
use k8s_openapi::serde::de::DeserializeOwned;
use serde_json::Value;

/// The files of `deploy/kubernetes/`, in the order the generator prints them.
const FILES: [&str; 6] = [
    "serviceaccount.yaml",
    "role.yaml",
    "rolebinding.yaml",
    "secret.yaml",
    "configmap.yaml",
    "deployment.yaml",
];

/// The line each generated document starts with, followed by its file name.
const FILE_MARKER: &str = "# deploy/kubernetes/";

const CONFIG_DIR: &str = "/etc/servo";

fn deploy_dir() -> PathBuf {
    common::root().join("deploy").join("kubernetes")
}

/// `servo generate kubernetes --manifests ARGS --output -`.
fn generate(args: &[&str]) -> String {
    let output = common::servo()
        .args(["generate", "kubernetes", "--manifests"])
        .args(args)
        .args(["--output", "-"])
        .output()
        .expect("servo runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The generated text split into (file name, document text from its marker line on).
fn documents(text: &str) -> Vec<(String, String)> {
    text.split("\n---\n")
        .map(|document| {
            let start = document
                .match_indices(FILE_MARKER)
                .map(|(at, _)| at)
                .find(|at| *at == 0 || document[..*at].ends_with('\n'))
                .unwrap_or_else(|| {
                    panic!("a document without a `{FILE_MARKER}` line:\n{document}")
                });
            let body = &document[start..];
            let file = body[FILE_MARKER.len()..]
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let mut body = body.to_string();
            if !body.ends_with('\n') {
                body.push('\n');
            }
            (file, body)
        })
        .collect()
}

/// Reads `text` as `T`, and checks that serializing it gives back every field of the YAML.
fn typed<T: DeserializeOwned + Serialize>(file: &str, text: &str) -> T {
    let value: T = serde_saphyr::from_str(text)
        .unwrap_or_else(|e| panic!("{file} is not a {}: {e}", std::any::type_name::<T>()));
    let as_written: Value = serde_saphyr::from_str(text).expect("YAML parses as a value");
    let round_trip = serde_json::to_value(&value).expect("serializes");
    if let Some(path) = first_difference(&as_written, &round_trip, String::new()) {
        panic!(
            "{file}: `{path}` is not a field of the Kubernetes API (misspelt?) or does not read back as written"
        );
    }
    value
}

/// The path of the first place where `written` has something `read` lacks or differs on.
fn first_difference(written: &Value, read: &Value, path: String) -> Option<String> {
    match (written, read) {
        (Value::Object(w), Value::Object(r)) => w.iter().find_map(|(key, value)| {
            let here = format!("{path}.{key}");
            match r.get(key) {
                Some(other) => first_difference(value, other, here),
                None => Some(here),
            }
        }),
        (Value::Array(w), Value::Array(r)) if w.len() == r.len() => w
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(a, b, format!("{path}[{i}]"))),
        _ if written == read => None,
        _ => Some(path),
    }
}

struct Manifests {
    service_account: ServiceAccount,
    role: Role,
    binding: RoleBinding,
    secret: Secret,
    config_map: ConfigMap,
    deployment: Deployment,
}

fn parse(documents: &[(String, String)]) -> Manifests {
    let names: Vec<&str> = documents.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, FILES, "the manifests and their order");
    let text = |file: &str| {
        documents
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, t)| t.as_str())
            .unwrap_or_default()
    };
    Manifests {
        service_account: typed(FILES[0], text(FILES[0])),
        role: typed(FILES[1], text(FILES[1])),
        binding: typed(FILES[2], text(FILES[2])),
        secret: typed(FILES[3], text(FILES[3])),
        config_map: typed(FILES[4], text(FILES[4])),
        deployment: typed(FILES[5], text(FILES[5])),
    }
}

/// (group, resource, verb) the kubernetes connector needs, read from its `PERMISSIONS` table so the
/// Role cannot drift from what `servo check` verifies.
fn connector_permissions() -> BTreeSet<(String, String, String)> {
    let source =
        std::fs::read_to_string(common::root().join("crates/connectors/src/kubernetes/mod.rs"))
            .expect("the kubernetes connector's source");
    let start = source
        .find("const PERMISSIONS")
        .expect("the connector declares its PERMISSIONS");
    let table = &source[start..];
    let table = &table[..table.find("];").expect("the table ends")];
    let permissions: BTreeSet<_> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<String> = line
                .trim()
                .trim_start_matches('(')
                .trim_end_matches("),")
                .split(',')
                .map(|f| f.trim().trim_matches('"').to_string())
                .collect();
            match fields.as_slice() {
                [verb, group, resource] => Some((group.clone(), resource.clone(), verb.clone())),
                _ => None,
            }
        })
        .collect();
    assert!(
        permissions.len() >= 3,
        "could not read PERMISSIONS: {table}"
    );
    permissions
}

fn servo_container(deployment: &Deployment) -> &Container {
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod template");
    assert_eq!(pod.containers.len(), 1, "servo runs alone in its pod");
    &pod.containers[0]
}

/// Everything the objects must say about each other and about servo, for `deployment` (container
/// `container`) in `namespace`.
fn check(m: &Manifests, namespace: &str, deployment: &str, container: &str) {
    let name = format!("servo-{deployment}");
    // Every object is namespaced to the application's namespace.
    for (kind, meta) in [
        ("ServiceAccount", &m.service_account.metadata),
        ("Role", &m.role.metadata),
        ("RoleBinding", &m.binding.metadata),
        ("Secret", &m.secret.metadata),
        ("ConfigMap", &m.config_map.metadata),
        ("Deployment", &m.deployment.metadata),
    ] {
        assert_eq!(meta.namespace.as_deref(), Some(namespace), "{kind}");
        assert!(
            meta.name.as_deref().is_some_and(|n| n.starts_with(&name)),
            "{kind} {:?}",
            meta.name
        );
    }

    // The Role: exactly the connector's needs, nothing more (no wildcards, no resourceNames).
    let mut granted = BTreeSet::new();
    for rule in m.role.rules.as_deref().unwrap_or_default() {
        assert!(rule.resource_names.is_none(), "{rule:?}");
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            for resource in rule.resources.as_deref().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    assert_eq!(granted, connector_permissions(), "the Role's rules");

    // The RoleBinding gives that Role to servo's ServiceAccount.
    assert_eq!(m.binding.role_ref.kind, "Role");
    assert_eq!(m.binding.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(
        Some(&m.binding.role_ref.name),
        m.role.metadata.name.as_ref()
    );
    let subjects = m.binding.subjects.as_deref().unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(
        Some(&subjects[0].name),
        m.service_account.metadata.name.as_ref()
    );
    assert_eq!(subjects[0].namespace.as_deref(), Some(namespace));
    // servo reads the in-cluster token from the automounted path.
    assert_ne!(
        m.service_account.automount_service_account_token,
        Some(false)
    );

    // servo's Deployment.
    let spec = m.deployment.spec.as_ref().expect("a spec");
    assert_eq!(spec.replicas, Some(1), "one servo per application");
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate"),
        "two servos must never adjust the same application"
    );
    assert_eq!(
        spec.selector.match_labels.as_ref(),
        spec.template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref()),
        "the selector selects the template's pods"
    );
    let pod = spec.template.spec.as_ref().expect("a pod spec");
    assert_eq!(
        pod.service_account_name.as_ref(),
        m.service_account.metadata.name.as_ref()
    );
    assert_ne!(pod.automount_service_account_token, Some(false));
    let pod_security = pod
        .security_context
        .as_ref()
        .expect("a pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(pod_security.run_as_user.is_some_and(|u| u != 0));
    let c = servo_container(&m.deployment);
    assert!(
        c.image
            .as_deref()
            .is_some_and(|i| i.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION")))),
        "the image is pinned to this version: {:?}",
        c.image
    );
    assert_eq!(
        c.args.as_deref(),
        Some(
            &[
                "run".to_string(),
                "-c".into(),
                format!("{CONFIG_DIR}/servo.yaml")
            ][..]
        )
    );
    let security = c
        .security_context
        .as_ref()
        .expect("a container securityContext");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security
            .capabilities
            .as_ref()
            .and_then(|c| c.drop.as_deref()),
        Some(&["ALL".to_string()][..])
    );
    let resources = c.resources.as_ref().expect("resources");
    for (what, map) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        assert!(
            map.as_ref().is_some_and(|r| r.contains_key("memory")),
            "memory {what}"
        );
    }

    // The token comes from the Secret, under a key the Secret has.
    let env = c.env.as_deref().unwrap_or_default();
    let token = env
        .iter()
        .find(|e| e.name == "SERVO_OPTIMIZER_TOKEN")
        .expect("SERVO_OPTIMIZER_TOKEN is set");
    assert!(
        token.value.is_none(),
        "the token is not written in the Deployment"
    );
    let reference = token
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("from a secretKeyRef");
    assert_eq!(Some(&reference.name), m.secret.metadata.name.as_ref());
    assert_ne!(reference.optional, Some(true));
    assert!(
        m.secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(&reference.key)),
        "the Secret has the key `{}`",
        reference.key
    );

    // The config is the ConfigMap, read-only; something writable is mounted for state.
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let config_mount = mounts
        .iter()
        .find(|v| v.mount_path == CONFIG_DIR)
        .expect("the config is mounted");
    assert_eq!(config_mount.read_only, Some(true));
    let config_volume = volumes
        .iter()
        .find(|v| v.name == config_mount.name)
        .and_then(|v| v.config_map.as_ref())
        .expect("from a ConfigMap");
    assert_eq!(
        Some(&config_volume.name),
        m.config_map.metadata.name.as_ref()
    );
    assert!(
        mounts.iter().any(|mount| mount.read_only != Some(true)
            && volumes
                .iter()
                .any(|v| v.name == mount.name && v.empty_dir.is_some())),
        "a writable emptyDir under the read-only root"
    );

    // The ConfigMap's servo.yaml: valid, for this Deployment, without the token.
    let servo_yaml = m
        .config_map
        .data
        .as_ref()
        .and_then(|d| d.get("servo.yaml"))
        .expect("the ConfigMap holds servo.yaml");
    let config: Value = serde_saphyr::from_str(servo_yaml).expect("servo.yaml is YAML");
    assert_eq!(config["kubernetes"]["namespace"], namespace);
    assert_eq!(config["kubernetes"]["deployments"][0]["name"], deployment);
    assert_eq!(
        config["kubernetes"]["deployments"][0]["containers"][0]["name"],
        container
    );
    assert!(config["optimizer"].get("token").is_none(), "{servo_yaml}");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("servo.yaml");
    std::fs::write(&path, servo_yaml).expect("writes servo.yaml");
    let validated = common::servo()
        .env("SERVO_OPTIMIZER_TOKEN", "a-token-from-the-secret")
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .expect("servo runs");
    assert!(
        validated.status.success(),
        "servo validate: {}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    // Without the Secret's variable the config is incomplete: the token is nowhere else.
    let (code, _, stderr) = common::run(&path, &["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("token"), "{stderr}");
}

#[test]
fn checked_in_manifests_are_the_template_rendered_for_app_in_default() {
    let generated = documents(&generate(&[
        "--namespace",
        "default",
        "--deployment",
        "app",
    ]));
    let bless = std::env::var_os("SERVO_BLESS").is_some();
    for (file, text) in &generated {
        let path = deploy_dir().join(file);
        if bless {
            std::fs::create_dir_all(deploy_dir()).expect("creates deploy/kubernetes");
            std::fs::write(&path, text).expect("writes the manifest");
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == *text,
            "{} differs from the generator's template (crates/servo/src/cli/generate/kubernetes.yaml): edit the template, then run `SERVO_BLESS=1 cargo test --test deploy`",
            path.display()
        );
    }
    // No stray manifest that the generator does not produce.
    let mut on_disk: Vec<String> = std::fs::read_dir(deploy_dir())
        .expect("deploy/kubernetes exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(on_disk, expected);
}

#[test]
fn checked_in_manifests_are_valid_and_consistent() {
    let files: Vec<(String, String)> = FILES
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(deploy_dir().join(f))
                .unwrap_or_else(|e| panic!("deploy/kubernetes/{f}: {e}"));
            (f.to_string(), text)
        })
        .collect();
    check(&parse(&files), "default", "app", "app");
}

#[test]
fn generated_manifests_for_another_deployment_are_valid_and_consistent() {
    let text = generate(&[
        "--namespace",
        "shop",
        "--deployment",
        "web",
        "--container",
        "main",
    ]);
    assert!(
        text.starts_with(&format!(
            "# Generated by servo {}: servo generate kubernetes --manifests --namespace shop --deployment web --container main\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    check(&parse(&documents(&text)), "shop", "web", "main");
}

#[test]
fn generate_manifests_refuses_what_it_cannot_render() {
    for (args, wanted) in [
        (
            &[
                "generate",
                "kubernetes",
                "--manifests",
                "--deployment",
                "Web App",
            ][..],
            "is not a Kubernetes name",
        ),
        (
            &[
                "generate",
                "kubernetes",
                "--manifests",
                "--deployment",
                "web",
                "--namespace",
                "a:b",
            ],
            "is not a Kubernetes name",
        ),
        (
            &["generate", "kubernetes", "--manifests"],
            "--manifests needs the Deployment",
        ),
        (
            &["generate", "wait", "--manifests", "--deployment", "web"],
            "`kubernetes` connector",
        ),
        // The manifests' flags mean nothing without --manifests.
        (
            &["generate", "kubernetes", "--deployment", "web"],
            "--manifests",
        ),
    ] {
        let output = common::servo().args(args).output().expect("servo runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn generate_manifests_writes_a_file_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("servo-web.yaml");
    let write = |force: bool| {
        let mut cmd = common::servo();
        cmd.args([
            "generate",
            "kubernetes",
            "--manifests",
            "--deployment",
            "web",
            "--output",
        ])
        .arg(&path);
        if force {
            cmd.arg("--force");
        }
        cmd.output().expect("servo runs")
    };
    assert!(write(false).status.success());
    let text = std::fs::read_to_string(&path).expect("the manifests were written");
    assert_eq!(documents(&text).len(), FILES.len());
    let again = write(false);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert!(write(true).status.success());
}

/// `deploy/optimizer/optimizer.yaml`: every document a real API type, the pieces wired to each
/// other, and the container's arguments accepted by the binary (it is started with them, its store
/// and address moved into the test's sandbox, and must answer its readiness probe).
#[test]
fn the_optimizer_server_manifest_is_valid_consistent_and_starts() {
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    let text = std::fs::read_to_string(common::root().join("deploy/optimizer/optimizer.yaml"))
        .expect("deploy/optimizer/optimizer.yaml");
    let documents: Vec<&str> = text.split("\n---\n").collect();
    assert_eq!(
        documents.len(),
        4,
        "ServiceAccount, PVC, Deployment, Service"
    );
    let account: ServiceAccount = typed("serviceaccount", documents[0]);
    let claim: PersistentVolumeClaim = typed("persistentvolumeclaim", documents[1]);
    let deployment: Deployment = typed("deployment", documents[2]);
    let service: Service = typed("service", documents[3]);

    let spec = deployment.spec.as_ref().expect("spec");
    let strategy = spec.strategy.as_ref().and_then(|s| s.type_.as_deref());
    assert_eq!(
        strategy,
        Some("Recreate"),
        "SQLite has one writer: never two pods at once"
    );
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.service_account_name, account.metadata.name);
    assert_eq!(
        pod.automount_service_account_token,
        Some(false),
        "it needs no API access"
    );
    assert_eq!(
        pod.security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root),
        Some(true)
    );
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert_eq!(args[..2], ["optimizer", "serve"]);
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
    };
    let listen = value("--listen");
    let port: i32 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let ports = container.ports.clone().unwrap_or_default();
    assert_eq!(ports[0].container_port, port);
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("an HTTP probe");
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, IntOrString::Int(port));
    }
    let service_port = &service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .expect("ports")[0];
    assert_eq!(
        service_port.target_port,
        Some(IntOrString::String(
            ports[0].name.clone().expect("a named port")
        ))
    );
    assert_eq!(
        service.spec.as_ref().and_then(|s| s.selector.clone()),
        spec.selector.match_labels
    );
    // The store lives on the claim.
    let store = value("--store");
    let mount = container
        .volume_mounts
        .as_ref()
        .and_then(|m| m.iter().find(|m| store.starts_with(&m.mount_path)))
        .expect("the store is on a mounted volume");
    let volume = pod
        .volumes
        .as_ref()
        .and_then(|v| v.iter().find(|v| v.name == mount.name))
        .expect("the mounted volume");
    assert_eq!(
        volume
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.clone()),
        claim.metadata.name
    );

    // The same arguments start the real server.
    let dir = tempfile::tempdir().expect("tempdir");
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let sandboxed: Vec<String> = args
        .iter()
        .map(|a| {
            if *a == listen {
                format!("127.0.0.1:{free}")
            } else if *a == store {
                dir.path().join("optimizer.db").display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_servo"))
        .args(&sandboxed)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the server starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let healthy = loop {
        let answer = std::net::TcpStream::connect(("127.0.0.1", free))
            .ok()
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .ok()?;
                let mut text = String::new();
                s.read_to_string(&mut text).ok()?;
                Some(text)
            });
        if let Some(answer) = answer {
            break answer.starts_with("HTTP/1.1 200");
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        healthy,
        "the server started with {sandboxed:?} never answered /healthz"
    );
}
