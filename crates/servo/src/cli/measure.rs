//! `servo measure`: take a measurement now.

use indexmap::IndexMap;
use serde::Serialize;

use super::{CommandResult, Exit, Globals, keep_mounts, spinner, with_connectors};
use crate::output::{Render, Table, emit};
use servo_core::connector::Registry;
use servo_core::types::{Control, MeasureRequest, Measurement};
use servo_core::units::Duration;

/// Measure the application now, with the connectors that provide the named metrics (all of them when
/// none is named).
///
/// Examples:
///   servo measure -c examples/vegeta.yaml --duration 10s
///   servo measure latency_p99 throughput -o json
///   servo measure --connectors prometheus
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Metrics to measure (default: every metric of every measuring connector).
    #[arg(value_name = "METRIC")]
    metrics: Vec<String>,
    /// Measure only with these mounts (a mount's key, or a connector's name for all its mounts).
    /// ServoX's `-c` is `--config-file` here.
    #[arg(long, value_name = "CONNECTOR", value_delimiter = ',')]
    connectors: Vec<String>,
    /// How long to measure (default: each connector's own).
    #[arg(short, long, value_name = "DURATION")]
    duration: Option<Duration>,
    /// Load to run before the measurement window opens.
    #[arg(long, value_name = "DURATION")]
    warmup: Option<Duration>,
    /// Time to wait after the window before reading results.
    #[arg(long, value_name = "DURATION")]
    delay: Option<Duration>,
}

#[derive(Serialize)]
struct Summary {
    unit: String,
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    series: Option<Vec<(f64, f64)>>,
}

#[derive(Serialize)]
struct Report {
    metrics: IndexMap<String, Summary>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<String, String>,
}

impl From<Measurement> for Report {
    fn from(m: Measurement) -> Self {
        Report {
            metrics: m
                .readings
                .into_iter()
                .map(|r| {
                    (
                        r.metric.name,
                        Summary {
                            unit: r.metric.unit,
                            value: r.value,
                            series: r.series.map(|s| s.points),
                        },
                    )
                })
                .collect(),
            annotations: m.annotations,
        }
    }
}

impl Render for Report {
    fn human(&self) -> String {
        if self.metrics.is_empty() {
            return "no readings: no mounted connector measured anything\n".into();
        }
        let mut table = Table::new(["METRIC", "VALUE", "UNIT"]);
        for (name, s) in &self.metrics {
            table.row([name.clone(), format_number(s.value), s.unit.clone()]);
        }
        table.render()
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let mut assembly = globals.load_one(registry)?;
    keep_mounts(&mut assembly, &args.connectors)?;
    let request = MeasureRequest {
        metrics: args.metrics,
        control: Control {
            duration: args.duration.unwrap_or_default(),
            warmup: args.warmup.unwrap_or_default(),
            delay: args.delay.unwrap_or_default(),
            ..Control::default()
        },
    };
    let spinner = spinner(match request.control.duration {
        d if d.is_zero() => "measuring".to_string(),
        d => format!("measuring for {d}"),
    });
    let measurement = with_connectors(&assembly, async |bus, cx| {
        Ok(bus.measure(&request, cx).await?)
    })
    .await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let measurement = measurement?;
    emit(globals.format, &Report::from(measurement))?;
    Ok(Exit::Ok)
}
