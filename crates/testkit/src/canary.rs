//! Canary searches: which files under a directory hold any of some byte strings, for
//! tests that prove nothing is stored in the clear.

use std::path::{Path, PathBuf};

/// `(needle, file)` for every needle found in every regular file under `dir`
/// (recursively). One pass per file with a compiled byte regex, so data dirs holding a
/// real model stay quick to search.
pub fn files_containing(dir: &Path, needles: &[&str]) -> std::io::Result<Vec<(String, PathBuf)>> {
    let pattern = needles
        .iter()
        .map(|needle| regex::escape(needle))
        .collect::<Vec<_>>()
        .join("|");
    let matcher = regex::bytes::Regex::new(&pattern).map_err(std::io::Error::other)?;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            // Files may vanish (temp files, WAL) while a server runs.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for hit in matcher.find_iter(&bytes) {
                let needle = String::from_utf8_lossy(hit.as_bytes()).into_owned();
                if !found.contains(&(needle.clone(), path.clone())) {
                    found.push((needle, path.clone()));
                }
            }
        }
    }
    Ok(found)
}
