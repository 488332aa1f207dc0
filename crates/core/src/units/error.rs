//! What a unit parser reports: the kind of value, the problem, and the value as found.

use super::*;

/// Which kind of value a [`UnitError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnitKind {
    /// A [`Duration`].
    Duration,
    /// A [`Cpu`] quantity.
    Cpu,
    /// A [`Memory`] size.
    Memory,
    /// A request [`Rate`].
    Rate,
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnitKind::Duration => "duration",
            UnitKind::Cpu => "CPU quantity",
            UnitKind::Memory => "memory size",
            UnitKind::Rate => "rate",
        })
    }
}

/// What was wrong with the input of a [`UnitError`], for code that reacts to it; people read
/// the error's message, which explains the problem in context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnitProblem {
    /// The input does not have the shape of the value at all.
    Malformed,
    /// A number is missing its unit (`"90"` as a duration).
    MissingUnit,
    /// A unit that this kind of value does not know (`"5min"`, `"256m"` of memory).
    UnknownUnit,
    /// A negative value.
    Negative,
    /// More precision than the value can hold (`"1.5ns"`, `"0.0001"` cores).
    TooPrecise,
    /// A value too large to represent. The JSON Schema cannot detect this one.
    TooLarge,
    /// A number that is not a number (NaN).
    NotANumber,
    /// A fraction where only whole numbers make sense (`2.5` requests).
    NotWhole,
    /// A rate over a zero period (`"5/0s"`).
    ZeroPeriod,
}

/// Why a string or number could not be read as one of this module's types.
///
/// The message names the kind of value, quotes what was found and says what was expected, for
/// example `invalid duration "5 minutes": expected a number followed by a unit (ns, us, ms, s,
/// m, h, d, w), such as 30s, 5m or 1h30m`. Deserializers surface this message unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {found}: {detail}")]
pub struct UnitError {
    kind: UnitKind,
    problem: UnitProblem,
    found: String,
    detail: Cow<'static, str>,
}

impl UnitError {
    pub(super) fn new(
        kind: UnitKind,
        problem: UnitProblem,
        found: Found<'_>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            kind,
            problem,
            found: found.render(),
            detail: detail.into(),
        }
    }

    /// The kind of value that could not be read.
    pub fn kind(&self) -> UnitKind {
        self.kind
    }

    /// What was wrong with the input.
    pub fn problem(&self) -> UnitProblem {
        self.problem
    }
}

/// The offending input as the error message shows it.
pub(super) enum Found<'a> {
    /// A string, shown quoted and escaped so that control characters cannot garble a terminal,
    /// and shortened so that a pasted file does not become the error message.
    Text(&'a str),
    /// A number, shown as written.
    Number(String),
}

impl Found<'_> {
    const MAX_CHARS: usize = 64;

    fn render(&self) -> String {
        match self {
            Found::Text(text) if text.chars().count() > Self::MAX_CHARS => {
                let mut shortened: String = text.chars().take(Self::MAX_CHARS).collect();
                shortened.push('…');
                format!("{shortened:?}")
            }
            Found::Text(text) => format!("{text:?}"),
            Found::Number(number) => number.clone(),
        }
    }
}
