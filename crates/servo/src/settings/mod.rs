//! The settings servo itself reads from a config (`settings:`, `checks:`, `optimizer:`) and the
//! rules for root keys. Both the config loader and the schemas need them; they live here, below
//! both, so that the schemas never import the loader.

pub mod optimizer;

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use servo_core::types::Severity;
use servo_core::units::Duration;

pub use optimizer::OptimizerSettings;

/// Root keys that are never connectors.
pub const RESERVED_KEYS: &[&str] = &[
    "optimizer",
    "connectors",
    "settings",
    "checks",
    "name",
    "description",
];

/// What an alias may look like (ServoX's rule).
pub const ALIAS_PATTERN: &str = r"^[0-9a-zA-Z\-_/.]{3,128}$";

/// Servo-wide settings (`settings:`), with ServoX's names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServoSettings {
    /// Retry policy per event (`__default__`, `connect`, or an event name such as `whats_next`):
    /// `max_time` and `max_tries` bound the exponential backoff with jitter.
    #[serde(default)]
    pub backoff: BTreeMap<String, Backoff>,
    /// HTTP timeouts for the optimizer API.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// HTTP(S) proxy: one URL for all schemes, or a map of scheme → URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxies: Option<Proxies>,
    /// Verify TLS certificates: `true`, `false`, or the path of a CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_verify: Option<SslVerify>,
}

/// Bounds on retries of one kind of request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Give up once this much time has passed since the first try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time: Option<Duration>,
    /// Give up after this many tries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tries: Option<u32>,
}

/// HTTP timeouts; unset means the client's default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Duration>,
}

/// One proxy URL for every scheme, or a map of scheme → URL. A password in the URL is never
/// printed (`servo config` shows `user:**********@`).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Proxies {
    All(String),
    PerScheme(BTreeMap<String, String>),
}

impl Serialize for Proxies {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Proxies::All(url) => serializer.serialize_str(&servo_core::http::redact_url(url)),
            Proxies::PerScheme(map) => serializer.collect_map(
                map.iter()
                    .map(|(scheme, url)| (scheme.as_str(), servo_core::http::redact_url(url))),
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SslVerify {
    Enabled(bool),
    CaBundle(PathBuf),
}

/// How `servo check` and `servo run` treat failing checks (`checks:`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksSettings {
    /// The lowest severity of a failed check that stops servo (`critical`, `warning` or `info`).
    #[serde(default)]
    pub halt_on: Severity,
    /// Names of checks to skip.
    #[serde(default)]
    pub skip: Vec<String>,
}

impl Default for ChecksSettings {
    fn default() -> Self {
        Self {
            halt_on: Severity::Critical,
            skip: Vec::new(),
        }
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn proxy_passwords_are_redacted_when_printed() {
        let proxies = Proxies::PerScheme(BTreeMap::from([(
            "https".to_string(),
            "http://u:p4ss@p:1".to_string(),
        )]));
        let printed = serde_json::to_string(&proxies).unwrap_or_default();
        assert!(
            !printed.contains("p4ss") && printed.contains("p:1"),
            "{printed}"
        );
    }
}
