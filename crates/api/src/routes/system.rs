//! Public routes: liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, description = "The server is alive")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: every model `serve` was asked to load is warm, and the server is not draining.
#[utoipa::path(get, path = "/ready", tag = "system", responses(
    (status = 200, description = "Ready to serve"),
    (status = 503, description = "Starting or draining", body = crate::error::ErrorBody)))]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        ApiError::unavailable("the server is starting or draining", 1).into_response()
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.render_metrics() {
        Some(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            text,
        )
            .into_response(),
        None => ApiError::not_found("metrics_disabled", "metrics are not enabled on this server")
            .into_response(),
    }
}
