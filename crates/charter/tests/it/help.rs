//! `docs/cli.md` is the `--help` of every command, checked in and compared here
//! (regenerate with `UPDATE_CLI_DOCS=1 cargo test -p charter --test it help`).

use std::path::Path;
use std::process::Command;

/// Commands whose help is documented; a new subcommand belongs here too.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["serve"],
    &["tenants"],
    &["tenants", "create"],
    &["tenants", "set"],
    &["tenants", "list"],
    &["tenants", "set"],
    &["tenants", "trust-key"],
    &["tenants", "distrust-key"],
    &["tenants", "trusted-keys"],
    &["keys"],
    &["keys", "create"],
    &["keys", "list"],
    &["keys", "revoke"],
    &["keys", "rotate-master"],
    &["models"],
    &["models", "import"],
    &["models", "list"],
    &["models", "show"],
    &["models", "rm"],
    &["models", "card"],
    &["models", "sign"],
    &["models", "verify"],
    &["audit"],
    &["audit", "verify"],
    &["audit", "export"],
    &["audit", "public-key"],
    &["audit", "check-proof"],
    &["audit", "check-consistency"],
    &["receipts"],
    &["receipts", "verify"],
    &["datasets"],
    &["datasets", "upload"],
    &["datasets", "list"],
    &["datasets", "rm"],
    &["privacy"],
    &["privacy", "show"],
    &["privacy", "set"],
    &["privacy", "redact"],
    &["privacy", "erase-subject"],
    &["privacy", "purge"],
    &["train"],
    &["usage"],
    &["openapi"],
];

fn help(command: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_charter"))
        .args(command)
        .arg("--help")
        .env_clear()
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(output.status.success(), "{command:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

fn document() -> String {
    let mut doc = String::from(
        "# charter command line\n\nGenerated from `--help`; a test keeps it in step with the binary.\n",
    );
    for command in COMMANDS {
        let title = if command.is_empty() {
            "charter".to_owned()
        } else {
            format!("charter {}", command.join(" "))
        };
        doc.push_str(&format!(
            "\n## `{title}`\n\n```text\n{}```\n",
            help(command)
        ));
    }
    doc
}

#[test]
fn cli_docs_match_the_binary() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    let generated = document();
    if std::env::var_os("UPDATE_CLI_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/cli.md is out of date: run `UPDATE_CLI_DOCS=1 cargo test -p charter --test it help`"
    );
}

#[test]
fn every_subcommand_is_documented() {
    let top = subcommands(&[]);
    assert!(!top.is_empty());
    for command in top {
        assert!(
            COMMANDS.contains(&[command.as_str()].as_slice()),
            "`charter {command}` is not in docs/cli.md"
        );
        for sub in subcommands(&[&command]) {
            assert!(
                COMMANDS.contains(&[command.as_str(), sub.as_str()].as_slice()),
                "`charter {command} {sub}` is not in docs/cli.md"
            );
        }
    }
}

/// The subcommands `--help` of `command` lists, without `help`.
fn subcommands(command: &[&str]) -> Vec<String> {
    help(command)
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}
