//! The subcommands of `charter`, one file each, each with a `run`.

mod datasets;
mod keys;
mod models;
mod openapi;
mod serve;
mod tenants;
mod train;

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
    /// Upload, list and remove training datasets
    #[command(subcommand)]
    Datasets(datasets::DatasetsCommand),
    /// Train a tensor model locally, or submit the job to a server
    Train(Box<train::TrainArgs>),
    /// Print the OpenAPI document
    Openapi,
}

/// Logs go to stderr so that commands such as `keys create` keep stdout clean.
pub fn init_logging(global: &GlobalArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// What every command receives: resolved configuration.
pub struct Context {
    pub storage: StorageConfig,
    pub file: FileConfig,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Openapi = cli.command {
        return openapi::run();
    }
    let file = FileConfig::load(cli.global.config.as_deref())?;
    let storage = StorageConfig::resolve(cli.global.data_dir, cli.global.database_url, &file);
    let context = Context { storage, file };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(context, args).await,
            Command::Tenants(command) => tenants::run(context, command).await,
            Command::Keys(command) => keys::run(context, command).await,
            Command::Models(command) => models::run(context, command).await,
            Command::Datasets(command) => datasets::run(context, command).await,
            Command::Train(args) => train::run(context, *args).await,
            Command::Openapi => unreachable!("handled above: this is a bug"),
        }
    })
}
