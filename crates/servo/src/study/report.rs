//! A self-contained HTML report of a study: inline SVG plots (no scripts, no external assets), so it
//! can be attached to a ticket or opened from a CI artifact as is.

use std::fmt::Write as _;

use super::journal::{Trial, TrialState};
use super::{Summary, best_trial, param_number};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
const MARGIN: f64 = 44.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn number(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 || v.abs() < 0.01 {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}

/// An axis mapping `[low, high]` to pixels, padded so points never sit on the frame. Linear, or
/// logarithmic when asked and every value is positive: one 900 ms outlier among 10 ms readings
/// would otherwise flatten every other point onto the frame.
struct Axis {
    /// The data's range, for the tick labels.
    min: f64,
    max: f64,
    /// The drawn range: the data's, padded (in log space for a log axis).
    low: f64,
    high: f64,
    from: f64,
    to: f64,
    log: bool,
}

/// How many times the largest value must exceed the smallest before a y axis turns logarithmic.
const LOG_RATIO: f64 = 30.0;

impl Axis {
    fn new(values: impl Iterator<Item = f64>, from: f64, to: f64) -> Axis {
        Self::build(values.collect(), from, to, false)
    }

    /// A y axis: logarithmic when every value is positive and they span more than [`LOG_RATIO`].
    fn vertical(values: impl Iterator<Item = f64>, from: f64, to: f64) -> Axis {
        let values: Vec<f64> = values.collect();
        let (min, max) = bounds(&values);
        let log = min > 0.0 && max.is_finite() && max / min > LOG_RATIO;
        Self::build(values, from, to, log)
    }

    fn build(values: Vec<f64>, from: f64, to: f64, log: bool) -> Axis {
        let (mut low, mut high) = bounds(&values);
        if !low.is_finite() || !high.is_finite() {
            (low, high) = (0.0, 1.0);
        }
        if (high - low).abs() < 1e-12 {
            low -= 0.5;
            high += 0.5;
        }
        let (min, max) = (low, high);
        if log {
            (low, high) = (low.ln(), high.ln());
        }
        let pad = (high - low) * 0.05;
        Axis {
            min,
            max,
            low: low - pad,
            high: high + pad,
            from,
            to,
            log,
        }
    }

    fn at(&self, v: f64) -> f64 {
        let v = if self.log {
            v.max(f64::MIN_POSITIVE).ln()
        } else {
            v
        };
        self.from + (v - self.low) / (self.high - self.low) * (self.to - self.from)
    }
}

fn bounds(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        })
}

struct Point {
    x: f64,
    y: f64,
    feasible: bool,
    label: String,
}

/// A scatter plot with an optional step line, a horizontal limit, and infeasible points hollow.
fn plot(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[Point],
    line: Option<&[(f64, f64)]>,
    limit: Option<f64>,
) -> String {
    let mut svg = String::new();
    let x = Axis::new(points.iter().map(|p| p.x), MARGIN, WIDTH - 12.0);
    let y = Axis::vertical(
        points.iter().map(|p| p.y).chain(limit),
        HEIGHT - MARGIN,
        16.0,
    );
    let _ = write!(
        svg,
        r#"<figure><figcaption>{}{}</figcaption><svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{}">"#,
        escape(title),
        if y.log { " (log scale)" } else { "" },
        escape(title)
    );
    let _ = write!(
        svg,
        r##"<rect x="{MARGIN}" y="16" width="{}" height="{}" fill="none" stroke="#ccc"/>"##,
        WIDTH - 12.0 - MARGIN,
        HEIGHT - MARGIN - 16.0
    );
    for (v, anchor_y) in [(y.min, y.at(y.min) + 3.0), (y.max, y.at(y.max) + 3.0)] {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{anchor_y}" font-size="10" text-anchor="end" fill="#555">{}</text>"##,
            MARGIN - 4.0,
            number(v)
        );
    }
    for (v, anchor) in [(x.low, "start"), (x.high, "end")] {
        let px = if anchor == "start" {
            MARGIN
        } else {
            WIDTH - 12.0
        };
        let _ = write!(
            svg,
            r##"<text x="{px}" y="{}" font-size="10" text-anchor="{anchor}" fill="#555">{}</text>"##,
            HEIGHT - MARGIN + 14.0,
            number(v)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
        (MARGIN + WIDTH) / 2.0,
        HEIGHT - 8.0,
        escape(x_label)
    );
    let _ = write!(
        svg,
        r##"<text x="12" y="{}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {})">{}</text>"##,
        HEIGHT / 2.0,
        HEIGHT / 2.0,
        escape(y_label)
    );
    if let Some(limit) = limit {
        let py = y.at(limit);
        let _ = write!(
            svg,
            r##"<line x1="{MARGIN}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#d33" stroke-dasharray="5 3"/><text x="{}" y="{:.1}" font-size="10" text-anchor="end" fill="#d33">limit {}</text>"##,
            WIDTH - 12.0,
            WIDTH - 14.0,
            py - 3.0,
            number(limit)
        );
    }
    if let Some(line) = line.filter(|l| !l.is_empty()) {
        let mut d = String::new();
        for (i, (lx, ly)) in line.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1} ",
                if i == 0 { "M" } else { "L" },
                x.at(*lx),
                y.at(*ly)
            );
        }
        let _ = write!(
            svg,
            r##"<path d="{d}" fill="none" stroke="#2a7" stroke-width="2"/>"##
        );
    }
    for p in points {
        let (fill, stroke) = if p.feasible {
            ("#36c", "#36c")
        } else {
            ("white", "#d33")
        };
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{stroke}" stroke-width="1.5"><title>{}</title></circle>"#,
            x.at(p.x),
            y.at(p.y),
            escape(&p.label)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn change(baseline: Option<f64>, best: Option<f64>) -> String {
    match (baseline, best) {
        (Some(a), Some(b)) if a != 0.0 => format!("{:+.1}%", (b - a) / a.abs() * 100.0),
        _ => String::new(),
    }
}

/// The whole report as one HTML document.
pub fn html(summary: &Summary) -> String {
    let complete: Vec<&Trial> = summary
        .trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.objective.is_some())
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>servo study {name}</title><style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:72rem}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}}
th:first-child,td:first-child{{text-align:left}}figure{{display:inline-block;margin:.5rem}}figcaption{{font-weight:600}}
.bad{{color:#d33}}.muted{{color:#777}}</style></head><body>
<h1>servo study <code>{name}</code></h1>
<p>{objective_kind} <code>{objective}</code>{constraints}. {trials} trials ({complete} complete, {failed} failed, {interrupted} interrupted). Journal: <code>{journal}</code>.</p>"#,
        name = escape(&summary.study),
        objective_kind = if summary.maximize {
            "Maximize"
        } else {
            "Minimize"
        },
        objective = escape(&summary.objective),
        constraints = if summary.constraints.is_empty() {
            String::new()
        } else {
            format!(
                " subject to <code>{}</code>",
                escape(&summary.constraints.join(", "))
            )
        },
        trials = summary.trials.len(),
        complete = complete.len(),
        failed = summary
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Failed)
            .count(),
        interrupted = summary
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Interrupted)
            .count(),
        journal = escape(&summary.journal.display().to_string()),
    );

    if !summary.constraints.is_empty() {
        let found = super::breaches(&summary.trials, &summary.constraints);
        let _ = write!(
            out,
            "<p class=\"{}\">SLO breaches while searching: {}.</p>",
            if found.count > 0 { "bad" } else { "muted" },
            escape(&found.describe())
        );
    }

    out.push_str("<h2>Baseline vs best</h2>");
    out.push_str(&comparison_table(summary));

    out.push_str("<h2>Objective per trial</h2>");
    let points: Vec<Point> = complete
        .iter()
        .map(|t| Point {
            x: t.number as f64,
            y: t.objective.unwrap_or(0.0),
            feasible: t.feasible == Some(true),
            label: format!("trial {}: {}", t.number, number(t.objective.unwrap_or(0.0))),
        })
        .collect();
    let mut best_line = Vec::new();
    for t in &summary.trials {
        let seen: Vec<Trial> = summary
            .trials
            .iter()
            .filter(|o| o.number <= t.number)
            .cloned()
            .collect();
        if let Some(best) = best_trial(&seen, summary.maximize).and_then(|b| b.objective) {
            best_line.push((t.number as f64, best));
        }
    }
    out.push_str(&plot(
        "objective per trial (line: best feasible so far; hollow: infeasible)",
        "trial",
        &summary.objective,
        &points,
        Some(&best_line),
        None,
    ));

    let names: Vec<String> = summary
        .trials
        .first()
        .map(|t| t.config.keys().cloned().collect())
        .unwrap_or_default();
    if !names.is_empty() {
        out.push_str("<h2>Settings vs objective</h2>");
        for name in &names {
            let points: Vec<Point> = complete
                .iter()
                .filter_map(|t| {
                    let x = t.config.get(name).and_then(param_number)?;
                    Some(Point {
                        x,
                        y: t.objective.unwrap_or(0.0),
                        feasible: t.feasible == Some(true),
                        label: format!("trial {}: {name}={}", t.number, number(x)),
                    })
                })
                .collect();
            if !points.is_empty() {
                out.push_str(&plot(name, name, "objective", &points, None, None));
            }
        }
    }

    if !summary.constraints.is_empty() {
        out.push_str("<h2>SLOs</h2>");
        for (i, text) in summary.constraints.iter().enumerate() {
            let metric = text
                .split(['<', '>'])
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let points: Vec<Point> = complete
                .iter()
                .filter_map(|t| {
                    let r = t.readings.get(&metric)?;
                    Some(Point {
                        x: t.number as f64,
                        y: r.value,
                        feasible: t
                            .constraints
                            .get(i)
                            .is_some_and(|v| servo_optimizer::satisfied(*v)),
                        label: format!(
                            "trial {}: {metric}={} {}",
                            t.number,
                            number(r.value),
                            r.unit
                        ),
                    })
                })
                .collect();
            // The limit is the value at which the violation is zero.
            let limit = complete.iter().find_map(|t| {
                let r = t.readings.get(&metric)?;
                let v = t.constraints.get(i)?;
                Some(r.value - v)
                    .filter(|_| !text.contains('>'))
                    .or_else(|| Some(r.value + v))
            });
            if !points.is_empty() {
                out.push_str(&plot(text, "trial", &metric, &points, None, limit));
            }
        }
    }

    out.push_str("<h2>Trials</h2><table><tr><th>#</th><th>state</th>");
    for n in &names {
        let _ = write!(out, "<th>{}</th>", escape(n));
    }
    out.push_str("<th>objective</th><th>SLOs met</th><th>note</th></tr>");
    for t in &summary.trials {
        let _ = write!(out, "<tr><td>{}</td><td>{:?}</td>", t.number, t.state);
        for n in &names {
            let _ = write!(
                out,
                "<td>{}</td>",
                escape(&t.config.get(n).map(ToString::to_string).unwrap_or_default())
            );
        }
        let _ = write!(
            out,
            "<td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
            t.objective.map(number).unwrap_or_default(),
            match t.feasible {
                Some(true) => "yes",
                Some(false) => "<span class=\"bad\">no</span>",
                None => "",
            },
            escape(t.error.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

fn comparison_table(summary: &Summary) -> String {
    let (Some(baseline), Some(best)) = (&summary.baseline, &summary.best) else {
        return "<p class=\"muted\">No feasible trial to compare with the baseline yet.</p>".into();
    };
    let mut out =
        String::from("<table><tr><th></th><th>baseline</th><th>best</th><th>change</th></tr>");
    for (name, value) in &baseline.config {
        let best_value = best.config.get(name);
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            escape(&value.to_string()),
            escape(&best_value.map(ToString::to_string).unwrap_or_default()),
            change(param_number(value), best_value.and_then(param_number))
        );
    }
    let _ = write!(
        out,
        "<tr><th>objective</th><td>{}</td><td>{}</td><td>{}</td></tr>",
        baseline.objective.map(number).unwrap_or_default(),
        best.objective.map(number).unwrap_or_default(),
        change(baseline.objective, best.objective)
    );
    for (metric, r) in &baseline.readings {
        let b = best.readings.get(metric);
        let _ = write!(
            out,
            "<tr><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(metric),
            escape(&r.unit),
            number(r.value),
            b.map(|b| number(b.value)).unwrap_or_default(),
            change(Some(r.value), b.map(|b| b.value))
        );
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(ys: &[f64]) -> Vec<Point> {
        ys.iter()
            .enumerate()
            .map(|(i, y)| Point {
                x: i as f64,
                y: *y,
                feasible: true,
                label: String::new(),
            })
            .collect()
    }

    #[test]
    fn an_outlier_turns_the_y_axis_logarithmic_so_the_rest_stays_readable() {
        let ys = [8.0, 10.0, 12.0, 944.0];
        let log = Axis::vertical(ys.iter().copied(), 200.0, 0.0);
        assert!(log.log);
        let linear = Axis::new(ys.iter().copied(), 200.0, 0.0);
        // 8 ms and 12 ms: 2 px apart on a linear axis, tens of pixels on the log one.
        assert!((linear.at(8.0) - linear.at(12.0)).abs() < 3.0);
        assert!((log.at(8.0) - log.at(12.0)).abs() > 15.0);
        assert!(plot("p99", "trial", "ms", &points(&ys), None, Some(30.0)).contains("(log scale)"));
    }

    #[test]
    fn close_or_non_positive_values_keep_a_linear_axis() {
        assert!(!Axis::vertical([8.0, 10.0, 120.0].into_iter(), 200.0, 0.0).log);
        assert!(!Axis::vertical([-1.0, 10.0, 900.0].into_iter(), 200.0, 0.0).log);
        assert!(!Axis::vertical([0.0, 10.0, 900.0].into_iter(), 200.0, 0.0).log);
        assert!(
            !plot("p99", "trial", "ms", &points(&[8.0, 10.0]), None, None).contains("log scale")
        );
    }
}
