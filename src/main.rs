//! The `servo` binary: the framework's CLI with the built-in connectors and the demo application linked in.

use std::process::ExitCode;

fn main() -> ExitCode {
    // `inventory` only sees connectors in crates the linker keeps; naming the crate keeps it.
    servo_connectors::link();
    servo_demo::link();
    servo::cli::main()
}
