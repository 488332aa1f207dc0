//! The attack's own threads, each running one event loop.
//!
//! Every thread runs a single-threaded runtime (its own I/O driver and
//! timers) and the workers placed on it, with their connections: like wrk's
//! threads, each polls only its own sockets, so a thread the machine
//! preempts delays only its own workers. (On a multi-threaded runtime one
//! thread at a time collects the I/O events of every connection.)
//!
//! The threads live as long as [`Threads`]: [`Threads::shut_down`] ends them
//! once the attack is over, and dropping it ends them too, dropping whatever
//! still runs on them, and joins them, so that no thread outlives the attack.

use std::num::NonZeroUsize;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How long a thread's end waits for its runtime's blocking tasks.
const BLOCKING_GRACE: Duration = Duration::from_millis(500);

/// The attack's threads. Worker `id` runs on thread `id % count` (see
/// [`Threads::handles`]).
pub(super) struct Threads {
    handles: Vec<Handle>,
    /// Ends every thread's event loop.
    shutdown: CancellationToken,
    /// Each thread says it has dropped its runtime, i.e. is about to return.
    exited: Vec<oneshot::Receiver<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Threads {
    /// One thread per core, but no more threads than `workers` (the most
    /// workers the attack can have at a time): threads named `attack-1`,
    /// `attack-2`…
    pub(super) fn start(workers: u64) -> std::io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let count = usize::try_from(workers).map_or(cores, |workers| cores.min(workers).max(1));
        let mut threads = Self {
            handles: Vec::with_capacity(count),
            shutdown: CancellationToken::new(),
            exited: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
        };
        // On an error, dropping `threads` ends the threads started so far.
        for number in 1..=count {
            let name = format!("attack-{number}");
            // Built here rather than on its thread, so that an error is
            // returned directly; the runtime then moves to its thread.
            // (Its blocking threads, for name lookups, get the same name.)
            let runtime = Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .thread_name(&name)
                .build()?;
            let handle = runtime.handle().clone();
            let shutdown = threads.shutdown.clone();
            let (exit_sender, exit_receiver) = oneshot::channel();
            let thread = std::thread::Builder::new().name(name).spawn(move || {
                runtime.block_on(shutdown.cancelled());
                // Drops the tasks still on this thread (HTTP/2 connection
                // tasks, workers of a dropped attack) and joins its
                // blocking threads, but waits no longer than a moment for a
                // name lookup stuck in one: dropping the runtime would wait
                // for it, and the attack's drop with it.
                runtime.shutdown_timeout(BLOCKING_GRACE);
                let _ = exit_sender.send(());
            })?;
            threads.handles.push(handle);
            threads.exited.push(exit_receiver);
            threads.threads.push(thread);
        }
        Ok(threads)
    }

    /// The threads' runtimes, to spawn workers on: worker `id` goes to
    /// `handles[id % handles.len()]`.
    pub(super) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Ends the threads once the attack is over, waiting for them without
    /// blocking the caller's runtime.
    pub(super) async fn shut_down(mut self) {
        self.shutdown.cancel();
        for exited in self.exited.drain(..) {
            // An error means the thread panicked: it is gone all the same.
            let _ = exited.await;
        }
        // Dropping joins the threads, which have returned or are returning.
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for thread in self.threads.drain(..) {
            // The threads only wait for the shutdown (a worker's panic is
            // caught by its runtime): joining cannot fail.
            let _ = thread.join();
        }
    }
}

/// The runtime that worker `id` runs on, from [`Threads::handles`] (never
/// empty: there is at least one thread).
pub(super) fn handle_for(handles: &[Handle], id: usize) -> &Handle {
    &handles[id % handles.len()]
}
