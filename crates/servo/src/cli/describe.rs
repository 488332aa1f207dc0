//! `servo describe`: the application's tunable settings and available metrics.

use serde::Serialize;

use super::{CommandResult, Exit, Globals, keep_mounts, with_connectors};
use crate::output::{Render, Table, emit};
use servo_core::connector::Registry;
use servo_core::types::{Description, Domain, SettingValue};

/// Describe the application: each component's settings with their current values and ranges, and
/// the metrics the connectors can measure.
///
/// Examples:
///   servo describe -c examples/process.yaml -o json
///   servo describe vegeta      (only the mounts named, by key or connector; ServoX's form)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Describe only these mounts (a mount's key, or a connector's name for all its mounts).
    #[arg(value_name = "CONNECTOR")]
    connectors: Vec<String>,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Described(Description);

impl Render for Described {
    fn human(&self) -> String {
        let mut out = String::new();
        let mut settings =
            Table::new(["COMPONENT", "SETTING", "TYPE", "VALUE", "DOMAIN", "PINNED"]);
        for c in &self.0.components {
            for s in &c.settings {
                let value = s
                    .value
                    .as_ref()
                    .map(SettingValue::to_string)
                    .unwrap_or_else(|| "-".into());
                let value = match &s.unit {
                    Some(unit) if !unit.is_empty() && s.value.is_some() => {
                        format!("{value} {unit}")
                    }
                    _ => value,
                };
                let domain = match s.domain() {
                    Domain::Categorical(values) => values.join(" | "),
                    Domain::Numeric { min, max, step, .. } => match step {
                        Some(step) => format!("{min}..{max} step {step}"),
                        None => format!("{min}..{max}"),
                    },
                };
                let kind = serde_json::to_value(s.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                settings.row([
                    c.name.clone(),
                    s.name.clone(),
                    kind,
                    value,
                    domain,
                    if s.pinned { "yes".into() } else { "no".into() },
                ]);
            }
        }
        if settings.is_empty() {
            out.push_str("no tunable components\n");
        } else {
            out.push_str(&settings.render());
        }
        if !self.0.metrics.is_empty() {
            let mut metrics = Table::new(["METRIC", "UNIT"]);
            for m in &self.0.metrics {
                metrics.row([m.name.clone(), m.unit.clone()]);
            }
            out.push('\n');
            out.push_str(&metrics.render());
        }
        out
    }
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let mut assembly = globals.load_one(registry)?;
    keep_mounts(&mut assembly, &args.connectors)?;
    let description =
        with_connectors(&assembly, async |bus, cx| Ok(bus.describe(cx).await?)).await?;
    emit(globals.format, &Described(description))?;
    Ok(Exit::Ok)
}
