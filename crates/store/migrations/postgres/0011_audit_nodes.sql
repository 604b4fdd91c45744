-- Roots of perfect subtrees of the audit log's Merkle tree (hex), stored by the
-- writer as their last leaf is appended: the root of leaves idx·2^level ..
-- (idx+1)·2^level. Only high levels are kept (see governance::audit); with them an
-- inclusion proof reads a few hundred rows however long the log is. Derived data:
-- a proof built from them is checked against the signed root before it is served.
CREATE TABLE audit_nodes (
    level  BIGINT  NOT NULL,
    idx    BIGINT  NOT NULL,
    hash   TEXT    NOT NULL,
    PRIMARY KEY (level, idx)
);
