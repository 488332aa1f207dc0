//! The connector contract of servo.
//!
//! Everything a connector compiles against, and nothing more: the [`connector`] trait, its
//! registry and description, the events, the domain [`types`], [`spec`]s of tunable settings,
//! [`units`] as types, the [`slo`] conditions of fast fail, [`path`]s into a config, "did you
//! mean" [`suggest`]ions, [`time`] stamps, the shared [`http`] client, and the registration of
//! extra subcommands ([`command`]). The application (config loading, the optimizer, the journal,
//! the server, the CLI) lives in the `servo` crate and is never a dependency of a connector.

pub mod command;
pub mod connector;
pub mod http;
pub mod path;
pub mod schema;
pub mod slo;
pub mod spec;
pub mod suggest;
pub mod time;
pub mod types;
pub mod units;

pub use connector::{
    BuildConnector, BuildContext, Built, Connector, ConnectorDescription, ConnectorError,
    ConnectorSettings, Event, EventContext, Handlers, PartialReadings, Problem,
};
pub use path::KeyPath;

/// Re-exported so connector crates register with the same `inventory` the framework collects from.
pub use inventory;
