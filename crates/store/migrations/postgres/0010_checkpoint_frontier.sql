-- The Merkle frontier each checkpoint was sealed over (its peaks, hex, comma-separated,
-- largest subtree first) and the chain's last link at that size, so a restarted
-- writer resumes from the latest checkpoint instead of re-reading the whole chain.
-- Empty for checkpoints sealed before this migration.
ALTER TABLE audit_checkpoints ADD COLUMN frontier TEXT;
ALTER TABLE audit_checkpoints ADD COLUMN last_hash TEXT;
