//! Tests of the attack engine: unit tests of its scheduling pieces, then
//! attacks against a local HTTP(S) server on 127.0.0.1.

use super::*;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::Request;
use http::header::CONNECTION;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioExecutor;

fn schedule(count: u64, period: Duration, duration: Duration) -> Schedule {
    Schedule {
        count,
        period_ns: period.as_nanos(),
        duration: Some(duration),
    }
}

#[test]
fn schedule_has_no_drift() {
    let s = schedule(3, Duration::from_secs(1), Duration::from_secs(2));
    assert_eq!(s.len(), 6);
    assert_eq!(s.offset(1), Duration::from_nanos(333_333_333));
    assert_eq!(s.offset(3), Duration::from_secs(1));
    assert_eq!(s.offset(5), Duration::from_nanos(1_666_666_666));
    assert_eq!(s.due_before(Duration::from_secs(1)), 3);
    assert_eq!(s.due_before(Duration::from_nanos(1_000_000_001)), 4);
    let fast = schedule(5000, Duration::from_secs(1), Duration::from_secs(2));
    assert_eq!(fast.len(), 10_000);
    assert_eq!(fast.offset(9_999), Duration::from_micros(1_999_800));
}

/// The pacer hands out every request of the schedule, in order, each with
/// its due offset, and none before it is due (a busy machine may make it
/// late, which the latencies then show; it is never early).
#[test]
fn the_pacer_dispatches_the_schedule_in_order_and_never_early() {
    let schedule = schedule(5000, Duration::from_secs(1), Duration::from_millis(100));
    let start = Instant::now();
    let mut dispatched = Vec::new();
    run_pacer(schedule, start, &CancellationToken::new(), |ticket| {
        dispatched.push((ticket, Instant::now()));
    });
    assert_eq!(dispatched.len(), 500);
    for (position, (ticket, at)) in (0u64..).zip(&dispatched) {
        assert_eq!(ticket.index, position);
        assert_eq!(ticket.scheduled, schedule.offset(position));
        assert!(
            *at >= start + ticket.scheduled,
            "request {position} was dispatched before it was due"
        );
    }
}

#[test]
fn a_cancelled_pacer_dispatches_nothing() {
    let stop = CancellationToken::new();
    stop.cancel();
    let mut dispatched = 0;
    run_pacer(
        schedule(50, Duration::from_secs(1), Duration::from_secs(10)),
        Instant::now(),
        &stop,
        |_| dispatched += 1,
    );
    assert_eq!(dispatched, 0);
}

#[test]
fn paced_watermark_waits_for_the_oldest_pending_request() {
    let mut w = Watermark::paced(schedule(10, Duration::from_secs(1), Duration::from_secs(1)));
    w.completed(0, 1, Duration::ZERO);
    w.completed(0, 2, Duration::ZERO);
    assert_eq!(w.current(), Duration::ZERO);
    w.completed(0, 0, Duration::ZERO);
    assert_eq!(w.current(), Duration::from_millis(300));
}

#[test]
fn back_to_back_watermark_follows_the_slowest_worker() {
    let mut w = Watermark::back_to_back(2);
    w.completed(0, 0, Duration::from_millis(5));
    assert_eq!(w.current(), Duration::ZERO);
    w.completed(1, 1, Duration::from_millis(3));
    assert_eq!(w.current(), Duration::from_millis(3));
    w.retired(1);
    assert_eq!(w.current(), Duration::from_millis(5));
    w.retired(0);
    assert_eq!(w.current(), Duration::MAX);
}

#[test]
fn options_are_validated() {
    let targets =
        super::super::targets::parse_http("GET http://127.0.0.1/", std::path::Path::new("."))
            .expect("valid target");
    let check = |options: AttackOptions| match validate(&targets, &options) {
        Err(AttackError::InvalidOptions(message)) => message,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("{options:?} should be invalid"),
    };
    let base = AttackOptions::default();
    assert!(
        check(AttackOptions {
            workers: 0,
            ..base.clone()
        })
        .contains("workers must be between 1 and 100000, not 0")
    );
    assert!(
        check(AttackOptions {
            workers: u64::MAX,
            max_workers: u64::MAX,
            ..base.clone()
        })
        .contains("workers must be between 1")
    );
    assert!(
        check(AttackOptions {
            workers: 5,
            max_workers: 2,
            ..base.clone()
        })
        .contains("max_workers (2) must be at least workers (5)")
    );
    assert!(
        check(AttackOptions {
            rate: Some((10, Duration::ZERO)),
            ..base.clone()
        })
        .contains("period")
    );
    assert!(
        check(AttackOptions {
            max_body: -2,
            ..base.clone()
        })
        .contains("max_body")
    );
    assert!(
        check(AttackOptions {
            connections: 0,
            ..base.clone()
        })
        .contains("connections")
    );
    assert!(matches!(validate(&[], &base), Err(AttackError::NoTargets)));
    assert!(matches!(
        validate(
            &targets,
            &AttackOptions {
                rate: Some((0, Duration::from_secs(1))),
                ..base
            }
        ),
        Ok(Mode::BackToBack)
    ));
}

#[test]
fn errors_read_like_sentences() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
    assert_eq!(describe(&io), "Connection refused");
    assert_eq!(human_duration(Duration::from_millis(200)), "200ms");
    assert_eq!(human_duration(Duration::from_secs(30)), "30s");
}

/// A local HTTP server for the attack tests, on its own runtime and thread so
/// that its work does not share the attack's scheduler.
///
/// Routes: `/` answers 200 "hello", `/fail` 500, `/redirect` 302,
/// `/sleep/<ms>` 200 after that many milliseconds, `/echo` returns the request
/// body, `/close` answers "hello" and closes the connection. It counts connections and requests, and records the HTTP version and
/// `Connection` header of the last request.
struct TestServer {
    address: std::net::SocketAddr,
    stats: Arc<ServerStats>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Default)]
struct ServerStats {
    connections: AtomicU64,
    requests: AtomicU64,
    /// Requests received on each connection, in order of acceptance.
    per_connection: Mutex<Vec<u64>>,
    last: Mutex<Option<(http::Version, Option<String>)>>,
}

/// The TLS flavour of [`TestServer`]: a self-signed certificate for
/// "localhost", offering h2 and http/1.1 with ALPN.
enum Tls {
    Off,
    SelfSigned,
}

impl TestServer {
    fn start(tls: Tls) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        let address = listener.local_addr().expect("listener has an address");
        let stats = Arc::new(ServerStats::default());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let acceptor = match tls {
            Tls::Off => None,
            Tls::SelfSigned => Some(self_signed_acceptor()),
        };
        let server_stats = Arc::clone(&stats);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("build the server runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("register the listener");
                tokio::select! {
                    _ = stopped => {}
                    () = serve(listener, acceptor, server_stats) => {}
                }
            });
        });
        Self {
            address,
            stats,
            shutdown: Some(shutdown),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }

    fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::SeqCst)
    }

    fn requests_per_connection(&self) -> Vec<u64> {
        self.stats
            .per_connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn last_request(&self) -> Option<(http::Version, Option<String>)> {
        self.stats
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server thread may have ended already.
            let _ = shutdown.send(());
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stats: Arc<ServerStats>,
) {
    use hyper_util::rt::TokioIo;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // The attack's client sets TCP_NODELAY; the server must too, or
        // delayed ACKs would add 40 ms to some responses.
        let _ = stream.set_nodelay(true);
        stats.connections.fetch_add(1, Ordering::SeqCst);
        let connection = {
            let mut counts = stats
                .per_connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            counts.push(0);
            counts.len() - 1
        };
        let stats = Arc::clone(&stats);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let stats = Arc::clone(&stats);
                async move {
                    Ok::<_, std::convert::Infallible>(respond(request, connection, &stats).await)
                }
            });
            match acceptor {
                None => {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    }
                }
            }
        });
    }
}

async fn respond(
    request: Request<hyper::body::Incoming>,
    connection: usize,
    stats: &ServerStats,
) -> http::Response<Full<Bytes>> {
    stats.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(count) = stats
        .per_connection
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_mut(connection)
    {
        *count += 1;
    }
    let connection = request
        .headers()
        .get(CONNECTION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    *stats.last.lock().unwrap_or_else(PoisonError::into_inner) =
        Some((request.version(), connection));
    let path = request.uri().path().to_owned();
    let (status, body) = if path == "/fail" {
        (500, Bytes::from_static(b"failed"))
    } else if path == "/redirect" {
        (302, Bytes::new())
    } else if let Some(ms) = path.strip_prefix("/sleep/") {
        let ms = ms.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        (200, Bytes::from_static(b"slept"))
    } else if path == "/echo" {
        let body = request
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        (200, body)
    } else {
        (200, Bytes::from_static(b"hello"))
    };
    let mut response = http::Response::new(Full::new(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    if path == "/close" {
        response
            .headers_mut()
            .insert(CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
}

pub(super) fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("generate a self-signed certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("the generated certificate and key match");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn targets_for(urls: &[String]) -> Vec<Target> {
    let text = urls
        .iter()
        .map(|url| format!("GET {url}"))
        .collect::<Vec<_>>()
        .join("\n");
    super::super::targets::parse_http(&text, std::path::Path::new(".")).expect("valid targets")
}

fn paced(count: u64, duration: Duration) -> AttackOptions {
    AttackOptions {
        rate: Some((count, Duration::from_secs(1))),
        duration,
        timeout: Duration::from_secs(5),
        reporting_interval: Duration::from_secs(1),
        ..AttackOptions::default()
    }
}

async fn run(targets: &[Target], options: &AttackOptions) -> Report {
    attack(targets, options, CancellationToken::new(), |_| {})
        .await
        .expect("attack runs")
}

/// Tests that saturate the machine (high request rates, attacks without a
/// rate) take this lock so that they do not skew each other's timing under
/// `cargo test` (nextest runs each test in its own process, where the timing
/// checks keep enough margin on their own).
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A paced attack sends exactly the schedule (`rate × duration` requests,
/// open-loop, none skipped), each counted in the reporting interval it was
/// scheduled in, whatever the machine's speed: a slow machine shows in the
/// latencies, not in these counts. (How closely the send times follow the
/// schedule is a speed figure: `benches/vegeta-vs-wrk.sh` prints it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_exactly_the_schedule() {
    let _heavy = HEAVY.lock().await;
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/")]);
    let duration = Duration::from_secs(2);
    for rate in [50, 500, 1000] {
        let options = paced(rate, duration);
        let mut ticks = Vec::new();
        let report = attack(&targets, &options, CancellationToken::new(), |p| {
            ticks.push(p)
        })
        .await
        .expect("attack runs");

        let expected = schedule(rate, Duration::from_secs(1), duration).len();
        assert_eq!(expected, 2 * rate);
        assert_eq!(report.requests, expected, "rate {rate}: {report:?}");
        assert_eq!(
            report.successes, expected,
            "rate {rate}: {:?}",
            report.errors
        );
        // No worker limit: a due request always finds a worker.
        assert_eq!(report.unsent, 0);
        assert_eq!(report.intervals.len(), 2);
        for interval in &report.intervals {
            assert_eq!(interval.requests, rate, "rate {rate}: {interval:?}");
        }
        // The attack lasts at least its duration, so the collector reports
        // progress at least once (after a second), never going backwards.
        assert!(!ticks.is_empty(), "rate {rate}: no progress reported");
        assert!(ticks.windows(2).all(|w| w[0].requests <= w[1].requests));
    }
    assert_eq!(server.requests(), 2 * (50 + 500 + 1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_successes_and_failures() {
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[
        server.url("/"),
        server.url("/fail"),
        server.url("/redirect"),
    ]);
    let report = run(&targets, &paced(90, Duration::from_secs(1))).await;

    assert_eq!(report.requests, 90);
    assert_eq!(report.successes, 60);
    assert!((report.success_rate - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        report.status_codes,
        std::collections::BTreeMap::from([(200, 30), (302, 30), (500, 30)])
    );
    assert_eq!(
        report.errors,
        [("500 Internal Server Error".to_owned(), 30)]
    );
    assert_eq!(report.bytes_in, 30 * 5 + 30 * 6);
    assert!(!report.cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_errors_not_hangs() {
    let _heavy = HEAVY.lock().await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        listener
            .local_addr()
            .expect("listener has an address")
            .port()
    };
    let url = format!("http://127.0.0.1:{port}/");
    let targets = targets_for(std::slice::from_ref(&url));

    let report = run(&targets, &paced(50, Duration::from_millis(500))).await;
    assert_eq!(report.requests, 25);
    assert_eq!(report.successes, 0);
    assert_eq!(
        report.status_codes,
        std::collections::BTreeMap::from([(0, 25)])
    );
    let (message, count) = &report.errors[0];
    assert_eq!(*count, 25);
    assert!(message.starts_with(&format!("GET {url}: ")), "{message}");
    assert!(message.contains("onnection refused"), "{message}");

    // As fast as possible: failures come back at once, so this is the
    // busiest loop the engine can run; it must still end on time.
    let options = AttackOptions {
        rate: None,
        workers: 2,
        ..paced(0, Duration::from_millis(300))
    };
    let began = Instant::now();
    let report = run(&targets, &options).await;
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert!(report.requests > 0);
    assert_eq!(report.successes, 0);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_responses_time_out() {
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/sleep/2000")]);
    let options = AttackOptions {
        timeout: Duration::from_millis(200),
        ..paced(10, Duration::from_millis(500))
    };
    let began = Instant::now();
    let report = run(&targets, &options).await;
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(report.requests, 5);
    assert_eq!(
        report.status_codes,
        std::collections::BTreeMap::from([(0, 5)])
    );
    let (message, count) = &report.errors[0];
    assert_eq!(*count, 5);
    assert!(
        message.ends_with("no complete response within the 200ms timeout"),
        "{message}"
    );
    assert!(
        report.latency.min >= Duration::from_millis(200),
        "{:?}",
        report.latency
    );
    assert!(
        report.latency.max < Duration::from_millis(1000),
        "{:?}",
        report.latency
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_returns_what_completed() {
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/")]);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.cancel();
    });
    let began = Instant::now();
    let report = attack(
        &targets,
        &paced(50, Duration::from_secs(10)),
        cancel,
        |_| {},
    )
    .await
    .expect("attack runs");
    let took = began.elapsed();

    assert!(
        took < Duration::from_secs(2),
        "cancelled attack took {took:?}"
    );
    assert!(report.cancelled);
    assert!((15..=35).contains(&report.requests), "{}", report.requests);
    assert_eq!(report.successes, report.requests);
    assert_eq!(report.intervals.len(), 1, "{:?}", report.intervals);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_abandons_requests_in_flight() {
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/sleep/5000")]);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let began = Instant::now();
    let options = AttackOptions {
        timeout: Duration::from_secs(30),
        ..paced(20, Duration::from_secs(10))
    };
    let report = attack(&targets, &options, cancel, |_| {})
        .await
        .expect("attack runs");
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    assert!(report.cancelled);
    assert_eq!(report.requests, 0);
    assert!(server.requests() > 0);
}

/// With one worker at most and 100 ms responses, only about one request in
/// five can be sent: the others wait and, measured from their due time,
/// show the backlog as latency; those still waiting at the end are unsent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_limit_turns_into_latency_not_a_lower_rate() {
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/sleep/100")]);
    let options = AttackOptions {
        workers: 1,
        max_workers: 1,
        ..paced(50, Duration::from_secs(1))
    };
    let report = run(&targets, &options).await;
    assert!((8..=11).contains(&report.requests), "{}", report.requests);
    assert_eq!(report.requests + report.unsent, 50);
    assert!(
        report.latency.max > Duration::from_millis(500),
        "{:?}",
        report.latency
    );
    assert!(
        report.latency.min >= Duration::from_millis(100),
        "{:?}",
        report.latency
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_grow_when_all_are_busy() {
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/sleep/200")]);
    // 40 requests 25 ms apart, each taking 200 ms: about 8 in flight.
    let options = AttackOptions {
        workers: 1,
        ..paced(40, Duration::from_secs(1))
    };
    let report = run(&targets, &options).await;
    assert_eq!(report.requests, 40);
    assert_eq!(report.unsent, 0);
    assert!(
        report.latency.p99 < Duration::from_millis(400),
        "{:?}",
        report.latency
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_fast_as_possible() {
    let _heavy = HEAVY.lock().await;
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/")]);
    let options = AttackOptions {
        rate: None,
        workers: 4,
        reporting_interval: Duration::from_millis(100),
        ..paced(0, Duration::from_millis(500))
    };
    let report = run(&targets, &options).await;
    assert!(report.requests > 50, "{}", report.requests);
    assert_eq!(report.successes, report.requests);
    assert_eq!(server.requests(), report.requests);
    assert!(
        server.connections() <= 8,
        "{} connections",
        server.connections()
    );
    assert_eq!(report.intervals.len(), 5, "{:?}", report.intervals);
    assert_eq!(
        report.intervals.iter().map(|i| i.requests).sum::<u64>(),
        report.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_off_opens_a_connection_per_request() {
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/")]);
    let options = AttackOptions {
        keepalive: false,
        ..paced(100, Duration::from_millis(300))
    };
    let report = run(&targets, &options).await;
    assert_eq!(report.successes, 30);
    assert_eq!(server.connections(), 30);
    assert_eq!(
        server
            .last_request()
            .and_then(|(_, connection)| connection)
            .as_deref(),
        Some("close")
    );

    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/")]);
    let report = run(&targets, &paced(100, Duration::from_millis(300))).await;
    assert_eq!(report.successes, 30);
    assert!(server.connections() <= 3, "{}", server.connections());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_by_the_server_are_replaced() {
    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/close")]);
    let report = run(&targets, &paced(100, Duration::from_millis(300))).await;
    assert_eq!(report.successes, 30, "{:?}", report.errors);
    assert_eq!(server.connections(), 30);
}

/// `connections` bounds the connections kept open per host between requests:
/// workers beyond it close theirs after each request. Two workers send back
/// to back, so each holds a connection from its first request on; the server
/// counts the requests each connection carried. With room for one idle
/// connection, the first worker to finish a request keeps its connection for
/// the whole attack and the other opens one per request; with room for two,
/// each worker keeps the one connection it opened. Neither depends on the
/// machine's speed, only on the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_limited_per_host() {
    let options = |connections| AttackOptions {
        rate: None,
        workers: 2,
        connections,
        ..paced(0, Duration::from_millis(300))
    };

    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/")]);
    let report = run(&targets, &options(1)).await;
    assert_eq!(report.successes, report.requests);
    let mut carried = server.requests_per_connection();
    assert_eq!(carried.iter().sum::<u64>(), report.requests);
    carried.sort_unstable();
    let kept = carried.pop().unwrap_or_default();
    assert!(
        carried.iter().all(|&requests| requests == 1),
        "only one connection may carry more than one request: kept {kept}, others {carried:?}"
    );
    assert!(
        !carried.is_empty(),
        "the second worker opened no connection"
    );

    let server = TestServer::start(Tls::Off);
    let targets = targets_for(&[server.url("/")]);
    let report = run(&targets, &options(2)).await;
    assert_eq!(report.successes, report.requests);
    assert_eq!(server.connections(), 2);
    assert_eq!(
        server.requests_per_connection().iter().sum::<u64>(),
        report.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_sent_and_counted() {
    let server = TestServer::start(Tls::Off);
    let mut targets = targets_for(&[server.url("/echo")]);
    targets[0].method = http::Method::POST;
    targets[0].body = Bytes::from_static(b"0123456789");
    let report = run(&targets, &paced(20, Duration::from_millis(500))).await;
    assert_eq!(report.successes, 10);
    assert_eq!(report.bytes_out, 100);
    assert_eq!(report.bytes_in, 100);

    let options = AttackOptions {
        max_body: 3,
        ..paced(20, Duration::from_millis(500))
    };
    let report = run(&targets, &options).await;
    assert_eq!(report.bytes_in, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_needs_trust_or_insecure_and_negotiates_http2() {
    let server = TestServer::start(Tls::SelfSigned);
    let url = format!("https://localhost:{}/", server.address.port());
    let targets = targets_for(std::slice::from_ref(&url));

    let report = run(&targets, &paced(10, Duration::from_millis(200))).await;
    assert_eq!(report.successes, 0);
    let (message, _) = &report.errors[0];
    assert!(message.contains("certificate"), "{message}");

    let insecure = AttackOptions {
        insecure: true,
        ..paced(10, Duration::from_millis(200))
    };
    let report = run(&targets, &insecure).await;
    assert_eq!(report.successes, 2, "{:?}", report.errors);
    assert_eq!(
        server.last_request().map(|(version, _)| version),
        Some(http::Version::HTTP_2)
    );

    let http1 = AttackOptions {
        http2: false,
        ..insecure
    };
    let report = run(&targets, &http1).await;
    assert_eq!(report.successes, 2, "{:?}", report.errors);
    assert_eq!(
        server.last_request().map(|(version, _)| version),
        Some(http::Version::HTTP_11)
    );
}

/// Connecting is boxed so that its state (about 8 KiB with TLS) is not part
/// of every request's future: futures are moved by value, and copying 8 KiB
/// per request cost about 7% of the engine's CPU time at high rates.
#[test]
fn request_futures_stay_small() {
    let targets = targets_for(&["https://127.0.0.1:1/".to_owned()]);
    let tls = tls_config(false, true).expect("ring supports the default TLS versions");
    let (connector, prepared) =
        Connector::new(&targets, tls, true, true, 10).expect("the target is valid");
    let mut connections = Connections::new(&connector);
    let exchange = connections.exchange(&connector, &prepared[0]);
    let size = std::mem::size_of_val(&exchange);
    assert!(size < 2048, "the request future takes {size} bytes");
}

/// A server that answers one request per connection and then closes it
/// without saying so (no `Connection: close`), as servers with a short
/// keep-alive timeout do. Counts the connections it accepted.
async fn one_request_per_connection() -> (String, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let url = format!(
        "http://{}/",
        listener.local_addr().expect("listener has an address")
    );
    let accepted = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&chunk[..read]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                    .await;
            });
        }
    });
    (url, accepted)
}

/// Kept connections the server closed while idle are replaced, and the
/// request that found one closed (the close racing with it) is sent again
/// on a new connection: none of it shows as an error. Back to back, the
/// next request follows the close as closely as it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_silently_by_the_server_are_replaced_without_errors() {
    let (url, accepted) = one_request_per_connection().await;
    let targets = targets_for(&[url]);
    let report = run(&targets, &paced(100, Duration::from_millis(300))).await;
    assert_eq!(report.successes, 30, "{:?}", report.errors);
    assert_eq!(accepted.load(Ordering::SeqCst), 30);

    let options = AttackOptions {
        rate: None,
        workers: 2,
        ..paced(0, Duration::from_millis(300))
    };
    let report = run(&targets, &options).await;
    assert!(report.requests > 0);
    assert_eq!(report.successes, report.requests, "{:?}", report.errors);
}
