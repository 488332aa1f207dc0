//! A small client of the Prometheus HTTP API (`/api/v1/...`): the few endpoints the connector uses,
//! their response envelope, and errors that keep what Prometheus said.
//!
//! Every request is bounded by the connector's `timeout` (reqwest's whole-request timeout, also
//! sent to Prometheus as the query `timeout` parameter so it stops evaluating too), by a cap on the
//! body size, and by the caller's cancellation token.

use std::collections::BTreeMap;
use std::fmt;

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use servo_core::units::Duration;
use tokio_util::sync::CancellationToken;

/// Answers larger than this are refused rather than buffered: a range query over a long window with
/// a tiny `step` and many series can be hundreds of megabytes, and that is a configuration mistake.
const MAX_BODY_BYTES: usize = 64 << 20;

/// How much of a non-Prometheus error body is quoted back.
const QUOTED_BODY_CHARS: usize = 200;

/// A connection to one Prometheus server.
#[derive(Clone, Debug)]
pub(super) struct Api {
    client: crate::util::http::LazyClient,
    base: Url,
    timeout: Duration,
}

/// Why a request to Prometheus did not yield data. Each carries the URL it concerned, with any
/// password removed, so messages can name it.
#[derive(Debug)]
pub(super) enum ApiError {
    Cancelled,
    /// No HTTP answer at all: connection refused, DNS failure, TLS failure.
    Unreachable {
        url: String,
        cause: String,
    },
    TimedOut {
        url: String,
        after: Duration,
    },
    /// Prometheus answered with its error envelope (`{"status": "error", "errorType", "error"}`).
    Prometheus {
        code: StatusCode,
        kind: String,
        message: String,
    },
    /// An HTTP error that is not Prometheus' (a proxy, a wrong path prefix).
    Http {
        url: String,
        code: StatusCode,
        body: String,
    },
    /// A 2xx answer that is not a Prometheus API response.
    Malformed {
        url: String,
        cause: String,
    },
    TooLarge {
        url: String,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Cancelled => f.write_str("cancelled"),
            ApiError::Unreachable { url, cause } => write!(f, "cannot reach {url}: {cause}"),
            ApiError::TimedOut { url, after } => write!(f, "{url} did not answer within {after}"),
            ApiError::Prometheus { kind, message, .. } => write!(f, "{message} ({kind})"),
            ApiError::Http { url, code, body } if body.is_empty() => {
                write!(f, "{url} answered HTTP {code}")
            }
            ApiError::Http { url, code, body } => write!(f, "{url} answered HTTP {code}: {body}"),
            ApiError::Malformed { url, cause } => {
                write!(
                    f,
                    "{url} did not answer with a Prometheus API response: {cause}"
                )
            }
            ApiError::TooLarge { url } => write!(
                f,
                "the answer of {url} is larger than {} MiB",
                MAX_BODY_BYTES >> 20
            ),
        }
    }
}

/// The envelope of every `/api/v1` answer.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

/// The envelope of an error answer, whatever its `data`.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    error: String,
}

/// `data` of `/api/v1/query` and `/api/v1/query_range`.
#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub(super) enum QueryData {
    Matrix(Vec<RangeSeries>),
    Vector(Vec<InstantSample>),
    Scalar(Sample),
    String(serde::de::IgnoredAny),
}

/// One series of a range query.
#[derive(Debug, Deserialize)]
pub(super) struct RangeSeries {
    #[serde(default)]
    pub metric: BTreeMap<String, String>,
    /// Float samples. Native-histogram samples (`histograms`) are not numbers and are ignored.
    #[serde(default)]
    pub values: Vec<Sample>,
}

/// One series of an instant query.
#[derive(Debug, Deserialize)]
pub(super) struct InstantSample {
    #[serde(default)]
    pub metric: BTreeMap<String, String>,
    pub value: Option<Sample>,
}

/// `[unix_seconds, "value"]`: Prometheus sends values as strings so that `NaN` and `±Inf` survive
/// JSON.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Sample {
    pub time: f64,
    pub value: f64,
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (time, text): (f64, String) = Deserialize::deserialize(deserializer)?;
        let value = parse_value(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a sample value")))?;
        Ok(Sample { time, value })
    }
}

/// Reads a sample value as Prometheus writes it (`1.5`, `1e+06`, `NaN`, `+Inf`, `-Inf`).
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// `data` of `/api/v1/status/buildinfo`.
#[derive(Debug, Deserialize)]
pub(super) struct BuildInfo {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub revision: String,
}

/// `data` of `/api/v1/targets`.
#[derive(Debug, Deserialize)]
pub(super) struct Targets {
    #[serde(default, rename = "activeTargets")]
    pub active: Vec<ActiveTarget>,
}

/// One target Prometheus scrapes, as `/api/v1/targets` reports it.
#[derive(Debug, Deserialize)]
pub(super) struct ActiveTarget {
    #[serde(default, rename = "scrapePool")]
    pub pool: String,
    #[serde(default, rename = "scrapeUrl")]
    pub url: String,
    #[serde(default)]
    pub health: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, rename = "lastError")]
    pub last_error: String,
}

/// A successful answer and the warnings Prometheus attached to it.
#[derive(Debug)]
pub(super) struct Answer<T> {
    pub data: T,
    pub warnings: Vec<String>,
}

impl Api {
    /// A client for the server at `base` (validated by the settings); builds nothing until the
    /// first request.
    pub fn new(base: Url, timeout: Duration) -> Self {
        let std_timeout = timeout.as_std();
        let client = crate::util::http::LazyClient::new(move |b| b.timeout(std_timeout));
        Self {
            client,
            base,
            timeout,
        }
    }

    /// The base URL as it may be shown: without a password.
    pub fn base(&self) -> String {
        redacted(&self.base)
    }

    /// A page of the server's web UI (`/graph`, `/targets`), as it may be shown.
    pub fn page(&self, path: &str) -> String {
        redacted(&self.url(path, &[]))
    }

    /// `base` + `path`, keeping the base's path prefix (`http://host/prometheus` +
    /// `/api/v1/query`).
    pub fn url(&self, path: &str, params: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
        url.set_query(None);
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        url
    }

    /// `GET /api/v1/query`: the value of `query` now.
    pub async fn query(
        &self,
        query: &str,
        cancel: &CancellationToken,
    ) -> Result<Answer<QueryData>, ApiError> {
        let timeout = seconds(self.timeout);
        let url = self.url("/api/v1/query", &[("query", query), ("timeout", &timeout)]);
        self.get(url, cancel).await
    }

    /// `GET /api/v1/query_range`: the values of `query` from `start` to `end` (unix seconds) every
    /// `step`.
    pub async fn query_range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: Duration,
        cancel: &CancellationToken,
    ) -> Result<Answer<QueryData>, ApiError> {
        let (start, end) = (format!("{start:.3}"), format!("{end:.3}"));
        let (step, timeout) = (seconds(step), seconds(self.timeout));
        let url = self.url(
            "/api/v1/query_range",
            &[
                ("query", query),
                ("start", &start),
                ("end", &end),
                ("step", &step),
                ("timeout", &timeout),
            ],
        );
        self.get(url, cancel).await
    }

    /// `GET /api/v1/status/buildinfo`.
    pub async fn build_info(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Answer<BuildInfo>, ApiError> {
        self.get(self.url("/api/v1/status/buildinfo", &[]), cancel)
            .await
    }

    /// `GET /api/v1/targets?state=active`.
    pub async fn targets(&self, cancel: &CancellationToken) -> Result<Answer<Targets>, ApiError> {
        self.get(self.url("/api/v1/targets", &[("state", "active")]), cancel)
            .await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        url: Url,
        cancel: &CancellationToken,
    ) -> Result<Answer<T>, ApiError> {
        cancel
            .run_until_cancelled(self.fetch(url))
            .await
            .unwrap_or(Err(ApiError::Cancelled))
    }

    async fn fetch<T: DeserializeOwned>(&self, url: Url) -> Result<Answer<T>, ApiError> {
        let shown = redacted(&url);
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                ApiError::TimedOut {
                    url: shown.clone(),
                    after: self.timeout,
                }
            } else {
                ApiError::Unreachable {
                    url: shown.clone(),
                    cause: causes(&e),
                }
            }
        };
        let client = self.client.get().map_err(|cause| ApiError::Unreachable {
            url: shown.clone(),
            cause,
        })?;
        let mut response = client.get(url.clone()).send().await.map_err(transport)?;
        let code = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ApiError::TooLarge { url: shown });
            }
            body.extend_from_slice(&chunk);
        }

        if !code.is_success() {
            return Err(match serde_json::from_slice::<ErrorEnvelope>(&body) {
                Ok(e) => ApiError::Prometheus {
                    code,
                    kind: e.error_type.unwrap_or_else(|| "error".into()),
                    message: e.error,
                },
                Err(_) => ApiError::Http {
                    url: shown,
                    code,
                    body: quote(&body),
                },
            });
        }
        let envelope: Envelope<T> =
            serde_json::from_slice(&body).map_err(|e| ApiError::Malformed {
                url: shown.clone(),
                cause: e.to_string(),
            })?;
        match (envelope.status.as_str(), envelope.data) {
            ("success", Some(data)) => Ok(Answer {
                data,
                warnings: envelope.warnings,
            }),
            ("success", None) => Err(ApiError::Malformed {
                url: shown,
                cause: "a success without `data`".into(),
            }),
            _ => Err(ApiError::Prometheus {
                code,
                kind: envelope.error_type.unwrap_or_else(|| "error".into()),
                message: envelope
                    .error
                    .unwrap_or_else(|| format!("status `{}`", envelope.status)),
            }),
        }
    }
}

/// A duration as Prometheus reads it: a number of seconds (`0.5`, `60`).
fn seconds(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// A URL without its password, for messages and logs.
pub(super) fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        // Only fails for URLs that cannot have credentials, which this one has.
        let _ = url.set_password(Some("****"));
    }
    url.to_string()
}

/// An error and its causes on one line, without the URL reqwest puts in its own message (it may
/// hold a password, and callers name the URL themselves).
fn causes(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

/// The start of a body, on one line, for quoting in an error.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > QUOTED_BODY_CHARS {
        let cut: String = line.chars().take(QUOTED_BODY_CHARS).collect();
        format!("{cut}...")
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Api {
        let url = Url::parse(base).expect("a valid test URL");
        Api::new(url, Duration::from_secs(1))
    }

    #[test]
    fn urls_keep_the_base_path_prefix_and_encode_the_query() {
        let api = client("http://127.0.0.1:9090/prom/");
        let url = api.url("/api/v1/query", &[("query", "rate(x{a=\"b c\"}[5m])")]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9090/prom/api/v1/query?query=rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29"
        );
        let plain = client("http://prometheus:9090").url("/api/v1/targets", &[]);
        assert_eq!(plain.as_str(), "http://prometheus:9090/api/v1/targets");
    }

    #[test]
    fn passwords_never_reach_messages() {
        let api = client("https://user:s3cret@prometheus.example/");
        assert_eq!(api.base(), "https://user:****@prometheus.example/");
        assert!(!redacted(&api.url("/api/v1/query", &[])).contains("s3cret"));
    }

    #[test]
    fn samples_read_prometheus_special_values() {
        let samples: Vec<Sample> =
            serde_json::from_str(r#"[[1.5,"2"],[2,"NaN"],[3,"+Inf"],[4,"-Inf"],[5,"1e+06"]]"#)
                .expect("samples");
        assert_eq!(
            samples[0],
            Sample {
                time: 1.5,
                value: 2.0
            }
        );
        assert!(samples[1].value.is_nan());
        assert_eq!(samples[2].value, f64::INFINITY);
        assert_eq!(samples[3].value, f64::NEG_INFINITY);
        assert_eq!(samples[4].value, 1e6);
        assert!(serde_json::from_str::<Sample>(r#"[1, "fast"]"#).is_err());
    }

    #[test]
    fn query_data_reads_every_result_type() {
        let matrix: QueryData = serde_json::from_str(
            r#"{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1,"1"],[2,"3"]]}]}"#,
        )
        .expect("matrix");
        assert!(
            matches!(&matrix, QueryData::Matrix(s) if s[0].values.len() == 2 && s[0].metric["job"] == "a")
        );
        let vector: QueryData = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"4"]}]}"#,
        )
        .expect("vector");
        assert!(
            matches!(&vector, QueryData::Vector(s) if s[0].value == Some(Sample { time: 1.0, value: 4.0 }))
        );
        let scalar: QueryData =
            serde_json::from_str(r#"{"resultType":"scalar","result":[1,"5"]}"#).expect("scalar");
        assert!(matches!(
            scalar,
            QueryData::Scalar(Sample { value: 5.0, .. })
        ));
        let string: QueryData =
            serde_json::from_str(r#"{"resultType":"string","result":[1,"x"]}"#).expect("string");
        assert!(matches!(string, QueryData::String(_)));
    }

    #[test]
    fn long_error_bodies_are_quoted_on_one_shortened_line() {
        let body = format!("<html>\n  <h1>Not Found</h1>{}</html>", "x".repeat(500));
        let quoted = quote(body.as_bytes());
        assert!(quoted.starts_with("<html> <h1>Not Found</h1>"), "{quoted}");
        assert!(quoted.ends_with("..."));
        assert!(quoted.chars().count() <= QUOTED_BODY_CHARS + 3);
    }
}
