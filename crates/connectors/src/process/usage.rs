//! CPU time and resident memory of a process tree, read from `/proc`, and their summary over a
//! measurement window.

use super::{SAMPLE_INTERVAL, SERIES_INTERVAL, metrics};
use servo_core::types::{Reading, TimeSeries};
use std::io;
use std::time::Instant;

pub(super) use servo_core::time::unix_now;

pub(super) fn ticks_per_second() -> f64 {
    // `sysconf(_SC_CLK_TCK)`, from the auxiliary vector: 100 on every mainstream Linux build.
    (rustix::param::clock_ticks_per_second() as f64).max(1.0)
}

/// CPU time and resident memory of a process and its descendants, at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Usage {
    /// utime + stime + cutime + cstime, summed over the tree, in clock ticks.
    pub(super) cpu_ticks: u64,
    /// VmRSS summed over the tree (pages shared between processes count once per process).
    pub(super) rss_bytes: u64,
}

/// Most processes a tree walk visits: bounds the work of one sample against a fork bomb.
pub(super) const MAX_TREE: usize = 4096;

/// Reads the usage of `pid` and of every descendant it has not orphaned (found through
/// `/proc/PID/task/TID/children`). Descendants count because a server's work often happens in the
/// workers it forks. Each process contributes its own CPU time plus that of the children it has
/// reaped (`cutime`/`cstime`), so a worker that exits moves its time into its parent's and none is
/// lost or counted twice.
pub(super) fn read_usage(pid: u32) -> io::Result<Usage> {
    let mut usage = Usage::default();
    let mut queue = vec![pid];
    let mut visited = 0;
    while let Some(p) = queue.pop() {
        visited += 1;
        if visited > MAX_TREE {
            break;
        }
        let stat = match std::fs::read_to_string(format!("/proc/{p}/stat")) {
            Ok(stat) => stat,
            Err(e) if p == pid => return Err(e),
            // A descendant exited since its parent listed it.
            Err(_) => continue,
        };
        let Some(ticks) = parse_stat_ticks(&stat) else {
            if p == pid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected /proc/{p}/stat"),
                ));
            }
            continue;
        };
        usage.cpu_ticks += ticks;
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            usage.rss_bytes += parse_status_kib(&status, "VmRSS:").unwrap_or(0) * 1024;
        }
        queue.extend(children(p));
    }
    Ok(usage)
}

pub(super) async fn read_usage_async(pid: u32) -> io::Result<Usage> {
    tokio::task::spawn_blocking(move || read_usage(pid))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

pub(super) fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// utime + stime + cutime + cstime from a `/proc/PID/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
pub(super) fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3; utime, stime, cutime, cstime are fields 14 to 17.
    let fields: Vec<&str> = after_name.split_whitespace().skip(11).take(4).collect();
    if fields.len() < 4 {
        return None;
    }
    fields
        .iter()
        .map(|f| f.parse::<i64>().ok().map(|v| v.max(0) as u64))
        .sum()
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in KiB.
pub(super) fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Resets the leader's peak RSS (VmHWM) so that, read at the end, it is the peak within the window,
/// short spikes between samples included. Harmless to the process: only the counter is reset.
pub(super) fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

pub(super) fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, "VmHWM:").map(|kib| kib * 1024)
}

/// The samples of one measurement window, summarised as they arrive.
#[derive(Debug)]
pub(super) struct Window {
    pub(super) ticks_per_second: f64,
    pub(super) started: Instant,
    pub(super) last: Usage,
    pub(super) last_at: Instant,
    /// CPU used since the window opened, in ticks. Summed from positive steps, so a descendant that
    /// leaves the tree (orphaned) takes only its own time away, never the rest of the step.
    pub(super) cpu_ticks: u64,
    pub(super) samples: u64,
    pub(super) rss_total: f64,
    pub(super) rss_max: u64,
    /// The leader's peak RSS over the window, when it could be reset at the start.
    pub(super) peak_rss: Option<u64>,
    /// The samples since the series' last point.
    pub(super) bucket: Bucket,
    pub(super) rss_series: Vec<(f64, f64)>,
    pub(super) cores_series: Vec<(f64, f64)>,
}

/// The samples that make the next point of the series.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    pub(super) opened: Instant,
    /// `Window::cpu_ticks` when it opened.
    pub(super) cpu_ticks: u64,
    pub(super) rss_total: f64,
    pub(super) samples: u64,
}

/// Samples per point of the series.
pub(super) const SAMPLES_PER_POINT: u64 =
    (SERIES_INTERVAL.as_millis() / SAMPLE_INTERVAL.as_millis()) as u64;

impl Window {
    pub(super) fn new(first: Usage, ticks_per_second: f64, at: Instant) -> Self {
        Self {
            ticks_per_second,
            started: at,
            last: first,
            last_at: at,
            cpu_ticks: 0,
            samples: 1,
            rss_total: first.rss_bytes as f64,
            rss_max: first.rss_bytes,
            peak_rss: None,
            bucket: Bucket {
                opened: at,
                cpu_ticks: 0,
                rss_total: 0.0,
                samples: 0,
            },
            rss_series: Vec::new(),
            cores_series: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, usage: Usage, at: Instant, unix: f64) {
        self.cpu_ticks += usage.cpu_ticks.saturating_sub(self.last.cpu_ticks);
        self.last = usage;
        self.last_at = at;
        self.samples += 1;
        self.rss_total += usage.rss_bytes as f64;
        self.rss_max = self.rss_max.max(usage.rss_bytes);
        self.bucket.rss_total += usage.rss_bytes as f64;
        self.bucket.samples += 1;
        if self.bucket.samples >= SAMPLES_PER_POINT {
            self.close_bucket(unix);
        }
    }

    /// Adds the last, partial, point of the series.
    pub(super) fn finish(&mut self, unix: f64) {
        if self.bucket.samples > 0 {
            self.close_bucket(unix);
        }
    }

    pub(super) fn close_bucket(&mut self, unix: f64) {
        let bucket = self.bucket;
        let span = self.last_at.duration_since(bucket.opened).as_secs_f64();
        if span > 0.0 {
            let cpu_seconds = (self.cpu_ticks - bucket.cpu_ticks) as f64 / self.ticks_per_second;
            self.cores_series.push((unix, cpu_seconds / span));
        }
        self.rss_series
            .push((unix, bucket.rss_total / bucket.samples.max(1) as f64));
        self.bucket = Bucket {
            opened: self.last_at,
            cpu_ticks: self.cpu_ticks,
            rss_total: 0.0,
            samples: 0,
        };
    }

    pub(super) fn readings(&self) -> Vec<Reading> {
        let cpu_seconds = self.cpu_ticks as f64 / self.ticks_per_second;
        let elapsed = self.last_at.duration_since(self.started).as_secs_f64();
        let cores = if elapsed > 0.0 {
            cpu_seconds / elapsed
        } else {
            0.0
        };
        let series = |points: &[(f64, f64)]| TimeSeries {
            id: None,
            points: points.to_vec(),
        };
        let [
            cpu_seconds_metric,
            cores_metric,
            rss_max_metric,
            rss_mean_metric,
        ] = metrics();
        vec![
            Reading::new(cpu_seconds_metric, cpu_seconds),
            Reading::new(cores_metric, cores).with_series(series(&self.cores_series)),
            Reading::new(
                rss_max_metric,
                self.rss_max.max(self.peak_rss.unwrap_or(0)) as f64,
            ),
            Reading::new(rss_mean_metric, self.rss_total / self.samples as f64)
                .with_series(series(&self.rss_series)),
        ]
    }
}
