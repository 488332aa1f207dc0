//! Attack targets: what to request, parsed from vegeta's two target formats.
//!
//! Both parsers validate everything up front (method, absolute http(s) URL,
//! header syntax, body files) so that an attack never starts with a target it
//! cannot send, and every problem is reported with the line it was found on.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use serde::Deserialize;

/// One HTTP request blueprint; attacks cycle through their targets round-robin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: Method,
    /// Absolute `http://` or `https://` URL (validated by the parsers).
    pub url: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A problem in a targets document, located by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    /// 1-based line of the offending text; 0 when the problem concerns the
    /// whole document (for example when it holds no target at all).
    pub line: usize,
    /// What was wrong and what was expected instead.
    pub message: String,
}

impl TargetError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }

    fn no_targets(format: &str) -> Self {
        Self::new(
            0,
            format!("no targets found: expected at least one {format}"),
        )
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for TargetError {}

/// Methods a target may use. Deliberately a closed list (vegeta's): a typo
/// such as `GTE` must be reported rather than sent to the server as a custom
/// method that would only show up later as a wall of 405 responses.
const METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

const EXPECTED_TARGET_LINE: &str = "expected \"METHOD URL\"";

/// Parses vegeta's http target format.
///
/// ```text
/// # comment
/// GET http://localhost:8080/
///
/// POST https://localhost:8443/orders
/// Content-Type: application/json
/// X-Account: 42
/// @bodies/order.json
/// ```
///
/// A target is a `METHOD URL` line, then optional `Header-Name: value` lines,
/// then an optional `@path` line naming the body file (relative paths are
/// resolved against `base_dir`, the directory of the targets file); the body
/// line ends the target. Targets are separated by blank lines, or simply by
/// the next `METHOD URL` line. Lines starting with `#` are comments. A single
/// line such as `GET http://localhost/` is a complete document, which is how
/// a one-target setting is parsed.
pub fn parse_http(text: &str, base_dir: &Path) -> Result<Vec<Target>, TargetError> {
    let mut targets = Vec::new();
    let mut current: Option<Target> = None;
    let mut bodies = BodyFiles::new(base_dir);

    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            targets.extend(current.take());
            continue;
        }
        let Some(target) = current.as_mut() else {
            current = Some(parse_request_line(line, number)?);
            continue;
        };
        if looks_like_request_line(line) {
            targets.extend(current.replace(parse_request_line(line, number)?));
        } else if let Some(path) = line.strip_prefix('@') {
            target.body = bodies.read(path.trim(), number)?;
            targets.extend(current.take());
        } else {
            let (name, value) = parse_header(line, number)?;
            target.headers.append(name, value);
        }
    }
    targets.extend(current);

    if targets.is_empty() {
        return Err(TargetError::no_targets("\"METHOD URL\" line"));
    }
    Ok(targets)
}

/// Parses vegeta's json target format: one object per line, blank lines
/// ignored.
///
/// ```text
/// {"method":"POST","url":"http://localhost/orders","body":"eyJpZCI6MX0=","header":{"Content-Type":["application/json"]}}
/// ```
///
/// `body` is base64 (standard alphabet, padded) because targets may carry
/// binary payloads; `header` maps names to lists of values. Unknown fields are
/// rejected so that a misspelt `headers` is reported instead of silently
/// sending requests without them.
pub fn parse_json(text: &str) -> Result<Vec<Target>, TargetError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct JsonTarget {
        method: String,
        url: String,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        header: Option<HashMap<String, Vec<String>>>,
    }

    let mut targets = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        let parsed: JsonTarget = serde_json::from_str(line).map_err(|error| {
            TargetError::new(
                number,
                format!(
                    "invalid json target ({error}); expected an object like \
                     {{\"method\":\"GET\",\"url\":\"http://host/path\"}}"
                ),
            )
        })?;

        let method = parse_method(&parsed.method)
            .map_err(|why| TargetError::new(number, format!("\"method\": {why}")))?;
        let url = parse_url(&parsed.url)
            .map_err(|why| TargetError::new(number, format!("\"url\": {why}")))?;
        let body = match parsed.body {
            None => Bytes::new(),
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map(Bytes::from)
                .map_err(|error| {
                    TargetError::new(
                        number,
                        format!("\"body\" is not valid base64 ({error}); encode the body with `base64 -w0`"),
                    )
                })?,
        };
        let mut headers = HeaderMap::new();
        // Sorted so that the order of repeated headers on the wire does not
        // depend on hash-map iteration order.
        let mut header: Vec<_> = parsed.header.unwrap_or_default().into_iter().collect();
        header.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, values) in header {
            let name = header_name(&name).map_err(|why| TargetError::new(number, why))?;
            for value in values {
                let value =
                    header_value(&name, &value).map_err(|why| TargetError::new(number, why))?;
                headers.append(name.clone(), value);
            }
        }
        targets.push(Target {
            method,
            url,
            headers,
            body,
        });
    }

    if targets.is_empty() {
        return Err(TargetError::no_targets("json object per line"));
    }
    Ok(targets)
}

/// Whether a line inside a target starts the next one. Checked against the
/// method list so that `Host: x` stays a header while `GET http://…` right
/// after a header block starts a new target, as in vegeta.
fn looks_like_request_line(line: &str) -> bool {
    line.split_once(char::is_whitespace)
        .is_some_and(|(word, _)| METHODS.iter().any(|m| m.as_str() == word))
}

fn parse_request_line(line: &str, number: usize) -> Result<Target, TargetError> {
    let fail = |why: String| {
        TargetError::new(
            number,
            format!("{EXPECTED_TARGET_LINE}, found \"{line}\": {why}"),
        )
    };
    let mut words = line.split_whitespace();
    let (Some(method), url, extra) = (words.next(), words.next(), words.next()) else {
        return Err(fail("the line is empty".to_owned()));
    };
    let method = parse_method(method).map_err(fail)?;
    let Some(url) = url else {
        return Err(fail("missing URL after the method".to_owned()));
    };
    if let Some(extra) = extra {
        return Err(fail(format!(
            "unexpected \"{extra}\" after the URL (spaces in URLs must be written as %20)"
        )));
    }
    let url = parse_url(url).map_err(|why| TargetError::new(number, why))?;
    Ok(Target {
        method,
        url,
        headers: HeaderMap::new(),
        body: Bytes::new(),
    })
}

fn parse_method(word: &str) -> Result<Method, String> {
    METHODS
        .iter()
        .find(|m| m.as_str() == word)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = METHODS.iter().map(Method::as_str).collect();
            format!(
                "unknown method \"{word}\" (expected one of {})",
                known.join(", ")
            )
        })
}

fn parse_url(text: &str) -> Result<Uri, String> {
    if !text.contains("://") {
        return Err(format!(
            "URL \"{text}\" is not absolute: expected \"http://host[:port]/path\" or \"https://…\""
        ));
    }
    let url: Uri = text
        .parse()
        .map_err(|error| format!("invalid URL \"{text}\" ({error})"))?;
    match url.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "unsupported scheme \"{other}\" in URL \"{text}\": expected http or https"
            ));
        }
        None => {
            return Err(format!(
                "URL \"{text}\" has no scheme: expected http or https"
            ));
        }
    }
    if url.host().is_none_or(str::is_empty) {
        return Err(format!("URL \"{text}\" has no host"));
    }
    Ok(url)
}

fn parse_header(line: &str, number: usize) -> Result<(HeaderName, HeaderValue), TargetError> {
    // A name with blanks in it is almost always a mistyped request line
    // ("GTE http://x"), so it gets the same message as a missing colon.
    let Some((name, value)) = line
        .split_once(':')
        .filter(|(name, _)| !name.trim().contains(char::is_whitespace))
    else {
        return Err(TargetError::new(
            number,
            format!(
                "expected \"Header-Name: value\", \"@body-file\", a blank line or \"METHOD URL\", found \"{line}\""
            ),
        ));
    };
    let name = header_name(name.trim()).map_err(|why| TargetError::new(number, why))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(TargetError::new(
            number,
            format!("header \"{name}\" has no value: expected \"{name}: value\""),
        ));
    }
    let value = header_value(&name, value).map_err(|why| TargetError::new(number, why))?;
    Ok((name, value))
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!("invalid header name \"{name}\": expected letters, digits and -_.!#$%&'*+^`|~ only")
    })
}

fn header_value(name: &HeaderName, value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| {
        format!("invalid value for header \"{name}\": control characters are not allowed")
    })
}

/// Reads body files, once each: many targets commonly share one payload.
struct BodyFiles<'a> {
    base_dir: &'a Path,
    cache: HashMap<PathBuf, Bytes>,
}

impl<'a> BodyFiles<'a> {
    fn new(base_dir: &'a Path) -> Self {
        Self {
            base_dir,
            cache: HashMap::new(),
        }
    }

    fn read(&mut self, path: &str, number: usize) -> Result<Bytes, TargetError> {
        if path.is_empty() {
            return Err(TargetError::new(
                number,
                "\"@\" must be followed by the path of the body file, as in \"@body.json\"",
            ));
        }
        let full = self.base_dir.join(path);
        if let Some(body) = self.cache.get(&full) {
            return Ok(body.clone());
        }
        let body = std::fs::read(&full).map(Bytes::from).map_err(|error| {
            TargetError::new(
                number,
                format!("cannot read body file \"{}\": {error}", full.display()),
            )
        })?;
        self.cache.insert(full, body.clone());
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(text: &str) -> Result<Vec<Target>, TargetError> {
        parse_http(text, Path::new("/nonexistent"))
    }

    fn error(text: &str) -> TargetError {
        match http(text) {
            Ok(targets) => panic!("expected an error, parsed {targets:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn single_line_is_one_target() {
        let targets = http("GET http://localhost:8080/health").expect("valid target");
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].method, Method::GET);
        assert_eq!(targets[0].url, "http://localhost:8080/health");
        assert!(targets[0].headers.is_empty());
        assert!(targets[0].body.is_empty());
    }

    #[test]
    fn headers_comments_and_separators() {
        let text = "\
# leading comment
GET http://a.test/one
Accept: text/html
X-Multi: 1
# a comment between headers
X-Multi: 2

POST https://b.test/two
Content-Type: application/json
GET http://c.test/three
";
        let targets = http(text).expect("valid targets");
        assert_eq!(targets.len(), 3);
        assert_eq!(targets[0].headers["accept"], "text/html");
        let multi: Vec<_> = targets[0].headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["1", "2"]);
        assert_eq!(targets[1].method, Method::POST);
        assert_eq!(targets[1].headers["content-type"], "application/json");
        assert_eq!(targets[2].url, "http://c.test/three");
    }

    #[test]
    fn body_files_are_resolved_against_base_dir() {
        let dir = std::env::temp_dir().join(format!("vegeta-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        std::fs::write(dir.join("body.json"), b"{\"id\":1}").expect("write body");
        let text = "POST http://a.test/\nContent-Type: application/json\n@body.json\nPUT http://a.test/\n@ body.json\n";
        let targets = parse_http(text, &dir).expect("valid targets");
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
        assert_eq!(targets.len(), 2);
        assert_eq!(&targets[0].body[..], b"{\"id\":1}");
        assert_eq!(targets[1].body, targets[0].body);
    }

    #[test]
    fn crlf_and_indentation_are_tolerated() {
        let targets = http("  GET http://a.test/\r\n  Accept: */*\r\n").expect("valid target");
        assert_eq!(targets[0].headers["accept"], "*/*");
    }

    #[test]
    fn unknown_method_names_the_line_and_the_text() {
        let e = error("GET http://a.test/\n\nGTE http://x");
        assert_eq!(e.line, 3);
        let shown = e.to_string();
        assert!(
            shown.starts_with("line 3: expected \"METHOD URL\", found \"GTE http://x\""),
            "{shown}"
        );
        assert!(shown.contains("unknown method \"GTE\""), "{shown}");
    }

    #[test]
    fn missing_url() {
        let e = error("# targets\nGET");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("missing URL"), "{e}");
    }

    #[test]
    fn trailing_words_after_url() {
        let e = error("GET http://a.test/ HTTP/1.1");
        assert!(e.message.contains("unexpected \"HTTP/1.1\""), "{e}");
    }

    #[test]
    fn relative_url_and_unsupported_scheme() {
        let e = error("GET /health");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("not absolute"), "{e}");
        let e = error("GET ftp://a.test/file");
        assert!(e.message.contains("unsupported scheme \"ftp\""), "{e}");
        let e = error("GET http://exa mple.test/");
        assert!(e.message.contains("unexpected"), "{e}");
    }

    #[test]
    fn header_without_colon() {
        let e = error("GET http://a.test/\nAccept text/html");
        assert_eq!(e.line, 2);
        assert!(
            e.message
                .starts_with("expected \"Header-Name: value\", \"@body-file\", a blank line or \"METHOD URL\", found \"Accept text/html\""),
            "{e}"
        );
    }

    #[test]
    fn invalid_header_name_and_empty_value() {
        let e = error("GET http://a.test/\nBad@Header: 1");
        assert!(
            e.message.contains("invalid header name \"Bad@Header\""),
            "{e}"
        );
        let e = error("GET http://a.test/\nAccept: */*\nGTE http://a.test/");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("found \"GTE http://a.test/\""), "{e}");
        let e = error("GET http://a.test/\nAccept:");
        assert!(e.message.contains("has no value"), "{e}");
    }

    #[test]
    fn missing_body_file() {
        let e = error("POST http://a.test/\n@missing.json");
        assert_eq!(e.line, 2);
        assert!(
            e.message
                .contains("cannot read body file \"/nonexistent/missing.json\""),
            "{e}"
        );
    }

    #[test]
    fn at_least_one_target_is_required() {
        let e = error("# only a comment\n\n");
        assert_eq!(e.line, 0);
        assert_eq!(
            e.to_string(),
            "no targets found: expected at least one \"METHOD URL\" line"
        );
        assert_eq!(parse_json("\n").map_err(|e| e.line), Err(0));
    }

    #[test]
    fn json_targets() {
        let text = r#"
{"method":"GET","url":"http://a.test/"}
{"method":"POST","url":"https://b.test/x","body":"aGVsbG8=","header":{"X-A":["1","2"],"Content-Type":["text/plain"]}}
"#;
        let targets = parse_json(text).expect("valid json targets");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].method, Method::GET);
        assert_eq!(&targets[1].body[..], b"hello");
        let values: Vec<_> = targets[1].headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(targets[1].headers["content-type"], "text/plain");
    }

    #[test]
    fn json_errors_name_the_line_and_field() {
        let err = |text: &str| parse_json(text).expect_err("invalid json target");
        let e = err("{\"method\":\"GET\",\"url\":\"http://a.test/\"}\n{\"method\":\"GET\"");
        assert_eq!(e.line, 2);
        assert!(e.message.starts_with("invalid json target"), "{e}");
        let e = err(r#"{"method":"GTE","url":"http://a.test/"}"#);
        assert!(
            e.message.contains("\"method\": unknown method \"GTE\""),
            "{e}"
        );
        let e = err(r#"{"method":"GET","url":"a.test/"}"#);
        assert!(
            e.message
                .contains("\"url\": URL \"a.test/\" is not absolute"),
            "{e}"
        );
        let e = err(r#"{"method":"GET","url":"http://a.test/","body":"***"}"#);
        assert!(e.message.contains("not valid base64"), "{e}");
        let e = err(r#"{"method":"GET","url":"http://a.test/","headers":{}}"#);
        assert!(e.message.contains("unknown field `headers`"), "{e}");
    }
}
