//! API integration tests: in-process router, real SQLite and blob store.

mod jobs;
mod support;
mod v2;
