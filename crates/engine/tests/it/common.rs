//! Where tests find the real model and the PyTorch reference outputs.

use std::path::PathBuf;
use std::sync::OnceLock;

use engine::encoder::{Encoder, EncoderOptions};

/// `all-MiniLM-L6-v2` as `scripts/fetch-model.sh` lays it out, or `CHARTER_TEST_MODEL_DIR`.
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("CHARTER_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "test model missing at {}: run scripts/fetch-model.sh",
        dir.display()
    );
    dir
}

/// `../shared/reference` next to the repository, as CI lays it out.
pub fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
}

/// One encoder for the whole test binary: loading takes a moment, and sharing it also
/// exercises `Encoder: Sync`.
pub fn minilm() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        Encoder::load(&model_dir(), EncoderOptions::default()).expect("load all-MiniLM-L6-v2")
    })
}
