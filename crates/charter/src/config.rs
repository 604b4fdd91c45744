//! Configuration: command line over environment over an optional TOML file.
//!
//! clap already merges the command line with `CHARTER_*` variables; values still
//! missing are taken from the file given by `--config`, then from built-in defaults.
//! This module also knows the master key file layout and turns TLS PEM files into a
//! rustls configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use crypto::envelope::{MasterKey, MasterKeyring};
use crypto::Secret;
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
    pub master_key_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
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
    pub master_key: MasterKeySource,
}

impl StorageConfig {
    /// `master_key_env` is the text of `CHARTER_MASTER_KEY`, which wins over the default
    /// key file; giving it together with an explicit key file is refused as ambiguous.
    pub fn resolve(
        data_dir: Option<PathBuf>,
        database_url: Option<String>,
        master_key_file: Option<PathBuf>,
        master_key_env: Option<String>,
        file: &FileConfig,
    ) -> anyhow::Result<Self> {
        let data_dir = data_dir
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./charter-data"));
        let database_url = database_url
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("charter.db").display()));
        let master_key_file = master_key_file.or_else(|| file.master_key_file.clone());
        let master_key = match (master_key_env, master_key_file) {
            (Some(_), Some(path)) => anyhow::bail!(
                "both CHARTER_MASTER_KEY and a master key file ({}) are set; use one",
                path.display()
            ),
            (Some(text), None) => MasterKeySource::Env(Secret::new(text)),
            (None, Some(path)) => MasterKeySource::File(path),
            (None, None) => MasterKeySource::File(data_dir.join("master.key")),
        };
        Ok(Self {
            data_dir,
            database_url,
            master_key,
        })
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Uploads are staged here, on the data volume, and removed after import.
    pub fn scratch_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }
}

/// Where the master keyring comes from.
///
/// A key file holds one key (64 hex digits and a newline, mode 0600). Versions sit side
/// by side: `PATH` is version 1 and `PATH.N` is version N (N ≥ 2); the highest version
/// present wraps new data keys, older ones only unwrap until `charter keys
/// rotate-master` rewraps everything and deletes them. `CHARTER_MASTER_KEY` holds
/// `HEX` (version 1) or `N:HEX[,M:HEX…]`.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    File(PathBuf),
    Env(Secret<String>),
}

impl MasterKeySource {
    /// The key file versions present, ascending: `(version, path)`.
    pub fn key_files(path: &Path) -> anyhow::Result<Vec<(u32, PathBuf)>> {
        let mut files = Vec::new();
        if path.try_exists()? {
            files.push((1, path.to_owned()));
        }
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("invalid master key path {}", path.display()))?;
        let prefix = format!("{name}.");
        let entries = match std::fs::read_dir(parent) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
            Err(e) => return Err(e).context("cannot list the master key directory"),
        };
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(version) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|v| *v >= 2)
            else {
                continue;
            };
            files.push((version, entry.path()));
        }
        files.sort();
        Ok(files)
    }

    /// The file for `version` next to `path`.
    pub fn version_path(path: &Path, version: u32) -> PathBuf {
        if version == 1 {
            return path.to_owned();
        }
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{version}"));
        PathBuf::from(name)
    }

    /// Parses `CHARTER_MASTER_KEY`; the highest version is active.
    pub fn parse_env(text: &str) -> anyhow::Result<MasterKeyring> {
        let mut keys = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (version, hex) = match part.split_once(':') {
                Some((version, hex)) => (
                    version
                        .parse::<u32>()
                        .ok()
                        .filter(|v| *v >= 1)
                        .context("CHARTER_MASTER_KEY: a version must be a number from 1")?,
                    hex,
                ),
                None => (1, part),
            };
            keys.push(
                MasterKey::from_env_text(version, hex)
                    .map_err(|e| anyhow::anyhow!("CHARTER_MASTER_KEY: {e}"))?,
            );
        }
        keyring_of(keys).context("CHARTER_MASTER_KEY holds no key")
    }

    /// Loads every version file; `None` when there is none.
    pub fn load_files(path: &Path) -> anyhow::Result<Option<MasterKeyring>> {
        let mut keys = Vec::new();
        for (version, file) in Self::key_files(path)? {
            let key = MasterKey::load_file(version, &file)
                .with_context(|| format!("cannot read master key file {}", file.display()))?;
            if !MasterKey::file_is_private(&file)? {
                tracing::warn!(file = %file.display(), "master key file is readable by group or others; chmod 600 it");
            }
            keys.push(key);
        }
        Ok(keyring_of(keys))
    }
}

/// A keyring of `keys` with the highest version active; `None` when empty.
pub fn keyring_of(mut keys: Vec<MasterKey>) -> Option<MasterKeyring> {
    keys.sort_by_key(MasterKey::version);
    let active = keys.pop()?;
    let mut keyring = MasterKeyring::new(active);
    for key in keys {
        // Versions come from distinct file names or were checked by the parser.
        if let Err(error) = keyring.add(key) {
            tracing::warn!(%error, "duplicate master key version ignored");
        }
    }
    Some(keyring)
}

/// TLS certificate chain and private key, both PEM files.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsConfig {
    pub fn resolve(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        file: &FileConfig,
    ) -> anyhow::Result<Option<TlsConfig>> {
        match (
            cert.or_else(|| file.tls_cert.clone()),
            key.or_else(|| file.tls_key.clone()),
        ) {
            (Some(cert), Some(key)) => Ok(Some(TlsConfig { cert, key })),
            (None, None) => Ok(None),
            _ => anyhow::bail!("--tls-cert and --tls-key must be given together"),
        }
    }

    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3) offering HTTP/2
    /// and HTTP/1.1 through ALPN.
    pub fn server_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read TLS certificate {}", self.cert.display()))?;
        if certs.is_empty() {
            anyhow::bail!("no certificate in {}", self.cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("cannot read TLS private key {}", self.key.display()))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the TLS certificate and key do not form a valid pair")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Parses a listen address, refusing a non-loopback one unless plain HTTP there was
/// explicitly allowed (TLS terminated by a proxy in front). With TLS configured, pass
/// `true`: the refusal is about plain HTTP only.
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
