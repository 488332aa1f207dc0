use super::checks::*;
use super::running::*;
use super::settings::*;
use super::template::*;
use super::usage::*;
use super::*;
use servo_core::connector::ConnectorSettings;
use servo_core::types::{SettingKind, SettingValue};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn settings(yaml: serde_json::Value) -> Settings {
    serde_json::from_value(yaml).expect("settings parse")
}

fn demo() -> Settings {
    settings(serde_json::json!({
        "command": "python3",
        "args": ["-m", "http.server", "{{ port }}", "--workers={{workers}}", "{{ \"{{\" }}x}}"],
        "env": {"MODE": "{{ mode }}"},
        "settings": {
            "port": {"type": "int", "min": 1024, "max": 65535, "value": 8080},
            "workers": {"type": "int", "min": 1, "max": 8, "step": 1, "value": 2},
            "mode": {"type": "enum", "values": ["fast", "safe"], "value": "safe"},
            "ratio": {"type": "range", "min": 0, "max": 1, "value": 0.5},
        },
        "ready": {"http": "http://127.0.0.1:{{ port }}/"},
    }))
}

fn problem_paths(settings: &Settings) -> Vec<String> {
    settings
        .validate()
        .iter()
        .map(|p| p.path.to_string())
        .collect()
}

#[test]
fn templates_render_setting_values_and_literals() {
    let s = demo();
    assert!(s.validate().is_empty(), "{:?}", s.validate());
    let launch = s.launch().expect("templates parse");
    let mut values = s.baseline();
    let render = |values: &Values| {
        launch
            .args
            .iter()
            .map(|t| t.render(values))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        render(&values),
        ["-m", "http.server", "8080", "--workers=2", "{{x}}"]
    );
    values.insert("workers".into(), SettingValue::Float(4.0));
    assert_eq!(
        render(&values)[3],
        "--workers=4",
        "a whole float renders without `.0`"
    );
    assert_eq!(launch.env[0].1.render(&values), "safe");
}

#[test]
fn a_template_naming_an_unknown_setting_is_a_problem_at_its_path() {
    let mut s = demo();
    s.args[3] = "--workers={{ wrkers }}".into();
    s.env.insert("CACHE".into(), "{{ cache }}".into());
    let problems = s.validate();
    let paths: Vec<String> = problems.iter().map(|p| p.path.to_string()).collect();
    assert_eq!(paths, ["args[3]", "env.CACHE"]);
    assert!(
        problems[0].message.contains("did you mean `workers`?"),
        "{}",
        problems[0].message
    );
    assert!(
        problems[1]
            .message
            .contains("settings: mode, port, ratio, workers"),
        "{}",
        problems[1].message
    );
}

#[test]
fn unclosed_and_empty_placeholders_are_problems() {
    let mut s = demo();
    s.args = vec!["{{ port".into(), "{{}}".into()];
    let problems = s.validate();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].message.contains("never closed"));
    assert!(problems[1].message.contains("empty"));
}

#[test]
fn settings_need_a_baseline_and_a_text_friendly_kind() {
    let mut s = demo();
    s.settings.get_mut("workers").expect("declared").value = None;
    s.settings.get_mut("ratio").expect("declared").kind = SettingKind::Cpu;
    assert_eq!(
        problem_paths(&s),
        ["settings.ratio.type", "settings.workers"]
    );
}

#[test]
fn ready_needs_exactly_one_probe_that_renders_with_the_baseline() {
    let mut s = demo();
    let ready = s.ready.as_mut().expect("declared");
    ready.tcp = Some(PortSpec::Number(8080));
    assert_eq!(problem_paths(&s), ["ready"]);

    let mut s = demo();
    s.ready = Some(Ready {
        http: None,
        tcp: Some(PortSpec::Template("{{ mode }}".into())),
        timeout: default_ready_timeout(),
        interval: default_ready_interval(),
    });
    let problems = s.validate();
    assert_eq!(problems[0].path.to_string(), "ready.tcp");
    assert!(
        problems[0].message.contains("not a TCP port"),
        "{}",
        problems[0].message
    );

    s.ready = Some(Ready {
        http: Some("localhost:{{ port }}".into()),
        tcp: None,
        timeout: default_ready_timeout(),
        interval: default_ready_interval(),
    });
    assert_eq!(problem_paths(&s), ["ready.http"]);
}

#[test]
fn tcp_targets_default_to_loopback_and_accept_host_port() {
    let s = BTreeMap::new();
    let probe =
        |text: &str| Probe::Tcp(Template::parse(text, &s).expect("parses")).render(&Values::new());
    assert_eq!(
        probe("9000"),
        Ok(Target::Tcp {
            host: "127.0.0.1".into(),
            port: 9000
        })
    );
    assert_eq!(
        probe("[::1]:9000"),
        Ok(Target::Tcp {
            host: "::1".into(),
            port: 9000
        })
    );
    assert!(probe("0").is_err());
    assert!(probe("70000").is_err());
}

#[test]
fn the_example_is_valid() {
    let example = Settings::example();
    assert!(example.validate().is_empty(), "{:?}", example.validate());
    let json = serde_json::to_value(&example).expect("serializes");
    let back: Settings = serde_json::from_value(json).expect("round-trips");
    assert_eq!(back.args, example.args);
}

#[test]
fn stat_fields_are_counted_from_the_last_parenthesis() {
    // comm may contain spaces and parentheses; utime=7 stime=3 cutime=2 cstime=1.
    let stat =
        "4242 (we) ird (name) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 123 4096 300";
    assert_eq!(parse_stat_ticks(stat), Some(13));
    assert_eq!(parse_stat_ticks("4242 (truncated) S 1 2"), None);
    assert_eq!(parse_stat_ticks("garbage"), None);
}

#[test]
fn status_fields_are_read_in_kib() {
    let status = "Name:\tpython3\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
    assert_eq!(parse_status_kib(status, "VmRSS:"), Some(10240));
    assert_eq!(parse_status_kib(status, "VmHWM:"), Some(20480));
    assert_eq!(parse_status_kib("Name:\tzombie\n", "VmRSS:"), None);
}

#[test]
fn the_own_process_tree_is_readable() {
    let usage = read_usage(std::process::id()).expect("reads /proc/self");
    assert!(usage.rss_bytes > 1 << 20, "{usage:?}");
    assert!(ticks_per_second() >= 1.0);
}

#[test]
fn a_window_sums_cpu_steps_and_averages_memory() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
    let usage = |cpu_ticks, mib: u64| Usage {
        cpu_ticks,
        rss_bytes: mib << 20,
    };
    let mut w = Window::new(usage(1000, 10), 100.0, t0);
    w.add(usage(1050, 30), at(500), 0.5);
    // A forked worker left the tree: the sum drops, which takes nothing from what was counted.
    w.add(usage(1040, 20), at(1000), 1.0);
    for step in 1..=SAMPLES_PER_POINT {
        w.add(
            usage(1040 + 5 * step, 20),
            at(1000 + 100 * step),
            1.0 + 0.1 * step as f64,
        );
    }
    w.finish(2.0);
    let readings = w.readings();
    let value = |name: &str| {
        readings
            .iter()
            .find(|r| r.metric.name == name)
            .map(|r| r.value)
    };
    assert_eq!(value("cpu_seconds"), Some(1.0));
    assert_eq!(value("cpu_cores_avg"), Some(0.5));
    assert_eq!(value("rss_max_bytes"), Some((30u64 << 20) as f64));
    let samples = 3 + SAMPLES_PER_POINT;
    let mean = ((10 + 30 + 20 * (samples - 2)) << 20) as f64 / samples as f64;
    assert_eq!(value("rss_mean_bytes"), Some(mean));
    let cores = &readings[1].series.as_ref().expect("a series").points;
    assert_eq!(
        cores.len(),
        2,
        "a full point, then the partial one: {cores:?}"
    );
    assert!(
        cores.iter().all(|(_, c)| (c - 0.5).abs() < 1e-9),
        "{cores:?}"
    );

    w.peak_rss = Some(64 << 20);
    assert_eq!(
        w.readings()[2].value,
        (64u64 << 20) as f64,
        "the kernel's peak wins when higher"
    );
}

#[tokio::test]
async fn output_is_kept_line_by_line_and_bounded() {
    let mut bytes = b"first\r\n".to_vec();
    bytes.extend(vec![b'x'; 3 * MAX_LINE_BYTES]);
    bytes.extend(b"\nbad \xff byte\nlast, without a newline");
    let tail = Arc::new(Tail::default());
    forward(&bytes[..], "stderr", 1, "test".into(), Arc::clone(&tail)).await;
    let lines = tail.lines();
    assert_eq!(lines[0], "first", "\\r\\n endings are trimmed");
    assert_eq!(
        lines[1].len(),
        MAX_LINE_BYTES,
        "a long line is cut, not kept whole"
    );
    assert_eq!(
        lines[2], "bad \u{FFFD} byte",
        "invalid UTF-8 is replaced, not fatal"
    );
    assert_eq!(lines[3], "last, without a newline");

    let many: String = (0..2 * TAIL_LINES).map(|i| format!("line {i}\n")).collect();
    let tail = Arc::new(Tail::default());
    forward(
        many.as_bytes(),
        "stdout",
        1,
        "test".into(),
        Arc::clone(&tail),
    )
    .await;
    let lines = tail.lines();
    assert_eq!(lines.len(), TAIL_LINES, "only the last lines are kept");
    assert_eq!(lines[0], format!("line {TAIL_LINES}"));
}

#[test]
fn command_lines_are_quoted_for_a_shell() {
    assert_eq!(shell_quote("--port=8080"), "--port=8080");
    assert_eq!(shell_quote("two words"), "'two words'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn programs_are_found_like_execvp_finds_them() {
    let path = std::env::var_os("PATH");
    assert!(find_program(Path::new("sh"), path.clone()).is_some());
    assert!(find_program(Path::new("no-such-program-here"), path).is_none());
    assert!(find_program(Path::new("/bin/sh"), None).is_some());
    assert!(
        find_program(Path::new("/etc/passwd"), None).is_none(),
        "not executable"
    );
}
