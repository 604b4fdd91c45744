//! `charter models`: import, list, show and remove models in the registry; show and
//! edit their cards; sign and verify versions.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use crypto::signing::{SigningKey, VerifyingKey};
use registry::{ImportRequest, Removed};
use store::{Caller, ModelCard, ModelRecord};
use types::{Day, ModelName, ModelRef, TenantName};

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
        #[command(flatten)]
        card: CardArgs,
    },
    /// List models and their latest versions
    List,
    /// Show a model version and its manifest (NAME for the latest, NAME:VERSION)
    Show { model: ModelRef },
    /// Remove a model (NAME) or one version (NAME:VERSION)
    Rm { model: ModelRef },
    /// Show a model's card; with options, change the fields named and keep the rest
    Card {
        model: ModelName,
        #[command(flatten)]
        set: CardArgs,
        /// Clear a field (repeatable)
        #[arg(long, value_enum, value_name = "FIELD")]
        clear: Vec<CardField>,
    },
    /// Sign a version's manifest with an ed25519 private key (PKCS#8 PEM, as `openssl
    /// genpkey -algorithm ed25519` writes it)
    Sign {
        /// NAME for the latest version, or NAME:VERSION
        model: ModelRef,
        /// The private key: a PEM file, or the PEM text itself
        #[arg(long, value_name = "PEM", allow_hyphen_values = true)]
        key: String,
    },
    /// Verify a version's signatures against its files now; exit 1 unless one verifies
    Verify {
        /// NAME for the latest version, or NAME:VERSION
        model: ModelRef,
        /// Accept only signatures by this public key (SPKI PEM file or text)
        #[arg(long, value_name = "PEM", conflicts_with = "tenant")]
        public_key: Option<String>,
        /// Accept only signatures by keys this tenant trusts, as serving does
        #[arg(long)]
        tenant: Option<TenantName>,
    },
}

/// Model card fields, as set at import or changed later.
#[derive(Debug, Args, Default)]
pub struct CardArgs {
    /// SPDX licence expression, e.g. apache-2.0 or "MIT OR Apache-2.0"
    #[arg(long)]
    license: Option<String>,
    /// Who created and owns the model
    #[arg(long)]
    owner: Option<String>,
    /// What the model is
    #[arg(long)]
    description: Option<String>,
    /// What the model is meant to be used for
    #[arg(long)]
    intended_use: Option<String>,
    /// What the model must not be used for
    #[arg(long)]
    out_of_scope_use: Option<String>,
    /// Tenants (besides the owner) that may use the model: a,b or all
    #[arg(long, value_name = "TENANTS|all")]
    permitted_tenants: Option<String>,
    /// Whether commercial tenants may use the model
    #[arg(long, value_name = "true|false")]
    commercial_use: Option<bool>,
    /// Last day the licence is valid (UTC), YYYY-MM-DD
    #[arg(long, value_name = "DATE")]
    license_expires: Option<Day>,
    /// Text every response of the model must carry
    #[arg(long, value_name = "TEXT")]
    attribution: Option<String>,
}

/// A card field that `models card --clear` can clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CardField {
    License,
    Owner,
    Description,
    IntendedUse,
    OutOfScopeUse,
    PermittedTenants,
    CommercialUse,
    LicenseExpires,
    Attribution,
}

impl CardArgs {
    /// Writes the fields given over `card`; `--permitted-tenants all` clears the list.
    fn apply(self, card: &mut ModelCard) -> anyhow::Result<()> {
        let set = |target: &mut Option<String>, value: Option<String>| {
            if value.is_some() {
                *target = value;
            }
        };
        set(&mut card.license, self.license);
        set(&mut card.owner, self.owner);
        set(&mut card.description, self.description);
        set(&mut card.intended_use, self.intended_use);
        set(&mut card.out_of_scope_use, self.out_of_scope_use);
        set(&mut card.attribution, self.attribution);
        if let Some(text) = self.permitted_tenants {
            card.permitted_tenants = registry::cards::parse_permitted_tenants(&text)?;
        }
        if self.commercial_use.is_some() {
            card.commercial_use = self.commercial_use;
        }
        if self.license_expires.is_some() {
            card.license_expires = self.license_expires;
        }
        Ok(())
    }
}

fn clear(card: &mut ModelCard, field: CardField) {
    match field {
        CardField::License => card.license = None,
        CardField::Owner => card.owner = None,
        CardField::Description => card.description = None,
        CardField::IntendedUse => card.intended_use = None,
        CardField::OutOfScopeUse => card.out_of_scope_use = None,
        CardField::PermittedTenants => card.permitted_tenants = None,
        CardField::CommercialUse => card.commercial_use = None,
        CardField::LicenseExpires => card.license_expires = None,
        CardField::Attribution => card.attribution = None,
    }
}

fn print_card(model: &ModelRecord) {
    let card = &model.card;
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let permitted = match &card.permitted_tenants {
        None => "all".to_owned(),
        Some(tenants) => tenants
            .iter()
            .map(TenantName::as_str)
            .collect::<Vec<_>>()
            .join(","),
    };
    let commercial = match card.commercial_use {
        None => "not stated",
        Some(true) => "allowed",
        Some(false) => "not allowed",
    };
    println!("model:             {}", model.name);
    println!("tenant:            {}", model.tenant);
    println!("owner:             {}", text(&card.owner));
    println!("license:           {}", text(&card.license));
    println!("description:       {}", text(&card.description));
    println!("intended use:      {}", text(&card.intended_use));
    println!("out-of-scope use:  {}", text(&card.out_of_scope_use));
    println!("permitted tenants: {permitted}");
    println!("commercial use:    {commercial}");
    println!(
        "license expires:   {}",
        card.license_expires
            .map_or("-".to_owned(), |date| date.to_string())
    );
    println!("attribution:       {}", text(&card.attribution));
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
            card: card_args,
        } => {
            let tenant = match tenant {
                Some(tenant) => tenant,
                None => TenantName::try_from(types::ADMIN_TENANT)?,
            };
            let mut card = ModelCard::default();
            card_args.apply(&mut card)?;
            let request = ImportRequest {
                name,
                tenant,
                shared,
                card,
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
        ModelsCommand::Card {
            model,
            set,
            clear: fields,
        } => {
            let mut record = registry.model(&model, &caller).await?;
            let mut card = record.card.clone();
            set.apply(&mut card)?;
            for field in fields {
                clear(&mut card, field);
            }
            if card != record.card {
                record = registry.set_card(&model, &card, &caller).await?;
            }
            print_card(&record);
        }
        ModelsCommand::Sign { model, key } => {
            let key = SigningKey::from_pkcs8_pem(&super::read_pem(&key, "private key")?)?;
            let (_, version) = registry.show(&model, &caller).await?;
            let signature = registry.sign(&version, &key).await?;
            println!("{}", version.model_ref());
            eprintln!(
                "signed manifest {} with key {}",
                signature.manifest_sha256, signature.key_id
            );
        }
        ModelsCommand::Verify {
            model,
            public_key,
            tenant,
        } => return verify(registry, &model, public_key, tenant).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// `models verify`: prints each signature's verdict; success when one acceptable
/// signature covers exactly the version's files.
async fn verify(
    registry: &registry::Registry,
    model: &ModelRef,
    public_key: Option<String>,
    tenant: Option<TenantName>,
) -> anyhow::Result<ExitCode> {
    let (_, version) = registry.show(model, &Caller::admin()).await?;
    let name = version.model_ref();
    if let Some(tenant) = tenant {
        return Ok(match registry.check_signed(&version, &tenant).await {
            Ok(()) => {
                println!("ok: {name} is signed by a key tenant '{tenant}' trusts");
                ExitCode::SUCCESS
            }
            Err(registry::RegistryError::Signature(error)) => {
                println!("FAIL: {error}");
                ExitCode::FAILURE
            }
            Err(error) => return Err(error.into()),
        });
    }
    let key = match public_key {
        Some(pem) => Some(VerifyingKey::from_public_key_pem(&super::read_pem(
            &pem,
            "public key",
        )?)?),
        None => None,
    };
    let statuses = registry.signatures(&version, key.as_ref()).await?;
    let mut verified = false;
    for status in &statuses {
        let wanted = key.as_ref().is_none_or(|k| k.key_id() == status.key_id);
        match (&status.result, wanted) {
            (Ok(()), true) => {
                verified = true;
                println!("ok: key {} signed {name}", status.key_id);
            }
            (Ok(()), false) => println!("skipped: key {} is not the key given", status.key_id),
            (Err(error), _) => println!("FAIL: key {}: {error}", status.key_id),
        }
    }
    if statuses.is_empty() {
        println!("FAIL: {name} has no signatures");
    }
    Ok(if verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
