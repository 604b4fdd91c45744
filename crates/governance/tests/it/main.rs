//! The one integration test binary of `governance`; features are modules.

mod audit;
mod metering;
mod pii;
