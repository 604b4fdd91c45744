#!/usr/bin/env bash
# Training benchmark: µs per optimiser step of Charter's tensor trainer and of PyTorch on
# the seed MLP (batch 1, the 1000-step seed loop) and at batch 256, in one run, both on
# one thread (Charter's trainer is single-threaded; PyTorch gets set_num_threads(1)).
#
#   bash bench/train/run.sh            # from the repository root
#
# Env: BENCH_VENV (default bench/.venv, shared with the other benchmarks),
#      SEED_MLP_JSON (default ../shared/reference/seed_mlp.json beside the repo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
REFERENCE="${SEED_MLP_JSON:-$ROOT/../shared/reference/seed_mlp.json}"
VENV="${BENCH_VENV:-$ROOT/bench/.venv}"
THREADS=1
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# The venv is shared by several benchmarks; the lock keeps two scripts from building it
# at the same time. torch comes from PyPI, the only package index we can reach.
(
    flock 9
    if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet torch numpy
    fi
) 9>"$ROOT/bench/.venv.lock"

echo "building the Rust benchmark (release)..." >&2
cargo build --quiet --release -p engine --example train_bench
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

echo "running Rust..." >&2
"$TARGET_DIR/release/examples/train_bench" --reference "$REFERENCE" >"$OUT/rust.tsv"
echo "running PyTorch ($("$VENV/bin/python" -c 'import torch; print(torch.__version__)'), $THREADS thread)..." >&2
"$VENV/bin/python" "$ROOT/bench/train/torch_bench.py" --reference "$REFERENCE" --threads "$THREADS" >"$OUT/torch.tsv"

"$VENV/bin/python" - "$OUT/rust.tsv" "$OUT/torch.tsv" <<'PY'
import sys
rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        impl, case, median, best = line.rstrip("\n").split("\t")
        rows.setdefault(case, {})[impl] = (float(median), float(best))
print("µs per optimiser step, median (best) of 15 passes; speed-up = PyTorch / Charter")
print("| case | PyTorch | Charter | speed-up median | speed-up best |")
print("|---|---:|---:|---:|---:|")
for case, r in rows.items():
    (tm, tb), (rm, rb) = r["torch"], r["rust"]
    print(f"| {case} | {tm:.2f} ({tb:.2f}) | {rm:.2f} ({rb:.2f}) | {tm / rm:.1f}× | {tb / rb:.1f}× |")
PY
