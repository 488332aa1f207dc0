//! Two objectives under constraints: ParEGO on the Bayesian sampler (as `servo run` searches
//! `objective: {minimize: [a, b]}`) against random search, by the hypervolume of the truly
//! feasible trials. Two constrained bi-objective problems from the literature, never used to
//! choose any default:
//!
//! - BNH (Binh & Korn 1997): x1 ∈ [0, 5], x2 ∈ [0, 3]; f1 = 4x1² + 4x2², f2 = (x1−5)² + (x2−5)²;
//!   (x1−5)² + x2² ≤ 25, (x1−8)² + (x2+3)² ≥ 7.7. Reference point (140, 50).
//! - SRN (Srinivas & Deb 1994): x1, x2 ∈ [−20, 20]; f1 = 2 + (x1−2)² + (x2−1)², f2 = 9x1 −
//!   (x2−1)²; x1² + x2² ≤ 225, x1 − 3x2 + 10 ≤ 0. Reference point (250, 50).
//!
//! Each run starts from a feasible baseline (as a study starts from what runs), then asks for the
//! rest of the budget; the default `risk: low` and `risk: high` are both reported. Prints the
//! median hypervolume over the seeds at 25 and 50 trials, and the median count of trials that
//! breached a constraint. Figures only, no assertion:
//!
//! cargo bench -p servo-optimizer --bench pareto -- [--seeds N] [--budget N]

use servo_optimizer::pareto::{MultiObservation, hypervolume_2d, parego_history, parego_weights};
use servo_optimizer::{Bayesian, Domain, Param, ParamValue, RandomSearch, Risk, Sampler, Space};

/// Objectives and constraint values (≤ 0 when met, relative to the limit) at a point.
type Evaluation = ([f64; 2], Vec<f64>);

struct Problem {
    name: &'static str,
    bounds: [(f64, f64); 2],
    baseline: [f64; 2],
    reference: [f64; 2],
    evaluate: fn([f64; 2]) -> Evaluation,
}

fn bnh([x1, x2]: [f64; 2]) -> Evaluation {
    let f1 = 4.0 * x1 * x1 + 4.0 * x2 * x2;
    let f2 = (x1 - 5.0).powi(2) + (x2 - 5.0).powi(2);
    let c1 = ((x1 - 5.0).powi(2) + x2 * x2) / 25.0 - 1.0;
    let c2 = 1.0 - ((x1 - 8.0).powi(2) + (x2 + 3.0).powi(2)) / 7.7;
    ([f1, f2], vec![c1, c2])
}

fn srn([x1, x2]: [f64; 2]) -> Evaluation {
    let f1 = 2.0 + (x1 - 2.0).powi(2) + (x2 - 1.0).powi(2);
    let f2 = 9.0 * x1 - (x2 - 1.0).powi(2);
    let c1 = (x1 * x1 + x2 * x2) / 225.0 - 1.0;
    // No limit to be relative to: in its own units, scaled to the box.
    let c2 = (x1 - 3.0 * x2 + 10.0) / 10.0;
    ([f1, f2], vec![c1, c2])
}

fn values(config: &[ParamValue]) -> [f64; 2] {
    let number = |v: &ParamValue| match v {
        ParamValue::Float(x) => *x,
        ParamValue::Int(i) => *i as f64,
        ParamValue::Categorical(_) => f64::NAN,
    };
    [number(&config[0]), number(&config[1])]
}

/// One study: the hypervolume of the feasible trials after 25 and after `budget` trials, and how
/// many trials breached a constraint.
fn run(problem: &Problem, sampler: &dyn Sampler, seed: u64, budget: usize) -> (f64, f64, usize) {
    let space = Space::new(
        problem
            .bounds
            .iter()
            .enumerate()
            .map(|(i, (low, high))| {
                Param::new(
                    format!("x{}", i + 1),
                    Domain::Float {
                        low: *low,
                        high: *high,
                        step: None,
                        log: false,
                    },
                )
            })
            .collect(),
    );
    let mut history: Vec<MultiObservation> = Vec::new();
    let mut feasible: Vec<[f64; 2]> = Vec::new();
    let mut breaches = 0;
    let mut at_25 = 0.0;
    for trial in 0..budget {
        let config = if trial == 0 {
            problem
                .baseline
                .iter()
                .map(|x| ParamValue::Float(*x))
                .collect()
        } else {
            let weights = parego_weights(2, seed, trial as u64);
            let scalar = parego_history(&history, &weights);
            match sampler.suggest(&space, &scalar, seed) {
                Ok(config) => config,
                Err(_) => break,
            }
        };
        let (objectives, constraints) = (problem.evaluate)(values(&config));
        if constraints.iter().all(|c| *c <= 0.0) {
            feasible.push(objectives);
        } else {
            breaches += 1;
        }
        history.push(MultiObservation {
            config,
            objectives: Some(objectives.to_vec()),
            constraints,
        });
        if trial + 1 == 25 {
            at_25 = hypervolume_2d(&feasible, problem.reference);
        }
    }
    (
        at_25,
        hypervolume_2d(&feasible, problem.reference),
        breaches,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() {
    let mut seeds = 10u64;
    let mut budget = 50usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match arg.as_str() {
            "--seeds" => seeds = value("--seeds"),
            "--budget" => budget = value("--budget") as usize,
            _ => {}
        }
    }
    let problems = [
        Problem {
            name: "bnh",
            bounds: [(0.0, 5.0), (0.0, 3.0)],
            baseline: [2.5, 1.5],
            reference: [140.0, 50.0],
            evaluate: bnh,
        },
        Problem {
            name: "srn",
            bounds: [(-20.0, 20.0), (-20.0, 20.0)],
            baseline: [-5.0, 5.0],
            reference: [250.0, 50.0],
            evaluate: srn,
        },
    ];
    let samplers: [(&str, Box<dyn Sampler>); 3] = [
        ("parego risk=low", Box::new(Bayesian::with_risk(Risk::Low))),
        (
            "parego risk=high",
            Box::new(Bayesian::with_risk(Risk::High)),
        ),
        ("random", Box::new(RandomSearch)),
    ];
    println!(
        "problem  sampler            HV@25      HV@{budget:<4}    breaches (median of {seeds} seeds)"
    );
    for problem in &problems {
        for (name, sampler) in &samplers {
            let runs: Vec<(f64, f64, usize)> = (0..seeds)
                .map(|seed| run(problem, sampler.as_ref(), seed, budget))
                .collect();
            println!(
                "{:<8} {:<18} {:>9.1}  {:>9.1}  {:>5}",
                problem.name,
                name,
                median(runs.iter().map(|r| r.0).collect()),
                median(runs.iter().map(|r| r.1).collect()),
                median(runs.iter().map(|r| r.2 as f64).collect()),
            );
        }
    }
}
