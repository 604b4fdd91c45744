//! The HTTP face of Charter: an axum router, thin handlers, wire types, the error
//! table and the OpenAPI document.
//!
//! Handlers extract, make one service call and map the result; they never touch SQL
//! or candle. Every route is listed once in [`routes::table`], which both builds the
//! router and drives the route × permission test.

pub mod audit;
pub mod auth;
pub mod error;
pub mod extract;
#[doc(hidden)]
pub mod fuzzing;
mod limits;
pub mod openapi;
pub mod privacy;
pub mod routes;
pub mod serving;
pub mod state;
pub mod upload;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use error::{ApiError, ApiResult};
pub use state::{ApiConfig, AppState, MetricsRender};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the whole application: public routes, protected routes behind the
/// authentication layer, and the shared layers around both.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with `extra` routes behind the same shared layers (request id, audit,
/// deadline, metrics, body limit, panic catching) but not the authentication layer:
/// for embedding Charter's API next to routes of one's own, and for tests.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let mut public = extra;
    let mut protected = Router::new();
    for route in routes::table() {
        if route.scopes.is_none() {
            public = public.route(route.path, route.handler);
        } else {
            protected = protected.route(route.path, route.handler);
        }
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_key,
    ));
    public
        .merge(protected)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config().max_json_body))
        // A handler that panics answers 500 in the one error shape (counted, audited)
        // instead of dropping the connection; the panic's message is not sent.
        .layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        // Outermost but for the request id, so refused and timed-out requests are
        // audited with their id.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::record_audit,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::map_request(drop_foreign_request_id))
        .with_state(state)
}

/// Keeps a client's `x-request-id` only when it is one UUID; any other value is
/// removed, so that [`SetRequestIdLayer`] gives the request a UUID of its own. The id
/// is stored in audit entries and privacy records, which keep no free text a client
/// wrote (an entry of the hash-chained log cannot be edited to erase a name or a card
/// number), and is sent back on the response.
async fn drop_foreign_request_id(mut request: Request) -> Request {
    let mut ids = request.headers().get_all(&REQUEST_ID).iter();
    let keep = match (ids.next(), ids.next()) {
        (Some(id), None) => id
            .to_str()
            .is_ok_and(|id| uuid::Uuid::try_parse(id).is_ok()),
        _ => false,
    };
    if !keep {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The answer for a request whose handler panicked.
fn panicked(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    metrics::counter!("charter_handler_panics_total").increment(1);
    ApiError::internal(&"a request handler panicked").into_response()
}

/// Counts requests and their latency by route template and status, never by raw path.
async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_name(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("charter_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("charter_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A request's method as metrics labels and audit entries name it: a standard method
/// by its name, any other `OTHER`. HTTP lets a client send any token as its method (up
/// to the size of the request head), which would otherwise reach the log and the
/// metrics raw, one new time series per distinct method.
pub(crate) fn method_name(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// When a request's deadline ends: set by the audit layer, which reads small bodies
/// before the handler and so starts the clock; [`deadline`] starts it otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(pub(crate) tokio::time::Instant);

impl Deadline {
    /// `request_timeout_secs` from now.
    pub(crate) fn from_now(state: &AppState) -> Self {
        Self(tokio::time::Instant::now() + Duration::from_secs(state.config().request_timeout_secs))
    }
}

/// The whole-request deadline: a handler (or a client sending its body slowly) that
/// has not produced response headers within `request_timeout_secs` of the request's
/// arrival is abandoned with 503 `request_timeout` in the one error shape. Streamed
/// response bodies are not limited by it, nor are uploads (`routes::UPLOAD_ROUTES`),
/// whose chunks must instead each arrive within that time of the previous one.
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let upload = request.method() == axum::http::Method::POST
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|path| routes::UPLOAD_ROUTES.contains(&path.as_str()));
    if upload {
        return next.run(request).await;
    }
    let ends = request
        .extensions()
        .get::<Deadline>()
        .copied()
        .unwrap_or_else(|| Deadline::from_now(&state));
    match tokio::time::timeout_at(ends.0, next.run(request)).await {
        Ok(response) => response,
        Err(_) => request_timeout(&state).into_response(),
    }
}

/// The answer to a request abandoned at its deadline.
pub(crate) fn request_timeout(state: &AppState) -> ApiError {
    let seconds = state.config().request_timeout_secs;
    abandoned(format!(
        "the request did not complete within {seconds} s and was abandoned"
    ))
}

/// 503 `request_timeout` with `Retry-After: 1`: the answer to a request the server
/// stopped waiting for (its deadline, or an upload's pause).
pub(crate) fn abandoned(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "request_timeout", message).with_retry_after(1)
}
