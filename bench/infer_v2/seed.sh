# Sourced by the v2 benchmarks: trains the seed model with `charter train` into
# $CHARTER_DATA_DIR (tenant `bench`) and exports CHARTER_KEY, a key with the inference
# scope. Needs BIN (the charter binary), WORK (a scratch directory) and REFERENCE
# (shared/reference/seed_mlp.json).
cat > "$WORK/spec.json" <<'JSON'
{"inputs": [{"name": "x", "shape": [10]}], "outputs": [{"name": "y", "shape": [10]}],
 "layers": [{"type": "linear", "name": "layer1", "in": 10, "out": 20},
            {"type": "linear", "name": "layer2", "in": 20, "out": 10}],
 "loss": "mse"}
JSON
python3 - "$REFERENCE" "$WORK/data.jsonl" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
x = ref["x"]["data"]; y = ref["y"]["data"]
with open(sys.argv[2], "w") as out:
    for i in range(0, len(x), 10):
        out.write(json.dumps({"x": x[i:i + 10], "y": y[i:i + 10]}) + "\n")
PY

"$BIN" tenants create bench >/dev/null
export CHARTER_KEY=$("$BIN" keys create --tenant bench --scopes inference)
"$BIN" train --spec "$WORK/spec.json" --data "$WORK/data.jsonl" --name seed --tenant bench \
  --optimizer sgd --lr 0.01 --batch-size 1 --shuffle false 2>/dev/null
