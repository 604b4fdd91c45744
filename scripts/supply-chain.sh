#!/usr/bin/env bash
# Supply-chain checks of Cargo.lock: `cargo deny` (licences, bans, sources, advisories;
# deny.toml) and `cargo audit` (RustSec advisories). Install the tools once with
#   cargo install --locked cargo-deny cargo-audit
# Licences, bans and sources work offline; advisories fetch the RustSec database, so
# run this where the network allows (CI does; the test command does not depend on it).
# `--offline` runs only the offline checks.
set -euo pipefail
cd "$(dirname "$0")/.."

offline=false
if [ "${1:-}" = "--offline" ]; then
  offline=true
fi

if ! cargo deny --version >/dev/null 2>&1; then
  echo "cargo-deny is not installed: cargo install --locked cargo-deny" >&2
  exit 2
fi
cargo deny --locked check licenses bans sources
if [ "$offline" = true ]; then
  exit 0
fi
cargo deny --locked check advisories
if cargo audit --version >/dev/null 2>&1; then
  # Vulnerabilities fail; warnings (unmaintained, yanked) are reported.
  cargo audit
else
  echo "cargo-audit is not installed (cargo install --locked cargo-audit); cargo deny checked the same RustSec database" >&2
fi
