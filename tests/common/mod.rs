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

/// The real `prometheus` binary the tests start (`PROMETHEUS_BIN`, or the Debian package's).
pub fn prometheus_binary() -> PathBuf {
    let binary = std::env::var_os("PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    assert!(
        binary.exists(),
        "these tests run a real Prometheus server, and {} is missing: install it with \
         `apt-get install prometheus` (scripts/test.sh does), or point PROMETHEUS_BIN at a binary",
        binary.display()
    );
    binary
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
