//! The panic hook the binary installs (`governance::pii::install_panic_hook`), run in a
//! child process of this test binary: a panic is logged with its location, a literal
//! message is kept, and a formatted one (which may quote request data) never reaches
//! stderr.

use std::process::Command;

const CHILD_ENV: &str = "CHARTER_PANIC_HOOK_CHILD";
/// Stands in for request data quoted by a formatted panic message.
const SECRET: &str = "4111 1111 1111 1111 in a request body";

/// Not a test of its own: the child process of `panics_are_logged_without_their_data`.
/// Logs to stderr as `charter` does, installs the hook, and panics on two threads.
#[test]
#[ignore = "runs only as the child process of panics_are_logged_without_their_data"]
fn panic_hook_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
    governance::pii::install_panic_hook();
    let formatted = std::thread::Builder::new()
        .name("formatted".into())
        .spawn(|| {
            let body: Result<u32, String> = Err(SECRET.to_owned());
            panic!("cannot parse {:?}", body);
        })
        .unwrap()
        .join();
    let literal = std::thread::Builder::new()
        .name("literal".into())
        .spawn(|| panic!("a literal panic message"))
        .unwrap()
        .join();
    assert!(formatted.is_err() && literal.is_err());
}

#[test]
fn panics_are_logged_without_their_data() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "pii::panic_hook::panic_hook_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the child failed: {stderr}");
    // Both panics are logged by the hook, each with its thread and location ...
    let logged: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("a thread panicked"))
        .collect();
    assert_eq!(logged.len(), 2, "{stderr}");
    for thread in ["formatted", "literal"] {
        assert!(
            logged
                .iter()
                .any(|line| line.contains(&format!("thread=\"{thread}\""))
                    && line.contains("panic_hook.rs:")),
            "no entry for thread {thread}: {stderr}"
        );
    }
    // ... a literal message is kept, a formatted one withheld with its length ...
    assert!(stderr.contains("a literal panic message"), "{stderr}");
    let formatted = format!("cannot parse {:?}", Err::<u32, String>(SECRET.to_owned()));
    assert!(
        stderr.contains(&format!(
            "[formatted panic message withheld: {} bytes]",
            formatted.len()
        )),
        "{stderr}"
    );
    // ... and nothing of it, nor the default hook's own report, reaches stderr.
    assert!(!stderr.contains("4111"), "{stderr}");
    assert!(!stderr.contains("panicked at"), "{stderr}");
}
