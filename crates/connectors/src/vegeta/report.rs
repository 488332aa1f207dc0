//! Attack results: the per-request record ([`Hit`]), the aggregation of hits
//! into metrics, and the serializable [`Report`].
//!
//! Definitions follow vegeta's `Metrics` so that figures stay comparable with
//! ServoX (which ran the vegeta binary): a request succeeds when its status is
//! in `200..400`, `rate` counts requests sent per second and `throughput`
//! counts successful responses per second including the wait for the last
//! responses.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use hdrhistogram::Histogram;
use http::StatusCode;
use serde::{Serialize, Serializer};

/// Significant decimal digits kept by the latency histograms: 0.1% relative
/// error, vegeta's and wrk's precision.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Distinct transport error messages itemized in a report. Messages usually
/// name a host, so a target list spread over many hosts could otherwise grow
/// the error table without bound; later kinds are counted under one entry.
const MAX_ERROR_KINDS: usize = 100;

/// The summary of one attack.
///
/// Durations serialize as seconds (floating point), rates as per-second
/// figures, so the JSON form needs no unit conventions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Requests that completed (successfully or not) and were measured.
    pub requests: u64,
    /// Requests answered with a status in `200..400`.
    pub successes: u64,
    /// Time between the first and the last request sent (vegeta's
    /// `duration`): about the configured duration for a complete attack.
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// Time between the last request sent and the last response received
    /// (vegeta's `wait`); `duration + wait` is the attack's wall time.
    #[serde(serialize_with = "seconds")]
    pub wait: Duration,
    /// Successful responses per second over `duration + wait`.
    pub throughput: f64,
    /// Requests sent per second over `duration` (0 when fewer than two
    /// requests were sent, as a rate is then undefined).
    pub rate: f64,
    /// `successes / requests`, in `0..=1` (0 when nothing was sent).
    pub success_rate: f64,
    /// Latencies, measured from the moment each request was *scheduled*.
    pub latency: Latencies,
    /// Response body bytes received (at most `max_body` per response).
    pub bytes_in: u64,
    /// Request body bytes sent.
    pub bytes_out: u64,
    /// Responses per HTTP status; `0` counts requests that got no response
    /// (connection errors, timeouts).
    pub status_codes: BTreeMap<u16, u64>,
    /// Error messages with their counts, most frequent first. Responses with a
    /// failing status appear as their status line (`"500 Internal Server
    /// Error"`), requests without response as the transport error.
    #[serde(serialize_with = "error_list")]
    pub errors: Vec<(String, u64)>,
    /// Requests that were due but never sent because all `max_workers`
    /// workers were busy until the attack ended. Non-zero means the target
    /// could not keep up and the attack's worker limit capped the load.
    pub unsent: u64,
    /// Per-interval figures, one entry per `reporting_interval` of the
    /// schedule (requests are assigned to the interval they were scheduled in).
    pub intervals: Vec<IntervalReport>,
    /// The attack was cancelled before its duration elapsed; the figures
    /// cover the requests that completed until then.
    pub cancelled: bool,
}

/// Latency distribution. Percentiles come from an HDR histogram with
/// microsecond resolution and 3 significant digits; mean, min and max are
/// exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latencies {
    #[serde(serialize_with = "seconds")]
    pub mean: Duration,
    #[serde(serialize_with = "seconds")]
    pub p50: Duration,
    #[serde(serialize_with = "seconds")]
    pub p90: Duration,
    #[serde(serialize_with = "seconds")]
    pub p95: Duration,
    #[serde(serialize_with = "seconds")]
    pub p99: Duration,
    #[serde(serialize_with = "seconds")]
    pub max: Duration,
    #[serde(serialize_with = "seconds")]
    pub min: Duration,
}

/// Figures for the requests scheduled during one reporting interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalReport {
    /// Start of the interval, from the start of the attack.
    #[serde(serialize_with = "seconds")]
    pub start_offset: Duration,
    /// Length of the interval: `reporting_interval`, except for a last
    /// interval cut short by the end of the attack.
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    pub requests: u64,
    pub successes: u64,
    /// Successful responses per second of the interval.
    pub throughput: f64,
    pub success_rate: f64,
    #[serde(serialize_with = "seconds")]
    pub p50: Duration,
    #[serde(serialize_with = "seconds")]
    pub p95: Duration,
    #[serde(serialize_with = "seconds")]
    pub p99: Duration,
}

/// The outcome of one request, as the attack hands it to [`Metrics`].
/// All instants are offsets from the start of the attack.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Hit {
    /// When the request was due. For attacks without a rate, when it was sent.
    pub scheduled: Duration,
    /// When sending actually began (later than `scheduled` when the attack
    /// had to wait for a worker or the machine was slow to wake up).
    pub sent: Duration,
    /// When the response was fully read, or the request failed.
    pub completed: Duration,
    /// HTTP status, 0 when no response was received.
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Transport error (set exactly when `status` is 0).
    pub error: Option<String>,
}

impl Hit {
    /// vegeta's success rule: any 2xx or 3xx response (redirects are not
    /// followed, so a 3xx is the final answer).
    pub fn is_success(&self) -> bool {
        (200..400).contains(&self.status)
    }

    /// Latency from the schedule: includes any delay before sending, so that
    /// a stalled target shows in the figures instead of slowing the attack
    /// down (no coordinated omission).
    pub fn latency(&self) -> Duration {
        self.completed.saturating_sub(self.scheduled)
    }
}

/// Aggregates hits as they complete, in constant memory per distinct status
/// and error, plus one histogram per reporting interval that may still
/// receive hits (see [`Metrics::close_intervals_before`]).
pub(super) struct Metrics {
    requests: u64,
    successes: u64,
    bytes_in: u64,
    bytes_out: u64,
    latency: Histogram<u64>,
    latency_sum_ns: u128,
    latency_min: Duration,
    latency_max: Duration,
    earliest_sent: Option<Duration>,
    latest_sent: Duration,
    latest_completed: Duration,
    status_codes: BTreeMap<u16, u64>,
    errors: HashMap<String, u64>,
    unlisted_errors: u64,
    intervals: Intervals,
}

impl Metrics {
    /// `expected_max` is the largest latency expected in normal operation
    /// (the request timeout); histograms are sized for it and grow beyond it
    /// if a backlog pushes latencies higher.
    pub fn new(reporting_interval: Duration, expected_max: Duration) -> Self {
        let histogram_high = micros(expected_max).max(2);
        Self {
            requests: 0,
            successes: 0,
            bytes_in: 0,
            bytes_out: 0,
            latency: new_histogram(histogram_high),
            latency_sum_ns: 0,
            latency_min: Duration::MAX,
            latency_max: Duration::ZERO,
            earliest_sent: None,
            latest_sent: Duration::ZERO,
            latest_completed: Duration::ZERO,
            status_codes: BTreeMap::new(),
            errors: HashMap::new(),
            unlisted_errors: 0,
            intervals: Intervals::new(reporting_interval, histogram_high),
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn successes(&self) -> u64 {
        self.successes
    }

    pub fn record(&mut self, hit: Hit) {
        let latency = hit.latency();
        let success = hit.is_success();
        self.requests += 1;
        self.successes += u64::from(success);
        self.bytes_in += hit.bytes_in;
        self.bytes_out += hit.bytes_out;
        self.latency.saturating_record(micros(latency));
        self.latency_sum_ns += latency.as_nanos();
        self.latency_min = self.latency_min.min(latency);
        self.latency_max = self.latency_max.max(latency);
        self.earliest_sent = Some(self.earliest_sent.map_or(hit.sent, |e| e.min(hit.sent)));
        self.latest_sent = self.latest_sent.max(hit.sent);
        self.latest_completed = self.latest_completed.max(hit.completed);
        *self.status_codes.entry(hit.status).or_default() += 1;
        if let Some(error) = hit.error {
            if let Some(count) = self.errors.get_mut(&error) {
                *count += 1;
            } else if self.errors.len() < MAX_ERROR_KINDS {
                self.errors.insert(error, 1);
            } else {
                self.unlisted_errors += 1;
            }
        }
        self.intervals.record(hit.scheduled, latency, success);
    }

    /// The latency distribution of the requests completed so far.
    pub fn latencies(&self) -> Latencies {
        if self.requests == 0 {
            return Latencies::default();
        }
        let percentile = |q: f64| percentile(&self.latency, q, self.latency_max);
        Latencies {
            mean: nanos(self.latency_sum_ns / u128::from(self.requests)),
            p50: percentile(0.50),
            p90: percentile(0.90),
            p95: percentile(0.95),
            p99: percentile(0.99),
            max: self.latency_max,
            min: self.latency_min,
        }
    }

    /// Summarizes (and frees the histograms of) every interval that ends at
    /// or before `watermark`. The caller guarantees that no hit scheduled
    /// before `watermark` is still to come.
    pub fn close_intervals_before(&mut self, watermark: Duration) {
        self.intervals.close_before(watermark);
    }

    /// Builds the report. `span` is how long the attack issued requests
    /// (its duration, or less if cancelled): it bounds the last interval.
    pub fn finish(mut self, span: Duration, unsent: u64, cancelled: bool) -> Report {
        let earliest = self.earliest_sent.unwrap_or_default();
        let duration = self.latest_sent.saturating_sub(earliest);
        let wait = self.latest_completed.saturating_sub(self.latest_sent);
        let latency = self.latencies();

        let mut errors: Vec<(String, u64)> = self
            .status_codes
            .iter()
            .filter(|&(&code, _)| code != 0 && !(200..400).contains(&code))
            .map(|(&code, &count)| (status_line(code), count))
            .chain(self.errors.drain())
            .collect();
        if self.unlisted_errors > 0 {
            errors.push((
                format!(
                    "other errors (only the first {MAX_ERROR_KINDS} distinct messages are listed)"
                ),
                self.unlisted_errors,
            ));
        }
        errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        Report {
            requests: self.requests,
            successes: self.successes,
            duration,
            wait,
            throughput: per_second(self.successes, duration + wait),
            rate: per_second(self.requests, duration),
            success_rate: ratio(self.successes, self.requests),
            latency,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            status_codes: self.status_codes,
            errors,
            unsent,
            intervals: self.intervals.finish(span),
            cancelled,
        }
    }
}

/// Per-interval accumulators. An interval stays open (with its histogram)
/// until the attack knows that no more hits scheduled in it can arrive, then
/// shrinks to a handful of numbers: memory stays bounded by the number of
/// intervals a slow response can straddle, whatever the attack's duration.
struct Intervals {
    length: Duration,
    histogram_high: u64,
    /// Index of `open[0]`; every interval before it is in `closed`.
    first_open: u64,
    open: VecDeque<OpenInterval>,
    closed: Vec<ClosedInterval>,
}

struct OpenInterval {
    successes: u64,
    latency: Histogram<u64>,
    latency_max: Duration,
}

struct ClosedInterval {
    requests: u64,
    successes: u64,
    p50: Duration,
    p95: Duration,
    p99: Duration,
}

impl Intervals {
    fn new(length: Duration, histogram_high: u64) -> Self {
        Self {
            length,
            histogram_high,
            first_open: 0,
            open: VecDeque::new(),
            closed: Vec::new(),
        }
    }

    fn index_of(&self, offset: Duration) -> u64 {
        let index = offset.as_nanos() / self.length.as_nanos().max(1);
        u64::try_from(index).unwrap_or(u64::MAX)
    }

    fn record(&mut self, scheduled: Duration, latency: Duration, success: bool) {
        // A hit for an already closed interval would mean the caller's
        // watermark was wrong; count it in the first open interval rather
        // than lose it.
        let index = self.index_of(scheduled).max(self.first_open);
        let position = usize::try_from(index - self.first_open).unwrap_or(usize::MAX);
        while self.open.len() <= position {
            self.open.push_back(OpenInterval {
                successes: 0,
                latency: new_histogram(self.histogram_high),
                latency_max: Duration::ZERO,
            });
        }
        let interval = &mut self.open[position];
        interval.successes += u64::from(success);
        interval.latency.saturating_record(micros(latency));
        interval.latency_max = interval.latency_max.max(latency);
    }

    fn close_before(&mut self, watermark: Duration) {
        // Intervals entirely before the watermark: those with index + 1 <= watermark / length.
        // Only intervals that exist are closed: inventing empty ones up to the
        // watermark could run past the end of the attack.
        let closable = self.index_of(watermark);
        while self.first_open < closable {
            let Some(interval) = self.open.pop_front() else {
                break;
            };
            self.closed.push(interval.close());
            self.first_open += 1;
        }
    }

    fn finish(mut self, span: Duration) -> Vec<IntervalReport> {
        self.closed
            .extend(self.open.drain(..).map(OpenInterval::close));
        // Report every interval of the span, including trailing ones in which
        // nothing was scheduled, so that the series has no holes.
        let span_intervals =
            usize::try_from(span.as_nanos().div_ceil(self.length.as_nanos().max(1)))
                .unwrap_or(usize::MAX);
        while self.closed.len() < span_intervals {
            self.closed.push(ClosedInterval::empty());
        }
        let length = self.length;
        self.closed
            .into_iter()
            .zip(0u32..)
            .map(|(interval, index)| {
                let start_offset = length.saturating_mul(index);
                let duration = if start_offset < span {
                    length.min(span - start_offset)
                } else {
                    length
                };
                IntervalReport {
                    start_offset,
                    duration,
                    requests: interval.requests,
                    successes: interval.successes,
                    throughput: per_second(interval.successes, duration),
                    success_rate: ratio(interval.successes, interval.requests),
                    p50: interval.p50,
                    p95: interval.p95,
                    p99: interval.p99,
                }
            })
            .collect()
    }
}

impl OpenInterval {
    fn close(self) -> ClosedInterval {
        let percentile = |q: f64| percentile(&self.latency, q, self.latency_max);
        ClosedInterval {
            requests: self.latency.len(),
            successes: self.successes,
            p50: percentile(0.50),
            p95: percentile(0.95),
            p99: percentile(0.99),
        }
    }
}

impl ClosedInterval {
    fn empty() -> Self {
        Self {
            requests: 0,
            successes: 0,
            p50: Duration::ZERO,
            p95: Duration::ZERO,
            p99: Duration::ZERO,
        }
    }
}

fn new_histogram(high: u64) -> Histogram<u64> {
    let mut histogram = Histogram::new_with_bounds(1, high.max(2), SIGNIFICANT_DIGITS)
        .expect("bounds are valid: low is 1, high is at least 2, 3 significant digits");
    // Latencies are measured from the schedule, so a backlog can push them
    // past the timeout the histogram was sized for.
    histogram.auto(true);
    histogram
}

/// The latency at quantile `q`, capped at the exact maximum: the histogram
/// reports the top of a bucket, which can exceed every recorded value.
fn percentile(histogram: &Histogram<u64>, q: f64, max: Duration) -> Duration {
    if histogram.is_empty() {
        return Duration::ZERO;
    }
    Duration::from_micros(histogram.value_at_quantile(q)).min(max)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder of a division by 1e9 always fits in u32.
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, subsec)
}

fn per_second(count: u64, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        count as f64 / over.as_secs_f64()
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `"503 Service Unavailable"`, as vegeta reports failing statuses.
fn status_line(code: u16) -> String {
    match StatusCode::from_u16(code)
        .ok()
        .and_then(|status| status.canonical_reason())
    {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    }
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

fn error_list<S: Serializer>(errors: &[(String, u64)], serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct ErrorCount<'a> {
        message: &'a str,
        count: u64,
    }
    serializer.collect_seq(errors.iter().map(|(message, count)| ErrorCount {
        message,
        count: *count,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Percentiles are the top of their histogram bucket: within 0.1% above
    /// the recorded value with 3 significant digits.
    fn assert_percentile(actual: Duration, recorded: Duration) {
        assert!(
            actual >= recorded && actual.as_secs_f64() <= recorded.as_secs_f64() * 1.001,
            "percentile {actual:?} is not within 0.1% above {recorded:?}"
        );
    }

    fn hit(scheduled: u64, latency: u64, status: u16) -> Hit {
        Hit {
            scheduled: ms(scheduled),
            sent: ms(scheduled),
            completed: ms(scheduled + latency),
            status,
            bytes_in: 10,
            bytes_out: 3,
            error: (status == 0).then(|| "connection refused".to_owned()),
        }
    }

    #[test]
    fn aggregates_like_vegeta() {
        let mut metrics = Metrics::new(ms(1000), Duration::from_secs(30));
        // 4 requests 500 ms apart, the last answered after 1 s.
        metrics.record(hit(0, 10, 200));
        metrics.record(hit(500, 20, 302));
        metrics.record(hit(1000, 30, 500));
        metrics.record(hit(1500, 1000, 0));
        let report = metrics.finish(ms(2000), 0, false);

        assert_eq!(report.requests, 4);
        assert_eq!(report.successes, 2);
        assert_eq!(report.duration, ms(1500));
        assert_eq!(report.wait, ms(1000));
        assert!((report.rate - 4.0 / 1.5).abs() < 1e-9, "{}", report.rate);
        assert!(
            (report.throughput - 2.0 / 2.5).abs() < 1e-9,
            "{}",
            report.throughput
        );
        assert!((report.success_rate - 0.5).abs() < 1e-12);
        assert_eq!(report.latency.min, ms(10));
        assert_eq!(report.latency.max, ms(1000));
        assert_eq!(report.latency.mean, ms(265));
        assert_percentile(report.latency.p50, ms(20));
        assert_eq!(report.latency.p99, ms(1000));
        assert_eq!(report.bytes_in, 40);
        assert_eq!(report.bytes_out, 12);
        assert_eq!(
            report.status_codes,
            BTreeMap::from([(0, 1), (200, 1), (302, 1), (500, 1)])
        );
        assert_eq!(
            report.errors,
            [
                ("500 Internal Server Error".to_owned(), 1),
                ("connection refused".to_owned(), 1)
            ]
        );
        assert_eq!(report.intervals.len(), 2);
        assert_eq!(report.intervals[0].requests, 2);
        assert_eq!(report.intervals[0].successes, 2);
        assert_eq!(report.intervals[1].requests, 2);
        assert!((report.intervals[1].success_rate - 0.0).abs() < 1e-12);
        assert_eq!(report.intervals[1].p99, ms(1000));
    }

    #[test]
    fn closed_intervals_keep_their_figures_and_gaps_are_reported() {
        let mut metrics = Metrics::new(ms(100), Duration::from_secs(1));
        metrics.record(hit(10, 5, 200));
        metrics.record(hit(20, 7, 200));
        metrics.close_intervals_before(ms(100));
        metrics.record(hit(350, 9, 200));
        metrics.close_intervals_before(ms(1000));
        let report = metrics.finish(ms(450), 0, false);

        let requests: Vec<u64> = report.intervals.iter().map(|i| i.requests).collect();
        assert_eq!(requests, [2, 0, 0, 1, 0]);
        assert_percentile(report.intervals[0].p50, ms(5));
        assert_percentile(report.intervals[0].p99, ms(7));
        assert!((report.intervals[0].throughput - 20.0).abs() < 1e-9);
        assert_eq!(report.intervals[4].start_offset, ms(400));
        assert_eq!(report.intervals[4].duration, ms(50));
    }

    #[test]
    fn late_hit_for_closed_interval_is_not_lost() {
        let mut metrics = Metrics::new(ms(100), Duration::from_secs(1));
        metrics.record(hit(150, 5, 200));
        metrics.close_intervals_before(ms(200));
        metrics.record(hit(50, 5, 200));
        let report = metrics.finish(ms(300), 0, false);
        assert_eq!(report.requests, 2);
        let requests: Vec<u64> = report.intervals.iter().map(|i| i.requests).collect();
        assert_eq!(requests, [0, 1, 1]);
    }

    #[test]
    fn distinct_error_messages_are_capped() {
        let mut metrics = Metrics::new(ms(1000), Duration::from_secs(1));
        for n in 0..(MAX_ERROR_KINDS + 5) {
            let mut failed = hit(0, 1, 0);
            failed.error = Some(format!("error {n}"));
            metrics.record(failed);
        }
        let report = metrics.finish(ms(1000), 0, false);
        assert_eq!(report.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(
            report.errors.iter().map(|e| e.1).sum::<u64>(),
            report.requests
        );
        assert_eq!(report.errors[0].1, 5);
    }

    #[test]
    fn empty_report_has_no_nan() {
        let report = Metrics::new(ms(1000), Duration::from_secs(1)).finish(ms(0), 0, true);
        assert_eq!(report.requests, 0);
        assert!(report.cancelled);
        let json = serde_json::to_value(&report).expect("report serializes");
        assert_eq!(json["rate"], 0.0);
        assert_eq!(json["success_rate"], 0.0);
        assert!(report.intervals.is_empty());
    }

    #[test]
    fn serializes_durations_as_seconds_and_errors_as_objects() {
        let mut metrics = Metrics::new(ms(1000), Duration::from_secs(1));
        metrics.record(hit(0, 250, 503));
        let json =
            serde_json::to_value(metrics.finish(ms(1000), 0, false)).expect("report serializes");
        assert_eq!(json["latency"]["max"], 0.25);
        assert_eq!(json["errors"][0]["message"], "503 Service Unavailable");
        assert_eq!(json["errors"][0]["count"], 1);
        assert_eq!(json["status_codes"]["503"], 1);
    }
}
