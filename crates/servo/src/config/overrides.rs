//! Values set outside the file: `SERVO_*` environment variables and `--set` flags.
//!
//! Field names contain `_` (`base_url`), and so do env-ized aliases (`staging-prom` → `STAGING_PROM`), so
//! `SERVO_STAGING_PROM_BASE_URL` cannot be split blindly. The mapping is schema-aware: the variable's
//! name is matched against the key paths the document's schema actually has, and its value is parsed
//! as the type the schema gives that path.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::diagnostic::{Diagnostic, Origin};
use crate::schema::resolve;
use servo_core::path::{ENV_PREFIX, KeyPath, Segment, env_key};
use servo_core::suggest::did_you_mean;

/// One value to write into a document.
#[derive(Clone, Debug)]
pub struct Override {
    pub path: KeyPath,
    pub value: Value,
    pub origin: Origin,
    /// A whole-section JSON object is merged into the section instead of replacing it.
    pub merge: bool,
}

/// The result of reading the environment or flags: overrides to apply, and problems to report.
#[derive(Debug, Default)]
pub struct Overrides {
    pub overrides: Vec<Override>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Overrides {
    /// Adds one field's override from text, parsed as the schema's type, or the error (headed by
    /// `message`) saying what was expected.
    fn field(
        &mut self,
        raw: &str,
        root: &Value,
        leaf: &Value,
        path: KeyPath,
        origin: Origin,
        message: String,
    ) {
        match parse_value(raw, root, leaf) {
            Ok(value) => self.overrides.push(Override {
                path,
                value,
                origin,
                merge: false,
            }),
            Err(expected) => self.diagnostics.push(
                Diagnostic::error(message)
                    .path(&path)
                    .origin(&origin)
                    .expected(expected)
                    .found(shown(raw, root, leaf)),
            ),
        }
    }
}

/// A root key of the document that variables can address, with its schema.
pub struct Section<'a> {
    pub key: &'a str,
    pub schema: &'a Value,
}

/// Reads `SERVO_*` variables against the document's sections. The caller leaves out variables
/// that are not config (the CLI's own, those set for children).
pub fn from_env(vars: &[(String, String)], root: &Value, sections: &[Section<'_>]) -> Overrides {
    let mut out = Overrides::default();
    // Longest names first, so `SERVO_STAGING_PROM_X` prefers mount `staging_prom` over `staging`.
    let mut keyed: Vec<(String, &Section<'_>)> = sections
        .iter()
        .map(|s| (KeyPath::root().key(s.key).env_name(), s))
        .collect();
    keyed.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));

    for (name, raw) in vars {
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let origin = Origin::Env {
            variable: name.clone(),
        };
        match resolve_variable(name, root, &keyed) {
            Resolution::Section(section) => match serde_json::from_str::<Value>(raw) {
                Ok(value @ Value::Object(_)) => out.overrides.push(Override {
                    path: KeyPath::root().key(section.key),
                    value,
                    origin,
                    merge: true,
                }),
                Ok(other) => out.diagnostics.push(
                    Diagnostic::error(format!(
                        "{name} must hold a JSON object with `{}` settings",
                        section.key
                    ))
                    .origin(&origin)
                    .expected("a JSON object, such as {\"key\": \"value\"}")
                    .found(type_name(&other)),
                ),
                // The text is not echoed: a whole section may carry a secret (the optimizer's
                // `token`), and serde_json's message already says where the text goes wrong.
                Err(e) => out.diagnostics.push(
                    Diagnostic::error(format!("{name} is not valid JSON: {e}"))
                        .origin(&origin)
                        .expected(format!("a JSON object with `{}` settings", section.key))
                        .help(format!(
                            "the value is not shown, in case it holds a secret; check it with \
                             `printenv {name} | jq .`"
                        )),
                ),
            },
            Resolution::Field(path, leaf) => {
                let message = format!("{name} has a value `{path}` cannot take");
                out.field(raw, root, leaf, path, origin, message);
            }
            Resolution::NearMiss(section) => {
                let names = field_variables(root, section);
                let mut d = Diagnostic::warning(format!(
                    "{name} looks like an override of `{}` but names none of its settings; it is ignored",
                    section.key
                ));
                if let Some(s) = did_you_mean(name, names.iter().map(String::as_str)) {
                    d = d.help(format!("did you mean {s}?"));
                }
                out.diagnostics.push(d);
            }
            Resolution::Unknown => {
                let candidates: Vec<String> = keyed
                    .iter()
                    .flat_map(|(_, s)| {
                        let mut names = field_variables(root, s);
                        names.push(KeyPath::root().key(s.key).env_name());
                        names
                    })
                    .collect();
                if let Some(s) = did_you_mean(name, candidates.iter().map(String::as_str)) {
                    out.diagnostics.push(
                        Diagnostic::warning(format!(
                            "{name} matches no section of this config; it is ignored"
                        ))
                        .help(format!("did you mean {s}?")),
                    );
                }
            }
        }
    }
    out
}

/// Reads `--set PATH=VALUE` flags (`--set prometheus.base_url=http://127.0.0.1:9090`).
pub fn from_flags(flags: &[String], root: &Value, sections: &[Section<'_>]) -> Overrides {
    let mut out = Overrides::default();
    for flag in flags {
        let Some((path_text, raw)) = flag.split_once('=') else {
            out.diagnostics.push(
                Diagnostic::error(format!("--set {flag}: missing `=`"))
                    .expected("PATH=VALUE, such as prometheus.base_url=http://127.0.0.1:9090"),
            );
            continue;
        };
        // Messages and origins name the flag by its path only: the value may be a secret
        // (`--set optimizer.token=...`), and `servo config --origins` prints origins verbatim.
        let path_text = path_text.trim();
        let origin = Origin::Flag {
            flag: path_text.to_string(),
        };
        let path: KeyPath = match path_text.parse() {
            Ok(p) => p,
            Err(e) => {
                out.diagnostics.push(
                    Diagnostic::error(format!(
                        "--set {path_text}: `{path_text}` is not a key path: {e}"
                    ))
                    .expected("a dotted key path, such as prometheus.metrics[0].query"),
                );
                continue;
            }
        };
        let Some(Segment::Key(head)) = path.segments().first() else {
            out.diagnostics.push(Diagnostic::error(format!(
                "--set {path_text}: a key path starts with a section name"
            )));
            continue;
        };
        let Some(section) = sections.iter().find(|s| s.key == head) else {
            let mut d = Diagnostic::error(format!(
                "--set {path_text}: this config has no section `{head}`"
            ));
            if let Some(s) = did_you_mean(head, sections.iter().map(|s| s.key)) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            out.diagnostics.push(d);
            continue;
        };
        match schema_at(root, section.schema, &path.segments()[1..]) {
            Ok(leaf) => {
                let message = format!("--set {path_text}: `{path}` cannot take this value");
                out.field(raw, root, leaf, path, origin, message);
            }
            Err((depth, suggestion)) => {
                let known = KeyPath::from(path.segments()[..depth + 1].to_vec());
                let mut d = Diagnostic::error(format!(
                    "--set {path_text}: `{known}` has no setting `{}`",
                    path.segments()
                        .get(depth + 1)
                        .map(segment_text)
                        .unwrap_or_default()
                ));
                if let Some(s) = suggestion {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                out.diagnostics.push(d);
            }
        }
    }
    out
}

/// How a rejected raw value is quoted in a diagnostic: verbatim, unless the setting it was meant
/// for is a secret (`"writeOnly": true` in the schema, which is how `Secret<T>` describes itself).
fn shown(raw: &str, root: &Value, leaf: &Value) -> String {
    if is_secret(root, leaf, 0) {
        "a value that is not shown, because this setting is a secret".to_string()
    } else {
        format!("`{raw}`")
    }
}

/// Whether a schema node (or any branch of it) is marked `writeOnly`.
fn is_secret(root: &Value, node: &Value, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    let node = resolve(root, node);
    if node.get("writeOnly").and_then(Value::as_bool) == Some(true) {
        return true;
    }
    ["anyOf", "oneOf", "allOf"].iter().any(|keyword| {
        node.get(*keyword)
            .and_then(Value::as_array)
            .is_some_and(|branches| branches.iter().any(|b| is_secret(root, b, depth + 1)))
    })
}

fn segment_text(segment: &Segment) -> String {
    match segment {
        Segment::Key(k) => k.clone(),
        Segment::Index(i) => format!("[{i}]"),
    }
}

/// Writes overrides into a document and returns the paths they set, for origins.
pub fn apply(
    document: &mut Value,
    overrides: &[Override],
) -> Result<Vec<(KeyPath, Origin)>, Vec<Diagnostic>> {
    let mut origins = Vec::new();
    let mut errors = Vec::new();
    // Whole sections first: a field variable is more specific and wins over a section variable.
    let ordered = overrides
        .iter()
        .filter(|o| o.merge)
        .chain(overrides.iter().filter(|o| !o.merge));
    for o in ordered {
        match slot(document, o.path.segments()) {
            Ok(target) => {
                if o.merge {
                    if !target.is_object() {
                        *target = Value::Object(Map::new());
                    }
                    merge(target, o.value.clone());
                    for leaf in leaves(&o.value, o.path.clone()) {
                        origins.push((leaf, o.origin.clone()));
                    }
                } else {
                    *target = o.value.clone();
                    origins.push((o.path.clone(), o.origin.clone()));
                }
            }
            Err(message) => errors.push(Diagnostic::error(message).path(&o.path).origin(&o.origin)),
        }
    }
    if errors.is_empty() {
        Ok(origins)
    } else {
        Err(errors)
    }
}

/// The value at `segments`, creating mappings on the way; an index past a list's end is an error
/// (one just past the end appends).
fn slot<'a>(node: &'a mut Value, segments: &[Segment]) -> Result<&'a mut Value, String> {
    let Some((segment, rest)) = segments.split_first() else {
        return Ok(node);
    };
    let here = |depth: usize| KeyPath::from(segments[..depth].to_vec());
    match segment {
        Segment::Key(key) => {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            let Value::Object(map) = node else {
                unreachable!("just made an object");
            };
            slot(map.entry(key.clone()).or_insert(Value::Null), rest)
        }
        Segment::Index(index) => {
            if node.is_null() {
                *node = Value::Array(Vec::new());
            }
            let Value::Array(items) = node else {
                return Err(format!("`{}` is not a list", here(0)));
            };
            if *index == items.len() {
                items.push(Value::Null);
            }
            let len = items.len();
            match items.get_mut(*index) {
                Some(item) => slot(item, rest),
                None => Err(format!(
                    "the list has {len} item(s); index {index} is past its end"
                )),
            }
        }
    }
}

/// Deep-merges `patch` into `target`: mappings merge key by key, anything else replaces.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

fn leaves(value: &Value, at: KeyPath) -> Vec<KeyPath> {
    match value {
        Value::Object(map) if !map.is_empty() => map
            .iter()
            .flat_map(|(k, v)| leaves(v, at.key(k.clone())))
            .collect(),
        _ => vec![at],
    }
}

enum Resolution<'s, 'a> {
    Section(&'s Section<'a>),
    Field(KeyPath, &'a Value),
    NearMiss(&'s Section<'a>),
    Unknown,
}

fn resolve_variable<'s, 'a>(
    name: &str,
    root: &'a Value,
    keyed: &'s [(String, &'s Section<'a>)],
) -> Resolution<'s, 'a> {
    let mut near = None;
    for (key, section) in keyed {
        if name == key {
            return Resolution::Section(section);
        }
        if let Some(fields) = name
            .strip_prefix(key.as_str())
            .and_then(|r| r.strip_prefix('_'))
        {
            let base = KeyPath::root().key(section.key);
            if let Some((path, leaf)) = match_fields(root, section.schema, fields, base, 0) {
                return Resolution::Field(path, leaf);
            }
            near.get_or_insert(*section);
        }
    }
    match near {
        Some(section) => Resolution::NearMiss(section),
        None => Resolution::Unknown,
    }
}

/// The object schemas a node can be: itself, its `anyOf`/`oneOf` branches, `then`/`else`.
fn object_branches<'a>(root: &'a Value, node: &'a Value, out: &mut Vec<&'a Value>, depth: usize) {
    if depth > 8 {
        return;
    }
    let node = resolve(root, node);
    if node.get("properties").is_some() || node.get("items").is_some() {
        out.push(node);
    }
    for keyword in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = node.get(keyword) {
            for branch in branches {
                object_branches(root, branch, out, depth + 1);
            }
        }
    }
    for keyword in ["then", "else"] {
        if let Some(branch) = node.get(keyword) {
            object_branches(root, branch, out, depth + 1);
        }
    }
}

/// Matches `BASE_URL` / `METRICS_0_QUERY` against the properties under `node`.
fn match_fields<'a>(
    root: &'a Value,
    node: &'a Value,
    tokens: &str,
    at: KeyPath,
    depth: usize,
) -> Option<(KeyPath, &'a Value)> {
    if depth > 16 {
        return None;
    }
    let mut branches = Vec::new();
    object_branches(root, node, &mut branches, 0);
    for branch in &branches {
        if let Some(Value::Object(properties)) = branch.get("properties") {
            for (name, child) in properties {
                let key = env_key(name);
                if tokens == key {
                    return Some((at.key(name.clone()), child));
                }
                if let Some(rest) = tokens
                    .strip_prefix(key.as_str())
                    .and_then(|r| r.strip_prefix('_'))
                    && let Some(found) =
                        match_fields(root, child, rest, at.key(name.clone()), depth + 1)
                {
                    return Some(found);
                }
            }
        }
        if let Some(items) = branch.get("items") {
            let digits: String = tokens.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(index) = digits.parse::<usize>() {
                let rest = &tokens[digits.len()..];
                if rest.is_empty() {
                    return Some((at.index(index), items));
                }
                if let Some(rest) = rest.strip_prefix('_')
                    && let Some(found) = match_fields(root, items, rest, at.index(index), depth + 1)
                {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// Every `SERVO_<KEY>_<FIELD>` name a section accepts (list indices left out), for suggestions.
fn field_variables(root: &Value, section: &Section<'_>) -> Vec<String> {
    fn walk(root: &Value, node: &Value, at: &KeyPath, out: &mut Vec<String>, depth: usize) {
        if depth > 4 {
            return;
        }
        let mut branches = Vec::new();
        object_branches(root, node, &mut branches, 0);
        for branch in branches {
            if let Some(Value::Object(properties)) = branch.get("properties") {
                for (name, child) in properties {
                    let path = at.key(name.clone());
                    out.push(path.env_name());
                    walk(root, child, &path, out, depth + 1);
                }
            }
        }
    }
    let mut out = Vec::new();
    let at = KeyPath::root().key(section.key);
    walk(root, section.schema, &at, &mut out, 0);
    out
}

/// The schema of the value at `segments` below `node`; on failure, the depth that failed and a
/// suggestion for the missing key.
fn schema_at<'a>(
    root: &'a Value,
    node: &'a Value,
    segments: &[Segment],
) -> Result<&'a Value, (usize, Option<String>)> {
    let mut current = node;
    for (depth, segment) in segments.iter().enumerate() {
        let mut branches = Vec::new();
        object_branches(root, current, &mut branches, 0);
        let next = branches.iter().find_map(|b| match segment {
            Segment::Key(key) => b.get("properties").and_then(|p| p.get(key)),
            Segment::Index(_) => b.get("items"),
        });
        current = match next {
            Some(n) => n,
            None => {
                let names: Vec<&str> = branches
                    .iter()
                    .filter_map(|b| b.get("properties").and_then(Value::as_object))
                    .flat_map(|p| p.keys().map(String::as_str))
                    .collect();
                let suggestion = match segment {
                    Segment::Key(key) => {
                        did_you_mean(key, names.iter().copied()).map(str::to_string)
                    }
                    Segment::Index(_) => None,
                };
                return Err((depth, suggestion));
            }
        };
    }
    Ok(current)
}

/// The JSON types a schema node admits (empty = anything).
fn admitted_types(root: &Value, node: &Value, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    let node = resolve(root, node);
    match node.get("type") {
        Some(Value::String(t)) => {
            out.insert(t.clone());
        }
        Some(Value::Array(types)) => {
            out.extend(types.iter().filter_map(Value::as_str).map(String::from))
        }
        _ => {}
    }
    for keyword in ["enum", "const"] {
        if let Some(values) = node.get(keyword) {
            let values = match values {
                Value::Array(a) if keyword == "enum" => a.clone(),
                other => vec![other.clone()],
            };
            for v in values {
                out.insert(type_name(&v).to_string());
            }
        }
    }
    for keyword in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = node.get(keyword) {
            for branch in branches {
                admitted_types(root, branch, out, depth + 1);
            }
        }
    }
    if node.get("properties").is_some() {
        out.insert("object".into());
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Parses a variable's text as the schema's type; on failure, says what was expected.
fn parse_value(raw: &str, root: &Value, leaf: &Value) -> Result<Value, String> {
    let mut types = BTreeSet::new();
    admitted_types(root, leaf, &mut types, 0);
    let admits = |t: &str| {
        types.is_empty() || types.contains(t) || (t == "integer" && types.contains("number"))
    };
    if types.len() == 1 && types.contains("string") {
        return Ok(Value::String(raw.to_string()));
    }
    if let Ok(parsed) = serde_json::from_str::<Value>(raw.trim()) {
        let t = type_name(&parsed);
        let integral_number = t == "number"
            && types.contains("integer")
            && parsed.as_f64().is_some_and(|f| f.fract() == 0.0);
        if admits(t) || integral_number {
            return Ok(parsed);
        }
    }
    if admits("boolean") {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => return Ok(Value::Bool(true)),
            "false" | "no" | "off" | "0" => return Ok(Value::Bool(false)),
            _ => {}
        }
    }
    if admits("string") {
        return Ok(Value::String(raw.to_string()));
    }
    let mut expected: Vec<String> = types
        .iter()
        .filter(|t| *t != "null")
        .map(|t| match t.as_str() {
            "integer" => "a whole number".to_string(),
            "number" => "a number".to_string(),
            "boolean" => "true or false".to_string(),
            "array" => "a JSON list, such as [\"a\", \"b\"]".to_string(),
            "object" => "a JSON object, such as {\"key\": \"value\"}".to_string(),
            other => other.to_string(),
        })
        .collect();
    expected.dedup();
    Err(expected.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "$defs": {
                "prom": {
                    "type": "object",
                    "properties": {
                        "base_url": { "type": "string" },
                        "streaming_interval": { "type": ["string", "number", "null"] },
                        "fast_fail": { "$ref": "#/$defs/ff" },
                        "metrics": { "type": "array", "items": { "type": "object", "properties": {
                            "name": { "type": "string" }, "query": { "type": "string" } } } }
                    }
                },
                "ff": { "type": "object", "properties": { "disabled": { "type": "boolean" }, "span": { "type": "integer" } } }
            }
        })
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn underscored_fields_of_alias_mounts_resolve_through_the_schema() {
        let root = schema();
        let section_schema = json!({ "$ref": "#/$defs/prom" });
        let sections = [
            Section {
                key: "staging-prom",
                schema: &section_schema,
            },
            Section {
                key: "staging",
                schema: &section_schema,
            },
        ];
        let out = from_env(
            &vars(&[
                ("SERVO_STAGING_PROM_BASE_URL", "http://a"),
                ("SERVO_STAGING_FAST_FAIL_DISABLED", "true"),
                ("SERVO_STAGING_PROM_METRICS_0_QUERY", "up"),
            ]),
            &root,
            &sections,
        );
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        let got: Vec<(String, Value)> = out
            .overrides
            .iter()
            .map(|o| (o.path.to_string(), o.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("staging-prom.base_url".to_string(), json!("http://a")),
                ("staging.fast_fail.disabled".to_string(), json!(true)),
                ("staging-prom.metrics[0].query".to_string(), json!("up")),
            ]
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_near_misses_warn() {
        let root = schema();
        let section_schema = json!({ "$ref": "#/$defs/prom" });
        let sections = [Section {
            key: "prometheus",
            schema: &section_schema,
        }];
        let out = from_env(
            &vars(&[
                ("SERVO_PROMETHEUS_FAST_FAIL_SPAN", "lots"),
                ("SERVO_PROMETHEUS_BASEURL", "x"),
                ("SERVO_PROMETHEUS", "[1]"),
            ]),
            &root,
            &sections,
        );
        assert!(out.overrides.is_empty());
        let messages: Vec<String> = out.diagnostics.iter().map(|d| format!("{d:?}")).collect();
        assert!(
            messages[0].contains("SERVO_PROMETHEUS_FAST_FAIL_SPAN"),
            "{}",
            messages[0]
        );
        assert!(messages[0].contains("a whole number"), "{}", messages[0]);
        assert!(
            messages[1].contains("SERVO_PROMETHEUS_BASE_URL"),
            "{}",
            messages[1]
        );
        assert!(messages[2].contains("JSON object"), "{}", messages[2]);
    }

    #[test]
    fn section_json_merges_and_fields_win() {
        let mut doc = json!({ "vegeta": { "rate": "10/1s", "duration": "5m", "workers": 2 } });
        let overrides = vec![
            Override {
                path: KeyPath::root().key("vegeta").key("rate"),
                value: json!("99/1s"),
                origin: Origin::Env {
                    variable: "SERVO_VEGETA_RATE".into(),
                },
                merge: false,
            },
            Override {
                path: KeyPath::root().key("vegeta"),
                value: json!({ "rate": "50/1s", "duration": "20m" }),
                origin: Origin::Env {
                    variable: "SERVO_VEGETA".into(),
                },
                merge: true,
            },
        ];
        apply(&mut doc, &overrides).expect("applies");
        assert_eq!(
            doc,
            json!({ "vegeta": { "rate": "99/1s", "duration": "20m", "workers": 2 } })
        );
    }
}
