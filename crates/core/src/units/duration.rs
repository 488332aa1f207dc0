//! [`Duration`]: a length of time, in Go, vegeta and ServoX spellings.

use super::*;

pub(super) const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Duration units: spelling, length in nanoseconds and the decimal places that stay within
/// nanosecond resolution. `µs` (micro sign) and `μs` (Greek mu) are both accepted because Go
/// prints the first and people type either.
pub(super) const DURATION_UNITS: [(&str, u128, usize); 10] = [
    ("ns", 1, 0),
    ("us", 1_000, 3),
    ("µs", 1_000, 3),
    ("μs", 1_000, 3),
    ("ms", 1_000_000, 6),
    ("s", NANOS_PER_SECOND, 9),
    ("m", 60 * NANOS_PER_SECOND, 9),
    ("h", 3_600 * NANOS_PER_SECOND, 9),
    ("d", 86_400 * NANOS_PER_SECOND, 9),
    ("w", 604_800 * NANOS_PER_SECOND, 9),
];

pub(super) const DURATION_UNIT_LIST: &str = "ns, us, ms, s, m, h, d, w";

pub(super) const DURATION_PRECISION_RULE: &str = "durations have nanosecond resolution, so ns takes no \
     decimal places, us at most 3, ms at most 6, and s, m, h, d and w at most 9";

pub(super) fn duration_unit(name: &str) -> Option<(u128, usize)> {
    DURATION_UNITS
        .iter()
        .find(|(unit, _, _)| *unit == name)
        .map(|&(_, nanos, places)| (nanos, places))
}

/// Why a sequence of duration components could not be read; [`Duration`] and [`Rate`] word
/// these differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ComponentIssue {
    Malformed,
    /// The number that has no unit.
    MissingUnit(String),
    /// The unknown unit.
    UnknownUnit(String),
    /// The component that is finer than a nanosecond.
    TooPrecise(String),
    TooLarge,
}

/// How a [`ComponentIssue`] is worded where the components stand: a whole duration, or the
/// period of a rate. Precision and size read the same everywhere.
pub(super) struct ComponentWording {
    pub malformed: fn() -> Cow<'static, str>,
    pub missing_unit: fn(&str) -> String,
    pub unknown_unit: fn(&str) -> String,
}

impl ComponentIssue {
    /// The problem, and its explanation in `wording`.
    pub(super) fn explain(self, wording: &ComponentWording) -> (UnitProblem, Cow<'static, str>) {
        match self {
            ComponentIssue::Malformed => (UnitProblem::Malformed, (wording.malformed)()),
            ComponentIssue::MissingUnit(number) => (
                UnitProblem::MissingUnit,
                (wording.missing_unit)(&number).into(),
            ),
            ComponentIssue::UnknownUnit(unit) => (
                UnitProblem::UnknownUnit,
                (wording.unknown_unit)(&unit).into(),
            ),
            ComponentIssue::TooPrecise(component) => (
                UnitProblem::TooPrecise,
                format!("{component} is finer than a nanosecond; {DURATION_PRECISION_RULE}").into(),
            ),
            ComponentIssue::TooLarge => (UnitProblem::TooLarge, duration_too_large().into()),
        }
    }
}

const DURATION_WORDING: ComponentWording = ComponentWording {
    malformed: || duration_malformed().into(),
    missing_unit: |number| {
        format!(
            "the number {number} needs a unit ({DURATION_UNIT_LIST}), such as {number}s; only 0 \
             may be written without one, and a number outside quotes is read as seconds"
        )
    },
    unknown_unit: |unit| {
        format!(
            "unknown unit {unit:?}; expected one of {DURATION_UNIT_LIST}, such as 30s, 5m or 1h30m"
        )
    },
};

/// Reads Go-style components such as `1h30m` or `1.5s` into nanoseconds.
///
/// Components may come in any order and repeat, as in Go's `time.ParseDuration` and therefore
/// vegeta, so that anything those tools print or accept is read the same way here.
pub(super) fn parse_components(text: &str) -> Result<u128, ComponentIssue> {
    if text.is_empty() {
        return Err(ComponentIssue::Malformed);
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (number, after_number) =
            Decimal::split_prefix(rest).ok_or(ComponentIssue::Malformed)?;
        let unit_len = after_number
            .char_indices()
            .find(|&(_, c)| !c.is_alphabetic())
            .map_or(after_number.len(), |(index, _)| index);
        let (unit, after_unit) = after_number.split_at(unit_len);
        let component = &rest[..rest.len() - after_unit.len()];
        if unit.is_empty() {
            return Err(if after_unit.is_empty() {
                ComponentIssue::MissingUnit(component.to_owned())
            } else {
                ComponentIssue::Malformed
            });
        }
        let (unit_nanos, places) =
            duration_unit(unit).ok_or_else(|| ComponentIssue::UnknownUnit(unit.to_owned()))?;
        if number.exceeds_places(places) {
            return Err(ComponentIssue::TooPrecise(component.to_owned()));
        }
        total = number
            .scale(unit_nanos)
            .and_then(|nanos| total.checked_add(nanos))
            .ok_or(ComponentIssue::TooLarge)?;
        rest = after_unit;
    }
    Ok(total)
}

/// Converts nanoseconds to a `std` duration, or `None` past `std::time::Duration::MAX`.
pub(super) fn std_from_nanos(nanos: u128) -> Option<std::time::Duration> {
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).ok()?;
    let subsec = u32::try_from(nanos % NANOS_PER_SECOND).ok()?;
    Some(std::time::Duration::new(seconds, subsec))
}

/// Writes `whole`, then `fraction` (a value below `10^places`) as decimal places without
/// trailing zeros, then `unit`.
pub(super) fn write_decimal(
    f: &mut fmt::Formatter<'_>,
    whole: u64,
    fraction: u32,
    places: usize,
    unit: &str,
) -> fmt::Result {
    if fraction == 0 {
        write!(f, "{whole}{unit}")
    } else {
        let digits = format!("{fraction:0places$}");
        write!(f, "{whole}.{}{unit}", digits.trim_end_matches('0'))
    }
}

/// A length of time, such as a timeout or the duration of a measurement.
///
/// Reads Go, vegeta and ServoX spellings: a sequence of numbers with units `ns`, `us` (or `µs`,
/// `μs`), `ms`, `s`, `m`, `h`, `d` (24h) and `w` (7d), such as `30s`, `1h30m`, `250ms` or `1.5s`,
/// and the bare `0`. A bare number in a string (`"90"`) is an error, because it is ambiguous;
/// a JSON or YAML *number* is a count of seconds (`90`, `1.5`), as ServoX and the optimizer send
/// it, rounded to the nearest nanosecond.
///
/// The canonical spelling, used by `Display` and `Serialize`, lists whole weeks, days, hours and
/// minutes, largest first and without zero components, followed by the rest: seconds with up to
/// 9 decimal places when at least a second remains (`1h1.5s`), otherwise the largest of `ms`, `us`
/// and `ns` that keeps a non-zero whole part (`250ms`, `1.5us`). Zero is `0s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub(super) std::time::Duration);

impl Duration {
    /// No time at all.
    pub const ZERO: Self = Self(std::time::Duration::ZERO);

    /// A whole number of seconds.
    pub const fn from_secs(seconds: u64) -> Self {
        Self(std::time::Duration::from_secs(seconds))
    }

    /// A whole number of milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    /// A number of seconds, rounded to the nearest nanosecond (halves up), exactly as the number
    /// form of a config value is read. Fails on NaN, negative and too large values.
    pub fn from_secs_f64(seconds: f64) -> Result<Self, UnitError> {
        let fail = |problem, detail| {
            UnitError::new(
                UnitKind::Duration,
                problem,
                Found::Number(seconds.to_string()),
                detail,
            )
        };
        let digits = float_digits(seconds).map_err(|problem| match problem {
            UnitProblem::NotANumber => fail(problem, "expected a number of seconds"),
            UnitProblem::Negative => fail(problem, "durations cannot be negative"),
            _ => fail(problem, duration_too_large()),
        })?;
        Decimal::parse_exact(&digits)
            .and_then(|number| number.scale(NANOS_PER_SECOND))
            .and_then(std_from_nanos)
            .map(Self)
            .ok_or_else(|| fail(UnitProblem::TooLarge, duration_too_large()))
    }

    /// The same length as a `std::time::Duration`, for `tokio::time::sleep` and friends.
    pub const fn as_std(&self) -> std::time::Duration {
        self.0
    }

    /// The length in seconds, with the precision of an `f64`.
    pub fn as_secs_f64(&self) -> f64 {
        self.0.as_secs_f64()
    }

    /// Whether this is no time at all.
    pub const fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    fn parse(input: &str) -> Result<Self, UnitError> {
        let text = trim_whitespace(input);
        if text == "0" {
            return Ok(Self::ZERO);
        }
        let nanos = parse_components(text).map_err(|issue| {
            if is_negated(text, |rest| parse_components(rest).is_ok()) {
                let detail = "durations cannot be negative";
                return UnitError::new(
                    UnitKind::Duration,
                    UnitProblem::Negative,
                    Found::Text(input),
                    detail,
                );
            }
            let (problem, detail) = issue.explain(&DURATION_WORDING);
            UnitError::new(UnitKind::Duration, problem, Found::Text(input), detail)
        })?;
        std_from_nanos(nanos).map(Self).ok_or_else(|| {
            UnitError::new(
                UnitKind::Duration,
                UnitProblem::TooLarge,
                Found::Text(input),
                duration_too_large(),
            )
        })
    }

    fn from_negative(number: i64) -> UnitError {
        UnitError::new(
            UnitKind::Duration,
            UnitProblem::Negative,
            Found::Number(number.to_string()),
            "durations cannot be negative",
        )
    }
}

pub(super) fn duration_malformed() -> String {
    format!("expected a number followed by a unit ({DURATION_UNIT_LIST}), such as 30s, 5m or 1h30m")
}

pub(super) fn duration_too_large() -> &'static str {
    "too large; durations must be shorter than 2^64 seconds (about 584 billion years)"
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut seconds = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if seconds == 0 && nanos == 0 {
            return f.write_str("0s");
        }
        for (length, unit) in [(604_800, "w"), (86_400, "d"), (3_600, "h"), (60, "m")] {
            let count = seconds / length;
            if count > 0 {
                write!(f, "{count}{unit}")?;
            }
            seconds %= length;
        }
        if seconds > 0 {
            write_decimal(f, seconds, nanos, 9, "s")
        } else if nanos >= 1_000_000 {
            write_decimal(f, u64::from(nanos / 1_000_000), nanos % 1_000_000, 6, "ms")
        } else if nanos >= 1_000 {
            write_decimal(f, u64::from(nanos / 1_000), nanos % 1_000, 3, "us")
        } else if nanos > 0 {
            write!(f, "{nanos}ns")
        } else {
            Ok(())
        }
    }
}

impl From<std::time::Duration> for Duration {
    fn from(duration: std::time::Duration) -> Self {
        Self(duration)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        duration.0
    }
}

text_unit!(Duration);

deserialize_unit!(Duration, "{DURATION_EXPECTATION}, or a number of seconds";
    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(seconds))
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
        u64::try_from(seconds)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(Duration::from_negative(seconds)))
    }

    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
        Duration::from_secs_f64(seconds).map_err(E::custom)
    }
);

unit_schema!(Duration, types: ["string", "number"], "examples": ["30s", "5m", "1h30m"]);
