//! The CLI contract: commands, their output, configuration precedence, PostgreSQL,
//! and `serve` answering HTTP and stopping cleanly on SIGTERM, finishing an upload in
//! flight.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn charter(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_charter"));
    command
        .env_remove("CHARTER_DATABASE_URL")
        .env_remove("CHARTER_CONFIG")
        .env("CHARTER_DATA_DIR", data_dir)
        .env("CHARTER_LOG", "warn");
    command
}

pub(crate) fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("charter runs")
}

pub fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "failed: {command:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn fails(command: &mut Command) -> String {
    let output = run(command);
    assert!(!output.status.success(), "succeeded: {command:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("CHARTER_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").exists(),
        "the test model is missing at {}: run scripts/fetch-model.sh",
        dir.display()
    );
    dir
}

fn is_key(text: &str) -> bool {
    let parts: Vec<&str> = text.split('_').collect();
    parts.len() == 3 && parts[0] == "chr" && parts[1].len() == 16 && parts[2].len() == 64
}

#[test]
fn keys_create_prints_the_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = ok(charter(dir.path()).args(["keys", "create", "--admin"]));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    assert!(is_key(lines[0]), "{stdout:?}");
    ok(charter(dir.path()).args(["tenants", "create", "acme"]));
    let tenant_key = ok(charter(dir.path()).args([
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "inference,models:read",
    ]));
    assert!(is_key(tenant_key.trim()));
    let listed = ok(charter(dir.path()).args(["keys", "list"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        !listed.contains(tenant_key.trim()),
        "keys list prints a secret"
    );
    let err = fails(charter(dir.path()).args([
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "inference,root",
    ]));
    assert!(err.contains("unknown scope 'root'"), "{err}");
    fails(charter(dir.path()).args(["keys", "create", "--tenant", "acme"]));
    fails(charter(dir.path()).args([
        "keys",
        "create",
        "--tenant",
        "ghost",
        "--scopes",
        "inference",
    ]));
    let id = tenant_key.trim().split('_').nth(1).unwrap().to_owned();
    ok(charter(dir.path()).args(["keys", "revoke", &id]));
    let listed = ok(charter(dir.path()).args(["keys", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&id) && l.ends_with("revoked")),
        "{listed}"
    );
}

#[test]
fn models_import_list_show_and_remove_the_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_dir();
    let model = model.to_str().unwrap();
    let out = ok(charter(dir.path()).args([
        "models",
        "import",
        model,
        "--name",
        "minilm",
        "--license",
        "apache-2.0",
        "--owner",
        "sentence-transformers",
    ]));
    assert_eq!(out.trim(), "minilm:1");
    let out = ok(charter(dir.path()).args(["models", "import", model, "--name", "minilm"]));
    assert_eq!(out.trim(), "minilm:2");
    let listed = ok(charter(dir.path()).args(["models", "list"]));
    assert!(
        listed.contains("minilm\tadmin\tlatest 2\tapache-2.0"),
        "{listed}"
    );
    let shown = ok(charter(dir.path()).args(["models", "show", "minilm:1"]));
    assert!(shown.contains("version:     1"), "{shown}");
    let bytes = std::fs::read(Path::new(model).join("model.safetensors")).unwrap();
    let digest = sha256_hex(&bytes);
    assert!(
        shown.contains(&format!("{digest}  {:>12}  model.safetensors", bytes.len())),
        "{shown}"
    );
    ok(charter(dir.path()).args(["models", "rm", "minilm:1"]));
    let err = fails(charter(dir.path()).args(["models", "show", "minilm:1"]));
    assert!(err.contains("not found"), "{err}");
    ok(charter(dir.path()).args(["models", "show", "minilm"]));
    ok(charter(dir.path()).args(["models", "rm", "minilm"]));
    assert_eq!(ok(charter(dir.path()).args(["models", "list"])), "");
}

#[test]
fn bad_names_and_pickles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_dir();
    // (NUL cannot travel in argv; the types and HTTP tests cover it.)
    for bad in ["../x", "a/b", "%2e%2e", "a b", ".."] {
        let err = fails(
            charter(dir.path())
                .args(["models", "import"])
                .arg(&model)
                .args(["--name", bad]),
        );
        assert!(err.contains("model name"), "{bad:?}: {err}");
    }
    let pickled = dir.path().join("pickled");
    std::fs::create_dir_all(&pickled).unwrap();
    std::fs::write(pickled.join("config.json"), "{}").unwrap();
    std::fs::write(pickled.join("pytorch_model.bin"), [0x80, 0x02, b'.']).unwrap();
    let err = fails(
        charter(dir.path())
            .args(["models", "import"])
            .arg(&pickled)
            .args(["--name", "p"]),
    );
    assert!(err.contains("safetensors"), "{err}");
    assert_eq!(ok(charter(dir.path()).args(["models", "list"])), "");
}

#[test]
fn command_line_beats_environment_beats_config_file() {
    let root = tempfile::tempdir().unwrap();
    let (from_file, from_env, from_flag) = (
        root.path().join("file"),
        root.path().join("env"),
        root.path().join("flag"),
    );
    let config = root.path().join("charter.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", from_file.to_str().unwrap()),
    )
    .unwrap();
    let tenants = |command: &mut Command| {
        ok(command
            .arg("--config")
            .arg(&config)
            .args(["tenants", "create", "t"]));
    };
    tenants(charter(root.path()).env_remove("CHARTER_DATA_DIR"));
    assert!(from_file.join("charter.db").exists());
    assert!(!from_env.exists());
    tenants(charter(root.path()).env("CHARTER_DATA_DIR", &from_env));
    assert!(from_env.join("charter.db").exists());
    assert!(!from_flag.exists());
    tenants(
        charter(root.path())
            .env("CHARTER_DATA_DIR", &from_env)
            .arg("--data-dir")
            .arg(&from_flag),
    );
    assert!(from_flag.join("charter.db").exists());
    std::fs::write(&config, "data_dir = 3\nunknown = true\n").unwrap();
    let err = fails(
        charter(root.path())
            .arg("--config")
            .arg(&config)
            .args(["tenants", "list"]),
    );
    assert!(err.contains("invalid config file"), "{err}");
}

#[test]
fn the_store_runs_on_postgresql() {
    let postgres =
        testkit::postgres::TempPostgres::start().expect("a throwaway PostgreSQL cluster");
    let dir = tempfile::tempdir().unwrap();
    let url = postgres.url();
    let key = ok(charter(dir.path()).args(["--database-url", &url, "keys", "create", "--admin"]));
    assert!(is_key(key.trim()));
    ok(charter(dir.path()).args(["--database-url", &url, "tenants", "create", "pg-tenant"]));
    let listed = ok(charter(dir.path())
        .env("CHARTER_DATABASE_URL", &url)
        .args(["tenants", "list"]));
    assert!(listed.contains("pg-tenant"), "{listed}");
    assert!(
        !dir.path().join("charter.db").exists(),
        "SQLite was used instead of PostgreSQL"
    );
}

#[test]
fn openapi_prints_the_checked_in_document() {
    let dir = tempfile::tempdir().unwrap();
    let printed = ok(charter(dir.path()).arg("openapi"));
    let checked_in = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json"),
    )
    .unwrap();
    assert_eq!(printed.trim_end(), checked_in.trim_end());
}

/// A running `charter serve`, killed on drop.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `charter serve` on a free loopback port and waits until /health answers.
pub fn serve(data_dir: &Path, extra: &[&str]) -> Server {
    serve_from(charter(data_dir), extra)
}

/// [`serve`] through `command`, which runs the charter binary with the arguments
/// appended to it (a wrapper script, say).
pub fn serve_from(mut command: Command, extra: &[&str]) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = command
        .args(["serve", "--listen", &addr])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http(&server.addr, "GET", "/health", None, None).is_some_and(|(status, _)| status == 200)
        {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("charter serve did not come up on {}", server.addr);
}

/// A minimal HTTP/1.1 client over a plain TcpStream: (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Option<(u16, String)> {
    http_with_head(addr, method, path, key, body).map(|(status, _, body)| (status, body))
}

/// [`http`], also returning the response head (status line and headers).
pub fn http_with_head(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Option<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(key) = key {
        request.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (head, rest) = response.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Some((status, head.to_owned(), body))
}

/// Sends SIGTERM and waits (at most 30 s) for `serve` to exit successfully.
pub fn stop(server: &mut Server) {
    sigterm(server);
    wait_for_clean_exit(server);
}

/// Sends SIGTERM to the server.
fn sigterm(server: &Server) {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

/// Waits up to 30 s for the server to exit, and requires exit status 0.
fn wait_for_clean_exit(server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn serve_answers_http_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let key = ok(charter(dir.path()).args(["keys", "create", "--admin"]));
    let mut command = charter(dir.path());
    command.env("CHARTER_LOG", "info");
    let mut server = serve_from(command, &[]);
    let (status, body) = http(&server.addr, "GET", "/v1/models", Some(key.trim()), None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"object\":\"list\""), "{body}");
    let (status, _) = http(&server.addr, "GET", "/v1/models", None, None).unwrap();
    assert_eq!(status, 401);
    // HTTP allows any token as a method; it must not become a metrics label.
    let (status, _) = http(
        &server.addr,
        "JOHN.DOE-4111111111111111",
        "/v1/models",
        None,
        None,
    )
    .unwrap();
    assert_eq!(status, 405);
    let (status, body) = http(&server.addr, "GET", "/metrics", None, None).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("charter_http_requests_total"), "{body}");
    assert!(body.contains("method=\"OTHER\""), "{body}");
    assert!(!body.contains("4111"), "{body}");
    stop(&mut server);
    // It stopped without an error logged (the audit writer once tried a last seal on
    // the closed store).
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(!log.contains("ERROR"), "{log}");
    // A piped log is plain text: no terminal colour codes.
    assert!(log.contains(" INFO "), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
    // Stopping sealed every entry into a checkpoint.
    let verified = ok(charter(dir.path()).args(["audit", "verify"]));
    let counts: Vec<u64> = verified
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    assert!(
        counts.len() >= 2 && counts[0] >= 4 && counts[1] >= 1,
        "{verified}"
    );
}

/// SIGTERM with an upload in flight (checklist row 29): the server stops accepting at
/// once, lets the upload that is halfway through its body finish (the client keeps
/// sending for another second), answers it 201, records it, and exits 0 within the
/// drain time.
#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let key = ok(charter(dir.path()).args(["keys", "create", "--admin"]));
    let mut server = serve(dir.path(), &["--drain-secs", "20"]);
    let body: String = (0..4000)
        .map(|i| format!("{{\"x\":[{i}.0,1.0],\"y\":[2.0]}}\n"))
        .collect();
    let mut upload = std::net::TcpStream::connect(&server.addr).unwrap();
    upload
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        upload,
        "POST /v1/datasets?name=inflight&format=jsonl HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        key.trim(),
        body.len()
    )
    .unwrap();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    upload.write_all(first).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    sigterm(&server);
    // The listener closes: a new client is turned away (or at least not served).
    let refused = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        http(&server.addr, "GET", "/health", None, None).is_none_or(|(status, _)| status != 200)
    });
    assert!(refused, "new requests were still served after SIGTERM");
    // The upload in flight goes on: the rest of its body over another second.
    for chunk in rest.chunks(rest.len().div_ceil(5)) {
        std::thread::sleep(Duration::from_millis(200));
        upload.write_all(chunk).unwrap();
    }
    let mut answer = String::new();
    upload.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    wait_for_clean_exit(&mut server);

    // The dataset is stored whole, and its request is in the log, which verifies.
    let listed = ok(charter(dir.path()).args(["datasets", "list", "--tenant", "admin"]));
    assert!(
        listed.contains("inflight") && listed.contains("4000"),
        "{listed}"
    );
    let export = ok(charter(dir.path()).args(["audit", "export"]));
    assert!(
        export.lines().any(
            |line| line.contains("\"action\":\"http POST /v1/datasets\"")
                && line.contains("\"status\":201")
        ),
        "the upload is not in the audit log"
    );
    ok(charter(dir.path()).args(["audit", "verify"]));
}

#[test]
fn plain_http_on_a_public_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(charter(dir.path()).args(["serve", "--listen", "0.0.0.0:0"]));
    assert!(err.contains("--allow-plain-http"), "{err}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    crypto::sha256_hex(bytes)
}

fn wait_for_ready(addr: &str, want: u16, within: Duration) -> u16 {
    let deadline = Instant::now() + within;
    loop {
        let status = http(addr, "GET", "/ready", None, None).map_or(0, |(s, _)| s);
        if status == want || Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ready_waits_for_every_loaded_model() {
    let dir = tempfile::tempdir().unwrap();
    ok(charter(dir.path())
        .args(["models", "import"])
        .arg(model_dir())
        .args(["--name", "minilm"]));
    // A model that cannot be found keeps the server unready, though it is alive.
    let missing = serve(dir.path(), &["--load", "minilm", "--load", "ghost"]);
    assert_eq!(
        wait_for_ready(&missing.addr, 200, Duration::from_secs(5)),
        503
    );
    drop(missing);
    // An unknown precision is a usage error naming the accepted ones.
    let refused = fails(charter(dir.path()).args(["serve", "--load", "minilm@int3"]));
    assert!(refused.contains("bf16"), "{refused}");
    let server = serve(dir.path(), &["--load", "minilm@bf16"]);
    assert_eq!(
        wait_for_ready(&server.addr, 200, Duration::from_secs(60)),
        200
    );
    let key = ok(charter(dir.path()).args(["keys", "create", "--admin"]));
    let (status, body) = http(
        &server.addr,
        "GET",
        "/v1/deployments",
        Some(key.trim()),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"model\":\"minilm\""), "{body}");
    assert!(body.contains("\"precision\":\"bf16\""), "{body}");
}
