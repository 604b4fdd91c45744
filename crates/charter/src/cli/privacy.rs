//! `charter privacy`: a tenant's PII policies and payload retention, redaction through
//! the same service the HTTP API uses, erasure of a data subject, and purging expired
//! records. `charter serve` purges in the background too ([`purge_periodically`]).

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use governance::pii::{Action, Policy};
use governance::privacy::{self, Privacy, PrivacySettings, Subject};
use types::TenantName;

use super::Context;
use crate::services::Services;

/// How often `charter serve` purges expired payloads and vault entries.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Print a tenant's privacy settings as JSON
    Show { tenant: TenantName },
    /// Change a tenant's privacy settings; options not given keep their value
    Set {
        tenant: TenantName,
        /// What happens to personal data in model inputs
        #[arg(long, value_enum)]
        input: Option<PiiAction>,
        /// What happens to personal data in generated text
        #[arg(long, value_enum)]
        output: Option<PiiAction>,
        /// What happens to personal data in log lines: redact or block
        #[arg(long, value_enum)]
        logs: Option<PiiAction>,
        /// Store request and response payloads (sealed) for this many days
        #[arg(long, value_name = "DAYS", conflicts_with = "no_retention")]
        retention_days: Option<u32>,
        /// Stop storing payloads (the default); stored ones expire as scheduled
        #[arg(long)]
        no_retention: bool,
        /// How long pseudonyms stay revealable, in hours
        #[arg(long, value_name = "HOURS")]
        vault_ttl_hours: Option<u32>,
    },
    /// Redact standard input under a tenant's input policy (or --mode) and print it
    Redact {
        #[arg(long, default_value = types::ADMIN_TENANT)]
        tenant: TenantName,
        /// Redact or pseudonymize every kind instead of the tenant's policy
        #[arg(long, value_enum)]
        mode: Option<PiiAction>,
    },
    /// Erase a data subject's stored payloads, pseudonyms and dataset rows in a tenant
    EraseSubject {
        #[arg(long)]
        tenant: TenantName,
        /// The subject id requests named (OpenAI `user` or X-Charter-Subject)
        subject: String,
    },
    /// Delete expired payloads and vault entries now
    Purge,
}

/// A PII policy action for every kind of entity.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PiiAction {
    Allow,
    Redact,
    Pseudonymize,
    Block,
}

impl From<PiiAction> for Action {
    fn from(action: PiiAction) -> Action {
        match action {
            PiiAction::Allow => Action::Allow,
            PiiAction::Redact => Action::Redact,
            PiiAction::Pseudonymize => Action::Pseudonymize,
            PiiAction::Block => Action::Block,
        }
    }
}

pub async fn run(context: Context, command: PrivacyCommand) -> anyhow::Result<ExitCode> {
    let services = Services::open(&context.storage).await?;
    let privacy = Privacy::new(services.registry.clone());
    match command {
        PrivacyCommand::Show { tenant } => {
            existing_tenant(&services, &tenant).await?;
            print_json(&privacy.settings(&tenant).await?)?;
        }
        PrivacyCommand::Set {
            tenant,
            input,
            output,
            logs,
            retention_days,
            no_retention,
            vault_ttl_hours,
        } => {
            existing_tenant(&services, &tenant).await?;
            let mut settings: PrivacySettings = privacy.settings(&tenant).await?;
            let policies = &mut settings.policies;
            for (policy, action) in [
                (&mut policies.input, input),
                (&mut policies.output, output),
                (&mut policies.logs, logs),
            ] {
                if let Some(action) = action {
                    *policy =
                        Policy::new(action.into()).with_max_input_bytes(policy.max_input_bytes);
                }
            }
            if let Some(days) = retention_days {
                settings.retention_secs = Some(i64::from(days) * 86_400);
            }
            if no_retention {
                settings.retention_secs = None;
            }
            if let Some(hours) = vault_ttl_hours {
                settings.vault_ttl_secs = i64::from(hours) * 3_600;
            }
            print_json(&privacy.set_settings(&tenant, settings).await?)?;
        }
        PrivacyCommand::Redact { tenant, mode } => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            let mut request = privacy.begin(&tenant, None).await?;
            let input = &request.settings().policies.input;
            let policy = match mode {
                Some(mode) => privacy::uniform_policy(mode.into(), input.max_input_bytes)?,
                None => privacy::redaction_policy(input),
            };
            let checked = request.check_with(&text, &policy)?;
            print!("{}", checked.text);
            if let Some(vault) = request
                .finish(
                    "cli",
                    "charter privacy redact",
                    || serde_json::json!({ "text": checked.text.as_str() }),
                )
                .await?
            {
                eprintln!("vault id: {} (expires at {})", vault.id, vault.expires_at);
            }
        }
        PrivacyCommand::EraseSubject { tenant, subject } => {
            existing_tenant(&services, &tenant).await?;
            let subject = Subject::parse(&subject)?;
            let records = privacy.erase_subject(&tenant, &subject).await?;
            let datasets = jobs::Datasets::new(services.registry.clone())
                .erase_subject(&tenant, subject.as_str())
                .await?;
            print_json(&serde_json::json!({
                "tenant": tenant,
                "payloads": records.payloads,
                "vault_entries": records.vault_entries,
                "dataset_rows": datasets.rows,
                "datasets": datasets.datasets,
            }))?;
        }
        PrivacyCommand::Purge => print_json(&privacy.purge_expired().await?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Purges expired payloads and vault entries every [`PURGE_INTERVAL`] until the process
/// ends; failures are logged and retried at the next tick.
pub async fn purge_periodically(privacy: Privacy) {
    let mut ticks = tokio::time::interval(PURGE_INTERVAL);
    loop {
        ticks.tick().await;
        if let Err(error) = privacy.purge_expired().await {
            tracing::warn!(%error, "purging expired privacy records failed; retrying later");
        }
    }
}

async fn existing_tenant(services: &Services, tenant: &TenantName) -> anyhow::Result<()> {
    if services.store.tenant_by_name(tenant).await?.is_none() {
        anyhow::bail!("tenant '{tenant}' not found");
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
