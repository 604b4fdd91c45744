#!/usr/bin/env bash
# The audit log at size: fills a fresh data dir's log with audited `GET /v1/models`
# requests (wrk, 64 connections, SECONDS long), restarts `charter serve`, and times the
# first audited request after the restart (the writer resuming its Merkle frontier)
# inclusion proofs of an early and a later entry (GET /v1/audit/{seq}/proof), and
# consistency proofs from an early and a later size to the latest checkpoint
# (GET /v1/audit/consistency?from=M), each then checked with `charter audit check-*`;
# then `charter audit verify`, `audit export` and `audit verify --from-export` on the
# whole log, with their wall time and peak memory.
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
WORK=$(mktemp -d); PID=; trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT; export CHARTER_DATA_DIR=$WORK/data CHARTER_LOG=warn
KEY=$("$BIN" keys create --admin)
PORT=18097
start() { "$BIN" serve --listen 127.0.0.1:$PORT & PID=$!; for _ in $(seq 200); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.05; done; }
cat > $WORK/get.lua <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
LUA
start
(sleep $((SECS / 3)); curl -sf -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/v1/audit/checkpoint > "$WORK/kept.json") &
wrk -t2 -c64 -d${SECS}s -s $WORK/get.lua http://127.0.0.1:$PORT/v1/models | grep Requests/sec
kill $PID; wait $PID || true
echo "entries: $(sqlite3 "$WORK/data/charter.db" 'select count(*) from audit_entries' 2>/dev/null || echo '? (sqlite3 not installed)')"
start
curl -s -o /dev/null -w "first audited request after restart: %{time_total}s\n" -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/v1/models
"$BIN" audit public-key > "$WORK/server.pub"
for seq in 1000 300000; do
  curl -s -o "$WORK/proof.json" -w "proof of $seq: %{http_code} %{time_total}s\n" -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/v1/audit/$seq/proof
  "$BIN" audit check-proof "$WORK/proof.json" --public-key "$WORK/server.pub"
done
# A monitor's view: the checkpoint kept a third of the way through the fill, checked
# against the latest one (timed), and a proof from a small size (timed only).
kept=$(sed -n 's/.*"size":\([0-9]*\).*/\1/p' "$WORK/kept.json")
for from in 1000 "$kept"; do
  curl -s -o "$WORK/consistency.json" -w "consistency proof from $from: %{http_code} %{time_total}s\n" -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/audit/consistency?from=$from"
done
"$BIN" audit check-consistency "$WORK/consistency.json" --kept "$WORK/kept.json" --public-key "$WORK/server.pub"
kill $PID; wait $PID || true
PID=
# The auditor's tools on the whole log: wall time and peak memory (GNU time, when
# installed), which must not grow with the log (entries are read by pages).
timed() { if [ -x /usr/bin/time ]; then /usr/bin/time -f "  $1: %e s, peak %M KiB" "${@:2}"; else "${@:2}"; fi; }
timed "audit verify" "$BIN" audit verify
timed "audit export" "$BIN" audit export --out "$WORK/log.jsonl"
timed "audit verify --from-export" "$BIN" audit verify --from-export "$WORK/log.jsonl" --public-key "$WORK/server.pub"
