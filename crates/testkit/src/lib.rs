//! Test fixtures shared by the crates' integration tests: a throwaway PostgreSQL
//! cluster and temporary directories.

pub mod postgres;
pub mod tempdir;
