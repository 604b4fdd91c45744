-- Per-tenant data keys, stored only wrapped by a master key (SQLite).
-- A destroyed key keeps its row (for the record) but loses its bytes: that is the
-- crypto-shredding of the tenant's blobs. The tenant is kept by name, not by foreign key,
-- so the record outlives the tenant row.

CREATE TABLE data_keys (
    id              INTEGER PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    wrapped         BLOB,
    master_version  BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    destroyed_at    BIGINT,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);
CREATE UNIQUE INDEX data_keys_live ON data_keys (tenant) WHERE destroyed_at IS NULL;
