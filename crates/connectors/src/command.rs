//! `command`: hooks for anything servo has no connector for.
//!
//! The user declares the application's components and settings in the config and names the
//! commands servo runs to describe, adjust and measure it, in the style of Opsani's servo-exec
//! drivers. It needs nothing but those commands. Events: `describe` (and `components`), `adjust`,
//! `metrics`, `measure`, `check`.
//!
//! # The protocol
//!
//! A command is an argv list, run without a shell: `adjust: [./hooks/adjust.sh, --verbose]`. A
//! program with a `/` in it is resolved against `working_dir`, a bare name through `PATH` (the
//! `PATH` of `env` when it sets one), exactly as `servo check` resolves it. Every hook runs in
//! `working_dir` with servo's environment, minus servo's own `SERVO_*` variables (they may hold
//! secrets such as the optimizer token), plus `env`, plus `SERVO_MOUNT` (the key this connector is
//! mounted under) and `SERVO_HOOK` (`describe`, `adjust` or `measure`), so one script can serve
//! every hook. Durations are seconds: `30` or `0.25` in variables, numbers in JSON.
//!
//! - **describe** reads nothing and prints the current state in the shape of the config's
//!   `components`: `{"components": {"main": {"settings": {"cpu": {"value": 1.5}}}}}`. A declared
//!   setting needs only its `value`; any other field printed (`min`, `max`, `step`, `values`,
//!   `unit`, `pinned`, `type`) overrides the declared one. A setting the config does not declare
//!   must bring its domain (`type` and `min`/`max`, or `values`). Declared settings left out keep
//!   their last known value. Without a describe command, servo reports the declared values, updated
//!   by each successful adjustment.
//! - **adjust** gets `SERVO_SETTING_<COMPONENT>_<SETTING>` for every setting with a known value, the
//!   adjustments applied (names upper-cased, characters other than letters and digits as `_`:
//!   `main.max-conns` is `SERVO_SETTING_MAIN_MAX_CONNS`), and on stdin
//!   `{"adjustments": [{"component", "setting", "value"}], "control": {"duration", "warmup",
//!   "delay", "settlement", "userdata"}}` with only the settings to change. Exit 0 means applied;
//!   servo then waits for the control's settlement and runs describe, when there is one, to report
//!   the result. A non-zero exit is a **failed** adjustment (servo could not apply it; the runner's
//!   `on_failure` policy decides what happens next). A hook that did apply the settings but found
//!   the application unable to run with them prints, as a line of stdout, the legacy Opsani
//!   adjust-driver status `{"status": "rejected", "reason": "unstable", "message": "..."}`: the
//!   adjustment is then **rejected**, a failed trial the optimizer learns from. Other stdout is
//!   free-form and only logged.
//! - **measure** gets `SERVO_MEASURE_DURATION`, `SERVO_MEASURE_WARMUP`, `SERVO_MEASURE_DELAY`
//!   (seconds) and `SERVO_METRICS` (the requested metrics, comma-separated; every declared metric
//!   when none is requested), the same on stdin as `{"metrics": [..], "control": {..}}`, and prints
//!   `{"metrics": {"<name>": {"value": 12.5, "unit": "ms"}}, "annotations": {"<key>": "<text>"}}`.
//!   A metric may give its series as `"values": [[<unix seconds>, <value>], ...]`; its `value` is
//!   then the series' mean unless printed too. Declared `metrics` are what the `metrics` event
//!   offers; metrics printed but not declared are still reported, with one warning per name.
//!
//! describe and measure may print `{"progress": ...}` objects before their result, as legacy Opsani
//! drivers do; they are skipped. Any other extra document, invalid JSON or a non-zero exit is an
//! error that quotes the position of the problem and the last lines of stderr.
//!
//! # Processes
//!
//! Each hook is spawned in its own process group, so a terminal's Ctrl-C reaches servo only and
//! servo decides what dies. The group is killed (`SIGKILL`) when the hook overruns its deadline
//! (`timeout`, plus warmup + duration + delay for measure), when the event is cancelled, and when the
//! hook exits while processes it started are still running: a hook that starts a long-lived service
//! must move it out of its process group (`setsid`). The hook itself is always reaped. On Linux, the
//! hook also gets `PR_SET_PDEATHSIG`, so it dies if servo is killed without a chance to clean up.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;

use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use servo_core::connector::{BuildContext, ConnectorSettings, EventContext, Handlers};
use servo_core::path::env_key;
use servo_core::spec::{self, Components, SettingSpec};
use servo_core::types::{
    Adjustment, Check, Component, Control, Description, MeasureRequest, Measurement, Metric,
    Reading, Setting, SettingKind, SettingValue, TimeSeries,
};
use servo_core::units::Duration;
use servo_core::{BuildConnector, Connector, ConnectorError, Event, KeyPath, Problem};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::util::child;

/// Settings of the `command` connector.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The application's components and their settings: the domains the optimizer explores and the
    /// starting values. The describe command can report more settings and current values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: Components,
    /// The metrics the measure command reports, offered to `servo measure METRIC` and the optimizer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    /// Prints the current state as `{"components": {COMPONENT: {"settings": {SETTING: {"value":
    /// ..}}}}}`. An argv list, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub describe: Option<Vec<String>>,
    /// Applies the settings it gets as `SERVO_SETTING_<COMPONENT>_<SETTING>` variables and as JSON
    /// on stdin; exit 0 means applied. An argv list, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub adjust: Option<Vec<String>>,
    /// Measures for `SERVO_MEASURE_DURATION` seconds and prints `{"metrics": {NAME: {"value": ..,
    /// "unit": ..}}}`. An argv list, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub measure: Option<Vec<String>>,
    /// How long a hook may run before servo kills it and its process group. A measure command gets
    /// the measurement's warmup + duration + delay on top.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Measurement duration when the request gives none (0: the measure command decides).
    #[serde(default = "default_duration")]
    pub duration: Duration,
    /// Extra environment variables for every hook; numbers and booleans are passed as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// The directory hooks run in, and against which program paths containing a `/` are resolved;
    /// relative to the config file's directory, which is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_duration() -> Duration {
    Duration::ZERO
}

/// A metric the measure command reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The metric's name, as the measure command prints it.
    pub name: String,
    /// Its unit (`ms`, `rps`, `%`, ...); used when the measure command prints none.
    #[serde(default)]
    pub unit: String,
}

/// An environment variable's value. YAML scalars are accepted and passed as text, so `PORT: 8080`
/// needs no quotes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EnvValue(pub String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl serde::de::Visitor<'_> for Scalar {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(Scalar)
    }
}

impl JsonSchema for EnvValue {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A value: strings are passed as they are, numbers and booleans as text.",
            "type": ["string", "number", "boolean"]
        })
    }
}

impl ConnectorSettings for Settings {
    fn example() -> Self {
        let mut settings = BTreeMap::new();
        settings.insert(
            "workers".to_string(),
            SettingSpec::numeric(SettingKind::Int, 1.0, 16.0)
                .with_step(1.0)
                .with_value(SettingValue::Int(4)),
        );
        settings.insert(
            "cache".to_string(),
            SettingSpec::enumeration(vec!["none".into(), "lru".into(), "lfu".into()])
                .with_value("lru"),
        );
        let mut components = Components::new();
        components.insert("app".to_string(), spec::ComponentSettings { settings });
        Settings {
            description: Some("hooks that describe, adjust and measure the app".into()),
            components,
            metrics: vec![
                MetricSpec {
                    name: "latency_p99".into(),
                    unit: "ms".into(),
                },
                MetricSpec {
                    name: "throughput".into(),
                    unit: "rps".into(),
                },
            ],
            describe: Some(vec!["./hooks/describe.sh".into()]),
            adjust: Some(vec!["./hooks/adjust.sh".into()]),
            measure: Some(vec!["./hooks/measure.sh".into()]),
            timeout: default_timeout(),
            duration: Duration::from_secs(30),
            env: BTreeMap::new(),
            working_dir: None,
        }
    }

    fn validate(&self) -> Vec<Problem> {
        let root = KeyPath::root();
        let mut problems = spec::validate(&self.components, &root.key("components"));
        for hook in Hook::ALL {
            match hook.argv(self) {
                Some([]) => problems.push(
                    Problem::new(root.key(hook.name()), "the command is empty").with_help(format!(
                        "give the program and its arguments: `{}: [./{}.sh]`",
                        hook.name(),
                        hook.name()
                    )),
                ),
                Some([program, ..]) if program.trim().is_empty() => problems.push(Problem::new(
                    root.key(hook.name()).index(0),
                    "the program name is empty",
                )),
                _ => {}
            }
        }
        if Hook::ALL.iter().all(|h| h.argv(self).is_none()) {
            problems.push(
                Problem::new(
                    root.clone(),
                    "no command to run: set `describe`, `adjust` or `measure`",
                )
                .with_help("for example `measure: [./measure.sh]`"),
            );
        }
        if self.adjust.is_some() && self.components.is_empty() && self.describe.is_none() {
            problems.push(
                Problem::new(
                    root.key("adjust"),
                    "there is nothing to adjust: no component is declared",
                )
                .with_help("declare `components`, or add a `describe` command that reports them"),
            );
        }
        if !self.metrics.is_empty() && self.measure.is_none() {
            problems.push(
                Problem::new(
                    root.key("metrics"),
                    "metrics are declared but there is no `measure` command",
                )
                .with_help("add `measure: [PROGRAM, ARGS...]`, or remove `metrics`"),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, metric) in self.metrics.iter().enumerate() {
            if metric.name.trim().is_empty() {
                problems.push(Problem::new(
                    root.key("metrics").index(i).key("name"),
                    "the metric name is empty",
                ));
            } else if !seen.insert(metric.name.as_str()) {
                problems.push(Problem::new(
                    root.key("metrics").index(i).key("name"),
                    format!("the metric `{}` is declared twice", metric.name),
                ));
            }
        }
        for (name, value) in &self.env {
            let at = root.key("env").key(name.clone());
            if name.is_empty() || name.contains(['=', '\0']) {
                problems.push(Problem::new(
                    at,
                    "an environment variable name cannot be empty or contain `=`",
                ));
            } else if value.0.contains('\0') {
                problems.push(Problem::new(
                    at,
                    "an environment variable cannot contain a NUL character",
                ));
            }
        }
        let names = spec::components(&self.components);
        for (first, second, var) in variable_collisions(&names) {
            let (component, setting) = second;
            problems.push(
                Problem::new(
                    root.key("components").key(component.clone()).key("settings").key(setting.clone()),
                    format!(
                        "`{}.{}` and `{component}.{setting}` would both be passed to the adjust command as {var}",
                        first.0, first.1
                    ),
                )
                .with_help("rename one of them; in variable names, characters other than letters and digits become `_`"),
            );
        }
        problems
    }
}

/// The three hooks a config can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hook {
    Describe,
    Adjust,
    Measure,
}

impl Hook {
    const ALL: [Hook; 3] = [Hook::Describe, Hook::Adjust, Hook::Measure];

    fn name(self) -> &'static str {
        match self {
            Hook::Describe => "describe",
            Hook::Adjust => "adjust",
            Hook::Measure => "measure",
        }
    }

    fn argv(self, settings: &Settings) -> Option<&[String]> {
        match self {
            Hook::Describe => settings.describe.as_deref(),
            Hook::Adjust => settings.adjust.as_deref(),
            Hook::Measure => settings.measure.as_deref(),
        }
    }
}

/// The connector: its settings, where its hooks run, and the last known state of its components.
pub struct Hooks {
    settings: Settings,
    mount: String,
    /// Absolute, so that neither servo's own working directory nor the platform's rules for
    /// relative programs in another directory matter.
    working_dir: PathBuf,
    declared: Vec<Component>,
    state: Mutex<Vec<Component>>,
    /// Warnings already given (an undeclared metric, a unit that differs from the declared one),
    /// so that a long run gives each once.
    warned: Mutex<BTreeSet<String>>,
}

servo_core::register!(Hooks {
    name: "command",
    description: "Runs your commands to describe, adjust and measure anything servo has no connector for",
});

impl BuildConnector for Hooks {
    type Settings = Settings;

    fn build(settings: Settings, cx: &BuildContext) -> Result<Self, ConnectorError> {
        let dir = match &settings.working_dir {
            Some(dir) => cx.base_dir.join(dir),
            None => cx.base_dir.clone(),
        };
        let working_dir = std::path::absolute(&dir).map_err(|e| {
            ConnectorError::failed(format!(
                "cannot resolve the working directory {}: {e}",
                dir.display()
            ))
        })?;
        let declared = spec::components(&settings.components);
        Ok(Self {
            state: Mutex::new(declared.clone()),
            declared,
            settings,
            mount: cx.mount.clone(),
            working_dir,
            warned: Mutex::new(BTreeSet::new()),
        })
    }
}

#[async_trait]
impl Connector for Hooks {
    fn handlers(&self) -> Handlers {
        let mut events = vec![Event::Check];
        // Adjust is declared whenever there are components, so that adjusting them without an
        // adjust command is an error rather than an adjustment the bus silently skips.
        if !self.declared.is_empty() || self.settings.describe.is_some() {
            events.extend([Event::Describe, Event::Adjust]);
        } else if self.settings.adjust.is_some() {
            events.push(Event::Adjust);
        }
        if self.settings.measure.is_some() {
            events.extend([Event::Metrics, Event::Measure]);
        }
        Handlers::on(&events)
    }

    async fn check(&self, _cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        let mut checks = Vec::new();
        if !self.working_dir.is_dir() {
            checks.push(
                Check::fail(
                    "working directory",
                    format!("{} is not a directory", self.working_dir.display()),
                )
                .with_hint("create it, or fix `working_dir` (it is relative to the config file's directory)"),
            );
        }
        for hook in Hook::ALL {
            let Some(argv) = hook.argv(&self.settings) else {
                continue;
            };
            let name = format!("{} command", hook.name());
            checks.push(match self.resolve(argv) {
                Ok(path) => {
                    Check::pass(name, format!("`{}` is {}", argv_text(argv), path.display()))
                }
                Err(unresolved) => Check::fail(name, unresolved.to_string())
                    .with_hint(unresolved.hint(&self.working_dir)),
            });
        }
        Ok(checks)
    }

    async fn describe(&self, cx: &EventContext) -> Result<Description, ConnectorError> {
        Ok(Description {
            components: self.current(cx).await?,
            metrics: Vec::new(),
        })
    }

    async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        Ok(self
            .settings
            .metrics
            .iter()
            .map(|m| Metric::new(m.name.clone(), m.unit.clone()))
            .collect())
    }

    async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        let Some(argv) = &self.settings.measure else {
            return Err(ConnectorError::invalid(format!(
                "`{}` has no measure command",
                self.mount
            )));
        };
        let mut control = request.control.clone();
        if control.duration.is_zero() {
            control.duration = self.settings.duration;
        }
        let metrics: Vec<String> = if request.metrics.is_empty() {
            self.settings
                .metrics
                .iter()
                .map(|m| m.name.clone())
                .collect()
        } else {
            request.metrics.clone()
        };
        let mut env = vec![
            (
                "SERVO_MEASURE_DURATION".to_string(),
                seconds(control.duration),
            ),
            ("SERVO_MEASURE_WARMUP".to_string(), seconds(control.warmup)),
            ("SERVO_MEASURE_DELAY".to_string(), seconds(control.delay)),
            ("SERVO_METRICS".to_string(), metrics.join(",")),
        ];
        env.sort();
        let input = serde_json::to_vec(&MeasureInput {
            metrics: &metrics,
            control: ControlInput::from(&control),
        })
        .map_err(|e| ConnectorError::failed(format!("cannot encode the measure request: {e}")))?;
        let window = control
            .warmup
            .as_std()
            .saturating_add(control.duration.as_std())
            .saturating_add(control.delay.as_std());
        let run = self
            .run(
                Invocation {
                    hook: Hook::Measure,
                    argv,
                    env,
                    input: Some(input),
                    window,
                },
                cx,
            )
            .await?;
        let label = label(Hook::Measure, argv);
        run.succeeded(&label)?;
        let output: MeasureOutput = run.document(&label, "metrics", MEASURE_EXAMPLE)?;
        let measurement = self.measurement(output, &run, &label)?;
        for wanted in &request.metrics {
            if measurement.reading(wanted).is_none() {
                tracing::warn!(mount = %self.mount, metric = %wanted, "the measure command printed no `{wanted}`");
            }
        }
        Ok(measurement)
    }

    async fn adjust(
        &self,
        adjustments: &[Adjustment],
        control: &Control,
        cx: &EventContext,
    ) -> Result<Description, ConnectorError> {
        let Some(argv) = &self.settings.adjust else {
            return Err(ConnectorError::invalid(format!(
                "`{}` cannot change settings: it has no adjust command",
                self.mount
            ))
            .with_hint("add `adjust: [PROGRAM, ARGS...]` to its section"));
        };
        let mut planned = self.state();
        for a in adjustments {
            if let Some(setting) = find_setting(&mut planned, &a.component, &a.setting) {
                setting.value = Some(a.value.clone());
            }
        }
        if let Some((first, second, var)) = variable_collisions(&planned).into_iter().next() {
            return Err(ConnectorError::invalid(format!(
                "`{}.{}` and `{}.{}` would both be passed to the adjust command as {var}",
                first.0, first.1, second.0, second.1
            ))
            .with_hint("rename one of them in the describe command's output"));
        }
        let mut env: Vec<(String, String)> = planned
            .iter()
            .flat_map(|c| {
                c.settings.iter().filter_map(|s| {
                    s.value
                        .as_ref()
                        .map(|v| (setting_variable(&c.name, &s.name), v.to_string()))
                })
            })
            .collect();
        env.sort();
        let input = serde_json::to_vec(&AdjustInput {
            adjustments,
            control: ControlInput::from(control),
        })
        .map_err(|e| ConnectorError::failed(format!("cannot encode the adjustments: {e}")))?;
        let run = self
            .run(
                Invocation {
                    hook: Hook::Adjust,
                    argv,
                    env,
                    input: Some(input),
                    window: std::time::Duration::ZERO,
                },
                cx,
            )
            .await?;
        let label = label(Hook::Adjust, argv);
        match adjust_status(&run.stdout) {
            Some(status) if status.status == "rejected" => {
                return Err(ConnectorError::Rejected {
                    reason: status.reason.unwrap_or_else(|| "unstable".into()),
                    message: status.message.unwrap_or_else(|| run.stderr.summary(&label)),
                });
            }
            Some(status) if status.status == "failed" => {
                let message = status
                    .message
                    .unwrap_or_else(|| "it reported `failed`".into());
                return Err(ConnectorError::failed(format!(
                    "the {label} reported a failure: {message}{}",
                    run.stderr.quoted()
                ))
                .with_hint("run it by hand with the same environment and stdin to see why"));
            }
            _ => run.succeeded(&label)?,
        }
        {
            let mut state = self.lock_state()?;
            for a in adjustments {
                if let Some(setting) = find_setting(&mut state, &a.component, &a.setting) {
                    setting.value = Some(a.value.clone());
                }
            }
        }
        if let Some(settlement) = control.settlement.filter(|s| !s.is_zero()) {
            cx.sleep(settlement.as_std()).await?;
        }
        let components = self.current(cx).await?;
        for a in adjustments {
            let reported = components
                .iter()
                .find(|c| c.name == a.component)
                .and_then(|c| c.setting(&a.setting))
                .and_then(|s| s.value.as_ref());
            if let Some(value) = reported
                && !same_value(value, &a.value)
            {
                tracing::warn!(
                    mount = %self.mount,
                    "after adjusting {a}, the describe command reports {}.{}={value}",
                    a.component,
                    a.setting
                );
            }
        }
        Ok(Description {
            components,
            metrics: Vec::new(),
        })
    }
}

fn same_value(a: &SettingValue, b: &SettingValue) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a.to_string() == b.to_string(),
    }
}

fn find_setting<'a>(
    components: &'a mut [Component],
    component: &str,
    setting: &str,
) -> Option<&'a mut Setting> {
    components
        .iter_mut()
        .find(|c| c.name == component)
        .and_then(|c| c.settings.iter_mut().find(|s| s.name == setting))
}

impl Hooks {
    fn state(&self) -> Vec<Component> {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| self.declared.clone())
    }

    fn lock_state(&self) -> Result<std::sync::MutexGuard<'_, Vec<Component>>, ConnectorError> {
        self.state.lock().map_err(|_| {
            ConnectorError::failed("the command connector's state was poisoned by a panic")
        })
    }

    /// The components as they are now: from the describe command when there is one (remembered as
    /// the last known state), else the declared ones with the values of past adjustments.
    async fn current(&self, cx: &EventContext) -> Result<Vec<Component>, ConnectorError> {
        let Some(argv) = &self.settings.describe else {
            return Ok(self.state());
        };
        let run = self
            .run(
                Invocation {
                    hook: Hook::Describe,
                    argv,
                    env: Vec::new(),
                    input: None,
                    window: std::time::Duration::ZERO,
                },
                cx,
            )
            .await?;
        let label = label(Hook::Describe, argv);
        run.succeeded(&label)?;
        let output: DescribeOutput = run.document(&label, "components", DESCRIBE_EXAMPLE)?;
        let components = merge(&self.declared, &self.state(), output).map_err(|message| {
            ConnectorError::failed(format!("the {label} printed {message}{}", run.stderr.quoted())).with_hint(
                "declare the setting under `components` in the config, or print its `type` and `min`/`max` or `values`",
            )
        })?;
        *self.lock_state()? = components.clone();
        Ok(components)
    }

    fn measurement(
        &self,
        output: MeasureOutput,
        run: &Finished,
        label: &str,
    ) -> Result<Measurement, ConnectorError> {
        let mut printed = output.metrics;
        let mut readings = Vec::new();
        let mut undeclared = Vec::new();
        let declared = self
            .settings
            .metrics
            .iter()
            .map(|m| (m.name.clone(), Some(m)));
        let extra: Vec<(String, Option<&MetricSpec>)> = printed
            .keys()
            .filter(|name| !self.settings.metrics.iter().any(|m| &m.name == *name))
            .map(|name| (name.clone(), None))
            .collect();
        for (name, spec) in declared.chain(extra) {
            let Some(metric) = printed.remove(&name) else {
                continue;
            };
            if spec.is_none() {
                undeclared.push(name.clone());
            }
            let unit = match (metric.unit, spec) {
                (Some(printed), Some(spec)) if !spec.unit.is_empty() && printed != spec.unit => {
                    self.warn_once(
                        format!("unit:{name}"),
                        format!("the measure command reports `{name}` in `{printed}`, but `metrics` declares `{}`", spec.unit),
                    );
                    printed
                }
                (Some(printed), _) => printed,
                (None, Some(spec)) => spec.unit.clone(),
                (None, None) => String::new(),
            };
            let series = metric.values.map(|points| TimeSeries { id: None, points });
            let value = match (metric.value, &series) {
                (Some(value), _) => value,
                (None, Some(series)) if !series.points.is_empty() => {
                    series.points.iter().map(|(_, v)| v).sum::<f64>() / series.points.len() as f64
                }
                _ => {
                    return Err(ConnectorError::failed(format!(
                        "the {label} printed no `value` for `{name}`, and no `values` to take the mean of{}",
                        run.stderr.quoted()
                    ))
                    .with_hint(MEASURE_EXAMPLE));
                }
            };
            let mut reading = Reading::new(Metric::new(name, unit), value);
            reading.series = series;
            readings.push(reading);
        }
        for name in undeclared {
            self.warn_once(
                format!("metric:{name}"),
                format!("the measure command reports `{name}`, which `metrics` does not declare; declare it so the optimizer can ask for it"),
            );
        }
        let annotations = output
            .annotations
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect();
        Ok(Measurement {
            readings,
            annotations,
        })
    }

    fn warn_once(&self, key: String, message: String) {
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(key))
            .unwrap_or(true);
        if first {
            tracing::warn!(mount = %self.mount, "{message}");
        }
    }

    /// The program's path, resolved as `servo check` and every run resolve it.
    fn resolve(&self, argv: &[String]) -> Result<PathBuf, Unresolved> {
        let program = argv.first().map(String::as_str).unwrap_or_default();
        let path = match self.settings.env.get("PATH") {
            Some(value) => Some(OsString::from(&value.0)),
            None => std::env::var_os("PATH"),
        };
        resolve_program(program, &self.working_dir, path.as_deref())
    }

    /// Runs one hook to completion, its deadline or the event's cancellation, whichever comes first.
    async fn run(
        &self,
        invocation: Invocation<'_>,
        cx: &EventContext,
    ) -> Result<Finished, ConnectorError> {
        let Invocation {
            hook,
            argv,
            env,
            input,
            window,
        } = invocation;
        let label = label(hook, argv);
        if !self.working_dir.is_dir() {
            return Err(ConnectorError::failed(format!(
                "cannot run the {label}: its working directory {} does not exist",
                self.working_dir.display()
            ))
            .with_hint(
                "create it, or fix `working_dir` (it is relative to the config file's directory)",
            ));
        }
        let program = self.resolve(argv).map_err(|u| {
            ConnectorError::failed(format!("cannot run the {label}: {u}"))
                .with_hint(u.hint(&self.working_dir))
        })?;

        let mut command = tokio::process::Command::new(&program);
        command
            .args(&argv[1..])
            .current_dir(&self.working_dir)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SERVO_") {
                command.env_remove(key);
            }
        }
        command.envs(self.settings.env.iter().map(|(k, v)| (k, &v.0)));
        command
            .env("SERVO_MOUNT", &self.mount)
            .env("SERVO_HOOK", hook.name());
        command.envs(env);
        // SIGKILL when servo dies: a hook has no state worth a graceful end.
        child::isolate(&mut command, child::Signal::KILL);

        let spawned = command.spawn().and_then(|child| {
            child::Group::new(child).ok_or_else(|| {
                std::io::Error::other("the hook exited before servo could see its pid")
            })
        });
        let mut running = spawned.map_err(|e| {
            ConnectorError::failed(format!("cannot start the {label} ({}): {e}", program.display()))
                .with_hint("check that it is a program this system can run, with a valid `#!` line if it is a script")
        })?;
        tracing::debug!(mount = %self.mount, hook = hook.name(), pid = running.pid(), "started {label}");

        let deadline = window.saturating_add(self.settings.timeout.as_std());
        let exited = CancellationToken::new();
        let stdin = running.child().and_then(|c| c.stdin.take());
        let stdout = running.child().and_then(|c| c.stdout.take());
        let stderr = running.child().and_then(|c| c.stderr.take());
        let mount = self.mount.clone();
        // Outside the run's future, so a hook that overruns can still be quoted.
        let mut tail = Tail::default();
        let completion = async {
            let wait = async {
                // The hook is gone; whatever it left running in its group goes too.
                let status = running.wait().await;
                exited.cancel();
                status
            };
            tokio::join!(
                wait,
                feed(stdin, input, &exited),
                read_stdout(stdout, &exited),
                read_stderr(stderr, &exited, &mut tail, |line| {
                    tracing::debug!(mount = %mount, hook = hook.name(), "stderr: {line}");
                }),
            )
        };
        let end = tokio::select! {
            outcome = completion => End::Exited(outcome),
            () = tokio::time::sleep(deadline) => End::Overran,
            () = cx.cancel.cancelled() => End::Cancelled,
        };
        let (status, (), (stdout, overflow, held_open), ()) = match end {
            End::Exited(outcome) => outcome,
            End::Cancelled => {
                running.kill().await;
                return Err(ConnectorError::Cancelled);
            }
            End::Overran => {
                running.kill().await;
                tail.finish();
                let limit = if window.is_zero() {
                    format!("its `timeout` of {}", self.settings.timeout)
                } else {
                    format!(
                        "{} (the measurement's {} plus `timeout` {})",
                        Duration::from(deadline),
                        Duration::from(window),
                        self.settings.timeout
                    )
                };
                return Err(ConnectorError::failed(format!(
                    "the {label} did not finish within {limit}; servo killed it and its process group{}",
                    tail.quoted()
                ))
                .with_hint("raise `timeout`, or run the command by hand to see where it hangs"));
            }
        };
        let status = status
            .map_err(|e| ConnectorError::failed(format!("lost track of the {label}: {e}")))?;
        if held_open {
            tracing::warn!(
                mount = %self.mount,
                "the {label} exited, but a process it started outside its process group kept its output open; servo stopped reading it"
            );
        }
        if overflow {
            return Err(ConnectorError::failed(format!(
                "the {label} printed more than {} MiB on stdout",
                STDOUT_LIMIT >> 20
            ))
            .with_hint("print the JSON result on stdout and everything else on stderr"));
        }
        Ok(Finished {
            status,
            stdout,
            stderr: tail,
        })
    }
}

/// How a hook's run ended.
enum End<T> {
    Exited(T),
    Overran,
    Cancelled,
}

/// One run of a hook, as the event handlers ask for it.
struct Invocation<'a> {
    hook: Hook,
    argv: &'a [String],
    /// The hook's protocol variables, set last so `env` cannot shadow them.
    env: Vec<(String, String)>,
    /// Written to stdin, which is then closed; `None` connects stdin to /dev/null.
    input: Option<Vec<u8>>,
    /// Time the hook legitimately needs besides `timeout` (a measurement's window).
    window: std::time::Duration,
}

/// What a hook left behind when it exited.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Tail,
}

impl Finished {
    fn succeeded(&self, label: &str) -> Result<(), ConnectorError> {
        if self.status.success() {
            return Ok(());
        }
        Err(ConnectorError::failed(format!(
            "the {label} {}{}",
            exit_text(&self.status),
            self.stderr.quoted()
        ))
        .with_hint("run it by hand with the same environment to see why"))
    }

    /// The hook's result document, typed; `key` is the field that marks it (`metrics`).
    fn document<T: serde::de::DeserializeOwned>(
        &self,
        label: &str,
        key: &str,
        example: &str,
    ) -> Result<T, ConnectorError> {
        let fail = |message: String| {
            ConnectorError::failed(format!("the {label} {message}{}", self.stderr.quoted()))
                .with_hint(format!("it must print one JSON object such as {example}"))
        };
        let document = match result_document(&self.stdout, key) {
            Ok(document) => document,
            Err(DocumentProblem::Empty) => return Err(fail("printed nothing on stdout".into())),
            Err(DocumentProblem::Several(n)) => {
                return Err(fail(format!(
                    "printed {n} JSON documents on stdout; expected one"
                )));
            }
            Err(DocumentProblem::Syntax(e)) => {
                return Err(fail(format!(
                    "printed invalid JSON on stdout: {e}{}",
                    snippet(&self.stdout, e.line(), e.column())
                )));
            }
        };
        serde_path_to_error::deserialize(document).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                String::new()
            } else {
                format!(" at `{path}`")
            };
            fail(format!("printed unexpected JSON{at}: {}", e.into_inner()))
        })
    }
}

fn exit_text(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => format!("ended with {status}"),
    }
}

/// "measure command `./measure.sh --fast`", for messages.
fn label(hook: Hook, argv: &[String]) -> String {
    format!("{} command `{}`", hook.name(), argv_text(argv))
}

fn argv_text(argv: &[String]) -> String {
    let text = argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    truncate(&text, 120)
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Seconds as the hooks get them: `30`, or `0.25` when not whole.
fn seconds(d: Duration) -> String {
    let d = d.as_std();
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

/// `SERVO_SETTING_<COMPONENT>_<SETTING>`, with the framework's rule for names in variables.
fn setting_variable(component: &str, setting: &str) -> String {
    format!("SERVO_SETTING_{}_{}", env_key(component), env_key(setting))
}

type SettingName = (String, String);

/// Pairs of settings that map to the same variable name, with that name.
fn variable_collisions(components: &[Component]) -> Vec<(SettingName, SettingName, String)> {
    let mut seen: BTreeMap<String, SettingName> = BTreeMap::new();
    let mut collisions = Vec::new();
    for c in components {
        for s in &c.settings {
            let var = setting_variable(&c.name, &s.name);
            let name = (c.name.clone(), s.name.clone());
            match seen.get(&var) {
                Some(first) => collisions.push((first.clone(), name, var)),
                None => {
                    seen.insert(var, name);
                }
            }
        }
    }
    collisions
}

/// The `control` object on a hook's stdin, durations in seconds.
#[derive(Serialize)]
struct ControlInput {
    duration: f64,
    warmup: f64,
    delay: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    settlement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    userdata: Option<Value>,
}

impl From<&Control> for ControlInput {
    fn from(c: &Control) -> Self {
        Self {
            duration: c.duration.as_secs_f64(),
            warmup: c.warmup.as_secs_f64(),
            delay: c.delay.as_secs_f64(),
            settlement: c.settlement.map(|s| s.as_secs_f64()),
            userdata: c.userdata.clone(),
        }
    }
}

#[derive(Serialize)]
struct AdjustInput<'a> {
    adjustments: &'a [Adjustment],
    control: ControlInput,
}

#[derive(Serialize)]
struct MeasureInput<'a> {
    metrics: &'a [String],
    control: ControlInput,
}

const DESCRIBE_EXAMPLE: &str = r#"{"components": {"main": {"settings": {"cpu": {"value": 1.5}}}}}"#;
const MEASURE_EXAMPLE: &str = r#"{"metrics": {"latency_p99": {"value": 12.5, "unit": "ms"}}}"#;

/// What a describe command prints.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DescribeOutput {
    components: BTreeMap<String, ReportedComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportedComponent {
    #[serde(default)]
    settings: BTreeMap<String, ReportedSetting>,
}

/// A setting as a describe command reports it: any field of a declared setting, all optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportedSetting {
    #[serde(rename = "type")]
    kind: Option<SettingKind>,
    min: Option<f64>,
    max: Option<f64>,
    step: Option<f64>,
    values: Option<Vec<String>>,
    value: Option<SettingValue>,
    unit: Option<String>,
    pinned: Option<bool>,
}

impl ReportedSetting {
    fn apply(self, s: &mut Setting) {
        if let Some(kind) = self.kind {
            s.kind = kind;
        }
        s.min = self.min.or(s.min);
        s.max = self.max.or(s.max);
        s.step = self.step.or(s.step);
        s.values = self.values.or(s.values.take());
        s.value = self.value.or(s.value.take());
        s.unit = self.unit.or(s.unit.take());
        s.pinned = self.pinned.unwrap_or(s.pinned);
    }

    fn into_spec(self) -> SettingSpec {
        SettingSpec {
            kind: self.kind.unwrap_or(SettingKind::Range),
            min: self.min,
            max: self.max,
            step: self.step,
            values: self.values,
            value: self.value,
            unit: self.unit,
            pinned: self.pinned.unwrap_or(false),
        }
    }
}

/// The components a describe command reported, laid over the declared ones: declared settings keep
/// their last known value (`known`) unless reported, undeclared ones must bring their domain.
fn merge(
    declared: &[Component],
    known: &[Component],
    output: DescribeOutput,
) -> Result<Vec<Component>, String> {
    let mut components: Vec<Component> = declared
        .iter()
        .map(|c| {
            let mut c = c.clone();
            for s in &mut c.settings {
                if let Some(value) = known
                    .iter()
                    .find(|k| k.name == c.name)
                    .and_then(|k| k.setting(&s.name))
                    .and_then(|k| k.value.clone())
                {
                    s.value = Some(value);
                }
            }
            c
        })
        .collect();
    for (component, reported) in output.components {
        let index = match components.iter().position(|c| c.name == component) {
            Some(i) => i,
            None => {
                components.push(Component::new(component.clone(), Vec::new()));
                components.len() - 1
            }
        };
        for (name, setting) in reported.settings {
            let target = &mut components[index];
            match target.settings.iter_mut().find(|s| s.name == name) {
                Some(existing) => setting.apply(existing),
                None => {
                    let spec = setting.into_spec();
                    let at = KeyPath::root().key(component.clone()).key(name.clone());
                    if let Some(problem) = spec.problems(&name, &at).into_iter().next() {
                        return Err(format!(
                            "the undeclared setting `{component}.{name}` without a usable domain: {}",
                            problem.message
                        ));
                    }
                    target.settings.push(spec.setting(&name));
                }
            }
        }
    }
    Ok(components)
}

/// What a measure command prints.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeasureOutput {
    metrics: BTreeMap<String, MetricOutput>,
    #[serde(default)]
    annotations: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricOutput {
    value: Option<f64>,
    unit: Option<String>,
    values: Option<Vec<(f64, f64)>>,
}

/// The legacy Opsani adjust-driver status line.
#[derive(Deserialize)]
struct AdjustStatus {
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The last status line an adjust command printed, if any; its other output is free-form.
fn adjust_status(stdout: &[u8]) -> Option<AdjustStatus> {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .filter(|line| line.trim_start().starts_with('{'))
        .find_map(|line| serde_json::from_str::<AdjustStatus>(line).ok())
}

enum DocumentProblem {
    Empty,
    Several(usize),
    Syntax(serde_json::Error),
}

/// The one result document on a describe or measure command's stdout: JSON documents separated by
/// whitespace, `{"progress": ..}` objects without `key` skipped.
fn result_document(stdout: &[u8], key: &str) -> Result<Value, DocumentProblem> {
    let mut results = Vec::new();
    for document in serde_json::Deserializer::from_slice(stdout).into_iter::<Value>() {
        let document = document.map_err(DocumentProblem::Syntax)?;
        let progress = document
            .as_object()
            .is_some_and(|o| o.contains_key("progress") && !o.contains_key(key));
        if !progress {
            results.push(document);
        }
    }
    match results.len() {
        0 => Err(DocumentProblem::Empty),
        1 => Ok(results.remove(0)),
        n => Err(DocumentProblem::Several(n)),
    }
}

/// The line of `text` where a JSON error is, with a caret under its column.
fn snippet(text: &[u8], line: usize, column: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let Some(source) = line.checked_sub(1).and_then(|i| text.lines().nth(i)) else {
        return String::new();
    };
    // serde_json counts columns in bytes; show a window of the line around that byte.
    let byte = column.saturating_sub(1).min(source.len());
    let at = source.char_indices().take_while(|(i, _)| *i < byte).count();
    let chars: Vec<char> = source.chars().collect();
    let start = at.saturating_sub(60);
    let end = (at + 40).min(chars.len());
    let shown: String = chars[start..end].iter().collect();
    let prefix = if start > 0 { "…" } else { "" };
    let caret = " ".repeat(at - start + prefix.chars().count());
    format!("\n    | {prefix}{shown}\n    | {caret}^")
}

/// Why a hook's program cannot be run.
#[derive(Debug, PartialEq, Eq)]
enum Unresolved {
    Empty,
    Missing(PathBuf),
    NotOnPath { program: String, path: String },
    NotAFile(PathBuf),
    NotExecutable(PathBuf),
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unresolved::Empty => f.write_str("the command names no program"),
            Unresolved::Missing(path) => write!(f, "{} does not exist", path.display()),
            Unresolved::NotOnPath { program, path } => {
                write!(f, "`{program}` is not on PATH ({path})")
            }
            Unresolved::NotAFile(path) => write!(f, "{} is not a file", path.display()),
            Unresolved::NotExecutable(path) => write!(f, "{} is not executable", path.display()),
        }
    }
}

impl Unresolved {
    fn hint(&self, working_dir: &Path) -> String {
        match self {
            Unresolved::Empty | Unresolved::NotAFile(_) => {
                "name the program first: `[./script.sh, ARG...]`".into()
            }
            Unresolved::Missing(_) => format!(
                "a program path with a `/` is relative to the working directory, {}",
                working_dir.display()
            ),
            Unresolved::NotOnPath { .. } => {
                "install it, give its path, or set `env.PATH` for the hooks".into()
            }
            Unresolved::NotExecutable(path) => {
                format!("make it executable: chmod +x {}", path.display())
            }
        }
    }
}

/// Finds `program` like `execvp` would, but relative to `working_dir` and before spawning, so the
/// check and the run agree and the error can say what is wrong.
fn resolve_program(
    program: &str,
    working_dir: &Path,
    path: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, Unresolved> {
    if program.trim().is_empty() {
        return Err(Unresolved::Empty);
    }
    if program.contains('/') || program.contains(std::path::MAIN_SEPARATOR) {
        // Without its `.` components, the path reads well in messages.
        let relative: PathBuf = Path::new(program)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let candidate = working_dir.join(relative);
        return match candidate.metadata() {
            Err(_) => Err(Unresolved::Missing(candidate)),
            Ok(m) if !m.is_file() => Err(Unresolved::NotAFile(candidate)),
            Ok(m) if !child::is_executable(&m) => Err(Unresolved::NotExecutable(candidate)),
            Ok(_) => Ok(candidate),
        };
    }
    if let Some(found) = child::on_path(program.as_ref(), path, Some(working_dir)) {
        return Ok(found);
    }
    // Only to say why: a file of that name that is there but not executable.
    let not_executable = path
        .map(std::env::split_paths)
        .into_iter()
        .flatten()
        .map(|dir| working_dir.join(dir).join(program))
        .find(|candidate| candidate.is_file());
    Err(match not_executable {
        Some(candidate) => Unresolved::NotExecutable(candidate),
        None => Unresolved::NotOnPath {
            program: program.to_string(),
            path: path
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
    })
}

/// The most a hook may print on stdout: results are small, and a runaway hook must not exhaust
/// servo's memory.
const STDOUT_LIMIT: usize = 16 << 20;

/// After the hook exits, how long its pipes may stay open: they only do when a process it started
/// outside its group inherited them.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves `DRAIN_GRACE` after `exited` is cancelled.
async fn drained(exited: &CancellationToken) {
    exited.cancelled().await;
    tokio::time::sleep(DRAIN_GRACE).await;
}

/// Writes the input to the hook's stdin and closes it. A hook that exits without reading it is fine.
async fn feed(
    stdin: Option<impl AsyncWrite + Unpin>,
    input: Option<Vec<u8>>,
    exited: &CancellationToken,
) {
    let (Some(mut stdin), Some(input)) = (stdin, input) else {
        return;
    };
    tokio::select! {
        _ = async {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        } => {}
        () = drained(exited) => {}
    }
}

/// Reads stdout up to `STDOUT_LIMIT`, draining (and dropping) the rest so the hook never blocks.
/// Returns the bytes, whether there were more, and whether the pipe was still open after the grace.
async fn read_stdout(
    pipe: Option<impl AsyncRead + Unpin>,
    exited: &CancellationToken,
) -> (Vec<u8>, bool, bool) {
    let mut out = Vec::new();
    let mut overflow = false;
    let held_open = read_chunks(pipe, exited, |chunk| {
        let room = STDOUT_LIMIT.saturating_sub(out.len());
        overflow |= chunk.len() > room;
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
    })
    .await;
    (out, overflow, held_open)
}

/// Reads stderr, handing each line to `log` and keeping the last ones for error messages.
async fn read_stderr(
    pipe: Option<impl AsyncRead + Unpin>,
    exited: &CancellationToken,
    tail: &mut Tail,
    mut log: impl FnMut(&str),
) {
    read_chunks(pipe, exited, |chunk| {
        for line in tail.push(chunk) {
            log(&line);
        }
    })
    .await;
    if let Some(line) = tail.finish() {
        log(&line);
    }
}

/// Calls `each` with every chunk read until end of file, or until `DRAIN_GRACE` after the hook
/// exited; returns whether the grace ran out.
async fn read_chunks(
    pipe: Option<impl AsyncRead + Unpin>,
    exited: &CancellationToken,
    each: impl FnMut(&[u8]),
) -> bool {
    let Some(pipe) = pipe else { return false };
    child::read_chunks(pipe, drained(exited), each).await
}

/// The last lines a hook wrote to stderr, bounded in count and length.
#[derive(Debug)]
struct Tail {
    lines: child::Tail,
    split: child::Lines,
}

impl Default for Tail {
    fn default() -> Self {
        Self {
            lines: child::Tail::new(Self::LINES),
            split: child::Lines::new(Self::LINE_BYTES, "…"),
        }
    }
}

impl Tail {
    const LINES: usize = 20;
    const LINE_BYTES: usize = 1000;

    /// Takes a chunk of output; returns the lines it completed.
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut completed = Vec::new();
        self.split.push(chunk, |line| completed.push(line));
        for line in &completed {
            self.lines.push(line.clone());
        }
        completed
    }

    /// Completes a last line that had no newline.
    fn finish(&mut self) -> Option<String> {
        let line = self.split.finish()?;
        self.lines.push(line.clone());
        Some(line)
    }

    /// The tail as an indented block to append to a message, or nothing when stderr was empty.
    fn quoted(&self) -> String {
        let lines: Vec<&String> = self.lines.iter().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            return String::new();
        }
        let mut out = if self.lines.dropped() > 0 {
            format!("\n  the last {} lines of its stderr:", lines.len())
        } else {
            "\n  its stderr:".to_string()
        };
        for line in lines {
            out.push_str("\n    | ");
            out.push_str(line);
        }
        out
    }

    /// The last non-empty line, or a generic text: for messages that must be one line.
    fn summary(&self, label: &str) -> String {
        self.lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| format!("the {label} rejected the settings"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_variables_upper_case_and_replace_other_characters() {
        assert_eq!(setting_variable("main", "cpu"), "SERVO_SETTING_MAIN_CPU");
        assert_eq!(
            setting_variable("web-app", "max.conns"),
            "SERVO_SETTING_WEB_APP_MAX_CONNS"
        );
        assert_eq!(setting_variable("café", "x"), "SERVO_SETTING_CAF__X");
    }

    #[test]
    fn settings_that_share_a_variable_are_a_config_problem() {
        let yaml = serde_json::json!({
            "adjust": ["./adjust.sh"],
            "components": {
                "a_b": {"settings": {"c": {"type": "int", "min": 1, "max": 2}}},
                "a": {"settings": {"b_c": {"type": "int", "min": 1, "max": 2}}}
            }
        });
        let settings: Settings = serde_json::from_value(yaml).expect("parses");
        let problems = settings.validate();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("SERVO_SETTING_A_B_C"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_section_must_name_a_command_and_each_command_a_program() {
        let none: Settings = serde_json::from_value(serde_json::json!({})).expect("parses");
        assert!(none.validate()[0].message.contains("no command to run"));
        let empty: Settings =
            serde_json::from_value(serde_json::json!({"measure": []})).expect("parses");
        assert_eq!(empty.validate()[0].path.to_string(), "measure");
        let orphan_metrics: Settings = serde_json::from_value(serde_json::json!({
            "describe": ["d"], "metrics": [{"name": "x"}]
        }))
        .expect("parses");
        assert_eq!(orphan_metrics.validate()[0].path.to_string(), "metrics");
    }

    #[test]
    fn env_values_accept_yaml_scalars() {
        let settings: Settings = serde_json::from_value(serde_json::json!({
            "measure": ["m"], "env": {"PORT": 8080, "RATIO": 0.5, "DEBUG": true, "NAME": "x"}
        }))
        .expect("parses");
        let text: Vec<&str> = settings.env.values().map(|v| v.0.as_str()).collect();
        assert_eq!(text, ["true", "x", "8080", "0.5"]);
        assert!(
            serde_json::from_value::<Settings>(
                serde_json::json!({"measure": ["m"], "env": {"A": [1]}})
            )
            .is_err()
        );
    }

    #[test]
    fn the_example_is_valid() {
        assert!(Settings::example().validate().is_empty());
    }

    #[test]
    fn seconds_are_whole_when_they_can_be() {
        assert_eq!(seconds(Duration::from_secs(30)), "30");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds(Duration::ZERO), "0");
    }

    #[test]
    fn the_result_document_skips_progress_and_rejects_extras() {
        let out = br#"{"progress": 50, "message": "halfway"}
            {"metrics": {"x": {"value": 1}}}"#;
        let doc = result_document(out, "metrics").ok().expect("one result");
        assert_eq!(doc["metrics"]["x"]["value"], 1);
        assert!(matches!(
            result_document(b"  \n", "metrics"),
            Err(DocumentProblem::Empty)
        ));
        assert!(matches!(
            result_document(b"{} {}", "metrics"),
            Err(DocumentProblem::Several(2))
        ));
        match result_document(b"{\"metrics\": {\n  \"x\": oops\n}}", "metrics") {
            Err(DocumentProblem::Syntax(e)) => {
                assert_eq!(e.line(), 2);
                let shown = snippet(b"{\"metrics\": {\n  \"x\": oops\n}}", e.line(), e.column());
                assert_eq!(shown, "\n    |   \"x\": oops\n    |        ^");
            }
            _ => panic!("a syntax error"),
        }
    }

    #[test]
    fn adjust_status_is_the_last_status_line() {
        let out = b"applying\n{\"progress\": 10}\n{\"status\": \"rejected\", \"reason\": \"unstable\", \"message\": \"crashloop\"}\n";
        let status = adjust_status(out).expect("a status");
        assert_eq!(status.status, "rejected");
        assert_eq!(status.message.as_deref(), Some("crashloop"));
        assert!(adjust_status(b"all good\n").is_none());
    }

    #[test]
    fn the_tail_keeps_the_last_lines_bounded() {
        let mut tail = Tail::default();
        let mut logged = Vec::new();
        for i in 0..30 {
            logged.extend(tail.push(format!("line {i}\n").as_bytes()));
        }
        logged.extend(tail.push(b"split "));
        logged.extend(tail.push(b"line"));
        logged.extend(tail.finish());
        assert_eq!(logged.len(), 31);
        assert_eq!(tail.lines.len(), Tail::LINES);
        assert_eq!(tail.lines.back().map(String::as_str), Some("split line"));
        assert!(
            tail.quoted()
                .starts_with("\n  the last 20 lines of its stderr:\n    | line 11")
        );

        let mut long = Tail::default();
        long.push(&vec![b'x'; 5000]);
        let line = long.finish().expect("a line");
        assert_eq!(line.chars().count(), Tail::LINE_BYTES + 1);
        assert!(line.ends_with('…'));
    }

    fn hooks(settings: serde_json::Value) -> Hooks {
        let settings: Settings = serde_json::from_value(settings).expect("parses");
        let cx = BuildContext {
            mount: "command".into(),
            servo: "servo".into(),
            base_dir: PathBuf::from("."),
        };
        Hooks::build(settings, &cx).expect("builds")
    }

    #[test]
    fn describe_output_overrides_declared_settings_and_adds_described_ones() {
        let h = hooks(serde_json::json!({
            "describe": ["d"],
            "components": {"main": {"settings": {
                "cpu": {"type": "cpu", "min": 0.25, "max": 4, "value": 1},
                "workers": {"type": "int", "min": 1, "max": 8, "value": 2}
            }}}
        }));
        let mut known = h.declared.clone();
        if let Some(w) = find_setting(&mut known, "main", "workers") {
            w.value = Some(SettingValue::Int(6));
        }
        let output: DescribeOutput = serde_json::from_value(serde_json::json!({"components": {
            "main": {"settings": {"cpu": {"value": 2, "max": 8}, "mode": {"type": "enum", "values": ["a", "b"], "value": "a"}}}
        }}))
        .expect("parses");
        let merged = merge(&h.declared, &known, output).expect("merges");
        let main = &merged[0];
        let cpu = main.setting("cpu").expect("cpu");
        assert_eq!(
            (cpu.value.clone(), cpu.max, cpu.kind),
            (Some(SettingValue::Int(2)), Some(8.0), SettingKind::Cpu)
        );
        assert_eq!(
            main.setting("workers").and_then(|s| s.value.clone()),
            Some(SettingValue::Int(6)),
            "last known value kept"
        );
        assert_eq!(
            main.setting("mode").map(|s| s.kind),
            Some(SettingKind::Enum)
        );

        let bare: DescribeOutput = serde_json::from_value(
            serde_json::json!({"components": {"main": {"settings": {"threads": {"value": 3}}}}}),
        )
        .expect("parses");
        let error = merge(&h.declared, &known, bare).expect_err("no domain");
        assert!(
            error.contains("`main.threads`") && error.contains("min"),
            "{error}"
        );
    }

    #[test]
    fn measurements_use_declared_units_series_means_and_report_undeclared_metrics() {
        let h = hooks(serde_json::json!({
            "measure": ["m"],
            "metrics": [{"name": "latency", "unit": "ms"}, {"name": "throughput", "unit": "rps"}]
        }));
        let output: MeasureOutput = serde_json::from_value(serde_json::json!({
            "metrics": {
                "throughput": {"values": [[1, 10.0], [2, 20.0]]},
                "latency": {"value": 12.5},
                "errors": {"value": 1, "unit": "%"}
            },
            "annotations": {"note": "warm", "runs": 3}
        }))
        .expect("parses");
        let run = Finished {
            status: ExitStatus::default(),
            stdout: Vec::new(),
            stderr: Tail::default(),
        };
        let m = h
            .measurement(output, &run, "measure command `m`")
            .expect("a measurement");
        let names: Vec<&str> = m.readings.iter().map(|r| r.metric.name.as_str()).collect();
        assert_eq!(
            names,
            ["latency", "throughput", "errors"],
            "declared order, then the others"
        );
        assert_eq!(
            m.reading("latency").map(|r| r.metric.unit.as_str()),
            Some("ms")
        );
        let throughput = m.reading("throughput").expect("throughput");
        assert_eq!(throughput.value, 15.0);
        assert_eq!(throughput.series.as_ref().map(|s| s.points.len()), Some(2));
        assert_eq!(m.annotations.get("runs").map(String::as_str), Some("3"));
        assert!(
            h.warned
                .lock()
                .expect("not poisoned")
                .contains("metric:errors")
        );
        assert!(
            !h.warned
                .lock()
                .expect("not poisoned")
                .contains("metric:latency")
        );
    }

    #[test]
    fn programs_resolve_against_the_working_dir_and_path() {
        let root = Path::new("/");
        let sh = resolve_program(
            "sh",
            root,
            Some(std::ffi::OsStr::new("/nonexistent:/bin:/usr/bin")),
        );
        assert!(sh.as_ref().is_ok_and(|p| p.ends_with("sh")), "{sh:?}");
        assert!(matches!(
            resolve_program(
                "no-such-program-here",
                root,
                Some(std::ffi::OsStr::new("/bin"))
            ),
            Err(Unresolved::NotOnPath { .. })
        ));
        assert_eq!(
            resolve_program("./missing.sh", Path::new("/tmp"), None),
            Err(Unresolved::Missing(PathBuf::from("/tmp/missing.sh")))
        );
        assert!(matches!(
            resolve_program("etc", root, Some(std::ffi::OsStr::new("/"))),
            Err(Unresolved::NotOnPath { .. })
        ));
        assert_eq!(resolve_program("", root, None), Err(Unresolved::Empty));
    }
}
