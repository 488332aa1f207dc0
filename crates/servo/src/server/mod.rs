//! `servo optimizer serve`: the embedded optimizer behind the Opsani/ServoX protocol, so that many
//! servos (one per application) share one optimizer, and ServoX servos can use it too.
//!
//! - [`application`]: who may talk to the server, and with which optimizer settings.
//! - [`store`]: applications, sessions and trials in SQLite or PostgreSQL, changed atomically.
//! - [`session`]: what each protocol event does (pure, so it is tested without a server).
//! - [`http`]: the axum routes: the protocol endpoint, the read API, health, metrics, OpenAPI.
//! - [`ui`] and [`operator`]: the operators' web UI, their tokens, actions and audit log.

pub mod application;
pub mod http;
pub mod metrics;
pub mod operator;
pub mod schema;
pub mod session;
pub mod store;
pub mod ui;
pub mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use servo_optimizer::FitCache;
use tokio_util::sync::CancellationToken;

use crate::protocol::wire::EventName;
use crate::study::journal::JournalError;
use application::Application;
use metrics::TrialChange;
use session::{Decision, Invalid, Known, Options, Suggestion, Write, decide};
use store::{Commit, Loaded, Store};
use writer::Writer;

/// How often a request is decided again after losing a race before giving up with 503.
const MAX_ATTEMPTS: usize = 16;

/// The most applications whose session, study, trials and model fits the server keeps between
/// their requests. Past it, the least recently served that no request is using are forgotten:
/// their next request reads them back and fits their models from scratch once, so a fleet larger
/// than this costs time, never memory. Well above the 100 servos of `benches/optimizer-server.sh`.
const REMEMBERED_APPLICATIONS: usize = 256;

/// What the server keeps of one application between its requests; its mutex makes the
/// application's requests take turns inside this process (the store's compare-and-set covers
/// other processes).
#[derive(Default)]
struct Remembered {
    /// Its session, study and trials, good while the stored session revision is this one's: a
    /// request then reads one number instead of the whole study.
    loaded: Option<Loaded>,
    /// Its model fits, so that most fits refine the last one (taken out while a suggestion is
    /// computed). They save time only: a restarted server, or another replica, suggests the same
    /// from an empty cache, after one fit from scratch (see `servo_optimizer::FitCache`).
    fits: FitCache,
}

/// The applications the server remembers, with when each was last served.
struct Memory {
    /// Requests so far: the clock "last served" is read on.
    clock: u64,
    apps: HashMap<i64, (u64, Arc<tokio::sync::Mutex<Remembered>>)>,
    capacity: usize,
}

impl Memory {
    fn new(capacity: usize) -> Self {
        Self {
            clock: 0,
            apps: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// What is remembered of `application`, made room for if it is new.
    fn of(&mut self, application: i64) -> Arc<tokio::sync::Mutex<Remembered>> {
        self.clock += 1;
        let now = self.clock;
        if let Some((served, remembered)) = self.apps.get_mut(&application) {
            *served = now;
            return Arc::clone(remembered);
        }
        if self.apps.len() >= self.capacity {
            // Only what no request holds: a request in flight keeps its application's turn.
            let mut idle: Vec<(u64, i64)> = self
                .apps
                .iter()
                .filter(|(_, (_, r))| Arc::strong_count(r) == 1)
                .map(|(id, (served, _))| (*served, *id))
                .collect();
            idle.sort_unstable();
            let excess = self.apps.len() + 1 - self.capacity;
            for (_, id) in idle.into_iter().take(excess) {
                self.apps.remove(&id);
            }
        }
        let remembered = Arc::default();
        self.apps
            .insert(application, (now, Arc::clone(&remembered)));
        remembered
    }
}

/// A running server's shared state.
pub struct Server {
    pub store: Store,
    pub options: Options,
    pub metrics: metrics::Metrics,
    /// The digest of the `--admin-token-file` operator token, if one was given.
    operator_token_sha256: Option<String>,
    /// When each application's servo last spoke (Unix seconds), for the fleet page.
    contacts: Mutex<HashMap<i64, f64>>,
    /// What the server remembers of each application it served lately, behind one lock per
    /// application.
    memory: Mutex<Memory>,
    /// Group commit of the protocol requests' changes.
    writer: Writer,
}

/// Why a protocol request was not answered normally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Storage(#[from] JournalError),
    #[error("too many concurrent changes to this application; retry")]
    Busy,
}

impl Server {
    pub fn new(store: Store, options: Options) -> Server {
        Server {
            options,
            metrics: metrics::Metrics::default(),
            operator_token_sha256: None,
            contacts: Mutex::new(HashMap::new()),
            memory: Mutex::new(Memory::new(REMEMBERED_APPLICATIONS)),
            writer: Writer::start(store.clone()),
            store,
        }
    }

    /// Accepts `token` as an operator's, besides those the store holds.
    pub fn with_operator_token(mut self, token: &str) -> Server {
        self.operator_token_sha256 = Some(application::token_hash(token));
        self
    }

    /// When the application's servo last sent a request to this server.
    pub fn last_contact(&self, application: i64) -> Option<f64> {
        let contacts = self.contacts.lock().unwrap_or_else(|p| p.into_inner());
        contacts.get(&application).copied()
    }

    /// Starts the `/metrics` trial counts from the store's: the one time they are queried.
    pub async fn count_trials(&self) -> Result<(), JournalError> {
        self.metrics.set_trials(self.store.trial_counts().await?);
        Ok(())
    }

    fn remembered(&self, application: i64) -> Arc<tokio::sync::Mutex<Remembered>> {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        memory.of(application)
    }

    /// Handles one protocol event of an authenticated application.
    pub async fn handle(
        &self,
        app: &Application,
        event: EventName,
        param: Option<Value>,
    ) -> Result<Value, ServeError> {
        self.contacts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.id, crate::study::journal::now());
        let lock = self.remembered(app.id);
        let mut guard = lock.lock().await;
        let remembered = &mut *guard;
        for _ in 0..MAX_ATTEMPTS {
            // What is remembered holds while no one else (another server on the same database,
            // an operator, `servo optimizer app create --replace`) has written the session since.
            let revision = self.store.revision(app.id).await?;
            let loaded = match remembered.loaded.take() {
                Some(loaded) if loaded.revision == revision => loaded,
                _ => self.store.load(app.id).await?,
            };
            let loaded = remembered.loaded.insert(loaded);
            // The common case under load: a servo asking again for the command it already has.
            if event == EventName::WhatsNext
                && let Some(pending) = &loaded.session.pending
            {
                return Ok(pending.to_json());
            }
            let mut suggestion = None;
            loop {
                let known = Known {
                    app,
                    options: &self.options,
                    study: loaded.study.as_ref(),
                    trials: &loaded.trials,
                };
                let decision = decide(
                    &known,
                    loaded.session.clone(),
                    event,
                    param.clone(),
                    suggestion.take(),
                )?;
                match decision {
                    Decision::Answer(answer) => return Ok(answer),
                    Decision::Commit {
                        answer,
                        session,
                        writes,
                    } => {
                        let changes: Vec<TrialChange> = writes.iter().map(trial_change).collect();
                        let outcome = self
                            .writer
                            .commit(app, loaded.revision, *session, writes.clone())
                            .await;
                        match outcome {
                            Ok(Commit::Done(committed)) => {
                                loaded.follow(*committed, writes);
                                self.metrics.record(&app.name, &changes);
                                return Ok(answer);
                            }
                            Ok(Commit::Conflict) => {
                                remembered.loaded = None;
                                break;
                            }
                            Err(e) => {
                                // Whether it landed is unknown: read it back next time.
                                remembered.loaded = None;
                                return Err(e.into());
                            }
                        }
                    }
                    Decision::Suggest { plan, goal } => {
                        let (algorithm, risk) = (app.settings.algorithm, app.settings.risk);
                        let seed = app.settings.seed.unwrap_or(0);
                        let history = loaded.trials.clone();
                        let mut fits = std::mem::take(&mut remembered.fits);
                        let suggested = tokio::task::spawn_blocking(move || {
                            let sampler = crate::study::sampler(algorithm, risk);
                            let next = crate::study::next_config(
                                &plan,
                                &goal,
                                &history,
                                sampler.as_ref(),
                                seed,
                                &mut fits,
                            );
                            (next, fits)
                        })
                        .await
                        .map(|(next, fits)| {
                            remembered.fits = fits;
                            next
                        });
                        // A sampler that fails stops the study, loudly, without ending it.
                        suggestion = Some(match suggested {
                            Ok(Ok(Some(config))) => Suggestion::Config(config),
                            Ok(Ok(None)) => Suggestion::Exhausted,
                            Ok(Err(e)) => {
                                let reason = match e.hint() {
                                    Some(hint) => format!("{e} ({hint})"),
                                    None => e.to_string(),
                                };
                                tracing::error!(application = %app.name, error = %reason, "the optimizer cannot suggest a configuration; the study is stopped");
                                Suggestion::Failed(reason)
                            }
                            Err(e) => {
                                tracing::error!(application = %app.name, error = %e, "the optimizer failed; the study is stopped");
                                Suggestion::Failed(format!("the optimizer failed: {e}"))
                            }
                        });
                    }
                }
            }
        }
        Err(ServeError::Busy)
    }
}

/// How a write changes its application's trial counts.
fn trial_change(write: &Write) -> TrialChange {
    match write {
        Write::NewStudy { .. } => TrialChange::NewStudy,
        Write::BeginTrial { .. } => TrialChange::Began,
        Write::FinishTrial(trial) => TrialChange::Ended(trial.state.as_str().to_string()),
    }
}

/// Serves until `stop` is cancelled; `ready` learns the bound address (port 0 picks one).
pub async fn serve(
    server: Arc<Server>,
    listen: SocketAddr,
    max_body: usize,
    stop: CancellationToken,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    ready(listener.local_addr()?);
    // The UI's routes stay out of the request metrics (`http`'s route layer): their paths name
    // applications.
    let app = http::router(server.clone(), max_body).merge(ui::router(server));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

#[cfg(test)]
mod tests;
