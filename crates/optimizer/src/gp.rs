//! Gaussian-process regression with a Matérn-5/2 ARD kernel and a learned noise term.
//!
//! Inputs are the encoding's features (already in `[0, 1]`); targets are standardized here. The
//! hyper-parameters — one length scale per feature, the signal variance and the noise variance —
//! are the maximum a posteriori estimate under weak log-normal priors, found by L-BFGS from a few
//! starting points. The priors matter with a dozen observations, where the bare marginal
//! likelihood happily explains everything as noise or as a function wiggling between every pair
//! of points.
//!
//! - `ln ℓ` normal with mean `√2 + ½·ln d + shift` and variance 3. With `shift = 0` this is the
//!   dimension-scaled prior of Hvarfner et al. (2024, "Vanilla Bayesian Optimization Performs
//!   Great in High Dimensions"), which keeps models smooth (near-linear trends) until the data say
//!   otherwise. `shift = −3` (minus the variance) puts the estimate at the mode of that same prior
//!   over `ℓ` rather than `ln ℓ`, which is what BoTorch's MAP fit uses: ℓ ≈ 0.3–1, short enough to
//!   resolve separate basins. A categorical's one-hot columns may have their mean moved further
//!   (`GpOptions::onehot_shift`; see `UNCONSTRAINED_CATEGORICAL_PRIOR` in `bayesian`).
//! - `ln σ_f²` standard normal: standardized targets have unit variance.
//! - `ln σ_n²` normal with mean −9 and standard deviation 3: little noise by default, so
//!   noise-free measurements are interpolated, yet wide enough that genuinely noisy ones raise it
//!   and the mean then smooths them.
//!
//! That noise prior lets a constraint's model read a first steep rise as noise: on the `queue`
//! tuning problem (seed 0, seven trials) one step of CPU took the p99 from 34 % to 55 % of its
//! limit, the fit put a fifth of the targets' variance down to noise, and the next step down,
//! predicted well within the limit, melted down. A prior of mean −12 (sd 2) for the
//! constraints' models alone (seeds 0–19, 50 trials) cut breaches on `mixed-noisy` from 11 to 8
//! and on `queue` from 5 to 4, but raised regret at 50 on `queue-noisy` (0 → 0.3),
//! `hartmann6-l1` (0.0014 → 0.0021) and `mixed-continuous` (2.7e-5 → 6.2e-5), and every `queue`
//! run still melted down; −14 (sd 1.5) took `mixed-noisy`'s regret to 0.15. Widening the
//! constraints' deviations by their leave-one-out calibration (`√mean z²`, so a model surprised
//! by a meltdown grows less sure) cut no median breach count and raised `queue`'s regret at 50
//! from 0 to 0.3. Neither was taken.

use std::sync::Arc;

use rand::RngExt;

use super::lbfgs::{self, LbfgsOptions};
use super::linalg::{Cholesky, axpy, dot, exp_nonpositive, lower_norm2_unless};

const SQRT5: f64 = 2.236_067_977_499_79;
const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Bounds on the log hyper-parameters: length scales in `[0.01, 100]` (inputs span `[0, 1]`),
/// signal variance in `[0.01, 100]` and noise variance in `[1e-10, 1]` (targets are standardized).
///
/// The noise floor and [`JITTER`] set how sure a noise-free model can become next to its trials,
/// and so how close to a limit the safety gate lets a search go. With a floor of 1e-8 and a jitter
/// of 1e-9, runs stopped about 5e-5 inside a limit whose optimum lies on it, re-measuring the same
/// neighbourhood for the rest of the budget. Lowering both a hundredfold (tuning suite, seeds 0–39,
/// regret at 50 / 100 trials): tubular column 0.00082 → 0.00026 / 0.00051 → 0.000095, three-bar
/// truss 0.0047 → 0.0029 / 0.0019 → 0.0016, Hartmann6 0.0004 → 0.00028 / 1.1e-5 → 1.2e-6 (but 0.25
/// → 0.28 at 25), `mixed-continuous` 3.6e-5 → 2.5e-5 / 8.9e-6 → 2.8e-6, concrete beam 0.635 → 0.623
/// / 0.627 → 0.0017; `hartmann6-l1` 0.0014 both (0.00032 → 0.00023 at 100), the cantilever 0.00032
/// → 0.00031 / 8.5e-5 → 0.00011, grids and noisy problems as before; mean breaches in 50 within
/// 0.25 (`mixed` 3.85 → 4.1). Either alone gained less (the floor alone: tubular column 0.00036,
/// truss 0.0047; the jitter alone: 0.00071 and 0.0039); a further hundredfold (1e-12, 1e-13) gained
/// nothing more.
const LOG_LENGTHSCALE: (f64, f64) = (-4.605_170_185_988_091, 4.605_170_185_988_091);
const LOG_SIGNAL: (f64, f64) = (-4.605_170_185_988_091, 4.605_170_185_988_091);
const LOG_NOISE: (f64, f64) = (-23.025_850_929_940_457, 0.0);

/// The bounds of `θ = [ln ℓ_1 … ln ℓ_d, ln σ_f², ln σ_n²]`, in that order.
fn theta_bounds(d: usize) -> impl Iterator<Item = (f64, f64)> {
    std::iter::repeat_n(LOG_LENGTHSCALE, d).chain([LOG_SIGNAL, LOG_NOISE])
}

/// Added to the diagonal (relative to the signal variance) so duplicated inputs stay factorable.
const JITTER: f64 = 1e-11;

#[derive(Clone, Debug)]
pub(crate) struct GpOptions {
    /// Hyper-parameter optimizations from different starting points; the best fit wins.
    pub restarts: usize,
    pub max_iterations: usize,
    /// Mean and standard deviation of the normal prior on `ln(noise variance)`.
    pub log_noise_prior: (f64, f64),
    /// Added to the mean of the normal prior on `ln ℓ` (see the module docs).
    pub lengthscale_shift: f64,
    /// Added to that mean again for the features marked `true` (a categorical's one-hot columns).
    pub onehot_shift: Option<(f64, Arc<[bool]>)>,
    /// Hyper-parameters are fitted to at most this many observations (the lowest third of the
    /// targets and a random sample of the rest); the model then conditions on all of them. Each
    /// likelihood evaluation is cubic in the count, and past a few dozen observations the
    /// estimate barely moves.
    pub max_fit_points: usize,
}

impl Default for GpOptions {
    fn default() -> Self {
        Self {
            restarts: 3,
            max_iterations: 40,
            log_noise_prior: (-9.0, 3.0),
            lengthscale_shift: 0.0,
            onehot_shift: None,
            max_fit_points: 64,
        }
    }
}

/// A fitted Gaussian process, ready to predict.
#[derive(Clone, Debug)]
pub(crate) struct Gp {
    n: usize,
    /// Training inputs by feature (`d × n`): the distances to a point then run over long rows.
    x_by_feature: Vec<f64>,
    /// The fitted hyper-parameters `[ln ℓ_1 … ln ℓ_d, ln σ_f², ln σ_n²]`: a later fit to similar
    /// data may start from them.
    theta: Vec<f64>,
    inv_lengthscale2: Vec<f64>,
    signal: f64,
    /// The prior variance of one noisy observation: the covariance matrix's diagonal.
    observation_variance: f64,
    /// `L⁻¹` for the covariance's factor `L·Lᵀ` (see [`Cholesky::inverse_factor`]).
    inverse_factor: Vec<f64>,
    /// `K⁻¹·y` for the standardized targets.
    alpha: Vec<f64>,
    y_mean: f64,
    y_scale: f64,
}

impl Gp {
    /// Fits a GP to `n = y.len()` observations with inputs `x` (row-major `n × d`): the
    /// hyper-parameters from `options.restarts` optimizations, then the posterior they give.
    /// `None` only if no hyper-parameters gave a factorable covariance, which takes non-finite
    /// inputs.
    #[cfg(test)]
    pub(crate) fn fit<R: rand::Rng>(
        x: &[f64],
        d: usize,
        y: &[f64],
        options: &GpOptions,
        rng: &mut R,
    ) -> Option<Self> {
        let fit = Self::prepare_fit(x.to_vec(), d, y, options, rng)?;
        let runs: Vec<_> = (0..fit.starts()).map(|start| fit.run(start)).collect();
        fit.finish(&runs)
    }

    /// A fit from scratch up to its optimizations: the random draws made, in the order a fit
    /// has always made them (then see [`Fit`]). `None` for no observations.
    pub(crate) fn prepare_fit<R: rand::Rng>(
        x: Vec<f64>,
        d: usize,
        y: &[f64],
        options: &GpOptions,
        rng: &mut R,
    ) -> Option<Fit> {
        let (full, standard) = Self::standardized(&x, d, y, options)?;
        let n = y.len();
        let subset = (n > options.max_fit_points.max(2)).then(|| {
            let rows = fit_subset(&full.y, options.max_fit_points.max(2), rng);
            let xs: Vec<f64> = rows
                .iter()
                .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
                .collect();
            let ys: Vec<f64> = rows.iter().map(|&i| full.y[i]).collect();
            Posterior::new(&xs, rows.len(), d, ys, options)
        });
        let starts = subset
            .as_ref()
            .unwrap_or(&full)
            .starting_points(options.restarts.max(1), rng);
        Some(Fit {
            x,
            full,
            standard,
            subset,
            starts,
            max_iterations: options.max_iterations,
        })
    }

    /// The GP with the hyper-parameters `theta` of an earlier fit ([`Gp::theta`]), conditioned on
    /// these observations without optimizing them again: for data that extend the earlier fit's
    /// by a few observations, which barely move the optimum. `None` for a `theta` of the wrong
    /// dimension or out of bounds, or one that gives no factorable covariance.
    pub(crate) fn with_theta(
        x: &[f64],
        d: usize,
        y: &[f64],
        options: &GpOptions,
        theta: &[f64],
    ) -> Option<Self> {
        let (full, standard) = Self::standardized(x, d, y, options)?;
        if !full.in_bounds(theta) {
            return None;
        }
        Self::posterior(x, &full, standard, theta.to_vec())
    }

    /// The hyper-parameter posterior of all the observations, with targets standardized by the
    /// returned `(mean, scale)`.
    fn standardized(
        x: &[f64],
        d: usize,
        y: &[f64],
        options: &GpOptions,
    ) -> Option<(Posterior, (f64, f64))> {
        let n = y.len();
        if n == 0 || x.len() != n * d {
            return None;
        }
        let y_mean = y.iter().sum::<f64>() / n as f64;
        let variance = y.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / n as f64;
        // A constant objective has nothing to standardize by; keep its units.
        let y_scale = if variance.sqrt() > 1e-12 * y_mean.abs().max(1.0) {
            variance.sqrt()
        } else {
            1.0
        };
        let y_std: Vec<f64> = y.iter().map(|v| (v - y_mean) / y_scale).collect();
        let posterior = Posterior::new(x, n, d, y_std, options);
        Some((posterior, (y_mean, y_scale)))
    }

    /// The GP of `full`'s observations under `theta`.
    fn posterior(
        x: &[f64],
        full: &Posterior,
        (y_mean, y_scale): (f64, f64),
        theta: Vec<f64>,
    ) -> Option<Self> {
        let (n, d) = (full.n, full.d);
        let (chol, inv_lengthscale2, signal) = full.factor(&theta)?;
        let alpha = chol.solve(&full.y);
        let inverse_factor = chol.inverse_factor();
        let observation_variance = signal * (1.0 + JITTER) + theta[d + 1].exp();
        let x_by_feature = (0..d)
            .flat_map(|j| (0..n).map(move |a| (a, j)))
            .map(|(a, j)| x[a * d + j])
            .collect();
        Some(Self {
            n,
            x_by_feature,
            theta,
            inv_lengthscale2,
            signal,
            observation_variance,
            inverse_factor,
            alpha,
            y_mean,
            y_scale,
        })
    }

    /// The fitted hyper-parameters, for a later [`Gp::with_theta`].
    pub(crate) fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// Posterior mean and standard deviation of the latent function at `point` (a feature vector),
    /// in the units of the training targets.
    pub(crate) fn predict(&self, point: &[f64]) -> (f64, f64) {
        let k = self.covariances(point);
        let mean = dot(&k, &self.alpha);
        (self.y_mean + self.y_scale * mean, self.sd(&k))
    }

    /// Like [`Gp::predict`], but without the standard deviation when the mean lies at least `z`
    /// of them below `threshold`. Scoring candidates against a limit they are far from, the
    /// deviation changes nothing, and it is most of a prediction's time. The test uses upper
    /// bounds of the deviation (more data never widens a posterior): first the nearest training
    /// point's alone, which costs nothing beside the mean, then each partial sum of the
    /// triangular product, which stops as soon as one proves the point far enough.
    pub(crate) fn predict_unless_below(
        &self,
        point: &[f64],
        threshold: f64,
        z: f64,
    ) -> (f64, Option<f64>) {
        let k = self.covariances(point);
        let mean = self.y_mean + self.y_scale * dot(&k, &self.alpha);
        let nearest = k.iter().copied().fold(0.0, f64::max);
        let far =
            |explained: f64| threshold - mean >= z * self.y_scale * self.variance(explained).sqrt();
        if far(nearest * nearest / self.observation_variance) {
            return (mean, None);
        }
        // The product's partial sums only grow (adding a square never lowers a float sum), so
        // each bounds the deviation from above as the nearest point does: a stop changes no score.
        match lower_norm2_unless(&self.inverse_factor, &k, far) {
            Some(explained) => (mean, Some(self.deviation(explained))),
            None => (mean, None),
        }
    }

    /// The prior covariance of `point` with every training point.
    fn covariances(&self, point: &[f64]) -> Vec<f64> {
        // Feature by feature over every training point, then the kernel: loops that vectorize.
        let mut k = vec![0.0; self.n];
        for (j, (&p, &w)) in point.iter().zip(&self.inv_lengthscale2).enumerate() {
            let column = &self.x_by_feature[j * self.n..(j + 1) * self.n];
            for (r2, &x) in k.iter_mut().zip(column) {
                let delta = x - p;
                *r2 += w * delta * delta;
            }
        }
        for v in &mut k {
            *v = matern52(*v, self.signal);
        }
        k
    }

    /// The posterior standard deviation, in the targets' units, from the point's
    /// [`Gp::covariances`].
    fn sd(&self, k: &[f64]) -> f64 {
        // Never asked to stop, the product always gives its sum.
        self.deviation(lower_norm2_unless(&self.inverse_factor, k, |_| false).unwrap_or(0.0))
    }

    /// The posterior standard deviation, in the targets' units, of a point whose covariances
    /// with the training points explain `explained` of its prior variance (`‖L⁻¹k‖²`).
    fn deviation(&self, explained: f64) -> f64 {
        self.y_scale * self.variance(explained).sqrt()
    }

    /// The standardized posterior variance left once `explained` is taken from the prior's.
    fn variance(&self, explained: f64) -> f64 {
        (self.signal - explained).max(1e-12 * self.signal)
    }
}

/// A hyper-parameter fit with its random draws made (the observations it is fitted to and its
/// starting points; see [`Gp::prepare_fit`]). What is left draws nothing: one L-BFGS run per
/// start ([`Fit::run`], on any thread, in any order), then the posterior of the best
/// ([`Fit::finish`]), the same wherever the runs were made.
pub(crate) struct Fit {
    x: Vec<f64>,
    full: Posterior,
    standard: (f64, f64),
    /// The observations the hyper-parameters are fitted to, when not all of them.
    subset: Option<Posterior>,
    starts: Vec<Vec<f64>>,
    max_iterations: usize,
}

impl Fit {
    /// How many runs the fit takes.
    pub(crate) fn starts(&self) -> usize {
        self.starts.len()
    }

    /// The run from start number `start`: where it ends and the negative log posterior there.
    pub(crate) fn run(&self, start: usize) -> (Vec<f64>, f64) {
        let objective = self.subset.as_ref().unwrap_or(&self.full);
        let bounds: Vec<(f64, f64)> = theta_bounds(objective.d).collect();
        let options = LbfgsOptions {
            max_iterations: self.max_iterations,
            ..LbfgsOptions::default()
        };
        lbfgs::minimize(
            // A fit computes every value in full: the value is the cheaper half.
            |theta, _| {
                let (value, evaluated) = objective.negative_log_posterior(theta);
                (value, move |grad: &mut [f64]| match evaluated {
                    Some(at) => objective.gradient(&at, grad),
                    None => grad.fill(f64::NAN),
                })
            },
            self.starts[start].clone(),
            &bounds,
            options,
        )
    }

    /// The GP under the best of `runs` (one per start, in order; the first of equal ones).
    pub(crate) fn finish(&self, runs: &[(Vec<f64>, f64)]) -> Option<Gp> {
        let (theta, _) = runs
            .iter()
            .filter(|(_, value)| value.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        Gp::posterior(&self.x, &self.full, self.standard, theta.clone())
    }
}

/// `size` row indices for hyper-parameter fitting: the lowest third of `y` (the region the search
/// is refining) and a uniform sample of the others, in ascending order.
fn fit_subset<R: rand::Rng>(y: &[f64], size: usize, rng: &mut R) -> Vec<usize> {
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| y[a].total_cmp(&y[b]));
    let best = size / 3;
    let mut rest = order.split_off(best.min(order.len()));
    // Partial Fisher–Yates: the first `size − best` of `rest` become a uniform sample.
    let wanted = size.saturating_sub(best).min(rest.len());
    for i in 0..wanted {
        let j = rng.random_range(i..rest.len());
        rest.swap(i, j);
    }
    order.extend_from_slice(&rest[..wanted]);
    order.sort_unstable();
    order
}

/// `σ²·(1 + √5·r + 5r²/3)·exp(−√5·r)` for `r² = r2`.
fn matern52(r2: f64, signal: f64) -> f64 {
    let r = r2.sqrt();
    signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * exp_nonpositive(-SQRT5 * r)
}

/// The hyper-parameter posterior for one data set. Parameters are
/// `θ = [ln ℓ_1 … ln ℓ_d, ln σ_f², ln σ_n²]`.
///
/// Pairs `(a, b)` with `a > b` are numbered `p = a(a−1)/2 + b`. Per-pair quantities are kept in
/// flat vectors so that the per-feature work is a few long dot products and `axpy`s, which stay
/// fast even in unoptimized builds.
struct Posterior {
    n: usize,
    d: usize,
    /// Squared differences of every pair, feature-major: `diff2[j * pairs + p]`.
    diff2: Vec<f64>,
    y: Vec<f64>,
    /// The mean of each feature's normal prior on `ln ℓ`.
    lengthscale_means: Vec<f64>,
    noise_prior: (f64, f64),
}

/// Standard deviation of the normal prior on every `ln ℓ` (see the module docs).
const LENGTHSCALE_PRIOR_SD: f64 = 1.732_050_807_568_877_2;

/// Normal prior on `ln σ_f²`: standardized targets have variance one.
const SIGNAL_PRIOR: (f64, f64) = (0.0, 1.0);

/// The covariance for one θ, with what the gradient needs.
struct Covariance {
    k: Vec<f64>,
    /// Kernel value of every pair.
    kern: Vec<f64>,
    /// `∂k/∂ln ℓ_j = dk·Δ_j²/ℓ_j²` for every pair.
    dk: Vec<f64>,
}

impl Posterior {
    fn new(x: &[f64], n: usize, d: usize, y: Vec<f64>, options: &GpOptions) -> Self {
        let pairs = n * n.saturating_sub(1) / 2;
        let mut diff2 = vec![0.0; pairs * d];
        let mut p = 0;
        for a in 0..n {
            for b in 0..a {
                for j in 0..d {
                    let delta = x[a * d + j] - x[b * d + j];
                    diff2[j * pairs + p] = delta * delta;
                }
                p += 1;
            }
        }
        Self {
            n,
            d,
            diff2,
            y,
            lengthscale_means: (0..d)
                .map(|j| {
                    let onehot = match &options.onehot_shift {
                        Some((shift, marked)) if marked.get(j) == Some(&true) => *shift,
                        _ => 0.0,
                    };
                    std::f64::consts::SQRT_2
                        + 0.5 * (d.max(1) as f64).ln()
                        + options.lengthscale_shift
                        + onehot
                })
                .collect(),
            noise_prior: options.log_noise_prior,
        }
    }

    fn pairs(&self) -> usize {
        self.n * self.n.saturating_sub(1) / 2
    }

    /// Deterministic starts (short and long length scales) plus random ones around them.
    fn starting_points<R: rand::Rng>(&self, count: usize, rng: &mut R) -> Vec<Vec<f64>> {
        let start = |mut theta: Vec<f64>| {
            theta.push(0.0);
            theta.push((-6.0f64).max(LOG_NOISE.0));
            theta
        };
        let mut starts = vec![start(vec![(0.25f64).ln(); self.d])];
        if count > 1 {
            let means = self.lengthscale_means.iter();
            starts.push(start(
                means.map(|m| m.min(LOG_LENGTHSCALE.1 - 0.5)).collect(),
            ));
        }
        while starts.len() < count {
            let mut theta: Vec<f64> = (0..self.d)
                .map(|_| rng.random_range(-2.5..1.0f64))
                .collect();
            theta.push(rng.random_range(-1.0..1.0));
            theta.push(rng.random_range(-12.0..-3.0));
            starts.push(theta);
        }
        starts
    }

    fn in_bounds(&self, theta: &[f64]) -> bool {
        theta.len() == self.d + 2
            && theta_bounds(self.d)
                .zip(theta)
                .all(|((lo, hi), v)| (lo..=hi).contains(v))
    }

    /// The covariance factor for `theta`, with the decoded parameters.
    fn factor(&self, theta: &[f64]) -> Option<(Cholesky, Vec<f64>, f64)> {
        let cov = self.covariance(theta);
        let inv_l2: Vec<f64> = theta[..self.d].iter().map(|t| (-2.0 * t).exp()).collect();
        let chol = Cholesky::factor(&cov.k, self.n)?;
        Some((chol, inv_l2, theta[self.d].exp()))
    }

    fn covariance(&self, theta: &[f64]) -> Covariance {
        let (n, d, pairs) = (self.n, self.d, self.pairs());
        let signal = theta[d].exp();
        let noise = theta[d + 1].exp();
        let mut r2 = vec![0.0; pairs];
        for (j, log_lengthscale) in theta[..d].iter().enumerate() {
            let diff2 = &self.diff2[j * pairs..(j + 1) * pairs];
            axpy((-2.0 * log_lengthscale).exp(), diff2, &mut r2);
        }
        // Pair by pair over flat slices, so that the loop vectorizes; then into the matrix.
        let mut kern = vec![0.0; pairs];
        let mut dk = vec![0.0; pairs];
        for ((r2, kern), dk) in r2.iter().zip(&mut kern).zip(&mut dk) {
            let r = r2.sqrt();
            let e = exp_nonpositive(-SQRT5 * r);
            *kern = signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
            *dk = signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e;
        }
        let mut k = vec![0.0; n * n];
        let mut p = 0;
        for a in 0..n {
            k[a * n + a] = signal * (1.0 + JITTER) + noise;
            k[a * n..a * n + a].copy_from_slice(&kern[p..p + a]);
            p += a;
        }
        Covariance { k, kern, dk }
    }

    /// `−ln p(y | θ) − ln p(θ)` (up to a constant), and what its gradient there needs (`None`
    /// where the value is `+∞`). The gradient costs about as much again as the value, and a fit
    /// asks for it only where its line search accepts a step (see [`lbfgs::minimize`]).
    fn negative_log_posterior(&self, theta: &[f64]) -> (f64, Option<Evaluated>) {
        if !self.in_bounds(theta) {
            return (f64::INFINITY, None);
        }
        let n = self.n;
        let cov = self.covariance(theta);
        let Some(chol) = Cholesky::factor(&cov.k, n) else {
            return (f64::INFINITY, None);
        };
        let alpha = chol.solve(&self.y);
        let mut value = 0.5 * dot(&self.y, &alpha) + 0.5 * chol.log_det() + 0.5 * n as f64 * LN_2PI;
        for (t, (mean, sd)) in self.priors(theta) {
            value += 0.5 * ((t - mean) / sd).powi(2);
        }
        let evaluated = Evaluated {
            theta: theta.to_vec(),
            cov,
            chol,
            alpha,
        };
        (value, Some(evaluated))
    }

    /// The gradient of [`Posterior::negative_log_posterior`] at the point it evaluated.
    fn gradient(&self, at: &Evaluated, grad: &mut [f64]) {
        let (n, d, pairs) = (self.n, self.d, self.pairs());
        let Evaluated {
            theta,
            cov,
            chol,
            alpha,
        } = at;
        // ∂/∂θ of the negative log likelihood is ½·tr(W·∂K/∂θ) with W = K⁻¹ − ααᵀ. W is
        // symmetric and every ∂K/∂θ is zero or a multiple of the identity on the diagonal, so
        // each trace is a sum over pairs plus a diagonal term.
        let inverse = chol.inverse();
        let mut w_pairs = Vec::with_capacity(pairs);
        let mut trace_w = 0.0;
        for a in 0..n {
            for b in 0..a {
                w_pairs.push(inverse[a * n + b] - alpha[a] * alpha[b]);
            }
            trace_w += inverse[a * n + a] - alpha[a] * alpha[a];
        }
        let signal_grad = dot(&w_pairs, &cov.kern);
        let weights: Vec<f64> = w_pairs.iter().zip(&cov.dk).map(|(w, g)| w * g).collect();
        for j in 0..d {
            let inv_l2 = (-2.0 * theta[j]).exp();
            grad[j] = inv_l2 * dot(&weights, &self.diff2[j * pairs..(j + 1) * pairs]);
        }
        let signal = theta[d].exp();
        grad[d] = signal_grad + 0.5 * trace_w * signal * (1.0 + JITTER);
        grad[d + 1] = 0.5 * trace_w * theta[d + 1].exp();
        for (g, (t, (mean, sd))) in grad.iter_mut().zip(self.priors(theta)) {
            *g += (t - mean) / (sd * sd);
        }
    }

    /// Each parameter of `theta` with the mean and deviation of its normal prior.
    fn priors<'a>(&'a self, theta: &'a [f64]) -> impl Iterator<Item = (f64, (f64, f64))> + 'a {
        let (d, noise) = (self.d, self.noise_prior);
        theta[..d]
            .iter()
            .zip(&self.lengthscale_means)
            .map(|(&t, &mean)| (t, (mean, LENGTHSCALE_PRIOR_SD)))
            .chain([(theta[d], SIGNAL_PRIOR), (theta[d + 1], noise)])
    }
}

/// What [`Posterior::gradient`] needs from an evaluation of the value.
struct Evaluated {
    theta: Vec<f64>,
    cov: Covariance,
    chol: Cholesky,
    alpha: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn toy_data(n: usize) -> (Vec<f64>, Vec<f64>) {
        // y = sin(6·x0) + 0.1·x1 on a deterministic scatter of [0, 1]².
        let x: Vec<f64> = (0..n)
            .flat_map(|i| {
                let t = i as f64 / n as f64;
                [t, (t * 7.31).fract()]
            })
            .collect();
        let y = x
            .chunks(2)
            .map(|p| (6.0 * p[0]).sin() + 0.1 * p[1])
            .collect();
        (x, y)
    }

    fn gradient_of(posterior: &Posterior, theta: &[f64]) -> Vec<f64> {
        let (_, evaluated) = posterior.negative_log_posterior(theta);
        let mut grad = vec![0.0; theta.len()];
        posterior.gradient(&evaluated.expect("a finite value"), &mut grad);
        grad
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (x, y) = toy_data(12);
        let posterior = Posterior::new(&x, 12, 2, y, &GpOptions::default());
        let theta = vec![-1.0, 0.3, 0.2, -5.0];
        let grad = gradient_of(&posterior, &theta);
        for i in 0..4 {
            let h = 1e-6;
            let mut up = theta.clone();
            up[i] += h;
            let mut down = theta.clone();
            down[i] -= h;
            let numeric = (posterior.negative_log_posterior(&up).0
                - posterior.negative_log_posterior(&down).0)
                / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() < 1e-4 * numeric.abs().max(1.0),
                "θ[{i}]: analytic {} vs numeric {numeric}",
                grad[i]
            );
        }
    }

    #[test]
    fn a_fit_ends_at_a_stationary_point_even_with_a_length_scale_at_its_bound() {
        // A third feature the targets ignore: its length-scale's optimum is the upper bound, and
        // noise-free data put the noise's at the lower one. The other coordinates must still
        // reach their optimum: a zero gradient, or a gradient pushing against a held bound.
        let (x2, y) = toy_data(30);
        let x: Vec<f64> = x2
            .chunks(2)
            .enumerate()
            .flat_map(|(i, p)| [p[0], p[1], (i as f64 * 0.377).fract()])
            .collect();
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
        let gp = Gp::fit(&x, 3, &y, &GpOptions::default(), &mut rng).expect("toy data is finite");
        let theta = gp.theta().to_vec();
        let y_std: Vec<f64> = y.iter().map(|v| (v - gp.y_mean) / gp.y_scale).collect();
        let posterior = Posterior::new(&x, 30, 3, y_std, &GpOptions::default());
        let grad = gradient_of(&posterior, &theta);
        let mut held = 0;
        for (i, ((lo, hi), (&t, &g))) in theta_bounds(3).zip(theta.iter().zip(&grad)).enumerate() {
            if (t <= lo && g > 0.0) || (t >= hi && g < 0.0) {
                held += 1;
            } else {
                assert!(g.abs() < 1e-3, "θ[{i}] = {t}: gradient {g} ({theta:?})");
            }
        }
        assert!(held > 0, "no coordinate ended at a bound: {theta:?}");
    }

    #[test]
    fn a_onehot_shift_moves_only_the_marked_columns_prior() {
        let (x, y) = toy_data(12);
        let marked = GpOptions {
            onehot_shift: Some((2.0, vec![false, true].into())),
            ..GpOptions::default()
        };
        let plain = Posterior::new(&x, 12, 2, y.clone(), &GpOptions::default());
        let shifted = Posterior::new(&x, 12, 2, y, &marked);
        let theta = [-1.0, 0.3, 0.2, -5.0];
        let value = |p: &Posterior| p.negative_log_posterior(&theta).0;
        // Only ln ℓ1's normal prior moved, its mean up by 2 (variance 3).
        let mean = plain.lengthscale_means[1];
        let expected = 0.5 * ((0.3 - mean - 2.0).powi(2) - (0.3 - mean).powi(2)) / 3.0;
        let moved = value(&shifted) - value(&plain);
        assert!((moved - expected).abs() < 1e-9, "{moved} vs {expected}");
        let (a, b) = (gradient_of(&plain, &theta), gradient_of(&shifted, &theta));
        assert!((b[1] - a[1] - (-2.0 / 3.0)).abs() < 1e-9, "{a:?} → {b:?}");
        for i in [0, 2, 3] {
            assert_eq!(a[i], b[i], "gradient {i} moved");
        }
    }

    #[test]
    fn a_onehot_shift_lengthens_the_marked_columns_fitted_scale() {
        // x1 barely matters (0.1·x1), so the prior weighs on its length scale; x0's is the
        // data's (sin 6·x0).
        let (x, y) = toy_data(16);
        let fit = |onehot_shift| {
            let options = GpOptions {
                lengthscale_shift: -3.0,
                onehot_shift,
                ..GpOptions::default()
            };
            let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(3);
            Gp::fit(&x, 2, &y, &options, &mut rng).expect("toy data is finite")
        };
        let (before, after) = (fit(None), fit(Some((2.0, vec![false, true].into()))));
        let (before, after) = (before.theta(), after.theta());
        assert!(
            after[1] > before[1] + 0.1,
            "ln ℓ1 {} → {}",
            before[1],
            after[1]
        );
        assert!(
            (after[0] - before[0]).abs() < after[1] - before[1],
            "ln ℓ0 {} → {}",
            before[0],
            after[0]
        );
    }

    #[test]
    fn interpolates_smooth_data_and_is_uncertain_far_away() {
        let (x, y) = toy_data(20);
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(0);
        let gp = Gp::fit(&x, 2, &y, &GpOptions::default(), &mut rng).expect("toy data is finite");
        let probe = [0.4, 0.5];
        let (mean, sd) = gp.predict(&probe);
        let truth = (6.0f64 * 0.4).sin() + 0.05;
        assert!((mean - truth).abs() < 0.05, "mean {mean} vs {truth}");
        assert!(sd < 0.05, "sd {sd} near the data");
        // The data only cover x1 in [0, 1]; x0 = 3 is far outside.
        let (_, far_sd) = gp.predict(&[3.0, 0.5]);
        assert!(far_sd > 5.0 * sd);
        // Noise-free data are interpolated.
        let (at_data, _) = gp.predict(&[0.0, 0.0]);
        assert!((at_data - y[0]).abs() < 1e-3, "{at_data} vs {}", y[0]);
    }

    #[test]
    fn learns_the_noise_level_of_noisy_data() {
        use rand::RngExt;
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(4);
        let n = 80;
        let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|v| (4.0 * v).sin() + 0.2 * crate::space::standard_normal(&mut rng))
            .collect();
        let gp = Gp::fit(&x, 1, &y, &GpOptions::default(), &mut rng).expect("finite data");
        // The mean smooths the noise out instead of interpolating it: at the training inputs it
        // is closer to the noise-free function than the observations are.
        let error = |f: &dyn Fn(usize) -> f64| {
            (0..n)
                .map(|i| (f(i) - (4.0 * x[i]).sin()).powi(2))
                .sum::<f64>()
                / n as f64
        };
        let model_error = error(&|i| gp.predict(&x[i..i + 1]).0);
        let data_error = error(&|i| y[i]);
        assert!(
            model_error < data_error / 3.0,
            "model MSE {model_error} vs observation MSE {data_error}"
        );
    }

    #[test]
    fn the_deviation_is_skipped_only_where_the_exact_one_agrees() {
        use rand::RngExt;
        let (x, y) = toy_data(30);
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(2);
        let smooth =
            Gp::fit(&x, 2, &y, &GpOptions::default(), &mut rng).expect("toy data is finite");
        // The same inputs with noise on the targets: a larger noise term, a looser bound.
        let noisy_y: Vec<f64> = y
            .iter()
            .map(|v| v + 0.3 * crate::space::standard_normal(&mut rng))
            .collect();
        let noisy =
            Gp::fit(&x, 2, &noisy_y, &GpOptions::default(), &mut rng).expect("toy data is finite");
        for gp in [&smooth, &noisy] {
            let mut skipped = 0;
            for _ in 0..2000 {
                let point = [rng.random::<f64>(), rng.random::<f64>()];
                let (mean, sd) = gp.predict(&point);
                // A threshold from just above the mean to far above it, in deviations.
                let z = rng.random_range(0.0..10_000f64.ln()).exp();
                let threshold = mean + z * sd;
                let (bounded_mean, bounded_sd) = gp.predict_unless_below(&point, threshold, 40.0);
                assert_eq!(bounded_mean.to_bits(), mean.to_bits());
                match bounded_sd {
                    Some(bounded_sd) => assert_eq!(bounded_sd.to_bits(), sd.to_bits()),
                    None => {
                        skipped += 1;
                        assert!((threshold - mean) / sd >= 40.0, "skipped at z = {z}");
                    }
                }
            }
            // The bound is loose far from the data, but it does skip.
            assert!(skipped > 100, "skipped {skipped} of 2000");
        }
    }

    #[test]
    fn a_gp_with_a_fits_hyper_parameters_predicts_as_that_fit() {
        let (x, y) = toy_data(30);
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
        let fitted =
            Gp::fit(&x, 2, &y, &GpOptions::default(), &mut rng).expect("toy data is finite");
        let again = Gp::with_theta(&x, 2, &y, &GpOptions::default(), fitted.theta())
            .expect("the fit's own hyper-parameters");
        for probe in [[0.4, 0.5], [0.0, 0.0], [3.0, 0.5]] {
            assert_eq!(fitted.predict(&probe), again.predict(&probe));
        }
        // Hyper-parameters that cannot be this data's are refused, not used.
        let opts = &GpOptions::default();
        assert!(Gp::with_theta(&x, 2, &y, opts, &fitted.theta()[1..]).is_none());
        let mut outside = fitted.theta().to_vec();
        outside[0] = LOG_LENGTHSCALE.1 + 1.0;
        assert!(Gp::with_theta(&x, 2, &y, opts, &outside).is_none());
    }

    #[test]
    fn fits_a_single_observation() {
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(0);
        let gp = Gp::fit(&[0.2, 0.7], 2, &[5.0], &GpOptions::default(), &mut rng)
            .expect("one finite observation is enough");
        let (mean, sd) = gp.predict(&[0.2, 0.7]);
        assert!((mean - 5.0).abs() < 1e-3 && sd.is_finite());
    }

    #[test]
    fn handles_constant_and_duplicated_observations() {
        let x = vec![0.5, 0.5, 0.5, 0.5, 0.1, 0.9];
        let y = [2.0, 2.0, 2.0];
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(0);
        let gp = Gp::fit(&x, 2, &y, &GpOptions::default(), &mut rng)
            .expect("duplicates are absorbed by noise and jitter");
        let (mean, sd) = gp.predict(&[0.3, 0.3]);
        assert!((mean - 2.0).abs() < 1e-6 && sd.is_finite());
    }
}
