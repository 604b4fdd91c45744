//! Fuzz target for the PII engine: any UTF-8 input must give sorted, disjoint entities on
//! char boundaries, and `apply` must return `Ok` or a typed error, never panic.

#![no_main]

use governance::pii::{apply, detect, reidentify, Action, EntityKind, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(entities) = detect(text) else {
        return;
    };
    let mut previous_end = 0;
    for entity in &entities {
        assert!(entity.start < entity.end && entity.start >= previous_end);
        assert!(text.is_char_boundary(entity.start) && text.is_char_boundary(entity.end));
        previous_end = entity.end;
    }
    let policy = Policy::new(Action::Pseudonymize).with(EntityKind::Card, Action::Redact);
    if let Ok(applied) = apply(text, &policy) {
        let _ = reidentify(applied.text.as_str(), &applied.mapping);
    }
    let _ = apply(text, &Policy::redact_all());
});
