//! Models (a name within a tenant, with its card) and their immutable, numbered versions.

use std::collections::BTreeSet;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::Row;
use types::{Day, ModelName, ModelRef, TenantName};

use crate::{get_bool, get_optional_bool, parse_tenant, Caller, Store, StoreError};

/// The part of a model card that lives on the model (not the version): who owns it,
/// under which licence and terms. Lineage is per version (`lineage.json`). `None`
/// means "not stated", which restricts nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelCard {
    pub owner: Option<String>,
    /// An SPDX licence expression such as `apache-2.0`.
    pub license: Option<String>,
    pub description: Option<String>,
    pub intended_use: Option<String>,
    pub out_of_scope_use: Option<String>,
    /// The tenants (besides the model's own) that may use the model; `None` is all.
    pub permitted_tenants: Option<Vec<TenantName>>,
    /// `Some(false)`: commercial tenants may not use the model.
    pub commercial_use: Option<bool>,
    /// The last day (UTC) the licence is valid.
    pub license_expires: Option<Day>,
    /// Text the licence asks every response to carry.
    pub attribution: Option<String>,
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>>;

impl ModelCard {
    /// The stored form of `permitted_tenants`: names joined by commas (names cannot
    /// contain one).
    fn permitted_text(&self) -> Option<String> {
        self.permitted_tenants.as_ref().map(|tenants| {
            tenants
                .iter()
                .map(TenantName::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// Binds the card's fields, in the order owner, license, description, intended use,
    /// out-of-scope use, permitted tenants, commercial use, expiry, attribution.
    fn bind_fields<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query
            .bind(self.owner.clone())
            .bind(self.license.clone())
            .bind(self.description.clone())
            .bind(self.intended_use.clone())
            .bind(self.out_of_scope_use.clone())
            .bind(self.permitted_text())
            .bind(self.commercial_use)
            .bind(self.license_expires.map(|date| date.to_string()))
            .bind(self.attribution.clone())
    }

    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let permitted: Option<String> = row.try_get("permitted_tenants")?;
        let permitted_tenants = permitted
            .map(|text| {
                text.split(',')
                    .filter(|name| !name.is_empty())
                    .map(|name| parse_tenant(name.to_owned()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let expires: Option<String> = row.try_get("license_expires")?;
        let license_expires = expires
            .map(|text| Day::try_from(text).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?;
        Ok(Self {
            owner: row.try_get("owner")?,
            license: row.try_get("license")?,
            description: row.try_get("description")?,
            intended_use: row.try_get("intended_use")?,
            out_of_scope_use: row.try_get("out_of_scope_use")?,
            permitted_tenants,
            commercial_use: get_optional_bool(row, "commercial_use")?,
            license_expires,
            attribution: row.try_get("attribution")?,
        })
    }
}

/// One model; its versions are [`VersionRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelRecord {
    pub id: i64,
    pub tenant: TenantName,
    pub name: ModelName,
    /// Visible (read-only) to every tenant when true.
    pub shared: bool,
    pub card: ModelCard,
    /// The newest existing version, `None` when every version was deleted.
    pub latest_version: Option<i64>,
    pub created_at: i64,
}

/// One file of a version: its path relative to the model folder, size and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Every file of a version; stored as JSON with the version row.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn file(&self, path: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// One immutable version of a model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VersionRecord {
    pub model_id: i64,
    pub tenant: TenantName,
    pub model: ModelName,
    /// 1, 2, 3, … per model; never reused, even after a delete.
    pub version: i64,
    pub manifest: Manifest,
    pub total_size: i64,
    pub created_at: i64,
}

impl VersionRecord {
    /// `NAME:VERSION` of this version.
    pub fn model_ref(&self) -> ModelRef {
        ModelRef {
            name: self.model.clone(),
            version: Some(self.version),
        }
    }
}

/// What [`Store::insert_version`] needs: the model (created on first use) and the files.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub tenant: TenantName,
    pub name: ModelName,
    /// Makes the model shared; `false` leaves an existing model as it is.
    pub shared: bool,
    /// Card fields that are `Some` replace the stored ones; `None` keeps them.
    pub card: ModelCard,
    pub manifest: Manifest,
}

const MODEL_SELECT: &str = "SELECT m.id, t.name AS tenant, m.name, m.shared, m.owner, m.license, \
     m.description, m.intended_use, m.out_of_scope_use, m.permitted_tenants, m.commercial_use, \
     m.license_expires, m.attribution, m.created_at, \
     (SELECT MAX(v.version) FROM model_versions v WHERE v.model_id = m.id) AS latest_version \
     FROM models m JOIN tenants t ON t.id = m.tenant_id";

const VERSION_SELECT: &str = "SELECT v.model_id, t.name AS tenant, m.name AS model, v.version, \
     v.manifest, v.total_size, v.created_at \
     FROM model_versions v JOIN models m ON m.id = v.model_id JOIN tenants t ON t.id = m.tenant_id";

impl ModelRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let name: String = row.try_get("name")?;
        Ok(Self {
            id: row.try_get("id")?,
            tenant: parse_tenant(row.try_get("tenant")?)?,
            name: ModelName::try_from(name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            shared: get_bool(row, "shared")?,
            card: ModelCard::from_row(row)?,
            latest_version: row.try_get("latest_version")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl VersionRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let model: String = row.try_get("model")?;
        let manifest: String = row.try_get("manifest")?;
        Ok(Self {
            model_id: row.try_get("model_id")?,
            tenant: parse_tenant(row.try_get("tenant")?)?,
            model: ModelName::try_from(model).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            version: row.try_get("version")?,
            manifest: serde_json::from_str(&manifest)
                .map_err(|e| StoreError::Corrupt(format!("manifest: {e}")))?,
            total_size: row.try_get("total_size")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl Store {
    /// Adds the next version of a model, creating the model on first use, all in one
    /// transaction: either the model row, the version number and the manifest are all
    /// committed or none is.
    ///
    /// The number comes from a counter on the model row that the transaction updates
    /// first, so concurrent inserts queue on that row (PostgreSQL row lock, SQLite write
    /// lock) and get distinct numbers; numbers of deleted versions are never reused.
    pub async fn insert_version(&self, new: NewVersion) -> Result<VersionRecord, StoreError> {
        let now = types::unix_now();
        let total_size = i64::try_from(new.manifest.total_size())
            .map_err(|_| StoreError::Conflict("the model is too large".into()))?;
        let manifest = serde_json::to_string(&new.manifest)
            .map_err(|e| StoreError::Corrupt(format!("manifest: {e}")))?;
        let mut tx = self.pool.begin().await?;
        // A write comes first so SQLite takes the write lock at once; a read first would
        // make a later lock upgrade fail under concurrency instead of waiting.
        let card = &new.card;
        let insert = sqlx::query(
            "INSERT INTO models (tenant_id, name, shared, owner, license, description, \
             intended_use, out_of_scope_use, permitted_tenants, commercial_use, \
             license_expires, attribution, last_version, created_at) \
             SELECT t.id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12 \
             FROM tenants t WHERE t.name = $13 \
             ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(new.name.as_str())
        .bind(new.shared);
        card.bind_fields(insert)
            .bind(now)
            .bind(new.tenant.as_str())
            .execute(&mut *tx)
            .await?;
        let update = sqlx::query(
            "UPDATE models SET last_version = last_version + 1, \
             shared = (shared OR $1), \
             owner = COALESCE($2, owner), license = COALESCE($3, license), \
             description = COALESCE($4, description), \
             intended_use = COALESCE($5, intended_use), \
             out_of_scope_use = COALESCE($6, out_of_scope_use), \
             permitted_tenants = COALESCE($7, permitted_tenants), \
             commercial_use = COALESCE($8, commercial_use), \
             license_expires = COALESCE($9, license_expires), \
             attribution = COALESCE($10, attribution) \
             WHERE name = $11 AND tenant_id = (SELECT id FROM tenants WHERE name = $12) \
             RETURNING id, last_version",
        )
        .bind(new.shared);
        let row = card
            .bind_fields(update)
            .bind(new.name.as_str())
            .bind(new.tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("tenant '{}'", new.tenant)))?;
        let model_id: i64 = row.try_get("id")?;
        let version: i64 = row.try_get("last_version")?;
        sqlx::query(
            "INSERT INTO model_versions (model_id, version, manifest, total_size, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(model_id)
        .bind(version)
        .bind(manifest.as_str())
        .bind(total_size)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(VersionRecord {
            model_id,
            tenant: new.tenant,
            model: new.name,
            version,
            manifest: new.manifest,
            total_size,
            created_at: now,
        })
    }

    /// The models `caller` may see, by tenant then name.
    pub async fn list_models(&self, caller: &Caller) -> Result<Vec<ModelRecord>, StoreError> {
        let sql =
            format!("{MODEL_SELECT} WHERE $1 OR t.name = $2 OR m.shared ORDER BY t.name, m.name");
        let rows = sqlx::query(&sql)
            .bind(caller.is_admin)
            .bind(caller.tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ModelRecord::from_row).collect()
    }

    /// The model `name` as `caller` sees it: its own tenant's model first, otherwise the
    /// one visible model of that name. Several visible candidates from other tenants are
    /// `Ambiguous`; an admin picks one by acting as its tenant.
    pub async fn find_model(
        &self,
        caller: &Caller,
        name: &ModelName,
    ) -> Result<ModelRecord, StoreError> {
        let sql = format!(
            "{MODEL_SELECT} WHERE m.name = $1 AND ($2 OR t.name = $3 OR m.shared) ORDER BY t.name"
        );
        let rows = sqlx::query(&sql)
            .bind(name.as_str())
            .bind(caller.is_admin)
            .bind(caller.tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut models = rows
            .iter()
            .map(ModelRecord::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(index) = models.iter().position(|m| m.tenant == caller.tenant) {
            return Ok(models.swap_remove(index));
        }
        match models.len() {
            0 => Err(StoreError::NotFound(format!("model '{name}'"))),
            1 => Ok(models.remove(0)),
            _ => {
                let tenants: BTreeSet<String> =
                    models.iter().map(|m| m.tenant.to_string()).collect();
                Err(StoreError::Ambiguous(format!(
                    "model name '{name}' exists in several tenants ({}); choose the tenant",
                    tenants.into_iter().collect::<Vec<_>>().join(", ")
                )))
            }
        }
    }

    /// The version `model_ref` names (the latest when it has no version) as `caller`
    /// sees it, with its model.
    pub async fn resolve(
        &self,
        caller: &Caller,
        model_ref: &ModelRef,
    ) -> Result<(ModelRecord, VersionRecord), StoreError> {
        let model = self.find_model(caller, &model_ref.name).await?;
        let version = match model_ref.version.or(model.latest_version) {
            Some(version) => version,
            None => {
                return Err(StoreError::NotFound(format!(
                    "a version of model '{}'",
                    model.name
                )))
            }
        };
        let version = self
            .version(model.id, version)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("model '{}:{version}'", model.name)))?;
        Ok((model, version))
    }

    /// One version by model id, without visibility checks: for callers that already
    /// resolved the model through [`Store::find_model`].
    pub async fn version(
        &self,
        model_id: i64,
        version: i64,
    ) -> Result<Option<VersionRecord>, StoreError> {
        let sql = format!("{VERSION_SELECT} WHERE v.model_id = $1 AND v.version = $2");
        let row = sqlx::query(&sql)
            .bind(model_id)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(VersionRecord::from_row).transpose()
    }

    /// The versions of model `name` as `caller` sees it, oldest first.
    pub async fn list_versions(
        &self,
        caller: &Caller,
        name: &ModelName,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        let model = self.find_model(caller, name).await?;
        let sql = format!("{VERSION_SELECT} WHERE v.model_id = $1 ORDER BY v.version");
        let rows = sqlx::query(&sql)
            .bind(model.id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(VersionRecord::from_row).collect()
    }

    /// Deletes a model with all its versions. Another tenant's shared model is visible
    /// but `Forbidden`; a private one is `NotFound`.
    pub async fn delete_model(
        &self,
        caller: &Caller,
        name: &ModelName,
    ) -> Result<ModelRecord, StoreError> {
        let model = self.find_model(caller, name).await?;
        check_write(caller, &model)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM model_versions WHERE model_id = $1")
            .bind(model.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM models WHERE id = $1")
            .bind(model.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(model)
    }

    /// Deletes one version; the model stays (with its version counter) even when it was
    /// the last one.
    pub async fn delete_version(
        &self,
        caller: &Caller,
        name: &ModelName,
        version: i64,
    ) -> Result<VersionRecord, StoreError> {
        let model = self.find_model(caller, name).await?;
        check_write(caller, &model)?;
        let record = self
            .version(model.id, version)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("model '{name}:{version}'")))?;
        let result = sqlx::query("DELETE FROM model_versions WHERE model_id = $1 AND version = $2")
            .bind(model.id)
            .bind(version)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("model '{name}:{version}'")));
        }
        Ok(record)
    }

    /// Replaces the whole card of model `name` (every field, `None` clears it). Another
    /// tenant's shared model is `Forbidden`, a private one `NotFound`.
    pub async fn set_card(
        &self,
        caller: &Caller,
        name: &ModelName,
        card: &ModelCard,
    ) -> Result<ModelRecord, StoreError> {
        let model = self.find_model(caller, name).await?;
        check_write(caller, &model)?;
        let update = sqlx::query(
            "UPDATE models SET owner = $1, license = $2, description = $3, intended_use = $4, \
             out_of_scope_use = $5, permitted_tenants = $6, commercial_use = $7, \
             license_expires = $8, attribution = $9 WHERE id = $10",
        );
        card.bind_fields(update)
            .bind(model.id)
            .execute(&self.pool)
            .await?;
        Ok(ModelRecord {
            card: card.clone(),
            ..model
        })
    }

    /// Every SHA-256 (hex) that some version's manifest, a dataset or an unfinished job
    /// references: what blob garbage collection must keep.
    pub async fn referenced_digests(&self) -> Result<BTreeSet<String>, StoreError> {
        let rows = sqlx::query("SELECT manifest FROM model_versions")
            .fetch_all(&self.pool)
            .await?;
        let mut digests = BTreeSet::new();
        for row in &rows {
            let manifest: String = row.try_get("manifest")?;
            let manifest: Manifest = serde_json::from_str(&manifest)
                .map_err(|e| StoreError::Corrupt(format!("manifest: {e}")))?;
            digests.extend(manifest.files.into_iter().map(|f| f.sha256));
        }
        digests.extend(self.job_referenced_digests().await?);
        Ok(digests)
    }

    /// The SHA-256s (hex) that `tenant`'s versions reference: what garbage collection
    /// must keep in that tenant's blob directory (blobs are sealed per tenant).
    pub async fn referenced_digests_of(
        &self,
        tenant: &TenantName,
    ) -> Result<BTreeSet<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT v.manifest FROM model_versions v \
             JOIN models m ON m.id = v.model_id \
             JOIN tenants t ON t.id = m.tenant_id WHERE t.name = $1",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut digests = BTreeSet::new();
        for row in &rows {
            let manifest: String = row.try_get("manifest")?;
            let manifest: Manifest = serde_json::from_str(&manifest)
                .map_err(|e| StoreError::Corrupt(format!("manifest: {e}")))?;
            digests.extend(manifest.files.into_iter().map(|f| f.sha256));
        }
        Ok(digests)
    }
}

fn check_write(caller: &Caller, model: &ModelRecord) -> Result<(), StoreError> {
    if caller.may_write(&model.tenant) {
        Ok(())
    } else {
        Err(StoreError::Forbidden(format!(
            "model '{}' is shared by tenant '{}' and can only be changed there",
            model.name, model.tenant
        )))
    }
}
