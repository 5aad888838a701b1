"""Workers for the SIGKILL tests (run as subprocesses by tests/test_recorder.py, test_store.py).

usage:
  python _kill_worker.py DIGITS_NPZ STORE CHECKPOINT N_STEPS HANG_AT
      Trains a 2-layer MLP on scikit-learn's digits (saved by the test as .npz, so no sklearn
      import here) with SGD + momentum, recording every step with chunk_steps=8 and checkpoints
      at flush points, resuming if the run exists. If HANG_AT >= 0, after recording step HANG_AT
      it prints "HANGING" and sleeps, so the parent can SIGKILL it mid-chunk.
  python _kill_worker.py replicas DIGITS_NPZ STORE CHECKPOINT_DIR N_STEPS HANG_AT [PAUSE]
      ``train_replicas`` (3 replicas of that MLP, vectorised, chunk_steps=4, checkpoint_dir);
      if HANG_AT >= 0, prints "HANGING" and sleeps (PAUSE seconds, default 600) when recording
      step HANG_AT.
  python _kill_worker.py append STORE
      Appends chunks of 4 records to runs a, b, c with one ``append_many`` each, forever (the
      data of step t of run r is ``expected(r, t)``); prints "READY" after the first write.
"""

from __future__ import annotations

import sys
import time

import numpy as np

RUNS = ("a", "b", "c")
APPEND_CHUNK = 4


def expected(run: str, steps: np.ndarray) -> np.ndarray:
    """Data of ``steps`` of ``run`` written by the ``append`` worker: (len(steps), 3, 5)."""
    base = np.arange(15, dtype=np.float32).reshape(3, 5) + 100 * RUNS.index(run)
    return base[None] + np.asarray(steps, dtype=np.float32)[:, None, None] * 1000


def append_forever(store: str) -> None:
    """Append to runs a, b, c of a new store until killed."""
    from conjugacy.store import TrajectoryStore

    with TrajectoryStore.open(store, "w") as st:
        for r in RUNS:
            st.create_run(r, {"w": ((3, 5), np.float32)}, chunk_steps=APPEND_CHUNK)
        t = 0
        while True:
            steps = np.arange(t, t + APPEND_CHUNK)
            st.append_many({r: (steps, {"w": expected(r, steps)}, {"loss": steps * 0.5})
                            for r in RUNS})
            if t == 0:
                print("READY", flush=True)
            t += APPEND_CHUNK


def batch(step, x, y):  # noqa: ANN001, ANN201
    import torch

    g = torch.Generator().manual_seed(1000 + step)  # batch depends on the step only
    idx = torch.randperm(len(x), generator=g)[:32]
    return x[idx], y[idx]


def _digits(data: str):  # noqa: ANN202
    import torch

    with np.load(data) as d:
        return torch.tensor(d["data"] / 16.0, dtype=torch.float32), torch.tensor(d["target"])


def _mlp():  # noqa: ANN202
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def train(data: str, store: str, ckpt: str, n_steps: int, hang_at: int = -1) -> None:
    """Train and record (resuming if possible); hang after recording step ``hang_at``."""
    import torch
    from torch import nn

    from conjugacy.torch import Recorder

    x, y = _digits(data)
    model = _mlp()
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


def train_vmap(data: str, store: str, ckdir: str, n_steps: int, hang_at: int = -1,
               pause: float = 600.0) -> list[str]:
    """``train_replicas`` on the vectorised path with checkpoints; hang (``pause`` seconds) when
    recording step ``hang_at`` (the evaluate hook counts the recorded steps)."""
    import torch
    from torch import nn

    from conjugacy.torch import train_replicas

    x, y = _digits(data)
    seen: list[None] = []

    def evaluate(m):  # noqa: ANN001, ANN202
        seen.append(None)
        if hang_at >= 0 and len(seen) == 3 * (hang_at + 1):  # step hang_at of the 3 replicas
            print("HANGING", flush=True)
            time.sleep(pause)
        return {}

    return train_replicas(
        _mlp(), n_replicas=3, eps=1e-2, seed=0, batches=lambda: (batch(s, x, y)
                                                                 for s in range(1, n_steps + 1)),
        loss_fn=nn.functional.cross_entropy, n_steps=n_steps, store=store, chunk_steps=4,
        make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), vectorize=True,
        checkpoint_dir=ckdir, evaluate=evaluate,
    )


if __name__ == "__main__":
    if sys.argv[1] == "append":
        append_forever(sys.argv[2])
    else:
        import torch

        torch.set_num_threads(1)
        if sys.argv[1] == "replicas":
            train_vmap(*sys.argv[2:5], int(sys.argv[5]), int(sys.argv[6]),
                       *(float(a) for a in sys.argv[7:8]))
        else:
            train(*sys.argv[1:4], int(sys.argv[4]), int(sys.argv[5]))
