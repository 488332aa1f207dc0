//! The journal's schema: the study's tables, and the mechanism by which every owner of tables in
//! the same database (the optimizer server too) records the steps it applied.

use super::Dialect;

/// One step of a database's schema, written once for both databases: `{SERIAL}`, `{INT}` and
/// `{REAL}` stand for the column types that differ (SQLite has no `BIGSERIAL`, PostgreSQL's `REAL`
/// is single precision).
pub struct Migration {
    /// Its number in `servo_schema`, unique across every owner of tables in the database.
    pub version: i64,
    pub sql: &'static str,
}

impl Migration {
    /// The step's SQL for `dialect`.
    pub fn sql(&self, dialect: Dialect) -> String {
        let [serial, int, real] = match dialect {
            Dialect::Sqlite => ["INTEGER PRIMARY KEY", "INTEGER", "REAL"],
            Dialect::Postgres => ["BIGSERIAL PRIMARY KEY", "BIGINT", "DOUBLE PRECISION"],
        };
        self.sql
            .replace("{SERIAL}", serial)
            .replace("{INT}", int)
            .replace("{REAL}", real)
    }
}

/// The highest version any migration of servo has (the study's and the optimizer server's): a
/// database recording a higher one was written by a newer servo and is refused, not misread.
/// Raise it with every new migration, wherever it lives.
pub const SCHEMA_VERSION: i64 = 6;

/// The study's tables, one step per version, applied at open; the versions applied are kept in
/// `servo_schema`. Booleans are integers so one decoding works on both databases.
pub(super) const STUDY_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: r#"
CREATE TABLE IF NOT EXISTS studies (
    id {SERIAL},
    name TEXT NOT NULL,
    space TEXT NOT NULL,
    objective TEXT NOT NULL,
    constraints TEXT NOT NULL,
    created_at {REAL} NOT NULL,
    retired {INT} NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS trials (
    id {SERIAL},
    study_id {INT} NOT NULL REFERENCES studies(id),
    number {INT} NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'complete', 'failed', 'interrupted')),
    config TEXT NOT NULL,
    readings TEXT,
    objective {REAL},
    constraints TEXT,
    feasible {INT},
    error TEXT,
    started_at {REAL} NOT NULL,
    finished_at {REAL},
    UNIQUE (study_id, number)
);
"#,
    },
    // Why a trial was stopped before the end of its measurement (an SLO far past its limit).
    Migration {
        version: 4,
        sql: "ALTER TABLE trials ADD COLUMN cut_short TEXT;",
    },
    // Trials a new study took over from the earlier one (its study and number there), and
    // trials that re-measured the baseline (`role = 'baseline'`, `optimizer.baseline_every`).
    Migration {
        version: 5,
        sql: "ALTER TABLE trials ADD COLUMN reused_study {INT};
ALTER TABLE trials ADD COLUMN reused_trial {INT};
ALTER TABLE trials ADD COLUMN role TEXT;",
    },
    // Several objectives: the study's list (expression and direction, JSON) and each trial's
    // values (a JSON array in that order). NULL for a study with one objective.
    Migration {
        version: 6,
        sql: "ALTER TABLE studies ADD COLUMN objectives TEXT; ALTER TABLE trials ADD COLUMN objectives TEXT;",
    },
];

/// Every SQLite connection's settings: WAL with full sync, so a committed trial survives a crash.
/// The busy timeout comes first, so that switching a new file to WAL waits for a lock too.
pub(super) const SQLITE_SETUP: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

#[cfg(test)]
mod tests {
    use super::*;

    /// Databases created before the steps were templated must match what a new one gets.
    #[test]
    fn each_dialect_gets_its_column_types_and_no_placeholder_is_left() {
        let sqlite = STUDY_MIGRATIONS[0].sql(Dialect::Sqlite);
        let postgres = STUDY_MIGRATIONS[0].sql(Dialect::Postgres);
        assert!(sqlite.contains("    id INTEGER PRIMARY KEY,\n    study_id INTEGER NOT NULL"));
        assert!(sqlite.contains("    finished_at REAL,\n"));
        assert!(postgres.contains("    id BIGSERIAL PRIMARY KEY,\n    study_id BIGINT NOT NULL"));
        assert!(postgres.contains("    finished_at DOUBLE PRECISION,\n"));
        assert!(!sqlite.contains('{') && !postgres.contains('{'));
    }
}
