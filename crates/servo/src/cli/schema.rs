//! `servo schema`: the JSON Schema of a config, of every connector, or of one connector.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::{CliError, CommandResult, Exit, Globals};
use crate::files::write_atomic;
use crate::output::{Format, Render, emit};
use crate::schema;
use servo_core::connector::Registry;
use servo_core::suggest::did_you_mean;

/// Print the JSON Schema (draft 2020-12) of a config.
///
/// By default, the schema of the config file given with -c: its aliases become properties holding the
/// mounted connector's schema, so an editor can check and complete exactly that file. With --all,
/// every connector under its default key; with --connector, one connector's settings.
///
/// Examples:
///   servo schema --all --output schemas/servo.schema.json
///   servo schema --connector prometheus
///   servo schema -c servo.yaml --output servo.schema.json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Every registered connector, each under its default key.
    #[arg(long, conflicts_with = "connector")]
    all: bool,
    /// Only this connector's settings.
    #[arg(long, value_name = "NAME")]
    connector: Option<String>,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Schema(Value);

impl Render for Schema {
    fn human(&self) -> String {
        pretty(&self.0)
    }
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let value = if let Some(name) = &args.connector {
        let Some(description) = registry.by_name(name) else {
            let hint = did_you_mean(name, registry.names())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| "`servo connectors` lists them".into());
            return Err(CliError::usage_with_hint(
                format!("no connector is named `{name}`"),
                hint,
            ));
        };
        schema::connector(description)
    } else if args.all {
        schema::all(registry)
    } else {
        crate::config::schema_of_file(&globals.config_file, registry)?
    };
    match &args.output {
        Some(path) => {
            write_atomic(path, pretty(&value).as_bytes())
                .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            let format = if globals.format == Format::Yaml {
                Format::Yaml
            } else {
                Format::Table
            };
            emit(format, &Schema(value))?;
        }
    }
    Ok(Exit::Ok)
}
