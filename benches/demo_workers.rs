//! Does a second worker cut the demo app's latency under concurrent load? A timing comparison, so a
//! benchmark that prints figures rather than a test: on two shared cores the answer depends on what
//! else the machine is doing, and a test that skips when it cannot tell proves nothing.
//!
//! ```text
//! cargo bench --bench demo_workers -- [ROUNDS]
//! ```
//!
//! Starts `servo demo-app` with 1 and with 2 workers (cache off, so every request is a ~3 ms miss),
//! sends 8 concurrent closed-loop clients × 12 misses to each, alternating, and prints each setting's
//! best batch time over the rounds and their ratio (below 1 means the second worker helped).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLIENTS: u64 = 8;
const PER_CLIENT: u64 = 12;

/// A `servo demo-app` child on a loopback port, killed on drop.
struct Demo {
    child: Child,
    base: String,
}

impl Demo {
    fn start(workers: &str) -> Result<Demo, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_servo"))
            .args(["demo-app", "--port", "0", "--workers", workers])
            .args(["--cache-mb", "0", "--algorithm", "fast"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start servo demo-app: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("demo-app wrote no address: {e}"))?;
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line from demo-app: {line:?}"))?
            .to_string();
        Ok(Demo { child, base })
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one batch of misses (keys from `first_key` up, never cached) and returns its wall time.
async fn batch(client: &reqwest::Client, base: &str, first_key: u64) -> Result<Duration, String> {
    let started = Instant::now();
    let mut streams = Vec::new();
    for c in 0..CLIENTS {
        let (client, base) = (client.clone(), base.to_string());
        streams.push(tokio::spawn(async move {
            for i in 0..PER_CLIENT {
                let key = first_key + c * PER_CLIENT + i;
                let answer = client.get(format!("{base}/work?key={key}")).send().await;
                match answer {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => return Err(format!("GET /work answered {}", r.status())),
                    Err(e) => return Err(format!("GET /work failed: {e}")),
                }
            }
            Ok(())
        }));
    }
    for stream in streams {
        stream.await.map_err(|e| e.to_string())??;
    }
    Ok(started.elapsed())
}

fn main() -> Result<(), String> {
    let rounds: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(Ok(5), |a| a.parse().map_err(|e| format!("ROUNDS: {e}")))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let one = Demo::start("1")?;
        let two = Demo::start("2")?;
        servo_core::http::install_crypto();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let (mut best_one, mut best_two) = (Duration::MAX, Duration::MAX);
        for round in 0..rounds {
            let first_key = 1_000_000 * (round + 1);
            best_one = best_one.min(batch(&client, &one.base, first_key).await?);
            best_two = best_two.min(batch(&client, &two.base, first_key).await?);
        }
        println!(
            "{} misses, best of {rounds} rounds: 1 worker {:.0} ms, 2 workers {:.0} ms, ratio {:.2}",
            CLIENTS * PER_CLIENT,
            best_one.as_secs_f64() * 1e3,
            best_two.as_secs_f64() * 1e3,
            best_two.as_secs_f64() / best_one.as_secs_f64()
        );
        Ok(())
    })
}
