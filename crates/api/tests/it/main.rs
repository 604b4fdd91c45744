//! Integration tests of the HTTP API: the real router, store and registry, in-process
//! through `tower::ServiceExt::oneshot` on SQLite files in temp dirs.

mod audit;
mod cards;
mod common;
mod embeddings;
mod errors;
mod explain;
mod hardening;
mod isolation;
mod jobs;
mod keys;
mod limits;
mod openapi;
mod permissions;
mod privacy;
mod signatures;
mod support;
mod upload;
mod v2;
