#!/usr/bin/env bash
# Supply-chain checks of Cargo.lock: `cargo deny` (licences, bans, sources, advisories;
# deny.toml) and `cargo audit` (RustSec advisories). Install the tools with
#   scripts/install-cargo-deny.sh           (the version CI uses)
#   cargo install --locked cargo-audit      (optional)
# Licences, bans and sources need no network. Advisories need the RustSec advisory
# database, a git repository on GitHub: without options this script fetches it into
# $CARGO_HOME/advisory-dbs, so run it where GitHub is reachable. docs/security.md says
# what CI checks and what it cannot.
#
#   scripts/supply-chain.sh            everything, fetching the advisory database
#   scripts/supply-chain.sh --offline  licences, bans, sources (what CI runs); and
#                                      advisories too when CHARTER_ADVISORY_DB is set
#
# CHARTER_ADVISORY_DB: a local clone of RustSec's advisory-db (`git clone` of its
# repository, or a copy of one), read without fetching. cargo-deny refuses one whose
# last fetch (or head commit) is older than 90 days.
set -euo pipefail
cd "$(dirname "$0")/.."

offline=false
if [ "${1:-}" = "--offline" ]; then
  offline=true
fi

if ! cargo deny --version >/dev/null 2>&1; then
  echo "cargo-deny is not installed: scripts/install-cargo-deny.sh" >&2
  exit 2
fi
# The inclusion graphs of the duplicate-version warnings run to 1,500 lines; a failure
# still names the crate, and `cargo deny check bans` shows the graphs.
cargo deny --locked check --hide-inclusion-graph licenses bans sources

if [ -n "${CHARTER_ADVISORY_DB:-}" ]; then
  db=$(cd "$CHARTER_ADVISORY_DB" && pwd)
  if [ ! -d "$db/crates" ]; then
    echo "CHARTER_ADVISORY_DB=$db is not a clone of the advisory database (no crates/)" >&2
    exit 2
  fi
  # cargo-deny looks for the default database (github.com/RustSec/advisory-db) under
  # `db-path` in a folder named after a hash of that URL; deny.toml is copied with
  # db-path pointing at a folder that links the clone under that name (cargo-deny 0.20).
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir "$tmp/dbs"
  ln -s "$db" "$tmp/dbs/advisory-db-3157b0e258782691"
  sed "/^\[advisories\]/a db-path = \"$tmp/dbs\"" deny.toml > "$tmp/deny.toml"
  cargo deny --locked --offline --config "$tmp/deny.toml" check advisories
  exit 0
fi
if [ "$offline" = true ]; then
  echo "advisories not checked: they need the RustSec database (network, or CHARTER_ADVISORY_DB)" >&2
  exit 0
fi

cargo deny --locked check advisories
if cargo audit --version >/dev/null 2>&1; then
  # Vulnerabilities fail; warnings (unmaintained, yanked) are reported.
  cargo audit
else
  echo "cargo-audit is not installed (cargo install --locked cargo-audit); cargo deny checked the same RustSec database" >&2
fi
