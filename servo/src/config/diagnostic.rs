//! Config errors written for humans: where (file:line:column, key path, or the environment variable
//! or flag that set the value), what was expected, what was found, and what to do.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::path::KeyPath;
use crate::yaml::Span;

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
        for diagnostic in &self.diagnostics {
            let report = Snippet {
                file: self.file.display().to_string(),
                source: self.source.to_string(),
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
