//! The `process` connector's settings, their defaults and their validation.

use super::template::{Launch, Probe, Template, Values};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use servo_core::connector::ConnectorSettings;
use servo_core::spec::SettingSpec;
use servo_core::types::SettingKind;
use servo_core::units::Duration;
use servo_core::{KeyPath, Problem};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings of the `process` connector.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Name of the component the settings belong to (`servo adjust COMPONENT.SETTING=VALUE`).
    #[serde(default = "default_component")]
    pub component: String,
    /// The program to run: a name looked up on `PATH`, or a path (relative paths are relative to the
    /// config file's directory). Exactly `servo` means this servo binary itself, so `servo demo-app`
    /// runs without servo on `PATH`.
    pub command: String,
    /// Arguments, each one word (no shell). `{{ name }}` is replaced by the current value of the
    /// setting `name`; `{{ "{{" }}` writes a literal `{{`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables added to servo's own (minus servo's `SERVO_*` variables, which hold its
    /// configuration and secrets). Values are templated like `args`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Directory the process runs in (relative to the config file's directory). Default: the config
    /// file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// The tunable settings, by name: `{type: range|int|enum, min, max, step, values, value, unit,
    /// pinned}`. `value` is the baseline the process starts with, and is required.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingSpec>,
    /// How to tell that the process is ready to serve. Without it, the process counts as ready as
    /// soon as it has started (a crash at start is then only noticed later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Ready>,
    /// When `adjust` restarts the process.
    #[serde(default)]
    pub restart: Restart,
    /// How long the process may take to exit after SIGTERM before it gets SIGKILL.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: Duration,
    /// Measurement window when the request gives none (`servo measure` without `--duration`).
    #[serde(default = "default_duration")]
    pub duration: Duration,
}

pub(super) fn default_component() -> String {
    "main".to_string()
}

pub(super) fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

pub(super) fn default_duration() -> Duration {
    Duration::from_secs(10)
}

/// Readiness probe: exactly one of `http` or `tcp`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// A URL that answers 2xx or 3xx once the process is ready (templated, e.g.
    /// `http://127.0.0.1:{{ port }}/healthz`). Redirects are not followed; proxies are bypassed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// A port on 127.0.0.1 (or `HOST:PORT`) that accepts TCP connections once the process is ready
    /// (a number, or a template such as `"{{ port }}"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<PortSpec>,
    /// How long the process may take to become ready after it started.
    #[serde(default = "default_ready_timeout")]
    pub timeout: Duration,
    /// Time between two probes.
    #[serde(default = "default_ready_interval")]
    pub interval: Duration,
}

pub(super) fn default_ready_timeout() -> Duration {
    Duration::from_secs(30)
}

pub(super) fn default_ready_interval() -> Duration {
    Duration::from_millis(100)
}

/// A TCP port: a number, or a template rendered with the setting values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortSpec {
    Number(u16),
    Template(String),
}

impl PortSpec {
    pub(super) fn text(&self) -> String {
        match self {
            PortSpec::Number(port) => port.to_string(),
            PortSpec::Template(text) => text.clone(),
        }
    }
}

/// When `adjust` restarts the process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Only when the new values change the rendered command line, environment or ready probe.
    #[default]
    OnChange,
    /// On every adjustment, even to the same values (each trial starts from a fresh process).
    Always,
}

impl ConnectorSettings for Settings {
    fn example() -> Self {
        let int = |min: f64, max: f64, step: f64, value: i64| {
            SettingSpec::numeric(SettingKind::Int, min, max)
                .with_step(step)
                .with_value(value)
        };
        let mut settings = BTreeMap::new();
        settings.insert("workers".to_string(), int(1.0, 8.0, 1.0, 4));
        let mut cache_mb = int(0.0, 512.0, 32.0, 64);
        cache_mb.unit = Some("MiB".into());
        settings.insert("cache_mb".to_string(), cache_mb);
        let mut port = int(8080.0, 8080.0, 1.0, 8080);
        port.pinned = true;
        settings.insert("port".to_string(), port);
        let args = [
            "demo-app",
            "--port",
            "{{ port }}",
            "--workers",
            "{{ workers }}",
            "--cache-mb",
            "{{ cache_mb }}",
        ];
        Settings {
            description: Some(
                "servo's demo application, restarted with each new configuration".into(),
            ),
            component: "demo".into(),
            command: "servo".into(),
            args: args.iter().map(ToString::to_string).collect(),
            env: BTreeMap::new(),
            working_dir: None,
            settings,
            ready: Some(Ready {
                http: Some("http://127.0.0.1:{{ port }}/healthz".into()),
                tcp: None,
                timeout: default_ready_timeout(),
                interval: default_ready_interval(),
            }),
            restart: Restart::OnChange,
            stop_timeout: default_stop_timeout(),
            duration: default_duration(),
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let root = KeyPath::root();
        if self.command.trim().is_empty() {
            problems.push(Problem::new(
                root.key("command"),
                "`command` is empty: name the program to run",
            ));
        }
        if self.component.trim().is_empty() {
            problems.push(Problem::new(
                root.key("component"),
                "`component` is empty: name the component",
            ));
        }
        for (name, spec) in &self.settings {
            let at = root.key("settings").key(name.clone());
            if !matches!(
                spec.kind,
                SettingKind::Range | SettingKind::Int | SettingKind::Enum
            ) {
                problems.push(
                    Problem::new(
                        at.key("type"),
                        "a process setting is a `range`, an `int` or an `enum`",
                    )
                    .with_help("its value is written into the command line as text"),
                );
                continue;
            }
            let found = spec.problems(name, &at);
            if found.is_empty() && spec.value.is_none() {
                problems.push(
                    Problem::new(at.clone(), "a process setting needs a baseline `value`")
                        .with_help(
                            "the process starts with it, before the optimizer changes anything",
                        ),
                );
            }
            problems.extend(found);
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains(['=', '\0']) {
                problems.push(Problem::new(
                    root.key("env").key(name.clone()),
                    "an environment variable's name cannot be empty or contain `=`",
                ));
            }
        }
        if let Some(ready) = &self.ready {
            let at = root.key("ready");
            if ready.http.is_some() == ready.tcp.is_some() {
                problems.push(
                    Problem::new(at.clone(), "`ready` needs exactly one of `http` or `tcp`")
                        .with_help(
                            "for example `ready: {http: \"http://127.0.0.1:{{ port }}/healthz\"}`",
                        ),
                );
            }
            if ready.interval.is_zero() {
                problems.push(Problem::new(
                    at.key("interval"),
                    "`interval` must be above zero",
                ));
            }
        }
        match self.launch() {
            Err(found) => problems.extend(found),
            // The templates are sound; the ready probe must also make sense with the baseline values.
            Ok(launch) if problems.is_empty() => {
                if let Some(ready) = &launch.ready
                    && let Err(message) = ready.render(&self.baseline())
                {
                    problems.push(Problem::new(root.key("ready").key(ready.key()), message));
                }
            }
            Ok(_) => {}
        }
        problems
    }
}

impl Settings {
    /// The values the process starts with.
    pub(super) fn baseline(&self) -> Values {
        self.settings
            .iter()
            .filter_map(|(name, spec)| spec.value.clone().map(|v| (name.clone(), v)))
            .collect()
    }

    /// Parses every template, reporting each broken one at its key path.
    pub(super) fn launch(&self) -> Result<Launch, Vec<Problem>> {
        let mut problems = Vec::new();
        let root = KeyPath::root();
        let mut parse = |text: &str, at: KeyPath| {
            Template::parse(text, &self.settings)
                .map_err(|message| problems.push(Problem::new(at, message)))
                .ok()
        };
        let args: Vec<Option<Template>> = self
            .args
            .iter()
            .enumerate()
            .map(|(i, arg)| parse(arg, root.key("args").index(i)))
            .collect();
        let env: Vec<(String, Option<Template>)> = self
            .env
            .iter()
            .map(|(name, value)| {
                (
                    name.clone(),
                    parse(value, root.key("env").key(name.clone())),
                )
            })
            .collect();
        let ready = self.ready.as_ref().and_then(|ready| {
            if let Some(url) = &ready.http {
                parse(url, root.key("ready").key("http")).map(Probe::Http)
            } else {
                let port = ready.tcp.as_ref()?;
                parse(&port.text(), root.key("ready").key("tcp")).map(Probe::Tcp)
            }
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Launch {
            args: args.into_iter().flatten().collect(),
            env: env
                .into_iter()
                .filter_map(|(name, t)| t.map(|t| (name, t)))
                .collect(),
            ready,
        })
    }
}
