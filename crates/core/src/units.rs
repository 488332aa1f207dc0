//! Typed quantities for connector settings: [`Duration`], [`Cpu`], [`Memory`], [`Rate`] and
//! [`Secret`].
//!
//! Configs are written by people, so settings say `timeout: 5m`, `cpu: 250m`, `memory: 4Gi` or
//! `rate: 50/1s`, and connector code receives typed values instead of strings it would have to
//! parse (and get subtly wrong) itself. Every type here:
//!
//! - parses the human spelling from a string, and the machine spelling from a number (ServoX and
//!   the optimizer wire protocol send durations as seconds, and CPU is often written as cores);
//! - prints, and serializes, one *canonical* spelling that parses back to the same value;
//! - describes itself with a JSON Schema whose `pattern` accepts exactly the strings the parser
//!   accepts, so an editor, the config loader's schema validation and the deserializer never
//!   disagree about what is valid. The schemas are inlined (see [`JsonSchema::inline_schema`]) and use a single
//!   `"type": ["string", "number"]` instead of an `anyOf`, because validators report an `anyOf`
//!   failure as "is not valid under any of the given schemas", which tells the user nothing.
//!
//! # Grammar shared by all types
//!
//! - Leading and trailing spaces, tabs and line breaks are ignored; nothing else is.
//! - A number is `digits`, `digits.`, `digits.digits` or `.digits` with ASCII digits, the forms
//!   Go and Kubernetes both accept. There is no sign (a leading `-` is reported as negative) and
//!   no exponent.
//! - Units are case-sensitive, as in Kubernetes, where `M` is mega and `m` is milli; so `256m`
//!   is not a memory size (the error suggests `Mi`).
//!
//! # Precision
//!
//! Where the schema can express a precision limit exactly, finer values are errors rather than
//! silently rounded: a [`Duration`] string allows at most nanosecond precision and a [`Cpu`] at
//! most millicore precision (digits beyond that must be zeros). Where it cannot, values are
//! rounded to the nearest unit, halves away from zero: [`Memory`] rounds to whole bytes (whether
//! `0.1Ki` is a whole number of bytes depends on divisibility by powers of five, which no regular
//! expression can check), and numeric durations round to whole nanoseconds (they come from
//! floating-point arithmetic, where `0.1 + 0.2` seconds is `0.30000000000000004`).
//!
//! # The one thing the schemas cannot check
//!
//! Magnitude overflow: a regular expression cannot compare a sum of components with a maximum,
//! so a value too large for the type (over about 584 billion years, 16 EiB, 18 quadrillion cores
//! or 18 quintillion requests) matches the schema and is then rejected by the deserializer with a
//! [`UnitProblem::TooLarge`] error. Every other input is accepted or rejected by both alike.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// `FromStr` through the type's `parse` and `Serialize` as its canonical `Display` text: every unit
/// type reads and writes itself the same way.
macro_rules! text_unit {
    ($type:ident) => {
        impl FromStr for $type {
            type Err = UnitError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

/// The naming half of a unit's `JsonSchema`: inlined (so `Option<Unit>` becomes a `null` type
/// rather than an `anyOf`), named after the type.
macro_rules! inline_unit_schema {
    ($type:ident) => {
        fn inline_schema() -> bool {
            true
        }

        fn schema_name() -> Cow<'static, str> {
            stringify!($type).into()
        }

        fn schema_id() -> Cow<'static, str> {
            concat!(module_path!(), "::", stringify!($type)).into()
        }
    };
}

/// One duration component in the schema dialect: a number whose decimal places fit the unit's
/// resolution (none for ns, 3 for us, 6 for ms, 9 for s and up; extra trailing zeros are fine),
/// followed by its unit. Kept as a macro so that [`DURATION_PATTERN`] and [`RATE_PATTERN`] share
/// one spelling through `concat!`.
macro_rules! duration_component_pattern {
    () => {
        concat!(
            r"(([0-9]+(\.0*)?|\.0+)ns",
            r"|([0-9]+(\.[0-9]{0,3}0*)?|\.[0-9]{1,3}0*)(us|µs|μs)",
            r"|([0-9]+(\.[0-9]{0,6}0*)?|\.[0-9]{1,6}0*)ms",
            r"|([0-9]+(\.[0-9]{0,9}0*)?|\.[0-9]{1,9}0*)[smhdw])",
        )
    };
}

/// Schema `pattern` of [`Duration`] strings: `0`, or one or more components such as `1h30m`.
///
/// All patterns are written in the subset of ECMA-262 that JSON Schema recommends for
/// portability: plain groups rather than `(?:…)`, explicit `[0-9]` rather than `\d` (which is
/// Unicode-aware in some engines), lookahead only in [`RATE_PATTERN`], and no flags.
pub const DURATION_PATTERN: &str = concat!(
    r"^[ \t\n\r]*(0|",
    duration_component_pattern!(),
    r"+)[ \t\n\r]*$"
);

/// Schema `pattern` of [`Cpu`] strings: cores with at most 3 decimal places, or whole
/// millicores with the unit `m`.
pub const CPU_PATTERN: &str = concat!(
    r"^[ \t\n\r]*(([0-9]+(\.[0-9]{0,3}0*)?|\.[0-9]{1,3}0*)",
    r"|([0-9]+(\.0*)?|\.0+)m)[ \t\n\r]*$"
);

/// Schema `pattern` of [`Memory`] strings: a number with an optional binary (`Ki` … `Ei`) or
/// decimal (`k`, `K`, `M` … `E`) unit, either optionally followed by `B`, or `B` alone.
pub const MEMORY_PATTERN: &str = concat!(
    r"^[ \t\n\r]*([0-9]+(\.[0-9]*)?|\.[0-9]+)",
    r"(B|[KMGTPE]iB?|[kKMGTPE]B?)?[ \t\n\r]*$"
);

/// Schema `pattern` of [`Rate`] strings: `infinity`, or whole requests with an optional
/// `/period`, where the period is a bare unit or a duration with at least one non-zero digit
/// (the lookahead), because a zero period is an error.
pub const RATE_PATTERN: &str = concat!(
    r"^[ \t\n\r]*(infinity|[0-9]+(/(ns|us|µs|μs|ms|s|m|h|d|w|(?=[^1-9]*[1-9])",
    duration_component_pattern!(),
    r"+))?)[ \t\n\r]*$"
);

const DURATION_EXPECTATION: &str = "a duration such as 30s, 5m or 1h30m";
const CPU_EXPECTATION: &str =
    "a CPU quantity in cores, such as 2 or 0.5, or in millicores, such as 250m";
const MEMORY_EXPECTATION: &str = "a memory size such as 256Mi, 4Gi or 1G";
const RATE_EXPECTATION: &str =
    "a request rate such as 50/1s, 100/1m or 50 (per second), or 0 for unlimited";

/// What a value must look like, in words, for a schema `pattern` produced by this module.
///
/// JSON Schema validators report a pattern mismatch as `"5 minutes" does not match "^[ \t…$"`,
/// which is accurate and useless to a person editing a config. The config loader looks the
/// pattern up here to say "expected a duration such as 30s, 5m or 1h30m" instead. Returns `None`
/// for patterns that did not come from this module.
pub fn expectation_for_pattern(pattern: &str) -> Option<&'static str> {
    match pattern {
        DURATION_PATTERN => Some(DURATION_EXPECTATION),
        CPU_PATTERN => Some(CPU_EXPECTATION),
        MEMORY_PATTERN => Some(MEMORY_EXPECTATION),
        RATE_PATTERN => Some(RATE_EXPECTATION),
        _ => None,
    }
}

/// The parser's own explanation of why `text` fails a schema `pattern` produced by this module.
///
/// [`expectation_for_pattern`] says what a valid value looks like; this says what is wrong with
/// the one given (`"1.5ns" is finer than a nanosecond …`), which is more useful when the value is
/// close to valid. Since each pattern accepts exactly what its parser accepts, this returns
/// `Some` for every string the pattern rejects; it returns `None` when `text` is valid or the
/// pattern did not come from this module.
pub fn error_for_pattern(pattern: &str, text: &str) -> Option<UnitError> {
    match pattern {
        DURATION_PATTERN => text.parse::<Duration>().err(),
        CPU_PATTERN => text.parse::<Cpu>().err(),
        MEMORY_PATTERN => text.parse::<Memory>().err(),
        RATE_PATTERN => text.parse::<Rate>().err(),
        _ => None,
    }
}

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
    fn new(
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
enum Found<'a> {
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

/// Leading and trailing whitespace accepted around every value; the `[ \t\n\r]` of the patterns.
fn trim_whitespace(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r'])
}

/// A non-negative decimal number as written, split into its integer and fraction digits.
/// Either part may be empty, but not both (`"5."` and `".5"` are numbers, `"."` is not).
#[derive(Debug, Clone, Copy)]
struct Decimal<'a> {
    integer: &'a str,
    fraction: &'a str,
}

impl<'a> Decimal<'a> {
    /// Splits the longest number off the front of `text`, returning it and the rest.
    fn split_prefix(text: &'a str) -> Option<(Self, &'a str)> {
        let integer_len = text.bytes().take_while(u8::is_ascii_digit).count();
        let (integer, rest) = text.split_at(integer_len);
        let (fraction, rest) = match rest.strip_prefix('.') {
            Some(after_point) => {
                let fraction_len = after_point.bytes().take_while(u8::is_ascii_digit).count();
                after_point.split_at(fraction_len)
            }
            None => ("", rest),
        };
        if integer.is_empty() && fraction.is_empty() {
            return None;
        }
        Some((Self { integer, fraction }, rest))
    }

    /// Parses text that must be exactly one number.
    fn parse_exact(text: &'a str) -> Option<Self> {
        match Self::split_prefix(text) {
            Some((number, "")) => Some(number),
            _ => None,
        }
    }

    /// Whether the number has non-zero digits beyond `places` decimal places.
    fn exceeds_places(&self, places: usize) -> bool {
        self.fraction
            .bytes()
            .skip(places)
            .any(|digit| digit != b'0')
    }

    /// `self × unit`, rounded to the nearest integer with halves rounded up, or `None` if the
    /// result does not fit in a `u128`.
    ///
    /// The fraction is multiplied digit by digit from the right, as on paper, so the result is
    /// exact however many digits there are: the carry out of the first fraction digit is the
    /// integer contribution, and that digit itself decides the rounding.
    fn scale(&self, unit: u128) -> Option<u128> {
        let mut whole: u128 = 0;
        for digit in self.integer.bytes() {
            whole = whole
                .checked_mul(10)?
                .checked_add(u128::from(digit - b'0'))?;
        }
        let mut carry: u128 = 0;
        let mut first_digit: u128 = 0;
        for digit in self.fraction.bytes().rev() {
            let product = u128::from(digit - b'0') * unit + carry;
            first_digit = product % 10;
            carry = product / 10;
        }
        whole
            .checked_mul(unit)?
            .checked_add(carry)?
            .checked_add(u128::from(first_digit >= 5))
    }
}

/// The digits of a finite, non-negative `f64`, or why there are none.
///
/// Numbers from JSON and YAML arrive as `f64`; formatting one with `{}` gives the shortest
/// decimal that reads back as the same float (and never an exponent), which is also the decimal
/// that JSON Schema validators reason about. Parsing that text with the string rules therefore
/// treats the number `0.3` exactly like the string `"0.3"`, with no binary rounding noise.
fn float_digits(value: f64) -> Result<String, UnitProblem> {
    if value.is_nan() {
        Err(UnitProblem::NotANumber)
    } else if value < 0.0 {
        Err(UnitProblem::Negative)
    } else if value.is_infinite() {
        Err(UnitProblem::TooLarge)
    } else {
        // `abs` turns -0.0, which JSON Schema's `"minimum": 0` accepts, into "0" rather than "-0".
        Ok(format!("{}", value.abs()))
    }
}

/// Parses an unsigned integer written with ASCII digits only.
fn parse_whole(text: &str) -> Result<u64, UnitProblem> {
    if text.is_empty() || !text.bytes().all(|digit| digit.is_ascii_digit()) {
        return Err(UnitProblem::Malformed);
    }
    text.bytes().try_fold(0_u64, |total, digit| {
        total
            .checked_mul(10)
            .and_then(|total| total.checked_add(u64::from(digit - b'0')))
            .ok_or(UnitProblem::TooLarge)
    })
}

/// Whether `text` is a valid value written with a leading minus sign, so that `"-5s"` is
/// reported as negative rather than as malformed.
/// What a unit's text parser returns: the value, or the problem and its explanation.
type ParseText<T> = Result<T, (UnitProblem, Cow<'static, str>)>;

/// Parses `input` with `parse_text`; a value that would be valid without its leading `-` is
/// reported as negative (`negative` says why that is not allowed) rather than as malformed.
fn parse_unit<T>(
    input: &str,
    kind: UnitKind,
    negative: &'static str,
    parse_text: fn(&str) -> ParseText<T>,
) -> Result<T, UnitError> {
    let text = trim_whitespace(input);
    parse_text(text).map_err(|(problem, detail)| {
        let (problem, detail) = if is_negated(text, |rest| parse_text(rest).is_ok()) {
            (UnitProblem::Negative, negative.into())
        } else {
            (problem, detail)
        };
        UnitError::new(kind, problem, Found::Text(input), detail)
    })
}

fn is_negated(text: &str, is_valid: impl Fn(&str) -> bool) -> bool {
    text.strip_prefix('-').is_some_and(is_valid)
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Duration units: spelling, length in nanoseconds and the decimal places that stay within
/// nanosecond resolution. `µs` (micro sign) and `μs` (Greek mu) are both accepted because Go
/// prints the first and people type either.
const DURATION_UNITS: [(&str, u128, usize); 10] = [
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

const DURATION_UNIT_LIST: &str = "ns, us, ms, s, m, h, d, w";

const DURATION_PRECISION_RULE: &str = "durations have nanosecond resolution, so ns takes no \
     decimal places, us at most 3, ms at most 6, and s, m, h, d and w at most 9";

fn duration_unit(name: &str) -> Option<(u128, usize)> {
    DURATION_UNITS
        .iter()
        .find(|(unit, _, _)| *unit == name)
        .map(|&(_, nanos, places)| (nanos, places))
}

/// Why a sequence of duration components could not be read; [`Duration`] and [`Rate`] word
/// these differently.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ComponentIssue {
    Malformed,
    /// The number that has no unit.
    MissingUnit(String),
    /// The unknown unit.
    UnknownUnit(String),
    /// The component that is finer than a nanosecond.
    TooPrecise(String),
    TooLarge,
}

/// Reads Go-style components such as `1h30m` or `1.5s` into nanoseconds.
///
/// Components may come in any order and repeat, as in Go's `time.ParseDuration` and therefore
/// vegeta, so that anything those tools print or accept is read the same way here.
fn parse_components(text: &str) -> Result<u128, ComponentIssue> {
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
fn std_from_nanos(nanos: u128) -> Option<std::time::Duration> {
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).ok()?;
    let subsec = u32::try_from(nanos % NANOS_PER_SECOND).ok()?;
    Some(std::time::Duration::new(seconds, subsec))
}

/// Writes `whole`, then `fraction` (a value below `10^places`) as decimal places without
/// trailing zeros, then `unit`.
fn write_decimal(
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
pub struct Duration(std::time::Duration);

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
            let (problem, detail): (UnitProblem, Cow<'static, str>) = match issue {
                ComponentIssue::Malformed => (UnitProblem::Malformed, duration_malformed().into()),
                ComponentIssue::MissingUnit(number) => (
                    UnitProblem::MissingUnit,
                    format!(
                        "the number {number} needs a unit ({DURATION_UNIT_LIST}), such as \
                         {number}s; only 0 may be written without one, and a number outside \
                         quotes is read as seconds"
                    )
                    .into(),
                ),
                ComponentIssue::UnknownUnit(unit) => (
                    UnitProblem::UnknownUnit,
                    format!(
                        "unknown unit {unit:?}; expected one of {DURATION_UNIT_LIST}, such as \
                         30s, 5m or 1h30m"
                    )
                    .into(),
                ),
                ComponentIssue::TooPrecise(component) => (
                    UnitProblem::TooPrecise,
                    format!("{component} is finer than a nanosecond; {DURATION_PRECISION_RULE}")
                        .into(),
                ),
                ComponentIssue::TooLarge => (UnitProblem::TooLarge, duration_too_large().into()),
            };
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

fn duration_malformed() -> String {
    format!("expected a number followed by a unit ({DURATION_UNIT_LIST}), such as 30s, 5m or 1h30m")
}

fn duration_too_large() -> &'static str {
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

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{DURATION_EXPECTATION}, or a number of seconds")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                Duration::parse(text).map_err(E::custom)
            }

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
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

impl JsonSchema for Duration {
    inline_unit_schema!(Duration);

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number"],
            "pattern": DURATION_PATTERN,
            "minimum": 0,
            "examples": ["30s", "5m", "1h30m"],
        })
    }
}

const CPU_SYNTAX: &str =
    "expected a number of cores, such as 2 or 0.5, or of millicores with the unit m, such as 250m";

const CPU_PRECISION_RULE: &str = "CPU is allocated in whole millicores, so cores take at most 3 \
     decimal places (0.001 cores is 1m) and millicores none";

/// An amount of CPU, held in millicores (thousandths of a core) as Kubernetes does.
///
/// Reads Kubernetes spellings: cores as `2`, `0.5` or `1.25`, millicores as `250m`, and JSON or
/// YAML numbers as cores. Precision finer than a millicore (`0.0001`, `1.5m`) is an error rather
/// than silently rounded, because Kubernetes would round it up and the optimizer would then see a
/// different value from the one it set.
///
/// The canonical spelling is whole cores when the amount is a whole number of cores (`2`, `0`),
/// and millicores otherwise (`250m`, `1500m`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cpu(u64);

impl Cpu {
    /// An amount given in millicores.
    pub const fn from_millicores(millicores: u64) -> Self {
        Self(millicores)
    }

    /// The amount in millicores.
    pub const fn millicores(&self) -> u64 {
        self.0
    }

    /// The amount in cores, with the precision of an `f64`.
    pub fn cores(&self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// An amount given in cores, exactly as the number form of a config value is read: the
    /// decimal the `f64` prints as must have at most 3 decimal places (`0.25` works, `0.0001`
    /// fails). Fails on NaN, negative and too large values too.
    pub fn from_cores(cores: f64) -> Result<Self, UnitError> {
        let found = || Found::Number(cores.to_string());
        let digits = float_digits(cores).map_err(|problem| {
            let detail = match problem {
                UnitProblem::NotANumber => "expected a number of cores",
                UnitProblem::Negative => "CPU quantities cannot be negative",
                _ => cpu_too_large(),
            };
            UnitError::new(UnitKind::Cpu, problem, found(), detail)
        })?;
        let number = Decimal::parse_exact(&digits).ok_or_else(|| {
            UnitError::new(
                UnitKind::Cpu,
                UnitProblem::TooLarge,
                found(),
                cpu_too_large(),
            )
        })?;
        Self::from_decimal(number, 1000, 3)
            .map_err(|(problem, detail)| UnitError::new(UnitKind::Cpu, problem, found(), detail))
    }

    fn from_decimal(
        number: Decimal<'_>,
        unit: u128,
        places: usize,
    ) -> Result<Self, (UnitProblem, &'static str)> {
        if number.exceeds_places(places) {
            return Err((UnitProblem::TooPrecise, CPU_PRECISION_RULE));
        }
        number
            .scale(unit)
            .and_then(|millicores| u64::try_from(millicores).ok())
            .map(Self)
            .ok_or((UnitProblem::TooLarge, cpu_too_large()))
    }

    fn parse_text(text: &str) -> ParseText<Self> {
        let (number, unit) =
            Decimal::split_prefix(text).ok_or((UnitProblem::Malformed, CPU_SYNTAX.into()))?;
        let result = match unit {
            "" => Self::from_decimal(number, 1000, 3),
            "m" => Self::from_decimal(number, 1, 0),
            _ if unit.chars().all(char::is_alphabetic) => {
                return Err((
                    UnitProblem::UnknownUnit,
                    format!("unknown unit {unit:?}; {CPU_SYNTAX}").into(),
                ));
            }
            _ => return Err((UnitProblem::Malformed, CPU_SYNTAX.into())),
        };
        result.map_err(|(problem, detail)| (problem, detail.into()))
    }

    fn parse(input: &str) -> Result<Self, UnitError> {
        parse_unit(
            input,
            UnitKind::Cpu,
            "CPU quantities cannot be negative",
            Self::parse_text,
        )
    }
}

fn cpu_too_large() -> &'static str {
    "too large; the maximum is 18446744073709551615m"
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

/// `Cpu(250m)` rather than `Cpu(250)`, which reads as 250 cores.
impl fmt::Debug for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cpu").field(&format_args!("{self}")).finish()
    }
}

text_unit!(Cpu);

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CpuVisitor;

        impl Visitor<'_> for CpuVisitor {
            type Value = Cpu;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(CPU_EXPECTATION)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Cpu, E> {
                Cpu::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, cores: u64) -> Result<Cpu, E> {
                cores.checked_mul(1000).map(Cpu).ok_or_else(|| {
                    E::custom(UnitError::new(
                        UnitKind::Cpu,
                        UnitProblem::TooLarge,
                        Found::Number(cores.to_string()),
                        cpu_too_large(),
                    ))
                })
            }

            fn visit_i64<E: de::Error>(self, cores: i64) -> Result<Cpu, E> {
                match u64::try_from(cores) {
                    Ok(cores) => self.visit_u64(cores),
                    Err(_) => Err(E::custom(UnitError::new(
                        UnitKind::Cpu,
                        UnitProblem::Negative,
                        Found::Number(cores.to_string()),
                        "CPU quantities cannot be negative",
                    ))),
                }
            }

            fn visit_f64<E: de::Error>(self, cores: f64) -> Result<Cpu, E> {
                Cpu::from_cores(cores).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(CpuVisitor)
    }
}

impl JsonSchema for Cpu {
    inline_unit_schema!(Cpu);

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        // `multipleOf` rejects numbers finer than a millicore, as the deserializer does; JSON
        // Schema validators judge it on the number's decimal digits, as `Cpu::from_cores` does.
        json_schema!({
            "type": ["string", "number"],
            "pattern": CPU_PATTERN,
            "minimum": 0,
            "multipleOf": 0.001,
            "examples": ["250m", "0.5", "2"],
        })
    }
}

/// Memory units: spelling and size in bytes. Binary units are powers of 1024 and decimal units
/// powers of 1000, as in Kubernetes, where `K` is not a unit; it is accepted here as a decimal
/// kilo because people write `KB`.
const MEMORY_UNITS: [(&str, u128); 28] = [
    ("", 1),
    ("B", 1),
    ("Ki", 1 << 10),
    ("KiB", 1 << 10),
    ("Mi", 1 << 20),
    ("MiB", 1 << 20),
    ("Gi", 1 << 30),
    ("GiB", 1 << 30),
    ("Ti", 1 << 40),
    ("TiB", 1 << 40),
    ("Pi", 1 << 50),
    ("PiB", 1 << 50),
    ("Ei", 1 << 60),
    ("EiB", 1 << 60),
    ("k", 1_000),
    ("kB", 1_000),
    ("K", 1_000),
    ("KB", 1_000),
    ("M", 1_000_000),
    ("MB", 1_000_000),
    ("G", 1_000_000_000),
    ("GB", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("TB", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("PB", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
    ("EB", 1_000_000_000_000_000_000),
];

const MEMORY_SYNTAX: &str = "expected a number of bytes, optionally followed by a unit: Ki, Mi, \
     Gi, Ti, Pi, Ei (powers of 1024) or k, M, G, T, P, E (powers of 1000), each optionally \
     ending in B; such as 256Mi, 4Gi or 1G";

const GIB: u64 = 1 << 30;

/// An amount of memory or storage, held in bytes.
///
/// Reads Kubernetes-style sizes: a number with a binary unit (`256Mi`, `4Gi`, `1.5GiB`), a
/// decimal unit (`512M`, `1G`, `100k`, `1GB`), `B`, or no unit (bytes); JSON or YAML numbers
/// are bytes. Fractions are rounded to the nearest byte, halves up (`0.1Ki` is 102 bytes).
///
/// The canonical spelling uses the largest unit, binary or decimal, that divides the size
/// exactly (`256Mi`, `1536Mi`, `4Gi`, `512M`, `1k`), so that a size keeps the kind of unit it was
/// written in; failing that, plain bytes as a string (`"1500"`). Zero is `"0"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Memory(u64);

impl Memory {
    /// A size given in bytes.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The size in bytes.
    pub const fn bytes(&self) -> u64 {
        self.0
    }

    /// The size in gibibytes (2^30 bytes), with the precision of an `f64`.
    pub fn gib(&self) -> f64 {
        self.0 as f64 / GIB as f64
    }

    /// A size given in gibibytes, rounded to the nearest byte. Fails on NaN, negative and too
    /// large values.
    pub fn from_gib(gib: f64) -> Result<Self, UnitError> {
        Self::from_f64(gib, u128::from(GIB))
    }

    fn from_f64(value: f64, unit: u128) -> Result<Self, UnitError> {
        let found = || Found::Number(value.to_string());
        let digits = float_digits(value).map_err(|problem| {
            let detail = match problem {
                UnitProblem::NotANumber => "expected a number",
                UnitProblem::Negative => "memory sizes cannot be negative",
                _ => memory_too_large(),
            };
            UnitError::new(UnitKind::Memory, problem, found(), detail)
        })?;
        Decimal::parse_exact(&digits)
            .and_then(|number| number.scale(unit))
            .and_then(|bytes| u64::try_from(bytes).ok())
            .map(Self)
            .ok_or_else(|| {
                UnitError::new(
                    UnitKind::Memory,
                    UnitProblem::TooLarge,
                    found(),
                    memory_too_large(),
                )
            })
    }

    fn parse_text(text: &str) -> ParseText<Self> {
        let (number, unit) =
            Decimal::split_prefix(text).ok_or((UnitProblem::Malformed, MEMORY_SYNTAX.into()))?;
        let Some(&(_, unit_bytes)) = MEMORY_UNITS.iter().find(|(name, _)| *name == unit) else {
            if !unit.chars().all(char::is_alphabetic) {
                return Err((UnitProblem::Malformed, MEMORY_SYNTAX.into()));
            }
            let hint = if unit.starts_with('m') {
                " (m means thousandths in Kubernetes; for mebibytes write Mi)"
            } else {
                ""
            };
            return Err((
                UnitProblem::UnknownUnit,
                format!("unknown unit {unit:?}{hint}; {MEMORY_SYNTAX}").into(),
            ));
        };
        number
            .scale(unit_bytes)
            .and_then(|bytes| u64::try_from(bytes).ok())
            .map(Self)
            .ok_or((UnitProblem::TooLarge, memory_too_large().into()))
    }

    fn parse(input: &str) -> Result<Self, UnitError> {
        parse_unit(
            input,
            UnitKind::Memory,
            "memory sizes cannot be negative",
            Self::parse_text,
        )
    }
}

fn memory_too_large() -> &'static str {
    "too large; the maximum is 18446744073709551615 bytes (1 byte less than 16Ei)"
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Largest first; each binary unit is a little larger than its decimal namesake.
        const CANONICAL_UNITS: [(u64, &str); 12] = [
            (1 << 60, "Ei"),
            (1_000_000_000_000_000_000, "E"),
            (1 << 50, "Pi"),
            (1_000_000_000_000_000, "P"),
            (1 << 40, "Ti"),
            (1_000_000_000_000, "T"),
            (1 << 30, "Gi"),
            (1_000_000_000, "G"),
            (1 << 20, "Mi"),
            (1_000_000, "M"),
            (1 << 10, "Ki"),
            (1_000, "k"),
        ];
        let bytes = self.0;
        if bytes != 0
            && let Some((size, unit)) = CANONICAL_UNITS
                .iter()
                .find(|(size, _)| bytes.is_multiple_of(*size))
        {
            return write!(f, "{}{unit}", bytes / size);
        }
        write!(f, "{bytes}")
    }
}

/// `Memory(4Gi)` rather than `Memory(4294967296)`.
impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Memory")
            .field(&format_args!("{self}"))
            .finish()
    }
}

text_unit!(Memory);

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemoryVisitor;

        impl Visitor<'_> for MemoryVisitor {
            type Value = Memory;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{MEMORY_EXPECTATION}, or a number of bytes")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Memory, E> {
                Memory::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<Memory, E> {
                Ok(Memory(bytes))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<Memory, E> {
                u64::try_from(bytes).map(Memory).map_err(|_| {
                    E::custom(UnitError::new(
                        UnitKind::Memory,
                        UnitProblem::Negative,
                        Found::Number(bytes.to_string()),
                        "memory sizes cannot be negative",
                    ))
                })
            }

            fn visit_f64<E: de::Error>(self, bytes: f64) -> Result<Memory, E> {
                Memory::from_f64(bytes, 1).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(MemoryVisitor)
    }
}

impl JsonSchema for Memory {
    inline_unit_schema!(Memory);

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number"],
            "pattern": MEMORY_PATTERN,
            "minimum": 0,
            "examples": ["256Mi", "4Gi", "1G"],
        })
    }
}

const ZERO_PERIOD: &str = "the period after / must be longer than zero";

const RATE_SYNTAX: &str = "expected a whole number of requests, optionally followed by / and a \
     period, such as 50/1s, 50/s, 100/1m, or 50 for 50 per second; 0 or infinity means unlimited";

/// A request rate in the form of vegeta's `-rate` flag: a number of requests per period.
///
/// Reads `50/1s`, `50/s` (a bare unit means one of it), `100/1m`, `3/500ms`, `50` (per second)
/// and the number `50`. The period is any [`Duration`] spelling except zero. `0` (with any
/// period), the number `0` and `infinity` mean *unlimited*: send as fast as possible, which is
/// what vegeta does with a rate of 0.
///
/// The canonical spelling is `requests/period` with the period spelled as a canonical
/// [`Duration`] (`50/1s`, `3/500ms`), and `0` for unlimited. Rates compare as written: `50/1s`
/// and `100/2s` are different values, since they print differently, although they send
/// requests at the same pace; compare [`interval`](Self::interval) to compare paces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    requests: u64,
    per: Duration,
}

impl Rate {
    /// As fast as possible.
    pub const UNLIMITED: Self = Self {
        requests: 0,
        per: Duration::from_secs(1),
    };

    /// `requests` per `per`; zero requests means [`Rate::UNLIMITED`]. Fails if `per` is zero,
    /// because a period of no time has no rate.
    pub fn new(requests: u64, per: Duration) -> Result<Self, UnitError> {
        if per.is_zero() {
            let written = format!("{requests}/{per}");
            return Err(Self::zero_period(Found::Text(&written)));
        }
        Ok(Self::normalized(requests, per))
    }

    /// Every unlimited rate is the same value, whatever period it was written with.
    fn normalized(requests: u64, per: Duration) -> Self {
        if requests == 0 {
            Self::UNLIMITED
        } else {
            Self { requests, per }
        }
    }

    /// The number of requests per [`per`](Self::per); 0 when unlimited.
    pub const fn requests(&self) -> u64 {
        self.requests
    }

    /// The period over which [`requests`](Self::requests) are sent; one second when unlimited.
    pub const fn per(&self) -> Duration {
        self.per
    }

    /// Whether requests are sent as fast as possible.
    pub const fn is_unlimited(&self) -> bool {
        self.requests == 0
    }

    /// Requests per second; infinite when unlimited.
    pub fn per_second(&self) -> f64 {
        if self.is_unlimited() {
            f64::INFINITY
        } else {
            self.requests as f64 / self.per.as_secs_f64()
        }
    }

    /// The time between two requests, truncated to whole nanoseconds as vegeta does, or `None`
    /// when unlimited. Rates above one request per nanosecond give zero.
    pub fn interval(&self) -> Option<std::time::Duration> {
        if self.is_unlimited() {
            return None;
        }
        std_from_nanos(self.per.as_std().as_nanos() / u128::from(self.requests))
    }

    fn zero_period(found: Found<'_>) -> UnitError {
        UnitError::new(UnitKind::Rate, UnitProblem::ZeroPeriod, found, ZERO_PERIOD)
    }

    fn parse_text(text: &str) -> ParseText<Self> {
        if text == "infinity" {
            return Ok(Self::UNLIMITED);
        }
        let (requests_text, period_text) = match text.split_once('/') {
            Some((requests, period)) => (requests, Some(period)),
            None => (text, None),
        };
        let requests = parse_whole(requests_text).map_err(|problem| match problem {
            UnitProblem::TooLarge => (problem, rate_too_large().into()),
            _ if Decimal::parse_exact(requests_text).is_some() => (
                UnitProblem::NotWhole,
                "the number of requests must be a whole number".into(),
            ),
            _ => (UnitProblem::Malformed, RATE_SYNTAX.into()),
        })?;
        let per = match period_text {
            None => Duration::from_secs(1),
            Some(period) => Self::parse_period(period)?,
        };
        Ok(Self::normalized(requests, per))
    }

    fn parse_period(period: &str) -> Result<Duration, (UnitProblem, Cow<'static, str>)> {
        let nanos = match duration_unit(period) {
            Some((unit_nanos, _)) => unit_nanos,
            None => parse_components(period).map_err(|issue| match issue {
                ComponentIssue::Malformed => (
                    UnitProblem::Malformed,
                    "after / expected a period such as s, 1s, 500ms or 1m".into(),
                ),
                ComponentIssue::MissingUnit(number) => (
                    UnitProblem::MissingUnit,
                    format!(
                        "the period {number} after / needs a unit ({DURATION_UNIT_LIST}), such \
                         as {number}s"
                    )
                    .into(),
                ),
                ComponentIssue::UnknownUnit(unit) => (
                    UnitProblem::UnknownUnit,
                    format!(
                        "unknown unit {unit:?} in the period; expected one of \
                         {DURATION_UNIT_LIST}"
                    )
                    .into(),
                ),
                ComponentIssue::TooPrecise(component) => (
                    UnitProblem::TooPrecise,
                    format!("{component} is finer than a nanosecond; {DURATION_PRECISION_RULE}")
                        .into(),
                ),
                ComponentIssue::TooLarge => (UnitProblem::TooLarge, duration_too_large().into()),
            })?,
        };
        match std_from_nanos(nanos) {
            Some(per) if per.is_zero() => Err((UnitProblem::ZeroPeriod, ZERO_PERIOD.into())),
            Some(per) => Ok(Duration(per)),
            None => Err((UnitProblem::TooLarge, duration_too_large().into())),
        }
    }

    fn parse(input: &str) -> Result<Self, UnitError> {
        parse_unit(
            input,
            UnitKind::Rate,
            "rates cannot be negative",
            Self::parse_text,
        )
    }
}

fn rate_too_large() -> &'static str {
    "too large; the maximum is 18446744073709551615 requests per period"
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unlimited() {
            f.write_str("0")
        } else {
            write!(f, "{}/{}", self.requests, self.per)
        }
    }
}

text_unit!(Rate);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RateVisitor;

        impl Visitor<'_> for RateVisitor {
            type Value = Rate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "{RATE_EXPECTATION}, or a whole number of requests per second"
                )
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Rate, E> {
                Rate::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, requests: u64) -> Result<Rate, E> {
                Ok(Rate::normalized(requests, Duration::from_secs(1)))
            }

            fn visit_i64<E: de::Error>(self, requests: i64) -> Result<Rate, E> {
                match u64::try_from(requests) {
                    Ok(requests) => self.visit_u64(requests),
                    Err(_) => Err(E::custom(UnitError::new(
                        UnitKind::Rate,
                        UnitProblem::Negative,
                        Found::Number(requests.to_string()),
                        "rates cannot be negative",
                    ))),
                }
            }

            /// JSON Schema counts `50.0` as an integer, so it is accepted as 50 requests.
            fn visit_f64<E: de::Error>(self, requests: f64) -> Result<Rate, E> {
                // 2^64, the first value that `u64` cannot hold; exactly representable.
                const LIMIT: f64 = 18_446_744_073_709_551_616.0;
                let fail = |problem, detail| {
                    E::custom(UnitError::new(
                        UnitKind::Rate,
                        problem,
                        Found::Number(requests.to_string()),
                        detail,
                    ))
                };
                if requests.is_nan() {
                    Err(fail(
                        UnitProblem::NotANumber,
                        "expected a number of requests",
                    ))
                } else if requests < 0.0 {
                    Err(fail(UnitProblem::Negative, "rates cannot be negative"))
                } else if requests >= LIMIT {
                    Err(fail(UnitProblem::TooLarge, rate_too_large()))
                } else if requests.fract() != 0.0 {
                    Err(fail(
                        UnitProblem::NotWhole,
                        "the number of requests must be a whole number",
                    ))
                } else {
                    // Whole and within 0..2^64 (checked above), so the conversion is exact.
                    self.visit_u64(requests as u64)
                }
            }
        }

        deserializer.deserialize_any(RateVisitor)
    }
}

impl JsonSchema for Rate {
    inline_unit_schema!(Rate);

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "integer"],
            "pattern": RATE_PATTERN,
            "minimum": 0,
            "examples": ["50/1s", "100/1m", "0"],
        })
    }
}

/// What every [`Secret`] prints and serializes as.
pub const REDACTED: &str = "**********";

/// A value that must never be printed, such as an API token or a password.
///
/// It deserializes exactly like `T`, but `Debug`, `Display` and `Serialize` all produce
/// `**********`, so a secret cannot leak through logs, `servo config` output or error reports by
/// accident; code that needs the value asks for it by name with [`expose`](Self::expose). Its
/// JSON Schema is `T`'s with `"writeOnly": true`, which tells editors and documentation
/// generators not to echo it either.
///
/// If deserialization fails, the error does not repeat the input (serde's type errors quote the
/// offending value), so it only says that the secret is invalid.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value. Take care where it goes.
    pub const fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value. Take care where it goes.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self).map_err(|_| {
            de::Error::custom(
                "invalid secret (the value is not shown, to keep it secret): it is not the kind \
                 of value this setting expects; if it looks like a number or a boolean, put it \
                 in quotes",
            )
        })
    }
}

impl<T: JsonSchema> JsonSchema for Secret<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Secret_{}", T::schema_name()).into()
    }

    fn schema_id() -> Cow<'static, str> {
        format!("{}::Secret<{}>", module_path!(), T::schema_id()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = generator.subschema_for::<T>();
        schema.insert("writeOnly".to_owned(), true.into());
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};
    use std::time::Duration as Std;

    fn parse<T: FromStr<Err = UnitError>>(text: &str) -> Result<T, UnitError> {
        text.parse()
    }

    fn problem_of<T: FromStr<Err = UnitError> + fmt::Debug>(text: &str) -> UnitProblem {
        match parse::<T>(text) {
            Ok(value) => panic!("{text:?} should be rejected, but parsed as {value:?}"),
            Err(error) => error.problem(),
        }
    }

    #[test]
    fn duration_parses_go_vegeta_and_servox_spellings() {
        let cases: &[(&str, Std)] = &[
            ("0", Std::ZERO),
            ("0s", Std::ZERO),
            ("0h0m0s", Std::ZERO),
            ("5m", Std::from_secs(300)),
            ("1h30m", Std::from_secs(5_400)),
            ("1h30m0s", Std::from_secs(5_400)),
            ("30m1h", Std::from_secs(5_400)),
            ("250ms", Std::from_millis(250)),
            ("1.5s", Std::from_millis(1_500)),
            ("2d", Std::from_secs(172_800)),
            ("1w", Std::from_secs(604_800)),
            ("1w2d3h4m5s6ms7us8ns", Std::new(788_645, 6_007_008)),
            ("1.5us", Std::from_nanos(1_500)),
            ("1.5µs", Std::from_nanos(1_500)),
            ("1.5μs", Std::from_nanos(1_500)),
            ("7ns", Std::from_nanos(7)),
            ("1.000000001s", Std::new(1, 1)),
            ("1.0000000010000s", Std::new(1, 1)),
            ("0.5h", Std::from_secs(1_800)),
            (".5s", Std::from_millis(500)),
            ("5.s", Std::from_secs(5)),
            ("0.000000001w", Std::from_nanos(604_800)),
            ("  5m\n", Std::from_secs(300)),
            ("\t1h\r\n", Std::from_secs(3_600)),
            ("0005s", Std::from_secs(5)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse::<Duration>(text).map(|d| d.as_std()),
                Ok(*expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn duration_rejects_what_is_ambiguous_or_malformed() {
        let cases: &[(&str, UnitProblem)] = &[
            ("", UnitProblem::Malformed),
            ("   ", UnitProblem::Malformed),
            ("90", UnitProblem::MissingUnit),
            ("1h30", UnitProblem::MissingUnit),
            ("5 minutes", UnitProblem::Malformed),
            ("1h 30m", UnitProblem::Malformed),
            ("5min", UnitProblem::UnknownUnit),
            ("5M", UnitProblem::UnknownUnit),
            ("1y", UnitProblem::UnknownUnit),
            ("-5s", UnitProblem::Negative),
            ("+5s", UnitProblem::Malformed),
            ("s", UnitProblem::Malformed),
            (".s", UnitProblem::Malformed),
            ("1..5s", UnitProblem::Malformed),
            ("1.5ns", UnitProblem::TooPrecise),
            ("1.0001us", UnitProblem::TooPrecise),
            ("0.0000000001s", UnitProblem::TooPrecise),
            ("0.0000000001m", UnitProblem::TooPrecise),
            ("1e3s", UnitProblem::UnknownUnit),
            ("٣s", UnitProblem::Malformed),
            ("18446744073709551616s", UnitProblem::TooLarge),
            (
                "99999999999999999999999999999999999999999w",
                UnitProblem::TooLarge,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(problem_of::<Duration>(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn duration_errors_say_what_was_found_and_what_was_expected() {
        let message = |text: &str| parse::<Duration>(text).map_err(|e| e.to_string());
        assert_eq!(
            message("5 minutes"),
            Err(
                "invalid duration \"5 minutes\": expected a number followed by a unit (ns, us, \
                 ms, s, m, h, d, w), such as 30s, 5m or 1h30m"
                    .to_owned()
            )
        );
        assert_eq!(
            message("90"),
            Err(
                "invalid duration \"90\": the number 90 needs a unit (ns, us, ms, s, m, h, d, \
                 w), such as 90s; only 0 may be written without one, and a number outside \
                 quotes is read as seconds"
                    .to_owned()
            )
        );
        assert_eq!(
            message("5min"),
            Err(
                "invalid duration \"5min\": unknown unit \"min\"; expected one of ns, us, ms, s, \
                 m, h, d, w, such as 30s, 5m or 1h30m"
                    .to_owned()
            )
        );
        assert_eq!(
            message("-5s"),
            Err("invalid duration \"-5s\": durations cannot be negative".to_owned())
        );
        assert_eq!(
            message("1.5ns"),
            Err(
                "invalid duration \"1.5ns\": 1.5ns is finer than a nanosecond; durations have \
                 nanosecond resolution, so ns takes no decimal places, us at most 3, ms at most \
                 6, and s, m, h, d and w at most 9"
                    .to_owned()
            )
        );
    }

    #[test]
    fn errors_escape_and_shorten_the_input() {
        let error = parse::<Duration>("\u{1b}[2J")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err(format!(
                "invalid duration \"\\u{{1b}}[2J\": {}",
                duration_malformed()
            ))
        );
        let long = "x".repeat(1_000);
        let message = parse::<Duration>(&long)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err(format!(
                "invalid duration \"{}…\": {}",
                "x".repeat(64),
                duration_malformed()
            ))
        );
    }

    #[test]
    fn duration_display_is_canonical() {
        let cases: &[(Std, &str)] = &[
            (Std::ZERO, "0s"),
            (Std::from_secs(5_400), "1h30m"),
            (Std::from_millis(250), "250ms"),
            (Std::from_millis(1_500), "1.5s"),
            (Std::from_secs(90), "1m30s"),
            (Std::from_secs(3_600), "1h"),
            (Std::from_secs(691_200), "1w1d"),
            (Std::new(3_600, 250_000_000), "1h250ms"),
            (Std::new(3_601, 500_000_000), "1h1.5s"),
            (Std::new(1, 1), "1.000000001s"),
            (Std::from_nanos(1_500), "1.5us"),
            (Std::from_nanos(1_000_001), "1.000001ms"),
            (Std::from_nanos(7), "7ns"),
            (Std::MAX, "30500568904943w7h15.999999999s"),
        ];
        for (duration, expected) in cases {
            assert_eq!(
                Duration::from(*duration).to_string(),
                *expected,
                "{duration:?}"
            );
        }
    }

    #[test]
    fn duration_reads_numbers_as_seconds() {
        let read = |value: Value| serde_json::from_value::<Duration>(value).map(|d| d.as_std());
        assert_eq!(read(json!(90)).ok(), Some(Std::from_secs(90)));
        assert_eq!(read(json!(1.5)).ok(), Some(Std::from_millis(1_500)));
        assert_eq!(read(json!(0)).ok(), Some(Std::ZERO));
        assert_eq!(read(json!(-0.0)).ok(), Some(Std::ZERO));
        assert_eq!(read(json!(0.1 + 0.2)).ok(), Some(Std::from_millis(300)));
        assert_eq!(read(json!(1e-10)).ok(), Some(Std::ZERO));
        assert_eq!(read(json!(5e-10)).ok(), Some(Std::from_nanos(1)));
        assert_eq!(read(json!("5m")).ok(), Some(Std::from_secs(300)));
        let negative = read(json!(-1)).map_err(|e| e.to_string());
        assert_eq!(
            negative,
            Err("invalid duration -1: durations cannot be negative".to_owned())
        );
        let huge = read(json!(1e20)).map_err(|e| e.to_string());
        assert_eq!(
            huge,
            Err(format!(
                "invalid duration 100000000000000000000: {}",
                duration_too_large()
            ))
        );
        let boolean = read(json!(true)).map_err(|e| e.to_string());
        assert_eq!(
            boolean,
            Err(
                "invalid type: boolean `true`, expected a duration such as 30s, 5m or 1h30m, \
                 or a number of seconds"
                    .to_owned()
            )
        );
    }

    #[test]
    fn duration_from_secs_f64_rejects_what_is_not_a_duration() {
        let problem = |seconds: f64| Duration::from_secs_f64(seconds).map_err(|e| e.problem());
        assert_eq!(problem(f64::NAN), Err(UnitProblem::NotANumber));
        assert_eq!(problem(-0.5), Err(UnitProblem::Negative));
        assert_eq!(problem(f64::INFINITY), Err(UnitProblem::TooLarge));
        assert_eq!(
            problem(18_446_744_073_709_551_616.0),
            Err(UnitProblem::TooLarge)
        );
        assert_eq!(
            Duration::from_secs_f64(2.5).map(|d| d.as_std()),
            Ok(Std::from_millis(2_500))
        );
    }

    #[test]
    fn duration_conversions_and_accessors() {
        let duration = Duration::from_millis(1_500);
        assert_eq!(duration.as_secs_f64(), 1.5);
        assert!(!duration.is_zero());
        assert!(Duration::ZERO.is_zero());
        assert_eq!(Duration::default(), Duration::ZERO);
        assert_eq!(Std::from(Duration::from_secs(3)), Std::from_secs(3));
        assert!(Duration::from_secs(59) < Duration::from_secs(60));
        assert_eq!(
            serde_json::to_value(Duration::from_secs(5_400)).ok(),
            Some(json!("1h30m"))
        );
    }

    #[test]
    fn cpu_parses_kubernetes_quantities() {
        let cases: &[(&str, u64)] = &[
            ("250m", 250),
            ("2", 2_000),
            ("0.5", 500),
            ("1.25", 1_250),
            ("0", 0),
            ("0m", 0),
            ("1.5000", 1_500),
            ("2.0m", 2),
            (".5", 500),
            ("5.", 5_000),
            (" 100m ", 100),
            ("0.001", 1),
        ];
        for (text, millicores) in cases {
            assert_eq!(
                parse::<Cpu>(text).map(|c| c.millicores()),
                Ok(*millicores),
                "{text:?}"
            );
        }
        let rejected: &[(&str, UnitProblem)] = &[
            ("0.0001", UnitProblem::TooPrecise),
            ("1.5m", UnitProblem::TooPrecise),
            ("-1", UnitProblem::Negative),
            ("2k", UnitProblem::UnknownUnit),
            ("250 m", UnitProblem::Malformed),
            ("", UnitProblem::Malformed),
            ("m", UnitProblem::Malformed),
            ("18446744073709552", UnitProblem::TooLarge),
        ];
        for (text, problem) in rejected {
            assert_eq!(problem_of::<Cpu>(text), *problem, "{text:?}");
        }
        assert_eq!(
            parse::<Cpu>("0.0001").map_err(|e| e.to_string()),
            Err(
                "invalid CPU quantity \"0.0001\": CPU is allocated in whole millicores, so \
                 cores take at most 3 decimal places (0.001 cores is 1m) and millicores none"
                    .to_owned()
            )
        );
    }

    #[test]
    fn cpu_display_and_numbers() {
        assert_eq!(Cpu::from_millicores(2_000).to_string(), "2");
        assert_eq!(Cpu::from_millicores(250).to_string(), "250m");
        assert_eq!(Cpu::from_millicores(1_500).to_string(), "1500m");
        assert_eq!(Cpu::from_millicores(0).to_string(), "0");
        assert_eq!(Cpu::from_millicores(250).cores(), 0.25);
        assert_eq!(format!("{:?}", Cpu::from_millicores(250)), "Cpu(250m)");
        let read = |value: Value| serde_json::from_value::<Cpu>(value).map(|c| c.millicores());
        assert_eq!(read(json!(0.5)).ok(), Some(500));
        assert_eq!(read(json!(2)).ok(), Some(2_000));
        assert_eq!(read(json!(0.3)).ok(), Some(300));
        assert_eq!(read(json!("250m")).ok(), Some(250));
        assert!(read(json!(0.0001)).is_err());
        assert!(read(json!(-1)).is_err());
        assert_eq!(Cpu::from_cores(1.25).map(|c| c.millicores()), Ok(1_250));
        assert_eq!(
            Cpu::from_cores(f64::NAN).map_err(|e| e.problem()),
            Err(UnitProblem::NotANumber)
        );
        assert_eq!(
            serde_json::to_value(Cpu::from_millicores(250)).ok(),
            Some(json!("250m"))
        );
    }

    #[test]
    fn memory_parses_binary_decimal_and_plain_sizes() {
        let cases: &[(&str, u64)] = &[
            ("256Mi", 256 << 20),
            ("4Gi", 4 << 30),
            ("1.5GiB", 3 << 29),
            ("512M", 512_000_000),
            ("1G", 1_000_000_000),
            ("100k", 100_000),
            ("100K", 100_000),
            ("1024", 1_024),
            ("64KiB", 64 << 10),
            ("1GB", 1_000_000_000),
            ("512B", 512),
            ("1Ei", 1 << 60),
            ("15.9Ei", 18_331_451_923_248_866_918),
            ("0", 0),
            ("0.1Ki", 102),
            ("0.5", 1),
            ("0.49", 0),
            (" 1Ti ", 1 << 40),
        ];
        for (text, bytes) in cases {
            assert_eq!(
                parse::<Memory>(text).map(|m| m.bytes()),
                Ok(*bytes),
                "{text:?}"
            );
        }
        let rejected: &[(&str, UnitProblem)] = &[
            ("256m", UnitProblem::UnknownUnit),
            ("1gi", UnitProblem::UnknownUnit),
            ("4 GB", UnitProblem::Malformed),
            ("-1Gi", UnitProblem::Negative),
            ("Gi", UnitProblem::Malformed),
            ("1e3", UnitProblem::Malformed),
            ("16Ei", UnitProblem::TooLarge),
        ];
        for (text, problem) in rejected {
            assert_eq!(problem_of::<Memory>(text), *problem, "{text:?}");
        }
        let message = parse::<Memory>("256m").map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err(format!(
                "invalid memory size \"256m\": unknown unit \"m\" (m means thousandths in \
                 Kubernetes; for mebibytes write Mi); {MEMORY_SYNTAX}"
            ))
        );
    }

    #[test]
    fn memory_display_and_numbers() {
        let cases: &[(u64, &str)] = &[
            (0, "0"),
            (256 << 20, "256Mi"),
            (1_536 << 20, "1536Mi"),
            (1 << 30, "1Gi"),
            (1_000, "1k"),
            (512_000_000, "512M"),
            (1_024_000, "1000Ki"),
            (4_096_000_000, "4096M"),
            (1 << 60, "1Ei"),
            (1_000_000_000_000_000_000, "1E"),
            (1_500, "1500"),
            (1, "1"),
            (u64::MAX, "18446744073709551615"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(Memory::from_bytes(*bytes).to_string(), *expected);
        }
        let read = |value: Value| serde_json::from_value::<Memory>(value).map(|m| m.bytes());
        assert_eq!(read(json!(1024)).ok(), Some(1_024));
        assert_eq!(read(json!(1.5)).ok(), Some(2));
        assert_eq!(read(json!("4Gi")).ok(), Some(4 << 30));
        assert!(read(json!(-1)).is_err());
        assert_eq!(Memory::from_gib(1.5).map(|m| m.bytes()), Ok(3 << 29));
        assert_eq!(Memory::from_bytes(3 << 29).gib(), 1.5);
        assert_eq!(format!("{:?}", Memory::from_bytes(4 << 30)), "Memory(4Gi)");
        assert_eq!(
            Memory::from_gib(-1.0).map_err(|e| e.problem()),
            Err(UnitProblem::Negative)
        );
    }

    #[test]
    fn rate_parses_vegeta_rates() {
        let cases: &[(&str, u64, Std)] = &[
            ("50/1s", 50, Std::from_secs(1)),
            ("50/s", 50, Std::from_secs(1)),
            ("100/1m", 100, Std::from_secs(60)),
            ("100/m", 100, Std::from_secs(60)),
            ("3/500ms", 3, Std::from_millis(500)),
            ("1/1h30m", 1, Std::from_secs(5_400)),
            ("2/1.5s", 2, Std::from_millis(1_500)),
            ("50", 50, Std::from_secs(1)),
            (" 50/1s\n", 50, Std::from_secs(1)),
            ("0", 0, Std::from_secs(1)),
            ("0/5m", 0, Std::from_secs(1)),
            ("infinity", 0, Std::from_secs(1)),
        ];
        for (text, requests, per) in cases {
            let rate = parse::<Rate>(text).map(|r| (r.requests(), r.per().as_std()));
            assert_eq!(rate, Ok((*requests, *per)), "{text:?}");
        }
        let rejected: &[(&str, UnitProblem)] = &[
            ("5/0s", UnitProblem::ZeroPeriod),
            ("5/0", UnitProblem::MissingUnit),
            ("5/0.0ms", UnitProblem::ZeroPeriod),
            ("0/0s", UnitProblem::ZeroPeriod),
            ("2.5/1s", UnitProblem::NotWhole),
            ("-5/1s", UnitProblem::Negative),
            ("50/", UnitProblem::Malformed),
            ("/1s", UnitProblem::Malformed),
            ("50 /1s", UnitProblem::Malformed),
            ("50/1x", UnitProblem::UnknownUnit),
            ("50/5", UnitProblem::MissingUnit),
            ("Infinity", UnitProblem::Malformed),
            ("50/1s/2s", UnitProblem::Malformed),
            ("18446744073709551616/1s", UnitProblem::TooLarge),
        ];
        for (text, problem) in rejected {
            assert_eq!(problem_of::<Rate>(text), *problem, "{text:?}");
        }
        assert_eq!(
            parse::<Rate>("5/0s").map_err(|e| e.to_string()),
            Err("invalid rate \"5/0s\": the period after / must be longer than zero".to_owned())
        );
    }

    #[test]
    fn rate_display_pacing_and_numbers() {
        let rate = |text: &str| parse::<Rate>(text).map(|r| r.to_string());
        assert_eq!(rate("50"), Ok("50/1s".to_owned()));
        assert_eq!(rate("50/s"), Ok("50/1s".to_owned()));
        assert_eq!(rate("3/500ms"), Ok("3/500ms".to_owned()));
        assert_eq!(rate("0/5m"), Ok("0".to_owned()));
        assert_eq!(rate("infinity"), Ok("0".to_owned()));

        let fifty = Rate::new(50, Duration::from_secs(1));
        assert_eq!(fifty.as_ref().map(|r| r.per_second()), Ok(50.0));
        assert_eq!(fifty.map(|r| r.interval()), Ok(Some(Std::from_millis(20))));
        assert_eq!(
            Rate::new(3, Duration::from_secs(1)).map(|r| r.interval()),
            Ok(Some(Std::from_nanos(333_333_333)))
        );
        assert_eq!(Rate::UNLIMITED.interval(), None);
        assert_eq!(Rate::UNLIMITED.per_second(), f64::INFINITY);
        assert!(Rate::UNLIMITED.is_unlimited());
        assert_eq!(Rate::new(0, Duration::from_secs(9)), Ok(Rate::UNLIMITED));
        assert_eq!(
            Rate::new(5, Duration::ZERO).map_err(|e| e.problem()),
            Err(UnitProblem::ZeroPeriod)
        );

        let read = |value: Value| serde_json::from_value::<Rate>(value).map(|r| r.to_string());
        assert_eq!(read(json!(50)).ok(), Some("50/1s".to_owned()));
        assert_eq!(read(json!(50.0)).ok(), Some("50/1s".to_owned()));
        assert_eq!(read(json!(0)).ok(), Some("0".to_owned()));
        assert_eq!(read(json!("100/1m")).ok(), Some("100/1m".to_owned()));
        assert_eq!(
            read(json!(2.5)).map_err(|e| e.to_string()),
            Err("invalid rate 2.5: the number of requests must be a whole number".to_owned())
        );
        assert!(read(json!(-1)).is_err());
        assert_eq!(serde_json::to_value(Rate::UNLIMITED).ok(), Some(json!("0")));
    }

    #[derive(Debug, Deserialize)]
    struct Credentials {
        token: Secret<String>,
    }

    #[test]
    fn secrets_are_never_printed() {
        let credentials: Result<Credentials, _> =
            serde_json::from_value(json!({ "token": "hunter2" }));
        let Ok(credentials) = credentials else {
            panic!("a string secret should deserialize: {credentials:?}");
        };
        assert_eq!(credentials.token.expose(), "hunter2");
        assert_eq!(
            format!("{credentials:?}"),
            "Credentials { token: ********** }"
        );
        assert_eq!(credentials.token.to_string(), "**********");
        assert_eq!(
            serde_json::to_value(&credentials.token).ok(),
            Some(json!("**********"))
        );
        assert_eq!(credentials.token.clone().into_inner(), "hunter2");
        assert_eq!(Secret::from("a"), Secret::new("a"));
        assert_ne!(Secret::from("a"), Secret::new("b"));

        let error = serde_json::from_value::<Credentials>(json!({ "token": 8675309 }))
            .map_err(|e| e.to_string());
        let Err(message) = error else {
            panic!("a number is not a string secret");
        };
        assert!(!message.contains("8675309"), "{message}");
        assert!(message.starts_with("invalid secret"), "{message}");
    }

    #[test]
    fn expectations_cover_every_pattern() {
        assert_eq!(
            expectation_for_pattern(DURATION_PATTERN),
            Some("a duration such as 30s, 5m or 1h30m")
        );
        assert_eq!(expectation_for_pattern(CPU_PATTERN), Some(CPU_EXPECTATION));
        assert_eq!(
            expectation_for_pattern(MEMORY_PATTERN),
            Some(MEMORY_EXPECTATION)
        );
        assert_eq!(
            expectation_for_pattern(RATE_PATTERN),
            Some(RATE_EXPECTATION)
        );
        assert_eq!(expectation_for_pattern("^[a-z]+$"), None);
    }

    #[test]
    fn pattern_errors_come_from_the_matching_parser() {
        let problem = |pattern: &str, text: &str| {
            error_for_pattern(pattern, text).map(|error| (error.kind(), error.problem()))
        };
        assert_eq!(
            problem(DURATION_PATTERN, "1.5ns"),
            Some((UnitKind::Duration, UnitProblem::TooPrecise))
        );
        assert_eq!(
            problem(CPU_PATTERN, "2k"),
            Some((UnitKind::Cpu, UnitProblem::UnknownUnit))
        );
        assert_eq!(
            problem(MEMORY_PATTERN, "-1Gi"),
            Some((UnitKind::Memory, UnitProblem::Negative))
        );
        assert_eq!(
            problem(RATE_PATTERN, "5/0s"),
            Some((UnitKind::Rate, UnitProblem::ZeroPeriod))
        );
        assert_eq!(problem(DURATION_PATTERN, "5m"), None);
        assert_eq!(problem("^[a-z]+$", "5"), None);
    }

    fn schema_of<T: JsonSchema>() -> Value {
        schemars::SchemaGenerator::default()
            .into_root_schema_for::<T>()
            .to_value()
    }

    #[derive(JsonSchema)]
    #[allow(dead_code, reason = "only the schema of this struct is used")]
    struct Settings {
        timeout: Option<Duration>,
        cpu: Cpu,
        memory: Option<Memory>,
        rate: Rate,
        token: Option<Secret<String>>,
        period: Secret<Duration>,
    }

    #[test]
    fn schemas_are_inline_single_typed_and_carry_the_patterns() {
        let schema = schema_of::<Settings>();
        let properties = &schema["properties"];
        assert_eq!(
            properties["timeout"]["type"],
            json!(["string", "number", "null"])
        );
        assert_eq!(properties["timeout"]["pattern"], json!(DURATION_PATTERN));
        assert_eq!(
            properties["timeout"]["examples"],
            json!(["30s", "5m", "1h30m"])
        );
        assert_eq!(properties["cpu"]["pattern"], json!(CPU_PATTERN));
        assert_eq!(
            properties["memory"]["type"],
            json!(["string", "number", "null"])
        );
        assert_eq!(properties["rate"]["type"], json!(["string", "integer"]));
        assert_eq!(
            properties["token"],
            json!({ "type": ["string", "null"], "writeOnly": true })
        );
        assert_eq!(properties["period"]["writeOnly"], json!(true));
        assert_eq!(properties["period"]["pattern"], json!(DURATION_PATTERN));
        assert!(!schema.to_string().contains("anyOf"), "{schema:#}");
        assert!(schema.get("$defs").is_none(), "{schema:#}");
    }

    fn validator_for<T: JsonSchema>() -> jsonschema::Validator {
        match jsonschema::validator_for(&schema_of::<T>()) {
            Ok(validator) => validator,
            Err(error) => panic!("the schema of {} is invalid: {error}", T::schema_name()),
        }
    }

    /// Validators for the property tests, compiled once rather than once per case.
    struct Validators {
        duration: jsonschema::Validator,
        cpu: jsonschema::Validator,
        memory: jsonschema::Validator,
        rate: jsonschema::Validator,
    }

    static VALIDATORS: std::sync::LazyLock<Validators> = std::sync::LazyLock::new(|| Validators {
        duration: validator_for::<Duration>(),
        cpu: validator_for::<Cpu>(),
        memory: validator_for::<Memory>(),
        rate: validator_for::<Rate>(),
    });

    fn assert_all_agree(input: &Value) {
        assert_agreement::<Duration>(&VALIDATORS.duration, input);
        assert_agreement::<Cpu>(&VALIDATORS.cpu, input);
        assert_agreement::<Memory>(&VALIDATORS.memory, input);
        assert_agreement::<Rate>(&VALIDATORS.rate, input);
    }

    /// Asserts that the schema and the deserializer agree about `input`, except for values too
    /// large for the type, which the schema cannot detect (see the module documentation).
    fn assert_agreement<T>(validator: &jsonschema::Validator, input: &Value)
    where
        T: DeserializeOwned + FromStr<Err = UnitError> + JsonSchema + fmt::Debug,
    {
        let schema_accepts = validator.is_valid(input);
        let deserialized = serde_json::from_value::<T>(input.clone());
        if let Value::String(text) = input {
            assert_eq!(
                deserialized.is_ok(),
                text.parse::<T>().is_ok(),
                "serde and FromStr disagree on {input}"
            );
            if let Err(error) = text.parse::<T>()
                && error.problem() == UnitProblem::TooLarge
            {
                assert!(
                    schema_accepts,
                    "{input} is too large, but the schema rejects it"
                );
                return;
            }
        }
        assert_eq!(
            schema_accepts,
            deserialized.is_ok(),
            "{}: schema {} {input} but the deserializer says {deserialized:?}",
            T::schema_name(),
            if schema_accepts { "accepts" } else { "rejects" },
        );
    }

    fn strings(texts: &[&str]) -> Vec<Value> {
        texts.iter().map(|text| json!(text)).collect()
    }

    fn common_corpus() -> Vec<Value> {
        let mut corpus = vec![
            json!(0),
            json!(1),
            json!(-0.0),
            json!(-1),
            json!(-0.5),
            json!(0.5),
            json!(1.25),
            json!(0.001),
            json!(0.0001),
            json!(0.1),
            json!(0.3),
            json!(0.1 + 0.2),
            json!(2.5),
            json!(50.0),
            json!(1e-7),
            json!(123_456_789),
            json!(null),
            json!(true),
            json!([]),
            json!({}),
        ];
        corpus.extend(strings(&[
            "",
            " ",
            "0",
            "00",
            "-0",
            "+0",
            ".",
            "0.",
            ".0",
            "1",
            "1.",
            ".5",
            "5.5",
            "-1",
            "1e3",
            "١",
            "0x10",
            "infinity",
            "Infinity",
            "1 ",
            " 1",
            "\t1\n",
            "\u{a0}1",
            "\u{feff}1",
            "1\u{2028}",
        ]));
        corpus
    }

    #[test]
    fn duration_schema_agrees_with_the_deserializer() {
        let validator = validator_for::<Duration>();
        let mut corpus = common_corpus();
        corpus.extend(strings(&[
            "5m",
            "1h30m",
            "250ms",
            "1.5s",
            "2d",
            "1w",
            "0s",
            "0ns",
            "1.5ns",
            "1.0ns",
            "1.ns",
            ".5ns",
            ".0ns",
            "1.5us",
            "1.5µs",
            "1.5μs",
            "1.0001us",
            "1.000100us",
            "1.5ms",
            "1.0000001ms",
            "1.0000010ms",
            "1.000000001s",
            "1.0000000001s",
            "1.00000000010s",
            "1.0000000000s",
            "0.000000001m",
            "0.0000000001h",
            "5.s",
            ".5s",
            "s",
            "m",
            "ms",
            "5min",
            "5M",
            "5S",
            "1y",
            "1mm",
            "90",
            "1h30",
            "5 m",
            "1h 30m",
            "-5s",
            "+5s",
            "5m\n",
            "  5m",
            "1h30m0s",
            "30s1h",
            "1s1s",
            "1..5s",
            "1.5.5s",
            "1e3s",
            "٣s",
            "5µ",
            "5 minutes",
            "0.0",
            "0s0",
            "99999999999999999999w",
        ]));
        for input in &corpus {
            assert_agreement::<Duration>(&validator, input);
        }
    }

    #[test]
    fn cpu_schema_agrees_with_the_deserializer() {
        let validator = validator_for::<Cpu>();
        let mut corpus = common_corpus();
        corpus.extend(strings(&[
            "250m",
            "2",
            "0.5",
            "1.25",
            "0.0001",
            "0.0010",
            "0.001",
            "1.5m",
            "1.0m",
            "1.m",
            ".0m",
            ".5m",
            "m",
            "2k",
            "2M",
            "2 m",
            "250mm",
            "-250m",
            "1.2345",
            "1.2340",
            "123456789.123",
            "99999999999999999999",
        ]));
        corpus.extend([json!(0.0005), json!(0.0015), json!(1.001), json!(12.3456)]);
        for input in &corpus {
            assert_agreement::<Cpu>(&validator, input);
        }
    }

    #[test]
    fn memory_schema_agrees_with_the_deserializer() {
        let validator = validator_for::<Memory>();
        let mut corpus = common_corpus();
        corpus.extend(strings(&[
            "256Mi", "4Gi", "1.5GiB", "512M", "1G", "100k", "100K", "1024", "64KiB", "1kB", "1KB",
            "1kiB", "1ki", "1B", "1iB", "1Bi", "1MB", "1Mb", "1mb", "256m", "1gi", "1Gi ", " 1Gi",
            "1 Gi", "Gi", "1.5", "0.1Ki", "-1Gi", "1e3", "1Ei", "16Ei", "1EB", "1PB", "1PiB",
            "1KiBB",
        ]));
        for input in &corpus {
            assert_agreement::<Memory>(&validator, input);
        }
    }

    #[test]
    fn rate_schema_agrees_with_the_deserializer() {
        let validator = validator_for::<Rate>();
        let mut corpus = common_corpus();
        corpus.extend(strings(&[
            "50/1s",
            "50/s",
            "100/1m",
            "3/500ms",
            "50",
            "0",
            "0/5s",
            "5/0s",
            "5/0",
            "0/0s",
            "5/0.0s",
            "5/0.000000001s",
            "5/0.0000000001s",
            "5/.5s",
            "5/1h30m",
            "5/1h0m",
            "5/0h1m",
            "50/",
            "/1s",
            "50/1x",
            "50/5",
            "2.5/1s",
            "-5/1s",
            "50 /1s",
            "50/ 1s",
            "50/1s ",
            "50/1s/2s",
            "infinity",
            "inf",
            "50/µs",
            "50/1μs",
            "50/min",
            "5/0s1s",
            "5/1s0s",
            "5/0s0ms",
        ]));
        corpus.extend([json!(18_446_744_073_709_551_615_u64)]);
        for input in &corpus {
            assert_agreement::<Rate>(&validator, input);
        }
    }

    #[test]
    fn schema_examples_are_valid_values() {
        fn check<T: JsonSchema + DeserializeOwned + fmt::Debug>() {
            let schema = schema_of::<T>();
            let validator = validator_for::<T>();
            let Some(examples) = schema["examples"].as_array() else {
                panic!("the schema of {} has no examples", T::schema_name());
            };
            for example in examples {
                assert!(validator.is_valid(example), "{example}");
                let value = serde_json::from_value::<T>(example.clone());
                assert!(value.is_ok(), "{example}: {value:?}");
            }
        }
        check::<Duration>();
        check::<Cpu>();
        check::<Memory>();
        check::<Rate>();
    }

    /// Strings built from pieces of every grammar here, so that random inputs are near misses
    /// rather than noise.
    fn near_misses() -> impl Strategy<Value = String> {
        const PIECES: &[&str] = &[
            "0",
            "1",
            "5",
            "9",
            "00",
            "10",
            "000",
            "123456789",
            ".",
            "-",
            "+",
            "/",
            " ",
            "\t",
            "\n",
            "e",
            "ns",
            "us",
            "µs",
            "μs",
            "ms",
            "s",
            "m",
            "h",
            "d",
            "w",
            "y",
            "x",
            "i",
            "B",
            "k",
            "K",
            "M",
            "G",
            "T",
            "P",
            "E",
            "Ki",
            "Mi",
            "Gi",
            "infinity",
        ];
        prop::collection::vec(prop::sample::select(PIECES), 0..7).prop_map(|parts| parts.concat())
    }

    fn any_json_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<u32>().prop_map(|n| json!(n)),
            any::<i32>().prop_map(|n| json!(n)),
            (0_u32..100_000, 0_i32..6)
                .prop_map(|(n, places)| json!(f64::from(n) / 10_f64.powi(places))),
            (-1e6..1e6_f64).prop_map(|n| json!(n)),
        ]
    }

    fn arbitrary_std_duration() -> impl Strategy<Value = Std> {
        prop_oneof![
            (any::<u64>(), 0..1_000_000_000_u32).prop_map(|(s, n)| Std::new(s, n)),
            (0..1_000_000_u64, 0..1_000_000_000_u32).prop_map(|(s, n)| Std::new(s, n)),
            (0..1_000_000_000_u64).prop_map(Std::from_nanos),
            (0..1_000_000_u64).prop_map(Std::from_millis),
        ]
    }

    proptest! {
        #[test]
        fn duration_display_round_trips(std in arbitrary_std_duration()) {
            let duration = Duration::from(std);
            let text = duration.to_string();
            prop_assert_eq!(text.parse::<Duration>(), Ok(duration));
            let serialized = serde_json::to_value(duration).unwrap_or(Value::Null);
            prop_assert_eq!(serde_json::from_value::<Duration>(serialized).ok(), Some(duration));
        }

        #[test]
        fn cpu_display_round_trips(millicores in any::<u64>()) {
            let cpu = Cpu::from_millicores(millicores);
            prop_assert_eq!(cpu.to_string().parse::<Cpu>(), Ok(cpu));
        }

        #[test]
        fn memory_display_round_trips(bytes in prop_oneof![
            any::<u64>(),
            (0_u64..1 << 20, 0_u32..5).prop_map(|(n, k)| n << (10 * k)),
            (0_u64..1_000_000, 0_u32..5).prop_map(|(n, k)| n * 1000_u64.pow(k)),
        ]) {
            let memory = Memory::from_bytes(bytes);
            prop_assert_eq!(memory.to_string().parse::<Memory>(), Ok(memory));
        }

        #[test]
        fn rate_display_round_trips(requests in any::<u64>(), per in arbitrary_std_duration()) {
            if let Ok(rate) = Rate::new(requests, Duration::from(per)) {
                prop_assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
            } else {
                prop_assert!(per.is_zero());
            }
        }

        #[test]
        fn schemas_agree_on_near_misses(text in near_misses()) {
            assert_all_agree(&json!(text));
        }

        #[test]
        fn schemas_agree_on_numbers(input in any_json_number()) {
            assert_all_agree(&input);
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,24}") {
            let _ = text.parse::<Duration>();
            let _ = text.parse::<Cpu>();
            let _ = text.parse::<Memory>();
            let _ = text.parse::<Rate>();
        }
    }
}
