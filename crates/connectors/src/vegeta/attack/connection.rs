//! Connections owned by one worker.
//!
//! Each worker keeps its own connection to each origin it talks to, so the
//! request path has no pool, lock or shared state. HTTP/1.1, plain or over
//! TLS, goes through the engine's own client (see the `http1` module), driven
//! inside the worker's task: no connection task, no channel, one write per
//! request and responses parsed in place. HTTP/2 connections (https with ALPN
//! `h2`) use hyper and run their connection task as usual, because the
//! protocol needs attention (pings, flow control) even while the worker is
//! idle.
//!
//! As a consequence an attack opens up to one connection per worker and
//! origin, HTTP/2 included (one stream at a time on each), where Go's
//! transport would multiplex every HTTP/2 request to a host on one
//! connection. vegeta's `connections` setting keeps its meaning: at most that
//! many connections per origin stay open between requests; workers beyond it
//! close theirs after each request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::super::targets::Target;
use super::describe;
use super::http1::{self, EncodedRequest, Http1};

/// Where connections go: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    /// Without the brackets of an IPv6 literal.
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &Uri) -> Result<Self, String> {
        let https = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => {
                return Err(format!(
                    "unsupported scheme \"{other}\": expected http or https"
                ));
            }
            None => {
                return Err(
                    "the URL is not absolute: expected http://host/path or https://…".to_owned(),
                );
            }
        };
        let host = url
            .host()
            .filter(|host| !host.is_empty())
            .ok_or("the URL has no host")?;
        let host = host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Self { https, host, port })
    }
}

/// A target ready to be sent on either protocol, prepared once per attack.
pub(super) struct Prepared {
    origin: usize,
    method: Method,
    /// The whole HTTP/1.1 request, with `Host` (and `Connection: close`
    /// without keep-alive).
    http1: EncodedRequest,
    /// Absolute form, from which HTTP/2 takes `:scheme` and `:authority`.
    absolute: Uri,
    /// Without connection-specific headers, which HTTP/2 forbids.
    http2_headers: HeaderMap,
    body: Bytes,
}

impl Prepared {
    pub fn body_len(&self) -> u64 {
        self.body.len() as u64
    }
}

/// Headers that only make sense for one HTTP/1.1 connection, which HTTP/2
/// forbids (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [header::HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HeaderName::from_static("keep-alive"),
    header::HeaderName::from_static("proxy-connection"),
];

/// What every worker shares to open connections: the origins of the
/// targets, the TLS set-up and the per-origin count of connections kept open.
pub(super) struct Connector {
    origins: Vec<Origin>,
    tls: TlsConnector,
    http2: bool,
    keepalive: bool,
    max_idle_per_origin: usize,
    kept: Arc<[AtomicUsize]>,
}

impl Connector {
    /// Prepares `targets` and the connector they need. Fails on a target the
    /// engine cannot send (the parsers never produce one, but targets built by
    /// hand may), naming it by position.
    pub fn new(
        targets: &[Target],
        tls: rustls::ClientConfig,
        http2: bool,
        keepalive: bool,
        max_idle_per_origin: usize,
    ) -> Result<(Self, Vec<Prepared>), String> {
        let mut origins: Vec<Origin> = Vec::new();
        let mut prepared = Vec::with_capacity(targets.len());
        for (position, target) in targets.iter().enumerate() {
            let invalid = |why: String| {
                format!(
                    "target {} ({} {}): {why}",
                    position + 1,
                    target.method,
                    target.url
                )
            };
            let origin = Origin::of(&target.url).map_err(invalid)?;
            let index = match origins.iter().position(|known| *known == origin) {
                Some(index) => index,
                None => {
                    origins.push(origin);
                    origins.len() - 1
                }
            };
            prepared.push(prepare(target, index, keepalive).map_err(invalid)?);
        }
        let kept = origins.iter().map(|_| AtomicUsize::new(0)).collect();
        let connector = Self {
            origins,
            tls: TlsConnector::from(Arc::new(tls)),
            http2,
            keepalive,
            max_idle_per_origin,
            kept,
        };
        Ok((connector, prepared))
    }

    pub fn origins(&self) -> usize {
        self.origins.len()
    }

    async fn connect(&self, origin_index: usize) -> Result<Conn, String> {
        let origin = &self.origins[origin_index];
        let tcp = connect_tcp(&origin.host, origin.port).await?;
        let protocol = if origin.https {
            let name = ServerName::try_from(origin.host.clone())
                .map_err(|error| format!("invalid TLS server name \"{}\": {error}", origin.host))?;
            let tls = self.tls.connect(name, tcp).await.map_err(|error| {
                format!(
                    "TLS handshake with {}:{} failed: {}{}",
                    origin.host,
                    origin.port,
                    describe(&error),
                    certificate_hint(&error)
                )
            })?;
            if self.http2 && tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                http2_handshake(TokioIo::new(tls)).await.map_err(|error| {
                    format!(
                        "HTTP/2 handshake with {}:{} failed: {}",
                        origin.host,
                        origin.port,
                        describe(&error)
                    )
                })?
            } else {
                Protocol::Tls(Box::new(Http1::new(tls)))
            }
        } else {
            Protocol::Plain(Http1::new(tcp))
        };
        Ok(Conn {
            protocol,
            slot: None,
            reused: false,
            busy: false,
        })
    }

    /// Claims one of the origin's idle-connection slots, if any is free.
    fn claim_slot(&self, origin: usize) -> Option<Slot> {
        let counter = self.kept.get(origin)?;
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |kept| {
                (kept < self.max_idle_per_origin).then_some(kept + 1)
            })
            .ok()?;
        Some(Slot {
            kept: Arc::clone(&self.kept),
            origin,
        })
    }
}

fn prepare(target: &Target, origin: usize, keepalive: bool) -> Result<Prepared, String> {
    let authority = target
        .url
        .authority()
        .ok_or("the URL has no host")?
        .as_str();
    // Userinfo (`user:pass@`) never goes into Host.
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path_and_query = target
        .url
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));

    let mut http1_headers = target.headers.clone();
    if !http1_headers.contains_key(header::HOST) {
        let value = HeaderValue::from_str(host).map_err(|_| format!("invalid host \"{host}\""))?;
        http1_headers.insert(header::HOST, value);
    }
    if !keepalive {
        http1_headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let http1 = EncodedRequest::new(
        &target.method,
        &path_and_query,
        &http1_headers,
        &target.body,
    );

    // HTTP/2 carries the host in `:authority`, taken from the URI: a Host
    // header given with the target (virtual hosting) goes there.
    let mut http2_headers = target.headers.clone();
    for name in &CONNECTION_SPECIFIC {
        http2_headers.remove(name);
    }
    let mut absolute = target.url.clone();
    if let Some(host) = http2_headers.remove(header::HOST) {
        let authority = host
            .to_str()
            .ok()
            .and_then(|host| Authority::try_from(host).ok())
            .ok_or_else(|| format!("invalid Host header {host:?}"))?;
        let scheme = target.url.scheme().cloned().unwrap_or(Scheme::HTTP);
        absolute = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path_and_query)
            .build()
            .map_err(|error| format!("cannot combine the URL with its Host header: {error}"))?;
    }

    Ok(Prepared {
        origin,
        method: target.method.clone(),
        http1,
        absolute,
        http2_headers,
        body: target.body.clone(),
    })
}

async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, String> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| format!("cannot resolve {host}: {error}"))?
        .collect();
    // Like Go's dialer: try each address in turn and report the last failure.
    let mut last_error = format!("cannot resolve {host}: no addresses");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Requests are small writes whose latency is measured: never
                // let Nagle's algorithm hold them back (Go disables it too).
                // Failing to set it only costs latency, so it is not an error.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => last_error = format!("cannot connect to {address}: {error}"),
        }
    }
    Err(last_error)
}

async fn http2_handshake<T>(io: T) -> hyper::Result<Protocol>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
    // Ends when the worker drops the sender and the connection closes.
    tokio::spawn(connection);
    Ok(Protocol::Http2 { sender })
}

/// A hint to append when a handshake failed on the server's certificate: the
/// one TLS failure users can work around from the attack's settings.
fn certificate_hint(error: &std::io::Error) -> &'static str {
    let is_certificate = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)));
    if is_certificate {
        " (set insecure to accept certificates that cannot be verified)"
    } else {
        ""
    }
}

enum Protocol {
    Plain(Http1<TcpStream>),
    /// Boxed: a TLS session is large, and rarely the hot path.
    Tls(Box<Http1<TlsStream<TcpStream>>>),
    Http2 {
        sender: http2::SendRequest<Full<Bytes>>,
    },
}

struct Conn {
    protocol: Protocol,
    /// Held while the connection is kept between requests (see
    /// [`Connector::claim_slot`]).
    slot: Option<Slot>,
    /// Has completed a request before: a failure to send on it may just be
    /// the server having closed it while idle, and is retried once.
    reused: bool,
    /// A request was started and not finished: it was abandoned (timeout or
    /// cancellation), so an HTTP/1.1 connection is mid-response and unusable.
    busy: bool,
}

/// One of an origin's `connections` idle-connection slots; returned on drop.
struct Slot {
    kept: Arc<[AtomicUsize]>,
    origin: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(counter) = self.kept.get(self.origin) {
            counter.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Why a request got no (complete) response.
enum Failure {
    /// It may be sent again on a fresh connection if the one it failed on
    /// had served requests before (and so may have been closed by the server
    /// while idle): it never left, or it is replayable and no byte of a
    /// response came back.
    Retriable(String),
    Failed(String),
}

/// One worker's connections, by origin.
pub(super) struct Connections {
    open: Vec<Option<Conn>>,
}

impl Connections {
    pub fn new(connector: &Connector) -> Self {
        Self {
            open: (0..connector.origins()).map(|_| None).collect(),
        }
    }

    /// Sends `target` and reads the whole response. Returns its status and
    /// the number of body bytes, or why no complete response came back.
    ///
    /// Dropping the returned future abandons the request; the connection it
    /// used is then replaced by the next call if it cannot be reused.
    pub async fn exchange(
        &mut self,
        connector: &Connector,
        target: &Prepared,
    ) -> Result<(u16, u64), String> {
        let origin = target.origin;
        loop {
            let conn = self.usable(connector, origin).await?;
            let reused = conn.reused;
            conn.busy = true;
            match conn.exchange(target).await {
                Ok(outcome) => {
                    conn.busy = false;
                    conn.reused = true;
                    self.keep_or_close(connector, origin);
                    return Ok(outcome);
                }
                Err(Failure::Retriable(_)) if reused => {
                    // The server closed the idle connection as we picked it
                    // up: sending the request on a fresh connection is safe
                    // (Go's transport does the same, on the same conditions).
                    self.open[origin] = None;
                }
                Err(Failure::Retriable(why) | Failure::Failed(why)) => {
                    self.open[origin] = None;
                    return Err(why);
                }
            }
        }
    }

    /// The origin's connection, checked or (re)opened.
    async fn usable(&mut self, connector: &Connector, origin: usize) -> Result<&mut Conn, String> {
        let reusable = match self.open[origin].as_mut() {
            Some(conn) => conn.is_reusable().await,
            None => false,
        };
        if !reusable {
            // Drop the old connection (and its slot) before opening another.
            self.open[origin] = None;
            // Boxed: connecting (DNS, TCP, TLS, handshake) needs several
            // kilobytes of future state, which would otherwise be part of,
            // and copied with, every request's future.
            self.open[origin] = Some(Box::pin(connector.connect(origin)).await?);
        }
        self.open[origin]
            .as_mut()
            .ok_or_else(|| "internal error: connection vanished".to_owned())
    }

    fn keep_or_close(&mut self, connector: &Connector, origin: usize) {
        let Some(conn) = self.open[origin].as_mut() else {
            return;
        };
        if !connector.keepalive || !conn.can_continue() {
            self.open[origin] = None;
        } else if conn.slot.is_none() {
            conn.slot = connector.claim_slot(origin);
            if conn.slot.is_none() {
                self.open[origin] = None;
            }
        }
    }
}

impl Conn {
    async fn is_reusable(&mut self) -> bool {
        match &mut self.protocol {
            Protocol::Plain(_) | Protocol::Tls(_) if self.busy => false,
            Protocol::Plain(conn) => conn.is_open(),
            Protocol::Tls(conn) => conn.is_open(),
            Protocol::Http2 { sender } => !sender.is_closed() && sender.ready().await.is_ok(),
        }
    }

    /// After a complete response: false if it ended the connection
    /// (`Connection: close`, a body delimited by the close).
    fn can_continue(&self) -> bool {
        match &self.protocol {
            Protocol::Plain(conn) => !conn.is_closed(),
            Protocol::Tls(conn) => !conn.is_closed(),
            Protocol::Http2 { .. } => true,
        }
    }

    async fn exchange(&mut self, target: &Prepared) -> Result<(u16, u64), Failure> {
        let outcome = match &mut self.protocol {
            Protocol::Plain(conn) => conn.exchange(&target.http1).await,
            Protocol::Tls(conn) => conn.exchange(&target.http1).await,
            Protocol::Http2 { sender } => {
                let mut request = Request::new(Full::new(target.body.clone()));
                *request.method_mut() = target.method.clone();
                *request.uri_mut() = target.absolute.clone();
                *request.headers_mut() = target.http2_headers.clone();
                let (status, mut body) = head(sender.try_send_request(request).await)?;
                let mut received = 0;
                while let Some(frame) = body.frame().await {
                    received += data_len(frame)?;
                }
                return Ok((status, received));
            }
        };
        outcome.map_err(|failure| match failure.retry {
            http1::Retry::NotSent => Failure::Retriable(failure.why),
            http1::Retry::NoResponse if target.http1.is_replayable() => {
                Failure::Retriable(failure.why)
            }
            http1::Retry::NoResponse | http1::Retry::No => Failure::Failed(failure.why),
        })
    }
}

fn head(
    response: Result<http::Response<Incoming>, TrySendError<Request<Full<Bytes>>>>,
) -> Result<(u16, Incoming), Failure> {
    match response {
        Ok(response) => Ok((response.status().as_u16(), response.into_body())),
        Err(mut error) => {
            let not_sent = error.take_message().is_some();
            let why = describe(&error.into_error());
            Err(if not_sent {
                Failure::Retriable(why)
            } else {
                Failure::Failed(why)
            })
        }
    }
}

fn data_len(frame: Result<hyper::body::Frame<Bytes>, hyper::Error>) -> Result<u64, Failure> {
    let frame = frame.map_err(|error| {
        Failure::Failed(format!("reading the response body: {}", describe(&error)))
    })?;
    Ok(frame.data_ref().map_or(0, |data| data.len() as u64))
}
