//! E-mail addresses and IP addresses.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

use super::scan::*;
use crate::pii::{Entity, EntityKind};

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

pub(super) fn detect_email(text: &str, out: &mut Vec<Entity>) {
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

// IP addresses

static IPV4: LazyLock<Regex> = LazyLock::new(|| regex(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"));

pub(super) fn detect_ipv4(text: &str, out: &mut Vec<Entity>) {
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
            if !right_ok || follows_version_word(text, start) {
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

pub(super) fn detect_ipv6(text: &str, out: &mut Vec<Entity>) {
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
            // Real addresses have a long group (`2001`, `fe80`, `ffff`); `1:2:3:4:5:6:7:8`
            // is a ratio or a list.
            let has_long_group = candidate.split([':', '.']).any(|group| group.len() >= 3);
            (enough && has_long_group).then_some((start, end))
        },
    );
}

/// Words that make a dotted quad a version number (`version 2.3.10.1`, `版本号 2.3.10.1`).
const VERSION_WORDS: &[&str] = &["version", "release", "build", "ver.", "版本", "バージョン"];

fn follows_version_word(text: &str, start: usize) -> bool {
    // Look back a few chars only: the word must label this number, not one before it.
    let from = text[..start]
        .char_indices()
        .rev()
        .nth(15)
        .map_or(0, |(idx, _)| idx);
    let before = text[from..start].to_lowercase();
    let before = before.trim_end_matches([' ', ':', '号', '：']);
    VERSION_WORDS.iter().any(|word| before.ends_with(word))
}
