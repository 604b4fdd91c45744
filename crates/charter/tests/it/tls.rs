//! TLS and key files through the real binary: HTTPS with a self-signed certificate
//! (HTTP/1.1 and HTTP/2 by ALPN), refusal of plain HTTP on a public address, graceful
//! shutdown under TLS, the master key file created 0600, and `keys rotate-master`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

fn charter(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_charter"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("CHARTER_MASTER_KEY")
        .env_remove("CHARTER_MASTER_KEY_FILE")
        .env_remove("CHARTER_LISTEN")
        .env_remove("CHARTER_TLS_CERT")
        .env_remove("CHARTER_TLS_KEY")
        .env_remove("CHARTER_ALLOW_PLAIN_HTTP")
        .env("CHARTER_LOG", "info")
        .env("NO_COLOR", "1");
    command
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key, certified.cert.der().to_vec())
}

/// A running `charter serve`, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `charter serve` on a free loopback port and waits for its "serving" log line.
fn serve(data_dir: &Path, extra: &[&str]) -> Server {
    let mut child = charter(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[charter] {line}");
            if line.contains("charter is serving") {
                let _ = sender.send(line);
            }
        }
    });
    let line = receiver
        .recv_timeout(Duration::from_secs(120))
        .expect("charter serve did not start");
    let addr = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no addr in {line:?}"));
    Server { child, addr }
}

fn client_config(cert_der: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert_der.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// `GET path` over HTTP/1.1 on a fresh TLS connection; the whole response text.
async fn https_get(addr: SocketAddr, cert_der: &[u8], path: &str) -> String {
    let mut stream = tls_connect(addr, client_config(cert_der, &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn https_serves_health_and_refuses_plain_and_untrusted_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_der) = self_signed(dir.path());
    let data = dir.path().join("data");
    let server = serve(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );

    let response = https_get(server.addr, &cert_der, "/health").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // HTTP/2 is offered through ALPN.
    let stream = tls_connect(server.addr, client_config(&cert_der, &[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(stream);

    // A client that does not trust the certificate fails the handshake.
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let untrusted = tls_connect(
        server.addr,
        client_config(stranger.cert.der(), &[b"http/1.1"]),
    )
    .await;
    assert!(untrusted.is_err());

    // Plain HTTP on the TLS port gets no HTTP response.
    let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
}

#[tokio::test]
async fn sigterm_under_tls_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_der) = self_signed(dir.path());
    let mut server = serve(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let response = https_get(server.addr, &cert_der, "/health").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "charter did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn plain_http_on_a_public_address_is_refused_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let output = charter(&dir.path().join("data"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to serve plain HTTP on non-loopback address 0.0.0.0:0"),
        "{stderr}"
    );
}

#[test]
fn tls_flags_must_come_together_and_bad_pem_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = self_signed(dir.path());
    let output = charter(&dir.path().join("data"))
        .args(["serve", "--tls-cert", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-key"));

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let output = charter(&dir.path().join("data"))
        .args(["serve", "--listen", "0.0.0.0:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&garbage)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read TLS private key"), "{stderr}");
}

#[test]
fn master_key_file_is_created_0600_and_rotation_retires_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        let output = charter(&data).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    run(&["tenants", "create", "acme"]);
    let key_file = data.join("master.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let v1 = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(v1.trim_end().len(), 64);

    // Give acme a data key by importing a model through the CLI.
    let model = dir.path().join("model");
    write_model(&model);
    run(&[
        "models",
        "import",
        model.to_str().unwrap(),
        "--name",
        "tiny",
        "--tenant",
        "acme",
    ]);
    let stderr = String::from_utf8_lossy(&run(&["keys", "rotate-master"]).stderr).into_owned();
    assert!(stderr.contains("rewrapped 1 data key"), "{stderr}");
    assert!(!key_file.exists(), "version 1 is retired");
    let v2_file = data.join("master.key.2");
    assert_eq!(
        std::fs::metadata(&v2_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Reading the registry with the new keyring works (blob reads after rotation are
    // covered by the registry tests).
    run(&["models", "list"]);

    // Putting the retired v1 back alone does not open anything, and a lost key file
    // is not silently replaced by a new key.
    std::fs::rename(&v2_file, dir.path().join("v2.backup")).unwrap();
    std::fs::write(&key_file, v1).unwrap();
    let output = charter(&data).args(["tenants", "list"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("master key version(s) [2]"), "{stderr}");
    std::fs::remove_file(&key_file).unwrap();
    let output = charter(&data).args(["tenants", "list"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no new key was created"), "{stderr}");
    assert!(!key_file.exists());
}

fn write_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), br#"{"model_type":"bert"}"#).unwrap();
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut weights = (header.len() as u64).to_le_bytes().to_vec();
    weights.extend_from_slice(header);
    weights.extend_from_slice(&[0u8; 8]);
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
}
