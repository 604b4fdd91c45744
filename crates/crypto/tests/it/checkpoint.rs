//! Signed checkpoints: verify, note round trip, and failure on any altered field.

use crypto::merkle::{leaf_hash, root, Checkpoint, CHECKPOINT_ORIGIN};
use crypto::signing::{Signature, SigningKey};
use crypto::CryptoError;

fn sample() -> (SigningKey, Checkpoint) {
    let key = SigningKey::generate();
    let leaves: Vec<_> = (0u8..5).map(|i| leaf_hash(&[i])).collect();
    let checkpoint = Checkpoint::sign(&key, 5, root(&leaves), 1_764_000_000);
    (key, checkpoint)
}

#[test]
fn signed_checkpoint_verifies_and_round_trips_as_note_and_json() {
    let (key, checkpoint) = sample();
    checkpoint.verify(&key.verifying_key()).unwrap();

    let note = checkpoint.to_note();
    assert!(note.starts_with(&format!("{CHECKPOINT_ORIGIN}\n5\n")));
    assert!(note.contains(&format!("\n\n— {} ", key.key_id())));
    let parsed = Checkpoint::from_note(&note).unwrap();
    assert_eq!(parsed, checkpoint);
    parsed.verify(&key.verifying_key()).unwrap();

    let json = serde_json::to_string(&checkpoint).unwrap();
    let parsed: Checkpoint = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, checkpoint);
    parsed.verify(&key.verifying_key()).unwrap();
}

#[test]
fn altered_checkpoint_fails() {
    let (key, checkpoint) = sample();
    let public = key.verifying_key();
    let mut altered = Vec::new();
    altered.push(Checkpoint {
        size: 6,
        ..checkpoint.clone()
    });
    altered.push(Checkpoint {
        size: 4,
        ..checkpoint.clone()
    });
    altered.push(Checkpoint {
        timestamp: checkpoint.timestamp + 1,
        ..checkpoint.clone()
    });
    let mut root = checkpoint.root;
    root[31] ^= 1;
    altered.push(Checkpoint {
        root,
        ..checkpoint.clone()
    });
    let mut signature = checkpoint.signature.to_bytes();
    signature[10] ^= 0x80;
    altered.push(Checkpoint {
        signature: Signature::from_bytes(signature),
        ..checkpoint.clone()
    });
    for checkpoint in altered {
        assert!(matches!(
            checkpoint.verify(&public),
            Err(CryptoError::BadSignature)
        ));
    }
    let other = SigningKey::generate();
    assert!(matches!(
        checkpoint.verify(&other.verifying_key()),
        Err(CryptoError::WrongKey { .. })
    ));
    // A different key claiming the same key id still fails the signature check.
    let forged = Checkpoint {
        key_id: other.key_id(),
        ..checkpoint.clone()
    };
    assert!(forged.verify(&other.verifying_key()).is_err());
}

#[test]
fn malformed_notes_are_refused() {
    let (_, checkpoint) = sample();
    let note = checkpoint.to_note();
    let cases = [
        note.trim_end().to_string(),
        note.replacen(CHECKPOINT_ORIGIN, "other-log/v1", 1),
        note.replacen("\n5\n", "\n05\n", 1),
        note.replacen("\n5\n", "\n+5\n", 1),
        note.replacen("\n5\n", "\n5 \n", 1),
        note.replacen("\n\n— ", "\n— ", 1),
        note.replacen("— ", "-- ", 1),
        format!("{note}extra\n"),
        String::new(),
    ];
    for case in cases {
        assert!(Checkpoint::from_note(&case).is_err(), "accepted {case:?}");
    }
}
