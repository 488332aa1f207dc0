//! `servo check`: can servo do its work with this config?

use serde::Serialize;

use super::shared::check_declared_units;
use super::{CommandResult, Exit, Globals, with_connectors};
use crate::output::{Render, Table, emit};
use servo_core::connector::Registry;
use servo_core::types::Check;

/// Run every connector's pre-flight checks: servers reachable, queries valid, permissions granted.
///
/// Exits 0 when every check passes, 3 when one at or above `checks.halt_on` (default: critical) fails.
///
/// Example: servo check -c examples/prometheus.yaml
#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Serialize)]
struct Report {
    passed: bool,
    checks: Vec<Check>,
}

impl Render for Report {
    fn human(&self) -> String {
        if self.checks.is_empty() {
            return "no checks to run: none of the mounted connectors has any\n".into();
        }
        let mut table = Table::new(["CONNECTOR", "CHECK", "RESULT", "MESSAGE"]);
        for c in &self.checks {
            let result = if c.success {
                "√ passed".to_string()
            } else {
                format!("X failed ({})", c.severity)
            };
            let mut message = c.message.clone().unwrap_or_default();
            if let (false, Some(hint)) = (c.success, &c.hint) {
                message.push_str(&format!(" (hint: {hint})"));
            }
            table.row([c.connector.clone(), c.name.clone(), result, message]);
        }
        let failed = self.checks.iter().filter(|c| !c.success).count();
        let mut out = table.render();
        out.push_str(&if failed == 0 {
            format!("all {} checks passed\n", self.checks.len())
        } else {
            format!("{failed} of {} checks failed\n", self.checks.len())
        });
        out
    }
}

pub async fn run(_args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let assembly = globals.load_one(registry)?;
    // Before anything runs: an SLO whose bound cannot be compared with its metric fails any check.
    check_declared_units(&assembly, &globals.config_file).await?;
    // ServoX's `checks.remedy`: a failed check may fix what it found, saying so first.
    let remedies = assembly.checks.remedies();
    let checks = with_connectors(&assembly, async |bus, cx| {
        Ok(bus.check(&cx.clone().with_remedies(remedies)).await?)
    })
    .await?;
    // The same filters and halting rule as `servo run`'s checks (`checks.connectors`, `name`,
    // `id`, `tag`, `skip`, `halt_on`).
    let checks: Vec<Check> = checks
        .into_iter()
        .filter(|c| assembly.checks.selects(c))
        .collect();
    let halting = checks.iter().any(|c| assembly.checks.halts(c));
    emit(
        globals.format,
        &Report {
            passed: !halting,
            checks,
        },
    )?;
    Ok(if halting { Exit::CheckFailed } else { Exit::Ok })
}
