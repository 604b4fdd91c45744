-- Model cards, signed model versions and tenants' trusted publisher keys (PostgreSQL).
-- NULL card fields mean "not stated" (no restriction).

-- The rest of the card, per model (owner, license and description are in 0001).
ALTER TABLE models ADD COLUMN intended_use TEXT;
ALTER TABLE models ADD COLUMN out_of_scope_use TEXT;
-- Comma-separated tenant names; NULL means every tenant.
ALTER TABLE models ADD COLUMN permitted_tenants TEXT;
-- NULL: not stated (allowed); FALSE: commercial tenants may not use the model.
ALTER TABLE models ADD COLUMN commercial_use BOOLEAN;
-- YYYY-MM-DD, the last day the licence is valid (UTC).
ALTER TABLE models ADD COLUMN license_expires TEXT;
ALTER TABLE models ADD COLUMN attribution TEXT;

-- Tenants that serve only versions signed by a key they trust.
ALTER TABLE tenants ADD COLUMN require_signed_models BOOLEAN NOT NULL DEFAULT FALSE;

-- Publisher signatures over a version's manifest: the signed statement as JSON
-- (crypto::signing::SignedStatement) and the signer's public key (SPKI PEM).
CREATE TABLE model_signatures (
    model_id         BIGINT NOT NULL,
    version          BIGINT NOT NULL,
    key_id           TEXT   NOT NULL,
    public_key       TEXT   NOT NULL,
    manifest_sha256  TEXT   NOT NULL,
    statement        TEXT   NOT NULL,
    signed_at        BIGINT NOT NULL,
    PRIMARY KEY (model_id, version, key_id),
    FOREIGN KEY (model_id, version) REFERENCES model_versions (model_id, version) ON DELETE CASCADE
);

-- Publisher keys a tenant trusts (SPKI PEM), by key id.
CREATE TABLE tenant_trusted_keys (
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_id      TEXT   NOT NULL,
    public_key  TEXT   NOT NULL,
    added_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key_id)
);
