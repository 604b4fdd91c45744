//! Shared vocabulary of Charter: validated names, scopes and model references, and the
//! expiring in-memory cache the request path shares.
//!
//! Everything here is plain data without I/O. Names are newtypes that can only be
//! built through validation (`TryFrom<String>`, also used by serde), so a value of
//! these types is known to be safe to use as a path component or a database key.

mod day;
mod names;
mod scope;
mod ttl_cache;

pub use day::{Day, DayError};
pub use names::{ModelName, ModelRef, NameError, TenantName};
pub use scope::{Scope, ScopeError, Scopes};
pub use ttl_cache::TtlCache;

/// The tenant every admin key belongs to; created by the first migration.
pub const ADMIN_TENANT: &str = "admin";

/// Seconds since the Unix epoch, the one timestamp representation in records.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
