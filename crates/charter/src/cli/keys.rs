//! `charter keys`: mint, list and revoke API keys (`create` prints only the key), and
//! rotate the master key that wraps tenant data keys.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{ArgGroup, Subcommand};
use crypto::envelope::MasterKey;
use governance::KeyRequest;
use store::Caller;
use types::{Scopes, TenantName};

use super::tenants::{describe, NewLimits};
use super::Context;
use crate::config::MasterKeySource;
use crate::services::{self, Services};

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
        /// This key's own rate limits (its tenant's apply as well)
        #[command(flatten)]
        limits: NewLimits,
    },
    /// List keys (ids, tenants, scopes; never secrets)
    List,
    /// Revoke a key by its id
    Revoke { id: String },
    /// Generate a new master key version, rewrap every tenant data key under it (blobs
    /// are not rewritten), and delete the old version's key files. Restart running
    /// servers afterwards: they hold the old keyring.
    RotateMaster,
}

pub async fn run(context: Context, command: KeysCommand) -> anyhow::Result<ExitCode> {
    if let KeysCommand::RotateMaster = command {
        return rotate_master(&context).await;
    }
    let services = Services::open(&context.storage).await?;
    match command {
        KeysCommand::Create {
            admin,
            tenant,
            scopes,
            description,
            limits,
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
                limits: limits.into(),
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
                    "{}\t{}\t{}\t{}\t{state}",
                    key.key_id,
                    key.tenant,
                    key.scopes.to_list(),
                    describe(&key.limits)
                );
            }
        }
        KeysCommand::Revoke { id } => {
            services.store.revoke_key(&Caller::admin(), &id).await?;
            eprintln!("revoked {id}");
        }
        KeysCommand::RotateMaster => unreachable!("handled above: this is a bug"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `keys rotate-master`. Safe to re-run after a failure: until the old files are
/// deleted (the last step), every version needed is still on disk, and the highest
/// version is active.
async fn rotate_master(context: &Context) -> anyhow::Result<ExitCode> {
    let MasterKeySource::File(path) = &context.storage.master_key else {
        anyhow::bail!(
            "the master key comes from CHARTER_MASTER_KEY: rotate by setting it to \
             'NEW_VERSION:NEW_HEX,OLD_VERSION:OLD_HEX', running `charter keys rotate-master` \
             with it, then dropping the old entry"
        );
    };
    let store = services::open_store(&context.storage, store::DEFAULT_ACQUIRE_TIMEOUT).await?;
    let mut keyring = services::load_keyring(&context.storage, &store).await?;
    let old_versions: Vec<u32> = keyring.versions().collect();
    let new_version = keyring
        .active()
        .version()
        .checked_add(1)
        .context("master key version overflow")?;
    let new_path = MasterKeySource::version_path(path, new_version);
    let new_key = MasterKey::generate_file(new_version, &new_path)
        .with_context(|| format!("cannot create {}", new_path.display()))?;
    keyring.add(new_key)?;
    keyring.set_active(new_version)?;

    let services = Services::with_keyring(&context.storage, store, keyring)?;
    let report = services.registry.rewrap_data_keys().await?;
    let stale: Vec<_> = services
        .store
        .live_data_keys()
        .await?
        .into_iter()
        .filter(|record| record.master_version != new_version)
        .collect();
    if !stale.is_empty() {
        anyhow::bail!(
            "{} data key(s) are still wrapped by an old master key; the old key files were \
             kept, run rotate-master again",
            stale.len()
        );
    }
    for (version, file) in MasterKeySource::key_files(path)? {
        if version != new_version {
            std::fs::remove_file(&file)
                .with_context(|| format!("cannot delete retired key file {}", file.display()))?;
        }
    }
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    services.store.close().await;
    eprintln!(
        "master key version {new_version} is active ({}); rewrapped {} data key(s), {} already current; retired version(s) {old_versions:?}",
        new_path.display(),
        report.rewrapped,
        report.already_current,
    );
    Ok(ExitCode::SUCCESS)
}
