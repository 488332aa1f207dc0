//! Load benchmark of `servo optimizer serve`: many simulated servos, one per application, speaking
//! the Opsani/ServoX protocol to one server over loopback.
//!
//! It creates `--apps` applications in a fresh store (a SQLite file in a temporary directory, or the
//! empty database `--store` names), starts the real `servo optimizer serve` on a free port, and runs
//! one task per application: HELLO, then WHATS_NEXT and the answer to each command (DESCRIPTION of
//! three settings and two metrics, ADJUSTMENT ok, MEASUREMENT from a cheap synthetic model of a
//! service) until its study is done (the server answers SLEEP) or `--time` is up. It prints the
//! request rate and client-side latency percentiles per event, trials completed per second, the
//! server's own mean latency per event (from `/metrics`) and the server's resident memory, then
//! checks every study against `GET .../trials`: as many complete trials as MEASUREMENTs accepted,
//! no trial number issued twice. Any HTTP status but 200, or a failed check, makes it exit 1.
//!
//! ```text
//! cargo bench --bench optimizer_server -- [--apps 100] [--trials 20] [--time 20s]
//!     [--think 0s] [--algorithm bayesian|random] [--store URL] [--servo PATH] [--threads 1]
//!     [--scrape 0] [--replicas 1]
//! ```
//!
//! `--replicas N` starts N servers on the same store (PostgreSQL, as several replicas of the
//! server would share it) and points servo `i` at replica `i % N`.
//!
//! `--scrape N` also scrapes `/metrics` N times a second for the whole run, as a Prometheus with a
//! short interval would, and prints the scrapes' latency: compare a run with and without it to see
//! what scraping costs the servos.
//!
//! By default the servos adjust and measure instantly, so they form a closed loop with no think
//! time: the server is saturated and the latencies are mostly queueing (about servos / throughput,
//! Little's law). `--think` makes each servo spend that long on every ADJUST and MEASURE, as a real
//! one does, for the latency at a load below saturation.
//!
//! `benches/optimizer-server.sh` wraps it (and `--postgres` runs it on a throwaway PostgreSQL).
//! The servos share one machine with the server: by default the load generator runs on one thread,
//! so on a 2-core machine the server gets about one core; the figures are a floor, not a ceiling.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const DEFAULT_APPS: usize = 100;
const DEFAULT_TRIALS: u32 = 20;
const DEFAULT_TIME: Duration = Duration::from_secs(20);
/// How long the server may take to print its address, and one request may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A 5xx is retried (as a real servo does) at most this many times in a row before the servo gives up.
const MAX_RETRIES: u32 = 5;

/// The optimization problem every application has: the cheapest configuration whose p99 latency
/// stays under 200 ms at a fixed load (see [`Service::measure`]).
const OBJECTIVE: &str = "main.replicas * (main.cpu * 0.03 + main.mem * 0.004)";
const CONSTRAINT: &str = "latency_p99 < 200ms";

struct Args {
    apps: usize,
    trials: u32,
    time: Duration,
    think: Duration,
    algorithm: String,
    store: Option<String>,
    servo: PathBuf,
    threads: usize,
    /// Scrapes of `/metrics` per second during the run (0: none).
    scrape: u32,
    /// Servers sharing the store.
    replicas: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        apps: DEFAULT_APPS,
        trials: DEFAULT_TRIALS,
        time: DEFAULT_TIME,
        think: Duration::ZERO,
        algorithm: "bayesian".into(),
        store: None,
        servo: PathBuf::from(env!("CARGO_BIN_EXE_servo")),
        threads: 1,
        scrape: 0,
        replicas: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--apps" => args.apps = number(&value("--apps")?, "--apps")?,
            "--trials" => args.trials = number(&value("--trials")?, "--trials")?,
            "--time" => args.time = seconds(&value("--time")?, "--time")?,
            "--think" => args.think = seconds(&value("--think")?, "--think")?,
            "--algorithm" => {
                args.algorithm = value("--algorithm")?;
                if !matches!(args.algorithm.as_str(), "bayesian" | "random") {
                    return Err("--algorithm is bayesian or random".into());
                }
            }
            "--store" => args.store = Some(value("--store")?),
            "--servo" => args.servo = PathBuf::from(value("--servo")?),
            "--threads" => args.threads = number(&value("--threads")?, "--threads")?,
            "--scrape" => args.scrape = number(&value("--scrape")?, "--scrape")?,
            "--replicas" => args.replicas = number(&value("--replicas")?, "--replicas")?,
            // `cargo bench` passes `--bench` to harness-less benches.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.apps == 0 || args.trials == 0 || args.threads == 0 || args.replicas == 0 {
        return Err("--apps, --trials, --threads and --replicas must be at least 1".into());
    }
    if args.time.is_zero() {
        return Err("--time must be more than 0".into());
    }
    Ok(args)
}

fn number<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name}: `{text}` is not a positive whole number"))
}

/// `20`, `20s`, `1.5m` or `100ms`; `--think` may be 0.
fn seconds(text: &str, name: &str) -> Result<Duration, String> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s / 1e3))
            .ok_or(format!("{name}: `{text}` is not a duration like 20s"));
    }
    let (digits, scale) = match text.strip_suffix('m') {
        Some(d) => (d, 60.0),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    digits
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s * scale))
        .ok_or(format!("{name}: `{text}` is not a duration like 20s"))
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("optimizer_server bench: {message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build();
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(bench(&args)),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(message) => {
            eprintln!("optimizer_server bench: {message}");
            std::process::exit(1);
        }
    }
}

/// `servo optimizer serve`, killed and reaped on drop so no run leaves it behind.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(servo: &Path, store: &str, log: &Path) -> Result<Server, String> {
        let log = std::fs::File::create(log).map_err(|e| format!("cannot create the log: {e}"))?;
        let mut child = servo_command(servo)
            .args(["optimizer", "serve", "--store", store])
            .args(["--listen", "127.0.0.1:0", "--sleep", "1s"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", servo.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the server's stdout is not piped".into());
        };
        // Own the child before waiting, so an early return still kills it.
        let mut server = Server {
            child,
            base: String::new(),
        };
        // The first stdout line gives the picked port; a thread reads it (and drains the rest) so
        // that the wait below is bounded.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            _ => return Err("the server did not print its address; see its log".into()),
        };
        let address = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or(format!("unexpected first line from the server: {line}"))?;
        server.base = address.trim_end_matches('/').to_string();
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `servo` with none of the caller's `SERVO_*` settings and quiet logs.
fn servo_command(servo: &Path) -> Command {
    let mut command = Command::new(servo);
    for (key, _) in std::env::vars() {
        if key.starts_with("SERVO_") {
            command.env_remove(key);
        }
    }
    command.env("NO_COLOR", "1").env("SERVO_LOG_LEVEL", "warn");
    command
}

fn token(app: usize) -> String {
    format!("bench-token-{app:05}-0123456789abcdef")
}

fn app_name(app: usize) -> String {
    format!("bench/app-{app:03}")
}

/// Resident memory now and at its peak (KiB) and threads, from `/proc/PID/status`.
fn memory(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?, field("Threads:")?))
}

async fn bench(args: &Args) -> Result<bool, String> {
    let dir =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let store = match &args.store {
        Some(url) => url.clone(),
        None => dir.path().join("optimizer.db").display().to_string(),
    };
    let shown_store = if store.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };

    let started = Instant::now();
    for app in 0..args.apps {
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, token(app)).map_err(|e| format!("cannot write: {e}"))?;
        let output = servo_command(&args.servo)
            .args([
                "optimizer",
                "app",
                "create",
                &app_name(app),
                "--store",
                &store,
            ])
            .args(["--minimize", OBJECTIVE, "--constraint", CONSTRAINT])
            .args(["--trials", &args.trials.to_string()])
            .args(["--algorithm", &args.algorithm, "--seed", &app.to_string()])
            .args(["--duration", "1s", "--token-file"])
            .arg(&token_file)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", args.servo.display()))?;
        if !output.status.success() {
            return Err(format!(
                "`servo optimizer app create` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    println!(
        "created {} applications in {:.1} s ({shown_store} store, {} trials each, {} sampler)",
        args.apps,
        started.elapsed().as_secs_f64(),
        args.trials,
        args.algorithm
    );

    let mut servers = Vec::with_capacity(args.replicas);
    for replica in 0..args.replicas {
        let log = dir.path().join(format!("server-{replica}.log"));
        servers.push(Server::start(&args.servo, &store, &log)?);
    }
    if args.replicas > 1 {
        println!("{} server replicas on the same store", args.replicas);
    }
    let server = &servers[0];
    let log = dir.path().join("server-0.log");
    let idle = memory(server.pid());
    servo_core::http::install_crypto();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(args.apps)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let base = Arc::new(server.base.clone());

    let started = Instant::now();
    let deadline = started + args.time;
    let (stop_scraping, scraping_stopped) = tokio::sync::oneshot::channel::<()>();
    let scraper = (args.scrape > 0).then(|| {
        tokio::spawn(scrape(
            client.clone(),
            format!("{base}/metrics"),
            Duration::from_secs_f64(1.0 / f64::from(args.scrape)),
            scraping_stopped,
        ))
    });
    let mut tasks = Vec::with_capacity(args.apps);
    for app in 0..args.apps {
        let servo = SimulatedServo {
            client: client.clone(),
            url: format!(
                "{}/accounts/{}/servo",
                servers[app % servers.len()].base,
                app_name(app).replace('/', "/applications/")
            ),
            bearer: format!("Bearer {}", token(app)),
            uid: format!("bench-servo-{app}"),
            service: Service::default(),
            think: args.think,
            stats: Stats::default(),
        };
        tasks.push(tokio::spawn(servo.run(deadline)));
    }
    let mut stats = Stats::default();
    let mut finished = 0;
    let mut last_done = Duration::ZERO;
    let mut failures = Vec::new();
    for (app, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(outcome) => {
                if let Some(at) = outcome.stats.done_at {
                    finished += 1;
                    last_done = last_done.max(at.duration_since(started));
                }
                if let Some(e) = &outcome.stats.error {
                    failures.push(format!("{}: {e}", app_name(app)));
                }
                stats.merge(outcome.stats);
            }
            Err(e) => failures.push(format!("{}: the task failed: {e}", app_name(app))),
        }
    }
    let wall = started.elapsed();
    let end = memory(server.pid());

    report(args, &stats, wall, finished, last_done, idle, end);
    let _ = stop_scraping.send(());
    if let Some(scraper) = scraper {
        let (samples, errors) = scraper.await.unwrap_or_default();
        print_row(&format!("scrapes {}/s", args.scrape), &samples);
        if errors > 0 {
            failures.push(format!("{errors} scrapes of /metrics failed"));
        }
    }
    let mut server_side: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for replica in &servers {
        for (event, (mean, n)) in server_latency(&client, &replica.base).await {
            let (sum, count) = server_side.entry(event).or_default();
            *sum += mean * n as f64;
            *count += n;
        }
    }
    for (sum, count) in server_side.values_mut() {
        *sum /= (*count).max(1) as f64;
    }
    if !server_side.is_empty() {
        let text: Vec<String> = server_side
            .iter()
            .map(|(event, (mean, n))| format!("{event} {:.2} ms (n={n})", mean * 1e3))
            .collect();
        println!("server-side mean latency: {}", text.join(", "));
    }

    // Every study as the server has it: as many complete trials as MEASUREMENTs accepted, numbers
    // unique and contiguous, none still running unless its servo was cut off by the deadline.
    let mut complete = 0;
    for app in 0..args.apps {
        match trials_of(&client, &base, app).await {
            Ok(numbers) => {
                let mut seen: Vec<i64> = numbers.iter().map(|(n, _)| *n).collect();
                seen.sort_unstable();
                let contiguous = seen.iter().enumerate().all(|(i, n)| *n == i as i64);
                if !contiguous {
                    failures.push(format!(
                        "{}: trial numbers not unique and contiguous: {seen:?}",
                        app_name(app)
                    ));
                }
                complete += numbers.iter().filter(|(_, s)| s == "complete").count();
            }
            Err(e) => failures.push(format!("{}: {e}", app_name(app))),
        }
    }
    if complete != stats.measured {
        failures.push(format!(
            "the server holds {complete} complete trials, the servos had {} MEASUREMENTs accepted",
            stats.measured
        ));
    }
    drop(servers);

    let ok = failures.is_empty()
        && stats.transport_errors == 0
        && stats.statuses.keys().all(|s| *s == 200);
    if ok {
        println!(
            "checks: {complete} complete trials on the server = MEASUREMENTs accepted; trial numbers unique; every answer 200"
        );
    } else {
        for f in failures.iter().take(20) {
            eprintln!("FAILED {f}");
        }
        if failures.len() > 20 {
            eprintln!("... and {} more", failures.len() - 20);
        }
        if let Ok(text) = std::fs::read_to_string(&log) {
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            eprintln!("server log (last lines):");
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
        }
    }
    Ok(ok)
}

/// GETs `url` every `interval` until `stop` (when the servos are done): each scrape's latency (ms)
/// and how many failed.
async fn scrape(
    client: reqwest::Client,
    url: String,
    interval: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> (Vec<f64>, usize) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut samples, mut errors) = (Vec::new(), 0);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => break,
        }
        let sent = Instant::now();
        match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => {
                let _ = response.bytes().await;
                samples.push(sent.elapsed().as_secs_f64() * 1e3);
            }
            _ => errors += 1,
        }
    }
    (samples, errors)
}

fn report(
    args: &Args,
    stats: &Stats,
    wall: Duration,
    finished: usize,
    last_done: Duration,
    idle: Option<(u64, u64, u64)>,
    end: Option<(u64, u64, u64)>,
) {
    let seconds = wall.as_secs_f64();
    let total: usize = stats.latency.values().map(Vec::len).sum();
    println!(
        "{} servos{} for {:.1} s: {} requests, {:.0} requests/s; {} trials complete, {:.1} trials/s; {finished}/{} studies done{}",
        args.apps,
        if args.think.is_zero() {
            String::new()
        } else {
            format!(" (think {:?})", args.think)
        },
        seconds,
        total,
        total as f64 / seconds,
        stats.measured,
        stats.measured as f64 / seconds,
        args.apps,
        if finished == args.apps {
            format!(" (the last after {:.1} s)", last_done.as_secs_f64())
        } else {
            String::new()
        }
    );
    let statuses: Vec<String> = stats
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    println!(
        "HTTP statuses: {}; transport errors: {}",
        statuses.join(", "),
        stats.transport_errors
    );
    println!(
        "{:<12} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p90", "p99", "max"
    );
    let mut all: Vec<f64> = Vec::with_capacity(total);
    for (event, samples) in &stats.latency {
        print_row(event, samples);
        all.extend(samples);
    }
    print_row("all", &all);
    let kib = |m: Option<(u64, u64, u64)>| {
        m.map_or("unknown".to_string(), |(rss, hwm, threads)| {
            format!(
                "RSS {:.1} MiB (peak {:.1} MiB, {threads} threads)",
                rss as f64 / 1024.0,
                hwm as f64 / 1024.0
            )
        })
    };
    println!("server memory: idle {}; at the end {}", kib(idle), kib(end));
}

fn print_row(name: &str, samples: &[f64]) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        // Nearest rank.
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] * 1e3
    };
    println!(
        "{name:<12} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        sorted.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

/// Mean seconds and count per event, from the server's `/metrics` histogram sums.
async fn server_latency(client: &reqwest::Client, base: &str) -> BTreeMap<String, (f64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(response) = client.get(format!("{base}/metrics")).send().await else {
        return out;
    };
    let Ok(text) = response.text().await else {
        return out;
    };
    let mut sums = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let event = |prefix: &str| {
            series
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix("\"}"))
                .map(str::to_string)
        };
        if let Some(e) = event("servo_optimizer_request_duration_seconds_sum{event=\"") {
            sums.insert(e, value.parse::<f64>().unwrap_or(f64::NAN));
        } else if let Some(e) = event("servo_optimizer_request_duration_seconds_count{event=\"") {
            counts.insert(e, value.parse::<u64>().unwrap_or(0));
        }
    }
    for (event, sum) in sums {
        if let Some(&n) = counts.get(&event).filter(|n| **n > 0) {
            out.insert(event, (sum / n as f64, n));
        }
    }
    out
}

/// (number, state) of every trial of an application's current study.
async fn trials_of(
    client: &reqwest::Client,
    base: &str,
    app: usize,
) -> Result<Vec<(i64, String)>, String> {
    let url = format!(
        "{base}/accounts/{}/trials",
        app_name(app).replace('/', "/applications/")
    );
    let response = client
        .get(url)
        .bearer_auth(token(app))
        .send()
        .await
        .map_err(|e| format!("GET trials: {e}"))?;
    if response.status().as_u16() == 404 {
        return Ok(Vec::new());
    }
    if !response.status().is_success() {
        return Err(format!("GET trials: HTTP {}", response.status()));
    }
    let trials: Vec<Value> = response
        .json()
        .await
        .map_err(|e| format!("GET trials: {e}"))?;
    Ok(trials
        .iter()
        .map(|t| {
            (
                t["number"].as_i64().unwrap_or(-1),
                t["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// What one servo saw.
#[derive(Default)]
struct Stats {
    /// Seconds per request, by event.
    latency: BTreeMap<String, Vec<f64>>,
    statuses: BTreeMap<u16, usize>,
    /// Requests that got no HTTP answer (connection refused or reset, timeout), then retried.
    transport_errors: usize,
    /// MEASUREMENTs the server accepted.
    measured: usize,
    /// When the server first answered SLEEP (the study is over).
    done_at: Option<Instant>,
    /// Why this servo stopped early.
    error: Option<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        for (event, samples) in other.latency {
            self.latency.entry(event).or_default().extend(samples);
        }
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.measured += other.measured;
        self.transport_errors += other.transport_errors;
    }
}

/// A service whose p99 latency falls as it gets more capacity (CPU × replicas) for a fixed load,
/// with a memory-starved penalty: cheap to compute, yet a real trade-off for the optimizer.
struct Service {
    cpu: f64,
    mem: f64,
    replicas: f64,
}

impl Default for Service {
    /// The baseline: feasible (about 120 ms) and far from the cheapest feasible configuration.
    fn default() -> Self {
        Service {
            cpu: 1.0,
            mem: 2.0,
            replicas: 4.0,
        }
    }
}

impl Service {
    const LOAD_RPS: f64 = 1000.0;

    fn description(&self) -> Value {
        json!({
            "application": {"components": {"main": {"settings": {
                "cpu": {"type": "range", "min": 0.25, "max": 4, "step": 0.125, "value": self.cpu, "unit": "cores", "pinned": false},
                "mem": {"type": "range", "min": 0.25, "max": 8, "step": 0.25, "value": self.mem, "unit": "GiB", "pinned": false},
                "replicas": {"type": "range", "min": 1, "max": 8, "step": 1, "value": self.replicas, "pinned": false},
            }}}},
            "measurement": {"metrics": {"latency_p99": {"unit": "ms"}, "throughput": {"unit": "rps"}}},
        })
    }

    fn adjust(&mut self, state: &Value) {
        let settings = &state["application"]["components"]["main"]["settings"];
        for (name, slot) in [
            ("cpu", &mut self.cpu),
            ("mem", &mut self.mem),
            ("replicas", &mut self.replicas),
        ] {
            if let Some(v) = settings[name]["value"].as_f64() {
                *slot = v;
            }
        }
    }

    fn measure(&self) -> Value {
        let capacity = 400.0 * self.cpu * self.replicas;
        let utilisation = (Self::LOAD_RPS / capacity).min(0.99);
        let latency = 20.0 + 30.0 / (1.0 - utilisation) + 40.0 / self.mem;
        json!({
            "latency_p99": {"unit": "ms", "value": latency},
            "throughput": {"unit": "rps", "value": Self::LOAD_RPS.min(capacity)},
        })
    }
}

struct SimulatedServo {
    client: reqwest::Client,
    url: String,
    bearer: String,
    uid: String,
    service: Service,
    /// How long adjusting or measuring takes.
    think: Duration,
    stats: Stats,
}

struct Outcome {
    stats: Stats,
}

impl SimulatedServo {
    async fn run(mut self, deadline: Instant) -> Outcome {
        if let Err(e) = self.converse(deadline).await {
            self.stats.error = Some(e);
        }
        Outcome { stats: self.stats }
    }

    async fn converse(&mut self, deadline: Instant) -> Result<(), String> {
        let agent = json!({"agent": "servo-bench", "telemetry": {}});
        self.send("HELLO", agent).await?;
        while Instant::now() < deadline {
            let command = self.send("WHATS_NEXT", Value::Null).await?;
            let uid = command["cmd_uid"].clone();
            match command["cmd"].as_str() {
                Some("DESCRIBE") => {
                    let status = json!({"status": "ok", "cmd_uid": uid, "descriptor": self.service.description()});
                    self.send("DESCRIPTION", status).await?;
                }
                Some("ADJUST") => {
                    tokio::time::sleep(self.think).await;
                    self.service.adjust(&command["param"]["state"]);
                    let status = json!({"status": "ok", "cmd_uid": uid, "state": self.service.description()});
                    self.send("ADJUSTMENT", status).await?;
                }
                Some("MEASURE") => {
                    tokio::time::sleep(self.think).await;
                    let status = json!({"status": "ok", "cmd_uid": uid, "metrics": self.service.measure(), "annotations": {}});
                    let answer = self.send("MEASUREMENT", status).await?;
                    if answer["status"] != "ok" {
                        return Err(format!("MEASUREMENT answered {answer}"));
                    }
                    self.stats.measured += 1;
                }
                Some("SLEEP") => {
                    let reason = command["param"]["data"]["reason"].as_str().unwrap_or("");
                    if !reason.starts_with("study complete") {
                        return Err(format!("SLEEP before the study completed: {reason}"));
                    }
                    self.stats.done_at = Some(Instant::now());
                    break;
                }
                _ => return Err(format!("WHATS_NEXT answered {command}")),
            }
        }
        self.send("GOODBYE", json!({"reason": "benchmark over"}))
            .await
            .map(|_| ())
    }

    /// Posts one event and returns the answer, retrying a 5xx or a transport error as ServoX does.
    async fn send(&mut self, event: &str, param: Value) -> Result<Value, String> {
        let body = json!({"event": event, "param": param, "servo_uid": self.uid});
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result = self
                .client
                .post(&self.url)
                .header(reqwest::header::AUTHORIZATION, &self.bearer)
                .json(&body)
                .send()
                .await;
            let response = match result {
                Ok(response) => response,
                Err(_) if attempt < MAX_RETRIES => {
                    self.stats.transport_errors += 1;
                    attempt += 1;
                    backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(format!("{event}: {e}")),
            };
            let status = response.status().as_u16();
            let text = response.text().await.map_err(|e| format!("{event}: {e}"))?;
            let elapsed = started.elapsed().as_secs_f64();
            self.stats
                .latency
                .entry(event.to_string())
                .or_default()
                .push(elapsed);
            *self.stats.statuses.entry(status).or_default() += 1;
            match status {
                200 => {
                    return serde_json::from_str(&text)
                        .map_err(|e| format!("{event}: the answer is not JSON: {e}"));
                }
                500.. if attempt < MAX_RETRIES => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                _ => return Err(format!("{event}: HTTP {status}: {text}")),
            }
        }
    }
}

/// 50 ms, 100 ms, 200 ms, ...
async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
}
