//! The server's HTTP surface. Every answer is JSON (the report is HTML, metrics are text); every
//! error is `{"detail": "..."}` with a 4xx status that says whose fault it is — 401 no or unknown
//! token (another application's token gets the same answer), 413 a body over the limit, 400 a body that is not the
//! protocol — and a 5xx only when the store itself fails (503, retryable).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequest as _, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::application::Application;
use super::{ServeError, Server};
use crate::protocol::wire::{EventName, kind_of};
use crate::study::{Summary, best_trial};

/// The OpenAPI 3 description of every route below.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Names longer than this (in characters, as the OpenAPI `maxLength` counts) are refused before
/// they reach the store.
const MAX_NAME: usize = 200;

/// How much of a client's value an error message quotes back.
const MAX_QUOTE: usize = 64;

pub fn router(server: Arc<Server>, max_body: usize) -> Router {
    let application = "/accounts/{org}/applications/{app}";
    Router::new()
        .route(&format!("{application}/servo"), post(servo_event))
        .route(&format!("{application}/trials"), get(trials))
        .route(&format!("{application}/best"), get(best))
        .route(&format!("{application}/report"), get(report_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(server.clone(), track))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(server)
}

/// An error answer: `{"detail": message}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.status, &json!({ "detail": self.detail }));
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<crate::study::journal::JournalError> for ApiError {
    fn from(e: crate::study::journal::JournalError) -> Self {
        tracing::error!(error = %e, "storage failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the optimizer's storage is unavailable; retry shortly",
        )
    }
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The protocol event a response answered, for the metrics.
#[derive(Clone, Copy)]
struct Answered(EventName);

async fn track(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Only matched routes get here (a route layer), so the last segment names the route.
    let route = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let response = next.run(request).await;
    let event = response
        .extensions()
        .get::<Answered>()
        .map(|a| a.0.as_str())
        .unwrap_or_default();
    server
        .metrics
        .observe(&route, event, response.status().as_u16(), started.elapsed());
    response
}

/// The application named by the path, if the bearer token is its own.
async fn authorize(
    server: &Server,
    headers: &HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Application, ApiError> {
    let Path((org, app)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    for (what, name) in [("organization", &org), ("application", &app)] {
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(ApiError::bad_request(format!(
                "the {what} name must be 1 to {MAX_NAME} printable characters"
            )));
        }
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim())
        })
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer <token>`",
        ));
    };
    let name = format!("{org}/{app}");
    // One answer for an unknown token, another application's token and an application that does
    // not exist: a stranger learns nothing about which tokens or applications exist.
    match server.store.application(&name).await? {
        Some(application) if application.accepts(token) => Ok(application),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown token for this application",
        )),
    }
}

async fn servo_event(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    // Authorize first, then read at most `--max-body` (the `DefaultBodyLimit` layer): a stranger
    // cannot make the server buffer anything, nor learn from a 413 that the endpoint exists.
    let application = authorize(&server, &headers, path).await?;
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|e: BytesRejection| ApiError::new(e.status(), e.body_text()))?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut request) = request else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object: {\"event\": ..., \"param\": ..., \"servo_uid\": ...}",
        ));
    };
    let event = match request.remove("event") {
        Some(Value::String(name)) => serde_json::from_value::<EventName>(Value::String(name.clone()))
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "unknown event `{}`; expected one of HELLO, WHATS_NEXT, DESCRIPTION, MEASUREMENT, ADJUSTMENT, GOODBYE",
                    quote(&name)
                ))
            })?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`event` must be a string, found {}",
                kind_of(&other)
            )));
        }
        None => return Err(ApiError::bad_request("the body has no `event`")),
    };
    // The server does not use `servo_uid`, but a servo that sends one of another type is not
    // speaking the protocol (ServoX sends a string or null); say so rather than guess.
    match request.get("servo_uid") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`servo_uid` must be a string or null, found {}",
                kind_of(other)
            )));
        }
    }
    let param = request.remove("param").filter(|p| !p.is_null());
    let answer = server
        .handle(&application, event, param)
        .await
        .map_err(|e| match e {
            ServeError::Invalid(e) => ApiError::bad_request(e.0),
            ServeError::Storage(e) => e.into(),
            ServeError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        })?;
    tracing::debug!(application = %application.name, %event, %answer, "answered");
    let mut response = json_response(StatusCode::OK, &answer);
    response.extensions_mut().insert(Answered(event));
    Ok(response)
}

/// The application's current study, or 404 when no servo has described it yet.
pub(super) async fn study_of(
    server: &Server,
    application: &Application,
) -> Result<Summary, ApiError> {
    let Some((study, trials)) = server.store.current(application).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "`{}` has no study yet: it starts when its servo first describes the application",
                application.name
            ),
        ));
    };
    let maximize = matches!(
        application.settings.objective,
        Some(crate::config::optimizer::Objective::Maximize(_))
    );
    let journal = server.store.journal().path().to_path_buf();
    // Several objectives: the best is the point the application's rule selects, as it would be
    // for `servo run` with the same settings.
    let select = application
        .settings
        .objective
        .as_ref()
        .map(|o| o.select())
        .unwrap_or_default();
    Ok(Summary::from_trials(
        &study, &journal, trials, maximize, &select,
    ))
}

/// The study of the application a read request names, once its token is checked.
async fn authorized_study(
    server: &Server,
    headers: &HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(Application, Summary), ApiError> {
    let application = authorize(server, headers, path).await?;
    let summary = study_of(server, &application).await?;
    Ok((application, summary))
}

async fn trials(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (_, summary) = authorized_study(&server, &headers, path).await?;
    Ok(json_response(StatusCode::OK, &json!(summary.trials)))
}

async fn best(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (application, summary) = authorized_study(&server, &headers, path).await?;
    let (_, session) = server.store.session(application.id).await?;
    let best = best_trial(&summary.trials, summary.maximize);
    let improvement = match (&summary.baseline, best) {
        (Some(b), Some(t)) => match (b.objective, t.objective) {
            (Some(b), Some(t)) if b != 0.0 => Some((t - b) / b.abs()),
            _ => None,
        },
        _ => None,
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "application": application.name,
            "objective": summary.objective,
            "maximize": summary.maximize,
            "constraints": summary.constraints,
            "trials": summary.trials.len(),
            "baseline": summary.baseline,
            "best": best,
            "relative_change": improvement,
            // Why the study is stopped short of its trials, when the optimizer failed.
            "error": session.optimizer_error,
        }),
    ))
}

async fn report_page(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (_, summary) = authorized_study(&server, &headers, path).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        crate::ui::report(&summary),
    )
        .into_response())
}

async fn healthz(State(server): State<Arc<Server>>) -> Response {
    match server.store.ping().await {
        Ok(()) => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        Err(e) => {
            tracing::error!(error = %e, "health check: storage failed");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "unavailable", "detail": "storage is unavailable" }),
            )
        }
    }
}

/// From memory: a scrape never touches the store the servos are waiting on.
async fn metrics(State(server): State<Arc<Server>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        server.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(OPENAPI),
    )
        .into_response()
}

/// The start of a client's string, for an error message.
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTE) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {method} {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_quote_at_most_the_start_of_a_value() {
        assert_eq!(quote("HELO"), "HELO");
        let long = "é".repeat(100);
        assert_eq!(quote(&long), format!("{}...", "é".repeat(MAX_QUOTE)));
    }

    #[test]
    fn the_openapi_document_is_json() {
        let document: Value = serde_json::from_str(OPENAPI).unwrap_or_default();
        assert_eq!(document["openapi"], "3.0.3");
        assert!(document["components"]["schemas"]["Request"]["oneOf"].is_array());
    }
}
