//! A tenant's privacy settings (PII policy per direction, payload retention, vault TTL),
//! their defaults and their validation, and the data subject a request may name.

use std::fmt;

use crate::pii::{Action, EntityKind, Policy, PolicySet};

use super::PrivacyError;

/// How long pseudonym mappings stay revealable unless the tenant says otherwise: one day.
pub const DEFAULT_VAULT_TTL_SECS: i64 = 24 * 3600;
/// The longest retention or vault TTL accepted: ten years.
pub const MAX_RETENTION_SECS: i64 = 10 * 366 * 24 * 3600;
/// The longest data subject id accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 256;

/// What a tenant decided about personal data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    /// The PII policy for model inputs, model outputs and log lines.
    pub policies: PolicySet,
    /// How long request and response payloads are kept; `None` (the default): they are
    /// not stored at all.
    pub retention_secs: Option<i64>,
    /// How long pseudonym mappings can be revealed.
    pub vault_ttl_secs: i64,
}

impl Default for PrivacySettings {
    /// Inputs and outputs pass unchanged (nothing of them is stored or logged), log lines
    /// are redacted, payloads are not stored, pseudonyms live a day.
    fn default() -> PrivacySettings {
        PrivacySettings {
            policies: PolicySet {
                input: Policy::new(Action::Allow),
                output: Policy::new(Action::Allow),
                logs: Policy::redact_all(),
            },
            retention_secs: None,
            vault_ttl_secs: DEFAULT_VAULT_TTL_SECS,
        }
    }
}

impl PrivacySettings {
    /// Refuses settings that would break a promise: log policies may only redact or
    /// block (logs never carry values), periods must be positive and bounded.
    pub fn validate(&self) -> Result<(), PrivacyError> {
        let logs = &self.policies.logs;
        let loose = |action: Action| matches!(action, Action::Allow | Action::Pseudonymize);
        if loose(logs.default) || logs.actions.values().copied().any(loose) {
            return Err(PrivacyError::Invalid(
                "the logs policy may only redact or block: logs never carry personal data".into(),
            ));
        }
        if let Some(retention) = self.retention_secs {
            check_period("retention", retention)?;
        }
        check_period("vault TTL", self.vault_ttl_secs)
    }

    /// True when the input policy leaves every kind of entity in place, so inputs that
    /// cannot be checked (token ids) may pass.
    pub fn input_allows_everything(&self) -> bool {
        let input = &self.policies.input;
        EntityKind::ALL
            .iter()
            .all(|&kind| input.action(kind) == Action::Allow)
    }
}

fn check_period(what: &str, seconds: i64) -> Result<(), PrivacyError> {
    if seconds <= 0 || seconds > MAX_RETENTION_SECS {
        return Err(PrivacyError::Invalid(format!(
            "the {what} must be between 1 second and 10 years, not {seconds} seconds"
        )));
    }
    Ok(())
}

/// A data subject a request names (OpenAI's `user` field or `X-Charter-Subject`): the
/// client's own pseudonymous id for the person the data is about. It is stored only as
/// a keyed tag and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    pub fn parse(text: &str) -> Result<Subject, PrivacyError> {
        if text.is_empty() || text.len() > MAX_SUBJECT_BYTES || text.chars().any(char::is_control) {
            return Err(PrivacyError::Invalid(format!(
                "a data subject id must be 1 to {MAX_SUBJECT_BYTES} bytes without control characters"
            )));
        }
        Ok(Subject(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subject([redacted])")
    }
}
