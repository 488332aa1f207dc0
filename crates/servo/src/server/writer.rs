//! Group commit: one task writes every protocol request's change, many to a transaction.
//!
//! A durable commit costs an fsync, and SQLite has one writer: committing each request on its own
//! makes every request queue behind the fsyncs of all those before it. Here requests hand their
//! change to the writer and wait; the writer takes every change that arrived while the previous
//! transaction was committing, applies them in one transaction (each in its own savepoint, see
//! [`Store::commit_batch`]) and answers each only once that transaction is committed. So a result
//! is still durable before it is acknowledged, and a batch whose commit fails acknowledges none
//! of its changes: every request in it gets the error.
//!
//! A request holds its application's lock while it waits, so a batch holds at most one change per
//! application and changes of one application are written in the order they were decided. The
//! batch is sorted by application, so two servers sharing a PostgreSQL database lock sessions in
//! the same order and cannot deadlock.

use tokio::sync::{mpsc, oneshot};

use super::application::Application;
use super::session::{Session, Write};
use super::store::{Change, Commit, Store};
use crate::study::journal::JournalError;

/// At most this many changes per transaction: bounds how long a batch holds the write lock.
const MAX_BATCH: usize = 256;

struct Job {
    change: Change,
    reply: oneshot::Sender<Result<Commit, JournalError>>,
}

/// The handle requests commit through; the task ends when every handle is dropped.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// For the name in its errors.
    store: Store,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store) -> Writer {
        let (writer, task) = Writer::new(store);
        tokio::spawn(task);
        writer
    }

    /// The handle and the task that serves it, not yet running.
    fn new(store: Store) -> (Writer, impl Future<Output = ()>) {
        let (jobs, queue) = mpsc::channel(MAX_BATCH * 4);
        (
            Writer {
                jobs,
                store: store.clone(),
            },
            run(store, queue),
        )
    }

    /// Applies `writes` and stores `session` as revision `revision + 1`, all or nothing, as
    /// [`Store::commit`] does; returns once the transaction holding it is durable.
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
        let answer = self.submit(change).await?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Queues `change`; the answer comes once its batch is committed (or has failed).
    async fn submit(
        &self,
        change: Change,
    ) -> Result<oneshot::Receiver<Result<Commit, JournalError>>, JournalError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { change, reply })
            .await
            .map_err(|_| self.stopped())?;
        Ok(answer)
    }

    fn stopped(&self) -> JournalError {
        self.store.journal().db("the server's writer has stopped")
    }
}

async fn run(store: Store, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    // Waits for one change, then takes every other one already queued.
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // Stable: two changes of one application (possible only for callers without its lock)
        // keep their order.
        jobs.sort_by_key(|job| job.change.application.id);
        let (changes, replies): (Vec<Change>, Vec<_>) =
            jobs.drain(..).map(|job| (job.change, job.reply)).unzip();
        match store.commit_batch(changes).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A request that stopped waiting (its client went away) learns nothing; its
                    // change is stored all the same, and the server reads it back next time.
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, changes = replies.len(), "a group commit failed; none of its requests is acknowledged");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::optimizer::EmbeddedOptimizer;

    async fn store_with(names: &[&str]) -> (Store, Vec<Application>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("optimizer.db");
        let store = Store::open(path.to_str().expect("utf-8"))
            .await
            .expect("store");
        let mut applications = Vec::new();
        for name in names {
            let settings = EmbeddedOptimizer::default();
            let token = Some("token-0123456789abcdef");
            applications.push(
                store
                    .put_application(name, token, &settings, false)
                    .await
                    .expect("application"),
            );
        }
        (store, applications, dir)
    }

    fn agent(name: &str) -> Session {
        Session {
            agent: Some(name.into()),
            ..Session::default()
        }
    }

    fn change(application: &Application, revision: i64, name: &str) -> Change {
        Change {
            application: application.clone(),
            revision,
            session: agent(name),
            writes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn one_batch_keeps_each_applications_changes_in_order_and_undoes_only_a_conflict() {
        let (store, apps, _dir) = store_with(&["acme/b", "acme/a"]).await;
        let (writer, task) = Writer::new(store.clone());
        // Queued before the writer runs, so it takes them as one batch.
        let mut answers = Vec::new();
        for change in [
            change(&apps[0], 0, "b-1"),
            change(&apps[1], 0, "a-1"),
            change(&apps[0], 1, "b-2"),
            // Decided from a revision that is not the stored one.
            change(&apps[1], 7, "a-stale"),
        ] {
            answers.push(writer.submit(change).await.expect("queued"));
        }
        let task = tokio::spawn(task);
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.expect("answered").expect("committed"));
        }
        assert!(matches!(outcomes[0], Commit::Done(_)), "{outcomes:?}");
        assert!(matches!(outcomes[1], Commit::Done(_)), "{outcomes:?}");
        assert!(matches!(outcomes[2], Commit::Done(_)), "{outcomes:?}");
        assert_eq!(outcomes[3], Commit::Conflict);
        let session = |id| {
            let store = store.clone();
            async move { store.session(id).await.expect("session") }
        };
        assert_eq!(session(apps[0].id).await, (2, agent("b-2")));
        assert_eq!(session(apps[1].id).await, (1, agent("a-1")));
        drop(writer);
        task.await.expect("the writer ends with its last handle");
    }

    #[tokio::test]
    async fn a_batch_whose_commit_fails_acknowledges_none_of_its_changes() {
        let (store, apps, _dir) = store_with(&["acme/a", "acme/b"]).await;
        // A constraint SQLite checks only at COMMIT, broken by the first write of b's session: every
        // savepoint of the batch succeeds, then the transaction's commit fails.
        sqlx::raw_sql(
            "CREATE TABLE doomed (application INTEGER REFERENCES applications(id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TRIGGER doom AFTER INSERT ON sessions
             WHEN NEW.application_id = (SELECT id FROM applications WHERE name = 'acme/b')
             BEGIN INSERT INTO doomed VALUES (-1); END;",
        )
        .execute(store.journal().pool())
        .await
        .expect("trigger");
        let (writer, task) = Writer::new(store.clone());
        let mut answers = Vec::new();
        for change in [change(&apps[0], 0, "a-1"), change(&apps[1], 0, "b-1")] {
            answers.push(writer.submit(change).await.expect("queued"));
        }
        tokio::spawn(task);
        for answer in answers {
            let outcome = answer.await.expect("answered");
            assert!(outcome.is_err(), "acknowledged: {outcome:?}");
        }
        // Nothing of either is stored, though a's change alone was fine.
        for app in &apps {
            assert_eq!(store.session(app.id).await.expect("session").0, 0);
        }
        // The transaction was undone: the writer goes on with the next batch.
        let outcome = writer.commit(&apps[0], 0, agent("a-1"), Vec::new()).await;
        assert!(matches!(outcome, Ok(Commit::Done(_))), "{outcome:?}");
        assert_eq!(
            store.session(apps[0].id).await.expect("session"),
            (1, agent("a-1"))
        );
    }

    #[tokio::test]
    async fn a_change_failing_part_way_is_undone_alone_and_the_batch_goes_on() {
        let (store, apps, _dir) = store_with(&["acme/a", "acme/b"]).await;
        let begin = |number| Write::BeginTrial {
            number,
            config: Default::default(),
            started_at: 0.0,
        };
        let study = Write::NewStudy {
            space: servo_optimizer::Space::new(Vec::new()),
            objective: "x".into(),
            constraints: Vec::new(),
        };
        let first = store
            .commit(&apps[1], 0, agent("b-1"), vec![study, begin(0)])
            .await
            .expect("commit");
        let Commit::Done(first) = first else {
            panic!("not committed: {first:?}")
        };
        // b's change claims its session, then fails on a trial number that exists: the batch is
        // written again with a savepoint per change, and only b's change is undone.
        let (writer, task) = Writer::new(store.clone());
        let mut answers = Vec::new();
        let mut failing = change(&apps[1], 1, "b-2");
        failing.session.study_id = first.session.study_id;
        failing.writes = vec![begin(0)];
        for change in [change(&apps[0], 0, "a-1"), failing] {
            answers.push(writer.submit(change).await.expect("queued"));
        }
        tokio::spawn(task);
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.expect("answered").expect("committed"));
        }
        assert!(matches!(outcomes[0], Commit::Done(_)), "{outcomes:?}");
        assert_eq!(outcomes[1], Commit::Conflict);
        assert_eq!(
            store.session(apps[0].id).await.expect("session"),
            (1, agent("a-1"))
        );
        assert_eq!(
            store.session(apps[1].id).await.expect("session"),
            (1, first.session)
        );
    }
}
