//! The audit layer: every request, refused ones included, becomes one audit entry
//! before its response leaves. The entry holds the route template, status, latency,
//! request id, the authenticated tenant and key, and SHA-256 digests of the request
//! and response bodies (never the bodies). The response carries
//! `X-Charter-Receipt: <seq>`. When the entry cannot be written the client gets 503
//! `audit_unavailable` instead of the response: nothing is answered unaudited.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use governance::Principal;
use sha2::{Digest, Sha256};
use store::NewAuditEntry;

use crate::error::ApiError;
use crate::state::AppState;
use crate::Deadline;

/// Header naming the audit entry (and receipt) of a response.
pub const RECEIPT_HEADER: HeaderName = HeaderName::from_static("x-charter-receipt");

/// Response extension a handler sets to name the model version that answered (its
/// manifest digest), so the audit entry and the receipt carry it.
#[derive(Debug, Clone)]
pub struct AuditModel(pub String);

/// Response extension a handler sets to record another resource than the request
/// path: a vault entry the body named, or a data subject's keyed tag in place of its id.
#[derive(Debug, Clone)]
pub struct AuditResource(pub String);

/// Routes whose raw path carries personal data (a data subject id): unless the handler
/// names the resource with [`AuditResource`], only their template is recorded.
const PRIVATE_PATHS: &[&str] = &["/v1/subjects/{id}"];

/// A path made of what names, versions and ids are made of (ASCII letters, digits and
/// `/`, `.`, `_`, `:`, `-`), of at most 256 bytes: safe to keep in the audit log as it is.
fn is_plain_path(path: &str) -> bool {
    path.len() <= 256
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._:-".contains(&b))
}

/// Middleware: records the request in the audit log, or answers 503.
pub async fn record_audit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // The server's place for this request is taken first, before any work for it.
    let admitted = crate::limits::server_place(&state, &request);
    let Some(log) = state.audit().cloned() else {
        return match admitted {
            Ok(_permit) => next.run(request).await,
            Err(refused) => refused.into_response(),
        };
    };
    let started = Instant::now();
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    // The raw path of an unmatched request is whatever the client typed, so only
    // matched paths (names and ids of resources) are kept, and only when they look
    // like names and ids: a path parameter the handler will refuse (an e-mail address,
    // a number with spaces, kilobytes of text) is recorded as its route's template.
    let resource = match matched.as_deref() {
        Some(template) if PRIVATE_PATHS.contains(&template) => template.to_owned(),
        Some(template) => {
            let path = request.uri().path();
            if is_plain_path(path) {
                path.to_owned()
            } else {
                template.to_owned()
            }
        }
        None => String::new(),
    };
    let action = format!(
        "http {} {}",
        crate::method_name(request.method()),
        matched.as_deref().unwrap_or("(unmatched)")
    );
    let request_id = request
        .headers()
        .get(crate::REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);

    // The deadline starts now: a small body is read here, before the deadline layer,
    // and a client that never sends it must not hold the connection for ever.
    let ends = Deadline::from_now(&state);
    request.extensions_mut().insert(ends);

    // While the log cannot be written, requests that may change something are refused
    // before the handler runs, so the refusal is not for an action already done. (The
    // first such request after the log fails is not caught: only its write finds out.)
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let input_sha256 = Arc::new(Mutex::new(None));
    // Held until the entry is written.
    let (_permit, response) = match admitted {
        Err(refused) => (None, refused.into_response()),
        Ok(_) if !safe && log.is_failing() => (None, audit_unavailable().into_response()),
        Ok(permit) => (
            permit,
            run_hashing_body(&state, request, next, ends, &input_sha256).await,
        ),
    };

    let principal = response.extensions().get::<Principal>().cloned();
    let resource = response
        .extensions()
        .get::<AuditResource>()
        .map_or(resource, |named| named.0.clone());
    let model_digest = response
        .extensions()
        .get::<AuditModel>()
        .map(|m| m.0.clone());
    let (mut parts, body) = response.into_parts();
    let streaming = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    // Whole responses are hashed as sent; streams are not buffered (their digest
    // would only be known after the client has them).
    let (body, output_sha256, status) = if streaming {
        (body, None, parts.status)
    } else {
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => {
                let digest = crypto::sha256_hex(&bytes);
                (Body::from(bytes), Some(digest), parts.status)
            }
            Err(error) => {
                tracing::error!(%error, "response body failed");
                (Body::empty(), None, StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    };
    parts.status = status;
    let input_sha256 = input_sha256.lock().ok().and_then(|mut slot| slot.take());
    let entry = NewAuditEntry {
        recorded_at: types::unix_now(),
        tenant: principal.as_ref().map(|p| p.tenant.to_string()),
        key_id: principal.map(|p| p.key_id),
        action,
        resource,
        status: i64::from(status.as_u16()),
        latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        request_id,
        input_sha256,
        output_sha256,
        model_digest,
    };
    // Bounded like the request: a log whose database stopped answering gets the client
    // a 503 rather than an answer that never comes.
    let limit = Duration::from_secs(state.config().request_timeout_secs);
    match log.record_within(entry, limit).await {
        Ok(entry) => {
            parts
                .headers
                .insert(RECEIPT_HEADER, HeaderValue::from(entry.seq));
            Response::from_parts(parts, body)
        }
        Err(error) => {
            tracing::error!(%error, "audit write failed; the response is withheld");
            audit_unavailable().into_response()
        }
    }
}

/// Runs the handler, with the request body's SHA-256 (hex) left in `input_sha256` once
/// the body has been read to its end.
async fn run_hashing_body(
    state: &AppState,
    request: Request,
    next: Next,
    ends: Deadline,
    input_sha256: &Arc<Mutex<Option<String>>>,
) -> Response {
    match small_body(&request) {
        // A small body of known length (most API calls) is read and hashed here: cheaper
        // than hashing it chunk by chunk as the handler streams it. A body that ends
        // early or fails reaches the handler as an empty body and no digest; one not
        // sent by the deadline is answered 503 without reaching the handler.
        Some(limit) => {
            let (parts, body) = request.into_parts();
            match tokio::time::timeout_at(ends.0, axum::body::to_bytes(body, limit)).await {
                Ok(Ok(bytes)) => {
                    if let Ok(mut slot) = input_sha256.lock() {
                        *slot = Some(crypto::sha256_hex(&bytes));
                    }
                    next.run(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Ok(Err(_)) => next.run(Request::from_parts(parts, Body::empty())).await,
                Err(_) => crate::request_timeout(state).into_response(),
            }
        }
        None => {
            next.run(hash_request_body(request, input_sha256.clone()))
                .await
        }
    }
}

/// The error for requests that cannot be audited.
pub(crate) fn audit_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        "the audit log cannot be written, so this request is not answered; retry shortly",
    )
    .with_retry_after(1)
}

/// Bodies at most this large, with a declared length, are read whole before the handler.
const SMALL_BODY: usize = 64 * 1024;

/// The declared length of a request body small enough to read whole (see `SMALL_BODY`).
fn small_body(request: &Request) -> Option<usize> {
    let length: usize = request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    (length <= SMALL_BODY).then_some(length)
}

/// Hashes the request body as the handler reads it; the digest lands in `slot` only
/// when the body was read to its end.
fn hash_request_body(request: Request, slot: Arc<Mutex<Option<String>>>) -> Request {
    let (parts, body) = request.into_parts();
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let feed = hasher.clone();
    let data = body.into_data_stream().map(move |chunk| {
        if let (Ok(bytes), Ok(mut hasher)) = (&chunk, feed.lock()) {
            hasher.update(bytes);
        }
        chunk
    });
    let finish = futures::stream::once(async move {
        let digest = hasher
            .lock()
            .map(|hasher| crypto::hex_lower(&hasher.clone().finalize()))
            .ok();
        if let Ok(mut slot) = slot.lock() {
            *slot = digest;
        }
    })
    .filter_map(|()| async { None::<Result<Bytes, axum::Error>> });
    Request::from_parts(parts, Body::from_stream(data.chain(finish)))
}
