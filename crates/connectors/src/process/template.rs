//! `{{ setting }}` templates of the command line, the environment and the readiness probe, and
//! what they render to for one start.

use servo_core::spec::SettingSpec;
use servo_core::suggest::did_you_mean;
use servo_core::types::SettingValue;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Current setting values by name.
pub(super) type Values = BTreeMap<String, SettingValue>;

/// A string with `{{ setting }}` placeholders, parsed once when the connector is built.
///
/// Deliberately tiny: a placeholder holds a setting's name or a quoted literal (`{{ "{{" }}`), nothing
/// else; there are no filters, conditions or loops to learn, and a typo is an error, not an empty
/// string.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Template(Vec<Piece>);

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Piece {
    Text(String),
    Setting(String),
}

impl Template {
    pub(super) fn parse(
        text: &str,
        settings: &BTreeMap<String, SettingSpec>,
    ) -> Result<Template, String> {
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
    pub(super) fn render(&self, values: &Values) -> String {
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

pub(super) fn unknown_setting(name: &str, settings: &BTreeMap<String, SettingSpec>) -> String {
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
pub(super) struct Launch {
    pub(super) args: Vec<Template>,
    pub(super) env: Vec<(String, Template)>,
    pub(super) ready: Option<Probe<Template>>,
}

/// A readiness probe: an HTTP URL or a TCP address (templates before rendering, targets after).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Probe<T> {
    Http(T),
    Tcp(T),
}

impl Probe<Template> {
    pub(super) fn key(&self) -> &'static str {
        match self {
            Probe::Http(_) => "http",
            Probe::Tcp(_) => "tcp",
        }
    }

    pub(super) fn render(&self, values: &Values) -> Result<Target, String> {
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
pub(super) enum Target {
    Http(reqwest::Url),
    Tcp { host: String, port: u16 },
}

impl Target {
    /// The host and port a listener holds.
    pub(super) fn address(&self) -> (String, u16) {
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
pub(super) struct Invocation {
    pub(super) args: Vec<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) ready: Option<Target>,
}
