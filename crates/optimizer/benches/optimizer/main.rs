//! How many trials the embedded optimizer needs, against random search (and, through
//! `benches/optimizer.sh`, Optuna's TPE).
//!
//! Every run starts from the problem's baseline configuration, as `servo run` does, then asks the
//! sampler for the rest of the budget. Per run it records the best feasible objective after each
//! trial; the traces go to the JSON file named by `--out PATH` or `OPTIMIZER_BENCH_OUT`, in the
//! format `benches/optimizer_optuna.py` also writes, and a summary is printed.
//!
//! ```text
//! cargo bench --bench optimizer -- [--out PATH] [--seeds N] [--first-seed N] [--budget N]
//!     [--problems branin,hartmann6,mixed] [--samplers ours,random] [--timing-only]
//! ```
//!
//! `--timing-only` measures `suggest` with 100 observations in 6 dimensions and exits; run it with
//! `--profile dev` to see the cost in a debug build.

use std::time::Instant;

use servo_optimizer::{
    Bayesian, Config, Domain, Observation, Outcome, Param, ParamValue, RandomSearch, Sampler, Space,
};

/// Trials per run, the baseline included. Long enough to count the trials Optuna's TPE needs to
/// get within 10% of the optimum (about 60 on Branin).
const DEFAULT_BUDGET: usize = 100;
const DEFAULT_SEEDS: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Problem {
    /// 2-D continuous, three global minima.
    Branin,
    /// 6-D continuous on `[0, 1]^6`, several local minima.
    Hartmann6,
    /// Cheapest CPU / memory / workers / GC setting of a service whose p-latency must stay within
    /// its SLO; too little memory for the heap crashes the service (a failed trial). Two stepped
    /// floats, an integer and a categorical; the optimum sits on the SLO boundary.
    Mixed,
}

impl Problem {
    const ALL: [Problem; 3] = [Problem::Branin, Problem::Hartmann6, Problem::Mixed];

    fn name(self) -> &'static str {
        match self {
            Problem::Branin => "branin",
            Problem::Hartmann6 => "hartmann6",
            Problem::Mixed => "mixed",
        }
    }

    fn space(self) -> Space {
        let float = |name: &str, low: f64, high: f64, step: Option<f64>| {
            Param::new(
                name,
                Domain::Float {
                    low,
                    high,
                    step,
                    log: false,
                },
            )
        };
        match self {
            Problem::Branin => Space::new(vec![
                float("x1", -5.0, 10.0, None),
                float("x2", 0.0, 15.0, None),
            ]),
            Problem::Hartmann6 => Space::new(
                (1..=6)
                    .map(|i| float(&format!("x{i}"), 0.0, 1.0, None))
                    .collect(),
            ),
            Problem::Mixed => Space::new(vec![
                float("cpu", 0.25, 4.0, Some(0.05)),
                float("memory", 0.5, 8.0, Some(0.25)),
                Param::new(
                    "workers",
                    Domain::Int {
                        low: 1,
                        high: 32,
                        step: 1,
                        log: false,
                    },
                ),
                Param::new(
                    "gc",
                    Domain::Categorical {
                        choices: GCS.iter().map(|(name, _)| name.to_string()).collect(),
                    },
                ),
            ]),
        }
    }

    /// The configuration the application runs before optimization.
    fn baseline(self) -> Config {
        match self {
            Problem::Branin => vec![ParamValue::Float(2.5), ParamValue::Float(7.5)],
            Problem::Hartmann6 => vec![ParamValue::Float(0.5); 6],
            Problem::Mixed => vec![
                ParamValue::Float(3.0),
                ParamValue::Float(4.0),
                ParamValue::Int(8),
                ParamValue::Categorical("parallel".into()),
            ],
        }
    }

    fn evaluate(self, config: &Config) -> Outcome {
        let x: Vec<f64> = config
            .iter()
            .map(|v| match v {
                ParamValue::Float(f) => *f,
                ParamValue::Int(i) => *i as f64,
                ParamValue::Categorical(_) => f64::NAN,
            })
            .collect();
        match self {
            Problem::Branin => complete(branin(x[0], x[1]), vec![]),
            Problem::Hartmann6 => complete(hartmann6(&x), vec![]),
            Problem::Mixed => {
                let gc = match &config[3] {
                    ParamValue::Categorical(name) => name.as_str(),
                    _ => "",
                };
                match mixed(x[0], x[1], x[2] as i64, gc) {
                    Some((cost, slack)) => complete(cost, vec![slack]),
                    None => Outcome::Failed,
                }
            }
        }
    }

    /// The known optimum: analytic for the classic functions, brute force over the grid for the
    /// mixed problem.
    fn optimum(self) -> f64 {
        match self {
            Problem::Branin => 0.397_887_357_729_738,
            Problem::Hartmann6 => -3.322_368_011_415_515,
            Problem::Mixed => {
                let mut best = f64::INFINITY;
                for cpu_step in 0..=75 {
                    for mem_step in 0..=30 {
                        for workers in 1..=32 {
                            for (gc, _) in GCS {
                                let cpu = 0.25 + 0.05 * cpu_step as f64;
                                let memory = 0.5 + 0.25 * mem_step as f64;
                                if let Some((cost, slack)) = mixed(cpu, memory, workers, gc)
                                    && slack <= 0.0
                                {
                                    best = best.min(cost);
                                }
                            }
                        }
                    }
                }
                best
            }
        }
    }
}

fn complete(objective: f64, constraints: Vec<f64>) -> Outcome {
    Outcome::Complete {
        objective,
        constraints,
    }
}

fn branin(x1: f64, x2: f64) -> f64 {
    use std::f64::consts::PI;
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

fn hartmann6(x: &[f64]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

/// Garbage collectors: (name, (CPU overhead factor, heap size factor, pause ms per GiB of heap)).
const GCS: [(&str, (f64, f64, f64)); 3] = [
    ("serial", (0.06, 1.00, 4.0)),
    ("parallel", (0.03, 1.15, 1.5)),
    ("g1", (0.015, 1.35, 0.8)),
];

/// A toy service model: `(cost, latency − SLO in ms)`, or `None` when the heap does not fit in
/// memory (the service crashes). Must match `mixed()` in `benches/optimizer_optuna.py`.
fn mixed(cpu: f64, memory: f64, workers: i64, gc: &str) -> Option<(f64, f64)> {
    let (_, (overhead, heap_factor, pause)) = GCS.iter().find(|(name, _)| *name == gc)?;
    let heap = (0.3 + 0.06 * workers as f64) * heap_factor;
    if memory < heap {
        return None;
    }
    let gc_load = overhead * heap / (memory - 0.8 * heap);
    let effective_cpu = cpu * (1.0 - gc_load.min(0.9));
    let capacity = 100.0 * effective_cpu * (workers as f64 / (2.0 * cpu)).min(1.0);
    let utilization = 150.0 / capacity;
    let base = 20.0 * (1.0 + 0.015 * workers as f64);
    let latency = if utilization < 1.0 {
        base / (1.0 - utilization) + pause * memory
    } else {
        1000.0
    };
    Some((cpu + 0.125 * memory, latency - 60.0))
}

/// One run: the best feasible objective after each trial (`None` before the first feasible
/// trial), and how many trials failed.
fn run(
    problem: Problem,
    sampler: &dyn Sampler,
    seed: u64,
    budget: usize,
) -> (Vec<Option<f64>>, usize) {
    let space = problem.space();
    let mut history: Vec<Observation> = Vec::with_capacity(budget);
    let mut best: Option<f64> = None;
    let mut trace = Vec::with_capacity(budget);
    let mut failed = 0;
    for trial in 0..budget {
        let config = if trial == 0 {
            problem.baseline()
        } else {
            match sampler.suggest(&space, &history, seed) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("{} seed {seed}: stopping early: {error}", problem.name());
                    break;
                }
            }
        };
        let outcome = problem.evaluate(&config);
        if outcome == Outcome::Failed {
            failed += 1;
        }
        if let Outcome::Complete {
            objective,
            constraints,
        } = &outcome
            && constraints.iter().all(|c| *c <= 0.0)
        {
            best = Some(best.map_or(*objective, |b: f64| b.min(*objective)));
        }
        trace.push(best);
        history.push(Observation { config, outcome });
    }
    (trace, failed)
}

struct Args {
    out: Option<String>,
    seeds: u64,
    first_seed: u64,
    budget: usize,
    problems: Vec<Problem>,
    samplers: Vec<String>,
    timing_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: std::env::var("OPTIMIZER_BENCH_OUT").ok(),
        seeds: DEFAULT_SEEDS,
        first_seed: 0,
        budget: DEFAULT_BUDGET,
        problems: Problem::ALL.to_vec(),
        samplers: vec!["ours".into(), "random".into()],
        timing_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => args.out = Some(value("--out")?),
            "--seeds" => {
                args.seeds = value("--seeds")?
                    .parse()
                    .map_err(|e| format!("--seeds: {e}"))?
            }
            "--first-seed" => {
                args.first_seed = value("--first-seed")?
                    .parse()
                    .map_err(|e| format!("--first-seed: {e}"))?
            }
            "--budget" => {
                args.budget = value("--budget")?
                    .parse()
                    .map_err(|e| format!("--budget: {e}"))?
            }
            "--problems" => {
                args.problems = value("--problems")?
                    .split(',')
                    .map(|name| {
                        Problem::ALL
                            .into_iter()
                            .find(|p| p.name() == name)
                            .ok_or(format!(
                                "unknown problem {name:?}; expected branin, hartmann6 or mixed"
                            ))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--samplers" => {
                args.samplers = value("--samplers")?
                    .split(',')
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = args
                    .samplers
                    .iter()
                    .find(|s| !["ours", "random"].contains(&s.as_str()))
                {
                    return Err(format!("unknown sampler {bad:?}; expected ours or random"));
                }
            }
            "--timing-only" => args.timing_only = true,
            // `cargo bench` passes `--bench` to harness-less benches.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// CPU seconds this thread has used, where Linux reports it (`/proc/thread-self/schedstat`), else
/// `None`. The bench machine is shared, so CPU time is steadier than wall time.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos * 1e-9)
}

/// Seconds per `suggest` with 100 Hartmann6 observations (6 dimensions), median of 3 calls: CPU
/// time where available, else wall time.
fn time_suggest() -> f64 {
    let problem = Problem::Hartmann6;
    let space = problem.space();
    let mut history = Vec::new();
    for seed in 0..100 {
        let config = RandomSearch
            .suggest(&space, &history, seed)
            .expect("a continuous space is never exhausted");
        let outcome = problem.evaluate(&config);
        history.push(Observation { config, outcome });
    }
    let mut times: Vec<f64> = (0..3)
        .map(|seed| {
            let start = Instant::now();
            let cpu_start = thread_cpu_seconds();
            let suggestion = Bayesian::default().suggest(&space, &history, seed);
            let elapsed = match (cpu_start, thread_cpu_seconds()) {
                (Some(a), Some(b)) => b - a,
                _ => start.elapsed().as_secs_f64(),
            };
            assert!(suggestion.is_ok(), "suggest failed: {suggestion:?}");
            elapsed
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[1]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("optimizer bench: {message}");
            std::process::exit(2);
        }
    };
    let timing = time_suggest();
    println!(
        "suggest() with 100 observations in 6 dimensions: {:.0} ms ({} build)",
        timing * 1e3,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimized"
        }
    );
    if args.timing_only {
        return;
    }

    let mut runs = Vec::new();
    let mut problems_json = Vec::new();
    println!(
        "{:<10} {:<7} {:>12} {:>12} {:>14} {:>12}",
        "problem", "sampler", "regret@20", "regret@50", "trials-to-10%", "s/run"
    );
    for &problem in &args.problems {
        let optimum = problem.optimum();
        problems_json.push(serde_json::json!({
            "name": problem.name(),
            "f_star": optimum,
            "budget": args.budget,
        }));
        for sampler_name in &args.samplers {
            let sampler: Box<dyn Sampler> = match sampler_name.as_str() {
                "random" => Box::new(RandomSearch),
                _ => Box::new(Bayesian::default()),
            };
            let mut at20 = Vec::new();
            let mut at50 = Vec::new();
            let mut hits = Vec::new();
            let mut seconds = Vec::new();
            for seed in args.first_seed..args.first_seed + args.seeds {
                let start = Instant::now();
                let (trace, failed) = run(problem, sampler.as_ref(), seed, args.budget);
                let elapsed = start.elapsed().as_secs_f64();
                let regret = |t: usize| {
                    trace
                        .get(t.min(trace.len()).saturating_sub(1))
                        .copied()
                        .flatten()
                        .map_or(f64::INFINITY, |b| b - optimum)
                };
                at20.push(regret(20));
                at50.push(regret(50));
                let target = 0.1 * optimum.abs();
                hits.push(
                    trace
                        .iter()
                        .position(|b| b.is_some_and(|b| b - optimum <= target))
                        .map_or(args.budget as f64 + 1.0, |i| i as f64 + 1.0),
                );
                seconds.push(elapsed);
                runs.push(serde_json::json!({
                    "sampler": sampler_name,
                    "problem": problem.name(),
                    "seed": seed,
                    "best": trace,
                    "failed": failed,
                    "seconds": elapsed,
                }));
            }
            println!(
                "{:<10} {:<7} {:>12.4} {:>12.4} {:>14.1} {:>12.2}",
                problem.name(),
                sampler_name,
                median(&mut at20),
                median(&mut at50),
                median(&mut hits),
                median(&mut seconds)
            );
        }
    }
    if let Some(path) = args.out {
        let document = serde_json::json!({
            "problems": problems_json,
            "runs": runs,
            "suggest_seconds_100x6": timing,
        });
        let text = serde_json::to_string_pretty(&document)
            .expect("the trace document holds only finite numbers, strings and nulls");
        if let Err(error) = std::fs::write(&path, text) {
            eprintln!("optimizer bench: cannot write the traces to {path}: {error}");
            std::process::exit(1);
        }
        println!("traces written to {path}");
    }
}
