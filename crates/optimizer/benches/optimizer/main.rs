//! The embedded optimizer's benchmark: trials to a good configuration, SLO breaches on the way,
//! and whether the configuration it reports as best truly meets the constraints.
//!
//! Problems come in two suites (see `SUITE.md`): *tuning* problems, the only ones defaults may be
//! chosen on, and *held-out* problems, reported and never tuned on. Every run starts from the
//! problem's baseline configuration, as `servo run` does, then asks the sampler for the rest of
//! the budget. Per trial it records the noise-free truth of the configuration tried; the traces go
//! to the JSON file named by `--out PATH`, in the format `benches/optimizer_optuna.py` also
//! writes, and `benches/optimizer_figures.py` turns them into the figures.
//!
//! ```text
//! cargo bench -p servo-optimizer --bench optimizer -- [--out PATH] [--seeds N] [--first-seed N]
//!     [--budget N] [--suite tuning|held-out|all] [--problems a,b] [--samplers ours,random]
//!     [--ours '{"min_feasibility": 0.5}'] [--no-fit-cache] [--timing-only] [--trace]
//! cargo bench -p servo-optimizer --bench optimizer -- --describe   # the problems, as JSON
//! cargo bench -p servo-optimizer --bench optimizer -- --serve      # evaluate JSON lines on stdin
//! ```
//!
//! `--serve` is how the Optuna anchors evaluate the very same problems: each stdin line
//! `{"problem": NAME, "seed": S, "trial": T, "config": [...]}` is answered on stdout with one
//! line `{"objective": Y | null, "constraints": [...], "truth": ...}`.
//!
//! Each run keeps a `FitCache` between suggestions, as `servo run` and the optimizer server do;
//! `--no-fit-cache` fits every model from scratch instead (`Sampler::suggest`).
//!
//! `--trace` prints every trial on stderr as a JSON line (problem, sampler, seed, trial, the
//! configuration tried and its noise-free record): which move led to a breach is the first
//! question when a figure moves.

mod problems;

use std::io::{BufRead, Write};
use std::time::Instant;

use servo_optimizer::{Bayesian, Config, FitCache, Observation, Outcome, RandomSearch, Sampler};

use problems::Problem;

const DEFAULT_BUDGET: usize = 100;
const DEFAULT_SEEDS: u64 = 10;
/// Trials after which the reported best is recorded.
const CHECKPOINTS: [usize; 3] = [25, 50, 100];

/// The noise-free record of one trial: `[objective, worst relative violation, observed feasible]`,
/// with `null` objective and violation for a crash.
fn trial_record(problem: &Problem, config: &Config, outcome: &Outcome) -> serde_json::Value {
    let observed_ok = matches!(outcome, Outcome::Complete { constraints, .. }
        if constraints.iter().all(|c| servo_optimizer::satisfied(*c)));
    match problem.truth(config) {
        Some((objective, constraints)) => {
            serde_json::json!([objective, worst_violation(&constraints), observed_ok])
        }
        None => serde_json::json!([null, null, false]),
    }
}

/// The trial a user would be shown as best after `history`: the model's recommendation for
/// servo's sampler, the best feasible reading for random search.
fn reported(problem: &Problem, sampler: &str, history: &[Observation], seed: u64) -> Option<usize> {
    if sampler == "ours" {
        return Bayesian::default().recommend(&problem.space(), history, seed);
    }
    history
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match &o.outcome {
            Outcome::Complete {
                objective,
                constraints,
            } if constraints.iter().all(|c| servo_optimizer::satisfied(*c)) => {
                Some((i, *objective))
            }
            _ => None,
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// One run: a record per trial and the reported best at each checkpoint.
fn run(
    problem: &Problem,
    sampler_name: &str,
    sampler: &dyn Sampler,
    seed: u64,
    budget: usize,
    fit_cache: bool,
    trace: bool,
) -> (
    Vec<serde_json::Value>,
    serde_json::Map<String, serde_json::Value>,
) {
    let space = problem.space();
    let mut history: Vec<Observation> = Vec::with_capacity(budget);
    let mut trials = Vec::with_capacity(budget);
    let mut reports = serde_json::Map::new();
    // Kept across the run, as `servo run` and the optimizer server keep one per study.
    let mut fits = FitCache::default();
    for trial in 0..budget {
        let config = if trial == 0 {
            problem.baseline()
        } else {
            let suggested = if fit_cache {
                sampler.suggest_with(&space, &history, seed, &mut fits)
            } else {
                sampler.suggest(&space, &history, seed)
            };
            match suggested {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("{} seed {seed}: stopping early: {error}", problem.name);
                    break;
                }
            }
        };
        let outcome = problem.measure(&config, seed, trial as u64);
        let record = trial_record(problem, &config, &outcome);
        if trace {
            eprintln!(
                "{}",
                serde_json::json!({"problem": problem.name, "sampler": sampler_name, "seed": seed,
                    "trial": trial, "config": config, "truth": record})
            );
        }
        trials.push(record);
        history.push(Observation { config, outcome });
        if CHECKPOINTS.contains(&(trial + 1)) {
            reports.insert(
                (trial + 1).to_string(),
                reported(problem, sampler_name, &history, seed).into(),
            );
        }
    }
    (trials, reports)
}

struct Args {
    out: Option<String>,
    seeds: u64,
    first_seed: u64,
    budget: usize,
    problems: Vec<Problem>,
    samplers: Vec<String>,
    /// Settings of `ours` other than the defaults, as the JSON of `Bayesian`.
    ours: Bayesian,
    /// Keep a `FitCache` per run (`--no-fit-cache` turns it off).
    fit_cache: bool,
    timing_only: bool,
    /// Print every trial on stderr.
    trace: bool,
    describe: bool,
    serve: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: std::env::var("OPTIMIZER_BENCH_OUT").ok(),
        seeds: DEFAULT_SEEDS,
        first_seed: 0,
        budget: DEFAULT_BUDGET,
        problems: problems::all(),
        samplers: vec!["ours".into(), "random".into()],
        ours: Bayesian::default(),
        fit_cache: true,
        timing_only: false,
        trace: false,
        describe: false,
        serve: false,
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
            "--suite" => {
                let suite = value("--suite")?;
                args.problems = problems::all()
                    .into_iter()
                    .filter(|p| suite == "all" || p.suite.name() == suite)
                    .collect();
                if args.problems.is_empty() {
                    return Err(format!(
                        "unknown suite {suite:?}; expected tuning, held-out or all"
                    ));
                }
            }
            "--problems" => {
                let names = value("--problems")?;
                let known = problems::all();
                args.problems = names
                    .split(',')
                    .map(|name| {
                        known
                            .iter()
                            .find(|p| p.name == name)
                            .cloned()
                            .ok_or(format!(
                                "unknown problem {name:?}; expected one of {}",
                                known.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
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
            "--ours" => {
                args.ours = serde_json::from_str(&value("--ours")?)
                    .map_err(|e| format!("--ours: {e} (expected the JSON of Bayesian's fields)"))?
            }
            "--no-fit-cache" => args.fit_cache = false,
            "--timing-only" => args.timing_only = true,
            "--trace" => args.trace = true,
            "--describe" => args.describe = true,
            "--serve" => args.serve = true,
            // `cargo bench` passes `--bench` to harness-less benches.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// The problems as JSON: name, suite, space (servo's serde form), baseline and optimum.
fn describe(problems: &[Problem]) -> serde_json::Value {
    serde_json::Value::Array(
        problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "suite": p.suite.name(),
                    "space": p.space(),
                    "baseline": p.baseline(),
                    "f_star": p.optimum(),
                    "noise": p.noise,
                })
            })
            .collect(),
    )
}

/// Answers evaluation requests, one JSON line each, until stdin closes.
fn serve() -> Result<(), String> {
    let problems = problems::all();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let request: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("bad request {line:?}: {e}"))?;
        let name = request["problem"].as_str().unwrap_or_default();
        let problem = problems
            .iter()
            .find(|p| p.name == name)
            .ok_or(format!("unknown problem {name:?}"))?;
        let config: Config = serde_json::from_value(request["config"].clone())
            .map_err(|e| format!("bad config in {line:?}: {e}"))?;
        let seed = request["seed"].as_u64().unwrap_or_default();
        let trial = request["trial"].as_u64().unwrap_or_default();
        let outcome = problem.measure(&config, seed, trial);
        let answer = match &outcome {
            Outcome::Complete {
                objective,
                constraints,
            } => serde_json::json!({"objective": objective, "constraints": constraints,
                "truth": trial_record(problem, &config, &outcome)}),
            Outcome::Failed => serde_json::json!({"objective": null, "constraints": [],
                "truth": trial_record(problem, &config, &outcome)}),
        };
        writeln!(out, "{answer}").map_err(|e| format!("writing stdout: {e}"))?;
        out.flush().map_err(|e| format!("writing stdout: {e}"))?;
    }
    Ok(())
}

/// The wall seconds `f` takes. A fit from scratch spreads over the cores, so the calling thread's
/// CPU time (which this bench used to read, as steadier than the clock on a shared machine) no
/// longer counts all the work; `taskset -c 0` gives the one-core figures, where the clock and
/// the CPU agree.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed().as_secs_f64())
}

/// The cost of `sampler`'s suggestion with `n` observations of `problem` (random configurations;
/// the noisy service has 5 parameters, two constraints and some crashes): `(from scratch,
/// between refits, averaged)`.
/// From scratch is `suggest`, median of 3 seeds: what every suggestion costs without a
/// [`FitCache`] and what one in ten costs with one. Between refits is the median of the nine
/// suggestions after observations `n + 1` to `n + 9` with the cache the suggestion after `n` left;
/// averaged is the mean of those ten, the cost per suggestion over a study that keeps a cache.
fn time_suggest(sampler: &Bayesian, problem: &str, n: usize) -> (f64, f64, f64) {
    let problem = problems::all()
        .into_iter()
        .find(|p| p.name == problem)
        .expect("the timed problems exist");
    let space = problem.space();
    let mut history = Vec::new();
    for seed in 0..n as u64 + 9 {
        let config = RandomSearch
            .suggest(&space, &history, seed)
            .expect("the timed spaces are not exhausted by a few hundred trials");
        let outcome = problem.measure(&config, 0, seed);
        history.push(Observation { config, outcome });
    }
    let median = |times: &[f64]| {
        let mut times = times.to_vec();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let scratch: Vec<f64> = (0..3)
        .map(|seed| {
            let (suggestion, seconds) = timed(|| sampler.suggest(&space, &history[..n], seed));
            assert!(suggestion.is_ok(), "suggest failed: {suggestion:?}");
            seconds
        })
        .collect();
    let mut fits = FitCache::default();
    let study: Vec<f64> = (n..n + 10)
        .map(|len| {
            let (suggestion, seconds) =
                timed(|| sampler.suggest_with(&space, &history[..len], 0, &mut fits));
            assert!(suggestion.is_ok(), "suggest failed: {suggestion:?}");
            seconds
        })
        .collect();
    let averaged = study.iter().sum::<f64>() / study.len() as f64;
    (median(&scratch), median(&study[1..]), averaged)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("optimizer bench: {message}");
            std::process::exit(2);
        }
    };
    if args.describe {
        println!("{}", describe(&args.problems));
        return;
    }
    if args.serve {
        if let Err(message) = serve() {
            eprintln!("optimizer bench: {message}");
            std::process::exit(1);
        }
        return;
    }
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimized"
    };
    // A fit from scratch spreads over the cores the process may use (`taskset -c 0` for one).
    let n_cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let cores = match n_cores {
        1 => "1 core".to_string(),
        n => format!("{n} cores"),
    };
    let timings: Vec<(usize, (f64, f64, f64))> = [100, 500]
        .iter()
        .map(|&n| (n, time_suggest(&args.ours, "service-3", n)))
        .collect();
    // The service's settings are all on a grid; a continuous space also pays for the gradient
    // steps that end each suggestion (see `bayesian/polish.rs`).
    let continuous = time_suggest(&args.ours, "welded-beam", 500);
    let rows = timings
        .iter()
        .map(|&(n, t)| ("service-3: 5 parameters, 2 constraints", n, t))
        .chain([(
            "welded-beam: 4 continuous parameters, 7 constraints",
            500,
            continuous,
        )]);
    let ms = |seconds: f64| format!("{:.1} ms", seconds * 1e3);
    for (space, n, (scratch, between, averaged)) in rows {
        println!(
            "suggest() with {n} observations ({space}, {build} build, {cores}): {} from \
             scratch; with a fit cache {} between refits, {} averaged over ten suggestions",
            ms(scratch),
            ms(between),
            ms(averaged)
        );
    }
    if args.timing_only {
        return;
    }

    let mut runs = Vec::new();
    for problem in &args.problems {
        for sampler_name in &args.samplers {
            let sampler: Box<dyn Sampler> = match sampler_name.as_str() {
                "random" => Box::new(RandomSearch),
                _ => Box::new(args.ours.clone()),
            };
            let start = Instant::now();
            for seed in args.first_seed..args.first_seed + args.seeds {
                let run_start = Instant::now();
                let (trials, reports) = run(
                    problem,
                    sampler_name,
                    sampler.as_ref(),
                    seed,
                    args.budget,
                    args.fit_cache,
                    args.trace,
                );
                runs.push(serde_json::json!({
                    "sampler": sampler_name,
                    "problem": problem.name,
                    "seed": seed,
                    "trials": trials,
                    "reported": reports,
                    "seconds": run_start.elapsed().as_secs_f64(),
                }));
            }
            eprintln!(
                "{} {sampler_name}: {} seeds in {:.1} s",
                problem.name,
                args.seeds,
                start.elapsed().as_secs_f64()
            );
        }
    }
    let document = serde_json::json!({
        "problems": describe(&args.problems),
        "runs": runs,
        "suggest_seconds": timings.iter().map(|(n, (scratch, between, averaged))| (n.to_string(), serde_json::json!({"scratch": scratch, "between_refits": between, "averaged": averaged}))).collect::<serde_json::Map<_, _>>(),
        "build": build,
        "cores": n_cores,
    });
    match &args.out {
        Some(path) => {
            let text = serde_json::to_string(&document)
                .expect("the trace document holds only finite numbers, strings and nulls");
            if let Err(error) = std::fs::write(path, text) {
                eprintln!("optimizer bench: cannot write the traces to {path}: {error}");
                std::process::exit(1);
            }
            println!("traces written to {path}");
        }
        None => println!("(no --out: traces not kept; summarize them with optimizer_figures.py)"),
    }
}

/// The largest constraint value (0 for an unconstrained problem).
fn worst_violation(constraints: &[f64]) -> f64 {
    constraints.iter().copied().reduce(f64::max).unwrap_or(0.0)
}
