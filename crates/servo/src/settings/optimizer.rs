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
        ["id", "url", "optimizer_id"]
            .iter()
            .any(|key| section.get(key).is_some())
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
    /// Several at once find their Pareto front: `{minimize: [cost, latency_p99]}`, or
    /// `{minimize: cost, maximize: throughput}` to mix directions; `select` then says which point
    /// of the front is the best (`knee` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
    /// SLOs every acceptable configuration must meet, such as `latency_p99 < 200ms` or
    /// `error_rate < 0.5%`, or relative to the baseline (trial 0, the configuration servo found):
    /// `latency_p99 <= 1.1 * baseline.latency_p99`, `error_rate <= baseline.error_rate + 0.5%`.
    /// The best configuration reported is the best one meeting all of them.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// The search algorithm.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// How much risk of breaching a constraint the search may take to find a better configuration
    /// sooner. `low` (the default) moves out from the baseline and the trials that met every
    /// constraint in bounded steps and tries only configurations the constraint models judge very
    /// likely to meet them all; `minimal` does so with models less sure of settings away from the
    /// trials (fewer breaches, a slower search); `medium` takes longer steps and likelier breaches;
    /// `high` searches the whole space. Only the `bayesian` algorithm uses it.
    #[serde(default)]
    pub risk: Risk,
    /// Stop a trial early when its readings so far, after the warmup, put an SLO this many times
    /// past its limit (`2`: a p99 twice its bound, an error rate twice its ceiling), then put the
    /// application back on the best configuration known to meet every SLO (or the baseline). A bad
    /// configuration then costs seconds, not a whole measurement. The trial is journaled with the
    /// readings it had, marked cut short. Only connectors that report readings while measuring
    /// (vegeta) allow it; `0` turns it off.
    #[serde(default = "default_cut_short")]
    #[schemars(range(min = 0.0))]
    pub cut_short: f64,
    /// How many of the best candidates to measure once more before finishing, so that the best
    /// reported is not one lucky reading. Unset: 2 when the constraint models give the best less
    /// than a 99 % chance of meeting every SLO (its readings are near a limit for their noise),
    /// none otherwise; `0` never. (Noise in the objective is averaged by its model: the best is
    /// the best modelled objective, not the best reading.) The re-measurements come after
    /// `trials` and are journaled as trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub confirm: Option<u32>,
    /// Measure the baseline's configuration again after every this many trials, so that SLOs
    /// relative to the baseline (`latency_p99 <= 1.1 * baseline.latency_p99`) follow drift in the
    /// load: each later trial is judged against the latest measurement of the baseline, and keeps
    /// that judgement (earlier trials are not judged again). The re-measurements are journaled
    /// as trials marked `baseline`, on top of `trials`; without a relative SLO they still show
    /// the drift. Unset or `0`: the baseline is measured once, first. Only `servo run` uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100000))]
    pub baseline_every: Option<u32>,
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
            cut_short: default_cut_short(),
            confirm: None,
            baseline_every: None,
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

fn default_cut_short() -> f64 {
    2.0
}

/// Minimize or maximize an expression, or several at once.
///
/// Written as one mapping (`ObjectiveSection`): `{minimize: cost}` is [`Objective::Minimize`]
/// exactly as before lists existed; two or more expressions, in lists or under both keys, are
/// [`Objective::Pareto`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ObjectiveSection", into = "ObjectiveSection")]
pub enum Objective {
    /// Make this expression as small as possible (e.g. cost).
    Minimize(String),
    /// Make this expression as large as possible (e.g. throughput).
    Maximize(String),
    /// Two or more expressions at once: the study looks for the configurations none of the
    /// others beats on every one of them (the Pareto front), and settles on the one `select`
    /// picks. The ones to minimize come first, in the order written, then the ones to maximize.
    Pareto {
        targets: Vec<Target>,
        select: Select,
    },
}

impl Objective {
    /// Every expression, with its direction, in the order the study scores them.
    pub fn targets(&self) -> Vec<Target> {
        match self {
            Objective::Minimize(e) => vec![Target::new(e, false)],
            Objective::Maximize(e) => vec![Target::new(e, true)],
            Objective::Pareto { targets, .. } => targets.clone(),
        }
    }

    /// The rule that picks the best point of the Pareto front (the knee for one objective,
    /// where it has no say).
    pub fn select(&self) -> Select {
        match self {
            Objective::Pareto { select, .. } => select.clone(),
            _ => Select::Knee,
        }
    }

    /// `minimize cost`, `minimize cost, latency_p99; maximize throughput`.
    pub fn describe(&self) -> String {
        let targets = self.targets();
        let group = |maximize: bool| {
            let list: Vec<&str> = targets
                .iter()
                .filter(|t| t.maximize == maximize)
                .map(|t| t.expression.as_str())
                .collect();
            let verb = if maximize { "maximize" } else { "minimize" };
            (!list.is_empty()).then(|| format!("{verb} {}", list.join(", ")))
        };
        [group(false), group(true)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One objective of several: an expression and whether it is maximized.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub expression: String,
    #[serde(default)]
    pub maximize: bool,
}

impl Target {
    pub fn new(expression: &str, maximize: bool) -> Target {
        Target {
            expression: expression.to_string(),
            maximize,
        }
    }
}

/// Which point of the Pareto front a study with several objectives settles on: the best that
/// `servo trials`, the report and `on_finish: best` use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Select {
    /// The knee: with each objective rescaled over the front from 0 (the front's best) to 1 (its
    /// worst), the point with the smallest sum. For two objectives, the point farthest from the
    /// line joining the front's two extremes, where improving one objective further starts to
    /// cost the most of the other.
    #[default]
    Knee,
    /// The point with the smallest weighted sum of its rescaled objectives (as for the knee),
    /// each weight keyed by the objective's expression as written: `{cost: 0.7, latency_p99:
    /// 0.3}`. An objective left out weighs 0.
    Weights(std::collections::BTreeMap<String, f64>),
}

/// The objective as written: `minimize`, `maximize` or both, each one expression or a list of
/// two or more.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Objective")]
struct ObjectiveSection {
    /// Make this expression as small as possible (e.g. cost), or each of a list of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minimize: Option<Expressions>,
    /// Make this expression as large as possible (e.g. throughput), or each of a list of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    maximize: Option<Expressions>,
    /// With several objectives, which point of their Pareto front is the best: `knee` (the
    /// default) or `{weights: {EXPRESSION: WEIGHT, ...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    select: Option<Select>,
}

/// One expression, or a list of two or more.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
enum Expressions {
    One(String),
    /// A list of objectives has two or more: for one, write it alone (`minimize: cost`).
    Many(#[schemars(length(min = 2))] Vec<String>),
}

impl Expressions {
    fn list(&self) -> Vec<&str> {
        match self {
            Expressions::One(e) => vec![e.as_str()],
            Expressions::Many(list) => list.iter().map(String::as_str).collect(),
        }
    }
}

impl JsonSchema for Objective {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Objective".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ObjectiveSection::json_schema(generator)
    }
}

impl TryFrom<ObjectiveSection> for Objective {
    type Error = String;

    fn try_from(section: ObjectiveSection) -> Result<Self, String> {
        let ObjectiveSection {
            minimize,
            maximize,
            select,
        } = section;
        for (key, e) in [("minimize", &minimize), ("maximize", &maximize)] {
            if let Some(Expressions::Many(list)) = e
                && list.len() < 2
            {
                return Err(format!(
                    "`{key}` lists {} objective(s): a list needs two or more (for one, write it alone: `{key}: EXPR`)",
                    list.len()
                ));
            }
        }
        let mut targets: Vec<Target> = Vec::new();
        for (e, max) in [(&minimize, false), (&maximize, true)] {
            for expression in e.iter().flat_map(Expressions::list) {
                if targets.iter().any(|t| t.expression == expression) {
                    return Err(format!(
                        "`{expression}` is listed twice: each objective is optimized once"
                    ));
                }
                targets.push(Target::new(expression, max));
            }
        }
        match (targets.len(), select) {
            (0, _) => Err("an objective needs `minimize` or `maximize`".into()),
            (1, Some(_)) => Err(
                "`select` picks a point of the Pareto front of two or more objectives; this objective has one"
                    .into(),
            ),
            (1, None) => Ok(match minimize {
                Some(_) => Objective::Minimize(targets.remove(0).expression),
                None => Objective::Maximize(targets.remove(0).expression),
            }),
            (_, select) => {
                let select = select.unwrap_or_default();
                if let Select::Weights(weights) = &select {
                    check_weights(weights, &targets)?;
                }
                Ok(Objective::Pareto { targets, select })
            }
        }
    }
}

/// Each weight names an objective and is a finite number ≥ 0, and one of them is above 0.
fn check_weights(
    weights: &std::collections::BTreeMap<String, f64>,
    targets: &[Target],
) -> Result<(), String> {
    let names: Vec<&str> = targets.iter().map(|t| t.expression.as_str()).collect();
    for (name, weight) in weights {
        if !names.contains(&name.as_str()) {
            let hint = servo_core::suggest::did_you_mean(name, names.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    format!(
                        "the objectives are {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            return Err(format!(
                "`select.weights` names `{name}`, which is not an objective: {hint}"
            ));
        }
        if !(weight.is_finite() && *weight >= 0.0) {
            return Err(format!(
                "`select.weights.{name}` is {weight}: a weight is a number of 0 or more"
            ));
        }
    }
    if !weights.values().any(|w| *w > 0.0) {
        return Err("`select.weights` gives no objective a weight above 0".into());
    }
    Ok(())
}

impl From<Objective> for ObjectiveSection {
    fn from(objective: Objective) -> Self {
        let group = |targets: &[Target], maximize: bool| {
            let mut list: Vec<String> = targets
                .iter()
                .filter(|t| t.maximize == maximize)
                .map(|t| t.expression.clone())
                .collect();
            match list.len() {
                0 => None,
                1 => list.pop().map(Expressions::One),
                _ => Some(Expressions::Many(list)),
            }
        };
        let targets = objective.targets();
        ObjectiveSection {
            minimize: group(&targets, false),
            maximize: group(&targets, true),
            select: match objective {
                Objective::Pareto {
                    select: Select::Weights(w),
                    ..
                } => Some(Select::Weights(w)),
                _ => None,
            },
        }
    }
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
    /// As `low`, with constraint models less sure of settings away from the trials: on the
    /// optimizer's benchmark, a third fewer SLO breaches on a noisy service-like problem, for a
    /// slower search.
    Minimal,
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
            Risk::Minimal => servo_optimizer::Risk::Minimal,
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

/// An optimizer reached over the Opsani/ServoX protocol (`POST {url}servo`), in either of
/// ServoX's forms: Opsani's (`id` + `token`) or AppDynamics' (`optimizer_id` + `tenant_id` with
/// OAuth2 client credentials, or a sidecar's `connection_file`). ServoX's variables
/// (`OPSANI_OPTIMIZER`, `OPSANI_TOKEN`, `OPSANI_TOKEN_FILE`, `OPSANI_BASE_URL`, `OPSANI_URL`, and
/// `APPD_*` for the AppDynamics form) fill the keys the file leaves unset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteOptimizer {
    /// The application, as `ORGANIZATION/APPLICATION` (ServoX's optimizer id, e.g. `example.com/app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^/\s]+/[^/\s]+$"))]
    pub id: Option<String>,
    /// The API token, sent as a bearer token; written `X-SF-Token VALUE` it is sent as header
    /// `X-SF-Token: VALUE` instead, as ServoX does. Never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret<String>>,
    /// A file holding the token (read at each start, trimmed), for a mounted secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The optimizer API's base URL (default `https://api.opsani.com` for the Opsani form); the
    /// application URL is derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub base_url: Option<String>,
    /// The application's full URL, overriding the one derived from `base_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: Option<String>,
    /// AppDynamics form: the optimizer's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer_id: Option<String>,
    /// AppDynamics form: the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// AppDynamics form: the OAuth2 client id (client-credentials grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// AppDynamics form: the OAuth2 client secret. Never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret<String>>,
    /// AppDynamics form: the OAuth2 token endpoint (default
    /// `{base_url}/auth/{tenant_id}/default/oauth2/token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub token_url: Option<String>,
    /// AppDynamics form: a YAML file written by the agent-management sidecar with
    /// `Authorization`, `Endpoint` and `TenantId`. Read at each start; its `Authorization` is read
    /// again whenever the file changes (the sidecar rotates it), as ServoX does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_file: Option<PathBuf>,
}

/// How a remote optimizer authenticates each request.
#[derive(Clone, Debug, PartialEq)]
pub enum Credentials {
    /// A fixed token: `Authorization: Bearer T`, or `X-SF-Token: T`.
    Token(Secret<String>),
    /// The sidecar's connection file: its `Authorization` as read now, and the file, read again
    /// when it changes.
    ConnectionFile {
        path: PathBuf,
        authorization: Secret<String>,
    },
    /// OAuth2 client credentials, fetched from `token_url` and refreshed before they expire.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret<String>,
    },
}

/// A remote optimizer with its files read and its form resolved: where to post and how to
/// authenticate.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// `org/app`, or `tenant - optimizer` (ServoX's display id).
    pub id: String,
    /// The application URL, ending in `/`.
    pub url: String,
    pub credentials: Credentials,
}

/// The sidecar's connection file (ServoX's `SidecarConnectionFile`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectionFile {
    pub authorization: String,
    pub endpoint: String,
    pub tenant_id: String,
}

impl ConnectionFile {
    /// Reads and parses the file; the error names the key and the file.
    pub fn read(file: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "optimizer.connection_file: cannot read {}: {e}",
                file.display()
            )
        })?;
        let value = servo_yaml::parse_documents(&text)
            .map_err(|e| e.message)
            .and_then(|mut docs| docs.pop().map(|d| d.value).ok_or_else(|| "empty".into()));
        value
            .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
            .map_err(|e| {
                format!(
                    "optimizer.connection_file: {} is not a connection file (Authorization, Endpoint, TenantId): {e}",
                    file.display()
                )
            })
    }
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}

impl RemoteOptimizer {
    /// The keys the file set that belong to neither form or miss from the one chosen, as ServoX
    /// refuses them; `None` when the section is complete.
    pub fn problem(&self) -> Option<String> {
        match (&self.id, &self.optimizer_id) {
            (Some(_), Some(_)) => Some("set `id` (Opsani) or `optimizer_id` (AppDynamics), not both".into()),
            (None, None) => Some("a remote optimizer needs `id` (Opsani: `org/app`) or `optimizer_id` (AppDynamics)".into()),
            (Some(_), None) if self.token.is_none() && self.token_file.is_none() => Some(
                "the Opsani form needs `token` or `token_file` (or OPSANI_TOKEN / OPSANI_TOKEN_FILE)".into(),
            ),
            (None, Some(_))
                if self.connection_file.is_none()
                    && self.token.is_none()
                    && (self.client_id.is_none()
                        || self.client_secret.is_none()
                        || self.tenant_id.is_none()
                        || self.base_url.is_none()) =>
            {
                Some("the AppDynamics form needs `connection_file`, or `base_url`, `client_id`, `client_secret` and `tenant_id`".into())
            }
            _ => None,
        }
    }

    /// Whether this is ServoX's Opsani form (`id`).
    fn opsani(&self) -> bool {
        self.id.is_some()
    }

    pub fn organization(&self) -> &str {
        let id = self.id.as_deref().unwrap_or("");
        id.split_once('/').map_or(id, |(org, _)| org)
    }

    pub fn application(&self) -> &str {
        match &self.id {
            Some(id) => id.split_once('/').map_or(id.as_str(), |(_, app)| app),
            None => self.optimizer_id.as_deref().unwrap_or(""),
        }
    }

    /// The display id: `org/app` or ServoX's `tenant - optimizer`.
    pub fn display_id(&self) -> String {
        match (&self.id, &self.optimizer_id) {
            (Some(id), _) => id.clone(),
            (None, Some(o)) => format!("{} - {o}", self.tenant_id.as_deref().unwrap_or("?")),
            (None, None) => String::new(),
        }
    }

    /// The application URL, ending in `/`: `url` when set, else derived as ServoX does
    /// (`{base_url}/accounts/{org}/applications/{app}/`, or for AppDynamics
    /// `{base_url}/rest/optimize/co/v1/optimizers/{optimizer_id}/`).
    pub fn url(&self) -> String {
        self.url_with(self.base_url.clone())
    }

    fn url_with(&self, base_url: Option<String>) -> String {
        let with_slash = |u: &str| {
            if u.ends_with('/') {
                u.to_string()
            } else {
                format!("{u}/")
            }
        };
        if let Some(url) = &self.url {
            return with_slash(url);
        }
        let base = base_url.unwrap_or_else(default_base_url);
        let base = base.trim_end_matches('/');
        if self.opsani() {
            format!(
                "{base}/accounts/{}/applications/{}/",
                self.organization(),
                self.application()
            )
        } else {
            format!(
                "{base}/rest/optimize/co/v1/optimizers/{}/",
                self.optimizer_id.as_deref().unwrap_or("")
            )
        }
    }

    /// Reads the files this section names (`token_file`, `connection_file`) and resolves where
    /// to post and how to authenticate. Called when a run starts, so a rotated secret is read.
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        if let Some(problem) = self.problem() {
            return Err(format!("optimizer: {problem}"));
        }
        let read = |path: &PathBuf, key: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("optimizer.{key}: cannot read {}: {e}", path.display()))
        };
        if let Some(file) = self.connection_file.as_ref().filter(|_| !self.opsani()) {
            let c = ConnectionFile::read(file)?;
            let tenant = c.tenant_id;
            let url = self.url_with(Some(c.endpoint));
            return Ok(Endpoint {
                id: format!("{tenant} - {}", self.optimizer_id.as_deref().unwrap_or("")),
                url,
                credentials: Credentials::ConnectionFile {
                    path: file.clone(),
                    authorization: Secret::new(c.authorization),
                },
            });
        }
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(file)) => Some(Secret::new(read(file, "token_file")?.trim().to_string())),
            (None, None) => None,
        };
        let credentials = match token {
            Some(token) => Credentials::Token(token),
            None => {
                let base = self.base_url.as_deref().unwrap_or("").trim_end_matches('/');
                Credentials::ClientCredentials {
                    token_url: self.token_url.clone().unwrap_or_else(|| {
                        format!(
                            "{base}/auth/{}/default/oauth2/token",
                            self.tenant_id.as_deref().unwrap_or("")
                        )
                    }),
                    client_id: self.client_id.clone().unwrap_or_default(),
                    client_secret: self
                        .client_secret
                        .clone()
                        .unwrap_or_else(|| Secret::new(String::new())),
                }
            }
        };
        Ok(Endpoint {
            id: self.display_id(),
            url: self.url(),
            credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(id: &str, base_url: &str, url: Option<&str>) -> RemoteOptimizer {
        RemoteOptimizer {
            id: Some(id.into()),
            token: Some(Secret::from("t".to_string())),
            base_url: Some(base_url.into()),
            url: url.map(Into::into),
            ..RemoteOptimizer::default()
        }
    }

    fn objective(yaml: serde_json::Value) -> Result<Objective, String> {
        serde_json::from_value(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn one_expression_reads_as_before_and_lists_or_both_keys_make_several() {
        use serde_json::json;
        assert_eq!(
            objective(json!({"minimize": "cost"})),
            Ok(Objective::Minimize("cost".into()))
        );
        assert_eq!(
            objective(json!({"maximize": "rps"})),
            Ok(Objective::Maximize("rps".into()))
        );
        let both = objective(json!({"minimize": ["cost", "p99"], "maximize": "rps"}))
            .expect("three objectives");
        assert_eq!(
            both.targets(),
            vec![
                Target::new("cost", false),
                Target::new("p99", false),
                Target::new("rps", true)
            ]
        );
        assert_eq!(both.describe(), "minimize cost, p99; maximize rps");
        assert!(matches!(
            &both,
            Objective::Pareto {
                select: Select::Knee,
                ..
            }
        ));
        // Written back as read.
        for value in [
            json!({"minimize": "cost"}),
            json!({"minimize": ["cost", "p99"], "maximize": "rps"}),
            json!({"minimize": "cost", "maximize": "rps", "select": {"weights": {"cost": 0.7, "rps": 0.3}}}),
        ] {
            let parsed = objective(value.clone()).expect("parses");
            assert_eq!(serde_json::to_value(&parsed).expect("json"), value);
        }
        let weighted =
            objective(json!({"minimize": ["cost", "p99"], "select": {"weights": {"p99": 1}}}))
                .expect("weights");
        assert!(
            matches!(weighted, Objective::Pareto { select: Select::Weights(w), .. } if w["p99"] == 1.0)
        );
    }

    #[test]
    fn a_list_of_one_a_stray_select_and_bad_weights_are_refused_with_the_fix() {
        use serde_json::json;
        let refused = |v: serde_json::Value, wanted: &str| {
            let e = objective(v.clone()).expect_err("refused");
            assert!(e.contains(wanted), "{v}: {e}");
        };
        refused(json!({"minimize": ["cost"]}), "for one, write it alone");
        refused(
            json!({"minimize": "cost", "maximize": ["rps"]}),
            "two or more",
        );
        refused(json!({}), "needs `minimize` or `maximize`");
        refused(json!({"minimize": ["a", "a"]}), "listed twice");
        refused(
            json!({"minimize": "cost", "select": "knee"}),
            "two or more objectives",
        );
        refused(
            json!({"minimize": ["cost", "p99"], "select": {"weights": {"p90": 1}}}),
            "did you mean `p99`?",
        );
        refused(
            json!({"minimize": ["cost", "p99"], "select": {"weights": {"p99": -1}}}),
            "0 or more",
        );
        refused(
            json!({"minimize": ["cost", "p99"], "select": {"weights": {"p99": 0}}}),
            "no objective a weight above 0",
        );
        refused(
            json!({"minimize": ["cost", "p99"], "select": "elbow"}),
            "elbow",
        );
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
