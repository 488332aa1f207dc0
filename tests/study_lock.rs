//! One writer per study, through the real binary: a second `servo run` on a journal in use is
//! refused at once (exit 2) naming the first (pid, host, since when); a first run killed with
//! SIGKILL leaves no stale lock behind.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{output, servo};

const CONFIG: &str = r#"
name: locked
optimizer:
  trials: 4
  seed: 2
  objective:
    minimize: app.size
  control: { duration: 1s }
wait:
  measure_enabled: true
  components:
    app:
      settings:
        size: { type: range, min: 1, max: 16, step: 1, value: 8 }
"#;

#[test]
fn a_second_run_is_refused_naming_the_first_and_a_killed_run_leaves_no_stale_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("servo.yaml");
    std::fs::write(&config, CONFIG).expect("write config");
    let lock = dir.path().join(".servo").join("locked.db.lock");

    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_servo"))
        .args(["run", "-c"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .env("SERVO_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the first run starts");
    let pid = first.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(&format!("\"pid\":{pid}"))) {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let started = Instant::now();
    let second = output(&config, &["run"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once"
    );
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
    assert!(stderr.contains("in use by another `servo run`"), "{stderr}");
    assert!(stderr.contains("since 20"), "names since when: {stderr}");

    first.kill().expect("SIGKILL the first run");
    first.wait().expect("reap the first run");

    let third = servo()
        .args(["run", "-c"])
        .arg(&config)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("the third run");
    assert!(
        third.status.success(),
        "a killed holder must not block the next run: {}",
        String::from_utf8_lossy(&third.stderr)
    );
}
