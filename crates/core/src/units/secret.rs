//! [`Secret`]: a value that prints as `**********` everywhere.

use super::*;

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
pub struct Secret<T>(pub(super) T);

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
