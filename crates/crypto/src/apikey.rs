//! API keys of the form `chr_<id>_<secret>`.
//!
//! The id is public (it names the key in lists and audit entries); the secret is 32
//! random bytes. Only SHA-256 of the secret is stored: the secret has 256 bits of
//! entropy, so a slow password hash would add nothing but latency to every request.
//! Checks compare hashes in constant time.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Secret;

pub const KEY_PREFIX: &str = "chr_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A key as presented by a client, split into its public id and its secret.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    secret: Secret<String>,
}

/// Why a presented key could not even be parsed; deliberately carries no key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("malformed API key: expected chr_<id>_<secret>")]
    Malformed,
}

impl ApiKey {
    /// Mints a new key. Returns the key and the full text to hand to the user once.
    pub fn generate() -> (Self, Secret<String>) {
        let mut rng = rand::rngs::OsRng;
        let mut id = [0u8; ID_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        rng.fill_bytes(&mut id);
        rng.fill_bytes(&mut secret);
        let key = Self {
            id: hex::encode(id),
            secret: Secret::new(hex::encode(secret)),
        };
        let text = Secret::new(format!("{KEY_PREFIX}{}_{}", key.id, key.secret.expose()));
        (key, text)
    }

    /// Parses `chr_<id>_<secret>` with both parts lowercase hex of the right length.
    pub fn parse(text: &str) -> Result<Self, ApiKeyError> {
        let rest = text
            .strip_prefix(KEY_PREFIX)
            .ok_or(ApiKeyError::Malformed)?;
        let (id, secret) = rest.split_once('_').ok_or(ApiKeyError::Malformed)?;
        let is_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !is_hex(id, ID_BYTES * 2) || !is_hex(secret, SECRET_BYTES * 2) {
            return Err(ApiKeyError::Malformed);
        }
        Ok(Self {
            id: id.to_owned(),
            secret: Secret::new(secret.to_owned()),
        })
    }

    /// The SHA-256 of the secret, as stored in the database.
    pub fn secret_hash(&self) -> Vec<u8> {
        Sha256::digest(self.secret.expose().as_bytes()).to_vec()
    }

    /// Constant-time comparison of this key's secret with a stored hash.
    pub fn matches(&self, stored_hash: &[u8]) -> bool {
        self.secret_hash().as_slice().ct_eq(stored_hash).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match_only_their_hash() {
        let (key, text) = ApiKey::generate();
        let parsed = ApiKey::parse(text.expose()).unwrap();
        assert_eq!(parsed.id, key.id);
        assert!(parsed.matches(&key.secret_hash()));
        let (other, _) = ApiKey::generate();
        assert!(!parsed.matches(&other.secret_hash()));
        assert!(!format!("{parsed:?}").contains(key.secret.expose().as_str()));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let (_, text) = ApiKey::generate();
        let good = text.expose();
        for bad in [
            "",
            "chr_",
            "sk-abc",
            &good[..good.len() - 1],
            &good.replace("chr_", "CHR_"),
            &good.to_uppercase(),
            &format!("{good}0"),
        ] {
            assert_eq!(
                ApiKey::parse(bad).unwrap_err(),
                ApiKeyError::Malformed,
                "{bad}"
            );
        }
    }
}
