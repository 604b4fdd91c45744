//! Governance: who is calling (authentication), what they may do (scopes), and the
//! policies that every request passes through before it reaches a service: the PII
//! engine ([`pii`]) among them with its per-tenant use in the service path ([`privacy`]:
//! policies, the pseudonym vault, stored payloads, erasure), the tamper-evident audit log
//! ([`audit`]), rate limits ([`ratelimit`]), per-tenant concurrency shares
//! ([`admission`]) and usage metering ([`metering`]).
//!
//! Knows nothing of HTTP beyond header text; the `api` crate turns these decisions
//! into responses.

pub mod admission;
pub mod audit;
pub mod auth;
pub mod metering;
pub mod pii;
pub mod privacy;
pub mod ratelimit;

pub use auth::{
    authenticate, authenticate_cached, mint_key, AuthError, KeyCache, KeyRequest, Principal,
};
