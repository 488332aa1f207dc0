//! Objectives and SLO constraints: small arithmetic expressions over metrics and settings.
//!
//! `minimize: main.cpu * 0.0317 + main.memory * 0.0042` or `latency_p99 < 50ms`. Identifiers are metric
//! names (`latency_p99`) or `component.setting` (CPU in cores, memory in GiB, as described). A
//! constraint's bound may carry a unit (`50ms`, `0.5%`, `2s`), converted to the metric's unit. A
//! bound may name the baseline (`latency_p99 <= 1.1 * baseline.latency_p99`,
//! `error_rate <= baseline.error_rate + 0.5%`): it becomes concrete once the baseline is measured.

use std::collections::BTreeMap;
use std::fmt;

use super::journal::RecordedReading;

/// An arithmetic expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Number(f64),
    Var(String),
    Neg(Box<Expr>),
    Binary(Box<Expr>, Op, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// Why an expression did not parse, with the character offset of the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message} at character {}", .offset + 1)]
pub struct ParseError {
    pub message: String,
    pub offset: usize,
}

/// Why an expression could not be evaluated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("`{0}` was not measured")]
    Missing(String),
    #[error("the result is not a finite number (division by zero?)")]
    NotFinite,
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let expr = parser.expr()?;
        match parser.tokens.get(parser.at) {
            None => Ok(expr),
            Some((offset, token)) => Err(ParseError {
                message: format!("unexpected `{token}`"),
                offset: *offset,
            }),
        }
    }

    /// The identifiers the expression reads.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out.dedup();
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Number(_) => {}
            Expr::Var(name) => {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
            Expr::Neg(e) => e.collect(out),
            Expr::Binary(a, _, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    pub fn eval(&self, vars: &BTreeMap<String, f64>) -> Result<f64, EvalError> {
        let value = match self {
            Expr::Number(n) => *n,
            Expr::Var(name) => *vars
                .get(name)
                .ok_or_else(|| EvalError::Missing(name.clone()))?,
            Expr::Neg(e) => -e.eval(vars)?,
            Expr::Binary(a, op, b) => {
                let (a, b) = (a.eval(vars)?, b.eval(vars)?);
                match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                }
            }
        };
        if value.is_finite() {
            Ok(value)
        } else {
            Err(EvalError::NotFinite)
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(n) => write!(f, "{n}"),
            Expr::Var(v) => f.write_str(v),
            Expr::Neg(e) => write!(f, "-({e})"),
            Expr::Binary(a, op, b) => {
                let op = match op {
                    Op::Add => "+",
                    Op::Sub => "-",
                    Op::Mul => "*",
                    Op::Div => "/",
                };
                write!(f, "({a} {op} {b})")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(f64, Option<String>),
    Ident(String),
    Symbol(char),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Number(n, Some(unit)) => write!(f, "{n}{unit}"),
            Token::Number(n, None) => write!(f, "{n}"),
            Token::Ident(s) => f.write_str(s),
            Token::Symbol(c) => write!(f, "{c}"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (offset, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit()))
        {
            let start = i;
            while i < chars.len() && (chars[i].1.is_ascii_digit() || chars[i].1 == '.') {
                i += 1;
            }
            // An exponent: 1e9, 2.5E-3.
            if i < chars.len()
                && matches!(chars[i].1, 'e' | 'E')
                && chars
                    .get(i + 1)
                    .is_some_and(|(_, d)| d.is_ascii_digit() || *d == '-' || *d == '+')
            {
                i += 2;
                while i < chars.len() && chars[i].1.is_ascii_digit() {
                    i += 1;
                }
            }
            let number: String = chars[start..i].iter().map(|(_, c)| c).collect();
            let value = number.parse::<f64>().map_err(|_| ParseError {
                message: format!("`{number}` is not a number"),
                offset,
            })?;
            let unit_start = i;
            while i < chars.len() && (chars[i].1.is_ascii_alphabetic() || chars[i].1 == '%') {
                i += 1;
            }
            let unit: String = chars[unit_start..i].iter().map(|(_, c)| c).collect();
            tokens.push((
                offset,
                Token::Number(value, (!unit.is_empty()).then_some(unit)),
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].1.is_ascii_alphanumeric() || matches!(chars[i].1, '_' | '.' | '-'))
            {
                // A `-` only continues a name when a letter follows (`my-app.cpu`), else it is minus.
                if chars[i].1 == '-'
                    && !chars
                        .get(i + 1)
                        .is_some_and(|(_, n)| n.is_ascii_alphabetic())
                {
                    break;
                }
                i += 1;
            }
            let name: String = chars[start..i].iter().map(|(_, c)| c).collect();
            tokens.push((offset, Token::Ident(name.trim_end_matches('.').to_string())));
        } else if "+-*/()<>=".contains(c) {
            tokens.push((offset, Token::Symbol(c)));
            i += 1;
        } else {
            return Err(ParseError {
                message: format!("unexpected character `{c}`"),
                offset,
            });
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.at)
            .map(|(o, _)| *o)
            .or_else(|| self.tokens.last().map(|(o, t)| o + t.to_string().len()))
            .unwrap_or(0)
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.term()?;
        while let Some(Token::Symbol(c @ ('+' | '-'))) = self.peek() {
            let op = if *c == '+' { Op::Add } else { Op::Sub };
            self.at += 1;
            left = Expr::Binary(Box::new(left), op, Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.factor()?;
        while let Some(Token::Symbol(c @ ('*' | '/'))) = self.peek() {
            let op = if *c == '*' { Op::Mul } else { Op::Div };
            self.at += 1;
            left = Expr::Binary(Box::new(left), op, Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, ParseError> {
        let offset = self.offset();
        let token = self.peek().cloned();
        self.at += 1;
        match token {
            Some(Token::Number(n, None)) => Ok(Expr::Number(n)),
            Some(Token::Number(n, Some(unit))) => Err(ParseError {
                message: format!(
                    "units (`{n}{unit}`) belong on a constraint's bound, not inside an expression"
                ),
                offset,
            }),
            Some(Token::Ident(name)) => Ok(Expr::Var(name)),
            Some(Token::Symbol('-')) => Ok(Expr::Neg(Box::new(self.factor()?))),
            Some(Token::Symbol('(')) => {
                let inner = self.expr()?;
                match self.peek() {
                    Some(Token::Symbol(')')) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err(ParseError {
                        message: "missing `)`".into(),
                        offset: self.offset(),
                    }),
                }
            }
            Some(other) => Err(ParseError {
                message: format!(
                    "expected a number, a metric or `component.setting`, found `{other}`"
                ),
                offset,
            }),
            None => Err(ParseError {
                message: "the expression ends too early".into(),
                offset,
            }),
        }
    }
}

/// How a constraint compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
}

/// An SLO: `latency_p99 < 50ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    pub text: String,
    pub left: Expr,
    pub comparison: Comparison,
    pub bound: f64,
    /// The bound's unit as written (`ms`, `%`), converted to the metric's unit at evaluation.
    pub unit: Option<String>,
    /// A bound relative to the baseline: `bound` (with `unit`) is then added to `factor` times the
    /// baseline's reading.
    pub baseline: Option<Relative>,
}

/// The relative part of a bound: `1.1 * baseline.latency_p99`.
#[derive(Clone, Debug, PartialEq)]
pub struct Relative {
    pub factor: f64,
    /// The metric the baseline read.
    pub metric: String,
    /// The baseline's reading of `metric`, once measured (see [`Constraint::resolve`]).
    pub reading: Option<RecordedReading>,
}

/// The prefix that names the baseline's reading of a metric on a bound's side.
const BASELINE: &str = "baseline.";

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, ParseError> {
        let (index, comparison, width) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| text.find(op).map(|i| (i, *op, op.len())))
            .map(|(i, op, w)| {
                let c = match op {
                    "<=" => Comparison::LessEqual,
                    ">=" => Comparison::GreaterEqual,
                    "<" => Comparison::Less,
                    _ => Comparison::Greater,
                };
                (i, c, w)
            })
            .ok_or(ParseError {
                message: "a constraint compares with <, <=, > or >=, such as `latency_p99 < 50ms`"
                    .into(),
                offset: 0,
            })?;
        let left = Expr::parse(&text[..index])?;
        let right_text = &text[index + width..];
        let tokens = tokenize(right_text).map_err(|e| ParseError {
            offset: e.offset + index + width,
            ..e
        })?;
        let right_error = || {
            ParseError {
            message: "the right side of a constraint is a number, with an optional unit (`50ms`, `0.5%`), or relative to the baseline (`1.1 * baseline.latency_p99`, `baseline.error_rate + 0.5%`)".into(),
            offset: index + width,
        }
        };
        fn named(t: &Token) -> Option<&str> {
            match t {
                Token::Ident(name) => name.strip_prefix(BASELINE).filter(|m| !m.is_empty()),
                _ => None,
            }
        }
        let relative_at = tokens.iter().position(|(_, t)| named(t).is_some());
        let (baseline, rest) = match relative_at {
            None => (None, tokens.as_slice()),
            Some(_) => {
                let (factor, metric, rest) = match tokens.as_slice() {
                    [
                        (_, Token::Number(f, None)),
                        (_, Token::Symbol('*')),
                        (_, b),
                        rest @ ..,
                    ]
                    | [
                        (_, b),
                        (_, Token::Symbol('*')),
                        (_, Token::Number(f, None)),
                        rest @ ..,
                    ] if named(b).is_some() => (*f, named(b), rest),
                    [(_, b), rest @ ..] if named(b).is_some() => (1.0, named(b), rest),
                    _ => return Err(right_error()),
                };
                let Some(metric) = metric else {
                    return Err(right_error());
                };
                if !(factor.is_finite() && factor > 0.0) {
                    return Err(ParseError {
                        message: format!(
                            "the baseline's factor is {factor}: it must be a positive number"
                        ),
                        offset: index + width,
                    });
                }
                let relative = Relative {
                    factor,
                    metric: metric.to_string(),
                    reading: None,
                };
                (Some(relative), rest)
            }
        };
        let (bound, unit) = match (baseline.is_some(), rest) {
            (true, []) => (0.0, None),
            (false, [(_, Token::Number(n, unit))]) => (*n, unit.clone()),
            (false, [(_, Token::Symbol('-')), (_, Token::Number(n, unit))]) => (-n, unit.clone()),
            (false, [(_, Token::Number(n, None)), (_, Token::Ident(unit))])
                if scale(unit).is_some() =>
            {
                (*n, Some(unit.clone()))
            }
            (
                true,
                [
                    (_, Token::Symbol(s @ ('+' | '-'))),
                    (_, Token::Number(n, unit)),
                ],
            ) => (if *s == '-' { -n } else { *n }, unit.clone()),
            (
                true,
                [
                    (_, Token::Symbol(s @ ('+' | '-'))),
                    (_, Token::Number(n, None)),
                    (_, Token::Ident(unit)),
                ],
            ) if scale(unit).is_some() => (if *s == '-' { -n } else { *n }, Some(unit.clone())),
            _ => return Err(right_error()),
        };
        if let Some(u) = &unit
            && scale(u).is_none()
        {
            return Err(ParseError {
                message: format!("unknown unit `{u}`: use one of {KNOWN_UNITS}"),
                offset: index + width,
            });
        }
        Ok(Constraint {
            text: text.trim().to_string(),
            left,
            comparison,
            bound,
            unit,
            baseline,
        })
    }

    /// Makes a bound relative to the baseline concrete with the baseline's readings (the first
    /// trial's, as journaled); a reading missing from them leaves it unresolved.
    pub fn resolve(&mut self, baseline: &BTreeMap<String, RecordedReading>) {
        if let Some(relative) = &mut self.baseline {
            relative.reading = baseline.get(&relative.metric).cloned();
        }
    }

    /// The limit in `metric_unit` (the unit of the metric on the left, when it is one metric);
    /// `None` for a bound relative to a baseline not measured yet, or measured in a unit that
    /// does not convert to `metric_unit` (never compared: [`Self::check_unit`] refuses it first).
    pub fn limit(&self, metric_unit: &str) -> Option<f64> {
        let offset = self.bound_in(metric_unit);
        match &self.baseline {
            None => Some(offset),
            Some(relative) => {
                let reading = relative.reading.as_ref()?;
                let value = convert(reading.value, &reading.unit, metric_unit)?;
                Some(relative.factor * value + offset)
            }
        }
    }

    /// `latency_p99 <= 1.1 × baseline (34.1 ms)`: the constraint with its concrete limit, for a
    /// bound relative to the baseline; the text as written otherwise, or while the baseline is
    /// not measured.
    pub fn describe(&self, metric_unit: &str) -> String {
        let (Some(relative), Some(limit)) = (&self.baseline, self.limit(metric_unit)) else {
            return self.text.clone();
        };
        let op = match self.comparison {
            Comparison::Less => "<",
            Comparison::LessEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterEqual => ">=",
        };
        let factor = if relative.factor == 1.0 {
            String::new()
        } else {
            format!("{} × ", relative.factor)
        };
        let offset = if self.bound == 0.0 {
            String::new()
        } else {
            let sign = if self.bound < 0.0 { '-' } else { '+' };
            let unit = self.unit.as_deref().unwrap_or_default();
            format!(" {sign} {}{unit}", self.bound.abs())
        };
        let of = if self.left.to_string() == relative.metric {
            String::new()
        } else {
            format!(".{}", relative.metric)
        };
        let unit = if metric_unit.is_empty() {
            String::new()
        } else {
            format!(" {metric_unit}")
        };
        format!(
            "{} {op} {factor}baseline{of}{offset} ({}{unit})",
            self.left,
            round(limit)
        )
    }

    /// Whether the bound can be compared with a metric measured in `metric_unit`: a bare bound
    /// always can (it is read in the metric's unit); a bound with a unit only against a metric of
    /// the same dimension. Checked before trial 0, so that `0.3` seconds is never compared with
    /// `50` milliseconds. The error names both units and the fix.
    pub fn check_unit(&self, metric: &str, metric_unit: &str) -> Result<(), String> {
        let Some(unit) = &self.unit else {
            return Ok(());
        };
        let Some((dimension, _)) = scale(unit) else {
            return Err(format!("unknown unit `{unit}`: use one of {KNOWN_UNITS}"));
        };
        let fix = format!(
            "declare the metric's `unit:` (one of {KNOWN_UNITS}), or write the bound as a bare number in the metric's own unit"
        );
        match scale(metric_unit) {
            Some((found, _)) if found == dimension => Ok(()),
            Some((found, _)) => Err(format!(
                "`{}`: the bound is {} (`{unit}`) but `{metric}` is {} (`{metric_unit}`); {fix}",
                self.text,
                dimension.name(),
                found.name()
            )),
            None if metric_unit.is_empty() => Err(format!(
                "`{}`: the bound has a unit (`{unit}`) but `{metric}` reports no unit, so servo cannot convert one to the other; {fix}",
                self.text
            )),
            None => Err(format!(
                "`{}`: the bound has a unit (`{unit}`) but `{metric}` reports an unknown unit (`{metric_unit}`); {fix}",
                self.text
            )),
        }
    }

    /// The bound as written (for one relative to the baseline, what is added to the baseline's
    /// part) in `metric_unit` (the unit of the metric on the left, when it is a single metric).
    /// Units of different dimensions never meet here: [`Self::check_unit`] refuses them first.
    pub fn bound_in(&self, metric_unit: &str) -> f64 {
        match (self.unit.as_deref().and_then(scale), scale(metric_unit)) {
            (Some((dim, from)), Some((to_dim, to))) if dim == to_dim => self.bound * from / to,
            _ => self.bound,
        }
    }

    /// How far from satisfied: met exactly when [`servo_optimizer::satisfied`] says so (≤ 0). A
    /// strict bound (`<`, `>`) reached exactly is not met, so it is a small positive violation:
    /// the optimizer, the journal and the report then agree at the boundary.
    /// A bound relative to a baseline not measured yet has no violation (NaN, which meets
    /// nothing): [`super::score`] refuses to score against it.
    pub fn violation(&self, value: f64, metric_unit: &str) -> f64 {
        let bound = self.limit(metric_unit).unwrap_or(f64::NAN);
        let (over, strict) = match self.comparison {
            Comparison::Less => (value - bound, true),
            Comparison::LessEqual => (value - bound, false),
            Comparison::Greater => (bound - value, true),
            Comparison::GreaterEqual => (bound - value, false),
        };
        if strict && over == 0.0 {
            f64::MIN_POSITIVE
        } else {
            over
        }
    }

    /// Whether the SLO holds for `value`: the same rule as [`Self::violation`].
    pub fn holds(&self, value: f64, metric_unit: &str) -> bool {
        servo_optimizer::satisfied(self.violation(value, metric_unit))
    }
}

/// `value` measured in `from` expressed in `to`: the same unit as written, or two units of one
/// dimension; `None` otherwise (numbers in different units are never compared).
pub fn convert(value: f64, from: &str, to: &str) -> Option<f64> {
    if from == to {
        return Some(value);
    }
    match (scale(from), scale(to)) {
        (Some((a, x)), Some((b, y))) if a == b => Some(value * x / y),
        _ => None,
    }
}

/// A limit for people: four decimals at most (`34.1`, not `34.100000000000001`).
fn round(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dimension {
    Time,
    Ratio,
    Bytes,
    Rate,
    Cpu,
}

/// A unit's dimension and its size in that dimension's base (seconds, ratio 1, bytes, requests per
/// second, cores). Metric units are free text from connectors and scripts, so the common spellings
/// of each are here; anything else is unknown, and a bound with a unit is never compared with it.
fn scale(unit: &str) -> Option<(Dimension, f64)> {
    use Dimension::*;
    Some(match unit {
        "ns" | "nanosecond" | "nanoseconds" => (Time, 1e-9),
        "us" | "µs" | "μs" | "microsecond" | "microseconds" => (Time, 1e-6),
        "ms" | "millisecond" | "milliseconds" => (Time, 1e-3),
        "s" | "sec" | "secs" | "second" | "seconds" => (Time, 1.0),
        "m" | "min" | "mins" | "minute" | "minutes" => (Time, 60.0),
        "h" | "hr" | "hrs" | "hour" | "hours" => (Time, 3600.0),
        "%" | "percent" => (Ratio, 0.01),
        "ratio" | "fraction" => (Ratio, 1.0),
        "B" | "byte" | "bytes" => (Bytes, 1.0),
        "KiB" | "Ki" => (Bytes, 1024.0),
        "MiB" | "Mi" => (Bytes, 1024.0 * 1024.0),
        "GiB" | "Gi" => (Bytes, 1024.0 * 1024.0 * 1024.0),
        "KB" | "kB" => (Bytes, 1e3),
        "MB" => (Bytes, 1e6),
        "GB" => (Bytes, 1e9),
        "rps" | "req/s" | "requests/s" | "requests per second" => (Rate, 1.0),
        "rpm" | "req/min" | "requests/min" | "requests per minute" => (Rate, 1.0 / 60.0),
        "cores" | "core" | "cpu" | "cpus" => (Cpu, 1.0),
        "millicores" | "millicore" | "mcpu" => (Cpu, 1e-3),
        _ => return None,
    })
}

impl Dimension {
    fn name(self) -> &'static str {
        match self {
            Dimension::Time => "a time",
            Dimension::Ratio => "a ratio",
            Dimension::Bytes => "a size in bytes",
            Dimension::Rate => "a request rate",
            Dimension::Cpu => "a CPU quantity",
        }
    }
}

/// The units a bound may carry, for messages.
const KNOWN_UNITS: &str =
    "ns, us, ms, s, m, h, %, B, KiB, MiB, GiB, KB, MB, GB, rps, rpm, cores, millicores";

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn expressions_follow_precedence_and_read_dotted_names() {
        let e = Expr::parse("main.cpu * 0.0317 + main.memory * 0.0042 - -1").expect("parses");
        let v = e
            .eval(&vars(&[("main.cpu", 2.0), ("main.memory", 4.0)]))
            .expect("evaluates");
        assert!((v - (2.0 * 0.0317 + 4.0 * 0.0042 + 1.0)).abs() < 1e-12);
        assert_eq!(e.variables(), ["main.cpu", "main.memory"]);
        assert_eq!(
            Expr::parse("(a + b) / 2")
                .expect("parses")
                .eval(&vars(&[("a", 1.0), ("b", 3.0)])),
            Ok(2.0)
        );
        assert_eq!(
            Expr::parse("my-app.cpu-2").expect("parses").variables(),
            ["my-app.cpu"]
        );
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        let e = Expr::parse("a + * b").expect_err("fails");
        assert_eq!(e.offset, 4);
        assert!(
            Expr::parse("(a + b")
                .expect_err("fails")
                .message
                .contains(")")
        );
        assert!(
            Expr::parse("a $ b")
                .expect_err("fails")
                .message
                .contains("`$`")
        );
        assert_eq!(
            Expr::parse("x / 0")
                .expect("parses")
                .eval(&vars(&[("x", 1.0)])),
            Err(EvalError::NotFinite)
        );
        assert_eq!(
            Expr::parse("y").expect("parses").eval(&vars(&[])),
            Err(EvalError::Missing("y".into()))
        );
    }

    #[test]
    fn constraint_bounds_convert_to_the_metric_unit() {
        let c = Constraint::parse("latency_p99 < 50ms").expect("parses");
        assert_eq!(c.bound_in("ms"), 50.0);
        assert!((c.bound_in("s") - 0.05).abs() < 1e-12);
        assert!(c.holds(49.0, "ms"));
        assert!(!c.holds(0.06, "s"));
        assert!(c.violation(60.0, "ms") > 0.0);

        let e = Constraint::parse("error_rate <= 0.5%").expect("parses");
        assert!((e.bound_in("%") - 0.5).abs() < 1e-12);
        assert!(
            (e.bound_in("ratio") - 0.005).abs() < 1e-12,
            "a ratio metric"
        );
        assert!((c.bound_in("seconds") - 0.05).abs() < 1e-12);
        assert!(c.check_unit("latency_p99", "seconds").is_ok());
        assert!(c.check_unit("latency_p99", "").is_err(), "no unit: refused");
        assert!(
            c.check_unit("latency_p99", "furlongs").is_err(),
            "unknown: refused"
        );
        assert!(
            c.check_unit("latency_p99", "MiB").is_err(),
            "bytes are not time"
        );
        assert!(e.check_unit("error_rate", "ratio").is_ok());
        let m = Constraint::parse("rss < 512MiB").expect("parses");
        assert!((m.bound_in("bytes") - 536_870_912.0).abs() < 1e-6);
        let r = Constraint::parse("throughput > 600rpm").expect("parses");
        assert!((r.bound_in("req/s") - 10.0).abs() < 1e-12);
        let cpu = Constraint::parse("cpu < 500millicores").expect("parses");
        assert!((cpu.bound_in("cores") - 0.5).abs() < 1e-12);
        // One rule at the boundary: a strict bound met exactly is not met, for everyone.
        let strict = Constraint::parse("latency_p99 < 50").expect("parses");
        assert!(!strict.holds(50.0, "ms"));
        assert!(!servo_optimizer::satisfied(strict.violation(50.0, "ms")));
        let inclusive = Constraint::parse("latency_p99 <= 50").expect("parses");
        assert!(inclusive.holds(50.0, "ms"));
        assert!(servo_optimizer::satisfied(inclusive.violation(50.0, "ms")));
        let above = Constraint::parse("throughput > 100").expect("parses");
        assert!(!servo_optimizer::satisfied(above.violation(100.0, "rps")));
        assert!(!above.holds(f64::NAN, "rps"), "a NaN reading meets nothing");
        let bare = Constraint::parse("latency_p99 < 50").expect("parses");
        assert!(
            bare.check_unit("latency_p99", "").is_ok(),
            "a bare bound is the metric's unit"
        );

        let t = Constraint::parse("throughput >= 100").expect("parses");
        assert!(t.holds(100.0, "rps"));
        assert!(t.violation(90.0, "rps") > 0.0);

        assert!(Constraint::parse("latency_p99 50ms").is_err());
        assert!(Constraint::parse("latency_p99 < 50 parsecs").is_err());
        assert!(Constraint::parse("latency_p99 < fast").is_err());
    }

    fn readings(pairs: &[(&str, f64, &str)]) -> BTreeMap<String, RecordedReading> {
        pairs
            .iter()
            .map(|(k, v, u)| {
                (
                    k.to_string(),
                    RecordedReading {
                        value: *v,
                        unit: u.to_string(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_bound_relative_to_the_baseline_is_concrete_once_it_is_measured() {
        let mut c = Constraint::parse("latency_p99 <= 1.1 * baseline.latency_p99").expect("parses");
        let relative = c.baseline.clone().expect("relative");
        assert_eq!(
            (relative.factor, relative.metric.as_str()),
            (1.1, "latency_p99")
        );
        // Until the baseline exists, nothing can breach it.
        assert_eq!(c.limit("ms"), None);
        assert!(!c.holds(1e9, "ms"), "not scored: NaN meets nothing");
        assert_eq!(c.describe("ms"), c.text);
        c.resolve(&readings(&[("latency_p99", 31.0, "ms")]));
        let limit = c.limit("ms").expect("a limit");
        assert!((limit - 34.1).abs() < 1e-9, "{limit}");
        assert!(c.holds(34.0, "ms"));
        assert!(!c.holds(35.0, "ms"));
        assert_eq!(c.describe("ms"), "latency_p99 <= 1.1 × baseline (34.1 ms)");
        // The trial's reading in seconds: the baseline's converts, never compared as is.
        assert!((c.limit("s").expect("converts") - 0.0341).abs() < 1e-12);
        assert_eq!(c.limit("MiB"), None, "bytes are not time");

        // The other forms: the factor after, an offset with its own unit, none at all.
        let mut e = Constraint::parse("error_rate <= baseline.error_rate + 0.5%").expect("parses");
        e.resolve(&readings(&[("error_rate", 0.002, "ratio")]));
        assert!((e.limit("ratio").expect("a limit") - 0.007).abs() < 1e-12);
        assert_eq!(
            e.describe("ratio"),
            "error_rate <= baseline + 0.5% (0.007 ratio)"
        );
        let mut t = Constraint::parse("throughput >= baseline.throughput * 0.9").expect("parses");
        t.resolve(&readings(&[("throughput", 400.0, "rps")]));
        assert!((t.limit("rps").expect("a limit") - 360.0).abs() < 1e-9);
        assert!(!t.holds(300.0, "rps"));
        let mut other =
            Constraint::parse("latency_p99 < 3 * baseline.latency_p50 - 2 ms").expect("parses");
        other.resolve(&readings(&[("latency_p50", 10.0, "ms")]));
        assert!((other.limit("ms").expect("a limit") - 28.0).abs() < 1e-9);
        assert_eq!(
            other.describe("ms"),
            "latency_p99 < 3 × baseline.latency_p50 - 2ms (28 ms)"
        );
        // A baseline that did not read the metric leaves the bound unresolved.
        let mut missing =
            Constraint::parse("latency_p99 <= 1.1 * baseline.latency_p99").expect("parses");
        missing.resolve(&readings(&[("error_rate", 0.0, "ratio")]));
        assert_eq!(missing.limit("ms"), None);

        for bad in [
            "latency_p99 <= 1.1 * baseline.",
            "latency_p99 <= 0 * baseline.latency_p99",
            "latency_p99 <= baseline.latency_p99 * baseline.latency_p50",
            "latency_p99 <= 1.1 * baseline.latency_p99 + fast",
            "latency_p99 <= 1.1 + baseline.latency_p99",
            "latency_p99 <= 1.1ms * baseline.latency_p99",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad}");
        }
    }
}
