//! Governance: who is calling (authentication), what they may do (scopes), and the
//! policies that every request passes through before it reaches a service: the PII
//! engine ([`pii`]) among them, and the tamper-evident audit log ([`audit`]).
//!
//! Knows nothing of HTTP beyond header text; the `api` crate turns these decisions
//! into responses.

pub mod audit;
pub mod auth;
pub mod pii;

pub use auth::{
    authenticate, authenticate_cached, mint_key, AuthError, KeyCache, KeyRequest, Principal,
};
