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
//!   and a violated SLO stops the measurement with an error (the conditions and their rules are
//!   `servo_core::slo`). Failed reads during
//!   fast fail are logged and count as missing values; the final query reports persistent failures.
//!   Under `servo run` the same reads, of every measured metric, go to the study as the readings
//!   so far, which stops a trial that breaks one of its SLOs badly (`optimizer.cut_short`).
//! - `check`: the server answers (`/api/v1/status/buildinfo`, reporting its version); each metric's
//!   query is accepted and returns data now (`/api/v1/query`; no data is a warning, since the
//!   application may not be loaded yet); and the active targets are up, including every target
//!   listed in `targets`.
//!
//! ServoX settings load unchanged. `streaming_interval` is accepted and ignored (ServoX's streaming
//! is disabled too). `timeout` is an extension: the bound of every request, also sent to Prometheus
//! as the query timeout.

mod api;
mod checks;
mod measure;
pub(crate) mod settings;

#[cfg(test)]
mod tests;

use self::api::{Api, ApiError};
use async_trait::async_trait;
use futures_util::future::join_all;
use measure::after;
use reqwest::StatusCode;
use servo_core::connector::{BuildContext, EventContext, Handlers};
use servo_core::slo::{self, Observer};
use servo_core::time::unix_now;
use servo_core::types::{Check, MeasureRequest, Measurement, Metric};
use servo_core::{BuildConnector, Connector, ConnectorError, Event};
use settings::{PrometheusMetric, Settings, parse_base_url};
use tokio::time::Instant;

servo_core::register!(Prometheus {
    name: "prometheus",
    description: "Measures metrics with PromQL queries over the measurement window",
});

/// The connector: its settings and one HTTP client for its server.
pub struct Prometheus {
    settings: Settings,
    api: Api,
    /// The key it is mounted under, to name settings and environment variables in hints.
    mount: String,
    /// The key of `base_url` in that section (another when a connector made of this one names it
    /// otherwise: opsani_dev's `prometheus_base_url`).
    base_url_key: &'static str,
}

impl BuildConnector for Prometheus {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        let base = parse_base_url(&settings.base_url).map_err(ConnectorError::invalid)?;
        let api = Api::new(base, settings.timeout);
        Ok(Self {
            settings,
            api,
            mount: cx.mount.clone(),
            base_url_key: "base_url",
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
    /// This connector inside another whose section calls `base_url` `key`, so hints name it.
    pub(crate) fn with_base_url_key(mut self, key: &'static str) -> Self {
        self.base_url_key = key;
        self
    }

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
        format!("SERVO_{key}_{}", self.base_url_key.to_ascii_uppercase())
    }

    /// Words a failed request for a person: what happened, and what to do.
    fn failure(&self, error: ApiError, subject: Subject<'_>) -> ConnectorError {
        let base = self.api.base();
        let mount = &self.mount;
        let base_url = format!("{mount}.{}", self.base_url_key);
        let not_prometheus = || format!("is `{base_url}` ({base}) the Prometheus server?");
        match (error, subject) {
            (ApiError::Cancelled, _) => ConnectorError::Cancelled,
            (ApiError::Unreachable { cause, .. }, _) => {
                let message = format!("cannot reach Prometheus at {base}: {cause}");
                let hint = format!(
                    "check that Prometheus is running and that `{base_url}` is its address, \
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
                    "`{base_url}` must be the root of the Prometheus server, with its path \
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
