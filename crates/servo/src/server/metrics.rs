//! `/metrics` in the Prometheus text format: requests by event and HTTP status, request latency as
//! a histogram, and (read from the store at scrape time) trials per application and state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    /// (route, event, status) → count.
    requests: BTreeMap<(String, String, u16), u64>,
    /// route → (bucket counts, sum, count).
    latency: BTreeMap<String, ([u64; BUCKETS.len()], f64, u64)>,
}

impl Metrics {
    /// Records one request. `event` is the protocol event (empty for other routes).
    pub fn observe(&self, route: &str, event: &str, status: u16, elapsed: Duration) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *c.requests
            .entry((route.to_string(), event.to_string(), status))
            .or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        let key = if event.is_empty() {
            route.to_string()
        } else {
            event.to_string()
        };
        let entry = c.latency.entry(key).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                entry.0[i] += 1;
            }
        }
        entry.1 += seconds;
        entry.2 += 1;
    }

    /// The text exposition, with `trials` as (application, state, count).
    pub fn render(&self, trials: &[(String, String, i64)]) -> String {
        let c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP servo_optimizer_requests_total Requests served, by route, protocol event and HTTP status.\n");
        out.push_str("# TYPE servo_optimizer_requests_total counter\n");
        for ((route, event, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "servo_optimizer_requests_total{{route=\"{}\",event=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(event)
            );
        }
        out.push_str("# HELP servo_optimizer_request_duration_seconds Time to answer a request, by protocol event (or route).\n");
        out.push_str("# TYPE servo_optimizer_request_duration_seconds histogram\n");
        for (key, (buckets, sum, count)) in &c.latency {
            let key = escape(key);
            for (bound, n) in BUCKETS.iter().zip(buckets) {
                let _ = writeln!(
                    out,
                    "servo_optimizer_request_duration_seconds_bucket{{event=\"{key}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "servo_optimizer_request_duration_seconds_bucket{{event=\"{key}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "servo_optimizer_request_duration_seconds_sum{{event=\"{key}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "servo_optimizer_request_duration_seconds_count{{event=\"{key}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP servo_optimizer_trials Trials of each application's current study, by state.\n",
        );
        out.push_str("# TYPE servo_optimizer_trials gauge\n");
        for (application, state, n) in trials {
            let _ = writeln!(
                out,
                "servo_optimizer_trials{{application=\"{}\",state=\"{}\"}} {n}",
                escape(application),
                escape(state)
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_latency_render_as_prometheus_text() {
        let m = Metrics::default();
        m.observe("servo", "WHATS_NEXT", 200, Duration::from_millis(3));
        m.observe("servo", "WHATS_NEXT", 200, Duration::from_millis(30));
        m.observe("servo", "", 401, Duration::from_micros(100));
        let text = m.render(&[("acme/web".into(), "complete".into(), 4)]);
        assert!(text.contains(
            "servo_optimizer_requests_total{route=\"servo\",event=\"WHATS_NEXT\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "servo_optimizer_request_duration_seconds_bucket{event=\"WHATS_NEXT\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "servo_optimizer_request_duration_seconds_bucket{event=\"WHATS_NEXT\",le=\"0.05\"} 2"
        ));
        assert!(
            text.contains("servo_optimizer_request_duration_seconds_count{event=\"WHATS_NEXT\"} 2")
        );
        assert!(
            text.contains("servo_optimizer_trials{application=\"acme/web\",state=\"complete\"} 4")
        );
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
