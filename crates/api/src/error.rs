//! The one error shape of every endpoint and the table that maps errors to HTTP.
//!
//! `{"error": {"message", "type", "code", "param"}}`, as OpenAI answers. Messages are
//! written for the person reading them and never carry internal details (paths, SQL,
//! other tenants' names) or personal data (they are redacted on the way out); the source
//! error, if any, is logged with the request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'static str,
    pub param: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
            .with_retry_after(retry_after)
    }

    /// A 500 whose cause is logged here and never shown to the client.
    pub fn internal(source: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %source, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle this request; it has been logged",
        )
    }

    /// The answer for a failure the client did not cause: 507 `insufficient_storage`
    /// when the server ran out of space (an I/O error of kind `StorageFull`,
    /// `QuotaExceeded` or `FileTooLarge` anywhere in the error's chain, or SQLite's
    /// "database or disk is full"); 503 `database_unavailable` when the database could
    /// not be reached (see `store::is_unavailable`); else [`ApiError::internal`].
    pub fn failure(error: &(dyn std::error::Error + 'static)) -> Self {
        use std::io::ErrorKind;
        let mut cause = Some(error);
        while let Some(current) = cause {
            let io_full = current.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge
                )
            });
            if io_full || current.to_string().contains("database or disk is full") {
                tracing::error!(%error, "out of storage space");
                return Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the server is out of storage space, so nothing was stored; retry later or ask its operator to free space",
                )
                .with_retry_after(60);
            }
            cause = current.source();
        }
        if store::is_unavailable(error) {
            tracing::error!(%error, "the database is unavailable");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the server cannot reach its database just now, so nothing was done; retry shortly",
            )
            .with_retry_after(5);
        }
        Self::internal(&error)
    }

    /// OpenAI's `type` field, derived from the status so it is always consistent.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Messages may quote what the client sent (a model name, a serde complaint about
        // a value); personal data in them is redacted like a log line.
        let message = governance::pii::redact_for_log(&self.message).into_string();
        let body = ErrorBody {
            error: ErrorDetail {
                message,
                kind: self.kind(),
                code: self.code,
                param: self.param,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
