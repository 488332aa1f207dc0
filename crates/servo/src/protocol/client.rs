//! The HTTP side of the protocol: `POST {url}servo` with the bearer token, retried the way ServoX
//! retries.
//!
//! Transport errors (refused, reset, closed mid-answer), timeouts, 5xx, 404, and 2xx answers that
//! are not the protocol's JSON are retried with exponential backoff and full jitter (a random wait
//! between zero and `0.5s × 2^(try-1)`, capped at a minute), bounded by `settings.backoff`: the entry
//! named after the event (`whats_next`, `measurement`; `connect` for `HELLO`, as ServoX names its
//! contexts), else `__default__`, else ServoX's defaults (10 minutes, one hour to connect). 404 is
//! retried because an optimizer that has not provisioned the application yet answers it. Any other
//! 4xx is final: retrying a bad token only delays the message. HTTP 410
//! `{"detail": "unexpected servo_uid"}` is reported as [`ClientError::Deprovisioned`] so the runner
//! can wait as ServoX does.
//!
//! An answer that does not decode (not JSON: a proxy's HTML error page, a truncated body; or JSON
//! of the wrong shape: `{"cmd": "DANCE"}`) is treated like a transport error, not as final: what
//! sends it is most often something between servo and the optimizer (a gateway, a captive portal,
//! an optimizer mid-deploy) that recovers, and ServoX's main loop also asks again after a
//! validation error. Unlike ServoX (which asks again at once, forever, or stops on the first
//! non-JSON body), the retries are paced and bounded by the same backoff as every other failure,
//! and giving up names the problem, the answer and the endpoint ([`ClientError::Decode`]).
//!
//! Every wait (the request itself and the pause between tries) ends as soon as the run is cancelled.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::{RngExt, SeedableRng};
use reqwest::StatusCode;
use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::wire::{EventName, Request};
use crate::config::optimizer::{Credentials, RemoteOptimizer};
use crate::config::{Backoff, Proxies, ServoSettings, SslVerify};
use servo_core::units::{Duration, Secret};

/// First backoff step; doubled on every retry.
const BASE_DELAY: std::time::Duration = std::time::Duration::from_millis(500);
/// No single pause between tries is longer than this.
const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(60);
/// ServoX's `__default__` backoff `max_time`.
const DEFAULT_MAX_TIME: Duration = Duration::from_secs(600);
/// ServoX's `connect` backoff `max_time`.
const CONNECT_MAX_TIME: Duration = Duration::from_secs(3600);
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const DEFAULT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
const DEFAULT_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a request to the optimizer did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// HTTP 401: the token is missing, wrong or expired.
    #[error("the optimizer rejected the token (HTTP 401 from {url})")]
    Unauthorized { url: String },
    /// Another 4xx: retrying cannot help.
    #[error("the optimizer refused {event} with HTTP {status}: {detail}")]
    Refused {
        event: EventName,
        status: u16,
        detail: String,
    },
    /// HTTP 410 `unexpected servo_uid`: the optimizer no longer knows this servo.
    #[error("the optimizer no longer knows this servo (HTTP 410: unexpected servo_uid)")]
    Deprovisioned,
    /// Every allowed try failed with a retryable error; the last try had no usable HTTP answer.
    #[error("{event} failed after {tries} tries in {elapsed} (POST {endpoint}): {last}")]
    GaveUp {
        event: EventName,
        endpoint: String,
        tries: u32,
        elapsed: Duration,
        last: String,
    },
    /// Every allowed try was answered, the last one with something that is not the JSON the
    /// protocol prescribes for the event.
    #[error(
        "{event} failed after {tries} tries in {elapsed} (POST {endpoint}): the answer is not {expected}: {error} (body: {body})"
    )]
    Decode {
        event: EventName,
        endpoint: String,
        tries: u32,
        elapsed: Duration,
        /// What the protocol prescribes (`a command`, `JSON`).
        expected: &'static str,
        error: String,
        body: String,
    },
    /// The HTTP client could not be set up from `settings` (a bad proxy URL or CA bundle).
    #[error("{0}")]
    Setup(String),
    #[error("interrupted")]
    Cancelled,
}

impl ClientError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ClientError::Unauthorized { .. } => {
                Some("check optimizer.token / SERVO_OPTIMIZER_TOKEN".into())
            }
            ClientError::Refused { status: 403, .. } => {
                Some("the token is valid but not for this application: check optimizer.id".into())
            }
            ClientError::GaveUp { .. } => Some(
                "check that the optimizer URL (optimizer.base_url / optimizer.url) is reachable; \
                 `settings.backoff` bounds how long servo retries"
                    .into(),
            ),
            ClientError::Decode { .. } => Some(
                "something answers at the optimizer URL, but not in the ServoX protocol: check that \
                 optimizer.base_url / optimizer.url is the optimizer's API and not a web page, a \
                 proxy or a login portal; `settings.backoff` bounds how long servo retries"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The retry bounds of one event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub max_time: Duration,
    pub max_tries: Option<u32>,
}

impl RetryPolicy {
    /// The policy for `event` from `settings.backoff`, field by field: the event's own entry, then
    /// `__default__`, then ServoX's defaults.
    pub fn for_event(backoff: &BTreeMap<String, Backoff>, event: EventName) -> Self {
        let key = match event {
            EventName::Hello => "connect".to_string(),
            other => other.backoff_key(),
        };
        let own = backoff.get(&key);
        let default = backoff.get("__default__");
        let fallback_time = if event == EventName::Hello {
            CONNECT_MAX_TIME
        } else {
            DEFAULT_MAX_TIME
        };
        Self {
            max_time: own
                .and_then(|b| b.max_time)
                .or_else(|| default.and_then(|b| b.max_time))
                .unwrap_or(fallback_time),
            max_tries: own
                .and_then(|b| b.max_tries)
                .or_else(|| default.and_then(|b| b.max_tries)),
        }
    }
}

/// A client of one optimizer application.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    auth: Auth,
    /// The token as sent, to scrub from answers quoted in errors: a proxy's or gateway's error
    /// page may echo the request's headers.
    token: Secret<String>,
    backoff: BTreeMap<String, Backoff>,
    /// `servo_uid`, sent in every request body as ServoX does.
    servo_uid: Option<String>,
}

/// How each request is authenticated.
#[derive(Clone, Debug)]
enum Auth {
    /// A fixed header: `Authorization: Bearer T`, or ServoX's `X-SF-Token: T`. The value is marked
    /// sensitive (HTTP/2 never indexes it) and wrapped so that `Debug` prints `**********`.
    Header {
        name: HeaderName,
        value: Secret<HeaderValue>,
    },
    /// The AppDynamics sidecar's connection file: its `Authorization`, read again whenever the
    /// file's modification time changes (the sidecar rotates it in place).
    ConnectionFile {
        path: std::path::PathBuf,
        current: Arc<std::sync::Mutex<FileToken>>,
    },
    /// OAuth2 client credentials (ServoX's AppDynamics form): a bearer token fetched from the
    /// token endpoint and fetched again shortly before it expires, or after a 401.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret<String>,
        current: Arc<tokio::sync::Mutex<Option<IssuedToken>>>,
    },
}

/// A connection file's token as a header, and the file's modification time when it was read.
#[derive(Debug)]
struct FileToken {
    modified: Option<std::time::SystemTime>,
    name: HeaderName,
    value: Secret<HeaderValue>,
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The connection file's token, read again first if the file changed since. A file that cannot
/// be read or parsed right now (the sidecar mid-write) keeps the previous token, with a warning,
/// and is tried again at the next request.
fn file_token(
    path: &std::path::Path,
    current: &std::sync::Mutex<FileToken>,
) -> (HeaderName, HeaderValue) {
    let mut token = current.lock().unwrap_or_else(|e| e.into_inner());
    let now = modified(path);
    if now.is_some() && now != token.modified {
        let read = crate::config::optimizer::ConnectionFile::read(path)
            .and_then(|c| token_header(c.authorization.trim()).map_err(|e| e.to_string()));
        match read {
            Ok((name, value)) => {
                tracing::info!(file = %path.display(), "read the connection file's new Authorization");
                *token = FileToken {
                    modified: now,
                    name,
                    value: Secret::new(value),
                };
            }
            Err(e) => tracing::warn!(error = %e, "keeping the previous token"),
        }
    }
    (token.name.clone(), token.value.expose().clone())
}

/// A client-credentials token as a header value, and when it expires.
type IssuedToken = (Secret<HeaderValue>, Instant);

/// A token is fetched again this long before it expires.
const TOKEN_LEEWAY: std::time::Duration = std::time::Duration::from_secs(60);

/// The header for a fixed token, as ServoX's `api.py` builds it: `X-SF-Token VALUE` becomes
/// header `X-SF-Token: VALUE`; anything else is a bearer token (`Bearer ` added once).
fn token_header(token: &str) -> Result<(HeaderName, HeaderValue), ClientError> {
    let (name, value) = match token.strip_prefix("X-SF-Token") {
        Some(rest) => (
            HeaderName::from_static("x-sf-token"),
            rest.trim_start().to_string(),
        ),
        None if token.starts_with("Bearer ") => (AUTHORIZATION, token.to_string()),
        None => (AUTHORIZATION, format!("Bearer {token}")),
    };
    // Checked here, once: a token an HTTP header cannot carry would otherwise fail every
    // request with a transport error that gets retried until the backoff gives up.
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        ClientError::Setup(
            "optimizer.token holds a character an HTTP header cannot carry (a line break \
             or another control character?); the token is not shown: check it where it is \
             set (the file or SERVO_OPTIMIZER_TOKEN)"
                .to_string(),
        )
    })?;
    value.set_sensitive(true);
    Ok((name, value))
}

impl Client {
    /// A client for `remote`, with the timeouts, proxies and TLS verification of `settings`;
    /// `servo_uid` goes into every request body.
    pub fn new(
        remote: &RemoteOptimizer,
        settings: &ServoSettings,
        servo_uid: Option<&str>,
    ) -> Result<Self, ClientError> {
        let timeouts = &settings.timeouts;
        let connect = timeouts.connect.map_or(DEFAULT_CONNECT_TIMEOUT, Into::into);
        let read = timeouts.read.map_or(DEFAULT_READ_TIMEOUT, Into::into);
        let write = timeouts.write.map_or(DEFAULT_WRITE_TIMEOUT, Into::into);
        servo_core::http::install_crypto();
        let mut builder = reqwest::Client::builder()
            .user_agent(servo_core::http::USER_AGENT)
            .connect_timeout(connect)
            .read_timeout(read)
            // reqwest has no write timeout of its own; the total bounds a stalled upload.
            .timeout(connect + write + read);
        if let Some(pool) = timeouts.pool {
            builder = builder.pool_idle_timeout(std::time::Duration::from(pool));
        }
        builder = match &settings.proxies {
            None => builder,
            Some(Proxies::All(url)) => builder.proxy(proxy(reqwest::Proxy::all(url), url)?),
            Some(Proxies::PerScheme(map)) => {
                for (scheme, url) in map {
                    let p = match scheme.trim_end_matches("://") {
                        "http" => reqwest::Proxy::http(url),
                        "https" => reqwest::Proxy::https(url),
                        "all" => reqwest::Proxy::all(url),
                        other => {
                            return Err(ClientError::Setup(format!(
                                "settings.proxies: unknown scheme `{other}`: use http://, https:// or all://"
                            )));
                        }
                    };
                    builder = builder.proxy(proxy(p, url)?);
                }
                builder
            }
        };
        builder = match &settings.ssl_verify {
            None | Some(SslVerify::Enabled(true)) => builder,
            Some(SslVerify::Enabled(false)) => builder.tls_danger_accept_invalid_certs(true),
            Some(SslVerify::CaBundle(path)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ClientError::Setup(format!(
                        "settings.ssl_verify: cannot read the CA bundle {}: {e}",
                        path.display()
                    ))
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    ClientError::Setup(format!(
                        "settings.ssl_verify: {} is not a PEM CA bundle: {e}",
                        path.display()
                    ))
                })?;
                certs
                    .into_iter()
                    .fold(builder, |b, cert| b.add_root_certificate(cert))
            }
        };
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot set up the HTTP client: {e}")))?;
        let endpoint = remote.endpoint().map_err(ClientError::Setup)?;
        let (auth, token) = match endpoint.credentials {
            Credentials::Token(token) => {
                let token = token.expose().trim().to_string();
                let (name, value) = token_header(&token)?;
                let bare = token
                    .trim_start_matches("X-SF-Token")
                    .trim_start_matches(" Bearer")
                    .trim_start_matches("Bearer ")
                    .trim()
                    .to_string();
                (
                    Auth::Header {
                        name,
                        value: Secret::new(value),
                    },
                    bare,
                )
            }
            Credentials::ConnectionFile {
                path,
                authorization,
            } => {
                let token = authorization.expose().trim().to_string();
                let (name, value) = token_header(&token)?;
                let current = FileToken {
                    modified: modified(&path),
                    name,
                    value: Secret::new(value),
                };
                (
                    Auth::ConnectionFile {
                        path,
                        current: Arc::new(std::sync::Mutex::new(current)),
                    },
                    token,
                )
            }
            Credentials::ClientCredentials {
                token_url,
                client_id,
                client_secret,
            } => (
                Auth::ClientCredentials {
                    token_url,
                    client_id,
                    client_secret,
                    current: Arc::default(),
                },
                String::new(),
            ),
        };
        Ok(Self {
            http,
            endpoint: format!("{}servo", endpoint.url),
            auth,
            token: Secret::new(token),
            backoff: settings.backoff.clone(),
            servo_uid: servo_uid.map(str::to_string),
        })
    }

    /// The header that authenticates the next request: the fixed one, or a client-credentials
    /// token, fetched when there is none or it is about to expire.
    async fn auth_header(&self) -> Result<(HeaderName, HeaderValue), Attempt> {
        let (token_url, client_id, client_secret, current) = match &self.auth {
            Auth::Header { name, value } => return Ok((name.clone(), value.expose().clone())),
            Auth::ConnectionFile { path, current } => return Ok(file_token(path, current)),
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                current,
            } => (token_url, client_id, client_secret, current),
        };
        let mut current = current.lock().await;
        if let Some((value, expires)) = current.as_ref()
            && Instant::now() + TOKEN_LEEWAY < *expires
        {
            return Ok((AUTHORIZATION, value.expose().clone()));
        }
        let unavailable = |e: String| {
            Attempt::Retry(Retryable::Unavailable(format!(
                "token endpoint {}: {e}",
                servo_core::http::redact_url(token_url)
            )))
        };
        let response = self
            .http
            .post(token_url)
            .basic_auth(client_id, Some(client_secret.expose()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|e| unavailable(transport_error(e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| unavailable(transport_error(e)))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST {
            return Err(Attempt::Final(ClientError::Refused {
                event: EventName::Hello,
                status: status.as_u16(),
                detail: format!(
                    "the token endpoint refused the client credentials (optimizer.client_id / client_secret): {}",
                    abbreviate(&text)
                ),
            }));
        }
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {}", status.as_u16())));
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            access_token: String,
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer = serde_json::from_str(&text)
            .map_err(|e| unavailable(format!("not an OAuth2 token answer: {e}")))?;
        let (_, value) = token_header(&answer.access_token).map_err(Attempt::Final)?;
        let lifetime = std::time::Duration::from_secs(answer.expires_in.unwrap_or(3600));
        *current = Some((Secret::new(value.clone()), Instant::now() + lifetime));
        Ok((AUTHORIZATION, value))
    }

    /// Forgets a client-credentials token the optimizer refused, so the next try fetches one; a
    /// connection file that changed since it was read is worth another try too.
    async fn forget_token(&self) -> bool {
        match &self.auth {
            Auth::Header { .. } => false,
            Auth::ConnectionFile { path, current } => {
                let token = current.lock().unwrap_or_else(|e| e.into_inner());
                modified(path).is_some_and(|now| Some(now) != token.modified)
            }
            Auth::ClientCredentials { current, .. } => current.lock().await.take().is_some(),
        }
    }

    /// The URL every event is posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Posts `event` with its retry policy and decodes the answer as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        event: EventName,
        param: Option<Value>,
        cancel: &CancellationToken,
    ) -> Result<T, ClientError> {
        let policy = RetryPolicy::for_event(&self.backoff, event);
        self.post_with(event, param, policy, cancel).await
    }

    /// Posts `event` once, within `deadline`, ignoring cancellation: for `GOODBYE` after a signal,
    /// when the run's token is already cancelled but the optimizer should still hear why we left.
    pub async fn post_once(
        &self,
        event: EventName,
        param: Option<Value>,
        deadline: std::time::Duration,
    ) -> Result<Value, ClientError> {
        let body = Request {
            event,
            param,
            servo_uid: self.servo_uid.clone(),
        };
        let attempt = async {
            match self.attempt(&body).await {
                Ok(value) => Ok(value),
                Err(Attempt::Retry(last)) => Err(self.give_up(event, 1, Duration::ZERO, last)),
                Err(Attempt::Final(e)) => Err(e),
            }
        };
        tokio::time::timeout(deadline, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(self.give_up(
                    event,
                    1,
                    deadline.into(),
                    Retryable::Unavailable("timed out".into()),
                ))
            })
    }

    async fn post_with<T: DeserializeOwned>(
        &self,
        event: EventName,
        param: Option<Value>,
        policy: RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<T, ClientError> {
        let body = Request {
            event,
            param,
            servo_uid: self.servo_uid.clone(),
        };
        let started = Instant::now();
        let max_time: std::time::Duration = policy.max_time.into();
        let mut tries = 0u32;
        loop {
            tries += 1;
            let outcome = cancel
                .run_until_cancelled(self.attempt(&body))
                .await
                .ok_or(ClientError::Cancelled)?;
            // A well-formed JSON answer of the wrong shape is retried like a garbled one.
            let last = match outcome.and_then(|value| decode::<T>(event, value)) {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry(last)) => last,
            };
            // Whole milliseconds: `280.973142ms` in a message is noise.
            let elapsed = std::time::Duration::from_millis(
                u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            );
            if policy.max_tries.is_some_and(|max| tries >= max) || elapsed >= max_time {
                return Err(self.give_up(event, tries, elapsed.into(), last));
            }
            let delay = full_jitter(tries).min(max_time.saturating_sub(elapsed));
            tracing::warn!(
                event = %event, tries, error = %last,
                "no usable answer from the optimizer; retrying in {:.1}s", delay.as_secs_f64()
            );
            cancel
                .run_until_cancelled(tokio::time::sleep(delay))
                .await
                .ok_or(ClientError::Cancelled)?;
        }
    }

    /// The error that ends the retries of `event`, worded after the last failure.
    fn give_up(
        &self,
        event: EventName,
        tries: u32,
        elapsed: Duration,
        last: Retryable,
    ) -> ClientError {
        let endpoint = self.endpoint.clone();
        match last {
            Retryable::Unavailable(last) => ClientError::GaveUp {
                event,
                endpoint,
                tries,
                elapsed,
                last,
            },
            Retryable::Garbled {
                expected,
                error,
                body,
            } => ClientError::Decode {
                event,
                endpoint,
                tries,
                elapsed,
                expected,
                error,
                body,
            },
        }
    }

    /// One try: the JSON body of a 2xx, or whether to try again.
    async fn attempt(&self, body: &Request) -> Result<Value, Attempt> {
        let (name, value) = self.auth_header().await?;
        let response = self
            .http
            .post(&self.endpoint)
            .header(name, value)
            .json(body)
            .send()
            .await
            .map_err(|e| Attempt::Retry(Retryable::Unavailable(transport_error(e))))?;
        let status = response.status();
        // A connection closed mid-body (a truncated answer) is a transport error, retried.
        let text = response
            .text()
            .await
            .map_err(|e| Attempt::Retry(Retryable::Unavailable(transport_error(e))))?;
        let text = self.scrub(text);
        if status.is_success() {
            // An empty body (some optimizers answer GOODBYE with nothing) reads as `{}`.
            if text.trim().is_empty() {
                return Ok(Value::Object(serde_json::Map::new()));
            }
            return serde_json::from_str(&text).map_err(|e| {
                Attempt::Retry(Retryable::Garbled {
                    expected: "JSON",
                    error: e.to_string(),
                    body: abbreviate(&text),
                })
            });
        }
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| abbreviate(&text));
        match status {
            s if s.is_server_error() || s == StatusCode::NOT_FOUND => Err(Attempt::Retry(
                Retryable::Unavailable(format!("HTTP {}: {detail}", s.as_u16())),
            )),
            // A client-credentials token may have been revoked early: fetch another once.
            StatusCode::UNAUTHORIZED if self.forget_token().await => Err(Attempt::Retry(
                Retryable::Unavailable("HTTP 401: the token was refused; fetching another".into()),
            )),
            StatusCode::UNAUTHORIZED => Err(Attempt::Final(ClientError::Unauthorized {
                url: self.endpoint.clone(),
            })),
            StatusCode::GONE if detail == "unexpected servo_uid" => {
                Err(Attempt::Final(ClientError::Deprovisioned))
            }
            s => Err(Attempt::Final(ClientError::Refused {
                event: body.event,
                status: s.as_u16(),
                detail,
            })),
        }
    }
}

impl Client {
    /// `text` with the token replaced by `**********`. Tokens shorter than 8 characters are left
    /// alone: they would match ordinary text, and no real optimizer issues them.
    fn scrub(&self, text: String) -> String {
        let token = self.token.expose();
        if token.len() >= 8 && text.contains(token.as_str()) {
            // What a `Secret` prints.
            text.replace(token.as_str(), "**********")
        } else {
            text
        }
    }
}

enum Attempt {
    Retry(Retryable),
    Final(ClientError),
}

/// A failure worth another try.
enum Retryable {
    /// No usable HTTP answer: refused, reset, closed mid-answer, timed out, 5xx, 404.
    Unavailable(String),
    /// A 2xx answer that is not what the protocol prescribes for the event.
    Garbled {
        expected: &'static str,
        error: String,
        body: String,
    },
}

impl std::fmt::Display for Retryable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retryable::Unavailable(text) => f.write_str(text),
            Retryable::Garbled {
                expected,
                error,
                body,
            } => write!(f, "the answer is not {expected}: {error} (body: {body})"),
        }
    }
}

/// `value` as the answer `event` expects; a shape mismatch is retried as a garbled answer.
fn decode<T: DeserializeOwned>(event: EventName, value: Value) -> Result<T, Attempt> {
    serde_json::from_value(value.clone()).map_err(|e| {
        Attempt::Retry(Retryable::Garbled {
            expected: if event == EventName::WhatsNext {
                "a command"
            } else {
                "the protocol's JSON"
            },
            error: e.to_string(),
            body: abbreviate(&value.to_string()),
        })
    })
}

fn proxy(p: reqwest::Result<reqwest::Proxy>, url: &str) -> Result<reqwest::Proxy, ClientError> {
    p.map_err(|e| {
        ClientError::Setup(format!(
            "settings.proxies: `{}` is not a proxy URL: {e}",
            servo_core::http::redact_url(url)
        ))
    })
}

/// A transport error with its causes: reqwest's own message (`error sending request`) hides
/// whether the connection was refused or timed out. The URL reqwest adds is left out: the final
/// error names the endpoint once.
fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A random pause in `[0, min(MAX_DELAY, BASE_DELAY × 2^(tries-1))]` ("full jitter"), so many
/// servos retrying against one optimizer do not retry in step.
fn full_jitter(tries: u32) -> std::time::Duration {
    let exponent = tries.saturating_sub(1).min(16);
    let ceiling = BASE_DELAY.saturating_mul(1 << exponent).min(MAX_DELAY);
    // Jitter needs no cryptographic quality, only to differ between servos and tries: the clock's
    // nanoseconds and the process id are enough (and need no OS entropy source).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ u64::from(tries);
    let fraction: f64 = rand::rngs::ChaCha8Rng::seed_from_u64(seed).random_range(0.0..=1.0);
    ceiling.mul_f64(fraction)
}

/// The start of an answer, on one line, for quoting in an error: an HTML error page keeps its
/// first words, not its layout.
fn abbreviate(text: &str) -> String {
    const LIMIT: usize = 300;
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(LIMIT) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_falls_back_from_event_to_default_to_servox() {
        let mut backoff = BTreeMap::new();
        assert_eq!(
            RetryPolicy::for_event(&backoff, EventName::WhatsNext),
            RetryPolicy {
                max_time: DEFAULT_MAX_TIME,
                max_tries: None
            }
        );
        assert_eq!(
            RetryPolicy::for_event(&backoff, EventName::Hello).max_time,
            CONNECT_MAX_TIME
        );
        backoff.insert(
            "__default__".to_string(),
            Backoff {
                max_time: Some(Duration::from_secs(5)),
                max_tries: Some(7),
            },
        );
        backoff.insert(
            "whats_next".to_string(),
            Backoff {
                max_time: None,
                max_tries: Some(2),
            },
        );
        assert_eq!(
            RetryPolicy::for_event(&backoff, EventName::WhatsNext),
            RetryPolicy {
                max_time: Duration::from_secs(5),
                max_tries: Some(2)
            }
        );
        assert_eq!(
            RetryPolicy::for_event(&backoff, EventName::Measurement).max_tries,
            Some(7)
        );
    }

    #[test]
    fn jitter_stays_under_the_exponential_ceiling() {
        for tries in 1u32..40 {
            let ceiling = BASE_DELAY.saturating_mul(1 << tries.saturating_sub(1).min(16));
            let d = full_jitter(tries);
            assert!(d <= ceiling.min(MAX_DELAY), "try {tries}: {d:?}");
        }
    }

    #[test]
    fn bearer_prefix_is_added_once_and_x_sf_token_has_its_own_header() {
        let remote = |token: &str| RemoteOptimizer {
            id: Some("o/a".into()),
            token: Some(servo_core::units::Secret::from(token.to_string())),
            base_url: Some("http://127.0.0.1:9".into()),
            ..RemoteOptimizer::default()
        };
        let settings = ServoSettings::default();
        let c = Client::new(&remote("abc"), &settings, None).expect("client");
        let Auth::Header { name, value } = &c.auth else {
            panic!("a fixed token is a header");
        };
        assert_eq!(name, AUTHORIZATION);
        assert_eq!(value.expose().to_str().ok(), Some("Bearer abc"));
        assert!(value.expose().is_sensitive());
        assert!(!format!("{c:?}").contains("abc"));
        assert_eq!(
            c.endpoint(),
            "http://127.0.0.1:9/accounts/o/applications/a/servo"
        );
        let c = Client::new(&remote("Bearer xyz"), &settings, None).expect("client");
        let Auth::Header { value, .. } = &c.auth else {
            panic!("a fixed token is a header");
        };
        assert_eq!(value.expose().to_str().ok(), Some("Bearer xyz"));
        // ServoX's `X-SF-Token VALUE` form: its own header, no Authorization.
        let c = Client::new(&remote("X-SF-Token sf-123"), &settings, None).expect("client");
        let Auth::Header { name, value } = &c.auth else {
            panic!("a fixed token is a header");
        };
        assert_eq!(name.as_str(), "x-sf-token");
        assert_eq!(value.expose().to_str().ok(), Some("sf-123"));
    }

    #[test]
    fn a_token_no_header_can_carry_fails_setup_without_showing_it() {
        let remote = RemoteOptimizer {
            id: Some("o/a".into()),
            token: Some(servo_core::units::Secret::from("s3cr3t\nline".to_string())),
            base_url: Some("http://127.0.0.1:9".into()),
            ..RemoteOptimizer::default()
        };
        let error = Client::new(&remote, &ServoSettings::default(), None)
            .map(|_| ())
            .expect_err("a line break cannot go in a header");
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
        assert!(error.to_string().contains("optimizer.token"), "{error}");
    }

    #[test]
    fn answers_of_the_wrong_shape_are_retried_then_named_with_the_endpoint() {
        let garbled = match decode::<super::super::wire::Command>(
            EventName::WhatsNext,
            serde_json::json!({"cmd": "DANCE"}),
        ) {
            Err(Attempt::Retry(r @ Retryable::Garbled { .. })) => r,
            Err(Attempt::Retry(Retryable::Unavailable(text))) => panic!("unavailable: {text}"),
            Err(Attempt::Final(e)) => panic!("final: {e}"),
            Ok(_) => panic!("DANCE is no command"),
        };
        assert!(
            garbled
                .to_string()
                .starts_with("the answer is not a command: unknown variant `DANCE`")
        );
        let remote = RemoteOptimizer {
            id: Some("o/a".into()),
            token: Some(servo_core::units::Secret::from("tok-12345678".to_string())),
            base_url: Some("http://127.0.0.1:9".into()),
            ..RemoteOptimizer::default()
        };
        let c = Client::new(&remote, &ServoSettings::default(), None).expect("client");
        let error = c.give_up(EventName::WhatsNext, 3, Duration::from_secs(2), garbled);
        assert!(
            matches!(error, ClientError::Decode { tries: 3, .. }),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.starts_with("WHATS_NEXT failed after 3 tries in 2s"),
            "{text}"
        );
        assert!(
            text.contains("(POST http://127.0.0.1:9/accounts/o/applications/a/servo)"),
            "{text}"
        );
        assert!(text.contains(r#"(body: {"cmd":"DANCE"})"#), "{text}");
        assert!(
            error
                .hint()
                .is_some_and(|h| h.contains("not in the ServoX protocol"))
        );
    }

    #[test]
    fn quoted_answers_fit_on_one_line() {
        assert_eq!(
            abbreviate("<html>\n  <body>\n\tdown\n</body>"),
            "<html> <body> down </body>"
        );
        let long = abbreviate(&"x ".repeat(400));
        assert!(long.ends_with('…') && long.chars().count() == 301, "{long}");
    }

    #[test]
    fn answers_echoing_the_token_are_scrubbed() {
        let remote = RemoteOptimizer {
            id: Some("o/a".into()),
            token: Some(servo_core::units::Secret::from(
                "Bearer tok-12345678".to_string(),
            )),
            base_url: Some("http://127.0.0.1:9".into()),
            ..RemoteOptimizer::default()
        };
        let c = Client::new(&remote, &ServoSettings::default(), None).expect("client");
        assert_eq!(
            c.scrub("denied: Authorization: Bearer tok-12345678".into()),
            "denied: Authorization: Bearer **********"
        );
    }
}
