//! servo's built-in connectors. Each module is one connector: its settings, its behaviour and its
//! registration. Nothing outside a module names it.

mod command;
mod kube_metrics;
mod kubernetes;
mod opsani_dev;
mod process;
mod prometheus;
mod scripts;
mod util;
pub mod vegeta;
mod wait;

/// Call from a binary (or test) that links this crate, so the linker keeps the connectors'
/// registrations: `inventory` only sees crates that are actually linked.
pub fn link() {}
