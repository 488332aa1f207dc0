//! The client's parser fed every possible split of its input, then whole
//! exchanges against scripted servers on 127.0.0.1 where the socket matters.

use super::*;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use tokio::net::{TcpListener, TcpStream};

/// Parses `response` delivered in two reads split at `split`, the way the
/// connection feeds its buffer (unparsed bytes are passed again with more),
/// then the end of the stream if the response is not complete by then.
/// Returns the parser and the number of bytes left after the response.
fn parse_split(
    response: &[u8],
    split: usize,
    head_request: bool,
) -> Result<(ResponseParser, usize), String> {
    let mut parser = ResponseParser::new(head_request);
    let mut start = parser.feed(&response[..split])?;
    if !parser.is_done() {
        start += parser.feed(&response[start..])?;
    }
    if !parser.is_done() {
        parser.end_of_stream()?;
        start = response.len();
    }
    Ok((parser, response.len() - start))
}

/// Every split of `response` gives the same status, body length and
/// keep-alive, and consumes the response exactly.
fn parses_at_every_split(response: &[u8], head_request: bool) -> (u16, u64, bool) {
    let (whole, left) = parse_split(response, response.len(), head_request).expect("parses");
    assert_eq!(left, 0, "the whole response is consumed");
    for split in 0..response.len() {
        let (parser, left) = parse_split(response, split, head_request)
            .unwrap_or_else(|error| panic!("split at {split}: {error}"));
        assert_eq!(
            (parser.status, parser.body, parser.keep_alive, left),
            (whole.status, whole.body, whole.keep_alive, 0),
            "split at {split}"
        );
    }
    (whole.status, whole.body, whole.keep_alive)
}

fn parse_error(response: &[u8]) -> String {
    match parse_split(response, response.len(), false) {
        Ok((parser, _)) => panic!(
            "parsed as {} with {} body bytes",
            parser.status, parser.body
        ),
        Err(error) => error,
    }
}

#[test]
fn content_length_bodies_split_anywhere() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nServer: test\r\n\r\nHello, World!";
    assert_eq!(parses_at_every_split(response, false), (200, 13, true));
    let empty = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(parses_at_every_split(empty, false), (404, 0, true));
}

#[test]
fn chunked_bodies_with_extensions_and_trailers_split_anywhere() {
    let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
        5;name=value\r\nhello\r\n\
        6;a;b=\"c d\"\r\n world\r\n\
        A\r\n0123456789\r\n\
        0;last\r\nExpires: never\r\nX-Checksum: 42\r\n\r\n";
    assert_eq!(parses_at_every_split(response, false), (200, 21, true));
    let no_trailers = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(parses_at_every_split(no_trailers, false), (200, 3, true));
}

#[test]
fn responses_without_a_body() {
    let with_length = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
    assert_eq!(parses_at_every_split(with_length, true), (200, 0, true));
    for (status, line) in [(204, "204 No Content"), (304, "304 Not Modified")] {
        let response = format!("HTTP/1.1 {line}\r\nContent-Length: 99\r\n\r\n");
        assert_eq!(
            parses_at_every_split(response.as_bytes(), false),
            (status, 0, true)
        );
    }
}

#[test]
fn interim_responses_are_skipped() {
    let response =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
        HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(parses_at_every_split(response, false), (201, 2, true));
    // Switching protocols was never asked for: it ends the exchange and the
    // connection.
    let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n";
    assert_eq!(parses_at_every_split(switching, false), (101, 0, false));
}

#[test]
fn connection_reuse_follows_the_version_and_connection_header() {
    let close = b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(parses_at_every_split(close, false), (200, 2, false));
    let http10 = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(parses_at_every_split(http10, false), (200, 2, false));
    let http10_kept = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(parses_at_every_split(http10_kept, false), (200, 2, true));
    // No length: the body runs to the close, which ends the connection.
    let until_close = b"HTTP/1.1 200 OK\r\n\r\nthe rest of the stream";
    assert_eq!(parses_at_every_split(until_close, false), (200, 22, false));
    // Chunked and a length: the chunks delimit the body, and the
    // connection, whose framing the two disagree on, is not reused.
    let both =
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    assert_eq!(parses_at_every_split(both, false), (200, 2, false));
}

#[test]
fn several_responses_in_one_buffer_are_parsed_one_at_a_time() {
    let first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst".as_slice();
    let second = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n";
    let third = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy";
    let buffer = [first, second, third].concat();
    let mut at = 0;
    for (status, body) in [(200, 5), (200, 6), (503, 4)] {
        let mut parser = ResponseParser::new(false);
        at += parser.feed(&buffer[at..]).expect("parses");
        assert!(parser.is_done());
        assert_eq!((parser.status, parser.body), (status, body));
    }
    assert_eq!(at, buffer.len());
}

#[test]
fn malformed_responses_are_errors() {
    for (response, expected) in [
        (
            b"HTTP/1.1 2x0 OK\r\n\r\n".as_slice(),
            "malformed response: invalid response status",
        ),
        (
            b"HTTX/1.1 200 OK\r\n\r\n",
            "malformed response: invalid HTTP version",
        ),
        (
            b"<html>hello</html>\r\n\r\n",
            "malformed response: invalid HTTP version",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n",
            "malformed response: invalid Content-Length \"12abc\"",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "malformed response: conflicting Content-Length values",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "malformed response: invalid chunk size line",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
            "malformed response: a chunk's data is not followed by CRLF",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "the server closed the connection before the response body was complete",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Le",
            "the server closed the connection before the response was complete",
        ),
    ] {
        assert_eq!(parse_error(response), expected);
    }
    let many = format!(
        "HTTP/1.1 200 OK\r\n{}\r\n",
        (0..=MAX_HEADERS)
            .map(|n| format!("x-{n}: {n}\r\n"))
            .collect::<String>()
    );
    assert_eq!(
        parse_error(many.as_bytes()),
        "malformed response: more than 100 header fields"
    );
}

#[test]
fn requests_are_encoded_once_with_their_length() {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("example.com:8080"));
    headers.insert("x-trace", HeaderValue::from_static("1"));
    let path = PathAndQuery::from_static("/search?q=1");
    let get = EncodedRequest::new(&Method::GET, &path, &headers, &Bytes::new());
    assert_eq!(
        get.as_bytes(),
        b"GET /search?q=1 HTTP/1.1\r\nhost: example.com:8080\r\nx-trace: 1\r\n\r\n"
    );
    assert!(get.is_replayable());

    // The engine writes the length itself, replacing a wrong one.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
    let body = Bytes::from_static(b"abc");
    let post = EncodedRequest::new(&Method::POST, &path, &headers, &body);
    assert_eq!(
        post.as_bytes(),
        b"POST /search?q=1 HTTP/1.1\r\nhost: example.com:8080\r\nx-trace: 1\r\ncontent-length: 3\r\n\r\nabc"
    );
    assert!(!post.is_replayable());
    let empty_put = EncodedRequest::new(&Method::PUT, &path, &headers, &Bytes::new());
    assert!(
        empty_put
            .as_bytes()
            .ends_with(b"\r\ncontent-length: 0\r\n\r\n")
    );

    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    let chunked = EncodedRequest::new(&Method::POST, &path, &headers, &body);
    assert!(
        chunked
            .as_bytes()
            .ends_with(b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(chunked.as_bytes())
    );
}

/// What a scripted server does with the `n`th request of a connection
/// (counted from 0): the pieces of its answer, written one by one with a
/// pause in between so that the client reads them separately, and whether
/// to close the connection afterwards (without saying so).
type Script = dyn Fn(usize) -> (Vec<Vec<u8>>, bool) + Send + Sync;

type Log = Arc<Mutex<Vec<Vec<u8>>>>;

/// A raw HTTP/1.1 server on 127.0.0.1 following `script`, recording the
/// requests it receives. It stops with the test's runtime.
async fn scripted(script: Arc<Script>) -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let address = listener.local_addr().expect("listener has an address");
    let received = Log::default();
    let log = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream, Arc::clone(&script), Arc::clone(&log)));
        }
    });
    (address, received)
}

async fn serve(mut stream: TcpStream, script: Arc<Script>, log: Log) {
    let mut pending = Vec::new();
    for n in 0.. {
        // One request, up to the end of its head (the tests send no bodies).
        let end = loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0; 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => pending.extend_from_slice(&chunk[..read]),
            }
        };
        let request: Vec<u8> = pending.drain(..end).collect();
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        let (pieces, close) = script(n);
        for piece in pieces {
            if stream.write_all(&piece).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if close {
            return;
        }
    }
}

async fn client(address: SocketAddr) -> Http1<TcpStream> {
    let stream = TcpStream::connect(address).await.expect("connect");
    stream.set_nodelay(true).expect("set TCP_NODELAY");
    Http1::new(stream)
}

fn get(path: &'static str) -> EncodedRequest {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("localhost"));
    EncodedRequest::new(
        &Method::GET,
        &PathAndQuery::from_static(path),
        &headers,
        &Bytes::new(),
    )
}

fn pieces(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|part| part.as_bytes().to_vec()).collect()
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Http1<S>,
    request: &EncodedRequest,
) -> (u16, u64) {
    match conn.exchange(request).await {
        Ok(outcome) => outcome,
        Err(failure) => panic!("exchange failed: {}", failure.why),
    }
}

async fn failing(conn: &mut Http1<TcpStream>, request: &EncodedRequest) -> Failure {
    match conn.exchange(request).await {
        Ok((status, body)) => panic!("got {status} with {body} body bytes"),
        Err(failure) => failure,
    }
}

/// Responses arriving in pieces (mid status line, mid header, mid chunk)
/// are put together; the connection then carries the next request.
#[tokio::test]
async fn responses_split_across_reads_on_a_real_socket() {
    let (address, received) = scripted(Arc::new(|n| {
        let parts: &[&str] = if n == 0 {
            &[
                "HTTP/1.1 2",
                "00 OK\r\nContent-Len",
                "gth: 11\r\n\r\nhello",
                " world",
            ]
        } else {
            &[
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nab",
                "cd\r",
                "\n0\r\nX-Trailer: yes\r",
                "\n\r\n",
            ]
        };
        (pieces(parts), false)
    }))
    .await;
    let mut conn = client(address).await;
    assert_eq!(exchange(&mut conn, &get("/a")).await, (200, 11));
    assert!(conn.is_open());
    assert_eq!(exchange(&mut conn, &get("/b")).await, (200, 4));
    assert!(conn.is_open());
    let received = received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(
        received,
        [
            b"GET /a HTTP/1.1\r\nhost: localhost\r\n\r\n".to_vec(),
            b"GET /b HTTP/1.1\r\nhost: localhost\r\n\r\n".to_vec()
        ]
    );
}

/// A server answering ahead: two responses in one write. The second stays
/// in the buffer and answers the next request.
#[tokio::test]
async fn pipelined_responses_in_one_read() {
    let (address, _) = scripted(Arc::new(|n| {
        let parts: &[&str] = if n == 0 {
            &["HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\noneHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\ntwo"]
        } else {
            &[]
        };
        (pieces(parts), false)
    }))
    .await;
    let mut conn = client(address).await;
    assert_eq!(exchange(&mut conn, &get("/")).await, (200, 3));
    assert_eq!(exchange(&mut conn, &get("/")).await, (201, 3));
}

#[tokio::test]
async fn a_malformed_status_line_fails_the_request_and_the_connection() {
    let (address, _) = scripted(Arc::new(|_| (pieces(&["HTTP/1.1 OK 200\r\n\r\n"]), false))).await;
    let mut conn = client(address).await;
    let failure = failing(&mut conn, &get("/")).await;
    assert_eq!(failure.why, "malformed response: invalid response status");
    assert_eq!(failure.retry, Retry::No);
    assert!(!conn.is_open());
}

/// A large head that fits grows the buffer and parses; a head with too many
/// fields is refused.
#[tokio::test]
async fn large_heads_grow_the_buffer_and_too_many_fields_are_refused() {
    let (address, _) = scripted(Arc::new(|n| {
        let head = if n == 0 {
            format!(
                "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
                "x".repeat(MAX_BUFFER / 2)
            )
        } else {
            format!(
                "HTTP/1.1 200 OK\r\n{}Content-Length: 0\r\n\r\n",
                "X-Many: 1\r\n".repeat(MAX_HEADERS + 1)
            )
        };
        (vec![head.into_bytes()], false)
    }))
    .await;
    let mut conn = client(address).await;
    assert_eq!(exchange(&mut conn, &get("/")).await, (200, 2));
    let failure = failing(&mut conn, &get("/")).await;
    assert_eq!(
        failure.why,
        "malformed response: more than 100 header fields"
    );
    assert!(!conn.is_open());
}

/// A head larger than the largest buffer fails the request instead of the
/// buffer growing without bound.
#[tokio::test]
async fn a_head_larger_than_the_buffer_is_refused() {
    let (address, _) = scripted(Arc::new(|_| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
            "x".repeat(MAX_BUFFER)
        );
        (vec![head.into_bytes()], false)
    }))
    .await;
    let mut conn = client(address).await;
    let failure = failing(&mut conn, &get("/")).await;
    assert_eq!(
        failure.why,
        "malformed response: its head (or a chunk-size or trailer line) is larger than 256 KiB"
    );
    assert_eq!(failure.retry, Retry::No);
    assert!(!conn.is_open());
}

/// The server closing instead of answering: nothing came back, so the
/// caller may send a replayable request again on a new connection. Closing
/// mid-body is a plain failure.
#[tokio::test]
async fn an_early_close_is_a_failure_that_may_be_retried() {
    let (address, _) = scripted(Arc::new(|n| {
        if n == 0 {
            (
                pieces(&["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
                false,
            )
        } else {
            (Vec::new(), true)
        }
    }))
    .await;
    let mut conn = client(address).await;
    assert_eq!(exchange(&mut conn, &get("/")).await, (200, 2));
    let failure = failing(&mut conn, &get("/")).await;
    assert_eq!(failure.retry, Retry::NoResponse);
    assert_eq!(
        failure.why,
        "the server closed the connection before the response was complete"
    );

    let (address, _) = scripted(Arc::new(|_| {
        (
            pieces(&["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]),
            true,
        )
    }))
    .await;
    let mut conn = client(address).await;
    let failure = failing(&mut conn, &get("/")).await;
    assert_eq!(failure.retry, Retry::No);
    assert_eq!(
        failure.why,
        "the server closed the connection before the response body was complete"
    );
}

/// `Connection: close` and a body delimited by the close end the connection
/// after a successful exchange; a connection the server closed while idle
/// is noticed before the next request.
#[tokio::test]
async fn closes_are_noticed() {
    let (address, _) = scripted(Arc::new(|_| {
        (
            pieces(&["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"]),
            true,
        )
    }))
    .await;
    let mut conn = client(address).await;
    assert_eq!(exchange(&mut conn, &get("/")).await, (200, 2));
    assert!(conn.is_closed());
    assert!(!conn.is_open());

    let (address, _) = scripted(Arc::new(|_| {
        (
            pieces(&["HTTP/1.1 200 OK\r\n\r\nuntil ", "the close"]),
            true,
        )
    }))
    .await;
    let mut conn = client(address).await;
    assert_eq!(exchange(&mut conn, &get("/")).await, (200, 15));
    assert!(conn.is_closed());

    let (address, _) = scripted(Arc::new(|_| {
        (
            pieces(&["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
            true,
        )
    }))
    .await;
    let mut conn = client(address).await;
    assert_eq!(exchange(&mut conn, &get("/")).await, (200, 2));
    assert!(!conn.is_closed(), "nothing said the connection would end");
    // The server closed it silently: the client sees it once the close
    // arrives (waiting up to 5 s for it, looking every 10 ms).
    let mut noticed = false;
    for _ in 0..500 {
        if !conn.is_open() {
            noticed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(noticed, "the idle connection's close went unnoticed");
}

/// Over TLS a kept connection carries request after request, and a body
/// delimited by the close ends well even when the server closes the TCP
/// connection without a close_notify alert, as many servers do.
#[tokio::test]
async fn tls_exchanges_and_a_close_without_close_notify() {
    let acceptor = super::super::tests::self_signed_acceptor();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let address = listener.local_addr().expect("listener has an address");
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut tls) = acceptor.accept(stream).await else {
            return;
        };
        let answers: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\nuntil the close",
        ];
        let mut pending = Vec::new();
        for answer in answers {
            while !pending.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0; 1024];
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => pending.extend_from_slice(&chunk[..read]),
                }
            }
            pending.clear();
            if tls.write_all(answer).await.is_err() || tls.flush().await.is_err() {
                return;
            }
        }
        // Dropped without a TLS shutdown: the TCP connection just closes.
    });

    let config = super::super::tls::tls_config(true, false).expect("a TLS configuration");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost".to_owned())
        .expect("a valid server name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let mut conn = Http1::new(tls);
    assert_eq!(exchange(&mut conn, &get("/")).await, (200, 2));
    assert!(conn.is_open());
    assert_eq!(exchange(&mut conn, &get("/")).await, (200, 3));
    assert!(conn.is_open());
    assert_eq!(exchange(&mut conn, &get("/")).await, (200, 15));
    assert!(conn.is_closed());
}
