//! `servo adjust`: apply settings now.

use serde::Serialize;

use super::{CliError, CommandResult, Exit, Globals, interrupt_token};
use crate::bus::Bus;
use crate::connector::{EventContext, Registry};
use crate::output::{Render, Table, emit};
use crate::suggest::did_you_mean;
use crate::types::{Adjustment, Control, Description};
use crate::units::Duration;

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
    let bus = Bus::new(&assembly.mounts);
    let cx = EventContext::new(interrupt_token());
    bus.startup(&cx).await?;
    let result = async {
        let components: Vec<_> = bus
            .components(&cx)
            .await?
            .into_iter()
            .flat_map(|(_, cs)| cs)
            .collect();
        let mut adjustments = Vec::new();
        for (component, setting, text) in parsed {
            let Some(c) = components.iter().find(|c| c.name == component) else {
                let names: Vec<&str> = components.iter().map(|c| c.name.as_str()).collect();
                let hint = did_you_mean(component, names.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("components: {}", names.join(", ")));
                return Err(CliError::usage_with_hint(
                    format!("no component named `{component}`"),
                    hint,
                ));
            };
            let Some(s) = c.setting(setting) else {
                let names: Vec<&str> = c.settings.iter().map(|s| s.name.as_str()).collect();
                let hint = did_you_mean(setting, names.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("settings of `{component}`: {}", names.join(", ")));
                return Err(CliError::usage_with_hint(
                    format!("component `{component}` has no setting `{setting}`"),
                    hint,
                ));
            };
            let value = s
                .parse_value(text)
                .map_err(|e| CliError::usage(format!("{component}.{setting}: {e}")))?;
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
        let description = bus.adjust(&adjustments, &control, &cx).await?;
        Ok(Report {
            adjustments,
            description,
        })
    }
    .await;
    let _ = bus.shutdown(&cx).await;
    emit(globals.format, &result?)?;
    Ok(Exit::Ok)
}
