//! Hyper-parameter fits kept between the suggestions of a study.
//!
//! Fitting the models' hyper-parameters from scratch (several L-BFGS runs per GP) is most of what a
//! suggestion costs, and a few more observations barely move the optimum. With a [`FitCache`],
//! the models are fitted from scratch only at *refit points* — every [`REFIT_EVERY`]th history
//! length from [`REUSE_FROM`] on, and at every length below it — and a suggestion in between
//! keeps the hyper-parameters of the last refit point, conditioning the models on its own
//! history without optimizing them again.
//!
//! Between refit points a suggestion used to refine those hyper-parameters with one L-BFGS run of
//! 20 iterations. Once the fits reached their optimum (see `lbfgs.rs`), keeping them as they are
//! made such a suggestion 44 % cheaper on the service with 500 observations and 33 % on the
//! welded beam (instructions, counted by callgrind). The tuning problems' regret at 100 trials
//! (seeds 0–39) moved both ways: Hartmann6 7.5e-7 → 1.3e-6, `mixed-continuous` 1.1e-6 → 1.4e-6,
//! `hartmann6-l1` 0.00026 → 0.00019, `batch-job` 6.8e-8 → 5.0e-7 (from 2.3 at 25 trials), the
//! others within 5 % (before 50 trials every fit is from scratch, so nothing changes there).
//!
//! What is kept is a function of the history alone (the fit a suggestion at the last
//! refit point makes, from the same prefix of the history and the same random stream), so the
//! suggestion does not depend on what the cache holds: a resumed study, a restarted optimizer
//! server or a retried request with an empty cache fits that prefix once more (the price of one
//! fit from scratch) and then suggests exactly what the uninterrupted run would have.

use super::{Bayesian, Thetas};
use crate::{Observation, Space};

/// History lengths between fits from scratch.
const REFIT_EVERY: usize = 10;
/// Below this history length every fit is from scratch: the hyper-parameters still move with
/// each observation, and a fit is cheap anyway (its cost is cubic in the observations, up to the
/// 64 it is made on: at 30 it is a tenth of what it is from 64 on). A multiple of
/// [`REFIT_EVERY`]. At 20, with refinements between refit points, the tuning problems' regret
/// after 50 trials was worse than with no cache on `hartmann6` and `mixed` (medians over 10
/// seeds).
const REUSE_FROM: usize = 50;

/// The hyper-parameters of a study's last fit from scratch, kept by the caller between
/// suggestions ([`crate::Sampler::suggest_with`]) so that most suggestions keep them.
///
/// Only [`Bayesian`] uses it. It holds the history it was fitted to and is used only for a history
/// that extends it with the same sampler settings, space and seed; anything else (another study,
/// an edited space, a history with a `NaN` reading, which never compares equal) refits from
/// scratch, so a cache can never make a suggestion wrong, only cheaper. Suggestions made with a
/// cache differ from [`crate::Sampler::suggest`]'s between refit points (the hyper-parameters are
/// kept rather than fitted anew), so a study should use one or the other throughout.
#[derive(Debug, Default)]
pub struct FitCache {
    anchor: Option<Anchor>,
}

#[derive(Debug)]
struct Anchor {
    sampler: Bayesian,
    space: Space,
    seed: u64,
    /// The history the fit was made after: a prefix of the later histories it serves.
    history: Vec<Observation>,
    thetas: Thetas,
}

impl FitCache {
    /// What a suggestion after `history` keeps: `None` at a refit point (fit from scratch),
    /// else the fit from scratch at the last refit point (from the cache, or made now).
    pub(super) fn warm_start(
        &mut self,
        sampler: &Bayesian,
        space: &Space,
        history: &[Observation],
        seed: u64,
    ) -> Option<Thetas> {
        let n = history.len();
        if n < REUSE_FROM || n.is_multiple_of(REFIT_EVERY) {
            return None;
        }
        let prefix = &history[..n - n % REFIT_EVERY];
        if !self.holds(sampler, space, prefix, seed) {
            let thetas = sampler.fit_from_scratch(space, prefix, seed)?;
            self.keep(sampler, space, prefix, seed, thetas);
        }
        self.anchor.as_ref().map(|a| a.thetas.clone())
    }

    /// Keeps the fit from scratch a suggestion after `history` just made, if it is at a refit
    /// point (elsewhere it is not what later suggestions keep).
    pub(super) fn fitted(
        &mut self,
        sampler: &Bayesian,
        space: &Space,
        history: &[Observation],
        seed: u64,
        thetas: &Thetas,
    ) {
        let n = history.len();
        if n >= REUSE_FROM
            && n.is_multiple_of(REFIT_EVERY)
            && !self.holds(sampler, space, history, seed)
        {
            self.keep(sampler, space, history, seed, thetas.clone());
        }
    }

    fn holds(&self, sampler: &Bayesian, space: &Space, history: &[Observation], seed: u64) -> bool {
        self.anchor.as_ref().is_some_and(|a| {
            a.seed == seed && a.sampler == *sampler && a.space == *space && a.history == history
        })
    }

    fn keep(
        &mut self,
        sampler: &Bayesian,
        space: &Space,
        history: &[Observation],
        seed: u64,
        thetas: Thetas,
    ) {
        self.anchor = Some(Anchor {
            sampler: sampler.clone(),
            space: space.clone(),
            seed,
            history: history.to_vec(),
            thetas,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bayesian::tests::unit_square;
    use crate::{Config, Outcome, ParamValue, Sampler};

    /// A bowl at (0.3, 0.6) under a constraint through it, crashing near x = 0: every model kind.
    fn measure(config: &Config) -> Outcome {
        let v: Vec<f64> = config
            .iter()
            .map(|p| match p {
                ParamValue::Float(f) => *f,
                _ => f64::NAN,
            })
            .collect();
        if v[0] < 0.08 {
            return Outcome::Failed;
        }
        Outcome::Complete {
            objective: (v[0] - 0.3).powi(2) + (v[1] - 0.6).powi(2),
            constraints: vec![0.8 - v[0] - v[1]],
        }
    }

    fn sampler() -> Bayesian {
        Bayesian {
            candidates: 100,
            candidates_near_best: 20,
            local_starts: 2,
            local_steps: 5,
            // The third start is random: the fits consume the random stream.
            fit_restarts: 3,
            fit_iterations: 20,
            trust_region: None,
            ..Bayesian::default()
        }
    }

    #[test]
    fn suggestions_do_not_depend_on_what_the_cache_holds() {
        let (space, sampler) = (unit_square(), sampler());
        let baseline = vec![ParamValue::Float(0.9), ParamValue::Float(0.9)];
        let mut history = vec![Observation {
            outcome: measure(&baseline),
            config: baseline,
        }];
        let mut fits = FitCache::default();
        while history.len() < 64 {
            let config = sampler
                .suggest_with(&space, &history, 3, &mut fits)
                .expect("a continuous space is never exhausted");
            history.push(Observation {
                outcome: measure(&config),
                config,
            });
        }
        assert!(history.iter().any(|o| o.outcome == Outcome::Failed));
        // The fit at 60 observations is what the last three suggestions kept, and it is the
        // fit from scratch an empty cache would make.
        let anchor = fits.anchor.as_ref().expect("the cache was used");
        assert_eq!(anchor.history.len(), 60);
        assert_eq!(
            Some(&anchor.thetas),
            sampler.fit_from_scratch(&space, &history[..60], 3).as_ref()
        );
        // An empty cache (a resumed study) gives the suggestions the study made with a warm one.
        for n in [49, 51, 55, 60, 63] {
            let cold = sampler.suggest_with(&space, &history[..n], 3, &mut FitCache::default());
            assert_eq!(
                cold.as_ref(),
                Ok(&history[n].config),
                "after {n} observations"
            );
        }
        // So does a cache left by another study (here: another seed).
        let mut other = FitCache::default();
        let _ = sampler.suggest_with(&space, &history[..61], 4, &mut other);
        assert_eq!(
            sampler.suggest_with(&space, &history[..63], 3, &mut other),
            Ok(history[63].config.clone())
        );
    }
}
