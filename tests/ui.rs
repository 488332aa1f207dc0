//! The operators' web UI of `servo optimizer serve` and the HTML of `servo report`, in a real
//! headless Chromium (Debian's `chromium` over `chromium-driver`):
//!
//! - every page, asset and action needs an operator token; an application's token opens nothing;
//! - the pages load with no console error and every chart draws;
//! - a trial a real `servo run` finishes appears on the open page without a reload;
//! - pause then resume, clicked and confirmed in the page, change what that servo is told;
//! - the report draws a chart per setting (enums included), opens offline, and no axis label
//!   carries more than four significant digits.
//!
//! With `SERVO_UI_SCREENSHOTS=DIR`, the pages are also saved as PNGs there
//! (`scripts/ui-screenshots.sh`).
#![cfg(target_os = "linux")]

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/live.rs"]
mod live;
#[path = "common/optimizer_serve.rs"]
mod optimizer_serve;

use std::path::Path;
use std::time::Duration;

use browser::Browser;
use live::Servo;
use serde_json::Value;

const APP_TOKEN: &str = "web-token-0123456789abcdef";

/// `servo optimizer admin-token`: the operator token it prints once.
fn operator_token(store: &Path) -> String {
    let out = common::servo()
        .args(["optimizer", "admin-token", "--store"])
        .arg(store)
        .output()
        .expect("servo runs");
    common::assert_success(&out);
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("servo_op_"), "{token}");
    token
}

/// A server with application `acme/web` (fast trials) and an operator token.
fn server(dir: &Path) -> (Servo, u16, String) {
    let store = dir.join("optimizer.db");
    common::create_app(
        &dir.join("web.token"),
        store.as_os_str(),
        "acme/web",
        APP_TOKEN,
        &[
            "--minimize",
            "main.cpu * main.replicas",
            "--constraint",
            "time_waited < 10s",
            "--trials",
            "200",
            "--duration",
            "1s",
            "--seed",
            "3",
        ],
    );
    let operator = operator_token(&store);
    let port = common::free_port();
    let server = optimizer_serve::start(dir, &store, port, &[]);
    (server, port, operator)
}

fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    http::exchange(http::local(port), "GET", path, token, b"")
}

/// A `servo run` whose settings are tuned by the server's `acme/web` study.
fn start_servo(dir: &Path, port: u16) -> Servo {
    let config = dir.join("servo.yaml");
    std::fs::write(
        &config,
        common::remote_optimizer_of(
            "acme/web",
            APP_TOKEN,
            &format!("http://127.0.0.1:{port}"),
            "{}",
        ) + r#"wait:
  measure_enabled: true
  components:
    main:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }
        replicas: { type: replicas, min: 1, max: 8, step: 1, value: 2 }
        mode: { type: enum, values: [fast, balanced, thorough], value: balanced }
"#,
    )
    .expect("servo config");
    Servo::start_logging(&config, &["run"], "info")
}

fn shoot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("SERVO_UI_SCREENSHOTS") {
        let path = Path::new(&dir).join(format!("{name}.png"));
        std::fs::write(&path, browser.screenshot()).expect("write the screenshot");
    }
}

/// How many charts the page shows, and how many of them drew nothing.
const CHARTS: &str = "const figures = [...document.querySelectorAll('figure.chart')];
  return { charts: figures.length,
           empty: figures.filter((f) => { const svg = f.querySelector('svg');
             return !svg || svg.querySelectorAll('path, text').length === 0; })
             .map((f) => f.dataset.chart) };";

#[test]
fn every_page_asset_and_action_needs_an_operator_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, port, operator) = server(dir.path());

    for path in ["/", "/ui/apps/acme/web"] {
        let (status, body) = get(port, path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            body.contains("Operator token"),
            "{path} shows the login form: {body}"
        );
        let (status, body) = get(port, path, Some(APP_TOKEN));
        assert_eq!(status, 401, "{path} with an application's token: {body}");
        let (status, body) = get(port, path, Some(&operator));
        assert_eq!(status, 200, "{path}: {body}");
    }
    for path in [
        "/ui/api/fleet",
        "/ui/api/apps/acme/web",
        "/ui/assets/echarts.min.js",
        "/ui/assets/charts.js",
    ] {
        for token in [
            None,
            Some(APP_TOKEN),
            Some("servo_op_not-a-real-operator-token"),
        ] {
            let (status, body) = get(port, path, token);
            assert_eq!(status, 401, "{path} with {token:?}: {body}");
        }
        assert_eq!(get(port, path, Some(&operator)).0, 200, "{path}");
    }
    for action in ["pause", "resume", "retire", "budget"] {
        let path = format!("/ui/api/apps/acme/web/{action}");
        for token in [None, Some(APP_TOKEN)] {
            let (status, body) =
                http::exchange(http::local(port), "POST", &path, token, br#"{"trials": 5}"#);
            assert_eq!(status, 401, "{action} with {token:?}: {body}");
        }
    }
    // Nothing was done by the refused actions: the audit log is empty of them.
    let (_, fleet) = get(port, "/ui/api/fleet", Some(&operator));
    let fleet: Value = serde_json::from_str(&fleet).expect("json");
    let actions: Vec<&str> = fleet["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["add-operator-token"], "{fleet}");
    assert_eq!(fleet["applications"][0]["trials_planned"], 200, "{fleet}");

    // An operator's budget change is applied and audited.
    let (status, body) = http::exchange(
        http::local(port),
        "POST",
        "/ui/api/apps/acme/web/budget",
        Some(&operator),
        br#"{"trials": 7}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (_, fleet) = get(port, "/ui/api/fleet", Some(&operator));
    let fleet: Value = serde_json::from_str(&fleet).expect("json");
    assert_eq!(fleet["applications"][0]["trials_planned"], 7, "{fleet}");
    assert_eq!(fleet["audit"][0]["action"], "budget", "{fleet}");
    assert_eq!(fleet["audit"][0]["detail"], "trials = 7", "{fleet}");
}

#[test]
fn an_operator_watches_a_study_live_then_pauses_and_resumes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, port, operator) = server(dir.path());
    let browser = Browser::start();
    let base = format!("http://127.0.0.1:{port}");

    // Log in through the form: the cookie it sets opens the pages.
    browser.open(&format!("{base}/"));
    browser.wait_for(
        "the login form",
        "return document.getElementById('token')",
        Duration::from_secs(10),
    );
    browser.type_into("#token", &operator);
    // The only error so far: the page itself answered 401 until the login.
    let errors = browser.console_errors();
    assert!(
        errors
            .iter()
            .all(|e| e.contains(&format!("{base}/ - ")) && e.contains("401")),
        "{errors:?}"
    );
    browser.click("form#login button");
    // The servo starts once the page is up, so the study is still running while it is watched.
    let servo = start_servo(dir.path(), port);
    browser.wait_for(
        "the fleet table",
        "return document.querySelector('tr[data-app=\"acme/web\"]')",
        Duration::from_secs(15),
    );
    browser.wait_for(
        "a finished trial on the fleet page",
        "const row = document.querySelector('tr[data-app=\"acme/web\"]');
         return row && !row.cells[2].textContent.startsWith('0 /')",
        Duration::from_secs(30),
    );
    shoot(&browser, "fleet");
    assert_eq!(browser.console_errors(), Vec::<String>::new());

    browser.click("tr[data-app=\"acme/web\"] a");
    // Objective, three settings (the enum `mode` included), parallel coordinates, one SLO.
    let drawn = browser.wait_for(
        "every chart",
        &format!("const r = (() => {{ {CHARTS} }})(); return r.charts >= 6 && r.empty.length === 0 ? r : null"),
        Duration::from_secs(30),
    );
    assert!(drawn["charts"].as_u64() >= Some(6), "{drawn}");
    let names: Value = browser.eval(
        "return [...document.querySelectorAll('figure.chart')].map((f) => f.dataset.chart)",
        Vec::new(),
    );
    for chart in [
        "objective",
        "setting:main.mode",
        "setting:main.cpu",
        "parallel",
        "slo:time_waited < 10s",
    ] {
        assert!(
            names
                .as_array()
                .is_some_and(|n| n.iter().any(|c| c == chart)),
            "no {chart} chart in {names}"
        );
    }

    // New trials appear without a reload: the marker set now survives.
    browser.eval("window.servoMarker = 42; return null", Vec::new());
    let shown = |b: &Browser| -> u64 {
        b.eval(
            "const p = document.querySelector('.table p'); return p ? Number(p.textContent.split(' of ')[1].split(' ')[0]) : 0",
            Vec::new(),
        )
        .as_u64()
        .unwrap_or(0)
    };
    let before = shown(&browser);
    browser.wait_for(
        "a new trial on the open page",
        &format!("const p = document.querySelector('.table p'); return p && Number(p.textContent.split(' of ')[1].split(' ')[0]) > {before}"),
        Duration::from_secs(30),
    );
    assert_eq!(
        browser.eval("return window.servoMarker", Vec::new()),
        42,
        "the page reloaded"
    );
    shoot(&browser, "application");

    // Pause: confirmed in the page, then the servo is told to sleep with the reason.
    browser.click("#pause");
    browser.accept_dialog();
    browser.wait_for(
        "the paused state",
        "return document.getElementById('state').textContent === 'paused'",
        Duration::from_secs(10),
    );
    servo.wait_for_log("paused by operator:");
    let paused_at = shown(&browser);
    browser.click("#resume");
    browser.accept_dialog();
    browser.wait_for(
        "trials again after resuming",
        &format!("const p = document.querySelector('.table p'); return document.getElementById('state').textContent === 'running' && p && Number(p.textContent.split(' of ')[1].split(' ')[0]) > {paused_at} + 1"),
        Duration::from_secs(40),
    );
    let audit: Value = browser.eval(
        "return [...document.querySelectorAll('#audit tbody tr')].map((r) => r.cells[2].textContent)",
        Vec::new(),
    );
    assert_eq!(
        audit,
        serde_json::json!(["resume", "pause"]),
        "the audit log, newest first"
    );
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn the_report_draws_every_setting_offline_with_readable_axes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        r#"name: report
optimizer:
  trials: 9
  seed: 2
  objective: { minimize: main.cpu * main.memory }
  constraints: [time_waited < 5s]
  control: { duration: 50ms }
wait:
  measure_enabled: true
  components:
    main:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 2 }
        memory: { type: memory, min: 0.5, max: 8, step: 0.5, value: 4 }
        algorithm: { type: enum, values: [fast, balanced, thorough], value: balanced }
"#,
    )
    .expect("config");
    let (code, _, stderr) = common::run(&config, &["run"]);
    assert_eq!(code, 0, "{stderr}");
    let report = dir.path().join("report.html");
    let out = common::output(
        &config,
        &["report", "--output", report.to_str().expect("utf-8")],
    );
    common::assert_success(&out);

    let browser = Browser::start();
    browser.open(&format!("file://{}", report.display()));
    let drawn = browser.wait_for(
        "every chart",
        &format!("const r = (() => {{ {CHARTS} }})(); return r.charts > 0 ? r : null"),
        Duration::from_secs(20),
    );
    assert_eq!(drawn["empty"], serde_json::json!([]), "{drawn}");
    let names = browser.eval(
        "return [...document.querySelectorAll('figure.chart')].map((f) => f.dataset.chart)",
        Vec::new(),
    );
    for chart in [
        "objective",
        "setting:main.cpu",
        "setting:main.memory",
        "setting:main.algorithm",
        "parallel",
        "slo:time_waited < 5s",
        "importance",
    ] {
        assert!(
            names
                .as_array()
                .is_some_and(|n| n.iter().any(|c| c == chart)),
            "no {chart} chart in {names}"
        );
    }
    // The enum's axis names its choices.
    let labels = browser.eval(
        "return [...document.querySelectorAll('figure.chart[data-chart=\"setting:main.algorithm\"] svg text')].map((t) => t.textContent)",
        Vec::new(),
    );
    for choice in ["fast", "balanced", "thorough"] {
        assert!(
            labels
                .as_array()
                .is_some_and(|l| l.iter().any(|t| t == choice)),
            "{choice} not on the axis: {labels}"
        );
    }
    // Every number on every axis has at most four significant digits.
    let texts = browser.eval(
        "return [...document.querySelectorAll('figure.chart svg text')].map((t) => t.textContent)",
        Vec::new(),
    );
    let numbers: Vec<&str> = texts
        .as_array()
        .expect("texts")
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| t.parse::<f64>().is_ok())
        .collect();
    assert!(numbers.len() > 10, "axes carry numbers: {texts}");
    for n in &numbers {
        let digits: String = n
            .trim_start_matches('-')
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let significant = digits.trim_start_matches('0');
        let significant = if n.contains('.') {
            significant
        } else {
            significant.trim_end_matches('0')
        };
        assert!(
            significant.len() <= 4,
            "axis label {n} has more than four significant digits"
        );
    }
    // Offline: nothing was fetched, and nothing went wrong.
    let fetched = browser.eval(
        "return performance.getEntriesByType('resource').length",
        Vec::new(),
    );
    assert_eq!(fetched, 0, "the report fetched something");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
    shoot(&browser, "report");
}

#[test]
fn the_report_of_a_two_objective_study_draws_its_front_and_marks_the_best() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        r#"name: pareto-report
optimizer:
  trials: 10
  seed: 4
  algorithm: random
  objective:
    minimize: main.cpu * 2 + main.memory
    maximize: time_waited
  constraints: [time_waited < 5s]
  control: { duration: 50ms }
wait:
  measure_enabled: true
  components:
    main:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 2 }
        memory: { type: memory, min: 0.5, max: 8, step: 0.5, value: 4 }
"#,
    )
    .expect("config");
    let (code, _, stderr) = common::run(&config, &["run"]);
    assert_eq!(code, 0, "{stderr}");
    let report = dir.path().join("report.html");
    common::assert_success(&common::output(
        &config,
        &["report", "--output", report.to_str().expect("utf-8")],
    ));
    let data = common::report_data(&std::fs::read_to_string(&report).expect("report"));
    let front: Vec<&Value> = data["pareto"]["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter(|p| p["front"] == true)
        .collect();
    assert!(!front.is_empty(), "{data:#}");

    let browser = Browser::start();
    browser.open(&format!("file://{}", report.display()));
    let drawn = browser.wait_for(
        "every chart",
        &format!("const r = (() => {{ {CHARTS} }})(); return r.charts > 0 ? r : null"),
        Duration::from_secs(20),
    );
    assert_eq!(drawn["empty"], serde_json::json!([]), "{drawn}");
    // The front's chart: the first two objectives against each other, its series drawn from the
    // study's front and selected point, its legend and axes in the SVG.
    let chart = browser.eval(
        "const f = document.querySelector('figure.chart[data-chart=\"pareto\"]');
         if (!f) return null;
         const series = echarts.getInstanceByDom(f).getOption().series;
         return { series: series.map((s) => ({ name: s.name, points: s.data.length })),
                  texts: [...f.querySelectorAll('svg text')].map((t) => t.textContent) };",
        Vec::new(),
    );
    assert!(!chart.is_null(), "no pareto chart");
    let series = chart["series"].as_array().expect("series");
    let count = |name: &str| {
        series
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["points"].as_u64())
            .unwrap_or_else(|| panic!("no `{name}` series: {chart}"))
    };
    assert_eq!(count("Pareto front"), front.len() as u64, "{chart}");
    assert_eq!(count("best (knee)"), 1, "{chart}");
    let texts = chart["texts"].as_array().expect("texts");
    for wanted in [
        "Pareto front",
        "best (knee)",
        "main.cpu * 2 + main.memory, ← better",
    ] {
        assert!(
            texts.iter().any(|t| t == wanted),
            "`{wanted}` not drawn: {texts:?}"
        );
    }
    assert!(
        texts.iter().any(|t| t
            .as_str()
            .is_some_and(|t| t.starts_with("time_waited (") && t.ends_with("↑ better"))),
        "{texts:?}"
    );
    assert_eq!(browser.console_errors(), Vec::<String>::new());
    shoot(&browser, "report-pareto");
}
