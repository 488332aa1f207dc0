//! Runs the native vegeta engine against one URL and prints the report as
//! JSON: the driver of `benches/vegeta-vs-wrk.sh`, and a quick way to try the
//! engine by hand.
//!
//! ```text
//! cargo run --release --example attack -- http://127.0.0.1:8080/ \
//!     [--rate 100/1s | --rate max] [--duration 5s] [--workers 10] \
//!     [--max-workers N] [--connections 10000] [--timeout 30s] [--insecure] [--no-http2] \
//!     [--no-keepalive] [--every 1s]
//! ```
//!
//! Progress goes to stderr once a second; the JSON report to stdout.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use servo_connectors::vegeta::attack::{AttackOptions, attack};
use servo_connectors::vegeta::targets::parse_http;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let (url, options) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!(
                "attack: {message}\nusage: attack URL [--rate N/PERIOD|max] [--duration D] [--workers N] [--max-workers N] [--connections N] [--timeout D] [--every D] [--insecure] [--no-http2] [--no-keepalive]"
            );
            return ExitCode::from(2);
        }
    };
    let targets = match parse_http(&format!("GET {url}"), Path::new(".")) {
        Ok(targets) => targets,
        Err(error) => {
            eprintln!("attack: invalid URL: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("attack: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        attack(&targets, &options, cancel, |progress| {
            eprintln!(
                "{:>6.1}s  {} requests, {} successful",
                progress.elapsed.as_secs_f64(),
                progress.requests,
                progress.successes
            );
        })
        .await
    });
    match result {
        Ok(report) => match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("attack: cannot serialize the report: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("attack: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(String, AttackOptions), String> {
    let mut url = None;
    let mut options = AttackOptions {
        duration: Duration::from_secs(5),
        reporting_interval: Duration::from_secs(1),
        ..AttackOptions::default()
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rate" => options.rate = parse_rate(&value()?)?,
            "--duration" => options.duration = parse_duration(&value()?)?,
            "--timeout" => options.timeout = parse_duration(&value()?)?,
            "--every" => options.reporting_interval = parse_duration(&value()?)?,
            "--workers" => options.workers = parse_number(&arg, &value()?)?,
            "--max-workers" => options.max_workers = parse_number(&arg, &value()?)?,
            "--connections" => options.connections = parse_number(&arg, &value()?)?,
            "--insecure" => options.insecure = true,
            "--no-http2" => options.http2 = false,
            "--no-keepalive" => options.keepalive = false,
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag:?}")),
            _ if url.is_none() => url = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}: give one URL")),
        }
    }
    let url = url.ok_or("missing the URL to attack")?;
    Ok((url, options))
}

fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag} expects a whole number, got {text:?}"))
}

/// `max`, `0`, `100` (per second) or `100/1s`, `5/100ms`.
fn parse_rate(text: &str) -> Result<Option<(u64, Duration)>, String> {
    if text == "max" || text == "0" {
        return Ok(None);
    }
    let (count, period) = text.split_once('/').unwrap_or((text, "1s"));
    let count = count
        .parse()
        .map_err(|_| format!("--rate expects COUNT/PERIOD (as in 100/1s) or max, got {text:?}"))?;
    Ok(Some((count, parse_duration(period)?)))
}

/// `500ms`, `5s`, `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("expected a duration such as 500ms, 5s or 2m, got {text:?}");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        _ => Err(invalid()),
    }
}
