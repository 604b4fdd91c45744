//! The seed workload through `charter train`: locally, and submitted to a running
//! `charter serve` with `--server`. Both loss logs must equal PyTorch's within 1e-5.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine::tensor::{TensorModel, TensorModelSpec};
use serde_json::Value;

const SEED_SPEC: &str = r#"{"inputs": [{"name": "x", "shape": [10]}], "outputs": [{"name": "y", "shape": [10]}], "layers": [{"type": "linear", "name": "layer1", "in": 10, "out": 20}, {"type": "linear", "name": "layer2", "in": 20, "out": 10}], "loss": "mse"}"#;

fn charter(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_charter"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--log")
        .arg("warn");
    command
}

fn floats(value: &Value) -> Vec<f32> {
    match value {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("not a number: {other}"),
    }
}

/// Writes spec.json, data.jsonl and init.safetensors from the shared reference; returns
/// the reference SGD losses.
fn seed_files(dir: &Path) -> Vec<f64> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/seed_mlp.json"
    );
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    std::fs::write(dir.join("spec.json"), SEED_SPEC).unwrap();
    let x = floats(&reference["x"]["data"]);
    let y = floats(&reference["y"]["data"]);
    let jsonl: String = x
        .chunks(10)
        .zip(y.chunks(10))
        .map(|(x, y)| format!("{}\n", serde_json::json!({"x": x, "y": y})))
        .collect();
    std::fs::write(dir.join("data.jsonl"), jsonl).unwrap();
    let tensors = reference["initial_weights"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, t)| {
            let shape = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (name.clone(), (shape, floats(&t["data"])))
        })
        .collect();
    let model =
        TensorModel::from_tensors(TensorModelSpec::parse(SEED_SPEC).unwrap(), &tensors).unwrap();
    std::fs::write(
        dir.join("init.safetensors"),
        model.to_safetensors().unwrap(),
    )
    .unwrap();
    reference["runs"]["sgd"]["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn train_args(dir: &Path, log: &str) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    [
        "train",
        "--spec",
        &path("spec.json"),
        "--data",
        &path("data.jsonl"),
        "--name",
        "seed",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--batch-size",
        "1",
        "--shuffle",
        "false",
        "--init-weights",
        &path("init.safetensors"),
        "--loss-log",
        &path(log),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn check_loss_log(path: &Path, expected: &[f64]) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.len());
    for (i, (line, want)) in lines.iter().zip(expected).enumerate() {
        assert_eq!(line["step"], i + 1);
        let loss = line["loss"].as_f64().unwrap();
        assert!(
            (loss - want).abs() <= 1e-5,
            "step {}: {loss} vs reference {want}",
            i + 1
        );
    }
}

#[test]
fn seed_workload_trains_locally_like_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let expected = seed_files(dir.path());
    let data_dir = dir.path().join("data");
    let output = charter(&data_dir)
        .args(train_args(dir.path(), "loss.jsonl"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "seed:1");
    check_loss_log(&dir.path().join("loss.jsonl"), &expected);

    let output = charter(&data_dir)
        .args(["models", "show", "seed"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("lineage.json") && shown.contains("model.safetensors"),
        "{shown}"
    );
}

/// Kills the server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn seed_workload_trains_on_a_server_like_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let expected = seed_files(dir.path());
    let data_dir: PathBuf = dir.path().join("data");
    let run = |args: &[&str]| {
        let output = charter(&data_dir).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    run(&["tenants", "create", "acme"]);
    let key = run(&[
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "data,jobs,models:write,models:read",
    ]);
    let port = free_port();
    let _server = Server(
        charter(&data_dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut args = train_args(dir.path(), "remote-loss.jsonl");
    args.extend([
        "--server".into(),
        format!("http://127.0.0.1:{port}"),
        "--key".into(),
        key,
    ]);
    let output = charter(&data_dir).args(&args).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "seed:1");
    check_loss_log(&dir.path().join("remote-loss.jsonl"), &expected);
}
