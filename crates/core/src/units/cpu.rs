//! [`Cpu`]: a CPU quantity in cores or millicores, as Kubernetes writes it.

use super::*;

pub(super) const CPU_SYNTAX: &str =
    "expected a number of cores, such as 2 or 0.5, or of millicores with the unit m, such as 250m";

pub(super) const CPU_PRECISION_RULE: &str = "CPU is allocated in whole millicores, so cores take at most 3 \
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
pub struct Cpu(pub(super) u64);

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

pub(super) fn cpu_too_large() -> &'static str {
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

deserialize_unit!(Cpu, "{CPU_EXPECTATION}";
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
);

// `multipleOf` rejects numbers finer than a millicore, as the deserializer does; JSON Schema
// validators judge it on the number's decimal digits, as `Cpu::from_cores` does.
unit_schema!(Cpu, types: ["string", "number"], "multipleOf": 0.001, "examples": ["250m", "0.5", "2"]);

/// CPU in use, as the metrics API (`metrics.k8s.io`) reports it: nanocores (`249623n`),
/// microcores (`12u`), millicores (`250m`) or cores (`1`), held in nanocores.
///
/// Finer than [`Cpu`], which is what a container can request: a [`Cpu`] converts into it exactly,
/// so usage is compared with requests and limits in nanocores, never across units.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CpuUsage(u64);

const CPU_USAGE_SYNTAX: &str = "expected a number of cores, or of millicores (m), microcores (u) or \
     nanocores (n), such as 249623n or 250m";

impl CpuUsage {
    pub const fn from_nanocores(nanocores: u64) -> Self {
        Self(nanocores)
    }

    pub const fn nanocores(&self) -> u64 {
        self.0
    }

    /// The amount in cores, with the precision of an `f64`.
    pub fn cores(&self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// This usage as a percentage of `of` (a request or a limit); `None` when `of` is zero.
    pub fn percent_of(&self, of: Cpu) -> Option<f64> {
        let of = CpuUsage::from(of);
        (of.0 > 0).then(|| 100.0 * self.0 as f64 / of.0 as f64)
    }

    fn parse_text(text: &str) -> ParseText<Self> {
        let (number, unit) =
            Decimal::split_prefix(text).ok_or((UnitProblem::Malformed, CPU_USAGE_SYNTAX.into()))?;
        let (scale, places) = match unit {
            "" => (1_000_000_000, 9),
            "m" => (1_000_000, 6),
            "u" => (1_000, 3),
            "n" => (1, 0),
            _ if unit.chars().all(char::is_alphabetic) => {
                return Err((
                    UnitProblem::UnknownUnit,
                    format!("unknown unit {unit:?}; {CPU_USAGE_SYNTAX}").into(),
                ));
            }
            _ => return Err((UnitProblem::Malformed, CPU_USAGE_SYNTAX.into())),
        };
        if number.exceeds_places(places) {
            return Err((
                UnitProblem::TooPrecise,
                "CPU usage is counted in whole nanocores".into(),
            ));
        }
        number
            .scale(scale)
            .and_then(|n| u64::try_from(n).ok())
            .map(Self)
            .ok_or((UnitProblem::TooLarge, cpu_too_large().into()))
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

impl From<Cpu> for CpuUsage {
    fn from(cpu: Cpu) -> Self {
        Self(cpu.0.saturating_mul(1_000_000))
    }
}

/// The largest unit that divides the amount: `2`, `250m`, `12u`, `249623n`.
impl fmt::Display for CpuUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n.is_multiple_of(1_000_000_000) {
            write!(f, "{}", n / 1_000_000_000)
        } else if n.is_multiple_of(1_000_000) {
            write!(f, "{}m", n / 1_000_000)
        } else if n.is_multiple_of(1_000) {
            write!(f, "{}u", n / 1_000)
        } else {
            write!(f, "{n}n")
        }
    }
}

impl fmt::Debug for CpuUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CpuUsage")
            .field(&format_args!("{self}"))
            .finish()
    }
}

text_unit!(CpuUsage);
