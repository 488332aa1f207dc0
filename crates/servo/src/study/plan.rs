//! The search space a description yields, and how its parameters map back to settings.

use std::collections::BTreeMap;

use servo_core::types::{
    Adjustment, Description, Domain as SettingDomain, SettingKind, SettingValue,
};
use servo_optimizer::{Domain, Param, ParamValue, Space};

/// The search space derived from a description, and how its parameters map back to settings.
#[derive(Clone, Debug)]
pub struct Plan {
    pub space: Space,
    pub params: Vec<PlanParam>,
    /// The application's configuration when the study began.
    pub baseline: BTreeMap<String, ParamValue>,
}

#[derive(Clone, Debug)]
pub struct PlanParam {
    pub name: String,
    pub component: String,
    pub setting: String,
    pub integer: bool,
    pub unit: Option<String>,
}

impl Plan {
    /// Every unpinned setting becomes a parameter named `component.setting`.
    pub fn from_description(description: &Description) -> Plan {
        let mut params = Vec::new();
        let mut space = Vec::new();
        let mut baseline = BTreeMap::new();
        for component in &description.components {
            for setting in component.settings.iter().filter(|s| !s.pinned) {
                let name = format!("{}.{}", component.name, setting.name);
                let (domain, integer) = match setting.domain() {
                    SettingDomain::Categorical(values) => (
                        Domain::Categorical {
                            choices: values.to_vec(),
                        },
                        false,
                    ),
                    SettingDomain::Numeric {
                        min,
                        max,
                        step,
                        integer,
                    } => {
                        if integer
                            || matches!(setting.kind, SettingKind::Int | SettingKind::Replicas)
                        {
                            (
                                Domain::Int {
                                    low: min.round() as i64,
                                    high: max.round() as i64,
                                    step: step.map_or(1, |s| s.round().max(1.0) as i64),
                                    log: false,
                                },
                                true,
                            )
                        } else {
                            (
                                Domain::Float {
                                    low: min,
                                    high: max,
                                    step,
                                    log: false,
                                },
                                false,
                            )
                        }
                    }
                };
                if let Some(value) = &setting.value {
                    baseline.insert(name.clone(), to_param(value, integer));
                }
                space.push(Param::new(name.clone(), domain));
                params.push(PlanParam {
                    name,
                    component: component.name.clone(),
                    setting: setting.name.clone(),
                    integer,
                    unit: setting.unit.clone(),
                });
            }
        }
        Plan {
            space: Space::new(space),
            params,
            baseline,
        }
    }

    pub fn adjustments(&self, config: &BTreeMap<String, ParamValue>) -> Vec<Adjustment> {
        self.params
            .iter()
            .filter_map(|p| {
                config.get(&p.name).map(|v| Adjustment {
                    component: p.component.clone(),
                    setting: p.setting.clone(),
                    value: from_param(v, p.integer),
                })
            })
            .collect()
    }

    pub(super) fn ordered(&self, config: &BTreeMap<String, ParamValue>) -> Option<Vec<ParamValue>> {
        self.params
            .iter()
            .map(|p| config.get(&p.name).cloned())
            .collect()
    }

    pub(super) fn named(&self, values: Vec<ParamValue>) -> BTreeMap<String, ParamValue> {
        self.params
            .iter()
            .map(|p| p.name.clone())
            .zip(values)
            .collect()
    }
}

pub(super) fn to_param(value: &SettingValue, integer: bool) -> ParamValue {
    match value {
        SettingValue::Int(i) if integer => ParamValue::Int(*i),
        SettingValue::Int(i) => ParamValue::Float(*i as f64),
        SettingValue::Float(f) if integer => ParamValue::Int(f.round() as i64),
        SettingValue::Float(f) => ParamValue::Float(*f),
        SettingValue::String(s) => ParamValue::Categorical(s.clone()),
    }
}

fn from_param(value: &ParamValue, integer: bool) -> SettingValue {
    match value {
        ParamValue::Int(i) => SettingValue::Int(*i),
        ParamValue::Float(f) if integer => SettingValue::Int(f.round() as i64),
        ParamValue::Float(f) => SettingValue::Float(*f),
        ParamValue::Categorical(s) => SettingValue::String(s.clone()),
    }
}

pub fn param_number(value: &ParamValue) -> Option<f64> {
    match value {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(f) => Some(*f),
        ParamValue::Categorical(_) => None,
    }
}
