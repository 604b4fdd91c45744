//! Walking a model folder and checking every file by name and by content before any of
//! it is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::safetensors_check;
use crate::ImportError;

/// Refused to bound the work one import can cause.
pub(crate) const MAX_FILES: usize = 10_000;
const MAX_DEPTH: usize = 16;
/// JSON files are parsed whole; tokenizer.json of large vocabularies reaches tens of MB.
const MAX_JSON_BYTES: u64 = 512 * 1024 * 1024;

/// JSON files the engine reads; they must parse. Other JSON files (training logs, which
/// Python writes with `NaN` and `Infinity`) are kept as opaque data.
const PARSED_JSON: [&str; 9] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "model.safetensors.index.json",
];

/// Extensions of pickle-based checkpoints, refused by name.
const PICKLE_EXTENSIONS: [&str; 6] = ["bin", "pt", "pth", "ckpt", "pkl", "pickle"];

/// One checked file of the folder.
#[derive(Debug)]
pub(crate) struct ScannedFile {
    /// Relative, `/`-separated, only normal components.
    pub relative: String,
    pub absolute: PathBuf,
    pub size: u64,
    /// Identity at scan time, to notice a file swapped while importing.
    pub dev: u64,
    pub ino: u64,
}

/// Lists every regular file under `root` (hidden directories such as `.git` and `.cache`
/// are skipped; hidden files are kept) and refuses symlinks, special files and unsafe
/// names.
pub(crate) fn walk(root: &Path) -> Result<Vec<ScannedFile>, crate::RegistryError> {
    let metadata = fs::metadata(root)?;
    if !metadata.is_dir() {
        return Err(ImportError::NotADirectory(root.to_owned()).into());
    }
    let mut files = Vec::new();
    walk_into(root, "", 0, &mut files)?;
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

fn walk_into(
    dir: &Path,
    prefix: &str,
    depth: usize,
    files: &mut Vec<ScannedFile>,
) -> Result<(), crate::RegistryError> {
    if depth > MAX_DEPTH {
        return Err(ImportError::UnsafePath {
            path: prefix.to_owned(),
            reason: format!("nested deeper than {MAX_DEPTH} directories"),
        }
        .into());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(ImportError::UnsafePath {
                path: format!("{prefix}{}", name.to_string_lossy()),
                reason: "the name is not valid UTF-8".into(),
            }
            .into());
        };
        let relative = format!("{prefix}{name}");
        check_component(name, &relative)?;
        // file_type does not follow symlinks, so a link is seen as a link.
        let file_type = entry.file_type()?;
        if file_type.is_symlink() {
            return Err(ImportError::Symlink { path: relative }.into());
        }
        if file_type.is_dir() {
            if name.starts_with('.') {
                continue;
            }
            walk_into(&entry.path(), &format!("{relative}/"), depth + 1, files)?;
        } else if file_type.is_file() {
            if files.len() >= MAX_FILES {
                return Err(ImportError::TooManyFiles { limit: MAX_FILES }.into());
            }
            let metadata = entry.metadata()?;
            files.push(ScannedFile {
                relative,
                absolute: entry.path(),
                size: metadata.len(),
                dev: metadata.dev(),
                ino: metadata.ino(),
            });
        } else {
            return Err(ImportError::UnsupportedEntry {
                path: relative,
                kind: "special file (device, pipe or socket)".into(),
            }
            .into());
        }
    }
    Ok(())
}

/// The longest file or directory name accepted: what Linux file systems store.
const MAX_NAME_BYTES: usize = 255;
/// The longest relative path accepted, far below `PATH_MAX` once under the server's
/// own directories.
const MAX_PATH_BYTES: usize = 1024;

/// A path component is safe when it is a plain name: no separators, no `.`/`..`, no
/// control characters, at most [`MAX_NAME_BYTES`].
fn check_component(name: &str, relative: &str) -> Result<(), ImportError> {
    let reason = if name.is_empty() || name == "." || name == ".." {
        Some("'.' and '..' are not allowed")
    } else if name.len() > MAX_NAME_BYTES {
        Some("a name longer than 255 bytes is not allowed")
    } else if name.contains(['/', '\\']) {
        Some("separators inside a name are not allowed")
    } else if name.chars().any(char::is_control) {
        Some("control characters are not allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ImportError::UnsafePath {
            path: relative.to_owned(),
            reason: reason.into(),
        }),
        None => Ok(()),
    }
}

/// Checks a relative path from an untrusted source (tar entry, stored manifest): only
/// normal components, and returns it `/`-joined.
pub(crate) fn safe_relative_path(path: &Path) -> Result<String, ImportError> {
    let display = path.to_string_lossy().into_owned();
    let unsafe_path = |reason: &str| ImportError::UnsafePath {
        path: display.clone(),
        reason: reason.to_owned(),
    };
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => {
                let part = part
                    .to_str()
                    .ok_or_else(|| unsafe_path("the name is not valid UTF-8"))?;
                check_component(part, &display)?;
                parts.push(part);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("'..' is not allowed")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path("absolute paths are not allowed"))
            }
        }
    }
    if parts.is_empty() {
        return Err(unsafe_path("the path is empty"));
    }
    let joined = parts.join("/");
    if joined.len() > MAX_PATH_BYTES {
        return Err(unsafe_path("a path longer than 1024 bytes is not allowed"));
    }
    Ok(joined)
}

/// Checks every file by name and content; refuses the folder at the first problem.
pub(crate) fn validate(files: &[ScannedFile]) -> Result<(), crate::RegistryError> {
    let mut tensors_by_file: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut index: Option<&ScannedFile> = None;
    let mut config_seen = false;
    for file in files {
        let relative = file.relative.as_str();
        let extension = relative
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        if PICKLE_EXTENSIONS.contains(&extension.as_str()) {
            return Err(ImportError::PickleCheckpoint {
                path: relative.to_owned(),
            }
            .into());
        }
        let mut handle = open_same(file)?;
        let mut magic = [0u8; 4];
        let n_magic = read_up_to(&mut handle, &mut magic)?;
        let magic = &magic[..n_magic];
        // Protocol 2+ pickles start with PROTO (0x80) and the protocol number.
        if magic.len() >= 2 && magic[0] == 0x80 && (2..=5).contains(&magic[1]) {
            return Err(ImportError::PickleContent {
                path: relative.to_owned(),
            }
            .into());
        }
        if magic.starts_with(b"PK\x03\x04") {
            return Err(ImportError::ZipArchive {
                path: relative.to_owned(),
            }
            .into());
        }
        handle.seek(SeekFrom::Start(0))?;
        if extension == "safetensors" {
            let names = safetensors_check::check(&mut handle, file.size).map_err(|reason| {
                ImportError::Safetensors {
                    path: relative.to_owned(),
                    reason,
                }
            })?;
            tensors_by_file.insert(relative, names);
        } else if PARSED_JSON.contains(&file_name(relative)) {
            let value = parse_json(&mut handle, file)?;
            if relative == "config.json" {
                if !value.is_object() {
                    return Err(ImportError::ConfigNotObject.into());
                }
                config_seen = true;
            }
            if relative == "model.safetensors.index.json" {
                index = Some(file);
            }
        }
    }
    if !config_seen {
        return Err(ImportError::MissingConfig.into());
    }
    if tensors_by_file.is_empty() {
        return Err(ImportError::NoWeights.into());
    }
    if let Some(index) = index {
        check_index(index, &tensors_by_file)?;
    }
    Ok(())
}

/// The shard index must name only shards that are in the folder, each tensor in the
/// shard that really holds it.
fn check_index(
    index: &ScannedFile,
    tensors_by_file: &BTreeMap<&str, BTreeSet<String>>,
) -> Result<(), crate::RegistryError> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let mut handle = open_same(index)?;
    let value = parse_json(&mut handle, index)?;
    let index: Index = serde_json::from_value(value)
        .map_err(|e| ImportError::ShardIndex(format!("no valid weight_map: {e}")))?;
    for (tensor, shard) in &index.weight_map {
        let shard = safe_relative_path(Path::new(shard))
            .map_err(|e| ImportError::ShardIndex(e.to_string()))?;
        let Some(names) = tensors_by_file.get(shard.as_str()) else {
            return Err(ImportError::ShardIndex(format!(
                "tensor '{tensor}' is mapped to '{shard}', which is not a safetensors file of the folder"
            ))
            .into());
        };
        if !names.contains(tensor) {
            return Err(
                ImportError::ShardIndex(format!("tensor '{tensor}' is not in '{shard}'")).into(),
            );
        }
    }
    Ok(())
}

fn parse_json(handle: &mut File, file: &ScannedFile) -> Result<serde_json::Value, ImportError> {
    let invalid = |reason: String| ImportError::InvalidJson {
        path: file.relative.clone(),
        reason,
    };
    if file.size > MAX_JSON_BYTES {
        return Err(invalid(format!("larger than {MAX_JSON_BYTES} bytes")));
    }
    let mut text = String::new();
    handle
        .take(MAX_JSON_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| invalid(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))
}

/// Opens a scanned file and makes sure it is still the file that was scanned (not
/// replaced by a link or another file in the meantime).
pub(crate) fn open_same(file: &ScannedFile) -> Result<File, crate::RegistryError> {
    let handle = File::open(&file.absolute)?;
    let metadata = handle.metadata()?;
    if metadata.dev() != file.dev || metadata.ino() != file.ino || metadata.len() != file.size {
        return Err(ImportError::FileChanged {
            path: file.relative.clone(),
        }
        .into());
    }
    Ok(handle)
}

fn file_name(relative: &str) -> &str {
    relative.rsplit('/').next().unwrap_or(relative)
}

fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
