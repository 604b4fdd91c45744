//! Connection limits of the real server: a client that sends its headers too slowly, or
//! stops reading its responses, is disconnected while others are served, and an
//! oversized request head gets 431; and what the server does when its database
//! restarts or stalls, or its wall clock steps.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::cli::{charter, http, http_with_head, ok, serve, serve_from};

/// Reads until the server closes the connection; what it sent, or `None` when the
/// connection is still open after `wait` (the server never gave up on the client).
fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(String::from_utf8_lossy(&received).into_owned())
        }
        Err(_) => None,
    }
}

#[test]
fn slow_headers_are_cut_off_and_others_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &["--header-read-timeout-secs", "1"]);
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.addr).unwrap();
            // The request line and one header, then nothing more: slowloris.
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    // Meanwhile a complete request is answered.
    let (status, _) = http(&server.addr, "GET", "/health", None, None).unwrap();
    assert_eq!(status, 200);
    for stream in &mut slow {
        // Far longer than the 1 s allowed: only a server that never cuts the client off
        // keeps the connection open this long.
        let answer = read_until_closed(stream, Duration::from_secs(30))
            .expect("the server kept a connection with unfinished headers open");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    let (status, _) = http(&server.addr, "GET", "/health", None, None).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn an_oversized_request_head_gets_431() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &["--max-header-kb", "16"]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let big = "a".repeat(64 * 1024);
    let request = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may stop reading (and close) before the whole head is written.
    let _ = stream.write_all(request.as_bytes());
    let answer = read_until_closed(&mut stream, Duration::from_secs(30)).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // A normal head is still fine.
    let (status, _) = http(&server.addr, "GET", "/health", None, None).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn a_client_that_stops_reading_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let key = ok(charter(dir.path()).args(["keys", "create", "--admin"]));
    let key = key.trim();
    let server = serve(dir.path(), &["--write-timeout-secs", "2"]);
    // 24 pipelined requests whose answers (0.9 MB each, under the PII engine's 1 MiB
    // input limit) are far more than the loopback socket buffers hold, and a client
    // that reads none of them.
    const REQUESTS: usize = 24;
    let body = format!(r#"{{"text": "{}"}}"#, "lorem ipsum ".repeat(75_000));
    let request = format!(
        "POST /v1/privacy/redact HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    // The server stops reading requests while its write is blocked, so they are sent
    // from another thread; a write fails once the server has closed the connection.
    let sender = std::thread::spawn(move || {
        for _ in 0..REQUESTS {
            if writer.write_all(request.as_bytes()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(8));
    // Only a server that never gives up on the client is still sending after this.
    let answer = read_until_closed(&mut stream, Duration::from_secs(60))
        .expect("the server kept writing to a client that had stopped reading");
    let answered = answer.matches("HTTP/1.1 200").count();
    assert!(
        answered < REQUESTS,
        "all {answered} responses were delivered: the client was not cut off"
    );
    sender.join().unwrap();
    let (status, _) = http(&server.addr, "GET", "/health", None, None).unwrap();
    assert_eq!(status, 200);
}

/// Chunked-encoding abuse (checklist row 17): chunk sizes of 2^64 - 1 (announced, then
/// the client stops sending) and 2^64, a 100 KB chunk extension and a flood of
/// trailers get 400 `body_unreadable` at once, 3 MB in 1-byte chunks gets 413 at the
/// JSON limit, and the server still serves.
#[test]
fn chunked_encoding_abuse_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = ok(charter(dir.path()).args(["keys", "create", "--admin"]));
    let key = key.trim();
    let server = serve(dir.path(), &[]);
    let head = format!(
        "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let one_byte_chunks: String = std::iter::repeat_n("1\r\n[\r\n", 3_000_000).collect();
    let trailers: String = (0..20_000).map(|i| format!("X-T{i}: {i}\r\n")).collect();
    let unreadable = ("400", "body_unreadable");
    let cases = [
        (
            "chunk size 2^64 - 1",
            "ffffffffffffffff\r\n{}\r\n".to_owned(),
            unreadable,
        ),
        (
            "chunk size 2^64",
            "10000000000000000\r\n{}\r\n0\r\n\r\n".to_owned(),
            unreadable,
        ),
        (
            "100 KB chunk extension",
            format!("2;{}\r\n{{}}\r\n0\r\n\r\n", "e".repeat(100_000)),
            unreadable,
        ),
        (
            "20,000 trailers",
            format!("2\r\n{{}}\r\n0\r\n{trailers}\r\n"),
            unreadable,
        ),
        (
            "3 MB in 1-byte chunks",
            format!("{one_byte_chunks}0\r\n\r\n"),
            ("413", "request_too_large"),
        ),
    ];
    for (case, body, (status, code)) in cases {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        let request = format!("{head}{body}");
        // The server may answer and close before the whole body is written. Then the
        // client sends nothing more.
        let _ = stream.write_all(request.as_bytes());
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let answer = read_until_closed(&mut stream, Duration::from_secs(90))
            .unwrap_or_else(|| panic!("{case}: the connection was left open"));
        let first = answer.lines().next().unwrap_or("");
        assert_eq!(first.split(' ').nth(1), Some(status), "{case}: {first}");
        let error: serde_json::Value =
            serde_json::from_str(answer.lines().last().unwrap_or("")).unwrap();
        assert_eq!(error["error"]["code"], code, "{case}: {error}");
        let (status, _) = http(&server.addr, "GET", "/health", None, None).unwrap();
        assert_eq!(status, 200, "{case}: the server stopped serving");
    }
}

/// Out of storage (checklist rows 12 and 13): the server runs with a 4 MiB limit on
/// the size of any file it writes (`ulimit -f`, SIGXFSZ ignored, so writes past it
/// fail with EFBIG as they would with ENOSPC on a full disk, without needing a mount).
/// Uploads larger than that get 507 `insufficient_storage`, not a 500; nothing is left
/// staged; the server keeps serving and storing small things.
#[test]
fn uploads_onto_a_full_disk_get_507_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let key = ok(charter(dir.path()).args(["keys", "create", "--admin"]));
    let key = key.trim();
    let command = charter(dir.path());
    let binary = command.get_program().to_owned();
    let mut limited = std::process::Command::new("bash");
    limited
        .args(["-c", "trap '' XFSZ; ulimit -f 4096; exec \"$0\" \"$@\""])
        .arg(binary);
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => limited.env(name, value),
            None => limited.env_remove(name),
        };
    }
    let server = serve_from(limited, &[]);
    let big = "x".repeat(6 * 1024 * 1024);
    for path in [
        "/v1/registry/models/big/versions",
        "/v1/datasets?name=big&format=jsonl",
    ] {
        let (status, reply) = http(&server.addr, "POST", path, Some(key), Some(&big)).unwrap();
        assert_eq!(status, 507, "{path}: {reply}");
        let error: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(error["error"]["code"], "insufficient_storage", "{reply}");
    }
    let staged: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|(_, size)| *size >= 4 * 1024 * 1024)
        .collect();
    assert!(staged.is_empty(), "large files left behind: {staged:?}");
    let (status, _) = http(&server.addr, "GET", "/health", None, None).unwrap();
    assert_eq!(status, 200);
    let (status, reply) = http(
        &server.addr,
        "POST",
        "/v1/tenants",
        Some(key),
        Some(r#"{"name": "small"}"#),
    )
    .unwrap();
    assert_eq!(status, 201, "{reply}");
}

/// Every file under `dir` with its size.
fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push((entry.path(), meta.len()));
        }
    }
    files
}

/// The database stops answering (checklist row 28: a blackholed dependency): the
/// PostgreSQL server and its backends are stopped with SIGSTOP, so connections stay
/// open and nothing answers. Requests that need the database get 503 within their
/// deadline instead of hanging, and the server recovers by itself once the database
/// answers again.
#[test]
fn a_database_that_stops_answering_gets_503s_then_recovers() {
    let postgres =
        testkit::postgres::TempPostgres::start().expect("a throwaway PostgreSQL cluster");
    let url = postgres.url();
    let dir = tempfile::tempdir().unwrap();
    let key = ok(charter(dir.path()).args(["--database-url", &url, "keys", "create", "--admin"]));
    let key = key.trim().to_owned();
    let mut command = charter(dir.path());
    command.args(["--database-url", &url]);
    let server = serve_from(command, &["--request-timeout-secs", "2"]);
    let tenants = |addr: &str| http_with_head(addr, "GET", "/v1/tenants", Some(&key), None);
    assert_eq!(tenants(&server.addr).unwrap().0, 200);

    let pid_file = postgres.dir().join("data").join("postmaster.pid");
    let postmaster = std::fs::read_to_string(&pid_file).unwrap();
    let postmaster = postmaster.lines().next().unwrap().trim().to_owned();
    let signal = |name: &str| {
        let children = std::process::Command::new("pkill")
            .args([&format!("-{name}"), "-P", &postmaster])
            .status()
            .unwrap();
        assert!(children.success(), "pkill -{name} found no backends");
        let main = std::process::Command::new("kill")
            .args([&format!("-{name}"), &postmaster])
            .status()
            .unwrap();
        assert!(main.success());
    };
    signal("STOP");
    // Past the key cache's 2 s, so the key itself must be looked up again.
    std::thread::sleep(Duration::from_secs(3));
    let started = std::time::Instant::now();
    let answer = tenants(&server.addr);
    let waited = started.elapsed();
    signal("CONT");
    let (status, head, body) = answer.expect("no answer while the database was stopped");
    assert_eq!(status, 503, "{body}");
    // The handler's deadline, or the audit write's: either way the one error shape
    // with a Retry-After.
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    let code = error["error"]["code"].as_str().unwrap();
    assert!(
        ["request_timeout", "audit_unavailable"].contains(&code),
        "{body}"
    );
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(
        waited < Duration::from_secs(15),
        "the answer took {waited:?} with a 2 s deadline"
    );

    // Recovery: the same request succeeds again without a restart.
    let recovered = (0..150).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        tenants(&server.addr).is_some_and(|(status, _, _)| status == 200)
    });
    assert!(recovered, "the server did not recover within 30 s");
    // Nothing in the log was damaged by the stall.
    drop(server);
    ok(charter(dir.path()).args(["--database-url", &url, "audit", "verify"]));
}

/// The database restarts under the server (checklist row 28: a dependency whose
/// connections are cut): `pg_ctl stop -m fast` terminates every open connection, and
/// the server starts again some seconds later. While it is down, requests that need it
/// get 503 with a `Retry-After` in the one error shape, not a 500 or a dropped
/// connection: `audit_unavailable` with the log on (nothing can be recorded), else
/// `database_unavailable`, both for a request whose key is still cached (the handler's
/// query fails) and for one whose key must be looked up. Once the database is back the
/// server answers again without a restart, and the audit chain verifies.
#[test]
fn a_database_restart_gets_503s_then_recovers() {
    let postgres =
        testkit::postgres::TempPostgres::start().expect("a throwaway PostgreSQL cluster");
    for (round, audit) in [(0, true), (1, false)] {
        let url = postgres
            .create_database(&format!("restart{round}"))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key =
            ok(charter(dir.path()).args(["--database-url", &url, "keys", "create", "--admin"]));
        let key = key.trim().to_owned();
        let mut command = charter(dir.path());
        command.args(["--database-url", &url]);
        let mut flags = vec!["--request-timeout-secs", "2"];
        if !audit {
            flags.push("--no-audit");
        }
        let server = serve_from(command, &flags);
        let request = |method: &str, path: &str, body: Option<&str>| {
            http_with_head(&server.addr, method, path, Some(&key), body)
        };
        assert_eq!(request("GET", "/v1/tenants", None).unwrap().0, 200);

        postgres.stop().unwrap();
        let cached = ("GET", "/v1/models", request("GET", "/v1/models", None));
        // Past the key cache's 2 s, so the key itself must be looked up again.
        std::thread::sleep(Duration::from_secs(3));
        let mut answers = vec![cached];
        for (method, path, body) in [
            ("GET", "/v1/tenants", None),
            ("GET", "/v1/models", None),
            ("POST", "/v1/tenants", Some(r#"{"name":"during"}"#)),
        ] {
            answers.push((method, path, request(method, path, body)));
        }
        for (method, path, answer) in answers {
            let (status, head, body) = answer.unwrap_or_else(|| {
                panic!("no answer to {method} {path} while the database was down")
            });
            assert_eq!(status, 503, "audit {audit}, {method} {path}: {body}");
            let error: serde_json::Value = serde_json::from_str(&body).unwrap();
            let expected = if audit {
                "audit_unavailable"
            } else {
                "database_unavailable"
            };
            assert_eq!(error["error"]["code"], expected, "{body}");
            assert!(
                head.to_ascii_lowercase().contains("retry-after:"),
                "{method} {path}: {head}"
            );
        }

        postgres.start_again().unwrap();
        let recovered = (0..150).any(|_| {
            std::thread::sleep(Duration::from_millis(200));
            request("GET", "/v1/tenants", None).is_some_and(|(status, _, _)| status == 200)
        });
        assert!(
            recovered,
            "audit {audit}: the server did not recover within 30 s"
        );
        let (status, _, body) =
            request("POST", "/v1/tenants", Some(r#"{"name":"after"}"#)).unwrap();
        assert_eq!(status, 201, "{body}");
        drop(server);
        if audit {
            ok(charter(dir.path()).args(["--database-url", &url, "audit", "verify"]));
        }
    }
}

/// libfaketime's preload library (`apt-get install faketime`; `scripts/test.sh`
/// installs it).
fn libfaketime() -> std::path::PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .chain([std::path::PathBuf::from(
            "/usr/lib/faketime/libfaketime.so.1",
        )])
        .find(|path| path.is_file());
    found.expect("libfaketime is missing: apt-get install faketime (scripts/test.sh does)")
}

/// The server's wall clock steps back a day and then forward thirty (checklist row 32:
/// an NTP step, a VM restored from a snapshot), under libfaketime with the monotonic
/// clock left alone, as such steps leave it. Requests are served throughout; rate
/// limits, which count in monotonic time, neither reset nor break; a key past its
/// expiry by the new wall clock is refused; and the audit chain, whose entries' times
/// now go backwards and forwards, still verifies.
#[test]
fn wall_clock_steps_break_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let admin = ok(charter(dir.path()).args(["keys", "create", "--admin"]));
    let admin = admin.trim().to_owned();
    let offset = dir.path().join("clock-offset");
    let step = |to: &str| {
        let next = dir.path().join("clock-offset.next");
        std::fs::write(&next, format!("{to}\n")).unwrap();
        std::fs::rename(&next, &offset).unwrap();
    };
    step("+0d");
    let mut command = charter(dir.path());
    command
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    let server = serve_from(command, &[]);
    let call = |key: &str, method: &str, path: &str, body: Option<&str>| {
        let (status, _, body) = http_with_head(&server.addr, method, path, Some(key), body)
            .unwrap_or_else(|| panic!("no answer to {method} {path}"));
        (status, body)
    };
    let key_of = |body: &str| -> String {
        let created: serde_json::Value = serde_json::from_str(body).unwrap();
        created["key"].as_str().unwrap().to_owned()
    };
    let (status, body) = call(&admin, "POST", "/v1/tenants", Some(r#"{"name":"clock"}"#));
    assert_eq!(status, 201, "{body}");
    // Three requests a minute; and a key that expires in two days.
    let (status, body) = call(
        &admin,
        "POST",
        "/v1/keys",
        Some(r#"{"tenant":"clock","scopes":["models:read"],"rpm":3}"#),
    );
    assert_eq!(status, 201, "{body}");
    let limited = key_of(&body);
    let expires_at = types_now() + 2 * 86_400;
    let (status, body) = call(
        &admin,
        "POST",
        "/v1/keys",
        Some(&format!(
            r#"{{"tenant":"clock","scopes":["models:read"],"expires_at":{expires_at}}}"#
        )),
    );
    assert_eq!(status, 201, "{body}");
    let expiring = key_of(&body);
    for _ in 0..3 {
        assert_eq!(call(&limited, "GET", "/v1/models", None).0, 200);
    }
    assert_eq!(call(&limited, "GET", "/v1/models", None).0, 429);

    for to in ["-1d", "+30d"] {
        step(to);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(call(&admin, "GET", "/v1/tenants", None).0, 200, "at {to}");
        // Not a minute of monotonic time has passed: still refused, whichever way the
        // wall clock went.
        let (status, body) = call(&limited, "GET", "/v1/models", None);
        assert_eq!(status, 429, "at {to}: {body}");
    }
    // Thirty days on, the two-day key has expired (its cached verification lasts 2 s).
    let refused = (0..30).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        call(&expiring, "GET", "/v1/models", None).0 == 401
    });
    assert!(refused, "a key 28 days past its expiry is still accepted");
    drop(server);

    // The entries' times went back a day and then forward a month: the steps reached
    // the server (else this test shows nothing), and the chain still verifies.
    let export = ok(charter(dir.path()).args(["audit", "export"]));
    let times: Vec<i64> = export
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["type"] == "entry")
        .filter_map(|line| line["recorded_at"].as_i64())
        .collect();
    assert!(
        times.windows(2).any(|pair| pair[1] < pair[0]),
        "no entry's time went backwards: {times:?}"
    );
    let latest = times.iter().max().copied().unwrap_or_default();
    assert!(
        latest >= types_now() + 29 * 86_400,
        "no entry is a month ahead: {times:?}"
    );
    ok(charter(dir.path()).args(["audit", "verify"]));
}

/// Seconds since the Unix epoch, by this (unfaked) process's clock.
fn types_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// HTTP/2 abuse over cleartext HTTP/2 (prior knowledge), checklist row 27: a rapid-reset
/// loop (HEADERS then RST_STREAM, 20,000 times) and a CONTINUATION flood (one HEADERS
/// frame without END_HEADERS, then 8 MB of CONTINUATION frames) each get a GOAWAY;
/// a PING flood (200,000 PINGs, no answer read for 5 s) is answered without the
/// server's memory growing with it. The server grows by less than 200 MiB in all, and
/// other clients are served throughout.
#[test]
fn http2_abuse_is_contained() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let pid = server.child.id();
    let baseline = rss_kib(pid);
    type Abuse = Box<dyn Fn(&mut TcpStream)>;
    let cases: [(&str, Abuse, bool); 3] = [
        (
            "rapid reset",
            Box::new(|stream| {
                for i in 0..20_000u32 {
                    let id = 2 * i + 1;
                    let sent = stream
                        .write_all(&frame(
                            H2_HEADERS,
                            END_STREAM | END_HEADERS,
                            id,
                            &health_block(),
                        ))
                        .and_then(|()| {
                            stream.write_all(&frame(H2_RST_STREAM, 0, id, &8u32.to_be_bytes()))
                        });
                    if sent.is_err() {
                        return;
                    }
                }
            }),
            true,
        ),
        (
            "CONTINUATION flood",
            Box::new(|stream| {
                let junk = [0x40, 0x7f, 0x7f];
                let mut block = health_block();
                block.extend_from_slice(&junk);
                if stream
                    .write_all(&frame(H2_HEADERS, END_STREAM, 1, &block))
                    .is_err()
                {
                    return;
                }
                let chunk = vec![b'a'; 16_000];
                for _ in 0..500 {
                    if stream
                        .write_all(&frame(H2_CONTINUATION, 0, 1, &chunk))
                        .is_err()
                    {
                        return;
                    }
                }
            }),
            true,
        ),
        (
            "PING flood",
            Box::new(|stream| {
                for i in 0..200_000u64 {
                    if stream
                        .write_all(&frame(H2_PING, 0, 0, &i.to_be_bytes()))
                        .is_err()
                    {
                        return;
                    }
                }
            }),
            false,
        ),
    ];
    for (case, abuse, goaway) in cases {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .unwrap();
        stream.write_all(&frame(H2_SETTINGS, 0, 0, &[])).unwrap();
        let reader = {
            let mut stream = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                // Read what the server sends, until it closes, for at most 60 s; the
                // PING case reads nothing for its first 5 s (answers pile up).
                std::thread::sleep(Duration::from_secs(5));
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                let mut received = Vec::new();
                match stream.read_to_end(&mut received) {
                    Err(e) if e.kind() != std::io::ErrorKind::ConnectionReset => None,
                    _ => Some(frame_kinds(&received)),
                }
            })
        };
        abuse(&mut stream);
        // Meanwhile and afterwards, other clients are served.
        let (status, _) = http(&server.addr, "GET", "/health", None, None).unwrap();
        assert_eq!(status, 200, "{case}");
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let kinds = reader
            .join()
            .unwrap()
            .unwrap_or_else(|| panic!("{case}: the connection was left open"));
        assert_eq!(
            kinds.contains(&H2_GOAWAY),
            goaway,
            "{case}: frames {kinds:?}"
        );
        let answered = kinds.iter().filter(|&&kind| kind == H2_HEADERS).count();
        assert!(answered < 1000, "{case}: {answered} requests were answered");
        let grown = rss_kib(pid).saturating_sub(baseline);
        assert!(grown < 200 * 1024, "{case}: the server grew by {grown} KiB");
    }
    let (status, _) = http(&server.addr, "GET", "/health", None, None).unwrap();
    assert_eq!(status, 200);
}

const H2_HEADERS: u8 = 0x1;
const H2_RST_STREAM: u8 = 0x3;
const H2_SETTINGS: u8 = 0x4;
const H2_PING: u8 = 0x6;
const H2_GOAWAY: u8 = 0x7;
const H2_CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap();
    let mut out = length.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The types of the frames in `bytes` (server frames after the connection preface),
/// as far as they are complete.
fn frame_kinds(mut bytes: &[u8]) -> Vec<u8> {
    let mut kinds = Vec::new();
    while bytes.len() >= 9 {
        let length = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        kinds.push(bytes[3]);
        bytes = bytes.get(9 + length..).unwrap_or_default();
    }
    kinds
}

/// The HPACK block of `GET /health` (RFC 7541: static-table names, literal values
/// without indexing).
fn health_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    block.push(0x04); // :path, literal value
    block.push(7);
    block.extend_from_slice(b"/health");
    block.push(0x01); // :authority, literal value
    block.push(1);
    block.push(b'x');
    block
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}
