//! `servo adjust`: apply settings now.

use serde::Serialize;

use super::{CliError, CommandResult, Exit, Globals, spinner, with_connectors};
use crate::output::{Render, Table, emit};
use servo_core::connector::Registry;
use servo_core::types::{Adjustment, Component, Control, Description, SettingValue};
use servo_core::units::Duration;

/// Apply settings to the application now, waiting until it has settled.
///
/// Each argument is COMPONENT.SETTING=VALUE; values take the setting's units (`cpu=250m`,
/// `memory=512Mi`, `replicas=3`, or an enum value). Values are checked against the described ranges
/// before anything is changed.
///
/// Example: servo adjust -c examples/process.yaml demo.workers=4
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Settings to apply, as COMPONENT.SETTING=VALUE.
    #[arg(value_name = "COMPONENT.SETTING=VALUE", required = true)]
    settings: Vec<String>,
    /// How long the application must stay healthy after the change.
    #[arg(long, value_name = "DURATION")]
    settlement: Option<Duration>,
}

#[derive(Serialize)]
struct Report {
    adjustments: Vec<Adjustment>,
    description: Description,
}

impl Render for Report {
    fn human(&self) -> String {
        let mut table = Table::new(["COMPONENT", "SETTING", "VALUE"]);
        for a in &self.adjustments {
            let current = self
                .description
                .component(&a.component)
                .and_then(|c| c.setting(&a.setting))
                .and_then(|s| s.value.as_ref())
                .map(ToString::to_string)
                .unwrap_or_else(|| a.value.to_string());
            table.row([a.component.clone(), a.setting.clone(), current]);
        }
        format!(
            "{}adjusted {} setting(s)\n",
            table.render(),
            self.adjustments.len()
        )
    }
}

fn split(arg: &str) -> Result<(&str, &str, &str), CliError> {
    let malformed = || {
        CliError::usage_with_hint(
            format!("`{arg}` is not COMPONENT.SETTING=VALUE"),
            "for example `servo adjust main.cpu=500m main.replicas=3`",
        )
    };
    let (target, value) = arg.split_once('=').ok_or_else(malformed)?;
    let (component, setting) = target.rsplit_once('.').ok_or_else(malformed)?;
    if component.is_empty() || setting.is_empty() || value.trim().is_empty() {
        return Err(malformed());
    }
    Ok((component, setting, value))
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    let parsed: Vec<(&str, &str, &str)> = args
        .settings
        .iter()
        .map(|a| split(a))
        .collect::<Result<_, _>>()?;
    let assembly = globals.load_one(registry)?;
    let spinner = spinner("adjusting and waiting for the application to settle".to_string());
    let report = with_connectors(&assembly, async |bus, cx| {
        let components: Vec<Component> = bus
            .components(cx)
            .await?
            .into_iter()
            .flat_map(|(_, cs)| cs)
            .collect();
        let mut adjustments = Vec::new();
        for (component, setting, text) in parsed {
            // Values take their setting's units; a name no connector has is reported by the bus,
            // with a suggestion.
            let known = components
                .iter()
                .find(|c| c.name == component)
                .and_then(|c| c.setting(setting));
            let value = match known {
                Some(s) => s
                    .parse_value(text)
                    .map_err(|e| CliError::usage(format!("{component}.{setting}: {e}")))?,
                None => SettingValue::String(text.to_string()),
            };
            adjustments.push(Adjustment {
                component: component.to_string(),
                setting: setting.to_string(),
                value,
            });
        }
        let control = Control {
            settlement: args.settlement,
            ..Control::default()
        };
        let description = bus.adjust(&adjustments, &control, cx).await?;
        Ok(Report {
            adjustments,
            description,
        })
    })
    .await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    emit(globals.format, &report?)?;
    Ok(Exit::Ok)
}
