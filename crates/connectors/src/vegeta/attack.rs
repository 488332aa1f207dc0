//! The load generator: vegeta's attack semantics on tokio, with its own
//! HTTP/1.1 client (hyper's for HTTP/2).
//!
//! # How an attack runs
//!
//! With a rate, the attack is *open-loop*: request `i` is due at
//! `start + i × period / count` whatever happened to earlier requests, and its
//! latency is measured from that due time. A target that stalls therefore
//! shows up as growing latencies instead of silently lowering the load
//! (no coordinated omission).
//!
//! Three kinds of actors cooperate:
//!
//! - the *pacer*, a dedicated blocking thread, sleeps until each request is due
//!   and hands it to an idle worker. It runs outside the async runtime because
//!   tokio's timer wheel has millisecond granularity, which would add up to
//!   1 ms of artificial latency to every request; a thread sleep is accurate to
//!   tens of microseconds. (If the machine is too busy for the pacer to keep
//!   up, its lateness does show in the latencies, measured from the due time.)
//! - *workers*, async tasks that send one request at a time. As in vegeta, the
//!   attack starts `workers` of them and starts another whenever a request is
//!   due while all are busy, up to `max_workers`; past that, due requests
//!   queue (and their latency grows from their due time). Each worker owns its
//!   connections (see the `connection` module) and sends its results to the
//!   collector in batches: the request path shares nothing with other workers.
//! - the *collector*, the [`attack`] future itself, which aggregates results
//!   into [`Report`] and reports [`Progress`].
//!
//! The workers do not run on the caller's runtime but on the attack's own
//! threads (see the `threads` module): one per core (fewer if there can be
//! fewer workers), named `attack-1`, `attack-2`…, each a single-threaded
//! runtime with its own I/O driver and timers; workers are placed on them
//! round-robin, and an HTTP/2 connection's task runs on its worker's thread.
//! Like wrk's threads, each thread polls only its own connections. On a
//! multi-threaded runtime one thread at a time collects the I/O events of
//! every connection, so when the machine preempts that thread every request
//! waits. Side by side on a busy machine, the attack's median request rate
//! on its own threads went from 7 % lower to 26 % higher than on a
//! multi-threaded runtime (higher in seven of ten comparisons), and paced
//! attacks mostly kept closer to their schedule, at up to 7 % more CPU per
//! request: with fewer connections, each event loop finds fewer of them
//! ready per wake-up (figures in `docs/benchmarks.md`). The collector and
//! the pacer stay where they were; results reach the collector over the same
//! channel.
//! The threads end with the attack: once every worker is done, or, when the
//! future is dropped, with the drop, which joins them after dropping what
//! still ran on them.
//!
//! Without a rate, `workers` workers send requests back to back and each
//! request's latency is measured from when it was sent.

use std::collections::{BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

use super::report::{Hit, Latencies, Metrics, Report};
use super::targets::Target;

mod connection;
mod http1;
mod threads;
mod tls;
mod workers;

use connection::{Connections, Connector, Prepared};
use threads::{Threads, handle_for};
use tls::tls_config;
use workers::{WorkerContext, back_to_back_worker, paced_worker};

/// How hard, how long and how to attack. Field docs give vegeta's flag names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackOptions {
    /// `Some((count, period))` sends `count` requests every `period`
    /// (vegeta's `-rate=count/period`); `None`, or a count of 0, sends as
    /// fast as `workers` workers can, each waiting for its previous response.
    pub rate: Option<(u64, Duration)>,
    /// How long to send requests; zero means until cancelled.
    pub duration: Duration,
    /// Workers started up front; with no rate, the number of concurrent
    /// requests.
    pub workers: u64,
    /// Upper bound on workers when requests are due faster than they
    /// complete; `u64::MAX` for no bound (vegeta's default).
    pub max_workers: u64,
    /// Idle connections kept open per host for reuse (vegeta's
    /// `-connections`).
    pub connections: usize,
    /// Response body bytes counted per response (`-1` for all). Bodies are
    /// always read to the end so that connections can be reused.
    pub max_body: i64,
    /// Offer HTTP/2 to https targets (negotiated with ALPN). Plain http
    /// targets always use HTTP/1.1, as with vegeta. Each worker has its own
    /// HTTP/2 connection (Go would multiplex all workers on one).
    pub http2: bool,
    /// Reuse connections between requests.
    pub keepalive: bool,
    /// Accept any TLS certificate (self-signed, expired, wrong host).
    pub insecure: bool,
    /// Limit for a request, from sending it to reading the last byte of the
    /// response; zero for none.
    pub timeout: Duration,
    /// Length of the intervals in [`Report::intervals`].
    pub reporting_interval: Duration,
}

impl Default for AttackOptions {
    /// vegeta's defaults (50 requests/s, until cancelled), with ServoX's 15 s
    /// reporting interval.
    fn default() -> Self {
        Self {
            rate: Some((50, Duration::from_secs(1))),
            duration: Duration::ZERO,
            workers: 10,
            max_workers: u64::MAX,
            connections: 10_000,
            max_body: -1,
            http2: true,
            keepalive: true,
            insecure: false,
            timeout: Duration::from_secs(30),
            reporting_interval: Duration::from_secs(15),
        }
    }
}

/// Where an attack stands, reported about once a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Time since the attack started.
    pub elapsed: Duration,
    /// Requests completed so far.
    pub requests: u64,
    /// Requests completed with a status in `200..400`.
    pub successes: u64,
    /// The latencies of the requests completed so far (zero before the first).
    pub latency: Latencies,
}

/// Why an attack could not run. Failures of individual requests are not
/// errors: they are counted in the [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    #[error("no targets to attack: give at least one target")]
    NoTargets,
    #[error("invalid attack options: {0}")]
    InvalidOptions(String),
    #[error("cannot attack {0}")]
    InvalidTarget(String),
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the request scheduler failed: {0}")]
    Scheduler(String),
    #[error("cannot start the attack's threads: {0}")]
    Threads(std::io::Error),
}

/// Runs an attack against `targets` (used round-robin) and reports on it.
///
/// Returns once the duration has elapsed and every request in flight has
/// completed or timed out. When `cancel` fires, no further request is sent,
/// requests in flight are abandoned (and not counted) and the report of what
/// completed is returned with `cancelled` set. Dropping the returned future
/// stops the attack as well. Either way no thread of the attack is left
/// when this returns or the drop completes.
///
/// `on_progress` is called about once a second from the task awaiting this
/// future, so it should return quickly.
pub async fn attack(
    targets: &[Target],
    options: &AttackOptions,
    cancel: CancellationToken,
    mut on_progress: impl FnMut(Progress) + Send,
) -> Result<Report, AttackError> {
    let mode = validate(targets, options)?;
    let (connector, prepared) = Connector::new(
        targets,
        tls_config(options.insecure, options.http2)?,
        options.http2,
        options.keepalive,
        options.connections,
    )
    .map_err(AttackError::InvalidTarget)?;

    // Stops the pacer and the workers if this future is dropped mid-attack.
    let stop = cancel.child_token();
    let _stop_on_drop = stop.clone().drop_guard();

    let (events_tx, mut events) = unbounded_channel();
    let start = Instant::now();
    let deadline = (!options.duration.is_zero()).then_some(options.duration);
    let context = Arc::new(WorkerContext {
        hitter: Hitter {
            connector,
            targets: prepared,
            names: targets
                .iter()
                .map(|target| format!("{} {}", target.method, target.url))
                .collect(),
            start,
            timeout: (!options.timeout.is_zero()).then_some(options.timeout),
            max_body: u64::try_from(options.max_body).unwrap_or(u64::MAX),
        },
        events: events_tx,
        stop: stop.clone(),
    });

    // Started after everything that can fail without them; dropping them
    // (with this future) ends them.
    let threads = Threads::start(match mode {
        Mode::Paced(_) => options.max_workers,
        Mode::BackToBack => options.workers,
    })
    .map_err(AttackError::Threads)?;
    let mut watermark;
    let mut pacer = None;
    let dispatcher;
    match mode {
        Mode::Paced(schedule) => {
            watermark = Watermark::paced(schedule);
            let shared = Arc::new(Dispatcher::new(
                Arc::clone(&context),
                options.max_workers,
                threads.handles().to_vec(),
            ));
            for _ in 0..options.workers {
                shared.spawn_idle_worker();
            }
            let pacer_dispatcher = Arc::clone(&shared);
            let pacer_stop = stop.clone();
            pacer = Some(tokio::task::spawn_blocking(move || {
                let _close = CloseOnDrop(&pacer_dispatcher);
                run_pacer(schedule, start, &pacer_stop, |ticket| {
                    pacer_dispatcher.dispatch(ticket);
                });
            }));
            dispatcher = Some(shared);
        }
        Mode::BackToBack => {
            let workers = usize::try_from(options.workers).unwrap_or(usize::MAX);
            watermark = Watermark::back_to_back(workers);
            let counter = Arc::new(AtomicU64::new(0));
            for id in 0..workers {
                handle_for(threads.handles(), id).spawn(back_to_back_worker(
                    id,
                    Arc::clone(&context),
                    Arc::clone(&counter),
                    deadline,
                ));
            }
            dispatcher = None;
        }
    }
    // From here on only workers (and the dispatcher, until the schedule ends)
    // hold event senders: the channel closes when the attack is over.
    drop(context);

    let mut metrics = Metrics::new(options.reporting_interval, options.timeout);
    let mut progress = tokio::time::interval_at(
        tokio::time::Instant::from_std(start) + PROGRESS_EVERY,
        PROGRESS_EVERY,
    );
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cancelled_at = None;
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    loop {
        tokio::select! {
            biased;
            _ = progress.tick() => {
                metrics.close_intervals_before(watermark.current());
                on_progress(Progress {
                    elapsed: start.elapsed(),
                    requests: metrics.requests(),
                    successes: metrics.successes(),
                    latency: metrics.latencies(),
                });
            }
            () = &mut cancelled, if cancelled_at.is_none() => {
                cancelled_at = Some(start.elapsed());
            }
            received = events.recv_many(&mut batch, EVENT_BATCH) => {
                if received == 0 {
                    break;
                }
                for event in batch.drain(..) {
                    match event {
                        Event::Hits { worker, hits } => {
                            for (index, hit) in hits {
                                watermark.completed(worker, index, hit.completed);
                                metrics.record(hit);
                            }
                        }
                        Event::Retired { worker } => watermark.retired(worker),
                    }
                }
            }
        }
    }

    if let Some(pacer) = pacer {
        pacer
            .await
            .map_err(|error| AttackError::Scheduler(error.to_string()))?;
    }
    // Every worker is done: what is left on the threads (HTTP/2 connection
    // tasks) is dropped with them.
    threads.shut_down().await;
    let unsent = dispatcher.map_or(0, |dispatcher| dispatcher.lock().unsent);
    let cancelled = cancel.is_cancelled();
    let issued_for = match (deadline, cancelled_at) {
        (Some(deadline), Some(at)) => deadline.min(at),
        (Some(deadline), None) => deadline,
        (None, Some(at)) => at,
        (None, None) => start.elapsed(),
    };
    Ok(metrics.finish(issued_for, unsent, cancelled))
}

const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Events taken from the channel per wake-up of the collector.
const EVENT_BATCH: usize = 64;

/// Hits a worker collects before sending them to the collector, and how long
/// it may hold them (see [`Outbox`]). 256 rather than 64 wakes the collector's
/// thread a quarter as often: at full speed against the hello server it took
/// 4 % more requests/s at 5 % less CPU per request, against nginx 1 % more at
/// 1 % less (medians of 24 rounds alternating with 64, in three runs of
/// `benches/vegeta-vs-wrk.sh`).
const OUTBOX_BATCH: usize = 256;
const OUTBOX_MAX_AGE: Duration = Duration::from_millis(50);

/// Workers are tasks started up front: a mistyped huge number would exhaust
/// memory before the first request. (`max_workers` needs no such bound: those
/// workers start only when requests are due.)
const MAX_INITIAL_WORKERS: u64 = 100_000;

/// The pacer checks for cancellation at least this often while sleeping.
const PACER_MAX_SLEEP: Duration = Duration::from_millis(20);

enum Mode {
    Paced(Schedule),
    BackToBack,
}

fn validate(targets: &[Target], options: &AttackOptions) -> Result<Mode, AttackError> {
    let invalid = |message: String| Err(AttackError::InvalidOptions(message));
    if targets.is_empty() {
        return Err(AttackError::NoTargets);
    }
    if options.workers == 0 || options.workers > MAX_INITIAL_WORKERS {
        return invalid(format!(
            "workers must be between 1 and {MAX_INITIAL_WORKERS}, not {}",
            options.workers
        ));
    }
    if options.max_workers < options.workers {
        return invalid(format!(
            "max_workers ({}) must be at least workers ({})",
            options.max_workers, options.workers
        ));
    }
    if options.connections == 0 {
        return invalid(
            "connections (idle connections kept per host) must be at least 1".to_owned(),
        );
    }
    if options.max_body < -1 {
        return invalid(format!(
            "max_body must be -1 (no limit) or a number of bytes, not {}",
            options.max_body
        ));
    }
    if options.reporting_interval.is_zero() {
        return invalid("reporting_interval must be longer than zero".to_owned());
    }
    match options.rate {
        None | Some((0, _)) => Ok(Mode::BackToBack),
        Some((_, period)) if period.is_zero() => invalid(
            "the rate's period must be longer than zero, as in 50 requests per 1s".to_owned(),
        ),
        Some((count, period)) => Ok(Mode::Paced(Schedule {
            count,
            period_ns: period.as_nanos(),
            duration: (!options.duration.is_zero()).then_some(options.duration),
        })),
    }
}

/// When each request of a paced attack is due. Computed from the index
/// rather than by accumulating a period, so that rounding never drifts.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    count: u64,
    period_ns: u128,
    /// `None`: until cancelled.
    duration: Option<Duration>,
}

impl Schedule {
    /// Offset from the start at which request `index` is due.
    fn offset(&self, index: u64) -> Duration {
        nanos_to_duration(u128::from(index).saturating_mul(self.period_ns) / u128::from(self.count))
    }

    /// The first index due at or after `offset`, i.e. how many requests are
    /// due strictly before it.
    fn due_before(&self, offset: Duration) -> u64 {
        let index = offset
            .as_nanos()
            .saturating_mul(u128::from(self.count))
            .div_ceil(self.period_ns);
        u64::try_from(index).unwrap_or(u64::MAX)
    }

    /// Number of requests in the attack (`u64::MAX` when unbounded).
    fn len(&self) -> u64 {
        self.duration
            .map_or(u64::MAX, |duration| self.due_before(duration))
    }
}

fn nanos_to_duration(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, subsec)
}

/// A request to send: its position in the schedule and when it was due.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    index: u64,
    scheduled: Duration,
}

enum Event {
    /// Completed requests of one worker, with their schedule index.
    Hits {
        worker: usize,
        hits: Vec<(u64, Hit)>,
    },
    /// A back-to-back worker stopped: it will send nothing more.
    Retired { worker: usize },
}

/// Sleeps until each request is due and hands it to `dispatch`, in schedule
/// order, never before it is due. Runs on a blocking thread (see the module
/// docs for why).
fn run_pacer(
    schedule: Schedule,
    start: Instant,
    stop: &CancellationToken,
    mut dispatch: impl FnMut(Ticket),
) {
    for index in 0..schedule.len() {
        let scheduled = schedule.offset(index);
        let due = start + scheduled;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(PACER_MAX_SLEEP));
        }
        dispatch(Ticket { index, scheduled });
    }
}

/// Ends the schedule when the pacer returns. Closing on drop also covers an
/// unwinding panic: workers then exit instead of waiting for tickets forever.
struct CloseOnDrop<'a>(&'a Dispatcher);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Hands due requests to idle workers, starting workers as needed, and
/// queues them when `max_workers` are busy. Shared by the pacer thread and
/// the workers; every operation holds the lock briefly and never across an
/// await.
struct Dispatcher {
    state: Mutex<DispatchState>,
    max_workers: u64,
    /// The attack's threads' runtimes, which workers are spread over.
    runtimes: Vec<tokio::runtime::Handle>,
}

struct DispatchState {
    /// Ticket channel of each worker, by worker id; cleared when the
    /// schedule ends, which makes idle workers exit.
    senders: Vec<UnboundedSender<Ticket>>,
    idle: Vec<usize>,
    backlog: VecDeque<Ticket>,
    /// Present until the schedule ends; dropping it drops the dispatcher's
    /// share of the event channel.
    context: Option<Arc<WorkerContext>>,
    unsent: u64,
}

enum Next {
    Send(Ticket),
    Wait,
    Exit,
}

impl Dispatcher {
    fn new(
        context: Arc<WorkerContext>,
        max_workers: u64,
        runtimes: Vec<tokio::runtime::Handle>,
    ) -> Self {
        Self {
            state: Mutex::new(DispatchState {
                senders: Vec::new(),
                idle: Vec::new(),
                backlog: VecDeque::new(),
                context: Some(context),
                unsent: 0,
            }),
            max_workers,
            runtimes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, DispatchState> {
        // No code panics while holding the lock; should that change, the
        // state is still consistent (every update is a single push or pop).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn_idle_worker(self: &Arc<Self>) {
        let mut state = self.lock();
        if let Some(id) = self.spawn_worker(&mut state, None) {
            state.idle.push(id);
        }
    }

    fn dispatch(self: &Arc<Self>, mut ticket: Ticket) {
        let mut state = self.lock();
        while let Some(id) = state.idle.pop() {
            let Some(sender) = state.senders.get(id) else {
                continue;
            };
            match sender.send(ticket) {
                Ok(()) => return,
                // That worker was stopped by a cancellation: try another.
                Err(returned) => ticket = returned.0,
            }
        }
        if (state.senders.len() as u64) < self.max_workers
            && self.spawn_worker(&mut state, Some(ticket)).is_some()
        {
            return;
        }
        state.backlog.push_back(ticket);
    }

    /// Starts a worker, with a first ticket or idle. `None` once the schedule
    /// has ended.
    fn spawn_worker(
        self: &Arc<Self>,
        state: &mut DispatchState,
        first: Option<Ticket>,
    ) -> Option<usize> {
        let context = Arc::clone(state.context.as_ref()?);
        let id = state.senders.len();
        let (sender, tickets) = unbounded_channel();
        state.senders.push(sender);
        handle_for(&self.runtimes, id).spawn(paced_worker(
            id,
            first,
            tickets,
            context,
            Arc::clone(self),
        ));
        Some(id)
    }

    /// What worker `id` does after completing a request.
    fn next(&self, id: usize) -> Next {
        let mut state = self.lock();
        if let Some(ticket) = state.backlog.pop_front() {
            Next::Send(ticket)
        } else if state.context.is_none() {
            Next::Exit
        } else {
            state.idle.push(id);
            Next::Wait
        }
    }

    /// Ends the schedule: requests still queued are dropped (and counted as
    /// unsent, as vegeta drops them), idle workers exit, busy ones exit after
    /// their current request.
    fn close(&self) {
        let mut state = self.lock();
        state.unsent += state.backlog.len() as u64;
        state.backlog.clear();
        state.idle.clear();
        state.senders.clear();
        state.context = None;
    }
}

/// The earliest schedule offset at which a hit may still arrive: reporting
/// intervals ending before it are complete and can be summarized.
enum Watermark {
    /// Hits are numbered in schedule order: everything before the first
    /// index not yet completed is final.
    Paced {
        schedule: Schedule,
        first_pending: u64,
        completed_ahead: BTreeSet<u64>,
    },
    /// Each worker sends its next request after its previous one completed,
    /// so a worker's next hit is scheduled after its last completion.
    BackToBack {
        last_completed: Vec<Option<Duration>>,
    },
}

impl Watermark {
    fn paced(schedule: Schedule) -> Self {
        Self::Paced {
            schedule,
            first_pending: 0,
            completed_ahead: BTreeSet::new(),
        }
    }

    fn back_to_back(workers: usize) -> Self {
        Self::BackToBack {
            last_completed: vec![Some(Duration::ZERO); workers],
        }
    }

    fn completed(&mut self, worker: usize, index: u64, at: Duration) {
        match self {
            Self::Paced {
                first_pending,
                completed_ahead,
                ..
            } => {
                if index == *first_pending {
                    *first_pending += 1;
                    while completed_ahead.remove(first_pending) {
                        *first_pending += 1;
                    }
                } else if index > *first_pending {
                    completed_ahead.insert(index);
                }
            }
            Self::BackToBack { last_completed } => {
                if let Some(Some(last)) = last_completed.get_mut(worker) {
                    *last = at;
                }
            }
        }
    }

    fn retired(&mut self, worker: usize) {
        if let Self::BackToBack { last_completed } = self
            && let Some(slot) = last_completed.get_mut(worker)
        {
            *slot = None;
        }
    }

    fn current(&self) -> Duration {
        match self {
            Self::Paced {
                schedule,
                first_pending,
                ..
            } => schedule.offset(*first_pending),
            Self::BackToBack { last_completed } => last_completed
                .iter()
                .flatten()
                .min()
                .copied()
                .unwrap_or(Duration::MAX),
        }
    }
}

/// Sends one request and measures it.
struct Hitter {
    connector: Connector,
    targets: Vec<Prepared>,
    /// `"GET http://host/path"` for each target, to prefix its errors.
    names: Vec<String>,
    start: Instant,
    timeout: Option<Duration>,
    max_body: u64,
}

impl Hitter {
    /// A worker's request timer (see [`Hitter::hit`]); `None` without a
    /// timeout.
    fn timer(&self) -> Option<Pin<Box<tokio::time::Sleep>>> {
        self.timeout
            .map(|limit| Box::pin(tokio::time::sleep(limit)))
    }

    /// Sends request `index`, due at `scheduled` and sent now, at `sent`
    /// (both offsets from the start). `timer` is the worker's own, re-armed
    /// for each request: pushing a pending deadline later is an atomic
    /// update, where a new timer per request takes the timer wheel's lock
    /// twice (3% of the engine's CPU time at full speed).
    async fn hit(
        &self,
        connections: &mut Connections,
        timer: Option<&mut Pin<Box<tokio::time::Sleep>>>,
        index: u64,
        scheduled: Duration,
        sent: Duration,
    ) -> Hit {
        let position = usize::try_from(index % self.targets.len() as u64).unwrap_or(0);
        let target = &self.targets[position];
        let exchange = connections.exchange(&self.connector, target);
        let outcome = match (self.timeout, timer) {
            (Some(limit), Some(timer)) => {
                let deadline = self.start + sent + limit;
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(deadline));
                tokio::select! {
                    biased;
                    outcome = exchange => outcome,
                    () = timer.as_mut() => Err(format!(
                        "no complete response within the {} timeout",
                        human_duration(limit)
                    )),
                }
            }
            _ => exchange.await,
        };
        let completed = self.start.elapsed();
        let bytes_out = target.body_len();
        match outcome {
            Ok((status, received)) => Hit {
                scheduled,
                sent,
                completed,
                status,
                bytes_in: received.min(self.max_body),
                bytes_out,
                error: None,
            },
            Err(why) => Hit {
                scheduled,
                sent,
                completed,
                status: 0,
                bytes_in: 0,
                bytes_out,
                error: Some(format!("{}: {why}", self.names[position])),
            },
        }
    }
}

/// An error with its causes, as in `connection error: Connection reset by
/// peer (os error 104)`; a cause repeating its parent's text is skipped.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if parts.last().is_none_or(|last| !last.ends_with(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

fn human_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration < Duration::from_secs(1) && duration.subsec_nanos().is_multiple_of(1_000_000)
    {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:?}", duration)
    }
}

#[cfg(test)]
mod tests;
