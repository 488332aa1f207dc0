//! [`Memory`]: a size in bytes with Kubernetes' binary and decimal units.

use super::*;

/// Memory units: spelling and size in bytes. Binary units are powers of 1024 and decimal units
/// powers of 1000, as in Kubernetes, where `K` is not a unit; it is accepted here as a decimal
/// kilo because people write `KB`.
pub(super) const MEMORY_UNITS: [(&str, u128); 28] = [
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

pub(super) const MEMORY_SYNTAX: &str = "expected a number of bytes, optionally followed by a unit: Ki, Mi, \
     Gi, Ti, Pi, Ei (powers of 1024) or k, M, G, T, P, E (powers of 1000), each optionally \
     ending in B; such as 256Mi, 4Gi or 1G";

pub(super) const GIB: u64 = 1 << 30;

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
pub struct Memory(pub(super) u64);

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

impl Memory {
    /// Reads a size as ServoX does in its kubernetes and opsani_dev settings: a number, or text
    /// without a unit, is gibibytes (`memory: {min: 0.25, max: 4}`); text with a unit is read as
    /// [`Memory`] reads it (`128.0MiB`, `4Gi`). For a field written
    /// `#[serde(deserialize_with = "Memory::deserialize_servox")]`.
    pub fn deserialize_servox<'de, D: Deserializer<'de>>(d: D) -> Result<Memory, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(gib) => Memory::from_gib(gib).map_err(de::Error::custom),
            Raw::Text(text) => match text.trim().parse::<f64>() {
                Ok(gib) if text.trim().chars().all(|c| c.is_ascii_digit() || c == '.') => {
                    Memory::from_gib(gib).map_err(de::Error::custom)
                }
                _ => Memory::parse(&text).map_err(de::Error::custom),
            },
        }
    }
}

pub(super) fn memory_too_large() -> &'static str {
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

deserialize_unit!(Memory, "{MEMORY_EXPECTATION}, or a number of bytes";
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
);

unit_schema!(Memory, types: ["string", "number"], "examples": ["256Mi", "4Gi", "1G"]);
