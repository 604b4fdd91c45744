//! End-to-end tests of the `charter` binary.

mod train;
