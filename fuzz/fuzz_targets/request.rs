//! Fuzz target for request parsing: arbitrary bytes as the body of every JSON route
//! (nesting bound, serde into the wire types, the embeddings input checks) must give a
//! value or an error in the one error shape, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    api::fuzzing::parse_requests(data);
});
