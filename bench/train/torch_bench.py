"""PyTorch side of the training benchmark: the same seed loop and batch-256 loop as
crates/engine/examples/train_bench.rs, printing `torch <case> <median us/step> <best us/step>`
lines over 15 timed passes after one warm-up pass."""

import argparse
import json
import statistics
import time
from collections import OrderedDict

import torch
from torch import nn

BIG_STEPS = 100
REPEATS = 15


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.reference) as f:
        ref = json.load(f)
    init = {k: torch.tensor(v["data"], dtype=torch.float32).reshape(v["shape"]) for k, v in ref["initial_weights"].items()}
    x = torch.tensor(ref["x"]["data"], dtype=torch.float32).reshape(ref["x"]["shape"])
    y = torch.tensor(ref["y"]["data"], dtype=torch.float32).reshape(ref["y"]["shape"])
    gen = torch.Generator().manual_seed(1)
    big_x = torch.rand(BIG_STEPS, 256, 10, generator=gen) * 2 - 1
    big_y = torch.rand(BIG_STEPS, 256, 10, generator=gen) * 2 - 1
    optimizers = [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.01)),
        ("sgd_momentum", lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=1e-4)),
        ("adam", lambda p: torch.optim.Adam(p, lr=1e-3)),
    ]
    for batch, (xs, ys) in [(1, (x, y)), (256, (big_x, big_y))]:
        for name, make in optimizers:
            median, best = time_steps(init, xs, ys, make)
            print(f"torch\t{name} batch={batch}\t{median:.3f}\t{best:.3f}", flush=True)


def time_steps(init, xs, ys, make):
    samples = []
    for repeat in range(REPEATS + 1):
        model = nn.Sequential(OrderedDict(layer1=nn.Linear(10, 20), layer2=nn.Linear(20, 10)))
        model.load_state_dict(init)
        loss_fn = nn.MSELoss()
        opt = make(model.parameters())
        loss_sum = 0.0
        start = time.perf_counter()
        for t in range(xs.shape[0]):
            opt.zero_grad()
            loss = loss_fn(model(xs[t]), ys[t])
            loss_sum += loss.item()
            loss.backward()
            opt.step()
        elapsed = time.perf_counter() - start
        if repeat > 0:  # the first run is warm-up
            samples.append(elapsed * 1e6 / xs.shape[0])
    return statistics.median(samples), min(samples)


if __name__ == "__main__":
    main()
