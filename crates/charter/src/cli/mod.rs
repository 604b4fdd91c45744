//! The subcommands of `charter`, one file each, each with a `run`.

mod audit;
mod datasets;
mod keys;
mod models;
mod openapi;
mod privacy;
mod receipts;
mod serve;
mod tenants;
mod train;
mod usage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{FileConfig, StorageConfig};

/// Charter: a self-hosted Model-as-a-Service platform.
#[derive(Debug, Parser)]
#[command(name = "charter", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory for the embedded database, blobs and keys [default: ./charter-data]
    #[arg(long, env = "CHARTER_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://… [default: the SQLite file in the data dir]
    #[arg(long, env = "CHARTER_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Master key file (created 0600 when absent; versions N ≥ 2 in FILE.N); or set
    /// CHARTER_MASTER_KEY to hex key text instead [default: DATA_DIR/master.key]
    #[arg(long, env = "CHARTER_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Optional TOML config file; command line and environment override it
    #[arg(long, env = "CHARTER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. info or charter=debug
    #[arg(long, env = "CHARTER_LOG", global = true, default_value = "info")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API
    Serve(serve::ServeArgs),
    /// Manage tenants
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// Manage API keys
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage models in the registry
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Verify and export the audit log; print its public key; check saved proofs offline
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Check signed receipts offline
    #[command(subcommand)]
    Receipts(receipts::ReceiptsCommand),
    /// Upload, list and remove training datasets
    #[command(subcommand)]
    Datasets(datasets::DatasetsCommand),
    /// PII policies, payload retention, redaction and erasure of data subjects
    #[command(subcommand)]
    Privacy(privacy::PrivacyCommand),
    /// Train a tensor model locally, or submit the job to a server
    Train(Box<train::TrainArgs>),
    /// Show metered usage per tenant, key, model and day
    Usage(usage::UsageArgs),
    /// Print the OpenAPI document
    Openapi,
}

/// Logs go to stderr so that commands such as `keys create` keep stdout clean; colours
/// only when stderr is a terminal, so log files and pipes get plain text.
pub fn init_logging(global: &GlobalArgs) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    // A panic's message may quote what a request carried: the log gets its location
    // and only a literal message, never the raw text the default hook would print.
    governance::pii::install_panic_hook();
}

/// A progress bar on stderr, drawn only when stderr is a terminal (indicatif draws
/// nothing otherwise), with `template` and `len` when known.
pub fn progress_bar(len: Option<u64>, template: &str) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(len, indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// A PEM given on the command line: the PEM text itself, or the path of a PEM file.
pub fn read_pem(argument: &str, what: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    use anyhow::Context as _;
    if argument.trim_start().starts_with("-----BEGIN") {
        return Ok(zeroize::Zeroizing::new(argument.to_owned()));
    }
    std::fs::read_to_string(argument)
        .map(zeroize::Zeroizing::new)
        .with_context(|| format!("cannot read the {what} {argument}"))
}

/// What every command receives: resolved configuration.
pub struct Context {
    pub storage: StorageConfig,
    pub file: FileConfig,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = match cli.command {
        Command::Openapi => return openapi::run(),
        Command::Receipts(command) => return receipts::run(command),
        command => command,
    };
    let file = FileConfig::load(cli.global.config.as_deref())?;
    let storage = StorageConfig::resolve(
        cli.global.data_dir,
        cli.global.database_url,
        cli.global.master_key_file,
        std::env::var("CHARTER_MASTER_KEY").ok(),
        &file,
    )?;
    let context = Context { storage, file };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve::run(context, args).await,
            Command::Tenants(command) => tenants::run(context, command).await,
            Command::Keys(command) => keys::run(context, command).await,
            Command::Models(command) => models::run(context, command).await,
            Command::Audit(command) => audit::run(context, command).await,
            Command::Openapi | Command::Receipts(_) => {
                unreachable!("handled above: this is a bug")
            }
            Command::Datasets(command) => datasets::run(context, command).await,
            Command::Train(args) => train::run(context, *args).await,
            Command::Usage(args) => usage::run(context, args).await,
            Command::Privacy(command) => privacy::run(context, command).await,
        }
    })
}
