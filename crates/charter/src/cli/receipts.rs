//! `charter receipts`: check a saved receipt offline against the server's public key.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use crypto::signing::{SignedStatement, VerifyingKey};

#[derive(Debug, Subcommand)]
pub enum ReceiptsCommand {
    /// Verify a receipt (the JSON of GET /v1/receipts/{seq}); exit 1 if any field was altered
    Verify {
        /// The saved receipt
        file: PathBuf,
        /// The server's public key: a PEM file, or the PEM text itself
        #[arg(long, value_name = "PEM", allow_hyphen_values = true)]
        public_key: String,
    },
}

pub fn run(command: ReceiptsCommand) -> anyhow::Result<ExitCode> {
    let ReceiptsCommand::Verify { file, public_key } = command;
    let key = VerifyingKey::from_public_key_pem(&super::read_pem(&public_key, "public key")?)?;
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let receipt: SignedStatement = match serde_json::from_str(&text) {
        Ok(receipt) => receipt,
        Err(error) => {
            println!("FAIL: not a receipt: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let kind = receipt.payload.get("kind").and_then(|k| k.as_str());
    if kind != Some(governance::audit::RECEIPT_KIND) {
        println!("FAIL: not a Charter receipt (kind {kind:?})");
        return Ok(ExitCode::FAILURE);
    }
    match receipt.verify(&key) {
        Ok(()) => {
            println!("ok: receipt signed by key {}", key.key_id());
            println!("{}", serde_json::to_string_pretty(&receipt.payload)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("FAIL: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
