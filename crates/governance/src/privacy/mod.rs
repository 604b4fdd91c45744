//! Privacy in the service path: each tenant's PII policy applied to model inputs,
//! outputs and log lines, the encrypted pseudonym vault, stored payloads with their
//! retention, and erasure of a data subject.
//!
//! A request opens a [`RequestPrivacy`] with [`Privacy::begin`]; every text on its way
//! to a model goes through [`RequestPrivacy::input`], every generated text through
//! [`RequestPrivacy::output`], every log line that mentions request text through
//! [`RequestPrivacy::for_log`], and [`RequestPrivacy::finish`] seals the request's
//! pseudonym mapping into the vault and stores the payload when the tenant keeps them.
//! The HTTP handlers and the CLI use the same calls, and a PII engine error fails the
//! request (fail closed).
//!
//! Sealing uses the tenant's data key (`registry::Registry::tenant_key`): vault mappings
//! and payloads are sealed records bound to their row, subjects are keyed tags, so the
//! database holds no personal data in the clear and shredding a tenant's key makes all of
//! it unreadable.

mod settings;

use registry::{Registry, RegistryError};
use store::{Erased, NewPayload, NewVaultEntry, StoreError};
use types::TenantName;

use crate::pii::{self, Action, Direction, Entity, PiiError, Policy, PseudonymScope, Redacted};

pub use settings::{
    PrivacySettings, Subject, DEFAULT_VAULT_TTL_SECS, MAX_RETENTION_SECS, MAX_SUBJECT_BYTES,
};

/// Why a privacy step refused. Messages never contain request text.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error(transparent)]
    Pii(#[from] PiiError),
    /// Settings or a subject id that cannot be accepted; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// Inputs that the tenant's policy cannot be applied to (token ids).
    #[error("{0}")]
    Unchecked(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A sealed vault entry or payload that does not open: altered, moved or shredded.
    #[error("a sealed privacy record failed its integrity check")]
    Integrity,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// A sealed pseudonym mapping: the id to reveal it by, and when it stops being
/// revealable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VaultRef {
    pub id: String,
    pub expires_at: i64,
}

/// What [`Privacy::erase_subject`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    pub payloads: u64,
    pub vault_entries: u64,
}

impl From<Erased> for Erasure {
    fn from(erased: Erased) -> Erasure {
        Erasure {
            payloads: erased.payloads,
            vault_entries: erased.vault_entries,
        }
    }
}

/// How long a tenant's settings are reused without reading the store. Settings changed
/// through this process apply at once; changed elsewhere (the CLI, another replica),
/// within this long.
pub const SETTINGS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The privacy service; cheap to clone.
#[derive(Debug, Clone)]
pub struct Privacy {
    registry: Registry,
    /// Settings read recently, so the request path does not query the store each time.
    settings: types::TtlCache<TenantName, PrivacySettings>,
}

impl Privacy {
    pub fn new(registry: Registry) -> Privacy {
        Privacy {
            registry,
            settings: types::TtlCache::new(SETTINGS_TTL),
        }
    }

    pub async fn settings(&self, tenant: &TenantName) -> Result<PrivacySettings, PrivacyError> {
        if let Some(settings) = self.settings.get(tenant) {
            return Ok(settings);
        }
        let settings = match self.registry.store().privacy_settings(tenant).await? {
            None => PrivacySettings::default(),
            Some(record) => PrivacySettings {
                policies: serde_json::from_value(record.policies)
                    .map_err(|e| StoreError::Corrupt(format!("privacy policies: {e}")))?,
                retention_secs: record.retention_secs,
                vault_ttl_secs: record.vault_ttl_secs,
            },
        };
        self.settings.put(tenant.clone(), settings.clone());
        Ok(settings)
    }

    /// Validates and stores the tenant's settings.
    pub async fn set_settings(
        &self,
        tenant: &TenantName,
        settings: PrivacySettings,
    ) -> Result<PrivacySettings, PrivacyError> {
        settings.validate()?;
        let policies = serde_json::to_value(&settings.policies)
            .map_err(|e| PrivacyError::Invalid(format!("privacy policies: {e}")))?;
        self.registry
            .store()
            .put_privacy_settings(
                tenant,
                &policies,
                settings.retention_secs,
                settings.vault_ttl_secs,
            )
            .await?;
        self.settings.put(tenant.clone(), settings.clone());
        tracing::info!(%tenant, retention_secs = ?settings.retention_secs, "privacy settings changed");
        Ok(settings)
    }

    /// Starts the privacy handling of one request of `tenant` about `subject`.
    pub async fn begin(
        &self,
        tenant: &TenantName,
        subject: Option<Subject>,
    ) -> Result<RequestPrivacy, PrivacyError> {
        Ok(RequestPrivacy {
            privacy: self.clone(),
            tenant: tenant.clone(),
            subject,
            settings: self.settings(tenant).await?,
            scope: PseudonymScope::new(),
        })
    }

    /// Puts the originals back into `text` for the pseudonyms of vault entry `id`.
    /// Unknown, expired and other tenants' entries are all `NotFound`. The caller must
    /// hold `pii:reveal`; the HTTP layer audits each call.
    pub async fn reveal(
        &self,
        tenant: &TenantName,
        id: &str,
        text: &str,
    ) -> Result<String, PrivacyError> {
        let store = self.registry.store();
        let entry = store
            .vault_entry(tenant, id, types::unix_now())
            .await?
            .ok_or_else(|| PrivacyError::NotFound(format!("vault entry '{id}'")))?;
        let key = self.registry.tenant_key(tenant).await?;
        let plaintext = key
            .open_record(&vault_context(id), &entry.sealed)
            .map_err(|_| PrivacyError::Integrity)?;
        let mapping: pii::Mapping =
            serde_json::from_slice(&plaintext).map_err(|_| PrivacyError::Integrity)?;
        Ok(pii::reidentify(text, &mapping))
    }

    /// The tenant's stored payloads that have not expired, opened, oldest first.
    pub async fn payloads(
        &self,
        tenant: &TenantName,
    ) -> Result<Vec<serde_json::Value>, PrivacyError> {
        let records = self
            .registry
            .store()
            .list_payloads(tenant, types::unix_now())
            .await?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.registry.tenant_key(tenant).await?;
        records
            .iter()
            .map(|record| {
                let context = payload_context(&record.route, &record.request_id);
                let plaintext = key
                    .open_record(&context, &record.sealed)
                    .map_err(|_| PrivacyError::Integrity)?;
                serde_json::from_slice(&plaintext).map_err(|_| PrivacyError::Integrity)
            })
            .collect()
    }

    /// Deletes vault entries and payloads that expired, in every tenant.
    pub async fn purge_expired(&self) -> Result<Erasure, PrivacyError> {
        let erased = self
            .registry
            .store()
            .purge_expired(types::unix_now())
            .await?;
        if erased != Erased::default() {
            tracing::info!(
                payloads = erased.payloads,
                vault_entries = erased.vault_entries,
                "expired privacy records purged"
            );
        }
        Ok(erased.into())
    }

    /// Erases what the tenant holds about `subject`: stored payloads and vault entries.
    pub async fn erase_subject(
        &self,
        tenant: &TenantName,
        subject: &Subject,
    ) -> Result<Erasure, PrivacyError> {
        let tag = self.subject_tag(tenant, subject).await?;
        let erased = self
            .registry
            .store()
            .erase_subject_records(tenant, &tag)
            .await?;
        tracing::info!(%tenant, payloads = erased.payloads, vault_entries = erased.vault_entries, "data subject erased");
        Ok(erased.into())
    }

    /// The keyed tag `subject` is stored under in `tenant` (also what the audit log
    /// records of an erasure, instead of the id).
    pub async fn subject_tag(
        &self,
        tenant: &TenantName,
        subject: &Subject,
    ) -> Result<String, PrivacyError> {
        let key = self.registry.tenant_key(tenant).await?;
        Ok(subject_tag(&key, subject))
    }
}

/// The privacy handling of one request: the tenant's settings, the subject, and the
/// pseudonym numbering shared by every text of the request.
#[derive(Debug)]
pub struct RequestPrivacy {
    privacy: Privacy,
    tenant: TenantName,
    subject: Option<Subject>,
    settings: PrivacySettings,
    scope: PseudonymScope,
}

/// A text after a policy: the text, and the entities found in the original (byte
/// offsets).
#[derive(Debug, Clone)]
pub struct Checked {
    pub text: Redacted,
    pub entities: Vec<Entity>,
}

impl RequestPrivacy {
    pub fn settings(&self) -> &PrivacySettings {
        &self.settings
    }

    /// Applies the input policy to the texts of the request; `pii_blocked` when a
    /// blocked kind appears in any of them.
    pub fn input(&mut self, texts: &[String]) -> Result<Vec<Redacted>, PrivacyError> {
        self.apply_all(Direction::Input, texts)
    }

    /// Applies the output policy to generated texts.
    pub fn output(&mut self, texts: &[String]) -> Result<Vec<Redacted>, PrivacyError> {
        self.apply_all(Direction::Output, texts)
    }

    /// Applies `policy` (instead of the tenant's) to one text, keeping the request's
    /// pseudonym numbering, and reports the entities found.
    pub fn check_with(&mut self, text: &str, policy: &Policy) -> Result<Checked, PrivacyError> {
        let applied = self.scope.apply(text, policy)?;
        Ok(Checked {
            text: applied.text,
            entities: applied.entities,
        })
    }

    /// Refuses inputs that detection cannot read (token ids) unless the input policy
    /// leaves everything in place anyway.
    pub fn require_checkable(&self, what: &str) -> Result<(), PrivacyError> {
        if self.settings.input_allows_everything() {
            return Ok(());
        }
        Err(PrivacyError::Unchecked(format!(
            "{what} cannot be checked against this tenant's PII policy; send text instead"
        )))
    }

    /// A request text for a log line, under the tenant's logs policy.
    pub fn for_log(&self, text: &str) -> Redacted {
        pii::redact_for_log_with(text, &self.settings.policies.logs)
    }

    /// Seals the request's pseudonym mapping into the vault (when there is one) and
    /// stores the payload (when the tenant keeps payloads); `payload` is only built
    /// then. Returns the vault entry a client can reveal the pseudonyms by.
    pub async fn finish(
        self,
        request_id: &str,
        route: &str,
        payload: impl FnOnce() -> serde_json::Value,
    ) -> Result<Option<VaultRef>, PrivacyError> {
        let mapping = self.scope.mapping();
        let storing_payload = self.settings.retention_secs.is_some();
        if mapping.is_empty() && !storing_payload {
            return Ok(None);
        }
        let store = self.privacy.registry.store();
        let key = self.privacy.registry.tenant_key(&self.tenant).await?;
        let subject_tag = self
            .subject
            .as_ref()
            .map(|subject| subject_tag(&key, subject));
        let now = types::unix_now();
        let vault = if mapping.is_empty() {
            None
        } else {
            let id = new_vault_id();
            let plaintext = mapping_json(mapping)?;
            let expires_at = now.saturating_add(self.settings.vault_ttl_secs);
            store
                .insert_vault_entry(NewVaultEntry {
                    id: id.clone(),
                    tenant: self.tenant.clone(),
                    subject_tag: subject_tag.clone(),
                    sealed: key.seal_record(&vault_context(&id), &plaintext),
                    expires_at,
                })
                .await?;
            Some(VaultRef { id, expires_at })
        };
        if let Some(retention) = self.settings.retention_secs {
            let mut payload = payload();
            if let (Some(vault), serde_json::Value::Object(object)) = (&vault, &mut payload) {
                object.insert("vault_id".into(), vault.id.clone().into());
            }
            let plaintext = serde_json::to_vec(&payload)
                .map_err(|e| PrivacyError::Invalid(format!("payload: {e}")))?;
            store
                .insert_payload(NewPayload {
                    tenant: self.tenant.clone(),
                    request_id: request_id.to_owned(),
                    route: route.to_owned(),
                    subject_tag,
                    sealed: key.seal_record(&payload_context(route, request_id), &plaintext),
                    expires_at: now.saturating_add(retention),
                })
                .await?;
        }
        Ok(vault)
    }

    fn apply_all(
        &mut self,
        direction: Direction,
        texts: &[String],
    ) -> Result<Vec<Redacted>, PrivacyError> {
        let policy = self.settings.policies.for_direction(direction);
        let scope = &mut self.scope;
        texts
            .iter()
            .map(|text| Ok(scope.apply(text, policy)?.text))
            .collect()
    }
}

/// The keyed tag a data subject is stored under in `key`'s tenant: what requests record
/// and what erasure looks for, so both must come from here.
fn subject_tag(key: &registry::TenantKey, subject: &Subject) -> String {
    key.keyed_tag("subject", subject.as_str().as_bytes())
}

/// The mode a caller of the redaction endpoint may ask for instead of the tenant's
/// input policy: every kind redacted, or every kind pseudonymized.
pub fn uniform_policy(action: Action, max_input_bytes: usize) -> Result<Policy, PrivacyError> {
    match action {
        Action::Redact | Action::Pseudonymize => {
            Ok(Policy::new(action).with_max_input_bytes(max_input_bytes))
        }
        _ => Err(PrivacyError::Invalid(
            "mode must be 'redact' or 'pseudonymize'".into(),
        )),
    }
}

/// The policy of the redaction endpoint when the caller names no mode: the tenant's
/// input policy with `allow` turned into `redact`, since an endpoint called "redact"
/// must not hand values back; `pseudonymize` and `block` stay as configured.
pub fn redaction_policy(input: &Policy) -> Policy {
    let strict = |action: Action| match action {
        Action::Allow => Action::Redact,
        other => other,
    };
    let mut policy = Policy::new(strict(input.default)).with_max_input_bytes(input.max_input_bytes);
    for (&kind, &action) in &input.actions {
        policy = policy.with(kind, strict(action));
    }
    policy
}

fn new_vault_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("pv_{}", hex::encode(bytes))
}

fn vault_context(id: &str) -> String {
    format!("pii-vault/{id}")
}

fn payload_context(route: &str, request_id: &str) -> String {
    format!("payload/{route}/{request_id}")
}

fn mapping_json(mapping: &pii::Mapping) -> Result<Vec<u8>, PrivacyError> {
    serde_json::to_vec(mapping).map_err(|e| PrivacyError::Invalid(format!("vault mapping: {e}")))
}
