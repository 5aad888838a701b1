"""Training worker for the SIGKILL test of tests/test_recorder.py (run as a subprocess).

usage: python _kill_worker.py DIGITS_NPZ STORE CHECKPOINT N_STEPS HANG_AT

Trains a 2-layer MLP on scikit-learn's digits (saved by the test as .npz, so no sklearn import
here) with SGD + momentum, recording every step with chunk_steps=8 and checkpoints at flush
points, resuming if the run exists. If HANG_AT >= 0, after recording step HANG_AT it prints
"HANGING" and sleeps, so the parent can SIGKILL it mid-chunk.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch import nn

from conjugacy.torch import Recorder


def batch(step: int, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)  # batch depends on the step only
    idx = torch.randperm(len(x), generator=g)[:32]
    return x[idx], y[idx]


def train(data: str, store: str, ckpt: str, n_steps: int, hang_at: int = -1) -> None:
    """Train and record (resuming if possible); hang after recording step ``hang_at``."""
    with np.load(data) as d:
        x = torch.tensor(d["data"] / 16.0, dtype=torch.float32)
        y = torch.tensor(d["target"])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with Recorder(store, "mlp", model, "*", chunk_steps=8, optimizer=opt, checkpoint=ckpt,
                  resume=True) as rec:
        start = rec.resumed_from
        if start is None:
            rec.record(0)
            start = 0
        for step in range(start + 1, n_steps + 1):
            xb, yb = batch(step, x, y)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            rec.record(step, loss=loss.item())
            if step == hang_at:
                print("HANGING", flush=True)
                time.sleep(600)


if __name__ == "__main__":
    torch.set_num_threads(1)
    train(*sys.argv[1:4], int(sys.argv[4]), int(sys.argv[5]))
