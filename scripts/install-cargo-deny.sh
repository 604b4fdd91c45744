#!/usr/bin/env bash
# Installs cargo-deny, at the version pinned here, from crates.io into $CARGO_HOME/bin
# (outside the repository; cargo finds `cargo deny` there even when it is not on PATH),
# unless that version is already installed. scripts/test.sh runs this on CI, which then
# must pass scripts/supply-chain.sh --offline.
#
# Cost: a release build of cargo-deny and its ~150 dependencies, about 2.5 minutes on
# 2 cores (measured: 2m22s, nice'd beside another build). cargo-deny 0.20 has no cargo
# features to turn off (it fetches with the git CLI, not a built-in git or HTTP stack),
# so `--no-default-features` would save nothing. `--locked` builds with the lockfile it
# was released with.
set -euo pipefail
version=0.20.2

if [ "$(cargo deny --version 2>/dev/null)" = "cargo-deny $version" ]; then
  exit 0
fi
echo "installing cargo-deny $version from crates.io" >&2
start=$(date +%s)
cargo install --locked --quiet --root "${CARGO_HOME:-$HOME/.cargo}" "cargo-deny@$version" >&2
echo "installed cargo-deny $version in $(( $(date +%s) - start ))s" >&2
