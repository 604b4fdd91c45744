//! Deny-by-default authentication layer and the `Guarded<P>` extractor.
//!
//! Every route outside the public router passes through [`require_key`], which puts
//! the [`Principal`] into the request extensions or answers 401. A handler names the
//! permission it needs in its signature, `Guarded<ModelsWrite>`, and gets 403 without
//! it: there is no way to reach a service without stating a permission.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governance::{AuthError, Principal};
use types::{Scope, Scopes};

use crate::error::ApiError;
use crate::state::AppState;

/// A permission a route can require: satisfied by any of `SCOPES` (admin always).
pub trait Permission: Send + Sync + 'static {
    const SCOPES: &'static [Scope];

    fn allows(scopes: &Scopes) -> bool {
        Self::SCOPES.iter().any(|s| scopes.grants(*s))
    }
}

macro_rules! permissions {
    ($($(#[$meta:meta])* $name:ident => [$($scope:ident),+];)*) => {
        $(
            $(#[$meta])*
            pub struct $name;
            impl Permission for $name {
                const SCOPES: &'static [Scope] = &[$(Scope::$scope),+];
            }
        )*
    };
}

permissions! {
    /// Call models.
    Inference => [Inference];
    /// List models a caller may use: either inference or registry read access.
    UseModels => [Inference, ModelsRead];
    ModelsRead => [ModelsRead];
    ModelsWrite => [ModelsWrite];
    Data => [Data];
    Jobs => [Jobs];
    AuditRead => [AuditRead];
    /// Fetch a receipt: the caller who made the request, or an auditor.
    Receipts => [Inference, AuditRead];
    PiiReveal => [PiiReveal];
    /// Read the tenant's metered usage: callers of models, or auditors.
    Usage => [Inference, AuditRead];
    Admin => [Admin];
}

/// The authenticated caller, proven to hold permission `P`.
pub struct Guarded<P: Permission> {
    pub principal: Principal,
    _permission: PhantomData<P>,
}

impl<P: Permission, S: Send + Sync> FromRequestParts<S> for Guarded<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                ApiError::unauthorized("missing API key: send 'Authorization: Bearer <key>'")
            })?;
        if !P::allows(&principal.scopes) {
            let needed: Vec<&str> = P::SCOPES.iter().map(|s| s.as_str()).collect();
            return Err(ApiError::forbidden(
                "insufficient_scope",
                format!(
                    "this key lacks the scope this operation needs (one of: {})",
                    needed.join(", ")
                ),
            ));
        }
        Ok(Self {
            principal,
            _permission: PhantomData,
        })
    }
}

/// Middleware: authenticate or answer 401 before anything else runs, then admit the
/// request under the caller's requests-per-minute limits (429 when over) and describe
/// the caller's remaining limits in `x-ratelimit-*` headers.
pub async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match governance::authenticate_cached(state.store(), state.key_cache(), header).await {
        Ok(principal) => {
            let mut response = match crate::limits::admit(&state, &principal) {
                Ok(()) => {
                    request.extensions_mut().insert(principal.clone());
                    next.run(request).await
                }
                Err(refused) => refused.into_response(),
            };
            crate::limits::set_headers(&state, &principal, &mut response);
            // The audit layer sits outside this one and reads who was answered here.
            response.extensions_mut().insert(principal);
            Ok(response)
        }
        Err(AuthError::Missing) => Err(ApiError::unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'",
        )),
        Err(AuthError::Invalid) => Err(ApiError::unauthorized(
            "invalid API key: it is malformed, unknown, revoked or expired",
        )),
        // The database could not be reached: the same answer as in any handler.
        Err(AuthError::Store(error)) if error.is_unavailable() => Err(ApiError::failure(&error)),
        Err(AuthError::Store(error)) => {
            tracing::error!(%error, "key lookup failed");
            Err(ApiError::unavailable(
                "authentication is temporarily unavailable; retry shortly",
                1,
            ))
        }
    }
}
