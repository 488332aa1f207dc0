//! A reader that goes away (`servo trials -o json | head -c 1`) ends servo's output: no panic, no
//! error message, and the command's own exit code. Each command here runs with its stdout pipe
//! already closed, so its first write fails with EPIPE every time, not once in forty runs.

mod common;

use std::process::Stdio;

use common::{assert_success, output};

const CONFIG: &str = r#"
name: piped
optimizer:
  trials: 2
  seed: 1
  objective:
    minimize: app.workers
  control: { duration: 10ms }
wait:
  measure_enabled: true
  components:
    app:
      settings:
        workers: { type: range, min: 1, max: 8, step: 1, value: 4 }
"#;

/// Runs `servo ARGS -c CONFIG` with the read end of its stdout closed before it starts writing;
/// returns its exit code and stderr.
fn with_closed_stdout(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_servo"))
        .args(args)
        .arg("-c")
        .arg(config)
        .env("NO_COLOR", "1")
        .env("SERVO_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("servo starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("servo exits");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_treats_a_closed_stdout_as_the_end_of_its_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(&config, CONFIG).expect("write config");
    assert_success(&output(&config, &["run"]));

    for args in [
        &["trials", "-o", "json"][..],
        &["trials", "-o", "csv"],
        &["trials"],
        &["schema", "--all"],
        &["connectors", "-o", "json"],
        &["config", "-o", "yaml"],
        &["generate", "wait", "--output", "-"],
        &["validate"],
        &["describe"],
    ] {
        let (code, stderr) = with_closed_stdout(&config, args);
        assert_eq!(code, Some(0), "servo {args:?} exit code; stderr: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.to_lowercase().contains("broken pipe"),
            "servo {args:?} complained about the closed pipe: {stderr}"
        );
    }
}
