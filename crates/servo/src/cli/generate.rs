//! `servo generate`: a starter config that validates as written, or (`kubernetes --manifests`) the
//! Kubernetes objects that run servo in a cluster.

mod manifests;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{CliError, CommandResult, Exit, Globals};
use crate::files::write_atomic;
use crate::output::to_yaml;
use crate::schema::{self, MountSchema, OptimizerForm};
use servo_core::connector::{ConnectorDescription, Registry};
use servo_core::suggest::did_you_mean;

/// Write a starter config for the given connectors, with example settings that validate.
///
/// The file starts with a `# yaml-language-server: $schema=` line, and the schema of exactly this
/// config is written beside it, so editors with the YAML language server check and complete it.
///
/// Examples:
///   servo generate vegeta prometheus                      (writes servo.yaml)
///   servo generate --alias staging=prometheus --alias prod=prometheus --output two-proms.yaml
///   servo generate wait --output -                        (prints to stdout)
///   servo generate prometheus --name staging --append     (one more servo in servo.yaml)
///   servo generate kubernetes --manifests --namespace shop --deployment web | kubectl apply -f -
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Connectors to mount under their default keys.
    #[arg(value_name = "CONNECTOR")]
    connectors: Vec<String>,
    /// Mount a connector under an alias: NAME=CONNECTOR (repeatable).
    #[arg(long = "alias", value_name = "NAME=CONNECTOR")]
    aliases: Vec<String>,
    /// Where to write the config (default: servo.yaml) or the manifests (default: stdout); `-`
    /// prints it.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long, conflicts_with = "append")]
    force: bool,
    /// Add the config to the file as one more YAML document (one more servo), as ServoX's
    /// `--append`; give it a name with --name. No schema is written beside it: a multi-servo file
    /// has one schema per document.
    #[arg(long)]
    append: bool,
    /// ServoX's `--defaults`, accepted: servo's generated settings always include every
    /// default.
    #[arg(short = 'd', long)]
    defaults: bool,
    /// Leave out the `connectors` section (ServoX's `--standalone`): each connector is then mounted
    /// by its default key, so aliases cannot be used.
    #[arg(short = 's', long, conflicts_with = "aliases")]
    standalone: bool,
    /// Do not report what was written.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// With `kubernetes`: instead of a config, the Kubernetes manifests that run servo in the
    /// cluster for one Deployment (ServiceAccount, Role, RoleBinding, Secret placeholder, ConfigMap
    /// holding servo.yaml, servo's Deployment), as multi-document YAML.
    #[arg(long)]
    manifests: bool,
    /// With --manifests: the namespace of the Deployment, where servo runs too [default: default].
    #[arg(long, value_name = "NS", requires = "manifests")]
    namespace: Option<String>,
    /// With --manifests: the Deployment to optimize.
    #[arg(long, value_name = "NAME", requires = "manifests")]
    deployment: Option<String>,
    /// With --manifests: its container to tune [default: the Deployment's name].
    #[arg(long, value_name = "NAME", requires = "manifests")]
    container: Option<String>,
}

const DEFAULT_OUTPUT: &str = "servo.yaml";

fn find(registry: &Registry, name: &str) -> Result<&'static ConnectorDescription, CliError> {
    registry.by_name(name).ok_or_else(|| {
        let hint = did_you_mean(name, registry.names())
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| {
                format!(
                    "connectors: {}",
                    registry.names().collect::<Vec<_>>().join(", ")
                )
            });
        CliError::usage_with_hint(format!("no connector is named `{name}`"), hint)
    })
}

/// An existing file is only replaced when `--force` says so.
fn refuse_to_overwrite(output: &Path, force: bool) -> Result<(), CliError> {
    if output.exists() && !force {
        return Err(CliError::usage_with_hint(
            format!("{} already exists", output.display()),
            "pass --force to overwrite it, or --output to write elsewhere",
        ));
    }
    Ok(())
}

fn schema_path_for(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "servo".into());
    output.with_file_name(format!("{stem}.schema.json"))
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    if args.manifests {
        return kubernetes_manifests(&args);
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUTPUT));
    let mut mounts: Vec<(String, &'static ConnectorDescription)> = Vec::new();
    for name in &args.connectors {
        let c = find(registry, name)?;
        if mounts.iter().any(|(k, _)| k == c.default_key) {
            return Err(CliError::usage(format!("`{name}` is given twice")));
        }
        mounts.push((c.default_key.to_string(), c));
    }
    for alias in &args.aliases {
        let Some((key, name)) = alias.split_once('=') else {
            return Err(CliError::usage_with_hint(
                format!("--alias {alias}: expected NAME=CONNECTOR"),
                "for example --alias prod_prom=prometheus",
            ));
        };
        let c = find(registry, name.trim())?;
        if mounts.iter().any(|(k, _)| k == key.trim()) {
            return Err(CliError::usage(format!("`{key}` is given twice")));
        }
        mounts.push((key.trim().to_string(), c));
    }
    if mounts.is_empty() {
        return Err(CliError::usage_with_hint(
            "name at least one connector to generate a config for",
            format!(
                "for example `servo generate vegeta`; connectors: {}",
                registry.names().collect::<Vec<_>>().join(", ")
            ),
        ));
    }

    let mut document = Map::new();
    // ServoX's `generate --name`: here the global --name, which is what later picks this servo.
    if let Some(name) = &globals.name {
        document.insert("name".into(), Value::String(name.clone()));
    }
    if !args.aliases.is_empty() {
        let connectors: Map<String, Value> = mounts
            .iter()
            .map(|(k, c)| (k.clone(), Value::String(c.name.into())))
            .collect();
        document.insert("connectors".into(), Value::Object(connectors));
    }
    for (key, c) in &mounts {
        document.insert(key.clone(), c.example());
    }
    let body = to_yaml(&Value::Object(document)).map_err(CliError::Failure)?;
    if args.append && output.as_os_str() != "-" && output.exists() {
        return append(&output, &body, args.quiet);
    }

    let to_stdout = output.as_os_str() == "-";
    let schema_file = schema_path_for(&output);
    let schema_name = schema_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "servo.schema.json".into());
    // On stdout no schema is written, so the first line names none.
    let schema_line = if to_stdout {
        String::new()
    } else {
        format!("# yaml-language-server: $schema={schema_name}\n")
    };
    let text = format!(
        "{schema_line}# Generated by servo {}. `servo validate` checks it; `servo config` shows the effective settings.\n{body}",
        env!("CARGO_PKG_VERSION")
    );
    if to_stdout {
        crate::output::print(&text)?;
        return Ok(Exit::Ok);
    }
    refuse_to_overwrite(&output, args.force)?;
    let mount_schemas: Vec<MountSchema<'_>> = mounts
        .iter()
        .map(|(key, connector)| MountSchema { key, connector })
        .collect();
    let schema = schema::composite(registry, &mount_schemas, OptimizerForm::Either);
    let mut schema_text =
        serde_json::to_string_pretty(&schema).map_err(|e| CliError::Failure(e.to_string()))?;
    schema_text.push('\n');
    write_atomic(&schema_file, schema_text.as_bytes())
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", schema_file.display())))?;
    write_atomic(&output, text.as_bytes())
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", output.display())))?;
    if !args.quiet {
        eprintln!(
            "wrote {} and its schema {}; next: servo validate -c {}",
            output.display(),
            schema_file.display(),
            output.display()
        );
    }
    Ok(Exit::Ok)
}

/// `--append`: the existing file with this config as one more document, replaced atomically.
fn append(output: &Path, body: &str, quiet: bool) -> CommandResult {
    let mut text = std::fs::read_to_string(output)
        .map_err(|e| CliError::Failure(format!("cannot read {}: {e}", output.display())))?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("---\n");
    text.push_str(body);
    write_atomic(output, text.as_bytes())
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", output.display())))?;
    if !quiet {
        eprintln!(
            "appended a servo to {}; next: servo list -c {}",
            output.display(),
            output.display()
        );
    }
    Ok(Exit::Ok)
}

/// `servo generate kubernetes --manifests`: see [`manifests`].
fn kubernetes_manifests(args: &Args) -> CommandResult {
    if args.connectors != ["kubernetes"] || !args.aliases.is_empty() {
        return Err(CliError::usage_with_hint(
            "--manifests generates the manifests of servo with the `kubernetes` connector",
            "run `servo generate kubernetes --manifests --deployment NAME`",
        ));
    }
    let Some(deployment) = args.deployment.as_deref() else {
        return Err(CliError::usage_with_hint(
            "--manifests needs the Deployment to optimize",
            "add --deployment NAME (and --namespace NS unless it is `default`)",
        ));
    };
    let target = manifests::Target {
        namespace: args.namespace.as_deref().unwrap_or("default"),
        deployment,
        container: args.container.as_deref().unwrap_or(deployment),
    };
    // Recorded in the output so a reader knows how to regenerate it.
    let mut command_line = format!(
        "servo generate kubernetes --manifests --namespace {} --deployment {}",
        target.namespace, target.deployment
    );
    if let Some(container) = &args.container {
        command_line.push_str(&format!(" --container {container}"));
    }
    let text = manifests::render(&target, &command_line)?;
    let output = args.output.as_deref().unwrap_or(Path::new("-"));
    if output.as_os_str() == "-" {
        crate::output::print(&text)?;
        return Ok(Exit::Ok);
    }
    refuse_to_overwrite(output, args.force)?;
    write_atomic(output, text.as_bytes())
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", output.display())))?;
    eprintln!(
        "wrote {}; put your optimizer token in its Secret, then: kubectl apply -f {}",
        output.display(),
        output.display()
    );
    Ok(Exit::Ok)
}
