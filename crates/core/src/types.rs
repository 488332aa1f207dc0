//! The domain types connectors and optimizers exchange.
//!
//! Serde names follow ServoX so that the optimizer wire protocol can carry them unchanged: a setting is
//! `{"type": "range", "min": .., "max": .., "step": .., "value": .., "unit": .., "pinned": ..}`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::suggest::did_you_mean;
use crate::units::{Cpu, Duration, Memory};

/// Something servo can tune: a deployment's container, a process, a command-driven service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    pub settings: Vec<Setting>,
}

impl Component {
    pub fn new(name: impl Into<String>, settings: Vec<Setting>) -> Self {
        Self {
            name: name.into(),
            settings,
        }
    }

    pub fn setting(&self, name: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.name == name)
    }
}

/// What a setting is, which decides how its value is parsed and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingKind {
    /// A continuous number between `min` and `max`, on a `step` grid.
    Range,
    /// A whole number between `min` and `max`, on a `step` grid.
    Int,
    /// One of `values`.
    Enum,
    /// CPU in cores (`0.25` = `250m`).
    Cpu,
    /// Memory in GiB (`0.5` = `512Mi`), as ServoX puts it on the wire.
    Memory,
    /// A replica count.
    Replicas,
    /// An environment variable: numeric (`min`/`max`/`step`) or one of `values`.
    Env,
}

/// One tunable knob of a component, with its domain and current value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SettingKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<SettingValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// A pinned setting is described but never changed by the optimizer.
    #[serde(default)]
    pub pinned: bool,
}

/// The domain of a setting, derived from its kind and bounds.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain<'a> {
    Numeric {
        min: f64,
        max: f64,
        step: Option<f64>,
        integer: bool,
    },
    Categorical(&'a [String]),
}

impl Setting {
    fn numeric(name: &str, kind: SettingKind, min: f64, max: f64, step: f64) -> Self {
        Self {
            name: name.to_string(),
            kind,
            min: Some(min),
            max: Some(max),
            step: (step > 0.0).then_some(step),
            values: None,
            value: None,
            unit: None,
            pinned: false,
        }
    }

    pub fn range(name: &str, min: f64, max: f64, step: f64) -> Self {
        Self::numeric(name, SettingKind::Range, min, max, step)
    }

    pub fn int(name: &str, min: i64, max: i64, step: i64) -> Self {
        Self::numeric(name, SettingKind::Int, min as f64, max as f64, step as f64)
    }

    pub fn cpu(name: &str, min: Cpu, max: Cpu, step: Cpu) -> Self {
        let mut s = Self::numeric(
            name,
            SettingKind::Cpu,
            min.cores(),
            max.cores(),
            step.cores(),
        );
        s.unit = Some("cores".into());
        s
    }

    pub fn memory(name: &str, min: Memory, max: Memory, step: Memory) -> Self {
        let mut s = Self::numeric(name, SettingKind::Memory, min.gib(), max.gib(), step.gib());
        s.unit = Some("GiB".into());
        s
    }

    pub fn replicas(name: &str, min: i64, max: i64, step: i64) -> Self {
        Self::numeric(
            name,
            SettingKind::Replicas,
            min as f64,
            max as f64,
            step as f64,
        )
    }

    pub fn enumeration(name: &str, values: Vec<String>) -> Self {
        Self {
            name: name.to_string(),
            kind: SettingKind::Enum,
            min: None,
            max: None,
            step: None,
            values: Some(values),
            value: None,
            unit: None,
            pinned: false,
        }
    }

    pub fn with_value(mut self, value: impl Into<SettingValue>) -> Self {
        self.value = Some(value.into());
        self
    }

    pub fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    pub fn pinned(mut self, pinned: bool) -> Self {
        self.pinned = pinned;
        self
    }

    pub fn domain(&self) -> Domain<'_> {
        match (&self.values, self.kind) {
            (Some(values), SettingKind::Enum | SettingKind::Env) => Domain::Categorical(values),
            _ => Domain::Numeric {
                min: self.min.unwrap_or(f64::MIN),
                max: self.max.unwrap_or(f64::MAX),
                step: self.step,
                integer: matches!(self.kind, SettingKind::Int | SettingKind::Replicas),
            },
        }
    }

    /// Parses a value typed by a person (`servo adjust main.cpu=250m`) and checks it fits the domain.
    pub fn parse_value(&self, text: &str) -> Result<SettingValue, String> {
        let text = text.trim();
        let value = match self.domain() {
            Domain::Categorical(_) => SettingValue::String(text.to_string()),
            Domain::Numeric { integer, .. } => {
                let number = match self.kind {
                    SettingKind::Cpu => text
                        .parse::<Cpu>()
                        .map(|c| c.cores())
                        .map_err(|e| e.to_string())?,
                    SettingKind::Memory => match text.parse::<f64>() {
                        // A bare number is GiB, the unit memory settings are described in.
                        Ok(gib) => gib,
                        Err(_) => text
                            .parse::<Memory>()
                            .map(|m| m.gib())
                            .map_err(|e| e.to_string())?,
                    },
                    _ => text.parse::<f64>().map_err(|_| {
                        format!("expected a number for `{}`, found `{text}`", self.name)
                    })?,
                };
                if integer {
                    if number.fract() != 0.0 {
                        return Err(format!(
                            "expected a whole number for `{}`, found `{text}`",
                            self.name
                        ));
                    }
                    SettingValue::Int(number as i64)
                } else {
                    SettingValue::Float(number)
                }
            }
        };
        self.check_value(&value)?;
        Ok(value)
    }

    /// Checks a value against the setting's domain: bounds, step grid, enum membership.
    pub fn check_value(&self, value: &SettingValue) -> Result<(), String> {
        match self.domain() {
            Domain::Categorical(values) => {
                let text = value.to_string();
                if values.contains(&text) {
                    Ok(())
                } else {
                    let mut message = format!(
                        "`{text}` is not a value of `{}`: expected one of {}",
                        self.name,
                        values.join(", ")
                    );
                    if let Some(s) = did_you_mean(&text, values.iter().map(String::as_str)) {
                        message.push_str(&format!(" (did you mean `{s}`?)"));
                    }
                    Err(message)
                }
            }
            Domain::Numeric {
                min,
                max,
                step,
                integer,
            } => {
                let Some(number) = value.as_f64() else {
                    return Err(format!(
                        "expected a number for `{}`, found `{value}`",
                        self.name
                    ));
                };
                if !number.is_finite() {
                    return Err(format!("`{}` must be a finite number", self.name));
                }
                if integer && number.fract() != 0.0 {
                    return Err(format!(
                        "expected a whole number for `{}`, found `{value}`",
                        self.name
                    ));
                }
                let tolerance = 1e-9 * (max - min).abs().max(1.0);
                if number < min - tolerance || number > max + tolerance {
                    return Err(format!(
                        "{value} is out of range for `{}`: expected {} to {}",
                        self.name,
                        SettingValue::Float(min),
                        SettingValue::Float(max)
                    ));
                }
                if let Some(step) = step.filter(|s| *s > 0.0) {
                    let k = (number - min) / step;
                    if (k - k.round()).abs() > 1e-6 {
                        return Err(format!(
                            "{value} is not on the step grid of `{}`: expected {} + a multiple of {}",
                            self.name,
                            SettingValue::Float(min),
                            SettingValue::Float(step)
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

/// The value of a setting: a whole number, a real number or a string (enum settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SettingValue {
    Int(i64),
    Float(f64),
    String(String),
}

impl SettingValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            SettingValue::Int(i) => Some(*i as f64),
            SettingValue::Float(f) => Some(*f),
            SettingValue::String(s) => s.parse().ok(),
        }
    }
}

impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Int(i) => write!(f, "{i}"),
            // `{}` on f64 prints the shortest text that round-trips, and `1` rather than `1.0`.
            SettingValue::Float(x) => write!(f, "{x}"),
            SettingValue::String(s) => f.write_str(s),
        }
    }
}

impl From<i64> for SettingValue {
    fn from(v: i64) -> Self {
        SettingValue::Int(v)
    }
}

impl From<f64> for SettingValue {
    fn from(v: f64) -> Self {
        SettingValue::Float(v)
    }
}

impl From<&str> for SettingValue {
    fn from(v: &str) -> Self {
        SettingValue::String(v.to_string())
    }
}

impl From<String> for SettingValue {
    fn from(v: String) -> Self {
        SettingValue::String(v)
    }
}

/// A metric a connector can measure.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    /// `rps`, `ms`, `%`, `bytes`, `cores`, `s`, or empty for a plain count.
    #[serde(default)]
    pub unit: String,
}

impl Metric {
    pub fn new(name: impl Into<String>, unit: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            unit: unit.into(),
        }
    }
}

/// Samples of one metric over time: `[unix_seconds, value]` pairs, as on the wire.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeSeries {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub points: Vec<(f64, f64)>,
}

/// One metric's result from a measurement: a summary value, and the series it came from when the
/// connector has one (a Prometheus range query, vegeta's per-interval report).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub metric: Metric,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<TimeSeries>,
}

impl Reading {
    pub fn new(metric: Metric, value: f64) -> Self {
        Self {
            metric,
            value,
            series: None,
        }
    }

    pub fn with_series(mut self, series: TimeSeries) -> Self {
        self.series = Some(series);
        self
    }
}

/// The result of a `measure` event: readings from every connector that measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub readings: Vec<Reading>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Measurement {
    pub fn reading(&self, metric: &str) -> Option<&Reading> {
        self.readings.iter().find(|r| r.metric.name == metric)
    }

    pub fn merge(&mut self, other: Measurement) {
        self.readings.extend(other.readings);
        self.annotations.extend(other.annotations);
    }
}

/// What the application looks like: its tunable components and the metrics available on it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Description {
    pub components: Vec<Component>,
    pub metrics: Vec<Metric>,
}

impl Description {
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    pub fn merge(&mut self, other: Description) {
        self.components.extend(other.components);
        self.metrics.extend(other.metrics);
    }
}

/// One change to apply: `component.setting = value`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    pub component: String,
    pub setting: String,
    pub value: SettingValue,
}

impl fmt::Display for Adjustment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}={}", self.component, self.setting, self.value)
    }
}

/// How a measurement or adjustment is to be run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// How long to measure. Zero lets each connector use its own default.
    #[serde(default)]
    pub duration: Duration,
    /// Time to let load run before measuring starts.
    #[serde(default)]
    pub warmup: Duration,
    /// Time to wait after the measurement window before reading results (ServoX `delay`, alias `past`).
    #[serde(default, alias = "past")]
    pub delay: Duration,
    /// After an adjustment, how long the application must stay healthy before it counts as settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<Duration>,
    /// Opaque data passed through from the optimizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userdata: Option<serde_json::Value>,
}

impl Control {
    /// The measurement's duration when the request sets one; `None` (zero) leaves the choice to the
    /// connector's own default.
    pub fn requested_duration(&self) -> Option<Duration> {
        (!self.duration.is_zero()).then_some(self.duration)
    }
}

/// What to measure: which metrics (all when empty) and how.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeasureRequest {
    pub metrics: Vec<String>,
    pub control: Control,
}

/// How bad a failed check is.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    #[default]
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// The result of one pre-flight check: can servo do its work against this connector?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    /// The mount that ran the check; filled in by the event bus.
    #[serde(default)]
    pub connector: String,
    pub success: bool,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What to do about a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            connector: String::new(),
            success: true,
            severity: Severity::Critical,
            message: Some(message.into()),
            hint: None,
        }
    }

    pub fn fail(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            success: false,
            ..Self::pass(name, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_serializes_with_servox_field_names() {
        let s = Setting::range("cpu", 0.25, 4.0, 0.125)
            .with_value(1.0)
            .with_unit("cores");
        let json = serde_json::to_value(&s).expect("settings serialize");
        assert_eq!(json["type"], "range");
        assert_eq!(json["min"], 0.25);
        assert_eq!(json["value"], 1.0);
        assert_eq!(json["pinned"], false);
    }

    #[test]
    fn parse_value_checks_bounds_step_and_kind() {
        let workers = Setting::int("workers", 1, 16, 1);
        assert_eq!(workers.parse_value("4"), Ok(SettingValue::Int(4)));
        assert!(workers.parse_value("4.5").is_err());
        assert!(
            workers
                .parse_value("17")
                .unwrap_err()
                .contains("out of range")
        );

        let cpu = Setting::cpu(
            "cpu",
            Cpu::from_millicores(250),
            Cpu::from_millicores(4000),
            Cpu::from_millicores(125),
        );
        assert_eq!(cpu.parse_value("500m"), Ok(SettingValue::Float(0.5)));
        assert!(cpu.parse_value("300m").unwrap_err().contains("step grid"));

        let mem = Setting::memory(
            "mem",
            Memory::from_bytes(256 << 20),
            Memory::from_bytes(4 << 30),
            Memory::from_bytes(256 << 20),
        );
        assert_eq!(mem.parse_value("512Mi"), Ok(SettingValue::Float(0.5)));

        let mode = Setting::enumeration("mode", vec!["fast".into(), "thorough".into()]);
        let err = mode.parse_value("fsat").unwrap_err();
        assert!(err.contains("did you mean `fast`"), "{err}");
    }
}
