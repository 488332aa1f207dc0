//! Config assembly: one YAML file → validated [`Assembly`]s (one per YAML document).
//!
//! The stages, each reporting *all* its problems before giving up:
//! 1. parse YAML keeping the position of every node ([`servo_yaml`]);
//! 2. decide the mounts: implicit root keys, a `connectors:` list, or an alias map;
//! 3. apply `SERVO_*` variables, then `--set` flags (defaults < file < env < flags);
//! 4. validate the document against its own composite JSON Schema ([`crate::schema::composite`]) and
//!    map each error's instance path back to a line and column;
//! 5. deserialize and build each section.

pub mod diagnostic;
pub mod optimizer;
pub mod overrides;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use diagnostic::{ConfigError, Diagnostic, Level, Origin};
pub use optimizer::OptimizerSettings;

use crate::schema::{self, MountSchema, OptimizerForm};
use servo_core::connector::{BuildContext, BuildError, Connector, ConnectorDescription, Registry};
use servo_core::path::KeyPath;
use servo_core::suggest::did_you_mean;
use servo_core::types::Severity;
use servo_core::units::Duration;
use servo_yaml::{self as yaml, Document, Span, SpanMap};

/// Root keys that are never connectors.
pub const RESERVED_KEYS: &[&str] = &[
    "optimizer",
    "connectors",
    "settings",
    "checks",
    "name",
    "description",
];

/// What an alias may look like (ServoX's rule).
pub const ALIAS_PATTERN: &str = r"^[0-9a-zA-Z\-_/.]{3,128}$";

/// Servo-wide settings (`settings:`), with ServoX's names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServoSettings {
    /// Retry policy per event (`__default__`, `connect`, or an event name such as `whats_next`):
    /// `max_time` and `max_tries` bound the exponential backoff with jitter.
    #[serde(default)]
    pub backoff: BTreeMap<String, Backoff>,
    /// HTTP timeouts for the optimizer API.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// HTTP(S) proxy: one URL for all schemes, or a map of scheme → URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxies: Option<Proxies>,
    /// Verify TLS certificates: `true`, `false`, or the path of a CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_verify: Option<SslVerify>,
}

/// Bounds on retries of one kind of request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Give up once this much time has passed since the first try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time: Option<Duration>,
    /// Give up after this many tries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tries: Option<u32>,
}

/// HTTP timeouts; unset means the client's default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Duration>,
}

/// One proxy URL for every scheme, or a map of scheme → URL. A password in the URL is never
/// printed (`servo config` shows `user:**********@`).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Proxies {
    All(String),
    PerScheme(BTreeMap<String, String>),
}

impl Serialize for Proxies {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Proxies::All(url) => serializer.serialize_str(&servo_core::http::redact_url(url)),
            Proxies::PerScheme(map) => serializer.collect_map(
                map.iter()
                    .map(|(scheme, url)| (scheme.as_str(), servo_core::http::redact_url(url))),
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SslVerify {
    Enabled(bool),
    CaBundle(PathBuf),
}

/// How `servo check` and `servo run` treat failing checks (`checks:`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksSettings {
    /// The lowest severity of a failed check that stops servo (`critical`, `warning` or `info`).
    #[serde(default)]
    pub halt_on: Severity,
    /// Names of checks to skip.
    #[serde(default)]
    pub skip: Vec<String>,
}

impl Default for ChecksSettings {
    fn default() -> Self {
        Self {
            halt_on: Severity::Critical,
            skip: Vec::new(),
        }
    }
}

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
    /// The effective config as `servo config` prints it.
    pub fn effective(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("name".into(), Value::String(self.name.clone()));
        if let Some(d) = &self.description {
            doc.insert("description".into(), Value::String(d.clone()));
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

/// What the loader reads besides the file.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The process environment (only `SERVO_*` names matter).
    pub env: Vec<(String, String)>,
    /// `--set PATH=VALUE` flags, applied last.
    pub sets: Vec<String>,
}

impl LoadOptions {
    pub fn from_process(sets: Vec<String>) -> Self {
        Self {
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("SERVO_"))
                .collect(),
            sets,
        }
    }
}

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
        let context = DocumentContext {
            registry,
            options,
            file: path,
            base_dir: &base_dir,
            label: many.then(|| format!("document {}", index + 1)),
        };
        match assemble(document, &context, &mut diagnostics) {
            Some(assembly) => assemblies.push(assembly),
            None => continue,
        }
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

struct DocumentContext<'a> {
    registry: &'a Registry,
    options: &'a LoadOptions,
    file: &'a Path,
    base_dir: &'a Path,
    /// `document 2` when the file holds several.
    label: Option<String>,
}

impl DocumentContext<'_> {
    fn tag(&self, mut d: Diagnostic) -> Diagnostic {
        if let Some(label) = &self.label {
            d.message = format!("{} ({label})", d.message);
        }
        d
    }
}

/// The mount plan of a document: which key mounts which connector, and where that was said.
struct Plan {
    mounts: Vec<(String, &'static ConnectorDescription)>,
    /// Keys named in a `connectors:` map, mounted or not: a failed alias is reported once, at its
    /// entry, and its section is not reported again as an unknown key.
    claimed: Vec<String>,
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn span_of(spans: &SpanMap, path: &KeyPath, prefer_key: bool) -> Option<Span> {
    let (found, node) = spans.nearest(path)?;
    let span = if prefer_key || &found != path {
        node.key.unwrap_or(node.value)
    } else {
        node.value
    };
    Some(span)
}

fn located(d: Diagnostic, spans: &SpanMap, path: &KeyPath, prefer_key: bool) -> Diagnostic {
    let d = d.path(path);
    match span_of(spans, path, prefer_key) {
        Some(span) => d.at(&span),
        None => d,
    }
}

fn assemble(
    document: Document,
    cx: &DocumentContext<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Assembly> {
    let Document { value, spans, span } = document;
    let mut root = match value {
        Value::Object(map) => map,
        other => {
            diagnostics.push(
                cx.tag(
                    Diagnostic::error(
                        "a config document must be a mapping of section names to settings",
                    )
                    .at(&span)
                    .expected("a mapping, such as `prometheus: {base_url: ...}`")
                    .found(kind_of(&other)),
                ),
            );
            return None;
        }
    };
    let before = diagnostics.len();
    let plan = plan_mounts(&root, &spans, cx, diagnostics);

    // Root keys that are neither reserved nor mounted: report once here, then drop them so the
    // schema does not report them a second time.
    let mount_keys: Vec<&str> = plan.mounts.iter().map(|(k, _)| k.as_str()).collect();
    let explicit = root.contains_key("connectors");
    let unknown: Vec<String> = root
        .keys()
        .filter(|k| !RESERVED_KEYS.contains(&k.as_str()) && !mount_keys.contains(&k.as_str()))
        .cloned()
        .collect();
    let (failed_aliases, unknown): (Vec<String>, Vec<String>) =
        unknown.into_iter().partition(|k| plan.claimed.contains(k));
    for key in &failed_aliases {
        root.remove(key);
    }
    for key in &unknown {
        let mut candidates: Vec<&str> = RESERVED_KEYS.to_vec();
        candidates.extend(mount_keys.iter().copied());
        if !explicit {
            candidates.extend(cx.registry.all().iter().map(|c| c.default_key));
        }
        let mut d = Diagnostic::error(format!("unknown key `{key}`"));
        if explicit && cx.registry.by_default_key(key).is_some() {
            d = d.help(format!(
                "`{key}` is a connector, but `connectors:` does not list it: add it there"
            ));
        } else if let Some(s) = did_you_mean(key, candidates) {
            d = d.help(format!("did you mean `{s}`?"));
        } else {
            d = d.help(format!(
                "a root key is a connector ({}), an alias listed in `connectors:`, or one of {}",
                cx.registry.names().collect::<Vec<_>>().join(", "),
                RESERVED_KEYS.join(", ")
            ));
        }
        diagnostics.push(cx.tag(located(d, &spans, &KeyPath::root().key(key.clone()), true)));
        root.remove(key);
    }

    let optimizer_form = match root.get("optimizer") {
        Some(section) if OptimizerSettings::is_remote(section) => OptimizerForm::Remote,
        _ => OptimizerForm::Embedded,
    };
    let mount_schemas: Vec<MountSchema<'_>> = plan
        .mounts
        .iter()
        .map(|(key, connector)| MountSchema { key, connector })
        .collect();
    let composite = schema::composite(cx.registry, &mount_schemas, optimizer_form);

    // Defaults < file < environment < flags.
    let mut document = Value::Object(root);
    let mut origins: BTreeMap<KeyPath, Origin> = BTreeMap::new();
    let section_keys: Vec<String> = ["optimizer", "settings", "checks"]
        .into_iter()
        .map(String::from)
        .chain(plan.mounts.iter().map(|(k, _)| k.clone()))
        .collect();
    let properties = composite.get("properties").cloned().unwrap_or(Value::Null);
    let sections: Vec<overrides::Section<'_>> = section_keys
        .iter()
        .filter_map(|key| {
            properties.get(key).map(|schema| overrides::Section {
                key: key.as_str(),
                schema,
            })
        })
        .collect();
    for source in [
        overrides::from_env(&cx.options.env, &composite, &sections),
        overrides::from_flags(&cx.options.sets, &composite, &sections),
    ] {
        diagnostics.extend(source.diagnostics.into_iter().map(|d| cx.tag(d)));
        match overrides::apply(&mut document, &source.overrides) {
            Ok(set) => origins.extend(set),
            Err(errors) => diagnostics.extend(errors.into_iter().map(|d| cx.tag(d))),
        }
    }

    // Drop `connectors` before schema validation: plan_mounts checked it with better messages.
    let connectors_entry = document
        .as_object_mut()
        .and_then(|o| o.remove("connectors"));
    for d in validate::against_schema(&composite, &document, &spans, &origins) {
        diagnostics.push(cx.tag(d));
    }
    if let (Some(entry), Some(o)) = (connectors_entry, document.as_object_mut()) {
        o.insert("connectors".into(), entry);
    }
    if diagnostics[before..]
        .iter()
        .any(|d| d.level == Level::Error)
    {
        return None;
    }

    let section = |key: &str| -> Value {
        match document.get(key) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v) => v.clone(),
        }
    };
    let optimizer = match parse_optimizer(
        section("optimizer"),
        "optimizer",
        optimizer_form,
        &spans,
        &origins,
    ) {
        Ok(o) => o,
        Err(ds) => {
            diagnostics.extend(ds.into_iter().map(|d| cx.tag(d)));
            return None;
        }
    };
    let settings =
        match parse_plain::<ServoSettings>(section("settings"), "settings", &spans, &origins) {
            Ok(s) => s,
            Err(ds) => {
                diagnostics.extend(ds.into_iter().map(|d| cx.tag(d)));
                return None;
            }
        };
    let checks = match parse_plain::<ChecksSettings>(section("checks"), "checks", &spans, &origins)
    {
        Ok(s) => s,
        Err(ds) => {
            diagnostics.extend(ds.into_iter().map(|d| cx.tag(d)));
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
    let description = document
        .get("description")
        .and_then(Value::as_str)
        .map(String::from);

    let mut mounts = Vec::new();
    for (key, connector) in &plan.mounts {
        let raw = section(key);
        let at = KeyPath::root().key(key.clone());
        let build_cx = BuildContext {
            mount: key.clone(),
            servo: name.clone(),
            base_dir: cx.base_dir.to_path_buf(),
        };
        let built = connector
            .normalize(raw.clone())
            .and_then(|normalized| connector.build(raw, &build_cx).map(|c| (normalized, c)));
        match built {
            Ok((settings, instance)) => mounts.push(Mount {
                key: key.clone(),
                connector,
                settings,
                instance: Arc::from(instance),
            }),
            Err(BuildError::Problems(problems)) => {
                for p in problems {
                    let path = KeyPath::from(
                        at.segments()
                            .iter()
                            .chain(p.path.segments())
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                    let d = located(Diagnostic::error(p.message), &spans, &path, false)
                        .help_opt(p.help);
                    let d = match origins.get(&path) {
                        Some(o) => d.origin(o),
                        None => d,
                    };
                    diagnostics.push(cx.tag(d));
                }
            }
            Err(BuildError::Connector(e)) => {
                let d = located(
                    Diagnostic::error(format!("cannot set up `{key}` ({}): {e}", connector.name)),
                    &spans,
                    &at,
                    true,
                )
                .help_opt(e.hint().map(String::from));
                diagnostics.push(cx.tag(d));
            }
        }
    }
    if diagnostics[before..]
        .iter()
        .any(|d| d.level == Level::Error)
    {
        return None;
    }
    Some(Assembly {
        name,
        description,
        settings,
        optimizer,
        checks,
        mounts,
        file: cx.file.to_path_buf(),
        base_dir: cx.base_dir.to_path_buf(),
        origins,
        spans,
    })
}

fn serde_problem(
    path: KeyPath,
    message: String,
    spans: &SpanMap,
    origins: &BTreeMap<KeyPath, Origin>,
) -> Diagnostic {
    let d = located(Diagnostic::error(message), spans, &path, false);
    match origins.get(&path) {
        Some(o) => d.origin(o),
        None => d,
    }
}

fn parse_plain<T: serde::de::DeserializeOwned>(
    value: Value,
    key: &str,
    spans: &SpanMap,
    origins: &BTreeMap<KeyPath, Origin>,
) -> Result<T, Vec<Diagnostic>> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = KeyPath::root().key(key);
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => path.push_index(*index),
                serde_path_to_error::Segment::Map { key } => path.push_key(key.clone()),
                _ => {}
            }
        }
        vec![serde_problem(
            path,
            e.into_inner().to_string(),
            spans,
            origins,
        )]
    })
}

fn parse_optimizer(
    value: Value,
    key: &str,
    form: OptimizerForm,
    spans: &SpanMap,
    origins: &BTreeMap<KeyPath, Origin>,
) -> Result<OptimizerSettings, Vec<Diagnostic>> {
    match form {
        OptimizerForm::Remote => {
            parse_plain(value, key, spans, origins).map(OptimizerSettings::Remote)
        }
        _ => parse_plain(value, key, spans, origins).map(OptimizerSettings::Embedded),
    }
}

fn plan_mounts(
    root: &Map<String, Value>,
    spans: &SpanMap,
    cx: &DocumentContext<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Plan {
    let registry = cx.registry;
    let names: Vec<&str> = registry.names().collect();
    let mut mounts: Vec<(String, &'static ConnectorDescription)> = Vec::new();
    let mut claimed = Vec::new();
    let connectors_path = KeyPath::root().key("connectors");
    let unknown_connector = |name: &str, path: &KeyPath| {
        let mut d = Diagnostic::error(format!("no connector is named `{name}`"))
            .expected(format!("one of {}", names.join(", ")));
        if let Some(s) = did_you_mean(name, names.iter().copied()) {
            d = d.help(format!("did you mean `{s}`?"));
        } else {
            d = d.help("`servo connectors` lists the connectors this binary has");
        }
        cx.tag(located(d, spans, path, false))
    };
    match root.get("connectors") {
        None | Some(Value::Null) => {
            for key in root.keys() {
                if let Some(c) = registry.by_default_key(key) {
                    mounts.push((key.clone(), c));
                }
            }
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = connectors_path.index(i);
                match item {
                    Value::String(name) => match registry.by_name(name) {
                        Some(c) if mounts.iter().any(|(k, _)| k == c.default_key) => {
                            diagnostics.push(cx.tag(located(
                                Diagnostic::error(format!("`{name}` is listed twice"))
                                    .help("to mount a connector twice, give each mount an alias: `connectors: {a: NAME, b: NAME}`"),
                                spans,
                                &path,
                                false,
                            )));
                        }
                        Some(c) => mounts.push((c.default_key.to_string(), c)),
                        None => diagnostics.push(unknown_connector(name, &path)),
                    },
                    other => diagnostics.push(
                        cx.tag(located(
                            Diagnostic::error("a `connectors` list holds connector names")
                                .expected("a connector name")
                                .found(kind_of(other)),
                            spans,
                            &path,
                            false,
                        )),
                    ),
                }
            }
        }
        Some(Value::Object(aliases)) => {
            let mut env_names: HashMap<String, String> = HashMap::new();
            for (alias, target) in aliases {
                claimed.push(alias.clone());
                let path = connectors_path.key(alias.clone());
                let Value::String(name) = target else {
                    diagnostics.push(
                        cx.tag(located(
                            Diagnostic::error(format!("alias `{alias}` must name a connector"))
                                .expected("a connector name, such as `prometheus`")
                                .found(kind_of(target)),
                            spans,
                            &path,
                            false,
                        )),
                    );
                    continue;
                };
                let Some(connector) = registry.by_name(name) else {
                    diagnostics.push(unknown_connector(name, &path));
                    continue;
                };
                if let Some(problem) = alias_problem(alias, connector, registry) {
                    diagnostics.push(cx.tag(located(problem, spans, &path, true)));
                    continue;
                }
                let env = servo_core::path::env_key(alias);
                if let Some(other) = env_names.insert(env.clone(), alias.clone()) {
                    diagnostics.push(cx.tag(located(
                        Diagnostic::error(format!(
                            "aliases `{other}` and `{alias}` both become SERVO_{env}_* in environment variables"
                        ))
                        .help("rename one of them so their environment names differ"),
                        spans,
                        &path,
                        true,
                    )));
                    continue;
                }
                mounts.push((alias.clone(), connector));
            }
        }
        Some(other) => diagnostics.push(
            cx.tag(located(
                Diagnostic::error(
                    "`connectors` must be a list of connector names or a map of alias → connector",
                )
                .expected(
                    "a list (`[prometheus, vegeta]`) or a mapping (`{prod_prom: prometheus}`)",
                )
                .found(kind_of(other)),
                spans,
                &connectors_path,
                false,
            )),
        ),
    }
    Plan { mounts, claimed }
}

/// Why `alias` cannot mount `connector`, if it cannot.
fn alias_problem(
    alias: &str,
    connector: &ConnectorDescription,
    registry: &Registry,
) -> Option<Diagnostic> {
    let valid_chars = alias
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'));
    let length = alias.chars().count();
    if !valid_chars || !(3..=128).contains(&length) {
        return Some(
            Diagnostic::error(format!("`{alias}` is not a valid alias"))
                .expected("3 to 128 letters, digits, `-`, `_`, `/` or `.`")
                .found(format!("`{alias}`")),
        );
    }
    if RESERVED_KEYS.contains(&alias) {
        return Some(
            Diagnostic::error(format!(
                "`{alias}` is a reserved key and cannot be an alias"
            ))
            .help("pick another alias"),
        );
    }
    if let Some(other) = registry.by_default_key(alias)
        && other.name != connector.name
    {
        return Some(
            Diagnostic::error(format!(
                "alias `{alias}` is the default key of the `{}` connector and cannot mount `{}`",
                other.name, connector.name
            ))
            .help(format!(
                "pick another alias, such as `{alias}_{}`",
                connector.name
            )),
        );
    }
    None
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
    let options = LoadOptions::default();
    let cx = DocumentContext {
        registry,
        options: &options,
        file: path,
        base_dir: Path::new("."),
        label: None,
    };
    let mut diagnostics = Vec::new();
    let mut mounts: Vec<(String, &'static ConnectorDescription)> = Vec::new();
    for document in &documents {
        if let Value::Object(root) = &document.value {
            for mount in plan_mounts(root, &document.spans, &cx, &mut diagnostics).mounts {
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

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn proxy_passwords_are_redacted_when_printed() {
        let proxies = Proxies::PerScheme(BTreeMap::from([(
            "https".to_string(),
            "http://u:p4ss@p:1".to_string(),
        )]));
        let printed = serde_json::to_string(&proxies).unwrap_or_default();
        assert!(
            !printed.contains("p4ss") && printed.contains("p:1"),
            "{printed}"
        );
    }
}
