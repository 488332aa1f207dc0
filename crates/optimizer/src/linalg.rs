//! The little dense linear algebra a Gaussian process needs: Cholesky factorization of a
//! symmetric positive-definite matrix, triangular solves, the inverses of the factor and of the
//! matrix, and an exponential for the kernel.
//!
//! Matrices are row-major `Vec<f64>` of size `n × n`. Every inner loop runs over contiguous rows
//! (the factor is kept lower-triangular row-major, and its inverse is built row by row as the
//! upper-triangular `L⁻ᵀ`) because these loops dominate the optimizer's run time, and `n` stays in
//! the low hundreds.
//!
//! A single [`dot`] is bound by the latency of its four running sums, not by arithmetic. The
//! factorization, the solves and the inverse therefore take four rows at a time against one shared
//! vector ([`dot4`]): sixteen independent sums, and the shared vector read once. Each of the four
//! is summed in exactly the order [`dot`] sums it, so the results are the same to the last bit as
//! row-by-row code (a suggestion depends on them through long chains of comparisons).

/// `Σ a[i]·b[i]` over the common length.
///
/// Written as a `while` loop over four accumulators on purpose: this is the innermost loop of
/// every factorization, and in unoptimized (debug) builds iterator adaptors and `Range::next` are
/// real function calls that make it several times slower. Four independent sums also let
/// optimized builds overlap the additions.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut sums = [0.0; 4];
    let mut i = 0;
    while i + 4 <= n {
        sums[0] += a[i] * b[i];
        sums[1] += a[i + 1] * b[i + 1];
        sums[2] += a[i + 2] * b[i + 2];
        sums[3] += a[i + 3] * b[i + 3];
        i += 4;
    }
    while i < n {
        sums[0] += a[i] * b[i];
        i += 1;
    }
    (sums[0] + sums[1]) + (sums[2] + sums[3])
}

/// The four running sums [`dot`] keeps for each of `rows` against `b` (over `b.len()`, which no
/// row may be shorter than): chunks of four go to sums 0–3, the remainder to sum 0, in order.
/// Always inlined: returned through memory, the sums cost a store-forwarding stall per call.
#[inline(always)]
fn dot4_sums(rows: [&[f64]; 4], b: &[f64]) -> [[f64; 4]; 4] {
    let n = b.len();
    let [r0, r1, r2, r3] = rows.map(|r| &r[..n]);
    let mut s = [[0.0; 4]; 4];
    let mut i = 0;
    while i + 4 <= n {
        let (b0, b1, b2, b3) = (b[i], b[i + 1], b[i + 2], b[i + 3]);
        s[0][0] += r0[i] * b0;
        s[0][1] += r0[i + 1] * b1;
        s[0][2] += r0[i + 2] * b2;
        s[0][3] += r0[i + 3] * b3;
        s[1][0] += r1[i] * b0;
        s[1][1] += r1[i + 1] * b1;
        s[1][2] += r1[i + 2] * b2;
        s[1][3] += r1[i + 3] * b3;
        s[2][0] += r2[i] * b0;
        s[2][1] += r2[i + 1] * b1;
        s[2][2] += r2[i + 2] * b2;
        s[2][3] += r2[i + 3] * b3;
        s[3][0] += r3[i] * b0;
        s[3][1] += r3[i + 1] * b1;
        s[3][2] += r3[i + 2] * b2;
        s[3][3] += r3[i + 3] * b3;
        i += 4;
    }
    while i < n {
        s[0][0] += r0[i] * b[i];
        s[1][0] += r1[i] * b[i];
        s[2][0] += r2[i] * b[i];
        s[3][0] += r3[i] * b[i];
        i += 1;
    }
    s
}

/// [`dot`]'s final sum of its four running sums.
#[inline]
fn combine(s: [f64; 4]) -> f64 {
    (s[0] + s[1]) + (s[2] + s[3])
}

/// `[dot(rows[0], b), …, dot(rows[3], b)]` over `b.len()`, bit for bit.
#[inline]
pub(crate) fn dot4(rows: [&[f64]; 4], b: &[f64]) -> [f64; 4] {
    dot4_sums(rows, b).map(combine)
}

/// `‖M·x‖²` for a lower-triangular `M` (row-major `n × n` for `n = x.len()`, zeros above the
/// diagonal), or `None` as soon as `enough` holds for a partial sum: the sum's terms are squares,
/// so every partial sum is at most the whole. Four rows at a time, each over its block's columns
/// (the zeros past a row's diagonal add nothing).
pub(crate) fn lower_norm2_unless(
    m: &[f64],
    x: &[f64],
    enough: impl Fn(f64) -> bool,
) -> Option<f64> {
    let n = x.len();
    debug_assert_eq!(m.len(), n * n);
    let mut sum = 0.0;
    let mut i0 = 0;
    while i0 + 4 <= n {
        let len = i0 + 4;
        let rows = [0, 1, 2, 3].map(|t| &m[(i0 + t) * n..(i0 + t) * n + len]);
        let v = dot4(rows, &x[..len]);
        sum += (v[0] * v[0] + v[1] * v[1]) + (v[2] * v[2] + v[3] * v[3]);
        if enough(sum) {
            return None;
        }
        i0 += 4;
    }
    for i in i0..n {
        let v = dot(&m[i * n..=i * n + i], &x[..=i]);
        sum += v * v;
    }
    (!enough(sum)).then_some(sum)
}

/// `eˣ` for `x ≤ 0`: within a relative `2ε` of `f64::exp` down to `−708`, and `0` below (where
/// `f64::exp` gives at most 3e-308). It has no call and no branch that a select cannot replace,
/// so kernel loops over it vectorize: `f64::exp` was a quarter of a suggestion's time.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    // Adding 1.5·2⁵² rounds to an integer, left in the low bits of the sum's mantissa.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    // ln 2 split so that `k·LN2_HI` is exact for the k that occur.
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let clamped = x.max(-708.0);
    let shifted = clamped * std::f64::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    // eˣ = 2ᵏ·eʳ with |r| ≤ ln2/2; eʳ by its Taylor series to degree 13 (remainder below 1e-18),
    // in Estrin's scheme for a short dependency chain.
    let r = (clamped - k * LN2_HI) - k * LN2_LO;
    let r2 = r * r;
    let r4 = r2 * r2;
    let pair = |a: f64, b: f64| a + r * b;
    let low = pair(1.0, 1.0) + r2 * pair(1.0 / 2.0, 1.0 / 6.0);
    let low = low + r4 * (pair(1.0 / 24.0, 1.0 / 120.0) + r2 * pair(1.0 / 720.0, 1.0 / 5040.0));
    let high =
        pair(1.0 / 40_320.0, 1.0 / 362_880.0) + r2 * pair(1.0 / 3_628_800.0, 1.0 / 39_916_800.0);
    let high = high + r4 * pair(1.0 / 479_001_600.0, 1.0 / 6_227_020_800.0);
    let e_r = low + r4 * r4 * high;
    // k ∈ [−1021, 0]: its low 11 bits plus the exponent bias are the biased exponent of 2ᵏ.
    let two_k = f64::from_bits((shifted.to_bits().wrapping_add(1023) & 0x7ff) << 52);
    if x.is_nan() {
        x
    } else if x < -708.0 {
        0.0
    } else {
        e_r * two_k
    }
}

/// `y += a·x` over the common length (a `while` loop for the reason given at [`dot`]).
pub(crate) fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    let n = x.len().min(y.len());
    let mut i = 0;
    while i < n {
        y[i] += a * x[i];
        i += 1;
    }
}

/// The lower-triangular factor `L` of `A = L·Lᵀ`.
#[derive(Clone, Debug)]
pub(crate) struct Cholesky {
    n: usize,
    /// Row-major; entries above the diagonal are zero.
    l: Vec<f64>,
}

impl Cholesky {
    /// Factors the symmetric matrix `a` (only its lower triangle is read). `None` when `a` is not
    /// numerically positive definite; the caller decides whether to add jitter and retry.
    pub(crate) fn factor(a: &[f64], n: usize) -> Option<Self> {
        debug_assert_eq!(a.len(), n * n);
        let mut l = vec![0.0; n * n];
        // Entry (i, j) of `L`, from row i's entries left of j and row j's: the same arithmetic
        // whichever order the rows are taken in.
        let entry = |l: &mut [f64], i: usize, j: usize, dot: f64| -> Option<()> {
            let s = a[i * n + j] - dot;
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
            Some(())
        };
        let mut i0 = 0;
        // Four rows at once left of their diagonal block (columns below `i0` only need rows
        // already finished), then the block's own small triangle row by row.
        while i0 + 4 <= n {
            for j in 0..i0 {
                let (done, rest) = l.split_at(i0 * n);
                let rows = [0, 1, 2, 3].map(|t| &rest[t * n..t * n + j]);
                let dots = dot4(rows, &done[j * n..j * n + j]);
                for (t, dot) in dots.into_iter().enumerate() {
                    entry(&mut l, i0 + t, j, dot)?;
                }
            }
            for i in i0..i0 + 4 {
                for j in i0..=i {
                    let dot = dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
                    entry(&mut l, i, j, dot)?;
                }
            }
            i0 += 4;
        }
        for i in i0..n {
            for j in 0..=i {
                let dot = dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
                entry(&mut l, i, j, dot)?;
            }
        }
        Some(Self { n, l })
    }

    /// Solves `L·x = b` in place.
    fn solve_lower_in_place(&self, b: &mut [f64]) {
        self.forward_substitute(0, &mut b[..self.n]);
    }

    /// Solves `L[o.., o..]·x = b` in place for the trailing block from row and column `o`
    /// (`b.len() = n − o`).
    ///
    /// Rows go four at a time: the part of their sums left of the block (a multiple of four
    /// long, so exactly [`dot`]'s chunks) shared in one [`dot4_sums`], then the remaining one to
    /// three terms of each row added to sum 0 in order, as [`dot`]'s remainder loop does.
    fn forward_substitute(&self, o: usize, b: &mut [f64]) {
        let (n, l) = (self.n, &self.l);
        let m = b.len();
        let row = |i: usize| &l[(o + i) * n + o..(o + i) * n + o + i];
        let diagonal = |i: usize| l[(o + i) * n + o + i];
        let mut i0 = 0;
        while i0 + 4 <= m {
            let sums = dot4_sums([row(i0), row(i0 + 1), row(i0 + 2), row(i0 + 3)], &b[..i0]);
            for (t, mut s) in sums.into_iter().enumerate() {
                let i = i0 + t;
                let r = row(i);
                for k in i0..i {
                    s[0] += r[k] * b[k];
                }
                b[i] = (b[i] - combine(s)) / diagonal(i);
            }
            i0 += 4;
        }
        for i in i0..m {
            b[i] = (b[i] - dot(row(i), &b[..i])) / diagonal(i);
        }
    }

    /// Solves `Lᵀ·x = b` in place.
    pub(crate) fn solve_upper_in_place(&self, b: &mut [f64]) {
        let n = self.n;
        for i in (0..n).rev() {
            b[i] /= self.l[i * n + i];
            let xi = b[i];
            let row = &self.l[i * n..i * n + i];
            for (bk, lik) in b[..i].iter_mut().zip(row) {
                *bk -= lik * xi;
            }
        }
    }

    /// Solves `A·x = b`.
    pub(crate) fn solve(&self, b: &[f64]) -> Vec<f64> {
        let mut x = b.to_vec();
        self.solve_lower_in_place(&mut x);
        self.solve_upper_in_place(&mut x);
        x
    }

    /// `ln det A = 2·Σ ln L_ii`.
    pub(crate) fn log_det(&self) -> f64 {
        (0..self.n)
            .map(|i| self.l[i * self.n + i].ln())
            .sum::<f64>()
            * 2.0
    }

    /// `L⁻¹` (lower-triangular, row-major, zeros above the diagonal): a deviation's `‖L⁻¹·k‖²`
    /// is then a product whose rows are independent (see [`lower_norm2_unless`]), where a
    /// substitution's rows each wait on the one before.
    pub(crate) fn inverse_factor(&self) -> Vec<f64> {
        let n = self.n;
        let u = self.inverse_factor_transposed();
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                out[i * n + j] = u[j * n + i];
            }
        }
        out
    }

    /// `U = L⁻ᵀ`, upper-triangular, row-major: row j of U is column j of L⁻¹, found by forward
    /// substitution `L·x = e_j` (x_i = 0 for i < j).
    fn inverse_factor_transposed(&self) -> Vec<f64> {
        let n = self.n;
        let mut u = vec![0.0; n * n];
        for j in 0..n {
            let row_j = &mut u[j * n + j..(j + 1) * n];
            row_j[0] = 1.0;
            self.forward_substitute(j, row_j);
        }
        u
    }

    /// `A⁻¹` (full, symmetric, row-major).
    pub(crate) fn inverse(&self) -> Vec<f64> {
        let n = self.n;
        let u = self.inverse_factor_transposed();
        // A⁻¹ = L⁻ᵀ·L⁻¹ = U·Uᵀ: (A⁻¹)_ij = Σ_{k >= max(i, j)} U_ik·U_jk, four j at a time.
        let mut inv = vec![0.0; n * n];
        for i in 0..n {
            let shared = &u[i * n + i..(i + 1) * n];
            let tail = |j: usize| &u[j * n + i..(j + 1) * n];
            let mut j = 0;
            while j + 4 <= i + 1 {
                let values = dot4([tail(j), tail(j + 1), tail(j + 2), tail(j + 3)], shared);
                for (t, v) in values.into_iter().enumerate() {
                    inv[i * n + j + t] = v;
                    inv[(j + t) * n + i] = v;
                }
                j += 4;
            }
            for j in j..=i {
                let v = dot(shared, tail(j));
                inv[i * n + j] = v;
                inv[j * n + i] = v;
            }
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd_example() -> (Vec<f64>, usize) {
        (vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0], 3)
    }

    #[test]
    fn solve_recovers_the_right_hand_side() {
        let (a, n) = spd_example();
        let chol = Cholesky::factor(&a, n).expect("the example matrix is positive definite");
        let b = [1.0, -2.0, 0.5];
        let x = chol.solve(&b);
        for i in 0..n {
            let ax = dot(&a[i * n..(i + 1) * n], &x);
            assert!((ax - b[i]).abs() < 1e-12, "row {i}: {ax} != {}", b[i]);
        }
    }

    #[test]
    fn inverse_times_matrix_is_identity_and_log_det_matches() {
        let (a, n) = spd_example();
        let chol = Cholesky::factor(&a, n).expect("the example matrix is positive definite");
        let inv = chol.inverse();
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((v - expected).abs() < 1e-12, "({i},{j}) = {v}");
            }
        }
        // det = 4(15 - 1) - 2(6 - 0.6) + 0.6(2 - 3) = 56 - 10.8 - 0.6 = 44.6
        assert!((chol.log_det() - 44.6_f64.ln()).abs() < 1e-12);
    }

    /// The row-by-row algorithms the blocked ones replaced, one [`dot`] per entry.
    mod reference {
        use super::super::dot;

        pub fn factor(a: &[f64], n: usize) -> Option<Vec<f64>> {
            let mut l = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..=i {
                    let s = a[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
                    if i == j {
                        if s <= 0.0 || !s.is_finite() {
                            return None;
                        }
                        l[i * n + i] = s.sqrt();
                    } else {
                        l[i * n + j] = s / l[j * n + j];
                    }
                }
            }
            Some(l)
        }

        pub fn solve_lower(l: &[f64], n: usize, b: &mut [f64]) {
            for i in 0..n {
                b[i] = (b[i] - dot(&l[i * n..i * n + i], &b[..i])) / l[i * n + i];
            }
        }

        pub fn inverse(l: &[f64], n: usize) -> Vec<f64> {
            let mut u = vec![0.0; n * n];
            for j in 0..n {
                for i in j..n {
                    let l_row = &l[i * n..i * n + i];
                    let row_j = &u[j * n..(j + 1) * n];
                    let s = if i == j { 1.0 } else { 0.0 } - dot(&l_row[j..], &row_j[j..i]);
                    u[j * n + i] = s / l[i * n + i];
                }
            }
            let mut inv = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..=i {
                    let v = dot(&u[i * n + i..(i + 1) * n], &u[j * n + i..(j + 1) * n]);
                    inv[i * n + j] = v;
                    inv[j * n + i] = v;
                }
            }
            inv
        }
    }

    /// A Matérn-like covariance of `n` scattered points, with entries of every magnitude.
    fn covariance(n: usize) -> Vec<f64> {
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.618_034).fract()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let r = (x[i] - x[j]).abs() * 7.3;
                a[i * n + j] = (1.0 + r) * (-r).exp() + if i == j { 1e-3 } else { 0.0 };
            }
        }
        a
    }

    #[test]
    fn blocked_algorithms_agree_with_row_by_row_ones_to_the_last_bit() {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for n in (0..=14).chain([31, 64, 67]) {
            let a = covariance(n);
            let chol = Cholesky::factor(&a, n).expect("the covariance is positive definite");
            let l = reference::factor(&a, n).expect("the covariance is positive definite");
            assert_eq!(bits(&chol.l), bits(&l), "factor, n = {n}");
            let mut b: Vec<f64> = (0..n).map(|i| (i as f64 * 1.7).sin()).collect();
            let mut expected = b.clone();
            chol.solve_lower_in_place(&mut b);
            reference::solve_lower(&l, n, &mut expected);
            assert_eq!(bits(&b), bits(&expected), "solve, n = {n}");
            assert_eq!(
                bits(&chol.inverse()),
                bits(&reference::inverse(&l, n)),
                "inverse, n = {n}"
            );
        }
        let four = [[1.0, 2.0, 3.0, 4.0, 5.0], [0.5; 5], [-1.0; 5], [3.0; 5]];
        let b = [0.1, 0.2, 0.3, 0.4, 0.5];
        let got = dot4(four.each_ref().map(|r| r.as_slice()), &b);
        for (row, value) in four.iter().zip(got) {
            assert_eq!(value.to_bits(), dot(row, &b).to_bits());
        }
    }

    #[test]
    fn the_inverse_factor_inverts_the_factor_and_gives_the_substitutions_norm() {
        for n in (1..=9).chain([31, 67]) {
            let a = covariance(n);
            let chol = Cholesky::factor(&a, n).expect("the covariance is positive definite");
            let inverse = chol.inverse_factor();
            for i in 0..n {
                for j in 0..n {
                    let v: f64 = (0..n).map(|k| inverse[i * n + k] * chol.l[k * n + j]).sum();
                    let expected = if i == j { 1.0 } else { 0.0 };
                    assert!((v - expected).abs() < 1e-9, "n = {n}: ({i},{j}) = {v}");
                    if j > i {
                        assert_eq!(inverse[i * n + j], 0.0, "n = {n}: above the diagonal");
                    }
                }
            }
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 1.7).sin()).collect();
            let mut solved = x.clone();
            chol.solve_lower_in_place(&mut solved);
            let expected = dot(&solved, &solved);
            let got = lower_norm2_unless(&inverse, &x, |_| false).expect("never enough");
            assert!(
                (got - expected).abs() <= 1e-12 * expected.max(1.0),
                "n = {n}: {got} != {expected}"
            );
            // Asked to stop at a partial sum, it stops exactly when one reaches the mark: past
            // the whole sum never, at half of it always (every partial sum is at most the whole).
            let seen = std::cell::Cell::new(0.0);
            let never = lower_norm2_unless(&inverse, &x, |partial| {
                assert!(partial >= seen.get(), "n = {n}: a partial sum fell");
                seen.set(partial);
                partial > 2.0 * got
            });
            assert_eq!(never, Some(got), "n = {n}");
            if got > 0.0 {
                assert_eq!(lower_norm2_unless(&inverse, &x, |p| p >= 0.5 * got), None);
            }
        }
    }

    #[test]
    fn exp_nonpositive_is_the_standard_exp_within_two_epsilon() {
        let mut worst: f64 = 0.0;
        // The grid's spacing is no simple fraction of ln 2, so the reduced arguments cover their
        // whole range; it ends just above −708.
        for i in 0..199_950 {
            let x = -(i as f64) * 0.003_540_7;
            let (got, expected) = (exp_nonpositive(x), x.exp());
            worst = worst.max((got - expected).abs() / expected);
        }
        assert!(
            worst <= 2.0 * f64::EPSILON,
            "worst relative error {worst:e}"
        );
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        assert_eq!(exp_nonpositive(-708.5), 0.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
    }

    #[test]
    fn a_failing_pivot_fails_the_blocked_factorization_too() {
        // Positive definite but for the last row, which repeats the first with a smaller diagonal.
        for n in [3, 5, 8, 9] {
            let mut a = covariance(n);
            for j in 0..n {
                a[(n - 1) * n + j] = a[j];
                a[j * n + n - 1] = a[j];
            }
            a[n * n - 1] = a[0] * 0.5;
            assert!(reference::factor(&a, n).is_none());
            assert!(Cholesky::factor(&a, n).is_none(), "n = {n}");
        }
    }

    #[test]
    fn rejects_matrices_that_are_not_positive_definite() {
        assert!(Cholesky::factor(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert!(Cholesky::factor(&[f64::NAN], 1).is_none());
    }
}
