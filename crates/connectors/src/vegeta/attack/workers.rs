//! The workers: each sends the requests it is given (or back to back) and
//! reports their results to the collector in batches; and the threads they
//! run on.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::connection::Connections;
use super::{Dispatcher, Event, Hitter, Next, OUTBOX_BATCH, OUTBOX_MAX_AGE, Ticket};
use crate::vegeta::report::Hit;

/// What every worker needs.
pub(super) struct WorkerContext {
    pub(super) hitter: Hitter,
    pub(super) events: UnboundedSender<Event>,
    pub(super) stop: CancellationToken,
}

/// The threads the workers run on: one per core, each with a
/// single-threaded tokio runtime, as wrk runs one event loop per thread. A
/// worker stays on its thread with its connections, so a response wakes its
/// worker where it is, without the hand-offs between threads (futex wake-ups,
/// work stealing) of a shared multi-threaded runtime, which cost about a
/// sixth of the engine's CPU time at full speed.
pub(super) struct WorkerThreads {
    handles: Vec<tokio::runtime::Handle>,
    next: AtomicUsize,
}

impl WorkerThreads {
    /// Starts `count` threads (at least one). They run until the returned
    /// guard is dropped, then drop their runtime and whatever task is left on
    /// it (an HTTP/2 connection, a worker of a cancelled attack).
    pub fn start(count: usize) -> std::io::Result<(Self, DropGuard)> {
        let end = CancellationToken::new();
        // Created first, so that a failure below also ends the threads
        // already started.
        let guard = end.clone().drop_guard();
        let mut handles = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let end = end.clone();
            std::thread::Builder::new()
                .name(format!("vegeta-worker-{index}"))
                .spawn(move || runtime.block_on(end.cancelled()))?;
        }
        let threads = Self {
            handles,
            next: AtomicUsize::new(0),
        };
        Ok((threads, guard))
    }

    /// Runs a worker on the next thread in turn.
    pub fn spawn(&self, worker: impl Future<Output = ()> + Send + 'static) {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[index].spawn(worker);
    }
}

pub(super) async fn paced_worker(
    id: usize,
    first: Option<Ticket>,
    mut tickets: UnboundedReceiver<Ticket>,
    context: Arc<WorkerContext>,
    dispatcher: Arc<Dispatcher>,
) {
    let mut outbox = Outbox::new(id, &context.events);
    let mut connections = Connections::new(&context.hitter.connector);
    let mut timer = context.hitter.timer();
    // A token of its own: waiting on the shared one would take a lock that
    // every worker shares each time the worker wakes up.
    let stop = context.stop.child_token();
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let mut next = first;
    loop {
        let ticket = match next.take() {
            Some(ticket) => ticket,
            None => {
                // Idle: nothing is gained by holding results back any longer.
                outbox.flush();
                tokio::select! {
                    biased;
                    () = &mut stopped => break,
                    ticket = tickets.recv() => match ticket {
                        Some(ticket) => ticket,
                        None => break,
                    },
                }
            }
        };
        let sent = context.hitter.start.elapsed();
        let hit = tokio::select! {
            biased;
            () = &mut stopped => break,
            hit = context.hitter.hit(
                &mut connections, timer.as_mut(), ticket.index, ticket.scheduled, sent,
            ) => hit,
        };
        outbox.push(ticket.index, hit);
        match dispatcher.next(id) {
            Next::Send(ticket) => next = Some(ticket),
            Next::Wait => {}
            Next::Exit => break,
        }
    }
    outbox.flush();
}

pub(super) async fn back_to_back_worker(
    id: usize,
    context: Arc<WorkerContext>,
    counter: Arc<AtomicU64>,
    deadline: Option<Duration>,
) {
    let mut outbox = Outbox::new(id, &context.events);
    let mut connections = Connections::new(&context.hitter.connector);
    let mut timer = context.hitter.timer();
    let stop = context.stop.child_token();
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let now = context.hitter.start.elapsed();
        if deadline.is_some_and(|deadline| now >= deadline) {
            break;
        }
        let index = counter.fetch_add(1, Ordering::Relaxed);
        let hit = tokio::select! {
            biased;
            () = &mut stopped => break,
            hit = context.hitter.hit(&mut connections, timer.as_mut(), index, now, now) => hit,
        };
        outbox.push(index, hit);
    }
    outbox.flush();
    // The collector may be gone already; nothing left to tell it then.
    let _ = context.events.send(Event::Retired { worker: id });
}

/// A worker's completed hits, sent to the collector in batches: one message
/// (and one wake-up of the collector, often on another thread) per request
/// costs about a third of the engine's CPU time at high rates.
pub(super) struct Outbox<'a> {
    worker: usize,
    events: &'a UnboundedSender<Event>,
    hits: Vec<(u64, Hit)>,
}

impl<'a> Outbox<'a> {
    fn new(worker: usize, events: &'a UnboundedSender<Event>) -> Self {
        Self {
            worker,
            events,
            hits: Vec::new(),
        }
    }

    /// Queues a hit; sends the batch when it is full or its oldest hit has
    /// waited long enough for progress reports to lag noticeably.
    fn push(&mut self, index: u64, hit: Hit) {
        let oldest = self
            .hits
            .first()
            .map_or(hit.completed, |(_, first)| first.completed);
        let age = hit.completed.saturating_sub(oldest);
        self.hits.push((index, hit));
        if self.hits.len() >= OUTBOX_BATCH || age >= OUTBOX_MAX_AGE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.hits.is_empty() {
            return;
        }
        let hits = std::mem::replace(&mut self.hits, Vec::with_capacity(OUTBOX_BATCH));
        // Fails only when the collector is gone, i.e. the attack was dropped.
        let _ = self.events.send(Event::Hits {
            worker: self.worker,
            hits,
        });
    }
}
