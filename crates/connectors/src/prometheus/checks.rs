//! What `servo check` reports: the server, each metric's query, the scrape targets.

use super::api::{ApiError, QueryData};
use super::measure::labels;
use super::settings::PrometheusMetric;
use super::{Prometheus, Subject};
use reqwest::StatusCode;
use servo_core::ConnectorError;
use servo_core::types::{Check, Severity};
use tokio_util::sync::CancellationToken;

impl Prometheus {
    /// The number of targets Prometheus scrapes (`/api/v1/targets`), for a connector composing
    /// this one (opsani_dev's checks); errors worded as this connector words them.
    pub(crate) async fn active_targets(
        &self,
        cancel: &CancellationToken,
    ) -> Result<usize, ConnectorError> {
        self.api
            .targets(cancel)
            .await
            .map(|answer| answer.data.active.len())
            .map_err(|e| self.failure(e, Subject::Server))
    }

    /// The value of each series `query` returns now (`/api/v1/query`), with its labels.
    pub(crate) async fn instant(
        &self,
        query: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<(String, f64)>, ConnectorError> {
        let answer = self
            .api
            .query(query, cancel)
            .await
            .map_err(|e| self.failure(e, Subject::Server))?;
        Ok(match answer.data {
            QueryData::Vector(samples) => samples
                .iter()
                .filter_map(|s| s.value.map(|v| (labels(&s.metric), v.value)))
                .collect(),
            QueryData::Scalar(s) => vec![(String::new(), s.value)],
            QueryData::Matrix(_) | QueryData::String(_) => Vec::new(),
        })
    }

    /// Whether Prometheus answers, and its version.
    pub(super) async fn check_server(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Check, ConnectorError> {
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
    pub(super) async fn check_query(
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
    pub(super) async fn check_targets(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Check, ConnectorError> {
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
pub(super) fn failed_check(name: String, error: ConnectorError) -> Result<Check, ConnectorError> {
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
