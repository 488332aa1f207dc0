//! `scripts`: shell commands run before, on and after servo's events (ServoX's `scripts`
//! connector; a ServoX `scripts:` section loads unchanged).
//!
//! `before`, `on` and `after` each map an event (`startup`, `shutdown`, `check`, `describe`,
//! `components`, `metrics`, `measure`, `adjust`, `promote`) to a list of shell commands:
//!
//! ```yaml
//! scripts:
//!   before:
//!     measure: ["./warm-cache.sh", "echo measuring >> trials.log"]
//!   after:
//!     adjust: ["curl -fsS http://localhost:8080/healthz"]
//! ```
//!
//! Each command is run by `/bin/sh -c` (as ServoX runs it), in the config file's directory, with
//! servo's environment minus servo's own `SERVO_*` variables (they may hold secrets), plus
//! `SERVO_MOUNT` (this section's key), `SERVO_EVENT` (`measure`) and `SERVO_PREPOSITION`
//! (`before`, `on` or `after`). It needs nothing but `/bin/sh`.
//!
//! The commands of one event run one after the other, in the order listed, each in its own process
//! group: when it overruns `timeout` or the event is cancelled (Ctrl-C), servo kills the group.
//! ServoX ignores a command's failure; servo reports it, with the exit code and the last lines of
//! stderr, and runs no further command of that event:
//!
//! - a failing `before` command fails the event: nothing else runs (no `on` handler of any mount);
//! - a failing `on` command fails the event as any handler does; under `on: check` each command
//!   is one check of `servo check` instead, passing when it exits 0;
//! - a failing `after` command is a warning: the event already happened, its result stands.
//!
//! Where servo routes an event (it does not broadcast it as ServoX does), `on` follows the
//! routing: `on: measure` runs when a measurement asks for every metric (`servo run`, `servo
//! measure` without names), not for one naming metrics of other mounts; `on: adjust` is refused,
//! since servo calls an `adjust` handler only for the components its mount owns: use `before:
//! adjust` or `after: adjust`. ServoX's `attach` and `detach` events have no counterpart here
//! (`startup` and `shutdown` are the nearest).
//!
//! Scripts appear in messages with the passwords of URLs masked; pass secrets through the
//! environment, not in the script text, which `servo config` prints as written.

use crate::util::child::{self, Ended, Exited};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use servo_core::connector::{
    BuildContext, ConnectorSettings, EventContext, EventOutcome, EventRequest, Handlers, Proceed,
};
use servo_core::types::{Check, Component, Description, MeasureRequest, Measurement, Metric};
use servo_core::units::Duration;
use servo_core::{BuildConnector, Connector, ConnectorError, Event, KeyPath, Problem};
use std::path::PathBuf;
use std::process::Stdio;

/// Settings of the `scripts` connector (a ServoX `scripts:` section loads unchanged).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Shell commands run before an event, in order; one that fails stops the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<EventScripts>,
    /// Shell commands run as the event's handler, alongside the other mounts' handlers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<EventScripts>,
    /// Shell commands run after an event, in order; one that fails is logged as a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<EventScripts>,
    /// How long one command may run before servo kills it and its process group.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

/// Shell commands per event, each run by `/bin/sh -c`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventScripts {
    /// When servo starts (`servo run`, and before every command that talks to the connectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Vec<String>>,
    /// When servo stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Vec<String>>,
    /// When the checks run (`servo check`, and before a run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Vec<String>>,
    /// When the application is described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub describe: Option<Vec<String>>,
    /// When the components are listed (also before each adjustment, to route it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// When the metrics are listed (also before each measurement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<String>>,
    /// When a measurement is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<Vec<String>>,
    /// When settings are adjusted (`before` and `after` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjust: Option<Vec<String>>,
    /// When a configuration is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<Vec<String>>,
}

impl EventScripts {
    /// The commands of `event`, in order.
    fn of(&self, event: Event) -> &[String] {
        let list = match event {
            Event::Startup => &self.startup,
            Event::Shutdown => &self.shutdown,
            Event::Check => &self.check,
            Event::Describe => &self.describe,
            Event::Components => &self.components,
            Event::Metrics => &self.metrics,
            Event::Measure => &self.measure,
            Event::Adjust => &self.adjust,
            Event::Promote => &self.promote,
        };
        list.as_deref().unwrap_or_default()
    }
}

/// `before`, `on` or `after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preposition {
    Before,
    On,
    After,
}

impl Preposition {
    const ALL: [Preposition; 3] = [Preposition::Before, Preposition::On, Preposition::After];

    fn name(self) -> &'static str {
        match self {
            Preposition::Before => "before",
            Preposition::On => "on",
            Preposition::After => "after",
        }
    }

    fn scripts(self, settings: &Settings) -> Option<&EventScripts> {
        match self {
            Preposition::Before => settings.before.as_ref(),
            Preposition::On => settings.on.as_ref(),
            Preposition::After => settings.after.as_ref(),
        }
    }
}

impl ConnectorSettings for Settings {
    fn example() -> Self {
        Settings {
            description: Some("warm the cache before each measurement, log each adjustment".into()),
            before: Some(EventScripts {
                measure: Some(vec!["./warm-cache.sh".into()]),
                ..EventScripts::default()
            }),
            on: None,
            after: Some(EventScripts {
                adjust: Some(vec![
                    "echo \"adjusted at $(date -u +%FT%TZ)\" >> adjustments.log".into(),
                ]),
                ..EventScripts::default()
            }),
            timeout: default_timeout(),
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for preposition in Preposition::ALL {
            let Some(scripts) = preposition.scripts(self) else {
                continue;
            };
            for event in Event::ALL {
                let at = KeyPath::root()
                    .key(preposition.name())
                    .key(event.to_string());
                for (i, script) in scripts.of(event).iter().enumerate() {
                    if script.trim().is_empty() {
                        problems.push(
                            Problem::new(at.clone().index(i), "the command is empty")
                                .with_help("write a shell command, such as `./warm-cache.sh`"),
                        );
                    }
                }
            }
            if preposition == Preposition::On && !scripts.of(Event::Adjust).is_empty() {
                problems.push(
                    Problem::new(
                        KeyPath::root().key("on").key("adjust"),
                        "servo runs a mount's `adjust` handler only for the components it owns, and `scripts` owns none",
                    )
                    .with_help("move these commands to `before: {adjust: [...]}` or `after: {adjust: [...]}`"),
                );
            }
        }
        problems
    }
}

servo_core::register!(Scripts {
    name: "scripts",
    description: "Runs shell commands before, on and after servo's events",
});

/// The connector: its settings and where its commands run.
pub struct Scripts {
    settings: Settings,
    mount: String,
    /// The config file's directory.
    working_dir: PathBuf,
}

impl BuildConnector for Scripts {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        let working_dir = std::path::absolute(&cx.base_dir).map_err(|e| {
            ConnectorError::failed(format!(
                "cannot resolve the config's directory {}: {e}",
                cx.base_dir.display()
            ))
        })?;
        Ok(Self {
            settings,
            mount: cx.mount.clone(),
            working_dir,
        })
    }
}

/// A command as messages show it: one line, URL passwords masked, cut at 120 characters.
fn shown(script: &str) -> String {
    let masked: Vec<String> = script
        .split(' ')
        .map(|word| {
            if word.contains("://") {
                servo_core::http::redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect();
    let one_line = masked.join(" ").replace('\n', "; ");
    child::truncate(one_line.trim(), 120)
}

impl Scripts {
    /// Those of `events` that `preposition` has commands for.
    fn with_commands(&self, preposition: Preposition, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .copied()
            .filter(|e| !self.scripts(preposition, *e).is_empty())
            .collect()
    }

    fn scripts(&self, preposition: Preposition, event: Event) -> &[String] {
        preposition
            .scripts(&self.settings)
            .map(|s| s.of(event))
            .unwrap_or_default()
    }

    /// Runs the commands of `preposition` `event` in order; the first that fails ends the run.
    async fn run_all(
        &self,
        preposition: Preposition,
        event: Event,
        cx: &EventContext,
    ) -> Result<(), ConnectorError> {
        for script in self.scripts(preposition, event) {
            self.run(preposition, event, script, cx).await?;
        }
        Ok(())
    }

    /// Runs one command to its end, its `timeout` or the event's cancellation.
    async fn run(
        &self,
        preposition: Preposition,
        event: Event,
        script: &str,
        cx: &EventContext,
    ) -> Result<(), ConnectorError> {
        let label = format!("{}-{event} script `{}`", preposition.name(), shown(script));
        let mut command = tokio::process::Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(script)
            .current_dir(&self.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        child::without_servo_variables(&mut command);
        command
            .env("SERVO_MOUNT", &self.mount)
            .env("SERVO_EVENT", event.to_string())
            .env("SERVO_PREPOSITION", preposition.name());
        // SIGKILL when servo dies: a script has no state worth a graceful end.
        let mut running = child::Group::spawn(command, child::Signal::KILL)
            .await
            .map_err(|e| {
                ConnectorError::failed(format!("cannot start the {label} with /bin/sh: {e}"))
                    .with_hint("servo runs scripts with /bin/sh, which must exist")
            })?;
        tracing::debug!(mount = %self.mount, pid = running.pid(), "started the {label}");
        let mount = &self.mount;
        let log = |line: &str| tracing::debug!(mount = %mount, "{label}: stderr: {line}");
        let timeout = self.settings.timeout.as_std();
        let ended = cx
            .run(running.run_to_end(None, timeout, STDOUT_LIMIT, None, log))
            .await;
        let exited: Exited = match ended {
            Ok(Ended::Exited(exited)) => exited
                .map_err(|e| ConnectorError::failed(format!("lost track of the {label}: {e}")))?,
            Err(cancelled) => {
                running.kill().await;
                return Err(cancelled);
            }
            Ok(Ended::Overran(tail)) => {
                return Err(ConnectorError::failed(format!(
                    "the {label} did not finish within its `timeout` of {}; servo killed it and its process group{}",
                    self.settings.timeout,
                    tail.quoted()
                ))
                .with_hint("raise `timeout`, or run the command by hand to see where it hangs"));
            }
        };
        for line in String::from_utf8_lossy(&exited.stdout).lines() {
            tracing::debug!(mount = %self.mount, "{label}: {line}");
        }
        if exited.held_open {
            tracing::warn!(
                mount = %self.mount,
                "the {label} exited, but a process it started outside its process group kept its output open; servo stopped reading it"
            );
        }
        if exited.status.success() {
            return Ok(());
        }
        Err(ConnectorError::failed(format!(
            "the {label} {}{}",
            child::exit_text(&exited.status),
            exited.stderr.quoted()
        ))
        .with_hint(format!(
            "run it by hand in {} to see why: sh -c '...'",
            self.working_dir.display()
        )))
    }
}

/// What servo keeps of a script's stdout, which is only logged.
const STDOUT_LIMIT: usize = 1 << 20;

#[async_trait]
impl Connector for Scripts {
    /// The events that have commands, of those each preposition can hook (`on` never lists
    /// `adjust`, which validation refuses).
    fn handlers(&self) -> Handlers {
        let on = self.with_commands(
            Preposition::On,
            &[
                Event::Startup,
                Event::Shutdown,
                Event::Check,
                Event::Describe,
                Event::Components,
                Event::Metrics,
                Event::Measure,
                Event::Promote,
            ],
        );
        Handlers::on(&on)
            .before(&self.with_commands(
                Preposition::Before,
                &[
                    Event::Startup,
                    Event::Shutdown,
                    Event::Check,
                    Event::Describe,
                    Event::Components,
                    Event::Metrics,
                    Event::Measure,
                    Event::Adjust,
                    Event::Promote,
                ],
            ))
            .after(&self.with_commands(
                Preposition::After,
                &[
                    Event::Startup,
                    Event::Shutdown,
                    Event::Check,
                    Event::Describe,
                    Event::Components,
                    Event::Metrics,
                    Event::Measure,
                    Event::Adjust,
                    Event::Promote,
                ],
            ))
    }

    async fn startup(&self, cx: &EventContext) -> Result<(), ConnectorError> {
        self.run_all(Preposition::On, Event::Startup, cx).await
    }

    async fn shutdown(&self, cx: &EventContext) -> Result<(), ConnectorError> {
        self.run_all(Preposition::On, Event::Shutdown, cx).await
    }

    /// Each `on: check` command is one check: it passes when the command exits 0.
    async fn check(&self, cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        let mut checks = Vec::new();
        for script in self.scripts(Preposition::On, Event::Check) {
            let name = format!("script `{}`", shown(script));
            checks.push(
                match self.run(Preposition::On, Event::Check, script, cx).await {
                    Ok(()) => Check::pass(name, "exited with code 0"),
                    Err(ConnectorError::Cancelled) => return Err(ConnectorError::Cancelled),
                    Err(e) => {
                        let hint = e.hint().map(str::to_string);
                        let mut check = Check::fail(name, e.to_string());
                        check.hint = hint;
                        check
                    }
                },
            );
        }
        Ok(checks)
    }

    async fn describe(&self, cx: &EventContext) -> Result<Description, ConnectorError> {
        self.run_all(Preposition::On, Event::Describe, cx).await?;
        Ok(Description::default())
    }

    async fn components(&self, cx: &EventContext) -> Result<Vec<Component>, ConnectorError> {
        self.run_all(Preposition::On, Event::Components, cx).await?;
        Ok(Vec::new())
    }

    async fn metrics(&self, cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        self.run_all(Preposition::On, Event::Metrics, cx).await?;
        Ok(Vec::new())
    }

    async fn measure(
        &self,
        _request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        self.run_all(Preposition::On, Event::Measure, cx).await?;
        Ok(Measurement::default())
    }

    async fn promote(&self, cx: &EventContext) -> Result<(), ConnectorError> {
        self.run_all(Preposition::On, Event::Promote, cx).await
    }

    async fn before(
        &self,
        request: EventRequest<'_>,
        cx: &EventContext,
    ) -> Result<Proceed, ConnectorError> {
        self.run_all(Preposition::Before, request.event(), cx)
            .await?;
        Ok(Proceed::Continue)
    }

    async fn after(
        &self,
        event: Event,
        _outcome: &EventOutcome<'_>,
        cx: &EventContext,
    ) -> Result<(), ConnectorError> {
        self.run_all(Preposition::After, event, cx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use servo_core::connector::Events;

    fn settings(value: serde_json::Value) -> Settings {
        serde_json::from_value(value).expect("parses")
    }

    #[test]
    fn servox_sections_parse_and_declare_their_events() {
        let s = settings(serde_json::json!({
            "before": {"measure": ["echo 123"]},
            "after": {"measure": ["echo 456"], "adjust": []},
            "on": null,
        }));
        assert!(s.validate().is_empty());
        let connector = Scripts::build(
            s,
            &BuildContext {
                mount: "scripts".into(),
                servo: "servo".into(),
                base_dir: PathBuf::from("."),
                remote_optimizer: false,
                optimizer_id: None,
            },
        )
        .expect("builds");
        let h = connector.handlers();
        assert_eq!(h.before, Events::of(&[Event::Measure]));
        assert_eq!(
            h.after,
            Events::of(&[Event::Measure]),
            "an empty list is no hook"
        );
        assert_eq!(h.on, Events::NONE);
        assert!(settings(serde_json::json!({})).validate().is_empty());
    }

    #[test]
    fn empty_commands_and_on_adjust_are_refused_at_their_key() {
        let s = settings(serde_json::json!({
            "before": {"measure": ["ok", "  "]},
            "on": {"adjust": ["echo"]},
        }));
        let problems = s.validate();
        let paths: Vec<String> = problems.iter().map(|p| p.path.to_string()).collect();
        assert_eq!(paths, ["before.measure[1]", "on.adjust"], "{problems:?}");
    }

    #[test]
    fn scripts_are_shown_on_one_line_without_url_passwords() {
        assert_eq!(
            shown("curl -fsS https://bob:hunter2@example.com/x\necho done"),
            "curl -fsS https://bob:**********@example.com/x; echo done"
        );
        assert!(shown(&"x".repeat(500)).ends_with('…'));
    }
}
