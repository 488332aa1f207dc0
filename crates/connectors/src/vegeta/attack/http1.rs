//! The engine's own HTTP/1.1 client, for the attack's hot path.
//!
//! A general-purpose client (hyper's) spends a good part of a small request's
//! cost on what an attack does not need: building a request and its headers
//! per send, internal channels between the caller and the connection, body
//! frames. Here each target's request is encoded once, sent with one write,
//! and each response is parsed with `httparse` from a buffer the connection
//! reuses; only the status and the number of body bytes are kept.
//!
//! Requests go one at a time on a connection (no pipelining), but the parser
//! keeps whatever follows a response in the buffer as the start of the next
//! one, so a server answering ahead is not misread.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{BufMut as _, Bytes, BytesMut};
use http::Method;
use http::header::{self, HeaderMap};
use http::uri::PathAndQuery;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use super::describe;

/// Response headers accepted per response (hyper's default limit).
const MAX_HEADERS: usize = 100;

/// The read buffer starts small enough for typical responses and grows, up to
/// this, only while a response head (or a chunk-size or trailer line) does
/// not fit; body bytes are counted and dropped as they arrive.
const INITIAL_BUFFER: usize = 8 * 1024;
pub(super) const MAX_BUFFER: usize = 256 * 1024;

/// A request encoded once per target: request line, headers (with `Host`, and
/// `Content-Length` or a chunked body) and body, sent as one write.
pub(super) struct EncodedRequest {
    bytes: Bytes,
    /// A HEAD request's response has no body, whatever its headers say.
    head: bool,
    /// Safe to send again when a reused connection turns out to have been
    /// closed by the server before answering (Go's rule: idempotent methods
    /// without side effects).
    replayable: bool,
}

impl EncodedRequest {
    /// Encodes `method path HTTP/1.1`, `headers` (which must hold `Host`)
    /// and `body`. The body's length is always written by the engine: a
    /// `Content-Length` given with the target is replaced, and a target
    /// asking for `Transfer-Encoding: chunked` gets its body as one chunk.
    pub fn new(method: &Method, path: &PathAndQuery, headers: &HeaderMap, body: &Bytes) -> Self {
        let chunked = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .any(|value| last_token_is(value.as_bytes(), b"chunked"));
        let mut bytes = BytesMut::with_capacity(128 + body.len());
        bytes.put_slice(method.as_str().as_bytes());
        bytes.put_u8(b' ');
        bytes.put_slice(path.as_str().as_bytes());
        bytes.put_slice(b" HTTP/1.1\r\n");
        for (name, value) in headers {
            if name == header::CONTENT_LENGTH {
                continue;
            }
            bytes.put_slice(name.as_str().as_bytes());
            bytes.put_slice(b": ");
            bytes.put_slice(value.as_bytes());
            bytes.put_slice(b"\r\n");
        }
        // Like hyper and Go: a length for every body, and `Content-Length: 0`
        // for the methods whose empty body is still a body.
        let wants_length = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        if chunked {
            bytes.put_slice(b"\r\n");
            if !body.is_empty() {
                bytes.put_slice(format!("{:x}\r\n", body.len()).as_bytes());
                bytes.put_slice(body);
                bytes.put_slice(b"\r\n");
            }
            bytes.put_slice(b"0\r\n\r\n");
        } else {
            if !body.is_empty() || wants_length {
                bytes.put_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
            }
            bytes.put_slice(b"\r\n");
            bytes.put_slice(body);
        }
        Self {
            bytes: bytes.freeze(),
            head: *method == Method::HEAD,
            replayable: matches!(
                *method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            ),
        }
    }

    pub fn is_replayable(&self) -> bool {
        self.replayable
    }

    #[cfg(test)]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Why an exchange failed, and whether the request may be sent again on a
/// fresh connection when this one had served requests before.
pub(super) struct Failure {
    pub why: String,
    pub retry: Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Nothing of the request was written: sending it again is always safe.
    NotSent,
    /// The request was sent but the connection ended before the first byte
    /// of a response: the server had most likely closed it while idle. Safe
    /// to send again only if the request is replayable.
    NoResponse,
    No,
}

/// One HTTP/1.1 connection over a plain or TLS stream.
pub(super) struct Http1<S> {
    stream: S,
    buffer: Vec<u8>,
    /// `buffer[start..end]` has been read and not yet parsed.
    start: usize,
    end: usize,
    /// False once the connection cannot carry another request: closed by
    /// either side, a response read to its end by closing, or an error.
    open: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Http1<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buffer: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            open: true,
        }
    }

    /// Whether another request may be sent. Notices a connection the server
    /// closed while it was idle, without a system call unless the socket
    /// was reported readable since the last read.
    pub fn is_open(&mut self) -> bool {
        if !self.open {
            return false;
        }
        if self.end == self.buffer.len() {
            // Bytes the server sent ahead already fill the buffer: they are
            // the next response's, and looking for more is pointless.
            return true;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut read = ReadBuf::new(&mut self.buffer[self.end..]);
        match Pin::new(&mut self.stream).poll_read(&mut cx, &mut read) {
            Poll::Pending => true,
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                self.open = false;
                false
            }
            Poll::Ready(Ok(())) => {
                self.end += read.filled().len();
                true
            }
            Poll::Ready(Err(_)) => {
                self.open = false;
                false
            }
        }
    }

    /// After an exchange: the response ended the connection.
    pub fn is_closed(&self) -> bool {
        !self.open
    }

    /// Sends `request` and reads its whole response: its status and the
    /// number of body bytes (decoded from chunks). Dropping the future midway
    /// leaves the connection unusable; the caller replaces it.
    pub async fn exchange(&mut self, request: &EncodedRequest) -> Result<(u16, u64), Failure> {
        let result = self.exchange_inner(request).await;
        if result.is_err() {
            self.open = false;
        }
        result
    }

    async fn exchange_inner(&mut self, request: &EncodedRequest) -> Result<(u16, u64), Failure> {
        self.send(&request.bytes).await?;
        let mut parser = ResponseParser::new(request.head);
        let mut received = self.end > self.start;
        loop {
            let consumed = parser
                .feed(&self.buffer[self.start..self.end])
                .map_err(|why| Failure {
                    why,
                    retry: Retry::No,
                })?;
            self.start += consumed;
            if parser.is_done() {
                break;
            }
            self.make_room().map_err(|why| Failure {
                why,
                retry: Retry::No,
            })?;
            let read = match self.stream.read(&mut self.buffer[self.end..]).await {
                // A TLS peer closing the TCP connection without a
                // close_notify alert (many servers do): a close like any
                // other, an error only if the response is incomplete.
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                read => read,
            };
            match read {
                Ok(0) => {
                    parser.end_of_stream().map_err(|why| Failure {
                        why,
                        retry: if received {
                            Retry::No
                        } else {
                            Retry::NoResponse
                        },
                    })?;
                    self.open = false;
                    break;
                }
                Ok(n) => {
                    self.end += n;
                    received = true;
                }
                Err(error) => {
                    return Err(Failure {
                        why: format!("reading the response: {}", describe(&error)),
                        retry: if received {
                            Retry::No
                        } else {
                            Retry::NoResponse
                        },
                    });
                }
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if !parser.keep_alive {
            self.open = false;
        }
        Ok((parser.status, parser.body))
    }

    async fn send(&mut self, request: &[u8]) -> Result<(), Failure> {
        let mut written = 0;
        while written < request.len() {
            let failure = |why: String| Failure {
                why,
                retry: if written == 0 {
                    Retry::NotSent
                } else {
                    Retry::NoResponse
                },
            };
            match self.stream.write(&request[written..]).await {
                Ok(0) => {
                    return Err(failure(
                        "the connection closed while sending the request".to_owned(),
                    ));
                }
                Ok(n) => written += n,
                Err(error) => {
                    return Err(failure(format!(
                        "sending the request: {}",
                        describe(&error)
                    )));
                }
            }
        }
        // A no-op on TCP; TLS may hold the record until flushed.
        self.stream.flush().await.map_err(|error| Failure {
            why: format!("sending the request: {}", describe(&error)),
            retry: Retry::NoResponse,
        })
    }

    /// Makes room after `end` for the next read: starts over when everything
    /// was parsed, moves a partial line or head to the front, or grows the
    /// buffer when that line or head fills it already.
    fn make_room(&mut self) -> Result<(), String> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end < self.buffer.len() {
            return Ok(());
        }
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        } else if self.buffer.len() < MAX_BUFFER {
            self.buffer
                .resize((self.buffer.len() * 2).min(MAX_BUFFER), 0);
        } else {
            return Err(format!(
                "malformed response: its head (or a chunk-size or trailer line) is larger than {} KiB",
                MAX_BUFFER / 1024
            ));
        }
        Ok(())
    }
}

/// Parses one response from successive slices of bytes, keeping only its
/// status, its body's length and whether the connection may be reused.
pub(super) struct ResponseParser {
    state: State,
    head_request: bool,
    pub status: u16,
    pub body: u64,
    pub keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// `Content-Length` bytes still to come.
    Length(u64),
    /// A chunk-size line (with optional extensions).
    ChunkSize,
    /// Bytes of the current chunk still to come.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer fields after the last chunk, up to an empty line.
    Trailers,
    /// No length given: the body ends when the server closes.
    UntilClose,
    Done,
}

impl ResponseParser {
    pub fn new(head_request: bool) -> Self {
        Self {
            state: State::Head,
            head_request,
            status: 0,
            body: 0,
            keep_alive: false,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Parses as much of `bytes` as it can and returns how many it consumed;
    /// the rest (a partial line or head) must be passed again with more.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let mut at = 0;
        loop {
            let rest = &bytes[at..];
            let consumed = match self.state {
                State::Done => return Ok(at),
                State::Head => match self.head(rest)? {
                    Some(consumed) => consumed,
                    None => return Ok(at),
                },
                State::Length(remaining) | State::ChunkData(remaining) => {
                    let take = remaining.min(rest.len() as u64);
                    self.body += take;
                    let left = remaining - take;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    if take == 0 {
                        return Ok(at);
                    }
                    // At most `rest.len()`, so it fits in a usize.
                    usize::try_from(take).unwrap_or(rest.len())
                }
                State::UntilClose => {
                    self.body += rest.len() as u64;
                    return Ok(bytes.len());
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((consumed, 0))) => {
                        self.state = State::Trailers;
                        consumed
                    }
                    Ok(httparse::Status::Complete((consumed, size))) => {
                        self.state = State::ChunkData(size);
                        consumed
                    }
                    Ok(httparse::Status::Partial) => return Ok(at),
                    Err(httparse::InvalidChunkSize) => {
                        return Err("malformed response: invalid chunk size line".to_owned());
                    }
                },
                State::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.state = State::ChunkSize;
                        2
                    }
                    [] | [b'\r'] => return Ok(at),
                    _ => {
                        return Err(
                            "malformed response: a chunk's data is not followed by CRLF".to_owned()
                        );
                    }
                },
                State::Trailers => {
                    // Rare (once per chunked response): initialised headers.
                    let mut trailers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(rest, &mut trailers) {
                        Ok(httparse::Status::Complete((consumed, _))) => {
                            self.state = State::Done;
                            consumed
                        }
                        Ok(httparse::Status::Partial) => return Ok(at),
                        Err(httparse::Error::TooManyHeaders) => {
                            return Err(format!(
                                "malformed response: more than {MAX_HEADERS} trailer fields"
                            ));
                        }
                        Err(error) => {
                            return Err(format!("malformed response trailers: {error}"));
                        }
                    }
                }
            };
            at += consumed;
        }
    }

    /// The stream ended: fine only for a body delimited by the close.
    pub fn end_of_stream(&mut self) -> Result<(), String> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                self.keep_alive = false;
                Ok(())
            }
            State::Head => {
                Err("the server closed the connection before the response was complete".to_owned())
            }
            _ => Err(
                "the server closed the connection before the response body was complete".to_owned(),
            ),
        }
    }

    /// Parses a response head at the start of `bytes`: `None` if incomplete,
    /// else how many bytes it took, with the state set for what follows.
    fn head(&mut self, bytes: &[u8]) -> Result<Option<usize>, String> {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let consumed = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            bytes,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(consumed)) => consumed,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(format!(
                    "malformed response: more than {MAX_HEADERS} header fields"
                ));
            }
            Err(error) => return Err(format!("malformed response: {error}")),
        };
        let status = response.code.unwrap_or(0);
        let http11 = response.version == Some(1);
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut other_coding = false;
        let mut close = !http11;
        for field in response.headers.iter() {
            let name = field.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let value = parse_length(field.value).ok_or_else(|| {
                    format!(
                        "malformed response: invalid Content-Length {:?}",
                        String::from_utf8_lossy(field.value)
                    )
                })?;
                if length.is_some_and(|known| known != value) {
                    return Err("malformed response: conflicting Content-Length values".to_owned());
                }
                length = Some(value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = last_token_is(field.value, b"chunked");
                other_coding = !chunked;
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in field.value.split(|&byte| byte == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                        close = false;
                    }
                }
            }
        }
        // An interim response (100 Continue, 103 Early Hints): the final one
        // follows. 101 would switch protocols, which the engine never asks
        // for: it ends the exchange, and the connection.
        if (100..200).contains(&status) && status != 101 {
            return Ok(Some(consumed));
        }
        self.status = status;
        self.keep_alive = !close && status != 101;
        let no_body =
            self.head_request || status == 204 || status == 304 || (100..200).contains(&status);
        self.state = if no_body {
            State::Done
        } else if chunked {
            // RFC 9112 §6.3: chunked overrides a Content-Length, and a
            // message with both must not be followed on the connection.
            if length.is_some() {
                self.keep_alive = false;
            }
            State::ChunkSize
        } else if other_coding {
            // RFC 9112 §6.3: a coding other than chunked last means the
            // body runs to the close.
            self.keep_alive = false;
            State::UntilClose
        } else {
            match length {
                Some(0) => State::Done,
                Some(length) => State::Length(length),
                None => {
                    self.keep_alive = false;
                    State::UntilClose
                }
            }
        };
        Ok(Some(consumed))
    }
}

/// A decimal `Content-Length` (digits only, as RFC 9110 §8.6 requires).
fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whether the last comma-separated token of `value` is `token`, ignoring
/// case (`Transfer-Encoding: gzip, chunked`).
fn last_token_is(value: &[u8], token: &[u8]) -> bool {
    value
        .rsplit(|&byte| byte == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests;
