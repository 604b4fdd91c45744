//! The detectors: a pattern finds a candidate, explicit boundary checks keep it from
//! being part of a longer token, and a validator decides. Overlaps are resolved by
//! length, then kind priority.
//!
//! Boundaries are checked by hand instead of with `\b` because Unicode `\b` sees no
//! boundary between `电话` and `138…` (both are word characters), and ASCII `\b` cannot
//! be used on `&str` haystacks. All patterns are compiled once.

mod network;
mod numbers;
mod scan;
mod secrets;

use std::collections::BTreeMap;

use self::network::{detect_email, detect_ipv4, detect_ipv6};
use self::numbers::{
    detect_cards, detect_cn_id, detect_cn_mobile, detect_e164, detect_iban, detect_nanp,
    detect_national_phones, detect_ssn,
};
use self::secrets::{detect_aws_secret_key, detect_jwt, detect_private_keys, detect_token_secrets};
use super::fold::Folded;
use super::{Entity, PiiError, DEFAULT_MAX_INPUT_BYTES};

/// Finds PII and secrets in `text`, refusing inputs over [`DEFAULT_MAX_INPUT_BYTES`].
pub fn detect(text: &str) -> Result<Vec<Entity>, PiiError> {
    detect_with_limit(text, DEFAULT_MAX_INPUT_BYTES)
}

/// Finds PII and secrets in `text`, refusing inputs over `max_input_bytes` so that a
/// huge payload costs an error instead of unbounded CPU or a skipped check.
pub fn detect_with_limit(text: &str, max_input_bytes: usize) -> Result<Vec<Entity>, PiiError> {
    if text.len() > max_input_bytes {
        return Err(PiiError::InputTooLarge {
            len: text.len(),
            max: max_input_bytes,
        });
    }
    // A bug in a detector must fail the request, not take the worker thread down or let
    // the text through; the detectors only read `text`, so nothing is left half-updated.
    let (folded, candidates) = std::panic::catch_unwind(|| {
        let folded = Folded::new(text);
        let mut candidates = Vec::new();
        for detector in DETECTORS {
            detector(&folded.text, &mut candidates);
        }
        (folded, candidates)
    })
    .map_err(|_| PiiError::Internal("a detector panicked"))?;
    let mut entities = Vec::with_capacity(candidates.len());
    for candidate in resolve_overlaps(candidates) {
        let start = folded
            .to_original(candidate.start)
            .ok_or(PiiError::Internal("entity offset outside the input"))?;
        let end = folded
            .to_original(candidate.end)
            .ok_or(PiiError::Internal("entity offset outside the input"))?;
        entities.push(Entity {
            kind: candidate.kind,
            start,
            end,
        });
    }
    check_invariants(text, &entities)?;
    Ok(entities)
}

type Detector = fn(&str, &mut Vec<Entity>);

const DETECTORS: &[Detector] = &[
    detect_email,
    detect_e164,
    detect_cn_mobile,
    detect_nanp,
    detect_national_phones,
    detect_cards,
    detect_iban,
    detect_cn_id,
    detect_ssn,
    detect_ipv4,
    detect_ipv6,
    detect_token_secrets,
    detect_aws_secret_key,
    detect_jwt,
    detect_private_keys,
];

/// Keeps the longest, then highest-priority, candidate of every overlapping group and
/// returns the survivors ordered by position.
fn resolve_overlaps(mut candidates: Vec<Entity>) -> Vec<Entity> {
    // Length first: a validated longer match (a phone number holding an SSN-shaped
    // group, a key block holding digit runs) explains the text better than a fragment.
    candidates.sort_by(|a, b| {
        (b.end - b.start)
            .cmp(&(a.end - a.start))
            .then(b.kind.priority().cmp(&a.kind.priority()))
            .then(a.start.cmp(&b.start))
    });
    // start -> entity, for neighbour look-ups while inserting.
    let mut accepted: BTreeMap<usize, Entity> = BTreeMap::new();
    for candidate in candidates {
        let overlaps_before = accepted
            .range(..candidate.end)
            .next_back()
            .is_some_and(|(_, previous)| previous.end > candidate.start);
        if !overlaps_before {
            accepted.insert(candidate.start, candidate);
        }
    }
    accepted.into_values().collect()
}

/// Detection bugs must not turn into slicing panics or garbled redactions downstream.
fn check_invariants(text: &str, entities: &[Entity]) -> Result<(), PiiError> {
    let mut previous_end = 0;
    for entity in entities {
        if entity.start >= entity.end || entity.end > text.len() {
            return Err(PiiError::Internal(
                "entity with an empty or out-of-range span",
            ));
        }
        if !text.is_char_boundary(entity.start) || !text.is_char_boundary(entity.end) {
            return Err(PiiError::Internal("entity offset not on a char boundary"));
        }
        if entity.start < previous_end {
            return Err(PiiError::Internal("overlapping entities"));
        }
        previous_end = entity.end;
    }
    Ok(())
}
