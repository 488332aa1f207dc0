//! Several objectives at once: the Pareto front, the one point of it a study settles on, the
//! hypervolume that measures a front, and ParEGO's scalarization, by which the single-objective
//! samplers search for the front.
//!
//! Every point here is minimized on every axis (a caller negates an objective it maximizes), and
//! every value is finite (a caller leaves out a trial that could not be scored).
//!
//! ParEGO (Knowles, "ParEGO: a hybrid algorithm with on-line landscape approximation for
//! expensive multiobjective optimization problems", IEEE TEVC 2006): before each suggestion the
//! objectives are normalized to [0, 1] over the history, a weight vector is drawn, and each
//! trial is scored by the augmented Chebyshev function of its normalized objectives. The
//! sampler then suggests for that one number as for any objective, so constraints, failures and
//! safe exploration work unchanged; the weights differ from one suggestion to the next, so the
//! suggestions spread along the whole front instead of converging on one point of it.

/// Weight of the sum in the augmented Chebyshev function (Knowles' ρ): small, so the maximum
/// decides, but enough that of two points with the same maximum the one better elsewhere wins.
const RHO: f64 = 0.05;

/// Whether `a` is at least as good as `b` on every axis and better on one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// The indices of the points no other point dominates (the Pareto front), in their given order.
/// Equal points are all on the front when one of them is.
pub fn non_dominated(points: &[Vec<f64>]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| !points.iter().any(|p| dominates(p, &points[i])))
        .collect()
}

/// Each axis's lowest value and its span over `points` (a span of 0 counts as 1, so a constant
/// axis normalizes to 0 rather than dividing by zero).
fn ranges(points: &[Vec<f64>]) -> Vec<(f64, f64)> {
    let axes = points.first().map_or(0, Vec::len);
    (0..axes)
        .map(|j| {
            let low = points.iter().map(|p| p[j]).fold(f64::INFINITY, f64::min);
            let high = points
                .iter()
                .map(|p| p[j])
                .fold(f64::NEG_INFINITY, f64::max);
            let span = high - low;
            (low, if span > 0.0 { span } else { 1.0 })
        })
        .collect()
}

/// `points` rescaled so that on every axis the lowest is 0 and the highest 1: objectives in
/// dollars and in milliseconds then weigh alike.
pub fn normalized(points: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let ranges = ranges(points);
    points
        .iter()
        .map(|p| {
            p.iter()
                .zip(&ranges)
                .map(|(v, (low, span))| (v - low) / span)
                .collect()
        })
        .collect()
}

/// Which of `front` (points none of which dominates another) to settle on: the one with the
/// smallest weighted sum of its objectives normalized over the front (0 the front's best on that
/// axis, 1 its worst). `weights` `None` weighs every objective alike: the *knee*. For two
/// objectives the normalized front runs from (0, 1) to (1, 0), and the knee is the point
/// farthest from the line joining those two extremes on the side of the ideal point (0, 0): the
/// one where improving either objective further starts costing the most of the other. Ties go to
/// the earlier point. `None` for an empty front.
pub fn select(front: &[Vec<f64>], weights: Option<&[f64]>) -> Option<usize> {
    let normalized = normalized(front);
    let score = |p: &Vec<f64>| -> f64 {
        match weights {
            Some(w) => p.iter().zip(w).map(|(v, w)| v * w).sum(),
            None => p.iter().sum(),
        }
    };
    normalized
        .iter()
        .enumerate()
        .min_by(|(i, a), (j, b)| score(a).total_cmp(&score(b)).then(i.cmp(j)))
        .map(|(i, _)| i)
}

/// The knee of `front`: [`select`] with every objective weighed alike.
pub fn knee(front: &[Vec<f64>]) -> Option<usize> {
    select(front, None)
}

/// The area dominated by `points` (two objectives, both minimized) and bounded by `reference`:
/// the larger, the closer and wider the front. Points that do not dominate the reference add
/// nothing.
pub fn hypervolume_2d(points: &[[f64; 2]], reference: [f64; 2]) -> f64 {
    let mut inside: Vec<[f64; 2]> = points
        .iter()
        .copied()
        .filter(|p| p[0] < reference[0] && p[1] < reference[1])
        .collect();
    inside.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut area = 0.0;
    let mut ceiling = reference[1];
    for [x, y] in inside {
        if y < ceiling {
            area += (reference[0] - x) * (ceiling - y);
            ceiling = y;
        }
    }
    area
}

/// ParEGO's weight vector for one suggestion: uniform on the simplex (non-negative, summing to
/// 1), a function of the study's seed and the number of the trial it is for, so a resumed study
/// draws the weights the interrupted one would have.
pub fn parego_weights(objectives: usize, seed: u64, trial: u64) -> Vec<f64> {
    use rand::RngExt;
    let mut rng = crate::rng_for(seed, trial as usize, 0x5041_5245_474f);
    // Exponential draws normalized are a flat Dirichlet: uniform on the simplex.
    let draws: Vec<f64> = (0..objectives)
        .map(|_| -(1.0 - rng.random::<f64>()).ln())
        .collect();
    let total: f64 = draws.iter().sum();
    if total > 0.0 && total.is_finite() {
        draws.iter().map(|d| d / total).collect()
    } else {
        vec![1.0 / objectives.max(1) as f64; objectives]
    }
}

/// The augmented Chebyshev function of normalized objectives: the largest weighted objective,
/// plus a little of their weighted sum.
pub fn chebyshev(normalized: &[f64], weights: &[f64]) -> f64 {
    let weighted = normalized.iter().zip(weights).map(|(v, w)| v * w);
    weighted.clone().fold(f64::NEG_INFINITY, f64::max) + RHO * weighted.sum::<f64>()
}

/// ParEGO's single objective for each of `points` under `weights`: [`chebyshev`] of the point
/// normalized over all of them.
pub fn scalarize(points: &[Vec<f64>], weights: &[f64]) -> Vec<f64> {
    normalized(points)
        .iter()
        .map(|p| chebyshev(p, weights))
        .collect()
}

/// A finished trial of a study with several objectives.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiObservation {
    pub config: crate::Config,
    /// `None`: the trial failed.
    pub objectives: Option<Vec<f64>>,
    /// Each constraint's value, satisfied when `<= 0` (empty for a failed trial).
    pub constraints: Vec<f64>,
}

/// ParEGO's history for one suggestion: every complete trial's objectives (each minimized)
/// normalized over the complete trials and folded by [`chebyshev`] under `weights` into the one
/// objective a [`crate::Sampler`] minimizes; constraints as they were; failed trials (and any
/// with a non-finite objective) failed.
pub fn parego_history(history: &[MultiObservation], weights: &[f64]) -> Vec<crate::Observation> {
    use crate::{Observation, Outcome};
    let finite = |o: &MultiObservation| {
        o.objectives
            .as_ref()
            .filter(|v| v.iter().all(|x| x.is_finite()))
            .cloned()
    };
    let points: Vec<Vec<f64>> = history.iter().filter_map(finite).collect();
    let mut scores = scalarize(&points, weights).into_iter();
    history
        .iter()
        .map(|o| Observation {
            config: o.config.clone(),
            outcome: match finite(o) {
                Some(_) => Outcome::Complete {
                    objective: scores.next().unwrap_or(f64::NAN),
                    constraints: o.constraints.clone(),
                },
                None => Outcome::Failed,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(list: &[[f64; 2]]) -> Vec<Vec<f64>> {
        list.iter().map(|p| p.to_vec()).collect()
    }

    #[test]
    fn the_front_holds_exactly_the_points_nothing_dominates() {
        let p = points(&[
            [1.0, 5.0],
            [2.0, 3.0],
            [3.0, 4.0], // dominated by [2, 3]
            [4.0, 1.0],
            [2.0, 3.0], // equal to a front point: on the front too
            [5.0, 5.0], // dominated by everything
            [1.0, 6.0], // dominated by [1, 5] (equal on one axis, worse on the other)
        ]);
        assert_eq!(non_dominated(&p), vec![0, 1, 3, 4]);
        assert!(dominates(&[1.0, 5.0], &[1.0, 6.0]));
        assert!(!dominates(&[1.0, 5.0], &[1.0, 5.0]), "equal is not better");
        assert!(!dominates(&[1.0, 5.0], &[2.0, 3.0]));
        assert_eq!(non_dominated(&[]), Vec::<usize>::new());
        // Against a brute-force reading of the definition, on a grid with many ties.
        let mut grid = Vec::new();
        for i in 0..7 {
            for j in 0..7 {
                if (i * 3 + j * 5) % 4 != 0 {
                    grid.push(vec![f64::from(i), f64::from((i * j) % 7)]);
                }
            }
        }
        let front = non_dominated(&grid);
        for (i, p) in grid.iter().enumerate() {
            let beaten = grid
                .iter()
                .any(|q| q[0] <= p[0] && q[1] <= p[1] && (q[0] < p[0] || q[1] < p[1]));
            assert_eq!(front.contains(&i), !beaten, "{p:?}");
        }
    }

    #[test]
    fn the_knee_is_the_point_farthest_below_the_line_joining_the_extremes() {
        // Cost falls steeply until (3, 3), then each unit of cost buys little latency.
        let front = points(&[[1.0, 10.0], [2.0, 5.0], [3.0, 3.0], [6.0, 2.0], [10.0, 1.0]]);
        assert_eq!(knee(&front), Some(2));
        // The rule is invariant to each axis's unit: milliseconds instead of seconds.
        let scaled: Vec<Vec<f64>> = front.iter().map(|p| vec![p[0], p[1] * 1000.0]).collect();
        assert_eq!(knee(&scaled), Some(2));
        // Weights lean towards the objective they favour.
        assert_eq!(select(&front, Some(&[1.0, 0.0])), Some(0));
        assert_eq!(select(&front, Some(&[0.0, 1.0])), Some(4));
        assert_eq!(select(&front, Some(&[0.5, 0.5])), Some(2));
        // A single point is its own knee; a straight front ties, and the earlier point wins.
        assert_eq!(knee(&points(&[[4.0, 4.0]])), Some(0));
        assert_eq!(
            knee(&points(&[[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])),
            Some(0)
        );
        assert_eq!(knee(&[]), None);
    }

    #[test]
    fn the_hypervolume_is_the_area_the_front_dominates_within_the_reference() {
        // Each point dominates a box up to (4, 4); the area is their union.
        let hv = hypervolume_2d(&[[1.0, 3.0], [3.0, 1.0]], [4.0, 4.0]);
        // [1,4]×[3,4] is 3, [3,4]×[1,4] is 3, overlapping in [3,4]×[3,4] (1): 5.
        assert!((hv - 5.0).abs() < 1e-12, "{hv}");
        // A dominated point, a point outside the reference and order change nothing.
        let more = hypervolume_2d(
            &[[3.0, 1.0], [3.5, 3.5], [5.0, 0.0], [1.0, 3.0]],
            [4.0, 4.0],
        );
        assert!((more - 5.0).abs() < 1e-12, "{more}");
        assert_eq!(hypervolume_2d(&[], [1.0, 1.0]), 0.0);
        // One point: its box.
        assert!((hypervolume_2d(&[[0.0, 0.0]], [2.0, 3.0]) - 6.0).abs() < 1e-12);
    }

    #[test]
    fn parego_weights_are_on_the_simplex_reproducible_and_vary_by_trial() {
        let w = parego_weights(2, 7, 3);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(w.iter().all(|x| (0.0..=1.0).contains(x)));
        assert_eq!(w, parego_weights(2, 7, 3));
        assert_ne!(w, parego_weights(2, 7, 4));
        assert_ne!(w, parego_weights(2, 8, 3));
        let firsts: Vec<f64> = (0..200).map(|t| parego_weights(2, 1, t)[0]).collect();
        let low = firsts.iter().filter(|x| **x < 0.5).count();
        assert!((60..=140).contains(&low), "spread over the simplex: {low}");
        assert_eq!(parego_weights(3, 0, 0).len(), 3);
    }

    #[test]
    fn parego_history_scores_complete_trials_and_keeps_failures_and_constraints() {
        let trial = |x: i64, objectives: Option<Vec<f64>>| MultiObservation {
            config: vec![crate::ParamValue::Int(x)],
            objectives,
            constraints: vec![x as f64 - 2.0],
        };
        let history = vec![
            trial(0, Some(vec![0.0, 10.0])),
            trial(1, None),
            trial(2, Some(vec![10.0, 0.0])),
            trial(3, Some(vec![f64::NAN, 1.0])),
            trial(4, Some(vec![5.0, 5.0])),
        ];
        let scored = parego_history(&history, &[0.5, 0.5]);
        assert_eq!(scored.len(), 5);
        let objective = |i: usize| match &scored[i].outcome {
            crate::Outcome::Complete {
                objective,
                constraints,
            } => {
                assert_eq!(constraints, &history[i].constraints);
                Some(*objective)
            }
            crate::Outcome::Failed => None,
        };
        assert_eq!(objective(1), None);
        assert_eq!(objective(3), None, "a non-finite objective is a failure");
        let (a, b, c) = (objective(0), objective(2), objective(4));
        assert_eq!(a, b, "the extremes tie under even weights");
        assert!(c < a, "the middle is best under even weights: {c:?} {a:?}");
        assert_eq!(scored[4].config, history[4].config);
    }

    #[test]
    fn the_chebyshev_score_ranks_by_the_worst_weighted_objective() {
        let p = points(&[[0.0, 10.0], [10.0, 0.0], [4.0, 4.0]]);
        let even = scalarize(&p, &[0.5, 0.5]);
        assert!(even[2] < even[0] && even[2] < even[1], "{even:?}");
        let cost_first = scalarize(&p, &[0.9, 0.1]);
        assert!(cost_first[0] < cost_first[1], "{cost_first:?}");
        assert!((chebyshev(&[1.0, 0.0], &[0.5, 0.5]) - (0.5 + RHO * 0.5)).abs() < 1e-12);
    }
}
