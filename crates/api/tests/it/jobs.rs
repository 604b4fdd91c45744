//! Datasets and training jobs over HTTP: validation, lifecycle with lineage, cancel,
//! restart recovery, tenant isolation, idempotency, and the seed workload's trajectory.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use jobs::{FailPoint, Runner, RunnerConfig};
use serde_json::{json, Value};

use crate::support::{self, app, assert_trajectory, App, Reference, SEED_SPEC};

fn runner_config(fail_point: Option<FailPoint>) -> RunnerConfig {
    RunnerConfig {
        poll_interval: Duration::from_millis(20),
        heartbeat_interval: Duration::from_millis(20),
        lease_secs: 0,
        checkpoint_every: 250,
        fail_point,
    }
}

async fn upload(app: &App, tenant: &str, query: &str, body: &str) -> (StatusCode, Value) {
    app.call(
        Some(tenant),
        Method::POST,
        &format!("/v1/datasets?{query}"),
        "application/octet-stream",
        body.as_bytes().to_vec(),
    )
    .await
}

/// Uploads the seed data and imports the reference initial weights as `seed-init`.
async fn seed_setup(app: &App, tenant: &str) -> Reference {
    let reference = Reference::load();
    let (status, body) = upload(app, tenant, "name=seed-data", &reference.jsonl()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rows"], 1000);
    support::publish(app, tenant, "seed-init", &reference.initial_model()).await;
    reference
}

fn seed_job(epochs: usize) -> Value {
    json!({
        "kind": "train",
        "spec": serde_json::from_str::<Value>(SEED_SPEC).unwrap(),
        "dataset": "seed-data",
        "output_model": "seed-trained",
        "parent_model": "seed-init",
        "checkpoint_every": 250,
        "hyperparameters": {"optimizer": "sgd", "lr": 0.01, "epochs": epochs, "batch_size": 1, "shuffle": false, "seed": 1},
    })
}

fn losses(job: &Value) -> Vec<f64> {
    job["result"]["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_uploads_are_validated_naming_row_and_column() {
    let app = app().await;
    let check = |query: &'static str, body: &'static str, needle: &'static str| {
        let app = &app;
        async move {
            let (status, error) = upload(app, "acme", query, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    };
    check(
        "name=a",
        "{\"x\":[1,2],\"y\":[1]}\n{\"x\":[1],\"y\":[1]}\n",
        "row 2, column \"x\": expected 2 numbers, found 1",
    )
    .await;
    check(
        "name=a",
        "{\"x\":[1,2],\"y\":[1]}\n{\"x\":[1,\"b\"],\"y\":[1]}\n",
        "row 2, column \"x\"",
    )
    .await;
    check(
        "name=a",
        "{\"x\":[1,2],\"y\":[1e39]}\n",
        "row 1, column \"y\"",
    )
    .await;
    check(
        "name=a&format=csv&features=a,b&targets=c",
        "a,b,c\n1,2,3\n4,x,6\n",
        "row 2, column \"b\"",
    )
    .await;
    check(
        "name=a&format=csv&features=a,b&targets=c",
        "a,b,c\n1,2,3\n4,5\n",
        "row 2",
    )
    .await;
    check(
        "name=a&format=csv&features=a,b&targets=c",
        "a,b,c\n1,2,inf\n",
        "row 1, column \"c\"",
    )
    .await;
    check(
        "name=a&format=csv",
        "a,b,c\n1,2,3\n",
        "features and targets",
    )
    .await;

    let (status, body) = upload(
        &app,
        "acme",
        "name=good&format=csv&features=a,b&targets=c",
        "a,b,c\n1,2,3\n4,5,6\n",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rows"], 2);
    assert_eq!(body["digest"].as_str().unwrap().len(), 64);
    let (status, _) = upload(
        &app,
        "acme",
        "name=good&format=csv&features=a,b&targets=c",
        "a,b,c\n1,2,3\n",
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, list) = app.get("acme", "/v1/datasets").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Tenant-private: the other tenant sees nothing and cannot delete it.
    let (status, _) = app.get("other", "/v1/datasets/good").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("other", "/v1/datasets").await;
    assert!(list["data"].as_array().unwrap().is_empty());
    let (status, _) = app
        .call(
            Some("other"),
            Method::DELETE,
            "/v1/datasets/good",
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Some("acme"),
            Method::DELETE,
            "/v1/datasets/good",
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("acme", "/v1/datasets/good").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(None, Method::GET, "/v1/datasets", "", vec![])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_workload_trains_over_http_like_pytorch_with_lineage() {
    let app = app().await;
    let reference = seed_setup(&app, "acme").await;
    let (status, job) = app.post_json("acme", "/v1/jobs", &seed_job(1)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["status"], "queued");
    let id = job["id"].as_str().unwrap().to_owned();

    let runner = Runner::start(app.registry.clone(), runner_config(None));
    // The event stream ends with the finished job.
    let (status, _, events) = app
        .call_raw(
            Some("acme"),
            Method::GET,
            &format!("/v1/jobs/{id}/events"),
            "",
            vec![],
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = String::from_utf8(events).unwrap();
    assert!(
        events.starts_with("event: status") || events.starts_with("event: end"),
        "{events}"
    );
    assert!(events.contains("event: end"), "{events}");
    let job = app.wait_job("acme", &id).await;
    runner.shutdown().await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_trajectory(&losses(&job), &reference.losses("sgd"), 1e-5);

    let result = &job["result"];
    assert_eq!(result["model"], "seed-trained");
    assert_eq!(result["version"], 1);
    let lineage = &result["lineage"];
    let (_, dataset) = app.get("acme", "/v1/datasets/seed-data").await;
    assert_eq!(lineage["dataset_digest"], dataset["digest"]);
    assert_eq!(lineage["parent_model"], "seed-init:1");
    assert_eq!(lineage["hyperparameters"]["lr"], 0.01);
    assert_eq!(lineage["steps"], 1000);
    assert!(lineage["final_metrics"]["loss"].as_f64().is_some());

    // The new version exists and carries lineage.json.
    let (status, version) = app
        .get("acme", "/v1/registry/models/seed-trained/versions/1")
        .await;
    assert_eq!(status, StatusCode::OK, "{version}");
    let files: Vec<&str> = version["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for file in [
        "lineage.json",
        "spec.json",
        "model.safetensors",
        "charter_tensor.json",
    ] {
        assert!(files.contains(&file), "{files:?} lacks {file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_can_be_cancelled_queued_or_running() {
    let app = app().await;
    seed_setup(&app, "acme").await;
    // Queued: cancelled at once, no runner needed.
    let (_, job) = app.post_json("acme", "/v1/jobs", &seed_job(1)).await;
    let id = job["id"].as_str().unwrap();
    let (status, job) = app
        .call(
            Some("acme"),
            Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(job["status"], "cancelled");

    // Running: stopped between steps.
    let (_, job) = app.post_json("acme", "/v1/jobs", &seed_job(100_000)).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let runner = Runner::start(app.registry.clone(), runner_config(None));
    for _ in 0..400 {
        let (_, job) = app.get("acme", &format!("/v1/jobs/{id}")).await;
        if job["status"] == "running" && job["progress"]["step"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (status, _) = app
        .call(
            Some("other"),
            Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            "",
            vec![],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant cannot cancel"
    );
    let (status, _) = app
        .call(
            Some("acme"),
            Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let job = app.wait_job("acme", &id).await;
    runner.shutdown().await;
    assert_eq!(job["status"], "cancelled", "{job}");
    let (status, _) = app.get("acme", "/v1/registry/models/seed-trained").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a cancelled job publishes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_runner_died_resumes_from_its_checkpoint() {
    let app = app().await;
    let reference = seed_setup(&app, "acme").await;
    let (_, job) = app.post_json("acme", "/v1/jobs", &seed_job(1)).await;
    let id = job["id"].as_str().unwrap().to_owned();

    let dying = Runner::start(
        app.registry.clone(),
        runner_config(Some(FailPoint::AfterCheckpoint { step: 500 })),
    );
    for _ in 0..1200 {
        if dying.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(dying.is_finished(), "the fail point did not fire");
    let (_, job) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    assert_eq!(
        job["status"], "running",
        "the dead runner left the job running: {job}"
    );
    assert_eq!(job["progress"]["step"], 500);

    let runner = Runner::start(app.registry.clone(), runner_config(None));
    let job = app.wait_job("acme", &id).await;
    runner.shutdown().await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2);
    // Resuming is exact: the whole trajectory still matches PyTorch.
    assert_trajectory(&losses(&job), &reference.losses("sgd"), 1e-5);
}

/// A graceful shutdown (SIGTERM in `serve`) in the middle of a job checkpoints it and
/// gives it back: the job stays `running`, the interruption is not counted as an
/// attempt, the next runner resumes it, and the result is the one an uninterrupted
/// run gives (checklist rows 29 and 30).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stopped_by_shutdown_resumes_where_it_stopped() {
    const EPOCHS: usize = 20;
    let app = app().await;
    seed_setup(&app, "acme").await;
    let mut stopped = seed_job(EPOCHS);
    stopped["output_model"] = json!("seed-stopped");
    let (_, job) = app.post_json("acme", "/v1/jobs", &stopped).await;
    let id = job["id"].as_str().unwrap().to_owned();

    let runner = Runner::start(app.registry.clone(), runner_config(None));
    let mut step = 0;
    for _ in 0..1200 {
        let (_, job) = app.get("acme", &format!("/v1/jobs/{id}")).await;
        step = job["progress"]["step"].as_u64().unwrap_or(0);
        if step > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(step > 0, "the job never started");
    runner.shutdown().await;
    let (_, job) = app.get("acme", &format!("/v1/jobs/{id}")).await;
    let total = (EPOCHS * 1000) as u64;
    let at = job["progress"]["step"].as_u64().unwrap();
    assert_eq!(job["status"], "running", "{job}");
    assert!(
        at > 0 && at < total,
        "stopped at step {at} of {total}: {job}"
    );
    assert_eq!(
        job["attempts"], 0,
        "the shutdown was counted as an attempt: {job}"
    );

    // The same job again, uninterrupted, beside the resumed one.
    let (_, whole) = app.post_json("acme", "/v1/jobs", &seed_job(EPOCHS)).await;
    let whole_id = whole["id"].as_str().unwrap().to_owned();
    let runner = Runner::start(app.registry.clone(), runner_config(None));
    let resumed = app.wait_job("acme", &id).await;
    let whole = app.wait_job("acme", &whole_id).await;
    runner.shutdown().await;
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    assert_eq!(whole["status"], "succeeded", "{whole}");
    assert_eq!(resumed["attempts"], 1, "{resumed}");
    assert_eq!(
        losses(&resumed),
        losses(&whole),
        "resuming changed the trajectory"
    );
    let (_, model) = app.get("acme", "/v1/registry/models/seed-stopped").await;
    assert_eq!(model["versions"].as_array().unwrap().len(), 1, "{model}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_tenant_private_and_idempotent() {
    let app = app().await;
    seed_setup(&app, "acme").await;
    let key = [("idempotency-key", "train-1")];
    let submit = |tenant: &'static str| {
        let app = &app;
        async move {
            let (status, _, body) = app
                .call_raw(
                    Some(tenant),
                    Method::POST,
                    "/v1/jobs",
                    "application/json",
                    seed_job(1).to_string().into_bytes(),
                    &key,
                )
                .await;
            (status, serde_json::from_slice::<Value>(&body).unwrap())
        }
    };
    let (status, first) = submit("acme").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again) = submit("acme").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        first["id"], again["id"],
        "the same key returns the same job"
    );
    let (_, list) = app.get("acme", "/v1/jobs").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // The other tenant has no dataset of that name, and cannot see acme's job.
    let (status, error) = submit("other").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    let id = first["id"].as_str().unwrap();
    let (status, _) = app.get("other", &format!("/v1/jobs/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("other", &format!("/v1/jobs/{id}/events")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("other", "/v1/jobs").await;
    assert!(list["data"].as_array().unwrap().is_empty());

    // Bad requests say what is wrong.
    let mut bad = seed_job(1);
    bad["hyperparameters"]["lr"] = json!(-1.0);
    let (status, error) = app.post_json("acme", "/v1/jobs", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let mut bad = seed_job(1);
    bad["spec"]["layers"][0]["in"] = json!(7);
    let (status, error) = app.post_json("acme", "/v1/jobs", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let mut bad = seed_job(1);
    bad["kind"] = json!("distil");
    let (status, _) = app.post_json("acme", "/v1/jobs", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A runner that dies after publishing but before recording success leaves the version
/// behind; the job resumed by another runner adopts it instead of publishing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_published_before_its_runner_died_publishes_once() {
    let app = app().await;
    seed_setup(&app, "acme").await;
    let (_, job) = app.post_json("acme", "/v1/jobs", &seed_job(1)).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let dying = Runner::start(
        app.registry.clone(),
        runner_config(Some(FailPoint::AfterPublish)),
    );
    for _ in 0..2400 {
        if dying.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(dying.is_finished(), "the fail point did not fire");
    let (status, _) = app
        .get("acme", "/v1/registry/models/seed-trained/versions/1")
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the dying runner published version 1"
    );

    let runner = Runner::start(app.registry.clone(), runner_config(None));
    let job = app.wait_job("acme", &id).await;
    runner.shutdown().await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["version"], 1, "{job}");
    let (status, model) = app.get("acme", "/v1/registry/models/seed-trained").await;
    assert_eq!(status, StatusCode::OK, "{model}");
    let versions = model["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "published twice: {model}");
}

/// The seed data as CSV (`--features`/`--targets` columns) trained with Adam over HTTP:
/// the loss trajectory equals PyTorch's Adam run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adam_on_a_csv_dataset_trains_like_pytorch() {
    let app = app().await;
    let reference = Reference::load();
    let x = support::floats(&reference.json["x"]["data"]);
    let y = support::floats(&reference.json["y"]["data"]);
    let columns = |prefix: &str| (0..10).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
    let (features, targets) = (columns("x").join(","), columns("y").join(","));
    let mut csv = format!("{features},{targets}\n");
    for (x, y) in x.chunks(10).zip(y.chunks(10)) {
        let cells: Vec<String> = x.iter().chain(y).map(|v| format!("{v:?}")).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    let query = format!("name=seed-csv&format=csv&features={features}&targets={targets}");
    let (status, body) = upload(&app, "acme", &query, &csv).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    support::publish(&app, "acme", "seed-init", &reference.initial_model()).await;

    let mut job = seed_job(1);
    job["dataset"] = json!("seed-csv");
    job["output_model"] = json!("seed-adam");
    job["hyperparameters"]["optimizer"] = json!("adam");
    job["hyperparameters"]["lr"] = json!(0.001);
    let (status, job) = app.post_json("acme", "/v1/jobs", &job).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let runner = Runner::start(app.registry.clone(), runner_config(None));
    let job = app.wait_job("acme", job["id"].as_str().unwrap()).await;
    runner.shutdown().await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_trajectory(&losses(&job), &reference.losses("adam"), 1e-5);
    assert_eq!(
        job["result"]["lineage"]["hyperparameters"]["optimizer"],
        "adam"
    );
}
