//! `charter audit`: verify the audit log (in the database or in an export file),
//! export it as JSONL, and print the server's audit public key.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use crypto::signing::VerifyingKey;
use governance::audit;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and every signed checkpoint; exit 1 and name the first tampered entry on any finding
    Verify {
        /// Verify this export (from `charter audit export`) instead of the database
        #[arg(long, value_name = "FILE")]
        from_export: Option<PathBuf>,
        /// The server's public key (PEM file); default: the key in the data dir, or the one in the export
        #[arg(long, value_name = "PEM")]
        public_key: Option<PathBuf>,
    },
    /// Write the whole log as JSONL: entries, checkpoints, then the public key
    Export {
        /// Write here instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the server's audit signing public key (PEM), creating the key pair if absent
    PublicKey,
}

pub async fn run(context: Context, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let key_path = context.storage.data_dir.join(audit::SIGNING_KEY_FILE);
    match command {
        AuditCommand::Verify {
            from_export,
            public_key,
        } => {
            let given_key = public_key
                .map(|path| -> anyhow::Result<VerifyingKey> {
                    let pem = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Ok(VerifyingKey::from_public_key_pem(&pem)?)
                })
                .transpose()?;
            let (entries, checkpoints, key) = match from_export {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let export = audit::parse_export(&text)?;
                    let key = match (given_key, export.public_key_pem) {
                        (Some(key), _) => key,
                        (None, Some(pem)) => {
                            let key = VerifyingKey::from_public_key_pem(&pem)?;
                            eprintln!(
                                "note: using the key in the export (id {}); compare it with the server's published key",
                                key.key_id()
                            );
                            key
                        }
                        (None, None) => {
                            anyhow::bail!("the export names no public key; pass --public-key")
                        }
                    };
                    (export.entries, export.checkpoints, key)
                }
                None => {
                    let key = match given_key {
                        Some(key) => key,
                        None => {
                            let pem = std::fs::read_to_string(&key_path).with_context(|| {
                                format!(
                                    "no audit signing key at {}; pass --public-key",
                                    key_path.display()
                                )
                            })?;
                            crypto::signing::SigningKey::from_pkcs8_pem(&pem)?.verifying_key()
                        }
                    };
                    let store = store::Store::connect(&context.storage.database_url)
                        .await
                        .context("cannot open the database")?;
                    // Committed changes whose records are still in the outbox belong
                    // in what is verified: chain them first (a running server does
                    // this every second).
                    audit::chain_outbox(&store).await?;
                    let (entries, checkpoints) = audit::load(&store).await?;
                    (entries, checkpoints, key)
                }
            };
            let findings = audit::verify(&entries, &checkpoints, &key);
            if findings.is_empty() {
                println!(
                    "ok: {} entries and {} checkpoints verify under key {}",
                    entries.len(),
                    checkpoints.len(),
                    key.key_id()
                );
                return Ok(ExitCode::SUCCESS);
            }
            for finding in &findings {
                println!("FAIL: {finding}");
            }
            Ok(ExitCode::FAILURE)
        }
        AuditCommand::Export { out } => {
            let store = store::Store::connect(&context.storage.database_url)
                .await
                .context("cannot open the database")?;
            let key = audit::load_or_create_signing_key(&key_path)?;
            audit::chain_outbox(&store).await?;
            let mut buffer = Vec::new();
            let count = audit::export(&store, &key.public_key_pem(), &mut buffer).await?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &buffer)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("exported {count} entries to {}", path.display());
                }
                None => std::io::stdout().write_all(&buffer)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::PublicKey => {
            std::fs::create_dir_all(&context.storage.data_dir).with_context(|| {
                format!(
                    "cannot create data dir {}",
                    context.storage.data_dir.display()
                )
            })?;
            let key = audit::load_or_create_signing_key(&key_path)?;
            print!("{}", key.public_key_pem());
            Ok(ExitCode::SUCCESS)
        }
    }
}
