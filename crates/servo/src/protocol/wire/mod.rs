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
use serde_json::{Map, Value};

use servo_core::types::Control;
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

mod convert;
#[cfg(test)]
mod tests;

pub(crate) use convert::kind_of;
pub use convert::{adjustments, description, measurement, parse_description, parse_measurement};
