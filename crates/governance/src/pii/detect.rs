//! The detectors: a pattern finds a candidate, explicit boundary checks keep it from
//! being part of a longer token, and a validator decides. Overlaps are resolved by kind
//! length, then kind priority.
//!
//! Boundaries are checked by hand instead of with `\b` because Unicode `\b` sees no
//! boundary between `电话` and `138…` (both are word characters), and ASCII `\b` cannot
//! be used on `&str` haystacks. All patterns are compiled once.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;

use super::fold::Folded;
use super::validate;
use super::{Entity, EntityKind, PiiError, DEFAULT_MAX_INPUT_BYTES};

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
    let folded = Folded::new(text);
    let haystack: &str = &folded.text;
    let mut candidates = Vec::new();
    for detector in DETECTORS {
        detector(haystack, &mut candidates);
    }
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

// ---------------------------------------------------------------------------------------
// Scanning helpers

/// What to do after a candidate is rejected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Search again from the next char: a shorter match may start inside the candidate.
    NextChar,
    /// Skip the whole candidate: the validator already tried every sub-span, and retrying
    /// inside an unbounded token would make the scan quadratic.
    AfterMatch,
}

/// Runs `regex` over `text`; `accept` gets each match and returns the entity span to keep
/// (possibly trimmed) or `None`.
fn scan(
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

fn next_boundary(text: &str, offset: usize) -> usize {
    text[offset..]
        .chars()
        .next()
        .map_or(text.len(), |c| offset + c.len_utf8())
}

fn char_before(text: &str, offset: usize) -> Option<char> {
    text[..offset].chars().next_back()
}

/// The char before the one before `offset`.
fn char_before2(text: &str, offset: usize) -> Option<char> {
    let mut chars = text[..offset].chars();
    chars.next_back();
    chars.next_back()
}

fn char_after(text: &str, offset: usize) -> Option<char> {
    text[offset..].chars().next()
}

fn char_after2(text: &str, offset: usize) -> Option<char> {
    let mut chars = text[offset..].chars();
    chars.next();
    chars.next()
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A number must not continue a longer number or token on its left: no letter, digit
/// or `_`, and no `.`, `-`, `/`, `+` or `@` glued to a preceding digit or letter.
fn numeric_left_ok(text: &str, start: usize) -> bool {
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
fn numeric_right_ok(text: &str, end: usize) -> bool {
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
fn token_left_ok(text: &str, start: usize) -> bool {
    !char_before(text, start).is_some_and(|c| is_word(c) || c == '-' || c == '/' || c == '+')
}

fn token_right_ok(text: &str, end: usize) -> bool {
    !char_after(text, end).is_some_and(|c| is_word(c) || c == '-' || c == '/' || c == '+')
}

/// Han, kana, Hangul and CJK punctuation: scripts written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7AF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{FF00}'..='\u{FFEF}' | '\u{20000}'..='\u{3FFFF}')
}

fn ascii_digits(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).collect()
}

/// Byte offsets (relative to `s`) just after each run of ASCII digits, for trying
/// shorter group-aligned prefixes of a greedy numeric match.
fn digit_group_ends(s: &str) -> Vec<usize> {
    let bytes = s.as_bytes();
    (1..=bytes.len())
        .filter(|&idx| {
            bytes[idx - 1].is_ascii_digit() && bytes.get(idx).is_none_or(|b| !b.is_ascii_digit())
        })
        .collect()
}

fn regex(pattern: &str) -> Regex {
    // The patterns are constants covered by tests; a typo is a bug, not an input error.
    Regex::new(pattern).expect("PII pattern must compile: this is a bug")
}

// ---------------------------------------------------------------------------------------
// E-mail

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+",
    )
});

/// Last labels that look like a domain but are file names (`icon@2x.png`).
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "pdf", "js", "css",
    "ts", "json", "txt",
];

fn detect_email(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &EMAIL,
        EntityKind::Email,
        Retry::NextChar,
        out,
        |text, start, end| {
            let candidate = &text[start..end];
            let (local, domain) = candidate.split_once('@')?;
            // Leading punctuation is quoting around the address, not part of it.
            let trim = local.len()
                - local
                    .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
                    .len();
            let local = &local[trim..];
            if local.is_empty() || local.ends_with('.') || local.contains("..") {
                return None;
            }
            // Internationalised local parts (`josé.garcía@…`, RFC 6531): the ASCII pattern
            // matched only the tail, so extend over letters of alphabetic scripts. CJK is
            // excluded because Chinese and Japanese text runs into addresses without spaces.
            let mut start = start + trim;
            let latin_letter = |c: char| c.is_alphanumeric() && !is_cjk(c);
            if char_before(text, start).is_some_and(|c| !c.is_ascii() && latin_letter(c)) {
                while let Some(c) = char_before(text, start) {
                    if !(latin_letter(c) || matches!(c, '.' | '_' | '-' | '+')) {
                        break;
                    }
                    start -= c.len_utf8();
                }
                while let Some(c) = char_after(text, start).filter(|c| !c.is_alphanumeric()) {
                    start += c.len_utf8();
                }
            }
            if char_before(text, start).is_some_and(|c| is_word(c) || c == '.') {
                return None;
            }
            let tld = domain.rsplit('.').next()?;
            if tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
                return None;
            }
            if FILE_EXTENSIONS.contains(&tld.to_ascii_lowercase().as_str()) {
                return None;
            }
            if char_after(text, end).is_some_and(|c| is_word(c) || c == '@' || c == '-') {
                return None;
            }
            Some((start, end))
        },
    );
}

// ---------------------------------------------------------------------------------------
// Phone numbers

static E164: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\+[1-9]\d{0,3}(?:[ \-.]?\(0\))?(?:[ \-.]?\(\d{1,4}\))?(?:[ \-.]?\d{1,6}){1,7}")
});

fn detect_e164(text: &str, out: &mut Vec<Entity>) {
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

fn detect_cn_mobile(text: &str, out: &mut Vec<Entity>) {
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

fn detect_nanp(text: &str, out: &mut Vec<Entity>) {
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

fn detect_national_phones(text: &str, out: &mut Vec<Entity>) {
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

fn detect_cards(text: &str, out: &mut Vec<Entity>) {
    // After a card is accepted the scan resumes at its end, so a second card in the same
    // run of digits is found by the next iteration.
    scan(
        text,
        &DIGIT_RUN,
        EntityKind::Card,
        Retry::AfterMatch,
        out,
        card_in_run,
    );
}

fn card_in_run(text: &str, run_start: usize, run_end: usize) -> Option<(usize, usize)> {
    if !numeric_left_ok(text, run_start) {
        return None;
    }
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
    for first in 0..groups.len() {
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
                let (start, end) = (run_start + window_start, run_start + window_end);
                let left_ok = first == 0 || numeric_left_ok(text, start);
                let right_ok = last + 1 < groups.len() || numeric_right_ok(text, end);
                if left_ok && right_ok {
                    best = Some((start, end));
                }
            }
        }
        if best.is_some() {
            return best;
        }
    }
    None
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

fn detect_iban(text: &str, out: &mut Vec<Entity>) {
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

fn detect_cn_id(text: &str, out: &mut Vec<Entity>) {
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

fn detect_ssn(text: &str, out: &mut Vec<Entity>) {
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

// ---------------------------------------------------------------------------------------
// IP addresses

static IPV4: LazyLock<Regex> = LazyLock::new(|| regex(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"));

fn detect_ipv4(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &IPV4,
        EntityKind::Ip,
        Retry::NextChar,
        out,
        |text, start, end| {
            // `v1.2.3.4`, `1.2.3.4.5` and `10.0.0.256` are versions or not addresses at all,
            // and so is `Chrome/120.0.0.0`; `http://10.0.0.1` is an address.
            if char_before(text, start).is_some_and(|c| is_word(c) || c == '.' || c == '-') {
                return None;
            }
            if char_before(text, start) == Some('/')
                && char_before2(text, start).is_some_and(is_word)
            {
                return None;
            }
            // A port (`:8080`) or prefix length (`/24`) may follow; another `.digit` may not.
            let right_ok = match char_after(text, end) {
                None => true,
                Some(c) if is_word(c) => false,
                Some('.') => !char_after2(text, end).is_some_and(|c| c.is_ascii_digit()),
                Some(_) => true,
            };
            if !right_ok {
                return None;
            }
            text[start..end]
                .parse::<Ipv4Addr>()
                .ok()
                .map(|_| (start, end))
        },
    );
}

static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?")
});

fn detect_ipv6(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &IPV6,
        EntityKind::Ip,
        Retry::NextChar,
        out,
        |text, start, end| {
            if char_before(text, start).is_some_and(|c| is_word(c) || c == ':' || c == '.') {
                return None;
            }
            if char_after(text, end).is_some_and(|c| is_word(c) || c == ':')
                || (char_after(text, end) == Some('.')
                    && char_after2(text, end).is_some_and(|c| c.is_ascii_digit()))
            {
                return None;
            }
            let candidate = &text[start..end];
            candidate.parse::<Ipv6Addr>().ok()?;
            // `::`, `::1` and `a::b` style fragments show up in code (`std::io`) and prose far
            // more often than as real addresses.
            let n_groups = candidate
                .split(':')
                .filter(|group| !group.is_empty())
                .count();
            let enough = if candidate.contains("::") {
                n_groups >= 2
            } else {
                n_groups >= 3
            };
            enough.then_some((start, end))
        },
    );
}

// ---------------------------------------------------------------------------------------
// Secrets

// Fixed-shape tokens: AWS access key ids, Google API keys, OpenAI / Anthropic keys,
// GitHub and Stripe tokens, Slack tokens, Charter API keys (`chr_<id>_<secret>`).
static TOKEN_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"(?:AKIA|ASIA)[A-Z0-9]{16}",
        r"|AIza[0-9A-Za-z_\-]{35}",
        r"|sk-[A-Za-z0-9_\-]{20,}",
        r"|gh[pousr]_[A-Za-z0-9]{36,255}",
        r"|github_pat_[A-Za-z0-9_]{22,255}",
        r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
        r"|xox[abposr]-[A-Za-z0-9\-]{10,}",
        r"|chr_[A-Za-z0-9]{4,64}_[A-Za-z0-9_\-]{16,}",
    ))
});

fn detect_token_secrets(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &TOKEN_SECRET,
        EntityKind::Secret,
        Retry::AfterMatch,
        out,
        |text, start, end| {
            if !token_left_ok(text, start) || !token_right_ok(text, end) {
                return None;
            }
            let candidate = &text[start..end];
            if let Some(tail) = candidate.strip_prefix("sk-") {
                // Real keys mix cases and digits; `sk-learn-style-identifiers` do not.
                let mixed = tail.bytes().any(|b| b.is_ascii_digit())
                    && tail.bytes().any(|b| b.is_ascii_uppercase())
                    && tail.bytes().any(|b| b.is_ascii_lowercase());
                if !mixed {
                    return None;
                }
            }
            Some((start, end))
        },
    );
}

static AWS_SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"(?i:aws_?secret_?access_?key|secret_?access_?key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})"#,
    )
});

fn detect_aws_secret_key(text: &str, out: &mut Vec<Entity>) {
    for captures in AWS_SECRET_KEY.captures_iter(text) {
        if let Some(value) = captures.get(1) {
            if token_right_ok(text, value.end()) {
                out.push(Entity {
                    kind: EntityKind::Secret,
                    start: value.start(),
                    end: value.end(),
                });
            }
        }
    }
}

// The header of a JWT is a JSON object, so its base64url form starts with `ey` (`{"`)
// or `ew` (`{` and whitespace).
static JWT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"e[wy][A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*"));

fn detect_jwt(text: &str, out: &mut Vec<Entity>) {
    scan(
        text,
        &JWT,
        EntityKind::Secret,
        Retry::AfterMatch,
        out,
        |text, start, end| {
            if char_before(text, start).is_some_and(|c| is_word(c) || c == '-' || c == '.') {
                return None;
            }
            if char_after(text, end).is_some_and(|c| is_word(c) || c == '-') {
                return None;
            }
            let mut parts = text[start..end].split('.');
            let header = decode_base64url(parts.next()?)?;
            decode_base64url(parts.next()?)?;
            let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
            header.get("alg")?.as_str()?;
            Some((start, end))
        },
    )
}

fn decode_base64url(part: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
}

static PEM_BEGIN: LazyLock<Regex> =
    LazyLock::new(|| regex(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"));
static PEM_END: LazyLock<Regex> =
    LazyLock::new(|| regex(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"));

/// How far to look for the END line of a key block.
const PEM_MAX_LEN: usize = 64 * 1024;

fn detect_private_keys(text: &str, out: &mut Vec<Entity>) {
    let mut at = 0;
    while let Some(begin) = PEM_BEGIN.find_at(text, at) {
        let window_end = floor_boundary(text, begin.end().saturating_add(PEM_MAX_LEN));
        let end = match PEM_END.find(&text[begin.end()..window_end]) {
            Some(end_marker) => begin.end() + end_marker.end(),
            // A truncated block still leaks key material: take the body that follows
            // (base64 lines, also with escaped `\n` as in JSON strings).
            None => {
                let body = &text[begin.end()..];
                let body_len = body
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "+/=\\\r\n".contains(c)))
                    .unwrap_or(body.len());
                begin.end() + body[..body_len].trim_end().len()
            }
        };
        out.push(Entity {
            kind: EntityKind::Secret,
            start: begin.start(),
            end,
        });
        at = end.max(begin.end());
    }
}

fn floor_boundary(text: &str, mut offset: usize) -> usize {
    if offset >= text.len() {
        return text.len();
    }
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}
