//! One entry point for fuzzing request parsing: the bytes of a request body go through
//! the JSON parsing every route uses and into the routes' wire types, then through the
//! embeddings input checks. Used by `fuzz/fuzz_targets/request.rs` and by a stable
//! test over hostile inputs; public only for them.

use serde::de::DeserializeOwned;

use crate::extract::parse_json;
use crate::routes::{
    embeddings, CreateKeyRequest, CreateTenantRequest, TenantLimitsRequest, V2InferRequest,
};

/// Parses `body` as each JSON request type. Every outcome is a value or an error in the
/// one error shape; a panic is a bug.
pub fn parse_requests(body: &[u8]) {
    if let Ok(request) = parse_json::<embeddings::EmbeddingsRequest>(body) {
        let _ = embeddings::parse_input(request.input, 2048);
    }
    parse::<V2InferRequest>(body);
    parse::<CreateKeyRequest>(body);
    parse::<CreateTenantRequest>(body);
    parse::<TenantLimitsRequest>(body);
    parse::<serde_json::Value>(body);
}

fn parse<T: DeserializeOwned>(body: &[u8]) {
    if let Err(error) = parse_json::<T>(body) {
        debug_assert!(error.status.is_client_error(), "{error}");
    }
}
