//! Reading safetensors weights from a Hugging Face folder, single file or sharded.
//!
//! Files are read into memory rather than memory-mapped: mapping needs `unsafe` (the file
//! could change underneath us) and the encoders this serves are small.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use crate::config::{io_error, read_json};
use crate::EngineError;

const SINGLE_FILE: &str = "model.safetensors";
const SHARD_INDEX: &str = "model.safetensors.index.json";

/// All tensors of the folder by checkpoint name.
pub(crate) fn load_dir(
    dir: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, EngineError> {
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return load_file(&single, device);
    }
    let index_path = dir.join(SHARD_INDEX);
    if index_path.is_file() {
        #[derive(Deserialize)]
        struct ShardIndex {
            weight_map: HashMap<String, String>,
        }
        let index: ShardIndex = read_json(&index_path)?;
        let shards: BTreeSet<&String> = index.weight_map.values().collect();
        let mut tensors = HashMap::new();
        for shard in shards {
            // Shard names come from a file we did not write; keep them inside the folder.
            let shard_path = Path::new(shard);
            if shard_path.components().count() != 1 {
                return Err(EngineError::Weights(format!(
                    "shard name `{shard}` in {} is not a plain file name",
                    index_path.display()
                )));
            }
            tensors.extend(load_file(&dir.join(shard_path), device)?);
        }
        return Ok(tensors);
    }
    Err(EngineError::NoSafetensors {
        dir: dir.to_owned(),
    })
}

fn load_file(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, EngineError> {
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|err| EngineError::Weights(format!("{}: {err}", path.display())))
}
