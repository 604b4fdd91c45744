//! [`Redacted`]: text that has been through a PII policy. Logs and the audit trail accept
//! only this type, so raw request text cannot reach them by accident.

use std::fmt;
use std::sync::LazyLock;

use super::policy::{apply, Action, Policy};
use super::PiiError;

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

/// Redacts `text` for a log line under a tenant's `logs` policy. Logs never carry
/// values whatever the policy says: `allow` and `pseudonymize` count as `redact`, and
/// `block` withholds the whole text, naming the kinds found. Infallible like
/// [`redact_for_log`].
pub fn redact_for_log_with(text: &str, policy: &Policy) -> Redacted {
    let strict = |action: Action| match action {
        Action::Block => Action::Block,
        _ => Action::Redact,
    };
    let mut log_policy =
        Policy::new(strict(policy.default)).with_max_input_bytes(policy.max_input_bytes);
    for (&kind, &action) in &policy.actions {
        log_policy = log_policy.with(kind, strict(action));
    }
    match apply(text, &log_policy) {
        Ok(applied) => applied.text,
        Err(PiiError::Blocked { kinds }) => {
            let kinds: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
            Redacted(format!("[WITHHELD: {}]", kinds.join(", ")))
        }
        Err(error) => Redacted(format!("[UNREDACTABLE: {}]", error.code())),
    }
}
