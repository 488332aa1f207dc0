//! The Opsani/ServoX optimizer protocol, client side: `servo run` with a remote optimizer.
//!
//! - [`wire`]: the JSON shapes (events, commands, statuses, descriptions, measurements) and their
//!   conversions from and to [`servo_core::types`];
//! - [`client`]: `POST {url}servo` with the bearer token, retries with backoff bounded by
//!   `settings.backoff`, cancellation at every wait;
//! - [`runner`]: the command loop (`HELLO`, then `WHATS_NEXT` → DESCRIBE/MEASURE/ADJUST/SLEEP → the
//!   result), ending with `GOODBYE`.
//!
//! The server side (`servo optimizer serve`) speaks the same shapes; keep them in [`wire`].

pub mod client;
pub mod runner;
pub mod wire;

pub use client::{Client, ClientError};
pub use runner::{Progress, RemoteError, RemoteSummary, RunOptions, run};
