//! `wait`: a connector that only waits (ServoX's `wait`).
//!
//! `measure` sleeps for the requested warmup + duration + delay when `measure_enabled` is set and
//! reports how long it waited; `adjust` waits for the settlement time. It needs nothing and touches
//! nothing, which makes it the connector for dry runs, for pacing a remote optimizer, and for tests.
//! Beyond ServoX, it can declare `components` whose settings it keeps in memory, so `servo adjust`
//! and `servo run` can be exercised without a real application.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use servo_core::connector::{BuildContext, ConnectorSettings, EventContext, Handlers};
use servo_core::spec::{self, ComponentSettings, Components, SettingSpec};
use servo_core::types::{
    Adjustment, Component, Control, Description, MeasureRequest, Measurement, Metric, Reading,
    SettingKind, SettingValue,
};
use servo_core::units::Duration;
use servo_core::{BuildConnector, Connector, ConnectorError, Event, Problem};

/// Settings of the `wait` connector.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Free text describing this mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Wait for the measurement's warmup + duration + delay when asked to measure.
    #[serde(default)]
    pub measure_enabled: bool,
    /// Measurement duration when the request gives none.
    #[serde(default = "default_duration")]
    pub duration: Duration,
    /// Components and their settings, kept in memory: adjusting one records its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: Components,
}

fn default_duration() -> Duration {
    Duration::ZERO
}

impl ConnectorSettings for Settings {
    fn example() -> Self {
        let mut settings = BTreeMap::new();
        settings.insert(
            "cpu".to_string(),
            SettingSpec::numeric(SettingKind::Cpu, 0.25, 4.0)
                .with_step(0.25)
                .with_value(SettingValue::Float(1.0)),
        );
        let mut components = Components::new();
        components.insert("main".to_string(), ComponentSettings { settings });
        Settings {
            description: Some("waits instead of measuring; an in-memory `main` component".into()),
            measure_enabled: true,
            duration: Duration::from_secs(5),
            components,
        }
    }

    fn validate(&self) -> Vec<Problem> {
        spec::validate(
            &self.components,
            &servo_core::KeyPath::root().key("components"),
        )
    }
}

servo_core::register!(Wait {
    name: "wait",
    description: "Waits instead of measuring or adjusting; keeps declared components in memory",
});

/// The connector: its settings and the in-memory state of its components.
pub struct Wait {
    settings: Settings,
    state: Mutex<Vec<Component>>,
}

impl BuildConnector for Wait {
    type Settings = Settings;

    fn build(settings: Settings, _cx: &BuildContext) -> Result<Self, ConnectorError> {
        let components = spec::components(&settings.components);
        Ok(Self {
            settings,
            state: Mutex::new(components),
        })
    }
}

impl Wait {
    fn components(&self) -> Vec<Component> {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Connector for Wait {
    fn handlers(&self) -> Handlers {
        Handlers::on(&[
            Event::Describe,
            Event::Metrics,
            Event::Measure,
            Event::Adjust,
        ])
    }

    async fn describe(&self, _cx: &EventContext) -> Result<Description, ConnectorError> {
        Ok(Description {
            components: self.components(),
            metrics: Vec::new(),
        })
    }

    async fn metrics(&self, _cx: &EventContext) -> Result<Vec<Metric>, ConnectorError> {
        Ok(if self.settings.measure_enabled {
            vec![Metric::new("time_waited", "s")]
        } else {
            Vec::new()
        })
    }

    async fn measure(
        &self,
        request: &MeasureRequest,
        cx: &EventContext,
    ) -> Result<Measurement, ConnectorError> {
        if !self.settings.measure_enabled {
            return Ok(Measurement::default());
        }
        let control = &request.control;
        let duration = control
            .requested_duration()
            .unwrap_or(self.settings.duration);
        let started = Instant::now();
        for d in [control.warmup, duration, control.delay] {
            cx.sleep(d.as_std()).await?;
        }
        let waited = started.elapsed().as_secs_f64();
        Ok(Measurement {
            readings: vec![Reading::new(Metric::new("time_waited", "s"), waited)],
            annotations: BTreeMap::new(),
        })
    }

    async fn adjust(
        &self,
        adjustments: &[Adjustment],
        control: &Control,
        cx: &EventContext,
    ) -> Result<Description, ConnectorError> {
        cx.sleep(control.settlement.unwrap_or(Duration::ZERO).as_std())
            .await?;
        let mut state = self.state.lock().map_err(|_| {
            ConnectorError::failed("the wait connector's state was poisoned by a panic")
        })?;
        for a in adjustments {
            if let Some(setting) = state
                .iter_mut()
                .find(|c| c.name == a.component)
                .and_then(|c| c.settings.iter_mut().find(|s| s.name == a.setting))
            {
                setting.value = Some(a.value.clone());
            }
        }
        Ok(Description {
            components: state.clone(),
            metrics: Vec::new(),
        })
    }
}
