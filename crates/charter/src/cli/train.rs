//! `charter train`: train a tensor model locally with a progress bar and register the
//! result, or (`--server`) submit the job to a running server and follow its events.
//!
//! The server mode speaks plain HTTP through hyper's client (already in the dependency
//! tree through axum) rather than pulling in reqwest and a TLS stack: the CLI talks to
//! a server on loopback or behind a TLS-terminating proxy, as `charter serve` expects.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use clap::{ArgAction, Args};
use engine::tensor::{TensorModel, TensorModelSpec, TrainEvent, Trainer, ValidSpec};
use indicatif::ProgressBar;
use jobs::{DatasetFormat, Hyperparameters, Lineage, OptimizerKind, PublishRequest};
use serde_json::{json, Value};
use types::{ModelName, TenantName};

use super::datasets::{csv_columns, tenant_or_admin};
use super::Context;
use crate::services::Services;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The model spec (JSON: inputs, outputs, layers, loss)
    #[arg(long)]
    pub spec: PathBuf,
    /// Training data: JSONL keyed by the spec's input and output names, or CSV
    #[arg(long)]
    pub data: PathBuf,
    /// Model that receives the trained weights as its next version
    #[arg(long)]
    pub name: ModelName,
    /// gd (full batch), sgd, adam or adamw
    #[arg(long, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f64,
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay [default: 0, AdamW 0.01]
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Examples per step [default: 32; gd uses the whole set]
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reshuffle the rows every epoch
    #[arg(long, default_value = "false", action = ArgAction::Set)]
    pub shuffle: bool,
    /// Share of rows held out for validation
    #[arg(long, default_value_t = 0.0)]
    pub validation_split: f64,
    /// Start from these weights (safetensors with PyTorch names) instead of a random init
    #[arg(long)]
    pub init_weights: Option<PathBuf>,
    /// Write one JSON line per optimiser step: {"step": i, "loss": x}
    #[arg(long)]
    pub loss_log: Option<PathBuf>,
    /// Tenant that owns the model [default: admin; with --server the key's tenant]
    #[arg(long)]
    pub tenant: Option<TenantName>,
    /// Data format [default: from the file extension]
    #[arg(long)]
    pub format: Option<DatasetFormat>,
    /// CSV: comma-separated feature columns
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
    /// CSV: comma-separated target columns
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Submit to this server (http://HOST:PORT) instead of training locally
    #[arg(long, env = "CHARTER_SERVER")]
    pub server: Option<String>,
    /// API key for --server (scopes data and jobs; models:write with --init-weights)
    #[arg(long, env = "CHARTER_API_KEY")]
    pub key: Option<String>,
}

impl TrainArgs {
    fn hyperparameters(&self) -> Hyperparameters {
        Hyperparameters {
            optimizer: self.optimizer,
            lr: self.lr,
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed: self.seed,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            shuffle: self.shuffle,
            validation_split: self.validation_split,
            ..Hyperparameters::default()
        }
    }
}

pub async fn run(context: Context, args: TrainArgs) -> anyhow::Result<ExitCode> {
    let spec_text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("cannot read {}", args.spec.display()))?;
    let spec = TensorModelSpec::parse(&spec_text)
        .with_context(|| format!("invalid spec {}", args.spec.display()))?;
    let data = std::fs::read(&args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?;
    match args.server.clone() {
        Some(server) => remote::run(&server, &args, &spec, data).await,
        None => run_local(context, &args, spec, data).await,
    }
}

async fn run_local(
    context: Context,
    args: &TrainArgs,
    spec: ValidSpec,
    data: Vec<u8>,
) -> anyhow::Result<ExitCode> {
    let format = args
        .format
        .unwrap_or_else(|| DatasetFormat::from_path(&args.data));
    let columns = match csv_columns(args.features.clone(), args.targets.clone()) {
        Some(c) => json!({"features": c.features, "targets": c.targets}),
        None if format == DatasetFormat::Csv => bail!("CSV data needs --features and --targets"),
        None => Value::Null,
    };
    let dataset = jobs::datasets::parse_for_spec(format.as_str(), &columns, &spec, &data)
        .with_context(|| format!("invalid data {}", args.data.display()))?;
    let dataset_rows = dataset.n_rows() as i64;
    let hyperparameters = args.hyperparameters();
    let config = hyperparameters.to_config()?;
    let (model, parent) = initial_model(args, &spec)?;
    let mut trainer = Trainer::new(model, dataset, config)?;
    let total = total_steps(&hyperparameters, dataset_rows as usize);
    let bar = progress_bar(total);
    let mut log = match &args.loss_log {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let mut metrics = std::collections::BTreeMap::new();
    // Training is synchronous; it runs here because nothing else shares this runtime.
    while let Some(event) = trainer.next_event()? {
        match event {
            TrainEvent::Step(step) => {
                if let Some(log) = log.as_mut() {
                    writeln!(log, "{{\"step\": {}, \"loss\": {}}}", step.step, step.loss)?;
                }
                metrics.insert("loss".to_owned(), step.loss);
                bar.set_position(step.step);
                if step.step % 16 == 0 || step.step == total {
                    bar.set_message(format!("{:.6}", step.loss));
                }
            }
            TrainEvent::EpochEnd(epoch) => {
                metrics.insert("train_loss".to_owned(), epoch.train_loss);
                if let Some(v) = epoch.val_loss {
                    metrics.insert("val_loss".to_owned(), v);
                }
                if let Some(v) = epoch.val_accuracy {
                    metrics.insert("val_accuracy".to_owned(), v);
                }
            }
        }
    }
    if let Some(mut log) = log {
        log.flush()?;
    }
    bar.finish();
    let steps = trainer.step();
    let services = Services::open(&context.storage).await?;
    let lineage = Lineage {
        job_id: None,
        dataset: Some(args.data.display().to_string()),
        dataset_digest: blobstore::Digest::of_bytes(&data).to_string(),
        dataset_rows,
        spec,
        seed: hyperparameters.seed,
        hyperparameters,
        parent_model: parent,
        final_metrics: metrics.clone(),
        steps,
    };
    let version = jobs::train::publish_model(
        &services.registry,
        PublishRequest {
            tenant: tenant_or_admin(args.tenant.clone())?,
            name: args.name.clone(),
            model: trainer.into_model(),
            lineage,
        },
    )
    .await?;
    println!("{}", version.model_ref());
    eprintln!(
        "trained {steps} steps, final loss {}",
        metrics
            .get("loss")
            .map_or("-".to_owned(), |l| format!("{l:.6}"))
    );
    Ok(ExitCode::SUCCESS)
}

fn initial_model(
    args: &TrainArgs,
    spec: &ValidSpec,
) -> anyhow::Result<(TensorModel, Option<String>)> {
    match &args.init_weights {
        None => Ok((TensorModel::init(spec.clone(), args.seed), None)),
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let model = TensorModel::from_safetensors(spec.clone(), &bytes)
                .with_context(|| format!("invalid initial weights {}", path.display()))?;
            let digest = blobstore::Digest::of_bytes(&bytes);
            Ok((
                model,
                Some(format!("file:{} sha256:{digest}", file_name(path))),
            ))
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn total_steps(hyperparameters: &Hyperparameters, rows: usize) -> u64 {
    let n_train = rows - (rows as f64 * hyperparameters.validation_split).floor() as usize;
    let per_epoch = match hyperparameters.optimizer {
        OptimizerKind::Gd => 1,
        _ => n_train.div_ceil(hyperparameters.batch_size.unwrap_or(32).max(1)),
    };
    (per_epoch * hyperparameters.epochs) as u64
}

fn progress_bar(total: u64) -> ProgressBar {
    super::progress_bar(
        Some(total),
        "{bar:30} {pos}/{len} steps  loss {msg}  ETA {eta}",
    )
}

/// Submitting to a running server.
mod remote {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::{Method, Request, StatusCode};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

    pub async fn run(
        server: &str,
        args: &TrainArgs,
        spec: &ValidSpec,
        data: Vec<u8>,
    ) -> anyhow::Result<ExitCode> {
        let key = args
            .key
            .clone()
            .ok_or_else(|| anyhow!("--server needs --key (or CHARTER_API_KEY)"))?;
        let api = Api {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: server.trim_end_matches('/').to_owned(),
            key,
        };
        let format = args
            .format
            .unwrap_or_else(|| DatasetFormat::from_path(&args.data));
        let digest = blobstore::Digest::of_bytes(&data).to_string();
        let dataset = format!("{}-data-{}", args.name, &digest[..12]);
        let mut query = format!("name={dataset}&format={}", format.as_str());
        if !args.features.is_empty() {
            query.push_str(&format!(
                "&features={}&targets={}",
                args.features.join(","),
                args.targets.join(",")
            ));
        }
        let (status, body) = api
            .send(
                Method::POST,
                &format!("/v1/datasets?{query}"),
                "application/octet-stream",
                data,
            )
            .await?;
        // The name carries the content digest, so an existing one holds the same data.
        if status != StatusCode::CREATED && status != StatusCode::CONFLICT {
            bail!("dataset upload failed ({status}): {}", error_text(&body));
        }
        let mut job = json!({
            "kind": "train",
            "spec": spec,
            "dataset": dataset,
            "output_model": args.name.to_string(),
            "hyperparameters": args.hyperparameters(),
        });
        if let Some(path) = &args.init_weights {
            job["parent_model"] = json!(upload_init_weights(&api, args, spec, path).await?);
        }
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/jobs",
                "application/json",
                serde_json::to_vec(&job)?,
            )
            .await?;
        if status != StatusCode::ACCEPTED {
            bail!("job submission failed ({status}): {}", error_text(&body));
        }
        let job: Value = serde_json::from_slice(&body)?;
        let id = job["id"]
            .as_str()
            .ok_or_else(|| anyhow!("the server answered without a job id"))?
            .to_owned();
        eprintln!("job {id} queued");
        let end = api.follow(&id).await?;
        match end["status"].as_str() {
            Some("succeeded") => {
                let result = &end["result"];
                if let Some(path) = &args.loss_log {
                    write_loss_log(path, result)?;
                }
                println!(
                    "{}:{}",
                    result["model"].as_str().unwrap_or("?"),
                    result["version"]
                );
                Ok(ExitCode::SUCCESS)
            }
            other => {
                eprintln!(
                    "job {id} ended {}: {}",
                    other.unwrap_or("?"),
                    end["error"].as_str().unwrap_or("-")
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }

    fn write_loss_log(path: &Path, result: &Value) -> anyhow::Result<()> {
        let mut log = std::io::BufWriter::new(std::fs::File::create(path)?);
        let losses = result["losses"].as_array().cloned().unwrap_or_default();
        for (i, loss) in losses.iter().enumerate() {
            writeln!(log, "{{\"step\": {}, \"loss\": {}}}", i + 1, loss)?;
        }
        log.flush()?;
        Ok(())
    }

    /// Uploads the initial weights as a tensor model `NAME-init` and returns its ref.
    async fn upload_init_weights(
        api: &Api,
        args: &TrainArgs,
        spec: &ValidSpec,
        path: &Path,
    ) -> anyhow::Result<String> {
        let weights =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        TensorModel::from_safetensors(spec.clone(), &weights)
            .with_context(|| format!("invalid initial weights {}", path.display()))?;
        let mut tar = tar::Builder::new(Vec::new());
        let files: [(&str, Vec<u8>); 4] = [
            (
                "config.json",
                json!({"model_type": jobs::train::MODEL_TYPE})
                    .to_string()
                    .into_bytes(),
            ),
            (
                jobs::train::MARKER_FILE,
                json!({"format": "charter.tensor.v1"})
                    .to_string()
                    .into_bytes(),
            ),
            (jobs::train::SPEC_FILE, spec.to_json().into_bytes()),
            (jobs::train::WEIGHTS_FILE, weights),
        ];
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes.as_slice())?;
        }
        let archive = tar.into_inner()?;
        let name = format!("{}-init", args.name);
        let (status, body) = api
            .send(
                Method::POST,
                &format!("/v1/registry/models/{name}/versions"),
                "application/x-tar",
                archive,
            )
            .await?;
        if status != StatusCode::CREATED {
            bail!(
                "uploading the initial weights failed ({status}): {}",
                error_text(&body)
            );
        }
        let version: Value = serde_json::from_slice(&body)?;
        Ok(format!("{name}:{}", version["version"]))
    }

    fn error_text(body: &[u8]) -> String {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
    }

    struct Api {
        client: HttpClient,
        base: String,
        key: String,
    }

    impl Api {
        fn request(
            &self,
            method: Method,
            path: &str,
            content_type: &str,
            body: Vec<u8>,
        ) -> anyhow::Result<Request<Full<Bytes>>> {
            Ok(Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base))
                .header("authorization", format!("Bearer {}", self.key))
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))?)
        }

        async fn send(
            &self,
            method: Method,
            path: &str,
            content_type: &str,
            body: Vec<u8>,
        ) -> anyhow::Result<(StatusCode, Bytes)> {
            let response = self
                .client
                .request(self.request(method, path, content_type, body)?)
                .await
                .with_context(|| format!("cannot reach {}", self.base))?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok((status, body))
        }

        /// Follows the job's events with a progress bar; returns the final job.
        async fn follow(&self, id: &str) -> anyhow::Result<Value> {
            let response = self
                .client
                .request(self.request(
                    Method::GET,
                    &format!("/v1/jobs/{id}/events"),
                    "text/plain",
                    Vec::new(),
                )?)
                .await?;
            if response.status() != StatusCode::OK {
                bail!("cannot follow job {id} ({})", response.status());
            }
            let bar = progress_bar(0);
            let mut body = response.into_body();
            let mut buffer = String::new();
            while let Some(frame) = body.frame().await {
                let Ok(chunk) = frame?.into_data() else {
                    continue;
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let message: String = buffer.drain(..end + 2).collect();
                    let (event, data) = parse_event(&message);
                    let Ok(data) = serde_json::from_str::<Value>(&data) else {
                        continue;
                    };
                    match event.as_str() {
                        "progress" => {
                            if let Some(total) = data["total_steps"].as_u64() {
                                bar.set_length(total);
                            }
                            bar.set_position(data["step"].as_u64().unwrap_or(0));
                            if let Some(loss) = data["loss"].as_f64() {
                                bar.set_message(format!("{loss:.6}"));
                            }
                        }
                        "end" => {
                            bar.finish();
                            return Ok(data);
                        }
                        _ => {}
                    }
                }
            }
            bail!("the event stream of job {id} ended before the job did")
        }
    }

    fn parse_event(message: &str) -> (String, String) {
        let mut event = String::from("message");
        let mut data = String::new();
        for line in message.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                event = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        (event, data)
    }
}
