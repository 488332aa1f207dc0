//! What people look at: the study charts, drawn by one vendored charting library (Apache ECharts,
//! `assets/vendor/echarts/`, see its README for the pinned version), for `servo report` (one
//! self-contained HTML file that opens offline) and for the pages of `servo optimizer serve`.
//!
//! - [`view`]: the JSON both draw from.
//! - [`importance`]: which settings move the objective.
//! - `assets/ui/charts.js`: what is drawn and how numbers read (units, ticks, log axes).

pub mod importance;
pub mod view;

use crate::study::Summary;
pub use view::StudyView;

/// Apache ECharts, minified, embedded so that reports and the UI work on clusters with no internet.
pub const ECHARTS: &str = include_str!("../../assets/vendor/echarts/echarts.min.js");
/// ECharts' licence and notice, served beside it as its licence asks.
pub const ECHARTS_LICENSE: &str = include_str!("../../assets/vendor/echarts/LICENSE");
pub const ECHARTS_NOTICE: &str = include_str!("../../assets/vendor/echarts/NOTICE");
pub const CHARTS_JS: &str = include_str!("../../assets/ui/charts.js");
pub const CSS: &str = include_str!("../../assets/ui/ui.css");

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// JSON that can sit inside a `<script>` element: `<` is escaped (`\u003c`, still valid JSON), so
/// no value can close the element.
pub fn script_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
}

/// A self-contained HTML report of a study: the charts library, the charts and the data in one
/// file, so it can be attached to a ticket or opened from a CI artifact, offline.
pub fn report(summary: &Summary) -> String {
    let view = StudyView::new(summary);
    let name = escape(&summary.study);
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>servo study {name}</title><link rel="icon" href="data:,"><style>{CSS}</style></head>
<body><header class="top"><h1>servo study <code>{name}</code></h1><span class="muted">journal <code>{journal}</code></span></header>
<main id="study"></main>
<script>{ECHARTS}</script>
<script>{CHARTS_JS}</script>
<script type="application/json" id="study-data">{data}</script>
<script>ServoCharts.mount(document.getElementById('study'), JSON.parse(document.getElementById('study-data').textContent));</script>
</body></html>
"#,
        journal = escape(&summary.journal.display().to_string()),
        data = script_json(&view),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_scripts_cannot_end_their_element_early() {
        for (name, script) in [("echarts", ECHARTS), ("charts.js", CHARTS_JS)] {
            assert!(
                !script.to_ascii_lowercase().contains("</script"),
                "{name} contains </script and cannot be inlined"
            );
        }
        let json = script_json(&serde_json::json!({"text": "</script><script>alert(1)"}));
        assert!(!json.contains('<'), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back["text"], "</script><script>alert(1)");
    }
}
