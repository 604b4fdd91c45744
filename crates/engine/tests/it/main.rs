//! Integration tests for the engine crate (one binary for the crate, one module per
//! feature).

mod common;
mod encoder;
