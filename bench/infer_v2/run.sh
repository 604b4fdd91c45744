#!/usr/bin/env bash
# Open Inference Protocol v2 under load: trains the seed model with `charter train`,
# serves it with `charter serve` (release, auth on), and drives
# POST /v2/models/seed/infer with wrk at 64 connections for 10 s, with the audit log on
# (the default) and then off, ROUNDS times in alternation (this VM's speed drifts by
# tens of percent over minutes, so compare neighbouring runs).
#
#   bench/infer_v2/run.sh            # needs wrk (apt-get install wrk) and python3
#   CONNECTIONS=64 DURATION=10s THREADS=2 ROUNDS=3 bench/infer_v2/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18089}
REFERENCE=${REFERENCE:-$ROOT/../shared/reference/seed_mlp.json}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -p charter)
BIN=$TARGET/release/charter

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
export CHARTER_DATA_DIR=$WORK/data CHARTER_LOG=warn

# shellcheck source=bench/infer_v2/seed.sh
. "$ROOT/bench/infer_v2/seed.sh"

URL="http://127.0.0.1:$PORT/v2/models/seed/infer"
# Audit on (the default) and off, back to back: issue 6 asks what the log costs.
for audit in $(for _ in $(seq "$ROUNDS"); do echo on off; done); do
  flags=()
  [ "$audit" = off ] && flags=(--no-audit)
  "$BIN" serve --listen "127.0.0.1:$PORT" "${flags[@]}" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break
    sleep 0.1
  done
  # One checked request, then a warm-up, then the measured run.
  curl -sf -H "Authorization: Bearer $CHARTER_KEY" -H 'Content-Type: application/json' \
    -d '{"inputs":[{"name":"x","shape":[1,10],"datatype":"FP32","data":[0,0,0,0,0,0,0,0,0,0]}]}' "$URL"
  echo
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$ROOT/bench/infer_v2/post.lua" "$URL" >/dev/null
  echo "== audit $audit: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency POST /v2/models/seed/infer (auth on) =="
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$ROOT/bench/infer_v2/post.lua" "$URL"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
done
