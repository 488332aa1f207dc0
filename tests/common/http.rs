//! One HTTP/1.1 exchange over loopback with `Connection: close`, for the tests that talk to
//! `servo optimizer serve` (no HTTP client crate needed, and every byte on the wire is visible).
//!
//! Opt-in: `#[path = "common/http.rs"] mod http;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends `METHOD PATH` with `body` (and the bearer `token`, when given) to `addr`; returns the
/// status and the body. A large body may be cut short by an early answer (413): that is not an
/// error, the answer is read all the same.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{method} {path}: cannot connect to {addr}: {e}"));
    for timeout in [
        stream.set_read_timeout(Some(Duration::from_secs(30))),
        stream.set_write_timeout(Some(Duration::from_secs(30))),
    ] {
        timeout.expect("socket timeouts can be set");
    }
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
    let _ = stream.write_all(body);
    let response = read_answer(&mut stream);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in the answer to {method} {path}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The answer's bytes: up to its `Content-Length` when it has one (a peer such as chromedriver
/// may keep the connection open despite `Connection: close`), else until the peer closes.
fn read_answer(stream: &mut TcpStream) -> Vec<u8> {
    let mut response = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(length) = length {
                while response.len() < end + 4 + length {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => response.extend_from_slice(&chunk[..n]),
                    }
                }
                return response;
            }
            let _ = stream.read_to_end(&mut response);
            return response;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return response,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The loopback address of `port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
