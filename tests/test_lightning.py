"""Test of conjugacy.torch.lightning.TrajectoryCallback with a real Trainer on CPU."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from conjugacy.store import TrajectoryStore  # noqa: E402
from conjugacy.torch.lightning import TrajectoryCallback  # noqa: E402


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)
        self.snapshots = [self.fc2.weight.detach().clone()]

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.snapshots.append(self.fc2.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def make_trainer(cb, **kw):
    return pl.Trainer(max_steps=7, callbacks=[cb], enable_progress_bar=False, logger=False,
                      enable_checkpointing=False, enable_model_summary=False, accelerator="cpu",
                      devices=1, **kw)


def loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    return DataLoader(TensorDataset(x, x[:, :2] * 2), batch_size=8, shuffle=False)


def test_callback_records_every_optimizer_step(tmp_path):
    model = Tiny()
    cb = TrajectoryCallback(tmp_path / "s", "tiny", "fc2.*", chunk_steps=3,
                            metadata={"seed": 0}, metrics=["train_mse"])
    make_trainer(cb).fit(model, loader())
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        info = st.run_info("tiny")
        assert info["finished"] and list(info["parameters"]) == ["fc2.weight", "fc2.bias"]
        np.testing.assert_array_equal(st.steps("tiny"), np.arange(8))
        w = st.read("fc2.weight")[0]
        np.testing.assert_array_equal(w, np.stack([s.numpy().ravel() for s in model.snapshots]))
        np.testing.assert_array_equal(w[-1], model.fc2.weight.detach().numpy().ravel())
        loss = st.scalars("tiny", "loss")
        assert np.isnan(loss[0]) and np.all(np.isfinite(loss[1:]))
        np.testing.assert_allclose(st.scalars("tiny", "train_mse")[1:], loss[1:], rtol=1e-6)
        assert info["metadata"]["seed"] == 0 and info["metadata"]["optimizer"]["class"] == "SGD"


def test_callback_with_gradient_accumulation(tmp_path):
    cb = TrajectoryCallback(tmp_path / "s", "acc", "fc1.weight", every=2)
    make_trainer(cb, accumulate_grad_batches=2).fit(Tiny(), loader())
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        np.testing.assert_array_equal(st.steps("acc"), [0, 2, 4, 6])
