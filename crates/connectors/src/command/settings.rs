//! The `command` connector's settings, their defaults and their validation, and the variables that
//! carry the settings to the hooks.

use super::Hook;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use servo_core::connector::ConnectorSettings;
use servo_core::path::env_key;
use servo_core::spec::{self, Components, SettingSpec};
use servo_core::types::{Component, SettingKind, SettingValue};
use servo_core::units::Duration;
use servo_core::{KeyPath, Problem};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// Settings of the `command` connector.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The application's components and their settings: the domains the optimizer explores and the
    /// starting values. The describe command can report more settings and current values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: Components,
    /// The metrics the measure command reports, offered to `servo measure METRIC` and the optimizer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    /// Prints the current state as `{"components": {COMPONENT: {"settings": {SETTING: {"value":
    /// ..}}}}}`. An argv list, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub describe: Option<Vec<String>>,
    /// Applies the settings it gets as `SERVO_SETTING_<COMPONENT>_<SETTING>` variables and as JSON
    /// on stdin; exit 0 means applied. An argv list, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub adjust: Option<Vec<String>>,
    /// Measures for `SERVO_MEASURE_DURATION` seconds and prints `{"metrics": {NAME: {"value": ..,
    /// "unit": ..}}}`. An argv list, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub measure: Option<Vec<String>>,
    /// How long a hook may run before servo kills it and its process group. A measure command gets
    /// the measurement's warmup + duration + delay on top.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Measurement duration when the request gives none (0: the measure command decides).
    #[serde(default = "default_duration")]
    pub duration: Duration,
    /// Extra environment variables for every hook; numbers and booleans are passed as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// The directory hooks run in, and against which program paths containing a `/` are resolved;
    /// relative to the config file's directory, which is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
}

pub(super) fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

pub(super) fn default_duration() -> Duration {
    Duration::ZERO
}

/// A metric the measure command reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The metric's name, as the measure command prints it.
    pub name: String,
    /// Its unit (`ms`, `rps`, `%`, ...); used when the measure command prints none.
    #[serde(default)]
    pub unit: String,
}

/// An environment variable's value. YAML scalars are accepted and passed as text, so `PORT: 8080`
/// needs no quotes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EnvValue(pub String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl serde::de::Visitor<'_> for Scalar {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(Scalar)
    }
}

impl JsonSchema for EnvValue {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A value: strings are passed as they are, numbers and booleans as text.",
            "type": ["string", "number", "boolean"]
        })
    }
}

impl ConnectorSettings for Settings {
    fn example() -> Self {
        let mut settings = BTreeMap::new();
        settings.insert(
            "workers".to_string(),
            SettingSpec::numeric(SettingKind::Int, 1.0, 16.0)
                .with_step(1.0)
                .with_value(SettingValue::Int(4)),
        );
        settings.insert(
            "cache".to_string(),
            SettingSpec::enumeration(vec!["none".into(), "lru".into(), "lfu".into()])
                .with_value("lru"),
        );
        let mut components = Components::new();
        components.insert("app".to_string(), spec::ComponentSettings { settings });
        Settings {
            description: Some("hooks that describe, adjust and measure the app".into()),
            components,
            metrics: vec![
                MetricSpec {
                    name: "latency_p99".into(),
                    unit: "ms".into(),
                },
                MetricSpec {
                    name: "throughput".into(),
                    unit: "rps".into(),
                },
            ],
            describe: Some(vec!["./hooks/describe.sh".into()]),
            adjust: Some(vec!["./hooks/adjust.sh".into()]),
            measure: Some(vec!["./hooks/measure.sh".into()]),
            timeout: default_timeout(),
            duration: Duration::from_secs(30),
            env: BTreeMap::new(),
            working_dir: None,
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let root = KeyPath::root();
        let mut problems = spec::validate(&self.components, &root.key("components"));
        for hook in Hook::ALL {
            match hook.argv(self) {
                Some([]) => problems.push(
                    Problem::new(root.key(hook.name()), "the command is empty").with_help(format!(
                        "give the program and its arguments: `{}: [./{}.sh]`",
                        hook.name(),
                        hook.name()
                    )),
                ),
                Some([program, ..]) if program.trim().is_empty() => problems.push(Problem::new(
                    root.key(hook.name()).index(0),
                    "the program name is empty",
                )),
                _ => {}
            }
        }
        if Hook::ALL.iter().all(|h| h.argv(self).is_none()) {
            problems.push(
                Problem::new(
                    root.clone(),
                    "no command to run: set `describe`, `adjust` or `measure`",
                )
                .with_help("for example `measure: [./measure.sh]`"),
            );
        }
        if self.adjust.is_some() && self.components.is_empty() && self.describe.is_none() {
            problems.push(
                Problem::new(
                    root.key("adjust"),
                    "there is nothing to adjust: no component is declared",
                )
                .with_help("declare `components`, or add a `describe` command that reports them"),
            );
        }
        if !self.metrics.is_empty() && self.measure.is_none() {
            problems.push(
                Problem::new(
                    root.key("metrics"),
                    "metrics are declared but there is no `measure` command",
                )
                .with_help("add `measure: [PROGRAM, ARGS...]`, or remove `metrics`"),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, metric) in self.metrics.iter().enumerate() {
            if metric.name.trim().is_empty() {
                problems.push(Problem::new(
                    root.key("metrics").index(i).key("name"),
                    "the metric name is empty",
                ));
            } else if !seen.insert(metric.name.as_str()) {
                problems.push(Problem::new(
                    root.key("metrics").index(i).key("name"),
                    format!("the metric `{}` is declared twice", metric.name),
                ));
            }
        }
        for (name, value) in &self.env {
            let at = root.key("env").key(name.clone());
            if name.is_empty() || name.contains(['=', '\0']) {
                problems.push(Problem::new(
                    at,
                    "an environment variable name cannot be empty or contain `=`",
                ));
            } else if value.0.contains('\0') {
                problems.push(Problem::new(
                    at,
                    "an environment variable cannot contain a NUL character",
                ));
            }
        }
        let names = spec::components(&self.components);
        for (first, second, var) in variable_collisions(&names) {
            let (component, setting) = second;
            problems.push(
                Problem::new(
                    root.key("components").key(component.clone()).key("settings").key(setting.clone()),
                    format!(
                        "`{}.{}` and `{component}.{setting}` would both be passed to the adjust command as {var}",
                        first.0, first.1
                    ),
                )
                .with_help("rename one of them; in variable names, characters other than letters and digits become `_`"),
            );
        }
        problems
    }
}

/// `SERVO_SETTING_<COMPONENT>_<SETTING>`, with the framework's rule for names in variables.
pub(super) fn setting_variable(component: &str, setting: &str) -> String {
    format!("SERVO_SETTING_{}_{}", env_key(component), env_key(setting))
}

pub(super) type SettingName = (String, String);

/// Pairs of settings that map to the same variable name, with that name.
pub(super) fn variable_collisions(
    components: &[Component],
) -> Vec<(SettingName, SettingName, String)> {
    let mut seen: BTreeMap<String, SettingName> = BTreeMap::new();
    let mut collisions = Vec::new();
    for c in components {
        for s in &c.settings {
            let var = setting_variable(&c.name, &s.name);
            let name = (c.name.clone(), s.name.clone());
            match seen.get(&var) {
                Some(first) => collisions.push((first.clone(), name, var)),
                None => {
                    seen.insert(var, name);
                }
            }
        }
    }
    collisions
}
