//! `/metrics` in the Prometheus text format: requests by event and HTTP status, request latency as
//! a histogram, and trials per application and state.
//!
//! A scrape reads memory only: the trial counts are read from the store once at start and then
//! follow this server's own commits, so scraping never queries (or waits on) the store the servos
//! are using. Servers sharing one PostgreSQL database each count what they committed since they
//! started, on top of what the store held then.

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
    /// (application, state) → trials of its current study.
    trials: Mutex<BTreeMap<(String, String), i64>>,
}

/// How a committed write changes the trial counts of its application.
#[derive(Clone, Debug, PartialEq)]
pub enum TrialChange {
    /// A new study: the old one's trials no longer count.
    NewStudy,
    /// A trial began (running).
    Began,
    /// A running trial ended in this state.
    Ended(String),
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

    /// Starts the trial counts from the store's, as (application, state, count).
    pub fn set_trials(&self, counts: Vec<(String, String, i64)>) {
        let mut trials = self.trials.lock().unwrap_or_else(|p| p.into_inner());
        *trials = counts
            .into_iter()
            .map(|(application, state, n)| ((application, state), n))
            .collect();
    }

    /// Follows a commit of `application`'s: its changes, in the order they were written.
    pub fn record(&self, application: &str, changes: &[TrialChange]) {
        let mut trials = self.trials.lock().unwrap_or_else(|p| p.into_inner());
        let add = |trials: &mut BTreeMap<(String, String), i64>, state: &str, n: i64| {
            let count = trials
                .entry((application.to_string(), state.to_string()))
                .or_default();
            *count = (*count + n).max(0);
        };
        for change in changes {
            match change {
                TrialChange::NewStudy => trials.retain(|(app, _), _| app != application),
                TrialChange::Began => add(&mut trials, "running", 1),
                TrialChange::Ended(state) => {
                    add(&mut trials, "running", -1);
                    add(&mut trials, state, 1);
                }
            }
        }
    }

    /// The trial counts, as (application, state, count).
    fn trials(&self) -> Vec<(String, String, i64)> {
        let trials = self.trials.lock().unwrap_or_else(|p| p.into_inner());
        trials
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((application, state), n)| (application.clone(), state.clone(), *n))
            .collect()
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let trials = self.trials();
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
        for (application, state, n) in &trials {
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
        m.set_trials(vec![("acme/web".into(), "complete".into(), 3)]);
        m.record(
            "acme/web",
            &[TrialChange::Began, TrialChange::Ended("complete".into())],
        );
        m.record("acme/api", &[TrialChange::Began]);
        let text = m.render();
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
        assert!(
            text.contains("servo_optimizer_trials{application=\"acme/api\",state=\"running\"} 1")
        );
        assert!(
            !text.contains("acme/web\",state=\"running"),
            "none left running"
        );
        m.record("acme/web", &[TrialChange::NewStudy, TrialChange::Began]);
        let text = m.render();
        assert!(!text.contains("acme/web\",state=\"complete"), "{text}");
        assert!(
            text.contains("servo_optimizer_trials{application=\"acme/web\",state=\"running\"} 1")
        );
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
