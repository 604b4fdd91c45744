//! `charter serve`: the HTTP server.
//!
//! Shutdown on SIGTERM or Ctrl-C: readiness turns 503 at once, the listener stops
//! accepting, and in-flight requests drain within `--drain-secs`.

use std::future::IntoFuture;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use api::{ApiConfig, AppState};
use clap::Args;

use super::Context;
use crate::config::listen_addr;
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
    let addr = listen_addr(&listen, allow_plain_http)?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving plain HTTP on a non-loopback address; TLS must be terminated in front");
    }
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
    let app = api::router(state.clone());
    let runner = jobs::Runner::start(services.registry.clone(), jobs::RunnerConfig::default());

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, data_dir = %context.storage.data_dir.display(), "charter is serving");
    state.set_ready(true);

    let drain = Duration::from_secs(args.drain_secs);
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
