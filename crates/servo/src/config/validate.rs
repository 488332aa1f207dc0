//! Schema validation of a document, with every error turned into a located, readable diagnostic.
//!
//! The validator checks an internal copy of the published schema in which each unit type's
//! `pattern` is replaced by a keyword ([`UNIT_KEYWORD`]) that calls the unit's own parser: the
//! error then says what is wrong with the value (`m` is milli, not mebi) straight from the parser,
//! and the published schemas keep their `pattern`s for editors.

use std::collections::BTreeMap;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::Location;
use jsonschema::{Draft, Keyword, ValidationError};
use serde_json::{Map, Value};

use super::diagnostic::{Diagnostic, Origin, kind_of, looks_like_credential};
use super::quick::{self, Verdict};
use crate::schema::node_at;
use servo_core::path::KeyPath;
use servo_core::suggest::did_you_mean;
use servo_core::units::UnitSyntax;
use servo_yaml::SpanMap;

/// The keyword of the validator's schema that checks a unit type's text: its value names the
/// [`UnitSyntax`]. Never in a published schema.
const UNIT_KEYWORD: &str = "x-servo-unit";

/// The validator's copy of a published schema: each unit `pattern` replaced by [`UNIT_KEYWORD`].
fn with_unit_keywords(schema: &Value) -> Value {
    match schema {
        Value::Object(object) => {
            let syntax = object
                .get("pattern")
                .and_then(Value::as_str)
                .and_then(UnitSyntax::for_pattern);
            let mut copy: Map<String, Value> = object
                .iter()
                .map(|(key, value)| (key.clone(), with_unit_keywords(value)))
                .collect();
            if let Some(syntax) = syntax {
                copy.remove("pattern");
                copy.insert(UNIT_KEYWORD.into(), Value::String(syntax.name.into()));
            }
            Value::Object(copy)
        }
        Value::Array(items) => Value::Array(items.iter().map(with_unit_keywords).collect()),
        other => other.clone(),
    }
}

/// [`UNIT_KEYWORD`] at work: the unit's parser judges strings; other values are left to `type`.
struct UnitKeyword(&'static UnitSyntax);

impl<'i> Keyword<'i> for UnitKeyword {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        match instance.as_str().map(|text| self.0.check(text)) {
            Some(Err(error)) => Err(ValidationError::custom(error.to_string())),
            _ => Ok(()),
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        instance
            .as_str()
            .is_none_or(|text| self.0.check(text).is_ok())
    }
}

fn unit_keyword<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _location: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    match value.as_str().and_then(UnitSyntax::named) {
        Some(syntax) => Ok(Box::new(UnitKeyword(syntax))),
        None => Err(ValidationError::schema(format!(
            "`{UNIT_KEYWORD}` names no unit: {value}"
        ))),
    }
}

/// A published schema's internal copy (unit patterns replaced by [`UNIT_KEYWORD`]), and its
/// validator or why it does not compile.
type Compiled = (
    Value,
    Result<jsonschema::Validator, ValidationError<'static>>,
);

/// Compiles the validator of a published schema.
pub(super) fn compile(schema: &Value) -> Compiled {
    let schema = with_unit_keywords(schema);
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_keyword(UNIT_KEYWORD, unit_keyword)
        .build(&schema);
    (schema, validator)
}

/// Validates `document` against the published `schema`, returning one diagnostic per problem,
/// ordered by position.
///
/// A valid document, the common case, is recognized by [`quick::check`] without compiling the
/// schema; any other goes to the compiled validator, whose errors the diagnostics are made of.
pub fn against_schema(
    schema: &Value,
    document: &Value,
    spans: &SpanMap,
    origins: &BTreeMap<KeyPath, Origin>,
) -> Vec<Diagnostic> {
    if quick::check(schema, document) == Verdict::Valid {
        // Debug builds (every test) hold the shortcut to what the validator says.
        debug_assert!(
            compile(schema).1.is_ok_and(|v| v.is_valid(document)),
            "the quick check accepted a document the validator rejects"
        );
        return Vec::new();
    }
    let (schema, validator) = compile(schema);
    let schema = &schema;
    let validator = match validator {
        Ok(v) => v,
        Err(e) => {
            return vec![Diagnostic::error(format!(
                "internal error: the generated config schema does not compile ({e}); please report this"
            ))];
        }
    };
    let cx = Context {
        schema,
        document,
        spans,
        origins,
    };
    let mut out = Vec::new();
    for error in validator.iter_errors(document) {
        cx.describe(&error, &mut out, 0);
    }
    out.sort_by_key(|d| (d.line.unwrap_or(0), d.column.unwrap_or(0)));
    out.dedup();
    out
}

struct Context<'a> {
    schema: &'a Value,
    document: &'a Value,
    spans: &'a SpanMap,
    origins: &'a BTreeMap<KeyPath, Origin>,
}

impl Context<'_> {
    fn path_of(&self, error: &ValidationError<'_>) -> KeyPath {
        KeyPath::from_pointer(error.instance_path().as_str(), self.document)
    }

    /// The schema object holding the failed keyword.
    fn keyword_parent(&self, error: &ValidationError<'_>) -> Option<&Value> {
        let location = error.schema_path().as_str();
        let parent = location.rsplit_once('/').map_or("", |(p, _)| p);
        node_at(self.schema, parent)
    }

    fn finish(&self, d: Diagnostic, path: &KeyPath, prefer_key: bool) -> Diagnostic {
        d.placed(self.spans, self.origins, path, prefer_key)
    }

    /// `alternatives`: the other types the value may take instead (`a mapping` for a setting
    /// that is a keyword or a mapping).
    fn enum_error(
        &self,
        instance: &Value,
        options: &Value,
        alternatives: &[String],
        path: &KeyPath,
    ) -> Diagnostic {
        let choices: Vec<String> = options
            .as_array()
            .map(|a| a.iter().map(show).collect())
            .unwrap_or_default();
        let mut expected = format!("one of {}", choices.join(", "));
        if !alternatives.is_empty() {
            expected = format!("{expected}, or {}", alternatives.join(" or "));
        }
        let mut d = Diagnostic::error(format!("{} is not an accepted value", show(instance)))
            .expected(expected);
        if let Some(text) = instance.as_str() {
            let bare: Vec<String> = choices
                .iter()
                .map(|c| c.trim_matches('`').to_string())
                .collect();
            if let Some(s) = did_you_mean(text, bare.iter().map(String::as_str)) {
                d = d.help(format!("did you mean `{s}`?"));
            }
        }
        self.finish(d, path, false)
    }

    /// Whether the failed keyword belongs to a secret's schema (`Secret<T>` adds `writeOnly`):
    /// then a diagnostic says what kind of value was found, never the value.
    fn is_secret(&self, error: &ValidationError<'_>) -> bool {
        self.keyword_parent(error)
            .and_then(|n| n.get("writeOnly"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn describe(&self, error: &ValidationError<'_>, out: &mut Vec<Diagnostic>, depth: usize) {
        let before = out.len();
        self.describe_one(error, out, depth);
        // The snippet of a secret's error must not show the value itself either.
        if self.is_secret(error)
            && let Some(node) = self.spans.get(&self.path_of(error))
        {
            let range = node.value.byte_range();
            for d in &mut out[before..] {
                d.conceal = Some((range.start, range.end));
            }
        }
    }

    fn describe_one(&self, error: &ValidationError<'_>, out: &mut Vec<Diagnostic>, depth: usize) {
        let path = self.path_of(error);
        let instance = error.instance();
        let secret = self.is_secret(error);
        let show = |value: &Value| {
            if secret {
                secret_shown(value)
            } else {
                show(value)
            }
        };
        let found = |value: &Value| {
            if secret {
                secret_shown(value)
            } else {
                found(value)
            }
        };
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known: Vec<String> = self
                    .keyword_parent(error)
                    .and_then(|n| n.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for key in unexpected {
                    let mut d = Diagnostic::error(format!("unknown field `{key}`"));
                    if !known.is_empty() {
                        d = d.expected(format!("one of {}", list(&known)));
                    }
                    if let Some(s) = did_you_mean(key, known.iter().map(String::as_str)) {
                        d = d.help(format!("did you mean `{s}`?"));
                    }
                    let at = path.key(key.clone());
                    // An unknown key named like a credential (`tokn:`, `api_token:`) keeps its
                    // value out of snippets (its message never quotes it); others stay visible,
                    // since seeing `measure_enabld: true` helps.
                    let scalar = instance
                        .get(key)
                        .is_some_and(|v| !v.is_object() && !v.is_array());
                    if scalar
                        && looks_like_credential(key)
                        && let Some(node) = self.spans.get(&at)
                    {
                        d = d.conceal(&node.value);
                    }
                    out.push(self.finish(d, &at, true));
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property
                    .as_str()
                    .map_or_else(|| property.to_string(), String::from);
                let mut d = Diagnostic::error(format!("missing field `{name}`"));
                if let Some(description) = self
                    .keyword_parent(error)
                    .and_then(|n| n.pointer(&format!("/properties/{}/description", escape(&name))))
                    .and_then(Value::as_str)
                {
                    d = d.help(format!("`{name}`: {}", first_sentence(description)));
                }
                out.push(self.finish(d, &path, true));
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => article(&t.to_string()),
                    TypeKind::Multiple(set) => set
                        .iter()
                        .map(|t| article(&t.to_string()))
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                let d = Diagnostic::error("wrong type")
                    .expected(expected)
                    .found(found(instance));
                out.push(self.finish(d, &path, false));
            }
            ValidationErrorKind::Enum { options } if !secret => {
                out.push(self.enum_error(instance, options, &[], &path))
            }
            // Unit patterns never get here: the validator checks units with [`UNIT_KEYWORD`].
            ValidationErrorKind::Pattern { pattern } => {
                let d = Diagnostic::error(format!("{} is not valid here", show(instance)))
                    .expected(format!("text matching the pattern {pattern}"))
                    .found(found(instance));
                out.push(self.finish(d, &path, false));
            }
            ValidationErrorKind::Custom { keyword, message } if keyword == UNIT_KEYWORD => {
                // The unit's parser said why; a secret's value stays out of the message.
                let expected = self
                    .keyword_parent(error)
                    .and_then(|n| n.get(UNIT_KEYWORD))
                    .and_then(Value::as_str)
                    .and_then(UnitSyntax::named)
                    .map_or("", |syntax| syntax.expectation);
                let message = if secret {
                    format!("{} is not valid here", show(instance))
                } else {
                    message.clone()
                };
                let d = Diagnostic::error(message)
                    .expected(expected)
                    .found(found(instance));
                out.push(self.finish(d, &path, false));
            }
            ValidationErrorKind::AnyOf { context }
            | ValidationErrorKind::OneOfNotValid { context }
                if depth < 8 =>
            {
                // The branches that failed only because the value has another type are noise (the
                // `null` of an optional section, the `number` form of a duration): report the
                // branch that matched the value's shape, or the types if none did.
                let here = |e: &ValidationError<'_>| {
                    e.instance_path().as_str() == error.instance_path().as_str()
                };
                let (relevant, mistyped): (Vec<_>, Vec<_>) = context.iter().partition(|branch| {
                    !branch
                        .iter()
                        .all(|e| matches!(e.kind(), ValidationErrorKind::Type { .. }) && here(e))
                });
                // A branch that is one keyword fails its `const` (and, for a value of another
                // type, its `type` too).
                let constants: Option<Vec<&Value>> = relevant
                    .iter()
                    .map(|branch| {
                        let mut constant = None;
                        for e in branch.iter() {
                            match e.kind() {
                                ValidationErrorKind::Constant { expected_value } if here(e) => {
                                    constant = Some(&**expected_value);
                                }
                                ValidationErrorKind::Type { .. } if here(e) => {}
                                _ => return None,
                            }
                        }
                        constant
                    })
                    .collect();
                if let Some(values) = constants.filter(|v| !v.is_empty()) {
                    // A `oneOf` of `const`s is how schemars writes a documented enum; beside
                    // other shapes (a keyword or a mapping), those are the alternatives.
                    let options = Value::Array(values.into_iter().cloned().collect());
                    let alternatives = type_names(mistyped.iter().copied().flatten());
                    out.push(self.enum_error(instance, &options, &alternatives, &path));
                    return;
                }
                match relevant.iter().min_by_key(|b| b.len()) {
                    Some(branch) => {
                        for e in branch.iter() {
                            self.describe(e, out, depth + 1);
                        }
                    }
                    None => {
                        let types = type_names(context.iter().flatten());
                        let d = Diagnostic::error("wrong type")
                            .expected(types.join(" or "))
                            .found(found(instance));
                        out.push(self.finish(d, &path, false));
                    }
                }
            }
            ValidationErrorKind::Minimum { limit } => {
                let d = Diagnostic::error(format!("{} is too small", show(instance)))
                    .expected(format!("at least {limit}"))
                    .found(found(instance));
                out.push(self.finish(d, &path, false));
            }
            ValidationErrorKind::Maximum { limit } => {
                let d = Diagnostic::error(format!("{} is too large", show(instance)))
                    .expected(format!("at most {limit}"))
                    .found(found(instance));
                out.push(self.finish(d, &path, false));
            }
            ValidationErrorKind::MinItems { limit } => {
                let mut d = Diagnostic::error("too few items")
                    .expected(format!("at least {limit} item(s)"));
                // The list's own description says why it needs that many, when it says anything.
                if let Some(description) = self
                    .keyword_parent(error)
                    .and_then(|n| n.get("description"))
                    .and_then(Value::as_str)
                {
                    d = d.help(first_sentence(description).to_string());
                }
                out.push(self.finish(d, &path, false));
            }
            ValidationErrorKind::MinLength { limit } => {
                let d = Diagnostic::error("too short")
                    .expected(format!("at least {limit} character(s)"))
                    .found(found(instance));
                out.push(self.finish(d, &path, false));
            }
            // jsonschema's own messages quote the instance.
            _ if secret => {
                let d = Diagnostic::error("invalid secret").found(found(instance));
                out.push(self.finish(d, &path, false));
            }
            _ => {
                let d = Diagnostic::error(error.to_string());
                out.push(self.finish(d, &path, false));
            }
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn first_sentence(text: &str) -> &str {
    let text = text.trim();
    match text.find(". ") {
        Some(i) => &text[..=i],
        None => text,
    }
}

fn list(items: &[String]) -> String {
    let shown: Vec<String> = items.iter().take(16).map(|i| format!("`{i}`")).collect();
    let more = items.len().saturating_sub(16);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// The types the `Type` errors among `errors` asked for, each once, as a person would say them.
fn type_names<'e>(errors: impl Iterator<Item = &'e ValidationError<'static>>) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for e in errors {
        if let ValidationErrorKind::Type { kind } = e.kind() {
            let names: Vec<String> = match kind {
                TypeKind::Single(t) => vec![t.to_string()],
                TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect(),
            };
            for name in names {
                let a = article(&name);
                if !types.contains(&a) {
                    types.push(a);
                }
            }
        }
    }
    types
}

fn article(type_name: &str) -> String {
    match type_name {
        "integer" => "a whole number".into(),
        "number" => "a number".into(),
        "string" => "a string".into(),
        "boolean" => "true or false".into(),
        "array" => "a list".into(),
        "object" => "a mapping".into(),
        "null" => "nothing (null)".into(),
        other => other.into(),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        Value::Array(_) | Value::Object(_) => kind_of(value).to_string(),
        other => format!("`{other}`"),
    }
}

/// A secret value as a diagnostic may show it: its kind only.
fn secret_shown(value: &Value) -> String {
    format!("{} (not shown: this setting is a secret)", kind_of(value))
}

fn found(value: &Value) -> String {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => {
            format!("{} {}", kind_of(value), show(value))
        }
        _ => kind_of(value).to_string(),
    }
}
