//! Components declared in a config file.
//!
//! Some connectors cannot discover an application's settings on their own: `wait` keeps declared
//! components in memory, `command` hands them to the user's hooks. They all take the same section,
//!
//! ```yaml
//! components:
//!   main:
//!     settings:
//!       cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }
//!       mode: { type: enum, values: [fast, thorough], value: fast }
//! ```
//!
//! so that a user learns one shape, the schema has one definition, and a domain mistake (`min` above
//! `max`, an enum without `values`, a starting value off the step grid) gets the same message
//! whichever connector it is in.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connector::Problem;
use crate::path::KeyPath;
use crate::types::{Component, Setting, SettingKind, SettingValue};

/// Declared components by name, as they appear under a connector's `components` key.
pub type Components = BTreeMap<String, ComponentSettings>;

/// One declared component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentSettings {
    /// Its settings by name.
    pub settings: BTreeMap<String, SettingSpec>,
}

/// A setting's domain and starting value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    /// The kind of setting.
    #[serde(rename = "type", default = "default_kind")]
    pub kind: SettingKind,
    /// Lowest value (numeric kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest value (numeric kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Distance between allowed values (numeric kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    /// Allowed values (enum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// The starting value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<SettingValue>,
    /// Unit shown next to values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Never changed by the optimizer.
    #[serde(default)]
    pub pinned: bool,
}

fn default_kind() -> SettingKind {
    SettingKind::Range
}

impl SettingSpec {
    /// A numeric setting of `kind` between `min` and `max`.
    pub fn numeric(kind: SettingKind, min: f64, max: f64) -> Self {
        Self {
            kind,
            min: Some(min),
            max: Some(max),
            step: None,
            values: None,
            value: None,
            unit: None,
            pinned: false,
        }
    }

    /// An enum setting with its allowed values.
    pub fn enumeration(values: Vec<String>) -> Self {
        Self {
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

    pub fn with_step(mut self, step: f64) -> Self {
        self.step = Some(step);
        self
    }

    pub fn with_value(mut self, value: impl Into<SettingValue>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// The setting as connectors describe it.
    pub fn setting(&self, name: &str) -> Setting {
        Setting {
            name: name.to_string(),
            kind: self.kind,
            min: self.min,
            max: self.max,
            step: self.step,
            values: self.values.clone(),
            value: self.value.clone(),
            unit: self.unit.clone(),
            pinned: self.pinned,
        }
    }

    /// What is wrong with this setting's domain or starting value; `at` is the setting's key path.
    ///
    /// The starting value is only checked against a sound domain, so one mistake yields one problem.
    pub fn problems(&self, name: &str, at: &KeyPath) -> Vec<Problem> {
        let mut problems = Vec::new();
        match (self.kind, &self.values) {
            (SettingKind::Enum, None) => {
                problems.push(Problem::new(at.clone(), "an enum setting needs `values`"));
            }
            (SettingKind::Enum | SettingKind::Env, Some(values)) if values.is_empty() => {
                problems.push(Problem::new(
                    at.key("values"),
                    "`values` is empty: list at least one value",
                ));
            }
            (SettingKind::Enum | SettingKind::Env, Some(_)) => {}
            _ => match (self.min, self.max) {
                (Some(min), Some(max)) if min > max => problems.push(Problem::new(
                    at.key("min"),
                    format!("`min` ({min}) is above `max` ({max})"),
                )),
                (Some(_), Some(_)) => {}
                _ => problems.push(Problem::new(
                    at.clone(),
                    "a numeric setting needs `min` and `max`",
                )),
            },
        }
        if let Some(step) = self.step
            && step < 0.0
        {
            problems.push(Problem::new(
                at.key("step"),
                format!("`step` ({step}) is negative"),
            ));
        }
        if let Some(value) = &self.value
            && problems.is_empty()
            && let Err(message) = self.setting(name).check_value(value)
        {
            problems.push(Problem::new(at.key("value"), message));
        }
        problems
    }
}

impl ComponentSettings {
    /// The component as connectors describe it, settings in name order.
    pub fn component(&self, name: &str) -> Component {
        Component::new(
            name,
            self.settings.iter().map(|(n, s)| s.setting(n)).collect(),
        )
    }
}

/// The declared components as connectors describe them, in name order.
pub fn components(declared: &Components) -> Vec<Component> {
    declared.iter().map(|(name, c)| c.component(name)).collect()
}

/// Every problem of every declared setting; `at` is the key path of the `components` section.
pub fn validate(declared: &Components, at: &KeyPath) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (component, spec) in declared {
        for (name, setting) in &spec.settings {
            let here = at.key(component.clone()).key("settings").key(name.clone());
            problems.extend(setting.problems(name, &here));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, spec: SettingSpec) -> Components {
        let mut settings = BTreeMap::new();
        settings.insert(name.to_string(), spec);
        let mut components = Components::new();
        components.insert("main".into(), ComponentSettings { settings });
        components
    }

    fn messages(components: &Components) -> Vec<String> {
        validate(components, &KeyPath::root().key("components"))
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn a_sound_domain_with_a_value_on_its_grid_has_no_problems() {
        let cpu = SettingSpec::numeric(SettingKind::Cpu, 0.25, 4.0)
            .with_step(0.25)
            .with_value(1.0);
        assert!(messages(&one("cpu", cpu)).is_empty());
        let mode =
            SettingSpec::enumeration(vec!["fast".into(), "thorough".into()]).with_value("fast");
        assert!(messages(&one("mode", mode)).is_empty());
    }

    #[test]
    fn domain_mistakes_are_reported_at_their_key() {
        let inverted = SettingSpec::numeric(SettingKind::Range, 4.0, 1.0);
        assert_eq!(
            messages(&one("cpu", inverted)),
            ["components.main.settings.cpu.min: `min` (4) is above `max` (1)"]
        );
        let mut unbounded = SettingSpec::numeric(SettingKind::Int, 1.0, 2.0);
        unbounded.max = None;
        assert_eq!(
            messages(&one("workers", unbounded)),
            ["components.main.settings.workers: a numeric setting needs `min` and `max`"]
        );
        let mut no_values = SettingSpec::enumeration(vec![]);
        no_values.values = None;
        assert_eq!(
            messages(&one("mode", no_values)),
            ["components.main.settings.mode: an enum setting needs `values`"]
        );
        let negative = SettingSpec::numeric(SettingKind::Range, 0.0, 1.0).with_step(-0.5);
        assert_eq!(
            messages(&one("ratio", negative)),
            ["components.main.settings.ratio.step: `step` (-0.5) is negative"]
        );
    }

    #[test]
    fn a_starting_value_is_checked_only_against_a_sound_domain() {
        let off_grid = SettingSpec::numeric(SettingKind::Cpu, 0.25, 4.0)
            .with_step(0.25)
            .with_value(0.3);
        let found = messages(&one("cpu", off_grid));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("components.main.settings.cpu.value:"),
            "{found:?}"
        );
        assert!(found[0].contains("step grid"), "{found:?}");

        let both_wrong = SettingSpec::numeric(SettingKind::Range, 4.0, 1.0).with_value(9.0);
        assert_eq!(
            messages(&one("cpu", both_wrong)).len(),
            1,
            "one mistake, one problem"
        );
    }
}
