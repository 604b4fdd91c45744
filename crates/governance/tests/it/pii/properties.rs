//! Property checks over seeded random text: offsets on char boundaries, sorted and
//! disjoint; `apply` never panics; redaction removes every detected value.

use governance::pii::{apply, detect, Action, EntityKind, Policy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Pieces that make random text likely to contain entities, near misses and awkward
/// Unicode (CJK, combining marks, emoji, full-width digits, no-break spaces).
const PIECES: &[&str] = &[
    "a@b.co", "@", ".", "-", " ", "+", "(", ")", ":", "::", "/", "_", "1", "0", "9", "4111",
    "1111", "138", "+86", "+1", "DE89", "3704", "AKIA", "sk-", "chr_", "eyJ", "-----BEGIN ",
    "PRIVATE KEY-----", "-----END ", "\n", "电话", "身份证", "日本語", "é", "e\u{301}", "🦀",
    "１", "８", "＠", "\u{a0}", "\u{202f}", "－", "X", "255", "192.168.", "fe80", "\u{10FFFF}",
];

fn random_text(rng: &mut StdRng) -> String {
    let n_pieces = rng.gen_range(0..40);
    let mut text = String::new();
    for _ in 0..n_pieces {
        if rng.gen_bool(0.2) {
            // Any scalar value, including unassigned ones.
            let c = loop {
                if let Some(c) = char::from_u32(rng.gen_range(0..=0x10FFFF)) {
                    break c;
                }
            };
            text.push(c);
        } else {
            text.push_str(PIECES[rng.gen_range(0..PIECES.len())]);
        }
    }
    text
}

#[test]
fn offsets_are_char_boundaries_and_disjoint() {
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..5_000 {
        let text = random_text(&mut rng);
        let entities = detect(&text).unwrap();
        let mut previous_end = 0;
        for entity in entities {
            assert!(entity.start < entity.end, "{text:?}");
            assert!(entity.start >= previous_end, "{text:?}");
            assert!(text.is_char_boundary(entity.start) && text.is_char_boundary(entity.end));
            previous_end = entity.end;
        }
    }
}

#[test]
fn apply_never_panics_and_removes_values() {
    let mut rng = StdRng::seed_from_u64(6);
    let policies = [
        Policy::redact_all(),
        Policy::new(Action::Pseudonymize),
        Policy::new(Action::Allow).with(EntityKind::Secret, Action::Block),
    ];
    for _ in 0..3_000 {
        let text = random_text(&mut rng);
        for policy in &policies {
            if let Ok(applied) = apply(&text, policy) {
                for entity in &applied.entities {
                    if policy.action(entity.kind) == Action::Redact {
                        // Redaction labels replace the value, so a second pass over the
                        // output finds nothing of the same kind where it was.
                        let again = detect(applied.text.as_str()).unwrap();
                        assert!(
                            again.iter().all(|e| e.kind != entity.kind
                                || applied.text.as_str()[e.start..e.end] != text[entity.start..entity.end]),
                            "{text:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn pathological_inputs_finish() {
    // Long runs that every numeric and token pattern starts on; must stay linear-ish.
    let inputs = [
        "1".repeat(200_000),
        "1 ".repeat(100_000),
        "1-".repeat(100_000),
        "a@".repeat(100_000),
        "a.".repeat(100_000),
        ":".repeat(200_000),
        "f:".repeat(100_000),
        "ey".repeat(100_000),
        "eyJhbGciOiJub25lIn0.".repeat(10_000),
        "sk-".repeat(60_000),
        "-----BEGIN PRIVATE KEY-----".repeat(5_000),
        "１".repeat(60_000),
        "DE89 ".repeat(40_000),
    ];
    for input in &inputs {
        let applied = apply(input, &Policy::redact_all()).unwrap();
        assert!(applied.text.as_str().len() <= input.len() + 16 * applied.entities.len());
    }
}
