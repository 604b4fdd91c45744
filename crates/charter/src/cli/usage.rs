//! `charter usage`: metered requests and tokens per tenant, key, model and UTC day,
//! read from the store (a running server adds its tally every `--usage-flush-secs`).

use std::process::ExitCode;

use clap::Args;
use store::UsageFilter;
use types::{Day, TenantName};

use super::Context;
use crate::services::Services;

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only this tenant
    #[arg(long)]
    pub tenant: Option<TenantName>,
    /// Only this API key id
    #[arg(long)]
    pub key: Option<String>,
    /// Only this model (name without version)
    #[arg(long)]
    pub model: Option<String>,
    /// First UTC day, YYYY-MM-DD
    #[arg(long)]
    pub from: Option<Day>,
    /// Last UTC day, YYYY-MM-DD
    #[arg(long)]
    pub to: Option<Day>,
}

/// Prints `day tenant key model requests tokens`, tab-separated, one row per line.
pub async fn run(context: Context, args: UsageArgs) -> anyhow::Result<ExitCode> {
    let services = Services::open(&context.storage).await?;
    let filter = UsageFilter {
        tenant: args.tenant,
        key_id: args.key,
        model: args.model,
        from: args.from,
        to: args.to,
    };
    for row in services.store.usage(&filter).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            row.day, row.tenant, row.key_id, row.model, row.requests, row.tokens
        );
    }
    Ok(ExitCode::SUCCESS)
}
