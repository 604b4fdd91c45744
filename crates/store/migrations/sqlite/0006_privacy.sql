-- Privacy (SQLite): per-tenant PII policies and payload retention, the pseudonym vault,
-- and stored request payloads. Vault mappings and payloads are sealed under the tenant's
-- data key (crypto::envelope::seal_record) before they reach this database; data subjects
-- appear only as keyed tags (HMAC under the tenant's data key), never as given.
-- Timestamps are seconds since the Unix epoch. Rows go with their tenant.

CREATE TABLE privacy_settings (
    tenant_id       BIGINT  PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- JSON: governance::pii::PolicySet (input, output and logs policies).
    policies        TEXT    NOT NULL,
    -- NULL: request payloads are not stored (the default).
    retention_secs  BIGINT,
    vault_ttl_secs  BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);

CREATE TABLE pii_vault (
    id           TEXT    PRIMARY KEY,
    tenant_id    BIGINT  NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subject_tag  TEXT,
    sealed       BLOB    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX pii_vault_subject ON pii_vault (tenant_id, subject_tag);
CREATE INDEX pii_vault_expiry ON pii_vault (expires_at);

CREATE TABLE stored_payloads (
    id           INTEGER PRIMARY KEY,
    tenant_id    BIGINT  NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    request_id   TEXT    NOT NULL,
    route        TEXT    NOT NULL,
    subject_tag  TEXT,
    sealed       BLOB    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX stored_payloads_subject ON stored_payloads (tenant_id, subject_tag);
CREATE INDEX stored_payloads_expiry ON stored_payloads (expires_at);
