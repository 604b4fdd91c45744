//! `Digest`: the SHA-256 of a blob's content, the one address of a blob.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A SHA-256 as 64 lowercase hex characters; anything else is refused when parsing, so a
/// `Digest` is always safe as a file name.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// A string that is not 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SHA-256 digest '{0}': expected 64 lowercase hex characters")]
pub struct DigestError(pub String);

impl Digest {
    /// Parses strictly `^[0-9a-f]{64}$`.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let valid =
            text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid {
            Ok(Digest(text.to_owned()))
        } else {
            // Cut what is echoed back: the text may be large or hostile.
            Err(DigestError(text.chars().take(80).collect()))
        }
    }

    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Digest {
        Digest(hex::encode(hasher.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(value: String) -> Result<Self, DigestError> {
        Digest::parse(&value)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(value: &str) -> Result<Self, DigestError> {
        Digest::parse(value)
    }
}

impl From<Digest> for String {
    fn from(value: Digest) -> String {
        value.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_strictly() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(Digest::of_bytes(b"").as_str(), empty);
        assert!(Digest::parse(empty).is_ok());
        for bad in [
            "",
            &empty[..63],
            &format!("{empty}0"),
            &empty.to_uppercase(),
            "../../../../etc/passwd",
            &format!("{}g", &empty[..63]),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }
}
