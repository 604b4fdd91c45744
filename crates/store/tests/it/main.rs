//! Store tests; every test body runs on SQLite and on a throwaway PostgreSQL cluster.

mod cards;
mod change_audit;
mod jobs;
mod keys;
mod models;
mod privacy;
mod support;
mod tenants;
mod usage;
