//! Scanning helpers shared by the detectors: the retrying regex scan and the explicit
//! boundary checks that stand in for `\b`.

use regex::Regex;

use crate::pii::{Entity, EntityKind};

/// What to do after a candidate is rejected.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Search again from the next char: a shorter match may start inside the candidate.
    NextChar,
    /// Skip the whole candidate: the validator already tried every sub-span, and retrying
    /// inside an unbounded token would make the scan quadratic.
    AfterMatch,
}

/// Runs `regex` over `text`; `accept` gets each match and returns the entity span to keep
/// (possibly trimmed) or `None`.
pub(super) fn scan(
    text: &str,
    regex: &Regex,
    kind: EntityKind,
    retry: Retry,
    out: &mut Vec<Entity>,
    mut accept: impl FnMut(&str, usize, usize) -> Option<(usize, usize)>,
) {
    let mut at = 0;
    while at < text.len() {
        let Some(found) = regex.find_at(text, at) else {
            break;
        };
        let next_char = next_boundary(text, found.start());
        match accept(text, found.start(), found.end()) {
            Some((start, end)) if start < end && end <= text.len() => {
                out.push(Entity { kind, start, end });
                at = end.max(next_char);
            }
            _ => {
                at = match retry {
                    Retry::NextChar => next_char,
                    Retry::AfterMatch => found.end().max(next_char),
                };
            }
        }
    }
}

pub(super) fn next_boundary(text: &str, offset: usize) -> usize {
    text[offset..]
        .chars()
        .next()
        .map_or(text.len(), |c| offset + c.len_utf8())
}

pub(super) fn char_before(text: &str, offset: usize) -> Option<char> {
    text[..offset].chars().next_back()
}

/// The char before the one before `offset`.
pub(super) fn char_before2(text: &str, offset: usize) -> Option<char> {
    let mut chars = text[..offset].chars();
    chars.next_back();
    chars.next_back()
}

pub(super) fn char_after(text: &str, offset: usize) -> Option<char> {
    text[offset..].chars().next()
}

pub(super) fn char_after2(text: &str, offset: usize) -> Option<char> {
    let mut chars = text[offset..].chars();
    chars.next();
    chars.next()
}

pub(super) fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A number must not continue a longer number or token on its left: no letter, digit
/// or `_`, and no `.`, `-`, `/`, `+` or `@` glued to a preceding digit or letter.
pub(super) fn numeric_left_ok(text: &str, start: usize) -> bool {
    match char_before(text, start) {
        None => true,
        Some(c) if is_word(c) => false,
        Some('.' | '-' | '/' | ',' | ':') => !char_before2(text, start).is_some_and(is_word),
        // A space after a digit means this is a later group of a longer number.
        Some(' ') => !char_before2(text, start).is_some_and(|c| c.is_ascii_digit()),
        Some('+' | '@' | '$' | '&' | '%') => false,
        Some(_) => true,
    }
}

/// A number must not run on into more digits, letters or a further `.5`, `-7` or `@`.
pub(super) fn numeric_right_ok(text: &str, end: usize) -> bool {
    match char_after(text, end) {
        None => true,
        Some(c) if is_word(c) => false,
        Some('.' | '-' | '/' | ',' | ':' | ' ') => {
            !char_after2(text, end).is_some_and(|c| c.is_ascii_digit())
        }
        Some('@' | '%') => false,
        Some(_) => true,
    }
}

/// A token (key, id) must not be glued to other word characters or token punctuation.
pub(super) fn token_left_ok(text: &str, start: usize) -> bool {
    !char_before(text, start).is_some_and(|c| is_word(c) || c == '-' || c == '/' || c == '+')
}

pub(super) fn token_right_ok(text: &str, end: usize) -> bool {
    !char_after(text, end).is_some_and(|c| is_word(c) || c == '-' || c == '/' || c == '+')
}

/// Han, kana, Hangul and CJK punctuation: scripts written without spaces between words.
pub(super) fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7AF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{FF00}'..='\u{FFEF}' | '\u{20000}'..='\u{3FFFF}')
}

pub(super) fn ascii_digits(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).collect()
}

/// Byte offsets (relative to `s`) just after each run of ASCII digits, for trying
/// shorter group-aligned prefixes of a greedy numeric match.
pub(super) fn digit_group_ends(s: &str) -> Vec<usize> {
    let bytes = s.as_bytes();
    (1..=bytes.len())
        .filter(|&idx| {
            bytes[idx - 1].is_ascii_digit() && bytes.get(idx).is_none_or(|b| !b.is_ascii_digit())
        })
        .collect()
}

pub(super) fn regex(pattern: &str) -> Regex {
    // The patterns are constants covered by tests; a typo is a bug, not an input error.
    Regex::new(pattern).expect("PII pattern must compile: this is a bug")
}
