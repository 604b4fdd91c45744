//! Rate limits and usage through the binary: `tenants create/set` and `keys create`
//! with `--rpm/--tpm/--tpd`, a 429 over real HTTP, and `charter usage` showing what a
//! server metered, written on SIGTERM.

use crate::cli::{charter, fails, http, model_dir, ok, serve, stop};

/// `charter keys create --tenant acme --scopes inference` with `extra` flags.
fn acme_key(dir: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let mut command = charter(dir);
    command
        .args([
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "inference",
        ])
        .args(extra);
    command
}

#[test]
fn tenant_limits_are_set_listed_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    ok(charter(dir.path()).args(["tenants", "create", "acme", "--rpm", "5", "--tpd", "1000"]));
    let listed = ok(charter(dir.path()).args(["tenants", "list"]));
    assert!(
        listed.contains("acme\tnon-commercial\trpm=5 tpm=- tpd=1000"),
        "{listed}"
    );
    ok(charter(dir.path()).args(["tenants", "set", "acme", "--tpd", "none", "--tpm", "50"]));
    let listed = ok(charter(dir.path()).args(["tenants", "list"]));
    assert!(
        listed.contains("acme\tnon-commercial\trpm=5 tpm=50 tpd=-"),
        "{listed}"
    );
    let err = fails(charter(dir.path()).args(["tenants", "set", "acme", "--rpm", "0"]));
    assert!(err.contains("1 or more"), "{err}");
    let err = fails(charter(dir.path()).args(["tenants", "set", "ghost", "--rpm", "1"]));
    assert!(err.contains("not found"), "{err}");
    fails(&mut acme_key(dir.path(), &["--rpm", "0"]));
    ok(&mut acme_key(dir.path(), &["--tpm", "7"]));
    let keys = ok(charter(dir.path()).args(["keys", "list"]));
    assert!(keys.contains("rpm=- tpm=7 tpd=-\tactive"), "{keys}");
}

#[test]
fn a_server_limits_requests_and_meters_usage_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_dir();
    ok(charter(dir.path()).args([
        "models",
        "import",
        model.to_str().unwrap(),
        "--name",
        "minilm",
        "--shared",
    ]));
    ok(charter(dir.path()).args(["tenants", "create", "acme", "--rpm", "1"]));
    let key = ok(&mut acme_key(dir.path(), &[]));
    // A flush interval longer than the test: only the shutdown flush can write usage.
    let mut server = serve(dir.path(), &["--usage-flush-secs", "3600"]);
    let body = r#"{"model": "minilm", "input": "hello world"}"#;
    let embed = || {
        http(
            &server.addr,
            "POST",
            "/v1/embeddings",
            Some(key.trim()),
            Some(body),
        )
    };
    let (status, reply) = embed().unwrap();
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = embed().unwrap();
    assert_eq!(status, 429, "{reply}");
    assert!(reply.contains("rate_limit_exceeded"), "{reply}");
    assert_eq!(
        ok(charter(dir.path()).args(["usage"])),
        "",
        "flushed before shutdown"
    );

    stop(&mut server);
    let id = key.trim().split('_').nth(1).unwrap();
    let today = types::Day::today();
    let usage = ok(charter(dir.path()).args(["usage", "--tenant", "acme"]));
    assert_eq!(usage, format!("{today}\tacme\t{id}\tminilm\t1\t4\n"));
    let none = ok(charter(dir.path()).args(["usage", "--to", "2000-01-01"]));
    assert_eq!(none, "");
    fails(charter(dir.path()).args(["usage", "--from", "yesterday"]));
}
