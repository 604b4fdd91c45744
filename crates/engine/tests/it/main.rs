//! The engine's one integration test binary; each module covers one feature.

mod common;
mod dataset;
mod encoder;
mod explain;
mod tensor_grad;
mod tensor_spec;
mod train;
