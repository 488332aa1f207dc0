//! Connectors, and the registry through which built-in and third-party connectors are found.
//!
//! A connector is one module: a `Settings` struct (its config section), a type implementing
//! [`Connector`] and [`BuildConnector`], and one [`register!`] of it, which submits its
//! [`ConnectorDescription`] to `inventory`.
//! The framework never names a connector: it finds them all in [`registry`].

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::path::KeyPath;
use crate::types::{
    Adjustment, Check, Component, Control, Description, MeasureRequest, Measurement, Metric,
    Reading,
};

/// The events of the bus. A connector declares which it handles in [`Connector::handlers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Startup,
    Shutdown,
    Check,
    Describe,
    Components,
    Metrics,
    Measure,
    Adjust,
    Promote,
}

impl Event {
    pub const ALL: [Event; 9] = [
        Event::Startup,
        Event::Shutdown,
        Event::Check,
        Event::Describe,
        Event::Components,
        Event::Metrics,
        Event::Measure,
        Event::Adjust,
        Event::Promote,
    ];

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Event::Startup => "startup",
            Event::Shutdown => "shutdown",
            Event::Check => "check",
            Event::Describe => "describe",
            Event::Components => "components",
            Event::Metrics => "metrics",
            Event::Measure => "measure",
            Event::Adjust => "adjust",
            Event::Promote => "promote",
        };
        f.write_str(name)
    }
}

/// A set of events, const-constructible: `Events::of(&[Event::Measure, Event::Metrics])`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events(u16);

impl Events {
    pub const NONE: Events = Events(0);

    pub const fn of(events: &[Event]) -> Events {
        let mut bits = 0;
        let mut i = 0;
        while i < events.len() {
            bits |= events[i].bit();
            i += 1;
        }
        Events(bits)
    }

    pub const fn contains(self, event: Event) -> bool {
        self.0 & event.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Event> {
        Event::ALL.into_iter().filter(move |e| self.contains(*e))
    }
}

/// Which events a connector handles, and where it wants `before`/`after` hooks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handlers {
    pub on: Events,
    pub before: Events,
    pub after: Events,
}

impl Handlers {
    pub const fn on(events: &[Event]) -> Self {
        Self {
            on: Events::of(events),
            before: Events::NONE,
            after: Events::NONE,
        }
    }

    pub const fn before(mut self, events: &[Event]) -> Self {
        self.before = Events::of(events);
        self
    }

    pub const fn after(mut self, events: &[Event]) -> Self {
        self.after = Events::of(events);
        self
    }
}

/// What a handler gets besides its event's parameters.
#[derive(Clone, Debug, Default)]
pub struct EventContext {
    /// Cancelled on Ctrl-C, SIGTERM or an optimizer's command; long work must stop and clean up.
    pub cancel: CancellationToken,
    /// Where a `measure` handler reports its readings so far (see [`PartialReadings`]).
    pub partial: PartialReadings,
    /// Whether a failed check may apply its remedy (ServoX's `checks.remedy`): a check that can
    /// fix what it found (add an annotation, inject a sidecar) logs the fix, then applies it only
    /// when this is set, and otherwise leaves the fix in its hint.
    pub remedies: bool,
}

impl EventContext {
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            cancel,
            partial: PartialReadings::default(),
            remedies: false,
        }
    }

    /// The same context, with measurements reporting their readings so far to `partial`.
    pub fn with_partial(mut self, partial: PartialReadings) -> Self {
        self.partial = partial;
        self
    }

    /// This context, allowing (or not) the checks' remedies.
    pub fn with_remedies(mut self, allowed: bool) -> Self {
        self.remedies = allowed;
        self
    }

    /// Runs `work` to its end, or stops it at cancellation with [`ConnectorError::Cancelled`]: the
    /// one way a handler waits on anything (a request, a child, a timer) without outliving a
    /// Ctrl-C. `work` is dropped when cancelled, so its own guards clean up.
    pub async fn run<F: Future>(&self, work: F) -> Result<F::Output, ConnectorError> {
        self.cancel
            .run_until_cancelled(work)
            .await
            .ok_or(ConnectorError::Cancelled)
    }

    /// Sleeps `duration`, or returns [`ConnectorError::Cancelled`] as soon as the event is cancelled.
    pub async fn sleep(&self, duration: std::time::Duration) -> Result<(), ConnectorError> {
        self.run(tokio::time::sleep(duration)).await
    }

    /// Sleeps until `deadline`, or returns [`ConnectorError::Cancelled`] at cancellation.
    pub async fn sleep_until(&self, deadline: tokio::time::Instant) -> Result<(), ConnectorError> {
        self.run(tokio::time::sleep_until(deadline)).await
    }
}

/// The readings of a measurement still in progress, summarized over its window so far, for
/// whoever drives it: a study stops a trial whose readings already break an SLO badly, so a bad
/// configuration costs seconds rather than a whole window. A `measure` handler that can summarize
/// its window early (vegeta does every second) calls [`PartialReadings::report`] after its warmup;
/// one that cannot says nothing and is measured to the end. Nobody listens by default.
#[derive(Clone, Default)]
pub struct PartialReadings(Option<Arc<dyn Fn(Vec<Reading>) + Send + Sync>>);

impl PartialReadings {
    pub fn new(listener: impl Fn(Vec<Reading>) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(listener)))
    }

    /// Whether anyone listens: a handler can skip summarizing when nobody does.
    pub fn is_watched(&self) -> bool {
        self.0.is_some()
    }

    /// Reports the readings so far (each a summary of the window up to now).
    pub fn report(&self, readings: Vec<Reading>) {
        if let Some(listener) = &self.0 {
            listener(readings);
        }
    }

    /// Reports to this listener after `rename` (the bus names a mount's metrics as it exposes
    /// them).
    pub fn map(&self, rename: impl Fn(&mut Reading) + Send + Sync + 'static) -> Self {
        match &self.0 {
            None => Self(None),
            Some(listener) => {
                let listener = Arc::clone(listener);
                Self::new(move |mut readings: Vec<Reading>| {
                    readings.iter_mut().for_each(&rename);
                    listener(readings);
                })
            }
        }
    }
}

impl fmt::Debug for PartialReadings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialReadings")
            .field("watched", &self.is_watched())
            .finish()
    }
}

/// An event as a `before` hook sees it.
#[derive(Clone, Copy, Debug)]
pub enum EventRequest<'a> {
    Startup,
    Shutdown,
    Check,
    Describe,
    Components,
    Metrics,
    Measure(&'a MeasureRequest),
    Adjust(&'a [Adjustment], &'a Control),
    Promote,
}

impl EventRequest<'_> {
    pub fn event(&self) -> Event {
        match self {
            EventRequest::Startup => Event::Startup,
            EventRequest::Shutdown => Event::Shutdown,
            EventRequest::Check => Event::Check,
            EventRequest::Describe => Event::Describe,
            EventRequest::Components => Event::Components,
            EventRequest::Metrics => Event::Metrics,
            EventRequest::Measure(_) => Event::Measure,
            EventRequest::Adjust(..) => Event::Adjust,
            EventRequest::Promote => Event::Promote,
        }
    }
}

/// The merged result of an event, as an `after` hook sees it.
#[derive(Clone, Debug)]
pub enum EventOutcome<'a> {
    Done,
    Checks(&'a [Check]),
    Description(&'a Description),
    Components(&'a [Component]),
    Metrics(&'a [Metric]),
    Measurement(&'a Measurement),
    Failed(&'a str),
}

/// What a `before` hook decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proceed {
    Continue,
    /// Stop the event; no `on` handler runs. The reason is reported to the user and the optimizer.
    Cancel(String),
}

/// Why a connector could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The work failed; `hint` says what the user can do about it.
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
    /// The request cannot be satisfied as asked (unknown metric, value out of range): a usage error.
    #[error("{message}")]
    Invalid {
        message: String,
        hint: Option<String>,
    },
    /// The adjustment was applied but the application did not become healthy; it counts as a failed
    /// trial (ServoX's `rejected` status with reason `unstable`).
    #[error("adjustment rejected ({reason}): {message}")]
    Rejected { reason: String, message: String },
    #[error("cancelled")]
    Cancelled,
    /// Problems with the settings found while building (e.g. a malformed targets file): reported
    /// like schema errors, at their key paths.
    #[error("{}", .0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
    Settings(Vec<Problem>),
    #[error("timed out after {0}")]
    Timeout(crate::units::Duration),
}

impl ConnectorError {
    pub fn failed(message: impl Into<String>) -> Self {
        ConnectorError::Failed {
            message: message.into(),
            hint: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ConnectorError::Invalid {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint to a `Failed` or `Invalid` error; other kinds are returned unchanged.
    pub fn with_hint(self, new_hint: impl Into<String>) -> Self {
        match self {
            ConnectorError::Failed { message, .. } => ConnectorError::Failed {
                message,
                hint: Some(new_hint.into()),
            },
            ConnectorError::Invalid { message, .. } => ConnectorError::Invalid {
                message,
                hint: Some(new_hint.into()),
            },
            other => other,
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            ConnectorError::Failed { hint, .. } | ConnectorError::Invalid { hint, .. } => {
                hint.as_deref()
            }
            _ => None,
        }
    }
}

/// The behaviour of a mounted connector. Every handler has a do-nothing default; the bus only calls
/// the ones declared in [`Connector::handlers`].
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    fn handlers(&self) -> Handlers;

    async fn startup(&self, _cx: &EventContext) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn shutdown(&self, _cx: &EventContext) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn check(&self, _cx: &EventContext) -> Result<Vec<Check>, ConnectorError> {
        Ok(Vec::new())
    }

    /// Facts about what this connector drives, for a remote optimizer's HELLO (ServoX's
    /// connector telemetry: a Kubernetes mount's `namespace`, `version` and `platform`), keyed
    /// without the mount's name. Not an event: best effort, and a fact it cannot learn quickly is
    /// left out rather than delaying the greeting.
    async fn telemetry(&self, _cx: &EventContext) -> Vec<(String, String)> {
        Vec::new()
    }

    async fn describe(&self, _cx: &EventContext) -> Result<Description, ConnectorError> {
        Ok(Description::default())
    }

    async fn components(&self, cx: &EventContext) -> Result<Vec<Component>, ConnectorError> {
        Ok(self.describe(cx).await?.components)
    }

    async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        Ok(Vec::new())
    }

    async fn measure(
        &self,
        _request: &MeasureRequest,
        _cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        Ok(Measurement::default())
    }

    /// Applies the adjustments addressed to this connector's components and returns its description
    /// afterwards (what the optimizer records as the new state).
    async fn adjust(
        &self,
        _adjustments: &[Adjustment],
        _control: &Control,
        cx: &EventContext,
    ) -> Result<Description, ConnectorError> {
        self.describe(cx).await
    }

    async fn promote(&self, _cx: &EventContext) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn before(
        &self,
        _request: EventRequest<'_>,
        _cx: &EventContext,
    ) -> Result<Proceed, ConnectorError> {
        Ok(Proceed::Continue)
    }

    async fn after(
        &self,
        _event: Event,
        _outcome: &EventOutcome<'_>,
        _cx: &EventContext,
    ) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A problem found in a connector's settings after they parsed (e.g. `min` above `max`).
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Where, relative to the connector's section.
    pub path: KeyPath,
    pub message: String,
    pub help: Option<String>,
}

impl Problem {
    pub fn new(path: KeyPath, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// What a connector knows about where it is mounted when it is built.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// The key this instance is mounted under (its default key or an alias).
    pub mount: String,
    /// The servo's name (several servos can share one config file).
    pub servo: String,
    /// The directory of the config file: relative paths in settings are resolved against it.
    pub base_dir: PathBuf,
    /// Whether the servo reports to a remote ServoX-protocol optimizer, whose backend knows
    /// metrics by ServoX's names and units (vegeta's `throughput` in requests per minute).
    pub remote_optimizer: bool,
    /// The remote optimizer's id (`org/app`, or AppDynamics' optimizer id), which connectors that
    /// label the application for it write (opsani_dev); `None` with the embedded optimizer.
    pub optimizer_id: Option<String>,
}

/// A connector's settings section. Doc comments on the fields become the schema's descriptions.
pub trait ConnectorSettings:
    DeserializeOwned + Serialize + JsonSchema + Send + Sync + 'static
{
    /// A complete, valid example: the section `servo generate` writes.
    fn example() -> Self;

    /// Checks that span fields (`min` ≤ `max`, exactly one of `target`/`targets`), after parsing.
    fn validate(&self) -> Vec<Problem> {
        Vec::new()
    }
}

/// How a connector type is built from its settings. Building must not touch the network: it runs
/// for `servo validate`; connect in `startup` or lazily.
pub trait BuildConnector: Connector + Sized {
    type Settings: ConnectorSettings;

    fn build(settings: Self::Settings, cx: &BuildContext) -> Result<Self, ConnectorError>;
}

/// Why a section could not become a connector.
#[derive(Debug)]
pub enum BuildError {
    Problems(Vec<Problem>),
    Connector(ConnectorError),
}

/// A connector built from its section, with the settings it was built from.
pub struct Built {
    /// The settings as the connector uses them (defaults filled in, secrets redacted): the parsed
    /// settings serialized back, so what `servo config` prints is what was built, not a re-read.
    pub settings: Value,
    pub connector: Box<dyn Connector>,
}

impl fmt::Debug for Built {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Built")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

type BuildFn = fn(Value, &BuildContext) -> Result<Built, BuildError>;

/// The registration record of one connector type, submitted with `inventory::submit!`.
pub struct ConnectorDescription {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    /// The root key that activates it implicitly; its name unless set otherwise.
    pub default_key: &'static str,
    /// The prefix of the environment variables this connector sets for the processes it starts
    /// (`SERVO_SETTING_` for `command`): the config loader must not read them as overrides.
    pub child_env_prefix: Option<&'static str>,
    schema: fn(&mut SchemaGenerator) -> Schema,
    build: BuildFn,
    example: fn() -> Value,
}

impl fmt::Debug for ConnectorDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorDescription")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("default_key", &self.default_key)
            .finish_non_exhaustive()
    }
}

impl ConnectorDescription {
    pub const fn new<C: BuildConnector>(
        name: &'static str,
        version: &'static str,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            version,
            description,
            default_key: name,
            child_env_prefix: None,
            schema: <C::Settings as JsonSchema>::json_schema,
            build: build_erased::<C>,
            example: example_erased::<C::Settings>,
        }
    }

    pub const fn with_default_key(mut self, key: &'static str) -> Self {
        self.default_key = key;
        self
    }

    /// Declares the prefix of the variables this connector passes to its children, so that servo
    /// started inside such a child does not take them for config overrides.
    pub const fn with_child_env_prefix(mut self, prefix: &'static str) -> Self {
        self.child_env_prefix = Some(prefix);
        self
    }

    /// The JSON Schema of the settings section, standalone (its own `$defs`).
    pub fn schema(&self) -> Value {
        let mut generator = crate::schema::generator();
        let schema = (self.schema)(&mut generator);
        crate::schema::standalone(schema, generator)
    }

    /// Builds a connector from its (schema-valid) section, deserializing it once.
    pub fn build(&self, section: Value, cx: &BuildContext) -> Result<Built, BuildError> {
        (self.build)(section, cx)
    }

    pub fn example(&self) -> Value {
        (self.example)()
    }
}

fn parse_settings<S: ConnectorSettings>(section: Value) -> Result<S, BuildError> {
    let settings: S = serde_path_to_error::deserialize(section).map_err(|e| {
        let path = key_path_of(e.path());
        BuildError::Problems(vec![Problem::new(path, e.into_inner().to_string())])
    })?;
    let problems = settings.validate();
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(BuildError::Problems(problems))
    }
}

fn key_path_of(path: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment;
    let mut out = KeyPath::root();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_index(*index),
            Segment::Map { key } => out.push_key(key.clone()),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

fn build_erased<C: BuildConnector>(section: Value, cx: &BuildContext) -> Result<Built, BuildError> {
    let settings = parse_settings::<C::Settings>(section)?;
    // Serialized before building, which consumes the settings.
    let normalized = serde_json::to_value(&settings)
        .map_err(|e| BuildError::Connector(ConnectorError::failed(e.to_string())))?;
    let connector = C::build(settings, cx).map_err(|e| match e {
        ConnectorError::Settings(problems) => BuildError::Problems(problems),
        other => BuildError::Connector(other),
    })?;
    Ok(Built {
        settings: normalized,
        connector: Box::new(connector),
    })
}

fn example_erased<S: ConnectorSettings>() -> Value {
    // Settings are plain data; a failure here is a bug in a connector's Serialize impl.
    serde_json::to_value(S::example()).unwrap_or(Value::Null)
}

inventory::collect!(ConnectorDescription);

/// Registers a connector type, written next to the type it registers (as Vector's
/// `configurable_component` is): the crate's version is filled in, so a registration says only
/// what a person chooses.
///
/// ```ignore
/// servo_core::register!(Wait {
///     name: "wait",
///     description: "Waits instead of measuring or adjusting",
/// });
/// ```
///
/// Optional fields, in this order: `default_key: "..."` ([`ConnectorDescription::with_default_key`])
/// and `child_env_prefix: "..."` ([`ConnectorDescription::with_child_env_prefix`]).
#[macro_export]
macro_rules! register {
    ($connector:ty {
        name: $name:literal,
        description: $description:literal
        $(, default_key: $key:literal)?
        $(, child_env_prefix: $prefix:literal)?
        $(,)?
    }) => {
        $crate::inventory::submit! {
            $crate::ConnectorDescription::new::<$connector>(
                $name,
                ::core::env!("CARGO_PKG_VERSION"),
                $description,
            )
            $(.with_default_key($key))?
            $(.with_child_env_prefix($prefix))?
        }
    };
}

/// Every connector linked into this binary, sorted by name.
#[derive(Debug)]
pub struct Registry {
    connectors: Vec<&'static ConnectorDescription>,
}

/// Two linked connectors claim the same name or default key.
#[derive(Debug, thiserror::Error)]
#[error(
    "two connectors are registered as `{name}` ({first} and {second}); connector names and default keys must be unique"
)]
pub struct DuplicateConnector {
    pub name: String,
    pub first: String,
    pub second: String,
}

impl Registry {
    fn collect() -> Result<Registry, DuplicateConnector> {
        let mut connectors: Vec<&'static ConnectorDescription> =
            inventory::iter::<ConnectorDescription>
                .into_iter()
                .collect();
        connectors.sort_by_key(|c| c.name);
        let mut seen = std::collections::HashMap::new();
        for c in &connectors {
            for key in [c.name, c.default_key] {
                if let Some(first) = seen.insert(key, c.name)
                    && first != c.name
                {
                    return Err(DuplicateConnector {
                        name: key.to_string(),
                        first: first.to_string(),
                        second: c.name.to_string(),
                    });
                }
            }
            if connectors.iter().filter(|o| o.name == c.name).count() > 1 {
                return Err(DuplicateConnector {
                    name: c.name.to_string(),
                    first: format!("{} {}", c.name, c.version),
                    second: "another registration".to_string(),
                });
            }
        }
        Ok(Registry { connectors })
    }

    pub fn all(&self) -> &[&'static ConnectorDescription] {
        &self.connectors
    }

    pub fn by_name(&self, name: &str) -> Option<&'static ConnectorDescription> {
        self.connectors.iter().copied().find(|c| c.name == name)
    }

    pub fn by_default_key(&self, key: &str) -> Option<&'static ConnectorDescription> {
        self.connectors
            .iter()
            .copied()
            .find(|c| c.default_key == key)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.connectors.iter().map(|c| c.name)
    }

    /// The env prefixes the linked connectors reserve for their children.
    pub fn child_env_prefixes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.connectors.iter().filter_map(|c| c.child_env_prefix)
    }
}

/// The registry of linked connectors, checked once for duplicate names.
pub fn registry() -> Result<&'static Registry, &'static DuplicateConnector> {
    static REGISTRY: OnceLock<Result<Registry, DuplicateConnector>> = OnceLock::new();
    REGISTRY.get_or_init(Registry::collect).as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector registered only to exercise the registration's optional fields.
    struct Probe;

    #[derive(serde::Deserialize, Serialize, JsonSchema)]
    struct ProbeSettings {
        #[serde(default)]
        level: u32,
    }

    impl ConnectorSettings for ProbeSettings {
        fn example() -> Self {
            ProbeSettings { level: 1 }
        }
    }

    impl Connector for Probe {
        fn handlers(&self) -> Handlers {
            Handlers::default()
        }
    }

    impl BuildConnector for Probe {
        type Settings = ProbeSettings;

        fn build(_settings: ProbeSettings, _cx: &BuildContext) -> Result<Self, ConnectorError> {
            Ok(Probe)
        }
    }

    crate::register!(Probe {
        name: "probe",
        description: "Checks the registration macro",
        default_key: "probe_key",
        child_env_prefix: "SERVO_PROBE_",
    });

    #[test]
    fn a_registration_declares_the_env_prefix_of_its_children() {
        let Ok(registry) = registry() else {
            panic!("one connector cannot clash with itself");
        };
        assert_eq!(
            registry.child_env_prefixes().collect::<Vec<_>>(),
            ["SERVO_PROBE_"]
        );
        assert_eq!(
            registry.by_name("probe").map(|c| c.default_key),
            Some("probe_key")
        );
    }

    #[test]
    fn building_returns_the_settings_it_parsed_once() {
        let description = ConnectorDescription::new::<Probe>("probe", "0", "probe");
        let cx = BuildContext {
            mount: "probe".into(),
            servo: "servo".into(),
            base_dir: PathBuf::from("."),
            remote_optimizer: false,
            optimizer_id: None,
        };
        match description.build(serde_json::json!({}), &cx) {
            Ok(built) => assert_eq!(built.settings, serde_json::json!({ "level": 0 })),
            Err(e) => panic!("an empty section builds: {e:?}"),
        }
        assert!(matches!(
            description.build(serde_json::json!({ "level": "high" }), &cx),
            Err(BuildError::Problems(_))
        ));
    }
}
