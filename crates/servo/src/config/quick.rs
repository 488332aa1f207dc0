//! A quick answer to "does the schema accept this document?" for the common case, a valid config.
//!
//! The full validator ([`super::validate`]) compiles the composite schema before it checks
//! anything; on a valid config that compilation was most of a one-shot command's time, and all it
//! produced was an empty list. This walks the published schema as it is, without compiling it, and
//! answers [`Verdict::Valid`] only when it is sure: a keyword it does not know, a `pattern` that is
//! not a unit's, a number it cannot compare exactly all give [`Verdict::Unknown`], and the caller
//! then runs the full validator, whose errors the diagnostics are made of. So the diagnostics of
//! an invalid config are exactly what they were; only a valid one skips the compilation.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;

use regex::Regex;

use serde_json::{Map, Number, Value};

use crate::schema::node_at;
use servo_core::units::UnitSyntax;

/// What the quick check can say of an instance against a schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Invalid,
    /// The check cannot tell (a keyword it does not implement, say): ask the full validator.
    Unknown,
}

use Verdict::{Invalid, Unknown, Valid};

impl Verdict {
    fn of(valid: bool) -> Verdict {
        if valid { Valid } else { Invalid }
    }

    fn negated(self) -> Verdict {
        match self {
            Valid => Invalid,
            Invalid => Valid,
            Unknown => Unknown,
        }
    }

    /// Both must hold: an invalid side decides, else an unknown one.
    fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }
}

/// Keywords that only annotate: they never fail an instance (in draft 2020-12 `format` is an
/// annotation unless the validator is told to assert it; servo's is not).
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$defs",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    // Read by `if`.
    "then",
    "else",
];

/// How deep `$ref`s may nest before the check gives up (a schema that refers to itself without
/// descending into the instance would otherwise never end).
const MAX_DEPTH: usize = 64;

/// Whether `schema` (a standalone draft 2020-12 document, local `$ref`s only) accepts `instance`,
/// as far as the quick check can tell.
pub fn check(schema: &Value, instance: &Value) -> Verdict {
    let walk = Walk {
        root: schema,
        patterns: RefCell::default(),
    };
    walk.valid(schema, instance, 0)
}

struct Walk<'a> {
    root: &'a Value,
    /// Each `pattern` compiled once per check (a config may mount a connector a thousand times);
    /// `None` when this engine does not take it.
    patterns: RefCell<HashMap<&'a str, Option<Regex>>>,
}

impl<'a> Walk<'a> {
    /// A pattern is an ECMA-262 regular expression. On ASCII text without carriage returns the
    /// `regex` crate reads the ones it accepts alike (`\d`, `\w`, `\s` and `.` differ only
    /// beyond ASCII, and `.` on `\r`); on other text, the validator decides.
    fn matches(&self, pattern: &'a str, text: &str) -> Verdict {
        if !text.is_ascii() || text.contains('\r') {
            return Unknown;
        }
        let mut patterns = self.patterns.borrow_mut();
        let compiled = patterns
            .entry(pattern)
            .or_insert_with(|| Regex::new(pattern).ok());
        match compiled {
            Some(regex) => Verdict::of(regex.is_match(text)),
            None => Unknown,
        }
    }

    fn valid(&self, schema: &'a Value, instance: &Value, depth: usize) -> Verdict {
        match schema {
            Value::Bool(accepts) => Verdict::of(*accepts),
            Value::Object(keywords) => {
                // A keyword this does not know may change what the others mean (`$id` moves the
                // base of `$ref`s): the whole object is then unknown.
                if keywords.keys().any(|k| !is_known(k)) {
                    return Unknown;
                }
                let mut verdict = Valid;
                for (keyword, value) in keywords {
                    verdict = verdict.and(self.keyword(keywords, keyword, value, instance, depth));
                    if verdict == Invalid {
                        break;
                    }
                }
                verdict
            }
            _ => Unknown,
        }
    }

    fn keyword(
        &self,
        parent: &'a Map<String, Value>,
        keyword: &str,
        value: &'a Value,
        instance: &Value,
        depth: usize,
    ) -> Verdict {
        match keyword {
            "$ref" => {
                let Some(pointer) = value.as_str().and_then(|r| r.strip_prefix('#')) else {
                    return Unknown;
                };
                match node_at(self.root, pointer) {
                    Some(target) if depth < MAX_DEPTH => self.valid(target, instance, depth + 1),
                    _ => Unknown,
                }
            }
            "type" => match value {
                Value::String(name) => has_type(name, instance),
                Value::Array(names) => any(names.iter().map(|name| match name.as_str() {
                    Some(name) => has_type(name, instance),
                    None => Unknown,
                })),
                _ => Unknown,
            },
            "properties" => match (value.as_object(), instance.as_object()) {
                (Some(properties), Some(object)) => all(properties
                    .iter()
                    .filter_map(|(name, sub)| Some((sub, object.get(name)?)))
                    .map(|(sub, v)| self.valid(sub, v, depth))),
                (None, _) => Unknown,
                (Some(_), None) => Valid,
            },
            "additionalProperties" => {
                let Some(object) = instance.as_object() else {
                    return Valid;
                };
                let known = match parent.get("properties") {
                    None => None,
                    Some(Value::Object(known)) => Some(known),
                    Some(_) => return Unknown,
                };
                all(object
                    .iter()
                    .filter(|(name, _)| !known.is_some_and(|k| k.contains_key(*name)))
                    .map(|(_, v)| self.valid(value, v, depth)))
            }
            "required" => match (value.as_array(), instance.as_object()) {
                (Some(names), Some(object)) => all(names.iter().map(|name| match name.as_str() {
                    Some(name) => Verdict::of(object.contains_key(name)),
                    None => Unknown,
                })),
                (None, _) => Unknown,
                (Some(_), None) => Valid,
            },
            "enum" => match value.as_array() {
                Some(options) => any(options.iter().map(|o| same(o, instance))),
                None => Unknown,
            },
            "const" => same(value, instance),
            "anyOf" => match value.as_array() {
                Some(branches) => any(branches.iter().map(|b| self.valid(b, instance, depth))),
                None => Unknown,
            },
            "allOf" => match value.as_array() {
                Some(branches) => all(branches.iter().map(|b| self.valid(b, instance, depth))),
                None => Unknown,
            },
            "oneOf" => {
                let Some(branches) = value.as_array() else {
                    return Unknown;
                };
                let mut matched = 0;
                for branch in branches {
                    match self.valid(branch, instance, depth) {
                        Valid => matched += 1,
                        Invalid => {}
                        Unknown => return Unknown,
                    }
                }
                Verdict::of(matched == 1)
            }
            "not" => self.valid(value, instance, depth).negated(),
            "if" => match self.valid(value, instance, depth) {
                Unknown => Unknown,
                condition => {
                    let branch = if condition == Valid { "then" } else { "else" };
                    parent
                        .get(branch)
                        .map_or(Valid, |b| self.valid(b, instance, depth))
                }
            },
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                let (Some(n), Some(limit)) = (instance.as_number(), value.as_number()) else {
                    return if instance.is_number() { Unknown } else { Valid };
                };
                match (compare(n, limit), keyword) {
                    (None, _) => Unknown,
                    (Some(o), "minimum") => Verdict::of(o != Ordering::Less),
                    (Some(o), "maximum") => Verdict::of(o != Ordering::Greater),
                    (Some(o), "exclusiveMinimum") => Verdict::of(o == Ordering::Greater),
                    (Some(o), _) => Verdict::of(o == Ordering::Less),
                }
            }
            "minLength" | "maxLength" => match (instance.as_str(), value.as_u64()) {
                (Some(text), Some(limit)) => {
                    // A length is a count of code points.
                    let length = text.chars().count() as u64;
                    Verdict::of(if keyword == "minLength" {
                        length >= limit
                    } else {
                        length <= limit
                    })
                }
                (_, None) => Unknown,
                (None, Some(_)) => Valid,
            },
            "minItems" | "maxItems" => match (instance.as_array(), value.as_u64()) {
                (Some(items), Some(limit)) => {
                    let length = items.len() as u64;
                    Verdict::of(if keyword == "minItems" {
                        length >= limit
                    } else {
                        length <= limit
                    })
                }
                (_, None) => Unknown,
                (None, Some(_)) => Valid,
            },
            "items" => match instance.as_array() {
                Some(items) => all(items.iter().map(|item| self.valid(value, item, depth))),
                None => Valid,
            },
            "uniqueItems" => match (value, instance.as_array()) {
                (Value::Bool(false), _) | (Value::Bool(true), None) => Valid,
                (Value::Bool(true), Some(items)) => {
                    let repeated = items
                        .iter()
                        .enumerate()
                        .any(|(i, a)| items[..i].contains(a));
                    if repeated {
                        Invalid
                    } else if items.iter().any(has_float) {
                        // `1.0` and `1` are one number to the validator, two values here.
                        Unknown
                    } else {
                        Valid
                    }
                }
                _ => Unknown,
            },
            "multipleOf" => match (instance, value.as_number()) {
                (Value::Number(n), Some(multiple)) => match (n.as_u64(), multiple.as_u64()) {
                    (Some(n), Some(multiple)) if multiple > 0 => Verdict::of(n % multiple == 0),
                    // A float's multiple is the validator's to reckon.
                    _ => Unknown,
                },
                (_, Some(_)) => Valid,
                (_, None) => Unknown,
            },
            "pattern" => match (instance.as_str(), value.as_str()) {
                // The full validator checks a unit's text with the unit's own parser, not with
                // the pattern (see [`super::validate`]); so does this.
                (Some(text), Some(pattern)) => match UnitSyntax::for_pattern(pattern) {
                    Some(syntax) => Verdict::of(syntax.check(text).is_ok()),
                    None => self.matches(pattern, text),
                },
                (None, Some(_)) => Valid,
                (_, None) => Unknown,
            },
            _ if ANNOTATIONS.contains(&keyword) => Valid,
            _ => Unknown,
        }
    }
}

fn is_known(keyword: &str) -> bool {
    ANNOTATIONS.contains(&keyword)
        || matches!(
            keyword,
            "$ref"
                | "type"
                | "properties"
                | "additionalProperties"
                | "required"
                | "enum"
                | "const"
                | "anyOf"
                | "allOf"
                | "oneOf"
                | "not"
                | "if"
                | "minimum"
                | "maximum"
                | "exclusiveMinimum"
                | "exclusiveMaximum"
                | "minLength"
                | "maxLength"
                | "minItems"
                | "maxItems"
                | "items"
                | "uniqueItems"
                | "multipleOf"
                | "pattern"
        )
}

/// Valid when every verdict is (none: valid); invalid when one is.
fn all(verdicts: impl Iterator<Item = Verdict>) -> Verdict {
    let mut result = Valid;
    for verdict in verdicts {
        result = result.and(verdict);
        if result == Invalid {
            break;
        }
    }
    result
}

/// Valid when one verdict is; invalid when every one is (none: invalid).
fn any(verdicts: impl Iterator<Item = Verdict>) -> Verdict {
    let mut result = Invalid;
    for verdict in verdicts {
        match verdict {
            Valid => return Valid,
            Unknown => result = Unknown,
            Invalid => {}
        }
    }
    result
}

fn has_type(name: &str, instance: &Value) -> Verdict {
    match (name, instance) {
        ("null", Value::Null)
        | ("boolean", Value::Bool(_))
        | ("string", Value::String(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_))
        | ("number", Value::Number(_)) => Valid,
        ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => Valid,
        // `1.0` is an integer to draft 2020-12; leave such numbers to the validator.
        ("integer", Value::Number(n)) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => Unknown,
        ("null" | "boolean" | "string" | "array" | "object" | "number" | "integer", _) => Invalid,
        _ => Unknown,
    }
}

/// `enum` and `const` equality; the validator counts `1` and `1.0` equal, so a float in either
/// side leaves a mismatch undecided.
fn same(expected: &Value, instance: &Value) -> Verdict {
    if expected == instance {
        Valid
    } else if has_float(expected) || has_float(instance) {
        Unknown
    } else {
        Invalid
    }
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Exact comparison of two JSON numbers, or `None` when floats could round.
fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return Some(a.cmp(&b));
    }
    // Beyond 2^53 a float no longer holds every integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let (a, b) = (a.as_f64()?, b.as_f64()?);
    if a.abs() >= EXACT || b.abs() >= EXACT {
        return None;
    }
    a.partial_cmp(&b)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{Verdict, check};
    use crate::config::OptimizerSettings;
    use crate::config::validate::compile;
    use crate::schema::{OptimizerForm, composite, composite_of};

    fn validator_accepts(schema: &Value, instance: &Value) -> bool {
        let (_, validator) = compile(schema);
        validator.is_ok_and(|v| v.is_valid(instance))
    }

    #[test]
    fn each_keyword_decides_as_the_validator_does() {
        let cases = [
            (json!({"type": "integer"}), json!(3), Verdict::Valid),
            (json!({"type": "integer"}), json!(3.5), Verdict::Invalid),
            (json!({"type": "integer"}), json!(3.0), Verdict::Unknown),
            (
                json!({"type": ["string", "null"]}),
                json!(null),
                Verdict::Valid,
            ),
            (
                json!({"type": ["string", "null"]}),
                json!(1),
                Verdict::Invalid,
            ),
            (
                json!({"properties": {"a": {"type": "string"}}, "additionalProperties": false}),
                json!({"a": "x"}),
                Verdict::Valid,
            ),
            (
                json!({"properties": {"a": {"type": "string"}}, "additionalProperties": false}),
                json!({"b": "x"}),
                Verdict::Invalid,
            ),
            (
                json!({"additionalProperties": {"type": "boolean"}}),
                json!({"b": 1}),
                Verdict::Invalid,
            ),
            (json!({"required": ["a"]}), json!({}), Verdict::Invalid),
            (json!({"required": ["a"]}), json!(7), Verdict::Valid),
            (json!({"enum": ["a", "b"]}), json!("c"), Verdict::Invalid),
            (json!({"enum": [1, 2]}), json!(1.0), Verdict::Unknown),
            (json!({"const": "a"}), json!("a"), Verdict::Valid),
            (
                json!({"oneOf": [{"type": "integer"}, {"type": "number"}]}),
                json!(1),
                Verdict::Invalid,
            ),
            (
                json!({"oneOf": [{"type": "integer"}, {"type": "string"}]}),
                json!(1),
                Verdict::Valid,
            ),
            (
                json!({"anyOf": [{"type": "integer"}, {"type": "string"}]}),
                json!(true),
                Verdict::Invalid,
            ),
            (
                json!({"allOf": [{"minimum": 1}, {"maximum": 2}]}),
                json!(3),
                Verdict::Invalid,
            ),
            (
                json!({"not": {"type": "string"}}),
                json!("a"),
                Verdict::Invalid,
            ),
            (
                json!({"if": {"required": ["id"]}, "then": {"required": ["token"]}, "else": false}),
                json!({"id": 1}),
                Verdict::Invalid,
            ),
            (
                json!({"if": {"required": ["id"]}, "then": {"required": ["token"]}, "else": false}),
                json!({"id": 1, "token": 2}),
                Verdict::Valid,
            ),
            (
                json!({"if": {"required": ["id"]}, "then": true, "else": false}),
                json!({}),
                Verdict::Invalid,
            ),
            (json!({"minimum": 0}), json!(-1), Verdict::Invalid),
            (json!({"exclusiveMinimum": 0}), json!(0), Verdict::Invalid),
            (json!({"maximum": 1.5}), json!(1.5), Verdict::Valid),
            (json!({"exclusiveMaximum": 2}), json!(1.99), Verdict::Valid),
            (
                json!({"maximum": 18446744073709551615_u64}),
                json!(-1),
                Verdict::Unknown,
            ),
            (json!({"minLength": 2}), json!("é"), Verdict::Invalid),
            (json!({"maxLength": 1}), json!("é"), Verdict::Valid),
            (json!({"minItems": 1}), json!([]), Verdict::Invalid),
            (
                json!({"items": {"type": "string"}}),
                json!(["a", 1]),
                Verdict::Invalid,
            ),
            (
                json!({"uniqueItems": true}),
                json!(["a", "a"]),
                Verdict::Invalid,
            ),
            (
                json!({"uniqueItems": true}),
                json!([1, 1.0]),
                Verdict::Unknown,
            ),
            (json!({"pattern": "^a$"}), json!("a"), Verdict::Valid),
            (
                json!({"pattern": "^https?://"}),
                json!("ftp://x"),
                Verdict::Invalid,
            ),
            (
                json!({"pattern": "^[^/\\s]+/[^/\\s]+$"}),
                json!("a/b"),
                Verdict::Valid,
            ),
            (json!({"pattern": "^a.$"}), json!("a\r"), Verdict::Unknown),
            (json!({"pattern": "^\\d$"}), json!("٣"), Verdict::Unknown),
            (json!({"pattern": "(?<=a)b"}), json!("ab"), Verdict::Unknown),
            (json!({"multipleOf": 5}), json!(10), Verdict::Valid),
            (json!({"multipleOf": 5}), json!(11), Verdict::Invalid),
            (json!({"multipleOf": 0.001}), json!(0.25), Verdict::Unknown),
            (json!({"multipleOf": 0.001}), json!("250m"), Verdict::Valid),
            (json!({"pattern": "^a$"}), json!(1), Verdict::Valid),
            (
                json!({"$ref": "#/$defs/a", "$defs": {"a": {"type": "string"}}}),
                json!(1),
                Verdict::Invalid,
            ),
            (
                json!({"$ref": "#/$defs/missing"}),
                json!(1),
                Verdict::Unknown,
            ),
            (json!({"$ref": "#"}), json!(1), Verdict::Unknown),
            (
                json!({"$id": "x", "type": "string"}),
                json!(1),
                Verdict::Unknown,
            ),
            (
                json!({"patternProperties": {"a": true}}),
                json!({}),
                Verdict::Unknown,
            ),
            (
                json!({"description": "d", "default": 1, "format": "uint32", "writeOnly": true}),
                json!("x"),
                Verdict::Valid,
            ),
            (json!(false), json!(null), Verdict::Invalid),
        ];
        for (schema, instance, expected) in cases {
            let verdict = check(&schema, &instance);
            assert_eq!(verdict, expected, "{schema} on {instance}");
            if verdict != Verdict::Unknown {
                assert_eq!(
                    verdict == Verdict::Valid,
                    validator_accepts(&schema, &instance),
                    "the validator disagrees: {schema} on {instance}"
                );
            }
        }
    }

    /// Values put in place of each value of a document, one at a time.
    fn replacements() -> Vec<Value> {
        vec![
            json!(null),
            json!(true),
            json!(-1),
            json!(0),
            json!(2.5),
            json!(100000),
            json!(""),
            json!("x"),
            json!("10s"),
            json!("5 parsecs"),
            json!("100m"),
            json!("50%"),
            json!([]),
            json!(["x"]),
            json!({}),
            json!({"unknown_key": 1}),
        ]
    }

    /// The document with each of its values replaced in turn, and with a key added to each mapping.
    fn variants(document: &Value, out: &mut Vec<Value>) {
        fn walk(node: &Value, rebuild: &dyn Fn(Value) -> Value, out: &mut Vec<Value>) {
            for replacement in replacements() {
                out.push(rebuild(replacement));
            }
            match node {
                Value::Object(map) => {
                    let mut with_extra = map.clone();
                    with_extra.insert("enabld".into(), json!(true));
                    out.push(rebuild(Value::Object(with_extra)));
                    for (key, child) in map {
                        let inner = |v: Value| {
                            let mut copy = map.clone();
                            copy.insert(key.clone(), v);
                            rebuild(Value::Object(copy))
                        };
                        walk(child, &inner, out);
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        let inner = |v: Value| {
                            let mut copy = items.clone();
                            copy[i] = v;
                            rebuild(Value::Array(copy))
                        };
                        walk(child, &inner, out);
                    }
                }
                _ => {}
            }
        }
        walk(document, &|v| v, out);
    }

    /// The sections of the examples that the servo crate's own types define, each value of them
    /// replaced in turn: wherever the quick check decides, it decides as the validator does, and
    /// the examples themselves are decided (so they skip the compilation).
    #[test]
    fn the_quick_check_agrees_with_the_validator_on_the_examples_and_their_variants() {
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut entries: Vec<_> = std::fs::read_dir(&examples)
            .expect("the examples directory")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        entries.sort();
        assert!(entries.len() >= 5, "examples: {entries:?}");
        let registry = servo_core::connector::registry().expect("the registry");
        let (mut decided, mut total) = (0, 0);
        for path in entries {
            let text = std::fs::read_to_string(&path).expect("an example");
            let documents = servo_yaml::parse_documents(&text).expect("a YAML example");
            for document in documents {
                let Value::Object(root) = document.value else {
                    continue;
                };
                let own: serde_json::Map<String, Value> = root
                    .into_iter()
                    .filter(|(k, _)| {
                        ["optimizer", "settings", "checks", "name"].contains(&k.as_str())
                    })
                    .collect();
                let form = match own.get("optimizer") {
                    Some(section) if OptimizerSettings::is_remote(section) => OptimizerForm::Remote,
                    _ => OptimizerForm::Embedded,
                };
                let schema = composite(registry, &[], form);
                let own = Value::Object(own);
                assert_eq!(
                    check(&schema, &own),
                    Verdict::Valid,
                    "{} is valid and decided",
                    path.display()
                );
                let mut all = Vec::new();
                variants(&own, &mut all);
                for variant in all {
                    total += 1;
                    let verdict = check(&schema, &variant);
                    if verdict == Verdict::Unknown {
                        continue;
                    }
                    decided += 1;
                    assert_eq!(
                        verdict == Verdict::Valid,
                        validator_accepts(&schema, &variant),
                        "{}: {variant}",
                        path.display()
                    );
                }
            }
        }
        // Nearly every variant is decided, or the test would compare little.
        assert!(decided * 10 >= total * 9, "{decided} of {total} decided");
    }

    /// The validator's errors, each as where it is, the keyword that failed and its message.
    fn validator_errors(schema: &Value, instance: &Value) -> Vec<String> {
        let (_, validator) = compile(schema);
        let validator = validator.expect("the composite schema compiles");
        validator
            .iter_errors(instance)
            .map(|e| {
                format!(
                    "{} {} {e}",
                    e.instance_path().as_str(),
                    e.schema_path().as_str()
                )
            })
            .collect()
    }

    /// The loader validates a document against the schemas of the sections it holds only; on the
    /// examples' own sections and their variants, that schema and the whole one report the same
    /// errors, so the diagnostics made of them are the same.
    #[test]
    fn the_schema_of_the_sections_held_judges_as_the_whole_schema() {
        let registry = servo_core::connector::registry().expect("the registry");
        for (name, document) in [
            (
                "quickstart",
                json!({"name": "q", "optimizer": {"trials": 14}}),
            ),
            ("settings only", json!({"settings": {}})),
            ("checks and name", json!({"checks": {}, "name": "n"})),
            ("empty", json!({})),
        ] {
            let held = document.as_object().expect("a mapping");
            let whole = composite(registry, &[], OptimizerForm::Embedded);
            let lean = composite_of(registry, &[], OptimizerForm::Embedded, |key| {
                held.contains_key(key)
            });
            assert_ne!(whole, lean, "{name}: the lean schema leaves sections out");
            let mut all = Vec::new();
            variants(&document, &mut all);
            for variant in all {
                // Variants only change what the document holds, so the sections held stay the same.
                assert_eq!(
                    validator_errors(&lean, &variant),
                    validator_errors(&whole, &variant),
                    "{name}: {variant}"
                );
            }
        }
    }
}
