//! `servo completions SHELL`.

use super::{CommandResult, Exit, Globals};
use servo_core::connector::Registry;

/// Print a shell completion script.
///
/// Example (bash): servo completions bash > /etc/bash_completion.d/servo
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub async fn run(args: Args, _globals: &Globals, _registry: &Registry) -> CommandResult {
    let mut command = super::command();
    clap_complete::generate(args.shell, &mut command, "servo", &mut std::io::stdout());
    Ok(Exit::Ok)
}
