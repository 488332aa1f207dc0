//! `servo list`: the servos of a config file (ServoX's `list`).

use serde::Serialize;

use super::{CommandResult, Exit, Globals};
use crate::config::optimizer::OptimizerSettings;
use crate::output::{Render, Table, emit};
use servo_core::connector::Registry;

/// List the servos in the config file: name, optimizer, description and connectors.
///
/// A file may hold several servos (YAML documents); `servo run` runs them all, `--name` picks one.
///
/// Example: servo list -c multi.yaml -o json
#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Serialize)]
struct Servo {
    name: String,
    optimizer: String,
    description: Option<String>,
    connectors: Vec<String>,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Servos(Vec<Servo>);

impl Render for Servos {
    fn human(&self) -> String {
        let mut table = Table::new(["NAME", "OPTIMIZER", "DESCRIPTION", "CONNECTORS"]);
        for s in &self.0 {
            table.row([
                s.name.clone(),
                s.optimizer.clone(),
                s.description.clone().unwrap_or_default(),
                s.connectors.join(", "),
            ]);
        }
        table.render()
    }
}

pub async fn run(_args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let servos = globals
        .load(registry)?
        .into_iter()
        .map(|a| Servo {
            optimizer: match &a.optimizer {
                OptimizerSettings::Remote(r) => r.display_id(),
                OptimizerSettings::Embedded(_) => "embedded".into(),
            },
            connectors: a
                .mounts
                .iter()
                .map(|m| {
                    if m.key == m.connector.default_key {
                        m.key.clone()
                    } else {
                        format!("{} ({})", m.key, m.connector.name)
                    }
                })
                .collect(),
            description: a.description,
            name: a.name,
        })
        .collect();
    emit(globals.format, &Servos(servos))?;
    Ok(Exit::Ok)
}
