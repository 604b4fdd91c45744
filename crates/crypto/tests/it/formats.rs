//! The documented byte formats, checked against an independent implementation
//! written here from the docs (`crypto::envelope` module and `WrappedKey`). These
//! pin the formats as a contract, and reach checks that the library's own sealer can
//! never trigger (a blob whose AAD digest differs from its plaintext, a missing
//! last-segment flag).

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use crypto::envelope::{
    open, seal, BlobContext, DataKey, MasterKey, MasterKeyring, WrappedKey, SEGMENT_BYTES,
};
use crypto::CryptoError;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const MASTER: [u8; 32] = [7; 32];
const DATA_KEY: [u8; 32] = [0x42; 32];

fn ring() -> MasterKeyring {
    MasterKeyring::new(MasterKey::from_bytes(5, &MASTER).unwrap())
}

fn wrap_aad(version: u32, tenant: &str) -> Vec<u8> {
    [
        &b"charter/wrapped-data-key/v1\0"[..],
        &version.to_be_bytes(),
        &(tenant.len() as u64).to_be_bytes(),
        tenant.as_bytes(),
    ]
    .concat()
}

/// A wrapped key built by hand from the documented layout.
fn hand_wrapped(version: u32, aad_tenant: &str) -> WrappedKey {
    let nonce = [3u8; 12];
    let sealed = Aes256Gcm::new(&MASTER.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &DATA_KEY,
                aad: &wrap_aad(version, aad_tenant),
            },
        )
        .unwrap();
    let bytes = [&[1u8][..], &version.to_be_bytes(), &nonce, &sealed].concat();
    WrappedKey::from_bytes(&bytes).unwrap()
}

fn blob_key(data_key: &[u8; 32], salt: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(data_key).unwrap();
    mac.update(b"charter/blob-key/v1\0");
    mac.update(salt);
    mac.finalize().into_bytes().into()
}

fn blob_aad(tenant: &str, digest: &[u8; 32], header: &[u8], last: bool) -> Vec<u8> {
    [
        &b"charter/blob/v1\0"[..],
        &(tenant.len() as u64).to_be_bytes(),
        tenant.as_bytes(),
        digest,
        header,
        &[u8::from(last)],
    ]
    .concat()
}

/// Seals by hand; `last_flag` lets a test omit the flag on the final segment.
fn hand_seal(tenant: &str, aad_digest: &[u8; 32], plaintext: &[u8], last_flag: bool) -> Vec<u8> {
    let header: Vec<u8> = [&[1u8][..], &[0xa5; 24], &[0x5a; 8]].concat();
    let cipher = Aes256Gcm::new(&blob_key(&DATA_KEY, &header[1..25]).into());
    let mut out = header.clone();
    let segments: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[]]
    } else {
        plaintext.chunks(SEGMENT_BYTES).collect()
    };
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len() && last_flag;
        let nonce = [&header[25..33], &(i as u32).to_be_bytes()[..]].concat();
        let aad = blob_aad(tenant, aad_digest, &header, last);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: segment,
                    aad: &aad,
                },
            )
            .unwrap();
        out.extend_from_slice(&sealed);
    }
    out
}

fn hand_open(tenant: &str, digest: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
    let (header, body) = sealed.split_at(33);
    let cipher = Aes256Gcm::new(&blob_key(&DATA_KEY, &header[1..25]).into());
    let chunks: Vec<&[u8]> = body.chunks(SEGMENT_BYTES + 16).collect();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let nonce = [&header[25..33], &(i as u32).to_be_bytes()[..]].concat();
        let aad = blob_aad(tenant, digest, header, i + 1 == chunks.len());
        out.extend(
            cipher
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: chunk,
                        aad: &aad,
                    },
                )
                .ok()?,
        );
    }
    Some(out)
}

fn plaintext() -> Vec<u8> {
    (0..2 * SEGMENT_BYTES + 99)
        .map(|i| (i * 7 % 251) as u8)
        .collect()
}

#[test]
fn hand_wrapped_key_unwraps_only_for_its_tenant() {
    let data_key = DataKey::unwrap(&ring(), "acme", &hand_wrapped(5, "acme")).unwrap();
    // The unwrapped key is DATA_KEY: it opens a hand-sealed blob.
    let text = plaintext();
    let digest: [u8; 32] = Sha256::digest(&text).into();
    let sealed = hand_seal("acme", &digest, &text, true);
    assert_eq!(
        open(&data_key, &BlobContext::new("acme", digest), &sealed).unwrap(),
        text
    );

    let other = hand_wrapped(5, "acme2");
    assert!(matches!(
        DataKey::unwrap(&ring(), "acme", &other),
        Err(CryptoError::Integrity)
    ));
}

#[test]
fn library_output_matches_the_documented_layout() {
    let data_key = DataKey::unwrap(&ring(), "acme", &hand_wrapped(5, "acme")).unwrap();
    // A key the library wraps decrypts by hand to the same key.
    let wrapped = data_key.wrap(&ring(), "acme").to_bytes();
    let unwrapped = Aes256Gcm::new(&MASTER.into())
        .decrypt(
            Nonce::from_slice(&wrapped[5..17]),
            Payload {
                msg: &wrapped[17..],
                aad: &wrap_aad(5, "acme"),
            },
        )
        .unwrap();
    assert_eq!(unwrapped, DATA_KEY);

    // A blob the library seals opens by hand.
    let text = plaintext();
    let context = BlobContext::for_plaintext("acme", &text);
    let sealed = seal(&data_key, &context, &text).unwrap();
    assert_eq!(hand_open("acme", context.digest(), &sealed).unwrap(), text);
    let empty = seal(&data_key, &BlobContext::for_plaintext("acme", b""), b"").unwrap();
    assert_eq!(empty.len(), 33 + 16);
}

#[test]
fn opener_checks_what_only_a_rogue_sealer_could_produce() {
    let data_key = DataKey::unwrap(&ring(), "acme", &hand_wrapped(5, "acme")).unwrap();
    let text = plaintext();
    let digest: [u8; 32] = Sha256::digest(&text).into();
    let context = BlobContext::new("acme", digest);

    // Authentic segments but no final flag: a stream that was cut, not finished.
    let unfinished = hand_seal("acme", &digest, &text, false);
    assert!(matches!(
        open(&data_key, &context, &unfinished),
        Err(CryptoError::Integrity)
    ));

    // Sealed with the right digest in the AAD over different plaintext.
    let mut other = text.clone();
    other[5] ^= 1;
    let lying = hand_seal("acme", &digest, &other, true);
    assert!(matches!(
        open(&data_key, &context, &lying),
        Err(CryptoError::Integrity)
    ));
}
