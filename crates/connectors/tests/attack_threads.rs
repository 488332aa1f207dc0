//! The attack runs its workers on threads of its own (`attack-1`,
//! `attack-2`…), one per core at most, and none of them outlives the attack,
//! whether it ends, is cancelled or is dropped.
//!
//! In a file of its own: the tests count the threads of the whole process, so
//! no other attack may run meanwhile (the tests here take turns).
#![cfg(target_os = "linux")]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use servo_connectors::vegeta::attack::{AttackError, AttackOptions, attack};
use servo_connectors::vegeta::report::Report;
use servo_connectors::vegeta::targets::{Target, parse_http};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The threads of this process named like the attack's.
fn attack_threads() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("Linux lists threads in /proc");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("attack-"))
        .count()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}

/// A keep-alive HTTP/1.1 server on the test's runtime (gone with it) that
/// answers every request with `ok`; returns its URL and its request count.
async fn server() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("local address"));
    let requests = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                // Requests have no body: each ends with an empty line.
                let mut pending = Vec::new();
                let mut buffer = [0; 4096];
                while let Ok(read) = stream.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buffer[..read]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        counted.fetch_add(1, Ordering::Relaxed);
                        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(response).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, requests)
}

fn targets(url: &str) -> Vec<Target> {
    parse_http(&format!("GET {url}"), Path::new(".")).expect("a valid target")
}

/// Until cancelled: a paced attack, or one without a rate.
fn options(rate: Option<(u64, Duration)>, workers: u64, max_workers: u64) -> AttackOptions {
    AttackOptions {
        rate,
        duration: Duration::ZERO,
        workers,
        max_workers,
        ..AttackOptions::default()
    }
}

/// Waits for the server to have counted more than `more_than` requests.
async fn until_requests(requests: &AtomicU64, more_than: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while requests.load(Ordering::Relaxed) <= more_than {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the attack sends its requests within 10 s");
}

/// Starts an attack on `url` until `cancel` fires, as a task of the test's runtime.
fn spawn_attack(
    url: &str,
    options: AttackOptions,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<Result<Report, AttackError>> {
    let targets = targets(url);
    tokio::spawn(async move { attack(&targets, &options, cancel, |_| {}).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_runs_on_one_thread_per_core_and_ends_them_when_it_returns() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (url, requests) = server().await;
    let cancel = CancellationToken::new();
    let attack = spawn_attack(&url, options(None, 64, 64), cancel.clone());
    // More requests than workers: some worker has had an answer and sent again, so the report
    // holds a finished request however soon the cancellation lands (one merely received by the
    // server may still be in flight, and cancelling abandons those).
    until_requests(&requests, 64).await;
    assert_eq!(attack_threads(), cores().min(64));

    cancel.cancel();
    let report = attack
        .await
        .expect("the attack task completes")
        .expect("the attack runs");
    assert!(report.requests > 0);
    assert_eq!(attack_threads(), 0, "attack threads left after the attack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_attack_has_no_more_threads_than_it_can_have_workers() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (url, requests) = server().await;
    let cancel = CancellationToken::new();
    let attack = spawn_attack(
        &url,
        options(Some((1000, Duration::from_secs(1))), 1, 1),
        cancel.clone(),
    );
    until_requests(&requests, 0).await;
    assert_eq!(attack_threads(), 1);

    cancel.cancel();
    attack
        .await
        .expect("the attack task completes")
        .expect("the attack runs");
    assert_eq!(attack_threads(), 0, "attack threads left after the attack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_attack_ends_its_threads() {
    let _turn = ONE_AT_A_TIME.lock().await;
    for rate in [None, Some((1000, Duration::from_secs(1)))] {
        let (url, requests) = server().await;
        let attack = spawn_attack(&url, options(rate, 8, 8), CancellationToken::new());
        until_requests(&requests, 0).await;
        assert!(attack_threads() > 0);

        // Aborting the task drops the attack future before `await` returns.
        attack.abort();
        let aborted = attack.await;
        assert!(aborted.is_err_and(|error| error.is_cancelled()));
        assert_eq!(
            attack_threads(),
            0,
            "attack threads left after dropping the attack"
        );
    }
}
