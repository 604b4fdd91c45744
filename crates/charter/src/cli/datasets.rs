//! `charter datasets`: upload, list and remove training datasets.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use jobs::datasets::CsvColumns;
use jobs::{DatasetFormat, DatasetUpload, Datasets};
use store::Caller;
use types::{ModelName, TenantName};

use super::Context;
use crate::services::Services;

/// Largest dataset file the CLI stores.
const MAX_DATASET_BYTES: u64 = 16 << 30;

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Validate a JSONL or CSV file and store it as a dataset
    Upload {
        /// The dataset file
        file: PathBuf,
        /// Name of the dataset, unique in the tenant
        #[arg(long)]
        name: ModelName,
        /// Tenant that owns the dataset [default: admin]
        #[arg(long)]
        tenant: Option<TenantName>,
        /// jsonl or csv [default: from the file extension]
        #[arg(long)]
        format: Option<DatasetFormat>,
        /// CSV: comma-separated feature columns
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// CSV: comma-separated target columns
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
    },
    /// List the datasets of a tenant
    List {
        #[arg(long)]
        tenant: Option<TenantName>,
    },
    /// Remove a dataset
    Rm {
        name: ModelName,
        #[arg(long)]
        tenant: Option<TenantName>,
    },
}

pub async fn run(context: Context, command: DatasetsCommand) -> anyhow::Result<ExitCode> {
    let services = Services::open(&context.storage).await?;
    let datasets = Datasets::new(services.registry.clone());
    match command {
        DatasetsCommand::Upload {
            file,
            name,
            tenant,
            format,
            features,
            targets,
        } => {
            let csv_columns = csv_columns(features, targets);
            let upload = DatasetUpload {
                tenant: tenant_or_admin(tenant)?,
                name,
                format: format.unwrap_or_else(|| DatasetFormat::from_path(&file)),
                csv_columns,
                path: file,
                max_bytes: MAX_DATASET_BYTES,
            };
            let record = datasets.upload(upload).await?;
            println!("{}", record.name);
            eprintln!(
                "stored {} rows ({} bytes, sha256 {})",
                record.n_rows, record.size, record.digest
            );
        }
        DatasetsCommand::List { tenant } => {
            let caller = Caller::tenant(tenant_or_admin(tenant)?);
            for record in datasets.list(&caller).await? {
                println!(
                    "{}\t{}\t{} rows\t{}",
                    record.name, record.format, record.n_rows, record.digest
                );
            }
        }
        DatasetsCommand::Rm { name, tenant } => {
            let caller = Caller::tenant(tenant_or_admin(tenant)?);
            let record = datasets.remove(&caller, &name).await?;
            eprintln!("removed dataset {}", record.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn tenant_or_admin(tenant: Option<TenantName>) -> anyhow::Result<TenantName> {
    Ok(match tenant {
        Some(tenant) => tenant,
        None => TenantName::try_from(types::ADMIN_TENANT)?,
    })
}

pub(super) fn csv_columns(features: Vec<String>, targets: Vec<String>) -> Option<CsvColumns> {
    if features.is_empty() && targets.is_empty() {
        None
    } else {
        Some(CsvColumns { features, targets })
    }
}
