//! The trial journal: every study and trial in a SQLite file (WAL, synchronous=FULL), written before
//! the next step starts, so a crash loses nothing that completed and a restart resumes the study.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Row};

use servo_optimizer::{ParamValue, Space};

/// The schema, one step per version, each written for both databases (SQLite has no `BIGSERIAL`,
/// PostgreSQL's `REAL` is single precision). Applied in order at open; the version reached is kept
/// in `servo_schema`. Booleans are integers so one decoding works on both.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: r#"
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    space TEXT NOT NULL,
    objective TEXT NOT NULL,
    constraints TEXT NOT NULL,
    created_at REAL NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    study_id INTEGER NOT NULL REFERENCES studies(id),
    number INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'complete', 'failed', 'interrupted')),
    config TEXT NOT NULL,
    readings TEXT,
    objective REAL,
    constraints TEXT,
    feasible INTEGER,
    error TEXT,
    started_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (study_id, number)
);
"#,
        postgres: r#"
CREATE TABLE IF NOT EXISTS studies (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    space TEXT NOT NULL,
    objective TEXT NOT NULL,
    constraints TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    retired BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS trials (
    id BIGSERIAL PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies(id),
    number BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'complete', 'failed', 'interrupted')),
    config TEXT NOT NULL,
    readings TEXT,
    objective DOUBLE PRECISION,
    constraints TEXT,
    feasible BIGINT,
    error TEXT,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    UNIQUE (study_id, number)
);
"#,
    },
    Migration {
        version: 2,
        sqlite: r#"
CREATE TABLE IF NOT EXISTS applications (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS applications_token ON applications (token_sha256);
CREATE TABLE IF NOT EXISTS sessions (
    application_id INTEGER PRIMARY KEY REFERENCES applications(id),
    revision INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"#,
        postgres: r#"
CREATE TABLE IF NOT EXISTS applications (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS applications_token ON applications (token_sha256);
CREATE TABLE IF NOT EXISTS sessions (
    application_id BIGINT PRIMARY KEY REFERENCES applications(id),
    revision BIGINT NOT NULL,
    state TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
"#,
    },
];

/// Every SQLite connection's settings: WAL with full sync, so a committed trial survives a crash.
const SQLITE_SETUP: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;";

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Which database a journal lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the journal {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("journal {path}: {message}")]
    Database { path: PathBuf, message: String },
    #[error(
        "the search space changed since study `{name}` began ({change}); its trials would not be comparable"
    )]
    SpaceChanged { name: String, change: String },
    #[error("journal {path} holds no study named `{name}`")]
    NoStudy { path: PathBuf, name: String },
}

impl JournalError {
    /// What to do, when the journal could not be written: what SQLite says ("disk I/O error",
    /// "database or disk is full") does not tell a full disk from a file-size limit or a failing
    /// device, so the hint says which limit this process has, and that the trials journaled so far
    /// are kept and resume.
    pub fn hint(&self) -> Option<String> {
        let (JournalError::Open { path, message } | JournalError::Database { path, message }) =
            self
        else {
            return None;
        };
        if !WRITE_FAILURES.iter().any(|f| message.contains(f)) {
            return None;
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let cause = match file_size_limit() {
            Some(limit) => format!(
                "this process may not write files larger than {limit} bytes (`ulimit -f`), and the journal and its write-ahead log ({}-wal) grow with every trial: raise the limit",
                path.display()
            ),
            None => format!(
                "the disk holding {} is probably full (`df -h {}`) or failing: free some space",
                path.display(),
                dir.display()
            ),
        };
        Some(format!(
            "{cause}, then run the same command again; the trials journaled so far are kept and the study resumes after them"
        ))
    }
}

/// What SQLite says when a write fails below it (`sqlite3_errstr` of SQLITE_IOERR and SQLITE_FULL).
const WRITE_FAILURES: [&str; 2] = ["disk I/O error", "database or disk is full"];

/// This process' limit on the size of files it writes (`RLIMIT_FSIZE`), when there is one: read
/// from `/proc/self/limits` (Linux), so no system call wrapper is needed.
fn file_size_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max file size"))?;
    // "Max file size   <soft>   <hard>   bytes": the soft limit is the one that applies.
    line.trim_start_matches("Max file size")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The lifecycle of a trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    Running,
    Complete,
    Failed,
    Interrupted,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Failed => "failed",
            TrialState::Interrupted => "interrupted",
        }
    }
}

impl FromStr for TrialState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "running" => TrialState::Running,
            "complete" => TrialState::Complete,
            "failed" => TrialState::Failed,
            "interrupted" => TrialState::Interrupted,
            other => return Err(format!("unknown trial state `{other}`")),
        })
    }
}

/// One measured value of a trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedReading {
    pub value: f64,
    #[serde(default)]
    pub unit: String,
}

/// A trial as journaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub number: i64,
    pub state: TrialState,
    /// Parameter name (`component.setting`) → value.
    pub config: BTreeMap<String, ParamValue>,
    #[serde(default)]
    pub readings: BTreeMap<String, RecordedReading>,
    /// The objective as written (not negated for `maximize`).
    pub objective: Option<f64>,
    /// One value per constraint, ≤ 0 when it holds.
    #[serde(default)]
    pub constraints: Vec<f64>,
    pub feasible: Option<bool>,
    pub error: Option<String>,
    pub started_at: f64,
    pub finished_at: Option<f64>,
}

/// A study: one optimization of one servo's search space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Study {
    pub id: i64,
    pub name: String,
    pub space: Space,
    pub objective: String,
    pub constraints: Vec<String>,
    pub created_at: f64,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An open journal: a SQLite file, or a PostgreSQL database shared by several optimizer servers.
#[derive(Clone, Debug)]
pub struct Journal {
    pool: AnyPool,
    dialect: Dialect,
    /// The file, or the database URL without its password: what messages may show.
    path: PathBuf,
}

impl Journal {
    /// Opens (creating when needed) a SQLite journal, its directory and its tables.
    pub async fn open(path: &Path) -> Result<Journal, JournalError> {
        let open_error = |message: String| JournalError::Open {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(format!("cannot create {}: {e}", dir.display())))?;
        }
        // An absolute path: a relative one would be read as the URL's host (and lower-cased).
        let absolute = std::path::absolute(path).map_err(|e| open_error(e.to_string()))?;
        let url = SqliteConnectOptions::new()
            .filename(&absolute)
            .create_if_missing(true)
            .to_url_lossy();
        // The pool retries a connection whose setup fails until its acquire timeout (30 s), then
        // reports only "pool timed out": one direct attempt first fails at once with the cause (a
        // journal that cannot be written, a file that is not a database). It reads too: in WAL
        // mode a read needs the shared-memory index, which a full disk can refuse.
        sqlx::any::install_default_drivers();
        let probe = async {
            let connect = AnyConnectOptions::from_url(&url)?.disable_statement_logging();
            let mut conn = AnyConnection::connect_with(&connect).await?;
            let setup = async {
                sqlx::raw_sql(SQLITE_SETUP).execute(&mut conn).await?;
                sqlx::query("SELECT COUNT(*) FROM sqlite_master")
                    .execute(&mut conn)
                    .await?;
                Ok::<(), sqlx::Error>(())
            }
            .await;
            let _ = conn.close().await;
            setup
        };
        probe.await.map_err(|e| open_error(e.to_string()))?;
        // One connection: SQLite has one writer, and a single connection never sees SQLITE_BUSY
        // from its own transactions upgrading their locks.
        // Kept for the whole run (no idle timeout, no lifetime): trials can be longer than the
        // pool's defaults, and a reconnection failing mid-study would again hide its cause.
        let options = AnyPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|conn, _| {
                Box::pin(async move { sqlx::raw_sql(SQLITE_SETUP).execute(conn).await.map(drop) })
            });
        Self::connect_with(options, &url, Dialect::Sqlite, path.to_path_buf()).await
    }

    /// Opens a store given as a path or URL: `postgres://user@host/db` (or `postgresql://`) for
    /// PostgreSQL, `sqlite://FILE` or a plain path for SQLite.
    pub async fn open_store(store: &str) -> Result<Journal, JournalError> {
        if store.starts_with("postgres://") || store.starts_with("postgresql://") {
            let shown = PathBuf::from(servo_core::http::redact_url(store));
            let url = store.parse::<url::Url>().map_err(|e| JournalError::Open {
                path: shown.clone(),
                message: format!("not a valid database URL: {e}"),
            })?;
            let options = AnyPoolOptions::new()
                .max_connections(8)
                // Short: while the database is down, requests (and /healthz) should fail fast
                // with a retryable 503 rather than queue.
                .acquire_timeout(std::time::Duration::from_secs(3));
            Self::connect_with(options, &url, Dialect::Postgres, shown).await
        } else {
            let path = store.strip_prefix("sqlite://").unwrap_or(store);
            Self::open(Path::new(path)).await
        }
    }

    async fn connect_with(
        options: AnyPoolOptions,
        url: &url::Url,
        dialect: Dialect,
        path: PathBuf,
    ) -> Result<Journal, JournalError> {
        sqlx::any::install_default_drivers();
        let connect = AnyConnectOptions::from_url(url)
            .map_err(|e| JournalError::Open {
                path: path.clone(),
                message: e.to_string(),
            })?
            .disable_statement_logging();
        let pool = options
            .connect_with(connect)
            .await
            .map_err(|e| JournalError::Open {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let journal = Journal {
            pool,
            dialect,
            path,
        };
        journal.migrate().await?;
        Ok(journal)
    }

    /// The file, or the database URL without its password.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection pool, for stores that keep more than trials in the same database.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn db(&self, e: impl std::fmt::Display) -> JournalError {
        JournalError::Database {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Applies the migrations this database has not seen, each in its own transaction. On
    /// PostgreSQL an advisory lock keeps two servers starting at once from racing.
    async fn migrate(&self) -> Result<(), JournalError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.db(e))?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7317001)")
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db(e))?;
        }
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS servo_schema (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM servo_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        let version = version.unwrap_or(0);
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if version > known {
            return Err(self.db(format!(
                "written by a newer servo (schema {version}, this one knows {known}); upgrade servo"
            )));
        }
        for migration in MIGRATIONS.iter().filter(|m| m.version > version) {
            let sql = match self.dialect {
                Dialect::Sqlite => migration.sqlite,
                Dialect::Postgres => migration.postgres,
            };
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db(e))?;
            sqlx::query("INSERT INTO servo_schema (version) VALUES ($1)")
                .bind(migration.version)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db(e))?;
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(())
    }

    /// The current study of `name`, created when there is none (or when `fresh` asks for a new one).
    /// A study whose space differs from `space` is refused: mixing trials of two spaces would mislead
    /// the optimizer.
    pub async fn study(
        &self,
        name: &str,
        space: &Space,
        objective: &str,
        constraints: &[String],
        fresh: bool,
    ) -> Result<Study, JournalError> {
        if fresh {
            self.retire(name).await?;
        } else if let Some(existing) = self.current(name).await? {
            if let Some(change) = describe_change(&existing.space, space) {
                return Err(JournalError::SpaceChanged {
                    name: name.to_string(),
                    change,
                });
            }
            return Ok(existing);
        }
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        create_study(&mut conn, name, space, objective, constraints)
            .await
            .map_err(|e| self.db(e))
    }

    /// Retires every study of `name`; the next [`Journal::study`] starts a new one.
    pub async fn retire(&self, name: &str) -> Result<(), JournalError> {
        sqlx::query("UPDATE studies SET retired = 1 WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// The newest non-retired study of `name`.
    pub async fn current(&self, name: &str) -> Result<Option<Study>, JournalError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        current_study(&mut conn, name).await.map_err(|e| self.db(e))
    }

    /// Trials left `running` by a run that died are marked `interrupted`; returns how many.
    pub async fn interrupt_running(&self, study: &Study) -> Result<u64, JournalError> {
        let done = sqlx::query(
            "UPDATE trials SET state = 'interrupted', finished_at = $1, error = COALESCE(error, 'servo stopped during this trial') WHERE study_id = $2 AND state = 'running'",
        )
        .bind(now())
        .bind(study.id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(done.rows_affected())
    }

    /// Records a new running trial before anything is changed; returns its number.
    pub async fn begin(
        &self,
        study: &Study,
        config: &BTreeMap<String, ParamValue>,
    ) -> Result<i64, JournalError> {
        let failed = |e: String| self.db(format!("cannot record a new trial: {e}"));
        let mut tx = self.pool.begin().await.map_err(|e| failed(e.to_string()))?;
        let number = begin_trial(&mut tx, study.id, config)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(|e| failed(e.to_string()))?;
        Ok(number)
    }

    /// Records how a trial ended.
    pub async fn finish(&self, study: &Study, trial: &Trial) -> Result<(), JournalError> {
        let failed = |e: String| {
            self.db(format!(
                "cannot record that trial {} ended {}: {e}",
                trial.number,
                trial.state.as_str()
            ))
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| failed(e.to_string()))?;
        finish_trial(&mut conn, study.id, trial)
            .await
            .map_err(failed)
    }

    /// Every trial of a study, in order.
    pub async fn trials(&self, study: &Study) -> Result<Vec<Trial>, JournalError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        study_trials(&mut conn, study.id)
            .await
            .map_err(|e| self.db(e))
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// A storage failure inside a transaction, before it is given the journal's name.
pub(crate) type DbResult<T> = Result<T, String>;

pub(crate) fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub(crate) async fn create_study(
    conn: &mut AnyConnection,
    name: &str,
    space: &Space,
    objective: &str,
    constraints: &[String],
) -> DbResult<Study> {
    let space_json = serde_json::to_string(space).map_err(text)?;
    let constraints_json = serde_json::to_string(constraints).map_err(text)?;
    let created_at = now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO studies (name, space, objective, constraints, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(name)
    .bind(&space_json)
    .bind(objective)
    .bind(&constraints_json)
    .bind(created_at)
    .fetch_one(&mut *conn)
    .await
    .map_err(text)?;
    Ok(Study {
        id,
        name: name.to_string(),
        space: space.clone(),
        objective: objective.to_string(),
        constraints: constraints.to_vec(),
        created_at,
    })
}

pub(crate) async fn current_study(conn: &mut AnyConnection, name: &str) -> DbResult<Option<Study>> {
    let row = sqlx::query(
        "SELECT id, name, space, objective, constraints, created_at FROM studies WHERE name = $1 AND retired = 0 ORDER BY id DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(text)?;
    row.as_ref().map(read_study).transpose()
}

/// Study `id`, unless it has been retired.
pub(crate) async fn live_study(conn: &mut AnyConnection, id: i64) -> DbResult<Option<Study>> {
    let row = sqlx::query(
        "SELECT id, name, space, objective, constraints, created_at FROM studies WHERE id = $1 AND retired = 0",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(text)?;
    row.as_ref().map(read_study).transpose()
}

fn read_study(row: &sqlx::any::AnyRow) -> DbResult<Study> {
    let space: String = row.try_get("space").map_err(text)?;
    let constraints: String = row.try_get("constraints").map_err(text)?;
    Ok(Study {
        id: row.try_get("id").map_err(text)?,
        name: row.try_get("name").map_err(text)?,
        space: serde_json::from_str(&space).map_err(text)?,
        objective: row.try_get("objective").map_err(text)?,
        constraints: serde_json::from_str(&constraints).map_err(text)?,
        created_at: row.try_get("created_at").map_err(text)?,
    })
}

/// Inserts the next running trial of a study. Run it inside a transaction: the number is the
/// highest so far plus one, and `UNIQUE (study_id, number)` refuses a second writer that raced us.
pub(crate) async fn begin_trial(
    conn: &mut AnyConnection,
    study_id: i64,
    config: &BTreeMap<String, ParamValue>,
) -> DbResult<i64> {
    let number: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = $1")
            .bind(study_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(text)?;
    insert_trial(conn, study_id, number, config).await?;
    Ok(number)
}

/// Inserts running trial `number`; fails when that number exists (a concurrent writer took it).
pub(crate) async fn insert_trial(
    conn: &mut AnyConnection,
    study_id: i64,
    number: i64,
    config: &BTreeMap<String, ParamValue>,
) -> DbResult<()> {
    let config = serde_json::to_string(config).map_err(text)?;
    sqlx::query("INSERT INTO trials (study_id, number, state, config, started_at) VALUES ($1, $2, 'running', $3, $4)")
        .bind(study_id)
        .bind(number)
        .bind(&config)
        .bind(now())
        .execute(&mut *conn)
        .await
        .map_err(text)?;
    Ok(())
}

pub(crate) async fn finish_trial(
    conn: &mut AnyConnection,
    study_id: i64,
    trial: &Trial,
) -> DbResult<()> {
    let readings = serde_json::to_string(&trial.readings).map_err(text)?;
    let constraints = serde_json::to_string(&trial.constraints).map_err(text)?;
    let error = trial.error.as_deref().map(storable);
    sqlx::query(
        "UPDATE trials SET state = $1, readings = $2, objective = $3, constraints = $4, feasible = $5, error = $6, finished_at = $7 WHERE study_id = $8 AND number = $9",
    )
    .bind(trial.state.as_str())
    .bind(&readings)
    .bind(trial.objective)
    .bind(&constraints)
    .bind(trial.feasible.map(i64::from))
    .bind(error)
    .bind(trial.finished_at.unwrap_or_else(now))
    .bind(study_id)
    .bind(trial.number)
    .execute(&mut *conn)
    .await
    .map_err(text)?;
    Ok(())
}

/// Free text as both databases can store it. A PostgreSQL `TEXT` cannot hold U+0000 (SQLite's
/// can), and the error of a trial is often a servo's own message: one NUL in it would fail every
/// attempt to record the trial, and the study would stall on the retries. It becomes U+FFFD, the
/// replacement character, in either database, so both journals read the same. (The JSON columns
/// need nothing: serde_json writes U+0000 as the escape `\u0000`.)
fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

pub(crate) async fn study_trials(conn: &mut AnyConnection, study_id: i64) -> DbResult<Vec<Trial>> {
    let rows = sqlx::query(
        "SELECT number, state, config, readings, objective, constraints, feasible, error, started_at, finished_at FROM trials WHERE study_id = $1 ORDER BY number",
    )
    .bind(study_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(text)?;
    rows.iter()
        .map(|row| {
            let state: String = row.try_get("state").map_err(text)?;
            let config: String = row.try_get("config").map_err(text)?;
            let readings: Option<String> = row.try_get("readings").map_err(text)?;
            let constraints: Option<String> = row.try_get("constraints").map_err(text)?;
            let feasible: Option<i64> = row.try_get("feasible").map_err(text)?;
            Ok(Trial {
                number: row.try_get("number").map_err(text)?,
                state: state.parse()?,
                config: serde_json::from_str(&config).map_err(text)?,
                readings: readings
                    .map(|r| serde_json::from_str(&r))
                    .transpose()
                    .map_err(text)?
                    .unwrap_or_default(),
                objective: row.try_get("objective").map_err(text)?,
                constraints: constraints
                    .map(|c| serde_json::from_str(&c))
                    .transpose()
                    .map_err(text)?
                    .unwrap_or_default(),
                feasible: feasible.map(|f| f != 0),
                error: row.try_get("error").map_err(text)?,
                started_at: row.try_get("started_at").map_err(text)?,
                finished_at: row.try_get("finished_at").map_err(text)?,
            })
        })
        .collect()
}

/// How `new` differs from `old`, in words; `None` when they are the same space.
pub(crate) fn describe_change(old: &Space, new: &Space) -> Option<String> {
    if old == new {
        return None;
    }
    let names = |s: &Space| s.params.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    let (old_names, new_names) = (names(old), names(new));
    let added: Vec<&String> = new_names
        .iter()
        .filter(|n| !old_names.contains(n))
        .collect();
    let removed: Vec<&String> = old_names
        .iter()
        .filter(|n| !new_names.contains(n))
        .collect();
    let changed: Vec<&String> = new
        .params
        .iter()
        .filter(|p| {
            old.params
                .iter()
                .any(|o| o.name == p.name && o.domain != p.domain)
        })
        .map(|p| &p.name)
        .collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added {}", join(&added)));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", join(&removed)));
    }
    if !changed.is_empty() {
        parts.push(format!("changed the range of {}", join(&changed)));
    }
    if parts.is_empty() {
        parts.push("reordered the settings".into());
    }
    Some(parts.join("; "))
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(message: &str) -> JournalError {
        JournalError::Database {
            path: PathBuf::from("/var/lib/servo/study.db"),
            message: message.to_string(),
        }
    }

    #[test]
    fn a_journal_that_cannot_be_written_gets_a_hint_naming_the_limit_or_the_disk() {
        let hint = database_error(
            "cannot record that trial 4 ended complete: error returned from database: (code: 13) database or disk is full",
        )
        .hint()
        .expect("a hint");
        // Which cause depends on this process' `ulimit -f`; either way it says what to do.
        match file_size_limit() {
            Some(limit) => assert!(hint.contains(&format!("larger than {limit} bytes")), "{hint}"),
            None => assert!(
                hint.contains("the disk holding /var/lib/servo/study.db is probably full (`df -h /var/lib/servo`)"),
                "{hint}"
            ),
        }
        assert!(hint.contains("the study resumes after them"), "{hint}");
        assert!(
            database_error("error returned from database: (code: 1) no such table: trials")
                .hint()
                .is_none()
        );
        let space = JournalError::SpaceChanged {
            name: "x".into(),
            change: "y".into(),
        };
        assert!(space.hint().is_none());
    }
}
