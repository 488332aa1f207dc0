//! Stage 4 of the pipeline: a checked document built into an [`Assembly`]. Each section is
//! deserialized exactly once, into its settings type; a connector's section becomes its
//! `Settings`, then the connector, and the normalized view is those same settings serialized.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::checked::Checked;
use super::diagnostic::{Diagnostic, Level, Origin};
use crate::schema::OptimizerForm;
use crate::settings::{ChecksSettings, OptimizerSettings, ServoSettings};
use servo_core::connector::{BuildContext, BuildError, Built, Connector, ConnectorDescription};
use servo_core::path::KeyPath;
use servo_yaml::SpanMap;

/// A connector mounted under a key of the config.
pub struct Mount {
    pub key: String,
    pub connector: &'static ConnectorDescription,
    /// The section as the connector uses it: defaults filled, secrets redacted.
    pub settings: Value,
    pub instance: Arc<dyn Connector>,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("key", &self.key)
            .field("connector", &self.connector.name)
            .finish_non_exhaustive()
    }
}

/// One servo, assembled and validated: its settings, its optimizer and its mounted connectors.
#[derive(Debug)]
pub struct Assembly {
    pub name: String,
    pub description: Option<String>,
    pub settings: ServoSettings,
    pub optimizer: OptimizerSettings,
    pub checks: ChecksSettings,
    /// ServoX's `servo_uid`, sent to a remote optimizer in every request.
    pub servo_uid: Option<String>,
    /// ServoX's `no_diagnostics`, as the file set it (servo sends no diagnostics either way).
    pub no_diagnostics: Option<bool>,
    pub mounts: Vec<Mount>,
    /// The config file this came from, and its directory (relative paths resolve against it).
    pub file: PathBuf,
    pub base_dir: PathBuf,
    /// Values set by `SERVO_*` variables and `--set` flags, with their source.
    pub origins: BTreeMap<KeyPath, Origin>,
    /// Where each value of the file is.
    pub spans: SpanMap,
}

impl Assembly {
    /// Builds the servo of a checked document from `file` (relative paths resolve against
    /// `base_dir`), adding each problem to `diagnostics`; `None` if any is an error.
    pub fn build(
        checked: Checked,
        file: &Path,
        base_dir: &Path,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Assembly> {
        let Checked {
            document,
            spans,
            mounts: planned,
            optimizer_form,
            origins,
        } = checked;
        let sections = Sections {
            document: &document,
            spans: &spans,
            origins: &origins,
        };
        let optimizer = match optimizer_form {
            OptimizerForm::Remote => sections.parse("optimizer").map(OptimizerSettings::Remote),
            _ => sections.parse("optimizer").map(OptimizerSettings::Embedded),
        };
        let parsed = optimizer.and_then(|optimizer| {
            Ok((
                optimizer,
                sections.parse::<ServoSettings>("settings")?,
                sections.parse::<ChecksSettings>("checks")?,
            ))
        });
        let (optimizer, settings, checks) = match parsed {
            Ok(parsed) => parsed,
            Err(d) => {
                diagnostics.push(*d);
                return None;
            }
        };
        let name = document
            .get("name")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| match &optimizer {
                OptimizerSettings::Remote(r) => Some(r.application().to_string()),
                OptimizerSettings::Embedded(_) => None,
            })
            .unwrap_or_else(|| "servo".to_string());
        if let OptimizerSettings::Remote(remote) = &optimizer
            && let Some(problem) = remote.problem()
        {
            diagnostics.push(Diagnostic::error(problem).located(
                &spans,
                &KeyPath::root().key("optimizer"),
                true,
            ));
        }
        for (key, why) in checks.ignored() {
            let first = key.split('/').next().unwrap_or(key);
            let at = KeyPath::root().key("checks").key(first);
            diagnostics.push(
                Diagnostic::warning(format!("accepted and ignored: {why}"))
                    .located(&spans, &at, true),
            );
        }
        if document.get("no_diagnostics") == Some(&Value::Bool(false)) {
            diagnostics.push(
                Diagnostic::warning(
                    "no_diagnostics: false is accepted and ignored: servo sends no diagnostics",
                )
                .located(&spans, &KeyPath::root().key("no_diagnostics"), true),
            );
        }
        let servo_uid = document
            .get("servo_uid")
            .and_then(Value::as_str)
            .map(String::from);
        let description = document
            .get("description")
            .and_then(Value::as_str)
            .map(String::from);

        let mut mounts = Vec::new();
        for (key, connector) in planned {
            let build_cx = BuildContext {
                mount: key.clone(),
                servo: name.clone(),
                base_dir: base_dir.to_path_buf(),
                remote_optimizer: matches!(optimizer, OptimizerSettings::Remote(_)),
                optimizer_id: match &optimizer {
                    OptimizerSettings::Remote(remote) => {
                        remote.id.clone().or_else(|| remote.optimizer_id.clone())
                    }
                    OptimizerSettings::Embedded(_) => None,
                },
            };
            match connector.build(sections.raw(&key), &build_cx) {
                Ok(Built {
                    settings,
                    connector: instance,
                }) => mounts.push(Mount {
                    key,
                    connector,
                    settings,
                    instance: Arc::from(instance),
                }),
                Err(error) => sections.report(&key, connector, error, diagnostics),
            }
        }
        if diagnostics.iter().any(|d| d.level == Level::Error) {
            return None;
        }
        Some(Assembly {
            name,
            description,
            settings,
            optimizer,
            checks,
            servo_uid,
            no_diagnostics: document.get("no_diagnostics").and_then(Value::as_bool),
            mounts,
            file: file.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            origins,
            spans,
        })
    }

    /// The effective config as `servo config` prints it.
    pub fn effective(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("name".into(), Value::String(self.name.clone()));
        if let Some(d) = &self.description {
            doc.insert("description".into(), Value::String(d.clone()));
        }
        if let Some(uid) = &self.servo_uid {
            doc.insert("servo_uid".into(), Value::String(uid.clone()));
        }
        if let Some(no) = self.no_diagnostics {
            doc.insert("no_diagnostics".into(), Value::Bool(no));
        }
        doc.insert("optimizer".into(), to_value(&self.optimizer));
        doc.insert("settings".into(), to_value(&self.settings));
        doc.insert("checks".into(), to_value(&self.checks));
        let implicit = self.mounts.iter().all(|m| m.key == m.connector.default_key);
        if !implicit || self.mounts.is_empty() {
            let connectors: Map<String, Value> = self
                .mounts
                .iter()
                .map(|m| (m.key.clone(), Value::String(m.connector.name.into())))
                .collect();
            doc.insert("connectors".into(), Value::Object(connectors));
        }
        for m in &self.mounts {
            doc.insert(m.key.clone(), m.settings.clone());
        }
        Value::Object(doc)
    }

    /// Where the value at `path` came from.
    pub fn origin_of(&self, path: &KeyPath) -> Origin {
        if let Some(origin) = self.origins.get(path) {
            return origin.clone();
        }
        match self.spans.get(path) {
            Some(node) => Origin::File {
                line: node.value.start.line,
                column: node.value.start.column,
            },
            None => Origin::Default,
        }
    }
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Plain data types: serialization cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The root sections of a checked document, and what locates a problem in them.
struct Sections<'a> {
    document: &'a Value,
    spans: &'a SpanMap,
    origins: &'a BTreeMap<KeyPath, Origin>,
}

impl Sections<'_> {
    /// The section under `key`; absent or empty (`prometheus:`) means all defaults.
    fn raw(&self, key: &str) -> Value {
        match self.document.get(key) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v) => v.clone(),
        }
    }

    /// A problem at `path`, located in the file and naming the variable or flag that set it.
    fn problem(&self, message: String, path: &KeyPath) -> Diagnostic {
        Diagnostic::error(message)
            .located(self.spans, path, false)
            .origin_opt(self.origins.get(path))
    }

    /// One of servo's own sections, deserialized into its settings type.
    fn parse<T: DeserializeOwned>(&self, key: &str) -> Result<T, Box<Diagnostic>> {
        serde_path_to_error::deserialize(self.raw(key)).map_err(|e| {
            let mut path = KeyPath::root().key(key);
            for segment in e.path().iter() {
                match segment {
                    serde_path_to_error::Segment::Seq { index } => path.push_index(*index),
                    serde_path_to_error::Segment::Map { key } => path.push_key(key.clone()),
                    _ => {}
                }
            }
            Box::new(self.problem(e.into_inner().to_string(), &path))
        })
    }

    /// Why the section under `key` did not become a `connector`.
    fn report(
        &self,
        key: &str,
        connector: &ConnectorDescription,
        error: BuildError,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let at = KeyPath::root().key(key);
        match error {
            BuildError::Problems(problems) => {
                for p in problems {
                    let mut path = at.clone();
                    path.extend(p.path.segments().iter().cloned());
                    diagnostics.push(self.problem(p.message, &path).help_opt(p.help));
                }
            }
            BuildError::Connector(e) => diagnostics.push(
                Diagnostic::error(format!("cannot set up `{key}` ({}): {e}", connector.name))
                    .located(self.spans, &at, true)
                    .help_opt(e.hint().map(String::from)),
            ),
        }
    }
}
