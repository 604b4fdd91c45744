"""Regenerates the PyTorch golden files under crates/engine/tests/it/golden/:

- seed_mlp_extra.json: trajectories of the seed model for the optimiser settings that
  shared/reference/seed_mlp.json does not cover (AdamW, Nesterov SGD, gradient clipping);
- layers.json: loss and parameter gradients of small nets covering every layer type and
  loss, to pin the PyTorch semantics (GELU exact, LayerNorm biased variance, soft-target
  cross entropy averaged over rows, BCE averaged over elements).

Run with the bench venv:

    bench/.venv/bin/python bench/train/make_golden.py ../shared/reference/seed_mlp.json
"""

import json
import sys
from collections import OrderedDict

import torch
from torch import nn


def main():
    ref = json.load(open(sys.argv[1]))
    init = {k: torch.tensor(v["data"], dtype=torch.float32).reshape(v["shape"]) for k, v in ref["initial_weights"].items()}
    x = torch.tensor(ref["x"]["data"], dtype=torch.float32).reshape(ref["x"]["shape"])
    y = torch.tensor(ref["y"]["data"], dtype=torch.float32).reshape(ref["y"]["shape"])
    runs = {
        "adamw": (lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01), None),
        "sgd_nesterov": (lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4), None),
        "sgd_clip": (lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5, dampening=0.1), 0.25),
    }
    out = {"torch_version": torch.__version__, "runs": {}}
    for name, (make, clip) in runs.items():
        torch.set_num_threads(1)
        model = nn.Sequential(OrderedDict(layer1=nn.Linear(10, 20), layer2=nn.Linear(20, 10)))
        model.load_state_dict(init)
        opt = make(model.parameters())
        losses = []
        for t in range(x.shape[0]):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x[t]), y[t])
            losses.append(loss.item())
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
        final = {k: {"shape": list(v.shape), "data": v.flatten().tolist()} for k, v in model.state_dict().items()}
        out["runs"][name] = {"optimizer": str(opt).replace("\n", " "), "max_grad_norm": clip, "losses": losses, "final_weights": final}
    json.dump(out, open("crates/engine/tests/it/golden/seed_mlp_extra.json", "w"))
    layers()


def layers():
    gen = torch.Generator().manual_seed(3)
    cases = {
        "tanh_cross_entropy": ([nn.Tanh()], "cross_entropy"),
        "relu_cross_entropy": ([nn.ReLU()], "cross_entropy"),
        "sigmoid_bce": ([nn.Sigmoid()], "binary_cross_entropy"),
        "gelu_layer_norm_softmax_mse": ([nn.GELU(), nn.LayerNorm(4, eps=1e-5), nn.Softmax(dim=-1)], "mse"),
        "dropout_eval_mse": ([nn.Dropout(0.5)], "mse"),
    }
    out = {}
    for name, (mods, loss_name) in cases.items():
        torch.manual_seed(0)
        linear = nn.Linear(3, 4)
        model = nn.Sequential(OrderedDict([("lin", linear)] + [(f"m{i}", m) for i, m in enumerate(mods)]))
        model.eval()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        x = torch.randn(5, 3, generator=gen)
        if loss_name == "cross_entropy":
            t = torch.rand(5, 4, generator=gen)
            t = t / t.sum(dim=1, keepdim=True)
            loss = nn.functional.cross_entropy(model(x), t)
        elif loss_name == "binary_cross_entropy":
            t = torch.rand(5, 4, generator=gen)
            loss = nn.functional.binary_cross_entropy(model(x), t)
        else:
            t = torch.randn(5, 4, generator=gen)
            loss = nn.functional.mse_loss(model(x), t)
        loss.backward()
        out[name] = {
            "x": x.flatten().tolist(),
            "t": t.flatten().tolist(),
            "loss": loss.item(),
            "params": {k: v.detach().flatten().tolist() for k, v in model.state_dict().items()},
            "grads": {k: v.grad.flatten().tolist() for k, v in model.named_parameters()},
        }
    json.dump(out, open("crates/engine/tests/it/golden/layers.json", "w"), indent=0)


if __name__ == "__main__":
    main()
