//! How settings types become JSON Schema: one generator for every schema servo makes, so a
//! connector's standalone schema and the composite schema of a config agree on dialect and `$defs`.

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::Value;

pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The generator every schema in servo is made with: draft 2020-12, definitions under `$defs`.
pub fn generator() -> SchemaGenerator {
    SchemaGenerator::new(SchemaSettings::draft2020_12())
}

/// Turns a schema made with `generator` into a self-contained document (its definitions attached).
pub fn standalone(schema: Schema, mut generator: SchemaGenerator) -> Value {
    let mut value = schema.to_value();
    let definitions = generator.take_definitions(true);
    if let Value::Object(object) = &mut value {
        if !definitions.is_empty() {
            object.insert("$defs".into(), Value::Object(definitions));
        }
        object.remove("$schema");
    }
    value
}
