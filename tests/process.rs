//! The `process` connector through the real binary, with a real child: `tests/fixtures/process/app.py`,
//! a small Python HTTP server that appends every event (start, serve, stop) to a log file, so each
//! test can assert which process ran with which values and that every one of them was stopped.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{fixture, run};
use serde_json::{Value, json};

/// Whether a process has ended: gone from /proc, or a zombie (dead; its new parent reaps it).
fn gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Waits up to `within` for the pid to end.
fn ends_within(pid: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gone(pid)
}

fn kill(pid: u64, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// One test's application: a config in a temporary directory and the event log of its processes.
/// Dropping it kills whatever the log names that is still alive, so a failing test leaves nothing.
struct App {
    _dir: tempfile::TempDir,
    log: PathBuf,
    config: PathBuf,
}

impl App {
    /// A config running app.py with `args` (templated) and the given `process` section fields.
    fn new(args: &[&str], section: Value) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("events.jsonl");
        let mut argv = vec![json!(fixture("process/app.py")), json!("--log"), json!(log)];
        argv.extend(args.iter().map(|a| json!(a)));
        let mut process = json!({ "command": "python3", "args": argv });
        for (key, value) in section.as_object().expect("a mapping") {
            process[key] = value.clone();
        }
        // JSON is YAML.
        let config = dir.path().join("servo.yaml");
        let text = serde_json::to_string_pretty(&json!({ "process": process })).expect("json");
        std::fs::write(&config, text).expect("write the config");
        App {
            _dir: dir,
            log,
            config,
        }
    }

    /// A server on `port`, ready when `/healthz` answers.
    fn server(section: Value) -> App {
        let mut section = section;
        section["ready"] =
            json!({ "http": "http://127.0.0.1:{{ port }}/healthz", "timeout": "20s" });
        Self::new(&["--port", "{{ port }}"], section)
    }

    fn servo(&self, args: &[&str]) -> (i32, String, String) {
        run(&self.config, args)
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
            .collect()
    }

    /// The events as `event:pid` words, pids numbered in order of appearance (`start:1 serve:1 ...`).
    fn story(&self) -> Vec<String> {
        let mut pids: Vec<u64> = Vec::new();
        self.events()
            .iter()
            .map(|e| {
                let pid = e["pid"].as_u64().expect("pid");
                let n = pids.iter().position(|p| *p == pid).unwrap_or_else(|| {
                    pids.push(pid);
                    pids.len() - 1
                }) + 1;
                format!("{}:{n}", e["event"].as_str().expect("event"))
            })
            .collect()
    }

    fn pids(&self, event: &str) -> Vec<u64> {
        self.events()
            .iter()
            .filter(|e| e["event"] == event)
            .map(|e| e["pid"].as_u64().expect("pid"))
            .collect()
    }

    fn all_pids(&self) -> Vec<u64> {
        let mut pids: Vec<u64> = self
            .events()
            .iter()
            .filter_map(|e| e["pid"].as_u64())
            .collect();
        pids.extend(self.events().iter().filter_map(|e| e["child"].as_u64()));
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    fn assert_all_ended(&self) {
        for pid in self.all_pids() {
            assert!(
                ends_within(pid, Duration::from_secs(5)),
                "pid {pid} outlived servo"
            );
        }
    }

    /// Waits until the log holds `event` (the child's own readiness signal, not a guess).
    fn wait_for(&self, event: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| e["event"] == event) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no `{event}` event within {within:?}: {:?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        for pid in self.all_pids() {
            if !gone(pid) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// `servo` running in the background, with its stderr read line by line. The process connector logs
/// at debug level, so its `measuring for ...` line tells when a measurement has begun.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Background {
    fn start(config: &Path, args: &[&str]) -> Background {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_servo"));
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("SERVO_")) {
            command.env_remove(key);
        }
        let mut child = command
            .env("NO_COLOR", "1")
            .env("SERVO_LOG_LEVEL", "warn,servo_connectors::process=debug")
            .args(args)
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("servo starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Background { child, lines }
    }

    /// Waits for a stderr line containing `text`.
    fn wait_for_line(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!(
            "servo never logged `{text}`; it logged:\n{}",
            seen.join("\n")
        );
    }

    fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("servo can be waited for") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn int_setting(min: u16, max: u16, value: u16) -> Value {
    json!({ "type": "int", "min": min, "max": max, "value": value })
}

fn port_settings(ports: &[u16]) -> Value {
    let values: Vec<String> = ports.iter().map(ToString::to_string).collect();
    json!({ "port": { "type": "enum", "values": values, "value": values[0] } })
}

#[test]
fn describe_starts_the_process_with_its_baseline_and_stops_it() {
    let port = common::free_port();
    let mut section =
        json!({ "settings": port_settings(&[port]), "env": { "APP_TAG": "port-{{ port }}" } });
    section["component"] = json!("web");
    let app = App::server(section);
    let (code, stdout, stderr) = app.servo(&["describe", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");

    let description: Value = serde_json::from_str(&stdout).expect("json");
    let web = &description["components"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["settings"][0]["value"], port.to_string());
    let metrics: Vec<&str> = description["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(
        metrics,
        [
            "cpu_seconds",
            "cpu_cores_avg",
            "rss_max_bytes",
            "rss_mean_bytes"
        ]
    );

    assert_eq!(app.story(), ["start:1", "serve:1", "stop:1"]);
    let start = &app.events()[0];
    assert_eq!(start["port"], port);
    assert_eq!(start["tag"], format!("port-{port}"), "env is templated");
    assert_eq!(
        start["servo_vars"],
        json!([]),
        "servo's own SERVO_* variables stay with servo"
    );
    assert_eq!(app.events()[1]["path"], "/healthz");
    app.assert_all_ended();
}

#[test]
fn adjust_restarts_the_process_with_the_new_values() {
    let (old_port, new_port) = (common::free_port(), common::free_port());
    let app = App::server(json!({ "settings": port_settings(&[old_port, new_port]) }));
    let assignment = format!("main.port={new_port}");
    let (code, stdout, stderr) = app.servo(&["adjust", &assignment, "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        report["description"]["components"][0]["settings"][0]["value"],
        new_port.to_string()
    );

    // The old process stopped before the new one started, and the new one answered on the new port.
    assert_eq!(
        app.story(),
        [
            "start:1", "serve:1", "stop:1", "start:2", "serve:2", "stop:2"
        ]
    );
    let events = app.events();
    assert_eq!(events[0]["port"], old_port);
    assert_eq!(events[3]["port"], new_port);
    assert_eq!(
        events[4]["port"], new_port,
        "the ready probe reached the new process"
    );
    app.assert_all_ended();
}

#[test]
fn restart_on_change_keeps_a_process_whose_command_line_did_not_change() {
    let port = common::free_port();
    let settings = json!({ "port": { "type": "int", "min": port, "max": port, "value": port }, "spare": int_setting(1, 4, 1) });
    let app = App::server(json!({ "settings": settings }));
    let (code, _, stderr) = app.servo(&["adjust", "main.spare=2"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        app.story(),
        ["start:1", "serve:1", "stop:1"],
        "`spare` is in no template"
    );

    let always = App::server(json!({ "settings": settings, "restart": "always" }));
    let (code, _, stderr) = always.servo(&["adjust", "main.spare=2"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        always.story(),
        [
            "start:1", "serve:1", "stop:1", "start:2", "serve:2", "stop:2"
        ]
    );
    always.assert_all_ended();
}

#[test]
fn a_process_that_exits_at_once_is_rejected_and_the_previous_values_restored() {
    let port = common::free_port();
    let mut settings = port_settings(&[port]);
    settings["mode"] = json!({ "type": "enum", "values": ["ok", "crash"], "value": "ok" });
    let mut section = json!({ "settings": settings });
    section["ready"] = json!({ "http": "http://127.0.0.1:{{ port }}/", "timeout": "20s" });
    let app = App::new(&["--port", "{{ port }}", "--mode", "{{ mode }}"], section);

    let (code, _, stderr) = app.servo(&["adjust", "main.mode=crash"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("rejected (unstable)"), "{stderr}");
    assert!(
        stderr.contains("exit status: 3"),
        "the exit status is quoted: {stderr}"
    );
    assert!(
        stderr.contains("boom: crashing on purpose"),
        "its last output is quoted: {stderr}"
    );
    assert!(stderr.contains("restored the previous values"), "{stderr}");

    assert_eq!(
        app.story(),
        [
            "start:1", "serve:1", "stop:1", "start:2", "start:3", "serve:3", "stop:3"
        ]
    );
    let events = app.events();
    let modes: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "start")
        .filter_map(|e| e["mode"].as_str())
        .collect();
    assert_eq!(modes, ["ok", "crash", "ok"]);
    app.assert_all_ended();
}

#[test]
fn a_process_that_never_becomes_ready_times_out_quoting_its_output() {
    let port = common::free_port();
    let section = json!({
        "settings": port_settings(&[port]),
        // Long enough for Python to start and print on a loaded machine, short enough for a test.
        "ready": { "tcp": "{{ port }}", "timeout": "4s", "interval": "50ms" },
    });
    let app = App::new(&["--port", "{{ port }}", "--mode", "hang"], section);
    let started = Instant::now();
    let (code, _, stderr) = app.servo(&["describe"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("was not ready within 4s"), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "the probe is named: {stderr}"
    );
    assert!(
        stderr.contains("warming up forever"),
        "its output is quoted: {stderr}"
    );
    assert!(stderr.contains("raise `ready.timeout`"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up in time: {:?}",
        started.elapsed()
    );
    assert_eq!(app.story(), ["start:1", "stop:1"], "stopped with SIGTERM");
    app.assert_all_ended();
}

#[test]
fn a_port_already_taken_by_another_program_fails_before_starting() {
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = squatter.local_addr().expect("address").port();
    let app = App::server(json!({ "settings": port_settings(&[port]) }));
    let (code, _, stderr) = app.servo(&["describe"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port} already accepts connections")),
        "{stderr}"
    );
    assert!(
        stderr.contains("ss -ltnp"),
        "the hint says how to find the other program: {stderr}"
    );
    assert!(app.events().is_empty(), "nothing was started");
}

#[test]
fn a_missing_program_is_named_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(
        &config,
        "process:\n  command: no-such-program-for-servo-tests\n",
    )
    .expect("write");
    let (code, _, stderr) = run(&config, &["describe"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot start `no-such-program-for-servo-tests`"),
        "{stderr}"
    );
    assert!(stderr.contains("is not on PATH"), "{stderr}");
}

#[test]
fn a_template_naming_an_unknown_setting_is_a_config_error_at_its_path() {
    let app = App::new(
        &["--port", "{{ prot }}"],
        json!({ "settings": port_settings(&[8080]) }),
    );
    let (code, _, stderr) = app.servo(&["validate"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("process.args[4]"), "{stderr}");
    assert!(stderr.contains("did you mean `port`?"), "{stderr}");
}

#[test]
fn check_reports_the_program_and_the_running_process() {
    let port = common::free_port();
    let app = App::server(json!({ "settings": port_settings(&[port]) }));
    let (code, stdout, stderr) = app.servo(&["check", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    let text = report.to_string();
    for name in ["command", "working_dir", "process"] {
        assert!(
            text.contains(&format!("\"name\":\"{name}\"")),
            "check `{name}` missing: {text}"
        );
    }
    assert!(text.contains("running as pid"), "{text}");
    assert!(!text.contains("\"success\":false"), "{text}");
    app.assert_all_ended();
}

#[test]
fn measure_reports_cpu_and_memory_of_the_process() {
    let port = common::free_port();
    let app = App::new(
        &["--port", "{{ port }}", "--mode", "busy", "--rss-mb", "64"],
        json!({
            "settings": port_settings(&[port]),
            "ready": { "http": "http://127.0.0.1:{{ port }}/", "timeout": "20s" },
        }),
    );
    let (code, stdout, stderr) = app.servo(&["measure", "--duration", "2s", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    let metric = |name: &str| {
        report["metrics"][name]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: {report}"))
    };

    let cpu = metric("cpu_seconds");
    let cores = metric("cpu_cores_avg");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // One spinning thread on a shared machine: clearly busy, never more than the machine has.
    assert!(cpu > 0.1 && cpu <= 2.0 * cpus + 0.1, "cpu_seconds {cpu}");
    assert!(
        (cores * 2.0 - cpu).abs() < 0.15 * cpu + 0.02,
        "cores {cores} over 2s vs {cpu}s of CPU"
    );
    assert_eq!(report["metrics"]["cpu_seconds"]["unit"], "s");
    assert_eq!(report["metrics"]["cpu_cores_avg"]["unit"], "cores");

    let (max, mean) = (metric("rss_max_bytes"), metric("rss_mean_bytes"));
    assert!(
        mean > 64.0 * 1048576.0,
        "64 MiB of ballast is resident: mean {mean}"
    );
    assert!(
        max >= mean && max < 1024.0 * 1048576.0,
        "max {max}, mean {mean}"
    );
    let series = report["metrics"]["rss_mean_bytes"]["series"]
        .as_array()
        .expect("an rss series");
    assert!(series.len() >= 2, "one point per second: {series:?}");
    app.assert_all_ended();
}

#[test]
fn sigterm_to_servo_during_a_measurement_stops_the_process_group_and_exits_130() {
    let port = common::free_port();
    let app = App::new(
        &["--port", "{{ port }}", "--grandchild"],
        json!({
            "settings": port_settings(&[port]),
            "ready": { "http": "http://127.0.0.1:{{ port }}/", "timeout": "20s" },
        }),
    );
    let mut servo = Background::start(&app.config, &["measure", "--duration", "60s"]);
    servo.wait_for_line("measuring for", Duration::from_secs(30));
    let grandchild = app.wait_for("grandchild", Duration::from_secs(5))["child"]
        .as_u64()
        .expect("its pid");
    let child = app.pids("start")[0];
    assert!(!gone(child) && !gone(grandchild));

    kill(u64::from(servo.child.id()), "-TERM");
    let status = servo.wait(Duration::from_secs(20)).expect("servo exits");
    assert_eq!(status.code(), Some(130), "interrupted");
    assert!(gone(child), "the process was stopped before servo exited");
    assert!(
        ends_within(grandchild, Duration::from_secs(5)),
        "its group went with it"
    );
    assert_eq!(
        app.story(),
        ["start:1", "grandchild:1", "serve:1", "stop:1"]
    );
}

#[test]
fn the_process_dies_with_servo_even_when_servo_is_killed() {
    let port = common::free_port();
    let app = App::server(json!({ "settings": port_settings(&[port]) }));
    let mut servo = Background::start(&app.config, &["measure", "--duration", "60s"]);
    servo.wait_for_line("measuring for", Duration::from_secs(30));
    let child = app.pids("start")[0];

    servo.child.kill().expect("SIGKILL to servo");
    let status = servo.wait(Duration::from_secs(5)).expect("servo dies");
    assert_eq!(status.signal(), Some(9));
    assert!(
        ends_within(child, Duration::from_secs(5)),
        "PR_SET_PDEATHSIG sent it SIGTERM"
    );
    app.wait_for("stop", Duration::from_secs(1));
}

#[test]
fn servo_run_cuts_short_a_trial_whose_memory_is_far_over_its_slo() {
    let port = common::free_port();
    let app = App::new(
        &["--port", "{{ port }}", "--rss-mb", "{{ ballast }}"],
        json!({
            "settings": {
                "port": { "type": "enum", "values": [port.to_string()], "value": port.to_string() },
                "ballast": { "type": "enum", "values": ["8", "300"], "value": "8" },
            },
            "ready": { "http": "http://127.0.0.1:{{ port }}/", "timeout": "20s" },
        }),
    );
    let text = std::fs::read_to_string(&app.config).expect("the config");
    let mut config: Value = serde_json::from_str(&text).expect("JSON is YAML");
    // The baseline holds 8 MiB; the one other trial 300 MiB, three times the ceiling.
    config["optimizer"] = json!({
        "trials": 2,
        "algorithm": "random",
        "seed": 1,
        "objective": { "minimize": "cpu_seconds" },
        "constraints": ["rss_max_bytes < 100MiB"],
        "control": { "duration": "8s" },
        "store": "study.db",
    });
    std::fs::write(&app.config, config.to_string()).expect("write the config");

    let trial = common::run_two_trials(&app.config);
    let (cut, after) = common::cut_short(&trial);
    assert!(cut.starts_with("`rss_max_bytes < 100MiB` read "), "{cut}");
    assert!(after < 6.0, "stopped {after} s into an 8 s window: {cut}");
    app.assert_all_ended();
}
