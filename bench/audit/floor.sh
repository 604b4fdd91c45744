#!/usr/bin/env bash
# The floor under the audit log's cost in the v2 benchmark (issue 6 asks for a loss of
# at most 10 % against auditing off). Drives POST /v2/models/seed/infer as
# bench/infer_v2/run.sh does (wrk, 64 connections, auth on) against, in alternation:
#
#   off         serve --no-audit
#   off+syncN   serve --no-audit while bench/audit/syncload.c makes N durable writes a
#               second (append 5,000 bytes, fdatasync) in a process of its own: what the
#               syncs alone cost, with no request waiting on them (SYNC_RATES)
#   on          the audit log as shipped
#
# and, with EXPERIMENTS=1, the experimental storage paths of bench/audit/floor.patch
# (built in a git worktree of HEAD; see the patch's header): noop, journal, inline and
# inline-nosync. Each line gives requests/s, p99 and the server's CPU per request by
# thread (from /proc/PID/task/*/stat).
#
#   bench/audit/floor.sh                       # needs wrk, cc and python3
#   ROUNDS=4 DURATION=5s EXPERIMENTS=1 SYNC_RATES="1000 2000" bench/audit/floor.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-5s}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18089}
SYNC_RATES=${SYNC_RATES:-1000 2000}
EXPERIMENTS=${EXPERIMENTS:-0}
REFERENCE=${REFERENCE:-$ROOT/../shared/reference/seed_mlp.json}

for tool in wrk cc python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
(cd "$ROOT" && cargo build --release -p charter)

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -d "$WORK/tree" ]; then git -C "$ROOT" worktree remove --force "$WORK/tree" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
cp "$TARGET/release/charter" "$WORK/charter"
BIN=$WORK/charter
cc -O2 -o "$WORK/syncload" "$ROOT/bench/audit/syncload.c"

modes="off on"
for rate in $SYNC_RATES; do modes="$modes off+sync$rate"; done
if [ "$EXPERIMENTS" = 1 ]; then
  # The patched tree builds in a target directory of its own, seeded with this one's
  # dependencies, so the checkout's own binary is never replaced by the experiment.
  echo "== building the experimental paths (bench/audit/floor.patch) =="
  git -C "$ROOT" worktree add --detach "$WORK/tree" HEAD >/dev/null
  git -C "$WORK/tree" apply "$ROOT/bench/audit/floor.patch"
  mkdir -p "$WORK/target"
  cp -a "$TARGET/release" "$WORK/target/release"
  (cd "$WORK/tree" && CARGO_TARGET_DIR=$WORK/target cargo build --release -p charter)
  cp "$WORK/target/release/charter" "$WORK/charter-exp"
  rm -rf "$WORK/target"
  modes="$modes noop journal inline inline-nosync"
fi

export CHARTER_DATA_DIR=$WORK/data CHARTER_LOG=warn
# shellcheck source=bench/infer_v2/seed.sh
. "$ROOT/bench/infer_v2/seed.sh"
cp -a "$WORK/data" "$WORK/data.trained"

URL="http://127.0.0.1:$PORT/v2/models/seed/infer"
# CPU seconds (user + system, in clock ticks) of each of the server's threads, by name.
threads() {
  for task in /proc/"$SERVER_PID"/task/*; do
    echo "$(tr ' ' _ < "$task/comm") $(awk '{print $14 + $15}' "$task/stat")"
  done | awk '{cpu[$1] += $2} END {for (name in cpu) print name, cpu[name]}' | sort
}
echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION POST /v2/models/seed/infer (auth on), $ROUNDS rounds =="
for _ in $(seq "$ROUNDS"); do
  for mode in $modes; do
    rm -rf "$WORK/data" "$WORK/journal"
    cp -a "$WORK/data.trained" "$WORK/data"
    bin=$BIN flags=() env=() rate=
    case $mode in
      off) flags=(--no-audit) ;;
      off+sync*) flags=(--no-audit) rate=${mode#off+sync} ;;
      on) ;;
      inline-nosync) bin=$WORK/charter-exp env=(CHARTER_AUDIT_EXPERIMENT=inline CHARTER_AUDIT_NOSYNC=1) ;;
      *) bin=$WORK/charter-exp env=(CHARTER_AUDIT_EXPERIMENT="$mode") ;;
    esac
    env "${env[@]}" CHARTER_AUDIT_JOURNAL="$WORK/journal" "$bin" serve --listen "127.0.0.1:$PORT" "${flags[@]}" 2>/dev/null &
    SERVER_PID=$!
    for _ in $(seq 100); do
      curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break
      sleep 0.1
    done
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$ROOT/bench/infer_v2/post.lua" "$URL" >/dev/null
    threads > "$WORK/before"
    sync_pid=
    if [ -n "$rate" ]; then
      "$WORK/syncload" "$rate" "${DURATION%s}" "$WORK/sync.test" 2> "$WORK/sync.out" &
      sync_pid=$!
    fi
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$ROOT/bench/infer_v2/post.lua" "$URL")
    threads > "$WORK/after"
    sync=
    if [ -n "$sync_pid" ]; then wait "$sync_pid" || true; sync=" | $(cat "$WORK/sync.out")"; fi
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    errors=$(echo "$out" | awk '/^requests\/s/ {print $4}')
    join "$WORK/before" "$WORK/after" | awk -v mode="$mode" -v requests="$requests" \
      -v rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
      -v p99="$(echo "$out" | awk '$1 == "99%" {print $2}')" -v errors="$errors" \
      -v hz="$(getconf CLK_TCK)" -v sync="$sync" '
      BEGIN { printf "%-14s %9s req/s  p99 %-7s errors %s  CPU/request:", mode, rps, p99, errors }
      { us = ($3 - $2) * 1e6 / hz / requests; if (us >= 0.05) printf " %s %.1f us", $1, us }
      END { print sync }'
  done
done
