//! The optimizer server's tables (applications and their protocol sessions), applied with the
//! journal's migration mechanism in the same database as the studies and trials.

use crate::study::journal::Migration;

/// The server's schema steps; their versions continue the study's in `servo_schema`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 2,
        sql: r#"
CREATE TABLE IF NOT EXISTS applications (
    id {SERIAL},
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at {REAL} NOT NULL
);
CREATE INDEX IF NOT EXISTS applications_token ON applications (token_sha256);
CREATE TABLE IF NOT EXISTS sessions (
    application_id {INT} PRIMARY KEY REFERENCES applications(id),
    revision {INT} NOT NULL,
    state TEXT NOT NULL,
    updated_at {REAL} NOT NULL
);
"#,
    },
    // Operators (the UI's tokens, digests only) and the audit log of what they did.
    Migration {
        version: 3,
        sql: r#"
CREATE TABLE IF NOT EXISTS operators (
    token_sha256 TEXT PRIMARY KEY,
    created_at {REAL} NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id {SERIAL},
    at {REAL} NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    application TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_application ON audit (application, id);
"#,
    },
];

#[cfg(test)]
mod tests {
    use crate::study::journal::SCHEMA_VERSION;

    /// A server migration above the journal's known version would make this servo refuse the
    /// databases it wrote itself.
    #[test]
    fn the_journal_knows_every_server_migration() {
        assert!(
            super::MIGRATIONS
                .iter()
                .all(|m| m.version <= SCHEMA_VERSION)
        );
    }
}
