//! Errors of the platform layer, and how each becomes an RFC 9457 problem answer.

use std::time::Duration;

/// What went wrong; each variant maps to one HTTP status (see [`AppError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The input is invalid: `field` (when one is at fault) and what is wrong with it.
    #[error("{detail}")]
    Invalid {
        /// The field at fault, if one is.
        field: Option<&'static str>,
        /// What is wrong.
        detail: String,
    },
    /// Not signed in, or the session has expired.
    #[error("sign in first")]
    Unauthenticated,
    /// Wrong username/email or password (one message for both: no account probing).
    #[error("wrong username or password")]
    BadCredentials,
    /// Signed in, but this resource is not yours to read or change.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (or one the caller may not know of).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflicts with what exists (a taken username, slug or email).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts: try again after the delay.
    #[error("too many attempts: try again in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    /// The database cannot be reached right now: try again after the delay.
    #[error("the service is temporarily unavailable")]
    Unavailable(Duration),
    /// A bug or an unexpected failure (logged with the request id, not shown).
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// An invalid `field`.
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> AppError {
        AppError::Invalid {
            field: Some(field),
            detail: detail.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            AppError::Invalid { .. } => S::BAD_REQUEST,
            AppError::Unauthenticated | AppError::BadCredentials => S::UNAUTHORIZED,
            AppError::Forbidden(_) => S::FORBIDDEN,
            AppError::NotFound(_) => S::NOT_FOUND,
            AppError::Conflict(_) => S::CONFLICT,
            AppError::RateLimited(_) => S::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => S::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable code (`invalid`, `unauthenticated`, …), also the last part
    /// of the problem's `type` URI.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Invalid { .. } => "invalid",
            AppError::Unauthenticated => "unauthenticated",
            AppError::BadCredentials => "bad-credentials",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not-found",
            AppError::Conflict(_) => "conflict",
            AppError::RateLimited(_) => "rate-limited",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// How long the client should wait before retrying, when that is known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AppError::RateLimited(d) | AppError::Unavailable(d) => Some(*d),
            _ => None,
        }
    }
}

/// How long to tell clients to wait while the database is away.
pub(crate) const DB_RETRY: Duration = Duration::from_secs(2);

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> AppError {
        use sqlx::Error as E;
        match &e {
            E::Io(_)
            | E::Tls(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed
            | E::Protocol(_) => AppError::Unavailable(DB_RETRY),
            E::RowNotFound => AppError::NotFound("row"),
            E::Database(d) => {
                if d.is_unique_violation() {
                    return AppError::Conflict("already exists".into());
                }
                // PostgreSQL: connection exceptions (08…), operator intervention such as
                // a shutdown or restart (57P…), insufficient resources (53…).
                let code = d.code().unwrap_or_default();
                if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
                    AppError::Unavailable(DB_RETRY)
                } else {
                    AppError::Internal(e.to_string())
                }
            }
            _ => AppError::Internal(e.to_string()),
        }
    }
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> AppError {
        AppError::Internal(format!("redis: {e}"))
    }
}

/// Results of the platform layer.
pub type Result<T, E = AppError> = std::result::Result<T, E>;
