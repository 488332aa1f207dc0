//! What the optimizer server keeps: applications (name, hashed token, optimizer settings), one
//! protocol session per application, and the studies and trials of the journal, all in one database.
//!
//! Every change a request makes is all or nothing, and begins by writing the application's session
//! with a compare-and-set on its `revision`. Two servers sharing a PostgreSQL database (or two
//! requests racing in one server) therefore cannot both issue a trial: the loser's compare-and-set
//! matches no row, so it writes nothing, and the request is decided again from what the winner
//! wrote.
//!
//! [`Store::commit_batch`] applies many such changes (of different applications) in one
//! transaction, so that one fsync makes them all durable: the server's group commit
//! (`super::writer`).

use sqlx::{AnyConnection, AnyPool, Connection, Row};

use crate::config::optimizer::EmbeddedOptimizer;
use crate::study::journal::{
    DbResult, Holds, Journal, JournalError, Study, Trial, TrialState, create_study, current_study,
    finish_trial, insert_trial, live_study, now, sqlite_path, study_trials, text,
};

use super::application::{Application, token_hash};
use super::session::{Session, Write};

/// How many SQLite connections serve reads beside the one writer.
const READERS: u32 = 4;

/// The outcome of [`Store::commit`].
#[derive(Debug, PartialEq)]
pub enum Commit {
    Done(Box<Committed>),
    /// Another writer changed the session (or took a trial number) first: decide again.
    Conflict,
}

/// What a commit stored: the session as written (its `study_id` set when the commit started a
/// study) and the study it started, so the server's memory follows without reading them back.
#[derive(Debug, PartialEq)]
pub struct Committed {
    pub session: Session,
    pub study: Option<Study>,
}

/// One application's change, as [`Store::commit_batch`] takes it.
#[derive(Debug)]
pub struct Change {
    pub application: Application,
    /// The session revision the change was decided from.
    pub revision: i64,
    pub session: Session,
    pub writes: Vec<Write>,
}

/// An application's session and study as stored, read together.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub revision: i64,
    pub session: Session,
    /// The session's study, unless it is retired.
    pub study: Option<Study>,
    /// That study's trials, by number.
    pub trials: Vec<Trial>,
}

impl Loaded {
    /// Brings this up to date with `writes`, which this server just committed as `committed`,
    /// exactly as reading it back would.
    pub fn follow(&mut self, committed: Committed, writes: Vec<Write>) {
        self.revision += 1;
        self.session = committed.session;
        for write in writes {
            match write {
                Write::NewStudy { .. } => {
                    self.study.clone_from(&committed.study);
                    self.trials.clear();
                }
                Write::BeginTrial {
                    number,
                    config,
                    started_at,
                } => self.trials.push(Trial::running(number, config, started_at)),
                // The store records the end of a running trial only.
                Write::FinishTrial(trial) => {
                    if let Some(slot) = self
                        .trials
                        .iter_mut()
                        .find(|t| t.number == trial.number && t.state == TrialState::Running)
                    {
                        *slot = trial;
                    }
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    journal: Journal,
    /// Where reads go (see [`Journal::readers`]): a request reading its session never queues
    /// behind another's commit.
    readers: AnyPool,
}

impl Store {
    /// Opens a SQLite file or a `postgres://` database, applying migrations.
    pub async fn open(store: &str) -> Result<Store, JournalError> {
        let journal = Journal::open_store(store).await?;
        journal.migrate(super::schema::MIGRATIONS).await?;
        let readers = journal.readers(READERS).await?;
        Ok(Store { journal, readers })
    }

    /// Opens an existing store only to read it, as `servo optimizer app list` does, possibly
    /// beside a server writing it: a SQLite file as [`Journal::open_read_only`] opens a journal,
    /// never created, and written only to bring up to date one an older servo wrote. `None`
    /// while it has no tables yet (its server is creating them). PostgreSQL is opened as by
    /// [`Store::open`]: its readers take no lock a writer waits on.
    pub async fn open_to_read(store: &str) -> Result<Option<Store>, JournalError> {
        let Some(path) = sqlite_path(store) else {
            return Store::open(store).await.map(Some);
        };
        let Some(journal) =
            Journal::open_read_only_with(path, Holds::OptimizerStore, super::schema::MIGRATIONS)
                .await?
        else {
            return Ok(None);
        };
        // Its one connection reads too: no second one to open, or to leave last.
        let readers = journal.pool().clone();
        Ok(Some(Store { journal, readers }))
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    fn db(&self, e: impl std::fmt::Display) -> JournalError {
        self.journal.db(e)
    }

    /// Creates an application, or replaces its settings (and its token, when one is given) when
    /// `replace` is set. Replacing retires the current study: trials scored under another objective
    /// would mislead the optimizer.
    pub async fn put_application(
        &self,
        name: &str,
        token: Option<&str>,
        settings: &EmbeddedOptimizer,
        replace: bool,
    ) -> Result<Application, StoreError> {
        let settings_json = serde_json::to_string(settings).map_err(|e| self.db(e))?;
        let mut tx = self.journal.write().await.map_err(|e| self.db(e))?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM applications WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.db(e))?;
        match existing {
            Some(_) if !replace => return Err(StoreError::Exists(name.to_string())),
            Some(id) => {
                sqlx::query("UPDATE applications SET settings = $1 WHERE id = $2")
                    .bind(&settings_json)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.db(e))?;
                if let Some(token) = token {
                    sqlx::query("UPDATE applications SET token_sha256 = $1 WHERE id = $2")
                        .bind(token_hash(token))
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.db(e))?;
                }
                // The session before the studies, in the order a commit locks them, so the two
                // cannot deadlock on PostgreSQL. The conversation starts over, but the revision
                // keeps counting: were the row deleted, revisions would restart at 1, and a server
                // that read revision N before the replacement could win its compare-and-set
                // against the new conversation's revision N, writing its stale session over it.
                sqlx::query(
                    "UPDATE sessions SET revision = revision + 1, state = '{}', updated_at = $1 WHERE application_id = $2",
                )
                .bind(now())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db(e))?;
                sqlx::query("UPDATE studies SET retired = 1 WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.db(e))?;
            }
            None => {
                let Some(token) = token else {
                    return Err(StoreError::NoToken(name.to_string()));
                };
                sqlx::query("INSERT INTO applications (name, token_sha256, settings, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(name)
                    .bind(token_hash(token))
                    .bind(&settings_json)
                    .bind(now())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.db(e))?;
            }
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        self.application(name).await?.ok_or_else(|| {
            StoreError::Journal(self.db("the application vanished after writing it"))
        })
    }

    pub async fn application(&self, name: &str) -> Result<Option<Application>, JournalError> {
        let row = sqlx::query(
            "SELECT id, name, token_sha256, settings, created_at FROM applications WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| self.db(e))?;
        row.map(|row| self.read_application(&row)).transpose()
    }

    /// Every application, by name.
    pub async fn applications(&self) -> Result<Vec<Application>, JournalError> {
        let rows = sqlx::query(
            "SELECT id, name, token_sha256, settings, created_at FROM applications ORDER BY name",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter().map(|row| self.read_application(row)).collect()
    }

    fn read_application(&self, row: &sqlx::any::AnyRow) -> Result<Application, JournalError> {
        let settings: String = row.try_get("settings").map_err(|e| self.db(e))?;
        Ok(Application {
            id: row.try_get("id").map_err(|e| self.db(e))?,
            name: row.try_get("name").map_err(|e| self.db(e))?,
            token_sha256: row.try_get("token_sha256").map_err(|e| self.db(e))?,
            settings: serde_json::from_str(&settings).map_err(|e| self.db(e))?,
            created_at: row.try_get("created_at").map_err(|e| self.db(e))?,
        })
    }

    /// The application's session and its revision (0 and an empty session before the first write).
    pub async fn session(&self, application: i64) -> Result<(i64, Session), JournalError> {
        let mut conn = self.readers.acquire().await.map_err(|e| self.db(e))?;
        self.read_session(&mut conn, application).await
    }

    async fn read_session(
        &self,
        conn: &mut AnyConnection,
        application: i64,
    ) -> Result<(i64, Session), JournalError> {
        let row = sqlx::query("SELECT revision, state FROM sessions WHERE application_id = $1")
            .bind(application)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.db(e))?;
        match row {
            None => Ok((0, Session::default())),
            Some(row) => {
                let state: String = row.try_get("state").map_err(|e| self.db(e))?;
                Ok((
                    row.try_get("revision").map_err(|e| self.db(e))?,
                    serde_json::from_str(&state).map_err(|e| self.db(e))?,
                ))
            }
        }
    }

    /// The application's session revision alone (0 before the first write): whether what the
    /// server remembers of it is still what the store holds.
    pub async fn revision(&self, application: i64) -> Result<i64, JournalError> {
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM sessions WHERE application_id = $1")
                .bind(application)
                .fetch_optional(&self.readers)
                .await
                .map_err(|e| self.db(e))?;
        Ok(revision.unwrap_or(0))
    }

    /// The application's session with its live study and that study's trials, in one read
    /// transaction so the three agree.
    pub async fn load(&self, application: i64) -> Result<Loaded, JournalError> {
        let mut tx = self.readers.begin().await.map_err(|e| self.db(e))?;
        let (revision, session) = self.read_session(&mut tx, application).await?;
        let study = match session.study_id {
            Some(id) => live_study(&mut tx, id).await.map_err(|e| self.db(e))?,
            None => None,
        };
        let trials = match &study {
            Some(study) => study_trials(&mut tx, study.id)
                .await
                .map_err(|e| self.db(e))?,
            None => Vec::new(),
        };
        // Read-only: nothing to commit, and rolling back ends the snapshot as well.
        tx.rollback().await.map_err(|e| self.db(e))?;
        Ok(Loaded {
            revision,
            session,
            study,
            trials,
        })
    }

    /// The application's current study and its trials, for the read API.
    pub async fn current(
        &self,
        application: &Application,
    ) -> Result<Option<(Study, Vec<Trial>)>, JournalError> {
        let mut tx = self.readers.begin().await.map_err(|e| self.db(e))?;
        let Some(study) = current_study(&mut tx, &application.name)
            .await
            .map_err(|e| self.db(e))?
        else {
            return Ok(None);
        };
        let trials = study_trials(&mut tx, study.id)
            .await
            .map_err(|e| self.db(e))?;
        tx.rollback().await.map_err(|e| self.db(e))?;
        Ok(Some((study, trials)))
    }

    /// Applies `writes` and stores `session` as revision `revision + 1`, all or nothing, in a
    /// transaction of its own.
    pub async fn commit(
        &self,
        application: &Application,
        revision: i64,
        session: Session,
        writes: Vec<Write>,
    ) -> Result<Commit, JournalError> {
        let change = Change {
            application: application.clone(),
            revision,
            session,
            writes,
        };
        let mut tx = self.journal.write().await.map_err(|e| self.db(e))?;
        // A conflict or a failure drops the transaction, which rolls it back.
        let outcome = self.undone(self.change(&mut tx, &change).await)?;
        if matches!(outcome, Commit::Done(_)) {
            tx.commit().await.map_err(|e| self.db(e))?;
        }
        Ok(outcome)
    }

    /// Commits `changes` in one transaction (one fsync). The outer error means the transaction
    /// itself failed (to begin or to commit): none of the changes is stored, and none may be
    /// acknowledged. Otherwise each change's outcome, in order; the changes are applied in the
    /// order given, so two changes of one application land in that order.
    ///
    /// Each change is first written with one statement per row and no savepoint (a change whose
    /// compare-and-set fails has written nothing). Only when a statement fails part-way is the
    /// transaction rolled back and the batch written again with a savepoint per change, so that
    /// the failure undoes its own change alone.
    pub async fn commit_batch(
        &self,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<Commit, JournalError>>, JournalError> {
        let mut tx = self.journal.write().await.map_err(|e| self.db(e))?;
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in &changes {
            match self.change(&mut tx, change).await {
                Ok(outcome) => outcomes.push(Ok(outcome)),
                Err(_) => break,
            }
        }
        if outcomes.len() < changes.len() {
            tx.rollback().await.map_err(|e| self.db(e))?;
            return self.commit_each(changes).await;
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(outcomes)
    }

    /// [`Store::commit_batch`] with a savepoint per change.
    async fn commit_each(
        &self,
        changes: Vec<Change>,
    ) -> Result<Vec<Result<Commit, JournalError>>, JournalError> {
        let mut tx = self.journal.write().await.map_err(|e| self.db(e))?;
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in &changes {
            let mut savepoint = Connection::begin(&mut *tx).await.map_err(|e| self.db(e))?;
            let outcome = self.change(&mut savepoint, change).await;
            // A savepoint that cannot be released or undone leaves the transaction in doubt:
            // give the whole batch up.
            if matches!(outcome, Ok(Commit::Done(_))) {
                savepoint.commit().await.map_err(|e| self.db(e))?;
            } else {
                savepoint.rollback().await.map_err(|e| self.db(e))?;
            }
            outcomes.push(self.undone(outcome));
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(outcomes)
    }

    /// The outcome of a change whose failure has been rolled back.
    fn undone(&self, outcome: DbResult<Commit>) -> Result<Commit, JournalError> {
        match outcome {
            // A unique violation means a racing writer numbered a trial first.
            Err(e) if e.contains("UNIQUE") || e.contains("unique") => Ok(Commit::Conflict),
            Err(e) => Err(self.db(e)),
            Ok(outcome) => Ok(outcome),
        }
    }

    /// One application's change on `conn`, inside a transaction or savepoint the caller ends. A
    /// conflict has written nothing; an error may have written part of the change.
    async fn change(&self, conn: &mut AnyConnection, change: &Change) -> DbResult<Commit> {
        let Change {
            application,
            revision,
            session,
            writes,
        } = change;
        let mut session = session.clone();
        // Claim the session first, so a racing writer waits here (PostgreSQL row lock) or fails
        // the compare-and-set, before either inserts anything. Only a new study changes the
        // session as it is written; otherwise the claim writes it too.
        let starts_study = writes.iter().any(|w| matches!(w, Write::NewStudy { .. }));
        let state = serde_json::to_string(&session).map_err(text)?;
        let claimed = if *revision == 0 {
            sqlx::query(
                "INSERT INTO sessions (application_id, revision, state, updated_at) VALUES ($1, 1, $2, $3) ON CONFLICT (application_id) DO NOTHING",
            )
            .bind(application.id)
            .bind(&state)
            .bind(now())
            .execute(&mut *conn)
            .await
        } else {
            sqlx::query(
                "UPDATE sessions SET revision = revision + 1, state = $1, updated_at = $2 WHERE application_id = $3 AND revision = $4",
            )
            .bind(&state)
            .bind(now())
            .bind(application.id)
            .bind(*revision)
            .execute(&mut *conn)
            .await
        }
        .map_err(text)?;
        if claimed.rows_affected() != 1 {
            return Ok(Commit::Conflict);
        }
        let study = self.apply(conn, application, &mut session, writes).await?;
        if starts_study {
            let state = serde_json::to_string(&session).map_err(text)?;
            sqlx::query("UPDATE sessions SET state = $1 WHERE application_id = $2")
                .bind(&state)
                .bind(application.id)
                .execute(&mut *conn)
                .await
                .map_err(text)?;
        }
        Ok(Commit::Done(Box::new(Committed { session, study })))
    }

    /// Applies `writes`; returns the study a `NewStudy` started.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        application: &Application,
        session: &mut Session,
        writes: &[Write],
    ) -> DbResult<Option<Study>> {
        let mut started = None;
        for write in writes {
            match write {
                Write::NewStudy {
                    space,
                    objective,
                    constraints,
                } => {
                    sqlx::query("UPDATE studies SET retired = 1 WHERE name = $1")
                        .bind(&application.name)
                        .execute(&mut *conn)
                        .await
                        .map_err(text)?;
                    let study =
                        create_study(conn, &application.name, space, objective, constraints)
                            .await?;
                    session.study_id = Some(study.id);
                    started = Some(study);
                }
                Write::BeginTrial {
                    number,
                    config,
                    started_at,
                } => {
                    let study = session.study_id.ok_or("no study to add a trial to")?;
                    insert_trial(conn, study, *number, config, *started_at).await?;
                }
                Write::FinishTrial(trial) => {
                    let study = session.study_id.ok_or("no study to record a trial in")?;
                    // The session finishes each trial once (a repeated result is acknowledged
                    // without a write), so the row changed count has nothing to add here.
                    finish_trial(conn, study, trial).await?;
                }
            }
        }
        Ok(started)
    }

    /// Trials per application and state, for `/metrics`.
    pub async fn trial_counts(&self) -> Result<Vec<(String, String, i64)>, JournalError> {
        let rows = sqlx::query(
            "SELECT s.name AS name, t.state AS state, COUNT(*) AS n FROM trials t JOIN studies s ON s.id = t.study_id WHERE s.retired = 0 GROUP BY s.name, t.state ORDER BY s.name, t.state",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("name").map_err(|e| self.db(e))?,
                    row.try_get("state").map_err(|e| self.db(e))?,
                    row.try_get("n").map_err(|e| self.db(e))?,
                ))
            })
            .collect()
    }

    /// A trivial query: whether the database answers.
    pub async fn ping(&self) -> Result<(), JournalError> {
        sqlx::query("SELECT 1")
            .execute(self.journal.pool())
            .await
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    pub async fn close(self) {
        self.readers.close().await;
        self.journal.close().await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("application `{0}` exists")]
    Exists(String),
    #[error("application `{0}` needs a token")]
    NoToken(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
}
