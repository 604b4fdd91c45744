//! [`Redacted`]: text that has been through a PII policy. Logs and the audit trail accept
//! only this type, so raw request text cannot reach them by accident.

use std::fmt;
use std::sync::LazyLock;

use super::policy::{apply, Policy};

/// Text that went through [`apply`](super::apply). It can only be built inside this
/// module (there is no `From<String>` and no `Deserialize`), so holding one proves the
/// policy ran.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Redacted(String);

impl Redacted {
    pub(super) fn new(text: String) -> Redacted {
        Redacted(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for Redacted {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Redacts every kind of entity for a log line. Infallible on purpose: when the engine
/// refuses the text (too large, internal error) the log gets a fixed placeholder naming
/// the error code instead of the text.
pub fn redact_for_log(text: &str) -> Redacted {
    static LOG_POLICY: LazyLock<Policy> = LazyLock::new(Policy::redact_all);
    match apply(text, &LOG_POLICY) {
        Ok(applied) => applied.text,
        Err(error) => Redacted(format!("[UNREDACTABLE: {}]", error.code())),
    }
}
