//! Unpacking an uploaded tar stream into a private temp dir, refusing every entry that
//! could write outside it or smuggle in something other than plain files.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use crate::scan::{safe_relative_path, MAX_FILES};
use crate::{ImportError, RegistryError};

/// Marks the I/O error the limiting reader raises, so it maps back to `TooLarge`.
#[derive(Debug, thiserror::Error)]
#[error("the upload exceeds the size limit")]
struct LimitExceeded;

/// Fails reads once more than `limit` bytes have passed.
struct LimitedReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.remaining {
            return Err(io::Error::other(LimitExceeded));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Writes the files of the tar stream under `dest` (an empty directory). Only regular
/// files and directories with relative paths of plain names are accepted; links, devices
/// and `..` or absolute paths are refused before anything of theirs is written. The
/// whole stream is capped at `max_bytes`.
pub(crate) fn unpack(reader: impl Read, dest: &Path, max_bytes: u64) -> Result<(), RegistryError> {
    let limited = LimitedReader {
        inner: reader,
        remaining: max_bytes,
    };
    let mut archive = tar::Archive::new(limited);
    let map_error = |error: io::Error| -> RegistryError {
        if error
            .get_ref()
            .is_some_and(|inner| inner.is::<LimitExceeded>())
        {
            RegistryError::TooLarge { limit: max_bytes }
        } else {
            ImportError::InvalidTar(error.to_string()).into()
        }
    };
    let mut n_files = 0usize;
    for entry in archive.entries().map_err(map_error)? {
        let mut entry = entry.map_err(map_error)?;
        let raw_path = entry.path().map_err(map_error)?.into_owned();
        let entry_type = entry.header().entry_type();
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "directory",
            // Global pax headers carry defaults such as mtime, nothing to write.
            tar::EntryType::XGlobalHeader => continue,
            tar::EntryType::Symlink => {
                return Err(ImportError::Symlink {
                    path: raw_path.to_string_lossy().into_owned(),
                }
                .into())
            }
            other => {
                let kind = match other {
                    tar::EntryType::Link => "hard link".to_owned(),
                    tar::EntryType::Char | tar::EntryType::Block => "device file".to_owned(),
                    tar::EntryType::Fifo => "named pipe".to_owned(),
                    other => format!("tar entry of type {other:?}"),
                };
                return Err(ImportError::UnsupportedEntry {
                    path: raw_path.to_string_lossy().into_owned(),
                    kind,
                }
                .into());
            }
        };
        // `./` alone is how many tools write the archive root.
        if kind == "directory"
            && raw_path
                .components()
                .all(|c| c == std::path::Component::CurDir)
        {
            continue;
        }
        let relative = safe_relative_path(&raw_path)?;
        let target = dest.join(&relative);
        // A directory where an earlier entry put a file is the uploader's error.
        let make_dirs = |dir: &Path| {
            fs::create_dir_all(dir).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
                    RegistryError::from(ImportError::ConflictingEntry {
                        path: relative.clone(),
                    })
                }
                _ => e.into(),
            })
        };
        if kind == "directory" {
            make_dirs(&target)?;
            continue;
        }
        n_files += 1;
        if n_files > MAX_FILES {
            return Err(ImportError::TooManyFiles { limit: MAX_FILES }.into());
        }
        if let Some(parent) = target.parent() {
            make_dirs(parent)?;
        }
        // create_new: a second entry with the same path must not replace the first.
        let mut file = match File::options().write(true).create_new(true).open(&target) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ImportError::DuplicateEntry { path: relative }.into())
            }
            Err(e) => return Err(e.into()),
        };
        io::copy(&mut entry, &mut file).map_err(map_error)?;
    }
    Ok(())
}

/// The folder to import from an unpacked upload: the upload itself, or its single
/// top-level directory when the archive was made with `tar -c model-dir`.
pub(crate) fn model_root(dest: &Path) -> io::Result<std::path::PathBuf> {
    if dest.join("config.json").exists() {
        return Ok(dest.to_owned());
    }
    let entries: Vec<_> = fs::read_dir(dest)?.collect::<Result<_, _>>()?;
    if let [only] = entries.as_slice() {
        if only.file_type()?.is_dir() {
            return Ok(only.path());
        }
    }
    Ok(dest.to_owned())
}
