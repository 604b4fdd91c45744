//! `charter models`: import, list, show and remove models in the registry.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use registry::{ImportRequest, Removed};
use store::Caller;
use types::{ModelName, ModelRef, TenantName};

use super::Context;
use crate::services::Services;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Import a Hugging Face model folder (config.json, *.safetensors, tokenizer files)
    Import {
        /// The model folder
        dir: PathBuf,
        /// Name of the model in the registry
        #[arg(long)]
        name: ModelName,
        /// Tenant that owns the model [default: admin]
        #[arg(long)]
        tenant: Option<TenantName>,
        /// Make the model usable by every tenant
        #[arg(long)]
        shared: bool,
        /// SPDX licence id, e.g. apache-2.0
        #[arg(long)]
        license: Option<String>,
        /// Who created and owns the model
        #[arg(long)]
        owner: Option<String>,
        /// What the model is for
        #[arg(long)]
        description: Option<String>,
    },
    /// List models and their latest versions
    List,
    /// Show a model version and its manifest (NAME for the latest, NAME:VERSION)
    Show { model: ModelRef },
    /// Remove a model (NAME) or one version (NAME:VERSION)
    Rm { model: ModelRef },
}

pub async fn run(context: Context, command: ModelsCommand) -> anyhow::Result<ExitCode> {
    let services = Services::open(&context.storage).await?;
    let registry = &services.registry;
    let caller = Caller::admin();
    match command {
        ModelsCommand::Import {
            dir,
            name,
            tenant,
            shared,
            license,
            owner,
            description,
        } => {
            let tenant = match tenant {
                Some(tenant) => tenant,
                None => TenantName::try_from(types::ADMIN_TENANT)?,
            };
            let request = ImportRequest {
                name,
                tenant,
                shared,
                license,
                owner,
                description,
            };
            let version = registry.import_dir(&dir, request).await?;
            println!("{}", version.model_ref());
            eprintln!(
                "imported {} files, {} bytes",
                version.manifest.files.len(),
                version.total_size
            );
        }
        ModelsCommand::List => {
            for model in registry.list(&caller).await? {
                let latest = model
                    .latest_version
                    .map_or("-".to_owned(), |v| v.to_string());
                let license = model.card.license.as_deref().unwrap_or("-");
                let shared = if model.shared { "shared" } else { "private" };
                println!(
                    "{}\t{}\tlatest {latest}\t{license}\t{shared}",
                    model.name, model.tenant
                );
            }
        }
        ModelsCommand::Show { model } => {
            let (model, version) = registry.show(&model, &caller).await?;
            println!("model:       {}", model.name);
            println!("tenant:      {}", model.tenant);
            println!("version:     {}", version.version);
            println!("shared:      {}", model.shared);
            println!(
                "owner:       {}",
                model.card.owner.as_deref().unwrap_or("-")
            );
            println!(
                "license:     {}",
                model.card.license.as_deref().unwrap_or("-")
            );
            println!(
                "description: {}",
                model.card.description.as_deref().unwrap_or("-")
            );
            println!("size:        {} bytes", version.total_size);
            println!("files:");
            for file in &version.manifest.files {
                println!("  {}  {:>12}  {}", file.sha256, file.size, file.path);
            }
        }
        ModelsCommand::Rm { model } => match registry.remove(&model, &caller).await? {
            Removed::Model(model) => {
                eprintln!("removed model {} with all its versions", model.name)
            }
            Removed::Version(version) => eprintln!("removed {}", version.model_ref()),
        },
    }
    Ok(ExitCode::SUCCESS)
}
