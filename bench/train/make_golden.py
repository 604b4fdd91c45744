"""Regenerates crates/engine/tests/it/golden/seed_mlp_extra.json: PyTorch trajectories of
the seed model for the optimiser settings that shared/reference/seed_mlp.json does not
cover (AdamW, Nesterov SGD, gradient clipping). Run with the bench venv:

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


if __name__ == "__main__":
    main()
