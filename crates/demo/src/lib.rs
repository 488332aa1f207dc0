//! The demo application that servo's quickstart tunes (`servo demo-app`).
//!
//! A real HTTP server whose latency, throughput, CPU and memory depend on its
//! settings, with an optimum that is not at a corner of the search space. It
//! is also the scrape target for the Prometheus connector's tests.
//!
//! # Endpoints
//!
//! - `GET /` and `GET /work?key=K` do the work: the key (when absent, drawn
//!   from a Zipf(1.1) popularity over 100 000 keys, rank 0 the most popular)
//!   is looked up in an LRU cache; a miss is computed on the worker pool and
//!   cached. The answer is a small JSON object with the key, `hit`/`miss`, the
//!   algorithm and a SHA-256 digest that is a pure function of key and
//!   algorithm. Overload (queue full) is answered `503` with `Retry-After`.
//! - `GET /healthz`: `200 ok` once ready, `503` while prewarming.
//! - `GET /metrics`: Prometheus text format: `demo_requests_total{code}`,
//!   `demo_request_duration_seconds` (histogram), `demo_cache_hits_total`,
//!   `demo_cache_misses_total`, `demo_cache_bytes`, `demo_cache_entries`,
//!   `demo_cache_capacity_bytes`, `demo_workers`, `demo_queue_depth`,
//!   `demo_miss_cost_seconds`, `demo_info{algorithm}` and
//!   `process_resident_memory_bytes`.
//!
//! # Performance model
//!
//! With `λ` requests/s, hit ratio `h` and miss cost `c`, the worker pool must
//! supply `λ·(1−h)·c` CPU-seconds per second; each worker supplies at most
//! one core and the machine at most its core count. A hit costs tens of
//! microseconds on the async runtime; a miss costs `c` (3, 4 or 5 ms of CPU
//! for `fast`, `balanced`, `thorough`, calibrated at startup so the landscape
//! is the same on any machine and build) plus its wait in the queue.
//!
//! - `--cache-mb` sets `h`. With Zipf(1.1) popularity every doubling of the
//!   cache removes roughly a fifth of the misses: measured with `balanced`
//!   (16 entries per MiB), `h` = 0.48 at 8 MiB, 0.64 at 32, 0.74 at 128. The
//!   whole budget is allocated at startup, so RSS is about
//!   `cache-mb + 8 MiB × workers + 7 MiB`, plus up to about 8 MiB per busy
//!   worker that the allocator keeps for the artifacts it builds (measured:
//!   15 MiB with 1 worker and no cache, 63 with 1 worker and 32 MiB, 135
//!   with 8 workers and 32 MiB).
//! - `--workers` sets the pool's capacity. Utilisation per worker is
//!   `ρ = λ(1−h)c / workers`; the p99 latency stays near `c` for small `ρ` and
//!   explodes as `ρ → 1`. Workers beyond the free cores add no capacity, only
//!   8 MiB of scratch memory each and time-slicing between misses (which
//!   lengthens every miss), so the tail gets worse again.
//! - `--algorithm` trades CPU per miss against entries per MiB (4, 16, 64):
//!   `fast` wins with little or no cache, `balanced`/`thorough` once the
//!   cache is big enough for their higher hit ratios to pay for their
//!   costlier misses (`thorough`'s many small entries also take longest to
//!   prewarm, which is capped at 5 s).
//!
//! # Where the optimum lies at 200 requests/s on 2 cores
//!
//! At `h = 0` (no cache), one `balanced` worker would need 0.8 cores plus
//! overhead: it saturates, and two workers have `ρ ≈ 0.4`. Measured with an
//! open-loop Poisson load of 200 requests/s over 64 keep-alive connections
//! (12 s runs, the first 2 s discarded; the 2 cores were shared with other
//! work, load average 5 to 7, so absolute numbers are pessimistic):
//!
//! | algorithm | workers | cache MiB | hit ratio | p50 ms | p99 ms | CPU cores | RSS MiB |
//! |-----------|--------:|----------:|----------:|-------:|-------:|----------:|--------:|
//! | balanced  | 1       | 0         | 0         | 369    | 752    | 1.01      | 15      |
//! | balanced  | 1       | 32        | 0.64      | 1.8    | 25.7   | 0.44      | 63      |
//! | balanced  | 1       | 128       | 0.74      | 1.7    | 20.0   | 0.31      | 151     |
//! | balanced  | 2       | 0         | 0         | 7.7    | 110    | 0.98      | 23      |
//! | balanced  | 2       | 8         | 0.48      | 5.4    | 19.7   | 0.50      | 39      |
//! | balanced  | 2       | 32        | 0.64      | 2.1    | 12.4   | 0.28      | 71      |
//! | balanced  | 4       | 32        | 0.64      | 2.1    | 18.4   | 0.35      | 103     |
//! | balanced  | 8       | 32        | 0.64      | 3.8    | 66.4   | 0.45      | 135     |
//! | fast      | 1       | 0         | 0         | 8.4    | 92.5   | 0.68      | 18      |
//! | thorough  | 2       | 32        | 0.76      | 1.7    | 64.2   | 0.30      | 74      |
//!
//! So under a p99 SLO of about 25 ms the cheapest settings are two workers
//! with a small cache (8 to 32 MiB) or one worker with a larger one (32 MiB
//! and up); which of the two wins depends on the relative price of a core and
//! of memory. No cache, a single worker without cache, and more workers than
//! cores all violate the SLO or cost more for nothing.
//!
//! # Lifecycle
//!
//! [`serve`] binds, calibrates the miss cost (about 50 ms), allocates the
//! cache and the workers' scratch buffers, then prewarms the cache with the
//! most popular keys (at most 5 s) while already answering requests. Only
//! then does `/healthz` turn 200 and the single stdout line
//! `listening on http://ADDR:PORT` appear. On cancellation, SIGTERM or SIGINT
//! it stops accepting connections, lets in-flight requests finish (at most
//! 5 s) and joins the workers.

mod cache;
mod metrics;
mod work;

use std::fmt;
use std::future::IntoFuture as _;
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use cache::LruCache;

/// A diagnostic line on stderr. A failed write is ignored, never a panic: the parent reading
/// stderr may be gone (servo killed), and the app must still act on what it was about to report.
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stderr(), $($arg)*);
    }};
}
use metrics::{Gauges, Metrics};
use work::{Kernel, Pool, SubmitError, Zipf};

/// Number of distinct keys a request without `?key=` draws from.
const KEYSPACE: u64 = 100_000;

/// Zipf exponent of key popularity. Slightly above 1, so that every doubling
/// of the cache still removes a noticeable share of the misses (about a
/// fifth) and cache size matters over the whole useful `--cache-mb` range.
const ZIPF_EXPONENT: f64 = 1.1;

/// Upper bound on startup prewarming, so that even a huge cache with one
/// worker becomes ready quickly; whatever was not prewarmed fills from traffic.
const PREWARM_BUDGET: Duration = Duration::from_secs(5);

/// How long a graceful shutdown waits for in-flight requests before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings of the demo application, i.e. the knobs servo tunes.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// TCP port to listen on; 0 picks a free port (printed in the "listening on" line).
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Threads computing cache misses (1-64). Too few: misses queue up and tail latency
    /// explodes; more than the CPU cores: no extra throughput, slower misses from CPU
    /// contention, and 8 MiB more memory each.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..=64),
    )]
    pub workers: u16,

    /// Memory budget of the result cache in MiB (0-4096), allocated up front. Bigger:
    /// higher hit ratio, so fewer expensive misses and lower latency and CPU, but resident
    /// memory grows by as much.
    #[arg(
        long = "cache-mb",
        value_name = "MB",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(0..=4096),
    )]
    pub cache_mb: u32,

    /// How misses are computed and stored: the CPU cost of a miss against the size
    /// of a cached entry (so against how many entries fit in --cache-mb).
    #[arg(long, value_enum, value_name = "ALGORITHM", default_value_t = Algorithm::Balanced)]
    pub algorithm: Algorithm,

    /// Misses that may wait for a worker (1-65536); beyond that requests are shed with
    /// 503. Deeper: fewer errors under bursts, but longer worst-case latency.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 128,
        value_parser = clap::value_parser!(u32).range(1..=65536),
    )]
    pub queue_depth: u32,

    /// Start with an empty cache instead of computing the most popular keys before
    /// reporting ready (at most 5 s); the hit ratio then climbs slowly under traffic.
    #[arg(long)]
    pub no_prewarm: bool,

    /// Seed for drawing keys of requests without ?key=, for reproducible runs
    /// (default: a different seed each run).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl Default for DemoArgs {
    /// The same values as the command-line defaults.
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            workers: 4,
            cache_mb: 64,
            algorithm: Algorithm::Balanced,
            queue_depth: 128,
            no_prewarm: false,
            seed: None,
        }
    }
}

/// How a cache miss is computed and stored, a categorical trade-off between the
/// CPU cost of a miss and the memory taken by each cached entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Algorithm {
    /// About 3 ms of CPU per miss; 256 KiB per cached entry (4 per MiB of cache).
    Fast,
    /// About 4 ms of CPU per miss; 64 KiB per cached entry (16 per MiB of cache).
    Balanced,
    /// About 5 ms of CPU per miss; 16 KiB per cached entry (64 per MiB of cache).
    Thorough,
}

impl Algorithm {
    /// The name used on the command line and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Balanced => "balanced",
            Self::Thorough => "thorough",
        }
    }

    /// CPU time one miss is calibrated to take on an idle core.
    pub fn miss_cost_target(self) -> Duration {
        match self {
            Self::Fast => Duration::from_millis(3),
            Self::Balanced => Duration::from_millis(4),
            Self::Thorough => Duration::from_millis(5),
        }
    }

    /// Size of the artifact a miss produces and the cache keeps.
    pub fn entry_bytes(self) -> usize {
        match self {
            Self::Fast => 256 << 10,
            Self::Balanced => 64 << 10,
            Self::Thorough => 16 << 10,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runs the demo application until `cancel` is cancelled or the process
/// receives SIGTERM or SIGINT, then shuts down gracefully.
///
/// Once ready (bound, calibrated and prewarmed), prints exactly one line to
/// stdout, `listening on http://ADDR:PORT`, which is how a parent process
/// learns the port when `--port 0` is used; diagnostics go to stderr.
pub async fn serve(args: DemoArgs, cancel: CancellationToken) -> io::Result<()> {
    let stop = cancel.child_token();
    // The handlers are registered before anything else runs, and here rather than in the spawned
    // task (which may run later): from now on SIGTERM during startup (calibration, prewarming) is
    // a clean shutdown too; before, it has its default action and ends the process.
    let signals = tokio::spawn(cancel_on_signal(Signals::listen(), stop.clone()));
    let result = match DemoServer::bind(args).await {
        Ok(server) => server.run(stop).await,
        Err(err) => Err(err),
    };
    signals.abort();
    result
}

/// A bound but not yet running demo server.
///
/// Splitting [`serve`] into [`DemoServer::bind`] and [`DemoServer::run`] lets
/// an embedder learn the port before serving starts and run the server
/// without installing process-wide signal handlers (as the tests do).
pub struct DemoServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<AppState>,
    workers: Vec<JoinHandle<()>>,
    prewarm: bool,
}

impl fmt::Debug for DemoServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoServer")
            .field("local_addr", &self.local_addr)
            .field("workers", &self.workers.len())
            .field("algorithm", &self.state.kernel.algorithm())
            .finish_non_exhaustive()
    }
}

impl DemoServer {
    /// Binds the listening socket, calibrates the computation and starts the
    /// worker pool. Fails with an explanatory error if the address cannot be
    /// bound or the worker threads cannot be started.
    pub async fn bind(args: DemoArgs) -> io::Result<Self> {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|err| bind_error(addr, &err))?;
        let local_addr = listener.local_addr()?;

        let algorithm = args.algorithm;
        let kernel = tokio::task::spawn_blocking(move || Kernel::calibrate(algorithm))
            .await
            .map_err(|err| io::Error::other(format!("calibration failed: {err}")))?;
        let kernel = Arc::new(kernel);
        let workers = usize::from(args.workers);
        let queue_depth = usize::try_from(args.queue_depth).unwrap_or(usize::MAX);
        let (pool, handles) = Pool::start(workers, queue_depth, Arc::clone(&kernel))?;

        let capacity_bytes = usize::try_from(args.cache_mb)
            .unwrap_or(usize::MAX)
            .saturating_mul(1 << 20);
        // Allocating and writing the whole budget takes ~0.1 s per GiB.
        let cache = tokio::task::spawn_blocking(move || {
            LruCache::new(capacity_bytes, algorithm.entry_bytes())
        })
        .await
        .map_err(|err| io::Error::other(format!("allocating the cache failed: {err}")))?;
        let keyspace = usize::try_from(KEYSPACE).unwrap_or(usize::MAX);
        let prewarm_target = cache.capacity().min(keyspace);
        let seed = args.seed.unwrap_or_else(random_seed);

        let state = Arc::new(AppState {
            cache: Mutex::new(cache),
            metrics: Metrics::default(),
            pool,
            kernel,
            keys: Zipf::new(keyspace, ZIPF_EXPONENT),
            rng: Mutex::new(Xoshiro256PlusPlus::seed_from_u64(seed)),
            workers,
            ready: AtomicBool::new(false),
            prewarmed: AtomicUsize::new(0),
            prewarm_target,
        });
        Ok(Self {
            listener,
            local_addr,
            state,
            workers: handles,
            prewarm: !args.no_prewarm,
        })
    }

    /// The address the server is bound to (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `cancel` is cancelled, then stops accepting connections,
    /// lets in-flight requests finish (for at most 5 s) and stops the workers.
    ///
    /// Requests are answered from the start, but `/healthz` reports 503 and the
    /// "listening on" line is withheld until the cache has been prewarmed.
    pub async fn run(self, cancel: CancellationToken) -> io::Result<()> {
        let Self {
            listener,
            local_addr,
            state,
            workers,
            prewarm,
        } = self;
        let listener = listener.tap_io(|stream| {
            // Responses are small and latency is the product: never let Nagle's
            // algorithm hold a response back waiting for an ACK.
            let _ = stream.set_nodelay(true);
        });
        let shutdown = cancel.clone();
        let mut server = tokio::spawn(
            axum::serve(listener, router(Arc::clone(&state)))
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .into_future(),
        );

        let started = Instant::now();
        if prewarm {
            prewarm_cache(&state, &cancel).await;
        }
        if !cancel.is_cancelled() {
            state.ready.store(true, Ordering::SeqCst);
            announce(local_addr);
            note!(
                "demo-app: {} workers, algorithm {} ({:.1} ms of CPU per miss: {} KiB fill, {} rounds), \
                 cache {} MiB holding up to {} entries of {} KiB; {} prewarmed in {:.1} s",
                state.workers,
                state.kernel.algorithm(),
                state.kernel.miss_cost().as_secs_f64() * 1e3,
                state.kernel.span() >> 10,
                state.kernel.rounds(),
                state.cache_capacity_bytes() >> 20,
                state.prewarm_target,
                state.kernel.algorithm().entry_bytes() >> 10,
                state.prewarmed.load(Ordering::SeqCst),
                started.elapsed().as_secs_f64(),
            );
        }

        let served = tokio::select! {
            served = &mut server => Some(served),
            () = cancel.cancelled() => {
                tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.ok()
            }
        };
        state.pool.close();
        let result = match served {
            Some(Ok(result)) => result,
            Some(Err(join_error)) => Err(io::Error::other(format!(
                "the HTTP server task failed: {join_error}"
            ))),
            None => {
                server.abort();
                note!(
                    "demo-app: requests still in flight after {} s; closing them",
                    SHUTDOWN_GRACE.as_secs()
                );
                return Ok(());
            }
        };
        // Workers finish at most one computation each, plus skipping queued
        // jobs whose requesters are gone; joining keeps shutdown deterministic.
        let joined = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        });
        if tokio::time::timeout(SHUTDOWN_GRACE, joined).await.is_err() {
            note!("demo-app: workers did not stop in time; leaving them");
        }
        result
    }
}

/// Prints the readiness line on stdout and flushes it, since a parent process
/// is waiting on it through a pipe (where stdout is block-buffered).
fn announce(addr: SocketAddr) {
    let mut stdout = io::stdout().lock();
    let written = writeln!(stdout, "listening on http://{addr}").and_then(|()| stdout.flush());
    if let Err(err) = written {
        note!("demo-app: listening on http://{addr} (could not write to stdout: {err})");
    }
}

fn bind_error(addr: SocketAddr, err: &io::Error) -> io::Error {
    let hint = match err.kind() {
        io::ErrorKind::AddrInUse => {
            "another process is using this port: choose another --port, or --port 0 for a free one"
        }
        io::ErrorKind::AddrNotAvailable => {
            "--host must be an address of this machine, such as 127.0.0.1 or 0.0.0.0"
        }
        io::ErrorKind::PermissionDenied => {
            "ports below 1024 need extra privileges: choose a --port of 1024 or above"
        }
        _ => "check --host and --port",
    };
    io::Error::new(
        err.kind(),
        format!("cannot listen on {addr}: {err}; {hint}"),
    )
}

/// A seed that differs between runs, from the standard library's per-process
/// random hash keys (which avoids a dependency on an OS random-number crate).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(std::process::id())
}

/// The termination signals the app listens to, registered at once.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    #[cfg(unix)]
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(err) => {
                note!("demo-app: cannot handle {name} ({err}); it will not shut down gracefully");
                None
            }
        };
        Self {
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
            interrupt: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }

    #[cfg(not(unix))]
    fn listen() -> Self {
        Self {}
    }

    /// The name of the first signal received.
    #[cfg(unix)]
    async fn received(mut self) -> &'static str {
        tokio::select! {
            Some(()) = async { self.terminate.as_mut()?.recv().await } => "SIGTERM",
            Some(()) = async { self.interrupt.as_mut()?.recv().await } => "SIGINT",
            else => std::future::pending().await,
        }
    }

    #[cfg(not(unix))]
    async fn received(self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}

/// Cancels `cancel` on the first signal, then says so: the shutdown must not wait on (or fail
/// with) a write to a stderr nobody reads any more.
async fn cancel_on_signal(signals: Signals, cancel: CancellationToken) {
    tokio::select! {
        name = signals.received() => {
            cancel.cancel();
            note!("demo-app: received {name}, shutting down");
        }
        () = cancel.cancelled() => {}
    }
}

/// Computes the most popular keys (hottest first, so a cut-short prewarm keeps
/// the most valuable ones) until the cache is full or [`PREWARM_BUDGET`] is
/// spent, keeping every worker busy. This is what makes `--cache-mb` pay off
/// within seconds of a restart rather than after minutes of traffic, which
/// matters when servo restarts the app for every trial.
async fn prewarm_cache(state: &Arc<AppState>, cancel: &CancellationToken) {
    let deadline = Instant::now() + PREWARM_BUDGET;
    let target = u64::try_from(state.prewarm_target).unwrap_or(u64::MAX);
    let mut computed = Vec::with_capacity(state.prewarm_target);
    let mut in_flight = JoinSet::new();
    let mut next_key = 0u64;
    loop {
        while in_flight.len() < state.workers
            && next_key < target
            && Instant::now() < deadline
            && !cancel.is_cancelled()
        {
            let state = Arc::clone(state);
            let key = next_key;
            in_flight.spawn(async move { (key, state.pool.compute(key).await) });
            next_key += 1;
        }
        let joined = tokio::select! {
            joined = in_flight.join_next() => joined,
            () = cancel.cancelled() => None,
        };
        match joined {
            Some(Ok((key, Ok(entry)))) => {
                computed.push((key, entry));
                state.prewarmed.fetch_add(1, Ordering::SeqCst);
            }
            Some(Ok((_, Err(_)))) | Some(Err(_)) | None => break,
        }
    }
    in_flight.abort_all();
    // Insert the coldest first so the hottest keys end up most recently used:
    // the first misses of live traffic then evict the least valuable entries.
    computed.sort_unstable_by_key(|&(key, _)| std::cmp::Reverse(key));
    let mut cache = state.lock_cache();
    for (key, computed) in computed {
        cache.insert(key, &computed.artifact);
    }
}

struct AppState {
    cache: Mutex<LruCache>,
    metrics: Metrics,
    pool: Pool,
    kernel: Arc<Kernel>,
    keys: Zipf,
    rng: Mutex<Xoshiro256PlusPlus>,
    workers: usize,
    ready: AtomicBool,
    prewarmed: AtomicUsize,
    prewarm_target: usize,
}

impl AppState {
    /// Cache operations cannot leave the cache inconsistent halfway, so a
    /// panic elsewhere while holding the lock is no reason to stop serving.
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, LruCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache_capacity_bytes(&self) -> usize {
        self.lock_cache().capacity_bytes()
    }

    fn draw_key(&self) -> u64 {
        let uniform: f64 = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random();
        self.keys.rank(uniform)
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(work))
        .route("/work", get(work))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// `GET /` and `GET /work?key=K`: the request servo's load generator sends.
async fn work(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let (code, response) = match requested_key(query.as_deref()) {
        Err(message) => (
            StatusCode::BAD_REQUEST,
            plain(StatusCode::BAD_REQUEST, message),
        ),
        Ok(key) => answer(&state, key.unwrap_or_else(|| state.draw_key())).await,
    };
    state.metrics.observe(code.as_u16(), started.elapsed());
    response
}

async fn answer(state: &AppState, key: u64) -> (StatusCode, Response) {
    let cached = state.lock_cache().get(key);
    if let Some(digest) = cached {
        state.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::OK, work_body(state, key, "hit", &digest));
    }
    state.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
    let outcome = match state.pool.try_submit(key) {
        Ok(receiver) => receiver.await.map_err(|_| SubmitError::Closed),
        Err(err) => Err(err),
    };
    match outcome {
        Ok(computed) => {
            state.lock_cache().insert(key, &computed.artifact);
            (
                StatusCode::OK,
                work_body(state, key, "miss", &computed.digest),
            )
        }
        Err(SubmitError::Overloaded) => {
            let mut response = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "overloaded: all {} workers are busy and the queue of {} misses is full; \
                     retry later, or run with more --workers or a larger --cache-mb\n",
                    state.workers,
                    state.pool.queue_depth()
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            (StatusCode::SERVICE_UNAVAILABLE, response)
        }
        Err(SubmitError::Closed) => (
            StatusCode::SERVICE_UNAVAILABLE,
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting down: this request was not computed\n".to_owned(),
            ),
        ),
    }
}

/// Extracts `key` from the query string: `Ok(None)` when absent, an
/// explanation for the client when it is not a `u64`.
fn requested_key(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| match pair.split_once('=') {
            Some(("key", value)) => Some(value),
            None if pair == "key" => Some(""),
            _ => None,
        })
    else {
        return Ok(None);
    };
    value.parse().map(Some).map_err(|_| {
        let shown: String = value.chars().take(40).collect();
        format!(
            "invalid key {shown:?}: expected a whole number from 0 to {}, as in /work?key=42; \
             leave it out to draw a key from the built-in popularity distribution\n",
            u64::MAX
        )
    })
}

fn work_body(state: &AppState, key: u64, cache: &str, digest: &[u8; 32]) -> Response {
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    let body = format!(
        "{{\"key\":{key},\"cache\":\"{cache}\",\"algorithm\":\"{}\",\"digest\":\"{hex}\"}}\n",
        state.kernel.algorithm()
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn plain(code: StatusCode, message: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// `GET /healthz`: 200 once the server is ready (prewarm done), 503 before.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        plain(StatusCode::OK, "ok\n".to_owned())
    } else {
        plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "warming up: {} of {} cache entries computed\n",
                state.prewarmed.load(Ordering::SeqCst),
                state.prewarm_target
            ),
        )
    }
}

/// `GET /metrics`: Prometheus text exposition format.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let (cache_bytes, cache_capacity_bytes, cache_entries) = {
        let cache = state.lock_cache();
        (cache.used_bytes(), cache.capacity_bytes(), cache.len())
    };
    let gauges = Gauges {
        cache_bytes,
        cache_capacity_bytes,
        cache_entries,
        workers: state.workers,
        queue_depth: state.pool.queue_depth(),
        miss_cost: state.kernel.miss_cost(),
        algorithm: state.kernel.algorithm().as_str(),
        resident_memory_bytes: metrics::resident_memory_bytes(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&gauges),
    )
        .into_response()
}

async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "not found; this demo app serves GET /, GET /work?key=N, GET /healthz and GET /metrics\n"
            .to_owned(),
    )
}

/// `servo demo-app ARGS`: the demo app as a subcommand of the servo binary, so the quickstart needs
/// nothing but servo.
fn run_command(args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    use clap::Parser as _;

    /// Run the demo application servo's quickstart tunes: an HTTP server whose latency, CPU and
    /// memory really depend on --workers, --cache-mb and --algorithm.
    #[derive(clap::Parser)]
    #[command(name = "servo demo-app")]
    struct Command {
        #[command(flatten)]
        args: DemoArgs,
    }

    let argv = std::iter::once(std::ffi::OsString::from("servo demo-app")).chain(args);
    let command = match Command::try_parse_from(argv) {
        Ok(command) => command,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            note!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(command.args, CancellationToken::new())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            note!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

servo_core::inventory::submit!(servo_core::command::ExternalCommand {
    name: "demo-app",
    about: "Run the demo application the quickstart tunes (servo demo-app --help)",
    run: run_command,
});

/// Call from the binary so the linker keeps the `demo-app` registration (`inventory` only sees
/// crates that are actually linked).
pub fn link() {}

#[cfg(test)]
mod tests;
