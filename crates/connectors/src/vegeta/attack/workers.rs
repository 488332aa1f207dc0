//! The workers: each sends the requests it is given (or back to back) and
//! reports their results to the collector in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use super::connection::Connections;
use super::{Dispatcher, Event, Hitter, Next, OUTBOX_BATCH, OUTBOX_MAX_AGE, Ticket};
use crate::vegeta::report::Hit;

/// What every worker needs.
pub(super) struct WorkerContext {
    pub(super) hitter: Hitter,
    pub(super) events: UnboundedSender<Event>,
    pub(super) stop: CancellationToken,
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
        // As much room as this batch took: a busy worker's next batch fills
        // it, and an idle one (flushing every hit) holds little, whatever the
        // number of workers.
        let reserve = self.hits.len().min(OUTBOX_BATCH);
        let hits = std::mem::replace(&mut self.hits, Vec::with_capacity(reserve));
        // Fails only when the collector is gone, i.e. the attack was dropped.
        let _ = self.events.send(Event::Hits {
            worker: self.worker,
            hits,
        });
    }
}
