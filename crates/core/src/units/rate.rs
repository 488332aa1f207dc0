//! [`Rate`]: a request rate, vegeta's `50/1s`.

use super::*;

pub(super) const ZERO_PERIOD: &str = "the period after / must be longer than zero";

pub(super) const RATE_SYNTAX: &str = "expected a whole number of requests, optionally followed by / and a \
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

const PERIOD_WORDING: ComponentWording = ComponentWording {
    malformed: || "after / expected a period such as s, 1s, 500ms or 1m".into(),
    missing_unit: |number| {
        format!(
            "the period {number} after / needs a unit ({DURATION_UNIT_LIST}), such as {number}s"
        )
    },
    unknown_unit: |unit| {
        format!("unknown unit {unit:?} in the period; expected one of {DURATION_UNIT_LIST}")
    },
};

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
            None => parse_components(period).map_err(|issue| issue.explain(&PERIOD_WORDING))?,
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

pub(super) fn rate_too_large() -> &'static str {
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

deserialize_unit!(Rate, "{RATE_EXPECTATION}, or a whole number of requests per second";
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
);

unit_schema!(Rate, types: ["string", "integer"], "examples": ["50/1s", "100/1m", "0"]);
