#!/usr/bin/env bash
# HTTP side of the embeddings benchmark: a release `charter serve` with MiniLM loaded,
# concurrent keep-alive clients posting batches, single-sentence latency, and the
# server's resident memory. Prints one JSON report (the table is made by run.sh).
#
#   bench/embeddings/http.sh [--threads N] [--clients N] [--batch-size N] [--rounds N] [--no-audit] [--precision f32|bf16]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
threads=2 clients=4 batch_size=32 rounds=3 precision=f32 audit=on serve_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --batch-size) batch_size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --no-audit) serve_flags+=(--no-audit); audit=off; shift ;;
    --precision) precision=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
model=$("$root/scripts/fetch-model.sh")
reference="$root/../shared/reference"
cargo build --quiet --release -p charter --bins --example http_bench >&2
target=${CARGO_TARGET_DIR:-$root/target}
charter="$target/release/charter"
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
export CHARTER_DATA_DIR=$data CHARTER_LOG=warn RAYON_NUM_THREADS=$threads
"$charter" models import "$model" --name minilm --shared >/dev/null 2>&1
key=$("$charter" keys create --admin)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$charter" serve --listen "127.0.0.1:$port" --load "minilm@$precision" "${serve_flags[@]}" &
pid=$!
for _ in $(seq 1 120); do
  curl -sf "127.0.0.1:$port/ready" >/dev/null && break
  sleep 0.5
done
report=$("$target/release/examples/http_bench" "127.0.0.1:$port" "$key" "$reference" \
  --clients "$clients" --batch-size "$batch_size" --rounds "$rounds")
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
python3 - "$report" "$rss_kib" "$audit" "$precision" <<'PY'
import json, sys
report = json.loads(sys.argv[1])
report["serve_peak_rss_mib"] = round(int(sys.argv[2]) / 1024, 1)
report["audit"] = sys.argv[3] == "on"
report["precision"] = sys.argv[4]
print(json.dumps(report))
PY
