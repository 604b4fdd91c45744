//! Blob store tests through the public constructor only.

mod sealed;
