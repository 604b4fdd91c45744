//! Validated names for tenants and models, and `NAME[:VERSION]` references.

use std::fmt;

/// Why a name was refused; the message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

const MAX_NAME_LEN: usize = 64;

/// Checks a name: 1 to 64 ASCII letters, digits, `-`, `_`, `.`; starts with a letter
/// or digit; no `..`. Such a name is safe as a path component and a URL segment.
fn validate(kind: &str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError(format!("{kind} name must not be empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError(format!(
            "{kind} name must be at most {MAX_NAME_LEN} characters"
        )));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !name.chars().all(allowed) {
        return Err(NameError(format!(
            "{kind} name may contain only ASCII letters, digits, '-', '_' and '.'"
        )));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(NameError(format!(
            "{kind} name must start with a letter or digit"
        )));
    }
    if name.contains("..") {
        return Err(NameError(format!("{kind} name must not contain '..'")));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$meta:meta])* $ty:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                validate($kind, &value)?;
                Ok(Self(value))
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = NameError;
            fn try_from(value: &str) -> Result<Self, NameError> {
                Self::try_from(value.to_owned())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(value: &str) -> Result<Self, NameError> {
                Self::try_from(value)
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A model's name, unique within its tenant.
    ModelName,
    "model"
);
name_type!(
    /// A tenant's name, unique on the server.
    TenantName,
    "tenant"
);

/// `NAME` (the latest version) or `NAME:VERSION`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    pub name: ModelName,
    pub version: Option<i64>,
}

impl std::str::FromStr for ModelRef {
    type Err = NameError;
    fn from_str(value: &str) -> Result<Self, NameError> {
        match value.split_once(':') {
            None => Ok(Self {
                name: value.parse()?,
                version: None,
            }),
            Some((name, version)) => {
                let version: i64 = version.parse().map_err(|_| {
                    NameError(format!(
                        "model version must be a positive whole number, got '{version}'"
                    ))
                })?;
                if version < 1 {
                    return Err(NameError("model version must be 1 or more".into()));
                }
                Ok(Self {
                    name: name.parse()?,
                    version: Some(version),
                })
            }
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}:{v}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ok: bool) {
        assert_eq!(ModelName::try_from(name).is_ok(), ok, "{name:?}");
    }

    #[test]
    fn names_are_validated() {
        for good in ["minilm", "all-MiniLM-L6-v2", "a.b_c", "7"] {
            check(good, true);
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "../x",
            "a/b",
            "a\\b",
            "..",
            "a..b",
            "%2e%2e",
            "a\0b",
            ".hidden",
            "-x",
            "é",
            "a b",
            long.as_str(),
        ] {
            check(bad, false);
        }
    }

    #[test]
    fn model_refs_parse() {
        let r: ModelRef = "minilm:3".parse().unwrap();
        assert_eq!((r.name.as_str(), r.version), ("minilm", Some(3)));
        let r: ModelRef = "minilm".parse().unwrap();
        assert_eq!(r.version, None);
        assert!("minilm:0".parse::<ModelRef>().is_err());
        assert!("minilm:x".parse::<ModelRef>().is_err());
        assert!("../a:1".parse::<ModelRef>().is_err());
    }

    #[test]
    fn serde_refuses_bad_names() {
        assert!(serde_json::from_str::<ModelName>("\"../etc\"").is_err());
        assert!(serde_json::from_str::<ModelName>("\"ok\"").is_ok());
    }
}
