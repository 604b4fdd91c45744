//! `charter serve`: the HTTP server, over HTTPS (rustls, HTTP/2 and HTTP/1.1 through
//! ALPN) when `--tls-cert` and `--tls-key` are given.
//!
//! Shutdown on SIGTERM or Ctrl-C: readiness turns 503 at once, the listener stops
//! accepting, and in-flight requests drain within `--drain-secs`.

use std::future::IntoFuture;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use api::{ApiConfig, AppState};
use clap::Args;

use super::Context;
use crate::config::{listen_addr, TlsConfig};
use crate::services::Services;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "CHARTER_LISTEN")]
    pub listen: Option<String>,
    /// Serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)
    #[arg(long, env = "CHARTER_ALLOW_PLAIN_HTTP")]
    pub allow_plain_http: bool,
    /// Largest model upload accepted, in MiB
    #[arg(long, env = "CHARTER_MAX_UPLOAD_MB")]
    pub max_upload_mb: Option<u64>,
    /// Largest JSON request body accepted, in KiB
    #[arg(long, env = "CHARTER_MAX_JSON_BODY_KB")]
    pub max_json_body_kb: Option<usize>,
    /// Load this model at start (NAME or NAME:VERSION, optionally @bf16 for bfloat16 weights); repeatable. /ready stays 503 until all are warm
    #[arg(long = "load", value_name = "MODEL[@PRECISION]")]
    pub load: Vec<LoadSpec>,
    /// Requests that may wait per loaded model before new ones get 503
    #[arg(long, env = "CHARTER_QUEUE_CAPACITY", default_value_t = 256)]
    pub queue_capacity: usize,
    /// Do not keep the audit log (only for measuring its cost; nothing is recorded)
    #[arg(long, env = "CHARTER_NO_AUDIT")]
    pub no_audit: bool,
    /// TLS certificate chain (PEM); serve HTTPS with --tls-key
    #[arg(long, env = "CHARTER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "CHARTER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds to let in-flight requests finish after SIGTERM
    #[arg(long, env = "CHARTER_DRAIN_SECS", default_value_t = 25)]
    pub drain_secs: u64,
}

pub async fn run(context: Context, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = &context.file;
    let listen = args
        .listen
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let allow_plain_http = args.allow_plain_http || file.allow_plain_http.unwrap_or(false);
    let tls = TlsConfig::resolve(args.tls_cert, args.tls_key, file)?;
    let addr = listen_addr(&listen, allow_plain_http || tls.is_some())?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving plain HTTP on a non-loopback address; TLS must be terminated in front");
    }
    // Read before opening anything, so a bad certificate fails fast.
    let tls_config = tls.as_ref().map(TlsConfig::server_config).transpose()?;
    let defaults = ApiConfig::default();
    let config = ApiConfig {
        max_upload: args
            .max_upload_mb
            .or(file.max_upload_mb)
            .map(|mb| mb.saturating_mul(1024 * 1024))
            .unwrap_or(defaults.max_upload),
        max_json_body: args
            .max_json_body_kb
            .or(file.max_json_body_kb)
            .map(|kb| kb.saturating_mul(1024))
            .unwrap_or(defaults.max_json_body),
        queue_capacity: args.queue_capacity.max(1),
        upload_dir: context.storage.scratch_dir(),
        checkout_dir: context.storage.scratch_dir(),
        ..defaults
    };

    let services = Services::open(&context.storage).await?;
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let render: api::MetricsRender = Arc::new(move || prometheus.render());
    let state = AppState::new(
        services.store.clone(),
        services.registry.clone(),
        config,
        Some(render),
    );
    if args.no_audit {
        tracing::warn!("the audit log is off: requests are not recorded and carry no receipts");
    } else {
        let key_file = context
            .storage
            .data_dir
            .join(governance::audit::SIGNING_KEY_FILE);
        let key = governance::audit::load_or_create_signing_key(&key_file)
            .with_context(|| format!("cannot load the audit signing key {}", key_file.display()))?;
        state.set_audit(governance::audit::AuditLog::open(
            services.store.clone(),
            key,
        ));
    }
    let app = api::router(state.clone());
    let runner = jobs::Runner::start(services.registry.clone(), jobs::RunnerConfig::default());

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let scheme = if tls_config.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(addr = %listener.local_addr()?, scheme, data_dir = %context.storage.data_dir.display(), "charter is serving");
    tokio::spawn(load_models(state.clone(), args.load));

    let drain = Duration::from_secs(args.drain_secs);
    if let Some(tls_config) = tls_config {
        serve_tls(listener, app, tls_config, state.clone(), drain).await?;
        services.store.close().await;
        tracing::info!("stopped");
        return Ok(ExitCode::SUCCESS);
    }
    let draining = Arc::new(tokio::sync::Notify::new());
    let (shutdown_state, notify) = (state.clone(), draining.clone());
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        shutdown_state.set_ready(false);
        notify.notify_one();
    });
    tokio::select! {
        result = server.into_future() => result.context("server error")?,
        () = async { draining.notified().await; tokio::time::sleep(drain).await } => {
            tracing::warn!(seconds = drain.as_secs(), "drain budget exceeded; closing remaining connections");
        }
    }
    runner.shutdown().await;
    services.store.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Loads the models `--load` names, then declares the server ready. A model that fails
/// to load keeps the server unready (and says why) rather than serving without it.
async fn load_models(state: AppState, models: Vec<LoadSpec>) {
    let caller = store::Caller::admin();
    for LoadSpec { model, precision } in &models {
        let loaded = async {
            let version = api::serving::resolve(&state, &caller, &model.to_string()).await?;
            api::serving::encoder(&state, &version, *precision).await
        };
        if let Err(error) = loaded.await {
            tracing::error!(%model, error = %error.message, "cannot load model; the server stays unready");
            return;
        }
        tracing::info!(%model, "model loaded and warm");
    }
    state.set_ready(true);
}

/// One `--load` value: `NAME[:VERSION][@PRECISION]`.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    model: types::ModelRef,
    precision: Option<inference::Precision>,
}

impl std::str::FromStr for LoadSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (model, precision) = match text.rsplit_once('@') {
            Some((model, precision)) => (
                model,
                Some(
                    precision
                        .parse()
                        .map_err(|e: engine::EngineError| e.to_string())?,
                ),
            ),
            None => (text, None),
        };
        let model = model.parse().map_err(|e: types::NameError| e.to_string())?;
        Ok(Self { model, precision })
    }
}

/// HTTPS through axum-server: on SIGTERM readiness turns 503, the listener stops
/// accepting, and connections get `drain` to finish before they are closed.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls_config: rustls::ServerConfig,
    state: AppState,
    drain: Duration,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        state.set_ready(false);
        shutdown.graceful_shutdown(Some(drain));
    });
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config));
    axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .context("server error")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
