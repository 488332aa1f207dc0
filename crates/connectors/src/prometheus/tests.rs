use super::api::{RangeSeries, Sample};
use super::measure::*;
use super::settings::*;
use super::*;
use serde_json::json;
use servo_core::connector::ConnectorSettings;
use servo_core::units::Duration;

fn settings(value: serde_json::Value) -> Settings {
    serde_json::from_value(value).expect("settings parse")
}

fn series(labels: &[(&str, &str)], points: &[(f64, f64)]) -> RangeSeries {
    RangeSeries {
        metric: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        values: points
            .iter()
            .map(|&(time, value)| Sample { time, value })
            .collect(),
    }
}

#[test]
fn a_servox_section_loads_unchanged() {
    let s = settings(json!({
        "description": "from ServoX",
        "base_url": "http://prometheus.monitoring:9090/",
        "streaming_interval": "10s",
        "metrics": [
            {"name": "throughput", "unit": "rps", "query": "sum(rate(requests_total[1m]))", "step": "1m", "absent": "zero"},
            {"name": "p99", "unit": "ms", "query": "histogram_quantile(0.99, x)"}
        ],
        "targets": [{"scrapePool": "app", "scrapeUrl": "http://app:8080/metrics", "globalUrl": "http://app:8080/metrics",
                     "health": "up", "labels": {"job": "app"}, "discoveredLabels": {}, "lastScrape": "2024-01-01T00:00:00Z",
                     "lastScrapeDuration": 0.01, "lastError": ""}],
        "fast_fail": {"disabled": 1, "period": "30s", "span": "1m", "skip": "2m", "treat_zero_as_missing": true}
    }));
    assert!(s.validate().is_empty(), "{:?}", s.validate());
    assert_eq!(
        s.metrics[1].step,
        Duration::from_secs(60),
        "ServoX's default step"
    );
    assert_eq!(
        s.metrics[1].absent,
        Absent::Ignore,
        "ServoX's default policy"
    );
    assert!(s.fast_fail.disabled.0);
    assert_eq!(s.timeout, Duration::from_secs(10));

    let defaults = settings(json!({"metrics": []}));
    assert_eq!(defaults.base_url, "http://prometheus:9090");
    assert_eq!(defaults.fast_fail.period, Duration::from_secs(60));
    assert_eq!(
        defaults.fast_fail.span(),
        Duration::from_secs(60),
        "span defaults to period"
    );
    assert!(!defaults.fast_fail.disabled.0);
}

#[test]
fn fast_fail_disabled_is_zero_or_one() {
    for (value, disabled) in [(json!(0), false), (json!(1), true), (json!(true), true)] {
        let s = settings(json!({"metrics": [], "fast_fail": {"disabled": value}}));
        assert_eq!(s.fast_fail.disabled.0, disabled);
    }
    let two: Result<Settings, _> =
        serde_json::from_value(json!({"metrics": [], "fast_fail": {"disabled": 2}}));
    assert!(two.unwrap_err().to_string().contains("0 or 1"));
    assert_eq!(
        serde_json::to_value(Switch(true)).expect("serializes"),
        json!(1)
    );
}

#[test]
fn validation_points_at_each_problem() {
    let s = settings(json!({
        "base_url": "prometheus:9090",
        "metrics": [
            {"name": "a", "query": "up", "step": "0s"},
            {"name": "a", "query": "  "}
        ],
        "targets": [{"health": "up"}],
        "timeout": "0s"
    }));
    let paths: Vec<String> = s.validate().iter().map(|p| p.path.to_string()).collect();
    for expected in [
        "base_url",
        "metrics[0].step",
        "metrics[1].name",
        "metrics[1].query",
        "targets[0]",
        "timeout",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not in {paths:?}"
        );
    }
    assert!(parse_base_url("ftp://host").is_err());
    assert!(parse_base_url("http://host:9090/?x=1").is_err());
    assert!(parse_base_url("https://host/prometheus").is_ok());
}

#[test]
fn absent_zero_wraps_the_query_like_servox() {
    let mut m = PrometheusMetric {
        name: "rps".into(),
        unit: "rps".into(),
        query: "sum(rate(x[1m]))".into(),
        step: default_step(),
        absent: Absent::Zero,
    };
    assert_eq!(m.promql(), "(sum(rate(x[1m]))) or on() vector(0)");
    m.query = "x # a comment".into();
    assert_eq!(m.promql(), "(x # a comment\n) or on() vector(0)");
    m.absent = Absent::Fail;
    assert_eq!(m.promql(), "x # a comment");
}

#[test]
fn one_series_reads_as_the_mean_of_its_finite_points() {
    let s = Summary::of(&[series(
        &[("job", "app")],
        &[(1.0, 2.0), (2.0, f64::NAN), (3.0, 4.0)],
    )])
    .expect("data");
    assert_eq!(s.value, 3.0);
    assert_eq!(s.series.points, [(1.0, 2.0), (3.0, 4.0)]);
    assert_eq!(s.series.id.as_deref(), Some("{job=\"app\"}"));
    assert!(s.averaged.is_empty());
}

#[test]
fn several_series_read_as_the_mean_of_their_means() {
    let s = Summary::of(&[
        series(
            &[("__name__", "lat"), ("pod", "a")],
            &[(1.0, 1.0), (2.0, 3.0)],
        ),
        series(&[("__name__", "lat"), ("pod", "b")], &[(2.0, 10.0)]),
    ])
    .expect("data");
    assert_eq!(s.value, (2.0 + 10.0) / 2.0);
    assert_eq!(s.series.points, [(1.0, 1.0), (2.0, 6.5)]);
    assert_eq!(s.series.id, None);
    assert_eq!(s.averaged, ["lat{pod=\"a\"}", "lat{pod=\"b\"}"]);
}

#[test]
fn no_finite_point_means_absent() {
    assert_eq!(Summary::of(&[]), None);
    assert_eq!(
        Summary::of(&[series(&[], &[(1.0, f64::NAN), (2.0, f64::INFINITY)])]),
        None
    );
}

#[test]
fn waits_beyond_the_clock_are_refused_not_panicked_on() {
    let now = Instant::now();
    assert!(after(now, &[Duration::from_secs(60), Duration::from_secs(1)]).is_ok());
    let error = after(now, &[Duration::from_secs(u64::MAX)]).expect_err("overflows");
    assert!(error.to_string().contains("too long"), "{error}");
}

#[test]
fn expected_targets_match_by_url_or_by_pool_and_labels() {
    let active = api::ActiveTarget {
        pool: "app".into(),
        url: "http://app:8080/metrics".into(),
        health: "up".into(),
        labels: [
            ("job".to_string(), "app".to_string()),
            ("zone".to_string(), "a".to_string()),
        ]
        .into(),
        last_error: String::new(),
    };
    let by_url = ExpectedTarget {
        url: Some("http://app:8080/metrics".into()),
        ..Default::default()
    };
    let by_labels = ExpectedTarget {
        pool: Some("app".into()),
        labels: Some([("zone".to_string(), "a".to_string())].into()),
        ..Default::default()
    };
    let other = ExpectedTarget {
        pool: Some("db".into()),
        ..Default::default()
    };
    assert!(by_url.matches(&active) && by_labels.matches(&active) && !other.matches(&active));
    assert_eq!(by_labels.to_string(), "{job=\"app\", zone=\"a\"}");
}

/// A stand-in for Prometheus that answers every request with one series at `value`: enough
/// to drive the fast-fail loop, which the CLI cannot reach (it sends no SLO conditions).
struct FakePrometheus {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl FakePrometheus {
    async fn start(value: f64) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[[1,"{value}"]]}}]}}}}"#
        );
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        Self { url, task }
    }
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn connector(url: &str, fast_fail: serde_json::Value) -> Prometheus {
    let settings = settings(json!({
        "base_url": url,
        "metrics": [{"name": "p99", "unit": "ms", "query": "p99", "step": "1s"}],
        "fast_fail": fast_fail,
    }));
    let cx = BuildContext {
        mount: "prometheus".into(),
        servo: "test".into(),
        base_dir: std::path::PathBuf::from("."),
        remote_optimizer: false,
        optimizer_id: None,
    };
    Prometheus::build(settings, &cx).expect("builds")
}

fn request(duration: Duration, slo: serde_json::Value) -> MeasureRequest {
    MeasureRequest {
        metrics: Vec::new(),
        control: servo_core::types::Control {
            duration,
            userdata: Some(json!({ "slo": { "conditions": [slo] } })),
            ..Default::default()
        },
    }
}

#[tokio::test]
async fn fast_fail_stops_a_measurement_that_breaks_an_slo() {
    let fake = FakePrometheus::start(500.0).await;
    let prometheus = connector(&fake.url, json!({"period": "50ms"}));
    let started = std::time::Instant::now();
    let result = prometheus
        .measure(
            &request(
                Duration::from_secs(30),
                json!({"metric": "p99", "threshold": 100}),
            ),
            &EventContext::default(),
        )
        .await;
    let error = result.expect_err("the SLO is broken");
    assert!(
        error
            .to_string()
            .contains("SLO violated: (p99 below 100) failed 1 of the last 1 checks (500 > 100)"),
        "{error}"
    );
    assert!(
        error
            .hint()
            .is_some_and(|h| h.contains("fast_fail.disabled"))
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "stopped early: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn fast_fail_waits_out_skip_and_can_be_disabled() {
    let fake = FakePrometheus::start(500.0).await;
    let broken = json!({"metric": "p99", "threshold": 100});
    for fast_fail in [
        json!({"period": "50ms", "skip": "1h"}),
        json!({"period": "50ms", "disabled": 1}),
    ] {
        let prometheus = connector(&fake.url, fast_fail.clone());
        let measurement = prometheus
            .measure(
                &request(Duration::from_millis(300), broken.clone()),
                &EventContext::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{fast_fail}: {e}"));
        assert_eq!(
            measurement.reading("p99").map(|r| r.value),
            Some(500.0),
            "{fast_fail}"
        );
    }
}

#[tokio::test]
async fn readings_so_far_reach_a_watcher_every_period_without_slo_conditions() {
    let fake = FakePrometheus::start(500.0).await;
    let prometheus = connector(&fake.url, json!({"period": "50ms"}));
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&reports);
    let cx =
        EventContext::default().with_partial(servo_core::PartialReadings::new(move |readings| {
            seen.lock().expect("not poisoned").push(readings)
        }));
    let request = MeasureRequest {
        metrics: Vec::new(),
        control: servo_core::types::Control {
            duration: Duration::from_millis(400),
            ..Default::default()
        },
    };
    let measurement = prometheus.measure(&request, &cx).await.expect("measures");
    assert_eq!(measurement.reading("p99").map(|r| r.value), Some(500.0));
    let reports = reports.lock().expect("not poisoned").clone();
    assert!(reports.len() >= 2, "{reports:?}");
    for readings in reports.iter() {
        assert_eq!(
            readings
                .iter()
                .map(|r| (r.metric.name.as_str(), r.metric.unit.as_str(), r.value))
                .collect::<Vec<_>>(),
            vec![("p99", "ms", 500.0)]
        );
    }

    // `fast_fail.disabled` turns the readings so far off too.
    let quiet = connector(&fake.url, json!({"period": "50ms", "disabled": 1}));
    let silent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&silent);
    let cx = EventContext::default().with_partial(servo_core::PartialReadings::new(move |_| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    quiet.measure(&request, &cx).await.expect("measures");
    assert_eq!(silent.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_cancelled_measurement_returns_at_once() {
    let fake = FakePrometheus::start(1.0).await;
    let prometheus = connector(&fake.url, json!({}));
    let cx = EventContext::default();
    cx.cancel.cancel();
    let result = prometheus
        .measure(
            &request(
                Duration::from_secs(60),
                json!({"metric": "p99", "threshold": 100}),
            ),
            &cx,
        )
        .await;
    assert!(matches!(result, Err(ConnectorError::Cancelled)));
}

#[test]
fn the_example_is_valid() {
    assert!(Settings::example().validate().is_empty());
}
