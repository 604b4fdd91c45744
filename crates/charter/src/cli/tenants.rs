//! `charter tenants`: create, list and configure tenants, and the model publisher keys
//! they trust.

use std::process::ExitCode;

use clap::Subcommand;
use crypto::signing::VerifyingKey;
use types::TenantName;

use super::Context;
use crate::services::Services;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant
    Create {
        name: TenantName,
        /// The tenant uses models commercially (licence terms depend on it)
        #[arg(long)]
        commercial: bool,
    },
    /// List tenants
    List,
    /// Change a tenant's settings
    Set {
        name: TenantName,
        /// The tenant uses models commercially (licence terms depend on it)
        #[arg(long, value_name = "true|false")]
        commercial: Option<bool>,
        /// Serve the tenant only model versions signed by a key it trusts
        #[arg(long, value_name = "true|false")]
        require_signed_models: Option<bool>,
    },
    /// Trust a model publisher's ed25519 public key for a tenant
    TrustKey {
        name: TenantName,
        /// The public key: an SPKI PEM file, or the PEM text itself
        #[arg(long, value_name = "PEM")]
        public_key: String,
    },
    /// Stop trusting a publisher key (by key id)
    DistrustKey { name: TenantName, key_id: String },
    /// List the publisher keys a tenant trusts, and whether it requires signed models
    TrustedKeys { name: TenantName },
}

pub async fn run(context: Context, command: TenantsCommand) -> anyhow::Result<ExitCode> {
    let services = Services::open(&context.storage).await?;
    match command {
        TenantsCommand::Create { name, commercial } => {
            let tenant = services.store.create_tenant(&name, commercial).await?;
            println!("{}", tenant.name);
        }
        TenantsCommand::List => {
            for tenant in services.store.list_tenants().await? {
                let kind = if tenant.commercial {
                    "commercial"
                } else {
                    "non-commercial"
                };
                println!("{}\t{kind}", tenant.name);
            }
        }
        TenantsCommand::Set {
            name,
            commercial,
            require_signed_models,
        } => {
            if let Some(commercial) = commercial {
                services.store.set_commercial(&name, commercial).await?;
            }
            if let Some(required) = require_signed_models {
                services
                    .store
                    .set_require_signed_models(&name, required)
                    .await?;
            }
        }
        TenantsCommand::TrustKey { name, public_key } => {
            let pem = super::read_pem(&public_key, "public key")?;
            let key = VerifyingKey::from_public_key_pem(&pem)?;
            let record = services
                .store
                .trust_key(&name, &key.key_id(), &key.to_public_key_pem())
                .await?;
            println!("{}", record.key_id);
        }
        TenantsCommand::DistrustKey { name, key_id } => {
            services.store.distrust_key(&name, &key_id).await?;
        }
        TenantsCommand::TrustedKeys { name } => {
            let policy = services.store.serving_policy(&name).await?;
            let required = if policy.require_signed_models {
                "required"
            } else {
                "not required"
            };
            eprintln!("signed models: {required}");
            for key in services.store.trusted_keys(&name).await? {
                println!("{}\t{}", key.key_id, key.added_at);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
