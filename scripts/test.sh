#!/usr/bin/env bash
# The README's second command: installs what the tests need (PostgreSQL server
# binaries, libfaketime, the demo model, cargo-deny) and runs the whole test suite,
# including the offline supply-chain checks. `.ci/run` calls this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Installs Debian packages, as root or through sudo.
apt_install() {
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing $*" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL binaries for the throwaway clusters the store tests start themselves.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install postgresql
fi

# libfaketime, with which a test steps the server's wall clock (checklist row 32).
if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 && [ ! -f /usr/lib/faketime/libfaketime.so.1 ]; then
  apt_install faketime
fi

# The real model the parity and import tests use.
scripts/fetch-model.sh >/dev/null

# The official OpenAI Python client, which a test drives against a real server.
if [ ! -x .venv-test/bin/python ] || ! .venv-test/bin/python -c "import openai" 2>/dev/null; then
  python3 -m venv .venv-test
  .venv-test/bin/pip install --quiet --disable-pip-version-check openai >&2
fi
export CHARTER_TEST_PYTHON="$root/.venv-test/bin/python"

# Supply-chain checks that work offline (licences, bans, sources; deny.toml), before the
# tests so that a failure shows early. cargo-deny is installed when missing (pinned, from
# crates.io) and the checks must pass. Only where it cannot be installed and `CI` is not
# set (a developer offline) are they skipped, with a warning. Advisories need the RustSec
# database on GitHub: scripts/supply-chain.sh, docs/security.md.
if scripts/install-cargo-deny.sh || [ -n "${CI:-}" ]; then
  scripts/supply-chain.sh --offline
else
  echo "warning: cargo-deny could not be installed; supply-chain checks skipped" >&2
fi

# The test binaries and the OpenAPI drift check.
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
# Doc tests are not run by nextest.
cargo test --workspace --locked --doc -q
