"""ONNX Runtime side of the embeddings benchmark (the fastest peer the issue names).

Exports the sentence-transformers model's transformer with `torch.onnx.export(...,
dynamo=True)` (the legacy exporter produced a wrong graph for this model), checks the
exported graph against sentence-transformers on the mixed corpus (cosine), then measures
exactly what embed_bench.rs and bench_st.py measure with the same thread count:
sentences/s at a fixed batch size over the mixed and long corpora (best of N rounds,
tokenisation, mean pooling and normalisation included) and single-sentence latency
p50/p99. Prints JSON.
"""

import json
import pathlib
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch
from sentence_transformers import SentenceTransformer

from bench_st import measure, parse_args, read_corpora


class Encoder:
    def __init__(self, st_model, onnx_path, threads):
        self.tokenizer = st_model.tokenizer
        self.max_len = st_model.max_seq_length
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]

    def encode(self, texts):
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_len, return_tensors="np"
        )
        feeds = {name: batch[name].astype(np.int64) for name in self.input_names}
        hidden = self.session.run(None, feeds)[0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


class Wrapped(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.last_hidden_state


def export(st_model, path):
    bert = st_model[0].auto_model.eval()
    sample = st_model.tokenizer(
        ["an example sentence", "and a second, somewhat longer example sentence"],
        padding=True,
        return_tensors="pt",
    )
    args = (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    shapes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq},
              "token_type_ids": {0: batch, 1: seq}}
    torch.onnx.export(
        Wrapped(bert), args, str(path), dynamo=True, dynamic_shapes=shapes,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
    )


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    st_model = SentenceTransformer(args.model, device="cpu")
    mixed, long = read_corpora(args.reference)

    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "minilm.onnx"
        load_start = time.perf_counter()
        export(st_model, path)
        encoder = Encoder(st_model, path, args.threads)
        load_seconds = time.perf_counter() - load_start

        # The exported graph must compute what sentence-transformers computes.
        check = mixed[:64]
        expected = st_model.encode(check, batch_size=args.batch_size, normalize_embeddings=True)
        got = np.concatenate(
            [encoder.encode(check[i : i + args.batch_size]) for i in range(0, len(check), args.batch_size)]
        )
        worst_cosine = float(np.min(np.sum(expected * got, axis=1)))
        if worst_cosine < 0.9999:
            raise SystemExit(f"exported ONNX graph disagrees with sentence-transformers: cosine {worst_cosine}")

        report = measure(encoder.encode, mixed, long, args)
    report["implementation"] = f"onnxruntime {ort.__version__} (dynamo export)"
    report["load_seconds"] = load_seconds
    report["worst_cosine_vs_sentence_transformers"] = worst_cosine
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
