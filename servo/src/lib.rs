//! servo: continuous optimization of a running application's settings.
//!
//! The framework: domain [`types`], the [`connector`] trait and registry, config assembly
//! ([`config`]), the event [`bus`], and the [`cli`]. Built-in connectors live in `servo-connectors`.

pub mod bus;
pub mod cli;
pub mod config;
pub mod connector;
pub mod files;
pub mod http;
pub mod optimizer;
pub mod output;
pub mod path;
pub mod protocol;
pub mod schema;
pub mod server;
pub mod spec;
pub mod study;
pub mod suggest;
pub mod types;
pub mod units;
pub mod yaml;

pub use connector::{
    BuildConnector, BuildContext, Connector, ConnectorDescription, ConnectorError,
    ConnectorSettings, Event, EventContext, Handlers, Problem,
};
pub use path::KeyPath;

/// Re-exported so connector crates register with the same `inventory` the framework collects from.
pub use inventory;
