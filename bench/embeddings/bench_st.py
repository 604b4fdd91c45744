"""sentence-transformers side of the embeddings benchmark, and the measuring loop that
bench_ort.py shares.

Measures exactly what crates/engine/examples/embed_bench.rs measures, with the same
thread count: sentences/s at a fixed batch size over the mixed and long corpora (best of
N rounds, tokenisation included) and single-sentence latency p50/p99. Prints JSON.
"""

import argparse
import json
import pathlib
import time

import torch
from sentence_transformers import SentenceTransformer


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single-iterations", type=int, default=300)
    return parser.parse_args()


def read_corpora(reference_dir):
    """The mixed and the long corpus, as lists of texts."""

    def read(name):
        with open(pathlib.Path(reference_dir) / name, encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f if line.strip()]

    return read("corpus_mixed512.jsonl"), read("corpus_long120.jsonl")


def throughput(encode, texts, batch_size, rounds):
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            encode(texts[i : i + batch_size])
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def percentile(sorted_values, p):
    return sorted_values[round((len(sorted_values) - 1) * p)]


def measure(encode, mixed, long, args):
    """Warm-up, throughput on both corpora, single-sentence latency: the report fields."""
    throughput(encode, mixed[:64], args.batch_size, 1)
    mixed_rate = throughput(encode, mixed, args.batch_size, args.rounds)
    long_rate = throughput(encode, long, args.batch_size, args.rounds)
    latencies = []
    for i in range(args.single_iterations):
        text = mixed[i % len(mixed)]
        start = time.perf_counter()
        encode([text])
        latencies.append((time.perf_counter() - start) * 1e3)
    latencies.sort()
    return {
        "threads": args.threads,
        "batch_size": args.batch_size,
        "mixed512": {"sentences": len(mixed), "sentences_per_second": mixed_rate},
        "long120": {"sentences": len(long), "sentences_per_second": long_rate},
        "single_sentence_ms": {
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
        },
    }


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    load_start = time.perf_counter()
    model = SentenceTransformer(args.model, device="cpu")
    load_seconds = time.perf_counter() - load_start
    mixed, long = read_corpora(args.reference)

    def encode(texts):
        model.encode(texts, batch_size=args.batch_size, normalize_embeddings=False)

    with torch.inference_mode():
        report = measure(encode, mixed, long, args)
    report["implementation"] = f"sentence-transformers (torch {torch.__version__})"
    report["load_seconds"] = load_seconds
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
