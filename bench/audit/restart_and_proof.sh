#!/usr/bin/env bash
# The audit log at size: fills a fresh data dir's log with audited `GET /v1/models`
# requests (wrk, 64 connections, SECONDS long), restarts `charter serve`, and times the
# first audited request after the restart (the writer resuming its Merkle frontier)
# and inclusion proofs of an early and a later entry (GET /v1/audit/{seq}/proof).
#
#   bench/audit/restart_and_proof.sh [SECONDS]     # needs wrk and curl; default 30
#   BIN=/path/to/charter bench/audit/restart_and_proof.sh 30   # another build
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-30}
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p charter)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/charter
fi
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; export CHARTER_DATA_DIR=$WORK/data CHARTER_LOG=warn
KEY=$("$BIN" keys create --admin)
PORT=18097
start() { "$BIN" serve --listen 127.0.0.1:$PORT & PID=$!; for _ in $(seq 200); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.05; done; }
cat > $WORK/get.lua <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
LUA
start
wrk -t2 -c64 -d${SECS}s -s $WORK/get.lua http://127.0.0.1:$PORT/v1/models | grep Requests/sec
kill $PID; wait $PID || true
echo "entries: $(sqlite3 "$WORK/data/charter.db" 'select count(*) from audit_entries' 2>/dev/null || echo '? (sqlite3 not installed)')"
start
curl -s -o /dev/null -w "first audited request after restart: %{time_total}s\n" -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/v1/models
for seq in 1000 300000; do
  curl -s -o /dev/null -w "proof of $seq: %{http_code} %{time_total}s\n" -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/v1/audit/$seq/proof
done
kill $PID; wait $PID || true
