//! Sealed blobs: the segmented (STREAM-style) AES-256-GCM format, written through
//! [`Sealer`] and read through [`Opener`] so large files never sit in memory whole.

use std::io::{self, Read, Write};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::datakey::DataKey;
use crate::CryptoError;

/// First byte of every sealed blob.
pub const SEALED_FORMAT_V1: u8 = 1;
/// Plaintext bytes per segment; every segment but the last is exactly this long.
pub const SEGMENT_BYTES: usize = 64 * 1024;
/// GCM tag appended to each segment.
pub const TAG_BYTES: usize = 16;
/// Random salt from which the per-blob key is derived.
pub const KEY_SALT_BYTES: usize = 24;
/// Random per-blob prefix of every segment nonce.
pub const NONCE_PREFIX_BYTES: usize = 8;
/// Header: format ‖ key salt ‖ nonce prefix.
pub const HEADER_BYTES: usize = 1 + KEY_SALT_BYTES + NONCE_PREFIX_BYTES;

const BLOB_KEY_LABEL: &[u8] = b"charter/blob-key/v1\0";
const BLOB_AAD_LABEL: &[u8] = b"charter/blob/v1\0";
const SEALED_SEGMENT_BYTES: usize = SEGMENT_BYTES + TAG_BYTES;

/// What a sealed blob is bound to: its tenant and its identity, the SHA-256 of its
/// plaintext. Opening with any other tenant or digest fails, so a blob copied into
/// another tenant's store, or substituted for another blob of the same tenant, is
/// rejected rather than served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobContext {
    tenant: String,
    digest: [u8; 32],
}

impl BlobContext {
    pub fn new(tenant: &str, digest: [u8; 32]) -> Self {
        Self {
            tenant: tenant.to_owned(),
            digest,
        }
    }

    /// The context for `plaintext`, hashing it.
    pub fn for_plaintext(tenant: &str, plaintext: &[u8]) -> Self {
        Self::new(tenant, Sha256::digest(plaintext).into())
    }

    /// The context for a digest given as 64 hex digits (as manifests store it).
    pub fn from_hex_digest(tenant: &str, digest_hex: &str) -> Result<Self, CryptoError> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(digest_hex, &mut digest)
            .map_err(|_| CryptoError::Malformed("SHA-256 digest"))?;
        Ok(Self::new(tenant, digest))
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// AAD shared by all segments of one blob; the last-segment flag is appended.
    fn aad_prefix(&self, header: &[u8; HEADER_BYTES]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(BLOB_AAD_LABEL.len() + 8 + self.tenant.len() + 80);
        aad.extend_from_slice(BLOB_AAD_LABEL);
        aad.extend_from_slice(&(self.tenant.len() as u64).to_be_bytes());
        aad.extend_from_slice(self.tenant.as_bytes());
        aad.extend_from_slice(&self.digest);
        aad.extend_from_slice(header);
        aad
    }
}

/// Size of the sealed form of `plaintext_len` bytes.
pub fn sealed_len(plaintext_len: u64) -> u64 {
    let segments = plaintext_len.div_ceil(SEGMENT_BYTES as u64).max(1);
    HEADER_BYTES as u64 + plaintext_len + segments * TAG_BYTES as u64
}

/// Seals `plaintext` in memory. Fails with [`CryptoError::DigestMismatch`] if its
/// SHA-256 is not `context`'s digest.
pub fn seal(
    key: &DataKey,
    context: &BlobContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let capacity = usize::try_from(sealed_len(plaintext.len() as u64)).unwrap_or(0);
    let mut sealer = Sealer::new(key, context, Vec::with_capacity(capacity))?;
    sealer.write_all(plaintext)?;
    sealer.finish()
}

/// Opens a blob sealed for `context` in memory. Any alteration, truncation,
/// extension, other tenant, other digest or other key → [`CryptoError::Integrity`].
pub fn open(key: &DataKey, context: &BlobContext, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut opener = Opener::new(key, context, sealed)?;
    let mut plaintext = Vec::with_capacity(sealed.len());
    opener.read_to_end(&mut plaintext)?;
    Ok(plaintext)
}

/// Streams `reader` into `writer` sealed; returns the plaintext length.
pub fn seal_stream<R: Read, W: Write>(
    key: &DataKey,
    context: &BlobContext,
    mut reader: R,
    writer: W,
) -> Result<(W, u64), CryptoError> {
    let mut sealer = Sealer::new(key, context, writer)?;
    let n_bytes = io::copy(&mut reader, &mut sealer)?;
    Ok((sealer.finish()?, n_bytes))
}

/// Streams a sealed `reader` into `writer` as plaintext; returns the plaintext
/// length. On error `writer` may hold a verified prefix of the plaintext and must be
/// discarded: only `Ok` means the whole blob was authentic and complete.
pub fn open_stream<R: Read, W: Write>(
    key: &DataKey,
    context: &BlobContext,
    reader: R,
    mut writer: W,
) -> Result<(W, u64), CryptoError> {
    let mut opener = Opener::new(key, context, reader)?;
    let n_bytes = io::copy(&mut opener, &mut writer)?;
    Ok((writer, n_bytes))
}

/// Per-blob AEAD state shared by [`Sealer`] and [`Opener`].
struct SegmentCipher {
    cipher: Aes256Gcm,
    nonce_prefix: [u8; NONCE_PREFIX_BYTES],
    aad: Vec<u8>,
    counter: u32,
}

impl SegmentCipher {
    fn new(key: &DataKey, context: &BlobContext, header: &[u8; HEADER_BYTES]) -> Self {
        let salt = &header[1..1 + KEY_SALT_BYTES];
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.key_bytes())
            .expect("HMAC takes keys of any length: this is a bug");
        mac.update(BLOB_KEY_LABEL);
        mac.update(salt);
        let blob_key = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        let mut nonce_prefix = [0u8; NONCE_PREFIX_BYTES];
        nonce_prefix.copy_from_slice(&header[1 + KEY_SALT_BYTES..]);
        let mut aad = context.aad_prefix(header);
        aad.push(0);
        Self {
            cipher: Aes256Gcm::new(blob_key.as_ref().into()),
            nonce_prefix,
            aad,
            counter: 0,
        }
    }

    fn nonce(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[..NONCE_PREFIX_BYTES].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_BYTES..].copy_from_slice(&self.counter.to_be_bytes());
        nonce
    }

    fn set_last(&mut self, last: bool) {
        let flag = self
            .aad
            .last_mut()
            .expect("AAD ends with the flag: this is a bug");
        *flag = u8::from(last);
    }

    /// Moves to the next segment; a non-final segment may not use the last counter
    /// value, so the final one always has a nonce of its own.
    fn advance(&mut self) -> Result<(), CryptoError> {
        self.counter = self.counter.checked_add(1).ok_or(CryptoError::TooLarge)?;
        Ok(())
    }
}

/// Seals a plaintext stream written to it into `W`. Call [`Sealer::finish`]: a
/// sealer dropped without it leaves a blob with no final segment, which will never
/// open (truncation is detected, not silently accepted).
pub struct Sealer<W: Write> {
    inner: W,
    cipher: SegmentCipher,
    buffer: Zeroizing<Vec<u8>>,
    hasher: Sha256,
    expected_digest: [u8; 32],
}

impl<W: Write> Sealer<W> {
    /// Writes the header to `inner` and starts a blob bound to `context`.
    pub fn new(key: &DataKey, context: &BlobContext, mut inner: W) -> Result<Self, CryptoError> {
        let mut header = [0u8; HEADER_BYTES];
        header[0] = SEALED_FORMAT_V1;
        rand::rngs::OsRng.fill_bytes(&mut header[1..]);
        inner.write_all(&header)?;
        Ok(Self {
            inner,
            cipher: SegmentCipher::new(key, context, &header),
            buffer: Zeroizing::new(Vec::with_capacity(SEGMENT_BYTES)),
            hasher: Sha256::new(),
            expected_digest: context.digest,
        })
    }

    /// Seals the buffered tail as the final segment, checks the plaintext digest and
    /// returns the inner writer (flushed). On [`CryptoError::DigestMismatch`] no
    /// final segment is written, so the partial output can never be opened.
    pub fn finish(mut self) -> Result<W, CryptoError> {
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        if !bool::from(digest.ct_eq(&self.expected_digest)) {
            return Err(CryptoError::DigestMismatch);
        }
        self.seal_segment(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    fn seal_segment(&mut self, last: bool) -> Result<(), CryptoError> {
        self.cipher.set_last(last);
        let nonce = self.cipher.nonce();
        let tag = self
            .cipher
            .cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &self.cipher.aad,
                &mut self.buffer,
            )
            .map_err(|_| CryptoError::TooLarge)?;
        self.inner.write_all(&self.buffer)?;
        self.inner.write_all(&tag)?;
        self.buffer.clear();
        if !last {
            self.cipher.advance()?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sealed only once more data arrives: until then it may be
        // the final segment, whose flag differs.
        if self.buffer.len() == SEGMENT_BYTES {
            self.seal_segment(false).map_err(CryptoError::into_io)?;
        }
        let n_bytes = data.len().min(SEGMENT_BYTES - self.buffer.len());
        self.buffer.extend_from_slice(&data[..n_bytes]);
        self.hasher.update(&data[..n_bytes]);
        Ok(n_bytes)
    }

    /// Flushes the inner writer; buffered plaintext stays until a segment is full.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads and authenticates a sealed blob from `R`, yielding plaintext.
///
/// Plaintext is released one authenticated segment at a time. The final segment is
/// released only after the plaintext digest of the whole blob matched, and `Ok(0)`
/// (end of stream) only after that, so a reader that reaches EOF has read exactly the
/// sealed blob. Errors surface as `io::Error` of kind `InvalidData` wrapping
/// [`CryptoError::Integrity`]; `CryptoError::from(io_error)` recovers it. After an
/// error every further read fails too.
pub struct Opener<R: Read> {
    inner: R,
    cipher: SegmentCipher,
    ciphertext: Vec<u8>,
    plaintext: Zeroizing<Vec<u8>>,
    position: usize,
    hasher: Sha256,
    expected_digest: [u8; 32],
    state: OpenerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenerState {
    Reading,
    Done,
    Failed,
}

impl<R: Read> Opener<R> {
    /// Reads the header from `inner`; a short or unknown header is
    /// [`CryptoError::Integrity`].
    pub fn new(key: &DataKey, context: &BlobContext, mut inner: R) -> Result<Self, CryptoError> {
        let mut header = [0u8; HEADER_BYTES];
        let n_read = read_full(&mut inner, &mut header)?;
        if n_read != HEADER_BYTES || header[0] != SEALED_FORMAT_V1 {
            return Err(CryptoError::Integrity);
        }
        Ok(Self {
            inner,
            cipher: SegmentCipher::new(key, context, &header),
            ciphertext: Vec::with_capacity(SEALED_SEGMENT_BYTES + 1),
            plaintext: Zeroizing::new(Vec::with_capacity(SEGMENT_BYTES)),
            position: 0,
            hasher: Sha256::new(),
            expected_digest: context.digest,
            state: OpenerState::Reading,
        })
    }

    /// Decrypts the next segment into `self.plaintext`.
    fn next_segment(&mut self) -> Result<(), CryptoError> {
        // One byte beyond a full segment tells whether this segment is the last.
        let want = SEALED_SEGMENT_BYTES + 1;
        let have = self.ciphertext.len();
        self.ciphertext.resize(want, 0);
        let n_read = read_full(&mut self.inner, &mut self.ciphertext[have..])?;
        self.ciphertext.truncate(have + n_read);
        let last = self.ciphertext.len() < want;
        let segment_len = if last {
            self.ciphertext.len()
        } else {
            SEALED_SEGMENT_BYTES
        };
        if segment_len < TAG_BYTES {
            return Err(CryptoError::Integrity);
        }
        let body_len = segment_len - TAG_BYTES;
        self.plaintext.clear();
        self.plaintext
            .extend_from_slice(&self.ciphertext[..body_len]);
        let tag = *Tag::from_slice(&self.ciphertext[body_len..segment_len]);
        self.ciphertext.drain(..segment_len);
        self.position = 0;

        self.cipher.set_last(last);
        let nonce = self.cipher.nonce();
        if self
            .cipher
            .cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &self.cipher.aad,
                &mut self.plaintext,
                &tag,
            )
            .is_err()
        {
            self.plaintext.clear();
            return Err(CryptoError::Integrity);
        }
        self.hasher.update(self.plaintext.as_slice());
        if last {
            let digest: [u8; 32] = self.hasher.clone().finalize().into();
            if !bool::from(digest.ct_eq(&self.expected_digest)) {
                self.plaintext.clear();
                return Err(CryptoError::Integrity);
            }
            self.state = OpenerState::Done;
        } else {
            self.cipher.advance().map_err(|_| CryptoError::Integrity)?;
        }
        Ok(())
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.state == OpenerState::Failed {
                return Err(CryptoError::Integrity.into_io());
            }
            if self.position < self.plaintext.len() {
                let n_bytes = out.len().min(self.plaintext.len() - self.position);
                out[..n_bytes]
                    .copy_from_slice(&self.plaintext[self.position..self.position + n_bytes]);
                self.position += n_bytes;
                return Ok(n_bytes);
            }
            if self.state == OpenerState::Done || out.is_empty() {
                return Ok(0);
            }
            if let Err(err) = self.next_segment() {
                // Final even for reader I/O errors: a partly read segment cannot be
                // resumed, and a retry must start from the header.
                self.state = OpenerState::Failed;
                return Err(err.into_io());
            }
        }
    }
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, CryptoError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n_bytes) => filled += n_bytes,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(CryptoError::Io(err)),
        }
    }
    Ok(filled)
}
