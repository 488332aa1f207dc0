//! `servo connectors`: the connectors this binary has.

use serde::Serialize;

use super::{CommandResult, Exit, Globals};
use crate::output::{Render, Table, emit};
use servo_core::connector::Registry;

/// List the connectors linked into this servo binary, with their default keys.
///
/// A root key equal to a default key activates its connector; mount one under other keys with
/// `connectors: {alias: NAME}`.
#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Serialize)]
struct Listing {
    name: &'static str,
    version: &'static str,
    default_key: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Listings(Vec<Listing>);

impl Render for Listings {
    fn human(&self) -> String {
        let mut table = Table::new(["NAME", "VERSION", "KEY", "DESCRIPTION"]);
        for l in &self.0 {
            table.row([l.name, l.version, l.default_key, l.description]);
        }
        table.render()
    }
}

pub async fn run(_args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let listings = registry
        .all()
        .iter()
        .map(|c| Listing {
            name: c.name,
            version: c.version,
            default_key: c.default_key,
            description: c.description,
        })
        .collect();
    emit(globals.format, &Listings(listings))?;
    Ok(Exit::Ok)
}
