//! An encrypted spool for streams that must be read twice (hash, then seal): chunks
//! AES-256-GCM encrypted under a random key that lives only in memory, with a counter
//! as nonce, so nothing readable is left in the temp file even if it is never deleted.

use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use tempfile::NamedTempFile;
use zeroize::Zeroizing;

/// Plaintext bytes per spooled chunk (the last may be shorter).
pub(crate) const CHUNK_BYTES: usize = 1024 * 1024;
const TAG_BYTES: usize = 16;

pub(crate) struct Spool {
    writer: BufWriter<NamedTempFile>,
    cipher: Aes256Gcm,
    counter: u64,
}

impl Spool {
    pub(crate) fn new(file: NamedTempFile) -> Self {
        // A fresh random key per spool: the counter nonce never repeats under it.
        let mut key = Zeroizing::new([0u8; 32]);
        aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut aes_gcm::aead::OsRng, &mut *key);
        Self {
            writer: BufWriter::new(file),
            cipher: Aes256Gcm::new((&*key).into()),
            counter: 0,
        }
    }

    pub(crate) fn write_chunk(&mut self, plaintext: &[u8]) -> io::Result<()> {
        let mut buffer = Zeroizing::new(plaintext.to_vec());
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(self.counter), b"", &mut buffer)
            .map_err(|_| io::Error::other("spool encryption failed"))?;
        self.counter += 1;
        self.writer
            .write_all(&(buffer.len() as u32).to_be_bytes())?;
        self.writer.write_all(&buffer)?;
        self.writer.write_all(&tag)
    }

    /// Reads the plaintext back, chunk by chunk; the temp file is deleted when the
    /// reader is dropped.
    pub(crate) fn into_reader(self) -> io::Result<SpoolReader> {
        let mut file = self.writer.into_inner().map_err(|e| e.into_error())?;
        file.as_file_mut().seek(SeekFrom::Start(0))?;
        Ok(SpoolReader {
            reader: BufReader::new(file),
            cipher: self.cipher,
            counter: 0,
            chunk: Zeroizing::new(Vec::new()),
            position: 0,
            offset: 0,
        })
    }
}

pub(crate) struct SpoolReader {
    reader: BufReader<NamedTempFile>,
    cipher: Aes256Gcm,
    counter: u64,
    chunk: Zeroizing<Vec<u8>>,
    position: usize,
    /// Plaintext bytes handed out so far (for `Seek`).
    offset: u64,
}

impl SpoolReader {
    /// The next chunk; `false` at the end.
    fn next_chunk(&mut self) -> io::Result<bool> {
        let mut len = [0u8; 4];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > CHUNK_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt spool"));
        }
        self.chunk.resize(len, 0);
        self.reader.read_exact(&mut self.chunk)?;
        let mut tag = [0u8; TAG_BYTES];
        self.reader.read_exact(&mut tag)?;
        self.cipher
            .decrypt_in_place_detached(
                &nonce(self.counter),
                b"",
                &mut self.chunk,
                Tag::from_slice(&tag),
            )
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "corrupt spool"))?;
        self.counter += 1;
        self.position = 0;
        Ok(true)
    }
}

impl Read for SpoolReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.chunk.len() {
            if out.is_empty() || !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.chunk.len() - self.position);
        out[..n].copy_from_slice(&self.chunk[self.position..self.position + n]);
        self.position += n;
        self.offset += n as u64;
        Ok(n)
    }
}

/// `put_reader` rewinds to where it started: only the current position and a rewind
/// to the start are supported.
impl Seek for SpoolReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match to {
            SeekFrom::Current(0) => Ok(self.offset),
            SeekFrom::Start(0) => {
                self.reader.seek(SeekFrom::Start(0))?;
                self.counter = 0;
                self.chunk.clear();
                self.position = 0;
                self.offset = 0;
                Ok(0)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the spool only rewinds to its start",
            )),
        }
    }
}

fn nonce(counter: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    *Nonce::from_slice(&bytes)
}
