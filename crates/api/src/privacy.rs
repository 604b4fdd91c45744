//! What handlers need from `governance::privacy`: the data subject a request names,
//! its request id, and the error table for privacy errors.

use axum::http::{HeaderMap, HeaderName, StatusCode};
use governance::pii::PiiError;
use governance::privacy::{PrivacyError, Subject};

use crate::error::ApiError;

/// Header naming the data subject of a request, as an alternative to OpenAI's `user`.
pub const SUBJECT_HEADER: HeaderName = HeaderName::from_static("x-charter-subject");
/// Response header naming the vault entry holding a request's pseudonyms.
pub const VAULT_HEADER: HeaderName = HeaderName::from_static("x-charter-vault-id");

/// The subject a request names through `X-Charter-Subject` or a body field (`user`);
/// naming two different ones is refused.
pub fn subject(headers: &HeaderMap, body_field: Option<&str>) -> Result<Option<Subject>, ApiError> {
    let header = match headers.get(&SUBJECT_HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::bad_request(
                "invalid_subject",
                "X-Charter-Subject must be visible ASCII text",
            )
        })?),
        None => None,
    };
    let text = match (header, body_field) {
        (Some(header), Some(field)) if header != field => {
            return Err(ApiError::bad_request(
                "subject_conflict",
                "the X-Charter-Subject header and the 'user' field name different subjects",
            )
            .with_param("user"))
        }
        (Some(text), _) | (None, Some(text)) => text,
        (None, None) => return Ok(None),
    };
    Subject::parse(text)
        .map(Some)
        .map_err(|error| ApiError::bad_request("invalid_subject", error.to_string()))
}

/// The request id the request-id layer set (or the client sent).
pub fn request_id(headers: &HeaderMap) -> &str {
    headers
        .get(crate::REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// Maps privacy errors to the error table. Messages name entity kinds, never values.
pub fn privacy_error(error: PrivacyError) -> ApiError {
    match error {
        PrivacyError::Pii(error @ PiiError::Blocked { .. }) => {
            ApiError::bad_request(error.code(), error.to_string())
        }
        PrivacyError::Pii(error @ PiiError::InputTooLarge { .. }) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            error.code(),
            error.to_string(),
        ),
        PrivacyError::Pii(error @ PiiError::UnknownKind) => {
            ApiError::bad_request(error.code(), error.to_string())
        }
        PrivacyError::Pii(error @ PiiError::Internal(_)) => {
            tracing::error!(%error, "PII detection failed; the request is refused");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "pii_detection_failed",
                "personal data detection failed, so the request was refused rather than passed on unchecked",
            )
        }
        PrivacyError::Invalid(message) => ApiError::bad_request("invalid_request", message),
        PrivacyError::Unchecked(message) => {
            ApiError::bad_request("pii_unchecked_input", message).with_param("input")
        }
        PrivacyError::NotFound(what) => ApiError::not_found(
            "not_found",
            format!("{what} does not exist, has expired, or is not yours"),
        ),
        PrivacyError::Store(error) => crate::routes::store_error(error),
        PrivacyError::Registry(error) => crate::routes::registry_error(error),
        error @ PrivacyError::Integrity => ApiError::internal(&error),
    }
}
