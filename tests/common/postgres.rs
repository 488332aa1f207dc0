//! A throwaway PostgreSQL server for end-to-end tests: a fresh cluster (`initdb`) in a temporary
//! directory, served on a free loopback port with one database, `servo`, and removed with the
//! directory when the guard drops.
//!
//! It runs the Debian package's binaries (`apt-get install postgresql`; `scripts/test.sh` installs
//! it), found under `/usr/lib/postgresql/<version>/bin` (the newest version), or in the directory
//! named by `POSTGRES_BIN_DIR`.
//!
//! **Why it does not run as root.** `initdb` and `postgres` refuse to start as root ("cannot be run
//! as root"): a server with root's privileges would let any SQL that reaches the file system
//! (`COPY ... TO`, untrusted procedural languages, extensions) take over the machine. CI runs the
//! tests as root, so there the cluster's directory is given to the unprivileged `postgres` account
//! the package creates, and the server binaries are started through `setpriv`, which changes
//! user and then *execs* the binary: the child process the guard holds is the postmaster itself,
//! so stopping it stops the server. (`runuser` would fork, and a SIGKILL to it would leave the
//! server running.) As any other user the binaries run as that user, unchanged.
//!
//! Authentication is `trust`, which is safe only because nothing else can reach the server: it
//! listens on 127.0.0.1 alone, and its Unix socket is inside the private temporary directory.
//! Durability against a machine crash is off (`fsync`, `full_page_writes`): the cluster dies with
//! the test, and a loaded CI machine runs the tests much faster without it. `synchronous_commit`
//! stays on: a commit is acknowledged once its WAL is written out (to the page cache), so a server
//! killed by [`Postgres::stop`] keeps every acknowledged commit, as a real one would; without it
//! the last commits would vanish in the restart and look like a bug of the client.
//!
//! Opt-in (`#[path = "common/postgres.rs"] mod postgres;`) rather than part of `common`, so tests
//! that do not need a database do not compile it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long starting the server (and each `psql`) may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// The database every test uses.
pub const DATABASE: &str = "servo";

/// The superuser `initdb` creates; every connection logs in as it.
const SUPERUSER: &str = "postgres";

/// The unprivileged account the Debian package creates, used when the tests run as root.
const SYSTEM_ACCOUNT: &str = "postgres";

/// A running throwaway PostgreSQL. Dropping it stops the server (immediate shutdown, then SIGKILL
/// if it has not exited within 10 s), reaps it, and deletes its directory.
pub struct Postgres {
    /// The postmaster; `None` while stopped (see [`Postgres::stop`]).
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    /// Who the server runs as, when not as this process' user.
    account: Option<Account>,
    /// Holds the cluster (`data/`), the Unix socket and `postgres.log`; removed after `Drop`
    /// stopped the server.
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Creates a cluster, starts it on a free loopback port, waits until it accepts connections
    /// and creates the `servo` database. Panics, with the server's log, when any step fails.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("servo-postgres-")
            .tempdir()
            .expect("a temporary directory for the cluster");
        let account = if running_as_root() {
            let account = Account::lookup(SYSTEM_ACCOUNT);
            std::os::unix::fs::chown(dir.path(), Some(account.uid), Some(account.gid))
                .expect("give the cluster's directory to the postgres account");
            Some(account)
        } else {
            None
        };
        let initdb = as_account(account.as_ref(), &bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", SUPERUSER, "--auth-local=trust", "--auth-host=trust"])
            .args(["--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed{}:\n{}",
            if account.is_some() {
                " (as the `postgres` account: it must be able to reach the temporary directory; \
                 set TMPDIR to a directory it can traverse)"
            } else {
                ""
            },
            text(&initdb)
        );

        // The port is free when chosen but could be taken before the server binds it: retry then.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            match launch(&bin, account.as_ref(), dir.path(), port) {
                Ok(child) => {
                    let postgres = Postgres {
                        child: Some(child),
                        port,
                        bin,
                        account,
                        dir,
                    };
                    postgres.psql("postgres", &format!("CREATE DATABASE {DATABASE}"));
                    return postgres;
                }
                Err(log) => {
                    last_log = log;
                    if !last_log.contains("could not bind") {
                        break;
                    }
                }
            }
        }
        panic!("PostgreSQL did not start:\n{last_log}");
    }

    /// Stops the server at once (an outage, as clients see it); [`Postgres::restart`] brings it
    /// back on the same port with the same data.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            shut_down(child);
        }
    }

    /// Starts the stopped server again and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: the server is running");
        let child = launch(&self.bin, self.account.as_ref(), self.dir.path(), self.port)
            .unwrap_or_else(|log| panic!("PostgreSQL did not start again:\n{log}"));
        self.child = Some(child);
    }

    /// `postgres://postgres@127.0.0.1:PORT/servo`: what `--store` takes.
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    /// The URL of another database of this server (see [`Postgres::create_database`]).
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates another empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url_of(name)
    }

    /// Runs SQL in `database` with `psql` and returns its unaligned, tuples-only output (one row
    /// a line, columns separated by `|`). Panics with psql's message when the SQL fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut command = Command::new(self.bin.join("psql"));
        clear_pg_environment(&mut command);
        let output = command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, "-d", database])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            // Bounded even if a test leaves a lock behind.
            .env("PGOPTIONS", "-c statement_timeout=20000")
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql failed on `{sql}`:\n{}\nserver log:\n{}",
            text(&output),
            self.log()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// [`Postgres::psql`] in the `servo` database.
    pub fn query(&self, sql: &str) -> String {
        self.psql(DATABASE, sql)
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `postgres` on the cluster in `dir` and waits until it accepts connections; on failure
/// the server is reaped and its log returned.
fn launch(bin: &Path, account: Option<&Account>, dir: &Path, port: u16) -> Result<Child, String> {
    let log_path = dir.join("postgres.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("open postgres.log");
    let mut child = as_account(account, &bin.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .args(["-c", "shared_buffers=16MB"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .spawn()
        .expect("start postgres");
    match wait_ready(&mut child, bin, port, &log_path) {
        Ok(()) => Ok(child),
        Err(log) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(log)
        }
    }
}

/// Stops a postmaster and reaps it. SIGQUIT is PostgreSQL's immediate shutdown: it stops its
/// backends and exits at once, without a checkpoint (the next start recovers from the WAL).
/// SIGKILL if it has not exited within 10 s.
fn shut_down(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-QUIT", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `pg_isready` until the server accepts connections; on failure returns its log.
fn wait_ready(child: &mut Child, bin: &Path, port: u16, log: &Path) -> Result<(), String> {
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("postgres exited with {status}:\n{}", log()));
        }
        let mut command = Command::new(bin.join("pg_isready"));
        clear_pg_environment(&mut command);
        let ready = command
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", SUPERUSER, "-d", "postgres", "-t", "2", "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("not ready after {PATIENCE:?}:\n{}", log()))
}

/// The directory of `initdb`, `postgres`, `pg_isready` and `psql`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("POSTGRES_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // `/usr/lib/postgresql/15/bin`, `/usr/lib/postgresql/16/bin`, ...: the newest version.
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "these tests run a real PostgreSQL, and no /usr/lib/postgresql/*/bin/postgres exists: \
             install it with `apt-get install --no-install-recommends postgresql` (scripts/test.sh \
             does), or point POSTGRES_BIN_DIR at a directory holding initdb, postgres, pg_isready \
             and psql"
        ),
    }
}

/// Whether this process runs as root: `/proc/self` belongs to the process' effective user.
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// An unprivileged account to run the server as.
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

impl Account {
    fn lookup(name: &str) -> Account {
        let id = |flag: &str| -> u32 {
            let output = Command::new("id")
                .args([flag, name])
                .output()
                .expect("run id");
            assert!(
                output.status.success(),
                "running as root, the tests start PostgreSQL as the `{name}` account, which does \
                 not exist: install the `postgresql` package (it creates it): {}",
                text(&output)
            );
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .expect("id prints a number")
        };
        Account {
            name: name.to_string(),
            uid: id("-u"),
            gid: id("-g"),
        }
    }
}

/// `program`, run as `account` when there is one: `setpriv` switches user and group (dropping
/// root's supplementary groups) and then execs `program` in its own process.
fn as_account(account: Option<&Account>, program: &Path) -> Command {
    let mut command = match account {
        Some(account) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={}", account.uid))
                .arg(format!("--regid={}", account.gid))
                .arg("--clear-groups")
                .arg("--")
                .arg(program)
                .env("USER", &account.name)
                .env("LOGNAME", &account.name);
            command
        }
        None => Command::new(program),
    };
    clear_pg_environment(&mut command);
    // initdb and postgres look for their share files relative to themselves; a HOME root owns
    // is not readable by the account, and neither needs one.
    command.env_remove("HOME").current_dir("/");
    command
}

/// No inherited `PGHOST`, `PGDATABASE`, `PGOPTIONS`... can point a command elsewhere.
fn clear_pg_environment(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            command.env_remove(key);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
