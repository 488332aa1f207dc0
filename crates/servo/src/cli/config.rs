//! `servo config`: the effective configuration, defaults filled in and secrets redacted.

use serde::Serialize;
use serde_json::Value;

use super::{CommandResult, Exit, Globals};
use crate::config::Assembly;
use crate::output::{Format, Render, Table, emit, to_yaml};
use servo_core::connector::Registry;
use servo_core::path::KeyPath;

/// Print the configuration servo will actually use.
///
/// Defaults are filled in, `SERVO_*` variables and `--set` flags applied, and secrets printed as
/// `**********`. With --origins, each value is listed with where it came from: the file (line:column),
/// an environment variable, a flag, or the default.
///
/// Examples:
///   servo config -c examples/multi-mount.yaml -o json
///   SERVO_PROD_PROM_BASE_URL=http://prom:9090 servo config --origins
///   servo config optimizer checks              (only those root keys, as ServoX's `config KEYS`)
///   servo config -f configmap > servo-config.yaml   (a ConfigMap for the servo's Deployment)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only these root keys (`optimizer`, `checks`, a mount), as ServoX's `config KEYS`.
    #[arg(value_name = "KEY")]
    keys: Vec<String>,
    /// List every value with where it came from instead of printing the config.
    #[arg(long)]
    origins: bool,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Effective(Value);

impl Render for Effective {
    fn human(&self) -> String {
        to_yaml(&self.0).unwrap_or_else(|e| format!("# cannot print as YAML: {e}\n"))
    }
}

#[derive(Serialize)]
struct OriginRow {
    path: String,
    value: Value,
    origin: String,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Origins(Vec<OriginRow>);

impl Render for Origins {
    fn human(&self) -> String {
        let mut table = Table::new(["KEY", "VALUE", "FROM"]);
        for row in &self.0 {
            let value = match &row.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            table.row([row.path.clone(), value, row.origin.clone()]);
        }
        table.render()
    }
}

fn origin_rows(assembly: &Assembly, value: &Value, at: KeyPath, rows: &mut Vec<OriginRow>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                origin_rows(assembly, v, at.key(k.clone()), rows);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                origin_rows(assembly, v, at.index(i), rows);
            }
        }
        _ => rows.push(OriginRow {
            path: at.to_string(),
            value: value.clone(),
            origin: assembly.origin_of(&at).to_string(),
        }),
    }
}

/// ServoX's `config -f configmap`: the config (without its `optimizer` section, which holds the
/// token and is deployed apart) as the `servo.yaml` key of the ConfigMap its manifests mount.
fn configmap(assembly: &Assembly, mut effective: Value) -> Result<String, super::CliError> {
    if let Value::Object(map) = &mut effective {
        map.remove("optimizer");
    }
    let redacted = secrets_in(&effective, KeyPath::root());
    if !redacted.is_empty() {
        eprintln!(
            "warning: the ConfigMap holds {} for secrets ({}): put them in a Secret and set them with SERVO_* variables",
            servo_core::units::REDACTED,
            redacted.join(", ")
        );
    }
    let connectors: Vec<Value> = assembly
        .mounts
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.key,
                "type": m.connector.name,
                "description": m.connector.description,
                "version": m.connector.version,
            })
        })
        .collect();
    let data = to_yaml(&effective).map_err(super::CliError::Failure)?;
    let document = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "opsani-servo-config",
            "labels": {
                "app.kubernetes.io/name": "servo",
                "app.kubernetes.io/version": env!("CARGO_PKG_VERSION"),
            },
            "annotations": {
                "servo.opsani.com/configured_at": servo_core::time::utc(servo_core::time::unix_now()),
                "servo.opsani.com/connectors": Value::Array(connectors).to_string(),
            },
        },
        "data": { "servo.yaml": data },
    });
    let text = to_yaml(&document).map_err(super::CliError::Failure)?;
    Ok(format!("---\n{text}"))
}

/// The key paths whose value is a redacted secret.
fn secrets_in(value: &Value, at: KeyPath) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| secrets_in(v, at.key(k.clone())))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .flat_map(|(i, v)| secrets_in(v, at.index(i)))
            .collect(),
        Value::String(s) if s == servo_core::units::REDACTED => vec![at.to_string()],
        _ => Vec::new(),
    }
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let assemblies = globals.load(registry)?;
    for (i, assembly) in assemblies.iter().enumerate() {
        let mut effective = assembly.effective();
        if !args.keys.is_empty()
            && let Value::Object(map) = &mut effective
        {
            if let Some(unknown) = args.keys.iter().find(|k| !map.contains_key(k.as_str())) {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                let hint = servo_core::suggest::did_you_mean(unknown, keys.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("keys: {}", keys.join(", ")));
                return Err(super::CliError::usage_with_hint(
                    format!("`{}` has no key `{unknown}`", assembly.name),
                    hint,
                ));
            }
            map.retain(|k, _| args.keys.contains(k));
        }
        if globals.format == Format::Configmap {
            crate::output::print(&configmap(assembly, effective)?)?;
        } else if args.origins {
            let mut rows = Vec::new();
            origin_rows(assembly, &effective, KeyPath::root(), &mut rows);
            emit(globals.format, &Origins(rows))?;
        } else {
            if i > 0 && globals.format != Format::Json {
                crate::output::print("---\n")?;
            }
            emit(globals.format, &Effective(effective))?;
        }
    }
    Ok(Exit::Ok)
}
