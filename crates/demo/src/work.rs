//! The expensive computation behind a cache miss, the worker pool that runs it,
//! and the key-popularity distribution used when a request names no key.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, SeedableRng as _};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::Algorithm;

/// Working memory each worker owns for the memory-hard part of a computation.
/// It is why workers cost memory as well as CPU, and why many workers on few
/// cores contend for the CPU caches and memory bandwidth, not only for cores.
pub(crate) const SCRATCH_BYTES: usize = 8 << 20;

/// Alignment of the data-dependent reads: one cache line.
const LINE_BYTES: usize = 64;

/// Bytes hashed per round, read contiguously from a data-dependent offset.
/// Long enough that hashing, not the one cache miss that starts each read,
/// dominates a round: the cost of a miss then barely depends on what other
/// processes do to the CPU caches, so a calibration made at startup stays
/// true for the whole run (each servo trial restarts the app and calibrates
/// anew; a memory-latency-bound kernel measured up to 3x apart between runs
/// on a busy machine).
const READ_BYTES: usize = 1024;

/// Version tag mixed into every computation, so digests change deliberately if
/// the computation ever does.
const DOMAIN: &[u8] = b"servo-demo/v1";

/// Calibration never goes below this many rounds, so even a slow build on a
/// slow machine keeps the data-dependent walk over the scratch buffer.
const MIN_ROUNDS: u32 = 64;

/// Smallest part of the scratch buffer a computation fills and walks.
const MIN_SPAN_BYTES: usize = 64 << 10;

/// Share of a miss's target cost that filling the scratch buffer may take;
/// the rest goes to the data-dependent rounds.
const FILL_SHARE: f64 = 0.4;

/// The calibrated computation for one algorithm.
///
/// One computation (a cache miss) is a memory-hard function in the spirit of
/// scrypt's ROMix:
/// 1. seed = SHA-256(domain, algorithm, key);
/// 2. fill `span` bytes of the worker's scratch buffer with a pseudorandom
///    stream from the seed (in an optimised build: all 8 MiB, streamed through
///    memory in about 1 ms);
/// 3. `rounds` times, hash the state with the 1 KiB of that span that the
///    state points to (data-dependent reads, each needing the previous
///    round's result, so they can be neither parallelised nor skipped);
/// 4. stamp the final state over an artifact of the algorithm's entry size,
///    which is what the cache keeps.
///
/// Everything is a pure function of `(algorithm, key)`, so a digest is the same
/// whichever worker computed it and whether or not it came from the cache.
///
/// `span` and `rounds` are calibrated at startup so that one miss costs the
/// algorithm's target CPU time ([`Algorithm::miss_cost_target`]) on this
/// machine and build: the performance landscape (where a latency SLO bites) is
/// then the same on a fast laptop, a slow CI runner and an unoptimised debug
/// build, where filling 8 MiB alone would take 100 ms.
#[derive(Debug)]
pub(crate) struct Kernel {
    algorithm: Algorithm,
    span: usize,
    rounds: u32,
    miss_cost: Duration,
}

impl Kernel {
    /// An uncalibrated kernel using the whole scratch buffer, for tests.
    #[cfg(test)]
    pub(crate) fn with_rounds(algorithm: Algorithm, rounds: u32) -> Self {
        Self {
            algorithm,
            span: SCRATCH_BYTES,
            rounds,
            miss_cost: Duration::ZERO,
        }
    }

    /// Measures this machine and returns a kernel whose misses take about
    /// [`Algorithm::miss_cost_target`] of CPU time.
    ///
    /// Timings are in thread CPU time, so time slices lost to other processes
    /// on a busy machine do not count, and each is the minimum over several
    /// repetitions, which discounts cache disturbance by neighbours. Servo
    /// restarts the app for every trial; a stable calibration keeps the cost
    /// of a miss, and so the measured landscape, the same from one trial to
    /// the next. Takes about 50 ms (optimised build).
    pub(crate) fn calibrate(algorithm: Algorithm) -> Self {
        const SAMPLE_BYTES: usize = 1 << 20;
        const PROBE_ROUNDS: u32 = 500;
        const REPEATS: u32 = 15;
        let target = algorithm.miss_cost_target();
        let mut scratch = vec![0u8; SCRATCH_BYTES];
        let fastest = |run: &mut dyn FnMut(u64)| {
            (0..u64::from(REPEATS))
                .map(|key| cpu_time_of(|| run(key)))
                .min()
                .unwrap_or(Duration::ZERO)
        };

        let sample = scratch.get_mut(..SAMPLE_BYTES).unwrap_or_default();
        let fill_sample = fastest(&mut |key| {
            Xoshiro256PlusPlus::seed_from_u64(key).fill_bytes(sample);
        });
        let fill_per_byte = fill_sample.as_secs_f64() / SAMPLE_BYTES as f64;
        let affordable = if fill_per_byte > 0.0 {
            target.as_secs_f64() * FILL_SHARE / fill_per_byte
        } else {
            f64::INFINITY
        };
        let span = (affordable.min(SCRATCH_BYTES as f64) as usize / LINE_BYTES * LINE_BYTES)
            .max(MIN_SPAN_BYTES);

        let mut kernel = Self {
            algorithm,
            span,
            rounds: 0,
            miss_cost: Duration::ZERO,
        };
        let fixed = fastest(&mut |key| {
            std::hint::black_box(kernel.compute(key, &mut scratch));
        });
        kernel.rounds = PROBE_ROUNDS;
        let probe = fastest(&mut |key| {
            std::hint::black_box(kernel.compute(key, &mut scratch));
        });
        let per_round = probe.saturating_sub(fixed).as_secs_f64() / f64::from(PROBE_ROUNDS);
        let budget = target.saturating_sub(fixed).as_secs_f64();
        kernel.rounds = if per_round > 0.0 {
            // Float-to-int `as` saturates; the clamp documents the range.
            (budget / per_round).round().clamp(0.0, f64::from(u32::MAX)) as u32
        } else {
            MIN_ROUNDS
        }
        .max(MIN_ROUNDS);
        kernel.miss_cost = fixed + Duration::from_secs_f64(per_round * f64::from(kernel.rounds));
        kernel
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Bytes of the scratch buffer each computation fills and walks.
    pub(crate) fn span(&self) -> usize {
        self.span
    }

    /// Estimated CPU time of one computation on an idle core.
    pub(crate) fn miss_cost(&self) -> Duration {
        self.miss_cost
    }

    /// Runs the computation for `key`, using `scratch` as working memory.
    pub(crate) fn compute(&self, key: u64, scratch: &mut [u8]) -> Computed {
        let mut state: [u8; 32] = Sha256::new()
            .chain_update(DOMAIN)
            .chain_update(self.algorithm.as_str())
            .chain_update(key.to_le_bytes())
            .finalize()
            .into();
        let span = self.span.min(scratch.len());
        let work = &mut scratch[..span];
        Xoshiro256PlusPlus::from_seed(state).fill_bytes(work);
        let read = READ_BYTES.min(span);
        let offsets = ((span - read) / LINE_BYTES + 1) as u64;
        for _ in 0..self.rounds {
            let [a, b, c, d, e, f, g, h, ..] = state;
            let offset = u64::from_le_bytes([a, b, c, d, e, f, g, h]) % offsets;
            // `offset < offsets`, so the cast back to usize cannot truncate.
            let at = offset as usize * LINE_BYTES;
            let block = work.get(at..at + read).unwrap_or_default();
            state = Sha256::new()
                .chain_update(state)
                .chain_update(block)
                .finalize()
                .into();
        }
        Computed {
            digest: state,
            artifact: artifact(&state, self.algorithm.entry_bytes()),
        }
    }
}

/// CPU time the current thread spends in `run` (`CLOCK_THREAD_CPUTIME_ID`).
pub(crate) fn cpu_time_of(run: impl FnOnce()) -> Duration {
    let now = || {
        let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(
            u64::try_from(time.tv_sec).unwrap_or(0),
            u32::try_from(time.tv_nsec).unwrap_or(0),
        )
    };
    let start = now();
    run();
    now().saturating_sub(start)
}

/// The cached artifact: `len` bytes derived from the digest, which is stamped
/// at the start of every 4 KiB page (so the artifact begins with it, which is
/// where cache hits read it back from). Produced with `memset`/`memcpy`
/// rather than a byte loop so it stays cheap in unoptimised builds too.
fn artifact(digest: &[u8; 32], len: usize) -> Box<[u8]> {
    const PAGE: usize = 4096;
    let mut artifact = vec![digest[0] | 1; len].into_boxed_slice();
    for page in artifact.chunks_mut(PAGE) {
        let stamp = page.len().min(digest.len());
        page[..stamp].copy_from_slice(&digest[..stamp]);
    }
    artifact
}

/// The result of a computation.
#[derive(Debug)]
pub(crate) struct Computed {
    /// What responses carry.
    pub(crate) digest: [u8; 32],
    /// What the cache keeps: the algorithm's entry size, starting with the digest.
    pub(crate) artifact: Box<[u8]>,
}

/// One computation waiting for a worker.
struct Job {
    key: u64,
    reply: oneshot::Sender<Computed>,
}

/// Why a computation could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubmitError {
    /// The queue is full: the pool is saturated and the request is shed.
    Overloaded,
    /// The pool is shutting down.
    Closed,
}

/// Fixed-size pool of OS threads that run [`Kernel::compute`], fed through a
/// bounded queue.
///
/// The computation is CPU-bound and blocking, so it must stay off the async
/// runtime's threads; a bounded queue turns overload into fast `503`s instead
/// of unbounded memory growth and unbounded latency.
#[derive(Debug)]
pub(crate) struct Pool {
    /// `None` once [`Pool::close`] has run; workers exit when the last sender
    /// is gone and the queue is drained.
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    queue_capacity: usize,
}

impl Pool {
    /// Starts `workers` threads, each owning a [`SCRATCH_BYTES`] buffer that is
    /// written once up front so that it is resident from the start.
    pub(crate) fn start(
        workers: usize,
        queue_capacity: usize,
        kernel: Arc<Kernel>,
    ) -> io::Result<(Self, Vec<JoinHandle<()>>)> {
        let (sender, receiver) = mpsc::channel::<Job>(queue_capacity.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let mut handles = Vec::with_capacity(workers);
        for index in 0..workers {
            let receiver = Arc::clone(&receiver);
            let kernel = Arc::clone(&kernel);
            let handle = std::thread::Builder::new()
                .name(format!("demo-worker-{index}"))
                .spawn(move || worker_loop(&receiver, &kernel, index as u64))
                .map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!(
                            "could not start worker thread {} of {workers}: {err}; \
                             try fewer --workers",
                            index + 1
                        ),
                    )
                })?;
            handles.push(handle);
        }
        let pool = Self {
            sender: Mutex::new(Some(sender)),
            queue_capacity: queue_capacity.max(1),
        };
        Ok((pool, handles))
    }

    fn sender(&self) -> Option<mpsc::Sender<Job>> {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Queues a computation without waiting; fails fast when the queue is full.
    pub(crate) fn try_submit(&self, key: u64) -> Result<oneshot::Receiver<Computed>, SubmitError> {
        let sender = self.sender().ok_or(SubmitError::Closed)?;
        let (reply, receiver) = oneshot::channel();
        sender
            .try_send(Job { key, reply })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => SubmitError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
            })?;
        Ok(receiver)
    }

    /// Queues a computation, waiting for room in the queue, and awaits it.
    pub(crate) async fn compute(&self, key: u64) -> Result<Computed, SubmitError> {
        let sender = self.sender().ok_or(SubmitError::Closed)?;
        let (reply, receiver) = oneshot::channel();
        sender
            .send(Job { key, reply })
            .await
            .map_err(|_| SubmitError::Closed)?;
        drop(sender);
        receiver.await.map_err(|_| SubmitError::Closed)
    }

    /// Computations queued and not yet picked up by a worker.
    pub(crate) fn queue_depth(&self) -> usize {
        self.sender()
            .map_or(0, |sender| self.queue_capacity - sender.capacity())
    }

    /// Stops accepting work. Workers finish what is queued (skipping jobs
    /// whose requester has gone away) and then exit.
    pub(crate) fn close(&self) {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

fn worker_loop(receiver: &Mutex<mpsc::Receiver<Job>>, kernel: &Kernel, index: u64) {
    let mut scratch = vec![0u8; SCRATCH_BYTES];
    // `vec![0; n]` maps zero pages lazily; writing makes the buffer resident
    // now, so RSS reflects --workers from startup rather than after traffic.
    Xoshiro256PlusPlus::seed_from_u64(index).fill_bytes(&mut scratch);
    loop {
        // Only one idle worker waits in `blocking_recv`; the others wait for
        // the lock. Either way each job is handed to exactly one worker.
        let job = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        let Some(job) = job else { return };
        if job.reply.is_closed() {
            // The client disconnected or timed out while the job was queued:
            // computing it would only delay the requests still waiting.
            continue;
        }
        let entry = kernel.compute(job.key, &mut scratch);
        // The requester may have gone away meanwhile; nothing to do then.
        let _ = job.reply.send(entry);
    }
}

/// Zipf distribution over ranks `0..n`: rank `r` is drawn with probability
/// proportional to `1 / (r + 1)^exponent`. Rank 0 is the most popular key.
///
/// Sampled by binary search over a precomputed CDF (8 bytes per key), which is
/// exact and takes well under a microsecond.
#[derive(Debug)]
pub(crate) struct Zipf {
    cdf: Box<[f64]>,
}

impl Zipf {
    pub(crate) fn new(n: usize, exponent: f64) -> Self {
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .scan(0.0, |total, rank| {
                *total += (rank as f64).powf(-exponent);
                Some(*total)
            })
            .collect();
        let total = cdf.last().copied().unwrap_or(1.0);
        for value in &mut cdf {
            *value /= total;
        }
        Self {
            cdf: cdf.into_boxed_slice(),
        }
    }

    /// Probability mass of the `k` most popular keys, i.e. the hit ratio of a
    /// perfect cache holding `k` entries.
    #[cfg(test)]
    pub(crate) fn head_mass(&self, k: usize) -> f64 {
        match k {
            0 => 0.0,
            k => self.cdf[k.min(self.cdf.len()) - 1],
        }
    }

    /// Maps a uniform sample from `[0, 1)` to a rank.
    pub(crate) fn rank(&self, uniform: f64) -> u64 {
        let index = self.cdf.partition_point(|&p| p <= uniform);
        index.min(self.cdf.len() - 1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computation_is_deterministic_and_depends_on_key_and_algorithm() {
        let kernel = Kernel::with_rounds(Algorithm::Fast, 100);
        let mut scratch_a = vec![0u8; SCRATCH_BYTES];
        let mut scratch_b = vec![7u8; SCRATCH_BYTES];
        let a = kernel.compute(1, &mut scratch_a);
        let b = kernel.compute(1, &mut scratch_b);
        assert_eq!(
            a.digest, b.digest,
            "previous scratch contents must not leak"
        );
        assert_eq!(a.artifact, b.artifact);
        assert_eq!(&a.artifact[4096..4096 + 32], &a.digest[..]);
        assert_eq!(a.artifact.len(), Algorithm::Fast.entry_bytes());
        assert_ne!(kernel.compute(2, &mut scratch_a).digest, a.digest);
        let thorough = Kernel::with_rounds(Algorithm::Thorough, 100);
        let t = thorough.compute(1, &mut scratch_a);
        assert_ne!(t.digest, a.digest);
        assert_eq!(t.artifact.len(), Algorithm::Thorough.entry_bytes());
    }

    #[test]
    fn calibration_lands_near_the_target_cost() {
        let _serial = super::super::tests::SERIAL.blocking_lock();
        let kernel = Kernel::calibrate(Algorithm::Fast);
        assert!(kernel.rounds() >= MIN_ROUNDS);
        assert!((MIN_SPAN_BYTES..=SCRATCH_BYTES).contains(&kernel.span()));
        assert_eq!(kernel.span() % LINE_BYTES, 0);
        let target = Algorithm::Fast.miss_cost_target().as_secs_f64();
        let estimate = kernel.miss_cost().as_secs_f64();
        // Unless the build is so slow that even the fixed part exceeds the
        // target, the estimate matches the target up to rounding.
        if kernel.rounds() > MIN_ROUNDS {
            assert!(
                (estimate - target).abs() < target * 0.05,
                "{estimate} vs {target}"
            );
        }
    }

    #[test]
    fn zipf_ranks_follow_popularity() {
        let zipf = Zipf::new(1000, 1.0);
        assert_eq!(zipf.rank(0.0), 0);
        assert_eq!(zipf.rank(0.999_999_999), 999);
        // For exponent 1 over 1000 keys, rank 0 carries 1/H(1000) ≈ 13.4 %.
        assert!((zipf.head_mass(1) - 0.1336).abs() < 0.001);
        assert_eq!(zipf.rank(zipf.head_mass(1) - 1e-9), 0);
        assert_eq!(zipf.rank(zipf.head_mass(1) + 1e-9), 1);
        assert!((zipf.head_mass(1000) - 1.0).abs() < 1e-12);
    }

    #[tokio::test]
    async fn pool_computes_and_sheds_when_the_queue_is_full() {
        let _serial = super::super::tests::SERIAL.lock().await;
        let kernel = Arc::new(Kernel::with_rounds(Algorithm::Fast, 20_000));
        let (pool, handles) = Pool::start(1, 1, Arc::clone(&kernel)).expect("start pool");
        let mut receivers = Vec::new();
        let mut shed = 0;
        for key in 0..20 {
            match pool.try_submit(key) {
                Ok(receiver) => receivers.push((key, receiver)),
                Err(SubmitError::Overloaded) => shed += 1,
                Err(SubmitError::Closed) => panic!("pool closed early"),
            }
        }
        assert!(
            shed > 0,
            "one worker with a one-slot queue must shed a burst"
        );
        let mut scratch = vec![0u8; SCRATCH_BYTES];
        for (key, receiver) in receivers {
            let entry = receiver.await.expect("worker replies");
            assert_eq!(entry.digest, kernel.compute(key, &mut scratch).digest);
        }
        pool.close();
        assert_eq!(pool.try_submit(0).err(), Some(SubmitError::Closed));
        for handle in handles {
            handle.join().expect("worker exits cleanly");
        }
    }
}
