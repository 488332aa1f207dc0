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

/// A unit's `Deserialize`: strings through the type's parser, numbers through the `visit_*`
/// methods given (the machine spellings), and what is expected in the type's own words.
macro_rules! deserialize_unit {
    ($type:ident, $expecting:literal; $($visit:tt)*) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct UnitVisitor;

                impl Visitor<'_> for UnitVisitor {
                    type Value = $type;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, $expecting)
                    }

                    fn visit_str<E: de::Error>(self, text: &str) -> Result<$type, E> {
                        $type::parse(text).map_err(E::custom)
                    }

                    $($visit)*
                }

                deserializer.deserialize_any(UnitVisitor)
            }
        }
    };
}

/// A unit's `JsonSchema`: inlined and named as [`inline_unit_schema`] says, its `pattern` from
/// the type's [`UnitSyntax`], never negative, plus the type's own keywords (`examples`, ...).
macro_rules! unit_schema {
    ($type:ident, types: $types:tt, $($key:literal: $value:tt),* $(,)?) => {
        impl JsonSchema for $type {
            inline_unit_schema!($type);

            fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": $types,
                    "pattern": $type::SYNTAX.pattern,
                    "minimum": 0,
                    $($key: $value,)*
                })
            }
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

/// A unit type's text syntax, as config validation uses it: the schema `pattern` that editors
/// check, what a value looks like in words, and the type's own parser, which says precisely why a
/// text is not a value (`m` is milli, not mebi; finer than a nanosecond) where a regular
/// expression can only say that it does not match.
#[derive(Debug)]
pub struct UnitSyntax {
    /// The type's name in messages and in the validator's internal schema (`duration`).
    pub name: &'static str,
    /// The `pattern` of the type's published schema.
    pub pattern: &'static str,
    /// What a valid value looks like, for "expected: ..." in diagnostics.
    pub expectation: &'static str,
    parse: fn(&str) -> Result<(), UnitError>,
}

impl UnitSyntax {
    /// Why `text` is not a value of this type, exactly when [`UnitSyntax::pattern`] rejects it:
    /// a value too large for the type matches the pattern (see the module documentation), so it
    /// is left to the deserializer here too, and the validator and editors keep agreeing.
    pub fn check(&self, text: &str) -> Result<(), UnitError> {
        match (self.parse)(text) {
            Err(error) if error.problem() != UnitProblem::TooLarge => Err(error),
            _ => Ok(()),
        }
    }

    /// The syntax whose schema `pattern` this is; `None` for patterns from elsewhere.
    pub fn for_pattern(pattern: &str) -> Option<&'static UnitSyntax> {
        UNIT_SYNTAXES.iter().copied().find(|s| s.pattern == pattern)
    }

    /// The syntax called `name` ([`UnitSyntax::name`]).
    pub fn named(name: &str) -> Option<&'static UnitSyntax> {
        UNIT_SYNTAXES.iter().copied().find(|s| s.name == name)
    }
}

fn parses<T: FromStr<Err = UnitError>>(text: &str) -> Result<(), UnitError> {
    text.parse::<T>().map(drop)
}

/// Every unit type that has a text syntax.
pub const UNIT_SYNTAXES: [&UnitSyntax; 4] = [
    &Duration::SYNTAX,
    &Cpu::SYNTAX,
    &Memory::SYNTAX,
    &Rate::SYNTAX,
];

/// Declares `$type::SYNTAX`, a [`UnitSyntax`] made of the type's pattern, expectation and parser.
macro_rules! unit_syntax {
    ($type:ident, $name:literal, $pattern:ident, $expectation:ident) => {
        impl $type {
            /// This type's text syntax, for config validation.
            pub const SYNTAX: UnitSyntax = UnitSyntax {
                name: $name,
                pattern: $pattern,
                expectation: $expectation,
                parse: parses::<$type>,
            };
        }
    };
}

unit_syntax!(Duration, "duration", DURATION_PATTERN, DURATION_EXPECTATION);
unit_syntax!(Cpu, "cpu", CPU_PATTERN, CPU_EXPECTATION);
unit_syntax!(Memory, "memory", MEMORY_PATTERN, MEMORY_EXPECTATION);
unit_syntax!(Rate, "rate", RATE_PATTERN, RATE_EXPECTATION);

mod cpu;
mod duration;
mod error;
mod memory;
mod parse;
mod rate;
mod secret;
#[cfg(test)]
mod tests;

pub use cpu::{Cpu, CpuUsage};
pub use duration::Duration;
pub use error::{UnitError, UnitKind, UnitProblem};
pub use memory::Memory;
pub use rate::Rate;
pub use secret::{REDACTED, Secret};

use duration::*;
use error::*;
use parse::*;
