//! Output warping.

/// Yeo–Johnson transform of one value.
fn yeo_johnson(y: f64, lambda: f64) -> f64 {
    if y >= 0.0 {
        if lambda.abs() < 1e-9 {
            y.ln_1p()
        } else {
            ((y + 1.0).powf(lambda) - 1.0) / lambda
        }
    } else if (lambda - 2.0).abs() < 1e-9 {
        -(-y).ln_1p()
    } else {
        -((1.0 - y).powf(2.0 - lambda) - 1.0) / (2.0 - lambda)
    }
}

fn standardize(y: &[f64]) -> Vec<f64> {
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let sd = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
    y.iter().map(|v| (v - mean) / sd).collect()
}

pub(crate) fn warp(y: &[f64]) -> Vec<f64> {
    let mode = std::env::var("SERVO_WARP").unwrap_or_default();
    if y.len() < 3 {
        return y.to_vec();
    }
    match mode.as_str() {
        "yj" => {
            let z = standardize(y);
            let mut best = (f64::NEG_INFINITY, 1.0);
            let mut lambda = -2.0;
            while lambda <= 4.0 + 1e-9 {
                let t: Vec<f64> = z.iter().map(|v| yeo_johnson(*v, lambda)).collect();
                let n = t.len() as f64;
                let mean = t.iter().sum::<f64>() / n;
                let var = t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                let jac: f64 = z.iter().map(|v| v.signum() * v.abs().ln_1p()).sum();
                let ll = -0.5 * n * var.ln() + (lambda - 1.0) * jac;
                if ll.is_finite() && ll > best.0 {
                    best = (ll, lambda);
                }
                lambda += 0.05;
            }
            standardize(&z.iter().map(|v| yeo_johnson(*v, best.1)).collect::<Vec<_>>())
        }
        "copula" => {
            let n = y.len();
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by(|&a, &b| y[a].total_cmp(&y[b]));
            let mut out = vec![0.0; n];
            for (rank, &i) in idx.iter().enumerate() {
                out[i] = super::normal::quantile((rank as f64 + 0.5) / n as f64);
            }
            out
        }
        "log" => {
            let min = y.iter().copied().fold(f64::INFINITY, f64::min);
            let max = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let delta = ((max - min) * 0.01).max(1e-12);
            y.iter().map(|v| (v - min + delta).ln()).collect()
        }
        _ => y.to_vec(),
    }
}

pub(crate) fn constraint_warp(c: &[f64]) -> Vec<f64> {
    if std::env::var("SERVO_CWARP").is_err() {
        return c.to_vec();
    }
    let mut abs: Vec<f64> = c.iter().map(|v| v.abs()).filter(|v| *v > 0.0).collect();
    if abs.is_empty() {
        return c.to_vec();
    }
    abs.sort_by(f64::total_cmp);
    let s = abs[abs.len() / 2];
    c.iter().map(|v| v.signum() * (v.abs() / s).ln_1p()).collect()
}
