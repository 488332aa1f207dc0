//! JSON Schemas of config files: one per connector, and the composite schema of a whole config.
//!
//! The composite schema is the single source of truth for validation: the loader validates every
//! document against the schema of *that* document (its aliases become properties holding the mounted
//! connector's schema), so `servo schema` and `servo validate` cannot disagree.

use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use crate::settings::optimizer::{EmbeddedOptimizer, RemoteOptimizer};
use crate::settings::{ALIAS_PATTERN, ChecksSettings, RESERVED_KEYS, ServoSettings};
use servo_core::connector::{ConnectorDescription, Registry};
use servo_core::schema::{DIALECT, generator, standalone};

fn schema_of<T: JsonSchema>() -> Value {
    let mut generator = generator();
    let schema = T::json_schema(&mut generator);
    standalone(schema, generator)
}

/// How one root key of a document is mounted.
#[derive(Clone, Copy, Debug)]
pub struct MountSchema<'a> {
    pub key: &'a str,
    pub connector: &'static ConnectorDescription,
}

/// Which form of the `optimizer` section a document uses, decided by its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerForm {
    Embedded,
    Remote,
    /// Either: the published schema chooses by the presence of `id` or `url`.
    Either,
}

/// The schema of one config document with the given mounts.
///
/// The `connectors` key lists connector names (editors complete them); the loader checks that key
/// itself, with better messages, before validating.
pub fn composite(
    registry: &Registry,
    mounts: &[MountSchema<'_>],
    optimizer: OptimizerForm,
) -> Value {
    composite_of(registry, mounts, optimizer, |_| true)
}

/// [`composite`] with only the sections (`optimizer`, `settings`, `checks`, a mount) that `full`
/// names described: every other section keeps its property, as `true`, and its definitions are
/// left out. A document that holds none of the other sections gets the same verdict and the same
/// errors from both schemas, and generating the sections' schemas is most of what validating a
/// config costs, so the loader asks only for those the document holds.
pub fn composite_of(
    registry: &Registry,
    mounts: &[MountSchema<'_>],
    optimizer: OptimizerForm,
    full: impl Fn(&str) -> bool,
) -> Value {
    let mut defs = Map::new();
    let mut properties = Map::new();

    let embed = |defs: &mut Map<String, Value>, name: &str, schema: Value| -> Value {
        let pointer_prefix = format!("#/$defs/{name}");
        let mut schema = schema;
        if let Some(Value::Object(inner)) = schema.as_object_mut().and_then(|o| o.remove("$defs")) {
            for (def_name, mut def) in inner {
                rebase_refs(&mut def, name);
                defs.insert(format!("{name}.{def_name}"), def);
            }
        }
        rebase_refs(&mut schema, name);
        defs.insert(name.to_string(), schema);
        json!({ "$ref": pointer_prefix })
    };

    let optimizer_schema = match optimizer {
        _ if !full("optimizer") => Value::Bool(true),
        OptimizerForm::Embedded => embed(
            &mut defs,
            "optimizer.embedded",
            schema_of::<EmbeddedOptimizer>(),
        ),
        OptimizerForm::Remote => embed(
            &mut defs,
            "optimizer.remote",
            schema_of::<RemoteOptimizer>(),
        ),
        OptimizerForm::Either => {
            let embedded = embed(
                &mut defs,
                "optimizer.embedded",
                schema_of::<EmbeddedOptimizer>(),
            );
            let remote = embed(
                &mut defs,
                "optimizer.remote",
                schema_of::<RemoteOptimizer>(),
            );
            json!({
                "description": "The optimizer: embedded (the default) or a remote Opsani-protocol optimizer (when `id`, `url` or `optimizer_id` is set).",
                "type": "object",
                "if": { "anyOf": [ { "required": ["id"] }, { "required": ["url"] }, { "required": ["optimizer_id"] } ] },
                "then": remote,
                "else": embedded,
            })
        }
    };
    properties.insert("optimizer".into(), optimizer_schema);
    let settings = if full("settings") {
        embed(&mut defs, "settings", schema_of::<ServoSettings>())
    } else {
        Value::Bool(true)
    };
    properties.insert("settings".into(), settings);
    let checks = if full("checks") {
        embed(&mut defs, "checks", schema_of::<ChecksSettings>())
    } else {
        Value::Bool(true)
    };
    properties.insert("checks".into(), checks);
    properties.insert(
        "name".into(),
        json!({ "type": "string", "minLength": 1, "description": "The servo's name (defaults to the optimizer's application name, else `servo`)." }),
    );
    properties.insert(
        "description".into(),
        json!({ "type": ["string", "null"], "description": "Free text describing this servo." }),
    );
    properties.insert(
        "servo_uid".into(),
        json!({ "type": ["string", "null"], "description": "This servo's unique id, sent in every request to a remote optimizer (ServoX's `servo_uid`; `SERVO_UID` fills it when the file leaves it unset)." }),
    );
    properties.insert(
        "no_diagnostics".into(),
        json!({ "type": "boolean", "description": "ServoX's switch for its diagnostics upload. servo sends no diagnostics, which is what `true` asks; `false` is accepted with a warning." }),
    );
    let names: Vec<&str> = registry.names().collect();
    properties.insert(
        "connectors".into(),
        json!({
            "description": "Which connectors to activate: a list of connector names (each mounted under its default key) or a map of alias → connector name. When absent, every root key that is a connector's default key activates it.",
            "anyOf": [
                { "type": "array", "items": { "enum": names }, "uniqueItems": true },
                {
                    "type": "object",
                    "propertyNames": { "pattern": ALIAS_PATTERN, "not": { "enum": RESERVED_KEYS } },
                    "additionalProperties": { "enum": names },
                },
            ],
        }),
    );

    for mount in mounts {
        if !full(mount.key) {
            properties.insert(mount.key.to_string(), Value::Bool(true));
            continue;
        }
        let name = mount.connector.name;
        if !defs.contains_key(name) {
            embed(&mut defs, name, mount.connector.schema());
        }
        // A mount may be left empty (`prometheus:` with nothing under it): its defaults apply.
        properties.insert(
            mount.key.to_string(),
            json!({ "anyOf": [ { "$ref": format!("#/$defs/{name}") }, { "type": "null" } ] }),
        );
    }

    // Built field by field: `json!` would copy `properties` and `$defs` whole (it serializes the
    // values it is given), which was a third of this function's allocations.
    let mut schema = Map::new();
    schema.insert("$schema".into(), Value::String(DIALECT.into()));
    schema.insert("title".into(), Value::String("servo configuration".into()));
    schema.insert(
        "description".into(),
        Value::String(
            "A servo config document: the connectors to mount, their settings and the optimizer."
                .into(),
        ),
    );
    schema.insert("type".into(), Value::String("object".into()));
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("additionalProperties".into(), Value::Bool(false));
    schema.insert("$defs".into(), Value::Object(defs));
    Value::Object(schema)
}

/// The schema of a config that mounts every registered connector under its default key.
pub fn all(registry: &Registry) -> Value {
    let mounts: Vec<MountSchema<'_>> = registry
        .all()
        .iter()
        .map(|c| MountSchema {
            key: c.default_key,
            connector: c,
        })
        .collect();
    composite(registry, &mounts, OptimizerForm::Either)
}

/// One connector's schema as a standalone document.
pub fn connector(description: &ConnectorDescription) -> Value {
    let mut schema = description.schema();
    if let Value::Object(object) = &mut schema {
        let mut with_header = Map::new();
        with_header.insert("$schema".into(), Value::String(DIALECT.into()));
        with_header.insert(
            "title".into(),
            Value::String(format!("servo connector `{}` settings", description.name)),
        );
        with_header.extend(std::mem::take(object));
        *object = with_header;
    }
    schema
}

/// Rewrites `#/$defs/X` references of a schema about to be nested under `$defs/{owner}`.
fn rebase_refs(value: &mut Value, owner: &str) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                if key == "$ref"
                    && let Value::String(reference) = child
                {
                    if let Some(def) = reference.strip_prefix("#/$defs/") {
                        *reference = format!("#/$defs/{owner}.{def}");
                    } else if reference == "#" {
                        *reference = format!("#/$defs/{owner}");
                    }
                } else {
                    rebase_refs(child, owner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rebase_refs(v, owner)),
        _ => {}
    }
}

/// Looks a schema node up by a keyword location (`/$defs/prometheus/properties/base_url/pattern`).
pub fn node_at<'a>(schema: &'a Value, keyword_location: &str) -> Option<&'a Value> {
    let mut node = schema;
    for raw in keyword_location.split('/').filter(|s| !s.is_empty()) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(o) => o.get(&segment)?,
            Value::Array(a) => a.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Follows `$ref`s (local ones only) until a node that is not a reference.
pub fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match node.get("$ref").and_then(Value::as_str) {
            Some(reference) => match reference.strip_prefix('#') {
                Some(pointer) => match node_at(root, pointer) {
                    Some(target) => node = target,
                    None => return node,
                },
                None => return node,
            },
            None => return node,
        }
    }
    node
}
