//! The models a suggestion is scored with: one GP per constraint, one for the failures and one
//! for the objective, fitted together (see [`fit_all`]), and the scores they give a candidate,
//! stopping as soon as a bound shows the rest cannot matter (see [`Model::score_above`]).

use std::cell::Cell;

use super::{
    Bayesian, CERTAIN_Z, ELITES, OBJECTIVE_PRIOR, TREND_PRIOR, Trial,
    UNCONSTRAINED_CATEGORICAL_PRIOR, features,
};
use crate::gp::{Fit, Gp, GpOptions};
use crate::normal::{cdf, log_cdf, log_h, pdf};
use crate::parallel;
use crate::space::{Encoding, Point};
use crate::warp::{gaussianize, relative_constraint};

/// Rank offset of candidates below the feasibility threshold: below every acquisition value.
pub(super) const UNSAFE: f64 = -1e12;

/// A candidate's score, or with `exact` false an upper bound of it that already puts the
/// candidate below the safety gate or below the best few (see [`Model::score_above`]).
#[derive(Clone, Copy)]
pub(super) struct Scored {
    pub(super) score: f64,
    pub(super) exact: bool,
}

impl Scored {
    pub(super) fn exact(score: f64) -> Self {
        Self { score, exact: true }
    }

    /// The score of a point whose safety sum fell below the gate at `bound`.
    fn below(bound: f64) -> Self {
        if bound == f64::NEG_INFINITY {
            // The rest of the sum cannot rise from `−∞`.
            Self::exact(bound)
        } else {
            Self {
                score: UNSAFE + bound,
                exact: false,
            }
        }
    }
}

/// An upper bound of a candidate's score, given one of its limits' `ln P(limit met)` (`first`,
/// or 0) and its objective's term. A point that meets the gate scores the sum of every limit's
/// term, at most `first` (they are at most 0, and rounding is monotone), less the expected
/// breaches (at least 0 but for rounding, which the margin covers), plus `objective`; one that
/// misses it scores `UNSAFE` plus that sum. `None` if a NaN leaves nothing to compare.
fn upper_bound(first: f64, objective: f64) -> Option<f64> {
    let (safe, unsafe_) = (first + objective, UNSAFE + first);
    if safe.is_nan() || unsafe_.is_nan() {
        return None;
    }
    if safe == f64::NEG_INFINITY {
        return Some(unsafe_);
    }
    Some((safe + 1e-9 * (1.0 + first.abs() + objective.abs())).max(unsafe_))
}

/// The fitted surrogate models and the acquisition function built on them.
pub(super) struct Model {
    /// The objective's GP and the incumbent (lowest predicted objective among feasible trials);
    /// `None` until some trial met every constraint.
    pub(super) objective: Option<(Gp, f64)>,
    /// GPs whose value must stay below a threshold: the constraints (at 0) and the failure
    /// indicator (at ½).
    pub(super) limits: Vec<(Gp, f64)>,
    /// How many of `limits` (the first ones) model constraints rather than failures.
    n_constraint_models: usize,
    n_constraints: usize,
    violation_penalty: f64,
    /// The hyper-parameters of each GP, for later fits to start from.
    pub(super) thetas: Thetas,
}

/// One of a [`Model`]'s GPs, before it is fitted.
struct Job {
    /// Row-major features of the observations.
    x: Vec<f64>,
    y: Vec<f64>,
    options: GpOptions,
    /// Hyper-parameters to keep, from an earlier fit (see [`FitCache`](super::FitCache)).
    warm: Option<Vec<f64>>,
}

/// The GPs of `jobs`, in order: each with its warm hyper-parameters where they still fit its
/// data, else fitted from scratch. The fits from scratch make their random draws one after the
/// other in the jobs' order, as fitting the models one by one does; the rest draws nothing and
/// is spread over `threads` (see `parallel`), so the models are the same on any number of them.
fn fit_all<R: rand::Rng>(jobs: Vec<Job>, d: usize, threads: usize, rng: &mut R) -> Vec<Option<Gp>> {
    enum Slot {
        Done(Option<Gp>),
        Fitting(Fit),
    }
    let warmed = parallel::map(jobs.len(), threads, |m| {
        let job = &jobs[m];
        let theta = job.warm.as_ref()?;
        Gp::with_theta(&job.x, d, &job.y, &job.options, theta)
    });
    let slots: Vec<Slot> = jobs
        .into_iter()
        .zip(warmed)
        .map(|(job, warmed)| match warmed {
            Some(gp) => Slot::Done(Some(gp)),
            None => match Gp::prepare_fit(job.x, d, &job.y, &job.options, rng) {
                Some(fit) => Slot::Fitting(fit),
                None => Slot::Done(None),
            },
        })
        .collect();
    let fits: Vec<&Fit> = slots
        .iter()
        .filter_map(|slot| match slot {
            Slot::Fitting(fit) => Some(fit),
            Slot::Done(_) => None,
        })
        .collect();
    // Every start of every fit is one piece of work, then every fit's posterior.
    let pieces: Vec<(usize, usize)> = fits
        .iter()
        .enumerate()
        .flat_map(|(f, fit)| (0..fit.starts()).map(move |start| (f, start)))
        .collect();
    let mut runs = parallel::map(pieces.len(), threads, |i| {
        let (f, start) = pieces[i];
        fits[f].run(start)
    })
    .into_iter();
    let runs: Vec<Vec<(Vec<f64>, f64)>> = fits
        .iter()
        .map(|fit| runs.by_ref().take(fit.starts()).collect())
        .collect();
    let mut fitted = parallel::map(fits.len(), threads, |f| fits[f].finish(&runs[f])).into_iter();
    slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Done(gp) => gp,
            Slot::Fitting(_) => fitted.next().flatten(),
        })
        .collect()
}

/// A limit's model at a point: its mean, and unless the point is certainly below the limit, the
/// deviation and `ln P(limit met)` (see [`Model::predict_limit`]).
type LimitPrediction = (f64, Option<(f64, f64)>);

/// The fitted hyper-parameters of a [`Model`]'s GPs, by what each models.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Thetas {
    objective: Option<Vec<f64>>,
    /// By constraint index.
    constraints: Vec<Option<Vec<f64>>>,
    failures: Option<Vec<f64>>,
}

impl Model {
    /// Fits the models to `trials`. With `warm`, each GP that has hyper-parameters there keeps
    /// them and is only conditioned on `trials` (see [`FitCache`](super::FitCache)).
    pub(super) fn fit<R: rand::Rng>(
        encoding: &Encoding<'_>,
        trials: &[&Trial],
        options: &Bayesian,
        warm: Option<&Thetas>,
        rng: &mut R,
    ) -> Self {
        let d = encoding.n_features();
        let gp_options = GpOptions {
            restarts: options.fit_restarts,
            max_iterations: options.fit_iterations,
            ..GpOptions::default()
        };
        let mut thetas = Thetas::default();
        let complete: Vec<(&Point, f64, &[f64])> = trials
            .iter()
            .filter_map(|t| {
                let (y, c) = t.result.as_ref()?;
                Some((&t.point, *y, c.as_slice()))
            })
            .collect();
        let n_constraints = complete.iter().map(|(_, _, c)| c.len()).max().unwrap_or(0);
        let job = |rows: &[&Point], y: Vec<f64>, shift: f64, warm: Option<&Vec<f64>>| Job {
            x: rows.iter().flat_map(|p| features(encoding, p)).collect(),
            y,
            options: GpOptions {
                lengthscale_shift: shift,
                ..gp_options.clone()
            },
            warm: warm.cloned(),
        };

        // The models' data, in a fixed order: the constraints, the failures, the objective.
        let mut jobs = Vec::new();
        for j in 0..n_constraints {
            let (rows, y): (Vec<&Point>, Vec<f64>) = complete
                .iter()
                .filter_map(|(p, _, c)| c.get(j).map(|v| (*p, *v)))
                .unzip();
            let start = warm.and_then(|w| w.constraints.get(j)?.as_ref());
            jobs.push(job(
                &rows,
                relative_constraint(&y),
                options.constraint_prior,
                start,
            ));
        }
        let any_failed = trials.iter().any(|t| t.result.is_none());
        if any_failed {
            let rows: Vec<&Point> = trials.iter().map(|t| &t.point).collect();
            let failed: Vec<f64> = trials
                .iter()
                .map(|t| if t.result.is_none() { 1.0 } else { 0.0 })
                .collect();
            let start = warm.and_then(|w| w.failures.as_ref());
            jobs.push(job(&rows, failed, TREND_PRIOR, start));
        }
        // Failed trials enter the objective's model with the worst objective seen: the failure
        // model alone, a step function seen through a smooth kernel, lets the improvement promised
        // by extrapolating the objective into the failing region win (on the mixed benchmark, 22
        // of 60 trials failed without this, 6 with it; random search fails 8).
        let (mut rows, mut y): (Vec<&Point>, Vec<f64>) =
            complete.iter().map(|(p, y, _)| (*p, *y)).unzip();
        let worst = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if worst.is_finite() {
            for trial in trials.iter().filter(|t| t.result.is_none()) {
                rows.push(&trial.point);
                y.push(worst);
            }
        }
        let start = warm.and_then(|w| w.objective.as_ref());
        let mut objective = job(&rows, gaussianize(&y), OBJECTIVE_PRIOR, start);
        if n_constraints == 0 {
            let onehot = encoding.onehot_columns().into();
            objective.options.onehot_shift = Some((UNCONSTRAINED_CATEGORICAL_PRIOR, onehot));
        }
        jobs.push(objective);

        let mut gps = fit_all(jobs, d, parallel::threads(), rng).into_iter();
        let mut limits = Vec::new();
        for _ in 0..n_constraints {
            let gp = gps.next().flatten();
            thetas
                .constraints
                .push(gp.as_ref().map(|gp| gp.theta().to_vec()));
            if let Some(gp) = gp {
                limits.push((gp, 0.0));
            }
        }
        let n_constraint_models = limits.len();
        if any_failed && let Some(gp) = gps.next().flatten() {
            thetas.failures = Some(gp.theta().to_vec());
            limits.push((gp, 0.5));
        }
        let objective = gps.next().flatten();
        thetas.objective = objective.as_ref().map(|gp| gp.theta().to_vec());
        let objective = objective.and_then(|gp| {
            let incumbent = complete
                .iter()
                .filter(|(_, _, c)| {
                    c.len() == n_constraints && c.iter().all(|v| crate::satisfied(*v))
                })
                .map(|(p, _, _)| gp.predict(&features(encoding, p)).0)
                .fold(f64::INFINITY, f64::min);
            incumbent.is_finite().then_some((gp, incumbent))
        });
        Self {
            objective,
            n_constraint_models,
            limits,
            n_constraints,
            violation_penalty: options.violation_penalty,
            thetas,
        }
    }

    /// `Σ ln P(limit met)` (`−∞` for unscorable points) and `Σ E[constraint breach]`: what the
    /// constraint and failure models say, without the objective's model (half the cost of a
    /// candidate that turns out too unsafe to score).
    pub(super) fn safety(&self, features: &[f64]) -> (f64, f64) {
        // No sum falls below a gate of `−∞`.
        self.safety_above(features, f64::NEG_INFINITY, &Cell::new(0))
            .unwrap_or((f64::NEG_INFINITY, f64::NAN))
    }

    /// [`Model::safety`], or `Err` with an upper bound of its sum as soon as that falls below
    /// `gate`. Each term is a log-probability, at most 0, so the sum only falls (rounding too is
    /// monotone) and is at most any one term: the point will miss the gate, and the models not
    /// yet asked cost nothing. The model named by `likely` is asked first, and left naming the
    /// lowest term seen: nearby candidates, which come in runs, tend to fail on the same limit.
    fn safety_above(
        &self,
        features: &[f64],
        gate: f64,
        likely: &Cell<usize>,
    ) -> Result<(f64, f64), f64> {
        let early = self.likely_first(features, gate, likely)?;
        self.safety_after(features, gate, likely, early)
    }

    /// One limit's prediction: its model's mean, and unless the point is certainly below the
    /// limit, the deviation and `ln P(limit met)`.
    fn predict_limit(&self, j: usize, features: &[f64]) -> LimitPrediction {
        let (gp, threshold) = &self.limits[j];
        let (mean, sd) = gp.predict_unless_below(features, *threshold, CERTAIN_Z);
        (mean, sd.map(|sd| (sd, log_cdf((threshold - mean) / sd))))
    }

    /// The first step of [`Model::safety_above`]: with a gate, the limit named by `likely`
    /// (`Err` with its term if that alone misses the gate).
    fn likely_first(
        &self,
        features: &[f64],
        gate: f64,
        likely: &Cell<usize>,
    ) -> Result<Option<(usize, LimitPrediction)>, f64> {
        let first = likely.get();
        let gated = gate > f64::NEG_INFINITY && first < self.limits.len();
        if !gated {
            return Ok(None);
        }
        let known = self.predict_limit(first, features);
        match known {
            (_, Some((_, term))) if term < gate => Err(term),
            _ => Ok(Some((first, known))),
        }
    }

    /// The rest of [`Model::safety_above`], given what [`Model::likely_first`] found.
    fn safety_after(
        &self,
        features: &[f64],
        gate: f64,
        likely: &Cell<usize>,
        early: Option<(usize, LimitPrediction)>,
    ) -> Result<(f64, f64), f64> {
        let mut log_feasibility = 0.0;
        let mut expected_breach = 0.0;
        let mut lowest = (0.0, likely.get());
        for j in 0..self.limits.len() {
            let (mean, sd) = match early {
                Some((first, known)) if j == first => known,
                _ => self.predict_limit(j, features),
            };
            let Some((sd, term)) = sd else {
                continue;
            };
            log_feasibility += term;
            if term < lowest.0 {
                lowest = (term, j);
            }
            if log_feasibility < gate {
                likely.set(lowest.1);
                return Err(log_feasibility);
            }
            if j < self.n_constraint_models {
                // E[max(0, c)] for c ~ N(mean, sd²): how far past the limit, on average.
                let z = mean / sd;
                expected_breach += mean * cdf(z) + sd * pdf(z);
            }
        }
        let log_feasibility = if log_feasibility.is_nan() {
            f64::NEG_INFINITY
        } else {
            log_feasibility
        };
        Ok((log_feasibility, expected_breach))
    }

    /// A candidate's score: [`Model::acquisition`] where it meets `gate`, else `UNSAFE` plus its
    /// [`Model::safety`]. Scoring stops, with an upper bound of the score (`exact` false), as
    /// soon as one proves the point below the gate or below `floor`. Past the gate's first limit
    /// the objective's term is added to that limit's (the others only lower the score), and
    /// most candidates that pass the gate fall below the best few (`floor`) on that alone,
    /// without asking the other limits' models.
    pub(super) fn score_above(
        &self,
        features: &[f64],
        (gate, floor): (f64, f64),
        min_log_feasibility: f64,
        likely: &Cell<usize>,
    ) -> Scored {
        let early = match self.likely_first(features, gate, likely) {
            Ok(early) => early,
            Err(bound) => return Scored::below(bound),
        };
        let mut objective = None;
        if floor > f64::NEG_INFINITY {
            let first = match early {
                Some((_, (_, Some((_, term))))) => term,
                _ => 0.0,
            };
            let part = self.objective_part(features);
            if let Some(bound) = upper_bound(first, part.unwrap_or(0.0))
                && bound < floor
            {
                return Scored {
                    score: bound,
                    exact: false,
                };
            }
            objective = Some(part);
        }
        match self.safety_after(features, gate, likely, early) {
            Ok(safety) if safety.0 >= min_log_feasibility => {
                let part = objective.unwrap_or_else(|| self.objective_part(features));
                Scored::exact(self.acquisition(safety, part))
            }
            Ok(safety) => Scored::exact(UNSAFE + safety.0),
            Err(bound) => Scored::below(bound),
        }
    }

    /// The objective's term of the acquisition, `ln EI`; `None` without an objective's model.
    fn objective_part(&self, features: &[f64]) -> Option<f64> {
        let (gp, best) = self.objective.as_ref()?;
        let (mean, sd) = gp.predict(features);
        Some(sd.ln() + log_h((best - mean) / sd))
    }

    /// The acquisition `ln EI + Σ ln P(limit met) − penalty · Σ E[constraint breach]` (higher is
    /// better, `−∞` for hopeless or unscorable points), given the point's [`Model::safety`] and
    /// its [`Model::objective_part`].
    fn acquisition(
        &self,
        (log_feasibility, expected_breach): (f64, f64),
        objective: Option<f64>,
    ) -> f64 {
        let mut score = log_feasibility - self.violation_penalty * expected_breach;
        if let Some(part) = objective {
            score += part;
        }
        if score.is_nan() {
            f64::NEG_INFINITY
        } else {
            score
        }
    }

    /// The best few observed configurations: lowest objective among feasible trials, or least
    /// violation of the worst constraint while none is feasible.
    pub(super) fn elites<'t>(&self, trials: &[&'t Trial]) -> Vec<&'t Trial> {
        let key = |t: &Trial| -> f64 {
            let Some((y, c)) = &t.result else {
                return f64::INFINITY;
            };
            if self.objective.is_some() {
                let feasible =
                    c.len() == self.n_constraints && c.iter().all(|v| crate::satisfied(*v));
                if feasible { *y } else { f64::INFINITY }
            } else {
                c.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            }
        };
        let mut ranked: Vec<(f64, &'t Trial)> = trials
            .iter()
            .map(|t| (key(t), *t))
            .filter(|(k, _)| k.is_finite())
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
        ranked.into_iter().take(ELITES).map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{quick, unit_square};
    use super::super::{STREAM, rng_for};
    use super::*;
    use crate::Outcome;

    /// Trials on a grid of the unit square, four columns by `rows`, measured by `f(x, y)`
    /// (objective, constraints).
    fn trials_on_grid(rows: u32, f: impl Fn(f64, f64) -> (f64, Vec<f64>)) -> Vec<Trial> {
        (0..4 * rows)
            .map(|i| {
                let (x, y) = (
                    0.1 + f64::from(i % 4) / 4.0,
                    0.1 + f64::from(i / 4) / f64::from(rows),
                );
                let (objective, constraints) = f(x, y);
                let outcome = Outcome::Complete {
                    objective,
                    constraints,
                };
                Trial::new(vec![x, y], &outcome)
            })
            .collect()
    }

    /// Scoring candidates lazily (see `Bayesian::model_point`) suggests what scoring each in
    /// full does.
    fn assert_lazy_suggests_as_full(
        sampler: &Bayesian,
        encoding: &Encoding<'_>,
        trials: &[Trial],
        model: &Model,
        seed: u64,
    ) {
        let observed: Vec<Point> = trials.iter().map(|t| t.point.clone()).collect();
        let kept: Vec<&Trial> = trials.iter().collect();
        let suggest = |lazy| {
            let mut rng = rng_for(seed, 0, STREAM);
            sampler.model_point(encoding, trials, &observed, (&kept, model), &mut rng, lazy)
        };
        let lazy = suggest(true);
        assert!(lazy.is_some());
        assert_eq!(lazy, suggest(false), "seed {seed}");
    }

    #[test]
    fn a_candidate_is_scored_in_part_only_where_that_cannot_change_the_suggestion() {
        // Three limits that no trial meets, so that every candidate falls below the gate and the
        // ranking among unsafe candidates, where scores stop early, decides the suggestion. The
        // first two pull x opposite ways: ranked by the first alone, the order would differ.
        let space = unit_square();
        let encoding = Encoding::new(&space);
        let trials = trials_on_grid(3, |x, y| (x + y, vec![0.2 + x, 1.2 - x, 0.2 + y]));
        let kept: Vec<&Trial> = trials.iter().collect();
        let sampler = quick();
        let gate = sampler.min_feasibility.ln();
        for seed in 0..4 {
            let mut rng = rng_for(seed, trials.len(), STREAM);
            let model = Model::fit(&encoding, &kept, &sampler, None, &mut rng);
            let mut stopped = 0;
            for _ in 0..500 {
                let at = features(&encoding, &encoding.sample(&mut rng));
                let exact = model.safety(&at);
                match model.safety_above(&at, gate, &Cell::new(seed as usize % 3)) {
                    Ok(safety) => assert_eq!(safety, exact),
                    Err(bound) => {
                        assert!(exact.0 < gate && bound >= exact.0, "{bound} for {exact:?}");
                        stopped += usize::from(bound > exact.0);
                    }
                }
            }
            assert!(
                stopped > 0,
                "seed {seed}: no score stopped before its last term"
            );
            assert_lazy_suggests_as_full(&sampler, &encoding, &trials, &model, seed);
        }
    }

    #[test]
    fn a_candidate_below_the_best_few_stops_scoring_where_that_cannot_change_the_suggestion() {
        // A bowl at (0.3, 0.6) under two limits most of the square meets: most candidates pass
        // the gate, and the objective alone puts most of those below the best few.
        let space = unit_square();
        let encoding = Encoding::new(&space);
        let trials = trials_on_grid(4, |x, y| {
            let objective = (x - 0.3).powi(2) + (y - 0.6).powi(2);
            (objective, vec![x + y - 1.3, x - 0.9])
        });
        let kept: Vec<&Trial> = trials.iter().collect();
        let sampler = quick();
        let gate = sampler.min_feasibility.ln();
        let full = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for seed in 0..4 {
            let mut rng = rng_for(seed, trials.len(), STREAM);
            let model = Model::fit(&encoding, &kept, &sampler, None, &mut rng);
            let points: Vec<Vec<f64>> = (0..400)
                .map(|_| features(&encoding, &encoding.sample(&mut rng)))
                .collect();
            let exact: Vec<f64> = points
                .iter()
                .map(|at| model.score_above(at, full, gate, &Cell::new(0)).score)
                .collect();
            let mut finite: Vec<f64> = exact.iter().copied().filter(|s| s.is_finite()).collect();
            finite.sort_by(f64::total_cmp);
            let floor = finite[finite.len() / 2];
            let mut stopped = 0;
            for (at, &exact) in points.iter().zip(&exact) {
                let lazy = model.score_above(at, (gate, floor), gate, &Cell::new(0));
                if lazy.exact {
                    assert_eq!(lazy.score.to_bits(), exact.to_bits());
                } else {
                    assert!(exact <= lazy.score, "{} for {exact}", lazy.score);
                    if lazy.score > UNSAFE / 2.0 {
                        assert!(lazy.score < floor, "{} stopped above {floor}", lazy.score);
                        stopped += 1;
                    }
                }
            }
            assert!(stopped > 50, "seed {seed}: {stopped} stopped at the floor");
            assert_lazy_suggests_as_full(&sampler, &encoding, &trials, &model, seed);
        }
    }

    #[test]
    fn only_a_study_without_constraints_expects_a_choice_to_carry_over() {
        use crate::{Domain, Param, Space};
        // A bowl in x plus a choice's own cost, the same wherever x is.
        let space = Space::new(vec![
            Param::new(
                "x",
                Domain::Float {
                    low: 0.0,
                    high: 1.0,
                    step: None,
                    log: false,
                },
            ),
            Param::new(
                "c",
                Domain::Categorical {
                    choices: ["a", "b", "c"].map(String::from).to_vec(),
                },
            ),
        ]);
        let encoding = Encoding::new(&space);
        let fit = |constraints: Vec<f64>| {
            let trials: Vec<Trial> = (0..18)
                .map(|i| {
                    let (x, c) = (f64::from(i % 6) / 5.0, f64::from(i / 6));
                    let outcome = Outcome::Complete {
                        objective: (x - 0.3).powi(2) + 0.5 * c,
                        constraints: constraints.clone(),
                    };
                    Trial::new(vec![x, c], &outcome)
                })
                .collect();
            let kept: Vec<&Trial> = trials.iter().collect();
            let mut rng = rng_for(0, trials.len(), STREAM);
            let model = Model::fit(&encoding, &kept, &quick(), None, &mut rng);
            let (gp, _) = model.objective.expect("every trial met its constraints");
            // The one-hot columns come after x's.
            gp.theta()[1..4].iter().sum::<f64>() / 3.0
        };
        let (free, constrained) = (fit(vec![]), fit(vec![-1.0]));
        assert!(
            free > constrained + 0.1,
            "mean ln ℓ of the choices' columns: {free} without constraints, {constrained} with"
        );
    }

    #[test]
    fn the_models_are_the_same_on_any_number_of_threads() {
        use rand::{RngExt, SeedableRng};
        // Three models of 80 observations in three dimensions (past the fits' cap of 64, so the
        // subsets are drawn too): one without hyper-parameters to keep, one whose kept ones are
        // out of bounds (fitted from scratch as well), one that keeps its own.
        let mut data = rand::rngs::ChaCha8Rng::seed_from_u64(5);
        let x: Vec<f64> = (0..240).map(|_| data.random_range(0.0..1.0)).collect();
        let y = |k: f64| -> Vec<f64> {
            x.chunks(3)
                .map(|p| (k * p[0]).sin() + p[1] * p[2])
                .collect()
        };
        let kept = vec![0.1, -0.2, 0.3, 0.0, -8.0];
        let jobs = || {
            [
                (None, 3.0),
                (Some(vec![9.0; 5]), 5.0),
                (Some(kept.clone()), 7.0),
            ]
            .into_iter()
            .map(|(warm, k)| Job {
                x: x.clone(),
                y: y(k),
                options: GpOptions::default(),
                warm,
            })
            .collect::<Vec<_>>()
        };
        let fit = |threads: usize| {
            let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(9);
            let gps = fit_all(jobs(), 3, threads, &mut rng);
            let after: u64 = rng.random();
            let models: Vec<(Vec<f64>, (f64, f64))> = gps
                .iter()
                .map(|gp| {
                    let gp = gp.as_ref().expect("finite data fits");
                    (gp.theta().to_vec(), gp.predict(&[0.2, 0.5, 0.9]))
                })
                .collect();
            (models, after)
        };
        let one = fit(1);
        assert_eq!(
            one.0[2].0, kept,
            "the third model keeps its hyper-parameters"
        );
        assert_ne!(one.0[1].0, vec![9.0; 5]);
        for threads in [2, 5] {
            assert_eq!(fit(threads), one, "{threads} threads");
        }
    }
}
