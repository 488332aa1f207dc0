//! Gaussian-process Bayesian optimization with constraints and failed trials.
//!
//! Each suggestion, from the history alone:
//!
//! 1. While the study is young (see [`Bayesian::initial_trials`]) it takes the next point of a
//!    scrambled Halton sequence: evenly spread trials teach the model more than clustered ones.
//! 2. Then it fits one GP to the objective, one per constraint and — once a trial has failed — one
//!    to the failures (1 failed, 0 ran), and scores candidates by
//!    `ln EI(objective) + Σ ln P(constraint ≤ 0) + ln P(failure < ½)`.
//!    Until some trial meets every constraint, the expected-improvement term is dropped and the
//!    search goes for the most probably feasible region.
//! 3. The score is maximized over uniformly random candidates and perturbations of the best
//!    observed configurations, then the best few candidates are refined by a shrinking-step local
//!    search. The best candidate not already in the history is the suggestion.
//!
//! If every trial so far failed there is nothing to model: the next suggestion is the candidate
//! farthest from all of them.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::gp::{Gp, GpOptions};
use super::normal::{log_cdf, log_h};
use super::qmc::ScrambledHalton;
use super::space::{Encoding, Point};
use super::{Config, Observation, Outcome, Sampler, Space, SuggestError, rng_for};

/// Keeps the random streams of this sampler apart from other users of the same seed.
const STREAM: u64 = 0x4741_5553_5349_414e;
const DESIGN_STREAM: u64 = 0x4841_4c54_4f4e;

/// Candidates drawn per local-search step.
const LOCAL_PROPOSALS: usize = 6;
/// How many of the best observed configurations seed perturbation candidates.
const ELITES: usize = 3;
/// When every candidate repeats a trial, finite spaces with at most this many configurations left
/// are scored exhaustively.
const EXHAUSTIVE_LIMIT: usize = 20_000;

/// The Bayesian sampler and its knobs. The defaults are tuned on the benchmark in
/// `benches/optimizer.rs`; `suggest` with 100 observations in 6 dimensions takes well under a
/// second in a debug build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bayesian {
    /// Trials — the baseline and everything else in the history included — before the model takes
    /// over. `None`: `max(5, d + 1) + 1` for `d` tunable parameters.
    pub initial_trials: Option<usize>,
    /// Uniformly random candidates scored per suggestion.
    pub candidates: usize,
    /// Candidates drawn around each of the best few observed configurations.
    pub candidates_near_best: usize,
    /// How many of the best candidates the local search refines.
    pub local_starts: usize,
    /// Rounds of local search per start.
    pub local_steps: usize,
    /// Hyper-parameter fits per model from different starting points; the best one is kept.
    pub fit_restarts: usize,
    /// L-BFGS iterations per hyper-parameter fit.
    pub fit_iterations: usize,
    /// Most observations a model is fitted to (the cost is cubic in it). Beyond it, the best half
    /// by objective and the most recent of the rest are kept.
    pub max_model_points: usize,
}

impl Default for Bayesian {
    fn default() -> Self {
        Self {
            initial_trials: None,
            candidates: envu("SERVO_CAND", 1000),
            candidates_near_best: envu("SERVO_NEAR", 100),
            local_starts: envu("SERVO_LSTARTS", 5),
            local_steps: envu("SERVO_LSTEPS", 20),
            fit_restarts: envu("SERVO_RESTARTS", 3),
            fit_iterations: 40,
            max_model_points: 200,
        }
    }
}

/// One usable observation.
struct Trial {
    point: Point,
    /// `None`: failed (or produced a non-finite measurement).
    result: Option<(f64, Vec<f64>)>,
}

impl Trial {
    fn new(point: Point, outcome: &Outcome) -> Self {
        let result = match outcome {
            Outcome::Complete {
                objective,
                constraints,
            } if objective.is_finite() && constraints.iter().all(|c| c.is_finite()) => {
                Some((*objective, constraints.clone()))
            }
            _ => None,
        };
        Self { point, result }
    }
}

impl Bayesian {
    /// The number of space-filling trials for this space.
    fn initial_trials_for(&self, encoding: &Encoding<'_>) -> usize {
        self.initial_trials
            .unwrap_or_else(|| std::env::var("SERVO_INIT_ADD").ok().and_then(|v| v.parse().ok()).unwrap_or(2) + encoding.n_params().max(4))
    }

    /// The next unobserved point of the seed's Halton sequence, from position `from` on.
    fn design_point(
        &self,
        encoding: &Encoding<'_>,
        from: usize,
        observed: &[Point],
        seed: u64,
    ) -> Option<Point> {
        let mut design_rng = rng_for(seed, 0, DESIGN_STREAM);
        let halton = ScrambledHalton::new(encoding.n_params(), &mut design_rng);
        (from as u64..from as u64 + 64)
            .map(|i| encoding.from_unit(&halton.point(i)))
            .find(|p| encoding.is_new(p, observed))
            .or_else(|| encoding.random_new(observed, &mut design_rng))
    }

    /// The random candidate farthest (in feature space) from every observation.
    fn farthest_point<R: rand::Rng>(
        &self,
        encoding: &Encoding<'_>,
        observed: &[Point],
        rng: &mut R,
    ) -> Option<Point> {
        let seen: Vec<Vec<f64>> = observed.iter().map(|p| features(encoding, p)).collect();
        let mut best: Option<(f64, Point)> = None;
        for _ in 0..self.candidates.max(1) {
            let point = encoding.sample(rng);
            if !encoding.is_new(&point, observed) {
                continue;
            }
            let f = features(encoding, &point);
            let distance = seen
                .iter()
                .map(|s| s.iter().zip(&f).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
                .fold(f64::INFINITY, f64::min);
            if best.as_ref().is_none_or(|(d, _)| distance > *d) {
                best = Some((distance, point));
            }
        }
        best.map(|(_, p)| p)
            .or_else(|| encoding.random_new(observed, rng))
    }

    /// The acquisition maximizer among unobserved configurations.
    fn model_point<R: rand::Rng>(
        &self,
        encoding: &Encoding<'_>,
        trials: &[Trial],
        observed: &[Point],
        rng: &mut R,
    ) -> Option<Point> {
        let kept = self.model_subset(trials);
        let model = Model::fit(encoding, &kept, self, rng);

        let mut pool: Vec<(f64, Point)> = Vec::new();
        let evaluate = |point: Point, pool: &mut Vec<(f64, Point)>| {
            let score = model.score(&features(encoding, &point));
            pool.push((score, point.clone()));
            score
        };
        for _ in 0..self.candidates {
            evaluate(encoding.sample(rng), &mut pool);
        }
        for elite in model.elites(&kept) {
            for _ in 0..self.candidates_near_best {
                let scale = (rng.random_range(0.01f64.ln()..0.3f64.ln())).exp();
                evaluate(encoding.perturb(&elite.point, scale, rng), &mut pool);
            }
        }

        pool.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut starts: Vec<(f64, Point)> = Vec::new();
        for (score, point) in &pool {
            if starts.len() >= self.local_starts {
                break;
            }
            if starts.iter().all(|(_, s)| !encoding.same(s, point)) {
                starts.push((*score, point.clone()));
            }
        }
        for (mut current_score, mut current) in starts {
            let mut scale = 0.1;
            for _ in 0..self.local_steps {
                let mut improved = false;
                for _ in 0..LOCAL_PROPOSALS {
                    let proposal = encoding.perturb(&current, scale, rng);
                    let score = evaluate(proposal.clone(), &mut pool);
                    if score > current_score {
                        current_score = score;
                        current = proposal;
                        improved = true;
                    }
                }
                if !improved {
                    scale *= 0.5;
                    if scale < 1e-4 {
                        break;
                    }
                }
            }
        }

        pool.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some((score, point)) = pool.iter().find(|(_, p)| encoding.is_new(p, observed)) {
            if std::env::var("SERVO_DEBUG").is_ok() {
                let f = features(encoding, point);
                let (m, sd) = model.objective.as_ref().map(|(gp, _)| gp.predict(&f)).unwrap_or((0.0, 0.0));
                eprintln!("  pick score={score:.3} mean={m:.3} sd={sd:.3} best={:?} x={:?}", model.objective.as_ref().map(|o| o.1), f.iter().map(|v| (v*100.0).round()/100.0).collect::<Vec<_>>());
            }
            return Some(point.clone());
        }
        // Every candidate repeats a trial: the space is finite and mostly explored.
        if let Some(left) = encoding.unobserved(observed, EXHAUSTIVE_LIMIT) {
            return left
                .into_iter()
                .map(|p| (model.score(&features(encoding, &p)), p))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, p)| p);
        }
        encoding.random_new(observed, rng)
    }

    /// The trials the models are fitted to: all of them, or past `max_model_points` the best half
    /// (by objective) and the most recent of the rest.
    fn model_subset<'t>(&self, trials: &'t [Trial]) -> Vec<&'t Trial> {
        let cap = self.max_model_points.max(2);
        if trials.len() <= cap {
            return trials.iter().collect();
        }
        let mut by_objective: Vec<usize> = (0..trials.len())
            .filter(|&i| trials[i].result.is_some())
            .collect();
        by_objective.sort_by(|&a, &b| objective_of(&trials[a]).total_cmp(&objective_of(&trials[b])));
        let mut keep = vec![false; trials.len()];
        for &i in by_objective.iter().take(cap / 2) {
            keep[i] = true;
        }
        let mut count = keep.iter().filter(|k| **k).count();
        for i in (0..trials.len()).rev() {
            if count >= cap {
                break;
            }
            if !keep[i] {
                keep[i] = true;
                count += 1;
            }
        }
        trials
            .iter()
            .zip(keep)
            .filter_map(|(t, k)| k.then_some(t))
            .collect()
    }
}

fn objective_of(trial: &Trial) -> f64 {
    trial.result.as_ref().map_or(f64::INFINITY, |(y, _)| *y)
}

fn features(encoding: &Encoding<'_>, point: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; encoding.n_features()];
    encoding.features(point, &mut out);
    out
}

/// The fitted surrogate models and the acquisition function built on them.
struct Model {
    /// The objective's GP and the incumbent (lowest predicted objective among feasible trials);
    /// `None` until some trial met every constraint.
    objective: Option<(Gp, f64)>,
    /// GPs whose value must stay below a threshold: the constraints (at 0) and the failure
    /// indicator (at ½).
    limits: Vec<(Gp, f64)>,
    n_constraints: usize,
}

impl Model {
    fn fit<R: rand::Rng>(
        encoding: &Encoding<'_>,
        trials: &[&Trial],
        options: &Bayesian,
        rng: &mut R,
    ) -> Self {
        let d = encoding.n_features();
        let gp_options = GpOptions {
            restarts: options.fit_restarts,
            max_iterations: options.fit_iterations,
            ..GpOptions::default()
        };
        let complete: Vec<(&Point, f64, &[f64])> = trials
            .iter()
            .filter_map(|t| {
                let (y, c) = t.result.as_ref()?;
                Some((&t.point, *y, c.as_slice()))
            })
            .collect();
        let n_constraints = complete.iter().map(|(_, _, c)| c.len()).max().unwrap_or(0);
        let fit = |rows: &[&Point], y: &[f64], shift: f64, rng: &mut R| {
            let x: Vec<f64> = rows.iter().flat_map(|p| features(encoding, p)).collect();
            Gp::fit(x, d, y, GpOptions { lengthscale_shift: shift, ..gp_options }, rng)
        };

        let mut limits = Vec::new();
        for j in 0..n_constraints {
            let (rows, y): (Vec<&Point>, Vec<f64>) = complete
                .iter()
                .filter_map(|(p, _, c)| c.get(j).map(|v| (*p, *v)))
                .unzip();
            let y = super::warp::constraint_warp(&y);
            if let Some(gp) = fit(&rows, &y, envf("SERVO_SHIFT_CON", 0.0), rng) {
                limits.push((gp, 0.0));
            }
        }
        if trials.iter().any(|t| t.result.is_none()) {
            let rows: Vec<&Point> = trials.iter().map(|t| &t.point).collect();
            let failed: Vec<f64> = trials
                .iter()
                .map(|t| if t.result.is_none() { 1.0 } else { 0.0 })
                .collect();
            if let Some(gp) = fit(&rows, &failed, envf("SERVO_SHIFT_FAIL", 0.0), rng) {
                limits.push((gp, 0.5));
            }
        }

        let (rows, y): (Vec<&Point>, Vec<f64>) = complete.iter().map(|(p, y, _)| (*p, *y)).unzip();
        let y = super::warp::warp(&y);
        let objective = fit(&rows, &y, envf("SERVO_SHIFT_OBJ", 0.0), rng).and_then(|gp| {
            let incumbent = complete
                .iter()
                .filter(|(_, _, c)| c.len() == n_constraints && c.iter().all(|v| *v <= 0.0))
                .map(|(p, _, _)| gp.predict(&features(encoding, p)).0)
                .fold(f64::INFINITY, f64::min);
            incumbent.is_finite().then_some((gp, incumbent))
        });
        Self {
            objective,
            limits,
            n_constraints,
        }
    }

    /// `ln EI + Σ ln P(limit met)`; higher is better, `−∞` for hopeless or unscorable points.
    fn score(&self, features: &[f64]) -> f64 {
        let mut score = 0.0;
        if let Some((gp, best)) = &self.objective {
            let (mean, sd) = gp.predict(features);
            score += sd.ln() + log_h((best - mean) / sd);
        }
        for (gp, threshold) in &self.limits {
            let (mean, sd) = gp.predict(features);
            score += log_cdf((threshold - mean) / sd);
        }
        if score.is_nan() {
            f64::NEG_INFINITY
        } else {
            score
        }
    }

    /// The best few observed configurations: lowest objective among feasible trials, or least
    /// violation of the worst constraint while none is feasible.
    fn elites<'t>(&self, trials: &[&'t Trial]) -> Vec<&'t Trial> {
        let key = |t: &Trial| -> f64 {
            let Some((y, c)) = &t.result else {
                return f64::INFINITY;
            };
            if self.objective.is_some() {
                let feasible = c.len() == self.n_constraints && c.iter().all(|v| *v <= 0.0);
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

impl Sampler for Bayesian {
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
        let trials: Vec<Trial> = history
            .iter()
            .filter_map(|obs| Some(Trial::new(encoding.encode(&obs.config)?, &obs.outcome)))
            .collect();
        let observed: Vec<Point> = trials.iter().map(|t| t.point.clone()).collect();
        encoding.check_not_exhausted(&observed)?;

        let mut rng = rng_for(seed, history.len(), STREAM);
        let point = if history.len() < self.initial_trials_for(&encoding) {
            self.design_point(&encoding, history.len(), &observed, seed)
        } else if trials.iter().all(|t| t.result.is_none()) {
            self.farthest_point(&encoding, &observed, &mut rng)
        } else {
            self.model_point(&encoding, &trials, &observed, &mut rng)
        };
        point
            .map(|p| encoding.decode(&p))
            .ok_or(SuggestError::Exhausted {
                count: encoding.cardinality().unwrap_or(u64::MAX),
            })
    }
}

fn envu(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn envf(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
