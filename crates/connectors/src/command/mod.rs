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
//! drivers do; they are never the result. A measure command's progress object printed on a line
//! of its own may carry the readings of its window so far, in the result's shape:
//! `{"progress": 40, "metrics": {"latency_p99": {"value": 812.0}}}`. servo hands them to the
//! study as they arrive, so a trial whose readings already break an SLO badly is stopped (and the
//! hook killed) in seconds rather than measured to the end (reports within the warmup are not
//! judged). Any other extra document, invalid JSON or a non-zero exit is an error that quotes the
//! position of the problem and the last lines of stderr.
//!
//! # Processes
//!
//! Each hook is spawned in its own process group, so a terminal's Ctrl-C reaches servo only and
//! servo decides what dies. The group is killed (`SIGKILL`) when the hook overruns its deadline
//! (`timeout`, plus warmup + duration + delay for measure), when the event is cancelled, and when the
//! hook exits while processes it started are still running: a hook that starts a long-lived service
//! must move it out of its process group (`setsid`). The hook itself is always reaped. On Linux, the
//! hook also gets `PR_SET_PDEATHSIG`, so it dies if servo is killed without a chance to clean up.

mod program;
mod protocol;
mod run;
mod settings;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use program::{Unresolved, resolve_program};
use protocol::{
    AdjustInput, ControlInput, DESCRIBE_EXAMPLE, DescribeOutput, MEASURE_EXAMPLE, MeasureInput,
    MeasureOutput, MetricOutput, adjust_status, merge, progress_metrics,
};
use run::{Finished, Invocation, argv_text, label, seconds};
use serde_json::Value;
use servo_core::connector::{BuildContext, EventContext, Handlers};
use servo_core::spec::{self};
use servo_core::types::{
    Adjustment, Check, Component, Control, Description, MeasureRequest, Measurement, Metric,
    Reading, Setting, SettingValue, TimeSeries,
};
use servo_core::{BuildConnector, Connector, ConnectorError, Event};
use settings::{MetricSpec, Settings, setting_variable, variable_collisions};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;

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

servo_core::register!(Hooks {
    name: "command",
    description: "Runs your commands to describe, adjust and measure anything servo has no connector for",
    // Its hooks read `SERVO_SETTING_<COMPONENT>_<SETTING>`: never config overrides.
    child_env_prefix: "SERVO_SETTING_",
});

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
        control.duration = control
            .requested_duration()
            .unwrap_or(self.settings.duration);
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
        let label = label(Hook::Measure, argv);
        // Progress lines that carry the readings so far go to whoever watches the measurement.
        let mut report_progress = |line: &str| {
            let Some(metrics) = progress_metrics(line) else {
                return;
            };
            match self.readings(metrics) {
                Ok(readings) => cx.partial.report(readings),
                Err(name) => {
                    tracing::debug!(mount = %self.mount, "a progress line of the {label} has no value for `{name}`; skipped")
                }
            }
        };
        let run = self
            .run(
                Invocation {
                    hook: Hook::Measure,
                    argv,
                    env,
                    input: Some(input),
                    window,
                    stdout_lines: cx
                        .partial
                        .is_watched()
                        .then_some(&mut report_progress as &mut (dyn FnMut(&str) + Send)),
                },
                cx,
            )
            .await?;
        run.succeeded(&label)?;
        let output: MeasureOutput = run.document(&label, MEASURE_EXAMPLE)?;
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
                    stdout_lines: None,
                },
                cx,
            )
            .await?;
        let label = label(Hook::Adjust, argv);
        match adjust_status(&run.stdout) {
            Some(status) if status.status == "rejected" => {
                return Err(ConnectorError::Rejected {
                    reason: status.reason.unwrap_or_else(|| "unstable".into()),
                    message: status.message.unwrap_or_else(|| {
                        run.stderr.last_line().map_or_else(
                            || format!("the {label} rejected the settings"),
                            str::to_string,
                        )
                    }),
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
                    stdout_lines: None,
                },
                cx,
            )
            .await?;
        let label = label(Hook::Describe, argv);
        run.succeeded(&label)?;
        let output: DescribeOutput = run.document(&label, DESCRIBE_EXAMPLE)?;
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
        let readings = self.readings(output.metrics).map_err(|name| {
            ConnectorError::failed(format!(
                "the {label} printed no `value` for `{name}`, and no `values` to take the mean of{}",
                run.stderr.quoted()
            ))
            .with_hint(MEASURE_EXAMPLE)
        })?;
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

    /// The readings of the metrics a measure command printed (its result or a progress line):
    /// declared metrics first, in the unit printed or else declared; `Err` names a metric with
    /// neither a `value` nor `values` to take the mean of.
    fn readings(
        &self,
        mut printed: BTreeMap<String, MetricOutput>,
    ) -> Result<Vec<Reading>, String> {
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
                _ => return Err(name),
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
        Ok(readings)
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
}
