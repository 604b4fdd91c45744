//! `charter keys`: mint, list and revoke API keys. `create` prints only the key.

use std::process::ExitCode;

use clap::{ArgGroup, Subcommand};
use governance::KeyRequest;
use store::{Caller, KeyLimits};
use types::{Scopes, TenantName};

use super::Context;
use crate::services::Services;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (alone, on stdout); it is not shown again
    #[command(group(ArgGroup::new("who").required(true).args(["admin", "tenant"])))]
    Create {
        /// An admin key (tenant `admin`, every scope)
        #[arg(long)]
        admin: bool,
        /// The tenant the key belongs to
        #[arg(long, requires = "scopes")]
        tenant: Option<TenantName>,
        /// Comma-separated scopes: inference, models:read, models:write, data, jobs, audit:read, pii:reveal
        #[arg(long, value_parser = Scopes::parse_list)]
        scopes: Option<Scopes>,
        /// A note on what the key is for
        #[arg(long, default_value = "")]
        description: String,
        /// Requests per minute allowed for this key
        #[arg(long)]
        rpm: Option<i64>,
        /// Tokens per minute allowed for this key
        #[arg(long)]
        tpm: Option<i64>,
        /// Tokens per day allowed for this key
        #[arg(long)]
        tpd: Option<i64>,
    },
    /// List keys (ids, tenants, scopes; never secrets)
    List,
    /// Revoke a key by its id
    Revoke { id: String },
}

pub async fn run(context: Context, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let services = Services::open(&context.storage).await?;
    match command {
        KeysCommand::Create {
            admin,
            tenant,
            scopes,
            description,
            rpm,
            tpm,
            tpd,
        } => {
            let (tenant, scopes) = if admin {
                (TenantName::try_from(types::ADMIN_TENANT)?, Scopes::admin())
            } else {
                let tenant = tenant
                    .ok_or_else(|| anyhow::anyhow!("--tenant is required without --admin"))?;
                (tenant, scopes.unwrap_or_default())
            };
            if scopes.iter().next().is_none() {
                anyhow::bail!("--scopes needs at least one scope");
            }
            let request = KeyRequest {
                tenant,
                scopes,
                description,
                expires_at: None,
                limits: KeyLimits { rpm, tpm, tpd },
            };
            let (_, text) = governance::mint_key(&services.store, request).await?;
            println!("{}", text.expose());
        }
        KeysCommand::List => {
            for key in services.store.list_keys(&Caller::admin()).await? {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{state}",
                    key.key_id,
                    key.tenant,
                    key.scopes.to_list()
                );
            }
        }
        KeysCommand::Revoke { id } => {
            services.store.revoke_key(&Caller::admin(), &id).await?;
            eprintln!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
