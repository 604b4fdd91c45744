//! The engine's one integration test binary; each module covers one feature.

mod dataset;
mod tensor_grad;
mod tensor_spec;
mod train;
