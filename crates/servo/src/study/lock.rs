//! One writer per study: `servo run` holds an exclusive lock on its journal for as long as it runs.
//!
//! Two runs on one journal would each adjust the application and interleave their trials. The lock
//! is an advisory `flock` on `<journal>.lock`, which the kernel releases when its holder exits in
//! any way, SIGKILL included, so a crashed run never leaves a stale lock behind. The file holds who
//! has it (pid, host, since when), for the message the second run prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use servo_core::time::utc;

use super::StudyError;
use super::journal::{Holds, JournalError, now};

/// Held while a study runs; dropping it releases the lock.
#[derive(Debug)]
pub struct StudyLock {
    _file: File,
}

/// Who holds a study's lock.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    /// Unix seconds.
    since: f64,
}

impl StudyLock {
    /// Takes the lock of the journal at `journal`, or says who holds it (a usage error: exit 2).
    pub fn acquire(journal: &Path) -> Result<StudyLock, StudyError> {
        let path = lock_path(journal);
        // The lock lives beside the journal: failing to make it is failing to open the journal.
        let open_error = |e: std::io::Error| {
            StudyError::Journal(JournalError::Open {
                holds: Holds::Journal,
                path: journal.to_path_buf(),
                message: format!("cannot lock {}: {e}", path.display()),
            })
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(open_error)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(open_error)?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e != rustix::io::Errno::WOULDBLOCK {
                return Err(open_error(e.into()));
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match serde_json::from_str::<Holder>(&text) {
                Ok(h) => format!("pid {} on host {}, since {}", h.pid, h.host, utc(h.since)),
                Err(_) => "another servo".into(),
            };
            return Err(StudyError::Config {
                message: format!(
                    "the journal {} is in use by another `servo run` ({holder}): one study has one writer",
                    journal.display()
                ),
                hint: Some(
                    "wait for that run to end or stop it (it resumes where it stopped), or give this servo its own journal (`optimizer.journal`)".into(),
                ),
            });
        }
        let holder = Holder {
            pid: std::process::id(),
            host: rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            since: now(),
        };
        // Best effort: the lock itself is what excludes; the text only names the holder.
        let text = serde_json::to_string(&holder).unwrap_or_default();
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.flush());
        Ok(StudyLock { _file: file })
    }
}

fn lock_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_journal_names_the_holder_and_the_first_release_frees_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = dir.path().join("study.db");
        let first = StudyLock::acquire(&journal).expect("the first run takes the lock");
        let refused = StudyLock::acquire(&journal).expect_err("one writer");
        let message = refused.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        StudyLock::acquire(&journal).expect("free again once the holder is gone");
    }
}
