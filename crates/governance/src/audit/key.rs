//! The server's audit signing key: ed25519, PKCS#8 PEM, created 0600 on first start.

use std::io::Write as _;
use std::path::Path;

use crypto::signing::SigningKey;

use super::AuditError;

/// File name of the key inside the data directory.
pub const SIGNING_KEY_FILE: &str = "audit-signing.key";

/// Loads the key at `path`, creating it (mode 0600, never overwriting) when absent.
pub fn load_or_create_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    let key_error = |what: &str, e: &dyn std::fmt::Display| {
        AuditError::Key(format!("{what} {}: {e}", path.display()))
    };
    match std::fs::read_to_string(path) {
        Ok(pem) => {
            return SigningKey::from_pkcs8_pem(&pem).map_err(|e| key_error("cannot parse", &e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_error("cannot read", &e)),
    }
    let key = SigningKey::generate();
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| key_error("cannot encode", &e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(pem.expose().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| key_error("cannot write", &e))?;
            Ok(key)
        }
        // Another process created it first: use theirs, so both sign with one key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let pem = std::fs::read_to_string(path).map_err(|e| key_error("cannot read", &e))?;
            SigningKey::from_pkcs8_pem(&pem).map_err(|e| key_error("cannot parse", &e))
        }
        Err(e) => Err(key_error("cannot create", &e)),
    }
}
