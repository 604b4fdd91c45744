//! Configuration: command line over environment over an optional TOML file.
//!
//! clap already merges the command line with `CHARTER_*` variables; values still
//! missing are taken from the file given by `--config`, then from built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The optional TOML file. Every key mirrors a flag of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub max_upload_mb: Option<u64>,
    pub max_json_body_kb: Option<usize>,
    pub allow_plain_http: Option<bool>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Where Charter keeps its state.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
}

impl StorageConfig {
    pub fn resolve(
        data_dir: Option<PathBuf>,
        database_url: Option<String>,
        file: &FileConfig,
    ) -> Self {
        let data_dir = data_dir
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./charter-data"));
        let database_url = database_url
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("charter.db").display()));
        Self {
            data_dir,
            database_url,
        }
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Uploads are staged here, on the data volume, and removed after import.
    pub fn scratch_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }
}

/// Parses a listen address, refusing a non-loopback one unless plain HTTP there was
/// explicitly allowed (TLS terminated by a proxy in front).
pub fn listen_addr(text: &str, allow_plain_http: bool) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = text.parse().with_context(|| {
        format!("invalid listen address '{text}': expected IP:PORT, e.g. 127.0.0.1:8080")
    })?;
    if !addr.ip().is_loopback() && !allow_plain_http {
        anyhow::bail!(
            "refusing to serve plain HTTP on non-loopback address {addr}: configure TLS, \
             or pass --allow-plain-http when a TLS-terminating proxy sits in front"
        );
    }
    Ok(addr)
}
