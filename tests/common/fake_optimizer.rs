//! A fake Opsani/ServoX optimizer for end-to-end tests of `servo run` with a remote optimizer: it
//! plays a scripted session and records every request, so a test can assert each one against the
//! shapes of the optimizer protocol (ServoX's `servo/api.py`).
//!
//! It is an axum server on 127.0.0.1:0 in its own thread and runtime (`common/background.rs`), owned
//! by a guard that stops it on drop. Opt-in (`#[path = "common/fake_optimizer.rs"] mod
//! fake_optimizer;`, with `#[path = "common/background.rs"] mod background;`) rather than part of
//! `common`, so that the tests which do not need it do not compile a web server.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::background::Background;

pub const TOKEN: &str = "sekrit-token";
pub const PATH: &str = "/accounts/example.com/applications/app/servo";
/// How long a test waits for servo to reach a point or to exit.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answer with this status code and JSON body.
    Json(u16, Value),
    /// Never answer (until the server stops): the client's read timeout must end the request.
    Hang,
}

pub fn ok() -> Reply {
    Reply::Json(200, json!({"status": "ok"}))
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub at: Instant,
}

impl Seen {
    pub fn event(&self) -> &str {
        self.body["event"].as_str().unwrap_or("")
    }
}

#[derive(Default)]
struct Script {
    /// Answers in order, each for the event it expects; a request for another event (or after the
    /// script ran out) gets a 409, which the test then sees as a failure of servo.
    replies: VecDeque<(&'static str, Reply)>,
    seen: Vec<Seen>,
    /// Tokens issued by the OAuth2 token endpoint (`.../oauth2/token`), for the AppDynamics form.
    tokens_issued: u32,
}

/// The lifetime of each token the fake's OAuth2 endpoint issues: one second more than servo's
/// leeway, so the token is due for refresh a second after it was issued.
pub const TOKEN_LIFETIME_SECS: u64 = 61;

type Shared = Arc<Mutex<Script>>;

pub struct FakeOptimizer {
    addr: SocketAddr,
    script: Shared,
    _server: Background,
}

impl FakeOptimizer {
    pub fn start(replies: Vec<(&'static str, Reply)>) -> FakeOptimizer {
        let script: Shared = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            seen: Vec::new(),
            tokens_issued: 0,
        }));
        let state = Arc::clone(&script);
        let (server, addr) = Background::start(|listener| async move {
            let app = axum::Router::new().fallback(answer).with_state(state);
            let _ = axum::serve(listener, app).await;
        });
        FakeOptimizer {
            addr,
            script,
            _server: server,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().expect("script lock").seen.clone()
    }

    pub fn events(&self) -> Vec<String> {
        self.seen().iter().map(|s| s.event().to_string()).collect()
    }

    /// Waits until the fake has received `count` requests for `event`.
    pub fn wait_for(&self, event: &str, count: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.seen().iter().filter(|s| s.event() == event).count() < count {
            assert!(
                Instant::now() < deadline,
                "the optimizer never received {count} {event}; it saw {:?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn answer(
    State(script): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().ends_with("/oauth2/token") {
        // An OAuth2 client-credentials token endpoint: `at-1`, `at-2`, ... for each request.
        let mut script = script.lock().expect("script lock");
        script.tokens_issued += 1;
        let token = format!("at-{}", script.tokens_issued);
        script.seen.push(Seen {
            path: uri.path().to_string(),
            headers,
            body: Value::String(String::from_utf8_lossy(&body).into_owned()),
            at: Instant::now(),
        });
        let answer = json!({"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME_SECS});
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            answer.to_string(),
        )
            .into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let event = body["event"].as_str().unwrap_or("").to_string();
    let reply = {
        let mut script = script.lock().expect("script lock");
        script.seen.push(Seen {
            path: uri.path().to_string(),
            headers,
            body,
            at: Instant::now(),
        });
        match script.replies.front() {
            Some((expected, _)) if *expected == event => script.replies.pop_front().map(|(_, r)| r),
            _ => None,
        }
    };
    match reply {
        Some(Reply::Json(code, value)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response(),
        Some(Reply::Hang) => {
            std::future::pending::<()>().await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        None => (
            StatusCode::CONFLICT,
            format!("the test's script did not expect {event}"),
        )
            .into_response(),
    }
}

/// `settings:` of the config (backoff and timeouts), as YAML flow mappings.
pub fn config(dir: &Path, base_url: &str, settings: &str) -> PathBuf {
    let remote = crate::common::remote_optimizer(TOKEN, base_url, settings);
    let text = format!(
        r#"
name: remote
{remote}wait:
  measure_enabled: true
  duration: 1s
  components:
    web:
      settings:
        cpu: {{ type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }}
        memory: {{ type: memory, min: 0.25, max: 8, step: 0.25, value: 1 }}
        replicas: {{ type: replicas, min: 1, max: 8, step: 1, value: 2 }}
        mode: {{ type: enum, values: [fast, balanced], value: balanced }}
"#
    );
    let path = dir.join("servo.yaml");
    std::fs::write(&path, text).expect("write the config");
    path
}

/// Every request carries the transport headers of the protocol.
pub fn assert_transport(seen: &[Seen]) {
    for s in seen {
        assert_eq!(s.path, PATH, "{:?}", s.body);
        let header = |name: header::HeaderName| {
            s.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header(header::AUTHORIZATION), format!("Bearer {TOKEN}"));
        assert!(
            header(header::CONTENT_TYPE).starts_with("application/json"),
            "{}",
            header(header::CONTENT_TYPE)
        );
        let agent = header(header::USER_AGENT);
        assert!(
            agent.starts_with("github.com/opsani/servo v"),
            "user agent {agent}"
        );
        assert!(s.body["servo_uid"].is_null(), "{}", s.body);
        assert!(
            s.body.get("param").is_some(),
            "param is always sent: {}",
            s.body
        );
    }
}

pub fn param(seen: &Seen) -> &Value {
    &seen.body["param"]
}
