//! A minimal, fast HTTP/1.1 server for load-testing the load generator
//! itself (see `benches/vegeta-vs-wrk.sh`): every request gets
//! `200 Hello, World!`, with keep-alive and TCP_NODELAY, so that the server
//! costs as little CPU per request as hyper allows and is not what a
//! benchmark measures.
//!
//! ```text
//! cargo run --release --example hello_server -- [--port 0] [--threads 2]
//! ```
//!
//! Prints `listening on http://127.0.0.1:PORT` once ready (port 0 picks a
//! free port) and serves until killed.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const BODY: &[u8] = b"Hello, World!";

fn main() -> ExitCode {
    let (port, threads) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("hello_server: {message}\nusage: hello_server [--port PORT] [--threads N]");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hello_server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hello_server: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(u16, usize), String> {
    let mut port = 0;
    let mut threads = 2;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => {
                port = value
                    .parse()
                    .map_err(|_| format!("--port expects a port number, got {value:?}"))?;
            }
            "--threads" => {
                threads =
                    value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("--threads expects a positive number, got {value:?}")
                    })?;
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok((port, threads))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Running out of file descriptors under a connection storm is
            // transient: keep serving the connections already open.
            Err(error) => {
                eprintln!("hello_server: accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Otherwise Nagle's algorithm delays small responses to clients that
        // delay their ACKs.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
            });
            // Clients closing connections mid-request is normal at the end of
            // a benchmark; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
