//! A fake server the test owns: a tokio runtime on a thread of its own serving a loopback listener,
//! stopped when its guard drops.
//!
//! Opt-in (`#[path = "common/background.rs"] mod background;`): only the tests with a fake server
//! need tokio's runtime.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;

/// Stops the server and joins its thread on drop. Not a graceful shutdown: dropping the runtime
/// drops every connection task still running, so a hung request never keeps the test waiting.
pub struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Binds 127.0.0.1:0 and runs `serve` on that listener until the guard drops; returns the guard
    /// and the address.
    pub fn start<F, Fut>(serve: F) -> (Background, SocketAddr)
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the fake server");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    () = serve(listener) => {}
                    _ = stopped => {}
                }
            });
        });
        let guard = Background {
            stop: Some(stop),
            thread: Some(thread),
        };
        (guard, addr)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
