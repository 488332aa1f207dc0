//! Which root key of a document mounts which connector: implicit default keys, a `connectors:`
//! list, or a map of alias → connector. Decided from the file alone, before anything is layered
//! on it, because the mounts decide the schema that environment variables are matched against.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::diagnostic::{Diagnostic, kind_of};
use crate::settings::RESERVED_KEYS;
use servo_core::connector::{ConnectorDescription, Registry};
use servo_core::path::KeyPath;
use servo_core::suggest::did_you_mean;
use servo_yaml::SpanMap;

/// The mount plan of a document: which key mounts which connector.
pub struct Plan {
    pub mounts: Vec<(String, &'static ConnectorDescription)>,
    /// Keys named in a `connectors:` map, mounted or not: a failed alias is reported once, at its
    /// entry, and its section is not reported again as an unknown key.
    claimed: Vec<String>,
}

impl Plan {
    /// Decides the mounts of a document's root mapping, reporting every problem with them.
    pub fn of(
        root: &Map<String, Value>,
        spans: &SpanMap,
        registry: &Registry,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Plan {
        let mut planner = Planner {
            registry,
            spans,
            diagnostics,
            mounts: Vec::new(),
            claimed: Vec::new(),
        };
        let connectors_path = KeyPath::root().key("connectors");
        match root.get("connectors") {
            None | Some(Value::Null) => {
                for key in root.keys() {
                    if let Some(c) = registry.by_default_key(key) {
                        planner.mounts.push((key.clone(), c));
                    }
                }
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    planner.listed(item, &connectors_path.index(i));
                }
            }
            Some(Value::Object(aliases)) => {
                let mut env_names: HashMap<String, String> = HashMap::new();
                for (alias, target) in aliases {
                    planner.aliased(alias, target, &mut env_names);
                }
            }
            Some(other) => planner.report(
                Diagnostic::error(
                    "`connectors` must be a list of connector names or a map of alias → connector",
                )
                .expected(
                    "a list (`[prometheus, vegeta]`) or a mapping (`{prod_prom: prometheus}`)",
                )
                .found(kind_of(other)),
                &connectors_path,
                false,
            ),
        }
        Plan {
            mounts: planner.mounts,
            claimed: planner.claimed,
        }
    }

    /// Removes the root keys that are neither reserved nor mounted, reporting each once here so
    /// that the schema does not report it a second time.
    pub fn drop_unknown_keys(
        &self,
        root: &mut Map<String, Value>,
        spans: &SpanMap,
        registry: &Registry,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let mount_keys: Vec<&str> = self.mounts.iter().map(|(k, _)| k.as_str()).collect();
        let explicit = root.contains_key("connectors");
        let unknown: Vec<String> = root
            .keys()
            .filter(|k| !RESERVED_KEYS.contains(&k.as_str()) && !mount_keys.contains(&k.as_str()))
            .cloned()
            .collect();
        let (failed_aliases, unknown): (Vec<String>, Vec<String>) =
            unknown.into_iter().partition(|k| self.claimed.contains(k));
        for key in &failed_aliases {
            root.remove(key);
        }
        for key in &unknown {
            let mut candidates: Vec<&str> = RESERVED_KEYS.to_vec();
            candidates.extend(mount_keys.iter().copied());
            if !explicit {
                candidates.extend(registry.all().iter().map(|c| c.default_key));
            }
            let mut d = Diagnostic::error(format!("unknown key `{key}`"));
            if explicit && registry.by_default_key(key).is_some() {
                d = d.help(format!(
                    "`{key}` is a connector, but `connectors:` does not list it: add it there"
                ));
            } else if let Some(s) = did_you_mean(key, candidates) {
                d = d.help(format!("did you mean `{s}`?"));
            } else {
                d = d.help(format!(
                    "a root key is a connector ({}), an alias listed in `connectors:`, or one of {}",
                    registry.names().collect::<Vec<_>>().join(", "),
                    RESERVED_KEYS.join(", ")
                ));
            }
            diagnostics.push(d.located(spans, &KeyPath::root().key(key.clone()), true));
            root.remove(key);
        }
    }
}

/// The state of [`Plan::of`] while it walks the `connectors` entry.
struct Planner<'a> {
    registry: &'a Registry,
    spans: &'a SpanMap,
    diagnostics: &'a mut Vec<Diagnostic>,
    mounts: Vec<(String, &'static ConnectorDescription)>,
    claimed: Vec<String>,
}

impl Planner<'_> {
    fn report(&mut self, d: Diagnostic, path: &KeyPath, prefer_key: bool) {
        self.diagnostics
            .push(d.located(self.spans, path, prefer_key));
    }

    fn unknown_connector(&mut self, name: &str, path: &KeyPath) {
        let names: Vec<&str> = self.registry.names().collect();
        let mut d = Diagnostic::error(format!("no connector is named `{name}`"))
            .expected(format!("one of {}", names.join(", ")));
        if let Some(s) = did_you_mean(name, names.iter().copied()) {
            d = d.help(format!("did you mean `{s}`?"));
        } else {
            d = d.help("`servo connectors` lists the connectors this binary has");
        }
        self.report(d, path, false);
    }

    /// One item of a `connectors:` list.
    fn listed(&mut self, item: &Value, path: &KeyPath) {
        let Value::String(name) = item else {
            let d = Diagnostic::error("a `connectors` list holds connector names")
                .expected("a connector name")
                .found(kind_of(item));
            return self.report(d, path, false);
        };
        match self.registry.by_name(&servox_name(name)) {
            Some(c) if self.mounts.iter().any(|(k, _)| k == c.default_key) => {
                let d = Diagnostic::error(format!("`{name}` is listed twice"))
                    .help("to mount a connector twice, give each mount an alias: `connectors: {a: NAME, b: NAME}`");
                self.report(d, path, false);
            }
            Some(c) => self.mounts.push((c.default_key.to_string(), c)),
            None => self.unknown_connector(name, path),
        }
    }

    /// One entry of a `connectors:` map; `env_names` holds the variable prefix of each alias so
    /// far, since two aliases must not share one.
    fn aliased(&mut self, alias: &str, target: &Value, env_names: &mut HashMap<String, String>) {
        self.claimed.push(alias.to_string());
        let path = KeyPath::root().key("connectors").key(alias);
        let Value::String(name) = target else {
            let d = Diagnostic::error(format!("alias `{alias}` must name a connector"))
                .expected("a connector name, such as `prometheus`")
                .found(kind_of(target));
            return self.report(d, &path, false);
        };
        let Some(connector) = self.registry.by_name(&servox_name(name)) else {
            return self.unknown_connector(name, &path);
        };
        if let Some(problem) = alias_problem(alias, connector, self.registry) {
            return self.report(problem, &path, true);
        }
        let env = KeyPath::root().key(alias).env_name();
        if let Some(other) = env_names.insert(env.clone(), alias.to_string()) {
            let d = Diagnostic::error(format!(
                "aliases `{other}` and `{alias}` both become {env}_* in environment variables"
            ))
            .help("rename one of them so their environment names differ");
            return self.report(d, &path, true);
        }
        self.mounts.push((alias.to_string(), connector));
    }
}

/// Why `alias` cannot mount `connector`, if it cannot.
fn alias_problem(
    alias: &str,
    connector: &ConnectorDescription,
    registry: &Registry,
) -> Option<Diagnostic> {
    let valid_chars = alias
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'));
    let length = alias.chars().count();
    if !valid_chars || !(3..=128).contains(&length) {
        return Some(
            Diagnostic::error(format!("`{alias}` is not a valid alias"))
                .expected("3 to 128 letters, digits, `-`, `_`, `/` or `.`")
                .found(format!("`{alias}`")),
        );
    }
    if RESERVED_KEYS.contains(&alias) {
        return Some(
            Diagnostic::error(format!(
                "`{alias}` is a reserved key and cannot be an alias"
            ))
            .help("pick another alias"),
        );
    }
    if let Some(other) = registry.by_default_key(alias)
        && other.name != connector.name
    {
        return Some(
            Diagnostic::error(format!(
                "alias `{alias}` is the default key of the `{}` connector and cannot mount `{}`",
                other.name, connector.name
            ))
            .help(format!(
                "pick another alias, such as `{alias}_{}`",
                connector.name
            )),
        );
    }
    None
}

/// A connector named as ServoX names it, by class (`PrometheusConnector`) or dotted path
/// (`servo.connectors.prometheus.PrometheusConnector`), as servo names it (`prometheus`); any
/// other name is returned as it is.
fn servox_name(name: &str) -> String {
    let class = name.rsplit('.').next().unwrap_or(name);
    let Some(stem) = class.strip_suffix("Connector").filter(|s| !s.is_empty()) else {
        return name.to_string();
    };
    if !stem.starts_with(|c: char| c.is_ascii_uppercase()) {
        return name.to_string();
    }
    let mut snake = String::new();
    for (i, c) in stem.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake
}

#[cfg(test)]
mod tests {
    use super::servox_name;

    #[test]
    fn servox_class_names_and_dotted_paths_name_connectors() {
        assert_eq!(servox_name("PrometheusConnector"), "prometheus");
        assert_eq!(
            servox_name("servo.connectors.prometheus.PrometheusConnector"),
            "prometheus"
        );
        assert_eq!(servox_name("OpsaniDevConnector"), "opsani_dev");
        assert_eq!(servox_name("KubeMetricsConnector"), "kube_metrics");
        assert_eq!(servox_name("vegeta"), "vegeta");
        assert_eq!(servox_name("Connector"), "Connector");
    }
}
