//! Numeric identifiers: phone numbers, payment cards, IBANs, Chinese resident ids and US
//! Social Security numbers.

use std::sync::LazyLock;

use regex::Regex;

use super::scan::*;
use crate::pii::validate;
use crate::pii::{Entity, EntityKind};

// Phone numbers

static E164: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\+[1-9]\d{0,3}(?:[ \-.]?\(0\))?(?:[ \-.]?\(\d{1,4}\))?(?:[ \-.]?\d{1,6}){1,7}")
});

pub(super) fn detect_e164(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &E164,
        EntityKind::Phone,
        Retry::NextChar,
        out,
        |text, start, end| {
            if char_before(text, start).is_some_and(|c| is_word(c) || c == '+') {
                return None;
            }
            let candidate = &text[start..end];
            // Try the longest group-aligned prefix that is a valid number, so a number
            // followed by a year or extension digits is still found.
            for group_end in digit_group_ends(candidate).into_iter().rev() {
                let number = &candidate[..group_end];
                // "(0)" is the national trunk prefix and is not dialled internationally.
                let digits = ascii_digits(&number.replace("(0)", ""));
                if validate::e164_ok(&digits) && numeric_right_ok(text, start + group_end) {
                    if number.contains('(') != number.contains(')') {
                        continue;
                    }
                    return Some((start, start + group_end));
                }
            }
            None
        },
    );
}

static CN_MOBILE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"1[3-9]\d(?:\d{8}|-\d{4}-\d{4}| \d{4} \d{4})"));

pub(super) fn detect_cn_mobile(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &CN_MOBILE,
        EntityKind::Phone,
        Retry::NextChar,
        out,
        |text, start, end| {
            (numeric_left_ok(text, start) && numeric_right_ok(text, end)).then_some((start, end))
        },
    );
}

// Formatting (parentheses or separators) is required: a bare run of ten digits is more
// often an order or account number than a phone number.
static NANP: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?:\+?1[ \-.]?)?(?:\(\d{3}\)[ \-.]?|\d{3}[ \-.])\d{3}[ \-.]\d{4}"));

pub(super) fn detect_nanp(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &NANP,
        EntityKind::Phone,
        Retry::NextChar,
        out,
        |text, start, end| {
            let candidate = &text[start..end];
            if !numeric_left_ok(text, start) || !numeric_right_ok(text, end) {
                return None;
            }
            let mut digits = ascii_digits(candidate);
            if digits.len() == 11 {
                if digits[0] != b'1' {
                    return None;
                }
                digits.remove(0);
            }
            validate::nanp_ok(&digits).then_some((start, end))
        },
    );
}

// National formats written with separators: France (`06 12 34 56 78`), Japan
// (`090-1234-5678`, `03-1234-5678`), China landlines (`010-65529988`) and Germany/UK
// style trunk numbers with a space after the area code (`030 1234567`, `020 7946 0958`).
static NATIONAL_PHONE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"0[1-9](?: \d{2}){4}|0[1-9](?:\.\d{2}){4}|0\d{1,3}-\d{2,4}-\d{4}|0\d{2,3}-\d{7,8}|0\d{2,4} \d{3,4} ?\d{3,4}",
    )
});

pub(super) fn detect_national_phones(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &NATIONAL_PHONE,
        EntityKind::Phone,
        Retry::NextChar,
        out,
        |text, start, end| {
            if !numeric_left_ok(text, start) || !numeric_right_ok(text, end) {
                return None;
            }
            let digits = ascii_digits(&text[start..end]);
            (10..=11).contains(&digits.len()).then_some((start, end))
        },
    );
}

// ---------------------------------------------------------------------------------------
// Payment cards

// Whole runs of digit groups; the validator tries every group-aligned window, which
// finds `4111 1111 1111 1111` inside `4111 1111 1111 1111 2027` too.
static DIGIT_RUN: LazyLock<Regex> = LazyLock::new(|| regex(r"\d+(?:[ \-]\d+)*"));

pub(super) fn detect_cards(text: &str, out: &mut Vec<Entity>) {
    // Runs are maximal, so they never overlap and need no retry.
    for run in DIGIT_RUN.find_iter(text) {
        if numeric_left_ok(text, run.start()) {
            cards_in_run(text, run.start(), run.end(), out);
        }
    }
}

/// Reports every card in a run of digit groups: for each starting group the longest
/// valid window wins, and the search goes on after it.
fn cards_in_run(text: &str, run_start: usize, run_end: usize, out: &mut Vec<Entity>) {
    let run = &text[run_start..run_end];
    // (start, end) of every digit group in the run.
    let mut groups = Vec::new();
    let mut group_start = None;
    for (idx, byte) in run.bytes().enumerate() {
        match (byte.is_ascii_digit(), group_start) {
            (true, None) => group_start = Some(idx),
            (false, Some(begin)) => {
                groups.push((begin, idx));
                group_start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = group_start {
        groups.push((begin, run.len()));
    }
    let mut first = 0;
    while first < groups.len() {
        let mut n_digits = 0;
        let mut best = None;
        for last in first..groups.len() {
            let (group_begin, group_end) = groups[last];
            n_digits += group_end - group_begin;
            if n_digits > 19 {
                break;
            }
            let (window_start, window_end) = (groups[first].0, group_end);
            if n_digits >= 13 && card_window_ok(&run[window_start..window_end]) {
                let end = run_start + window_end;
                if last + 1 < groups.len() || numeric_right_ok(text, end) {
                    best = Some((last, run_start + window_start, end));
                }
            }
        }
        match best {
            Some((last, start, end)) => {
                out.push(Entity {
                    kind: EntityKind::Card,
                    start,
                    end,
                });
                first = last + 1;
            }
            None => first += 1,
        }
    }
}

fn card_window_ok(window: &str) -> bool {
    let separators: Vec<u8> = window.bytes().filter(|b| !b.is_ascii_digit()).collect();
    if separators.windows(2).any(|pair| pair[0] != pair[1]) {
        return false;
    }
    // Printed cards group digits by 4 (Amex and Diners 4-6-5 / 4-6-4); two-digit groups
    // are dates, amounts or quantities.
    if !separators.is_empty() {
        let groups: Vec<&str> = window.split([' ', '-']).collect();
        let (last, leading) = groups.split_last().unwrap_or((&"", &[]));
        let leading_ok = leading.iter().all(|group| (3..=6).contains(&group.len()));
        let first_ok = groups.first().is_some_and(|group| group.len() >= 4);
        if !leading_ok || !first_ok || last.len() > 6 {
            return false;
        }
    }
    let digits = ascii_digits(window);
    validate::luhn_ok(&digits) && validate::card_issuer_ok(&digits)
}

// ---------------------------------------------------------------------------------------
// IBAN

// Upper or lower case, not mixed; mod-97 keeps precision either way.
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,32}|[a-z]{2}\d{2}(?: ?[a-z0-9]){10,32}")
});

pub(super) fn detect_iban(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &IBAN,
        EntityKind::Iban,
        Retry::NextChar,
        out,
        |text, start, end| {
            if char_before(text, start).is_some_and(is_word) {
                return None;
            }
            let candidate = text[start..end].to_ascii_uppercase();
            let expected = validate::iban_expected_len(candidate.as_bytes())?;
            // The pattern is greedy and may have swallowed a following upper-case word;
            // cut at the country's length.
            let mut compact = Vec::with_capacity(expected);
            let mut cut = None;
            for (idx, byte) in candidate.bytes().enumerate() {
                if byte != b' ' {
                    compact.push(byte);
                }
                if compact.len() == expected {
                    cut = Some(idx + 1);
                    break;
                }
            }
            let cut = cut?;
            let end = start + cut;
            if char_after(text, end).is_some_and(is_word) {
                return None;
            }
            validate::iban_ok(&compact).then_some((start, end))
        },
    );
}

// ---------------------------------------------------------------------------------------
// Mainland China resident identity number

static CN_ID: LazyLock<Regex> = LazyLock::new(|| regex(r"\d{17}[\dXx]"));

pub(super) fn detect_cn_id(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &CN_ID,
        EntityKind::CnId,
        Retry::NextChar,
        out,
        |text, start, end| {
            let ok = numeric_left_ok(text, start)
                && numeric_right_ok(text, end)
                && validate::cn_id_ok(&text.as_bytes()[start..end]);
            ok.then_some((start, end))
        },
    );
}

// ---------------------------------------------------------------------------------------
// US Social Security number

// Only the dashed and spaced forms: nine bare digits are indistinguishable from other ids.
static SSN: LazyLock<Regex> = LazyLock::new(|| regex(r"\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}"));

pub(super) fn detect_ssn(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &SSN,
        EntityKind::Ssn,
        Retry::NextChar,
        out,
        |text, start, end| {
            if !numeric_left_ok(text, start) || !numeric_right_ok(text, end) {
                return None;
            }
            let digits = ascii_digits(&text[start..end]);
            let number = |range: std::ops::Range<usize>| {
                digits[range]
                    .iter()
                    .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
            };
            validate::ssn_ok(number(0..3), number(3..5), number(5..9)).then_some((start, end))
        },
    );
}
