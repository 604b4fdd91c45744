//! The official OpenAI Python client works against `charter serve` unchanged.

use std::path::Path;
use std::process::Command;

use crate::cli::{model_dir, serve};

const CLIENT: &str = r#"
import json, sys, openai
base, key, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
out = {}
# The client asks for base64 by default and decodes it itself.
out["b64"] = [d.embedding for d in client.embeddings.create(model="minilm", input=texts).data]
out["float"] = client.embeddings.create(model="minilm", input=texts[0], encoding_format="float").data[0].embedding
out["usage"] = client.embeddings.create(model="minilm", input=texts).usage.prompt_tokens
out["models"] = [m.id for m in client.models.list().data]
try:
    client.embeddings.create(model="no-such-model", input="x")
    out["not_found"] = "no error"
except openai.NotFoundError as e:
    out["not_found"] = e.body["code"] if isinstance(e.body, dict) else str(e.body)
try:
    openai.OpenAI(base_url=base, api_key="chr_bad", max_retries=0).models.list()
    out["auth"] = "no error"
except openai.AuthenticationError:
    out["auth"] = "refused"
print(json.dumps(out))
"#;

fn python() -> String {
    let python = std::env::var("CHARTER_TEST_PYTHON").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.venv-test/bin/python")
            .to_string_lossy()
            .into_owned()
    });
    assert!(
        Path::new(&python).exists(),
        "no Python with the openai package at {python}: run scripts/test.sh (it creates .venv-test)"
    );
    python
}

#[test]
fn the_official_openai_client_works_unchanged() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let charter = env!("CARGO_BIN_EXE_charter");
    let import = Command::new(charter)
        .env("CHARTER_DATA_DIR", dir.path())
        .args(["models", "import"])
        .arg(model_dir())
        .args(["--name", "minilm", "--shared"])
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let key = Command::new(charter)
        .env("CHARTER_DATA_DIR", dir.path())
        .args(["keys", "create", "--admin"])
        .output()
        .unwrap();
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let server = serve(dir.path(), &["--load", "minilm"]);

    let reference_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/minilm_public.jsonl");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(reference_path)
        .unwrap()
        .lines()
        .take(6)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    let output = Command::new(&python)
        .args(["-c", CLIENT])
        .arg(format!("http://{}/v1", server.addr))
        .arg(&key)
        .arg(serde_json::to_string(&texts).unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let b64: Vec<Vec<f32>> = serde_json::from_value(out["b64"].clone()).unwrap();
    assert_eq!(b64.len(), texts.len());
    for (got, line) in b64.iter().zip(&lines) {
        let want: Vec<f32> = serde_json::from_value(line["embedding"].clone()).unwrap();
        let max_diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max_diff <= 1e-4, "{}: {max_diff}", line["text"]);
    }
    let float: Vec<f32> = serde_json::from_value(out["float"].clone()).unwrap();
    assert_eq!(float, b64[0], "float and base64 encodings differ");
    let n_tokens: usize = lines
        .iter()
        .map(|l| l["input_ids"].as_array().unwrap().len())
        .sum();
    assert_eq!(out["usage"], n_tokens);
    assert_eq!(out["models"], serde_json::json!(["minilm"]));
    assert_eq!(out["not_found"], "model_not_found");
    assert_eq!(out["auth"], "refused");
}
