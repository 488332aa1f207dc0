//! Subcommands contributed by linked crates, found by the CLI through `inventory` as connectors are.

use std::ffi::OsString;
use std::process::ExitCode;

/// A subcommand contributed by a linked crate (the demo app lives in `servo-connectors`).
pub struct ExternalCommand {
    pub name: &'static str,
    pub about: &'static str,
    /// Receives the arguments after the command name; returns the exit code.
    pub run: fn(Vec<OsString>) -> ExitCode,
}

inventory::collect!(ExternalCommand);
