//! Reading the metrics over a measurement window, and watching the SLOs to fail fast.

use super::api::{QueryData, RangeSeries, Sample};
use super::settings::{Absent, PrometheusMetric};
use super::{Prometheus, Subject};
use futures_util::future::join_all;
use servo_core::ConnectorError;
use servo_core::connector::EventContext;
use servo_core::slo::Observer;
use servo_core::time::{unix_now, utc};
use servo_core::types::{Reading, TimeSeries};
use servo_core::units::Duration;
use std::collections::BTreeMap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

impl Prometheus {
    /// Runs one metric's range query over `[start, end]` (unix seconds).
    pub(super) async fn series(
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
    pub(super) async fn read(
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
        let window = format!("from {} to {}", utc(start), utc(end));
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

    /// Waits until `until`, reading metrics every `fast_fail.period` once `fast_fail.skip` has
    /// passed: the SLO metrics when an observer is given (the optimizer's fast fail), and every
    /// measured metric when someone watches the readings so far (a study cutting trials short),
    /// unless `fast_fail.disabled`.
    pub(super) async fn watch(
        &self,
        began: Instant,
        until: Instant,
        mut observer: Option<Observer>,
        metrics: &[(usize, &PrometheusMetric)],
        cx: &EventContext,
    ) -> Result<(), ConnectorError> {
        let fast_fail = &self.settings.fast_fail;
        let report = cx.partial.is_watched() && !fast_fail.disabled.0;
        if observer.is_none() && !report {
            return cx.sleep_until(until).await;
        }
        let watched: Vec<(usize, &PrometheusMetric)> = match &observer {
            Some(observer) if !report => {
                let names = observer.metrics();
                metrics
                    .iter()
                    .copied()
                    .filter(|(_, m)| names.contains(m.name.as_str()))
                    .collect()
            }
            _ => metrics.to_vec(),
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
                    if report {
                        cx.partial.report(
                            watched
                                .iter()
                                .filter_map(|(_, m)| {
                                    values.get(&m.name).map(|v| Reading::new(m.metric(), *v))
                                })
                                .collect(),
                        );
                    }
                    let Some(observer) = observer.as_mut() else {
                        continue;
                    };
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

    pub(super) fn violation(&self, violation: &str) -> ConnectorError {
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
    pub(super) async fn current_values(
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
}

/// `from` plus the durations, refused when beyond the clock's range (centuries: a typo).
pub(super) fn after(from: Instant, durations: &[Duration]) -> Result<Instant, ConnectorError> {
    durations
        .iter()
        .try_fold(from, |at, d| at.checked_add(d.as_std()))
        .ok_or_else(|| {
            let spans: Vec<String> = durations.iter().map(ToString::to_string).collect();
            ConnectorError::invalid(format!("cannot wait {}: too long", spans.join(" + ")))
        })
}

/// A series' labels in PromQL notation: `up{instance="a:9100", job="node"}`.
pub(super) fn labels(metric: &BTreeMap<String, String>) -> String {
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
pub(super) struct Summary {
    pub(super) value: f64,
    pub(super) series: TimeSeries,
    /// The labels of the series averaged, when there were several.
    pub(super) averaged: Vec<String>,
}

impl Summary {
    /// `None` when no series has a finite point: the metric is absent.
    pub(super) fn of(series: &[RangeSeries]) -> Option<Summary> {
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

pub(super) fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}
