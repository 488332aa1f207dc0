//! `servo report`: a self-contained HTML report of the study.

use std::path::PathBuf;

use super::shared::load_summary;
use super::{CliError, CommandResult, Exit, Globals};
use crate::files::write_atomic;
use crate::ui::report;
use servo_core::connector::Registry;

/// Write an HTML report of the study: objective per trial with the best-so-far line, each setting
/// against the objective (enums included), parallel coordinates, each SLO metric against its
/// limit, setting importance, the baseline vs best table and a sortable trials table with CSV and
/// JSON downloads. One file with its charting library inside: it opens offline.
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
    write_atomic(&args.output, report(&summary).as_bytes())
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", args.output.display())))?;
    // The report draws the study's own trials, not those it reused from an earlier one.
    eprintln!(
        "wrote {} ({} trials)",
        args.output.display(),
        summary.trials.iter().filter(|t| t.reused.is_none()).count()
    );
    Ok(Exit::Ok)
}
