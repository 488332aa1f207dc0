//! A small L-BFGS minimizer with a backtracking (Armijo) line search, for fitting Gaussian-process
//! hyper-parameters: a smooth problem in a handful of dimensions where the objective and its
//! gradient come from one Cholesky factorization.
//!
//! Bounds are expressed by the objective returning `+∞` outside them: the line search then
//! backtracks into the feasible region, which is all the robustness this use needs.

use std::collections::VecDeque;

use super::linalg::dot;

#[derive(Clone, Copy, Debug)]
pub(crate) struct LbfgsOptions {
    pub max_iterations: usize,
    /// Correction pairs kept for the inverse-Hessian approximation.
    pub memory: usize,
    /// Stop once the largest gradient component is below this.
    pub gradient_tolerance: f64,
    /// Stop once an iteration improves the objective by less than this (relative).
    pub relative_tolerance: f64,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        Self {
            max_iterations: 50,
            memory: 6,
            gradient_tolerance: 1e-5,
            relative_tolerance: 1e-9,
        }
    }
}

/// Minimizes `f`, which returns the objective at `x` and writes its gradient into the second
/// argument. Returns the best point found and its value (`+∞` if `f` was never finite).
pub(crate) fn minimize<F>(mut f: F, x0: Vec<f64>, options: LbfgsOptions) -> (Vec<f64>, f64)
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let dim = x0.len();
    let mut x = x0;
    let mut grad = vec![0.0; dim];
    let mut fx = f(&x, &mut grad);
    if !fx.is_finite() || grad.iter().any(|g| !g.is_finite()) {
        return (x, f64::INFINITY);
    }
    let mut pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(options.memory);
    let mut next = vec![0.0; dim];
    let mut next_grad = vec![0.0; dim];

    for iteration in 0..options.max_iterations {
        if grad.iter().all(|g| g.abs() < options.gradient_tolerance) {
            break;
        }
        let mut direction = two_loop_direction(&grad, &pairs);
        let mut slope = dot(&direction, &grad);
        if slope >= 0.0 {
            // The curvature pairs went stale; fall back to steepest descent.
            pairs.clear();
            direction = grad.iter().map(|g| -g).collect();
            slope = -dot(&grad, &grad);
        }
        // Without curvature information, take a first step of unit length in parameter space.
        let mut step = if iteration == 0 || pairs.is_empty() {
            1.0 / dot(&direction, &direction).sqrt().max(1.0)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..30 {
            for ((n, xi), di) in next.iter_mut().zip(&x).zip(&direction) {
                *n = xi + step * di;
            }
            let f_next = f(&next, &mut next_grad);
            if f_next.is_finite()
                && next_grad.iter().all(|g| g.is_finite())
                && f_next <= fx + 1e-4 * step * slope
            {
                accepted = Some(f_next);
                break;
            }
            step *= 0.5;
        }
        let Some(f_next) = accepted else { break };

        let s: Vec<f64> = next.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-10 {
            if pairs.len() == options.memory {
                pairs.pop_front();
            }
            pairs.push_back((s, y, 1.0 / sy));
        }
        let improvement = fx - f_next;
        std::mem::swap(&mut x, &mut next);
        std::mem::swap(&mut grad, &mut next_grad);
        fx = f_next;
        if improvement <= options.relative_tolerance * fx.abs().max(1.0) {
            break;
        }
    }
    (x, fx)
}

/// The quasi-Newton direction `−H·g` from the stored correction pairs (Nocedal & Wright, Alg. 7.4).
fn two_loop_direction(grad: &[f64], pairs: &VecDeque<(Vec<f64>, Vec<f64>, f64)>) -> Vec<f64> {
    let mut q = grad.to_vec();
    let mut alphas = Vec::with_capacity(pairs.len());
    for (s, y, rho) in pairs.iter().rev() {
        let alpha = rho * dot(s, &q);
        for (qi, yi) in q.iter_mut().zip(y) {
            *qi -= alpha * yi;
        }
        alphas.push(alpha);
    }
    if let Some((s, y, _)) = pairs.back() {
        let gamma = dot(s, y) / dot(y, y);
        for qi in &mut q {
            *qi *= gamma;
        }
    }
    for ((s, y, rho), alpha) in pairs.iter().zip(alphas.iter().rev()) {
        let beta = rho * dot(y, &q);
        for (qi, si) in q.iter_mut().zip(s) {
            *qi += (alpha - beta) * si;
        }
    }
    q.iter_mut().for_each(|qi| *qi = -*qi);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_the_rosenbrock_function() {
        let rosenbrock = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let options = LbfgsOptions {
            max_iterations: 200,
            relative_tolerance: 0.0,
            ..LbfgsOptions::default()
        };
        let (x, fx) = minimize(rosenbrock, vec![-1.2, 1.0], options);
        assert!(fx < 1e-8, "f = {fx} at {x:?}");
        assert!((x[0] - 1.0).abs() < 1e-3 && (x[1] - 1.0).abs() < 1e-3);
    }

    #[test]
    fn stays_inside_a_region_where_the_objective_is_finite() {
        // Minimum of (x - 3)² restricted to x <= 2 (infinite beyond): ends at the boundary.
        let bounded = |x: &[f64], g: &mut [f64]| {
            if x[0] > 2.0 {
                return f64::INFINITY;
            }
            g[0] = 2.0 * (x[0] - 3.0);
            (x[0] - 3.0).powi(2)
        };
        let (x, fx) = minimize(bounded, vec![0.0], LbfgsOptions::default());
        assert!(x[0] <= 2.0 && x[0] > 1.9, "x = {x:?}");
        assert!(fx.is_finite());
    }
}
