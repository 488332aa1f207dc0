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
    "servo_uid",
    "no_diagnostics",
];

/// ServoX's variable for `servo_uid`; like ServoX, it fills the key when the file leaves it unset.
pub const SERVO_UID_VARIABLE: &str = "SERVO_UID";

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

/// How `servo check` and `servo run` treat failing checks (`checks:`), with ServoX's keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksSettings {
    /// The lowest severity of a failed check that stops servo: `critical`, `warning` or `info`;
    /// ServoX's `common` (every failure but a warning) means `critical`, since servo's checks are
    /// `critical`, `warning` or `info`.
    #[serde(default, deserialize_with = "halt_on")]
    #[schemars(with = "HaltOn")]
    pub halt_on: Severity,
    /// Names of checks to skip.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Run only the checks of these mounts (ServoX's `connectors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connectors: Option<Vec<String>>,
    /// Run only the checks whose name matches one of these (a name, or a `/regex/` as in ServoX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Vec<String>>,
    /// Run only the checks with one of these ids (a check's id is its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Vec<String>>,
    /// Run only the checks carrying one of these tags. servo's checks carry no tags, so a tag
    /// filter selects none of them (a warning says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Vec<String>>,
    /// ServoX's `quiet`: servo prints checks per `-o` and `--log-level`, so it is accepted and
    /// ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet: Option<bool>,
    /// ServoX's `verbose`: accepted and ignored, as `quiet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbose: Option<bool>,
    /// In `servo run`, re-run failing checks (waiting `delay` between rounds) until they pass or
    /// `wait` has passed, instead of stopping at the first failure.
    #[serde(default = "default_progressive")]
    pub progressive: bool,
    /// How long `servo run` waits for failing checks to pass.
    #[serde(default = "default_wait")]
    pub wait: Duration,
    /// The pause between rounds of checks: `expo` (8s, 16s, 32s, ... as ServoX) or a duration.
    #[serde(default)]
    pub delay: CheckDelay,
    /// Apply a failed check's remedy (ServoX's `remedy`; default true, as in ServoX): checks that
    /// can fix what they found (opsani_dev's annotations, labels, Envoy sidecar, Service port)
    /// log the fix and then apply it. With `false` the fix is only shown, in the check's hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<bool>,
    /// ServoX's `check_halting`: servo runs every selected check each round and halts per
    /// `halt_on`, so it is accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_halting: Option<bool>,
}

impl Default for ChecksSettings {
    fn default() -> Self {
        Self {
            halt_on: Severity::Critical,
            skip: Vec::new(),
            connectors: None,
            name: None,
            id: None,
            tag: None,
            quiet: None,
            verbose: None,
            progressive: default_progressive(),
            wait: default_wait(),
            delay: CheckDelay::default(),
            remedy: None,
            check_halting: None,
        }
    }
}

fn default_progressive() -> bool {
    true
}

fn default_wait() -> Duration {
    Duration::from_secs(30 * 60)
}

/// The severities `halt_on` accepts: servo's and ServoX's `common`.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used
enum HaltOn {
    Info,
    Warning,
    Common,
    Critical,
}

fn halt_on<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
    let text = String::deserialize(d)?;
    match text.as_str() {
        "common" => Ok(Severity::Critical),
        other => Severity::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(other)),
    }
}

/// The pause between rounds of progressive checks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum CheckDelay {
    /// 8s, 16s, 32s, ... (ServoX's `expo`).
    #[default]
    Expo,
    Fixed(Duration),
}

impl CheckDelay {
    /// The pause after `round` failed rounds (1 for the first).
    pub fn after(&self, round: u32) -> std::time::Duration {
        match self {
            CheckDelay::Expo => std::time::Duration::from_secs(1u64 << (2 + round.clamp(1, 12))),
            CheckDelay::Fixed(d) => (*d).into(),
        }
    }
}

impl Serialize for CheckDelay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            CheckDelay::Expo => serializer.serialize_str("expo"),
            CheckDelay::Fixed(d) => d.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for CheckDelay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "expo" {
            return Ok(CheckDelay::Expo);
        }
        Duration::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&text))
            .map(CheckDelay::Fixed)
    }
}

impl JsonSchema for CheckDelay {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CheckDelay".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let duration = generator.subschema_for::<Duration>();
        schemars::json_schema!({
            "anyOf": [ { "const": "expo" }, duration ]
        })
    }
}

impl ChecksSettings {
    /// Whether the filters (`connectors`, `name`, `id`, `tag`, `skip`) select this check.
    pub fn selects(&self, check: &servo_core::types::Check) -> bool {
        let any = |list: &Option<Vec<String>>, f: &dyn Fn(&str) -> bool| {
            list.as_ref().is_none_or(|l| l.iter().any(|x| f(x)))
        };
        !self.skip.contains(&check.name)
            && any(&self.connectors, &|c| c == check.connector)
            && any(&self.name, &|n| name_matches(n, &check.name))
            && any(&self.id, &|i| i == check.name)
            && self.tag.as_ref().is_none_or(|tags| tags.is_empty())
    }

    /// Whether failed checks may apply their remedies (`remedy`, true unless set false).
    pub fn remedies(&self) -> bool {
        self.remedy.unwrap_or(true)
    }

    /// Whether a selected, failed check stops servo.
    pub fn halts(&self, check: &servo_core::types::Check) -> bool {
        !check.success && check.severity >= self.halt_on && self.selects(check)
    }

    /// The keys of this section that servo accepts but does not act on, with why: each becomes
    /// a one-line warning when the file sets it.
    pub fn ignored(&self) -> Vec<(&'static str, &'static str)> {
        let mut ignored = Vec::new();
        if self.quiet.is_some() || self.verbose.is_some() {
            ignored.push((
                "quiet/verbose",
                "servo prints checks as -o and --log-level say",
            ));
        }
        if self.check_halting.is_some() {
            ignored.push((
                "check_halting",
                "servo runs every selected check each round and halts per `halt_on`",
            ));
        }
        if self.tag.as_ref().is_some_and(|t| !t.is_empty()) {
            ignored.push(("tag", "servo's checks carry no tags, so this selects none"));
        }
        ignored
    }
}

/// ServoX's name filter: a `/regex/` or an exact name. A regex that does not compile matches
/// nothing rather than everything.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
        Some(re) => regex::Regex::new(re).is_ok_and(|re| re.is_match(name)),
        None => pattern == name,
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

#[cfg(test)]
mod checks_tests {
    use super::*;
    use servo_core::types::Check;

    fn checks(yaml: serde_json::Value) -> ChecksSettings {
        serde_json::from_value(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn failed(connector: &str, name: &str, severity: Severity) -> Check {
        let mut c = Check::fail(name, "down");
        c.connector = connector.into();
        c.severity = severity;
        c
    }

    #[test]
    fn servox_defaults_and_halt_on_common() {
        let c = checks(serde_json::json!({"halt_on": "common", "delay": "expo", "wait": "30m"}));
        assert_eq!(c.halt_on, Severity::Critical);
        assert!(c.progressive);
        assert!(c.halts(&failed("prom", "server", Severity::Critical)));
        assert!(!c.halts(&failed("prom", "server", Severity::Warning)));
        assert_eq!(c.delay.after(1), std::time::Duration::from_secs(8));
        assert_eq!(c.delay.after(3), std::time::Duration::from_secs(32));
        let fixed = checks(serde_json::json!({"delay": "250ms", "halt_on": "warning"}));
        assert_eq!(fixed.delay.after(5), std::time::Duration::from_millis(250));
        assert!(fixed.halts(&failed("prom", "server", Severity::Warning)));
        assert!(
            serde_json::from_value::<ChecksSettings>(serde_json::json!({"halt_on": "fatal"}))
                .is_err()
        );
    }

    #[test]
    fn filters_select_by_connector_name_regex_and_id() {
        let c = checks(serde_json::json!({"connectors": ["prom"], "name": ["/^query/"]}));
        assert!(c.selects(&failed("prom", "query throughput", Severity::Critical)));
        assert!(!c.selects(&failed("prom", "server", Severity::Critical)));
        assert!(!c.selects(&failed("vegeta", "query throughput", Severity::Critical)));
        let by_id = checks(serde_json::json!({"id": ["server"], "skip": ["targets"]}));
        assert!(by_id.selects(&failed("prom", "server", Severity::Critical)));
        assert!(!by_id.selects(&failed("prom", "targets", Severity::Critical)));
        let tagged = checks(serde_json::json!({"tag": ["slow"]}));
        assert!(!tagged.selects(&failed("prom", "server", Severity::Critical)));
        assert_eq!(tagged.ignored().len(), 1);
    }
}
