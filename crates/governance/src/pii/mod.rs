//! PII engine: finds personal data and secrets in text and applies a per-direction policy
//! (allow, redact, pseudonymize, block) to them.
//!
//! Detectors validate what they match (Luhn, mod-97, GB 11643, SSN ranges, address
//! parsing, JWT headers) so that order numbers, version strings and hashes are left alone.
//! Everything is synchronous and free of I/O. Detection and policy application return a
//! `Result`: when the engine cannot vouch for its output (input over the size cap, a
//! broken internal invariant, a panicking detector) the caller gets an error, never the
//! text passed through unchanged.

mod detect;
mod fold;
mod policy;
mod redacted;
mod validate;

use std::fmt;

pub use detect::{detect, detect_with_limit};
pub use policy::{
    apply, reidentify, Action, Applied, Direction, Mapping, Policy, PolicySet, PseudonymScope,
};
pub use redacted::{
    install_panic_hook, panic_message_for_log, redact_for_log, redact_for_log_with, Redacted,
};

/// Inputs larger than this are refused unless a policy raises the cap.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 1 << 20;

/// The kind of a detected entity; each kind has its own redaction label and pseudonym
/// prefix.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Email,
    Phone,
    Card,
    Iban,
    CnId,
    Ssn,
    Ip,
    Secret,
}

impl EntityKind {
    pub const ALL: [EntityKind; 8] = [
        EntityKind::Email,
        EntityKind::Phone,
        EntityKind::Card,
        EntityKind::Iban,
        EntityKind::CnId,
        EntityKind::Ssn,
        EntityKind::Ip,
        EntityKind::Secret,
    ];

    /// The stable snake_case name used in policies, API responses and the corpus.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Email => "email",
            EntityKind::Phone => "phone",
            EntityKind::Card => "card",
            EntityKind::Iban => "iban",
            EntityKind::CnId => "cn_id",
            EntityKind::Ssn => "ssn",
            EntityKind::Ip => "ip",
            EntityKind::Secret => "secret",
        }
    }

    /// The upper-case label used in `[LABEL]` redactions and `<LABEL_n>` pseudonyms.
    pub fn label(self) -> &'static str {
        match self {
            EntityKind::Email => "EMAIL",
            EntityKind::Phone => "PHONE",
            EntityKind::Card => "CARD",
            EntityKind::Iban => "IBAN",
            EntityKind::CnId => "CN_ID",
            EntityKind::Ssn => "SSN",
            EntityKind::Ip => "IP",
            EntityKind::Secret => "SECRET",
        }
    }

    pub fn from_label(label: &str) -> Option<EntityKind> {
        EntityKind::ALL
            .into_iter()
            .find(|kind| kind.label() == label)
    }

    /// Which kind wins when two overlapping detections have the same length: secrets
    /// first because leaking one is the costliest, then the kinds with the strongest
    /// validation (e-mail syntax, mod-97, GB 11643 checksums) before the weaker ones.
    pub(crate) fn priority(self) -> u8 {
        match self {
            EntityKind::Secret => 7,
            EntityKind::Email => 6,
            EntityKind::Iban => 5,
            EntityKind::CnId => 4,
            EntityKind::Card => 3,
            EntityKind::Ssn => 2,
            EntityKind::Phone => 1,
            EntityKind::Ip => 0,
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EntityKind {
    type Err = PiiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or(PiiError::UnknownKind)
    }
}

/// One detection: `text[start..end]` is the entity. Offsets are byte offsets into the
/// UTF-8 input and always fall on char boundaries; entities never overlap and come
/// sorted by `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Entity {
    #[serde(rename = "type")]
    pub kind: EntityKind,
    pub start: usize,
    pub end: usize,
}

/// Why the engine refused to produce output. Messages never contain the input text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiiError {
    #[error("input of {len} bytes is over the PII engine limit of {max} bytes")]
    InputTooLarge { len: usize, max: usize },
    #[error("input contains personal data that policy blocks: {}", kinds_list(.kinds))]
    Blocked { kinds: Vec<EntityKind> },
    #[error("unknown PII entity kind")]
    UnknownKind,
    /// The engine produced output it cannot vouch for; the request must fail rather than
    /// pass text through unchecked.
    #[error("PII detection failed: {0}")]
    Internal(&'static str),
}

impl PiiError {
    /// Stable snake_case code for the API error table.
    pub fn code(&self) -> &'static str {
        match self {
            PiiError::InputTooLarge { .. } => "pii_input_too_large",
            PiiError::Blocked { .. } => "pii_blocked",
            PiiError::UnknownKind => "pii_unknown_kind",
            PiiError::Internal(_) => "pii_internal",
        }
    }
}

fn kinds_list(kinds: &[EntityKind]) -> String {
    kinds
        .iter()
        .map(|kind| kind.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
