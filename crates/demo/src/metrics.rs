//! Counters behind `/metrics`, rendered in the Prometheus text exposition
//! format (version 0.0.4).
//!
//! Hand-written rather than pulled from a metrics crate: the demo exports a
//! dozen series, and lock-free atomics keep the hot path to a few increments.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the request-duration histogram buckets. Dense
/// between 1 ms and 100 ms, where the p99 of a miss-dominated workload lands
/// and where a latency SLO is likely to be set.
pub(crate) const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.030, 0.050, 0.075, 0.100,
    0.250, 0.500, 1.0,
];

/// HTTP status codes the work endpoints answer with; each gets its own series,
/// exported from zero so that rates over them are defined from the first scrape.
pub(crate) const STATUS_CODES: [u16; 4] = [200, 400, 500, 503];

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: [AtomicU64; STATUS_CODES.len()],
    /// Non-cumulative counts; bucket `i` counts durations in
    /// `(DURATION_BUCKETS[i-1], DURATION_BUCKETS[i]]`, the last one the overflow.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    duration_sum_nanos: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
}

/// Values that live outside [`Metrics`] and are sampled at scrape time.
#[derive(Debug)]
pub(crate) struct Gauges {
    pub(crate) cache_bytes: usize,
    pub(crate) cache_capacity_bytes: usize,
    pub(crate) cache_entries: usize,
    pub(crate) workers: usize,
    pub(crate) queue_depth: usize,
    pub(crate) miss_cost: Duration,
    pub(crate) algorithm: &'static str,
    pub(crate) resident_memory_bytes: Option<u64>,
}

impl Metrics {
    /// Records one answered work request.
    pub(crate) fn observe(&self, code: u16, elapsed: Duration) {
        // Codes outside the table are a programming error in the handlers; they
        // are folded into 500 rather than dropped so the request is still counted.
        let code_index = STATUS_CODES
            .iter()
            .position(|&known| known == code)
            .or_else(|| STATUS_CODES.iter().position(|&known| known == 500))
            .unwrap_or(0);
        self.requests[code_index].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.duration_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        // `fmt::Write` for `String` never fails, so the results are ignored.
        let _ = self.write_to(&mut out, gauges);
        out
    }

    fn write_to(&self, out: &mut String, g: &Gauges) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP demo_requests_total Requests answered by the work endpoints (GET / and GET /work), by HTTP status code."
        )?;
        writeln!(out, "# TYPE demo_requests_total counter")?;
        for (code, count) in STATUS_CODES.iter().zip(&self.requests) {
            writeln!(
                out,
                "demo_requests_total{{code=\"{code}\"}} {}",
                count.load(Ordering::Relaxed)
            )?;
        }

        writeln!(
            out,
            "# HELP demo_request_duration_seconds Time from receiving a work request to having its response ready."
        )?;
        writeln!(out, "# TYPE demo_request_duration_seconds histogram")?;
        let mut cumulative = 0u64;
        for (bound, count) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            writeln!(
                out,
                "demo_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            )?;
        }
        let overflow = &self.buckets[DURATION_BUCKETS.len()];
        cumulative += overflow.load(Ordering::Relaxed);
        writeln!(
            out,
            "demo_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        )?;
        let sum = Duration::from_nanos(self.duration_sum_nanos.load(Ordering::Relaxed));
        writeln!(
            out,
            "demo_request_duration_seconds_sum {}",
            sum.as_secs_f64()
        )?;
        writeln!(out, "demo_request_duration_seconds_count {cumulative}")?;

        counter(
            out,
            "demo_cache_hits_total",
            "Work requests answered from the cache.",
            self.cache_hits.load(Ordering::Relaxed),
        )?;
        counter(
            out,
            "demo_cache_misses_total",
            "Work requests that had to be computed on the worker pool.",
            self.cache_misses.load(Ordering::Relaxed),
        )?;
        gauge(
            out,
            "demo_cache_bytes",
            "Bytes held by cached entries, bookkeeping included.",
            g.cache_bytes as f64,
        )?;
        gauge(
            out,
            "demo_cache_capacity_bytes",
            "Cache budget set by --cache-mb.",
            g.cache_capacity_bytes as f64,
        )?;
        gauge(
            out,
            "demo_cache_entries",
            "Entries currently cached.",
            g.cache_entries as f64,
        )?;
        gauge(
            out,
            "demo_workers",
            "Threads in the worker pool (--workers).",
            g.workers as f64,
        )?;
        gauge(
            out,
            "demo_queue_depth",
            "Computations waiting for a free worker.",
            g.queue_depth as f64,
        )?;
        gauge(
            out,
            "demo_miss_cost_seconds",
            "CPU time one computation was calibrated to take on an idle core at startup.",
            g.miss_cost.as_secs_f64(),
        )?;
        writeln!(
            out,
            "# HELP demo_info Static configuration of this demo app; the value is always 1."
        )?;
        writeln!(out, "# TYPE demo_info gauge")?;
        writeln!(out, "demo_info{{algorithm=\"{}\"}} 1", g.algorithm)?;
        if let Some(rss) = g.resident_memory_bytes {
            gauge(
                out,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss as f64,
            )?;
        }
        Ok(())
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} counter")?;
    writeln!(out, "{name} {value}")
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} gauge")?;
    writeln!(out, "{name} {value}")
}

/// The process's resident set size, from `/proc/self/statm`, or `None` where
/// `/proc` is unavailable (the series is then omitted rather than reported
/// as zero).
pub(crate) fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse_statm(&statm, rustix::param::page_size())
}

/// `statm` holds sizes in pages: total, resident, shared, ...
fn parse_statm(statm: &str, page_size: usize) -> Option<u64> {
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    resident_pages.checked_mul(u64::try_from(page_size).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            cache_bytes: 10,
            cache_capacity_bytes: 20,
            cache_entries: 1,
            workers: 2,
            queue_depth: 0,
            miss_cost: Duration::from_millis(4),
            algorithm: "balanced",
            resident_memory_bytes: Some(4096),
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_everything() {
        let metrics = Metrics::default();
        metrics.observe(200, Duration::from_micros(300));
        metrics.observe(200, Duration::from_millis(3));
        metrics.observe(503, Duration::from_secs(5));
        let text = metrics.render(&gauges());
        assert!(text.contains("demo_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("demo_request_duration_seconds_bucket{le=\"0.004\"} 2\n"));
        assert!(text.contains("demo_request_duration_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("demo_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("demo_request_duration_seconds_count 3\n"));
        assert!(text.contains("demo_requests_total{code=\"200\"} 2\n"));
        assert!(text.contains("demo_requests_total{code=\"503\"} 1\n"));
        assert!(text.contains("demo_requests_total{code=\"400\"} 0\n"));
    }

    #[test]
    fn unknown_status_codes_are_counted_as_500() {
        let metrics = Metrics::default();
        metrics.observe(418, Duration::ZERO);
        assert!(
            metrics
                .render(&gauges())
                .contains("demo_requests_total{code=\"500\"} 1\n")
        );
    }

    #[test]
    fn resident_memory_is_read_from_statm_in_pages() {
        assert_eq!(
            parse_statm("5000 1234 300 10 0 900 0\n", 4096),
            Some(1234 * 4096)
        );
        assert_eq!(parse_statm("5000 1234 300", 65536), Some(1234 * 65536));
        assert_eq!(parse_statm("5000", 4096), None);
        assert_eq!(parse_statm("5000 lots", 4096), None);
        let live = resident_memory_bytes().expect("/proc/self/statm is readable on Linux");
        assert!(
            live > 1 << 20,
            "a test process uses more than 1 MiB: {live}"
        );
    }
}
