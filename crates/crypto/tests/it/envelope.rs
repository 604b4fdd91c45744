//! Envelope encryption: round trips, every kind of tampering → `Integrity`, nonce
//! uniqueness, wrapping and master key rotation.

use std::collections::HashSet;
use std::io::{Read, Write};

use crypto::envelope::{
    open, open_stream, rewrap, seal, seal_stream, sealed_len, should_rotate, BlobContext, DataKey,
    MasterKey, MasterKeyring, Opener, Sealer, WrappedKey, HEADER_BYTES, KEY_SALT_BYTES,
    MAX_USES_PER_KEY, SEGMENT_BYTES, TAG_BYTES, WRAPPED_KEY_BYTES,
};
use crypto::CryptoError;

const SEALED_SEGMENT: usize = SEGMENT_BYTES + TAG_BYTES;

/// Deterministic, non-repeating test data.
fn data(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn make_sealed(len: usize) -> (DataKey, BlobContext, Vec<u8>, Vec<u8>) {
    let key = DataKey::generate();
    let plaintext = data(len);
    let context = BlobContext::for_plaintext("acme", &plaintext);
    let sealed = seal(&key, &context, &plaintext).unwrap();
    (key, context, plaintext, sealed)
}

fn assert_integrity(result: Result<Vec<u8>, CryptoError>, what: &str) {
    match result {
        Err(CryptoError::Integrity) => {}
        Err(other) => panic!("{what}: expected Integrity, got {other:?}"),
        Ok(plaintext) => panic!("{what}: opened to {} bytes", plaintext.len()),
    }
}

#[test]
fn round_trips_across_segment_boundaries() {
    let sizes = [
        0,
        1,
        100,
        SEGMENT_BYTES - 1,
        SEGMENT_BYTES,
        SEGMENT_BYTES + 1,
        3 * SEGMENT_BYTES,
        1 << 20,
        (1 << 20) + 12_345,
    ];
    for len in sizes {
        let (key, context, plaintext, sealed) = make_sealed(len);
        assert_eq!(sealed.len() as u64, sealed_len(len as u64), "len {len}");
        assert_eq!(sealed[0], 1, "format byte");
        assert_eq!(
            open(&key, &context, &sealed).unwrap(),
            plaintext,
            "len {len}"
        );
        // No plaintext run of 32 bytes survives in the sealed form.
        if len >= 64 {
            let probe = &plaintext[len / 2..len / 2 + 32];
            assert!(
                !sealed.windows(32).any(|w| w == probe),
                "plaintext leaked, len {len}"
            );
        }
    }
}

/// Writes and reads in awkward piece sizes, as a network or file stream would.
#[test]
fn streaming_with_odd_piece_sizes() {
    let key = DataKey::generate();
    let plaintext = data(5 * SEGMENT_BYTES + 777);
    let context = BlobContext::for_plaintext("acme", &plaintext);
    let mut sealer = Sealer::new(&key, &context, Vec::new()).unwrap();
    for piece in plaintext.chunks(9_999) {
        sealer.write_all(piece).unwrap();
        sealer.flush().unwrap();
    }
    let sealed = sealer.finish().unwrap();
    assert_eq!(open(&key, &context, &sealed).unwrap(), plaintext);

    let mut opener = Opener::new(&key, &context, &sealed[..]).unwrap();
    let mut out = Vec::new();
    let mut piece = [0u8; 7_001];
    loop {
        let n = opener.read(&mut piece).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&piece[..n]);
    }
    assert_eq!(out, plaintext);

    let (sealed2, n) = seal_stream(&key, &context, &plaintext[..], Vec::new()).unwrap();
    assert_eq!(n, plaintext.len() as u64);
    let (opened, n) = open_stream(&key, &context, &sealed2[..], Vec::new()).unwrap();
    assert_eq!((opened, n), (plaintext.clone(), plaintext.len() as u64));
}

#[test]
fn every_bit_flip_of_a_small_blob_fails() {
    let (key, context, _, sealed) = make_sealed(300);
    for byte in 0..sealed.len() {
        for bit in 0..8 {
            let mut tampered = sealed.clone();
            tampered[byte] ^= 1 << bit;
            assert_integrity(
                open(&key, &context, &tampered),
                &format!("byte {byte} bit {bit}"),
            );
        }
    }
}

#[test]
fn bit_flips_across_a_multi_segment_blob_fail() {
    let (key, context, _, sealed) = make_sealed(4 * SEGMENT_BYTES + 1000);
    let mut positions: Vec<usize> = (0..HEADER_BYTES).collect();
    for segment in 0..5 {
        let start = HEADER_BYTES + segment * SEALED_SEGMENT;
        let end = (start + SEALED_SEGMENT).min(sealed.len());
        positions.extend([
            start,
            start + 1,
            (start + 4096).min(end - 1),
            end - TAG_BYTES - 1,
            end - TAG_BYTES,
            end - 1,
        ]);
    }
    positions.extend((0..50).map(|i| (i * 104_729) % sealed.len()));
    for position in positions {
        let mut tampered = sealed.clone();
        tampered[position] ^= 0x20;
        assert_integrity(open(&key, &context, &tampered), &format!("byte {position}"));
    }
}

#[test]
fn truncation_fails_at_every_segment_boundary_and_inside() {
    let (key, context, _, sealed) = make_sealed(3 * SEGMENT_BYTES + 500);
    let mut cuts = vec![
        0,
        1,
        HEADER_BYTES - 1,
        HEADER_BYTES,
        HEADER_BYTES + 15,
        sealed.len() - 1,
    ];
    for segment in 1..=3 {
        let boundary = HEADER_BYTES + segment * SEALED_SEGMENT;
        cuts.extend([boundary - 1, boundary, boundary + 1, boundary - TAG_BYTES]);
    }
    for cut in cuts {
        assert_integrity(
            open(&key, &context, &sealed[..cut]),
            &format!("cut at {cut}"),
        );
    }

    // A blob whose plaintext is an exact number of segments, cut to fewer segments.
    let (key, context, _, sealed) = make_sealed(4 * SEGMENT_BYTES);
    for segments in 1..4 {
        let cut = HEADER_BYTES + segments * SEALED_SEGMENT;
        assert_integrity(
            open(&key, &context, &sealed[..cut]),
            &format!("{segments} segments"),
        );
    }
}

#[test]
fn reordered_duplicated_and_appended_segments_fail() {
    let (key, context, _, sealed) = make_sealed(3 * SEGMENT_BYTES + 500);
    let header = &sealed[..HEADER_BYTES];
    let segments: Vec<&[u8]> = sealed[HEADER_BYTES..].chunks(SEALED_SEGMENT).collect();
    assert_eq!(segments.len(), 4);
    let assemble = |order: &[usize]| -> Vec<u8> {
        let mut out = header.to_vec();
        order
            .iter()
            .for_each(|&i| out.extend_from_slice(segments[i]));
        out
    };
    assert!(open(&key, &context, &assemble(&[0, 1, 2, 3])).is_ok());
    let cases: [(&str, &[usize]); 6] = [
        ("swap 1 and 2", &[0, 2, 1, 3]),
        ("swap 0 and 1", &[1, 0, 2, 3]),
        ("duplicate 1", &[0, 1, 1, 2, 3]),
        ("drop 1", &[0, 2, 3]),
        ("final segment twice", &[0, 1, 2, 3, 3]),
        ("segment 0 appended", &[0, 1, 2, 3, 0]),
    ];
    for (what, order) in cases {
        assert_integrity(open(&key, &context, &assemble(order)), what);
    }
    for extra in [
        &[0u8][..],
        &[0u8; 16][..],
        &sealed[HEADER_BYTES..HEADER_BYTES + 100],
    ] {
        let appended = [&sealed[..], extra].concat();
        assert_integrity(open(&key, &context, &appended), "appended bytes");
    }
    // Splicing a segment from another blob under the same key fails too.
    let other_plaintext = data(3 * SEGMENT_BYTES + 500);
    let other = seal(&key, &context, &other_plaintext).unwrap();
    let mut spliced = sealed.clone();
    let start = HEADER_BYTES + SEALED_SEGMENT;
    spliced[start..start + SEALED_SEGMENT].copy_from_slice(&other[start..start + SEALED_SEGMENT]);
    assert_integrity(open(&key, &context, &spliced), "segment from another blob");
}

#[test]
fn wrong_tenant_digest_or_key_fails() {
    let (key, context, plaintext, sealed) = make_sealed(2 * SEGMENT_BYTES + 3);
    let other_tenant = BlobContext::new("acme2", *context.digest());
    assert_integrity(open(&key, &other_tenant, &sealed), "other tenant");
    let prefix_tenant = BlobContext::new("acm", *context.digest());
    assert_integrity(open(&key, &prefix_tenant, &sealed), "tenant prefix");
    let mut digest = *context.digest();
    digest[0] ^= 1;
    assert_integrity(
        open(&key, &BlobContext::new("acme", digest), &sealed),
        "other digest",
    );
    let swapped = BlobContext::for_plaintext("acme", b"another blob");
    assert_integrity(open(&key, &swapped, &sealed), "swapped identity");
    assert_integrity(
        open(&DataKey::generate(), &context, &sealed),
        "other data key",
    );
    assert_eq!(open(&key, &context, &sealed).unwrap(), plaintext);

    let by_hex = BlobContext::from_hex_digest("acme", &hex::encode(context.digest())).unwrap();
    assert_eq!(by_hex, context);
    assert!(BlobContext::from_hex_digest("acme", "abc").is_err());
}

#[test]
fn sealing_checks_the_declared_digest() {
    let key = DataKey::generate();
    let context = BlobContext::for_plaintext("acme", b"declared");
    assert!(matches!(
        seal(&key, &context, b"actual"),
        Err(CryptoError::DigestMismatch)
    ));
    // Without finish the output has no final segment and never opens.
    let mut sealer = Sealer::new(&key, &context, Vec::new()).unwrap();
    sealer.write_all(b"declared").unwrap();
    drop(sealer);
    let mut partial = Vec::new();
    let mut sealer = Sealer::new(&key, &context, &mut partial).unwrap();
    sealer.write_all(&data(SEGMENT_BYTES + 10)).unwrap();
    drop(sealer);
    assert_integrity(open(&key, &context, &partial), "unfinished sealer");
}

#[test]
fn opener_errors_are_integrity_and_sticky() {
    let (key, context, plaintext, mut sealed) = make_sealed(3 * SEGMENT_BYTES);
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    let mut opener = Opener::new(&key, &context, &sealed[..]).unwrap();
    let mut out = Vec::new();
    let err = opener.read_to_end(&mut out).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(matches!(CryptoError::from(err), CryptoError::Integrity));
    // The authentic segments before the damage were released, the final one was not.
    assert_eq!(out.len(), 2 * SEGMENT_BYTES);
    assert_eq!(out[..], plaintext[..2 * SEGMENT_BYTES]);
    assert!(opener.read(&mut [0u8; 16]).is_err());

    assert!(matches!(
        Opener::new(&key, &context, &sealed[..10]),
        Err(CryptoError::Integrity)
    ));
    let mut wrong_format = sealed.clone();
    wrong_format[0] = 2;
    assert!(matches!(
        Opener::new(&key, &context, &wrong_format[..]),
        Err(CryptoError::Integrity)
    ));
}

/// 10^5 seals under one data key: no (per-blob key salt, nonce prefix) repeats, and
/// neither half repeats on its own.
#[test]
fn no_nonce_repeats_over_100k_seals() {
    let key = DataKey::generate();
    let context = BlobContext::for_plaintext("acme", b"x");
    let mut headers = HashSet::new();
    let mut salts = HashSet::new();
    let mut prefixes = HashSet::new();
    for _ in 0..100_000 {
        let sealed = seal(&key, &context, b"x").unwrap();
        assert!(headers.insert(sealed[1..HEADER_BYTES].to_vec()));
        assert!(salts.insert(sealed[1..1 + KEY_SALT_BYTES].to_vec()));
        assert!(prefixes.insert(sealed[1 + KEY_SALT_BYTES..HEADER_BYTES].to_vec()));
    }
    assert_eq!(headers.len(), 100_000);
}

#[test]
fn rotation_threshold() {
    assert_eq!(MAX_USES_PER_KEY, 1 << 32);
    assert!(!should_rotate(0));
    assert!(!should_rotate((1 << 32) - 1));
    assert!(should_rotate(1 << 32));
    assert!(should_rotate(u64::MAX));
}

fn ring_with(version: u32, byte: u8) -> MasterKeyring {
    MasterKeyring::new(MasterKey::from_bytes(version, &[byte; 32]).unwrap())
}

#[test]
fn wrapped_keys_round_trip_and_bind_tenant() {
    let ring = ring_with(1, 7);
    let data_key = DataKey::generate();
    let wrapped = data_key.wrap(&ring, "acme");
    assert_eq!(wrapped.master_version(), 1);
    assert!(wrapped.is_current(&ring));
    let bytes = wrapped.to_bytes();
    assert_eq!(bytes.len(), WRAPPED_KEY_BYTES);
    assert_eq!(bytes[0], 1);
    assert_eq!(&bytes[1..5], &1u32.to_be_bytes());
    assert_eq!(WrappedKey::from_bytes(&bytes).unwrap(), wrapped);
    assert_eq!(WrappedKey::from_hex(&wrapped.to_hex()).unwrap(), wrapped);
    assert!(!format!("{wrapped:?} {data_key:?}").contains(&hex::encode(&bytes[17..49])));

    // The unwrapped key opens what the original sealed.
    let context = BlobContext::for_plaintext("acme", b"weights");
    let blob = seal(&data_key, &context, b"weights").unwrap();
    let unwrapped = DataKey::unwrap(&ring, "acme", &wrapped).unwrap();
    assert_eq!(open(&unwrapped, &context, &blob).unwrap(), b"weights");

    assert!(matches!(
        DataKey::unwrap(&ring, "acme2", &wrapped),
        Err(CryptoError::Integrity)
    ));
    assert!(matches!(
        DataKey::unwrap(&ring_with(1, 8), "acme", &wrapped),
        Err(CryptoError::Integrity)
    ));
    for position in 5..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[position] ^= 4;
        let tampered = WrappedKey::from_bytes(&tampered).unwrap();
        assert!(
            matches!(
                DataKey::unwrap(&ring, "acme", &tampered),
                Err(CryptoError::Integrity)
            ),
            "byte {position}"
        );
    }
    for bad in [
        &bytes[..64],
        &[&bytes[..], &[0]].concat()[..],
        &[&[2u8][..], &bytes[1..]].concat()[..],
    ] {
        assert!(WrappedKey::from_bytes(bad).is_err());
    }
    assert!(WrappedKey::from_hex("zz").is_err());
}

#[test]
fn rewrap_under_new_master_keeps_blobs_readable() {
    let mut ring = ring_with(1, 7);
    let data_key = DataKey::generate();
    let wrapped_v1 = data_key.wrap(&ring, "acme");
    let plaintext = data(SEGMENT_BYTES * 2 + 5);
    let context = BlobContext::for_plaintext("acme", &plaintext);
    let blob = seal(&data_key, &context, &plaintext).unwrap();

    ring.add(MasterKey::from_bytes(2, &[9; 32]).unwrap())
        .unwrap();
    ring.set_active(2).unwrap();
    assert!(!wrapped_v1.is_current(&ring));
    let wrapped_v2 = rewrap(&ring, "acme", &wrapped_v1).unwrap();
    assert_eq!(wrapped_v2.master_version(), 2);
    assert!(wrapped_v2.is_current(&ring));

    // After retiring version 1, the rewrapped key still opens the untouched blob.
    ring.remove(1).unwrap();
    let unwrapped = DataKey::unwrap(&ring, "acme", &wrapped_v2).unwrap();
    assert_eq!(open(&unwrapped, &context, &blob).unwrap(), plaintext);
    assert!(matches!(
        DataKey::unwrap(&ring, "acme", &wrapped_v1),
        Err(CryptoError::UnknownMasterKey(1))
    ));

    // The old master key cannot unwrap the rewrapped key: not as version 1 (the
    // version is authenticated) and not relabelled as version 2.
    let old_only = ring_with(1, 7);
    assert!(matches!(
        DataKey::unwrap(&old_only, "acme", &wrapped_v2),
        Err(CryptoError::UnknownMasterKey(2))
    ));
    let old_as_v2 = ring_with(2, 7);
    assert!(matches!(
        DataKey::unwrap(&old_as_v2, "acme", &wrapped_v2),
        Err(CryptoError::Integrity)
    ));
    let mut relabelled = wrapped_v2.to_bytes();
    relabelled[1..5].copy_from_slice(&1u32.to_be_bytes());
    let relabelled = WrappedKey::from_bytes(&relabelled).unwrap();
    assert!(matches!(
        DataKey::unwrap(&old_only, "acme", &relabelled),
        Err(CryptoError::Integrity)
    ));
}
