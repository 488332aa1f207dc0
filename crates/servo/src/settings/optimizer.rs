//! The `optimizer:` section: the embedded optimizer (default) or a remote Opsani-protocol one.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use servo_core::units::{Duration, Secret};

/// ServoX's default optimizer API.
pub const DEFAULT_BASE_URL: &str = "https://api.opsani.com";

/// The optimizer that decides what to try next.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OptimizerSettings {
    Embedded(EmbeddedOptimizer),
    Remote(RemoteOptimizer),
}

impl Default for OptimizerSettings {
    fn default() -> Self {
        OptimizerSettings::Embedded(EmbeddedOptimizer::default())
    }
}

impl OptimizerSettings {
    /// Whether a section (already known to be a mapping) describes a remote optimizer.
    pub fn is_remote(section: &serde_json::Value) -> bool {
        section.get("id").is_some() || section.get("url").is_some()
    }
}

/// The optimizer built into servo: Bayesian optimization over the described settings, with every trial
/// journaled so a restarted `servo run` resumes the study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedOptimizer {
    /// How many trials to run, the baseline included.
    #[serde(default = "default_trials")]
    #[schemars(range(min = 1, max = 100000))]
    pub trials: u32,
    /// What to optimize: `{minimize: EXPR}` or `{maximize: EXPR}`, where EXPR is a metric name or an
    /// arithmetic expression over metrics and settings (`main.cpu * 0.0317 + main.memory * 0.0042`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
    /// SLOs every acceptable configuration must meet, such as `latency_p99 < 200ms` or
    /// `error_rate < 0.5%`. The best configuration reported is the best one meeting all of them.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// The search algorithm.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// How much risk of breaching a constraint the search may take to find a better configuration
    /// sooner. `low` (the default) moves out from the baseline and the trials that met every
    /// constraint in bounded steps and tries only configurations the constraint models judge very
    /// likely to meet them all; `medium` takes longer steps and likelier breaches; `high` searches
    /// the whole space. Only the `bayesian` algorithm uses it.
    #[serde(default)]
    pub risk: Risk,
    /// Seed of the optimizer's random choices; the same seed and history give the same suggestions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The SQLite file journaling the study (default `.servo/<servo name>.db`, relative to the
    /// config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
    /// Stop after this long even if trials remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<Duration>,
    /// Which configuration to leave the application on when the study ends.
    #[serde(default)]
    pub on_finish: OnFinish,
    /// How each trial is measured: `duration`, `warmup`, `delay`, `settlement`.
    #[serde(default)]
    pub control: TrialControl,
}

impl Default for EmbeddedOptimizer {
    fn default() -> Self {
        Self {
            trials: default_trials(),
            objective: None,
            constraints: Vec::new(),
            algorithm: Algorithm::default(),
            risk: Risk::default(),
            seed: None,
            store: None,
            max_duration: None,
            on_finish: OnFinish::default(),
            control: TrialControl::default(),
        }
    }
}

fn default_trials() -> u32 {
    30
}

/// Minimize or maximize an expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Objective {
    /// Make this expression as small as possible (e.g. cost).
    Minimize(String),
    /// Make this expression as large as possible (e.g. throughput).
    Maximize(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Gaussian-process Bayesian optimization with constraint modelling.
    #[default]
    Bayesian,
    /// Uniform random search (a baseline to compare against).
    Random,
}

/// How much risk of breaching an SLO the embedded optimizer takes while searching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Small steps from known-good configurations; only candidates very likely to meet every SLO.
    #[default]
    Low,
    /// Longer steps; candidates more likely than not to meet every SLO.
    Medium,
    /// No restriction: plain constrained Bayesian optimization over the whole space.
    High,
}

impl From<Risk> for servo_optimizer::Risk {
    fn from(risk: Risk) -> Self {
        match risk {
            Risk::Low => servo_optimizer::Risk::Low,
            Risk::Medium => servo_optimizer::Risk::Medium,
            Risk::High => servo_optimizer::Risk::High,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFinish {
    /// Apply the best configuration that met every constraint (the baseline if none did).
    #[default]
    Best,
    /// Put the application back on its baseline configuration.
    Baseline,
    /// Leave the application on whatever the last trial applied.
    Keep,
}

/// How each trial of the embedded optimizer is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrialControl {
    /// How long each measurement runs.
    #[serde(default = "default_duration")]
    pub duration: Duration,
    /// Load to run before the measurement window opens.
    #[serde(default)]
    pub warmup: Duration,
    /// Time to wait after the window before collecting results.
    #[serde(default)]
    pub delay: Duration,
    /// How long the application must stay healthy after an adjustment.
    #[serde(default)]
    pub settlement: Duration,
}

impl Default for TrialControl {
    fn default() -> Self {
        Self {
            duration: default_duration(),
            warmup: Duration::ZERO,
            delay: Duration::ZERO,
            settlement: Duration::ZERO,
        }
    }
}

fn default_duration() -> Duration {
    Duration::from_secs(60)
}

/// An optimizer reached over the Opsani/ServoX protocol (`POST {url}servo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteOptimizer {
    /// The application, as `ORGANIZATION/APPLICATION` (ServoX's optimizer id, e.g. `example.com/app`).
    #[schemars(regex(pattern = r"^[^/\s]+/[^/\s]+$"))]
    pub id: String,
    /// The API token, sent as a bearer token. Never printed.
    pub token: Secret<String>,
    /// The optimizer API's base URL; the application URL is derived from it and `id`.
    #[serde(default = "default_base_url")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub base_url: String,
    /// The application's full URL, overriding the one derived from `base_url` and `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: Option<String>,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}

impl RemoteOptimizer {
    pub fn organization(&self) -> &str {
        self.id
            .split_once('/')
            .map_or(self.id.as_str(), |(org, _)| org)
    }

    pub fn application(&self) -> &str {
        self.id
            .split_once('/')
            .map_or(self.id.as_str(), |(_, app)| app)
    }

    /// The application URL, ending in `/`: `url` when set, else
    /// `{base_url}/accounts/{org}/applications/{app}/` as ServoX derives it.
    pub fn url(&self) -> String {
        match &self.url {
            Some(url) if url.ends_with('/') => url.clone(),
            Some(url) => format!("{url}/"),
            None => format!(
                "{}/accounts/{}/applications/{}/",
                self.base_url.trim_end_matches('/'),
                self.organization(),
                self.application()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(id: &str, base_url: &str, url: Option<&str>) -> RemoteOptimizer {
        RemoteOptimizer {
            id: id.into(),
            token: Secret::from("t".to_string()),
            base_url: base_url.into(),
            url: url.map(Into::into),
        }
    }

    #[test]
    fn remote_url_is_derived_from_id_like_servox() {
        assert_eq!(
            remote("example.com/app", DEFAULT_BASE_URL, None).url(),
            "https://api.opsani.com/accounts/example.com/applications/app/"
        );
        assert_eq!(
            remote("o/a", "http://127.0.0.1:8080/", None).url(),
            "http://127.0.0.1:8080/accounts/o/applications/a/"
        );
        assert_eq!(
            remote("o/a", DEFAULT_BASE_URL, Some("http://h/x")).url(),
            "http://h/x/"
        );
    }
}
