//! Rate limits and usage metering at the HTTP edge: the 429 answer, OpenAI's
//! `x-ratelimit-*` headers, and the two calls inference handlers make (charge tokens
//! before inference, meter usage after it).
//!
//! Requests per minute are admitted in the authentication layer ([`admit`]); tokens
//! are charged by the handler once it knows the count ([`charge_tokens`]): for
//! embeddings the prompt tokens after tokenisation, for tensor models one token per
//! input row.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use governance::admission::Slot;
use governance::ratelimit::{format_duration, LimitExceeded, LimitOwner, RateStatus, WindowStatus};
use governance::Principal;
use store::KeyLimits;
use types::Day;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Counts a request against the caller's requests-per-minute limits.
pub(crate) fn admit(state: &AppState, principal: &Principal) -> ApiResult<()> {
    state
        .limiter()
        .admit_request(principal.charged())
        .map_err(|refused| rate_limited(&refused))
}

/// Charges `n_tokens` against the caller's token limits, before inference. Daily
/// quotas first learn what the store metered today (once per day and process), so a
/// restart does not reset them.
pub(crate) async fn charge_tokens(
    state: &AppState,
    principal: &Principal,
    n_tokens: usize,
) -> ApiResult<()> {
    let limiter = state.limiter();
    for owner in limiter.days_to_seed(principal.charged()) {
        let key_id = match owner {
            LimitOwner::Key => Some(principal.key_id.as_str()),
            LimitOwner::Tenant => None,
        };
        match state
            .store()
            .tokens_on_day(&principal.tenant, key_id, Day::today())
            .await
        {
            Ok(tokens) => limiter.add_to_day(principal.charged(), owner, tokens.max(0) as u64),
            // Fails open: the quota counts from zero, as without a store.
            Err(error) => tracing::warn!(%error, "cannot read today's usage for a daily quota"),
        }
    }
    limiter
        .charge_tokens(principal.charged(), n_tokens as u64)
        .map_err(|refused| rate_limited(&refused))
}

/// Takes one of the caller's tenant's places for an inference request in flight, when
/// places are capped; 429 when the tenant holds them all. Dropping the slot gives the
/// place back.
pub(crate) fn inference_slot(state: &AppState, principal: &Principal) -> ApiResult<Option<Slot>> {
    let Some(slots) = state.tenant_slots() else {
        return Ok(None);
    };
    match slots.try_acquire(&principal.tenant) {
        Some(slot) => Ok(Some(slot)),
        None => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_concurrent_requests",
            format!(
                "this tenant already has {} inference requests in flight, the most allowed at once; retry when one has finished",
                slots.max_per_tenant()
            ),
        )
        .with_retry_after(1)),
    }
}

/// Takes one of the server's places for a request in flight (`max_in_flight`), or
/// answers 503 `overloaded` with `Retry-After: 1` when all are taken: at once, before
/// the body is read or anything else is done for it. Health, readiness and metrics
/// probes ([`routes::PROBES`]) take no place, so a saturated server is not reported
/// dead. Dropping the permit gives the place back.
pub(crate) fn server_place(
    state: &AppState,
    request: &axum::extract::Request,
) -> ApiResult<Option<tokio::sync::OwnedSemaphorePermit>> {
    let probe = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|path| crate::routes::PROBES.contains(&path.as_str()));
    if probe {
        return Ok(None);
    }
    match state.in_flight().clone().try_acquire_owned() {
        Ok(permit) => Ok(Some(permit)),
        Err(_) => {
            metrics::counter!("charter_requests_shed_total").increment(1);
            Err(ApiError::unavailable(
                format!(
                    "the server is working on {} requests, the most it takes at once; retry after the indicated delay",
                    state.config().max_in_flight
                ),
                1,
            ))
        }
    }
}

/// Meters one answered request for usage reporting.
pub(crate) fn meter(state: &AppState, principal: &Principal, model: &str, n_tokens: usize) {
    state
        .meter()
        .record(&principal.tenant, &principal.key_id, model, n_tokens as u64);
}

fn rate_limited(refused: &LimitExceeded) -> ApiError {
    // Whole seconds, rounded up and at least 1, so a client that waits is admitted.
    let retry_after = refused.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        refused.to_string(),
    )
    .with_retry_after(retry_after)
}

/// Sets `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for a limited caller.
pub(crate) fn set_headers(state: &AppState, principal: &Principal, response: &mut Response) {
    let RateStatus { requests, tokens } = state.limiter().status(principal.charged());
    for (window, suffix) in [(requests, "requests"), (tokens, "tokens")] {
        if let Some(window) = window {
            insert_window(response, window, suffix);
        }
    }
}

fn insert_window(response: &mut Response, window: WindowStatus, suffix: &str) {
    let headers = response.headers_mut();
    let values = [
        ("limit", window.limit.to_string()),
        ("remaining", window.remaining.to_string()),
        ("reset", format_duration(window.reset)),
    ];
    for (name, value) in values {
        let name = HeaderName::try_from(format!("x-ratelimit-{name}-{suffix}"));
        if let (Ok(name), Ok(value)) = (name, HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
}

/// Limits as a request gives them: each absent or at least 1.
pub(crate) fn valid_limits(
    rpm: Option<i64>,
    tpm: Option<i64>,
    tpd: Option<i64>,
) -> ApiResult<KeyLimits> {
    for (value, param) in [(rpm, "rpm"), (tpm, "tpm"), (tpd, "tpd")] {
        if value.is_some_and(|v| v < 1) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "rate limits must be 1 or more; leave a limit out for none",
            )
            .with_param(param));
        }
    }
    Ok(KeyLimits { rpm, tpm, tpd })
}
