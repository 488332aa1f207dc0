//! Independent pieces of one suggestion spread over the machine's cores.
//!
//! Only work that draws nothing from a random stream and whose results are gathered in a fixed
//! order runs here, so a suggestion is the same on one core as on many: see `gp::Fit`, whose
//! hyper-parameter optimizations are most of a fit from scratch.

use std::num::NonZero;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `[f(0), f(1), …, f(count − 1)]`, computed by up to `threads` threads (the calling one among
/// them) taking the next index as they finish one. A thread that cannot be started leaves its
/// share to the others.
pub(crate) fn map<R: Send>(count: usize, threads: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                return done;
            }
            done.push((i, f(i)));
        }
    };
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.min(count))
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        let mut gathered = work();
        for helper in helpers {
            match helper.join() {
                Ok(done) => gathered.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        for (i, result) in gathered {
            results[i] = Some(result);
        }
    });
    // Every index below `count` was taken by exactly one thread, and every thread finished.
    results.into_iter().flatten().collect()
}

/// The threads [`map`] may use: one per core the process may run on.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZero::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_index_order_whatever_the_threads() {
        // Uneven work, so that the threads finish out of order.
        let f =
            |i: usize| (0..(i % 7) * 10_000).fold(i as u64, |a, b| a.wrapping_mul(31) ^ b as u64);
        let one = map(50, 1, f);
        assert_eq!(one, (0..50).map(f).collect::<Vec<_>>());
        for threads in [2, 3, 8, 100] {
            assert_eq!(map(50, threads, f), one, "{threads} threads");
        }
        assert!(map(0, 4, f).is_empty());
    }

    #[test]
    fn the_work_is_shared_between_threads() {
        use std::collections::HashSet;
        use std::sync::Mutex;
        use std::time::{Duration, Instant};
        let seen = Mutex::new(HashSet::new());
        let threads_seen = || seen.lock().map_or(0, |s| s.len());
        map(16, 2, |i| {
            if let Ok(mut s) = seen.lock() {
                s.insert(std::thread::current().id());
            }
            // The first piece waits for the other thread to take one (a bounded wait, so that a
            // lone thread fails the test rather than hanging it).
            let since = Instant::now();
            while i == 0 && threads_seen() < 2 && since.elapsed() < Duration::from_secs(10) {
                std::thread::yield_now();
            }
        });
        assert_eq!(threads_seen(), 2);
    }
}
