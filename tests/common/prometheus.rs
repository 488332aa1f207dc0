//! The real `prometheus` binary (`PROMETHEUS_BIN`, or the Debian package's) on a free loopback
//! port, killed and reaped on drop.
//!
//! Opt-in (`#[path = "common/prometheus.rs"] mod prometheus;`): only the tests that run Prometheus
//! need it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary the tests start.
pub fn binary() -> PathBuf {
    let binary = std::env::var_os("PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(
        binary.exists(),
        "these tests run a real Prometheus server, and {} is missing: install it with \
         `apt-get install prometheus` (scripts/test.sh does), or point PROMETHEUS_BIN at a binary",
        binary.display()
    );
    binary
}

/// A running Prometheus; killed and reaped on drop (also when frozen: SIGKILL ends a stopped
/// process).
pub struct PrometheusProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl PrometheusProcess {
    /// Writes `prometheus_yml` into `dir` (which also holds the storage and `prometheus.log`),
    /// starts Prometheus on a free loopback port, serving under `prefix` (`""` for none), and waits
    /// at most `patience` until it is ready.
    pub fn start(dir: &Path, prometheus_yml: &str, prefix: &str, patience: Duration) -> Self {
        let binary = binary();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, prometheus_yml).expect("write prometheus.yml");
        let log_path = dir.join("prometheus.log");
        let mut last_log = String::new();
        // The port is free when chosen but could be taken before Prometheus binds it: retry then.
        for _ in 0..3 {
            let addr = free_port();
            let log = std::fs::File::create(&log_path).expect("create the log");
            let mut command = Command::new(&binary);
            command
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log handle"))
                .stderr(log);
            if !prefix.is_empty() {
                command.arg(format!("--web.external-url=http://{addr}{prefix}"));
            }
            let mut child = command.spawn().expect("start prometheus");
            match wait_ready(&mut child, addr, prefix, &log_path, patience) {
                Ok(()) => return PrometheusProcess { child, addr },
                Err(log) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = log;
                    if !last_log.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("Prometheus did not start:\n{last_log}");
    }

    /// Kills Prometheus and waits until it is gone: its port refuses connections from then on.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops Prometheus (SIGSTOP): it keeps its port, the kernel accepts connections, nothing
    /// answers.
    pub fn freeze(&self) {
        let status = Command::new("kill")
            .args(["-STOP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -STOP failed");
    }
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `/-/ready` until Prometheus answers 200; on failure returns its log.
fn wait_ready(
    child: &mut Child,
    addr: SocketAddr,
    prefix: &str,
    log: &Path,
    patience: Duration,
) -> Result<(), String> {
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}:\n{}", log()));
        }
        if matches!(http_get(addr, &format!("{prefix}/-/ready")), Ok((200, _))) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("not ready after {patience:?}:\n{}", log()))
}

/// A loopback address nothing listens on (when chosen).
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address")
}

/// A minimal HTTP/1.0 GET on loopback: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The exposition page of `path`, given the seconds since the exporter started (so counters
/// grow at known rates); `None` answers 404.
pub type Page = fn(path: &str, elapsed: f64) -> Option<String>;

/// A scrape target on 127.0.0.1:0 serving pages whose values the test knows; stopped on drop.
pub struct Exporter {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    pub fn start(page: Page) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the exporter on loopback");
        let addr = listener.local_addr().expect("the exporter's address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    // A failed scrape shows up in Prometheus as `up == 0`; nothing to do here.
                    let _ = serve(stream, page, started);
                }
            }
        });
        Exporter {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, page: Page, started: Instant) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match page(path, started.elapsed().as_secs_f64()) {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", String::new()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
