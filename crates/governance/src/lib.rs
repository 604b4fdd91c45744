//! Governance: who is calling (authentication), what they may do (scopes), and the
//! policies that every request passes through before it reaches a service.
//!
//! Knows nothing of HTTP beyond header text; the `api` crate turns these decisions
//! into responses.

pub mod auth;

pub use auth::{authenticate, mint_key, AuthError, KeyRequest, Principal};
