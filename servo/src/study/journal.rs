//! The trial journal: every study and trial in a SQLite file (WAL, synchronous=FULL), written before
//! the next step starts, so a crash loses nothing that completed and a restart resumes the study.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::optimizer::{ParamValue, Space};

/// Schema version in `PRAGMA user_version`; bump with a migration step below.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
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
"#;

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

/// An open journal file.
#[derive(Clone, Debug)]
pub struct Journal {
    pool: SqlitePool,
    path: PathBuf,
}

impl Journal {
    /// Opens (creating when needed) the journal, its directory and its tables.
    pub async fn open(path: &Path) -> Result<Journal, JournalError> {
        let open_error = |message: String| JournalError::Open {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        let journal = Journal {
            pool,
            path: path.to_path_buf(),
        };
        journal.migrate().await?;
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, e: impl std::fmt::Display) -> JournalError {
        JournalError::Database {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    async fn migrate(&self) -> Result<(), JournalError> {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        if version > SCHEMA_VERSION {
            return Err(self.db(format!(
                "written by a newer servo (schema {version}, this one knows {SCHEMA_VERSION}); upgrade servo"
            )));
        }
        sqlx::raw_sql(SCHEMA)
            .execute(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {SCHEMA_VERSION}"
        )))
        .execute(&self.pool)
        .await
        .map_err(|e| self.db(e))?;
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
            sqlx::query("UPDATE studies SET retired = 1 WHERE name = ?")
                .bind(name)
                .execute(&self.pool)
                .await
                .map_err(|e| self.db(e))?;
        } else if let Some(existing) = self.current(name).await? {
            if let Some(change) = describe_change(&existing.space, space) {
                return Err(JournalError::SpaceChanged {
                    name: name.to_string(),
                    change,
                });
            }
            return Ok(existing);
        }
        let space_json = serde_json::to_string(space).map_err(|e| self.db(e))?;
        let constraints_json = serde_json::to_string(constraints).map_err(|e| self.db(e))?;
        let created_at = now();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO studies (name, space, objective, constraints, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(&space_json)
        .bind(objective)
        .bind(&constraints_json)
        .bind(created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(Study {
            id,
            name: name.to_string(),
            space: space.clone(),
            objective: objective.to_string(),
            constraints: constraints.to_vec(),
            created_at,
        })
    }

    /// The newest non-retired study of `name`.
    pub async fn current(&self, name: &str) -> Result<Option<Study>, JournalError> {
        let row = sqlx::query(
            "SELECT id, name, space, objective, constraints, created_at FROM studies WHERE name = ? AND retired = 0 ORDER BY id DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.db(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let space: String = row.try_get("space").map_err(|e| self.db(e))?;
        let constraints: String = row.try_get("constraints").map_err(|e| self.db(e))?;
        Ok(Some(Study {
            id: row.try_get("id").map_err(|e| self.db(e))?,
            name: row.try_get("name").map_err(|e| self.db(e))?,
            space: serde_json::from_str(&space).map_err(|e| self.db(e))?,
            objective: row.try_get("objective").map_err(|e| self.db(e))?,
            constraints: serde_json::from_str(&constraints).map_err(|e| self.db(e))?,
            created_at: row.try_get("created_at").map_err(|e| self.db(e))?,
        }))
    }

    /// Trials left `running` by a run that died are marked `interrupted`; returns how many.
    pub async fn interrupt_running(&self, study: &Study) -> Result<u64, JournalError> {
        let done = sqlx::query(
            "UPDATE trials SET state = 'interrupted', finished_at = ?, error = COALESCE(error, 'servo stopped during this trial') WHERE study_id = ? AND state = 'running'",
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
        let config = serde_json::to_string(config).map_err(|e| self.db(e))?;
        let mut tx = self.pool.begin().await.map_err(|e| self.db(e))?;
        let number: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = ?",
        )
        .bind(study.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        sqlx::query("INSERT INTO trials (study_id, number, state, config, started_at) VALUES (?, ?, 'running', ?, ?)")
            .bind(study.id)
            .bind(number)
            .bind(&config)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(number)
    }

    /// Records how a trial ended.
    pub async fn finish(&self, study: &Study, trial: &Trial) -> Result<(), JournalError> {
        let readings = serde_json::to_string(&trial.readings).map_err(|e| self.db(e))?;
        let constraints = serde_json::to_string(&trial.constraints).map_err(|e| self.db(e))?;
        sqlx::query(
            "UPDATE trials SET state = ?, readings = ?, objective = ?, constraints = ?, feasible = ?, error = ?, finished_at = ? WHERE study_id = ? AND number = ?",
        )
        .bind(trial.state.as_str())
        .bind(&readings)
        .bind(trial.objective)
        .bind(&constraints)
        .bind(trial.feasible)
        .bind(&trial.error)
        .bind(trial.finished_at.unwrap_or_else(now))
        .bind(study.id)
        .bind(trial.number)
        .execute(&self.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Every trial of a study, in order.
    pub async fn trials(&self, study: &Study) -> Result<Vec<Trial>, JournalError> {
        let rows = sqlx::query(
            "SELECT number, state, config, readings, objective, constraints, feasible, error, started_at, finished_at FROM trials WHERE study_id = ? ORDER BY number",
        )
        .bind(study.id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state").map_err(|e| self.db(e))?;
                let config: String = row.try_get("config").map_err(|e| self.db(e))?;
                let readings: Option<String> = row.try_get("readings").map_err(|e| self.db(e))?;
                let constraints: Option<String> =
                    row.try_get("constraints").map_err(|e| self.db(e))?;
                Ok(Trial {
                    number: row.try_get("number").map_err(|e| self.db(e))?,
                    state: state.parse().map_err(|e: String| self.db(e))?,
                    config: serde_json::from_str(&config).map_err(|e| self.db(e))?,
                    readings: readings
                        .map(|r| serde_json::from_str(&r))
                        .transpose()
                        .map_err(|e| self.db(e))?
                        .unwrap_or_default(),
                    objective: row.try_get("objective").map_err(|e| self.db(e))?,
                    constraints: constraints
                        .map(|c| serde_json::from_str(&c))
                        .transpose()
                        .map_err(|e| self.db(e))?
                        .unwrap_or_default(),
                    feasible: row.try_get("feasible").map_err(|e| self.db(e))?,
                    error: row.try_get("error").map_err(|e| self.db(e))?,
                    started_at: row.try_get("started_at").map_err(|e| self.db(e))?,
                    finished_at: row.try_get("finished_at").map_err(|e| self.db(e))?,
                })
            })
            .collect()
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// How `new` differs from `old`, in words; `None` when they are the same space.
fn describe_change(old: &Space, new: &Space) -> Option<String> {
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
