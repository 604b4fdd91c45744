//! Test fixtures shared by the crates' integration tests: a throwaway PostgreSQL
//! cluster, temporary directories, and canary searches of data dirs.

pub mod canary;
pub mod postgres;
pub mod tempdir;
