//! The JSON shapes of the Opsani/ServoX optimizer protocol, and their conversions from and to
//! [`servo_core::types`].
//!
//! The shapes are ServoX's (see `/work/shared/optimizer-protocol.md`): a request is
//! `{"event", "param", "servo_uid"}`, the answer to `WHATS_NEXT` is a [`Command`], every other answer
//! and every result we send is a [`Status`]. Settings go on the wire as ServoX's `range`/`enum`
//! settings with CPU in cores and memory in GiB, which is how [`servo_core::types::Setting`] already
//! stores them, so the conversion only renames kinds and keeps integers integral.
//!
//! Decoding is lenient where ServoX is (durations as seconds or `"5m"`, metric lists as arrays or
//! objects, unknown fields ignored) because we do not control the optimizer's version.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use servo_core::types::{
    Adjustment, Control, Description, Domain, Measurement, Setting, SettingKind, SettingValue,
};
use servo_core::units::Duration;

/// An event the servo posts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventName {
    Hello,
    Goodbye,
    WhatsNext,
    Description,
    Measurement,
    Adjustment,
}

impl EventName {
    /// The name as sent on the wire (`WHATS_NEXT`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Hello => "HELLO",
            EventName::Goodbye => "GOODBYE",
            EventName::WhatsNext => "WHATS_NEXT",
            EventName::Description => "DESCRIPTION",
            EventName::Measurement => "MEASUREMENT",
            EventName::Adjustment => "ADJUSTMENT",
        }
    }

    /// The key of `settings.backoff` that governs this event's retries (`whats_next`), as ServoX
    /// names its backoff contexts.
    pub fn backoff_key(self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every `POST {url}servo`. `param` and `servo_uid` are sent as `null` when unset, as
/// ServoX does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub event: EventName,
    pub param: Option<Value>,
    pub servo_uid: Option<String>,
}

/// ServoX's status words. Kept as strings on [`Status`] because optimizers answer with words of
/// their own (`invalid`, `cancel`), which must not make an answer undecodable.
pub mod statuses {
    pub const OK: &str = "ok";
    pub const FAILED: &str = "failed";
    pub const REJECTED: &str = "rejected";
    pub const ABORTED: &str = "aborted";
    pub const CANCELLED: &str = "cancelled";
    pub const UNEXPECTED_EVENT: &str = "unexpected-event";
}

/// A status: what the servo reports after a command, and what the optimizer answers to an event.
/// Unset fields are omitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd_uid: Option<String>,
}

impl Status {
    pub fn ok() -> Self {
        Self {
            status: statuses::OK.into(),
            ..Self::default()
        }
    }

    /// A failure to report: `status` is `failed`, `rejected`, `aborted` or `cancelled`.
    pub fn failure(status: &str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..Self::default()
        }
    }

    pub fn with_cmd_uid(mut self, cmd_uid: Option<String>) -> Self {
        self.cmd_uid = cmd_uid;
        self
    }

    pub fn is_ok(&self) -> bool {
        self.status == statuses::OK
    }
}

/// What the optimizer asks for in answer to `WHATS_NEXT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandName {
    Describe,
    Measure,
    Adjust,
    Sleep,
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommandName::Describe => "DESCRIBE",
            CommandName::Measure => "MEASURE",
            CommandName::Adjust => "ADJUST",
            CommandName::Sleep => "SLEEP",
        })
    }
}

/// The answer to `WHATS_NEXT`. `param` stays raw until the command is known, so a malformed
/// parameter is reported to the optimizer as a failed command instead of breaking the loop.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Command {
    pub cmd: CommandName,
    #[serde(default)]
    pub cmd_uid: Option<String>,
    #[serde(default)]
    pub param: Option<Value>,
}

/// How to run a measurement or adjustment, as the optimizer sends it. Durations are seconds or
/// duration strings (`"5m"`); `past` is ServoX's alias of `delay`. `load` and `environment` are
/// accepted and ignored: no built-in connector uses them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WireControl {
    #[serde(default, deserialize_with = "lenient_duration")]
    pub duration: Option<Duration>,
    #[serde(default, alias = "past", deserialize_with = "lenient_duration")]
    pub delay: Option<Duration>,
    #[serde(default, deserialize_with = "lenient_duration")]
    pub warmup: Option<Duration>,
    #[serde(default, deserialize_with = "lenient_duration")]
    pub settlement: Option<Duration>,
    #[serde(default)]
    pub load: Option<Value>,
    #[serde(default)]
    pub userdata: Option<Value>,
    #[serde(default)]
    pub environment: Option<Value>,
}

/// A duration that may be `null`, a number of seconds or a string such as `"5m"`.
fn lenient_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<Duration>::deserialize(d)
}

impl From<WireControl> for Control {
    fn from(w: WireControl) -> Control {
        Control {
            duration: w.duration.unwrap_or_default(),
            warmup: w.warmup.unwrap_or_default(),
            delay: w.delay.unwrap_or_default(),
            settlement: w.settlement,
            userdata: w.userdata,
        }
    }
}

/// `DESCRIBE`'s parameter.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct DescribeParam {
    #[serde(default)]
    pub control: Option<WireControl>,
}

/// `MEASURE`'s parameter: the metric names (an array, or an object whose keys are the names) and
/// the control.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct MeasureParam {
    #[serde(default, deserialize_with = "metric_names")]
    pub metrics: Vec<String>,
    #[serde(default)]
    pub control: Option<WireControl>,
}

fn metric_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Keys(BTreeMap<String, Value>),
        Null(()),
    }
    Ok(match Names::deserialize(d)? {
        Names::List(names) => names,
        Names::Keys(map) => map.into_keys().collect(),
        Names::Null(()) => Vec::new(),
    })
}

/// `ADJUST`'s parameter: the wanted state and the control.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct AdjustParam {
    pub state: State,
    #[serde(default)]
    pub control: Option<WireControl>,
}

/// `{"application": {"components": {"web": {"settings": {"cpu": {"value": 1}}}}}}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct State {
    pub application: StateApplication,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StateApplication {
    #[serde(default)]
    pub components: BTreeMap<String, StateComponent>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StateComponent {
    #[serde(default)]
    pub settings: BTreeMap<String, StateSetting>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StateSetting {
    pub value: Value,
}

/// `SLEEP`'s parameter.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct SleepParam {
    #[serde(default, deserialize_with = "lenient_duration")]
    pub duration: Option<Duration>,
    #[serde(default)]
    pub data: Option<Value>,
}

/// Decodes a command's parameter; `null` or a missing parameter reads as `{}`.
pub fn param<T: serde::de::DeserializeOwned>(param: Option<Value>) -> Result<T, String> {
    let value = match param {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v,
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

/// A description as ServoX puts it on the wire (the `descriptor` of `DESCRIPTION` and the `state`
/// of `ADJUSTMENT`).
pub fn description(d: &Description) -> Value {
    let components: Map<String, Value> = d
        .components
        .iter()
        .map(|c| {
            let settings: Map<String, Value> = c
                .settings
                .iter()
                .map(|s| (s.name.clone(), setting(s)))
                .collect();
            (c.name.clone(), json!({ "settings": settings }))
        })
        .collect();
    let metrics: Map<String, Value> = d
        .metrics
        .iter()
        .map(|m| (m.name.clone(), json!({ "unit": m.unit })))
        .collect();
    json!({
        "application": { "components": components },
        "measurement": { "metrics": metrics },
    })
}

/// One setting as ServoX's `range` or `enum` setting. Whole-number kinds (`int`, `replicas`) keep
/// integral bounds and values, as ServoX's `Replicas` does.
fn setting(s: &Setting) -> Value {
    let mut out = Map::new();
    match s.domain() {
        Domain::Categorical(values) => {
            out.insert("type".into(), json!("enum"));
            out.insert("values".into(), json!(values));
            if let Some(v) = &s.value {
                out.insert("value".into(), json!(v.to_string()));
            }
            out.insert("unit".into(), json!(s.unit.clone().unwrap_or_default()));
        }
        Domain::Numeric { integer, .. } => {
            let number = |x: f64| {
                if integer && x.fract() == 0.0 && x.abs() < 9.0e15 {
                    json!(x as i64)
                } else {
                    json!(x)
                }
            };
            out.insert("type".into(), json!("range"));
            for (key, bound) in [("min", s.min), ("max", s.max), ("step", s.step)] {
                if let Some(x) = bound {
                    out.insert(key.into(), number(x));
                }
            }
            if let Some(v) = &s.value {
                let value = match v {
                    SettingValue::String(text) => json!(text),
                    other => other.as_f64().map_or(Value::Null, number),
                };
                out.insert("value".into(), value);
            }
            // ServoX always names CPU and memory units; settings built from a config may not.
            let unit = s.unit.as_deref().or(match s.kind {
                SettingKind::Cpu => Some("cores"),
                SettingKind::Memory => Some("GiB"),
                _ => None,
            });
            if let Some(unit) = unit {
                out.insert("unit".into(), json!(unit));
            }
        }
    }
    out.insert("pinned".into(), json!(s.pinned));
    Value::Object(out)
}

/// A measurement as ServoX puts it on the wire: `{"metrics": {...}, "annotations": {...}}`. A
/// reading with a time series is sent as its `values`, one without as its `value`.
pub fn measurement(m: &Measurement) -> (Value, Value) {
    let metrics: Map<String, Value> = m
        .readings
        .iter()
        .map(|r| {
            let body = match &r.series {
                Some(series) => {
                    let id = series.id.clone().unwrap_or_else(|| r.metric.name.clone());
                    let data: Vec<Value> =
                        series.points.iter().map(|(t, v)| json!([t, v])).collect();
                    json!({ "unit": r.metric.unit, "values": [{ "id": id, "data": data }] })
                }
                None => json!({ "unit": r.metric.unit, "value": r.value }),
            };
            (r.metric.name.clone(), body)
        })
        .collect();
    (Value::Object(metrics), json!(m.annotations))
}

/// Turns an `ADJUST` state into adjustments, typing each value by the described setting: a whole
/// number for `int`/`replicas`, a string for enums, a real number otherwise (CPU in cores, memory
/// in GiB; strings such as `"500m"` or `"512Mi"` are parsed as `servo adjust` parses them).
///
/// Unknown components or settings, values outside the domain and changes to pinned settings are
/// refused here, with every problem named, so nothing is applied when any value is wrong.
pub fn adjustments(state: &State, current: &Description) -> Result<Vec<Adjustment>, String> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (component_name, component) in &state.application.components {
        let Some(described) = current.component(component_name) else {
            problems.push(format!("no component is named `{component_name}`"));
            continue;
        };
        for (setting_name, wanted) in &component.settings {
            let Some(setting) = described.setting(setting_name) else {
                problems.push(format!(
                    "component `{component_name}` has no setting `{setting_name}`"
                ));
                continue;
            };
            match typed_value(setting, &wanted.value) {
                Ok(value) => {
                    if setting.pinned && setting.value.as_ref() != Some(&value) {
                        problems.push(format!(
                            "{component_name}.{setting_name} is pinned and cannot be changed"
                        ));
                        continue;
                    }
                    out.push(Adjustment {
                        component: component_name.clone(),
                        setting: setting_name.clone(),
                        value,
                    });
                }
                Err(e) => problems.push(format!("{component_name}.{setting_name}: {e}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("; "))
    }
}

fn typed_value(setting: &Setting, value: &Value) -> Result<SettingValue, String> {
    let typed = match (setting.domain(), value) {
        (Domain::Categorical(_), Value::String(s)) => SettingValue::String(s.clone()),
        (Domain::Categorical(_), Value::Number(n)) => SettingValue::String(n.to_string()),
        (Domain::Categorical(_), Value::Bool(b)) => SettingValue::String(b.to_string()),
        (Domain::Numeric { .. }, Value::String(s)) => return setting.parse_value(s),
        (Domain::Numeric { integer, .. }, Value::Number(n)) => {
            let Some(x) = n.as_f64() else {
                return Err(format!("`{n}` is not a number servo can represent"));
            };
            let whole = integer || matches!(setting.kind, SettingKind::Int | SettingKind::Replicas);
            if whole && x.fract() == 0.0 && x.abs() < 9.0e15 {
                SettingValue::Int(x as i64)
            } else {
                SettingValue::Float(x)
            }
        }
        (_, other) => return Err(format!("expected a number or a string, found `{other}`")),
    };
    setting.check_value(&typed)?;
    Ok(typed)
}

/// Reads a description from the wire (what a servo sends as `descriptor`), for the optimizer server.
///
/// ServoX has two setting types, `range` and `enum`; a range whose bounds and step are all JSON
/// integers is read as a whole-number setting (ServoX's `Replicas` and integer ranges), so the
/// optimizer never suggests `2.5` replicas. Unknown setting types are refused by name.
pub fn parse_description(value: &Value) -> Result<Description, String> {
    let object = |v: &Value, at: &str| -> Result<Map<String, Value>, String> {
        match v {
            Value::Object(map) => Ok(map.clone()),
            Value::Null => Ok(Map::new()),
            other => Err(format!(
                "{at}: expected an object, found {}",
                kind_of(other)
            )),
        }
    };
    let application = object(&value["application"], "application")?;
    let components_value = application
        .get("components")
        .cloned()
        .unwrap_or(Value::Null);
    let mut components = Vec::new();
    for (name, component) in object(&components_value, "application.components")? {
        let at = format!("application.components.{name}");
        let settings_value = component.get("settings").cloned().unwrap_or(Value::Null);
        let mut settings = Vec::new();
        for (setting_name, body) in object(&settings_value, &format!("{at}.settings"))? {
            settings.push(
                parse_setting(&setting_name, &body)
                    .map_err(|e| format!("{at}.settings.{setting_name}: {e}"))?,
            );
        }
        components.push(servo_core::types::Component::new(name, settings));
    }
    let metrics_value = value["measurement"]["metrics"].clone();
    let metrics = object(&metrics_value, "measurement.metrics")?
        .into_iter()
        .map(|(name, body)| {
            let unit = body.get("unit").and_then(Value::as_str).unwrap_or_default();
            servo_core::types::Metric::new(name, unit)
        })
        .collect();
    Ok(Description {
        components,
        metrics,
    })
}

/// A JSON value's type in words, for messages that must not echo a (possibly large) value back.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_setting(name: &str, body: &Value) -> Result<Setting, String> {
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("range");
    let pinned = body.get("pinned").and_then(Value::as_bool).unwrap_or(false);
    let unit = body
        .get("unit")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty());
    let mut setting = match kind {
        "enum" => {
            let values: Vec<String> = body
                .get("values")
                .and_then(Value::as_array)
                .ok_or("an enum setting needs `values`")?
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            if values.is_empty() {
                return Err("an enum setting needs at least one value".into());
            }
            let mut s = Setting::enumeration(name, values);
            s.value = body.get("value").and_then(|v| match v {
                Value::Null => None,
                Value::String(s) => Some(SettingValue::String(s.clone())),
                other => Some(SettingValue::String(other.to_string())),
            });
            s
        }
        "range" => {
            let bound = |key: &str| -> Result<Option<&serde_json::Number>, String> {
                match body.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Number(n)) => Ok(Some(n)),
                    Some(Value::String(text)) => Err(format!(
                        "`{key}` is the string {text:?}; ranges are numbers on the wire"
                    )),
                    Some(other) => Err(format!(
                        "`{key}` must be a number, found {}",
                        kind_of(other)
                    )),
                }
            };
            let (min, max) = match (bound("min")?, bound("max")?) {
                (Some(min), Some(max)) => (min, max),
                _ => return Err("a range setting needs `min` and `max`".into()),
            };
            let step = bound("step")?;
            let as_f64 = |n: &serde_json::Number| n.as_f64().unwrap_or(f64::NAN);
            let (lo, hi) = (as_f64(min), as_f64(max));
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(format!(
                    "`min` ({min}) must be a number no greater than `max` ({max})"
                ));
            }
            let whole = min.is_i64() && max.is_i64() && step.is_none_or(|s| s.is_i64());
            let step_value = step.map_or(0.0, as_f64);
            let mut s = if name == "replicas" && whole {
                Setting::replicas(name, lo as i64, hi as i64, step_value as i64)
            } else if whole {
                Setting::int(name, lo as i64, hi as i64, step_value as i64)
            } else {
                Setting::range(name, lo, hi, step_value)
            };
            s.value = match body.get("value") {
                Some(Value::Number(n)) if whole && n.is_i64() => n.as_i64().map(SettingValue::Int),
                Some(Value::Number(n)) => n.as_f64().map(SettingValue::Float),
                _ => None,
            };
            s
        }
        other => {
            return Err(format!(
                "unknown setting type `{other}` (ServoX settings are `range` or `enum`)"
            ));
        }
    };
    setting.unit = unit.map(str::to_string);
    setting.pinned = pinned;
    Ok(setting)
}

/// Reads a measurement from the wire (a `MEASUREMENT` status' `metrics`). A time series counts as
/// the mean of its points, the value servo's own connectors report beside a series; a metric with
/// no points is left out, as if it had not been measured.
pub fn parse_measurement(metrics: &Value) -> Result<Measurement, String> {
    let map = match metrics {
        Value::Object(map) => map,
        Value::Null => return Ok(Measurement::default()),
        other => {
            return Err(format!(
                "metrics: expected an object, found {}",
                kind_of(other)
            ));
        }
    };
    let mut readings = Vec::new();
    for (name, body) in map {
        let unit = body.get("unit").and_then(Value::as_str).unwrap_or_default();
        let metric = servo_core::types::Metric::new(name.clone(), unit);
        if let Some(value) = body.get("value").and_then(number) {
            readings.push(servo_core::types::Reading::new(metric, value));
            continue;
        }
        let points: Vec<f64> = body
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|series| series.get("data").and_then(Value::as_array))
            .flatten()
            .filter_map(|point| point.as_array().and_then(|p| p.get(1)).and_then(number))
            .collect();
        if !points.is_empty() {
            let mean = points.iter().sum::<f64>() / points.len() as f64;
            readings.push(servo_core::types::Reading::new(metric, mean));
        }
    }
    Ok(Measurement {
        readings,
        annotations: BTreeMap::new(),
    })
}

/// A finite number, from a JSON number or a numeric string (ServoX sends Decimals as strings).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use servo_core::types::{Component, Metric, Reading, TimeSeries};
    use servo_core::units::{Cpu, Memory};

    fn app() -> Description {
        Description {
            components: vec![Component::new(
                "web",
                vec![
                    Setting::cpu(
                        "cpu",
                        Cpu::from_millicores(250),
                        Cpu::from_millicores(4000),
                        Cpu::from_millicores(125),
                    )
                    .with_value(1.0),
                    Setting::memory(
                        "mem",
                        Memory::from_bytes(256 << 20),
                        Memory::from_bytes(4 << 30),
                        Memory::from_bytes(128 << 20),
                    )
                    .with_value(2.0),
                    Setting::replicas("replicas", 1, 4, 1).with_value(2i64),
                    Setting::enumeration("mode", vec!["a".into(), "b".into()]).with_value("a"),
                    Setting::int("fixed", 1, 9, 1).with_value(3i64).pinned(true),
                ],
            )],
            metrics: vec![Metric::new("throughput", "rps")],
        }
    }

    #[test]
    fn description_has_servox_shape_with_cores_gib_and_integral_replicas() {
        let d = description(&app());
        let web = &d["application"]["components"]["web"]["settings"];
        assert_eq!(
            web["cpu"],
            json!({"type": "range", "min": 0.25, "max": 4.0, "step": 0.125, "value": 1.0, "unit": "cores", "pinned": false})
        );
        assert_eq!(web["mem"]["unit"], "GiB");
        assert_eq!(web["mem"]["min"], 0.25);
        assert_eq!(
            web["replicas"],
            json!({"type": "range", "min": 1, "max": 4, "step": 1, "value": 2, "pinned": false})
        );
        assert_eq!(
            web["mode"],
            json!({"type": "enum", "values": ["a", "b"], "value": "a", "unit": "", "pinned": false})
        );
        assert_eq!(
            d["measurement"]["metrics"]["throughput"],
            json!({"unit": "rps"})
        );
    }

    #[test]
    fn commands_decode_with_lenient_durations_and_metric_shapes() {
        let cmd: Command = serde_json::from_value(json!({
            "cmd": "MEASURE", "cmd_uid": "u1",
            "param": {"metrics": {"throughput": {}}, "control": {"duration": "5m", "past": 10}}
        }))
        .expect("decodes");
        assert_eq!(cmd.cmd, CommandName::Measure);
        let p: MeasureParam = param(cmd.param).expect("param decodes");
        assert_eq!(p.metrics, vec!["throughput"]);
        let control = Control::from(p.control.unwrap_or_default());
        assert_eq!(control.duration, Duration::from_secs(300));
        assert_eq!(control.delay, Duration::from_secs(10));

        let p: MeasureParam = param(Some(
            json!({"metrics": ["a", "b"], "control": {"duration": 1.5}}),
        ))
        .expect("ok");
        assert_eq!(p.metrics, vec!["a", "b"]);
        assert_eq!(
            p.control.and_then(|c| c.duration),
            Some(Duration::from_millis(1500))
        );
        let p: SleepParam =
            param(Some(json!({"duration": 7, "data": {"reason": "x"}}))).expect("ok");
        assert_eq!(p.duration, Some(Duration::from_secs(7)));
        let err = param::<SleepParam>(Some(json!({"duration": "soon"}))).unwrap_err();
        assert!(err.contains("duration"), "{err}");
    }

    #[test]
    fn adjustments_are_typed_by_the_description_and_checked() {
        let state: State = serde_json::from_value(json!({"application": {"components": {"web": {"settings": {
            "cpu": {"value": 0.5}, "mem": {"value": "512Mi"}, "replicas": {"value": 3}, "mode": {"value": "b"},
            "fixed": {"value": 3}
        }}}}}))
        .expect("state decodes");
        let adjusted = adjustments(&state, &app()).expect("valid");
        let text: Vec<String> = adjusted.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "web.cpu=0.5",
                "web.fixed=3",
                "web.mem=0.5",
                "web.mode=b",
                "web.replicas=3"
            ]
        );
        assert_eq!(adjusted[4].value, SettingValue::Int(3));

        let bad: State = serde_json::from_value(json!({"application": {"components": {
            "web": {"settings": {"cpu": {"value": 9}, "fixed": {"value": 4}, "nope": {"value": 1}}},
            "db": {"settings": {}}
        }}}))
        .expect("state decodes");
        let err = adjustments(&bad, &app()).unwrap_err();
        assert!(err.contains("no component is named `db`"), "{err}");
        assert!(err.contains("web.cpu: 9 is out of range"), "{err}");
        assert!(err.contains("web.fixed is pinned"), "{err}");
        assert!(err.contains("no setting `nope`"), "{err}");
    }

    #[test]
    fn measurement_sends_series_as_values_and_scalars_as_value() {
        let m = Measurement {
            readings: vec![
                Reading::new(Metric::new("throughput", "rps"), 49.0).with_series(TimeSeries {
                    id: Some("1".into()),
                    points: vec![(1.0, 48.0), (2.0, 50.0)],
                }),
                Reading::new(Metric::new("latency", "ms"), 41.7),
            ],
            annotations: BTreeMap::from([("note".to_string(), "x".to_string())]),
        };
        let (metrics, annotations) = measurement(&m);
        assert_eq!(
            metrics,
            json!({
                "throughput": {"unit": "rps", "values": [{"id": "1", "data": [[1.0, 48.0], [2.0, 50.0]]}]},
                "latency": {"unit": "ms", "value": 41.7}
            })
        );
        assert_eq!(annotations, json!({"note": "x"}));
    }

    #[test]
    fn requests_send_null_param_and_uid_like_servox() {
        let r = Request {
            event: EventName::WhatsNext,
            param: None,
            servo_uid: None,
        };
        assert_eq!(
            serde_json::to_value(&r).expect("serializes"),
            json!({"event": "WHATS_NEXT", "param": null, "servo_uid": null})
        );
        assert_eq!(EventName::WhatsNext.backoff_key(), "whats_next");
        let status =
            Status::failure(statuses::REJECTED, "invalid", "bad").with_cmd_uid(Some("u".into()));
        assert_eq!(
            serde_json::to_value(&status).expect("serializes"),
            json!({"status": "rejected", "reason": "invalid", "message": "bad", "cmd_uid": "u"})
        );
    }

    #[test]
    fn descriptions_read_back_from_the_wire_keep_domains_and_values() {
        let original = app();
        let parsed = parse_description(&description(&original)).expect("parses");
        let web = parsed.component("web").expect("web");
        let cpu = web.setting("cpu").expect("cpu");
        assert_eq!(
            (cpu.min, cpu.max, cpu.step),
            (Some(0.25), Some(4.0), Some(0.125))
        );
        assert_eq!(cpu.value, Some(SettingValue::Float(1.0)));
        assert_eq!(cpu.unit.as_deref(), Some("cores"));
        let replicas = web.setting("replicas").expect("replicas");
        assert_eq!(replicas.kind, SettingKind::Replicas);
        assert_eq!(replicas.value, Some(SettingValue::Int(2)));
        let mode = web.setting("mode").expect("mode");
        assert_eq!(
            mode.domain(),
            Domain::Categorical(&["a".to_string(), "b".to_string()])
        );
        assert!(web.setting("fixed").expect("fixed").pinned);
        assert_eq!(parsed.metrics, vec![Metric::new("throughput", "rps")]);

        let err = parse_description(&json!({"application": {"components": {"web": {"settings": {
            "cpu": {"type": "range", "min": "1", "max": 2}}}}}}))
        .unwrap_err();
        assert!(
            err.contains("application.components.web.settings.cpu"),
            "{err}"
        );
        let err = parse_description(&json!({"application": {"components": {"web": {"settings": {
            "x": {"type": "dial"}}}}}}))
        .unwrap_err();
        assert!(err.contains("unknown setting type `dial`"), "{err}");
        assert!(
            parse_description(&json!({}))
                .expect("empty is fine")
                .components
                .is_empty()
        );
    }

    #[test]
    fn measurements_read_back_as_values_or_series_means() {
        let readings = parse_measurement(&json!({
            "throughput": {"unit": "rps", "values": [{"id": "1", "data": [[1, 48.0], [2, "52"]]}]},
            "latency": {"unit": "ms", "value": 41.7},
            "empty": {"unit": "ms", "values": []},
        }))
        .expect("parses");
        assert_eq!(readings.reading("throughput").map(|r| r.value), Some(50.0));
        assert_eq!(readings.reading("latency").map(|r| r.value), Some(41.7));
        assert!(readings.reading("empty").is_none());
        assert!(parse_measurement(&json!([1])).is_err());
    }
}
