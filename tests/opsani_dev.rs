//! The `opsani_dev` connector and `servo inject-sidecar` / `eject-sidecar` through the real binary,
//! against the fake API server of `common/kube_api.rs` and a real Prometheus
//! (`common/prometheus.rs`) scraping a fake Envoy exporter this test owns.
//!
//! The exporter serves, for two main Pods and the tuning Pod, the `envoy_cluster_*` series an
//! Envoy sidecar serves at `/stats/prometheus`: `membership_healthy`, the `upstream_rq_total`
//! and `upstream_rq_xx` counters growing at known rates, and an `upstream_rq_time` histogram
//! whose buckets grow at known rates. Prometheus scrapes each Pod's path every second with the
//! labels ServoX's sidecar Prometheus gives Envoy targets (`kubernetes_pod_name`,
//! `kubernetes_namespace`, and `opsani_role: tuning` on the tuning Pod), so ServoX's PromQL
//! reads them unchanged and the values it must return follow from the rates.

mod common;
#[path = "common/kube_api.rs"]
mod kube_api;
#[path = "common/prometheus.rs"]
mod prometheus;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube_api::{FakeApi, TOKEN};
use prometheus::{Exporter, PrometheusProcess, http_get};
use serde_json::{Value, json};

const NAMESPACE: &str = "shop";
const PATIENCE: Duration = Duration::from_secs(20);

/// The upper bounds (ms) of the latency histogram's buckets, `+Inf` last.
const BOUNDS: [f64; 6] = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0];

/// One Pod's Envoy: its name, whether it is the tuning Pod, its requests per second by response
/// code class (2, 3, 4, 5), and its requests per second in each latency bucket (the last one
/// above 250 ms).
struct Envoy {
    pod: &'static str,
    tuning: bool,
    by_class: [f64; 4],
    by_bucket: [f64; 7],
}

impl Envoy {
    fn total(&self) -> f64 {
        self.by_class.iter().sum()
    }

    /// The `q` quantile Prometheus' `histogram_quantile` computes from these bucket rates:
    /// linear interpolation inside the bucket that holds the rank (the first from 0).
    fn quantile(&self, q: f64) -> f64 {
        let rank = q * self.by_bucket.iter().sum::<f64>();
        let mut below = 0.0;
        for (i, &count) in self.by_bucket.iter().enumerate() {
            if below + count >= rank {
                let lower = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
                return lower + (BOUNDS[i] - lower) * (rank - below) / count;
            }
            below += count;
        }
        unreachable!("a rank within the total")
    }
}

/// Two main Pods and the tuning Pod; by_bucket sums to the total of by_class.
const ENVOYS: [Envoy; 3] = [
    Envoy {
        pod: "web-1-0",
        tuning: false,
        by_class: [8.0, 1.0, 0.5, 0.5],
        by_bucket: [1.0, 2.0, 3.0, 2.0, 1.0, 0.5, 0.5],
    },
    Envoy {
        pod: "web-1-1",
        tuning: false,
        by_class: [18.0, 0.0, 1.0, 1.0],
        by_bucket: [2.0, 4.0, 8.0, 3.0, 2.0, 1.0, 0.0],
    },
    Envoy {
        pod: "web-tuning",
        tuning: true,
        by_class: [5.0, 0.0, 0.0, 1.0],
        by_bucket: [0.0, 1.0, 1.0, 2.0, 1.0, 1.0, 0.0],
    },
];

/// The `/stats/prometheus` text of one Envoy `elapsed` seconds after the exporter started. The
/// counters start far from zero so `rate()`'s extrapolation is not clamped at their origin.
fn stats(envoy: &Envoy, elapsed: f64) -> String {
    let counter = |rate: f64| 1_000.0 + rate * elapsed;
    let mut out = String::from(
        "# TYPE envoy_cluster_membership_healthy gauge\n\
         envoy_cluster_membership_healthy{envoy_cluster_name=\"opsani_proxy\"} 1\n\
         # TYPE envoy_cluster_upstream_rq_total counter\n",
    );
    out.push_str(&format!(
        "envoy_cluster_upstream_rq_total{{envoy_cluster_name=\"opsani_proxy\"}} {}\n",
        counter(envoy.total())
    ));
    out.push_str("# TYPE envoy_cluster_upstream_rq_xx counter\n");
    for (class, rate) in envoy.by_class.iter().enumerate() {
        out.push_str(&format!(
            "envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"{}\",envoy_cluster_name=\"opsani_proxy\"}} {}\n",
            class + 2,
            counter(*rate)
        ));
    }
    out.push_str("# TYPE envoy_cluster_upstream_rq_time histogram\n");
    let mut cumulative = 0.0;
    for (i, rate) in envoy.by_bucket.iter().enumerate() {
        cumulative += rate;
        let le = BOUNDS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
        out.push_str(&format!(
            "envoy_cluster_upstream_rq_time_bucket{{envoy_cluster_name=\"opsani_proxy\",le=\"{le}\"}} {}\n",
            counter(cumulative)
        ));
    }
    out.push_str(&format!(
        "envoy_cluster_upstream_rq_time_sum{{envoy_cluster_name=\"opsani_proxy\"}} {}\n\
         envoy_cluster_upstream_rq_time_count{{envoy_cluster_name=\"opsani_proxy\"}} {}\n",
        counter(cumulative * 20.0),
        counter(cumulative)
    ));
    out
}

/// The fake Envoys' pages: `/<pod>/stats/prometheus`.
fn page(path: &str, elapsed: f64) -> Option<String> {
    ENVOYS
        .iter()
        .find(|e| path == format!("/{}/stats/prometheus", e.pod))
        .map(|e| stats(e, elapsed))
}

/// Prometheus scraping each fake Envoy as ServoX's sidecar Prometheus labels Envoy targets.
struct Envoys {
    process: PrometheusProcess,
    dir: tempfile::TempDir,
    // Last: dropped after Prometheus.
    _exporter: Exporter,
}

impl Envoys {
    fn start() -> Envoys {
        let exporter = Exporter::start(page);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: opsani-envoy-sidecars\n    static_configs:\n",
        );
        for e in &ENVOYS {
            config.push_str(&format!(
                "      - targets: ['{}']\n        labels:\n          __metrics_path__: /{}/stats/prometheus\n          kubernetes_pod_name: {}\n          kubernetes_namespace: {NAMESPACE}\n",
                exporter.addr, e.pod, e.pod
            ));
            if e.tuning {
                config.push_str("          opsani_role: tuning\n");
            }
        }
        let process = PrometheusProcess::start(dir.path(), &config, "", PATIENCE);
        Envoys {
            process,
            dir,
            _exporter: exporter,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.process.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn value(&self, query: &str) -> Option<f64> {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (_, body) =
            http_get(self.process.addr, &format!("/api/v1/query?query={encoded}")).ok()?;
        let answer: Value = serde_json::from_str(&body).ok()?;
        answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    }

    /// Waits until every Envoy has been scraped (once a second) for at least `span`.
    fn wait_for(&self, span: Duration) {
        let deadline = Instant::now() + span + PATIENCE;
        let wanted = span.as_secs_f64() + 1.0;
        loop {
            let scraped = self
                .value("count(envoy_cluster_upstream_rq_total)")
                .unwrap_or(0.0);
            let samples = self
                .value("min(count_over_time(envoy_cluster_upstream_rq_total[5m]))")
                .unwrap_or(0.0);
            if scraped >= ENVOYS.len() as f64 && samples >= wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape the Envoys for {span:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NAMESPACE, "generation": 1},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "main", "image": "example/web:1",
                     "ports": [{"name": "http", "containerPort": 8080}],
                     "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                   "limits": {"cpu": "1", "memory": "1Gi"}}}
                ]}
            }
        }
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": NAMESPACE, "labels": {"app": "web"}},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]
        }
    })
}

fn cluster() -> FakeApi {
    let api = FakeApi::start(vec![deployment()]);
    api.cluster().add_service(service());
    api
}

/// A directory with a kubeconfig for the fake and an opsani_dev config (plus `extra` YAML).
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(api: &FakeApi, prometheus_url: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("kubeconfig"),
        api.kubeconfig(json!({"token": TOKEN})).to_string(),
    )
    .expect("write kubeconfig");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        format!(
            "optimizer:\n  id: example.com/app\n  token: t0123456789\n\
             opsani_dev:\n  namespace: {NAMESPACE}\n  deployment: web\n  container: main\n  service: web\n\
             \x20 cpu: {{min: 250m, max: '2'}}\n  memory: {{min: 256Mi, max: 2Gi}}\n\
             \x20 prometheus_base_url: {prometheus_url}\n  timeout: 10s\n{extra}"
        ),
    )
    .expect("write servo.yaml");
    Setup { dir, config }
}

/// `servo ARGS -c CONFIG` with the kubeconfig of `setup`: (exit code, stdout, stderr).
fn servo(setup: &Setup, args: &[&str]) -> (i32, String, String) {
    let output = common::servo()
        .env("KUBECONFIG", setup.dir.path().join("kubeconfig"))
        .args(args)
        .arg("-c")
        .arg(&setup.config)
        .output()
        .expect("servo runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `servo SUBCOMMAND ARGS` (no config) against the fake.
fn sidecar_command(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = common::servo()
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .args(args)
        .output()
        .expect("servo runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn measure_returns_what_the_envoy_series_imply() {
    let api = cluster();
    let envoys = Envoys::start();
    // ServoX's queries take rates over [1m]: the whole minute must have been scraped.
    envoys.wait_for(Duration::from_secs(62));
    let setup = setup(&api, &envoys.url(), "");
    let (code, stdout, stderr) = servo(&setup, &["measure", "--duration", "2s", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}\n{}", envoys.log());
    let metrics = &json_of(&stdout)["metrics"];

    let (main, tuning): (Vec<&Envoy>, Vec<&Envoy>) = ENVOYS.iter().partition(|e| !e.tuning);
    let success = |e: &&Envoy| e.by_class[0] + e.by_class[1];
    let errors = |e: &&Envoy| e.by_class[2] + e.by_class[3];
    let expected: [(&str, &str, f64); 13] = [
        ("main_instance_count", "", main.len() as f64),
        ("tuning_instance_count", "", tuning.len() as f64),
        (
            "total_request_rate",
            "rps",
            ENVOYS.iter().map(Envoy::total).sum(),
        ),
        (
            "main_request_rate",
            "rps",
            mean(main.iter().map(|e| e.total())),
        ),
        (
            "tuning_request_rate",
            "rps",
            mean(tuning.iter().map(|e| e.total())),
        ),
        ("main_success_rate", "rps", mean(main.iter().map(success))),
        (
            "tuning_success_rate",
            "rps",
            mean(tuning.iter().map(success)),
        ),
        ("main_error_rate", "rps", mean(main.iter().map(errors))),
        ("tuning_error_rate", "rps", mean(tuning.iter().map(errors))),
        (
            "main_p90_latency",
            "ms",
            mean(main.iter().map(|e| e.quantile(0.9))),
        ),
        (
            "tuning_p90_latency",
            "ms",
            mean(tuning.iter().map(|e| e.quantile(0.9))),
        ),
        (
            "main_p50_latency",
            "ms",
            mean(main.iter().map(|e| e.quantile(0.5))),
        ),
        (
            "tuning_p50_latency",
            "ms",
            mean(tuning.iter().map(|e| e.quantile(0.5))),
        ),
    ];
    for (name, unit, want) in expected {
        let metric = &metrics[name];
        assert_eq!(metric["unit"], unit, "{name}: {metric}");
        let got = metric["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} has no value: {stdout}"));
        println!("{name}: {got} {unit} (expected {want})");
        // Scrapes are stamped when Prometheus sends them, values computed when the exporter
        // answers: milliseconds apart, which moves a rate over [1m] by far less than 0.5%
        // (5e-6 measured on an idle machine).
        assert!(
            (got - want).abs() <= want.abs() * 0.005 + 1e-9,
            "{name}: {got}, expected {want}"
        );
    }
    // The mounted kubernetes connector's cost of the Deployment is there too.
    assert!(
        metrics["cost"]["value"].as_f64().is_some_and(|c| c > 0.0),
        "{stdout}"
    );
}

/// The failed checks of one `servo check -o json`, by name.
fn failed(stdout: &str) -> Vec<String> {
    json_of(stdout)["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["success"] == false)
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn check_walks_a_bare_deployment_to_ready_applying_each_remedy_it_shows() {
    let api = cluster();
    let envoys = Envoys::start();
    envoys.wait_for(Duration::from_secs(2));

    // With `checks.remedy: false` the fixes are shown, not applied.
    let hands_off = setup(&api, &envoys.url(), "checks:\n  remedy: false\n");
    let (code, stdout, stderr) = servo(&hands_off, &["check", "-o", "json"]);
    assert_eq!(code, 3, "{stderr}");
    let report = json_of(&stdout);
    let annotations = report["checks"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["name"] == "web PodSpec has expected annotations")
        })
        .expect("the annotations check");
    assert!(
        annotations["hint"].as_str().is_some_and(
            |h| h.contains("kubectl --namespace shop patch deployment web --type='merge'")
        ),
        "{annotations}"
    );
    assert!(
        api.writes().iter().all(|w| w.method == "POST"),
        "only access reviews were sent: {:?}",
        api.writes()
    );

    let setup = setup(&api, &envoys.url(), "");
    let mut rounds = Vec::new();
    loop {
        let (code, stdout, stderr) = servo(&setup, &["check", "-o", "json"]);
        if code == 0 {
            break;
        }
        assert_eq!(code, 3, "{stderr}");
        // Each remedy is announced before it is applied.
        assert!(stderr.contains("applying the remedy"), "{stderr}");
        rounds.push(failed(&stdout));
        assert!(
            rounds.len() < 5,
            "still failing after {rounds:?}:\n{stdout}"
        );
    }
    assert_eq!(
        rounds,
        [vec![
            "web PodSpec has expected annotations",
            "Deployment PodSpec has expected labels",
            "Deployment has Envoy sidecar container",
        ],],
        "the sidecar's remedy points the Service at Envoy too, so one round fixes all"
    );
    let d = api.cluster().deployment(NAMESPACE, "web").expect("web");
    let template = &d["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["servo.opsani.com/optimizer"],
        "example.com/app"
    );
    assert_eq!(
        template["metadata"]["annotations"]["prometheus.opsani.com/port"],
        "9901"
    );
    assert_eq!(
        template["metadata"]["labels"]["servo.opsani.com/optimizer"],
        "example.com_app"
    );
    assert_eq!(
        template["metadata"]["labels"]["sidecar.opsani.com/type"],
        "envoy"
    );
    assert_eq!(template["spec"]["containers"][1]["name"], "opsani-envoy");
    let s = api
        .cluster()
        .service(NAMESPACE, "web")
        .expect("web service");
    assert_eq!(s["spec"]["ports"][0]["targetPort"], 9980);
    // The tuning Pod was created by the last round's check (and deleted again when servo
    // stopped, as the kubernetes connector does unless `keep_tuning_pods`).
    assert!(
        api.writes()
            .iter()
            .any(|w| w.method == "POST" && w.path == "pods/shop/web-tuning" && w.status == 201),
        "the tuning pod was created: {:?}",
        api.writes()
    );
}

/// The objects as a user compares them: what the server bumps on every write left out.
fn comparable(mut object: Value) -> Value {
    for key in ["resourceVersion", "generation"] {
        object["metadata"].as_object_mut().map(|m| m.remove(key));
    }
    object.as_object_mut().map(|o| o.remove("status"));
    object
}

#[test]
fn inject_then_eject_leaves_the_deployment_and_service_as_they_were() {
    let api = cluster();
    let setup = setup(&api, "http://127.0.0.1:9", "");
    let dir = setup.dir.path();
    let objects = || {
        // One lock at a time: the fake's state is behind a plain mutex.
        let deployment = api.cluster().deployment(NAMESPACE, "web").expect("web");
        let service = api.cluster().service(NAMESPACE, "web").expect("service");
        (deployment, service)
    };
    let before = objects();
    let inject = [
        "inject-sidecar",
        "-n",
        NAMESPACE,
        "--service",
        "web",
        "deployment/web",
    ];

    let (code, stdout, stderr) = sidecar_command(dir, &[&inject[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("PATCH deployment/web -n shop") && stdout.contains("\"targetPort\": 9980"),
        "{stdout}"
    );
    assert!(api.writes().is_empty(), "a dry run writes nothing");

    let (code, stdout, stderr) = sidecar_command(dir, &inject);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Envoy sidecar injected to Deployment web in shop"),
        "{stdout}"
    );
    let d = api.cluster().deployment(NAMESPACE, "web").expect("web");
    let sidecar = &d["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(sidecar["name"], "opsani-envoy");
    assert_eq!(sidecar["image"], "opsani/envoy-proxy:v1.24.0");
    assert_eq!(
        sidecar["env"][1],
        json!({"name": "OPSANI_ENVOY_PROXIED_CONTAINER_PORT", "value": "8080"})
    );
    let s = api.cluster().service(NAMESPACE, "web").expect("service");
    assert_eq!(s["spec"]["ports"][0]["targetPort"], 9980);

    // Again: nothing to do, nothing written.
    let writes = api.writes().len();
    let (code, stdout, stderr) = sidecar_command(dir, &inject);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("already injected"), "{stdout}");
    assert_eq!(api.writes().len(), writes);

    let eject = ["eject-sidecar", "-n", NAMESPACE, "deployment/web"];
    let (code, stdout, stderr) = sidecar_command(dir, &[&eject[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("\"$patch\": \"delete\"") && stdout.contains("\"targetPort\": \"http\""),
        "{stdout}"
    );
    assert_eq!(api.writes().len(), writes, "a dry run writes nothing");

    let (code, stdout, stderr) = sidecar_command(dir, &eject);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Envoy sidecar ejected from Deployment web in shop"),
        "{stdout}"
    );
    let after = objects();
    assert_eq!(
        serde_json::to_string(&comparable(after.0)).expect("json"),
        serde_json::to_string(&comparable(before.0)).expect("json")
    );
    assert_eq!(
        serde_json::to_string(&comparable(after.1)).expect("json"),
        serde_json::to_string(&comparable(before.1)).expect("json")
    );

    // Nothing left to eject: ServoX's message and exit code.
    let (code, _, stderr) = sidecar_command(dir, &eject);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("No Envoy sidecar found in Deployment web in shop"),
        "{stderr}"
    );
    // A Pod is refused as a usage error.
    let (code, _, stderr) =
        sidecar_command(dir, &["inject-sidecar", "--service", "web", "pod/web-1-0"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn an_unreachable_prometheus_stops_the_checks_and_the_hint_names_its_key() {
    let api = cluster();
    let nothing = prometheus::free_port();
    let setup = setup(&api, &format!("http://{nothing}"), "");
    let (code, stdout, stderr) = servo(&setup, &["check", "-o", "json"]);
    assert_eq!(code, 3, "{stderr}");
    let report = json_of(&stdout);
    let checks = report["checks"].as_array().expect("checks");
    let last = checks.last().expect("some checks");
    // A required check: nothing after it runs, as in ServoX.
    assert_eq!(last["name"], "Prometheus is accessible", "{stdout}");
    assert_eq!(last["success"], false);
    let hint = last["hint"].as_str().unwrap_or_default();
    assert!(
        hint.contains("`opsani_dev.prometheus_base_url`")
            && hint.contains("SERVO_OPSANI_DEV_PROMETHEUS_BASE_URL"),
        "{hint}"
    );
    assert!(
        checks[..checks.len() - 1]
            .iter()
            .all(|c| c["success"] == true),
        "{stdout}"
    );
}
