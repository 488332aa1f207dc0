//! `process`: a local child process as the thing being tuned.
//!
//! servo starts `command` with `args` and `env` rendered from the current setting values
//! (`--workers {{ workers }}`), waits until it is ready (an HTTP URL answers 2xx/3xx, or a TCP port
//! accepts connections), restarts it with new values on `adjust`, and reports the CPU time and
//! resident memory of the process and its descendants, read from `/proc`, on `measure`. It is the
//! quickstart's target (`command: servo` runs `servo demo-app`) and a real tool for tuning any local
//! service. No shell is involved: arguments are passed to the program as a vector.
//!
//! Needs: Linux (`/proc`, process groups, `PR_SET_PDEATHSIG`) and the program itself.
//! Events: `startup` (start with the baseline values), `shutdown` (stop: SIGTERM, then SIGKILL after
//! `stop_timeout`), `describe`, `metrics`, `measure`, `adjust` (restart; on failure restore the
//! previous values and reject the adjustment as `unstable`), `check`.
//!
//! The child never outlives servo: it runs in its own process group, which servo signals as a whole;
//! it gets SIGTERM if servo dies, even by SIGKILL (`PR_SET_PDEATHSIG`; what it started itself is then
//! up to it); and a child still running when the connector is dropped is killed with its group.
//! Cancellation (Ctrl-C, SIGTERM to servo) interrupts any wait here and leaves the process in place
//! for `shutdown`, which stops it gracefully and always runs.
//!
//! What `measure` counts: the process **and its descendants** (found through
//! `/proc/PID/task/TID/children`), because many servers do their work in forked workers, and tuning
//! `workers` while measuring only the parent would reward the wrong thing. Every `SAMPLE_INTERVAL`
//! it reads `utime + stime + cutime + cstime` from `/proc/PID/stat` (the `c` fields carry the time
//! of children that exited and were reaped, so none is lost when a worker exits) and `VmRSS` from
//! `/proc/PID/status`, summed over the tree. Metrics: `cpu_seconds` used in the window,
//! `cpu_cores_avg` (that over the window's length, with a per-second series), `rss_mean_bytes` (with
//! a per-second series) and `rss_max_bytes`, the highest sample or the leader's `VmHWM` (reset at the
//! window's start through `/proc/PID/clear_refs`), whichever is higher, so that a spike between two
//! samples still counts. RSS sums count pages shared between processes once per process, like `top`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use servo_core::connector::{BuildContext, ConnectorSettings, EventContext, Handlers};
use servo_core::spec::SettingSpec;
use servo_core::suggest::did_you_mean;
use servo_core::types::{
    Adjustment, Check, Component, Control, Description, MeasureRequest, Measurement, Metric,
    Reading, SettingKind, SettingValue, TimeSeries,
};
use servo_core::units::Duration;
use servo_core::{BuildConnector, Connector, ConnectorError, Event, KeyPath, Problem};
use tokio::io::AsyncRead;
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::util::child;

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

fn default_component() -> String {
    "main".to_string()
}

fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_duration() -> Duration {
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

fn default_ready_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_ready_interval() -> Duration {
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
    fn text(&self) -> String {
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
    fn baseline(&self) -> Values {
        self.settings
            .iter()
            .filter_map(|(name, spec)| spec.value.clone().map(|v| (name.clone(), v)))
            .collect()
    }

    /// Parses every template, reporting each broken one at its key path.
    fn launch(&self) -> Result<Launch, Vec<Problem>> {
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

/// Current setting values by name.
type Values = BTreeMap<String, SettingValue>;

/// A string with `{{ setting }}` placeholders, parsed once when the connector is built.
///
/// Deliberately tiny: a placeholder holds a setting's name or a quoted literal (`{{ "{{" }}`), nothing
/// else; there are no filters, conditions or loops to learn, and a typo is an error, not an empty
/// string.
#[derive(Clone, Debug, PartialEq)]
struct Template(Vec<Piece>);

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Setting(String),
}

impl Template {
    fn parse(text: &str, settings: &BTreeMap<String, SettingSpec>) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!(
                    "`{{{{` is never closed in `{text}`: write `{{{{ name }}}}`, or `{{{{ \"{{{{\" }}}}` for a literal `{{{{`"
                ));
            };
            let inner = after[..close].trim();
            let quoted = inner.len() >= 2
                && ((inner.starts_with('"') && inner.ends_with('"'))
                    || (inner.starts_with('\'') && inner.ends_with('\'')));
            if quoted {
                pieces.push(Piece::Text(inner[1..inner.len() - 1].to_string()));
            } else if settings.contains_key(inner) {
                pieces.push(Piece::Setting(inner.to_string()));
            } else {
                return Err(unknown_setting(inner, settings));
            }
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// The text with every placeholder replaced by its setting's value.
    fn render(&self, values: &Values) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                // Parsing checked the name; values hold every declared setting.
                Piece::Setting(name) => {
                    if let Some(value) = values.get(name) {
                        let _ = write!(out, "{value}");
                    }
                }
            }
        }
        out
    }
}

fn unknown_setting(name: &str, settings: &BTreeMap<String, SettingSpec>) -> String {
    if name.is_empty() {
        return "`{{ }}` is empty: write a setting's name, as in `{{ workers }}`".into();
    }
    let mut message = format!("`{{{{ {name} }}}}` names no setting");
    match did_you_mean(name, settings.keys().map(String::as_str)) {
        Some(close) => {
            let _ = write!(message, ": did you mean `{close}`?");
        }
        None if settings.is_empty() => {
            message.push_str(": no setting is declared under `settings`")
        }
        None => {
            let names: Vec<&str> = settings.keys().map(String::as_str).collect();
            let _ = write!(message, "; settings: {}", names.join(", "));
        }
    }
    message
}

/// The templates of a process, parsed.
#[derive(Clone, Debug)]
struct Launch {
    args: Vec<Template>,
    env: Vec<(String, Template)>,
    ready: Option<Probe<Template>>,
}

/// A readiness probe: an HTTP URL or a TCP address (templates before rendering, targets after).
#[derive(Clone, Debug, PartialEq)]
enum Probe<T> {
    Http(T),
    Tcp(T),
}

impl Probe<Template> {
    fn key(&self) -> &'static str {
        match self {
            Probe::Http(_) => "http",
            Probe::Tcp(_) => "tcp",
        }
    }

    fn render(&self, values: &Values) -> Result<Target, String> {
        match self {
            Probe::Http(template) => {
                let text = template.render(values);
                let url = reqwest::Url::parse(&text)
                    .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(format!("`{text}` is not an http:// or https:// URL"));
                }
                Ok(Target::Http(url))
            }
            Probe::Tcp(template) => {
                let text = template.render(values);
                let (host, port) = match text.rsplit_once(':') {
                    Some((host, port)) => (host.trim_matches(['[', ']']).to_string(), port),
                    None => ("127.0.0.1".to_string(), text.as_str()),
                };
                match port.trim().parse::<u16>() {
                    Ok(port) if port > 0 && !host.is_empty() => Ok(Target::Tcp { host, port }),
                    _ => Err(format!("`{text}` is not a TCP port (1-65535) or HOST:PORT")),
                }
            }
        }
    }
}

/// Where readiness is probed, with the values of one start.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Http(reqwest::Url),
    Tcp { host: String, port: u16 },
}

impl Target {
    /// The host and port a listener holds.
    fn address(&self) -> (String, u16) {
        match self {
            Target::Http(url) => (
                url.host_str()
                    .unwrap_or("127.0.0.1")
                    .trim_matches(['[', ']'])
                    .to_string(),
                url.port_or_known_default().unwrap_or(80),
            ),
            Target::Tcp { host, port } => (host.clone(), *port),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Http(url) => write!(f, "{url}"),
            Target::Tcp { host, port } => write!(f, "tcp {host}:{port}"),
        }
    }
}

/// The process as started with one set of values. Two equal invocations run the same thing, which
/// is what `restart: on-change` compares.
#[derive(Clone, Debug, Default, PartialEq)]
struct Invocation {
    args: Vec<String>,
    env: Vec<(String, String)>,
    ready: Option<Target>,
}

/// The connector: settings, parsed templates, and the running process.
pub struct Process {
    settings: Settings,
    mount: String,
    /// What to execute: this binary for `servo`, an absolute path, or a bare name looked up on PATH.
    program: PathBuf,
    working_dir: PathBuf,
    launch: Launch,
    http: reqwest::Client,
    /// The values the process runs with (or will start with); `describe` reads them without waiting
    /// for a measurement that holds `running`.
    values: Mutex<Values>,
    /// The process, from the moment it is spawned until it is reaped: a cancelled handler leaves it
    /// here for `shutdown`, never in a local that would be dropped.
    running: tokio::sync::Mutex<Option<Running>>,
}

servo_core::register!(Process {
    name: "process",
    description: "Runs a local process with templated arguments, restarts it on adjust, measures its CPU and memory",
});

impl BuildConnector for Process {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        let launch = settings.launch().map_err(|problems| {
            let messages: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            ConnectorError::invalid(messages.join("; "))
        })?;
        let program = if settings.command == "servo" {
            std::env::current_exe().map_err(|e| {
                ConnectorError::failed(format!(
                    "cannot find the servo binary to run `servo {}`: {e}",
                    settings.args.join(" ")
                ))
                .with_hint("set `command` to the path of a servo binary")
            })?
        } else if settings.command.contains('/') {
            cx.base_dir.join(&settings.command)
        } else {
            PathBuf::from(&settings.command)
        };
        let working_dir = match &settings.working_dir {
            Some(dir) => cx.base_dir.join(dir),
            None => cx.base_dir.clone(),
        };
        // Building a client touches no network. No pooling: a kept-alive connection would outlive the
        // process it was opened to; no proxy: the process is local.
        let http = crate::util::http::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| {
                ConnectorError::failed(format!(
                    "cannot set up the HTTP client for `ready.http`: {e}"
                ))
            })?;
        Ok(Self {
            values: Mutex::new(settings.baseline()),
            mount: cx.mount.clone(),
            program,
            working_dir,
            launch,
            http,
            running: tokio::sync::Mutex::new(None),
            settings,
        })
    }
}

/// Lines of output kept per process, quoted when it fails.
const TAIL_LINES: usize = 50;
/// Longer output lines are cut: an error message quotes lines, not megabytes.
const MAX_LINE_BYTES: usize = 1000;
/// How often a wait checks that the process is still alive, and a measurement samples `/proc`.
const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// Spacing of the points of the measured series.
const SERIES_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// How long to wait for the output pipes of an exited process to close (a grandchild that left the
/// group may hold them open forever).
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// Bound of the connection attempt that tells whether a port is already taken.
const BUSY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The last lines a process printed on stdout and stderr, oldest first.
#[derive(Debug)]
struct Tail(Mutex<child::Tail>);

impl Default for Tail {
    fn default() -> Self {
        Self(Mutex::new(child::Tail::new(TAIL_LINES)))
    }
}

impl Tail {
    fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Forwards one output stream to tracing (debug) and the tail, line by line, until it closes.
/// Never stops reading early: a full pipe would block the process.
async fn forward(
    stream: impl AsyncRead + Unpin,
    stream_name: &'static str,
    pid: u32,
    mount: String,
    tail: Arc<Tail>,
) {
    let mut lines = child::Lines::new(MAX_LINE_BYTES, "");
    let mut emit = |text: String| {
        tracing::debug!(mount = %mount, pid, stream = stream_name, "{text}");
        tail.push(text);
    };
    child::read_chunks(stream, std::future::pending(), |chunk| {
        lines.push(chunk, &mut emit);
    })
    .await;
    if let Some(text) = lines.finish() {
        emit(text);
    }
}

/// A started process: the leader of its own process group.
struct Running {
    group: child::Group,
    /// The leader's pid, which is also the process group's id.
    pid: u32,
    invocation: Invocation,
    tail: Arc<Tail>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Whether the process has exited, and how (reaping it if so).
    fn exited(&mut self) -> io::Result<Option<ExitStatus>> {
        self.group.exited()
    }

    /// Stops the process: SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL
    /// to the group. Reaps the leader, and waits (briefly) for the output pipes to drain so the tail
    /// holds the last words. Idempotent.
    async fn stop(&mut self, grace: std::time::Duration) -> Option<ExitStatus> {
        if self.exited().ok().flatten().is_none() {
            match self.group.terminate(grace).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(pid = self.pid, error = %e, "cannot wait for the process")
                }
                Err(_) => {
                    tracing::warn!(
                        pid = self.pid,
                        "the process did not exit within {} of SIGTERM: killing it",
                        Duration::from(grace)
                    );
                }
            }
            if self.group.status().is_none() && self.group.kill().await.is_none() {
                tracing::error!(
                    pid = self.pid,
                    "the process survived SIGKILL; it will be reaped when it dies"
                );
            }
        }
        let readers = std::mem::take(&mut self.readers);
        let aborts: Vec<_> = readers.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(DRAIN_TIMEOUT, join_all(readers))
            .await
            .is_err()
        {
            // A grandchild that left the group still holds the pipes open; stop reading them.
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        self.group.status()
    }

    /// Waits `duration`, checking that the process stays alive.
    async fn watch(
        &mut self,
        duration: std::time::Duration,
        cx: &EventContext,
    ) -> Result<(), Trouble> {
        let end = later(tokio::time::Instant::now(), duration);
        loop {
            if let Some(status) = self.exited().map_err(Trouble::Wait)? {
                return Err(Trouble::Exited(status));
            }
            let now = tokio::time::Instant::now();
            if now >= end {
                return Ok(());
            }
            cx.sleep_until(end.min(now + SAMPLE_INTERVAL))
                .await
                .map_err(|_| Trouble::Cancelled)?;
        }
    }
}

async fn join_all(handles: Vec<JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// Why the process is not, or no longer, serving.
#[derive(Debug)]
enum Trouble {
    /// It could not be started at all.
    Spawn(io::Error),
    /// Something already answers where the process is expected to listen.
    Busy(Target),
    Exited(ExitStatus),
    NotReady {
        waited: Duration,
        last: String,
    },
    Wait(io::Error),
    Cancelled,
}

/// Why starting, restarting or measuring stopped short.
#[derive(Debug)]
enum Halt {
    /// Cancelled: the process stays where it is, for `shutdown`.
    Cancelled,
    Failed(Failure),
}

impl From<Halt> for ConnectorError {
    fn from(halt: Halt) -> Self {
        match halt {
            Halt::Cancelled => ConnectorError::Cancelled,
            Halt::Failed(failure) => failure.into_error(),
        }
    }
}

/// A failure of the process, explained: what happened, what to do, and what the process said.
#[derive(Debug)]
struct Failure {
    message: String,
    hint: String,
    /// Its last lines of output, when a process ran.
    output: Option<Vec<String>>,
}

impl Failure {
    /// The error of `startup` or `measure`. With output, the hint goes before the quoted lines, so
    /// that they close the message.
    fn into_error(self) -> ConnectorError {
        if self.output.is_none() {
            ConnectorError::failed(self.message).with_hint(self.hint)
        } else {
            ConnectorError::failed(self.text(""))
        }
    }

    /// The error of an adjustment that failed and was undone.
    fn rejected(self) -> ConnectorError {
        ConnectorError::Rejected {
            reason: "unstable".into(),
            message: self.text("; servo restored the previous values and the process runs again"),
        }
    }

    /// The message, then `news`, then the hint and the quoted output.
    fn text(&self, news: &str) -> String {
        let quoted = self.output.as_deref().map(quote_output).unwrap_or_default();
        format!("{}{news}; {}{quoted}", self.message, self.hint)
    }
}

impl Process {
    fn values(&self) -> Values {
        self.values.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn set_values(&self, values: Values) {
        if let Ok(mut current) = self.values.lock() {
            *current = values;
        }
    }

    fn component(&self, values: &Values) -> Component {
        let settings = self
            .settings
            .settings
            .iter()
            .map(|(name, spec)| {
                let mut setting = spec.setting(name);
                setting.value = values.get(name).cloned().or(setting.value);
                setting
            })
            .collect();
        Component::new(self.settings.component.clone(), settings)
    }

    fn invocation(&self, values: &Values) -> Result<Invocation, ConnectorError> {
        let ready = match &self.launch.ready {
            Some(probe) => Some(probe.render(values).map_err(|message| {
                ConnectorError::invalid(format!("ready.{}: {message}", probe.key()))
                    .with_hint("the probe is rendered from the setting values: choose values that make it valid")
            })?),
            None => None,
        };
        Ok(Invocation {
            args: self.launch.args.iter().map(|t| t.render(values)).collect(),
            env: self
                .launch
                .env
                .iter()
                .map(|(n, t)| (n.clone(), t.render(values)))
                .collect(),
            ready,
        })
    }

    /// The command line as a person would type it (environment left out: it may hold secrets).
    fn command_line(&self, invocation: &Invocation) -> String {
        let program = self.program.to_string_lossy();
        std::iter::once(program.as_ref())
            .chain(invocation.args.iter().map(String::as_str))
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn spawn(&self, invocation: Invocation) -> Result<Running, Trouble> {
        let mut command = Command::new(&self.program);
        command
            .args(&invocation.args)
            .current_dir(&self.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SERVO_") {
                command.env_remove(name);
            }
        }
        command.envs(invocation.env.iter().map(|(n, v)| (n, v)));
        // SIGTERM when servo dies: the process gets to clean up, as on `shutdown`.
        child::isolate(&mut command, child::Signal::TERM);
        let child = child::spawn_from_a_lasting_thread(command)
            .await
            .map_err(Trouble::Spawn)?;
        let Some(mut group) = child::Group::new(child) else {
            // Only a reaped child has no pid, and nothing could have reaped this one yet.
            return Err(Trouble::Spawn(io::Error::other(
                "the process vanished as it started",
            )));
        };
        let pid = group.pid();
        let (stdout, stderr) = group
            .child()
            .map(|c| (c.stdout.take(), c.stderr.take()))
            .unwrap_or_default();
        let tail = Arc::new(Tail::default());
        let mut readers = Vec::new();
        if let Some(stdout) = stdout {
            readers.push(tokio::spawn(forward(
                stdout,
                "stdout",
                pid,
                self.mount.clone(),
                Arc::clone(&tail),
            )));
        }
        if let Some(stderr) = stderr {
            readers.push(tokio::spawn(forward(
                stderr,
                "stderr",
                pid,
                self.mount.clone(),
                Arc::clone(&tail),
            )));
        }
        tracing::info!(mount = %self.mount, pid, "started {}", self.command_line(&invocation));
        Ok(Running {
            group,
            pid,
            invocation,
            tail,
            readers,
        })
    }

    /// Starts the process with `invocation` into `slot` (which must be empty) and waits until it is
    /// ready. On failure the process is stopped and the failure quotes its last output; on
    /// cancellation it stays in `slot` for `shutdown`.
    async fn start(
        &self,
        slot: &mut Option<Running>,
        invocation: Invocation,
        cx: &EventContext,
    ) -> Result<(), Halt> {
        if let Some(target) = &invocation.ready
            && is_taken(target).await
        {
            let trouble = Trouble::Busy(target.clone());
            return Err(Halt::Failed(self.explain(
                trouble,
                &invocation,
                None,
                "before it started",
            )));
        }
        let running = match self.spawn(invocation.clone()).await {
            Ok(running) => slot.insert(running),
            Err(trouble) => return Err(Halt::Failed(self.explain(trouble, &invocation, None, ""))),
        };
        let outcome = match invocation.ready.clone() {
            Some(target) => self.wait_until_ready(running, &target, cx).await,
            None => Ok(()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(mount = %self.mount, pid = running.pid, "ready");
                Ok(())
            }
            Err(trouble) => Err(self.fail(slot, trouble, "before it was ready").await),
        }
    }

    /// Stops `running` gracefully (see [`Running::stop`]) and logs how it ended.
    async fn stop(&self, running: &mut Running) {
        let status = running.stop(self.settings.stop_timeout.as_std()).await;
        let how = status.map_or_else(|| "not reaped".to_string(), |s| s.to_string());
        tracing::info!(mount = %self.mount, pid = running.pid, "stopped ({how})");
    }

    /// Stops the process in `slot` after `trouble` and explains it with the process' last output.
    /// A cancellation leaves the process in place for `shutdown`.
    async fn fail(&self, slot: &mut Option<Running>, trouble: Trouble, when: &str) -> Halt {
        if matches!(trouble, Trouble::Cancelled) {
            return Halt::Cancelled;
        }
        let Some(running) = slot.as_mut() else {
            return Halt::Failed(self.explain(trouble, &Invocation::default(), None, when));
        };
        self.stop(running).await;
        let output = running.tail.lines();
        let failure = self.explain(trouble, &running.invocation, Some(output), when);
        *slot = None;
        Halt::Failed(failure)
    }

    async fn wait_until_ready(
        &self,
        running: &mut Running,
        target: &Target,
        cx: &EventContext,
    ) -> Result<(), Trouble> {
        let (timeout, interval) = match &self.settings.ready {
            Some(ready) => (ready.timeout, ready.interval.as_std()),
            None => return Ok(()),
        };
        let started = tokio::time::Instant::now();
        let deadline = later(started, timeout.as_std());
        let mut last = String::from("no probe finished");
        loop {
            if let Some(status) = running.exited().map_err(Trouble::Wait)? {
                return Err(Trouble::Exited(status));
            }
            let probe = tokio::time::timeout_at(deadline, self.probe(target));
            let answer = cx.run(probe).await.map_err(|_| Trouble::Cancelled)?;
            match answer {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(why)) => last = why,
                Err(_) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Trouble::NotReady {
                    waited: timeout,
                    last,
                });
            }
            cx.sleep_until(deadline.min(later(now, interval)))
                .await
                .map_err(|_| Trouble::Cancelled)?;
        }
    }

    /// One readiness probe; the error says what was seen instead.
    async fn probe(&self, target: &Target) -> Result<(), String> {
        match target {
            Target::Http(url) => match self.http.get(url.clone()).send().await {
                Ok(response)
                    if response.status().is_success() || response.status().is_redirection() =>
                {
                    Ok(())
                }
                Ok(response) => Err(format!("GET {url} answered {}", response.status())),
                Err(e) => Err(format!("GET {url}: {}", root_cause(&e))),
            },
            Target::Tcp { host, port } => tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map(drop)
                .map_err(|e| format!("connecting to {host}:{port}: {e}")),
        }
    }

    /// Turns a trouble into a failure that says what happened and what to do, with the last output
    /// of the process when one ran.
    fn explain(
        &self,
        trouble: Trouble,
        invocation: &Invocation,
        output: Option<Vec<String>>,
        when: &str,
    ) -> Failure {
        let program = self.program.display();
        let command_line = self.command_line(invocation);
        let (message, hint) = match trouble {
            // Callers turn a cancellation into `Halt::Cancelled` before it gets here.
            Trouble::Cancelled => ("cancelled".to_string(), String::new()),
            Trouble::Spawn(e) if !self.working_dir.is_dir() => (
                format!(
                    "cannot start `{program}`: its working directory {} does not exist ({e})",
                    self.working_dir.display()
                ),
                WORKING_DIR_HINT.to_string(),
            ),
            Trouble::Spawn(e) => {
                let hint = match e.kind() {
                    io::ErrorKind::NotFound if is_bare_name(&self.program) => {
                        format!("`{program}` is not on PATH: {NOT_ON_PATH_HINT}")
                    }
                    io::ErrorKind::NotFound => format!("`{program}` does not exist: fix `command`"),
                    io::ErrorKind::PermissionDenied => {
                        format!("make it executable: chmod +x {program}")
                    }
                    _ => format!("try it by hand: {command_line}"),
                };
                (format!("cannot start `{program}`: {e}"), hint)
            }
            Trouble::Busy(target) => (busy_message(&target, when), busy_hint(&target)),
            Trouble::Exited(status) => exited(&program.to_string(), when, status, &command_line),
            Trouble::NotReady { waited, last } => (
                format!("`{program}` was not ready within {waited}; the last probe: {last}"),
                "check that it listens where `ready` points, or raise `ready.timeout`".to_string(),
            ),
            Trouble::Wait(e) => (
                format!("cannot tell whether `{program}` is alive: {e}"),
                "this is unexpected; the process is stopped: run servo again".to_string(),
            ),
        };
        Failure {
            message,
            hint,
            output,
        }
    }

    /// Samples the process every [`SAMPLE_INTERVAL`] for `duration`.
    async fn sample(
        &self,
        running: &mut Running,
        duration: std::time::Duration,
        cx: &EventContext,
    ) -> Result<Window, Trouble> {
        let pid = running.pid;
        let first = read_usage_async(pid).await.map_err(Trouble::Wait)?;
        let peak_reset = tokio::task::spawn_blocking(move || reset_peak_rss(pid))
            .await
            .unwrap_or(false);
        let start = tokio::time::Instant::now();
        let end = later(start, duration);
        let mut window = Window::new(first, ticks_per_second(), std::time::Instant::now());
        // Samples on a fixed grid from the start, so waking late once does not shift the rest.
        let mut next = start;
        while next < end {
            next = end.min(next + SAMPLE_INTERVAL);
            cx.sleep_until(next).await.map_err(|_| Trouble::Cancelled)?;
            if let Some(status) = running.exited().map_err(Trouble::Wait)? {
                return Err(Trouble::Exited(status));
            }
            match read_usage_async(pid).await {
                Ok(usage) => window.add(usage, std::time::Instant::now(), unix_now()),
                // Exited between the two checks: the next round reports how.
                Err(_) => continue,
            }
        }
        window.finish(unix_now());
        if peak_reset {
            window.peak_rss = tokio::task::spawn_blocking(move || peak_rss(pid))
                .await
                .ok()
                .flatten();
        }
        Ok(window)
    }
}

/// What to say about a process that ended on its own while it should have been running. A signal
/// is named as such: SIGKILL in particular never comes from the program itself, and most often
/// from the kernel's out-of-memory killer, which "run it by hand" would not reveal.
fn exited(program: &str, when: &str, status: ExitStatus, command_line: &str) -> (String, String) {
    use std::os::unix::process::ExitStatusExt as _;
    match status.signal() {
        Some(9) => (
            format!("`{program}` was killed {when} ({status})"),
            format!(
                "SIGKILL comes from outside the process: the kernel's out-of-memory killer (see `dmesg`), a supervisor or a person; to see whether it happens again, run it by hand: {command_line}"
            ),
        ),
        Some(_) => (
            format!("`{program}` died {when} ({status})"),
            format!("run it by hand to see why: {command_line}"),
        ),
        None => (
            format!("`{program}` exited {when} ({status})"),
            format!("run it by hand to see why: {command_line}"),
        ),
    }
}

/// `at + after`, saturating: durations come from users (`ready.timeout: 1000000y`), and an instant
/// that overflows would panic.
fn later(at: tokio::time::Instant, after: std::time::Duration) -> tokio::time::Instant {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(after.min(CENTURY)).unwrap_or(at)
}

/// The innermost cause of an HTTP error ("Connection refused (os error 111)"): reqwest's outer
/// layers repeat the URL and say little more.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Whether something already accepts connections at the target's address.
async fn is_taken(target: &Target) -> bool {
    let (host, port) = target.address();
    matches!(
        tokio::time::timeout(
            BUSY_PROBE_TIMEOUT,
            tokio::net::TcpStream::connect((host.as_str(), port))
        )
        .await,
        Ok(Ok(_))
    )
}

fn quote_output(lines: &[String]) -> String {
    if lines.is_empty() {
        return "; it printed nothing".into();
    }
    let mut text = String::from("; its last output:");
    for line in lines {
        let _ = write!(text, "\n  | {line}");
    }
    text
}

/// Quotes a word for a POSIX shell when it needs it, so a printed command line can be pasted.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Looks `program` up like `execvp` does: a path is taken as is, a bare name is searched on `path`.
fn find_program(program: &Path, path: Option<OsString>) -> Option<PathBuf> {
    if !is_bare_name(program) {
        return std::fs::metadata(program)
            .is_ok_and(|m| child::is_executable(&m))
            .then(|| program.to_path_buf());
    }
    child::on_path(program.as_os_str(), path.as_deref(), None)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn ticks_per_second() -> f64 {
    // `sysconf(_SC_CLK_TCK)`, from the auxiliary vector: 100 on every mainstream Linux build.
    (rustix::param::clock_ticks_per_second() as f64).max(1.0)
}

/// CPU time and resident memory of a process and its descendants, at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Usage {
    /// utime + stime + cutime + cstime, summed over the tree, in clock ticks.
    cpu_ticks: u64,
    /// VmRSS summed over the tree (pages shared between processes count once per process).
    rss_bytes: u64,
}

/// Most processes a tree walk visits: bounds the work of one sample against a fork bomb.
const MAX_TREE: usize = 4096;

/// Reads the usage of `pid` and of every descendant it has not orphaned (found through
/// `/proc/PID/task/TID/children`). Descendants count because a server's work often happens in the
/// workers it forks. Each process contributes its own CPU time plus that of the children it has
/// reaped (`cutime`/`cstime`), so a worker that exits moves its time into its parent's and none is
/// lost or counted twice.
fn read_usage(pid: u32) -> io::Result<Usage> {
    let mut usage = Usage::default();
    let mut queue = vec![pid];
    let mut visited = 0;
    while let Some(p) = queue.pop() {
        visited += 1;
        if visited > MAX_TREE {
            break;
        }
        let stat = match std::fs::read_to_string(format!("/proc/{p}/stat")) {
            Ok(stat) => stat,
            Err(e) if p == pid => return Err(e),
            // A descendant exited since its parent listed it.
            Err(_) => continue,
        };
        let Some(ticks) = parse_stat_ticks(&stat) else {
            if p == pid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected /proc/{p}/stat"),
                ));
            }
            continue;
        };
        usage.cpu_ticks += ticks;
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            usage.rss_bytes += parse_status_kib(&status, "VmRSS:").unwrap_or(0) * 1024;
        }
        queue.extend(children(p));
    }
    Ok(usage)
}

async fn read_usage_async(pid: u32) -> io::Result<Usage> {
    tokio::task::spawn_blocking(move || read_usage(pid))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// utime + stime + cutime + cstime from a `/proc/PID/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3; utime, stime, cutime, cstime are fields 14 to 17.
    let fields: Vec<&str> = after_name.split_whitespace().skip(11).take(4).collect();
    if fields.len() < 4 {
        return None;
    }
    fields
        .iter()
        .map(|f| f.parse::<i64>().ok().map(|v| v.max(0) as u64))
        .sum()
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in KiB.
fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Resets the leader's peak RSS (VmHWM) so that, read at the end, it is the peak within the window,
/// short spikes between samples included. Harmless to the process: only the counter is reset.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, "VmHWM:").map(|kib| kib * 1024)
}

/// The samples of one measurement window, summarised as they arrive.
#[derive(Debug)]
struct Window {
    ticks_per_second: f64,
    started: Instant,
    last: Usage,
    last_at: Instant,
    /// CPU used since the window opened, in ticks. Summed from positive steps, so a descendant that
    /// leaves the tree (orphaned) takes only its own time away, never the rest of the step.
    cpu_ticks: u64,
    samples: u64,
    rss_total: f64,
    rss_max: u64,
    /// The leader's peak RSS over the window, when it could be reset at the start.
    peak_rss: Option<u64>,
    /// The samples since the series' last point.
    bucket: Bucket,
    rss_series: Vec<(f64, f64)>,
    cores_series: Vec<(f64, f64)>,
}

/// The samples that make the next point of the series.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    opened: Instant,
    /// `Window::cpu_ticks` when it opened.
    cpu_ticks: u64,
    rss_total: f64,
    samples: u64,
}

/// Samples per point of the series.
const SAMPLES_PER_POINT: u64 = (SERIES_INTERVAL.as_millis() / SAMPLE_INTERVAL.as_millis()) as u64;

impl Window {
    fn new(first: Usage, ticks_per_second: f64, at: Instant) -> Self {
        Self {
            ticks_per_second,
            started: at,
            last: first,
            last_at: at,
            cpu_ticks: 0,
            samples: 1,
            rss_total: first.rss_bytes as f64,
            rss_max: first.rss_bytes,
            peak_rss: None,
            bucket: Bucket {
                opened: at,
                cpu_ticks: 0,
                rss_total: 0.0,
                samples: 0,
            },
            rss_series: Vec::new(),
            cores_series: Vec::new(),
        }
    }

    fn add(&mut self, usage: Usage, at: Instant, unix: f64) {
        self.cpu_ticks += usage.cpu_ticks.saturating_sub(self.last.cpu_ticks);
        self.last = usage;
        self.last_at = at;
        self.samples += 1;
        self.rss_total += usage.rss_bytes as f64;
        self.rss_max = self.rss_max.max(usage.rss_bytes);
        self.bucket.rss_total += usage.rss_bytes as f64;
        self.bucket.samples += 1;
        if self.bucket.samples >= SAMPLES_PER_POINT {
            self.close_bucket(unix);
        }
    }

    /// Adds the last, partial, point of the series.
    fn finish(&mut self, unix: f64) {
        if self.bucket.samples > 0 {
            self.close_bucket(unix);
        }
    }

    fn close_bucket(&mut self, unix: f64) {
        let bucket = self.bucket;
        let span = self.last_at.duration_since(bucket.opened).as_secs_f64();
        if span > 0.0 {
            let cpu_seconds = (self.cpu_ticks - bucket.cpu_ticks) as f64 / self.ticks_per_second;
            self.cores_series.push((unix, cpu_seconds / span));
        }
        self.rss_series
            .push((unix, bucket.rss_total / bucket.samples.max(1) as f64));
        self.bucket = Bucket {
            opened: self.last_at,
            cpu_ticks: self.cpu_ticks,
            rss_total: 0.0,
            samples: 0,
        };
    }

    fn readings(&self) -> Vec<Reading> {
        let cpu_seconds = self.cpu_ticks as f64 / self.ticks_per_second;
        let elapsed = self.last_at.duration_since(self.started).as_secs_f64();
        let cores = if elapsed > 0.0 {
            cpu_seconds / elapsed
        } else {
            0.0
        };
        let series = |points: &[(f64, f64)]| TimeSeries {
            id: None,
            points: points.to_vec(),
        };
        let [
            cpu_seconds_metric,
            cores_metric,
            rss_max_metric,
            rss_mean_metric,
        ] = metrics();
        vec![
            Reading::new(cpu_seconds_metric, cpu_seconds),
            Reading::new(cores_metric, cores).with_series(series(&self.cores_series)),
            Reading::new(
                rss_max_metric,
                self.rss_max.max(self.peak_rss.unwrap_or(0)) as f64,
            ),
            Reading::new(rss_mean_metric, self.rss_total / self.samples as f64)
                .with_series(series(&self.rss_series)),
        ]
    }
}

fn metrics() -> [Metric; 4] {
    [
        Metric::new("cpu_seconds", "s"),
        Metric::new("cpu_cores_avg", "cores"),
        Metric::new("rss_max_bytes", "bytes"),
        Metric::new("rss_mean_bytes", "bytes"),
    ]
}

#[async_trait]
impl Connector for Process {
    fn handlers(&self) -> Handlers {
        Handlers::on(&[
            Event::Startup,
            Event::Shutdown,
            Event::Check,
            Event::Describe,
            Event::Metrics,
            Event::Measure,
            Event::Adjust,
        ])
    }

    async fn startup(&self, cx: &EventContext) -> Result<(), ConnectorError> {
        let mut slot = self.running.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        let invocation = self.invocation(&self.values())?;
        Ok(self.start(&mut slot, invocation, cx).await?)
    }

    async fn shutdown(&self, _cx: &EventContext) -> Result<(), ConnectorError> {
        let mut slot = self.running.lock().await;
        if let Some(running) = slot.as_mut() {
            self.stop(running).await;
        }
        *slot = None;
        Ok(())
    }

    async fn describe(&self, _cx: &EventContext) -> Result<Description, ConnectorError> {
        Ok(Description {
            components: vec![self.component(&self.values())],
            metrics: Vec::new(),
        })
    }

    async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        Ok(metrics().to_vec())
    }

    async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        let control = &request.control;
        let duration = if control.duration.is_zero() {
            self.settings.duration
        } else {
            control.duration
        };
        let mut slot = self.running.lock().await;
        let Some(running) = slot.as_mut() else {
            return Err(ConnectorError::failed("cannot measure: the process is not running")
                .with_hint("it failed to start or to restart earlier; see that error, fix it and run servo again"));
        };
        tracing::debug!(mount = %self.mount, pid = running.pid, "measuring for {duration}");
        let outcome = async {
            running.watch(control.warmup.as_std(), cx).await?;
            let window = self.sample(running, duration.as_std(), cx).await?;
            running.watch(control.delay.as_std(), cx).await?;
            Ok(window)
        }
        .await;
        match outcome {
            Ok(window) => Ok(Measurement {
                readings: window.readings(),
                annotations: BTreeMap::new(),
            }),
            Err(trouble) => Err(self
                .fail(&mut slot, trouble, "during the measurement")
                .await
                .into()),
        }
    }

    async fn adjust(
        &self,
        adjustments: &[Adjustment],
        control: &Control,
        cx: &EventContext,
    ) -> Result<Description, ConnectorError> {
        let previous = self.values();
        let mut values = previous.clone();
        for a in adjustments {
            if a.component != self.settings.component
                || !self.settings.settings.contains_key(&a.setting)
            {
                return Err(ConnectorError::invalid(format!(
                    "`{a}` does not name a setting of this process"
                )));
            }
            values.insert(a.setting.clone(), a.value.clone());
        }
        let invocation = self.invocation(&values)?;
        let mut slot = self.running.lock().await;
        let unchanged = slot
            .as_mut()
            .is_some_and(|r| r.invocation == invocation && matches!(r.exited(), Ok(None)));
        if unchanged && self.settings.restart == Restart::OnChange {
            self.set_values(values.clone());
            return Ok(Description {
                components: vec![self.component(&values)],
                metrics: Vec::new(),
            });
        }
        if let Some(running) = slot.as_mut() {
            self.stop(running).await;
            *slot = None;
        }
        let settlement = control.settlement.unwrap_or(Duration::ZERO).as_std();
        let mut outcome = self.start(&mut slot, invocation, cx).await;
        if outcome.is_ok()
            && let Some(running) = slot.as_mut()
            && let Err(trouble) = running.watch(settlement, cx).await
        {
            outcome = Err(self.fail(&mut slot, trouble, "while settling").await);
        }
        let failure = match outcome {
            Ok(()) => {
                self.set_values(values.clone());
                return Ok(Description {
                    components: vec![self.component(&values)],
                    metrics: Vec::new(),
                });
            }
            Err(Halt::Cancelled) => return Err(ConnectorError::Cancelled),
            Err(Halt::Failed(failure)) => failure,
        };
        let shown: Vec<String> = adjustments.iter().map(ToString::to_string).collect();
        tracing::warn!(
            mount = %self.mount,
            "{} failed: {}; restoring the previous values",
            shown.join(" "),
            failure.message
        );
        let restore = self.invocation(&previous)?;
        match self.start(&mut slot, restore, cx).await {
            Ok(()) => Err(failure.rejected()),
            Err(Halt::Cancelled) => Err(ConnectorError::Cancelled),
            Err(Halt::Failed(again)) => Err(ConnectorError::failed(format!(
                "{}\nrestoring the previous values failed too: {}",
                failure.text(""),
                again.text("")
            ))
            .with_hint("the process is not running: fix the cause above and start servo again")),
        }
    }

    async fn check(&self, _cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        Ok(vec![
            self.check_command(),
            self.check_working_dir(),
            self.check_process().await?,
        ])
    }
}

/// Checks: what `servo check` reports (after `startup`, so normally about a running process).
impl Process {
    fn check_command(&self) -> Check {
        let path = match self.settings.env.get("PATH") {
            Some(path) => Some(OsString::from(path)),
            None => std::env::var_os("PATH"),
        };
        let program = self.program.display();
        match find_program(&self.program, path) {
            Some(found) => Check::pass("command", format!("{} is executable", found.display())),
            None if is_bare_name(&self.program) => {
                Check::fail("command", format!("`{program}` is not on PATH"))
                    .with_hint(NOT_ON_PATH_HINT)
            }
            None => Check::fail("command", format!("{program} is not an executable file"))
                .with_hint(format!(
                    "fix `command`, or make it executable: chmod +x {program}"
                )),
        }
    }

    fn check_working_dir(&self) -> Check {
        let dir = self.working_dir.display();
        if self.working_dir.is_dir() {
            Check::pass("working_dir", format!("{dir} exists"))
        } else {
            Check::fail("working_dir", format!("{dir} is not a directory"))
                .with_hint(WORKING_DIR_HINT)
        }
    }

    /// The running process is alive; when none runs, its ready port is free (a common mistake is
    /// another copy of the application still listening there).
    async fn check_process(&self) -> Result<Check, ConnectorError> {
        let mut slot = self.running.lock().await;
        let Some(running) = slot.as_mut() else {
            return Ok(match self.invocation(&self.values())?.ready {
                Some(target) if is_taken(&target).await => Check::fail(
                    "process",
                    busy_message(&target, "while the process is stopped"),
                )
                .with_hint(busy_hint(&target)),
                Some(target) => {
                    Check::pass("process", format!("not running; {target} is free for it"))
                }
                None => Check::pass("process", "not running"),
            });
        };
        Ok(match running.exited() {
            Ok(None) => Check::pass(
                "process",
                match &running.invocation.ready {
                    Some(target) => format!("running as pid {}, ready at {target}", running.pid),
                    None => format!("running as pid {}", running.pid),
                },
            ),
            Ok(Some(status)) => Check::fail(
                "process",
                format!("exited ({status}){}", quote_output(&running.tail.lines())),
            )
            .with_hint(format!(
                "run it by hand to see why: {}",
                self.command_line(&running.invocation)
            )),
            Err(e) => Check::fail("process", format!("cannot tell whether it runs: {e}")),
        })
    }
}

const NOT_ON_PATH_HINT: &str = "install it, or set `command` to its full path";
const WORKING_DIR_HINT: &str =
    "create it, or fix `working_dir` (relative paths start at the config file's directory)";

/// Whether `program` is looked up on PATH (`python3`) rather than taken as a path (`./app`).
fn is_bare_name(program: &Path) -> bool {
    program.components().count() == 1 && !program.is_absolute()
}

fn busy_message(target: &Target, when: &str) -> String {
    let (host, port) = target.address();
    format!(
        "{host}:{port} already accepts connections {when}: another program listens there, and \
         servo would take it for the process ({target})"
    )
}

fn busy_hint(target: &Target) -> String {
    let (_, port) = target.address();
    format!(
        "stop the other program (`ss -ltnp 'sport = :{port}'` names it) or move the process to \
         another port"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: serde_json::Value) -> Settings {
        serde_json::from_value(yaml).expect("settings parse")
    }

    fn demo() -> Settings {
        settings(serde_json::json!({
            "command": "python3",
            "args": ["-m", "http.server", "{{ port }}", "--workers={{workers}}", "{{ \"{{\" }}x}}"],
            "env": {"MODE": "{{ mode }}"},
            "settings": {
                "port": {"type": "int", "min": 1024, "max": 65535, "value": 8080},
                "workers": {"type": "int", "min": 1, "max": 8, "step": 1, "value": 2},
                "mode": {"type": "enum", "values": ["fast", "safe"], "value": "safe"},
                "ratio": {"type": "range", "min": 0, "max": 1, "value": 0.5},
            },
            "ready": {"http": "http://127.0.0.1:{{ port }}/"},
        }))
    }

    fn problem_paths(settings: &Settings) -> Vec<String> {
        settings
            .validate()
            .iter()
            .map(|p| p.path.to_string())
            .collect()
    }

    #[test]
    fn templates_render_setting_values_and_literals() {
        let s = demo();
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        let launch = s.launch().expect("templates parse");
        let mut values = s.baseline();
        let render = |values: &Values| {
            launch
                .args
                .iter()
                .map(|t| t.render(values))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            render(&values),
            ["-m", "http.server", "8080", "--workers=2", "{{x}}"]
        );
        values.insert("workers".into(), SettingValue::Float(4.0));
        assert_eq!(
            render(&values)[3],
            "--workers=4",
            "a whole float renders without `.0`"
        );
        assert_eq!(launch.env[0].1.render(&values), "safe");
    }

    #[test]
    fn a_template_naming_an_unknown_setting_is_a_problem_at_its_path() {
        let mut s = demo();
        s.args[3] = "--workers={{ wrkers }}".into();
        s.env.insert("CACHE".into(), "{{ cache }}".into());
        let problems = s.validate();
        let paths: Vec<String> = problems.iter().map(|p| p.path.to_string()).collect();
        assert_eq!(paths, ["args[3]", "env.CACHE"]);
        assert!(
            problems[0].message.contains("did you mean `workers`?"),
            "{}",
            problems[0].message
        );
        assert!(
            problems[1]
                .message
                .contains("settings: mode, port, ratio, workers"),
            "{}",
            problems[1].message
        );
    }

    #[test]
    fn unclosed_and_empty_placeholders_are_problems() {
        let mut s = demo();
        s.args = vec!["{{ port".into(), "{{}}".into()];
        let problems = s.validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("never closed"));
        assert!(problems[1].message.contains("empty"));
    }

    #[test]
    fn settings_need_a_baseline_and_a_text_friendly_kind() {
        let mut s = demo();
        s.settings.get_mut("workers").expect("declared").value = None;
        s.settings.get_mut("ratio").expect("declared").kind = SettingKind::Cpu;
        assert_eq!(
            problem_paths(&s),
            ["settings.ratio.type", "settings.workers"]
        );
    }

    #[test]
    fn ready_needs_exactly_one_probe_that_renders_with_the_baseline() {
        let mut s = demo();
        let ready = s.ready.as_mut().expect("declared");
        ready.tcp = Some(PortSpec::Number(8080));
        assert_eq!(problem_paths(&s), ["ready"]);

        let mut s = demo();
        s.ready = Some(Ready {
            http: None,
            tcp: Some(PortSpec::Template("{{ mode }}".into())),
            timeout: default_ready_timeout(),
            interval: default_ready_interval(),
        });
        let problems = s.validate();
        assert_eq!(problems[0].path.to_string(), "ready.tcp");
        assert!(
            problems[0].message.contains("not a TCP port"),
            "{}",
            problems[0].message
        );

        s.ready = Some(Ready {
            http: Some("localhost:{{ port }}".into()),
            tcp: None,
            timeout: default_ready_timeout(),
            interval: default_ready_interval(),
        });
        assert_eq!(problem_paths(&s), ["ready.http"]);
    }

    #[test]
    fn tcp_targets_default_to_loopback_and_accept_host_port() {
        let s = BTreeMap::new();
        let probe = |text: &str| {
            Probe::Tcp(Template::parse(text, &s).expect("parses")).render(&Values::new())
        };
        assert_eq!(
            probe("9000"),
            Ok(Target::Tcp {
                host: "127.0.0.1".into(),
                port: 9000
            })
        );
        assert_eq!(
            probe("[::1]:9000"),
            Ok(Target::Tcp {
                host: "::1".into(),
                port: 9000
            })
        );
        assert!(probe("0").is_err());
        assert!(probe("70000").is_err());
    }

    #[test]
    fn the_example_is_valid() {
        let example = Settings::example();
        assert!(example.validate().is_empty(), "{:?}", example.validate());
        let json = serde_json::to_value(&example).expect("serializes");
        let back: Settings = serde_json::from_value(json).expect("round-trips");
        assert_eq!(back.args, example.args);
    }

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // comm may contain spaces and parentheses; utime=7 stime=3 cutime=2 cstime=1.
        let stat = "4242 (we) ird (name) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 123 4096 300";
        assert_eq!(parse_stat_ticks(stat), Some(13));
        assert_eq!(parse_stat_ticks("4242 (truncated) S 1 2"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tpython3\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(parse_status_kib("Name:\tzombie\n", "VmRSS:"), None);
    }

    #[test]
    fn the_own_process_tree_is_readable() {
        let usage = read_usage(std::process::id()).expect("reads /proc/self");
        assert!(usage.rss_bytes > 1 << 20, "{usage:?}");
        assert!(ticks_per_second() >= 1.0);
    }

    #[test]
    fn a_window_sums_cpu_steps_and_averages_memory() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let usage = |cpu_ticks, mib: u64| Usage {
            cpu_ticks,
            rss_bytes: mib << 20,
        };
        let mut w = Window::new(usage(1000, 10), 100.0, t0);
        w.add(usage(1050, 30), at(500), 0.5);
        // A forked worker left the tree: the sum drops, which takes nothing from what was counted.
        w.add(usage(1040, 20), at(1000), 1.0);
        for step in 1..=SAMPLES_PER_POINT {
            w.add(
                usage(1040 + 5 * step, 20),
                at(1000 + 100 * step),
                1.0 + 0.1 * step as f64,
            );
        }
        w.finish(2.0);
        let readings = w.readings();
        let value = |name: &str| {
            readings
                .iter()
                .find(|r| r.metric.name == name)
                .map(|r| r.value)
        };
        assert_eq!(value("cpu_seconds"), Some(1.0));
        assert_eq!(value("cpu_cores_avg"), Some(0.5));
        assert_eq!(value("rss_max_bytes"), Some((30u64 << 20) as f64));
        let samples = 3 + SAMPLES_PER_POINT;
        let mean = ((10 + 30 + 20 * (samples - 2)) << 20) as f64 / samples as f64;
        assert_eq!(value("rss_mean_bytes"), Some(mean));
        let cores = &readings[1].series.as_ref().expect("a series").points;
        assert_eq!(
            cores.len(),
            2,
            "a full point, then the partial one: {cores:?}"
        );
        assert!(
            cores.iter().all(|(_, c)| (c - 0.5).abs() < 1e-9),
            "{cores:?}"
        );

        w.peak_rss = Some(64 << 20);
        assert_eq!(
            w.readings()[2].value,
            (64u64 << 20) as f64,
            "the kernel's peak wins when higher"
        );
    }

    #[tokio::test]
    async fn output_is_kept_line_by_line_and_bounded() {
        let mut bytes = b"first\r\n".to_vec();
        bytes.extend(vec![b'x'; 3 * MAX_LINE_BYTES]);
        bytes.extend(b"\nbad \xff byte\nlast, without a newline");
        let tail = Arc::new(Tail::default());
        forward(&bytes[..], "stderr", 1, "test".into(), Arc::clone(&tail)).await;
        let lines = tail.lines();
        assert_eq!(lines[0], "first", "\\r\\n endings are trimmed");
        assert_eq!(
            lines[1].len(),
            MAX_LINE_BYTES,
            "a long line is cut, not kept whole"
        );
        assert_eq!(
            lines[2], "bad \u{FFFD} byte",
            "invalid UTF-8 is replaced, not fatal"
        );
        assert_eq!(lines[3], "last, without a newline");

        let many: String = (0..2 * TAIL_LINES).map(|i| format!("line {i}\n")).collect();
        let tail = Arc::new(Tail::default());
        forward(
            many.as_bytes(),
            "stdout",
            1,
            "test".into(),
            Arc::clone(&tail),
        )
        .await;
        let lines = tail.lines();
        assert_eq!(lines.len(), TAIL_LINES, "only the last lines are kept");
        assert_eq!(lines[0], format!("line {TAIL_LINES}"));
    }

    #[test]
    fn command_lines_are_quoted_for_a_shell() {
        assert_eq!(shell_quote("--port=8080"), "--port=8080");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn programs_are_found_like_execvp_finds_them() {
        let path = std::env::var_os("PATH");
        assert!(find_program(Path::new("sh"), path.clone()).is_some());
        assert!(find_program(Path::new("no-such-program-here"), path).is_none());
        assert!(find_program(Path::new("/bin/sh"), None).is_some());
        assert!(
            find_program(Path::new("/etc/passwd"), None).is_none(),
            "not executable"
        );
    }
}
