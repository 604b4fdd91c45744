//! Sealed records: round trips, and every way a record can be moved or altered fails
//! with `Integrity`; keyed tags are stable per key and differ across keys and labels.

use crypto::envelope::{keyed_tag, open_record, seal_record, DataKey, SEALED_RECORD_OVERHEAD};
use crypto::CryptoError;

const VALUE: &[u8] = b"{\"<EMAIL_1>\":\"alice@example.com\"}";

fn assert_integrity(result: Result<zeroize::Zeroizing<Vec<u8>>, CryptoError>, what: &str) {
    match result {
        Err(CryptoError::Integrity) => {}
        Err(other) => panic!("{what}: expected Integrity, got {other:?}"),
        Ok(_) => panic!("{what}: opened"),
    }
}

#[test]
fn records_round_trip_and_hide_their_plaintext() {
    let key = DataKey::generate();
    let sealed = seal_record(&key, "acme", "pii-vault/1", VALUE);
    assert_eq!(sealed.len(), VALUE.len() + SEALED_RECORD_OVERHEAD);
    assert!(!sealed.windows(5).any(|w| w == b"alice"));
    let opened = open_record(&key, "acme", "pii-vault/1", &sealed).unwrap();
    assert_eq!(opened.as_slice(), VALUE);
    // Two seals of the same value differ (fresh salt and nonce).
    assert_ne!(sealed, seal_record(&key, "acme", "pii-vault/1", VALUE));
    let empty = seal_record(&key, "acme", "c", b"");
    assert!(open_record(&key, "acme", "c", &empty).unwrap().is_empty());
}

#[test]
fn moved_or_altered_records_fail() {
    let key = DataKey::generate();
    let sealed = seal_record(&key, "acme", "pii-vault/1", VALUE);
    assert_integrity(
        open_record(&key, "acme", "pii-vault/2", &sealed),
        "other context",
    );
    assert_integrity(
        open_record(&key, "globex", "pii-vault/1", &sealed),
        "other tenant",
    );
    assert_integrity(
        open_record(&DataKey::generate(), "acme", "pii-vault/1", &sealed),
        "other key",
    );
    for index in [0, 1, 30, sealed.len() / 2, sealed.len() - 1] {
        let mut flipped = sealed.clone();
        flipped[index] ^= 0x01;
        assert_integrity(
            open_record(&key, "acme", "pii-vault/1", &flipped),
            &format!("bit flipped at {index}"),
        );
    }
    for len in [0, 10, SEALED_RECORD_OVERHEAD - 1, sealed.len() - 1] {
        assert_integrity(
            open_record(&key, "acme", "pii-vault/1", &sealed[..len]),
            &format!("truncated to {len}"),
        );
    }
    // The tenant/context boundary is length-prefixed: shifting a byte across fails.
    let shifted = seal_record(&key, "acme", "x/1", VALUE);
    assert_integrity(
        open_record(&key, "acmex", "/1", &shifted),
        "shifted boundary",
    );
}

#[test]
fn keyed_tags_are_stable_and_keyed() {
    let key = DataKey::generate();
    let tag = keyed_tag(&key, "subject", b"user-42");
    assert_eq!(tag, keyed_tag(&key, "subject", b"user-42"));
    assert_ne!(tag, keyed_tag(&key, "subject", b"user-43"));
    assert_ne!(tag, keyed_tag(&key, "other", b"user-42"));
    assert_ne!(tag, keyed_tag(&DataKey::generate(), "subject", b"user-42"));
}
