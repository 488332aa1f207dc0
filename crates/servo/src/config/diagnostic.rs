//! Config errors written for humans: where (file:line:column, key path, or the environment variable
//! or flag that set the value), what was expected, what was found, and what to do.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use serde_json::Value;

use servo_core::path::KeyPath;
use servo_yaml::{Span, SpanMap};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Error,
    Warning,
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// Not set anywhere: the connector's default.
    Default,
    /// The config file, at this line and column.
    File { line: usize, column: usize },
    /// A `SERVO_*` environment variable.
    Env { variable: String },
    /// A `--set` flag.
    Flag { flag: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { line, column } => write!(f, "file:{line}:{column}"),
            Origin::Env { variable } => write!(f, "env {variable}"),
            Origin::Flag { flag } => write!(f, "flag --set {flag}"),
        }
    }
}

/// One problem with a config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub level: Level,
    pub message: String,
    /// The key path inside the document (`prod_prom.metrics[1].query`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Set when the offending value came from the environment or a flag rather than the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Byte range in the source, for snippets.
    #[serde(skip)]
    pub span: Option<(usize, usize)>,
    /// Byte range of a value that snippets must not show (a secret's, or an unknown key's, which
    /// may be a misspelt secret).
    #[serde(skip)]
    pub conceal: Option<(usize, usize)>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            level: Level::Error,
            message: message.into(),
            path: None,
            line: None,
            column: None,
            origin: None,
            expected: None,
            found: None,
            help: None,
            span: None,
            conceal: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self {
            level: Level::Warning,
            ..Self::error(message)
        }
    }

    pub fn at(mut self, span: &Span) -> Self {
        self.line = Some(span.start.line);
        self.column = Some(span.start.column);
        self.span = Some((span.start.offset, span.end.offset.max(span.start.offset)));
        self
    }

    /// Hides the text of `span` in snippets.
    pub fn conceal(mut self, span: &Span) -> Self {
        let range = span.byte_range();
        self.conceal = Some((range.start, range.end));
        self
    }

    pub fn path(mut self, path: &KeyPath) -> Self {
        if !path.is_root() {
            self.path = Some(path.to_string());
        }
        self
    }

    pub fn origin(mut self, origin: &Origin) -> Self {
        if matches!(origin, Origin::Env { .. } | Origin::Flag { .. }) {
            self.origin = Some(origin.to_string());
        }
        self
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    pub fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Names the variable or flag that set the value, when one did.
    pub fn origin_opt(self, origin: Option<&Origin>) -> Self {
        match origin {
            Some(origin) => self.origin(origin),
            None => self,
        }
    }

    /// Places the diagnostic at `path` and, when the file has it (or an enclosing node), at its
    /// position: the value's, or the key's when `prefer_key` or when only an ancestor exists.
    pub fn located(self, spans: &SpanMap, path: &KeyPath, prefer_key: bool) -> Self {
        let d = self.path(path);
        let Some((found, node)) = spans.nearest(path) else {
            return d;
        };
        let span = if prefer_key || &found != path {
            node.key.unwrap_or(node.value)
        } else {
            node.value
        };
        d.at(&span)
    }

    /// [`Diagnostic::located`], naming the variable or flag that set `path` or the node enclosing
    /// it, when one did (`origins` as the layered config records them).
    pub fn placed(
        self,
        spans: &SpanMap,
        origins: &BTreeMap<KeyPath, Origin>,
        path: &KeyPath,
        prefer_key: bool,
    ) -> Self {
        let origin = origins
            .iter()
            .filter(|(p, _)| path.starts_with(p))
            .max_by_key(|(p, _)| p.segments().len())
            .map(|(_, o)| o);
        self.located(spans, path, prefer_key).origin_opt(origin)
    }
}

/// A value's kind in words, for "found: ..." and "expected: ...".
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Everything wrong with one config file (errors) plus what is merely suspicious (warnings).
#[derive(Clone, Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub source: Arc<str>,
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub fn new(file: &Path, source: Arc<str>, diagnostics: Vec<Diagnostic>) -> Self {
        Self {
            file: file.to_path_buf(),
            source,
            diagnostics,
        }
    }

    /// An error about the file as a whole (missing, unreadable, empty).
    pub fn file(file: &Path, diagnostic: Diagnostic) -> Self {
        Self::new(file, Arc::from(""), vec![diagnostic])
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.level == Level::Error)
    }

    /// Plain text, one block per diagnostic: the form logs and non-terminals get.
    pub fn render_plain(&self) -> String {
        render_plain(&self.file, &self.diagnostics)
    }

    /// With source snippets and colour, for a terminal.
    pub fn render_fancy(&self, color: bool) -> String {
        let mut out = String::new();
        let handler = if color {
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode())
        } else {
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        };
        // Snippets show neighbouring lines too, so a diagnostic next to `token:` would print it.
        let mut source = mask_secrets(&self.source);
        for (start, end) in self.diagnostics.iter().filter_map(|d| d.conceal) {
            if start <= end
                && end <= source.len()
                && source.is_char_boundary(start)
                && source.is_char_boundary(end)
            {
                blank(&mut source, start..end);
            }
        }
        for diagnostic in &self.diagnostics {
            let report = Snippet {
                file: self.file.display().to_string(),
                source: source.clone(),
                diagnostic,
            };
            if handler.render_report(&mut out, &report).is_err() {
                out.push_str(&render_plain(&self.file, std::slice::from_ref(diagnostic)));
            }
        }
        let errors = self.errors().count();
        let _ = writeln!(
            out,
            "{errors} error{} in {}",
            if errors == 1 { "" } else { "s" },
            self.file.display()
        );
        out
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render_plain().trim_end())
    }
}

impl std::error::Error for ConfigError {}

/// `error: servo.yaml:3:5: prometheus.base_url: message` followed by indented details.
pub fn render_plain(file: &Path, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let level = match d.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let _ = write!(out, "{level}: {}", file.display());
        if let (Some(line), Some(column)) = (d.line, d.column) {
            let _ = write!(out, ":{line}:{column}");
        }
        if let Some(path) = &d.path {
            let _ = write!(out, ": {path}");
        }
        let _ = writeln!(out, ": {}", d.message);
        if let Some(origin) = &d.origin {
            let _ = writeln!(out, "  = set by: {origin}");
        }
        if let Some(expected) = &d.expected {
            let _ = writeln!(out, "  = expected: {expected}");
        }
        if let Some(found) = &d.found {
            let _ = writeln!(out, "  = found: {found}");
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "  = help: {help}");
        }
    }
    out
}

/// Parts of a key that mark its value as a credential. `token` is the one [`Secret`] setting servo
/// has today; the others catch credentials written under a misspelt or misplaced key, whose
/// schema (none) cannot say they are secret.
///
/// [`Secret`]: servo_core::units::Secret
const SECRET_KEY_PARTS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "credential",
    "private_key",
    "authorization",
];

/// Whether a key (known or not) may hold a credential: it contains one of [`SECRET_KEY_PARTS`]
/// or is a near-miss of one (`tokn`, `pasword`).
pub fn looks_like_credential(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| lower.contains(part))
        || servo_core::suggest::did_you_mean(&lower, SECRET_KEY_PARTS.iter().copied()).is_some()
}

/// The source with every value that may be a credential replaced by `*`s of the same byte length
/// (so diagnostic spans still point at the right text): values of keys named like a credential,
/// and the password of any `scheme://user:password@host` URL (a proxy, say).
///
/// This works on the text, not the parsed document, because a snippet shows the lines around an
/// error whatever they hold; it is deliberately eager (a `token_ttl: 5m` is masked too), since
/// hiding a harmless value costs nothing and printing a token cannot be undone.
pub fn mask_secrets(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.split_inclusive('\n') {
        let mut masked = line.to_string();
        mask_secret_values(&mut masked);
        mask_url_passwords(&mut masked);
        out.push_str(&masked);
    }
    out
}

/// Replaces `text[range]` with as many `*` as it has bytes, line breaks kept.
fn blank(text: &mut String, range: std::ops::Range<usize>) {
    let stars: String = text[range.clone()]
        .bytes()
        .map(|b| {
            if matches!(b, b'\n' | b'\r') {
                b as char
            } else {
                '*'
            }
        })
        .collect();
    text.replace_range(range, &stars);
}

/// Masks the value after every `KEY:` whose key names a credential, up to the end of the line (or
/// the end of the entry, inside a flow mapping), keeping a trailing comment.
fn mask_secret_values(line: &mut String) {
    let lower = line.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut search = 0;
    while let Some(found) = lower[search..].find(':') {
        let colon = search + found;
        search = colon + 1;
        // A mapping key ends with `:` followed by a space or the end of the line.
        if !matches!(
            bytes.get(colon + 1),
            None | Some(b' ' | b'\t' | b'\r' | b'\n')
        ) {
            continue;
        }
        let key_start = lower[..colon]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '"' | '\'')))
            .map_or(0, |i| {
                i + lower[i..].chars().next().map_or(1, char::len_utf8)
            });
        let key = &lower[key_start..colon];
        if !SECRET_KEY_PARTS.iter().any(|part| key.contains(part)) {
            continue;
        }
        let in_flow = lower[..key_start].trim_end().ends_with(['{', ',']);
        let value_start =
            colon + 1 + (lower[colon + 1..].len() - lower[colon + 1..].trim_start().len());
        let rest = &lower[value_start..];
        let mut end = rest
            .find(" #")
            .unwrap_or_else(|| rest.trim_end_matches(['\n', '\r']).len());
        if in_flow && let Some(stop) = rest[..end].find([',', '}']) {
            end = stop;
        }
        let end = value_start + rest[..end].trim_end().len();
        if end > value_start {
            blank(line, value_start..end);
        }
        search = end.max(search);
    }
}

/// Masks `password` in every `scheme://user:password@host`.
fn mask_url_passwords(line: &mut String) {
    let mut search = 0;
    while let Some(found) = line[search..].find("://") {
        let authority_start = search + found + 3;
        let authority_end = line[authority_start..]
            .find(['/', ' ', '"', '\'', ',', '}', '\n'])
            .map_or(line.len(), |i| authority_start + i);
        search = authority_end;
        let authority = &line[authority_start..authority_end];
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        if let Some(colon) = authority[..at].find(':') {
            blank(line, authority_start + colon + 1..authority_start + at);
        }
    }
}

struct Snippet<'a> {
    file: String,
    source: String,
    diagnostic: &'a Diagnostic,
}

impl fmt::Debug for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diagnostic;
        match (&d.path, d.line, d.column) {
            (Some(path), Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {path}: {}", self.file, d.message)
            }
            (None, Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.file, d.message)
            }
            (Some(path), _, _) => write!(f, "{}: {path}: {}", self.file, d.message),
            _ => write!(f, "{}: {}", self.file, d.message),
        }
    }
}

impl std::error::Error for Snippet<'_> {}

impl miette::Diagnostic for Snippet<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.level {
            Level::Error => miette::Severity::Error,
            Level::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        let d = self.diagnostic;
        let mut lines = Vec::new();
        if let Some(origin) = &d.origin {
            lines.push(format!("set by: {origin}"));
        }
        if let Some(expected) = &d.expected {
            lines.push(format!("expected: {expected}"));
        }
        if let Some(found) = &d.found {
            lines.push(format!("found: {found}"));
        }
        if let Some(help) = &d.help {
            lines.push(help.clone());
        }
        (!lines.is_empty()).then(|| Box::new(lines.join("\n")) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.diagnostic
            .span
            .map(|_| &self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let (start, end) = self.diagnostic.span?;
        if end > self.source.len() {
            return None;
        }
        let label = self
            .diagnostic
            .expected
            .as_ref()
            .map(|e| format!("expected {e}"))
            .unwrap_or_else(|| "here".to_string());
        Some(Box::new(std::iter::once(miette::LabeledSpan::new(
            Some(label),
            start,
            (end - start).max(1),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_in_snippet_sources_without_moving_spans() {
        let source = "optimizer:\n  id: o/a\n  token: s3cr3t-abc # from the vault\n  \
                      base_url: 5\nsettings: {proxies: http://u:pa55@proxy:3128, x: 1}\n\
                      wait: {api_key: \"k3y\", duration: 1s}\n";
        let masked = mask_secrets(source);
        assert_eq!(masked.len(), source.len());
        for secret in ["s3cr3t-abc", "pa55", "k3y"] {
            assert!(!masked.contains(secret), "{secret} in {masked}");
        }
        for kept in [
            "# from the vault",
            "base_url: 5",
            "http://u:",
            "@proxy:3128",
            "duration: 1s",
        ] {
            assert!(masked.contains(kept), "{kept} lost from {masked}");
        }
    }

    #[test]
    fn masking_leaves_ordinary_lines_alone() {
        let source = "wait:\n  measure_enabled: true\n  url: http://127.0.0.1:9/x\n  \
                      query: 'a:b'\n  - token\n";
        assert_eq!(mask_secrets(source), source);
        // Multi-byte text around keys and values keeps every offset valid.
        let source = "é€token: ü€x\nпароль·token: 秘密 # ß\n";
        let masked = mask_secrets(source);
        assert_eq!(masked.len(), source.len());
        assert!(!masked.contains("ü€x") && !masked.contains("秘密") && masked.contains("# ß"));
    }

    #[test]
    fn credential_names_and_their_near_misses_are_recognised() {
        for key in [
            "token",
            "api_token",
            "tokn",
            "pasword",
            "DB_PASSWORD",
            "secret_key",
        ] {
            assert!(looks_like_credential(key), "{key}");
        }
        for key in ["measure_enabld", "duration", "base_url", "id", "trials"] {
            assert!(!looks_like_credential(key), "{key}");
        }
    }

    #[test]
    fn flag_origins_name_the_path_only() {
        let origin = Origin::Flag {
            flag: "optimizer.token".into(),
        };
        assert_eq!(origin.to_string(), "flag --set optimizer.token");
    }
}
