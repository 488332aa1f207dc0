//! The JSON the hooks read on stdin and print on stdout.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use servo_core::KeyPath;
use servo_core::spec::SettingSpec;
use servo_core::types::{Adjustment, Component, Control, Setting, SettingKind, SettingValue};
use std::collections::BTreeMap;

/// The `control` object on a hook's stdin, durations in seconds.
#[derive(Serialize)]
pub(super) struct ControlInput {
    pub(super) duration: f64,
    pub(super) warmup: f64,
    pub(super) delay: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) settlement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) userdata: Option<Value>,
}

impl From<&Control> for ControlInput {
    fn from(c: &Control) -> Self {
        Self {
            duration: c.duration.as_secs_f64(),
            warmup: c.warmup.as_secs_f64(),
            delay: c.delay.as_secs_f64(),
            settlement: c.settlement.map(|s| s.as_secs_f64()),
            userdata: c.userdata.clone(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct AdjustInput<'a> {
    pub(super) adjustments: &'a [Adjustment],
    pub(super) control: ControlInput,
}

#[derive(Serialize)]
pub(super) struct MeasureInput<'a> {
    pub(super) metrics: &'a [String],
    pub(super) control: ControlInput,
}

pub(super) const DESCRIBE_EXAMPLE: &str =
    r#"{"components": {"main": {"settings": {"cpu": {"value": 1.5}}}}}"#;
pub(super) const MEASURE_EXAMPLE: &str =
    r#"{"metrics": {"latency_p99": {"value": 12.5, "unit": "ms"}}}"#;

/// What a describe command prints.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DescribeOutput {
    pub(super) components: BTreeMap<String, ReportedComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportedComponent {
    #[serde(default)]
    pub(super) settings: BTreeMap<String, ReportedSetting>,
}

/// A setting as a describe command reports it: any field of a declared setting, all optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportedSetting {
    #[serde(rename = "type")]
    pub(super) kind: Option<SettingKind>,
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
    pub(super) step: Option<f64>,
    pub(super) values: Option<Vec<String>>,
    pub(super) value: Option<SettingValue>,
    pub(super) unit: Option<String>,
    pub(super) pinned: Option<bool>,
}

impl ReportedSetting {
    pub(super) fn apply(self, s: &mut Setting) {
        if let Some(kind) = self.kind {
            s.kind = kind;
        }
        s.min = self.min.or(s.min);
        s.max = self.max.or(s.max);
        s.step = self.step.or(s.step);
        s.values = self.values.or(s.values.take());
        s.value = self.value.or(s.value.take());
        s.unit = self.unit.or(s.unit.take());
        s.pinned = self.pinned.unwrap_or(s.pinned);
    }

    pub(super) fn into_spec(self) -> SettingSpec {
        SettingSpec {
            kind: self.kind.unwrap_or(SettingKind::Range),
            min: self.min,
            max: self.max,
            step: self.step,
            values: self.values,
            value: self.value,
            unit: self.unit,
            pinned: self.pinned.unwrap_or(false),
        }
    }
}

/// The components a describe command reported, laid over the declared ones: declared settings keep
/// their last known value (`known`) unless reported, undeclared ones must bring their domain.
pub(super) fn merge(
    declared: &[Component],
    known: &[Component],
    output: DescribeOutput,
) -> Result<Vec<Component>, String> {
    let mut components: Vec<Component> = declared
        .iter()
        .map(|c| {
            let mut c = c.clone();
            for s in &mut c.settings {
                if let Some(value) = known
                    .iter()
                    .find(|k| k.name == c.name)
                    .and_then(|k| k.setting(&s.name))
                    .and_then(|k| k.value.clone())
                {
                    s.value = Some(value);
                }
            }
            c
        })
        .collect();
    for (component, reported) in output.components {
        let index = match components.iter().position(|c| c.name == component) {
            Some(i) => i,
            None => {
                components.push(Component::new(component.clone(), Vec::new()));
                components.len() - 1
            }
        };
        for (name, setting) in reported.settings {
            let target = &mut components[index];
            match target.settings.iter_mut().find(|s| s.name == name) {
                Some(existing) => setting.apply(existing),
                None => {
                    let spec = setting.into_spec();
                    let at = KeyPath::root().key(component.clone()).key(name.clone());
                    if let Some(problem) = spec.problems(&name, &at).into_iter().next() {
                        return Err(format!(
                            "the undeclared setting `{component}.{name}` without a usable domain: {}",
                            problem.message
                        ));
                    }
                    target.settings.push(spec.setting(&name));
                }
            }
        }
    }
    Ok(components)
}

/// What a measure command prints.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MeasureOutput {
    pub(super) metrics: BTreeMap<String, MetricOutput>,
    #[serde(default)]
    pub(super) annotations: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricOutput {
    pub(super) value: Option<f64>,
    pub(super) unit: Option<String>,
    pub(super) values: Option<Vec<(f64, f64)>>,
}

/// A progress report a measure command prints on a line of its own while it runs; with
/// `metrics` (the same shape as the result's), the readings of its window so far.
#[derive(Deserialize)]
struct ProgressOutput {
    #[serde(rename = "progress")]
    _progress: serde::de::IgnoredAny,
    metrics: Option<BTreeMap<String, MetricOutput>>,
}

/// The readings so far on a line of progress, if it is one that carries them.
pub(super) fn progress_metrics(line: &str) -> Option<BTreeMap<String, MetricOutput>> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str::<ProgressOutput>(line).ok()?.metrics
}

/// The legacy Opsani adjust-driver status line.
#[derive(Deserialize)]
pub(super) struct AdjustStatus {
    pub(super) status: String,
    #[serde(default)]
    pub(super) reason: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
}

/// The last status line an adjust command printed, if any; its other output is free-form.
pub(super) fn adjust_status(stdout: &[u8]) -> Option<AdjustStatus> {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .filter(|line| line.trim_start().starts_with('{'))
        .find_map(|line| serde_json::from_str::<AdjustStatus>(line).ok())
}

pub(super) enum DocumentProblem {
    Empty,
    Several(usize),
    Syntax(serde_json::Error),
}

/// The one result document on a describe or measure command's stdout: JSON documents separated by
/// whitespace, `{"progress": ..}` objects skipped (even with `metrics`: those are readings so far).
pub(super) fn result_document(stdout: &[u8]) -> Result<Value, DocumentProblem> {
    let mut results = Vec::new();
    for document in serde_json::Deserializer::from_slice(stdout).into_iter::<Value>() {
        let document = document.map_err(DocumentProblem::Syntax)?;
        let progress = document
            .as_object()
            .is_some_and(|o| o.contains_key("progress"));
        if !progress {
            results.push(document);
        }
    }
    match results.len() {
        0 => Err(DocumentProblem::Empty),
        1 => Ok(results.remove(0)),
        n => Err(DocumentProblem::Several(n)),
    }
}

/// The line of `text` where a JSON error is, with a caret under its column.
pub(super) fn snippet(text: &[u8], line: usize, column: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let Some(source) = line.checked_sub(1).and_then(|i| text.lines().nth(i)) else {
        return String::new();
    };
    // serde_json counts columns in bytes; show a window of the line around that byte.
    let byte = column.saturating_sub(1).min(source.len());
    let at = source.char_indices().take_while(|(i, _)| *i < byte).count();
    let chars: Vec<char> = source.chars().collect();
    let start = at.saturating_sub(60);
    let end = (at + 40).min(chars.len());
    let shown: String = chars[start..end].iter().collect();
    let prefix = if start > 0 { "…" } else { "" };
    let caret = " ".repeat(at - start + prefix.chars().count());
    format!("\n    | {prefix}{shown}\n    | {caret}^")
}
