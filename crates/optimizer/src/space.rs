//! How configurations are represented inside the samplers.
//!
//! A [`Point`] has one coordinate per parameter and is always on the grid:
//!
//! - an unstepped float: its position `u ∈ [0, 1]` between the bounds (on the log scale if `log`);
//! - a stepped float or an integer: the index `k` of its grid value `low + k·step`, as an exact
//!   integer in an `f64`;
//! - a categorical: the index of its choice.
//!
//! Keeping grid indices (rather than positions) makes "is this configuration already tried?" an
//! exact comparison. The Gaussian process sees [`Encoding::features`] instead: every numeric
//! parameter scaled to `[0, 1]`, every categorical one-hot, and parameters with a single possible
//! value left out (they carry no information and would only add a length scale to fit).
//!
//! Each one-hot column keeps its own length scale. One shared by a categorical's columns (the
//! overlap kernel of CASMOPOLITAN and Optuna's GPSampler: a switch costs the same whichever two
//! choices it is between) was tried on the tuning problems with categorical settings (seeds
//! 0–39, 100 trials, regret at 50) and dropped: `mixed` 0 → 0.05, `mixed-continuous` 3.6e-5 →
//! 0.046, `mixed-noisy` 0.081 → 0.1, the queues unchanged, with the length-scale prior's
//! dimension counted either way. There one garbage collector or codec is simply better, which a
//! column of its own says and a shared scale cannot.
//!
//! A longer length-scale prior for the one-hot columns alone (its mean raised by 1, so a model
//! takes a choice's effect to hold across the other settings) was measured after the held-out
//! `ackley-cat`'s searches were seen keeping an early trial's choices; there it takes regret at
//! 50 trials from 1.21 to 0.079 (seeds 0–39). On the tuning problems with categoricals (seeds
//! 0–39, regret at 50) it left `mixed`, `mixed-noisy`, `mixed-continuous` and `batch-job` about
//! as they were but cost both queues (0 → 0.3, median breaches in 50 from 5 to 6.5 and 7). For
//! the objective's model alone it kept the queues at 0 and took `mixed-noisy` to 0.072 from
//! 0.081, but raised mean breaches in 50 on four of the five by 0.15–0.7. Nothing on the tuning
//! suite then gained enough to choose it. Once `func3c` joined the tuning problems, half that
//! shift for the objective's model of a study with no constraint was (see
//! `UNCONSTRAINED_CATEGORICAL_PRIOR` in `bayesian`).
//!
//! A numeric parameter whose range is positive (CPU, memory, replicas, sizes) is scaled on the
//! log scale, both for the models and for the trust region's distances: resources act by ratios
//! (capacity is replicas × CPU per replica, a stress falls as a power of a size), so a surface
//! that is curved on the linear scale is nearly planar on the log scale, and a step from 2
//! replicas to 1 is the large move it is while 16 to 15 is a small one. Random candidates and the
//! grid stay linear. See [`Code::positive_range`] for how this was chosen.

use std::collections::HashSet;

use rand::RngExt;

use super::{Config, Domain, Observation, ParamValue, Space, SuggestError};

/// One configuration in sampler coordinates (see the module docs).
pub(crate) type Point = Vec<f64>;

/// Two unstepped float positions closer than this (a billionth of the range) are the same
/// configuration: journals round-trip floats through text, which may move them by an ulp.
///
/// Searches on a limit re-measure nearly the same configuration often: on `hartmann6-l1` (seeds
/// 0–39) 40 % of the trials after the tenth lie within 1e-3 of an earlier one. Calling positions
/// within 1e-4, 1e-3 or 3e-3 of the range the same, so those trials go elsewhere, was tried on
/// the tuning problems with continuous settings (regret at 50 trials) and lost on the designs:
/// the tubular column −2.6e-5 → 0.0015, 0.023 and 0.052, the three-bar truss 0.0047 → 0.0048,
/// 0.0072 and 0.0089, Branin 4.4e-6 → 3.2e-6, 3.3e-5 and 2e-4 (seeds 0–39); `hartmann6-l1`
/// gained only at 1e-4 (0.0014 → 0.001). On a limit, the last small steps are the regret.
const SAME_POSITION: f64 = 1e-9;

/// The share of [`Encoding::perturb`]'s moves that change one numeric setting alone (SMAC's
/// local search moves one at a time). Near an optimum where several limits and bounds meet, a
/// move of every setting at once crosses an active limit along some setting almost surely, and
/// a gain along a setting with a small effect drowns in the cost of the others' steps: on the
/// held-out speed reducer every run stalled with one shaft length 0.5 above its bound.
/// Chosen on the tuning problems (seeds 0–39, 100 trials; regret at 50 trials, before → now):
/// three-bar truss 0.019 → 0.008, tubular column 0.0015 → 0.0004, `hartmann6-l1` 0.002 →
/// 0.0007, Hartmann6 0.0012 → 0.0009, cantilever 0.0005 → 0.0004, `mixed-noisy` 0.062 → 0.081
/// (21 → 19 seeds at 0.0625 or below; the mean 0.077 → 0.078), the rest equal. Breaches in 50:
/// cantilever 6.5 → 7, `mixed-noisy` 10 → 10.5, `hartmann6-l1` 2 → 1, the rest equal. A share
/// of ¼ gained about half as much on the designs; ¾ and 1 lost on `hartmann6-l1` (0.0021,
/// 0.0037) and the cantilever; counting a categorical switch as one of the settings took
/// `mixed-noisy`'s mean to 0.095.
const ONE_SETTING_MOVES: f64 = 0.5;

#[derive(Clone, Debug)]
enum Code {
    Continuous {
        low: f64,
        high: f64,
        log: bool,
    },
    FloatGrid {
        low: f64,
        high: f64,
        step: f64,
        last: u64,
        /// Decimal places of `low` and `step`: grid values are rounded to them so a suggestion
        /// reads `0.3`, not `0.30000000000000004`.
        decimals: Option<i32>,
    },
    IntGrid {
        low: i64,
        step: i64,
        last: u64,
        log: bool,
    },
    Categorical {
        count: usize,
    },
}

impl Code {
    /// The bounds of a numeric parameter on a linear scale whose range is positive: the models
    /// and the trust region see it on the log scale (see the module docs). Chosen on the tuning
    /// problems, 100 trials, seeds 0–19 and then 20–39 (regret at 50 trials and breaches in the
    /// first 50, medians, before → after): `mixed` 0.031 → 0 in both halves, with 5.5 → 4.5 and
    /// 5 → 4 breaches; `mixed-noisy` 0.091 → 0.081 and 0.05 both, with 12.5 → 11 and 10.5 → 9.5
    /// (its reported best met the SLO in 19 and 16 of 20 runs, against 15 and 17, and the one run
    /// that breached past twice the limit no longer does); cantilever 0.0008 → 0.0004 and 0.0007
    /// → 0.0005, with 10.5 → 6 and 12 → 7; tubular column 0.003 → 0.002 and 0.003 → 0.001, with
    /// 2 → 0 and 1.5 → 0; `queue` and `queue-noisy` 0 both, with 7 → 5 and 8 → 5 in both halves.
    /// Three-bar truss lost regret, 0.005 → 0.017 and 0.005 → 0.02 (with 1 → 0 and 0.5 → 0
    /// breaches). Problems whose ranges start at 0 are unchanged. Scaling the models' inputs
    /// alone, with linear distances, did as well on the designs but left `queue`'s regret at 50
    /// trials at 0.3, against 0. An extra input for the product of the positive settings (the
    /// mean of their log-scale features, so a model can see capacity as one direction; seeds
    /// 0–19) cut `queue`'s breaches from 5 to 3 but took its regret at 50 trials from 0 to 0.3
    /// (`queue-noisy` 0 → 0.15, 5 breaches both), the cantilever's from 0.0004 to 0.0006 and
    /// `mixed-noisy`'s from 0.081 to 0.091, and was dropped.
    fn positive_range(&self) -> Option<(f64, f64)> {
        // A grid's top is its last value, which may fall short of the configured bound.
        let (low, high) = match *self {
            Code::Continuous {
                low,
                high,
                log: false,
            } => (low, high),
            Code::FloatGrid {
                low, step, last, ..
            } => (low, low + last as f64 * step),
            Code::IntGrid {
                low,
                step,
                last,
                log: false,
            } => (low as f64, low as f64 + last as f64 * step as f64),
            _ => return None,
        };
        (low > 0.0 && high > low).then_some((low, high))
    }

    /// The value at a linear code's `coordinate`.
    fn linear_value(&self, coordinate: f64) -> f64 {
        match *self {
            Code::Continuous { low, high, .. } => low + coordinate * (high - low),
            Code::FloatGrid { low, step, .. } => low + coordinate * step,
            Code::IntGrid { low, step, .. } => low as f64 + coordinate * step as f64,
            Code::Categorical { .. } => coordinate,
        }
    }

    /// The coordinate of `value` on a linear code, on the grid's nearest value.
    fn linear_coordinate(&self, value: f64) -> f64 {
        match *self {
            Code::Continuous { low, high, .. } => ((value - low) / (high - low)).clamp(0.0, 1.0),
            Code::FloatGrid {
                low, step, last, ..
            } => ((value - low) / step).round().clamp(0.0, last as f64),
            Code::IntGrid {
                low, step, last, ..
            } => ((value - low as f64) / step as f64)
                .round()
                .clamp(0.0, last as f64),
            Code::Categorical { .. } => value,
        }
    }

    /// How many values the parameter can take (`None`: a continuum).
    fn count(&self) -> Option<u64> {
        match self {
            Code::Continuous { low, high, .. } => (low == high).then_some(1),
            Code::FloatGrid { last, .. } | Code::IntGrid { last, .. } => {
                Some(last.saturating_add(1))
            }
            Code::Categorical { count } => Some(*count as u64),
        }
    }
}

/// Grids with at most this many values have their log-scale features tabulated.
const TABULATED_GRID: u64 = 4096;

/// A numeric parameter with a positive range on the log scale (see the module docs), precomputed:
/// the trust region measures many thousands of moves per suggestion.
#[derive(Clone, Debug)]
struct LogScale {
    low: f64,
    ln_ratio: f64,
    /// The feature of every grid value, for grids of at most [`TABULATED_GRID`] values.
    table: Option<Vec<f64>>,
}

impl LogScale {
    fn new(code: &Code) -> Option<Self> {
        let (low, high) = code.positive_range()?;
        let mut scale = Self {
            low,
            ln_ratio: (high / low).ln(),
            table: None,
        };
        scale.table = match *code {
            Code::FloatGrid { last, .. } | Code::IntGrid { last, .. } if last < TABULATED_GRID => {
                Some(
                    (0..=last)
                        .map(|k| scale.feature(code.linear_value(k as f64)))
                        .collect(),
                )
            }
            _ => None,
        };
        Some(scale)
    }

    fn feature(&self, value: f64) -> f64 {
        (value.max(self.low) / self.low).ln() / self.ln_ratio
    }
}

/// The sampler-side view of a [`Space`]. Build it only from a validated space.
#[derive(Clone, Debug)]
pub(crate) struct Encoding<'a> {
    space: &'a Space,
    codes: Vec<Code>,
    /// First feature column of each parameter; `None` for single-valued parameters.
    columns: Vec<Option<usize>>,
    n_features: usize,
    /// The tunable numeric parameters, in order: every move draws from them.
    numeric: Vec<usize>,
    /// The tunable continuous parameters, in order: the ones a gradient step can move.
    continuous: Vec<usize>,
    /// Per parameter, how it is put on the log scale, if it is.
    log_scales: Vec<Option<LogScale>>,
}

impl<'a> Encoding<'a> {
    pub(crate) fn new(space: &'a Space) -> Self {
        let codes: Vec<Code> = space
            .params
            .iter()
            .map(|param| match &param.domain {
                Domain::Float {
                    low,
                    high,
                    step: None,
                    log,
                } => Code::Continuous {
                    low: *low,
                    high: *high,
                    log: *log,
                },
                Domain::Float {
                    low,
                    high,
                    step: Some(step),
                    ..
                } => {
                    // A hair of slack so that e.g. [0, 1] with step 0.1 keeps 1.0 despite rounding;
                    // validation bounds the ratio to 1e12, so the cast cannot overflow.
                    let last = ((high - low) / step + 1e-9).floor().max(0.0) as u64;
                    let decimals = decimal_places(*low)
                        .zip(decimal_places(*step))
                        .map(|(a, b)| a.max(b));
                    Code::FloatGrid {
                        low: *low,
                        high: *high,
                        step: *step,
                        last,
                        decimals,
                    }
                }
                Domain::Int {
                    low,
                    high,
                    step,
                    log,
                } => {
                    let span = (i128::from(*high) - i128::from(*low)) / i128::from(*step);
                    Code::IntGrid {
                        low: *low,
                        step: *step,
                        last: u64::try_from(span).unwrap_or(u64::MAX),
                        log: *log,
                    }
                }
                Domain::Categorical { choices } => Code::Categorical {
                    count: choices.len(),
                },
            })
            .collect();
        let mut columns = Vec::with_capacity(codes.len());
        let mut n_features = 0;
        for code in &codes {
            if code.count() == Some(1) {
                columns.push(None);
            } else {
                columns.push(Some(n_features));
                n_features += match code {
                    Code::Categorical { count } => *count,
                    _ => 1,
                };
            }
        }
        let tunable = |kind: fn(&Code) -> bool| -> Vec<usize> {
            (0..codes.len())
                .filter(|&i| columns[i].is_some() && kind(&codes[i]))
                .collect()
        };
        let numeric = tunable(|c| !matches!(c, Code::Categorical { .. }));
        let continuous = tunable(|c| matches!(c, Code::Continuous { .. }));
        let log_scales = codes.iter().map(LogScale::new).collect();
        Self {
            space,
            codes,
            columns,
            n_features,
            numeric,
            continuous,
            log_scales,
        }
    }

    /// The features of `point`'s tunable continuous parameters, in order.
    pub(crate) fn continuous_features(&self, point: &[f64]) -> Vec<f64> {
        self.continuous
            .iter()
            .map(|&i| self.numeric_feature(i, point[i]))
            .collect()
    }

    /// `point` with its tunable continuous parameters at `features` (in the order of
    /// [`Self::continuous_features`], each in `[0, 1]`); the other parameters stay.
    pub(crate) fn with_continuous_features(&self, point: &[f64], features: &[f64]) -> Point {
        let mut out = point.to_vec();
        for (&i, &f) in self.continuous.iter().zip(features) {
            out[i] = self.numeric_from_feature(i, f.clamp(0.0, 1.0));
        }
        out
    }

    pub(crate) fn n_params(&self) -> usize {
        self.codes.len()
    }

    /// Parameters with more than one possible value.
    pub(crate) fn n_tunable(&self) -> usize {
        self.columns.iter().filter(|c| c.is_some()).count()
    }

    /// Whether every parameter that can move is continuous (no grid, integer or choice).
    pub(crate) fn all_continuous(&self) -> bool {
        self.continuous.len() == self.n_tunable()
    }

    /// Which of the features are a categorical's one-hot columns.
    pub(crate) fn onehot_columns(&self) -> Vec<bool> {
        let mut onehot = vec![false; self.n_features];
        for (code, column) in self.codes.iter().zip(&self.columns) {
            if let (Code::Categorical { count }, Some(col)) = (code, column) {
                onehot[*col..col + count].fill(true);
            }
        }
        onehot
    }

    /// Width of the Gaussian process's input.
    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of distinct configurations, or `None` if the space contains a continuum or more
    /// configurations than a `u64` counts.
    pub(crate) fn cardinality(&self) -> Option<u64> {
        self.codes
            .iter()
            .try_fold(1u64, |acc, code| acc.checked_mul(code.count()?))
    }

    /// The `index`-th configuration of a finite space, in mixed-radix order.
    pub(crate) fn nth(&self, mut index: u64) -> Point {
        self.codes
            .iter()
            .map(|code| {
                let count = code.count().unwrap_or(1).max(1);
                let k = index % count;
                index /= count;
                match code {
                    // A finite space's continuous parameters are single-valued: position 0.
                    Code::Continuous { .. } => 0.0,
                    _ => k as f64,
                }
            })
            .collect()
    }

    /// Whether two points are the same configuration.
    pub(crate) fn same(&self, a: &[f64], b: &[f64]) -> bool {
        self.codes
            .iter()
            .zip(a.iter().zip(b))
            .all(|(code, (x, y))| match code {
                Code::Continuous { .. } => (x - y).abs() <= SAME_POSITION,
                _ => x == y,
            })
    }

    /// Maps a point of the unit hypercube (one coordinate per parameter, e.g. from a
    /// low-discrepancy sequence) to a configuration, so that uniform input gives every grid value
    /// and choice the same chance (log-scaled parameters: uniform on the log scale).
    pub(crate) fn map_unit(&self, unit: &[f64]) -> Point {
        self.codes
            .iter()
            .zip(unit)
            .map(|(code, &u)| {
                let u = u.clamp(0.0, 1.0);
                match code {
                    Code::Continuous { low, high, .. } if low == high => 0.0,
                    Code::Continuous { .. } => u,
                    Code::FloatGrid { last, .. }
                    | Code::IntGrid {
                        last, log: false, ..
                    } => bucket(u, last.saturating_add(1)),
                    Code::IntGrid {
                        low,
                        last,
                        log: true,
                        ..
                    } => {
                        // Log-uniform over [low − ½, high + ½], then rounded: each integer gets
                        // the mass of its rounding interval on the log scale.
                        let lo = (*low as f64 - 0.5).ln();
                        let hi = (*low as f64 + *last as f64 + 0.5).ln();
                        let value = (lo + u * (hi - lo)).exp().round();
                        (value - *low as f64).clamp(0.0, *last as f64)
                    }
                    Code::Categorical { count } => bucket(u, *count as u64),
                }
            })
            .collect()
    }

    /// A uniformly random configuration (see [`Self::map_unit`]).
    pub(crate) fn sample<R: rand::Rng>(&self, rng: &mut R) -> Point {
        let unit: Vec<f64> = (0..self.codes.len()).map(|_| rng.random()).collect();
        self.map_unit(&unit)
    }

    /// A configuration near `point`: numeric parameters move by a Gaussian step of standard
    /// deviation `scale` in feature units (then snap to the grid), categoricals switch to another
    /// choice with probability `scale` (at most ½). In [`ONE_SETTING_MOVES`] of the calls, when
    /// two or more numeric parameters can move, only one of them (drawn uniformly) does and
    /// nothing else. At least one parameter changes when possible, so small scales still explore
    /// discrete neighbours.
    pub(crate) fn perturb<R: rand::Rng>(&self, point: &[f64], scale: f64, rng: &mut R) -> Point {
        let mut out = point.to_vec();
        let numeric = &self.numeric;
        let only = (numeric.len() > 1 && rng.random::<f64>() < ONE_SETTING_MOVES)
            .then(|| numeric[rng.random_range(0..numeric.len())]);
        for (i, code) in self.codes.iter().enumerate() {
            if self.columns[i].is_none() || only.is_some_and(|only| only != i) {
                continue;
            }
            out[i] = match code {
                Code::Categorical { count } => {
                    if rng.random::<f64>() < scale.min(0.5) {
                        other_choice(point[i], *count, rng)
                    } else {
                        point[i]
                    }
                }
                _ => {
                    let f = self.numeric_feature(i, point[i]);
                    let moved = (f + scale * standard_normal(rng)).clamp(0.0, 1.0);
                    self.numeric_from_feature(i, moved)
                }
            };
        }
        if self.same(&out, point) {
            self.nudge(&mut out, rng);
        }
        out
    }

    /// Moves one randomly chosen discrete parameter to a neighbouring value (or another choice);
    /// no-op when only continuous or single-valued parameters exist.
    fn nudge<R: rand::Rng>(&self, point: &mut [f64], rng: &mut R) {
        let movable: Vec<usize> = (0..self.codes.len())
            .filter(|&i| {
                self.columns[i].is_some() && !matches!(self.codes[i], Code::Continuous { .. })
            })
            .collect();
        if movable.is_empty() {
            return;
        }
        let i = movable[rng.random_range(0..movable.len())];
        point[i] = self.neighbour(i, point[i], rng);
    }

    /// Another choice of categorical parameter `i`, or a neighbouring value of grid parameter
    /// `i`, from `value` (continuous parameters stay).
    fn neighbour<R: rand::Rng>(&self, i: usize, value: f64, rng: &mut R) -> f64 {
        match self.codes[i] {
            Code::Categorical { count } => other_choice(value, count, rng),
            Code::FloatGrid { last, .. } | Code::IntGrid { last, .. } => {
                let up = value < last as f64 && (value == 0.0 || rng.random::<bool>());
                if up { value + 1.0 } else { value - 1.0 }
            }
            Code::Continuous { .. } => value,
        }
    }

    /// How far `point` moved from `anchor`, in the units of a trust region of `radius`: the
    /// Euclidean norm of every parameter's move, a numeric one in feature units. Discrete moves
    /// count in full, because they are where a small step can change behaviour a lot: a step to a
    /// neighbouring grid value counts its feature distance but at most `radius` (so a grid
    /// coarser than the region can still be walked, one parameter at a time), a categorical
    /// switch counts `radius` (it is taken alone: no distance in the encoding says how different
    /// two choices behave). A region bounding each parameter on its own (a box) let every
    /// parameter move by the radius at once, and those moves compound.
    pub(crate) fn move_size(&self, point: &[f64], anchor: &[f64], radius: f64) -> f64 {
        (0..self.codes.len())
            .map(|i| self.param_move(i, point, anchor, radius).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// Parameter `i`'s share of [`Self::move_size`].
    fn param_move(&self, i: usize, point: &[f64], anchor: &[f64], radius: f64) -> f64 {
        if self.columns[i].is_none() || point[i] == anchor[i] {
            return 0.0;
        }
        let gap = || (self.numeric_feature(i, point[i]) - self.numeric_feature(i, anchor[i])).abs();
        match self.codes[i] {
            Code::Categorical { .. } => radius,
            Code::Continuous { .. } => gap(),
            // A step to a neighbouring grid value counts at most the radius (see `move_size`).
            _ if (point[i] - anchor[i]).abs() <= 1.0 => gap().min(radius),
            _ => gap(),
        }
    }

    /// Whether `point` lies within the trust region of `radius` around `anchor` (see
    /// [`Self::move_size`]).
    pub(crate) fn within(&self, point: &[f64], anchor: &[f64], radius: f64) -> bool {
        // Stops at the first parameters that already move too far: most anchors a candidate is
        // tested against are far from it, and the test runs for thousands of candidates.
        let limit = (radius * (1.0 + 1e-9) + 1e-12).powi(2);
        let mut sum = 0.0;
        let (mut moved, mut filled) = (0, false);
        for i in 0..self.codes.len() {
            let size = self.param_move(i, point, anchor, radius);
            if size > 0.0 {
                // A discrete move that counts the whole radius is taken alone, exactly: the
                // rounding allowance of `limit` is for numeric moves, not for one beside it.
                moved += 1;
                filled |= size == radius && !matches!(self.codes[i], Code::Continuous { .. });
                if filled && moved > 1 {
                    return false;
                }
            }
            sum += size.powi(2);
            if sum > limit {
                return false;
            }
        }
        true
    }

    /// The tunable categorical parameters with a choice to switch to.
    fn switchable(&self) -> Vec<usize> {
        (0..self.codes.len())
            .filter(|&i| {
                self.columns[i].is_some()
                    && matches!(self.codes[i], Code::Categorical { count } if count >= 2)
            })
            .collect()
    }

    /// The tunable parameters a discrete move changes: categoricals with a choice to switch to,
    /// and grid parameters whose one step is coarser than `radius` (a finer grid is walked by the
    /// numeric moves).
    fn discretely_movable(&self, radius: f64) -> Vec<usize> {
        (0..self.codes.len())
            .filter(|&i| {
                self.columns[i].is_some()
                    && match self.codes[i] {
                        Code::Categorical { count } => count >= 2,
                        Code::FloatGrid { last, .. } | Code::IntGrid { last, .. } if last >= 1 => {
                            let step = |k: f64| self.numeric_feature(i, k);
                            (step(1.0) - step(0.0))
                                .abs()
                                .max((step(last as f64) - step(last as f64 - 1.0)).abs())
                                > radius
                        }
                        _ => false,
                    }
            })
            .collect()
    }

    /// A random configuration within `radius` of `anchor` (see [`Self::move_size`]): with
    /// probability `switch` one discrete parameter moves (a categorical to another choice, or a
    /// grid coarser than the region to a neighbouring value) and nothing else does, the only way
    /// such a move stays inside; otherwise the numeric parameters move uniformly within the ball
    /// around it, snapped to the grid.
    pub(crate) fn sample_near<R: rand::Rng>(
        &self,
        anchor: &[f64],
        radius: f64,
        switch: f64,
        rng: &mut R,
    ) -> Point {
        let movable = self.discretely_movable(radius);
        if !movable.is_empty() && rng.random::<f64>() < switch {
            let mut out = self.snap(anchor);
            let i = movable[rng.random_range(0..movable.len())];
            out[i] = self.neighbour(i, out[i], rng);
            return out;
        }
        let numeric = &self.numeric;
        let direction: Vec<f64> = numeric.iter().map(|_| standard_normal(rng)).collect();
        let norm = direction.iter().map(|v| v * v).sum::<f64>().sqrt();
        // Uniform in the ball: the radius fraction is U^(1/k) for k dimensions.
        let length = radius * rng.random::<f64>().powf(1.0 / numeric.len().max(1) as f64);
        let offsets: Vec<f64> = direction
            .iter()
            .map(|v| if norm > 0.0 { v / norm * length } else { 0.0 })
            .collect();
        self.move_from(anchor, &offsets, radius)
    }

    /// [`Self::map_unit`] into the trust region of `radius` around `anchor`, for a space-filling
    /// design around it: the first categorical parameter whose coordinate is in the upper half of
    /// the unit interval switches to the choice that coordinate spreads to, and then nothing else
    /// moves; otherwise numeric parameters spread over the box of half-width `radius`, pulled into
    /// the ball where the box pokes out of it, and snapped to the grid.
    pub(crate) fn map_unit_near(&self, unit: &[f64], anchor: &[f64], radius: f64) -> Point {
        for i in self.switchable() {
            let u = unit[i].clamp(0.0, 1.0);
            if let Code::Categorical { count } = self.codes[i]
                && u >= 0.5
            {
                let choice = bucket(2.0 * u - 1.0, count as u64 - 1);
                let mut out = self.snap(anchor);
                out[i] = if choice >= anchor[i] {
                    choice + 1.0
                } else {
                    choice
                };
                return out;
            }
        }
        let mut offsets: Vec<f64> = self
            .numeric
            .iter()
            .map(|&i| radius * (2.0 * unit[i].clamp(0.0, 1.0) - 1.0))
            .collect();
        let norm = offsets.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > radius {
            offsets.iter_mut().for_each(|v| *v *= radius / norm);
        }
        self.move_from(anchor, &offsets, radius)
    }

    /// `anchor` with the numeric parameters moved by `offsets` (feature units, in their order) and
    /// snapped to the grid; when snapping lands outside the region, the move is halved until it
    /// does not (down to the anchor's own grid point).
    fn move_from(&self, anchor: &[f64], offsets: &[f64], radius: f64) -> Point {
        let mut scale = 1.0;
        loop {
            let mut out = self.snap(anchor);
            for (&i, offset) in self.numeric.iter().zip(offsets) {
                let f = self.numeric_feature(i, anchor[i]);
                out[i] = self.numeric_from_feature(i, (f + scale * offset).clamp(0.0, 1.0));
            }
            if scale < 1e-3 || self.within(&out, anchor, radius) {
                return out;
            }
            scale *= 0.5;
        }
    }

    /// The grid point nearest to `point` (an off-grid position, such as a baseline measured as it
    /// was running, rounds to a grid index).
    fn snap(&self, point: &[f64]) -> Point {
        self.codes
            .iter()
            .zip(point)
            .map(|(code, &x)| match code {
                Code::FloatGrid { last, .. } | Code::IntGrid { last, .. } => {
                    x.round().clamp(0.0, *last as f64)
                }
                _ => x,
            })
            .collect()
    }

    /// For each parameter, which of its categorical choices some of `points` takes (empty for
    /// numeric parameters).
    pub(crate) fn choices_seen<'p>(
        &self,
        points: impl Iterator<Item = &'p Point>,
    ) -> Vec<Vec<bool>> {
        let mut seen: Vec<Vec<bool>> = self
            .codes
            .iter()
            .map(|code| match code {
                Code::Categorical { count } => vec![false; *count],
                _ => Vec::new(),
            })
            .collect();
        for point in points {
            for (i, choices) in seen.iter_mut().enumerate() {
                if let Some(flag) = choices.get_mut(point[i] as usize) {
                    *flag = true;
                }
            }
        }
        seen
    }

    /// Whether `point` takes a categorical choice that [`Self::choices_seen`] did not see.
    pub(crate) fn takes_unseen_choice(&self, point: &[f64], seen: &[Vec<bool>]) -> bool {
        seen.iter().zip(point).any(|(choices, &x)| {
            !choices.is_empty() && !choices.get(x as usize).copied().unwrap_or(false)
        })
    }

    /// Writes the Gaussian-process input of `point` into `out` (length [`Self::n_features`]).
    pub(crate) fn features(&self, point: &[f64], out: &mut [f64]) {
        for (i, code) in self.codes.iter().enumerate() {
            let Some(col) = self.columns[i] else { continue };
            match code {
                Code::Categorical { count } => {
                    out[col..col + count].fill(0.0);
                    out[col + point[i] as usize] = 1.0;
                }
                _ => out[col] = self.numeric_feature(i, point[i]),
            }
        }
    }

    /// Parameter `i`'s coordinate as a feature in `[0, 1]`.
    fn numeric_feature(&self, i: usize, coordinate: f64) -> f64 {
        let code = &self.codes[i];
        if let Some(scale) = &self.log_scales[i] {
            // An off-grid baseline has a fractional coordinate: the table only has grid values.
            let k = coordinate as usize;
            return match &scale.table {
                Some(table) if k as f64 == coordinate && k < table.len() => table[k],
                _ => scale.feature(code.linear_value(coordinate)),
            };
        }
        match code {
            Code::Continuous { .. } => coordinate,
            Code::FloatGrid { last, .. }
            | Code::IntGrid {
                last, log: false, ..
            } => coordinate / (*last).max(1) as f64,
            Code::IntGrid {
                low,
                last,
                log: true,
                ..
            } => {
                let (lo, hi) = ((*low as f64).ln(), (*low as f64 + *last as f64).ln());
                ((*low as f64 + coordinate).ln() - lo) / (hi - lo)
            }
            Code::Categorical { .. } => coordinate,
        }
    }

    /// Inverse of [`Self::numeric_feature`], snapping to the nearest grid value.
    fn numeric_from_feature(&self, i: usize, feature: f64) -> f64 {
        let code = &self.codes[i];
        if let Some(scale) = &self.log_scales[i] {
            return code.linear_coordinate(scale.low * (feature * scale.ln_ratio).exp());
        }
        match code {
            Code::Continuous { .. } => feature,
            Code::FloatGrid { last, .. }
            | Code::IntGrid {
                last, log: false, ..
            } => (feature * *last as f64).round(),
            Code::IntGrid {
                low,
                last,
                log: true,
                ..
            } => {
                let (lo, hi) = ((*low as f64).ln(), (*low as f64 + *last as f64).ln());
                ((lo + feature * (hi - lo)).exp().round() - *low as f64).clamp(0.0, *last as f64)
            }
            Code::Categorical { .. } => feature,
        }
    }

    /// The configuration a point stands for.
    pub(crate) fn decode(&self, point: &[f64]) -> Config {
        let choices = self.space.params.iter().map(|param| match &param.domain {
            Domain::Categorical { choices } => choices.as_slice(),
            _ => &[],
        });
        self.codes
            .iter()
            .zip(point)
            .zip(choices)
            .map(|((code, &x), choices)| match code {
                Code::Continuous { low, high, log } => {
                    let value = if *log {
                        (low.ln() + x * (high.ln() - low.ln())).exp()
                    } else {
                        low + x * (high - low)
                    };
                    ParamValue::Float(value.clamp(*low, *high))
                }
                Code::FloatGrid {
                    low,
                    high,
                    step,
                    decimals,
                    ..
                } => {
                    let raw = low + x * step;
                    let value = match decimals {
                        Some(d) => round_to_decimals(raw, *d),
                        None => raw,
                    };
                    ParamValue::Float(value.clamp(*low, *high))
                }
                Code::IntGrid { low, step, .. } => {
                    let value = i128::from(*low) + (x as i128) * i128::from(*step);
                    ParamValue::Int(i64::try_from(value).unwrap_or(i64::MAX))
                }
                Code::Categorical { .. } => {
                    ParamValue::Categorical(choices.get(x as usize).cloned().unwrap_or_default())
                }
            })
            .collect()
    }

    /// The point of a configuration, or `None` when it does not belong to this space (wrong
    /// length, a value out of range, an unknown choice). Off-grid values inside the range snap to
    /// the nearest grid value.
    #[cfg(test)]
    pub(crate) fn encode(&self, config: &Config) -> Option<Point> {
        let (point, _) = self.position(config)?;
        Some(
            self.codes
                .iter()
                .zip(point)
                .map(|(code, x)| match code {
                    Code::FloatGrid { .. } | Code::IntGrid { .. } => x.round(),
                    _ => x,
                })
                .collect(),
        )
    }

    /// Where a configuration lies, without snapping: an off-grid value of a grid parameter gets a
    /// fractional index, so the models see it where it was measured. The flag says whether every
    /// value is on the grid; an off-grid configuration (typically the baseline, which is whatever
    /// was running) is not a grid point that has been tried.
    pub(crate) fn position(&self, config: &Config) -> Option<(Point, bool)> {
        let raw = self.unsnapped(config)?;
        let mut on_grid = true;
        let point = self
            .codes
            .iter()
            .zip(raw)
            .map(|(code, k)| match code {
                Code::FloatGrid { last, .. } | Code::IntGrid { last, .. } => {
                    let last = *last as f64;
                    if (k - k.round()).abs() <= 1e-9 && (0.0..=last).contains(&k.round()) {
                        k.round()
                    } else {
                        on_grid = false;
                        k.clamp(0.0, last)
                    }
                }
                _ => k,
            })
            .collect();
        Some((point, on_grid))
    }

    fn unsnapped(&self, config: &Config) -> Option<Point> {
        if config.len() != self.codes.len() {
            return None;
        }
        self.codes
            .iter()
            .zip(config)
            .zip(&self.space.params)
            .map(|((code, value), param)| match (code, value) {
                (Code::Categorical { .. }, ParamValue::Categorical(name)) => {
                    let Domain::Categorical { choices } = &param.domain else {
                        return None;
                    };
                    choices.iter().position(|c| c == name).map(|k| k as f64)
                }
                (Code::Categorical { .. }, _) | (_, ParamValue::Categorical(_)) => None,
                (Code::Continuous { low, high, log }, value) => {
                    let v = numeric(value)?;
                    let magnitude = (high - low).max(low.abs()).max(high.abs());
                    let slack = SAME_POSITION * magnitude.max(f64::MIN_POSITIVE);
                    if !(low - slack..=high + slack).contains(&v) {
                        return None;
                    }
                    if low == high {
                        return Some(0.0);
                    }
                    let v = v.clamp(*low, *high);
                    Some(if *log {
                        (v.ln() - low.ln()) / (high.ln() - low.ln())
                    } else {
                        (v - low) / (high - low)
                    })
                }
                (
                    Code::FloatGrid {
                        low, high, step, ..
                    },
                    value,
                ) => {
                    let v = numeric(value)?;
                    let slack = SAME_POSITION * (high - low).max(*step);
                    if !(low - slack..=high + slack).contains(&v) {
                        return None;
                    }
                    Some((v - low) / step)
                }
                (
                    Code::IntGrid {
                        low, step, last, ..
                    },
                    value,
                ) => {
                    let v = numeric(value)?;
                    let k = (v - *low as f64) / *step as f64;
                    (0.0..=*last as f64).contains(&k.round()).then_some(k)
                }
            })
            .collect()
    }
}

/// Questions about the history: what was tried, what is left.
impl Encoding<'_> {
    /// The grid points tried: every observation that fits this space, whatever its outcome,
    /// except off-grid ones (see [`Self::position`]), which tried no grid point.
    pub(crate) fn observed(&self, history: &[Observation]) -> Vec<Point> {
        history
            .iter()
            .filter_map(|obs| self.position(&obs.config))
            .filter_map(|(point, on_grid)| on_grid.then_some(point))
            .collect()
    }

    /// Whether `point` differs from every observed point.
    pub(crate) fn is_new(&self, point: &[f64], observed: &[Point]) -> bool {
        observed.iter().all(|seen| !self.same(point, seen))
    }

    /// Fails with [`SuggestError::Exhausted`] when every configuration of a finite space has been
    /// observed.
    pub(crate) fn check_not_exhausted(&self, observed: &[Point]) -> Result<(), SuggestError> {
        match self.cardinality() {
            Some(count) if count <= observed.len() as u64 => {
                let distinct: HashSet<u64> = observed.iter().map(|p| self.index_of(p)).collect();
                if distinct.len() as u64 >= count {
                    return Err(SuggestError::Exhausted { count });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Position of a point of a finite space in [`Self::nth`] order.
    fn index_of(&self, point: &[f64]) -> u64 {
        let mut index = 0u64;
        let mut radix = 1u64;
        for (code, &k) in self.codes.iter().zip(point) {
            let count = code.count().unwrap_or(1);
            let k = match code {
                Code::Continuous { .. } => 0,
                _ => k as u64,
            };
            index = index.wrapping_add(k.wrapping_mul(radix));
            radix = radix.wrapping_mul(count);
        }
        index
    }

    /// Every unobserved configuration of a finite space, when there are at most `limit` of them.
    pub(crate) fn unobserved(&self, observed: &[Point], limit: usize) -> Option<Vec<Point>> {
        let count = self.cardinality()?;
        let distinct: HashSet<u64> = observed.iter().map(|p| self.index_of(p)).collect();
        let remaining = count.saturating_sub(distinct.len() as u64);
        if remaining > limit as u64 {
            return None;
        }
        Some(
            (0..count)
                .filter(|i| !distinct.contains(i))
                .map(|i| self.nth(i))
                .collect(),
        )
    }

    /// A uniformly random configuration not yet observed. Call only after
    /// [`Self::check_not_exhausted`]; returns `None` if, against that, nothing is left.
    pub(crate) fn random_new<R: rand::Rng>(
        &self,
        observed: &[Point],
        rng: &mut R,
    ) -> Option<Point> {
        for _ in 0..RANDOM_TRIES {
            let point = self.sample(rng);
            if self.is_new(&point, observed) {
                return Some(point);
            }
        }
        // Hundreds of collisions mean the (then necessarily finite and small) space is nearly
        // exhausted: list what is left and pick from it.
        let left = self.unobserved(observed, usize::MAX)?;
        if left.is_empty() {
            return None;
        }
        let pick = rng.random_range(0..left.len());
        left.into_iter().nth(pick)
    }
}

/// Random draws tried before enumerating what is left of a finite space.
const RANDOM_TRIES: usize = 256;

/// The numeric content of a value: integers are accepted for float parameters and integral
/// floats for integer ones (JSON and YAML round trips blur the two).
fn numeric(value: &ParamValue) -> Option<f64> {
    match value {
        ParamValue::Float(v) if v.is_finite() => Some(*v),
        ParamValue::Int(v) => Some(*v as f64),
        _ => None,
    }
}

/// `floor(u·count)` clamped to a valid index.
fn bucket(u: f64, count: u64) -> f64 {
    let last = count.saturating_sub(1) as f64;
    (u * count as f64).floor().clamp(0.0, last)
}

/// A uniformly chosen index in `0..count` other than `current` (requires `count >= 2`).
fn other_choice<R: rand::Rng>(current: f64, count: usize, rng: &mut R) -> f64 {
    let k = rng.random_range(0..count - 1) as f64;
    if k >= current { k + 1.0 } else { k }
}

/// A standard normal draw (Box–Muller), to avoid a dependency for one distribution.
pub(crate) fn standard_normal<R: rand::Rng>(rng: &mut R) -> f64 {
    // 1 − U is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Digits after the decimal point in the shortest representation of `x` (`None` if it needs an
/// exponent or more than 15 digits, where rounding would lose information).
fn decimal_places(x: f64) -> Option<i32> {
    let text = format!("{x}");
    if text.contains(['e', 'E']) {
        return None;
    }
    let places = text.split_once('.').map_or(0, |(_, frac)| frac.len());
    (places <= 15).then_some(places as i32)
}

/// Rounds to `decimals` places. Both `m` and `10^decimals` are exact doubles, so the division is
/// correctly rounded and yields the same double as parsing the decimal text.
fn round_to_decimals(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let m = (x * scale).round();
    if m.abs() < 9.0e15 { m / scale } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Param;
    use rand::SeedableRng;

    fn mixed_space() -> Space {
        Space::new(vec![
            Param::new(
                "cpu",
                Domain::Float {
                    low: 0.1,
                    high: 1.0,
                    step: Some(0.1),
                    log: false,
                },
            ),
            Param::new(
                "replicas",
                Domain::Int {
                    low: 2,
                    high: 11,
                    step: 3,
                    log: false,
                },
            ),
            Param::new(
                "gc",
                Domain::Categorical {
                    choices: vec!["serial".into(), "g1".into()],
                },
            ),
            Param::new(
                "ratio",
                Domain::Float {
                    low: 1e-3,
                    high: 10.0,
                    step: None,
                    log: true,
                },
            ),
            Param::new(
                "fixed",
                Domain::Int {
                    low: 5,
                    high: 5,
                    step: 1,
                    log: false,
                },
            ),
        ])
    }

    #[test]
    fn grid_values_are_exact_decimals_and_in_range() {
        let space = mixed_space();
        let enc = Encoding::new(&space);
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            let config = enc.decode(&enc.sample(&mut rng));
            let ParamValue::Float(cpu) = config[0] else {
                panic!("cpu decoded as {:?}", config[0]);
            };
            assert!((0.1..=1.0).contains(&cpu), "{cpu} out of range");
            assert_eq!(
                cpu,
                (cpu * 10.0).round() / 10.0,
                "{cpu} is not a clean tenth"
            );
            let ParamValue::Int(replicas) = config[1] else {
                panic!("replicas decoded as {:?}", config[1]);
            };
            assert!([2, 5, 8, 11].contains(&replicas), "{replicas}");
            let ParamValue::Float(ratio) = config[3] else {
                panic!("ratio decoded as {:?}", config[3]);
            };
            assert!((1e-3..=10.0).contains(&ratio));
            assert_eq!(config[4], ParamValue::Int(5));
        }
    }

    #[test]
    fn encode_snaps_off_grid_values_and_rejects_foreign_ones() {
        let space = mixed_space();
        let enc = Encoding::new(&space);
        let config = vec![
            ParamValue::Float(0.33),
            ParamValue::Float(8.0),
            ParamValue::Categorical("g1".into()),
            ParamValue::Int(1),
            ParamValue::Int(5),
        ];
        let point = enc.encode(&config).expect("every value is in range");
        assert_eq!(&point[..3], &[2.0, 2.0, 1.0]);
        let decoded = enc.decode(&point);
        assert_eq!(decoded[0], ParamValue::Float(0.3));
        assert_eq!(decoded[1], ParamValue::Int(8));
        match decoded[3] {
            ParamValue::Float(v) => assert!((v - 1.0).abs() < 1e-12),
            ref other => panic!("ratio decoded as {other:?}"),
        }

        let mut bad = config.clone();
        bad[2] = ParamValue::Categorical("zgc".into());
        assert!(enc.encode(&bad).is_none(), "unknown choice");
        let mut bad = config.clone();
        bad[1] = ParamValue::Int(14);
        assert!(enc.encode(&bad).is_none(), "out of range");
        assert!(enc.encode(&config[..4].to_vec()).is_none(), "wrong length");
    }

    #[test]
    fn a_space_is_all_continuous_when_every_setting_that_moves_is() {
        let mixed = mixed_space();
        assert!(!Encoding::new(&mixed).all_continuous());
        // The ratio is continuous and `fixed` cannot move: nothing else counts.
        let continuous = Space::new(vec![mixed.params[3].clone(), mixed.params[4].clone()]);
        assert!(Encoding::new(&continuous).all_continuous());
        // One grid setting beside it is enough to keep the coarser moves.
        let with_grid = Space::new(vec![mixed.params[3].clone(), mixed.params[1].clone()]);
        assert!(!Encoding::new(&with_grid).all_continuous());
    }

    #[test]
    fn features_scale_to_the_unit_cube_and_skip_fixed_parameters() {
        let space = mixed_space();
        let enc = Encoding::new(&space);
        // cpu, replicas, gc one-hot (2), ratio; `fixed` has no column.
        assert_eq!(enc.n_features(), 5);
        assert_eq!(enc.onehot_columns(), [false, false, true, true, false]);
        let mut out = vec![f64::NAN; 5];
        enc.features(&[9.0, 1.0, 0.0, 0.25, 0.0], &mut out);
        // Replicas 5 of 2..=11, on the log scale (a positive range).
        let replicas = (5.0f64 / 2.0).ln() / (11.0f64 / 2.0).ln();
        assert_eq!(out, vec![1.0, replicas, 1.0, 0.0, 0.25]);
    }

    #[test]
    fn positive_ranges_are_scaled_by_ratio_and_others_linearly() {
        let int = |name: &str, low, high| {
            Param::new(
                name,
                Domain::Int {
                    low,
                    high,
                    step: 1,
                    log: false,
                },
            )
        };
        let space = Space::new(vec![int("replicas", 1, 16), int("offset", -8, 8)]);
        let enc = Encoding::new(&space);
        let distance = |a: [f64; 2], b: [f64; 2]| enc.move_size(&a, &b, 1.0);
        // Halving the replicas is the same move wherever it happens; one replica fewer is a
        // larger move at 2 than at 16. The offset's steps are all alike.
        let halving = distance([15.0, 0.0], [7.0, 0.0]);
        assert!((distance([7.0, 0.0], [3.0, 0.0]) - halving).abs() < 1e-12);
        assert!((halving - 0.25).abs() < 1e-12, "{halving}");
        assert!(distance([1.0, 0.0], [0.0, 0.0]) > 5.0 * distance([15.0, 0.0], [14.0, 0.0]));
        assert_eq!(distance([0.0, 1.0], [0.0, 0.0]), 1.0 / 16.0);
        assert_eq!(distance([0.0, 16.0], [0.0, 15.0]), 1.0 / 16.0);
        // Features and moves agree, and a move lands back on the grid.
        let mut out = [0.0; 2];
        enc.features(&[3.0, 8.0], &mut out);
        assert_eq!(out, [0.5, 0.5]);
        assert_eq!(enc.numeric_from_feature(0, 0.5), 3.0);
        assert_eq!(enc.numeric_from_feature(0, 0.49), 3.0);
        // Between grid values (an off-grid baseline), on the same scale.
        enc.features(&[2.5, 8.0], &mut out);
        assert!((out[0] - 3.5f64.ln() / 16f64.ln()).abs() < 1e-12, "{out:?}");
    }

    #[test]
    fn cardinality_counts_finite_spaces_only() {
        let space = mixed_space();
        assert_eq!(Encoding::new(&space).cardinality(), None);
        let finite = Space::new(space.params[..3].to_vec());
        let enc = Encoding::new(&finite);
        assert_eq!(enc.cardinality(), Some(10 * 4 * 2));
        let all: Vec<Point> = (0..80).map(|i| enc.nth(i)).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(!enc.same(a, b), "{a:?} enumerated twice");
            }
        }
    }

    #[test]
    fn the_trust_region_bounds_the_whole_move_and_counts_discrete_steps() {
        // cpu: 10 grid values (a step is 1/9 of the range); replicas: 4 values (1/3); gc: 2
        // choices; ratio continuous.
        let space = mixed_space();
        let enc = Encoding::new(&space);
        let r = 0.1;
        let anchor = vec![4.0, 1.0, 0.0, 0.5, 0.0];
        let moved = |changes: &[(usize, f64)]| {
            let mut p = anchor.clone();
            for &(i, x) in changes {
                p[i] = x;
            }
            p
        };
        // One step of a grid coarser than the region is allowed, alone.
        assert!(enc.within(&moved(&[(1, 2.0)]), &anchor, r));
        assert!(!enc.within(&moved(&[(1, 3.0)]), &anchor, r), "two steps");
        assert!(
            !enc.within(&moved(&[(1, 2.0), (0, 5.0)]), &anchor, r),
            "two grid steps at once"
        );
        assert!(
            !enc.within(&moved(&[(1, 2.0), (3, 0.52)]), &anchor, r),
            "a step and a move"
        );
        // A categorical switch is allowed alone, never with another move, however small.
        assert!(enc.within(&moved(&[(2, 1.0)]), &anchor, r));
        assert!(!enc.within(&moved(&[(2, 1.0), (3, 0.51)]), &anchor, r));
        assert!(!enc.within(&moved(&[(2, 1.0), (3, 0.5 + 1e-7)]), &anchor, r));
        assert!(!enc.within(&moved(&[(1, 2.0), (3, 0.5 - 1e-7)]), &anchor, r));
        assert!(enc.within(&moved(&[(3, 0.6 - 1e-7)]), &anchor, r));
        // Moves add up: each within the radius, together not.
        assert!(enc.within(&moved(&[(3, 0.59)]), &anchor, r));
        assert!(!enc.within(&moved(&[(3, 0.59), (0, 5.0)]), &anchor, r));

        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(3);
        let (mut switched, mut replica_steps) = (0, 0);
        for _ in 0..500 {
            let p = enc.sample_near(&anchor, r, 0.2, &mut rng);
            assert!(
                enc.within(&p, &anchor, r),
                "{p:?} sampled outside the region"
            );
            assert!(
                enc.encode(&enc.decode(&p))
                    .is_some_and(|q| enc.same(&p, &q))
            );
            switched += usize::from(p[2] != anchor[2]);
            replica_steps += usize::from(p[1] != anchor[1]);
            let unit: Vec<f64> = (0..5).map(|_| rng.random()).collect();
            let q = enc.map_unit_near(&unit, &anchor, r);
            assert!(
                enc.within(&q, &anchor, r),
                "{q:?} mapped outside the region"
            );
        }
        // A fifth of the draws move one discrete parameter alone, shared among the gc switch and
        // the steps of the two grids coarser than the region (cpu's can also come from the ball).
        // Without these draws, a replica step (a third of the range) would never be proposed.
        assert!(
            (15..60).contains(&switched),
            "{switched} switches in 500 draws"
        );
        assert!(
            (15..60).contains(&replica_steps),
            "{replica_steps} replica steps in 500 draws"
        );
    }

    #[test]
    fn half_the_perturbations_move_one_numeric_setting_alone() {
        let space = Space::new(
            (0..4)
                .map(|i| {
                    Param::new(
                        format!("x{i}"),
                        Domain::Float {
                            low: 0.0,
                            high: 1.0,
                            step: None,
                            log: false,
                        },
                    )
                })
                .chain([Param::new(
                    "gc",
                    Domain::Categorical {
                        choices: vec!["serial".into(), "g1".into()],
                    },
                )])
                .collect(),
        );
        let enc = Encoding::new(&space);
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(3);
        let start = vec![0.5, 0.5, 0.5, 0.5, 0.0];
        let (mut alone, mut all, mut switched) = (0, 0, 0);
        let mut moved_alone = [0; 4];
        for _ in 0..1000 {
            let moved = enc.perturb(&start, 0.1, &mut rng);
            let changed: Vec<usize> = (0..4).filter(|&i| moved[i] != start[i]).collect();
            switched += usize::from(moved[4] != start[4]);
            match changed.len() {
                1 if moved[4] == start[4] => {
                    alone += 1;
                    moved_alone[changed[0]] += 1;
                }
                4 => all += 1,
                _ => {}
            }
        }
        // A categorical switches with probability `scale` in the other half only.
        assert!(
            (400..600).contains(&alone),
            "{alone} moves of one setting alone"
        );
        assert!((400..600).contains(&all), "{all} moves of every setting");
        assert!((20..80).contains(&switched), "{switched} switches");
        assert!(
            moved_alone.iter().all(|n| (70..180).contains(n)),
            "each setting is the one moved about as often: {moved_alone:?}"
        );
    }

    #[test]
    fn perturbation_changes_a_discrete_space_point_even_at_tiny_scale() {
        let finite = Space::new(mixed_space().params[..3].to_vec());
        let enc = Encoding::new(&finite);
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
        let start = vec![4.0, 1.0, 0.0];
        for _ in 0..50 {
            let moved = enc.perturb(&start, 1e-6, &mut rng);
            assert!(!enc.same(&moved, &start));
            assert!(enc.encode(&enc.decode(&moved)).is_some());
        }
    }
}
