//! The little dense linear algebra a Gaussian process needs: Cholesky factorization of a
//! symmetric positive-definite matrix, triangular solves, and the inverse.
//!
//! Matrices are row-major `Vec<f64>` of size `n × n`. Every inner loop runs over contiguous rows
//! (the factor is kept lower-triangular row-major, its inverse upper-triangular row-major) because
//! these loops dominate the optimizer's run time, and `n` stays in the low hundreds.

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

/// `y += a·x` over the common length (a `while` loop for the reason given at [`dot`]).
pub(crate) fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    let n = x.len().min(y.len());
    let mut i = 0;
    while i < n {
        y[i] += a * x[i];
        i += 1;
    }
}

/// `Σ w[i]·(a[i] − b[i])²` over the common length.
pub(crate) fn weighted_sq_distance(a: &[f64], b: &[f64], w: &[f64]) -> f64 {
    let n = a.len().min(b.len()).min(w.len());
    let mut sum = 0.0;
    let mut i = 0;
    while i < n {
        let delta = a[i] - b[i];
        sum += w[i] * delta * delta;
        i += 1;
    }
    sum
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
        for i in 0..n {
            for j in 0..=i {
                let (row_i, row_j) = (&l[i * n..i * n + j], &l[j * n..j * n + j]);
                let s = a[i * n + j] - dot(row_i, row_j);
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
        Some(Self { n, l })
    }

    /// Solves `L·x = b` in place.
    pub(crate) fn solve_lower_in_place(&self, b: &mut [f64]) {
        let n = self.n;
        for i in 0..n {
            let row = &self.l[i * n..i * n + i];
            b[i] = (b[i] - dot(row, &b[..i])) / self.l[i * n + i];
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

    /// `A⁻¹` (full, symmetric, row-major).
    pub(crate) fn inverse(&self) -> Vec<f64> {
        let n = self.n;
        // U = L⁻ᵀ, upper-triangular, row-major: row j of U is column j of L⁻¹, found by forward
        // substitution `L·x = e_j` (x_i = 0 for i < j).
        let mut u = vec![0.0; n * n];
        for j in 0..n {
            let (_, rest) = u.split_at_mut(j * n);
            let row_j = &mut rest[..n];
            for i in j..n {
                let l_row = &self.l[i * n..i * n + i];
                let s = if i == j { 1.0 } else { 0.0 } - dot(&l_row[j..], &row_j[j..i]);
                row_j[i] = s / self.l[i * n + i];
            }
        }
        // A⁻¹ = L⁻ᵀ·L⁻¹ = U·Uᵀ: (A⁻¹)_ij = Σ_{k >= max(i, j)} U_ik·U_jk.
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

    #[test]
    fn rejects_matrices_that_are_not_positive_definite() {
        assert!(Cholesky::factor(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
        assert!(Cholesky::factor(&[f64::NAN], 1).is_none());
    }
}
