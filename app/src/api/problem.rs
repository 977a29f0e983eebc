//! RFC 9457 problem answers, with the request id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AppError;

/// An error answer (`application/problem+json`, RFC 9457).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path.
    pub instance: Option<String>,
    /// Machine-readable code (`invalid`, `unauthenticated`, `forbidden`, `not-found`,
    /// `conflict`, `rate-limited`, `unavailable`, …).
    pub code: String,
    /// The input field at fault, if one is.
    pub field: Option<String>,
    /// The request id (also in `X-Request-Id`): quote it in a bug report.
    pub request_id: Option<String>,
}

/// An API error: an [`AppError`] on its way to becoming a problem answer.
#[derive(Debug, Clone)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        ApiError(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        ApiError(AppError::from(e))
    }
}

/// Results of handlers.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// A problem with an explicit status and code (for rejections of the framework).
pub(crate) fn problem_response(p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(p).unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    // The request-id layer completes it (id, path) and writes the body again.
    r.extensions_mut().insert(p.clone());
    r
}

pub(crate) fn problem_of(e: &AppError) -> Problem {
    let status = e.status();
    let detail = match e {
        // Never show internals (SQL, paths) to clients; they are logged with the id.
        AppError::Internal(_) => "internal error".to_string(),
        e => e.to_string(),
    };
    Problem {
        kind: format!("https://videopick.dev/problems/{}", e.code()),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail,
        instance: None,
        code: e.code().to_string(),
        field: match e {
            AppError::Invalid { field, .. } => field.map(str::to_string),
            _ => None,
        },
        request_id: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = problem_response(&problem_of(&self.0));
        if let Some(d) = self.0.retry_after()
            && let Ok(v) = HeaderValue::from_str(&d.as_secs().max(1).to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        // The request-id layer fills in the id and path, and logs internal errors.
        r.extensions_mut().insert(self.0);
        r
    }
}

/// A problem of `status` with `code` and `detail` (framework rejections).
pub(crate) fn reject(status: StatusCode, code: &str, detail: String) -> Response {
    problem_response(&Problem {
        kind: format!("https://videopick.dev/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail,
        instance: None,
        code: code.to_string(),
        field: None,
        request_id: None,
    })
}
