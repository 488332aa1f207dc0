//! The score a candidate must beat to matter, as a suggestion's exact scores come in.
//!
//! Of the candidates scored, only the best few decide the suggestion: the local search starts
//! from the best `k` distinct ones, and the suggestion is the best one not yet tried. A
//! candidate whose score is bounded below both, the `k`th best exact score so far and the best
//! of an untried point so far, can never be either (the floor only rises), so its scoring may
//! stop at that bound (see `Model::score_above`). On the welded beam with 500 observations, four
//! in five candidates that pass the safety gate fall below the floor on the objective's term and
//! one limit's, and the other limits' models need not be asked.

/// The running floor of one suggestion's candidates.
#[derive(Debug)]
pub(super) struct Floor {
    k: usize,
    /// The best exact scores so far, best first, at most `k` (one per point: a point's exact
    /// score is computed once).
    best: Vec<f64>,
    /// The best exact score of a point not yet tried.
    best_new: f64,
}

impl Floor {
    pub(super) fn new(k: usize) -> Self {
        Self {
            k: k.max(1),
            best: Vec::new(),
            best_new: f64::NEG_INFINITY,
        }
    }

    /// Below this, a candidate can be neither among the best `k` nor the best untried one: `−∞`
    /// until `k` points and an untried one have exact scores.
    pub(super) fn get(&self) -> f64 {
        match self.best.get(self.k - 1) {
            Some(&kth) => kth.min(self.best_new),
            None => f64::NEG_INFINITY,
        }
    }

    /// Takes in the exact score of a point scored for the first time; `is_new` (whether it is
    /// untried, which costs a look through the history) is asked only when that could raise the
    /// floor.
    pub(super) fn add(&mut self, score: f64, is_new: impl FnOnce() -> bool) {
        if score.is_nan() {
            return;
        }
        if self.best.len() < self.k || score > self.best[self.k - 1] {
            let at = self.best.partition_point(|&b| b >= score);
            self.best.insert(at, score);
            self.best.truncate(self.k);
        }
        if score > self.best_new && is_new() {
            self.best_new = score;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_lower_of_the_kth_best_and_the_best_untried() {
        let mut floor = Floor::new(3);
        assert_eq!(floor.get(), f64::NEG_INFINITY);
        floor.add(-5.0, || true);
        floor.add(-1.0, || false);
        assert_eq!(floor.get(), f64::NEG_INFINITY, "fewer than k scores");
        floor.add(-3.0, || false);
        // The third best is −5, and so is the best untried score.
        assert_eq!(floor.get(), -5.0);
        floor.add(-2.0, || false);
        assert_eq!(floor.best, [-1.0, -2.0, -3.0]);
        assert_eq!(
            floor.get(),
            -5.0,
            "the best untried point holds the floor down"
        );
        floor.add(-6.0, || {
            panic!("a score below the best untried one cannot raise it")
        });
        floor.add(-0.5, || true);
        assert_eq!(floor.get(), -2.0);
        // A point tying the kth best changes nothing.
        floor.add(-2.0, || false);
        assert_eq!(floor.best, [-0.5, -1.0, -2.0]);
        floor.add(f64::NAN, || panic!("NaN is no score"));
        assert_eq!(floor.get(), -2.0);
    }

    #[test]
    fn without_an_untried_point_nothing_is_below_the_floor() {
        let mut floor = Floor::new(1);
        floor.add(3.0, || false);
        floor.add(2.0, || false);
        assert_eq!(floor.get(), f64::NEG_INFINITY);
    }
}
