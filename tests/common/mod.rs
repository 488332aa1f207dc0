//! Shared helpers for the end-to-end tests of the real `servo` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root (where `examples/` and `tests/fixtures/` live).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests").join("fixtures").join(name)
}

/// `servo` with a clean environment: no inherited `SERVO_*`, no colour, quiet logs.
pub fn servo() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_servo"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SERVO_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1").env("SERVO_LOG_LEVEL", "warn");
    cmd
}

/// `servo` as a process the test keeps running: the environment of [`servo`] without proxies
/// either (the tests only talk to 127.0.0.1), logging at `log_level`.
pub fn servo_process(log_level: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_servo"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SERVO_") || key.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1").env("SERVO_LOG_LEVEL", log_level);
    cmd
}

/// Starts `servo ARGS -c CONFIG` (see [`servo_process`]) with no stdin and piped stdout and stderr.
pub fn spawn_servo(args: &[&str], config: &Path, log_level: &str) -> std::process::Child {
    servo_process(log_level)
        .args(args)
        .arg("-c")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("servo starts")
}

/// `servo run ARGS -c CONFIG` in the background, logging at info into a file beside the config,
/// so that a test waiting on it can say why it never got there (the run exited, or hangs).
pub struct BackgroundRun {
    pub child: std::process::Child,
    config: PathBuf,
    log: PathBuf,
}

impl BackgroundRun {
    pub fn start(config: &Path, args: &[&str]) -> Self {
        let log = config.with_extension("run.log");
        let file = std::fs::File::create(&log).expect("create the run's log");
        let child = servo_process("info")
            .arg("run")
            .args(args)
            .arg("-c")
            .arg(config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .expect("servo run starts");
        Self {
            child,
            config: config.to_path_buf(),
            log,
        }
    }

    /// `servo trials -o json` every 100 ms until `done` holds of the list, which it returns. Fails
    /// the test with `what`, whether the run exited, and its log once the run has exited without
    /// it, or after 60 s.
    pub fn wait_for(
        &mut self,
        what: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let out = output(&self.config, &["trials", "-o", "json"]);
            if let Ok(list) = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
                && done(&list)
            {
                return list;
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || std::time::Instant::now() > deadline {
                let log = self.log();
                panic!(
                    "{what}; servo run {}; last `servo trials`: {}; its log:\n{log}",
                    exited.map_or("still runs".to_string(), |s| format!("exited: {s}")),
                    String::from_utf8_lossy(&out.stderr),
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// What the run has logged so far (at info).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

/// How many of `trials` (`servo trials -o json`) are in `state`.
pub fn count(trials: &[serde_json::Value], state: &str) -> usize {
    trials.iter().filter(|t| t["state"] == state).count()
}

/// Runs `servo ARGS -c CONFIG` and returns (exit code, stdout, stderr).
pub fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let output = servo()
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("servo runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every `*.yaml` in `examples/`.
pub fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// The `optimizer:` and `settings:` of a config for the remote optimizer `example.com/app` at
/// `base_url` (`settings` a YAML flow mapping), ending with a newline.
pub fn remote_optimizer(token: &str, base_url: &str, settings: &str) -> String {
    remote_optimizer_of("example.com/app", token, base_url, settings)
}

/// [`remote_optimizer`] for the application `id`.
pub fn remote_optimizer_of(id: &str, token: &str, base_url: &str, settings: &str) -> String {
    format!(
        "optimizer:\n  id: {id}\n  token: {token}\n  base_url: {base_url}\nsettings: {settings}\n"
    )
}

/// Runs `servo ARGS -c CONFIG` to its end, for tests that look at the whole output.
pub fn output(config: &Path, args: &[&str]) -> std::process::Output {
    servo()
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("runs")
}

/// Fails the test with servo's stderr unless it exited 0.
#[track_caller]
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `servo optimizer app create APP --store STORE --token-file TOKEN_FILE EXTRA`, the token written
/// to `token_file` first.
pub fn create_app(
    token_file: &Path,
    store: &std::ffi::OsStr,
    app: &str,
    token: &str,
    extra: &[&str],
) {
    std::fs::write(token_file, token).expect("write the token file");
    let output = servo()
        .args(["optimizer", "app", "create", app, "--store"])
        .arg(store)
        .arg("--token-file")
        .arg(token_file)
        .args(extra)
        .output()
        .expect("servo runs");
    assert!(
        output.status.success(),
        "app create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `components:` of a `command:` section (indented under it): `main`, with a cpu setting at 2 and a
/// memory setting at 4.
pub const MAIN_CPU_MEMORY: &str = "  components:
    main:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 2 }
        memory: { type: memory, min: 0.5, max: 8, step: 0.5, value: 4 }
";

/// A journaled trial's configuration (as `servo trials -o json` shows it): setting → number.
pub fn configuration(trial: &serde_json::Value) -> std::collections::BTreeMap<String, f64> {
    trial["config"]
        .as_object()
        .expect("config")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().expect("a numeric setting")))
        .collect()
}

/// The complete trial with the lowest objective.
pub fn best_complete(trials: &[serde_json::Value]) -> &serde_json::Value {
    trials
        .iter()
        .filter(|t| t["state"] == "complete")
        .min_by(|a, b| {
            let objective = |t: &serde_json::Value| t["objective"].as_f64().expect("an objective");
            objective(a).total_cmp(&objective(b))
        })
        .expect("a complete trial")
}

/// The setting `component.name` in what `servo describe -o json` printed, if there is one.
pub fn setting<'a>(
    description: &'a serde_json::Value,
    component: &str,
    name: &str,
) -> Option<&'a serde_json::Value> {
    description["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == component))
        .and_then(|c| c["settings"].as_array())
        .and_then(|ss| ss.iter().find(|s| s["name"] == name))
}

/// The study data a report (`servo report`, or the server's `/report`) embeds for its charts: the
/// page draws from exactly this (tests/ui.rs checks the drawing in a browser).
pub fn report_data(html: &str) -> serde_json::Value {
    let start = html
        .find(r#"<script type="application/json" id="study-data">"#)
        .map(|i| i + r#"<script type="application/json" id="study-data">"#.len())
        .expect("the report embeds its data");
    let end = html[start..].find("</script>").expect("the data ends") + start;
    serde_json::from_str(&html[start..end]).expect("the embedded data is JSON")
}

/// A loopback port that was free a moment ago (the OS picked it, then it was released so the server
/// under test can bind it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `servo trials -o json` of the servo `config` describes, succeeding.
pub fn trials(config: &Path) -> Vec<serde_json::Value> {
    let out = output(config, &["trials", "-o", "json"]);
    assert_success(&out);
    serde_json::from_slice(&out.stdout).expect("servo trials -o json prints a JSON array")
}

/// A JSON number, or a failed test naming what was there instead.
pub fn number(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The `optimizer` section of a study of two trials (the baseline, then one random configuration)
/// minimizing `objective` under `constraint`, measuring for `duration`, journaled beside the
/// config: enough to see a trial cut short.
pub fn two_trial_study(objective: &str, constraint: &str, duration: &str) -> String {
    format!(
        "optimizer:
  trials: 2
  algorithm: random
  seed: 1
  objective:
    minimize: {objective}
  constraints:
    - {constraint}
  control: {{ duration: {duration} }}
  store: study.db
"
    )
}

/// Runs the study of [`two_trial_study`] that `config` describes and returns its second trial,
/// having checked that the baseline was measured whole (it is the reference, never cut).
pub fn run_two_trials(config: &Path) -> serde_json::Value {
    assert_success(&output(config, &["run", "--no-checks", "-o", "json"]));
    let mut trials = trials(config);
    assert_eq!(trials.len(), 2, "{trials:#?}");
    assert!(trials[0].get("cut_short").is_none(), "{:#}", trials[0]);
    trials.pop().expect("two trials")
}

/// Why `trial` was cut short and how many seconds into its measurement, failing the test when it
/// was not.
pub fn cut_short(trial: &serde_json::Value) -> (&str, f64) {
    let cut = trial["cut_short"]
        .as_str()
        .unwrap_or_else(|| panic!("not cut short: {trial:#}"));
    let after = cut
        .split("after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {cut}"));
    (cut, after)
}

/// The `process` section running servo's demo app on `port`, with `settings` (each named after
/// the demo app's flag it sets, `cache_mb` for `--cache-mb`, with its YAML domain), and a `vegeta`
/// section loading it at `rate`, reporting its readings so far every `reporting_interval` when
/// given.
pub fn demo_app(
    port: u16,
    settings: &[(&str, &str)],
    rate: &str,
    reporting_interval: Option<&str>,
) -> String {
    let args: String = settings
        .iter()
        .map(|(name, _)| format!(", --{}, \"{{{{ {name} }}}}\"", name.replace('_', "-")))
        .collect();
    let domains: String = settings
        .iter()
        .map(|(name, domain)| format!("    {name}: {domain}\n"))
        .collect();
    let interval = reporting_interval
        .map(|i| format!("  reporting_interval: {i}\n"))
        .unwrap_or_default();
    format!(
        r#"process:
  component: demo
  command: servo
  args: [demo-app, --port, "{{{{ port }}}}"{args}]
  settings:
{domains}    port: {{ type: int, min: {port}, max: {port}, value: {port}, pinned: true }}
  ready: {{ http: "http://127.0.0.1:{{{{ port }}}}/healthz", timeout: 60s }}
vegeta:
  rate: {rate}
  target: GET http://127.0.0.1:{port}/work
  timeout: 2s
{interval}"#
    )
}

/// The demo app on `port` in meltdown: one worker, no cache and 400 requests/s, at least 1.2
/// cores of misses for one core whichever algorithm is tried, so the queue fills and most
/// requests are refused.
pub fn melting_demo_app(port: u16) -> String {
    demo_app(
        port,
        &[
            (
                "workers",
                "{ type: int, min: 1, max: 1, value: 1, pinned: true }",
            ),
            (
                "cache_mb",
                "{ type: int, min: 0, max: 0, value: 0, pinned: true }",
            ),
            (
                "algorithm",
                "{ type: enum, values: [fast, balanced, thorough], value: fast }",
            ),
        ],
        "400/1s",
        Some("1s"),
    )
}

/// A study of the demo app on `port`: workers, cache size and algorithm searched around the
/// quickstart's values, loaded at 200 requests/s.
pub fn searched_demo_app(port: u16) -> String {
    demo_app(
        port,
        &[
            (
                "workers",
                "{ type: int, min: 1, max: 4, step: 1, value: 4 }",
            ),
            (
                "cache_mb",
                "{ type: int, min: 0, max: 256, step: 16, value: 128 }",
            ),
            (
                "algorithm",
                "{ type: enum, values: [fast, balanced, thorough], value: balanced }",
            ),
        ],
        "200/1s",
        Some("1s"),
    )
}
