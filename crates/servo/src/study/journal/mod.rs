//! The trial journal: every study and trial in a SQLite file (WAL, synchronous=FULL), written before
//! the next step starts, so a crash loses nothing that completed and a restart resumes the study.

mod error;
mod rows;
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection};

use servo_optimizer::{ParamValue, Space};

pub use error::{Holds, JournalError};
pub(crate) use rows::{
    DbResult, create_study, current_study, finish_trial, insert_trial, live_study, study_trials,
    text,
};
use rows::{begin_trial, insert_reused, latest_measured_study, set_role};
pub use schema::{Migration, SCHEMA_VERSION};
use schema::{SQLITE_SETUP, STUDY_MIGRATIONS};

/// Which database a journal lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
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
    /// The objective as written (not negated for `maximize`); with several objectives, the
    /// first one's.
    pub objective: Option<f64>,
    /// With several objectives, each one's value as written, in the order of the study's
    /// `objectives`; empty for a study with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<f64>,
    /// One value per constraint, ≤ 0 when it holds.
    #[serde(default)]
    pub constraints: Vec<f64>,
    pub feasible: Option<bool>,
    pub error: Option<String>,
    /// Why the measurement was stopped before its end: the SLO its readings so far put far past
    /// its limit, and where the application was put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_short: Option<String>,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    /// Where a trial taken over from an earlier study of this servo was measured (`servo run
    /// --new-study` warm starts): this study did not run it. Reused trials are numbered before 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused: Option<Reused>,
    /// What the trial was for, when not the search: a re-measurement of the baseline
    /// (`optimizer.baseline_every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<TrialRole>,
}

impl Trial {
    /// A trial of `config` just started: nothing measured yet.
    pub fn running(number: i64, config: BTreeMap<String, ParamValue>, started_at: f64) -> Self {
        Self {
            number,
            state: TrialState::Running,
            config,
            readings: BTreeMap::new(),
            objective: None,
            objectives: Vec::new(),
            constraints: Vec::new(),
            feasible: None,
            error: None,
            cut_short: None,
            started_at,
            finished_at: None,
            reused: None,
            role: None,
        }
    }
}

/// The study and trial number a reused trial was measured as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reused {
    pub study: i64,
    pub trial: i64,
}

/// Why a trial ran, besides searching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialRole {
    /// The baseline's configuration measured again, so relative SLOs follow drift in the load.
    Baseline,
}

impl TrialRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialRole::Baseline => "baseline",
        }
    }
}

impl FromStr for TrialRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "baseline" => Ok(TrialRole::Baseline),
            other => Err(format!("unknown trial role `{other}`")),
        }
    }
}

/// A study: one optimization of one servo's search space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Study {
    pub id: i64,
    pub name: String,
    pub space: Space,
    pub objective: String,
    /// With several objectives, each one (the first is `objective`); empty for a study with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<crate::config::optimizer::Target>,
    pub constraints: Vec<String>,
    pub created_at: f64,
}

/// Now, in Unix seconds: what the journal records.
pub use servo_core::time::unix_now as now;

/// An open journal: a SQLite file, or a PostgreSQL database shared by several optimizer servers.
#[derive(Clone, Debug)]
pub struct Journal {
    pool: AnyPool,
    dialect: Dialect,
    /// The file, or the database URL without its password: what messages may show.
    path: PathBuf,
    /// What messages call it.
    holds: Holds,
}

impl Journal {
    /// Opens (creating when needed) a SQLite journal, its directory and its tables.
    pub async fn open(path: &Path) -> Result<Journal, JournalError> {
        Self::open_sqlite(path, Holds::Journal).await
    }

    /// [`Journal::open`] for a file that messages call what it `holds`.
    async fn open_sqlite(path: &Path, holds: Holds) -> Result<Journal, JournalError> {
        let open_error = |message: String| cannot_open(holds, path, message);
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
        Self::connect_with(options, &url, Dialect::Sqlite, path.to_path_buf(), holds).await
    }

    /// Opens an optimizer server's store given as a path or URL: `postgres://user@host/db` (or
    /// `postgresql://`) for PostgreSQL, `sqlite://FILE` or a plain path for SQLite.
    pub async fn open_store(store: &str) -> Result<Journal, JournalError> {
        let holds = Holds::OptimizerStore;
        if let Some(path) = sqlite_path(store) {
            Self::open_sqlite(path, holds).await
        } else {
            let shown = PathBuf::from(servo_core::http::redact_url(store));
            let url = store.parse::<url::Url>().map_err(|e| {
                cannot_open(holds, &shown, format!("not a valid database URL: {e}"))
            })?;
            let options = AnyPoolOptions::new()
                .max_connections(8)
                // Short: while the database is down, requests (and /healthz) should fail fast
                // with a retryable 503 rather than queue.
                .acquire_timeout(std::time::Duration::from_secs(3));
            Self::connect_with(options, &url, Dialect::Postgres, shown, holds).await
        }
    }

    async fn connect_with(
        options: AnyPoolOptions,
        url: &url::Url,
        dialect: Dialect,
        path: PathBuf,
        holds: Holds,
    ) -> Result<Journal, JournalError> {
        sqlx::any::install_default_drivers();
        let connect = AnyConnectOptions::from_url(url)
            .map_err(|e| cannot_open(holds, &path, e))?
            .disable_statement_logging();
        // As for SQLite (see `Journal::open`): the pool would report only "pool timed out" after
        // its acquire timeout, and one direct attempt fails at once with the cause (a refused
        // connection, a wrong password, no such database).
        let probe = AnyConnection::connect_with(&connect)
            .await
            .map_err(|e| cannot_open(holds, &path, e))?;
        let _ = probe.close().await;
        let pool = options
            .connect_with(connect)
            .await
            .map_err(|e| cannot_open(holds, &path, e))?;
        let journal = Journal {
            pool,
            dialect,
            path,
            holds,
        };
        journal.migrate(STUDY_MIGRATIONS).await?;
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

    /// A transaction that will write. On SQLite it takes the write lock as it begins (`BEGIN
    /// IMMEDIATE`), waiting for another process's writer up to the busy timeout: one that began
    /// by reading would fail at once with "database is locked" (SQLITE_BUSY_SNAPSHOT) when another
    /// process wrote before its first write, as `servo optimizer app create` beside a busy server
    /// did.
    pub(crate) async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    /// A pool for reads that must not wait behind a write: for SQLite up to `connections` more
    /// read-only connections to the file (WAL lets them read the last commit while the one writer
    /// connection is inside a transaction or its fsync); for PostgreSQL the journal's own pool,
    /// which already has several.
    pub(crate) async fn readers(&self, connections: u32) -> Result<AnyPool, JournalError> {
        if self.dialect == Dialect::Postgres {
            return Ok(self.pool.clone());
        }
        sqlite_readers(&self.path, connections, true)
            .await
            .map_err(|e| self.db(e))
    }

    /// Opens an existing SQLite journal only to read it, as `servo trials` and `servo report` do,
    /// possibly beside the `servo run` writing it. Nothing is set up or migrated, and the
    /// connection never writes; beside a study it is read-only, since one that checkpointed the
    /// WAL on closing could make the study's next write fail with "database is locked" (one
    /// `servo run` in 22 did, with `servo trials` polled beside it). `None` while the journal
    /// has no tables yet: its `servo run` is creating it. A journal an older servo wrote is
    /// brought up to date by [`Journal::open`] first, since this servo's queries read the newer
    /// tables.
    pub async fn open_read_only(path: &Path) -> Result<Option<Journal>, JournalError> {
        Self::open_read_only_with(path, Holds::Journal, &[]).await
    }

    /// [`Journal::open_read_only`] for a database that also holds the tables of `also` (an
    /// optimizer server's store): one that lacks some of their steps is brought up to date first
    /// too.
    pub async fn open_read_only_with(
        path: &Path,
        holds: Holds,
        also: &[Migration],
    ) -> Result<Option<Journal>, JournalError> {
        // No `-wal` file: no connection has the journal open (the last to close removes it). A
        // read-only connection would create the `-wal` and `-shm` files and could not remove
        // them; a writable one that writes nothing removes them as it closes, being the last.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let alone = !Path::new(&wal).exists();
        let pool = sqlite_readers(path, 1, !alone)
            .await
            .map_err(|e| cannot_open(holds, path, e))?;
        let journal = Journal {
            pool,
            dialect: Dialect::Sqlite,
            path: path.to_path_buf(),
            holds,
        };
        let created: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'servo_schema'",
        )
        .fetch_one(&journal.pool)
        .await
        .map_err(|e| journal.db(e))?;
        if created == 0 {
            journal.close().await;
            return Ok(None);
        }
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM servo_schema")
            .fetch_all(&journal.pool)
            .await
            .map_err(|e| journal.db(e))?;
        journal.refuse_newer(&applied)?;
        if has_every(&applied, STUDY_MIGRATIONS) && has_every(&applied, also) {
            return Ok(Some(journal));
        }
        journal.close().await;
        let journal = Self::open_sqlite(path, holds).await?;
        journal.migrate(also).await?;
        Ok(Some(journal))
    }

    /// An error when the schema steps `applied` include one of a newer servo: such a database is
    /// refused, not misread.
    fn refuse_newer(&self, applied: &[i64]) -> Result<(), JournalError> {
        let version = applied.iter().copied().max().unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(self.db(format!(
                "written by a newer servo (schema {version}, this one knows {SCHEMA_VERSION}); upgrade servo"
            )));
        }
        Ok(())
    }

    pub(crate) fn db(&self, e: impl std::fmt::Display) -> JournalError {
        JournalError::Database {
            holds: self.holds,
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Applies the `migrations` this database has not recorded, in one transaction. Each owner of
    /// tables in the database (the study here, the optimizer server its own) passes its list; versions
    /// are numbered across owners so `servo_schema` keeps one sequence. On PostgreSQL an advisory
    /// lock keeps two servers starting at once from racing. A database that has every step
    /// (most opens) is only read: no write lock, nothing for a running writer to wait behind.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<(), JournalError> {
        // An error here (no `servo_schema` yet, most likely) leaves it to the transaction below.
        if let Ok(applied) = sqlx::query_scalar::<_, i64>("SELECT version FROM servo_schema")
            .fetch_all(&self.pool)
            .await
            && applied.iter().all(|&v| v <= SCHEMA_VERSION)
            && has_every(&applied, migrations)
        {
            return Ok(());
        }
        let mut tx = self.write().await.map_err(|e| self.db(e))?;
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
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM servo_schema")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        self.refuse_newer(&applied)?;
        for migration in migrations.iter().filter(|m| !applied.contains(&m.version)) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sql(self.dialect)))
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
            return self
                .new_study(name, space, objective, constraints, &[])
                .await;
        }
        if let Some(existing) = self.current(name).await? {
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

    /// Retires every study of `name` and starts a new one holding `reused` (trials of an earlier
    /// study, numbered before 0), all in one transaction: a crash leaves either the old study
    /// current or the new one with every reused trial, never a new one without them.
    pub async fn new_study(
        &self,
        name: &str,
        space: &Space,
        objective: &str,
        constraints: &[String],
        reused: &[Trial],
    ) -> Result<Study, JournalError> {
        let mut tx = self.write().await.map_err(|e| self.db(e))?;
        sqlx::query("UPDATE studies SET retired = 1 WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        let study = create_study(&mut tx, name, space, objective, constraints)
            .await
            .map_err(|e| self.db(e))?;
        for trial in reused {
            insert_reused(&mut tx, study.id, trial)
                .await
                .map_err(|e| self.db(format!("cannot record a reused trial: {e}")))?;
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(study)
    }

    /// The latest study of `name` (retired or not) with a complete trial, and its trials: what
    /// a new study of the same servo can start warm from.
    pub async fn latest_measured(
        &self,
        name: &str,
    ) -> Result<Option<(Study, Vec<Trial>)>, JournalError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        let Some(study) = latest_measured_study(&mut conn, name)
            .await
            .map_err(|e| self.db(e))?
        else {
            return Ok(None);
        };
        let trials = study_trials(&mut conn, study.id)
            .await
            .map_err(|e| self.db(e))?;
        Ok(Some((study, trials)))
    }

    /// Records the objectives of a study with several (`targets` empty: it has one). The study
    /// takes the config's objectives when they changed, as a study resumed with another
    /// objective does; its earlier trials are then scored for them from their readings.
    pub async fn record_objectives(
        &self,
        study: &mut Study,
        targets: &[crate::config::optimizer::Target],
    ) -> Result<(), JournalError> {
        if study.objectives == targets {
            return Ok(());
        }
        let json = (!targets.is_empty())
            .then(|| serde_json::to_string(targets))
            .transpose()
            .map_err(|e| self.db(e))?;
        sqlx::query("UPDATE studies SET objectives = $1 WHERE id = $2")
            .bind(json)
            .bind(study.id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        study.objectives = targets.to_vec();
        Ok(())
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
        self.begin_as(study, config, None).await
    }

    /// [`Journal::begin`] for a trial with a role (a re-measurement of the baseline).
    pub async fn begin_as(
        &self,
        study: &Study,
        config: &BTreeMap<String, ParamValue>,
        role: Option<TrialRole>,
    ) -> Result<i64, JournalError> {
        let failed = |e: String| self.db(format!("cannot record a new trial: {e}"));
        let mut tx = self.write().await.map_err(|e| failed(e.to_string()))?;
        let number = begin_trial(&mut tx, study.id, config)
            .await
            .map_err(failed)?;
        if let Some(role) = role {
            set_role(&mut tx, study.id, number, role)
                .await
                .map_err(failed)?;
        }
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
        match finish_trial(&mut conn, study.id, trial)
            .await
            .map_err(failed)?
        {
            1 => Ok(()),
            // The row was not ours to write any more: another writer finished or interrupted it.
            // Saying so beats recording a result over someone else's.
            _ => Err(failed(
                "it is no longer running in the journal (another servo finished or interrupted it)"
                    .into(),
            )),
        }
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

/// Whether the schema steps `applied` include every one of `migrations`.
fn has_every(applied: &[i64], migrations: &[Migration]) -> bool {
    migrations.iter().all(|m| applied.contains(&m.version))
}

/// The journal or store at `path` could not be opened, because of `e`.
fn cannot_open(holds: Holds, path: &Path, e: impl std::fmt::Display) -> JournalError {
    JournalError::Open {
        holds,
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The SQLite file a store names, `None` for a PostgreSQL URL (see [`Journal::open_store`]).
pub fn sqlite_path(store: &str) -> Option<&Path> {
    let postgres = store.starts_with("postgres://") || store.starts_with("postgresql://");
    (!postgres).then(|| Path::new(store.strip_prefix("sqlite://").unwrap_or(store)))
}

/// A pool of up to `connections` connections to the SQLite file at `path` that never write
/// (`query_only`). With `read_only`, read-only at open too: such a connection can neither write
/// nor checkpoint the WAL when it closes, which a writer at work could find locked.
async fn sqlite_readers(
    path: &Path,
    connections: u32,
    read_only: bool,
) -> Result<AnyPool, sqlx::Error> {
    let absolute = std::path::absolute(path)?;
    let url = SqliteConnectOptions::new()
        .filename(&absolute)
        .read_only(read_only)
        .to_url_lossy();
    sqlx::any::install_default_drivers();
    let connect = AnyConnectOptions::from_url(&url)?.disable_statement_logging();
    AnyPoolOptions::new()
        .max_connections(connections)
        .idle_timeout(None)
        .max_lifetime(None)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::raw_sql("PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;")
                    .execute(conn)
                    .await
                    .map(drop)
            })
        })
        .connect_with(connect)
        .await
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
    use crate::config::optimizer::Target;
    use servo_optimizer::{Domain, Param};

    fn space() -> Space {
        Space::new(vec![Param::new(
            "web.cpu",
            Domain::Float {
                low: 0.25,
                high: 4.0,
                step: None,
                log: false,
            },
        )])
    }

    /// A journal as servo wrote it at schema 4 (before reused trials and trial roles): study `s`
    /// with one complete trial.
    async fn journal_of_schema_4(path: &Path) {
        let url = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy();
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(url.as_str()).await.expect("connect");
        let mut script = String::from("CREATE TABLE servo_schema (version BIGINT NOT NULL);\n");
        for m in STUDY_MIGRATIONS.iter().filter(|m| m.version <= 4) {
            script.push_str(&m.sql(Dialect::Sqlite));
            script.push_str(&format!(
                "\nINSERT INTO servo_schema VALUES ({});\n",
                m.version
            ));
        }
        script.push_str(&format!(
            "INSERT INTO studies (name, space, objective, constraints, created_at) VALUES ('s', '{}', 'web.cpu', '[]', 1);
             INSERT INTO trials (study_id, number, state, config, readings, objective, constraints, feasible, started_at, finished_at) VALUES (1, 0, 'complete', '{{\"web.cpu\":1.0}}', '{{}}', 1.0, '[]', 1, 1, 2);",
            serde_json::to_string(&space()).expect("json")
        ));
        sqlx::raw_sql(sqlx::AssertSqlSafe(script))
            .execute(&mut conn)
            .await
            .expect("the old schema");
        conn.close().await.expect("close");
    }

    /// A journal written before reused trials and trial roles existed (schema 4) opens, gains
    /// them, and reads its trials as neither; a new study then keeps both.
    #[tokio::test]
    async fn a_journal_of_schema_4_opens_and_keeps_reused_trials_and_roles_from_then_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        journal_of_schema_4(&path).await;
        let journal = Journal::open(&path).await.expect("an old journal opens");
        let old = journal
            .current("s")
            .await
            .expect("read")
            .expect("its study");
        let trials = journal.trials(&old).await.expect("trials");
        assert_eq!(trials.len(), 1);
        assert_eq!((trials[0].reused, trials[0].role), (None, None));

        let (earlier, earlier_trials) = journal
            .latest_measured("s")
            .await
            .expect("read")
            .expect("the old study measured a trial");
        assert_eq!(earlier.id, old.id);
        let mut reused = earlier_trials[0].clone();
        reused.number = -1;
        reused.reused = Some(Reused {
            study: old.id,
            trial: 0,
        });
        let new = journal
            .new_study("s", &space(), "web.cpu", &[], &[reused.clone()])
            .await
            .expect("a new study");
        assert_ne!(new.id, old.id);
        let config = BTreeMap::from([("web.cpu".to_string(), ParamValue::Float(2.0))]);
        assert_eq!(journal.begin(&new, &config).await.expect("begin"), 0);
        let number = journal
            .begin_as(&new, &config, Some(TrialRole::Baseline))
            .await
            .expect("begin");
        let trials = journal.trials(&new).await.expect("trials");
        assert_eq!(trials.len(), 3);
        assert_eq!(trials[0], reused);
        assert_eq!((trials[1].number, trials[1].role), (0, None));
        assert_eq!(
            (trials[2].number, trials[2].role),
            (number, Some(TrialRole::Baseline))
        );
        // The old study is retired, and still the latest that measured a trial of its own.
        assert_eq!(
            journal.current("s").await.expect("read").map(|s| s.id),
            Some(new.id)
        );
        let latest = journal.latest_measured("s").await.expect("read");
        assert_eq!(latest.map(|(s, _)| s.id), Some(old.id));
        journal.close().await;
    }

    /// A journal written before several objectives existed (migrations 1 and 4 only) opens, gains
    /// the columns, reads its trials as they were, and a study on it then keeps its objectives
    /// and each trial's values.
    #[tokio::test]
    async fn a_journal_from_before_several_objectives_opens_and_keeps_them_from_then_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        let space = Space::default();
        {
            sqlx::any::install_default_drivers();
            let url = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .to_url_lossy();
            let mut conn = AnyConnection::connect(url.as_str()).await.expect("connect");
            let mut sql = String::from(
                "CREATE TABLE servo_schema (version BIGINT NOT NULL); INSERT INTO servo_schema (version) VALUES (1), (4);",
            );
            for m in &STUDY_MIGRATIONS[..2] {
                sql.push_str(&m.sql(Dialect::Sqlite));
            }
            sql.push_str(&format!(
                "INSERT INTO studies (name, space, objective, constraints, created_at) VALUES ('s', '{}', 'cost', '[]', 1.0);
                 INSERT INTO trials (study_id, number, state, config, readings, objective, constraints, feasible, started_at, finished_at)
                 VALUES (1, 0, 'complete', '{{}}', '{{\"cost\": {{\"value\": 3.0, \"unit\": \"\"}}}}', 3.0, '[]', 1, 1.0, 2.0);",
                serde_json::to_string(&space).expect("json")
            ));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("an old journal");
            conn.close().await.expect("close");
        }
        let journal = Journal::open(&path).await.expect("the old journal opens");
        let mut study = journal
            .current("s")
            .await
            .expect("read")
            .expect("its study");
        assert!(study.objectives.is_empty());
        let trials = journal.trials(&study).await.expect("trials");
        assert_eq!(trials.len(), 1);
        assert_eq!(
            (trials[0].objective, trials[0].objectives.clone()),
            (Some(3.0), Vec::new())
        );

        let targets = vec![Target::new("cost", false), Target::new("latency", true)];
        journal
            .record_objectives(&mut study, &targets)
            .await
            .expect("recorded");
        let number = journal
            .begin(&study, &BTreeMap::new())
            .await
            .expect("begin");
        let mut trial = trials[0].clone();
        trial.number = number;
        trial.objectives = vec![3.0, 41.5];
        journal.finish(&study, &trial).await.expect("finish");
        journal.close().await;

        let journal = Journal::open(&path).await.expect("opens again");
        let study = journal.current("s").await.expect("read").expect("study");
        assert_eq!(study.objectives, targets);
        let trials = journal.trials(&study).await.expect("trials");
        assert_eq!(trials[1].objectives, vec![3.0, 41.5]);
        assert!(
            trials[0].objectives.is_empty(),
            "the old trial is as it was"
        );
        // Back to one objective: the study says so, its trials keep what they journaled.
        let mut study = study;
        journal
            .record_objectives(&mut study, &[])
            .await
            .expect("recorded");
        let study = journal.current("s").await.expect("read").expect("study");
        assert!(study.objectives.is_empty());
        let trials = journal.trials(&study).await.expect("trials");
        assert_eq!(trials[1].objectives, vec![3.0, 41.5]);
        journal.close().await;
    }

    /// Study `s` of [`space`] in `journal`, and a configuration of it.
    async fn study_s(journal: &Journal) -> (Study, BTreeMap<String, ParamValue>) {
        let study = journal
            .study("s", &space(), "web.cpu", &[], false)
            .await
            .expect("a study");
        let config = BTreeMap::from([("web.cpu".to_string(), ParamValue::Float(2.0))]);
        (study, config)
    }

    /// A resumed study suggests what the uninterrupted one would have only if the trials come
    /// back bit for bit: these values are ones a correctly rounded parser and a merely close one
    /// read differently.
    #[tokio::test]
    async fn a_trial_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(&dir.path().join("study.db"))
            .await
            .expect("open");
        let (study, _) = study_s(&journal).await;
        let config = BTreeMap::from([(
            "web.cpu".to_string(),
            ParamValue::Float(9.722_020_368_295_581),
        )]);
        let number = journal.begin(&study, &config).await.expect("begin");
        let mut trial = Trial::running(number, config, 1.0);
        trial.state = TrialState::Complete;
        let reading = RecordedReading {
            value: 1.308_182_448_063_069_7,
            unit: String::new(),
        };
        trial.readings = BTreeMap::from([("cost".to_string(), reading)]);
        trial.objective = Some(1.308_182_448_063_069_7);
        trial.finished_at = Some(2.0);
        journal.finish(&study, &trial).await.expect("finish");
        let read = journal.trials(&study).await.expect("trials");
        assert_eq!(read[0].config, trial.config);
        assert_eq!(read[0].readings, trial.readings);
        journal.close().await;
    }

    /// What `servo trials` opens: a journal with no tables yet (its `servo run` is creating it)
    /// reads as none and is left as it was; a written one reads, and refuses to be written.
    #[tokio::test]
    async fn a_read_only_journal_reads_and_never_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let creating = dir.path().join("creating.db");
        std::fs::write(&creating, b"").expect("an empty file");
        assert!(
            Journal::open_read_only(&creating)
                .await
                .expect("opens")
                .is_none()
        );
        assert_eq!(std::fs::metadata(&creating).expect("still there").len(), 0);

        let path = dir.path().join("study.db");
        let writer = Journal::open(&path).await.expect("open");
        let (study, config) = study_s(&writer).await;
        writer.begin(&study, &config).await.expect("a trial");
        // A reader sees the trials so far and cannot add one.
        let read = async |trials: usize| {
            let reader = Journal::open_read_only(&path)
                .await
                .expect("opens")
                .expect("has tables");
            let current = reader.current("s").await.expect("read").expect("the study");
            assert_eq!(reader.trials(&current).await.expect("trials").len(), trials);
            let refused = reader.begin(&current, &config).await;
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("readonly")),
                "{refused:?}"
            );
            reader
        };
        let reader = read(1).await;
        writer
            .begin(&study, &config)
            .await
            .expect("the writer goes on");
        assert_eq!(reader.trials(&study).await.expect("trials").len(), 2);
        reader.close().await;

        // Read alone, the journal is left as its writer left it: no `-wal` or `-shm` file beside.
        writer.close().await;
        let beside = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::path::PathBuf::from(name).exists()
        };
        assert!(!beside("-wal") && !beside("-shm"), "the writer closed");
        read(2).await.close().await;
        assert!(!beside("-wal") && !beside("-shm"), "the reader left files");
    }

    /// An older servo's journal is brought up to date before it is read (this servo's queries
    /// read the newer columns).
    #[tokio::test]
    async fn a_read_only_open_of_an_old_journal_migrates_it_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        journal_of_schema_4(&path).await;
        let journal = Journal::open_read_only(&path)
            .await
            .expect("opens")
            .expect("has tables");
        let study = journal
            .current("s")
            .await
            .expect("read")
            .expect("its study");
        let trials = journal.trials(&study).await.expect("trials");
        assert_eq!((trials.len(), trials[0].role), (1, None));
    }

    /// Two writers on one SQLite file (`servo optimizer app create` beside a busy server): a
    /// write transaction that reads first still writes once another writer came and went, since
    /// the other waited for its commit. Begun without the write lock it failed with "database is
    /// locked" (SQLITE_BUSY_SNAPSHOT) the moment the other had committed first.
    #[tokio::test]
    async fn a_write_transaction_is_not_overtaken_by_another_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("study.db");
        let first = Journal::open(&path).await.expect("open");
        let second = Journal::open(&path).await.expect("open again");
        let (study, config) = study_s(&first).await;
        let mut tx = first.write().await.expect("a write transaction");
        let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM trials")
            .fetch_one(&mut *tx)
            .await
            .expect("it reads first");
        let other = {
            let (study, config) = (study.clone(), config.clone());
            tokio::spawn(async move { second.begin(&study, &config).await })
        };
        // Time for the other writer to commit, had it not had to wait.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        sqlx::query("UPDATE studies SET retired = 0 WHERE id = $1")
            .bind(study.id)
            .execute(&mut *tx)
            .await
            .expect("then writes");
        tx.commit().await.expect("and commits");
        assert_eq!(
            other.await.expect("joined").expect("the other wrote after"),
            0
        );
        assert_eq!(before, 0);
    }

    /// Opening a journal that has every schema step takes no write lock, so a writer mid-
    /// transaction (a study, a busy server) does not hold it up, nor does it hold the writer up.
    #[tokio::test]
    async fn opening_an_up_to_date_journal_does_not_wait_for_a_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("study.db");
        let writer = Journal::open(&path).await.expect("open");
        let tx = writer.write().await.expect("a write transaction");
        let reopened =
            tokio::time::timeout(std::time::Duration::from_secs(3), Journal::open(&path))
                .await
                .expect("opens without waiting for the write lock (busy timeout 10 s)")
                .expect("opens");
        tx.commit().await.expect("the writer commits");
        reopened.close().await;
    }
}
