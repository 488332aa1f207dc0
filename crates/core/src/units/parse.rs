//! The grammar every unit shares: whitespace, decimal numbers, unit suffixes, canonical printing.

use super::*;

/// Leading and trailing whitespace accepted around every value; the `[ \t\n\r]` of the patterns.
pub(super) fn trim_whitespace(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r'])
}

/// A non-negative decimal number as written, split into its integer and fraction digits.
/// Either part may be empty, but not both (`"5."` and `".5"` are numbers, `"."` is not).
#[derive(Debug, Clone, Copy)]
pub(super) struct Decimal<'a> {
    integer: &'a str,
    fraction: &'a str,
}

impl<'a> Decimal<'a> {
    /// Splits the longest number off the front of `text`, returning it and the rest.
    pub(super) fn split_prefix(text: &'a str) -> Option<(Self, &'a str)> {
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
    pub(super) fn parse_exact(text: &'a str) -> Option<Self> {
        match Self::split_prefix(text) {
            Some((number, "")) => Some(number),
            _ => None,
        }
    }

    /// Whether the number has non-zero digits beyond `places` decimal places.
    pub(super) fn exceeds_places(&self, places: usize) -> bool {
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
    pub(super) fn scale(&self, unit: u128) -> Option<u128> {
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
pub(super) fn float_digits(value: f64) -> Result<String, UnitProblem> {
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
pub(super) fn parse_whole(text: &str) -> Result<u64, UnitProblem> {
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
pub(super) type ParseText<T> = Result<T, (UnitProblem, Cow<'static, str>)>;

/// Parses `input` with `parse_text`; a value that would be valid without its leading `-` is
/// reported as negative (`negative` says why that is not allowed) rather than as malformed.
pub(super) fn parse_unit<T>(
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

pub(super) fn is_negated(text: &str, is_valid: impl Fn(&str) -> bool) -> bool {
    text.strip_prefix('-').is_some_and(is_valid)
}
