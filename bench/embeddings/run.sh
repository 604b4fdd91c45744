#!/usr/bin/env bash
# Embedding throughput and latency: Charter's engine (f32 and bf16), sentence-transformers
# and ONNX Runtime on the same model, corpora and thread count, in one run. Prints the
# JSON reports and a table.
#
#   bench/embeddings/run.sh [--threads N] [--batch-size N] [--rounds N]
#
# Needs the model (scripts/fetch-model.sh) and ../shared/reference. The Python side lives
# in bench/.venv, created on first use from PyPI (torch + sentence-transformers).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
threads=2
batch_size=32
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --batch-size) batch_size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
model=$("$root/scripts/fetch-model.sh")
reference="$root/../shared/reference"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

venv="$root/bench/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sentence_transformers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch sentence-transformers >&2
fi
if ! "$venv/bin/python" -c "import onnxruntime, onnxscript" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime onnx onnxscript >&2
fi

# The same thread count for every library that might look: rayon/candle, torch (also set
# in the script), OpenMP and MKL.
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
# The model is a local folder; never reach for a model hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

for precision in f32 bf16; do
  echo "== charter engine $precision (threads $threads, batch $batch_size)" >&2
  cargo run --quiet --release -p engine --example embed_bench -- \
    --model "$model" --reference "$reference" --threads "$threads" \
    --batch-size "$batch_size" --rounds "$rounds" --precision "$precision" | tee "$out/engine-$precision.json"
done

echo "== sentence-transformers (threads $threads, batch $batch_size)" >&2
"$venv/bin/python" "$root/bench/embeddings/bench_st.py" \
  --model "$model" --reference "$reference" --threads "$threads" \
  --batch-size "$batch_size" --rounds "$rounds" | tee "$out/st.json"

echo "== onnxruntime (threads $threads, batch $batch_size; exported with dynamo=True)" >&2
reports=("$out/engine-f32.json" "$out/engine-bf16.json" "$out/st.json")
if "$venv/bin/python" "$root/bench/embeddings/bench_ort.py" \
  --model "$model" --reference "$reference" --threads "$threads" \
  --batch-size "$batch_size" --rounds "$rounds" > "$out/ort.json"; then
  cat "$out/ort.json"
  reports+=("$out/ort.json")
else
  echo "onnxruntime run failed; the table leaves it out" >&2
fi

"$venv/bin/python" - "${reports[@]}" <<'PY'
import json, sys
rows = [json.load(open(p)) for p in sys.argv[1:]]
print()
print(f"| implementation | mixed512 sent/s | long120 sent/s | single p50 ms | single p99 ms |")
print(f"|---|---:|---:|---:|---:|")
for r in rows:
    s = r["single_sentence_ms"]
    print(f"| {r['implementation']} | {r['mixed512']['sentences_per_second']:.1f} | "
          f"{r['long120']['sentences_per_second']:.1f} | {s['p50']:.2f} | {s['p99']:.2f} |")
PY
