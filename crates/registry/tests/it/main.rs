//! Registry tests: real imports into a real store (SQLite, and PostgreSQL where noted)
//! and a filesystem blob store.

mod crash;
mod encryption;
mod import;
mod minilm;
mod refusals;
mod signing;
mod support;
mod tar_upload;
mod visibility;
