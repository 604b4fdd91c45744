//! The one integration test binary of `governance`; features are modules.

mod pii;
