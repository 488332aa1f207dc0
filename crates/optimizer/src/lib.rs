//! The embedded optimizer: decides which configuration to try next.
//!
//! Everything here is a pure function of `(space, history, seed)`: a [`Sampler`] keeps no state
//! between calls, so resuming a study means replaying its journal into `history` and asking again —
//! the suggestion is the one the interrupted run would have made. That is also why the public types
//! derive serde: the journal stores them as JSON. A caller may keep a [`FitCache`] between a
//! study's suggestions ([`Sampler::suggest_with`]) so that most suggestions keep the
//! hyper-parameters of an earlier fit; what is suggested still depends only on
//! `(space, history, seed)`, whatever the cache holds.
//!
//! Two samplers are provided:
//!
//! - [`Bayesian`] (the default): a few space-filling trials, then Gaussian-process Bayesian
//!   optimization with expected improvement weighted by the probability of meeting every
//!   constraint and of not failing. Trials cost minutes, so spending milliseconds of modelling per
//!   suggestion to save trials is the right trade.
//! - [`RandomSearch`]: uniform sampling, kept as the yardstick the Bayesian sampler must beat.
//!
//! Both snap suggestions to the parameter grids, never repeat a configuration already in the
//! history, and report [`SuggestError::Exhausted`] once a finite space has been tried completely.

mod bayesian;
mod gp;
mod lbfgs;
mod linalg;
mod normal;
mod parallel;
pub mod pareto;
mod qmc;
mod random;
mod space;
mod warp;

pub use bayesian::{Bayesian, FitCache, Recommendation, Risk};
pub use random::RandomSearch;

use serde::{Deserialize, Serialize};

/// The settings being tuned, in a fixed order: every [`Config`] lists its values in this order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Space {
    pub params: Vec<Param>,
}

impl Space {
    pub fn new(params: Vec<Param>) -> Self {
        Self { params }
    }

    /// Checks every domain, so a bad space is reported once, with the parameter's name, instead of
    /// surfacing as odd suggestions later. Both samplers call this before suggesting.
    pub fn validate(&self) -> Result<(), SpaceError> {
        let mut names = std::collections::HashSet::new();
        for param in &self.params {
            if !names.insert(param.name.as_str()) {
                return Err(SpaceError::new(
                    param,
                    "appears twice; every parameter needs a unique name",
                ));
            }
            param.validate()?;
        }
        Ok(())
    }
}

/// One tunable setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub domain: Domain,
}

impl Param {
    pub fn new(name: impl Into<String>, domain: Domain) -> Self {
        Self {
            name: name.into(),
            domain,
        }
    }

    fn validate(&self) -> Result<(), SpaceError> {
        let fail = |reason: String| Err(SpaceError::new(self, reason));
        match &self.domain {
            Domain::Float {
                low,
                high,
                step,
                log,
            } => {
                if !low.is_finite() || !high.is_finite() {
                    return fail(format!(
                        "has bounds [{low}, {high}]; both bounds must be finite numbers"
                    ));
                }
                if low > high {
                    return fail(format!(
                        "has low {low} above high {high}; swap them or fix the range"
                    ));
                }
                if !(high - low).is_finite() {
                    return fail(format!(
                        "spans [{low}, {high}], wider than a float can represent; narrow it"
                    ));
                }
                if let Some(step) = step {
                    if !step.is_finite() || *step <= 0.0 {
                        return fail(format!("has step {step}; a step must be a positive number"));
                    }
                    if *log {
                        return fail(
                            "is both log-scaled and stepped; drop the step or the log scale"
                                .to_string(),
                        );
                    }
                    if (high - low) / step > MAX_GRID_POINTS {
                        return fail(format!(
                            "has {:.0} grid points with step {step}; use a step of at least {} \
                             or no step",
                            (high - low) / step,
                            (high - low) / MAX_GRID_POINTS
                        ));
                    }
                }
                if *log && *low <= 0.0 {
                    return fail(format!(
                        "is log-scaled with low {low}; log-scaled ranges must be positive"
                    ));
                }
            }
            Domain::Int {
                low,
                high,
                step,
                log,
            } => {
                if low > high {
                    return fail(format!(
                        "has low {low} above high {high}; swap them or fix the range"
                    ));
                }
                if *step <= 0 {
                    return fail(format!("has step {step}; a step must be at least 1"));
                }
                if *log && (*low < 1 || *step != 1) {
                    return fail(format!(
                        "is log-scaled with low {low} and step {step}; log-scaled integers need \
                         low >= 1 and step 1"
                    ));
                }
            }
            Domain::Categorical { choices } => {
                if choices.is_empty() {
                    return fail("has no choices; list at least one".to_string());
                }
                let mut seen = std::collections::HashSet::new();
                if let Some(dup) = choices.iter().find(|c| !seen.insert(c.as_str())) {
                    return fail(format!(
                        "lists choice {dup:?} twice; choices must be unique"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A float grid finer than this is almost surely a unit mistake (and would defeat grid arithmetic
/// in `f64`); use an unstepped float instead.
const MAX_GRID_POINTS: f64 = 1e12;

/// The values a parameter may take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Domain {
    /// A real number in `[low, high]`. With a `step`, only `low + k * step` (k = 0, 1, ...) up to
    /// `high` are allowed. `log` searches on a logarithmic scale (for ranges spanning orders of
    /// magnitude); it needs `low > 0` and no step.
    Float {
        low: f64,
        high: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
        #[serde(default)]
        log: bool,
    },
    /// An integer `low + k * step` in `[low, high]`. `log` needs `low >= 1` and `step == 1`.
    Int {
        low: i64,
        high: i64,
        #[serde(default = "one")]
        step: i64,
        #[serde(default)]
        log: bool,
    },
    /// One of a set of unordered choices.
    Categorical { choices: Vec<String> },
}

fn one() -> i64 {
    1
}

/// One parameter's value. Serialized without a tag (`2.5`, `8`, `"g1"`) so journals stay readable;
/// the samplers accept an integer for a float parameter and an integral float for an integer one,
/// since a round trip through JSON or YAML may turn one into the other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Int(i64),
    Float(f64),
    Categorical(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Categorical(c) => f.write_str(c),
        }
    }
}

/// A full configuration: one value per parameter, in `Space::params` order.
pub type Config = Vec<ParamValue>;

/// Whether a constraint value means "met": the one rule, shared by the samplers, the study that
/// journals a trial's feasibility and the report that draws it. A strict bound (`<`) met exactly is
/// recorded by its caller as a small positive violation, so the boundary cannot read two ways.
pub fn satisfied(violation: f64) -> bool {
    violation <= 0.0
}

/// What running one trial produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The trial ran. `objective` is minimized; each constraint value is satisfied when `<= 0`.
    /// Give a constraint with a limit as its violation relative to the limit (`value / limit − 1`
    /// for an upper bound, so 1 is twice the limit): the constraint models expect that scale, and
    /// only relative values compare across constraints in different units. One without a limit
    /// to be relative to (a limit of 0) is taken in its own units.
    /// A non-finite objective or constraint is treated as [`Outcome::Failed`]: such a measurement
    /// cannot be compared with others.
    Complete {
        objective: f64,
        #[serde(default)]
        constraints: Vec<f64>,
    },
    /// The trial could not be run or measured (rollout failed, app crashed, ...). The samplers
    /// steer away from configurations like it.
    Failed,
}

/// A finished trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub config: Config,
    pub outcome: Outcome,
}

/// A search strategy.
pub trait Sampler: Send + Sync {
    /// The next configuration to try, given every finished trial so far in the order they ran.
    ///
    /// Deterministic for a given `(space, history, seed)`: resuming a study replays the journal
    /// and gets the same next suggestion. The suggestion lies on the space's grid and differs from
    /// every configuration in `history`. An empty space yields an empty configuration.
    ///
    /// Observations whose configuration does not fit `space` (wrong length, a value out of range or
    /// an unknown choice — typically because the space was edited mid-study) are ignored.
    fn suggest(
        &self,
        space: &Space,
        history: &[Observation],
        seed: u64,
    ) -> Result<Config, SuggestError>;

    /// [`Sampler::suggest`] for a caller that keeps `fits` between the suggestions of a study, so
    /// that expensive model fits can start from earlier ones. Still deterministic for a given
    /// `(space, history, seed)`, whatever `fits` holds (an empty one only costs time), but not
    /// necessarily the suggestion [`Sampler::suggest`] makes: see [`FitCache`].
    fn suggest_with(
        &self,
        space: &Space,
        history: &[Observation],
        seed: u64,
        fits: &mut FitCache,
    ) -> Result<Config, SuggestError> {
        let _ = fits;
        self.suggest(space, history, seed)
    }
}

/// Why no suggestion could be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SuggestError {
    #[error(transparent)]
    InvalidSpace(#[from] SpaceError),
    /// Every configuration of a finite space is already in the history.
    #[error(
        "all {count} configurations of the search space have been tried; widen a range, add a \
         choice or make a step finer to continue"
    )]
    Exhausted { count: u64 },
}

/// A parameter whose domain cannot be searched.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("parameter `{param}` {reason}")]
pub struct SpaceError {
    pub param: String,
    pub reason: String,
}

impl SpaceError {
    fn new(param: &Param, reason: impl Into<String>) -> Self {
        Self {
            param: param.name.clone(),
            reason: reason.into(),
        }
    }
}

/// The random generator for one suggestion: a function of the seed, the history length and the
/// sampler, so replaying a journal reproduces every suggestion while successive suggestions of a
/// study still draw different numbers. ChaCha's output is specified, so it does not change with
/// the platform.
fn rng_for(seed: u64, history_len: usize, stream: u64) -> rand::rngs::ChaCha8Rng {
    use rand::SeedableRng;
    let mixed = splitmix64(seed ^ splitmix64(history_len as u64 ^ splitmix64(stream)));
    rand::rngs::ChaCha8Rng::seed_from_u64(mixed)
}

/// SplitMix64's finalizer: a bijective scramble, so nearby inputs give unrelated outputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(low: f64, high: f64, step: Option<f64>, log: bool) -> Domain {
        Domain::Float {
            low,
            high,
            step,
            log,
        }
    }

    fn reason(domain: Domain) -> String {
        Space::new(vec![Param::new("p", domain)])
            .validate()
            .expect_err("the domain is invalid")
            .to_string()
    }

    #[test]
    fn validation_names_the_parameter_and_the_fix() {
        assert_eq!(
            reason(float(2.0, 1.0, None, false)),
            "parameter `p` has low 2 above high 1; swap them or fix the range"
        );
        assert!(reason(float(0.0, 1.0, Some(0.0), false)).contains("step must be a positive"));
        assert!(reason(float(0.0, 1.0, None, true)).contains("log-scaled ranges must be positive"));
        assert!(reason(float(1.0, 2.0, Some(0.1), true)).contains("drop the step"));
        assert!(reason(float(f64::NAN, 1.0, None, false)).contains("finite"));
        assert!(reason(float(-f64::MAX, f64::MAX, None, false)).contains("narrow it"));
        assert!(reason(float(0.0, 1.0, Some(1e-15), false)).contains("grid points"));
        let int = |low, high, step, log| Domain::Int {
            low,
            high,
            step,
            log,
        };
        assert!(reason(int(0, 4, 0, false)).contains("at least 1"));
        assert!(reason(int(0, 4, 1, true)).contains("low >= 1"));
        assert!(reason(int(1, 4, 2, true)).contains("step 1"));
        assert!(reason(Domain::Categorical { choices: vec![] }).contains("no choices"));
        assert!(
            reason(Domain::Categorical {
                choices: vec!["a".into(), "a".into()]
            })
            .contains("twice")
        );
        let twice = Space::new(vec![
            Param::new("p", float(0.0, 1.0, None, false)),
            Param::new("p", float(0.0, 1.0, None, false)),
        ]);
        assert!(twice.validate().is_err());
    }

    #[test]
    fn degenerate_but_valid_domains_are_accepted() {
        let space = Space::new(vec![
            Param::new("point", float(3.0, 3.0, None, false)),
            Param::new("stepped point", float(3.0, 3.0, Some(1.0), false)),
            Param::new(
                "huge",
                Domain::Int {
                    low: i64::MIN,
                    high: i64::MAX,
                    step: 1,
                    log: false,
                },
            ),
        ]);
        assert_eq!(space.validate(), Ok(()));
        for seed in 0..5 {
            let config = RandomSearch
                .suggest(&space, &[], seed)
                .expect("valid space");
            assert_eq!(config[0], ParamValue::Float(3.0));
            assert_eq!(config[1], ParamValue::Float(3.0));
            assert!(matches!(config[2], ParamValue::Int(_)));
        }
    }

    #[test]
    fn public_types_round_trip_through_readable_json() {
        let space = Space::new(vec![
            Param::new("cpu", float(0.25, 4.0, Some(0.25), false)),
            Param::new(
                "gc",
                Domain::Categorical {
                    choices: vec!["g1".into()],
                },
            ),
        ]);
        let json = serde_json::to_string(&space).expect("spaces serialize");
        assert_eq!(
            json,
            r#"{"params":[{"name":"cpu","domain":{"type":"float","low":0.25,"high":4.0,"step":0.25,"log":false}},{"name":"gc","domain":{"type":"categorical","choices":["g1"]}}]}"#
        );
        assert_eq!(serde_json::from_str::<Space>(&json).ok(), Some(space));
        let observation = Observation {
            config: vec![
                ParamValue::Float(2.5),
                ParamValue::Int(3),
                ParamValue::Categorical("g1".into()),
            ],
            outcome: Outcome::Complete {
                objective: 1.5,
                constraints: vec![-2.0],
            },
        };
        let json = serde_json::to_string(&observation).expect("observations serialize");
        assert_eq!(
            json,
            r#"{"config":[2.5,3,"g1"],"outcome":{"status":"complete","objective":1.5,"constraints":[-2.0]}}"#
        );
        assert_eq!(
            serde_json::from_str::<Observation>(&json).ok(),
            Some(observation)
        );
        assert_eq!(
            serde_json::from_str::<Outcome>(r#"{"status":"failed"}"#).ok(),
            Some(Outcome::Failed)
        );
    }
}
