//! TODO

pub mod pii;
