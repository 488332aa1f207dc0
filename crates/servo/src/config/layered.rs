//! Stage 2 of the pipeline: a parsed document with its mounts decided and the values from outside
//! the file applied (defaults < file < `SERVO_*` variables < `--set` flags), each with its origin.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diagnostic::{Diagnostic, Origin, kind_of};
use super::overrides::{self, Section};
use super::plan::Plan;
use crate::schema::{self, MountSchema, OptimizerForm};
use crate::settings::{OptimizerSettings, SERVO_UID_VARIABLE};
use servo_core::connector::{ConnectorDescription, Registry};
use servo_core::path::{ENV_PREFIX, KeyPath};
use servo_yaml::{Document, SpanMap};

/// What the loader reads besides the file. The caller (the CLI) reads the process environment
/// and hands it in: the loader never looks at `std::env`, so what it sees is what it was given.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Environment variables (only `SERVO_*` names matter); the caller leaves out the ones that
    /// configure itself (`SERVO_CONFIG_FILE`, ...).
    pub env: Vec<(String, String)>,
    /// `--set PATH=VALUE` flags, applied last.
    pub sets: Vec<String>,
}

/// One document with every layer applied, ready for schema validation.
#[derive(Debug)]
pub struct Layered {
    /// The document: file values, then environment and flags over them; root keys that are
    /// neither reserved nor mounted are gone (reported by [`Plan::drop_unknown_keys`]).
    pub document: Value,
    /// Where each value of the file is.
    pub spans: SpanMap,
    /// Which key mounts which connector.
    pub mounts: Vec<(String, &'static ConnectorDescription)>,
    /// The form of the `optimizer` section, decided by the file's keys.
    pub optimizer_form: OptimizerForm,
    /// The composite schema of this document, as `servo schema` would publish it; when no
    /// variable or flag was layered on, only the sections the document holds are described
    /// ([`schema::composite_of`]).
    pub schema: Value,
    /// Values set by `SERVO_*` variables and `--set` flags, with their source.
    pub origins: BTreeMap<KeyPath, Origin>,
}

impl Layered {
    /// Plans the mounts of `document` and applies the environment and flags of `options`,
    /// reporting every problem into `diagnostics`; `None` when the document is not a mapping.
    pub fn new(
        document: Document,
        registry: &Registry,
        options: &LoadOptions,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Layered> {
        let Document { value, spans, span } = document;
        let mut root = match value {
            Value::Object(map) => map,
            other => {
                diagnostics.push(
                    Diagnostic::error(
                        "a config document must be a mapping of section names to settings",
                    )
                    .at(&span)
                    .expected("a mapping, such as `prometheus: {base_url: ...}`")
                    .found(kind_of(&other)),
                );
                return None;
            }
        };
        let servox = servox_variables(&mut root, &options.env);
        let plan = Plan::of(&root, &spans, registry, diagnostics);
        plan.drop_unknown_keys(&mut root, &spans, registry, diagnostics);

        let optimizer_form = match root.get("optimizer") {
            Some(section) if OptimizerSettings::is_remote(section) => OptimizerForm::Remote,
            _ => OptimizerForm::Embedded,
        };
        let mount_schemas: Vec<MountSchema<'_>> = plan
            .mounts
            .iter()
            .map(|(key, connector)| MountSchema { key, connector })
            .collect();
        let env = config_variables(&options.env, registry);
        // Variables and flags may set any section, so matching them takes every section's
        // schema; a document alone is validated against the schemas of the sections it holds.
        let layered_on = !env.is_empty() || !options.sets.is_empty();
        let composite = schema::composite_of(registry, &mount_schemas, optimizer_form, |key| {
            layered_on || root.contains_key(key)
        });

        let mut document = Value::Object(root);
        let mut origins: BTreeMap<KeyPath, Origin> = servox;
        let section_keys: Vec<&str> = ["optimizer", "settings", "checks"]
            .into_iter()
            .chain(plan.mounts.iter().map(|(k, _)| k.as_str()))
            .collect();
        let properties = composite.get("properties").unwrap_or(&Value::Null);
        let sections: Vec<Section<'_>> = section_keys
            .iter()
            .filter_map(|key| properties.get(key).map(|schema| Section { key, schema }))
            .collect();
        for source in [
            overrides::from_env(&env, &composite, &sections),
            overrides::from_flags(&options.sets, &composite, &sections),
        ] {
            diagnostics.extend(source.diagnostics);
            match overrides::apply(&mut document, &source.overrides) {
                Ok(set) => origins.extend(set),
                Err(errors) => diagnostics.extend(errors),
            }
        }
        Some(Layered {
            document,
            spans,
            mounts: plan.mounts,
            optimizer_form,
            schema: composite,
            origins,
        })
    }
}

/// The variables that may be config overrides: `SERVO_*`, less those a linked connector sets for
/// the processes it starts (a servo run by the `command` connector inherits them).
fn config_variables(env: &[(String, String)], registry: &Registry) -> Vec<(String, String)> {
    let reserved: Vec<&str> = registry.child_env_prefixes().collect();
    env.iter()
        .filter(|(name, _)| {
            name.starts_with(ENV_PREFIX)
                && name != SERVO_UID_VARIABLE
                && !reserved.iter().any(|p| name.starts_with(p))
        })
        .cloned()
        .collect()
}

/// ServoX's variables for the optimizer section (pydantic `env` names of `OpsaniOptimizer` and
/// `AppdynamicsOptimizer`), key by key.
const SERVOX_OPTIMIZER_VARIABLES: &[(&str, &str)] = &[
    ("OPSANI_OPTIMIZER", "id"),
    ("OPSANI_TOKEN", "token"),
    ("OPSANI_TOKEN_FILE", "token_file"),
    ("OPSANI_BASE_URL", "base_url"),
    ("OPSANI_URL", "url"),
    ("APPD_OPTIMIZER_ID", "optimizer_id"),
    ("APPD_TENANT_ID", "tenant_id"),
    ("APPD_CLIENT_ID", "client_id"),
    ("APPD_CLIENT_SECRET", "client_secret"),
    ("APPD_BASE_URL", "base_url"),
    ("APPD_URL", "url"),
    ("APPD_TOKEN_URL", "token_url"),
    ("APPD_CONNECTION_FILE", "connection_file"),
    ("APPD_TOKEN", "token"),
];

/// Whether `name` is one of ServoX's variables that servo reads too.
pub fn is_servox_variable(name: &str) -> bool {
    name == SERVO_UID_VARIABLE || SERVOX_OPTIMIZER_VARIABLES.iter().any(|(v, _)| *v == name)
}

/// Applies ServoX's variables as ServoX does (pydantic settings: a value in the file wins, the
/// variable fills a key the file leaves unset): `SERVO_UID`, and `OPSANI_*` / `APPD_*` into the
/// optimizer section, which they may create on their own (`OPSANI_OPTIMIZER` and `OPSANI_TOKEN`
/// alone drive a session). Only the form the file or the variables chose is filled: `OPSANI_*`
/// for the Opsani form (`id`), `APPD_*` for the AppDynamics one (`optimizer_id`).
fn servox_variables(
    root: &mut serde_json::Map<String, Value>,
    env: &[(String, String)],
) -> BTreeMap<KeyPath, Origin> {
    let mut origins = BTreeMap::new();
    let get = |name: &str| {
        env.iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    if !root.contains_key("servo_uid")
        && let Some(uid) = get(SERVO_UID_VARIABLE)
    {
        root.insert("servo_uid".into(), Value::String(uid));
        origins.insert(
            KeyPath::root().key("servo_uid"),
            Origin::Env {
                variable: SERVO_UID_VARIABLE.into(),
            },
        );
    }
    let section = root.get("optimizer").and_then(Value::as_object);
    let has = |key: &str| section.is_some_and(|s| s.contains_key(key));
    let appd = has("optimizer_id") || (!has("id") && get("APPD_OPTIMIZER_ID").is_some());
    let opsani = has("id") || (!appd && get("OPSANI_OPTIMIZER").is_some());
    if !appd && !opsani {
        return origins;
    }
    let prefix = if appd { "APPD_" } else { "OPSANI_" };
    let mut fills = Vec::new();
    for (variable, key) in SERVOX_OPTIMIZER_VARIABLES {
        if variable.starts_with(prefix)
            && !has(key)
            && !fills.iter().any(|(k, _, _)| k == key)
            && let Some(value) = get(variable)
        {
            fills.push((*key, *variable, value));
        }
    }
    let section = root
        .entry("optimizer")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if section.is_null() {
        *section = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(section) = section {
        for (key, variable, value) in fills {
            section.insert(key.into(), Value::String(value));
            origins.insert(
                KeyPath::root().key("optimizer").key(key),
                Origin::Env {
                    variable: variable.into(),
                },
            );
        }
    }
    origins
}
