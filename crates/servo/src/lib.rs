//! servo: continuous optimization of a running application's settings.
//!
//! The application around the connector contract (`servo-core`): config loading ([`config`],
//! [`schema`], [`settings`]), the event [`bus`], studies and their journal ([`study`]), the remote optimizer
//! protocol ([`protocol`]), the optimizer server ([`server`]) and the [`cli`]. Built-in connectors
//! live in `servo-connectors`; ARCHITECTURE.md at the repository root maps the crates.

pub mod bus;
pub mod cli;
pub mod config;
pub mod files;
pub mod output;
pub mod protocol;
pub mod schema;
pub mod server;
pub mod settings;
pub mod study;
pub mod ui;
