//! The event bus: routes an event to the connectors that declared it.
//!
//! Order: every `before` hook (in mount order; any may cancel the event), then the `on` handlers
//! concurrently, then every `after` hook with the merged result. A handler's failure is reported with
//! its mount; the others' results are kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::join_all;

use crate::config::Mount;
use crate::settings::ChecksSettings;
use servo_core::connector::{
    Connector, ConnectorError, Event, EventContext, EventOutcome, EventRequest, Proceed,
};
use servo_core::suggest::did_you_mean;
use servo_core::types::{
    Adjustment, Check, Component, Control, Description, MeasureRequest, Measurement, Metric,
    Reading,
};

/// How a watched measurement ended (see [`Bus::measure_watched`]).
#[derive(Debug)]
pub enum Watched<C> {
    /// It ran to its end (or failed on its own).
    Measured(Result<Measurement, BusError>),
    /// Its readings so far gave this reason to stop it, and it was stopped.
    Stopped(C),
}

/// Why an event did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("`{mount}` cancelled the {event} event: {reason}")]
    Cancelled {
        event: Event,
        mount: String,
        reason: String,
    },
    #[error("{}", failures_message(.event, .failures))]
    Failed {
        event: Event,
        failures: Vec<(String, ConnectorError)>,
    },
    /// The request names something no connector has (a metric, a component, a setting).
    #[error("{message}")]
    Invalid {
        message: String,
        hint: Option<String>,
    },
    #[error("interrupted")]
    Interrupted,
}

fn failures_message(event: &Event, failures: &[(String, ConnectorError)]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|(mount, e)| match e.hint() {
            Some(hint) => format!("{mount}: {e} (hint: {hint})"),
            None => format!("{mount}: {e}"),
        })
        .collect();
    format!("{event} failed: {}", parts.join("; "))
}

impl BusError {
    /// Whether this is a usage problem (exit 2) rather than a runtime failure (exit 1).
    pub fn is_usage(&self) -> bool {
        match self {
            BusError::Invalid { .. } => true,
            BusError::Failed { failures, .. } => failures
                .iter()
                .all(|(_, e)| matches!(e, ConnectorError::Invalid { .. })),
            _ => false,
        }
    }

    pub fn is_interrupted(&self) -> bool {
        match self {
            BusError::Interrupted => true,
            BusError::Failed { failures, .. } => failures
                .iter()
                .any(|(_, e)| matches!(e, ConnectorError::Cancelled)),
            _ => false,
        }
    }
}

/// The connectors of one servo, ready to receive events.
#[derive(Clone)]
pub struct Bus {
    mounts: Vec<(String, Arc<dyn Connector>)>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.mounts.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Bus {
    pub fn new(mounts: &[Mount]) -> Self {
        Self {
            mounts: mounts
                .iter()
                .map(|m| (m.key.clone(), Arc::clone(&m.instance)))
                .collect(),
        }
    }

    pub fn from_connectors(mounts: Vec<(String, Arc<dyn Connector>)>) -> Self {
        Self { mounts }
    }

    fn handling(&self, event: Event) -> impl Iterator<Item = &(String, Arc<dyn Connector>)> {
        self.mounts
            .iter()
            .filter(move |(_, c)| c.handlers().on.contains(event))
    }

    async fn before(&self, request: EventRequest<'_>, cx: &EventContext) -> Result<(), BusError> {
        let event = request.event();
        for (mount, connector) in &self.mounts {
            if !connector.handlers().before.contains(event) {
                continue;
            }
            match connector.before(request, cx).await {
                Ok(Proceed::Continue) => {}
                Ok(Proceed::Cancel(reason)) => {
                    return Err(BusError::Cancelled {
                        event,
                        mount: mount.clone(),
                        reason,
                    });
                }
                Err(e) => {
                    return Err(BusError::Failed {
                        event,
                        failures: vec![(mount.clone(), e)],
                    });
                }
            }
        }
        Ok(())
    }

    async fn after(&self, event: Event, outcome: EventOutcome<'_>, cx: &EventContext) {
        for (mount, connector) in &self.mounts {
            if connector.handlers().after.contains(event)
                && let Err(e) = connector.after(event, &outcome, cx).await
            {
                tracing::warn!(mount = %mount, %event, error = %e, "after-{event} hook failed");
            }
        }
    }

    /// Runs `on` handlers of `event` concurrently, keeping mount order in the results.
    async fn on<'a, T, F>(
        &'a self,
        event: Event,
        cx: &'a EventContext,
        call: F,
    ) -> Vec<(String, Result<T, ConnectorError>)>
    where
        F: Fn(
            &'a Arc<dyn Connector>,
        ) -> futures_util::future::BoxFuture<'a, Result<T, ConnectorError>>,
    {
        let handlers: Vec<_> = self.handling(event).collect();
        let futures = handlers.iter().map(|(_, c)| call(c));
        let Ok(results) = cx.run(join_all(futures)).await else {
            return handlers
                .iter()
                .map(|(m, _)| (m.clone(), Err(ConnectorError::Cancelled)))
                .collect();
        };
        handlers
            .into_iter()
            .map(|(m, _)| m.clone())
            .zip(results)
            .collect()
    }

    fn split<T>(
        event: Event,
        results: Vec<(String, Result<T, ConnectorError>)>,
    ) -> Result<Vec<(String, T)>, BusError> {
        let mut ok = Vec::new();
        let mut failures = Vec::new();
        for (mount, result) in results {
            match result {
                Ok(value) => ok.push((mount, value)),
                Err(e) => failures.push((mount, e)),
            }
        }
        if failures.is_empty() {
            Ok(ok)
        } else {
            Err(BusError::Failed { event, failures })
        }
    }

    pub async fn startup(&self, cx: &EventContext) -> Result<(), BusError> {
        self.before(EventRequest::Startup, cx).await?;
        let results = self.on(Event::Startup, cx, |c| c.startup(cx)).await;
        let outcome = Self::split(Event::Startup, results);
        self.after(Event::Startup, EventOutcome::Done, cx).await;
        outcome.map(drop)
    }

    /// Shuts every connector down, even when some fail; returns the failures.
    pub async fn shutdown(&self, cx: &EventContext) -> Result<(), BusError> {
        self.before(EventRequest::Shutdown, cx).await?;
        // Shutdown must run to completion even when the run was cancelled.
        let calm = EventContext::default();
        let results = self.on(Event::Shutdown, &calm, |c| c.shutdown(&calm)).await;
        self.after(Event::Shutdown, EventOutcome::Done, cx).await;
        Self::split(Event::Shutdown, results).map(drop)
    }

    /// Runs every check. A connector whose check handler fails yields one failed critical check.
    pub async fn check(&self, cx: &EventContext) -> Result<Vec<Check>, BusError> {
        self.before(EventRequest::Check, cx).await?;
        let results = self.on(Event::Check, cx, |c| c.check(cx)).await;
        let mut checks = Vec::new();
        for (mount, result) in results {
            match result {
                Ok(list) => checks.extend(list.into_iter().map(|mut c| {
                    c.connector = mount.clone();
                    c
                })),
                Err(ConnectorError::Cancelled) => return Err(BusError::Interrupted),
                Err(e) => {
                    let mut check = Check::fail("connector check", e.to_string());
                    check.connector = mount.clone();
                    if let Some(hint) = e.hint() {
                        check = check.with_hint(hint);
                    }
                    checks.push(check);
                }
            }
        }
        self.after(Event::Check, EventOutcome::Checks(&checks), cx)
            .await;
        Ok(checks)
    }

    /// Runs the checks until none that halts (per `settings.halt_on` and its filters) fails.
    /// With `settings.progressive` (ServoX's default), a round with halting failures is re-run
    /// after `settings.delay` until `settings.wait` has passed, so a servo started before its
    /// Prometheus is ready waits for it instead of stopping. Returns the halting failures of the
    /// last round: empty when the checks passed.
    pub async fn check_until_ready(
        &self,
        settings: &ChecksSettings,
        cx: &EventContext,
    ) -> Result<Vec<Check>, BusError> {
        // ServoX's `checks.remedy`: each round may fix what the last one found.
        let cx = &cx.clone().with_remedies(settings.remedies());
        let started = std::time::Instant::now();
        let wait = std::time::Duration::from(settings.wait);
        let mut round = 0;
        loop {
            round += 1;
            let failing: Vec<Check> = self
                .check(cx)
                .await?
                .into_iter()
                .filter(|c| settings.halts(c))
                .collect();
            if failing.is_empty() || !settings.progressive {
                return Ok(failing);
            }
            let pause = settings.delay.after(round);
            if started.elapsed() + pause > wait {
                tracing::error!(
                    "checks still failing after {round} round(s); checks.wait ({}) has passed",
                    settings.wait
                );
                return Ok(failing);
            }
            let names: Vec<String> = failing
                .iter()
                .map(|c| format!("{}.{}", c.connector, c.name))
                .collect();
            tracing::warn!(
                round,
                failing = %names.join(", "),
                "checks failed; re-running them in {:.1}s (checks.wait {})",
                pause.as_secs_f64(),
                settings.wait
            );
            cx.sleep(pause).await.map_err(|_| BusError::Interrupted)?;
        }
    }

    /// Every mount's telemetry, named `<mount>.<key>` as ServoX names it.
    pub async fn telemetry(&self, cx: &EventContext) -> Vec<(String, String)> {
        let facts = join_all(self.mounts.iter().map(|(_, c)| c.telemetry(cx))).await;
        self.mounts
            .iter()
            .zip(facts)
            .flat_map(|((mount, _), facts)| {
                facts
                    .into_iter()
                    .map(move |(key, value)| (format!("{mount}.{key}"), value))
            })
            .collect()
    }

    pub async fn describe(&self, cx: &EventContext) -> Result<Description, BusError> {
        self.before(EventRequest::Describe, cx).await?;
        let results = self.on(Event::Describe, cx, |c| c.describe(cx)).await;
        let mut description = Description::default();
        for (_, d) in Self::split(Event::Describe, results)? {
            description.merge(d);
        }
        if let Some(metrics) = self.metrics_quiet(cx).await {
            for m in metrics {
                if !description.metrics.contains(&m) {
                    description.metrics.push(m);
                }
            }
        }
        self.after(Event::Describe, EventOutcome::Description(&description), cx)
            .await;
        Ok(description)
    }

    /// Components per mount, so adjustments can be routed to their owners.
    pub async fn components(
        &self,
        cx: &EventContext,
    ) -> Result<Vec<(String, Vec<Component>)>, BusError> {
        self.before(EventRequest::Components, cx).await?;
        let mut handlers = Vec::new();
        for (mount, connector) in &self.mounts {
            let h = connector.handlers();
            if h.on.contains(Event::Components) || h.on.contains(Event::Describe) {
                handlers.push((mount.clone(), Arc::clone(connector)));
            }
        }
        let results = join_all(handlers.iter().map(|(_, c)| c.components(cx))).await;
        let per_mount = Self::split(
            Event::Components,
            handlers.into_iter().map(|(m, _)| m).zip(results).collect(),
        )?;
        let all: Vec<Component> = per_mount.iter().flat_map(|(_, c)| c.clone()).collect();
        self.after(Event::Components, EventOutcome::Components(&all), cx)
            .await;
        Ok(per_mount)
    }

    /// Metrics per mount, named as users see them: a name two mounts both provide (two `process`
    /// mounts each measuring `cpu_seconds`) becomes `<mount>.<name>` for each, so neither hides the
    /// other.
    pub async fn metrics(&self, cx: &EventContext) -> Result<Vec<(String, Vec<Metric>)>, BusError> {
        Ok(qualify(self.metrics_as_declared(cx).await?))
    }

    /// Metrics per mount under the names their connectors give them.
    async fn metrics_as_declared(
        &self,
        cx: &EventContext,
    ) -> Result<Vec<(String, Vec<Metric>)>, BusError> {
        self.before(EventRequest::Metrics, cx).await?;
        let results = self.on(Event::Metrics, cx, |c| c.metrics(cx)).await;
        let per_mount = Self::split(Event::Metrics, results)?;
        let all: Vec<Metric> = per_mount.iter().flat_map(|(_, m)| m.clone()).collect();
        self.after(Event::Metrics, EventOutcome::Metrics(&all), cx)
            .await;
        Ok(per_mount)
    }

    /// The metrics every mount declares, under their qualified names, without hooks (a mount whose
    /// declaration fails is left out). The built-in connectors declare theirs from their settings,
    /// so this contacts nothing: `servo validate` checks the SLOs' units against it.
    pub async fn metrics_quiet(&self, cx: &EventContext) -> Option<Vec<Metric>> {
        let results = self.on(Event::Metrics, cx, |c| c.metrics(cx)).await;
        let per_mount: Vec<(String, Vec<Metric>)> = results
            .into_iter()
            .filter_map(|(mount, r)| r.ok().map(|m| (mount, m)))
            .collect();
        Some(
            qualify(per_mount)
                .into_iter()
                .flat_map(|(_, m)| m)
                .collect(),
        )
    }

    /// Measures with the connectors that provide the requested metrics (all measuring connectors
    /// when none is named); readings are filtered to the requested metrics and named as
    /// [`Bus::metrics`] names them.
    pub async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, BusError> {
        let declared = self.metrics_as_declared(cx).await?;
        let duplicated = duplicated_names(&declared);
        let per_mount = qualify(declared);
        let exposed = |mount: &str, raw: &str| {
            if duplicated.contains(&raw.to_string()) {
                format!("{mount}.{raw}")
            } else {
                raw.to_string()
            }
        };
        let mut wanted_mounts: Option<Vec<String>> = None;
        if !request.metrics.is_empty() {
            let available: Vec<&str> = per_mount
                .iter()
                .flat_map(|(_, ms)| ms.iter().map(|m| m.name.as_str()))
                .collect();
            for name in &request.metrics {
                if !available.contains(&name.as_str()) {
                    let hint = did_you_mean(name, available.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| {
                            (!available.is_empty())
                                .then(|| format!("available metrics: {}", available.join(", ")))
                        });
                    return Err(BusError::Invalid {
                        message: format!("no connector provides the metric `{name}`"),
                        hint,
                    });
                }
            }
            wanted_mounts = Some(
                per_mount
                    .iter()
                    .filter(|(_, ms)| ms.iter().any(|m| request.metrics.contains(&m.name)))
                    .map(|(mount, _)| mount.clone())
                    .collect(),
            );
        }
        self.before(EventRequest::Measure(request), cx).await?;
        let targets: Vec<&(String, Arc<dyn Connector>)> = self
            .handling(Event::Measure)
            .filter(|(mount, _)| wanted_mounts.as_ref().is_none_or(|w| w.contains(mount)))
            .collect();
        // Each connector is asked for its own metrics under its own names.
        let requests: Vec<MeasureRequest> = targets
            .iter()
            .map(|(mount, _)| MeasureRequest {
                metrics: per_mount
                    .iter()
                    .filter(|(m, _)| m == mount)
                    .flat_map(|(_, ms)| ms.iter())
                    .filter(|m| request.metrics.contains(&m.name))
                    .map(|m| {
                        m.name
                            .strip_prefix(&format!("{mount}."))
                            .unwrap_or(&m.name)
                            .to_string()
                    })
                    .collect(),
                control: request.control.clone(),
            })
            .collect();
        // Readings so far reach the listener under the names the bus exposes.
        let contexts: Vec<EventContext> = targets
            .iter()
            .map(|(mount, _)| {
                let renamed: Vec<(String, String)> = per_mount
                    .iter()
                    .filter(|(m, _)| m == mount)
                    .flat_map(|(_, ms)| ms.iter())
                    .filter_map(|m| {
                        let raw = m.name.strip_prefix(&format!("{mount}."))?;
                        Some((raw.to_string(), m.name.clone()))
                    })
                    .collect();
                let partial = cx.partial.map(move |reading| {
                    if let Some((_, exposed)) =
                        renamed.iter().find(|(raw, _)| *raw == reading.metric.name)
                    {
                        reading.metric.name = exposed.clone();
                    }
                });
                cx.clone().with_partial(partial)
            })
            .collect();
        let futures = targets
            .iter()
            .zip(&requests)
            .zip(&contexts)
            .map(|(((_, c), r), cx)| c.measure(r, cx));
        let results = cx
            .run(join_all(futures))
            .await
            .map_err(|_| BusError::Interrupted)?;
        let results: Vec<(String, Result<Measurement, ConnectorError>)> = targets
            .iter()
            .map(|(m, _)| m.clone())
            .zip(results)
            .collect();
        let mut measurement = Measurement::default();
        for (mount, mut m) in Self::split(Event::Measure, results)? {
            for reading in &mut m.readings {
                reading.metric.name = exposed(&mount, &reading.metric.name);
            }
            measurement.merge(m);
        }
        if !request.metrics.is_empty() {
            measurement
                .readings
                .retain(|r| request.metrics.contains(&r.metric.name));
        }
        self.after(Event::Measure, EventOutcome::Measurement(&measurement), cx)
            .await;
        Ok(measurement)
    }

    /// Measures as [`Bus::measure`] does, handing each report of the readings so far (see
    /// [`servo_core::PartialReadings`]) to `judge`; the first time it returns a reason to stop,
    /// the measurement is stopped, its connectors are let clean up, and that reason is returned
    /// instead of a result. The measurement runs under a token of its own, so stopping it is not an
    /// interruption of the caller; a signal still cancels both (the caller checks `cx`).
    pub async fn measure_watched<C>(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
        mut judge: impl FnMut(Vec<Reading>) -> Option<C>,
    ) -> Watched<C> {
        let (sender, mut reports) = tokio::sync::mpsc::unbounded_channel();
        let measuring = EventContext::new(cx.cancel.child_token())
            .with_remedies(cx.remedies)
            .with_partial(servo_core::PartialReadings::new(move |readings| {
                // The receiver is gone once the measurement ended: nothing left to tell.
                let _ = sender.send(readings);
            }));
        let measure = self.measure(request, &measuring);
        tokio::pin!(measure);
        loop {
            tokio::select! {
                result = &mut measure => {
                    // A connector that judges its own readings (Prometheus' fast fail) reports
                    // them, then fails in the same step: what those last reports show is the
                    // better reason, and the same whichever side saw it first.
                    if result.is_err() {
                        while let Ok(readings) = reports.try_recv() {
                            if let Some(stop) = judge(readings) {
                                return Watched::Stopped(stop);
                            }
                        }
                    }
                    return Watched::Measured(result);
                }
                Some(readings) = reports.recv() => {
                    if let Some(stop) = judge(readings) {
                        measuring.cancel.cancel();
                        // Let the connectors stop their load and clean up before going on.
                        let _ = (&mut measure).await;
                        return Watched::Stopped(stop);
                    }
                }
            }
        }
    }

    /// Validates adjustments against the described settings, routes them to the connectors owning the
    /// components, and returns the merged description afterwards.
    pub async fn adjust(
        &self,
        adjustments: &[Adjustment],
        control: &Control,
        cx: &EventContext,
    ) -> Result<Description, BusError> {
        let owners = self.components(cx).await?;
        let mut routed: BTreeMap<String, Vec<Adjustment>> = BTreeMap::new();
        let all: Vec<&Component> = owners.iter().flat_map(|(_, cs)| cs.iter()).collect();
        for adjustment in adjustments {
            let Some((mount, component)) = owners.iter().find_map(|(mount, cs)| {
                cs.iter()
                    .find(|c| c.name == adjustment.component)
                    .map(|c| (mount, c))
            }) else {
                let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
                return Err(BusError::Invalid {
                    message: format!(
                        "no connector has a component named `{}`",
                        adjustment.component
                    ),
                    hint: did_you_mean(&adjustment.component, names.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| {
                            (!names.is_empty()).then(|| format!("components: {}", names.join(", ")))
                        }),
                });
            };
            let Some(setting) = component.setting(&adjustment.setting) else {
                let names: Vec<&str> = component.settings.iter().map(|s| s.name.as_str()).collect();
                return Err(BusError::Invalid {
                    message: format!(
                        "component `{}` has no setting `{}`",
                        component.name, adjustment.setting
                    ),
                    hint: did_you_mean(&adjustment.setting, names.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| Some(format!("settings: {}", names.join(", ")))),
                });
            };
            if let Err(message) = setting.check_value(&adjustment.value) {
                return Err(BusError::Invalid {
                    message: format!("{}.{}: {message}", component.name, setting.name),
                    hint: None,
                });
            }
            routed
                .entry(mount.clone())
                .or_default()
                .push(adjustment.clone());
        }

        self.before(EventRequest::Adjust(adjustments, control), cx)
            .await?;
        let targets: Vec<(&String, &Arc<dyn Connector>, &Vec<Adjustment>)> = self
            .mounts
            .iter()
            .filter_map(|(mount, c)| routed.get(mount).map(|a| (mount, c, a)))
            .filter(|(_, c, _)| c.handlers().on.contains(Event::Adjust))
            .collect();
        let futures = targets.iter().map(|(_, c, a)| c.adjust(a, control, cx));
        let results = join_all(futures).await;
        let results: Vec<(String, Result<Description, ConnectorError>)> = targets
            .iter()
            .map(|(m, ..)| (*m).clone())
            .zip(results)
            .collect();
        let mut description = Description::default();
        let outcome = Self::split(Event::Adjust, results);
        match &outcome {
            Ok(parts) => {
                for (_, d) in parts {
                    description.merge(d.clone());
                }
                self.after(Event::Adjust, EventOutcome::Description(&description), cx)
                    .await;
            }
            Err(e) => {
                let message = e.to_string();
                self.after(Event::Adjust, EventOutcome::Failed(&message), cx)
                    .await;
            }
        }
        outcome.map(|_| description)
    }
}

/// Metric names provided by more than one mount.
fn duplicated_names(per_mount: &[(String, Vec<Metric>)]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, metrics) in per_mount {
        let mut names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        names.dedup();
        for name in names {
            *seen.entry(name).or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Renames metrics that more than one mount provides to `<mount>.<name>`.
fn qualify(per_mount: Vec<(String, Vec<Metric>)>) -> Vec<(String, Vec<Metric>)> {
    let duplicated = duplicated_names(&per_mount);
    per_mount
        .into_iter()
        .map(|(mount, metrics)| {
            let metrics = metrics
                .into_iter()
                .map(|mut m| {
                    if duplicated.contains(&m.name) {
                        m.name = format!("{mount}.{}", m.name);
                    }
                    m
                })
                .collect();
            (mount, metrics)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use servo_core::connector::{
        BuildConnector, BuildContext, ConnectorDescription, ConnectorSettings, Handlers,
    };

    /// Reports a reading so far, then fails in the same step, as Prometheus' fast fail does when
    /// its own judging stops the measurement.
    struct JudgesItself;

    #[derive(serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
    struct NoSettings {}

    impl ConnectorSettings for NoSettings {
        fn example() -> Self {
            NoSettings {}
        }
    }

    fn p99() -> Metric {
        Metric::new("p99", "ms")
    }

    #[async_trait]
    impl Connector for JudgesItself {
        fn handlers(&self) -> Handlers {
            Handlers::on(&[Event::Metrics, Event::Measure])
        }

        async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
            Ok(vec![p99()])
        }

        async fn measure(
            &self,
            _request: &MeasureRequest,
            cx: &EventContext,
        ) -> Result<Measurement, ConnectorError> {
            cx.partial.report(vec![Reading::new(p99(), 900.0)]);
            Err(ConnectorError::failed("measurement stopped early"))
        }
    }

    impl BuildConnector for JudgesItself {
        type Settings = NoSettings;

        fn build(_settings: NoSettings, _cx: &BuildContext) -> Result<Self, ConnectorError> {
            Ok(JudgesItself)
        }
    }

    static JUDGES: ConnectorDescription =
        ConnectorDescription::new::<JudgesItself>("judges", "0", "a test connector");

    #[tokio::test]
    async fn the_last_readings_before_a_failed_measurement_are_still_judged() {
        let bus = Bus::new(&[Mount {
            key: "judges".into(),
            connector: &JUDGES,
            settings: serde_json::Value::Null,
            instance: Arc::new(JudgesItself),
        }]);
        let request = MeasureRequest::default();
        let cx = EventContext::default();
        let past_limit =
            |readings: Vec<Reading>| readings.iter().find(|r| r.value > 100.0).map(|r| r.value);
        let watched = bus.measure_watched(&request, &cx, past_limit).await;
        assert!(matches!(watched, Watched::Stopped(900.0)), "{watched:?}");
        // Readings that give no reason to stop leave the failure as it was.
        let watched = bus.measure_watched(&request, &cx, |_| None::<()>).await;
        assert!(
            matches!(&watched, Watched::Measured(Err(e)) if e.to_string().contains("stopped early")),
            "{watched:?}"
        );
    }
}
