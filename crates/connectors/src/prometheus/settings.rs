//! The `prometheus` connector's settings, their defaults and their validation.

use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use servo_core::connector::ConnectorSettings;
use servo_core::types::Metric;
use servo_core::units::Duration;
use servo_core::{KeyPath, Problem};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

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

pub(super) fn default_base_url() -> String {
    "http://prometheus:9090".into()
}

pub(super) fn default_timeout() -> Duration {
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

pub(super) fn default_step() -> Duration {
    Duration::from_secs(60)
}

impl PrometheusMetric {
    /// The query as sent: with `absent: zero`, ServoX's `or on() vector(0)` makes "no data" read 0.
    pub(super) fn promql(&self) -> String {
        match self.absent {
            // Parenthesised so the user's operators bind first; the newline ends a `#` comment.
            Absent::Zero if self.query.contains('#') => {
                format!("({}\n) or on() vector(0)", self.query)
            }
            Absent::Zero => format!("({}) or on() vector(0)", self.query),
            _ => self.query.clone(),
        }
    }

    pub(super) fn metric(&self) -> Metric {
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
    /// `1` turns fast fail off, and with it the readings so far that `servo run` judges to cut a
    /// trial short; `0` (the default) leaves it on.
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

pub(super) fn default_period() -> Duration {
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
    pub(super) fn span(&self) -> Duration {
        self.span.unwrap_or(self.period)
    }
}

/// ServoX spells `fast_fail.disabled` as the integer `0` or `1`; `false`/`true` are read too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switch(pub(super) bool);

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
    pub(super) fn matches(&self, target: &super::api::ActiveTarget) -> bool {
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
pub(crate) fn parse_base_url(text: &str) -> Result<Url, String> {
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
