//! Tests of the PII engine through its public API.

mod cases;
mod corpus;
mod panic_hook;
mod policy;
mod properties;

use governance::pii::{detect, EntityKind};

/// Asserts that `detect(input)` finds exactly `expect`, given as (kind, substring) in
/// order of appearance.
#[track_caller]
fn check(input: &str, expect: &[(EntityKind, &str)]) {
    let entities = detect(input).expect("detection succeeds on small inputs");
    let found: Vec<(EntityKind, &str)> = entities
        .iter()
        .map(|entity| (entity.kind, &input[entity.start..entity.end]))
        .collect();
    assert_eq!(found, expect, "input: {input:?}");
}
