//! Store tests; every test body runs on SQLite and on a throwaway PostgreSQL cluster.

mod jobs;
mod keys;
mod models;
mod privacy;
mod support;
mod tenants;
