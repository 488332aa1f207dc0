//! Why the journal failed, and what to do about a journal that cannot be written.

use std::path::{Path, PathBuf};

/// What a database holds, as messages name it: an optimizer server's store shares the journal's
/// code and tables, but "cannot open the journal" beside `--store` sent users looking for a study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// One servo's studies (`servo run`, `servo trials`).
    Journal,
    /// An optimizer server's applications and their studies (`--store`).
    OptimizerStore,
}

impl std::fmt::Display for Holds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Holds::Journal => "journal",
            Holds::OptimizerStore => "optimizer store",
        })
    }
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the {holds} {path}: {message}")]
    Open {
        holds: Holds,
        path: PathBuf,
        message: String,
    },
    #[error("{holds} {path}: {message}")]
    Database {
        holds: Holds,
        path: PathBuf,
        message: String,
    },
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
        let (JournalError::Open {
            holds,
            path,
            message,
        }
        | JournalError::Database {
            holds,
            path,
            message,
        }) = self
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
                "this process may not write files larger than {limit} bytes (`ulimit -f`), and the {holds} and its write-ahead log ({}-wal) grow with every trial: raise the limit",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(message: &str) -> JournalError {
        JournalError::Database {
            holds: Holds::Journal,
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
