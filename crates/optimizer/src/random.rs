//! Uniform random search: the yardstick the Bayesian sampler is measured against, and a fallback
//! for users who want no modelling at all.

use serde::{Deserialize, Serialize};

use super::space::Encoding;
use super::{Config, Observation, Sampler, Space, SuggestError};

/// Samples every parameter independently and uniformly (log-uniformly for log-scaled ones),
/// skipping configurations already tried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomSearch;

/// Keeps this sampler's random stream apart from the Bayesian one's for the same seed.
const STREAM: u64 = 0x5241_4e44_4f4d;

impl Sampler for RandomSearch {
    fn suggest(
        &self,
        space: &Space,
        history: &[Observation],
        seed: u64,
    ) -> Result<Config, SuggestError> {
        space.validate()?;
        if space.params.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = Encoding::new(space);
        let observed = encoding.observed(history);
        encoding.check_not_exhausted(&observed)?;
        let mut rng = super::rng_for(seed, history.len(), STREAM);
        let point = encoding
            .random_new(&observed, &mut rng)
            .ok_or(SuggestError::Exhausted {
                count: encoding.cardinality().unwrap_or(u64::MAX),
            })?;
        Ok(encoding.decode(&point))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Domain, Outcome, Param, ParamValue};

    fn small_space() -> Space {
        Space::new(vec![
            Param::new(
                "workers",
                Domain::Int {
                    low: 1,
                    high: 3,
                    step: 1,
                    log: false,
                },
            ),
            Param::new(
                "mode",
                Domain::Categorical {
                    choices: vec!["a".into(), "b".into()],
                },
            ),
        ])
    }

    #[test]
    fn visits_every_configuration_of_a_finite_space_once_then_reports_exhaustion() {
        let space = small_space();
        let mut history = Vec::new();
        for _ in 0..6 {
            let config = RandomSearch
                .suggest(&space, &history, 11)
                .expect("the space is not exhausted yet");
            assert!(
                history.iter().all(|o: &Observation| o.config != config),
                "{config:?} suggested twice"
            );
            history.push(Observation {
                config,
                outcome: Outcome::Failed,
            });
        }
        assert_eq!(
            RandomSearch.suggest(&space, &history, 11),
            Err(SuggestError::Exhausted { count: 6 })
        );
    }

    #[test]
    fn is_deterministic_for_a_seed_and_history() {
        let space = small_space();
        let history = vec![Observation {
            config: vec![ParamValue::Int(2), ParamValue::Categorical("a".into())],
            outcome: Outcome::Complete {
                objective: 1.0,
                constraints: vec![],
            },
        }];
        let first = RandomSearch.suggest(&space, &history, 5);
        assert_eq!(first, RandomSearch.suggest(&space, &history, 5));
    }
}
