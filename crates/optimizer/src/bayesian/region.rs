//! Safe exploration's trust region: the trials that met every constraint (the anchors) and how
//! far a new trial may move from each.
//!
//! An anchor far below its limits may move further than one at the edge. Its reach is the
//! distance at which, rising at the steepest rate seen between two trials, some constraint would
//! reach its limit, times a share (the steepest rate seen is a lower bound of the true one), and
//! at most that share of its distance to the nearest trial that failed; never less than the least
//! radius, never more than the most. This is the Lipschitz form of SafeOpt's safe set (Sui et al.
//! 2015), with the constant estimated from the history. Until two trials have run far enough
//! apart to estimate a rate, every anchor has the least radius.
//!
//! A region bounded per parameter by a first-order fit of each constraint (so an anchor near one
//! limit could still move freely along the parameters that limit does not depend on) was tried
//! on the tuning problems and dropped: the linear fit does not see how fast a latency climbs as
//! resources shrink, and it left breaches past twice the limit (up to 16×) in 6–15 of 30 runs of
//! `mixed-noisy` and 0–4 of `mixed` (100 trials, seeds 0–29), against none with this rule.
//! Rates measured from each anchor alone (rather than the steepest between any two trials) left
//! such breaches in 2–3 of the 30 runs of `mixed`. A least radius of 0.01 or 0.02 where the rates
//! are steep cut `mixed-noisy`'s breaches in 50 trials from 12 to 7 but raised regret at 50 from
//! 0.066 to 0.11; the least stays 0.05, as the radius was chosen before (regret first once no
//! breach passes twice the limit).
//!
//! Widening every anchor's share to its whole room once the search stalls (a run of 5, 8 or 12
//! trials not improving the best feasible objective), to let it leave a local optimum, was tried
//! on the tuning problems (seeds 0–9, 100 trials) and dropped: no regret improved, and the
//! cantilever breached past twice its limit (worst 4.7×, 4.4× and 2.3× the limit, against
//! 1.12×).
//!
//! Two rules for staying away from a meltdown once one was seen were tried on the tuning
//! problems (seeds 0–19, 50 trials) and dropped. Skipping every candidate whose nearest trial
//! (by this distance, grid steps in full) failed or breached past twice a limit changed no median
//! on `mixed`, `mixed-noisy` and the queues, and the traces of the held-out service show why: a
//! configuration tried after a meltdown lay nearer a safe trial than the meltdown, across a cliff
//! no distance sees (a cache that thrashes once memory falls below the workers' heaps). Widening
//! each constraint's deviation by κ × the steepest rate seen × the distance to the nearest trial
//! (a Lipschitz bound folded into the model) traded regret for breaches at every κ: at 0.03 the
//! cantilever's breaches in 50 trials fell from 6.5 to 2 but regret at 50 rose on the three-bar
//! truss (0.0047 → 0.026) and `hartmann6-l1` (0.0014 → 0.0045); at 0.1 on `mixed` (0 → 0.031)
//! and the tubular column (−1e-5 → 0.032); and every `queue` run still melted down.
//!
//! A ring beyond each anchor's reach, out to 1.5 or 2 times it, where a candidate had to be 0.99
//! or 0.999 likely to meet every limit (a longer move for more confidence), was tried on the
//! whole tuning suite (seeds 0–39, 100 trials; regret at 50 trials, mean breaches in 50) and
//! dropped. It took the concrete beam from 0.62 to 0.0014–0.0025 (ahead in 39–40 runs of 40),
//! and at 2× and 0.999 the cantilever's breaches from 7.1 to 4.8; but every variant took
//! `mixed-continuous` from 1.8e-5 to 0.046 (its searches settled early at 2.606, the optimum
//! being 2.56), at 2× `mixed` from 0 to 0.031, and at 0.99 both queues breached once more per
//! run. Kept to moves of continuous settings alone, it left the problems on a grid as they were
//! but lost the concrete beam's gain, and `mixed-continuous` still lost (3.5e-5).

use super::{Bayesian, Trial, constraint_count, worst_of};
use crate::space::{Encoding, Point};

/// Where a new trial may go: within the reach of some anchor.
pub(super) struct Region<'t> {
    anchors: Vec<Anchor<'t>>,
    /// The anchor with the most room below its limits (the lowest worst constraint value): the
    /// only one a choice no trial has taken may be tried from.
    safest: usize,
}

/// A trial that met every constraint, and how far a new trial may move from it.
pub(super) struct Anchor<'t> {
    pub(super) point: &'t Point,
    /// In the units of `Encoding::move_size`.
    pub(super) reach: f64,
}

impl<'t> Region<'t> {
    /// The region of `sampler`'s settings after `trials`; the rate of each constraint is
    /// estimated on `rated` (a subset, so the cost stays bounded in long studies). `None` when
    /// the sampler has no region, no trial reported a constraint (no SLO to keep), or none met
    /// every constraint yet.
    pub(super) fn new(
        sampler: &Bayesian,
        encoding: &Encoding<'_>,
        trials: &'t [Trial],
        rated: &[&Trial],
    ) -> Option<Self> {
        let least = sampler.trust_region?;
        let most = sampler.trust_region_max.max(least);
        let n_constraints = constraint_count(trials);
        if n_constraints == 0 {
            return None;
        }
        let rates = if most > least {
            steepest_rates(encoding, rated, n_constraints, least)
        } else {
            None
        };
        let failed: Vec<&Point> = trials
            .iter()
            .filter(|t| t.result.is_none())
            .map(|t| &t.point)
            .collect();
        let share = sampler.trust_region_share;
        let reach = |trial: &Trial| -> f64 {
            let (Some(rates), Some((_, constraints))) = (&rates, &trial.result) else {
                return least;
            };
            let mut reach = most;
            for (value, rate) in constraints.iter().zip(rates) {
                if *rate > 0.0 {
                    reach = reach.min(share * -value / rate);
                }
            }
            for f in &failed {
                reach = reach.min(share * encoding.move_size(f, &trial.point, f64::INFINITY));
            }
            reach.max(least)
        };
        let feasible: Vec<&'t Trial> = trials
            .iter()
            .filter(|t| t.feasible(n_constraints))
            .collect();
        let safest = (0..feasible.len())
            .min_by(|&a, &b| worst_of(feasible[a]).total_cmp(&worst_of(feasible[b])))?;
        Some(Self {
            anchors: feasible
                .iter()
                .map(|t| Anchor {
                    point: &t.point,
                    reach: reach(t),
                })
                .collect(),
            safest,
        })
    }

    pub(super) fn anchors(&self) -> &[Anchor<'t>] {
        &self.anchors
    }

    pub(super) fn safest(&self) -> &Anchor<'t> {
        &self.anchors[self.safest]
    }

    /// Whether `anchor` allows a move to `point`.
    pub(super) fn allows(
        &self,
        encoding: &Encoding<'_>,
        anchor: &Anchor<'_>,
        point: &[f64],
    ) -> bool {
        encoding.within(point, anchor.point, anchor.reach)
    }
}

/// Per constraint, the steepest rise seen between two trials that ran at least `least` apart
/// (closer pairs mostly measure noise) and took the same choices (no distance says how different
/// two choices behave). `None` when no pair qualifies.
fn steepest_rates(
    encoding: &Encoding<'_>,
    rated: &[&Trial],
    n_constraints: usize,
    least: f64,
) -> Option<Vec<f64>> {
    let ran: Vec<(&Point, &Vec<f64>)> = rated
        .iter()
        .filter_map(|t| match &t.result {
            Some((_, c)) if c.len() == n_constraints => Some((&t.point, c)),
            _ => None,
        })
        .collect();
    let mut rates = vec![0.0f64; n_constraints];
    let mut any = false;
    for (i, (p, cp)) in ran.iter().enumerate() {
        for (q, cq) in &ran[..i] {
            let distance = encoding.move_size(p, q, f64::INFINITY);
            if !distance.is_finite() || distance < least {
                continue;
            }
            any = true;
            for ((rate, a), b) in rates.iter_mut().zip(cp.iter()).zip(cq.iter()) {
                *rate = rate.max((a - b).abs() / distance);
            }
        }
    }
    any.then_some(rates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Space;
    use crate::bayesian::tests::unit_square;

    /// A trial at (x, y) whose one constraint is `x - 0.9`: it rises at 1 per unit along x.
    fn ran(x: f64, y: f64) -> Trial {
        Trial {
            point: vec![x, y],
            result: Some((0.0, vec![x - 0.9])),
        }
    }

    fn reaches(sampler: &Bayesian, space: &Space, trials: &[Trial]) -> Vec<f64> {
        let encoding = Encoding::new(space);
        let rated: Vec<&Trial> = trials.iter().collect();
        let region = Region::new(sampler, &encoding, trials, &rated).expect("a trial is safe");
        region.anchors().iter().map(|a| a.reach).collect()
    }

    #[test]
    fn an_anchor_far_below_its_limit_reaches_further_than_one_near_it() {
        let sampler = Bayesian::default();
        let space = unit_square();
        // Rate 1 (the pair 0.1 → 0.5 along x); room 0.8 and 0.05 below the limit.
        let trials = [ran(0.1, 0.5), ran(0.5, 0.5), ran(0.85, 0.5)];
        let reach = reaches(&sampler, &space, &trials);
        let share = sampler.trust_region_share;
        assert!((reach[0] - share * 0.8).abs() < 1e-9, "{reach:?}");
        assert!((reach[1] - share * 0.4).abs() < 1e-9, "{reach:?}");
        // Near the limit the least radius still applies: the search can always move a little.
        assert_eq!(reach[2], 0.05);
    }

    #[test]
    fn a_failed_trial_nearby_shortens_the_reach() {
        let sampler = Bayesian::default();
        let space = unit_square();
        let mut trials = vec![ran(0.1, 0.5), ran(0.5, 0.5)];
        trials.push(Trial {
            point: vec![0.1, 0.9],
            result: None,
        });
        let reach = reaches(&sampler, &space, &trials);
        assert!(
            (reach[0] - sampler.trust_region_share * 0.4).abs() < 1e-9,
            "{reach:?}"
        );
    }

    #[test]
    fn the_least_radius_holds_until_a_rate_can_be_estimated_and_the_most_caps_it() {
        let sampler = Bayesian::default();
        let space = unit_square();
        // Alone, or beside a trial closer than the least radius: no rate is known.
        assert_eq!(reaches(&sampler, &space, &[ran(0.1, 0.5)]), [0.05]);
        assert_eq!(
            reaches(&sampler, &space, &[ran(0.1, 0.5), ran(0.11, 0.5)]),
            [0.05, 0.05]
        );
        // A constraint that never changed says nothing limits the move: the most applies.
        let flat = |x: f64| Trial {
            point: vec![x, 0.5],
            result: Some((0.0, vec![-0.5])),
        };
        assert_eq!(
            reaches(&sampler, &space, &[flat(0.1), flat(0.6)]),
            [sampler.trust_region_max; 2]
        );
        // With the most at the least, the region is the fixed ball.
        let fixed = Bayesian {
            trust_region_max: 0.05,
            ..Bayesian::default()
        };
        assert_eq!(
            reaches(&fixed, &space, &[flat(0.1), flat(0.6)]),
            [0.05, 0.05]
        );
    }
}
