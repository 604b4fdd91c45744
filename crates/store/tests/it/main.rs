//! Store tests; every test body runs on SQLite and on a throwaway PostgreSQL cluster.

mod cards;
mod jobs;
mod keys;
mod models;
mod support;
mod tenants;
