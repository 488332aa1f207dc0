//! `vegeta`: HTTP load generation with vegeta's semantics, natively (no `vegeta` binary).
//!
//! Requests are paced open-loop at `rate` (latency counts from each request's *scheduled* time, so a
//! stalled server cannot hide its backlog: no coordinated omission) and latencies go into HDR
//! histograms. Settings keep ServoX's names, so a ServoX `vegeta:` section loads unchanged. Metrics
//! carry both spellings of the latencies (`latency_p99` and ServoX's `latency_99th`, in ms);
//! `throughput` is in requests per second, or per minute (ServoX's unit, which its backend's SLOs
//! are written against) when the servo reports to a remote optimizer.
//! Handles `describe`, `metrics`, `measure` and `check`.

pub mod attack;
pub mod report;
pub mod targets;

use std::path::Path;
use std::time::Instant;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use servo_core::connector::{BuildContext, ConnectorSettings, EventContext, Handlers};
use servo_core::types::{
    Check, Description, MeasureRequest, Measurement, Metric, Reading, TimeSeries,
};
use servo_core::units::{Duration, Rate};
use servo_core::{BuildConnector, Connector, ConnectorError, Event, KeyPath, Problem};

use attack::{AttackOptions, attack};
use report::Report;
use servo_core::time::unix_now;
use targets::{Target, parse_http, parse_json};

/// Settings of the `vegeta` connector (ServoX's names and defaults).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this load profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Requests per time unit, such as `50/1s` or `1000/1m`; `0` sends as fast as `workers` allow.
    pub rate: Rate,
    /// How long to attack when the measurement does not say (an extension: ServoX takes it only from
    /// the measurement's control).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// The format of `target`/`targets`: `http` (vegeta's text format) or `json` (one object a line).
    #[serde(default)]
    pub format: TargetFormat,
    /// One target, such as `GET http://127.0.0.1:8080/`. Exclusive with `targets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Several targets: a file path (relative to the config file) or the targets themselves when the
    /// text spans several lines. Exclusive with `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
    /// Idle connections kept open per target host.
    #[serde(default = "default_connections")]
    pub connections: u64,
    /// Workers started up front; with `rate: 0`, the number of concurrent requests.
    #[serde(default = "default_workers")]
    pub workers: u64,
    /// The most workers used to sustain the rate (simulates a bounded number of clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_workers: Option<u64>,
    /// Response body bytes to read per response; `-1` reads everything.
    #[serde(default = "default_max_body")]
    pub max_body: i64,
    /// Offer HTTP/2 to https targets that support it.
    #[serde(default = "default_true")]
    pub http2: bool,
    /// Reuse connections between requests.
    #[serde(default = "default_true")]
    pub keepalive: bool,
    /// Accept invalid TLS certificates.
    #[serde(default)]
    pub insecure: bool,
    /// Longest a request may take, from when it is sent (connecting included) to the last byte of
    /// the response; it then counts as an error.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Length of each point of the time series reported with the summary.
    #[serde(default = "default_reporting_interval")]
    pub reporting_interval: Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetFormat {
    /// `METHOD URL` lines, then `Header: value` lines and an optional `@body-file` line.
    #[default]
    Http,
    /// One JSON object a line: `{"method": "GET", "url": "...", "header": {...}, "body": "<base64>"}`.
    Json,
}

fn default_connections() -> u64 {
    10_000
}

fn default_workers() -> u64 {
    10
}

fn default_max_body() -> i64 {
    -1
}

fn default_true() -> bool {
    true
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_reporting_interval() -> Duration {
    Duration::from_secs(15)
}

impl Settings {
    /// Parses the targets; the error says where (`targets` or `target`) and on which line.
    fn load_targets(&self, base_dir: &Path) -> Result<Vec<Target>, Problem> {
        let (key, text, origin, dir) = match (&self.target, &self.targets) {
            (Some(t), None) => ("target", t.clone(), None, base_dir.to_path_buf()),
            (None, Some(t)) if t.contains('\n') => {
                ("targets", t.clone(), None, base_dir.to_path_buf())
            }
            (None, Some(path)) => {
                let file = base_dir.join(path);
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    Problem::new(KeyPath::root().key("targets"), format!("cannot read the targets file {}: {e}", file.display()))
                        .with_help("`targets` is a file path relative to the config file, or the targets themselves on several lines")
                })?;
                let dir = file
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| base_dir.to_path_buf());
                ("targets", text, Some(file), dir)
            }
            (None, None) => {
                return Err(Problem::new(
                    KeyPath::root(),
                    "give a `target` (one request) or `targets` (a file or several lines)",
                )
                .with_help("for example `target: GET http://127.0.0.1:8080/`"));
            }
            (Some(_), Some(_)) => {
                return Err(Problem::new(
                    KeyPath::root().key("targets"),
                    "`target` and `targets` cannot both be set",
                )
                .with_help("keep one of them"));
            }
        };
        let parsed = match self.format {
            TargetFormat::Http => parse_http(&text, &dir),
            TargetFormat::Json => parse_json(&text),
        };
        parsed.map_err(|e| {
            let place = origin.map(|f| format!("{}: ", f.display())).unwrap_or_default();
            Problem::new(KeyPath::root().key(key), format!("{place}{e}"))
                .with_help(match self.format {
                    TargetFormat::Http => "each target is `METHOD URL`, then optional `Header: value` lines and an `@body-file` line",
                    TargetFormat::Json => "each line is {\"method\": \"GET\", \"url\": \"http://...\"}",
                })
        })
    }

    fn options(&self, duration: Duration) -> AttackOptions {
        AttackOptions {
            rate: (!self.rate.is_unlimited())
                .then(|| (self.rate.requests(), self.rate.per().as_std())),
            duration: duration.as_std(),
            workers: self.workers.max(1),
            max_workers: self
                .max_workers
                .unwrap_or(u64::MAX)
                .max(self.workers.max(1)),
            connections: usize::try_from(self.connections).unwrap_or(usize::MAX),
            max_body: self.max_body,
            http2: self.http2,
            keepalive: self.keepalive,
            insecure: self.insecure,
            timeout: self.timeout.as_std(),
            reporting_interval: self.reporting_interval.as_std(),
        }
    }
}

impl ConnectorSettings for Settings {
    fn example() -> Self {
        Settings {
            description: Some("update the rate and target to match your load profile".into()),
            rate: "50/1s".parse().unwrap_or(Rate::UNLIMITED),
            duration: Some(Duration::from_secs(60)),
            format: TargetFormat::Http,
            target: Some("GET http://127.0.0.1:8080/".into()),
            targets: None,
            connections: default_connections(),
            workers: default_workers(),
            max_workers: None,
            max_body: default_max_body(),
            http2: true,
            keepalive: true,
            insecure: false,
            timeout: default_timeout(),
            reporting_interval: default_reporting_interval(),
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        // Only the exclusivity rules here: the targets are parsed in `build`, which knows the
        // config file's directory for relative paths.
        if self.target.is_none() && self.targets.is_none() {
            problems.push(
                Problem::new(
                    KeyPath::root(),
                    "give a `target` (one request) or `targets` (a file or several lines)",
                )
                .with_help("for example `target: GET http://127.0.0.1:8080/`"),
            );
        }
        if self.target.is_some() && self.targets.is_some() {
            problems.push(Problem::new(
                KeyPath::root().key("targets"),
                "`target` and `targets` cannot both be set",
            ));
        }
        if self.workers == 0 || self.workers > 100_000 {
            problems.push(Problem::new(
                KeyPath::root().key("workers"),
                format!(
                    "`workers` must be between 1 and 100000, found {}",
                    self.workers
                ),
            ));
        }
        if let Some(max) = self.max_workers
            && max < self.workers
        {
            problems.push(Problem::new(
                KeyPath::root().key("max_workers"),
                format!(
                    "`max_workers` ({max}) is below `workers` ({})",
                    self.workers
                ),
            ));
        }
        problems
    }
}

/// The metrics every measurement reports: servo's names and ServoX's (`latency_50th`,
/// `latency_total`, `latency_min`); `throughput` in requests per minute (`rpm`, ServoX's unit) for a
/// remote optimizer, else per second.
fn metrics(remote_optimizer: bool) -> Vec<Metric> {
    [
        ("throughput", if remote_optimizer { "rpm" } else { "rps" }),
        ("success_rate", "%"),
        ("error_rate", "%"),
        ("latency_p50", "ms"),
        ("latency_p90", "ms"),
        ("latency_p95", "ms"),
        ("latency_p99", "ms"),
        ("latency_max", "ms"),
        ("latency_mean", "ms"),
        ("latency_min", "ms"),
        ("latency_total", "ms"),
        ("latency_50th", "ms"),
        ("latency_90th", "ms"),
        ("latency_95th", "ms"),
        ("latency_99th", "ms"),
        ("requests", ""),
    ]
    .into_iter()
    .map(|(name, unit)| Metric::new(name, unit))
    .collect()
}

servo_core::register!(Vegeta {
    name: "vegeta",
    description: "HTTP load generation with vegeta's semantics, built in: throughput, error rate, latency percentiles",
});

/// The connector: its settings and its parsed targets.
pub struct Vegeta {
    settings: Settings,
    targets: Vec<Target>,
    mount: String,
    remote_optimizer: bool,
}

impl BuildConnector for Vegeta {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        let targets = settings
            .load_targets(&cx.base_dir)
            .map_err(|p| ConnectorError::Settings(vec![p]))?;
        Ok(Vegeta {
            settings,
            targets,
            mount: cx.mount.clone(),
            remote_optimizer: cx.remote_optimizer,
        })
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Turns a report into readings: one summary value per metric, plus per-interval series.
fn readings(report: &Report, started_unix: f64, remote_optimizer: bool) -> Vec<Reading> {
    let at = |offset: std::time::Duration| started_unix + offset.as_secs_f64();
    let series = |f: &dyn Fn(&report::IntervalReport) -> f64| TimeSeries {
        id: None,
        points: report
            .intervals
            .iter()
            .map(|i| (at(i.start_offset + i.duration), f(i)))
            .collect(),
    };
    let error_rate = (1.0 - report.success_rate) * 100.0;
    let l = &report.latency;
    let mut out = Vec::new();
    let per = if remote_optimizer { 60.0 } else { 1.0 };
    for metric in metrics(remote_optimizer) {
        let reading = match metric.name.as_str() {
            "throughput" => Reading::new(metric, report.throughput * per)
                .with_series(series(&|i| i.throughput * per)),
            "success_rate" => Reading::new(metric, report.success_rate * 100.0)
                .with_series(series(&|i| i.success_rate * 100.0)),
            "error_rate" => Reading::new(metric, error_rate)
                .with_series(series(&|i| (1.0 - i.success_rate) * 100.0)),
            "latency_p50" | "latency_50th" => {
                Reading::new(metric, ms(l.p50)).with_series(series(&|i| ms(i.p50)))
            }
            "latency_p90" | "latency_90th" => Reading::new(metric, ms(l.p90)),
            "latency_p95" | "latency_95th" => {
                Reading::new(metric, ms(l.p95)).with_series(series(&|i| ms(i.p95)))
            }
            "latency_p99" | "latency_99th" => {
                Reading::new(metric, ms(l.p99)).with_series(series(&|i| ms(i.p99)))
            }
            "latency_max" => Reading::new(metric, ms(l.max)),
            "latency_mean" => Reading::new(metric, ms(l.mean)),
            "latency_min" => Reading::new(metric, ms(l.min)),
            // ServoX's `latencies.total`: the sum of every request's latency.
            "latency_total" => Reading::new(metric, ms(l.mean) * report.requests as f64),
            "requests" => Reading::new(metric, report.requests as f64),
            _ => continue,
        };
        out.push(reading);
    }
    out
}

/// The readings of a measurement in progress, over the requests completed so far: what a study
/// watches to stop a trial that already breaks an SLO badly.
fn partial_readings(progress: &attack::Progress, remote_optimizer: bool) -> Vec<Reading> {
    let l = &progress.latency;
    let success_rate = if progress.requests == 0 {
        1.0
    } else {
        progress.successes as f64 / progress.requests as f64
    };
    let seconds = progress.elapsed.as_secs_f64();
    let throughput = if seconds > 0.0 {
        progress.successes as f64 / seconds
    } else {
        0.0
    };
    let per = if remote_optimizer { 60.0 } else { 1.0 };
    metrics(remote_optimizer)
        .into_iter()
        .filter_map(|metric| {
            let value = match metric.name.as_str() {
                "throughput" => throughput * per,
                "success_rate" => success_rate * 100.0,
                "error_rate" => (1.0 - success_rate) * 100.0,
                "latency_p50" | "latency_50th" => ms(l.p50),
                "latency_p90" | "latency_90th" => ms(l.p90),
                "latency_p95" | "latency_95th" => ms(l.p95),
                "latency_p99" | "latency_99th" => ms(l.p99),
                "latency_max" => ms(l.max),
                "latency_mean" => ms(l.mean),
                _ => return None,
            };
            Some(Reading::new(metric, value))
        })
        .collect()
}

/// What to do about a target that never answered, from the error the requests got.
fn unanswered_hint(error: &str) -> &'static str {
    let error = error.to_ascii_lowercase();
    if error.contains("refused") {
        "the connection was refused: nothing listens on the target's host and port; check that the target is up and the URL's port is right"
    } else if error.contains("reset") || error.contains("closed") {
        "the target closed every connection without answering: check that it speaks HTTP (or HTTPS) on that port"
    } else if error.contains("timed out") || error.contains("timeout") || error.contains("deadline")
    {
        "no answer within `timeout`: the target is unreachable from servo (a firewall, a wrong host) or too overloaded to answer; raise `timeout` or lower `rate`"
    } else {
        "check that the target is up and reachable from servo"
    }
}

impl Vegeta {
    async fn run(
        &self,
        duration: Duration,
        cx: &EventContext,
        label: &str,
    ) -> Result<Report, ConnectorError> {
        let options = self.settings.options(duration);
        let mount = self.mount.clone();
        let label = label.to_string();
        let mut last_log = Instant::now();
        // Only the measurement window's figures count: the warmup's would judge a cold start.
        let partial = (label == "measure" && cx.partial.is_watched()).then(|| cx.partial.clone());
        let remote_optimizer = self.remote_optimizer;
        let report = attack(&self.targets, &options, cx.cancel.clone(), move |p| {
            if let Some(partial) = &partial
                && p.requests > 0
            {
                partial.report(partial_readings(&p, remote_optimizer));
            }
            if last_log.elapsed() >= std::time::Duration::from_secs(5) {
                last_log = Instant::now();
                tracing::info!(
                    mount = %mount,
                    phase = %label,
                    elapsed = ?p.elapsed,
                    requests = p.requests,
                    successes = p.successes,
                    "vegeta attacking"
                );
            }
        })
        .await
        .map_err(|e| ConnectorError::failed(format!("vegeta: {e}")))?;
        if report.cancelled || cx.cancel.is_cancelled() {
            return Err(ConnectorError::Cancelled);
        }
        Ok(report)
    }
}

#[async_trait]
impl Connector for Vegeta {
    fn handlers(&self) -> Handlers {
        Handlers::on(&[
            Event::Describe,
            Event::Metrics,
            Event::Measure,
            Event::Check,
        ])
    }

    async fn describe(&self, _cx: &EventContext) -> Result<Description, ConnectorError> {
        Ok(Description {
            components: Vec::new(),
            metrics: metrics(self.remote_optimizer),
        })
    }

    async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        Ok(metrics(self.remote_optimizer))
    }

    async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        let control = &request.control;
        let duration = control
            .requested_duration()
            .or(self.settings.duration)
            .ok_or_else(|| {
                ConnectorError::invalid(
                    "vegeta needs a duration: none was given by the measurement or the settings",
                )
                .with_hint(
                    "pass --duration to `servo measure`, or set `duration` in the vegeta section",
                )
            })?;
        if !control.warmup.is_zero() {
            self.run(control.warmup, cx, "warmup").await?;
        }
        let started = unix_now();
        let report = self.run(duration, cx, "measure").await?;
        if !control.delay.is_zero() {
            cx.sleep(control.delay.as_std()).await?;
        }
        let mut measurement = Measurement {
            readings: readings(&report, started, self.remote_optimizer),
            ..Measurement::default()
        };
        measurement.annotations.insert(
            "load_profile".into(),
            format!(
                "{} target(s) at {} for {duration}",
                self.targets.len(),
                self.settings.rate
            ),
        );
        if let Some((message, count)) = report.errors.first() {
            measurement
                .annotations
                .insert("top_error".into(), format!("{message} (×{count})"));
            // A target that answers, even 500 to everything, is up: that is a measurement (an
            // error rate of 100 % the optimizer scores as an SLO miss). Only a target that never
            // answered leaves nothing to measure.
            let unanswered = report.status_codes.get(&0).copied().unwrap_or(0);
            if report.requests > 0 && unanswered == report.requests {
                return Err(ConnectorError::failed(format!(
                    "every request of the attack failed: {message} (×{count})"
                ))
                .with_hint(unanswered_hint(message)));
            }
        }
        if report.status_codes.keys().any(|&code| code != 0) {
            measurement.annotations.insert(
                "status_codes".into(),
                report
                    .status_codes
                    .iter()
                    .map(|(code, n)| match code {
                        0 => format!("no answer ×{n}"),
                        code => format!("{code} ×{n}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        Ok(measurement)
    }

    async fn check(&self, cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        // One request to every distinct target, so an unreachable target is found before a study
        // spends its first trial on it.
        let mut seen: Vec<String> = Vec::new();
        let mut checks = Vec::new();
        for target in &self.targets {
            let key = format!("{} {}", target.method, target.url);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key.clone());
            let options = AttackOptions {
                rate: Some((1, std::time::Duration::from_secs(1))),
                duration: std::time::Duration::from_millis(1),
                workers: 1,
                max_workers: 1,
                timeout: self
                    .settings
                    .timeout
                    .as_std()
                    .min(std::time::Duration::from_secs(10)),
                ..self.settings.options(Duration::ZERO)
            };
            let report = attack(
                std::slice::from_ref(target),
                &options,
                cx.cancel.clone(),
                |_| {},
            )
            .await
            .map_err(|e| ConnectorError::failed(format!("vegeta: {e}")))?;
            let check = match (
                report.successes,
                report.errors.first(),
                report.status_codes.keys().next(),
            ) {
                (s, _, _) if s > 0 => Check::pass(format!("target {key}"), "answers"),
                (_, Some((message, _)), _) => Check::fail(format!("target {key}"), message.clone())
                    .with_hint("start the application, or fix the target's URL"),
                (_, None, Some(code)) => {
                    Check::fail(format!("target {key}"), format!("answered HTTP {code}"))
                        .with_hint("a 4xx/5xx answer counts as an error in every measurement")
                }
                _ => Check::fail(format!("target {key}"), "no answer"),
            };
            checks.push(check);
        }
        Ok(checks)
    }
}
