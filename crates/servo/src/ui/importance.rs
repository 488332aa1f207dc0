//! Which settings move the objective: each setting's share of the objective's variance explained by
//! that setting alone (the correlation ratio η², the first-order term of a functional ANOVA taken on
//! the measurements themselves). Cheap, model-free and honest about small studies: below
//! [`MIN_TRIALS`] complete trials nothing is claimed.

use serde::Serialize;

use crate::study::journal::Trial;
use crate::study::param_number;

/// Fewer complete trials than this say nothing about importance.
pub const MIN_TRIALS: usize = 6;

/// A numeric setting's values are grouped into this many quantile bins.
const BINS: usize = 4;

#[derive(Debug, Serialize, PartialEq)]
pub struct Importance {
    pub setting: String,
    /// η² in [0, 1].
    pub share: f64,
}

/// A setting as importance sees it: its name, and whether its values are unordered choices.
pub struct Factor<'a> {
    pub name: &'a str,
    pub categorical: bool,
}

/// One entry per setting, largest share first; empty when the study is too small or the objective
/// never changed.
pub fn of(settings: &[Factor<'_>], complete: &[&Trial]) -> Vec<Importance> {
    let ys: Vec<f64> = complete.iter().filter_map(|t| t.objective).collect();
    if ys.len() < MIN_TRIALS || ys.len() != complete.len() {
        return Vec::new();
    }
    let mean = ys.iter().sum::<f64>() / ys.len() as f64;
    let total: f64 = ys.iter().map(|y| (y - mean).powi(2)).sum();
    if total <= f64::EPSILON * mean.abs().max(1.0) {
        return Vec::new();
    }
    let mut out: Vec<Importance> = settings
        .iter()
        .map(|s| {
            let groups = groups(s, complete);
            let between: f64 = groups
                .iter()
                .filter(|g| !g.is_empty())
                .map(|g| {
                    let m = g.iter().map(|&i| ys[i]).sum::<f64>() / g.len() as f64;
                    g.len() as f64 * (m - mean).powi(2)
                })
                .sum();
            Importance {
                setting: s.name.to_string(),
                share: (between / total).clamp(0.0, 1.0),
            }
        })
        .collect();
    out.sort_by(|a, b| b.share.total_cmp(&a.share));
    out
}

/// The trials (indices into `complete`) in each group of a setting's values.
fn groups(setting: &Factor<'_>, complete: &[&Trial]) -> Vec<Vec<usize>> {
    if setting.categorical {
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, t) in complete.iter().enumerate() {
            let key = t
                .config
                .get(setting.name)
                .map(ToString::to_string)
                .unwrap_or_default();
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        return groups.into_iter().map(|(_, g)| g).collect();
    }
    let mut values: Vec<(f64, usize)> = complete
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((param_number(t.config.get(setting.name)?)?, i)))
        .collect();
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Equal values stay in one bin, so a setting tried at two values makes two groups, not four.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let per_bin = values.len().div_ceil(BINS).max(1);
    let mut last: Option<f64> = None;
    for (v, i) in values {
        let start_new = match (groups.last(), last) {
            (None, _) => true,
            (Some(g), Some(prev)) => g.len() >= per_bin && v != prev,
            (Some(_), None) => false,
        };
        if start_new {
            groups.push(Vec::new());
        }
        if let Some(g) = groups.last_mut() {
            g.push(i);
        }
        last = Some(v);
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use servo_optimizer::ParamValue;

    use super::*;
    use crate::study::journal::TrialState;

    fn trial(number: i64, x: f64, colour: &str, objective: f64) -> Trial {
        let config = BTreeMap::from([
            ("x".to_string(), ParamValue::Float(x)),
            ("colour".to_string(), ParamValue::Categorical(colour.into())),
        ]);
        Trial {
            state: TrialState::Complete,
            objective: Some(objective),
            feasible: Some(true),
            ..Trial::running(number, config, 0.0)
        }
    }

    fn settings() -> Vec<Factor<'static>> {
        vec![
            Factor {
                name: "x",
                categorical: false,
            },
            Factor {
                name: "colour",
                categorical: true,
            },
        ]
    }

    #[test]
    fn the_setting_that_drives_the_objective_ranks_first() {
        // The objective is 3x; the colour alternates and does not matter.
        let trials: Vec<Trial> = (0..12)
            .map(|i| {
                let x = i as f64;
                trial(i, x, if i % 2 == 0 { "red" } else { "blue" }, 3.0 * x)
            })
            .collect();
        let complete: Vec<&Trial> = trials.iter().collect();
        let ranked = of(&settings(), &complete);
        assert_eq!(ranked[0].setting, "x");
        assert!(ranked[0].share > 0.8, "{ranked:?}");
        assert!(ranked[1].share < 0.1, "{ranked:?}");
    }

    #[test]
    fn a_categorical_setting_that_matters_is_seen() {
        let trials: Vec<Trial> = (0..8)
            .map(|i| {
                let red = i % 2 == 0;
                trial(
                    i,
                    5.0,
                    if red { "red" } else { "blue" },
                    if red { 1.0 } else { 9.0 },
                )
            })
            .collect();
        let complete: Vec<&Trial> = trials.iter().collect();
        let ranked = of(&settings(), &complete);
        assert_eq!(ranked[0].setting, "colour");
        assert!((ranked[0].share - 1.0).abs() < 1e-9, "{ranked:?}");
        assert_eq!(ranked[1].share, 0.0, "x never changed: {ranked:?}");
    }

    #[test]
    fn small_or_flat_studies_claim_nothing() {
        let few: Vec<Trial> = (0..3)
            .map(|i| trial(i, i as f64, "red", i as f64))
            .collect();
        assert!(of(&settings(), &few.iter().collect::<Vec<_>>()).is_empty());
        let flat: Vec<Trial> = (0..10).map(|i| trial(i, i as f64, "red", 4.0)).collect();
        assert!(of(&settings(), &flat.iter().collect::<Vec<_>>()).is_empty());
    }
}
