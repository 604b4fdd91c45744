//! Pure synchronous ML for Charter: model families, training, compression, explanation.
//!
//! Knows nothing of HTTP, async or SQL; the `inference` and `jobs` crates call into it
//! from their own threads.

pub mod tensor;
