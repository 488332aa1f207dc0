//! `servo validate`: check a config file and report every problem in it at once.

use serde::Serialize;

use super::shared::check_declared_units;
use super::{CommandResult, Exit, Globals};
use crate::config::OptimizerSettings;
use crate::output::{Render, emit};
use servo_core::connector::Registry;

/// Check a config file: YAML syntax, mounts, every setting's type and unit, environment overrides,
/// and the units of the SLOs' bounds against the units the connectors declare for their metrics.
///
/// All problems are reported in one run, each with its file:line:column and key path. Nothing is
/// contacted: this is safe to run in CI on every change of the config.
///
/// Example: servo validate -c examples/quickstart.yaml
#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Serialize)]
struct Report {
    valid: bool,
    file: String,
    servos: Vec<ServoSummary>,
}

#[derive(Serialize)]
struct ServoSummary {
    name: String,
    optimizer: String,
    mounts: Vec<MountSummary>,
}

#[derive(Serialize)]
struct MountSummary {
    key: String,
    connector: String,
}

impl Render for Report {
    fn human(&self) -> String {
        let mut out = String::new();
        for servo in &self.servos {
            out.push_str(&format!(
                "√ {} is valid: servo `{}` with {} connector{}, {} optimizer\n",
                self.file,
                servo.name,
                servo.mounts.len(),
                if servo.mounts.len() == 1 { "" } else { "s" },
                servo.optimizer
            ));
            for m in &servo.mounts {
                if m.key == m.connector {
                    out.push_str(&format!("  √ {}\n", m.key));
                } else {
                    out.push_str(&format!("  √ {} ({})\n", m.key, m.connector));
                }
            }
        }
        out
    }
}

pub async fn run(_args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let assemblies = globals.load(registry)?;
    for assembly in &assemblies {
        check_declared_units(assembly, &globals.config_file).await?;
    }
    let report = Report {
        valid: true,
        file: globals.config_file.display().to_string(),
        servos: assemblies
            .iter()
            .map(|a| ServoSummary {
                name: a.name.clone(),
                optimizer: match &a.optimizer {
                    OptimizerSettings::Embedded(_) => "embedded".into(),
                    OptimizerSettings::Remote(r) => format!("remote ({})", r.display_id()),
                },
                mounts: a
                    .mounts
                    .iter()
                    .map(|m| MountSummary {
                        key: m.key.clone(),
                        connector: m.connector.name.into(),
                    })
                    .collect(),
            })
            .collect(),
    };
    emit(globals.format, &report)?;
    Ok(Exit::Ok)
}
