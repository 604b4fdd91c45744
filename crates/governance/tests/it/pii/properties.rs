//! Property checks over seeded random text: offsets on char boundaries, sorted and
//! disjoint; `apply` never panics; redaction removes every detected value.

use governance::pii::{apply, detect, Action, EntityKind, Policy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Pieces that make random text likely to contain entities, near misses and awkward
/// Unicode (CJK, combining marks, emoji, full-width digits, no-break spaces).
const PIECES: &[&str] = &[
    "a@b.co",
    "@",
    ".",
    "-",
    " ",
    "+",
    "(",
    ")",
    ":",
    "::",
    "/",
    "_",
    "1",
    "0",
    "9",
    "4111",
    "1111",
    "138",
    "+86",
    "+1",
    "DE89",
    "3704",
    "AKIA",
    "sk-",
    "chr_",
    "eyJ",
    "-----BEGIN ",
    "PRIVATE KEY-----",
    "-----END ",
    "\n",
    "电话",
    "身份证",
    "日本語",
    "é",
    "e\u{301}",
    "🦀",
    "１",
    "８",
    "＠",
    "\u{a0}",
    "\u{202f}",
    "－",
    "X",
    "255",
    "192.168.",
    "fe80",
    "\u{10FFFF}",
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
fn apply_never_panics_and_rewrites_only_entities() {
    let mut rng = StdRng::seed_from_u64(6);
    let policies = [
        Policy::redact_all(),
        Policy::new(Action::Pseudonymize),
        Policy::new(Action::Allow).with(EntityKind::Secret, Action::Block),
    ];
    for _ in 0..3_000 {
        let text = random_text(&mut rng);
        for policy in &policies {
            let Ok(applied) = apply(&text, policy) else {
                continue;
            };
            // Text between entities is copied unchanged; each entity becomes its label,
            // a pseudonym that maps back to it, or itself.
            let output = applied.text.as_str();
            let mut at_input = 0;
            let mut at_output = 0;
            for entity in &applied.entities {
                let gap = &text[at_input..entity.start];
                assert_eq!(&output[at_output..at_output + gap.len()], gap, "{text:?}");
                at_output += gap.len();
                let value = &text[entity.start..entity.end];
                let replacement = match policy.action(entity.kind) {
                    Action::Allow => value.to_owned(),
                    Action::Redact => format!("[{}]", entity.kind.label()),
                    Action::Pseudonymize => {
                        let end = output[at_output..].find('>').unwrap() + at_output + 1;
                        let token = &output[at_output..end];
                        assert!(applied.mapping.get(token).is_some(), "{text:?}");
                        token.to_owned()
                    }
                    Action::Block => panic!("blocked entity in output: {text:?}"),
                };
                assert!(output[at_output..].starts_with(&replacement), "{text:?}");
                at_output += replacement.len();
                at_input = entity.end;
            }
            assert_eq!(&output[at_output..], &text[at_input..], "{text:?}");
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

/// Prints throughput on a 1 MiB mix of prose and entities; no timing assertion (those
/// belong in benchmarks). Run with `cargo test -p governance --test it throughput --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let paragraph =
        "Kunde zhang.san@example.cn (Tel. +49 151 23456789, 手机 13812345678) zahlte mit \
        4111 1111 1111 1111 von 192.168.10.20; IBAN DE89 3704 0044 0532 0130 00, Bestellung \
        2024-11-29-0042, Version v1.2.3, 合同编号 20231115000123。";
    let mut text = String::new();
    while text.len() + paragraph.len() < governance::pii::DEFAULT_MAX_INPUT_BYTES {
        text.push_str(paragraph);
        text.push('\n');
    }
    let started = std::time::Instant::now();
    let applied = apply(&text, &Policy::redact_all()).unwrap();
    let elapsed = started.elapsed();
    println!(
        "{} bytes, {} entities in {:?} ({:.1} MiB/s)",
        text.len(),
        applied.entities.len(),
        elapsed,
        text.len() as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
    );
}
