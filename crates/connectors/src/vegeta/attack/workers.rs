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

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(completed_ms: u64) -> Hit {
        let at = Duration::from_millis(completed_ms);
        Hit {
            scheduled: at,
            sent: at,
            completed: at,
            status: 200,
            bytes_in: 0,
            bytes_out: 0,
            error: None,
        }
    }

    fn batch_sizes(events: &mut UnboundedReceiver<Event>) -> Vec<usize> {
        let mut sizes = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::Hits { hits, .. } = event {
                sizes.push(hits.len());
            }
        }
        sizes
    }

    #[test]
    fn a_busy_worker_sends_full_batches_and_an_idle_one_holds_little_room() {
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let mut outbox = Outbox::new(0, &sender);
        // Back to back, well within the age limit: only full batches leave.
        for i in 0..(2 * OUTBOX_BATCH as u64 + 3) {
            outbox.push(i, hit(0));
        }
        assert_eq!(batch_sizes(&mut events), [OUTBOX_BATCH, OUTBOX_BATCH]);
        // A worker going idle flushes what it has, and keeps room for as much.
        outbox.flush();
        assert_eq!(batch_sizes(&mut events), [3]);
        assert!(
            outbox.hits.capacity() < OUTBOX_BATCH,
            "{}",
            outbox.hits.capacity()
        );
        // A hit older than the age limit sends the batch without waiting to fill it.
        outbox.push(0, hit(0));
        outbox.push(1, hit(OUTBOX_MAX_AGE.as_millis() as u64));
        assert_eq!(batch_sizes(&mut events), [2]);
    }
}
