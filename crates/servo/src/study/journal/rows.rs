//! The study's rows: the queries both the journal and the optimizer server's store run, on a
//! connection or inside a transaction they hold.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use servo_optimizer::{ParamValue, Space};

use super::{Study, Trial, TrialRole, now};

/// A storage failure inside a transaction, before it is given the journal's name.
pub(crate) type DbResult<T> = Result<T, String>;

pub(crate) fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub(crate) async fn create_study(
    conn: &mut AnyConnection,
    name: &str,
    space: &Space,
    objective: &str,
    constraints: &[String],
) -> DbResult<Study> {
    let space_json = serde_json::to_string(space).map_err(text)?;
    let constraints_json = serde_json::to_string(constraints).map_err(text)?;
    let created_at = now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO studies (name, space, objective, constraints, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(name)
    .bind(&space_json)
    .bind(objective)
    .bind(&constraints_json)
    .bind(created_at)
    .fetch_one(&mut *conn)
    .await
    .map_err(text)?;
    Ok(Study {
        id,
        name: name.to_string(),
        space: space.clone(),
        objective: objective.to_string(),
        objectives: Vec::new(),
        constraints: constraints.to_vec(),
        created_at,
    })
}

pub(crate) async fn current_study(conn: &mut AnyConnection, name: &str) -> DbResult<Option<Study>> {
    let row = sqlx::query(
        "SELECT id, name, space, objective, objectives, constraints, created_at FROM studies WHERE name = $1 AND retired = 0 ORDER BY id DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(text)?;
    row.as_ref().map(read_study).transpose()
}

/// The newest study of `name`, retired or not, with at least one complete trial of its own.
pub(crate) async fn latest_measured_study(
    conn: &mut AnyConnection,
    name: &str,
) -> DbResult<Option<Study>> {
    let row = sqlx::query(
        "SELECT id, name, space, objective, objectives, constraints, created_at FROM studies s WHERE name = $1 AND EXISTS (SELECT 1 FROM trials t WHERE t.study_id = s.id AND t.state = 'complete' AND t.reused_study IS NULL) ORDER BY id DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(text)?;
    row.as_ref().map(read_study).transpose()
}

/// Study `id`, unless it has been retired.
pub(crate) async fn live_study(conn: &mut AnyConnection, id: i64) -> DbResult<Option<Study>> {
    let row = sqlx::query(
        "SELECT id, name, space, objective, objectives, constraints, created_at FROM studies WHERE id = $1 AND retired = 0",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(text)?;
    row.as_ref().map(read_study).transpose()
}

fn read_study(row: &sqlx::any::AnyRow) -> DbResult<Study> {
    let space: String = row.try_get("space").map_err(text)?;
    let constraints: String = row.try_get("constraints").map_err(text)?;
    let objectives: Option<String> = row.try_get("objectives").map_err(text)?;
    Ok(Study {
        objectives: objectives
            .map(|o| serde_json::from_str(&o))
            .transpose()
            .map_err(text)?
            .unwrap_or_default(),
        id: row.try_get("id").map_err(text)?,
        name: row.try_get("name").map_err(text)?,
        space: serde_json::from_str(&space).map_err(text)?,
        objective: row.try_get("objective").map_err(text)?,
        constraints: serde_json::from_str(&constraints).map_err(text)?,
        created_at: row.try_get("created_at").map_err(text)?,
    })
}

/// A trial's objective values as the journal stores them: NULL for a study with one objective.
fn objectives_json(values: &[f64]) -> DbResult<Option<String>> {
    (!values.is_empty())
        .then(|| serde_json::to_string(values))
        .transpose()
        .map_err(text)
}

/// Inserts the next running trial of a study. Run it inside a transaction: the number is the
/// highest so far plus one, and `UNIQUE (study_id, number)` refuses a second writer that raced us.
pub(crate) async fn begin_trial(
    conn: &mut AnyConnection,
    study_id: i64,
    config: &BTreeMap<String, ParamValue>,
) -> DbResult<i64> {
    let number: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = $1")
            .bind(study_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(text)?;
    insert_trial(conn, study_id, number, config, now()).await?;
    Ok(number)
}

/// Marks trial `number` as run for `role`; inside the transaction that began it.
pub(crate) async fn set_role(
    conn: &mut AnyConnection,
    study_id: i64,
    number: i64,
    role: TrialRole,
) -> DbResult<()> {
    sqlx::query("UPDATE trials SET role = $1 WHERE study_id = $2 AND number = $3")
        .bind(role.as_str())
        .bind(study_id)
        .bind(number)
        .execute(&mut *conn)
        .await
        .map_err(text)?;
    Ok(())
}

/// Records a trial taken over from an earlier study, finished as it is, under its own number
/// (before 0) and with where it came from.
pub(crate) async fn insert_reused(
    conn: &mut AnyConnection,
    study_id: i64,
    trial: &Trial,
) -> DbResult<()> {
    let Some(origin) = trial.reused else {
        return Err(format!("trial {} is not a reused trial", trial.number));
    };
    sqlx::query(
        "INSERT INTO trials (study_id, number, state, config, readings, objective, objectives, constraints, feasible, started_at, finished_at, reused_study, reused_trial) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(study_id)
    .bind(trial.number)
    .bind(trial.state.as_str())
    .bind(serde_json::to_string(&trial.config).map_err(text)?)
    .bind(serde_json::to_string(&trial.readings).map_err(text)?)
    .bind(trial.objective)
    .bind(objectives_json(&trial.objectives)?)
    .bind(serde_json::to_string(&trial.constraints).map_err(text)?)
    .bind(trial.feasible.map(i64::from))
    .bind(trial.started_at)
    .bind(trial.finished_at)
    .bind(origin.study)
    .bind(origin.trial)
    .execute(&mut *conn)
    .await
    .map_err(text)?;
    Ok(())
}

/// Inserts running trial `number`; fails when that number exists (a concurrent writer took it).
pub(crate) async fn insert_trial(
    conn: &mut AnyConnection,
    study_id: i64,
    number: i64,
    config: &BTreeMap<String, ParamValue>,
    started_at: f64,
) -> DbResult<()> {
    let config = serde_json::to_string(config).map_err(text)?;
    sqlx::query("INSERT INTO trials (study_id, number, state, config, started_at) VALUES ($1, $2, 'running', $3, $4)")
        .bind(study_id)
        .bind(number)
        .bind(&config)
        .bind(started_at)
        .execute(&mut *conn)
        .await
        .map_err(text)?;
    Ok(())
}

/// Records how a running trial ended; returns how many rows it changed (1, or 0 when the trial was
/// not running any more: someone else finished or interrupted it).
pub(crate) async fn finish_trial(
    conn: &mut AnyConnection,
    study_id: i64,
    trial: &Trial,
) -> DbResult<u64> {
    let readings = serde_json::to_string(&trial.readings).map_err(text)?;
    let constraints = serde_json::to_string(&trial.constraints).map_err(text)?;
    let error = trial.error.as_deref().map(storable);
    let cut_short = trial.cut_short.as_deref().map(storable);
    let objectives = objectives_json(&trial.objectives)?;
    let done = sqlx::query(
        "UPDATE trials SET state = $1, readings = $2, objective = $3, constraints = $4, feasible = $5, error = $6, finished_at = $7, cut_short = $10, objectives = $11 WHERE study_id = $8 AND number = $9 AND state = 'running'",
    )
    .bind(trial.state.as_str())
    .bind(&readings)
    .bind(trial.objective)
    .bind(&constraints)
    .bind(trial.feasible.map(i64::from))
    .bind(error)
    .bind(trial.finished_at.unwrap_or_else(now))
    .bind(study_id)
    .bind(trial.number)
    .bind(cut_short)
    .bind(objectives)
    .execute(&mut *conn)
    .await
    .map_err(text)?;
    Ok(done.rows_affected())
}

/// Free text as both databases can store it. A PostgreSQL `TEXT` cannot hold U+0000 (SQLite's
/// can), and the error of a trial is often a servo's own message: one NUL in it would fail every
/// attempt to record the trial, and the study would stall on the retries. It becomes U+FFFD, the
/// replacement character, in either database, so both journals read the same. (The JSON columns
/// need nothing: serde_json writes U+0000 as the escape `\u0000`.)
fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

pub(crate) async fn study_trials(conn: &mut AnyConnection, study_id: i64) -> DbResult<Vec<Trial>> {
    let rows = sqlx::query(
        "SELECT number, state, config, readings, objective, objectives, constraints, feasible, error, cut_short, started_at, finished_at, reused_study, reused_trial, role FROM trials WHERE study_id = $1 ORDER BY number",
    )
    .bind(study_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(text)?;
    rows.iter()
        .map(|row| {
            let state: String = row.try_get("state").map_err(text)?;
            let config: String = row.try_get("config").map_err(text)?;
            let readings: Option<String> = row.try_get("readings").map_err(text)?;
            let constraints: Option<String> = row.try_get("constraints").map_err(text)?;
            let feasible: Option<i64> = row.try_get("feasible").map_err(text)?;
            let reused_study: Option<i64> = row.try_get("reused_study").map_err(text)?;
            let reused_trial: Option<i64> = row.try_get("reused_trial").map_err(text)?;
            let role: Option<String> = row.try_get("role").map_err(text)?;
            let objectives: Option<String> = row.try_get("objectives").map_err(text)?;
            Ok(Trial {
                number: row.try_get("number").map_err(text)?,
                state: state.parse()?,
                config: serde_json::from_str(&config).map_err(text)?,
                readings: readings
                    .map(|r| serde_json::from_str(&r))
                    .transpose()
                    .map_err(text)?
                    .unwrap_or_default(),
                objective: row.try_get("objective").map_err(text)?,
                objectives: objectives
                    .map(|o| serde_json::from_str(&o))
                    .transpose()
                    .map_err(text)?
                    .unwrap_or_default(),
                constraints: constraints
                    .map(|c| serde_json::from_str(&c))
                    .transpose()
                    .map_err(text)?
                    .unwrap_or_default(),
                feasible: feasible.map(|f| f != 0),
                error: row.try_get("error").map_err(text)?,
                cut_short: row.try_get("cut_short").map_err(text)?,
                started_at: row.try_get("started_at").map_err(text)?,
                finished_at: row.try_get("finished_at").map_err(text)?,
                reused: reused_study
                    .zip(reused_trial)
                    .map(|(study, trial)| super::Reused { study, trial }),
                role: role.map(|r| r.parse()).transpose()?,
            })
        })
        .collect()
}
