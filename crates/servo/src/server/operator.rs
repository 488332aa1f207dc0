//! Operators: the people who run the server for a fleet. They hold an operator token, distinct
//! from every application's (an application's token reaches only its own study), and what they
//! do is written to the audit log.
//!
//! A token comes from `servo optimizer admin-token` (stored as a SHA-256 digest in the store, shown
//! once) or from `--admin-token-file` (kept in memory as a digest).

use serde::Serialize;
use sqlx::Row;

use super::Server;
use super::application::{Application, constant_time_eq, token_hash};
use super::session::Session;
use super::store::Commit;
use crate::study::journal::{JournalError, now};

/// How many times an operator action is retried against concurrent protocol requests.
const MAX_ATTEMPTS: usize = 16;

/// One line of the audit log.
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    pub at: f64,
    /// Which operator token acted, by the start of its digest (never the token).
    pub operator: String,
    pub action: String,
    pub application: String,
    pub detail: String,
}

/// What an operator does to an application's study.
#[derive(Debug, Clone)]
pub enum Action {
    /// The servo is told to SLEEP (with the reason) until resumed.
    Pause {
        reason: String,
    },
    Resume,
    /// The number of trials the study runs, the baseline included.
    Budget {
        trials: u32,
    },
    /// The current study ends; the servo's next description starts a new one.
    Retire,
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::Pause { .. } => "pause",
            Action::Resume => "resume",
            Action::Budget { .. } => "budget",
            Action::Retire => "retire",
        }
    }

    fn detail(&self) -> String {
        match self {
            Action::Pause { reason } => reason.clone(),
            Action::Budget { trials } => format!("trials = {trials}"),
            Action::Resume | Action::Retire => String::new(),
        }
    }
}

/// The operator a token belongs to, as the audit log names it.
pub fn operator_name(token: &str) -> String {
    format!("operator:{}", &token_hash(token)[..12])
}

impl Server {
    /// Whether `token` is an operator's: the `--admin-token-file` one, or one the store holds.
    pub async fn is_operator(&self, token: &str) -> Result<bool, JournalError> {
        let hash = token_hash(token);
        if let Some(file) = &self.operator_token_sha256
            && constant_time_eq(hash.as_bytes(), file.as_bytes())
        {
            return Ok(true);
        }
        let found: Option<String> =
            sqlx::query_scalar("SELECT token_sha256 FROM operators WHERE token_sha256 = $1")
                .bind(&hash)
                .fetch_optional(self.store.journal().pool())
                .await
                .map_err(|e| self.store.journal().db(e))?;
        Ok(found.is_some_and(|f| constant_time_eq(f.as_bytes(), hash.as_bytes())))
    }

    /// Whether the UI can be used at all: some operator token exists.
    pub async fn has_operators(&self) -> Result<bool, JournalError> {
        if self.operator_token_sha256.is_some() {
            return Ok(true);
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operators")
            .fetch_one(self.store.journal().pool())
            .await
            .map_err(|e| self.store.journal().db(e))?;
        Ok(n > 0)
    }

    /// Applies an operator's action under the application's lock, as a protocol request would,
    /// and records it in the audit log in the same transaction where the store allows.
    pub async fn act(
        &self,
        app: &Application,
        operator: &str,
        action: Action,
    ) -> Result<(), JournalError> {
        let lock = self.remembered(app.id);
        let _turn = lock.lock().await;
        match &action {
            Action::Retire => self.retire(app).await?,
            Action::Budget { trials } => {
                let mut settings = app.settings.clone();
                settings.trials = *trials;
                let json = serde_json::to_string(&settings).map_err(|e| self.db(e))?;
                sqlx::query("UPDATE applications SET settings = $1 WHERE id = $2")
                    .bind(json)
                    .bind(app.id)
                    .execute(self.store.journal().pool())
                    .await
                    .map_err(|e| self.db(e))?;
                // A finished study with more budget goes on, and applies its final choice again.
                self.change_session(app, |s| s.finished = false).await?;
            }
            Action::Pause { reason } => {
                let reason = reason.clone();
                self.change_session(app, move |s| s.paused = Some(reason.clone()))
                    .await?;
            }
            Action::Resume => self.change_session(app, |s| s.paused = None).await?,
        }
        self.audit(operator, action.name(), &app.name, &action.detail())
            .await?;
        tracing::info!(target: "servo::audit", %operator, action = action.name(), application = %app.name, detail = %action.detail(), "operator action");
        Ok(())
    }

    async fn change_session(
        &self,
        app: &Application,
        change: impl Fn(&mut Session),
    ) -> Result<(), JournalError> {
        for _ in 0..MAX_ATTEMPTS {
            let (revision, mut session) = self.store.session(app.id).await?;
            change(&mut session);
            if let Commit::Done(_) = self
                .store
                .commit(app, revision, session, Vec::new())
                .await?
            {
                return Ok(());
            }
        }
        Err(self.db("the session kept changing; retry"))
    }

    /// Retires the application's studies and starts its conversation over (a pause is kept).
    async fn retire(&self, app: &Application) -> Result<(), JournalError> {
        let (_, old) = self.store.session(app.id).await?;
        let fresh = Session {
            paused: old.paused,
            ..Session::default()
        };
        let state = serde_json::to_string(&fresh).map_err(|e| self.db(e))?;
        let mut tx = self.store.journal().write().await.map_err(|e| self.db(e))?;
        // The revision keeps counting (see `Store::put_application`).
        sqlx::query(
            "UPDATE sessions SET revision = revision + 1, state = $1, updated_at = $2 WHERE application_id = $3",
        )
        .bind(&state)
        .bind(now())
        .bind(app.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        sqlx::query("UPDATE studies SET retired = 1 WHERE name = $1")
            .bind(&app.name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    async fn audit(
        &self,
        operator: &str,
        action: &str,
        application: &str,
        detail: &str,
    ) -> Result<(), JournalError> {
        sqlx::query(
            "INSERT INTO audit (at, operator, action, application, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now())
        .bind(operator)
        .bind(action)
        .bind(application)
        .bind(detail)
        .execute(self.store.journal().pool())
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// The latest audit entries, newest first; of one application when named.
    pub async fn audit_log(
        &self,
        application: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, JournalError> {
        let rows = sqlx::query(
            "SELECT at, operator, action, application, detail FROM audit WHERE ($1 = '' OR application = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(application.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.store.journal().pool())
        .await
        .map_err(|e| self.db(e))?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    at: row.try_get("at").map_err(|e| self.db(e))?,
                    operator: row.try_get("operator").map_err(|e| self.db(e))?,
                    action: row.try_get("action").map_err(|e| self.db(e))?,
                    application: row.try_get("application").map_err(|e| self.db(e))?,
                    detail: row.try_get("detail").map_err(|e| self.db(e))?,
                })
            })
            .collect()
    }

    fn db(&self, e: impl std::fmt::Display) -> JournalError {
        self.store.journal().db(e)
    }
}

/// Stores a new operator token's digest (the token itself is shown once by the caller);
/// `replace` revokes every earlier one. The issuing is audited.
pub async fn add_operator(
    store: &super::store::Store,
    token: &str,
    replace: bool,
) -> Result<(), JournalError> {
    let journal = store.journal();
    let mut tx = journal.write().await.map_err(|e| journal.db(e))?;
    if replace {
        sqlx::query("DELETE FROM operators")
            .execute(&mut *tx)
            .await
            .map_err(|e| journal.db(e))?;
    }
    sqlx::query("INSERT INTO operators (token_sha256, created_at) VALUES ($1, $2)")
        .bind(token_hash(token))
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| journal.db(e))?;
    let action = if replace {
        "rotate-operator-tokens"
    } else {
        "add-operator-token"
    };
    sqlx::query(
        "INSERT INTO audit (at, operator, action, application, detail) VALUES ($1, $2, $3, '', '')",
    )
    .bind(now())
    .bind(operator_name(token))
    .bind(action)
    .execute(&mut *tx)
    .await
    .map_err(|e| journal.db(e))?;
    tx.commit().await.map_err(|e| journal.db(e))
}
