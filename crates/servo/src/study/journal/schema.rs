//! The journal's schema: the study's tables, and the mechanism by which every owner of tables in
//! the same database (the optimizer server too) records the steps it applied.

/// One step of a database's schema, written for both databases (SQLite has no `BIGSERIAL`,
/// PostgreSQL's `REAL` is single precision).
pub struct Migration {
    /// Its number in `servo_schema`, unique across every owner of tables in the database.
    pub version: i64,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// The highest version any migration of servo has (the study's and the optimizer server's): a
/// database recording a higher one was written by a newer servo and is refused, not misread.
/// Raise it with every new migration, wherever it lives.
pub const SCHEMA_VERSION: i64 = 2;

/// The study's tables, one step per version, applied at open; the versions applied are kept in
/// `servo_schema`. Booleans are integers so one decoding works on both databases.
pub(super) const STUDY_MIGRATIONS: &[Migration] = &[Migration {
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
}];

/// Every SQLite connection's settings: WAL with full sync, so a committed trial survives a crash.
pub(super) const SQLITE_SETUP: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;";
