//! Conversions between the wire shapes and [`servo_core::types`]: what a servo sends (descriptions,
//! measurements) and reads back (adjustments), both ways since the optimizer server reads them too.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use servo_core::types::{
    Adjustment, Description, Domain, Measurement, Setting, SettingKind, SettingValue,
};

use super::State;

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
