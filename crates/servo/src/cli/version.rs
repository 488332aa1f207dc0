//! `servo version`.

use serde::Serialize;

use super::{CommandResult, Exit, Globals};
use crate::output::{Render, emit};
use servo_core::connector::Registry;

/// Print servo's version and the connectors built in.
#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Serialize)]
struct Version {
    servo: &'static str,
    connectors: Vec<(String, String)>,
}

impl Render for Version {
    fn human(&self) -> String {
        let connectors: Vec<String> = self
            .connectors
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        format!(
            "servo {}\nconnectors: {}\n",
            self.servo,
            connectors.join(", ")
        )
    }
}

pub async fn run(_args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let version = Version {
        servo: env!("CARGO_PKG_VERSION"),
        connectors: registry
            .all()
            .iter()
            .map(|c| (c.name.to_string(), c.version.to_string()))
            .collect(),
    };
    emit(globals.format, &version)?;
    Ok(Exit::Ok)
}
