//! Extractors that turn axum's rejections into the one error shape.

use axum::body::Bytes;
use axum::extract::rejection::{
    BytesRejection, FailedToBufferBody, JsonRejection, PathRejection, QueryRejection,
};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Deepest nesting of arrays and objects a JSON body may have. Requests need a
/// handful of levels; the bound keeps deserialisation far from serde_json's recursion
/// limit and the stack, whatever a client sends.
pub const MAX_JSON_DEPTH: usize = 32;

/// `axum::Json` whose rejections are `ApiError`s naming what was wrong, and which
/// refuses bodies nested deeper than [`MAX_JSON_DEPTH`] before deserialising them.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(json_rejection(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(Self)
    }
}

/// Parses a JSON request body the way every JSON route does: nesting bounded first,
/// then deserialised, with errors in the one error shape. Also the fuzz target's entry.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_depth(bytes, MAX_JSON_DEPTH)?;
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(value)) => Ok(value),
        Err(rejection) => Err(json_rejection(rejection)),
    }
}

/// Refuses JSON text whose arrays and objects nest deeper than `max`, in one pass
/// without allocating; brackets inside strings do not count.
fn check_depth(bytes: &[u8], max: usize) -> Result<(), ApiError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(ApiError::bad_request(
                        "json_too_deep",
                        format!("the body nests arrays and objects more than {max} levels deep"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// `application/json` or any `application/*+json`, as axum accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// A body that could not be buffered: over the limit (413), or unreadable (400), such
/// as malformed chunked encoding or a client that broke off.
fn body_rejection(rejection: BytesRejection) -> ApiError {
    if matches!(
        rejection,
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))
    ) {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "the request body is over the limit (serve --max-json-body-kb)",
        )
    } else {
        ApiError::bad_request(
            "body_unreadable",
            "the request body could not be read: malformed chunked encoding, or the client broke off",
        )
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body with 'Content-Type: application/json'",
        ),
        JsonRejection::JsonDataError(e) => ApiError::bad_request(
            "invalid_request",
            format!("invalid request body: {}", e.body_text()),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::BytesRejection(rejection) => body_rejection(rejection),
        other => ApiError::bad_request("invalid_request", other.body_text()),
    }
}

/// `axum::extract::Path` with rejections in the one error shape.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_path",
        format!("invalid path: {}", rejection.body_text()),
    )
}

/// `axum::extract::Query` with rejections in the one error shape.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        format!("invalid query string: {}", rejection.body_text()),
    )
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded_outside_strings_only() {
        let check = |text: &str, ok: bool| {
            assert_eq!(check_depth(text.as_bytes(), 3).is_ok(), ok, "{text}");
        };
        check(r#"{"a": [[1]]}"#, true);
        check(r#"{"a": [[[1]]]}"#, false);
        check(r#"{"a": "[[[[[[", "b": [[]]}"#, true);
        check(r#"{"a": "\"[[[[", "b": [[]]}"#, true);
        check(r#"{"a": "\\", "b": [[[[]]]]}"#, false);
        check(r#"[][][][][][]"#, true);
        check(&"[".repeat(100_000), false);
        check("]]]]]]{}", true);
    }

    #[test]
    fn json_content_types() {
        let check = |value: &str, ok: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json(&headers), ok, "{value}");
        };
        check("application/json", true);
        check("application/json; charset=utf-8", true);
        check("Application/JSON", true);
        check("application/merge-patch+json", true);
        check("text/json", false);
        check("application/jsonx", false);
        check("text/plain", false);
        assert!(!is_json(&HeaderMap::new()));
    }
}
