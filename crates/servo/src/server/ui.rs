//! The operators' web UI: a fleet page (every application at a glance) and an application page
//! (live charts, the trials table, pause/resume/budget/retire). Every page, asset and action needs
//! an operator token: as `Authorization: Bearer`, or the cookie the login form sets.
//!
//! Actions are `POST` with a JSON body: a browser sends those cross-site only after a CORS
//! preflight this server never approves, and the cookie is `SameSite=Strict`, so another site
//! cannot act with an operator's session.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Server;
use super::application::Application;
use super::http::{ApiError, json_response, study_of};
use super::operator::{Action, operator_name};
use crate::study::{Summary, best_trial};
use crate::ui::{CHARTS_JS, CSS, ECHARTS, ECHARTS_LICENSE, ECHARTS_NOTICE, StudyView, escape};

const COOKIE: &str = "servo_operator";
/// A login lasts this long; then the token is asked for again.
const COOKIE_SECONDS: u64 = 12 * 3600;

pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/", get(fleet_page))
        .route("/ui/apps/{org}/{app}", get(app_page))
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/api/fleet", get(fleet))
        .route("/ui/api/apps/{org}/{app}", get(application))
        .route("/ui/api/apps/{org}/{app}/{action}", post(act))
        .with_state(server)
}

/// The operator a request comes from, by bearer token or cookie.
async fn operator(server: &Server, headers: &HeaderMap) -> Result<String, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim());
    let Some(token) = bearer.or(cookie).filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "an operator token is needed: log in, or send `Authorization: Bearer <operator token>`",
        ));
    };
    if server.is_operator(token).await? {
        Ok(operator_name(token))
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown operator token (application tokens do not open the UI)",
        ))
    }
}

/// A page for an operator, or the login form (401) for anyone else.
async fn page(server: &Server, headers: &HeaderMap, title: &str, body: String) -> Response {
    match operator(server, headers).await {
        Ok(_) => html(StatusCode::OK, title, &body),
        Err(_) => match server.has_operators().await {
            Ok(true) => html(StatusCode::UNAUTHORIZED, "log in", LOGIN),
            Ok(false) => html(
                StatusCode::FORBIDDEN,
                "no operator",
                "<main><h1>No operator token yet</h1><p>Create one with <code>servo optimizer admin-token --store ...</code>, or start the server with <code>--admin-token-file FILE</code>.</p></main>",
            ),
            Err(e) => ApiError::from(e).into_response(),
        },
    }
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>servo optimizer: {title}</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/assets/ui.css"></head><body>{body}</body></html>"#,
        title = escape(title),
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The pages load scripts only from this server; no frame may embed them.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const LOGIN: &str = r#"<main><form class="login" id="login"><h1>servo optimizer</h1>
<label for="token">Operator token</label><input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button><p class="error" id="login-error" role="alert"></p></form></main>
<script src="/ui/assets/login.js"></script>"#;

async fn fleet_page(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let body = r#"<header class="top"><h1>servo optimizer</h1><span class="muted">fleet</span><nav><button type="button" id="logout">Log out</button></nav></header>
<main><div id="fleet" aria-live="polite"></div><h2>Audit log</h2><div id="audit"></div></main>
<script src="/ui/assets/charts.js"></script><script src="/ui/assets/page.js"></script><script src="/ui/assets/fleet.js"></script>"#;
    page(&server, &headers, "fleet", body.to_string()).await
}

async fn app_page(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path((org, app)): Path<(String, String)>,
) -> Response {
    let name = escape(&format!("{org}/{app}"));
    let body = format!(
        r#"<header class="top"><h1><a href="/">servo optimizer</a> / <code id="app-name">{name}</code></h1><span id="state" class="state"></span><nav><button type="button" id="logout">Log out</button></nav></header>
<main data-app="{name}"><section class="controls" aria-label="operator actions">
<button type="button" id="pause">Pause</button><button type="button" id="resume">Resume</button>
<label>Trials <input type="number" id="budget" min="1" max="100000" step="1" style="width:6rem"></label><button type="button" id="set-budget">Set budget</button>
<button type="button" id="retire" class="danger">Retire study</button></section>
<p id="status" class="muted" aria-live="polite"></p><p id="app-error" class="error" role="alert"></p>
<div id="study"></div><h2>Audit log</h2><div id="audit"></div></main>
<script src="/ui/assets/echarts.min.js"></script><script src="/ui/assets/charts.js"></script><script src="/ui/assets/page.js"></script><script src="/ui/assets/app.js"></script>"#
    );
    page(&server, &headers, &format!("{org}/{app}"), body).await
}

const LOGIN_JS: &str = include_str!("../../assets/ui/login.js");
const FLEET_JS: &str = include_str!("../../assets/ui/fleet.js");
const APP_JS: &str = include_str!("../../assets/ui/app.js");
const PAGE_JS: &str = include_str!("../../assets/ui/page.js");

async fn asset(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (content, kind) = match name.as_str() {
        // The login form's own script and style are all a stranger may fetch.
        "login.js" => (LOGIN_JS, "text/javascript"),
        "ui.css" => (CSS, "text/css"),
        _ => {
            operator(&server, &headers).await?;
            match name.as_str() {
                "echarts.min.js" => (ECHARTS, "text/javascript"),
                "charts.js" => (CHARTS_JS, "text/javascript"),
                "fleet.js" => (FLEET_JS, "text/javascript"),
                "app.js" => (APP_JS, "text/javascript"),
                "page.js" => (PAGE_JS, "text/javascript"),
                "ECHARTS-LICENSE.txt" => (ECHARTS_LICENSE, "text/plain"),
                "ECHARTS-NOTICE.txt" => (ECHARTS_NOTICE, "text/plain"),
                _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such asset")),
            }
        }
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        content,
    )
        .into_response())
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    json_body(&headers)?;
    let login: Login = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"token\": \"...\"}}: {e}"),
        )
    })?;
    let token = login.token.trim();
    if token.is_empty() || token.contains([';', ',', ' ']) || !server.is_operator(token).await? {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown operator token",
        ));
    }
    let cookie =
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_SECONDS}");
    let mut response = json_response(StatusCode::OK, &json!({ "operator": operator_name(token) }));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn logout() -> Response {
    let mut response = json_response(StatusCode::OK, &json!({}));
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("servo_operator=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// Actions carry JSON, which a browser sends cross-site only after a preflight.
fn json_body(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the action as `Content-Type: application/json`",
        ))
    }
}

/// One application as the fleet page lists it.
#[derive(Serialize)]
struct FleetEntry {
    application: String,
    /// `no study`, `running`, `paused`, `error` (the optimizer failed), `blocked`, `complete`.
    state: &'static str,
    reason: Option<String>,
    trials_done: usize,
    trials_planned: u32,
    running: usize,
    objective: String,
    maximize: bool,
    baseline: Option<f64>,
    best: Option<f64>,
    best_trial: Option<i64>,
    relative_change: Option<f64>,
    last_contact: Option<f64>,
    last_error: Option<String>,
}

async fn entry(
    server: &Server,
    app: &Application,
) -> Result<(FleetEntry, Option<Summary>), ApiError> {
    let (_, session) = server.store.session(app.id).await?;
    let summary = study_of(server, app).await.ok();
    let trials = summary
        .as_ref()
        .map(|s| s.trials.as_slice())
        .unwrap_or_default();
    let done = trials
        .iter()
        .filter(|t| t.state.as_str() == "complete" || t.state.as_str() == "failed")
        .count();
    let running = trials
        .iter()
        .filter(|t| t.state.as_str() == "running")
        .count();
    let maximize = matches!(
        app.settings.objective,
        Some(crate::settings::optimizer::Objective::Maximize(_))
    );
    let best = best_trial(trials, maximize);
    let baseline = summary
        .as_ref()
        .and_then(|s| s.baseline.as_ref())
        .and_then(|t| t.objective);
    let last_error = session
        .optimizer_error
        .clone()
        .or_else(|| session.blocked.clone())
        .or_else(|| {
            trials
                .iter()
                .filter(|t| t.error.is_some())
                .max_by_key(|t| t.number)
                .and_then(|t| t.error.clone().map(|e| format!("trial {}: {e}", t.number)))
        });
    let (state, reason) = if let Some(reason) = &session.paused {
        ("paused", Some(reason.clone()))
    } else if let Some(reason) = &session.optimizer_error {
        ("error", Some(reason.clone()))
    } else if let Some(reason) = &session.blocked {
        ("blocked", Some(reason.clone()))
    } else if session.finished {
        ("complete", None)
    } else if summary.is_none() {
        ("no study", None)
    } else {
        ("running", None)
    };
    let objective = summary
        .as_ref()
        .map(|s| s.objective.clone())
        .unwrap_or_default();
    let entry = FleetEntry {
        application: app.name.clone(),
        state,
        reason,
        trials_done: done,
        trials_planned: app.settings.trials,
        running,
        objective,
        maximize,
        baseline,
        best: best.and_then(|t| t.objective),
        best_trial: best.map(|t| t.number),
        relative_change: match (baseline, best.and_then(|t| t.objective)) {
            (Some(b), Some(t)) if b != 0.0 => Some((t - b) / b.abs()),
            _ => None,
        },
        last_contact: server.last_contact(app.id),
        last_error,
    };
    Ok((entry, summary))
}

async fn fleet(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    operator(&server, &headers).await?;
    let mut entries = Vec::new();
    for app in server.store.applications().await? {
        entries.push(entry(&server, &app).await?.0);
    }
    let audit = server.audit_log(None, 20).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "applications": entries, "audit": audit }),
    ))
}

async fn named(server: &Server, org: &str, app: &str) -> Result<Application, ApiError> {
    server
        .store
        .application(&format!("{org}/{app}"))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no application `{org}/{app}`"),
            )
        })
}

async fn application(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path((org, app)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    operator(&server, &headers).await?;
    let app = named(&server, &org, &app).await?;
    // Only this page draws the study: the fleet page reads the entry alone.
    let (entry, summary) = entry(&server, &app).await?;
    let view = summary.as_ref().map(StudyView::new);
    let audit = server.audit_log(Some(&app.name), 20).await?;
    let body = json!({ "application": entry, "view": view, "audit": audit }).to_string();
    // Polling pages ask every few seconds: answer 304 when nothing changed.
    let tag = format!("\"{:016x}\"", fingerprint(&body));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag)
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, tag),
        ],
        body,
    )
        .into_response())
}

/// A stable digest of a JSON document, for ETags (FNV-1a: no dependency, collisions harmless).
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ActionBody {
    reason: Option<String>,
    trials: Option<u32>,
}

async fn act(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path((org, app, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let operator = operator(&server, &headers).await?;
    json_body(&headers)?;
    let app = named(&server, &org, &app).await?;
    let body: ActionBody = if body.is_empty() {
        ActionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not an action: {e}"),
            )
        })?
    };
    let action = match action.as_str() {
        "pause" => Action::Pause {
            reason: body
                .reason
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| format!("paused by {operator}")),
        },
        "resume" => Action::Resume,
        "retire" => Action::Retire,
        "budget" => match body.trials {
            Some(trials) if trials >= 1 => Action::Budget { trials },
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "a budget needs `trials`, a whole number of at least 1",
                ));
            }
        },
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no action `{other}`: pause, resume, budget or retire"),
            ));
        }
    };
    server.act(&app, &operator, action).await?;
    let (entry, _) = entry(&server, &app).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "application": entry }),
    ))
}
