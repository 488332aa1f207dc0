//! Secrets never leak: the real `servo` binary is given distinctive credentials — the optimizer
//! token in the file, in `SERVO_OPTIMIZER_TOKEN`, in a `--set` flag and in a whole-section
//! `SERVO_OPTIMIZER`, and a proxy password — and every command a user is likely to run on that
//! config (`config` in all formats and `--origins`, `validate` on broken variants, plain and with
//! terminal snippets, `run` at trace level in text and JSON, `trials`, `report`) is searched for
//! them: stdout, stderr, the journal's bytes and the report. None may contain any of them.
//!
//! Each secret is a string nothing else in servo could print by chance, so one `contains` per
//! secret and output is the whole assertion; each check names the command whose output leaked.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::servo;
use proptest::prelude::*;
use servo::config::{LoadOptions, load_str};

/// The token in the config file.
const FILE_TOKEN: &str = "f1le-t0ken-5b2e8d41";
/// The token in `SERVO_OPTIMIZER_TOKEN`.
const ENV_TOKEN: &str = "s3cr3t-env-7f3a9c02";
/// The token given with `--set optimizer.token=...`.
const FLAG_TOKEN: &str = "fl4g-t0ken-91c6e5aa";
/// A token that YAML reads as a number: type errors quote numbers they reject.
const NUMERIC_TOKEN: &str = "73310245991";
/// The password of the proxy URL in `settings.proxies`.
const PROXY_PASSWORD: &str = "pr0xy-pa55-3e7b";

const SECRETS: &[&str] = &[
    FILE_TOKEN,
    ENV_TOKEN,
    FLAG_TOKEN,
    NUMERIC_TOKEN,
    PROXY_PASSWORD,
];

/// How long any one command may take; every command here is local and short.
const PATIENCE: Duration = Duration::from_secs(60);

/// Fails, naming the secret and where it was found, if `text` holds any secret.
fn assert_clean(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} leaks the secret {secret}:\n{text}"
        );
    }
}

fn assert_output_clean(what: &str, output: &Output) {
    assert_clean(&format!("{what} (stdout)"), &output.stdout);
    assert_clean(&format!("{what} (stderr)"), &output.stderr);
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config file in its own temporary directory (the embedded optimizer's journal goes beside it).
struct Study {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Study {
    fn new(yaml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("servo.yaml");
        std::fs::write(&config, yaml).expect("write config");
        Self { dir, config }
    }

    /// `servo ARGS -c CONFIG` with the env token set and a bounded run time.
    fn servo(&self, args: &[&str]) -> Output {
        self.servo_with_env_token(true, args)
    }

    /// The same, with or without `SERVO_OPTIMIZER_TOKEN` (which replaces the file's token, so
    /// without it the file's token is the one validated).
    fn servo_with_env_token(&self, env_token: bool, args: &[&str]) -> Output {
        let mut command = servo();
        if env_token {
            command.env("SERVO_OPTIMIZER_TOKEN", ENV_TOKEN);
        }
        command
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .timeout(PATIENCE)
            .output()
            .expect("servo runs")
    }

    /// The bytes of every file under the study directory but the config itself: the journal and
    /// its WAL and shared-memory files, reports.
    fn written_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.file_name().is_some_and(|n| n != "servo.yaml") {
                    let bytes = std::fs::read(&path).expect("read file");
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

/// A local port with nothing listening: bound, then released.
fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn remote_config(port: u16) -> String {
    format!(
        r#"# A remote optimizer whose token is in the file; SERVO_OPTIMIZER_TOKEN overrides it.
optimizer:
  id: example.com/app
  token: {FILE_TOKEN}
  base_url: http://127.0.0.1:{port}/
settings:
  proxies: {{ https: "http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:{port}" }}
  backoff:
    __default__: {{ max_time: 5s, max_tries: 1 }}
    connect: {{ max_tries: 1 }}
  timeouts: {{ connect: 2s, read: 2s }}
wait:
  measure_enabled: true
"#
    )
}

const EMBEDDED: &str = r#"# The embedded optimizer; the file also holds a proxy with a password, and a comment
# with a token (f1le-t0ken-5b2e8d41) that nothing may echo.
name: leakcheck
optimizer:
  trials: 2
  seed: 1
  algorithm: random
  objective: { minimize: main.cpu }
  control: { duration: 10ms }
settings:
  proxies: http://proxyuser:pr0xy-pa55-3e7b@127.0.0.1:9
wait:
  measure_enabled: true
  components:
    main:
      settings:
        cpu: { type: cpu, min: 0.25, max: 4, step: 0.25, value: 1 }
"#;

#[test]
fn config_prints_every_secret_redacted_in_every_format() {
    let study = Study::new(&remote_config(refused_port()));
    for args in [
        &["config", "-o", "yaml"][..],
        &["config", "-o", "json"],
        &["config", "--origins"],
        &["config", "--origins", "-o", "json"],
        &["validate"],
        &["validate", "-o", "json"],
    ] {
        let output = study.servo(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert_output_clean(&format!("servo {args:?}"), &output);
    }

    // The token is still there, redacted, so the test would notice it going missing instead.
    let output = study.servo(&["config", "-o", "json"]);
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(config["optimizer"]["token"], "**********");
    assert_eq!(
        config["settings"]["proxies"]["https"],
        format!(
            "http://proxyuser:**********@127.0.0.1:{}",
            config["optimizer"]["base_url"]
                .as_str()
                .and_then(|u| u.rsplit(':').next())
                .map(|p| p.trim_end_matches('/'))
                .unwrap_or_default()
        )
    );
}

#[test]
fn a_token_set_by_flag_is_named_by_its_path_only() {
    let study = Study::new(&remote_config(refused_port()));
    let flag = format!("optimizer.token={FLAG_TOKEN}");
    for args in [
        &["config", "--origins", "--set", &flag][..],
        &["config", "--origins", "-o", "json", "--set", &flag],
    ] {
        let output = study.servo(args);
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_output_clean("servo config --origins --set optimizer.token=...", &output);
        assert!(
            text(&output.stdout).contains("flag --set optimizer.token"),
            "{}",
            text(&output.stdout)
        );
    }

    // A misspelt section: the error names the flag, but not its value.
    let output = study.servo(&["validate", "--set", &format!("optimzer.token={FLAG_TOKEN}")]);
    assert_eq!(output.status.code(), Some(2));
    assert_output_clean("servo validate --set optimzer.token=...", &output);
    assert!(text(&output.stderr).contains("did you mean `optimizer`"));
}

/// Broken configs with a secret in or next to the broken place.
fn broken_variants() -> Vec<(&'static str, String)> {
    vec![
        (
            "a wrong-typed value next to the token",
            format!(
                "optimizer:\n  id: example.com/app\n  token: {FILE_TOKEN}\n  base_url: 5\n\
                 wait:\n  measure_enabled: maybe\n"
            ),
        ),
        (
            "a token YAML reads as a number, next to an error",
            format!(
                "optimizer:\n  id: example.com/app\n  token: {NUMERIC_TOKEN}\n  url: 12\n\
                 wait: {{measure_enabled: true}}\n"
            ),
        ),
        (
            "a token that is a list",
            format!("optimizer:\n  id: example.com/app\n  token: [{FILE_TOKEN}]\nwait: {{}}\n"),
        ),
        (
            "a token in an optimizer that is not remote, and under a misspelt key",
            format!(
                "optimizer:\n  trials: two\n  token: {FILE_TOKEN}\n\
                 wait:\n  measure_enabled: true\n  tokn: {FILE_TOKEN}\n"
            ),
        ),
        (
            "a token at the root, in a flow mapping, beside a bad proxy",
            format!(
                "token: {FILE_TOKEN}\noptimizer: {{id: example.com/app, token: {FILE_TOKEN}, \
                 base_url: ftp}}\nsettings: {{proxies: [\"http://u:{PROXY_PASSWORD}@h\"]}}\n"
            ),
        ),
    ]
}

#[test]
fn validation_errors_never_quote_a_secret() {
    for (what, yaml) in broken_variants() {
        let study = Study::new(&yaml);
        for env_token in [false, true] {
            for args in [&["validate"][..], &["validate", "-o", "json"], &["config"]] {
                let output = study.servo_with_env_token(env_token, args);
                // The env token replaces the file's, which may be the only thing broken.
                assert!(
                    env_token || output.status.code() == Some(2),
                    "{what}: servo {args:?} should reject the config: {}",
                    text(&output.stderr)
                );
                assert_output_clean(
                    &format!("{what}: servo {args:?} (env token: {env_token})"),
                    &output,
                );
            }
        }
    }
}

/// On a terminal, errors come with source snippets that show the lines around the error: the
/// token's line must be masked there. `script` gives servo a pseudo-terminal.
#[test]
fn terminal_snippets_mask_secrets_in_the_lines_they_show() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed, so no pseudo-terminal");
        return;
    }
    for (what, yaml) in broken_variants() {
        let study = Study::new(&yaml);
        let command = format!(
            "{} validate -c {}",
            env!("CARGO_BIN_EXE_servo"),
            study.config.display()
        );
        let output = assert_cmd::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("NO_COLOR", "1")
            .env_remove("SERVO_OPTIMIZER_TOKEN")
            .timeout(PATIENCE)
            .output()
            .expect("script runs");
        let shown = text(&output.stdout);
        assert!(
            shown.contains("╭─"),
            "{what}: expected snippets on a terminal:\n{shown}"
        );
        assert_output_clean(&format!("{what}: servo validate on a terminal"), &output);
    }
}

#[test]
fn section_variables_with_a_secret_are_not_echoed_when_malformed() {
    let study = Study::new(&remote_config(refused_port()));
    let section = format!(r#"{{"id": "o/a", "token": "{ENV_TOKEN}""#);
    let output = servo()
        .env("SERVO_OPTIMIZER", &section)
        .args(["validate", "-c"])
        .arg(&study.config)
        .timeout(PATIENCE)
        .output()
        .expect("servo runs");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("SERVO_OPTIMIZER is not valid JSON"));
    assert_output_clean("a malformed SERVO_OPTIMIZER", &output);
}

#[test]
fn a_study_run_at_trace_level_leaves_no_secret_in_logs_journal_or_report() {
    let study = Study::new(EMBEDDED);
    for format in ["json", "text"] {
        let output = study.servo(&["run", "--log-level", "trace", "--log-format", format]);
        assert!(
            output.status.success(),
            "servo run ({format} logs): {}",
            text(&output.stderr)
        );
        assert!(
            !output.stderr.is_empty(),
            "trace logging should say something"
        );
        assert_output_clean(&format!("servo run --log-format {format}"), &output);
    }

    let output = study.servo(&["trials", "-o", "json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let trials: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("json");
    assert!(trials.len() >= 2, "{trials:?}");
    assert_output_clean("servo trials -o json", &output);

    let report = study.dir.path().join("report.html");
    let output = study.servo(&["report", "--output", report.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_output_clean("servo report", &output);

    let files = study.written_files();
    assert!(
        files
            .iter()
            .any(|(p, _)| p.extension().is_some_and(|e| e == "db")),
        "no journal among {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert!(files.iter().any(|(p, _)| p == &report));
    for (path, bytes) in &files {
        assert_clean(&path.display().to_string(), bytes);
    }
}

#[test]
fn a_refused_remote_optimizer_fails_without_showing_the_token() {
    let study = Study::new(&remote_config(refused_port()));
    for format in ["text", "json"] {
        let output = study.servo(&["run", "--log-level", "trace", "--log-format", format]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "servo run should give up after one refused connection: {}",
            text(&output.stderr)
        );
        assert_output_clean(
            &format!("servo run against a refused optimizer ({format} logs)"),
            &output,
        );
    }
}

#[test]
fn a_token_no_http_header_can_carry_is_refused_without_showing_it() {
    let study = Study::new(&remote_config(refused_port()));
    let output = servo()
        .env("SERVO_OPTIMIZER_TOKEN", format!("{ENV_TOKEN}\nsecond line"))
        .args(["run", "--log-level", "trace", "-c"])
        .arg(&study.config)
        .timeout(PATIENCE)
        .output()
        .expect("servo runs");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("optimizer.token"), "{stderr}");
    assert_output_clean("servo run with a token holding a line break", &output);
}

// ---------------------------------------------------------------------------------------------
// Properties of the rendering itself: whatever the config text, rendering its errors for a terminal
// neither panics nor shows a token. (`benches/fuzz-loader.sh` runs these with SERVO_FUZZ_CASES too.)

fn cases() -> u32 {
    std::env::var("SERVO_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

fn registry() -> &'static servo_core::connector::Registry {
    servo_connectors::link();
    servo_core::connector::registry().expect("registry")
}

/// Config lines, broken and not, to surround a token with.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("optimizer:".to_string()),
        Just("  id: example.com/app".to_string()),
        Just("  base_url: 5".to_string()),
        Just("  url: [1]".to_string()),
        Just("  trials: two".to_string()),
        Just("wait:".to_string()),
        Just("  measure_enabled: maybe".to_string()),
        Just("  tokn: 12".to_string()),
        Just("settings: {proxies: 3}".to_string()),
        Just("promethues: {}".to_string()),
        // No quotes or block-scalar indicators: those can turn the token's line into the
        // value of some other key (`base_url: '` on the line before), which is no longer a
        // secret's value as far as anything can tell.
        "[a-z0-9 :{},\\[\\]#-]{0,12}".prop_map(String::from),
        "[\\p{L}\\p{N} ]{0,6}".prop_map(String::from),
    ]
}

/// Where a token goes: a block mapping entry, a flow mapping entry, a quoted value under a key
/// that names a credential. (A token under a misspelt key such as `tokn:` is concealed when the
/// key is reported as unknown, but a snippet for another error next to it may show it.)
fn token_line(secret: &str, form: usize) -> String {
    match form {
        0 => format!("  token: {secret}"),
        1 => format!("optimizer: {{id: o/a, token: {secret}, base_url: 1}}"),
        _ => format!("  api_token: \"{secret}\" # quoted"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rendering_errors_of_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        if let Err(e) = load_str(Path::new("fuzz.yaml"), &text, registry(), &LoadOptions::default()) {
            let _ = e.render_fancy(false);
            let _ = e.render_plain();
        }
    }

    #[test]
    fn terminal_rendering_never_shows_a_token(
        before in prop::collection::vec(line(), 0..5),
        after in prop::collection::vec(line(), 0..5),
        secret in "zq[a-z0-9]{14}",
        form in 0usize..3,
    ) {
        let mut lines = before;
        lines.push(token_line(&secret, form));
        lines.extend(after);
        let text = lines.join("\n");
        if let Err(e) = load_str(Path::new("fuzz.yaml"), &text, registry(), &LoadOptions::default()) {
            let shown = format!("{}{}", e.render_fancy(false), e.render_plain());
            prop_assert!(!shown.contains(&secret), "{}", shown);
        }
    }
}
