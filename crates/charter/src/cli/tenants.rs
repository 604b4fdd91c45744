//! `charter tenants`: create, list and change tenants (rate limits, commercial use,
//! signed models only), and the model publisher keys they trust.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use crypto::signing::VerifyingKey;
use store::KeyLimits;
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
        #[command(flatten)]
        limits: NewLimits,
    },
    /// Change a tenant's settings; settings not named stay as they are
    Set {
        name: TenantName,
        /// Requests per minute shared by the tenant's keys, or `none`
        #[arg(long, value_name = "N|none", value_parser = parse_limit)]
        rpm: Option<Limit>,
        /// Tokens per minute shared by the tenant's keys, or `none`
        #[arg(long, value_name = "N|none", value_parser = parse_limit)]
        tpm: Option<Limit>,
        /// Tokens per UTC day shared by the tenant's keys, or `none`
        #[arg(long, value_name = "N|none", value_parser = parse_limit)]
        tpd: Option<Limit>,
        /// The tenant uses models commercially (licence terms depend on it)
        #[arg(long, value_name = "true|false")]
        commercial: Option<bool>,
        /// Serve the tenant only model versions signed by a key it trusts
        #[arg(long, value_name = "true|false")]
        require_signed_models: Option<bool>,
    },
    /// List tenants with their rate limits
    List,
    /// Trust a model publisher's ed25519 public key for a tenant
    TrustKey {
        name: TenantName,
        /// The public key: an SPKI PEM file, or the PEM text itself
        #[arg(long, value_name = "PEM", allow_hyphen_values = true)]
        public_key: String,
    },
    /// Stop trusting a publisher key (by key id)
    DistrustKey { name: TenantName, key_id: String },
    /// List the publisher keys a tenant trusts, and whether it requires signed models
    TrustedKeys { name: TenantName },
}

/// Rate limits of a new key or tenant; each absent means no limit.
#[derive(Debug, Args)]
pub struct NewLimits {
    /// Requests per minute
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub rpm: Option<i64>,
    /// Tokens per minute (tensor models: input rows)
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub tpm: Option<i64>,
    /// Tokens per UTC day
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub tpd: Option<i64>,
}

impl From<NewLimits> for KeyLimits {
    fn from(limits: NewLimits) -> Self {
        Self {
            rpm: limits.rpm,
            tpm: limits.tpm,
            tpd: limits.tpd,
        }
    }
}

/// A limit to set: a number of 1 or more, or none.
#[derive(Debug, Clone, Copy)]
pub struct Limit(Option<i64>);

fn parse_limit(text: &str) -> Result<Limit, String> {
    if text == "none" {
        return Ok(Limit(None));
    }
    match text.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(Limit(Some(n))),
        _ => Err("expected a whole number of 1 or more, or 'none'".to_owned()),
    }
}

pub async fn run(context: Context, command: TenantsCommand) -> anyhow::Result<ExitCode> {
    let services = Services::open(&context.storage).await?;
    let store = &services.store;
    match command {
        TenantsCommand::Create {
            name,
            commercial,
            limits,
        } => {
            let tenant = store.create_tenant(&name, commercial).await?;
            let limits = KeyLimits::from(limits);
            if !limits.is_unlimited() {
                store.set_tenant_limits(&name, limits).await?;
            }
            println!("{}", tenant.name);
        }
        TenantsCommand::Set {
            name,
            rpm,
            tpm,
            tpd,
            commercial,
            require_signed_models,
        } => {
            if let Some(commercial) = commercial {
                store.set_commercial(&name, commercial).await?;
            }
            if let Some(required) = require_signed_models {
                store.set_require_signed_models(&name, required).await?;
            }
            if rpm.is_none() && tpm.is_none() && tpd.is_none() {
                return Ok(ExitCode::SUCCESS);
            }
            let tenant = store
                .tenant_by_name(&name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("tenant '{name}' not found"))?;
            let keep = |new: Option<Limit>, old: Option<i64>| new.map_or(old, |Limit(l)| l);
            let limits = KeyLimits {
                rpm: keep(rpm, tenant.limits.rpm),
                tpm: keep(tpm, tenant.limits.tpm),
                tpd: keep(tpd, tenant.limits.tpd),
            };
            let tenant = store.set_tenant_limits(&name, limits).await?;
            eprintln!("{}: {}", tenant.name, describe(&tenant.limits));
        }
        TenantsCommand::List => {
            for tenant in store.list_tenants().await? {
                let kind = if tenant.commercial {
                    "commercial"
                } else {
                    "non-commercial"
                };
                println!("{}\t{kind}\t{}", tenant.name, describe(&tenant.limits));
            }
        }
        TenantsCommand::TrustKey { name, public_key } => {
            let pem = super::read_pem(&public_key, "public key")?;
            let key = VerifyingKey::from_public_key_pem(&pem)?;
            let record = store
                .trust_key(&name, &key.key_id(), &key.to_public_key_pem())
                .await?;
            println!("{}", record.key_id);
        }
        TenantsCommand::DistrustKey { name, key_id } => {
            store.distrust_key(&name, &key_id).await?;
        }
        TenantsCommand::TrustedKeys { name } => {
            let policy = store.serving_policy(&name).await?;
            let required = if policy.require_signed_models {
                "required"
            } else {
                "not required"
            };
            eprintln!("signed models: {required}");
            for key in store.trusted_keys(&name).await? {
                println!("{}\t{}", key.key_id, key.added_at);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rpm=10 tpm=- tpd=5000`, `-` for no limit.
pub fn describe(limits: &KeyLimits) -> String {
    let show = |limit: Option<i64>| limit.map_or("-".to_owned(), |l| l.to_string());
    format!(
        "rpm={} tpm={} tpd={}",
        show(limits.rpm),
        show(limits.tpm),
        show(limits.tpd)
    )
}
