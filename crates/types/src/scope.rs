//! Scopes that API keys carry, and the set of them a key holds.

use std::fmt;

/// One permission an API key may carry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Scope {
    #[serde(rename = "inference")]
    Inference,
    #[serde(rename = "models:read")]
    ModelsRead,
    #[serde(rename = "models:write")]
    ModelsWrite,
    #[serde(rename = "data")]
    Data,
    #[serde(rename = "jobs")]
    Jobs,
    #[serde(rename = "audit:read")]
    AuditRead,
    #[serde(rename = "pii:reveal")]
    PiiReveal,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::Inference,
        Scope::ModelsRead,
        Scope::ModelsWrite,
        Scope::Data,
        Scope::Jobs,
        Scope::AuditRead,
        Scope::PiiReveal,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Inference => "inference",
            Scope::ModelsRead => "models:read",
            Scope::ModelsWrite => "models:write",
            Scope::Data => "data",
            Scope::Jobs => "jobs",
            Scope::AuditRead => "audit:read",
            Scope::PiiReveal => "pii:reveal",
            Scope::Admin => "admin",
        }
    }
}

/// An unknown scope name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope '{0}'; known scopes: inference, models:read, models:write, data, jobs, audit:read, pii:reveal, admin")]
pub struct ScopeError(pub String);

impl std::str::FromStr for Scope {
    type Err = ScopeError;
    fn from_str(value: &str) -> Result<Self, ScopeError> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| ScopeError(value.to_owned()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes of one key. `admin` implies every other scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Self(scopes)
    }

    pub fn admin() -> Self {
        Self(vec![Scope::Admin])
    }

    /// True when this set grants `scope` (directly or through `admin`).
    pub fn grants(&self, scope: Scope) -> bool {
        self.0.contains(&scope) || self.0.contains(&Scope::Admin)
    }

    pub fn is_admin(&self) -> bool {
        self.0.contains(&Scope::Admin)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Parses a comma-separated list such as `inference,models:read`.
    pub fn parse_list(list: &str) -> Result<Self, ScopeError> {
        let scopes = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(scopes))
    }

    /// The comma-separated form stored in the database.
    pub fn to_list(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_grants_everything_and_lists_round_trip() {
        let s = Scopes::parse_list("models:read, inference").unwrap();
        assert!(s.grants(Scope::Inference));
        assert!(!s.grants(Scope::ModelsWrite));
        assert_eq!(Scopes::parse_list(&s.to_list()).unwrap(), s);
        assert!(Scopes::admin().grants(Scope::Jobs));
        assert!(Scopes::parse_list("inference,root").is_err());
    }
}
