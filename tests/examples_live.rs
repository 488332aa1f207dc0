//! The self-contained examples run for real: they start their own servers (servo's demo app, a
//! Prometheus) through `process` mounts, on fixed loopback ports of their own.

mod common;

use common::{example, run};
use serde_json::Value;

#[test]
fn the_prometheus_example_measures_the_demo_app_through_a_real_prometheus() {
    // A Prometheus that has just started scrapes a new target only from its scrape manager's
    // first tick (up to 5 s), and a rate needs two samples: without a warmup the window's first
    // points are missing or cover time before the load began, and its mean reads low. The delay
    // lets the window's last scrape land before the query.
    let (code, stdout, stderr) = run(
        &example("prometheus.yaml"),
        &[
            "measure",
            "-o",
            "json",
            "--duration",
            "6s",
            "--warmup",
            "3s",
            "--delay",
            "1s",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let m: Value = serde_json::from_str(&stdout).expect("json");
    let value = |name: &str| {
        m["metrics"][name]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("no {name}: {m:#}"))
    };
    // Both vegeta and Prometheus provide `throughput`: each is qualified by its mount.
    let (scraped, sent) = (value("prometheus.throughput"), value("vegeta.throughput"));
    assert!((sent - 100.0).abs() < 5.0, "vegeta sent {sent} rps");
    assert!(
        (scraped - sent).abs() / sent < 0.25,
        "Prometheus saw {scraped} rps, vegeta sent {sent}"
    );
    assert!(value("prometheus.latency_p99") > 0.0);
    // Two process mounts: each one's resource metrics are kept apart.
    assert!(value("demo.rss_max_bytes") > 1e6);
    assert!(value("prometheus-server.rss_max_bytes") > 1e6);
}
