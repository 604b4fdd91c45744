//! Signed model versions: a publisher signs a version's manifest (every file's path,
//! size and SHA-256) with an ed25519 key; a tenant that requires signed models is served
//! a version only when a key it trusts signed exactly the files the version has now.
//!
//! The signed statement is a [`SignedStatement`] (domain-separated, canonical JSON)
//! whose payload names the model, the version, the manifest digest and the files, so a
//! refusal can say which file differs. Blobs are addressed and authenticated by their
//! SHA-256, so the manifest is what decides which bytes a version serves: a file
//! swapped in the store is a manifest that no longer matches the signature.

use crypto::signing::{SignedStatement, SigningKey, VerifyingKey};
use serde::Deserialize;
use serde_json::json;
use store::{Manifest, ManifestFile, SignatureRecord, VersionRecord};
use types::TenantName;

use crate::{Registry, RegistryError};

/// `kind` of the payload of a model manifest statement.
pub const MANIFEST_STATEMENT_KIND: &str = "charter/model-manifest/v1";

/// SHA-256 (hex) of a manifest as stored: the identity of a version's exact files,
/// carried by audit entries, receipts and signatures alike.
pub fn manifest_digest(manifest: &Manifest) -> String {
    let bytes =
        serde_json::to_vec(manifest).expect("a manifest always serialises to JSON: this is a bug");
    crypto::sha256_hex(&bytes)
}

/// Why a version may not serve a tenant that requires signed models, or why a
/// signature does not verify. Messages name the version and, where it applies, the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("model '{model}' is not signed by a key that tenant '{tenant}' trusts")]
    Unsigned { model: String, tenant: String },
    #[error("file '{path}' of model '{model}' differs from the signed manifest: {detail}")]
    FileDiffers {
        model: String,
        path: String,
        detail: String,
    },
    #[error("the signature of model '{model}' by key {key_id} is invalid: {reason}")]
    Invalid {
        model: String,
        key_id: String,
        reason: String,
    },
}

/// One signature of a version and whether it verifies against the version's files.
#[derive(Debug, Clone)]
pub struct SignatureStatus {
    pub key_id: String,
    /// The signer's public key, SPKI PEM, as stored with the signature.
    pub public_key: String,
    pub signed_at: i64,
    pub result: Result<(), SignatureError>,
}

#[derive(Deserialize)]
struct ManifestStatement {
    kind: String,
    model: String,
    version: i64,
    manifest_sha256: String,
    files: Vec<ManifestFile>,
}

impl Registry {
    /// Signs the manifest of `version` with `key` and stores the signature (replacing
    /// an earlier one by the same key).
    pub async fn sign(
        &self,
        version: &VersionRecord,
        key: &SigningKey,
    ) -> Result<SignatureRecord, RegistryError> {
        let digest = manifest_digest(&version.manifest);
        let payload = json!({
            "kind": MANIFEST_STATEMENT_KIND,
            "model": version.model.as_str(),
            "version": version.version,
            "manifest_sha256": digest,
            "files": version.manifest.files,
        });
        let statement = SignedStatement::sign(key, payload);
        let record = SignatureRecord {
            model_id: version.model_id,
            version: version.version,
            key_id: statement.key_id.clone(),
            public_key: key.public_key_pem(),
            manifest_sha256: digest,
            statement: serde_json::to_string(&statement)
                .map_err(|e| RegistryError::Corrupt(format!("statement: {e}")))?,
            signed_at: types::unix_now(),
        };
        self.store.put_signature(&record).await?;
        tracing::info!(model = %version.model, version = version.version, key_id = %record.key_id, "model version signed");
        Ok(record)
    }

    /// Every signature of `version`, each verified with the public key stored with it
    /// (or with `key`, when given, for signatures by that key) against the version's
    /// current files.
    pub async fn signatures(
        &self,
        version: &VersionRecord,
        key: Option<&VerifyingKey>,
    ) -> Result<Vec<SignatureStatus>, RegistryError> {
        let records = self
            .store
            .signatures(version.model_id, version.version)
            .await?;
        Ok(records
            .into_iter()
            .map(|record| {
                let result = match key {
                    Some(key) if key.key_id() == record.key_id => {
                        verify_record(version, &record, key)
                    }
                    _ => VerifyingKey::from_public_key_pem(&record.public_key)
                        .map_err(|e| invalid(version, &record.key_id, e.to_string()))
                        .and_then(|stored| verify_record(version, &record, &stored)),
                };
                SignatureStatus {
                    key_id: record.key_id,
                    public_key: record.public_key,
                    signed_at: record.signed_at,
                    result,
                }
            })
            .collect())
    }

    /// `Ok` when a key `tenant` trusts signed exactly the files `version` has now.
    /// Signatures are verified with the tenant's copy of the key, never with the copy
    /// stored beside the signature.
    pub async fn check_signed(
        &self,
        version: &VersionRecord,
        tenant: &TenantName,
    ) -> Result<(), RegistryError> {
        let trusted = self.store.trusted_keys(tenant).await?;
        let records = self
            .store
            .signatures(version.model_id, version.version)
            .await?;
        let mut first_failure = None;
        for record in &records {
            let Some(trusted) = trusted.iter().find(|t| t.key_id == record.key_id) else {
                continue;
            };
            let result = VerifyingKey::from_public_key_pem(&trusted.public_key)
                .map_err(|e| invalid(version, &record.key_id, e.to_string()))
                .and_then(|key| verify_record(version, record, &key));
            match result {
                Ok(()) => return Ok(()),
                Err(error) => {
                    first_failure.get_or_insert(error);
                }
            }
        }
        Err(RegistryError::Signature(first_failure.unwrap_or_else(
            || SignatureError::Unsigned {
                model: version.model_ref().to_string(),
                tenant: tenant.to_string(),
            },
        )))
    }
}

fn invalid(version: &VersionRecord, key_id: &str, reason: String) -> SignatureError {
    SignatureError::Invalid {
        model: version.model_ref().to_string(),
        key_id: key_id.to_owned(),
        reason,
    }
}

/// Verifies one stored signature with `key` and compares what it signed with the
/// version's files now.
fn verify_record(
    version: &VersionRecord,
    record: &SignatureRecord,
    key: &VerifyingKey,
) -> Result<(), SignatureError> {
    let statement: SignedStatement = serde_json::from_str(&record.statement).map_err(|e| {
        invalid(
            version,
            &record.key_id,
            format!("unreadable statement: {e}"),
        )
    })?;
    statement
        .verify(key)
        .map_err(|e| invalid(version, &record.key_id, e.to_string()))?;
    let signed: ManifestStatement = serde_json::from_value(statement.payload).map_err(|e| {
        invalid(
            version,
            &record.key_id,
            format!("not a manifest statement: {e}"),
        )
    })?;
    if signed.kind != MANIFEST_STATEMENT_KIND {
        return Err(invalid(
            version,
            &record.key_id,
            "not a manifest statement".into(),
        ));
    }
    if signed.model != version.model.as_str() || signed.version != version.version {
        return Err(invalid(
            version,
            &record.key_id,
            format!(
                "it was made for model '{}:{}'",
                signed.model.chars().take(64).collect::<String>(),
                signed.version
            ),
        ));
    }
    compare_files(version, &signed.files)?;
    if signed.manifest_sha256 != manifest_digest(&version.manifest) {
        return Err(invalid(
            version,
            &record.key_id,
            "the manifest digest differs".into(),
        ));
    }
    Ok(())
}

/// Names the first file that differs between the signed list and the version's files.
fn compare_files(version: &VersionRecord, signed: &[ManifestFile]) -> Result<(), SignatureError> {
    let differs = |path: &str, detail: String| SignatureError::FileDiffers {
        model: version.model_ref().to_string(),
        path: path.to_owned(),
        detail,
    };
    for signed_file in signed {
        match version.manifest.file(&signed_file.path) {
            None => {
                return Err(differs(
                    &signed_file.path,
                    "it was signed but is missing".into(),
                ))
            }
            Some(file) if file.sha256 != signed_file.sha256 || file.size != signed_file.size => {
                return Err(differs(
                    &file.path,
                    format!(
                        "signed sha256 {} ({} bytes), now sha256 {} ({} bytes)",
                        signed_file.sha256, signed_file.size, file.sha256, file.size
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = version
        .manifest
        .files
        .iter()
        .find(|file| !signed.iter().any(|s| s.path == file.path))
    {
        return Err(differs(&extra.path, "it was added after signing".into()));
    }
    Ok(())
}
