//! `charter serve`: the HTTP server, over HTTPS (rustls, HTTP/2 and HTTP/1.1 through
//! ALPN) when `--tls-cert` and `--tls-key` are given.
//!
//! Shutdown on SIGTERM or Ctrl-C: readiness turns 503 at once, the listener stops
//! accepting, and in-flight requests drain within `--drain-secs`. Connections are
//! bounded before any request is parsed: request heads must arrive within
//! `--header-read-timeout-secs` and fit `--max-header-kb`, and a client that stops
//! reading its responses is disconnected after `--write-timeout-secs`.

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
    /// Most inference requests one tenant may have in flight at once (more get 429), so
    /// a flooding tenant cannot fill the queues; e.g. a quarter of --queue-capacity
    /// [default: no cap]
    #[arg(long, env = "CHARTER_MAX_IN_FLIGHT_PER_TENANT")]
    pub max_in_flight_per_tenant: Option<usize>,
    /// Most requests the server works on at once (health and metrics probes aside);
    /// more get 503 `overloaded` with Retry-After before their body is read, which
    /// bounds the memory a flood of requests can take
    #[arg(long, env = "CHARTER_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
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
    /// Seconds between writes of metered usage to the store (a crash loses at most
    /// this much; shutdown writes the rest)
    #[arg(long, env = "CHARTER_USAGE_FLUSH_SECS", default_value_t = 10)]
    pub usage_flush_secs: u64,
    /// Seconds a request may take until its response starts (slow handlers and slow
    /// request bodies alike); then 503 `request_timeout`. Uploads are instead refused
    /// when they pause this long between two chunks
    #[arg(long, env = "CHARTER_REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Seconds a client has to send a request's headers before the connection is closed
    /// (against slowloris-style clients)
    #[arg(long, env = "CHARTER_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Largest request head (request line and headers) accepted, in KiB; larger gets 431
    #[arg(long, env = "CHARTER_MAX_HEADER_KB", default_value_t = 64)]
    pub max_header_kb: usize,
    /// Seconds a response write may stay blocked (a client that stops reading) before
    /// the connection is closed
    #[arg(long, env = "CHARTER_WRITE_TIMEOUT_SECS", default_value_t = 30)]
    pub write_timeout_secs: u64,
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
        request_timeout_secs: args.request_timeout_secs.max(1),
        max_in_flight_per_tenant: args.max_in_flight_per_tenant,
        max_in_flight: args.max_in_flight.max(1),
        upload_dir: context.storage.scratch_dir(),
        checkout_dir: context.storage.scratch_dir(),
        ..defaults
    };

    // A request waits for a database connection at most half its deadline (and no
    // longer than the default), so a database outage is answered 503
    // `database_unavailable` rather than `request_timeout` or a hang.
    let acquire_timeout = std::time::Duration::from_secs(config.request_timeout_secs)
        .div_f64(2.0)
        .min(store::DEFAULT_ACQUIRE_TIMEOUT);
    let services = Services::open_with(&context.storage, acquire_timeout).await?;
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
    let flusher = governance::metering::Meter::spawn_flusher(
        state.meter().clone(),
        services.store.clone(),
        Duration::from_secs(args.usage_flush_secs.max(1)),
    );
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
    tokio::spawn(super::privacy::purge_periodically(state.privacy().clone()));

    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(args.header_read_timeout_secs.max(1)),
        max_header_bytes: args.max_header_kb.saturating_mul(1024),
        write_timeout: Duration::from_secs(args.write_timeout_secs.max(1)),
    };
    let drain = Duration::from_secs(args.drain_secs);
    serve(listener, app, tls_config, limits, state.clone(), drain).await?;
    runner.shutdown().await;
    // Flush first: a periodic flush in progress finishes before this one starts (they
    // share a lock), so aborting the flusher afterwards cannot drop a tally mid-write.
    flush_usage(&state, &services).await;
    flusher.abort();
    // Seal what the log holds, so a stopped server leaves no entry outside a checkpoint.
    if let Some(log) = state.audit() {
        if let Err(error) = log.checkpoint().await {
            tracing::error!(%error, "sealing the final audit checkpoint failed");
        }
    }
    services.store.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Writes the usage metered since the last periodic flush.
async fn flush_usage(state: &AppState, services: &Services) {
    if let Err(error) = state.meter().flush(&services.store).await {
        tracing::error!(%error, "cannot write the last metered usage; it is lost");
    }
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

/// Limits per connection, set on hyper before any request is parsed.
struct ConnectionLimits {
    header_read_timeout: Duration,
    max_header_bytes: usize,
    write_timeout: Duration,
}

impl ConnectionLimits {
    /// HTTP/1: the head must arrive within the timeout (a timer makes hyper enforce it)
    /// and fit the buffer (else 431); HTTP/2: the header list is bounded the same way.
    fn apply(&self, builder: &mut HttpBuilder) {
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            // hyper's smallest allowed buffer is 8 KiB.
            .max_buf_size(self.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX));
    }
}

type HttpBuilder = hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>;

/// Wraps each accepted connection so that a write blocked for longer than the timeout
/// fails, and hyper closes the connection: a client that stops reading cannot hold a
/// connection, its task and its response buffers for ever (the OS socket buffers fill,
/// then every write waits). Under TLS it sits below rustls, on the TCP stream.
#[derive(Debug, Clone, Copy)]
struct WriteTimeout(Duration);

impl<S> axum_server::accept::Accept<tokio::net::TcpStream, S> for WriteTimeout {
    type Stream = std::pin::Pin<Box<tokio_io_timeout::TimeoutWriter<tokio::net::TcpStream>>>;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let mut stream = tokio_io_timeout::TimeoutWriter::new(stream);
        stream.set_timeout(Some(self.0));
        std::future::ready(Ok((Box::pin(stream), service)))
    }
}

/// Serves HTTP, or HTTPS through rustls, with the connection limits. On SIGTERM
/// readiness turns 503, the listener stops accepting, and connections get `drain` to
/// finish before they are closed.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls_config: Option<rustls::ServerConfig>,
    limits: ConnectionLimits,
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
    let listener = listener.into_std()?;
    let service = app.into_make_service();
    let served = match tls_config {
        Some(tls_config) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config));
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                .acceptor(WriteTimeout(limits.write_timeout));
            let mut server = axum_server::from_tcp(listener)?.acceptor(acceptor);
            limits.apply(server.http_builder());
            server.handle(handle).serve(service).await
        }
        None => {
            let mut server =
                axum_server::from_tcp(listener)?.acceptor(WriteTimeout(limits.write_timeout));
            limits.apply(server.http_builder());
            server.handle(handle).serve(service).await
        }
    };
    served.context("server error")
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
