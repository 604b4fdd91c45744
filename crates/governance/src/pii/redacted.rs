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

/// A panic's message for a panic hook's log line. A literal message (`panic!("…")`
/// with no arguments, `expect("…")`) is code, not data, and passes as it is; a
/// formatted one may quote request data (`unwrap` of a parse error) and is withheld,
/// its length kept. It is not run through the PII engine: a panic inside a panic hook
/// aborts the process, so the hook does nothing that could panic.
pub fn panic_message_for_log(payload: &(dyn std::any::Any + Send)) -> Redacted {
    if let Some(literal) = payload.downcast_ref::<&'static str>() {
        return Redacted((*literal).to_owned());
    }
    match payload.downcast_ref::<String>() {
        Some(formatted) => Redacted(format!(
            "[formatted panic message withheld: {} bytes]",
            formatted.len()
        )),
        None => Redacted("(no message)".to_owned()),
    }
}

/// Replaces the default panic hook, which prints a panic's message raw to stderr, with
/// one that logs (at `error`, through `tracing`) the location, the thread and the
/// message as [`panic_message_for_log`] gives it. A panic's message may quote what a
/// request carried (an `unwrap` of a parse error, say), so a formatted one never
/// reaches the log. The binary installs it once its log is set up.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|at| format!("{}:{}", at.file(), at.line()))
            .unwrap_or_default();
        let message = panic_message_for_log(info.payload());
        let thread = std::thread::current();
        tracing::error!(%location, thread = thread.name().unwrap_or("unnamed"), %message, "a thread panicked");
    }));
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

#[cfg(test)]
mod tests {
    use super::panic_message_for_log;

    #[test]
    fn formatted_panic_messages_are_withheld_from_the_log() {
        let formatted: Box<dyn std::any::Any + Send> =
            Box::new(String::from("bad input from alice@example.com"));
        let logged = panic_message_for_log(formatted.as_ref()).into_string();
        assert!(!logged.contains("alice@example.com"), "{logged}");
        assert!(logged.contains("32 bytes"), "{logged}");
        let literal: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        let logged = panic_message_for_log(literal.as_ref());
        assert_eq!(logged.as_str(), "index out of bounds");
        let other: Box<dyn std::any::Any + Send> = Box::new(42u8);
        assert_eq!(
            panic_message_for_log(other.as_ref()).as_str(),
            "(no message)"
        );
    }
}
