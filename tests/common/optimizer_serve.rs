//! `servo optimizer serve` on a loopback port, for the tests that talk to it.
//!
//! Opt-in (`#[path = "common/optimizer_serve.rs"] mod optimizer_serve;`), beside the `http` and
//! `live` modules of `common/` it uses, which the test declares under those names.

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::http;
use crate::live::Servo;

/// `servo optimizer serve --store STORE --listen 127.0.0.1:PORT --sleep 1s EXTRA...`, waited for
/// until it answers `/healthz` (at most 20 s).
pub fn start(dir: &Path, store: &Path, port: u16, extra: &[&str]) -> Servo {
    start_logging(dir, store, port, extra, "warn")
}

/// [`start`] logging at `level`, for a test that shows the server's log when it fails.
pub fn start_logging(dir: &Path, store: &Path, port: u16, extra: &[&str], level: &str) -> Servo {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "optimizer",
        "serve",
        "--store",
        store.to_str().expect("utf-8 path"),
        "--listen",
        &listen,
        "--sleep",
        "1s",
    ];
    args.extend_from_slice(extra);
    let mut server = Servo::start_logging(&dir.join("unused.yaml"), &args, level);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http::exchange(http::local(port), "GET", "/healthz", None, b"").0 == 200
        {
            return server;
        }
        assert!(
            server.running(),
            "the server exited: {:?}",
            server.finish(Duration::from_secs(1))
        );
        assert!(
            Instant::now() < deadline,
            "the server never answered /healthz"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
