//! Stage 3 of the pipeline: a layered document that its own composite schema accepts.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diagnostic::{Diagnostic, Level, Origin};
use super::layered::Layered;
use super::validate;
use crate::schema::OptimizerForm;
use servo_core::connector::ConnectorDescription;
use servo_core::path::KeyPath;
use servo_yaml::SpanMap;

/// A document without a schema error, ready to be built; the fields are [`Layered`]'s.
#[derive(Debug)]
pub struct Checked {
    pub document: Value,
    pub spans: SpanMap,
    pub mounts: Vec<(String, &'static ConnectorDescription)>,
    pub optimizer_form: OptimizerForm,
    pub origins: BTreeMap<KeyPath, Origin>,
}

impl Checked {
    /// Validates `layered` against its schema, adding each problem to `diagnostics` (the
    /// document's so far); `None` if they hold an error, this stage's or an earlier one's, so
    /// that one run reports the problems of every stage that could look.
    pub fn new(layered: Layered, diagnostics: &mut Vec<Diagnostic>) -> Option<Checked> {
        let Layered {
            mut document,
            spans,
            mounts,
            optimizer_form,
            schema,
            origins,
        } = layered;
        // `connectors` is left out: the mount plan checked it, with better messages.
        let connectors = document
            .as_object_mut()
            .and_then(|o| o.remove("connectors"));
        diagnostics.extend(validate::against_schema(
            &schema, &document, &spans, &origins,
        ));
        if let (Some(entry), Some(o)) = (connectors, document.as_object_mut()) {
            o.insert("connectors".into(), entry);
        }
        if diagnostics.iter().any(|d| d.level == Level::Error) {
            return None;
        }
        Some(Checked {
            document,
            spans,
            mounts,
            optimizer_form,
            origins,
        })
    }
}
