//! `servo show`: ServoX's views of one servo's mounts: which connectors, which components, which
//! metrics, which events each handles.

use serde::Serialize;

use super::{CliError, CommandResult, Exit, Globals, with_connectors};
use crate::config::Assembly;
use crate::output::{Format, Render, Table, emit};
use servo_core::connector::{Event, Registry};
use servo_core::types::SettingValue;

/// Show what a servo is made of (ServoX's `servo show`).
///
/// Examples:
///   servo show connectors
///   servo show components -c examples/process.yaml
///   servo show events -o json
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The mounted connectors: key, connector, version, description.
    Connectors,
    /// The adjustable components and their settings, by the mount that owns them (starts the
    /// connectors and asks them, as `describe` does).
    Components,
    /// The metrics each mount can measure, with their units.
    Metrics,
    /// Which events each mount handles, and where it hooks before or after one.
    Events,
}

pub async fn run(args: Args, globals: &Globals, registry: &Registry) -> CommandResult {
    // Every servo of the file (or the one --name picks), each under its name when there are
    // several, as ServoX prints them.
    let assemblies = globals.load(registry)?;
    let several = assemblies.len() > 1;
    for assembly in &assemblies {
        if several && globals.format == Format::Table {
            crate::output::print(&format!("{}:\n", assembly.name))?;
        }
        show(&args.what, assembly, globals).await?;
    }
    Ok(Exit::Ok)
}

async fn show(what: &What, assembly: &Assembly, globals: &Globals) -> Result<(), CliError> {
    match what {
        What::Connectors => emit(globals.format, &connectors(assembly))?,
        What::Events => emit(globals.format, &events(assembly))?,
        What::Components => {
            let per_mount =
                with_connectors(assembly, async |bus, cx| Ok(bus.components(cx).await?)).await?;
            let rows = per_mount
                .into_iter()
                .flat_map(|(mount, components)| {
                    components.into_iter().map(move |c| ComponentRow {
                        component: c.name,
                        settings: c
                            .settings
                            .iter()
                            .map(|s| {
                                let value = s.value.as_ref().map(SettingValue::to_string);
                                match (value, s.unit.as_deref()) {
                                    (Some(v), Some(u)) if !u.is_empty() => {
                                        format!("{}={v} {u}", s.name)
                                    }
                                    (Some(v), _) => format!("{}={v}", s.name),
                                    (None, _) => s.name.clone(),
                                }
                            })
                            .collect(),
                        mount: mount.clone(),
                    })
                })
                .collect();
            emit(globals.format, &Rows(rows))?;
        }
        What::Metrics => {
            let per_mount =
                with_connectors(assembly, async |bus, cx| Ok(bus.metrics(cx).await?)).await?;
            let rows = per_mount
                .into_iter()
                .flat_map(|(mount, metrics)| {
                    metrics.into_iter().map(move |m| MetricRow {
                        metric: m.name,
                        unit: m.unit,
                        mount: mount.clone(),
                    })
                })
                .collect();
            emit(globals.format, &Rows(rows))?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(transparent)]
struct Rows<T>(Vec<T>);

#[derive(Serialize)]
struct ConnectorRow {
    mount: String,
    connector: &'static str,
    version: &'static str,
    description: &'static str,
}

fn connectors(assembly: &Assembly) -> Rows<ConnectorRow> {
    Rows(
        assembly
            .mounts
            .iter()
            .map(|m| ConnectorRow {
                mount: m.key.clone(),
                connector: m.connector.name,
                version: m.connector.version,
                description: m.connector.description,
            })
            .collect(),
    )
}

impl Render for Rows<ConnectorRow> {
    fn human(&self) -> String {
        let mut table = Table::new(["MOUNT", "CONNECTOR", "VERSION", "DESCRIPTION"]);
        for r in &self.0 {
            table.row([r.mount.as_str(), r.connector, r.version, r.description]);
        }
        table.render()
    }
}

#[derive(Serialize)]
struct ComponentRow {
    component: String,
    settings: Vec<String>,
    mount: String,
}

impl Render for Rows<ComponentRow> {
    fn human(&self) -> String {
        if self.0.is_empty() {
            return "no adjustable components\n".into();
        }
        let mut table = Table::new(["COMPONENT", "SETTINGS", "MOUNT"]);
        for r in &self.0 {
            table.row([r.component.clone(), r.settings.join(" "), r.mount.clone()]);
        }
        table.render()
    }
}

#[derive(Serialize)]
struct MetricRow {
    metric: String,
    unit: String,
    mount: String,
}

impl Render for Rows<MetricRow> {
    fn human(&self) -> String {
        if self.0.is_empty() {
            return "no metrics\n".into();
        }
        let mut table = Table::new(["METRIC", "UNIT", "MOUNT"]);
        for r in &self.0 {
            table.row([r.metric.as_str(), r.unit.as_str(), r.mount.as_str()]);
        }
        table.render()
    }
}

#[derive(Serialize)]
struct EventRow {
    /// `before adjust`, `adjust` or `after adjust`, as ServoX labels them.
    event: String,
    mounts: Vec<String>,
}

/// One row per event and preposition that some mount handles, in the order events happen.
fn events(assembly: &Assembly) -> Rows<EventRow> {
    let mut rows = Vec::new();
    for event in Event::ALL {
        for (label, preposition) in [("before ", 0), ("", 1), ("after ", 2)] {
            let mounts: Vec<String> = assembly
                .mounts
                .iter()
                .filter(|m| {
                    let h = m.instance.handlers();
                    [h.before, h.on, h.after][preposition].contains(event)
                })
                .map(|m| m.key.clone())
                .collect();
            if !mounts.is_empty() {
                rows.push(EventRow {
                    event: format!("{label}{event}"),
                    mounts,
                });
            }
        }
    }
    Rows(rows)
}

impl Render for Rows<EventRow> {
    fn human(&self) -> String {
        let mut table = Table::new(["EVENT", "MOUNTS"]);
        for r in &self.0 {
            table.row([r.event.clone(), r.mounts.join(", ")]);
        }
        table.render()
    }
}
