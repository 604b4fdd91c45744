//! `charter audit`: verify the audit log (in the database or in an export file),
//! export it as JSONL, print the server's audit public key, and check saved inclusion
//! and consistency proofs offline.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use crypto::merkle::Checkpoint;
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
    /// Check a saved inclusion proof (the JSON of GET /v1/audit/{seq}/proof) offline; exit 1 if it does not hold
    CheckProof {
        /// The saved proof
        file: PathBuf,
        /// The server's public key: a PEM file, or the PEM text itself
        #[arg(long, value_name = "PEM", allow_hyphen_values = true)]
        public_key: String,
    },
    /// Check a consistency proof (the JSON of GET /v1/audit/consistency?from=SIZE) against a checkpoint kept from earlier; exit 1 if the log was rewritten or forked
    CheckConsistency {
        /// The saved proof
        file: PathBuf,
        /// The checkpoint kept from earlier: a saved response of GET /v1/audit/checkpoint, /proof or /consistency, or a checkpoint note
        #[arg(long, value_name = "FILE")]
        kept: PathBuf,
        /// The server's public key: a PEM file, or the PEM text itself
        #[arg(long, value_name = "PEM", allow_hyphen_values = true)]
        public_key: String,
    },
}

/// Reads `file` as JSON of type `T` and checks it with `check`: prints `ok: …` and
/// succeeds, or prints `FAIL: …` and fails.
fn check_file<T: serde::de::DeserializeOwned>(
    public_key: &str,
    file: &std::path::Path,
    check: impl FnOnce(&VerifyingKey, &T) -> Result<String, audit::AuditError>,
) -> anyhow::Result<ExitCode> {
    let key = VerifyingKey::from_public_key_pem(&super::read_pem(public_key, "public key")?)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let outcome = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a saved proof: {error}", file.display()))
        .and_then(|proof| check(&key, &proof).map_err(|error| error.to_string()));
    match outcome {
        Ok(message) => {
            println!("{message}");
            Ok(ExitCode::SUCCESS)
        }
        Err(message) => {
            println!("FAIL: {message}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The checkpoint in `path`: the `checkpoint` field of a saved JSON response, or a
/// checkpoint note as the file's whole text.
fn kept_checkpoint(path: &std::path::Path) -> anyhow::Result<Checkpoint> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let note = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|json| json.get("checkpoint")?.as_str().map(str::to_owned))
        .unwrap_or(text);
    Checkpoint::from_note(&note)
        .with_context(|| format!("{} holds no checkpoint note", path.display()))
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
            // Entries checked so far; the length is set when the log's size is known.
            let bar = super::progress_bar(
                None,
                "{bar:30} {human_pos}/{human_len} entries checked  {per_sec}  ETA {eta}",
            );
            let (verified, key) = match from_export {
                Some(path) => {
                    let (verified, key, from_export) =
                        audit::verify_export(&path, given_key, |n| bar.set_position(n as u64))?;
                    if from_export {
                        bar.suspend(|| {
                            eprintln!(
                                "note: using the key in the export (id {}); compare it with the server's published key",
                                key.key_id()
                            )
                        });
                    }
                    (verified, key)
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
                    bar.set_length(store.audit_size().await?.max(0) as u64);
                    let verified =
                        audit::verify_store(&store, &key, |n| bar.set_position(n as u64)).await?;
                    (verified, key)
                }
            };
            bar.finish_and_clear();
            if verified.findings.is_empty() {
                println!(
                    "ok: {} entries and {} checkpoints verify under key {}",
                    verified.entries,
                    verified.checkpoints,
                    key.key_id()
                );
                return Ok(ExitCode::SUCCESS);
            }
            for finding in &verified.findings {
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
            let pem = key.public_key_pem();
            match out {
                Some(path) => {
                    // Written next to its destination and renamed into place once
                    // complete and on disk: a crash leaves the old file or none, never
                    // half an export.
                    let dir = path
                        .parent()
                        .filter(|dir| !dir.as_os_str().is_empty())
                        .unwrap_or(std::path::Path::new("."));
                    let temp = tempfile::NamedTempFile::new_in(dir)
                        .with_context(|| format!("cannot write in {}", dir.display()))?;
                    let mut writer = std::io::BufWriter::new(temp);
                    let count = audit::export(&store, &pem, &mut writer).await?;
                    let temp = writer.into_inner().map_err(|e| e.into_error())?;
                    temp.as_file().sync_all()?;
                    temp.persist(&path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("exported {count} entries to {}", path.display());
                }
                None => {
                    let mut writer = std::io::BufWriter::new(std::io::stdout().lock());
                    audit::export(&store, &pem, &mut writer).await?;
                    writer.flush()?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::CheckProof { file, public_key } => {
            check_file(&public_key, &file, |key, proof| {
                let checkpoint = audit::check_inclusion(proof, key)?;
                Ok(format!(
                    "ok: entry {} is in the signed tree of {} entries (key {})",
                    proof.seq,
                    checkpoint.size,
                    key.key_id()
                ))
            })
        }
        AuditCommand::CheckConsistency {
            file,
            kept,
            public_key,
        } => {
            let kept = kept_checkpoint(&kept)?;
            check_file(&public_key, &file, |key, proof| {
                let newer = audit::check_consistency(&kept, proof, key)?;
                Ok(format!(
                    "ok: the kept checkpoint of {} entries is a prefix of the signed \
                     checkpoint of {} entries (key {}); keep the newer one",
                    kept.size,
                    newer.size,
                    key.key_id()
                ))
            })
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
