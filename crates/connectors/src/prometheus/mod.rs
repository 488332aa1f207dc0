//! `prometheus`: measures metrics by querying a Prometheus server (ServoX's `prometheus`).
//!
//! Needs a Prometheus server (or anything serving its HTTP API: Thanos, Mimir, VictoriaMetrics)
//! reachable at `base_url`, path prefix included. Nothing is installed or scraped by servo: the
//! application's metrics must already be in Prometheus.
//!
//! Events:
//! - `metrics`: the configured `metrics`.
//! - `measure`: waits out the control's `warmup`, then its `duration` (the measurement window),
//!   then its `delay` (time for the last samples to be scraped), and then runs each requested
//!   metric's `query` with `/api/v1/query_range` over the window, every `step`. The reading's
//!   series is the query's result and its value the mean of the series' points. When a query
//!   returns several series, the value is the mean of their means (how ServoX's fast fail
//!   summarises a metric) and the series is their mean at each timestamp; the measurement is
//!   annotated with the series it averaged. Aggregate in PromQL (`sum(...)`, `max(...)`,
//!   `histogram_quantile(...)`) when you mean something else. `NaN` and infinite samples are left
//!   out. A query with no data left is *absent*, and its metric's `absent` policy decides: `ignore`
//!   (no reading), `zero` (the query becomes `(query) or on() vector(0)`, as in ServoX, so it reads
//!   0), `warn` (a warning and no reading) or `fail` (the measurement fails). A measurement needs a
//!   duration: a request without one is refused rather than guessed.
//! - Fast fail: when the optimizer sends SLO conditions in `control.userdata.slo` (ServoX's
//!   protocol) and `fast_fail.disabled` is 0, the conditions' metrics are read over the last
//!   `fast_fail.span` every `fast_fail.period` during warmup and duration (after `fast_fail.skip`),
//!   and a violated SLO stops the measurement with an error (see `slo.rs`). Failed reads during
//!   fast fail are logged and count as missing values; the final query reports persistent failures.
//! - `check`: the server answers (`/api/v1/status/buildinfo`, reporting its version); each metric's
//!   query is accepted and returns data now (`/api/v1/query`; no data is a warning, since the
//!   application may not be loaded yet); and the active targets are up, including every target
//!   listed in `targets`.
//!
//! ServoX settings load unchanged. `streaming_interval` is accepted and ignored (ServoX's streaming
//! is disabled too). `timeout` is an extension: the bound of every request, also sent to Prometheus
//! as the query timeout.

mod api;
mod slo;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::future::join_all;
use reqwest::{StatusCode, Url};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use servo_core::connector::{BuildContext, ConnectorSettings, EventContext, Handlers};
use servo_core::types::{
    Check, MeasureRequest, Measurement, Metric, Reading, Severity, TimeSeries,
};
use servo_core::units::Duration;
use servo_core::{BuildConnector, Connector, ConnectorError, Event, KeyPath, Problem};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::api::{Api, ApiError, QueryData, RangeSeries, Sample};
use self::slo::Observer;

/// Settings of the `prometheus` connector: ServoX's `PrometheusConfiguration`, plus `timeout`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The root of the Prometheus server, with its path prefix if it has one
    /// (`http://monitoring:9090/prometheus`); API paths are appended to it.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The metrics to measure, each a PromQL query.
    pub metrics: Vec<PrometheusMetric>,
    /// Accepted for ServoX compatibility and ignored: servo does not stream metrics between
    /// measurements (ServoX's streaming is disabled too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming_interval: Option<Duration>,
    /// Targets Prometheus is expected to scrape, in the shape of its `/api/v1/targets` answer;
    /// `servo check` verifies each is active and up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<ExpectedTarget>>,
    /// Stop a measurement early when it breaks an SLO the optimizer sent with it.
    #[serde(default)]
    pub fast_fail: FastFail,
    /// How long one request to Prometheus may take, query evaluation included (servo extension).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

fn default_base_url() -> String {
    "http://prometheus:9090".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One metric measured with a PromQL query (ServoX's `PrometheusMetric`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusMetric {
    /// The metric's name, as the optimizer and `servo measure` know it.
    pub name: String,
    /// The unit of its value: `rps`, `rpm`, `ms`, `%`, `bytes`, `GiB`, `cores`, or empty for a
    /// plain number.
    #[serde(default)]
    pub unit: String,
    /// The PromQL query whose result is the metric, e.g. `sum(rate(http_requests_total[1m]))`.
    pub query: String,
    /// The resolution of the range query: one point every `step` across the measurement window.
    #[serde(default = "default_step")]
    pub step: Duration,
    /// What a query that returns no data means.
    #[serde(default)]
    pub absent: Absent,
}

fn default_step() -> Duration {
    Duration::from_secs(60)
}

impl PrometheusMetric {
    /// The query as sent: with `absent: zero`, ServoX's `or on() vector(0)` makes "no data" read 0.
    fn promql(&self) -> String {
        match self.absent {
            // Parenthesised so the user's operators bind first; the newline ends a `#` comment.
            Absent::Zero if self.query.contains('#') => {
                format!("({}\n) or on() vector(0)", self.query)
            }
            Absent::Zero => format!("({}) or on() vector(0)", self.query),
            _ => self.query.clone(),
        }
    }

    fn metric(&self) -> Metric {
        Metric::new(self.name.clone(), self.unit.clone())
    }
}

/// What to do when a metric's query returns no data (ServoX's `AbsentMetricPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Absent {
    /// No reading.
    #[default]
    Ignore,
    /// A reading of 0.
    Zero,
    /// A warning in the log, and no reading.
    Warn,
    /// The measurement fails.
    Fail,
}

impl fmt::Display for Absent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Absent::Ignore => "ignore",
            Absent::Zero => "zero",
            Absent::Warn => "warn",
            Absent::Fail => "fail",
        })
    }
}

/// ServoX's `fast_fail` section.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FastFail {
    /// `1` turns fast fail off; `0` (the default) leaves it on.
    #[serde(default)]
    pub disabled: Switch,
    /// How often the SLO metrics are read during a measurement.
    #[serde(default = "default_period")]
    pub period: Duration,
    /// The window each read covers, ending now. Defaults to `period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<Duration>,
    /// How long after the measurement starts the first read may happen.
    #[serde(default)]
    pub skip: Duration,
    /// Read a value of 0 as missing rather than as a measurement (for metrics systems that report 0
    /// when they have no data).
    #[serde(default)]
    pub treat_zero_as_missing: bool,
}

fn default_period() -> Duration {
    Duration::from_secs(60)
}

impl Default for FastFail {
    fn default() -> Self {
        Self {
            disabled: Switch::default(),
            period: default_period(),
            span: None,
            skip: Duration::ZERO,
            treat_zero_as_missing: false,
        }
    }
}

impl FastFail {
    fn span(&self) -> Duration {
        self.span.unwrap_or(self.period)
    }
}

/// ServoX spells `fast_fail.disabled` as the integer `0` or `1`; `false`/`true` are read too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switch(bool);

impl Serialize for Switch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(u8::from(self.0))
    }
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Switch;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("0 or 1")
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Switch, E> {
                Ok(Switch(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Switch, E> {
                match v {
                    0 => Ok(Switch(false)),
                    1 => Ok(Switch(true)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Unsigned(v), &self)),
                }
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Switch, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Switch {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Switch".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [{ "type": "integer", "enum": [0, 1] }, { "type": "boolean" }]
        })
    }
}

/// A target Prometheus should be scraping, in the shape of `/api/v1/targets` (ServoX's
/// `ActiveTarget`). It is matched by `scrapeUrl` when given, otherwise by `scrapePool` and
/// `labels`; the other fields are accepted and ignored.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedTarget {
    /// The scrape job (`job_name`) the target belongs to.
    #[serde(
        default,
        rename = "scrapePool",
        skip_serializing_if = "Option::is_none"
    )]
    pub pool: Option<String>,
    /// The URL Prometheus scrapes, e.g. `http://app:8080/metrics`.
    #[serde(default, rename = "scrapeUrl", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Ignored.
    #[serde(default, rename = "globalUrl", skip_serializing_if = "Option::is_none")]
    pub global_url: Option<String>,
    /// Ignored: an expected target must be `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Labels the target must have (after relabelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Ignored.
    #[serde(
        default,
        rename = "discoveredLabels",
        skip_serializing_if = "Option::is_none"
    )]
    pub discovered_labels: Option<BTreeMap<String, String>>,
    /// Ignored.
    #[serde(
        default,
        rename = "lastScrape",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_scrape: Option<String>,
    /// Ignored.
    #[serde(
        default,
        rename = "lastScrapeDuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_scrape_duration: Option<Duration>,
    /// Ignored.
    #[serde(default, rename = "lastError", skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl ExpectedTarget {
    fn matches(&self, target: &api::ActiveTarget) -> bool {
        if let Some(url) = &self.url {
            return *url == target.url;
        }
        self.pool.as_ref().is_none_or(|p| *p == target.pool)
            && self
                .labels
                .iter()
                .flatten()
                .all(|(k, v)| target.labels.get(k) == Some(v))
    }
}

impl fmt::Display for ExpectedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(url) = &self.url {
            return f.write_str(url);
        }
        let mut parts = Vec::new();
        if let Some(pool) = &self.pool {
            parts.push(format!("job={pool:?}"));
        }
        parts.extend(
            self.labels
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v:?}")),
        );
        write!(f, "{{{}}}", parts.join(", "))
    }
}

impl ConnectorSettings for Settings {
    fn example() -> Self {
        Settings {
            description: Some("Update base_url and the queries to match your Prometheus".into()),
            base_url: default_base_url(),
            metrics: vec![
                PrometheusMetric {
                    name: "throughput".into(),
                    unit: "rps".into(),
                    query: "sum(rate(http_requests_total[1m]))".into(),
                    step: Duration::from_secs(30),
                    absent: Absent::Zero,
                },
                PrometheusMetric {
                    name: "error_rate".into(),
                    unit: "%".into(),
                    query: "100 * sum(rate(http_requests_total{code=~\"5..\"}[1m])) / sum(rate(http_requests_total[1m]))"
                        .into(),
                    step: Duration::from_secs(30),
                    absent: Absent::Ignore,
                },
            ],
            streaming_interval: None,
            targets: None,
            fast_fail: FastFail::default(),
            timeout: default_timeout(),
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let root = KeyPath::root();
        if let Err(message) = parse_base_url(&self.base_url) {
            problems.push(
                Problem::new(root.key("base_url"), message)
                    .with_help("the root of the Prometheus server, e.g. http://prometheus:9090"),
            );
        }
        let mut names = BTreeSet::new();
        for (i, metric) in self.metrics.iter().enumerate() {
            let at = root.key("metrics").index(i);
            if metric.name.trim().is_empty() {
                problems.push(Problem::new(at.key("name"), "a metric needs a name"));
            } else if !names.insert(metric.name.as_str()) {
                problems.push(Problem::new(
                    at.key("name"),
                    format!(
                        "`{}` is measured twice; metric names must be unique",
                        metric.name
                    ),
                ));
            }
            if metric.query.trim().is_empty() {
                problems.push(
                    Problem::new(at.key("query"), "the query is empty")
                        .with_help("a PromQL expression, e.g. sum(rate(http_requests_total[1m]))"),
                );
            }
            if metric.step.is_zero() {
                problems.push(
                    Problem::new(at.key("step"), "`step` must be longer than 0s")
                        .with_help("the distance between points of the series, e.g. 30s"),
                );
            }
        }
        for (i, target) in self.targets.iter().flatten().enumerate() {
            if target.url.is_none() && target.pool.is_none() && target.labels.is_none() {
                problems.push(
                    Problem::new(
                        root.key("targets").index(i),
                        "this target cannot be matched",
                    )
                    .with_help("give its `scrapeUrl`, or its `scrapePool` and/or `labels`"),
                );
            }
        }
        if self.fast_fail.period.is_zero() {
            problems.push(Problem::new(
                root.key("fast_fail").key("period"),
                "`period` must be longer than 0s",
            ));
        }
        if self.fast_fail.span.is_some_and(|s| s.is_zero()) {
            problems.push(Problem::new(
                root.key("fast_fail").key("span"),
                "`span` must be longer than 0s",
            ));
        }
        if self.timeout.is_zero() {
            problems.push(Problem::new(
                root.key("timeout"),
                "`timeout` must be longer than 0s",
            ));
        }
        problems
    }
}

/// `base_url` as a URL the API paths can be appended to.
fn parse_base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` is not an http:// or https:// URL"));
    }
    if url.host().is_none() {
        return Err(format!("`{text}` has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` has a query or fragment; give the server's root only"
        ));
    }
    Ok(url)
}

/// The connector: its settings and one HTTP client for its server.
pub struct Prometheus {
    settings: Settings,
    api: Api,
    /// The key it is mounted under, to name settings and environment variables in hints.
    mount: String,
}

servo_core::register!(Prometheus {
    name: "prometheus",
    description: "Measures metrics with PromQL queries over the measurement window",
});

impl BuildConnector for Prometheus {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        let base = parse_base_url(&settings.base_url).map_err(ConnectorError::invalid)?;
        let api = Api::new(base, settings.timeout).map_err(|e| {
            ConnectorError::failed(format!("cannot set up an HTTP client: {e}"))
                .with_hint("this is a problem of the TLS setup of this machine, not of the config")
        })?;
        Ok(Self {
            settings,
            api,
            mount: cx.mount.clone(),
        })
    }
}

/// What a request was about, to word its failure.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Server,
    Query(usize, &'a PrometheusMetric),
}

impl Prometheus {
    /// The metrics of this mount a request asks for (all of them when it names none).
    fn requested<'a>(&'a self, request: &MeasureRequest) -> Vec<(usize, &'a PrometheusMetric)> {
        self.settings
            .metrics
            .iter()
            .enumerate()
            .filter(|(_, m)| request.metrics.is_empty() || request.metrics.contains(&m.name))
            .collect()
    }

    /// The environment variable that overrides `base_url` for this mount.
    fn base_url_variable(&self) -> String {
        let key: String = self
            .mount
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("SERVO_{key}_BASE_URL")
    }

    /// Words a failed request for a person: what happened, and what to do.
    fn failure(&self, error: ApiError, subject: Subject<'_>) -> ConnectorError {
        let base = self.api.base();
        let mount = &self.mount;
        let not_prometheus = || format!("is `{mount}.base_url` ({base}) the Prometheus server?");
        match (error, subject) {
            (ApiError::Cancelled, _) => ConnectorError::Cancelled,
            (ApiError::Unreachable { cause, .. }, _) => {
                let message = format!("cannot reach Prometheus at {base}: {cause}");
                let hint = format!(
                    "check that Prometheus is running and that `{mount}.base_url` is its address, \
                     path prefix included (or set {})",
                    self.base_url_variable()
                );
                ConnectorError::failed(message).with_hint(hint)
            }
            (ApiError::TimedOut { after, .. }, subject) => {
                let what = match subject {
                    Subject::Server => String::new(),
                    Subject::Query(_, m) => format!(" the query of metric `{}`", m.name),
                };
                let message = format!("Prometheus at {base} did not answer{what} within {after}");
                let hint = format!(
                    "raise `{mount}.timeout`, or make the query cheaper: a larger `step`, a \
                     shorter range selector, fewer series"
                );
                ConnectorError::failed(message).with_hint(hint)
            }
            (
                ApiError::Prometheus {
                    code,
                    kind,
                    message,
                },
                Subject::Query(i, m),
            ) => {
                let at = format!("{mount}.metrics[{i}]");
                let (message, hint) = if message.contains("maximum resolution") {
                    // Prometheus returns at most 11,000 points per series.
                    let message = format!(
                        "the window is too long for the `step` of metric `{}`: {message}",
                        m.name
                    );
                    (message, format!("raise `{at}.step`"))
                } else if code == StatusCode::BAD_REQUEST || kind == "bad_data" {
                    let message = format!(
                        "Prometheus rejected the query `{}` of metric `{}`: {message}",
                        m.query, m.name
                    );
                    let hint = format!(
                        "fix the PromQL of `{at}.query`; Prometheus' expression browser at {} shows the \
                         same error as you type",
                        self.api.page("/graph")
                    );
                    (message, hint)
                } else {
                    let message = format!(
                        "Prometheus could not evaluate the query `{}` of metric `{}`: {message} ({kind})",
                        m.query, m.name
                    );
                    let hint = format!(
                        "the query is valid but failed in Prometheus, often for being too expensive: \
                         narrow it, raise `{at}.step`, or raise `{mount}.timeout` and \
                         Prometheus' --query.timeout"
                    );
                    (message, hint)
                };
                ConnectorError::failed(message).with_hint(hint)
            }
            (ApiError::Prometheus { kind, message, .. }, Subject::Server) => {
                let message = format!("Prometheus at {base} answered an error: {message} ({kind})");
                ConnectorError::failed(message).with_hint(not_prometheus())
            }
            (error @ ApiError::Http { code, .. }, _) if code == StatusCode::NOT_FOUND => {
                let hint = format!(
                    "`{mount}.base_url` must be the root of the Prometheus server, with its path \
                     prefix if it runs with --web.route-prefix (e.g. http://host:9090/prometheus)"
                );
                ConnectorError::failed(error.to_string()).with_hint(hint)
            }
            (error @ ApiError::Http { code, .. }, _)
                if matches!(code.as_u16(), 401 | 403 | 407) =>
            {
                let hint = "Prometheus, or a proxy in front of it, refused the request: servo sends \
                            no credentials besides those in the URL";
                ConnectorError::failed(error.to_string()).with_hint(hint)
            }
            (error @ ApiError::TooLarge { .. }, Subject::Query(i, _)) => {
                let hint = format!(
                    "raise the `step` of `{mount}.metrics[{i}]`, or aggregate the query so it \
                     returns fewer series"
                );
                ConnectorError::failed(error.to_string()).with_hint(hint)
            }
            (
                error @ (ApiError::Http { .. }
                | ApiError::Malformed { .. }
                | ApiError::TooLarge { .. }),
                _,
            ) => ConnectorError::failed(error.to_string()).with_hint(not_prometheus()),
        }
    }

    /// Runs one metric's range query over `[start, end]` (unix seconds).
    async fn series(
        &self,
        (i, metric): (usize, &PrometheusMetric),
        start: f64,
        end: f64,
        cancel: &CancellationToken,
    ) -> Result<Vec<RangeSeries>, ConnectorError> {
        let answer = self
            .api
            .query_range(&metric.promql(), start, end, metric.step, cancel)
            .await
            .map_err(|e| self.failure(e, Subject::Query(i, metric)))?;
        for warning in &answer.warnings {
            tracing::warn!(mount = %self.mount, metric = %metric.name, "Prometheus: {warning}");
        }
        Ok(match answer.data {
            QueryData::Matrix(series) => series,
            // Range queries answer with matrices; anything else is read as points rather than
            // refused.
            QueryData::Vector(samples) => samples
                .into_iter()
                .map(|s| RangeSeries {
                    metric: s.metric,
                    values: s.value.into_iter().collect(),
                })
                .collect(),
            QueryData::Scalar(sample) => vec![RangeSeries {
                metric: BTreeMap::new(),
                values: vec![sample],
            }],
            QueryData::String(_) => {
                return Err(ConnectorError::failed(format!(
                    "the query `{}` of metric `{}` returns a string, not numbers",
                    metric.query, metric.name
                ))
                .with_hint("a metric's query must return numbers: an instant vector or a scalar"));
            }
        })
    }

    /// One metric's reading over the window, or `None` when it is absent and that is allowed.
    async fn read(
        &self,
        (i, metric): (usize, &PrometheusMetric),
        start: f64,
        end: f64,
        cancel: &CancellationToken,
    ) -> Result<(Option<Reading>, Option<String>), ConnectorError> {
        let series = self.series((i, metric), start, end, cancel).await?;
        if let Some(summary) = Summary::of(&series) {
            let note = (summary.averaged.len() > 1).then(|| {
                format!(
                    "mean of {} series: {}",
                    summary.averaged.len(),
                    summary.averaged.join(", ")
                )
            });
            return Ok((
                Some(Reading::new(metric.metric(), summary.value).with_series(summary.series)),
                note,
            ));
        }
        let window = format!("from {} to {}", timestamp(start), timestamp(end));
        match metric.absent {
            Absent::Ignore => {
                tracing::debug!(
                    mount = %self.mount,
                    metric = %metric.name,
                    "no data {window}; ignored (absent: ignore)"
                );
                Ok((None, None))
            }
            Absent::Zero => Ok((Some(Reading::new(metric.metric(), 0.0)), None)),
            Absent::Warn => {
                tracing::warn!(
                    mount = %self.mount,
                    metric = %metric.name,
                    query = %metric.query,
                    "the query returned no data {window}; no reading (absent: warn)"
                );
                Ok((None, None))
            }
            Absent::Fail => {
                let message = format!(
                    "metric `{}` is absent: its query `{}` returned no data {window}",
                    metric.name, metric.query
                );
                let hint = format!(
                    "check the query in Prometheus' expression browser ({}) and that its target is \
                     scraped (`up` is 1); set `{}.metrics[{i}].absent` to `ignore`, `warn` or \
                     `zero` if no data is normal",
                    self.api.page("/graph"),
                    self.mount
                );
                Err(ConnectorError::failed(message).with_hint(hint))
            }
        }
    }

    /// Waits until `until`, reading the SLO metrics every `fast_fail.period` when an observer is
    /// given.
    async fn watch(
        &self,
        began: Instant,
        until: Instant,
        observer: Option<Observer>,
        metrics: &[(usize, &PrometheusMetric)],
        cx: &EventContext,
    ) -> Result<(), ConnectorError> {
        let Some(mut observer) = observer else {
            return cx.sleep_until(until).await;
        };
        let fast_fail = &self.settings.fast_fail;
        let watched: Vec<(usize, &PrometheusMetric)> = {
            let names = observer.metrics();
            metrics
                .iter()
                .copied()
                .filter(|(_, m)| names.contains(m.name.as_str()))
                .collect()
        };
        let period = fast_fail.period.as_std();
        let Some(first) = began.checked_add(period) else {
            // A period beyond the clock's range never ticks.
            return cx.sleep_until(until).await;
        };
        let mut ticks = tokio::time::interval_at(first, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return Ok(()),
                () = cx.cancel.cancelled() => return Err(ConnectorError::Cancelled),
                now = ticks.tick() => {
                    if now.duration_since(began) < fast_fail.skip.as_std() {
                        continue;
                    }
                    let values = self.current_values(&watched, fast_fail.span(), &cx.cancel).await?;
                    let verdict = observer.observe(&values);
                    for (condition, outcome) in observer.latest() {
                        let status = outcome.map(|o| o.status);
                        tracing::info!(mount = %self.mount, "fast fail: {condition}: {status:?}");
                    }
                    verdict.map_err(|violation| self.violation(&violation))?;
                }
            }
        }
    }

    fn violation(&self, violation: &str) -> ConnectorError {
        let hint = format!(
            "this configuration breaks an SLO the optimizer set, so measuring on was pointless; \
             set `{}.fast_fail.disabled: 1` to always measure to the end",
            self.mount
        );
        ConnectorError::failed(format!(
            "measurement stopped early, SLO violated: {violation}"
        ))
        .with_hint(hint)
    }

    /// The summary value of each watched metric over the last `span`; failed reads are logged and
    /// left out (fast fail counts them as missing).
    async fn current_values(
        &self,
        watched: &[(usize, &PrometheusMetric)],
        span: Duration,
        cancel: &CancellationToken,
    ) -> Result<BTreeMap<String, f64>, ConnectorError> {
        let end = unix_now();
        let start = end - span.as_secs_f64();
        let reads = join_all(watched.iter().map(|&m| self.series(m, start, end, cancel))).await;
        let mut values = BTreeMap::new();
        for ((_, metric), read) in watched.iter().zip(reads) {
            match read {
                Ok(series) => {
                    if let Some(summary) = Summary::of(&series) {
                        values.insert(metric.name.clone(), summary.value);
                    }
                }
                Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
                Err(e) => {
                    tracing::warn!(mount = %self.mount, metric = %metric.name, "fast fail: {e}");
                }
            }
        }
        Ok(values)
    }

    /// Whether Prometheus answers, and its version.
    async fn check_server(&self, cancel: &CancellationToken) -> Result<Check, ConnectorError> {
        let name = format!("Connect to \"{}\"", self.api.base());
        let answer = match self.api.build_info(cancel).await {
            Ok(answer) => {
                let info = answer.data;
                let revision = if info.revision.is_empty() {
                    String::new()
                } else {
                    format!(" (revision {})", info.revision)
                };
                return Ok(Check::pass(
                    name,
                    format!("Prometheus {}{revision}", info.version),
                ));
            }
            // Some servers of the Prometheus API have no buildinfo: any answered query will do.
            Err(ApiError::Http { code, .. } | ApiError::Prometheus { code, .. })
                if code == StatusCode::NOT_FOUND =>
            {
                self.api.query("vector(1)", cancel).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(()) => Ok(Check::pass(name, "answers queries (it reports no version)")),
            Err(e) => failed_check(name, self.failure(e, Subject::Server)),
        }
    }

    /// Whether a metric's query is accepted and returns data now.
    async fn check_query(
        &self,
        i: usize,
        metric: &PrometheusMetric,
        cancel: &CancellationToken,
    ) -> Result<Check, ConnectorError> {
        let name = format!("Run query \"{}\"", metric.query);
        let answer = match self.api.query(&metric.promql(), cancel).await {
            Ok(answer) => answer,
            Err(e) => return failed_check(name, self.failure(e, Subject::Query(i, metric))),
        };
        let values: Vec<String> = match &answer.data {
            QueryData::Vector(samples) => samples
                .iter()
                .filter_map(|s| {
                    s.value
                        .map(|v| format!("{} = {}", labels(&s.metric), v.value))
                })
                .collect(),
            QueryData::Scalar(s) => vec![format!("{}", s.value)],
            QueryData::Matrix(series) => series.iter().map(|s| labels(&s.metric)).collect(),
            QueryData::String(_) => {
                return Ok(Check::fail(
                    name,
                    format!(
                        "metric `{}`: the query returns a string, not numbers",
                        metric.name
                    ),
                )
                .with_hint("a metric's query must return an instant vector or a scalar"));
            }
        };
        if values.is_empty() {
            let message = format!(
                "metric `{}`: the query is valid but returns no data now",
                metric.name
            );
            let hint = format!(
                "the target may not be scraped yet: check `up` and the metric's name and labels \
                 in {}; if the application is idle this is expected, and `absent: {}` decides what \
                 a measurement does",
                self.api.page("/graph"),
                metric.absent
            );
            return Ok(Check::fail(name, message)
                .with_severity(Severity::Warning)
                .with_hint(hint));
        }
        let shown: Vec<&str> = values.iter().take(3).map(String::as_str).collect();
        let more = if values.len() > 3 {
            format!(" and {} more", values.len() - 3)
        } else {
            String::new()
        };
        Ok(Check::pass(
            name,
            format!(
                "metric `{}`: {} series: {}{more}",
                metric.name,
                values.len(),
                shown.join("; ")
            ),
        ))
    }

    /// Whether Prometheus scrapes its targets, and the expected ones in particular.
    async fn check_targets(&self, cancel: &CancellationToken) -> Result<Check, ConnectorError> {
        let name = "Active targets";
        let targets = match self.api.targets(cancel).await {
            Ok(answer) => answer.data.active,
            Err(ApiError::Cancelled) => return Err(ConnectorError::Cancelled),
            Err(e) => {
                let hint = "servers of the Prometheus API without /api/v1/targets cannot be \
                            checked for targets";
                return Ok(Check::fail(name, format!("cannot list targets: {e}"))
                    .with_severity(Severity::Warning)
                    .with_hint(hint));
            }
        };
        let missing: Vec<String> = self
            .settings
            .targets
            .iter()
            .flatten()
            .filter(|expected| {
                !targets
                    .iter()
                    .any(|t| expected.matches(t) && t.health == "up")
            })
            .map(
                |expected| match targets.iter().find(|t| expected.matches(t)) {
                    Some(t) if t.last_error.is_empty() => format!("{expected} is {}", t.health),
                    Some(t) => format!("{expected} is {} ({})", t.health, t.last_error),
                    None => format!("{expected} is not scraped"),
                },
            )
            .collect();
        if !missing.is_empty() {
            return Ok(Check::fail(name, missing.join("; ")).with_hint(format!(
                "see {} for why; an expected target must be in Prometheus' scrape config and up",
                self.api.page("/targets")
            )));
        }
        if targets.is_empty() {
            let hint = "expected when metrics arrive by remote write; otherwise check Prometheus' \
                        scrape_configs";
            return Ok(Check::fail(name, "Prometheus scrapes no targets")
                .with_severity(Severity::Warning)
                .with_hint(hint));
        }
        let down: Vec<String> = targets
            .iter()
            .filter(|t| t.health != "up")
            .map(|t| {
                if t.last_error.is_empty() {
                    t.url.clone()
                } else {
                    format!("{} ({})", t.url, t.last_error)
                }
            })
            .collect();
        if down.is_empty() {
            let noun = if targets.len() == 1 {
                "target"
            } else {
                "targets"
            };
            return Ok(Check::pass(
                name,
                format!("{} active {noun}, all up", targets.len()),
            ));
        }
        Ok(Check::fail(
            name,
            format!(
                "{} of {} active targets are not up: {}",
                down.len(),
                targets.len(),
                down.join("; ")
            ),
        )
        .with_severity(Severity::Warning)
        .with_hint(format!("see {}", self.api.page("/targets"))))
    }
}

/// A failed request as a failed check, except cancellation, which stops the checks.
fn failed_check(name: String, error: ConnectorError) -> Result<Check, ConnectorError> {
    if matches!(error, ConnectorError::Cancelled) {
        return Err(error);
    }
    let hint = error.hint().map(String::from);
    let check = Check::fail(name, error.to_string());
    Ok(match hint {
        Some(hint) => check.with_hint(hint),
        None => check,
    })
}

/// `from` plus the durations, refused when beyond the clock's range (centuries: a typo).
fn after(from: Instant, durations: &[Duration]) -> Result<Instant, ConnectorError> {
    durations
        .iter()
        .try_fold(from, |at, d| at.checked_add(d.as_std()))
        .ok_or_else(|| {
            let spans: Vec<String> = durations.iter().map(ToString::to_string).collect();
            ConnectorError::invalid(format!("cannot wait {}: too long", spans.join(" + ")))
        })
}

fn unix_now() -> f64 {
    // A clock before 1970 is a broken clock; the queries then fail with Prometheus' own message.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Unix seconds as a readable instant for messages (UTC, second precision).
fn timestamp(unix: f64) -> String {
    let secs = unix.max(0.0) as u64;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// A series' labels in PromQL notation: `up{instance="a:9100", job="node"}`.
fn labels(metric: &BTreeMap<String, String>) -> String {
    let name = metric
        .get("__name__")
        .map(String::as_str)
        .unwrap_or_default();
    let pairs: Vec<String> = metric
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    if pairs.is_empty() && !name.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", pairs.join(", "))
    }
}

/// A query result reduced to one reading: see the module documentation for the rules.
#[derive(Debug, PartialEq)]
struct Summary {
    value: f64,
    series: TimeSeries,
    /// The labels of the series averaged, when there were several.
    averaged: Vec<String>,
}

impl Summary {
    /// `None` when no series has a finite point: the metric is absent.
    fn of(series: &[RangeSeries]) -> Option<Summary> {
        let finite: Vec<(&RangeSeries, Vec<Sample>)> = series
            .iter()
            .map(|s| {
                (
                    s,
                    s.values
                        .iter()
                        .copied()
                        .filter(|p| p.value.is_finite())
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, points)| !points.is_empty())
            .collect();
        let means: Vec<f64> = finite
            .iter()
            .map(|(_, points)| mean(points.iter().map(|p| p.value)))
            .collect();
        let value = mean(means.iter().copied());
        match finite.as_slice() {
            [] => None,
            [(only, points)] => Some(Summary {
                value,
                series: TimeSeries {
                    id: (!only.metric.is_empty()).then(|| labels(&only.metric)),
                    points: points.iter().map(|p| (p.time, p.value)).collect(),
                },
                averaged: Vec::new(),
            }),
            several => {
                // Prometheus aligns every series of a range query on the same steps, so equal
                // timestamps are exactly equal; milliseconds keep the key an integer.
                let mut by_time: BTreeMap<i64, (f64, f64, usize)> = BTreeMap::new();
                for (_, points) in several {
                    for p in points {
                        let slot = by_time
                            .entry((p.time * 1_000.0).round() as i64)
                            .or_insert((p.time, 0.0, 0));
                        slot.1 += p.value;
                        slot.2 += 1;
                    }
                }
                Some(Summary {
                    value,
                    series: TimeSeries {
                        id: None,
                        points: by_time
                            .into_values()
                            .map(|(t, sum, n)| (t, sum / n as f64))
                            .collect(),
                    },
                    averaged: several.iter().map(|(s, _)| labels(&s.metric)).collect(),
                })
            }
        }
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

#[async_trait]
impl Connector for Prometheus {
    fn handlers(&self) -> Handlers {
        Handlers::on(&[Event::Check, Event::Metrics, Event::Measure])
    }

    async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        Ok(self
            .settings
            .metrics
            .iter()
            .map(PrometheusMetric::metric)
            .collect())
    }

    async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        let metrics = self.requested(request);
        if metrics.is_empty() {
            return Ok(Measurement::default());
        }
        let control = &request.control;
        if control.duration.is_zero() {
            return Err(ConnectorError::invalid(
                "a Prometheus measurement needs a duration: the queries cover the measurement window",
            )
            .with_hint("give one, e.g. `servo measure --duration 1m`"));
        }
        let fast_fail = &self.settings.fast_fail;
        let observer = if fast_fail.disabled.0 {
            None
        } else {
            slo::conditions(control.userdata.as_ref())
                .map_err(|e| {
                    ConnectorError::invalid(format!(
                        "the SLO conditions in `control.userdata.slo` are invalid: {e}"
                    ))
                    .with_hint(
                        "the optimizer sent them; fix them there, or set `fast_fail.disabled: 1`",
                    )
                })?
                .map(|conditions| Observer::new(conditions, fast_fail.treat_zero_as_missing))
        };
        if let Some(observer) = &observer {
            let conditions: Vec<String> = observer
                .conditions()
                .iter()
                .map(ToString::to_string)
                .collect();
            tracing::info!(mount = %self.mount, "fast fail watches {}", conditions.join(", "));
        }

        let began = Instant::now();
        let window_end = after(began, &[control.warmup, control.duration])?;
        // Refused now rather than after the window: the whole wait must fit the clock.
        after(window_end, &[control.delay])?;
        let start = unix_now() + control.warmup.as_secs_f64();
        let end = start + control.duration.as_secs_f64();
        let names: Vec<&str> = metrics.iter().map(|(_, m)| m.name.as_str()).collect();
        tracing::info!(
            mount = %self.mount,
            "measuring {} for {} after a warmup of {}",
            names.join(", "),
            control.duration,
            control.warmup
        );
        self.watch(began, window_end, observer, &metrics, cx)
            .await?;
        cx.sleep_until(after(Instant::now(), &[control.delay])?)
            .await?;

        let reads = join_all(
            metrics
                .iter()
                .map(|&m| self.read(m, start, end, &cx.cancel)),
        )
        .await;
        let mut measurement = Measurement::default();
        let mut failures = Vec::new();
        for ((_, metric), read) in metrics.iter().zip(reads) {
            match read {
                Ok((reading, note)) => {
                    measurement.readings.extend(reading);
                    if let Some(note) = note {
                        measurement
                            .annotations
                            .insert(format!("{}.{}", self.mount, metric.name), note);
                    }
                }
                Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
                Err(e) => failures.push(e),
            }
        }
        match failures.len() {
            0 => Ok(measurement),
            1 => Err(failures.remove(0)),
            n => {
                // One message for all, with the first hint: they usually share a cause.
                let hint = failures.iter().find_map(|e| e.hint().map(String::from));
                let message = failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                let error = ConnectorError::failed(format!(
                    "{n} of {} queries failed: {message}",
                    metrics.len()
                ));
                Err(match hint {
                    Some(hint) => error.with_hint(hint),
                    None => error,
                })
            }
        }
    }

    async fn check(&self, cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        let server = self.check_server(&cx.cancel).await?;
        if !server.success {
            // Every other check would fail the same way; the one failure says it all.
            return Ok(vec![server]);
        }
        let queries = join_all(
            self.settings
                .metrics
                .iter()
                .enumerate()
                .map(|(i, m)| self.check_query(i, m, &cx.cancel)),
        )
        .await;
        let mut checks = vec![server];
        for check in queries {
            checks.push(check?);
        }
        checks.push(self.check_targets(&cx.cancel).await?);
        Ok(checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(value: serde_json::Value) -> Settings {
        serde_json::from_value(value).expect("settings parse")
    }

    fn series(labels: &[(&str, &str)], points: &[(f64, f64)]) -> RangeSeries {
        RangeSeries {
            metric: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            values: points
                .iter()
                .map(|&(time, value)| Sample { time, value })
                .collect(),
        }
    }

    #[test]
    fn a_servox_section_loads_unchanged() {
        let s = settings(json!({
            "description": "from ServoX",
            "base_url": "http://prometheus.monitoring:9090/",
            "streaming_interval": "10s",
            "metrics": [
                {"name": "throughput", "unit": "rps", "query": "sum(rate(requests_total[1m]))", "step": "1m", "absent": "zero"},
                {"name": "p99", "unit": "ms", "query": "histogram_quantile(0.99, x)"}
            ],
            "targets": [{"scrapePool": "app", "scrapeUrl": "http://app:8080/metrics", "globalUrl": "http://app:8080/metrics",
                         "health": "up", "labels": {"job": "app"}, "discoveredLabels": {}, "lastScrape": "2024-01-01T00:00:00Z",
                         "lastScrapeDuration": 0.01, "lastError": ""}],
            "fast_fail": {"disabled": 1, "period": "30s", "span": "1m", "skip": "2m", "treat_zero_as_missing": true}
        }));
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        assert_eq!(
            s.metrics[1].step,
            Duration::from_secs(60),
            "ServoX's default step"
        );
        assert_eq!(
            s.metrics[1].absent,
            Absent::Ignore,
            "ServoX's default policy"
        );
        assert!(s.fast_fail.disabled.0);
        assert_eq!(s.timeout, Duration::from_secs(10));

        let defaults = settings(json!({"metrics": []}));
        assert_eq!(defaults.base_url, "http://prometheus:9090");
        assert_eq!(defaults.fast_fail.period, Duration::from_secs(60));
        assert_eq!(
            defaults.fast_fail.span(),
            Duration::from_secs(60),
            "span defaults to period"
        );
        assert!(!defaults.fast_fail.disabled.0);
    }

    #[test]
    fn fast_fail_disabled_is_zero_or_one() {
        for (value, disabled) in [(json!(0), false), (json!(1), true), (json!(true), true)] {
            let s = settings(json!({"metrics": [], "fast_fail": {"disabled": value}}));
            assert_eq!(s.fast_fail.disabled.0, disabled);
        }
        let two: Result<Settings, _> =
            serde_json::from_value(json!({"metrics": [], "fast_fail": {"disabled": 2}}));
        assert!(two.unwrap_err().to_string().contains("0 or 1"));
        assert_eq!(
            serde_json::to_value(Switch(true)).expect("serializes"),
            json!(1)
        );
    }

    #[test]
    fn validation_points_at_each_problem() {
        let s = settings(json!({
            "base_url": "prometheus:9090",
            "metrics": [
                {"name": "a", "query": "up", "step": "0s"},
                {"name": "a", "query": "  "}
            ],
            "targets": [{"health": "up"}],
            "timeout": "0s"
        }));
        let paths: Vec<String> = s.validate().iter().map(|p| p.path.to_string()).collect();
        for expected in [
            "base_url",
            "metrics[0].step",
            "metrics[1].name",
            "metrics[1].query",
            "targets[0]",
            "timeout",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{expected} not in {paths:?}"
            );
        }
        assert!(parse_base_url("ftp://host").is_err());
        assert!(parse_base_url("http://host:9090/?x=1").is_err());
        assert!(parse_base_url("https://host/prometheus").is_ok());
    }

    #[test]
    fn absent_zero_wraps_the_query_like_servox() {
        let mut m = PrometheusMetric {
            name: "rps".into(),
            unit: "rps".into(),
            query: "sum(rate(x[1m]))".into(),
            step: default_step(),
            absent: Absent::Zero,
        };
        assert_eq!(m.promql(), "(sum(rate(x[1m]))) or on() vector(0)");
        m.query = "x # a comment".into();
        assert_eq!(m.promql(), "(x # a comment\n) or on() vector(0)");
        m.absent = Absent::Fail;
        assert_eq!(m.promql(), "x # a comment");
    }

    #[test]
    fn one_series_reads_as_the_mean_of_its_finite_points() {
        let s = Summary::of(&[series(
            &[("job", "app")],
            &[(1.0, 2.0), (2.0, f64::NAN), (3.0, 4.0)],
        )])
        .expect("data");
        assert_eq!(s.value, 3.0);
        assert_eq!(s.series.points, [(1.0, 2.0), (3.0, 4.0)]);
        assert_eq!(s.series.id.as_deref(), Some("{job=\"app\"}"));
        assert!(s.averaged.is_empty());
    }

    #[test]
    fn several_series_read_as_the_mean_of_their_means() {
        let s = Summary::of(&[
            series(
                &[("__name__", "lat"), ("pod", "a")],
                &[(1.0, 1.0), (2.0, 3.0)],
            ),
            series(&[("__name__", "lat"), ("pod", "b")], &[(2.0, 10.0)]),
        ])
        .expect("data");
        assert_eq!(s.value, (2.0 + 10.0) / 2.0);
        assert_eq!(s.series.points, [(1.0, 1.0), (2.0, 6.5)]);
        assert_eq!(s.series.id, None);
        assert_eq!(s.averaged, ["lat{pod=\"a\"}", "lat{pod=\"b\"}"]);
    }

    #[test]
    fn no_finite_point_means_absent() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(
            Summary::of(&[series(&[], &[(1.0, f64::NAN), (2.0, f64::INFINITY)])]),
            None
        );
    }

    #[test]
    fn waits_beyond_the_clock_are_refused_not_panicked_on() {
        let now = Instant::now();
        assert!(after(now, &[Duration::from_secs(60), Duration::from_secs(1)]).is_ok());
        let error = after(now, &[Duration::from_secs(u64::MAX)]).expect_err("overflows");
        assert!(error.to_string().contains("too long"), "{error}");
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_709_251_199.9), "2024-02-29T23:59:59Z");
        assert_eq!(timestamp(1_735_689_600.0), "2025-01-01T00:00:00Z");
    }

    #[test]
    fn expected_targets_match_by_url_or_by_pool_and_labels() {
        let active = api::ActiveTarget {
            pool: "app".into(),
            url: "http://app:8080/metrics".into(),
            health: "up".into(),
            labels: [
                ("job".to_string(), "app".to_string()),
                ("zone".to_string(), "a".to_string()),
            ]
            .into(),
            last_error: String::new(),
        };
        let by_url = ExpectedTarget {
            url: Some("http://app:8080/metrics".into()),
            ..Default::default()
        };
        let by_labels = ExpectedTarget {
            pool: Some("app".into()),
            labels: Some([("zone".to_string(), "a".to_string())].into()),
            ..Default::default()
        };
        let other = ExpectedTarget {
            pool: Some("db".into()),
            ..Default::default()
        };
        assert!(by_url.matches(&active) && by_labels.matches(&active) && !other.matches(&active));
        assert_eq!(by_labels.to_string(), "{job=\"app\", zone=\"a\"}");
    }

    /// A stand-in for Prometheus that answers every request with one series at `value`: enough
    /// to drive the fast-fail loop, which the CLI cannot reach (it sends no SLO conditions).
    struct FakePrometheus {
        url: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl FakePrometheus {
        async fn start(value: f64) -> Self {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            let url = format!("http://{}", listener.local_addr().expect("address"));
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[[1,"{value}"]]}}]}}}}"#
            );
            let task = tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                }
            });
            Self { url, task }
        }
    }

    impl Drop for FakePrometheus {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn connector(url: &str, fast_fail: serde_json::Value) -> Prometheus {
        let settings = settings(json!({
            "base_url": url,
            "metrics": [{"name": "p99", "unit": "ms", "query": "p99", "step": "1s"}],
            "fast_fail": fast_fail,
        }));
        let cx = BuildContext {
            mount: "prometheus".into(),
            servo: "test".into(),
            base_dir: std::path::PathBuf::from("."),
        };
        Prometheus::build(settings, &cx).expect("builds")
    }

    fn request(duration: Duration, slo: serde_json::Value) -> MeasureRequest {
        MeasureRequest {
            metrics: Vec::new(),
            control: servo_core::types::Control {
                duration,
                userdata: Some(json!({ "slo": { "conditions": [slo] } })),
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn fast_fail_stops_a_measurement_that_breaks_an_slo() {
        let fake = FakePrometheus::start(500.0).await;
        let prometheus = connector(&fake.url, json!({"period": "50ms"}));
        let started = std::time::Instant::now();
        let result = prometheus
            .measure(
                &request(
                    Duration::from_secs(30),
                    json!({"metric": "p99", "threshold": 100}),
                ),
                &EventContext::default(),
            )
            .await;
        let error = result.expect_err("the SLO is broken");
        assert!(
            error.to_string().contains(
                "SLO violated: (p99 below 100) failed 1 of the last 1 checks (500 > 100)"
            ),
            "{error}"
        );
        assert!(
            error
                .hint()
                .is_some_and(|h| h.contains("fast_fail.disabled"))
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "stopped early: {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn fast_fail_waits_out_skip_and_can_be_disabled() {
        let fake = FakePrometheus::start(500.0).await;
        let broken = json!({"metric": "p99", "threshold": 100});
        for fast_fail in [
            json!({"period": "50ms", "skip": "1h"}),
            json!({"period": "50ms", "disabled": 1}),
        ] {
            let prometheus = connector(&fake.url, fast_fail.clone());
            let measurement = prometheus
                .measure(
                    &request(Duration::from_millis(300), broken.clone()),
                    &EventContext::default(),
                )
                .await
                .unwrap_or_else(|e| panic!("{fast_fail}: {e}"));
            assert_eq!(
                measurement.reading("p99").map(|r| r.value),
                Some(500.0),
                "{fast_fail}"
            );
        }
    }

    #[tokio::test]
    async fn a_cancelled_measurement_returns_at_once() {
        let fake = FakePrometheus::start(1.0).await;
        let prometheus = connector(&fake.url, json!({}));
        let cx = EventContext::default();
        cx.cancel.cancel();
        let result = prometheus
            .measure(
                &request(
                    Duration::from_secs(60),
                    json!({"metric": "p99", "threshold": 100}),
                ),
                &cx,
            )
            .await;
        assert!(matches!(result, Err(ConnectorError::Cancelled)));
    }

    #[test]
    fn the_example_is_valid() {
        assert!(Settings::example().validate().is_empty());
    }
}
