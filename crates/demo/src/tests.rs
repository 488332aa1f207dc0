//! End-to-end tests against a real server on 127.0.0.1, plus flag parsing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;

/// Tests that run a server burn real CPU and one of them measures latency, so
/// they take turns rather than disturbing each other on a small machine.
pub(super) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Parser)]
#[command(name = "demo-app")]
struct Cli {
    #[command(flatten)]
    args: DemoArgs,
}

fn parse(flags: &[&str]) -> Result<DemoArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("demo-app").chain(flags.iter().copied())).map(|c| c.args)
}

struct Running {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<io::Result<()>>,
    /// What `/healthz` said on the first poll, right after startup.
    first_health: (u16, String),
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s of being cancelled")
            .expect("server task does not panic");
        assert!(result.is_ok(), "server returned {result:?}");
    }
}

async fn start(flags: &[&str]) -> Running {
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(flags);
    let args = parse(&all).expect("test flags are valid");
    let server = DemoServer::bind(args).await.expect("bind on 127.0.0.1:0");
    let addr = server.local_addr();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(server.run(cancel.clone()));
    let first_health = get(addr, "/healthz").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(addr, "/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "server not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running {
        addr,
        cancel,
        task,
        first_health,
    }
}

/// Minimal HTTP/1.1 GET over a fresh connection; returns status and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path)
        .await
        .unwrap_or_else(|err| panic!("GET {path} on {addr} failed: {err}"))
}

async fn try_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8(raw).map_err(io::Error::other)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("no header terminator in {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// Parses Prometheus text exposition, checking its grammar on the way:
/// returns `sample (name + labels) -> value`.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut typed = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line has a kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unexpected metric type in {line:?}"
            );
            typed.push(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "invalid metric name in {line:?}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(
                labels.ends_with('}') && labels.contains("=\""),
                "bad labels in {line:?}"
            );
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| typed.iter().any(|t| t == base))
            .unwrap_or(name);
        assert!(
            typed.iter().any(|t| t == family),
            "sample {line:?} has no preceding # TYPE line"
        );
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?} is not a number"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn metrics_of(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    parse_prometheus(&body)
}

fn field<'a>(json: &'a str, name: &str) -> &'a str {
    let start = json
        .find(&format!("\"{name}\":"))
        .unwrap_or_else(|| panic!("no {name} in {json}"))
        + name.len()
        + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim_matches('"')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_work_health_and_unknown_paths() {
    let _serial = SERIAL.lock().await;
    let server = start(&["--workers", "1", "--cache-mb", "1", "--algorithm", "fast"]).await;

    let (status, first) = get(server.addr, "/work?key=42").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(field(&first, "key"), "42");
    assert_eq!(field(&first, "cache"), "miss");
    assert_eq!(field(&first, "algorithm"), "fast");
    assert_eq!(field(&first, "digest").len(), 64);
    let (_, second) = get(server.addr, "/work?key=42&cachebuster=1").await;
    assert_eq!(field(&second, "cache"), "hit");
    assert_eq!(field(&second, "digest"), field(&first, "digest"));

    let (status, drawn) = get(server.addr, "/").await;
    assert_eq!(status, 200);
    let key: u64 = field(&drawn, "key").parse().expect("numeric key");
    assert!(key < KEYSPACE);

    let (status, message) = get(server.addr, "/work?key=forty-two").await;
    assert_eq!(status, 400);
    assert!(message.contains("invalid key \"forty-two\""), "{message}");
    let (status, message) = get(server.addr, "/nope").await;
    assert_eq!(status, 404);
    assert!(message.contains("/work?key="), "{message}");
    assert_eq!(get(server.addr, "/healthz").await, (200, "ok\n".to_owned()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text() {
    let _serial = SERIAL.lock().await;
    let server = start(&["--workers", "2", "--cache-mb", "8", "--algorithm", "fast"]).await;
    for key in [0, 1, 2, 1000, 1000] {
        assert_eq!(get(server.addr, &format!("/work?key={key}")).await.0, 200);
    }
    assert_eq!(get(server.addr, "/work?key=x").await.0, 400);

    let m = metrics_of(server.addr).await;
    assert_eq!(m["demo_requests_total{code=\"200\"}"], 5.0);
    assert_eq!(m["demo_requests_total{code=\"400\"}"], 1.0);
    assert_eq!(m["demo_requests_total{code=\"503\"}"], 0.0);
    // Keys 0..2 were prewarmed, 1000 missed once and then hit.
    assert_eq!(m["demo_cache_hits_total"], 4.0);
    assert_eq!(m["demo_cache_misses_total"], 1.0);
    assert_eq!(m["demo_request_duration_seconds_count"], 6.0);
    assert_eq!(m["demo_request_duration_seconds_bucket{le=\"+Inf\"}"], 6.0);
    assert!(m["demo_request_duration_seconds_sum"] > 0.0);
    assert_eq!(m["demo_workers"], 2.0);
    assert_eq!(m["demo_cache_capacity_bytes"], f64::from(8 << 20));
    let entries = m["demo_cache_entries"];
    assert_eq!(entries, (8 << 20) as f64 / (256 << 10) as f64 - 1.0);
    assert_eq!(
        m["demo_cache_bytes"],
        entries * ((256 << 10) + cache::ENTRY_OVERHEAD_BYTES) as f64
    );
    assert_eq!(m["demo_info{algorithm=\"fast\"}"], 1.0);
    let rss = m["process_resident_memory_bytes"];
    assert!(
        rss > f64::from((8 << 20) + 2 * (8 << 20)),
        "RSS {rss} must include the 8 MiB cache and two 8 MiB worker scratch buffers"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_ratio_rises_with_cache_size() {
    let _serial = SERIAL.lock().await;
    let mut ratios = Vec::new();
    for cache_mb in ["0", "4", "64"] {
        let server = start(&[
            "--workers",
            "2",
            "--algorithm",
            "fast",
            "--seed",
            "7",
            "--cache-mb",
            cache_mb,
        ])
        .await;
        if cache_mb == "64" {
            assert_eq!(server.first_health.0, 503, "not ready while prewarming");
            assert!(server.first_health.1.starts_with("warming up"));
        }
        for _ in 0..300 {
            assert_eq!(get(server.addr, "/").await.0, 200);
        }
        let m = metrics_of(server.addr).await;
        let hits = m["demo_cache_hits_total"];
        ratios.push(hits / (hits + m["demo_cache_misses_total"]));
        server.stop().await;
    }
    // Prewarmed with the top keys of a Zipf(1.1) over 100k keys, the hit ratio
    // is about 0.4 with 15 entries (4 MiB) and 0.65 with 255 entries (64 MiB).
    assert_eq!(ratios[0], 0.0, "{ratios:?}");
    assert!(ratios[1] > 0.25, "{ratios:?}");
    assert!(ratios[2] > ratios[1] + 0.1, "{ratios:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_finishes_in_flight_requests_then_stops() {
    let _serial = SERIAL.lock().await;
    let server = start(&["--workers", "1", "--cache-mb", "0", "--algorithm", "fast"]).await;
    let addr = server.addr;
    let requests: Vec<_> = (0..6)
        .map(|key| tokio::spawn(async move { get(addr, &format!("/work?key={key}")).await }))
        .collect();
    // Six 3 ms misses on one worker: most are still queued when cancelled.
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.stop().await;
    for request in requests {
        let (status, body) = request.await.expect("client task");
        assert_eq!(status, 200, "in-flight request must complete: {body}");
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_a_busy_port_explains_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    let port = taken
        .local_addr()
        .expect("probe address")
        .port()
        .to_string();
    let args = parse(&["--port", &port]).expect("valid flags");
    let err = DemoServer::bind(args).await.expect_err("port is taken");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("--port 0"), "{err}");
}

#[test]
fn invalid_flags_are_rejected_with_clear_messages() {
    let cases: [(&[&str], &str); 6] = [
        (&["--workers", "0"], "1..=64"),
        (&["--workers", "many"], "--workers"),
        (&["--cache-mb", "5000"], "0..=4096"),
        (&["--algorithm", "turbo"], "fast, balanced, thorough"),
        (&["--host", "localhost:80"], "--host"),
        (&["--queue-depth", "0"], "--queue-depth"),
    ];
    for (flags, expected) in cases {
        let err = parse(flags).expect_err("invalid flags are rejected");
        let message = err.render().to_string();
        assert!(
            message.contains(expected),
            "{flags:?}: {message:?} should mention {expected:?}"
        );
    }
}

#[test]
fn command_line_defaults_match_default() {
    assert_eq!(parse(&[]).expect("no flags is valid"), DemoArgs::default());
}

#[test]
fn key_is_read_from_the_query_string() {
    assert_eq!(requested_key(None), Ok(None));
    assert_eq!(requested_key(Some("")), Ok(None));
    assert_eq!(requested_key(Some("key=7")), Ok(Some(7)));
    assert_eq!(
        requested_key(Some("a=b&key=18446744073709551615")),
        Ok(Some(u64::MAX))
    );
    assert_eq!(requested_key(Some("monkey=3")), Ok(None));
    assert!(requested_key(Some("key=")).is_err());
    assert!(requested_key(Some("key")).is_err());
    assert!(requested_key(Some("key=-1")).is_err());
    let long = format!("key={}", "9".repeat(500));
    let message = requested_key(Some(&long)).expect_err("overflows u64");
    assert!(
        message.len() < 300,
        "the echo of the bad value is truncated"
    );
}
