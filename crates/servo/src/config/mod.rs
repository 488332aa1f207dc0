//! Config assembly: one YAML file → validated [`Assembly`]s (one per YAML document).
//!
//! A one-way pipeline, each stage a type made once from the one before, each reporting *all* its
//! problems before giving up:
//! 1. [`servo_yaml::Document`]: the parsed YAML, keeping the position of every node;
//! 2. [`Layered`]: the mounts decided ([`plan`]), then `SERVO_*` variables and `--set` flags
//!    applied (defaults < file < env < flags), each value with its origin;
//! 3. [`Checked`]: validated against the document's own composite JSON Schema
//!    ([`crate::schema::composite_of`]: the schemas of the sections it holds, or of every section
//!    when variables or flags were layered on), each error mapped back to a line and column;
//! 4. [`Assembly`]: each section deserialized once and each connector built.

mod built;
mod checked;
pub mod diagnostic;
mod layered;
pub mod overrides;
mod plan;
mod quick;
mod validate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

pub use crate::settings::optimizer;
pub use crate::settings::{
    ALIAS_PATTERN, Backoff, ChecksSettings, OptimizerSettings, Proxies, RESERVED_KEYS,
    ServoSettings, SslVerify, Timeouts,
};
pub use built::{Assembly, Mount};
pub use checked::Checked;
pub use diagnostic::{ConfigError, Diagnostic, Level, Origin};
pub use layered::{Layered, LoadOptions, is_servox_variable};

use crate::schema::{self, MountSchema, OptimizerForm};
use plan::Plan;
use servo_core::connector::{ConnectorDescription, Registry};
use servo_yaml as yaml;

/// A loaded file: its servos, and warnings worth showing even though it is valid.
#[derive(Debug)]
pub struct Loaded {
    pub assemblies: Vec<Assembly>,
    pub warnings: Option<ConfigError>,
}

/// Reads and assembles a config file.
pub fn load(
    path: &Path,
    registry: &Registry,
    options: &LoadOptions,
) -> Result<Loaded, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::file(
                path,
                Diagnostic::error("config file not found").help(format!(
                    "create one with `servo generate CONNECTOR... --output {}`, or point to another with -c/--config-file or SERVO_CONFIG_FILE",
                    path.display()
                )),
            ));
        }
        Err(e) => {
            return Err(ConfigError::file(
                path,
                Diagnostic::error(format!("cannot read the config file: {e}")),
            ));
        }
    };
    load_str(path, &text, registry, options)
}

/// Assembles config text (`path` names it in errors and anchors relative paths).
pub fn load_str(
    path: &Path,
    text: &str,
    registry: &Registry,
    options: &LoadOptions,
) -> Result<Loaded, ConfigError> {
    let source: Arc<str> = Arc::from(text);
    let documents = match yaml::parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            return Err(ConfigError::new(
                path,
                source,
                vec![Diagnostic::error(e.message).at(&e.span)],
            ));
        }
    };
    if documents.is_empty() {
        return Err(ConfigError::new(
            path,
            source,
            vec![Diagnostic::error("the config file is empty").help(
                "a config is a YAML mapping of connector sections, e.g. `wait: {}`; `servo generate CONNECTOR` writes a starter",
            )],
        ));
    }
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let many = documents.len() > 1;
    let mut diagnostics = Vec::new();
    let mut assemblies = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let mut found = Vec::new();
        let assembly = Layered::new(document, registry, options, &mut found)
            .and_then(|layered| Checked::new(layered, &mut found))
            .and_then(|checked| Assembly::build(checked, path, &base_dir, &mut found));
        assemblies.extend(assembly);
        // In a file of several documents, each problem says which one it is in.
        diagnostics.extend(found.into_iter().map(|mut d| {
            if many {
                d.message = format!("{} (document {})", d.message, index + 1);
            }
            d
        }));
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for a in &assemblies {
        *names.entry(a.name.as_str()).or_default() += 1;
    }
    for (name, count) in names {
        if count > 1 {
            diagnostics.push(
                Diagnostic::error(format!("{count} documents are named `{name}`"))
                    .help("give each servo in a multi-document file its own `name:`"),
            );
        }
    }
    // Positions first, in file order; problems from the environment and flags after them.
    diagnostics.sort_by_key(|d| (d.line.is_none(), d.line, d.column));
    let has_errors = diagnostics.iter().any(|d| d.level == Level::Error);
    if has_errors {
        return Err(ConfigError::new(path, source, diagnostics));
    }
    let warnings = (!diagnostics.is_empty()).then(|| ConfigError::new(path, source, diagnostics));
    Ok(Loaded {
        assemblies,
        warnings,
    })
}

/// The composite schema of a config file: the union of its documents' mounts, the optimizer in
/// either form. Only the mount structure must be sound; settings may still be invalid.
pub fn schema_of_file(path: &Path, registry: &Registry) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::file(
            path,
            Diagnostic::error(format!("cannot read the config file: {e}"))
                .help("pass a config with -c, or use --all for the schema of every connector"),
        )
    })?;
    let source: Arc<str> = Arc::from(text.as_str());
    let documents = yaml::parse_documents(&text).map_err(|e| {
        ConfigError::new(
            path,
            source.clone(),
            vec![Diagnostic::error(e.message).at(&e.span)],
        )
    })?;
    let mut diagnostics = Vec::new();
    let mut mounts: Vec<(String, &'static ConnectorDescription)> = Vec::new();
    for document in &documents {
        if let Value::Object(root) = &document.value {
            for mount in Plan::of(root, &document.spans, registry, &mut diagnostics).mounts {
                if !mounts.iter().any(|(k, _)| *k == mount.0) {
                    mounts.push(mount);
                }
            }
        }
    }
    if !diagnostics.is_empty() {
        return Err(ConfigError::new(path, source, diagnostics));
    }
    let schemas: Vec<MountSchema<'_>> = mounts
        .iter()
        .map(|(key, connector)| MountSchema { key, connector })
        .collect();
    Ok(schema::composite(registry, &schemas, OptimizerForm::Either))
}
