//! `servo report`: a self-contained HTML report of the study.

use std::path::PathBuf;

use super::shared::load_summary;
use super::{CliError, CommandResult, Exit, Globals};
use crate::files::write_atomic;
use crate::study::report::html;
use servo_core::connector::Registry;

/// Write an HTML report of the study: objective per trial with the best-so-far line, each setting
/// against the objective, each SLO metric against its limit (infeasible trials hollow), and the
/// baseline vs best table. One file, no scripts, no external assets.
///
/// Example: servo report -c examples/quickstart.yaml --output report.html
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the report.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    output: PathBuf,
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let summary = load_summary(globals, registry).await?;
    write_atomic(&args.output, html(&summary).as_bytes())
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", args.output.display())))?;
    eprintln!(
        "wrote {} ({} trials)",
        args.output.display(),
        summary.trials.len()
    );
    Ok(Exit::Ok)
}
