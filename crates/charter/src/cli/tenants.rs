//! `charter tenants`: create and list tenants.

use std::process::ExitCode;

use clap::Subcommand;
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
    }
    Ok(ExitCode::SUCCESS)
}
