//! Secrets: cloud and API keys, JWTs and private-key blocks.

use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;

use super::scan::*;
use crate::pii::{Entity, EntityKind};

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

pub(super) fn detect_token_secrets(text: &str, out: &mut Vec<Entity>) {
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

pub(super) fn detect_aws_secret_key(text: &str, out: &mut Vec<Entity>) {
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

pub(super) fn detect_jwt(text: &str, out: &mut Vec<Entity>) {
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

pub(super) fn detect_private_keys(text: &str, out: &mut Vec<Entity>) {
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
