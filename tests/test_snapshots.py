"""Checkpoint recording beside the Recorder, and loss along interpolations with BN refit."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from conjugacy.spectral_dynamics import barrier  # noqa: E402
from conjugacy.store import StoreError, TrajectoryStore  # noqa: E402
from conjugacy.torch import Recorder  # noqa: E402
from conjugacy.torch.snapshots import (  # noqa: E402
    CheckpointRecorder,
    companion_schedule,
    interpolate_model,
    interpolation_losses,
    matrix_parameters,
)


# ----------------------------------------------------------------------------- schedule
def test_companion_schedule():
    assert companion_schedule(100, 3) == [0, 20, 40, 60, 80, 100, 200, 300]
    assert companion_schedule(12, 2) == [0, 2, 4, 6, 8, 12, 24]
    assert companion_schedule(3, 2) == [0, 3, 6]  # fewer than 5 steps per epoch: epoch ends only
    with pytest.raises(ValueError, match="steps_per_epoch"):
        companion_schedule(0, 2)


# ----------------------------------------------------------------------------- recording
def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def test_checkpoints_beside_the_recorder_in_one_store(tmp_path):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3
    kept = {}
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as store:
        rec = Recorder(store, "run0", model, "2.weight", optimizer=opt)
        ck = CheckpointRecorder.beside(rec, "companion", steps_per_epoch=5, n_epochs=2,
                                       metadata={"seed": 0})
        assert ck.names == ["0.weight", "2.weight"] == matrix_parameters(model)
        for step in range(11):
            if step:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            rec.record(step)
            if ck.record(step, loss=float(step)):
                kept[step] = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
        rec.close()
        ck.close()
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as store:
        assert store.runs() == ["run0", "run0.checkpoints"]
        assert store.n_complete("run0") == 11
        info = store.run_info("run0.checkpoints")
        assert info["metadata"]["kind"] == "checkpoints"
        assert info["metadata"]["checkpoints_of"] == "run0"
        assert info["metadata"]["seed"] == 0
        assert info["metadata"]["schedule"]["steps"] == [0, 1, 2, 3, 4, 5, 10]
        assert info["finished"]
        steps = store.steps("run0.checkpoints")
        np.testing.assert_array_equal(steps, [0, 1, 2, 3, 4, 5, 10])
        w = store.read("0.weight", runs="run0.checkpoints")[0].reshape(-1, 6, 4)
        for i, s in enumerate(steps):
            np.testing.assert_array_equal(w[i], kept[int(s)]["0.weight"])
        np.testing.assert_array_equal(store.scalars("run0.checkpoints", "loss"), steps)
        # the per-step record of the observed layer agrees with the checkpoint at step 10
        np.testing.assert_array_equal(
            store.read("2.weight", runs="run0")[0, 10], kept[10]["2.weight"].ravel()
        )


def test_every_k_and_explicit_schedules(tmp_path):
    model = _mlp()
    with CheckpointRecorder(tmp_path / "a.zarr", "r", model, 3) as ck:
        done = [s for s in range(10) if ck.record(s)]
    assert done == [0, 3, 6, 9]
    with CheckpointRecorder(tmp_path / "a.zarr", "q", model, [2, 5], params=["2.weight"]) as ck:
        done = [s for s in range(10) if ck.record(s)]
    assert done == [2, 5]
    with TrajectoryStore.open(tmp_path / "a.zarr", "r") as store:
        assert store.parameters("q.checkpoints") == ["2.weight"]
    with pytest.raises(StoreError, match="already exists"):
        CheckpointRecorder(tmp_path / "a.zarr", "r", model, 3)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        CheckpointRecorder(tmp_path / "b.zarr", "r", model)
    with pytest.raises(ValueError, match="schedule"):
        CheckpointRecorder(tmp_path / "b.zarr", "r", model, "weekly")
    with pytest.raises(ValueError, match="not parameters"):
        CheckpointRecorder(tmp_path / "b.zarr", "r", model, 2, params=["0.bias"])


def test_checkpoint_record_checks_steps_and_scalars(tmp_path):
    model = _mlp()
    with CheckpointRecorder(tmp_path / "c.zarr", "r", model, 2) as ck:
        assert ck.record(4, loss=torch.tensor(0.5))
        assert not ck.record(3)  # not scheduled: ignored, whatever the order
        with pytest.raises(ValueError, match=r"^step must increase: got 2 after step 4$"):
            ck.record(2)
        for bad in (-2, 2.0, True):
            with pytest.raises(ValueError, match=r"^step must be a non-negative integer, got "):
                ck.record(bad)
        with pytest.raises(TypeError, match=r"^scalar loss='x' is not a number$"):
            ck.record(6, loss="x")
    with TrajectoryStore.open(tmp_path / "c.zarr", "r") as store:
        assert store.steps("r.checkpoints").tolist() == [4]
        assert store.scalars("r.checkpoints", "loss").tolist() == [0.5]


# ----------------------------------------------------------------------------- interpolation
class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class _ToyResNet(nn.Module):
    def __init__(self, c: int = 8, bn: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c) if bn else nn.Identity()
        self.block = _Block(c) if bn else nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(c, 3)

    def forward(self, x):
        h = self.block(F.relu(self.bn(self.conv(x))))
        return self.fc(h.mean(dim=(2, 3)))


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 6, 6, generator=g)
    y = (x[:, 0, :3].sum(dim=(1, 2)) > 0).long() + (x[:, 0, 3:].sum(dim=(1, 2)) > 0).long()
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, 96, 32)]


def _train(seed: int, data, bn: bool = True, steps: int = 60):
    torch.manual_seed(seed)
    model = _ToyResNet(bn=bn)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        x, y = data[step % len(data)]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def _branch(trunk, seed: int, data, steps: int = 60):
    """Train a copy of ``trunk`` on batches drawn in a seeded random order."""
    model = copy.deepcopy(trunk)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = data[int(torch.randint(0, len(data), (1,), generator=g))]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def _eval(model, data):
    model.eval()
    with torch.no_grad():
        return sum(float(F.cross_entropy(model(x), y)) * len(y) for x, y in data) / 96


def test_bn_refit_recomputes_the_statistics_of_the_interpolated_model():
    data = _data()
    a, b = _train(0, data), _train(1, data)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    mid = interpolate_model(a, b, 0.5, bn_data=data)
    # refit: the statistics of the first BN are those of the interpolated conv's output
    # (update_bn: cumulative average over equal batches of the per-batch mean and unbiased var)
    with torch.no_grad():
        feats = [mid.conv(x) for x, _ in data]
    mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var(dim=(0, 2, 3)) for f in feats]).mean(0)
    torch.testing.assert_close(mid.bn.running_mean, mean, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(mid.bn.running_var, var, atol=1e-6, rtol=1e-5)
    # no refit: buffers are interpolated like the weights
    plain = interpolate_model(a, b, 0.5)
    torch.testing.assert_close(plain.bn.running_var, 0.5 * (a.bn.running_var + b.bn.running_var))
    torch.testing.assert_close(plain.conv.weight, 0.5 * (a.conv.weight + b.conv.weight))
    for k, v in a.state_dict().items():  # inputs untouched
        assert torch.equal(v, before[k])


def test_bn_refit_changes_the_interpolated_loss_as_it_should():
    data = _data()
    torch.manual_seed(0)
    trunk = _ToyResNet()
    a, b = _branch(trunk, 1, data), _branch(trunk, 2, data)  # two branches of one initialization
    refit = interpolation_losses(a, b, F.cross_entropy, data, n_points=5)
    stale = interpolation_losses(a, b, F.cross_entropy, data, n_points=5, refit_bn=False)
    np.testing.assert_array_equal(refit.alphas, [0, 0.25, 0.5, 0.75, 1])
    # endpoints without refit are the trained models themselves
    assert stale.losses[0] == pytest.approx(_eval(a, data), rel=1e-6)
    assert stale.losses[-1] == pytest.approx(_eval(b, data), rel=1e-6)
    # endpoints with refit are the models with their BN statistics recomputed on the data
    a2 = interpolate_model(a, b, 0.0, bn_data=data)
    assert refit.losses[0] == pytest.approx(_eval(a2, data), rel=1e-6)
    # interior: averaging the weights of two branches changes the activation statistics; the
    # interpolated running statistics do not follow, refitted ones do: stale statistics add a
    # spurious bump (Frankle et al. 2020), the refit removes it
    assert np.all(refit.losses[1:-1] < stale.losses[1:-1])
    assert barrier(refit.losses) < barrier(stale.losses)
    assert refit.errors is not None and np.all((refit.errors >= 0) & (refit.errors <= 1))


def test_without_batch_norm_refit_changes_nothing():
    data = _data()
    a, b = _train(0, data, bn=False, steps=5), _train(1, data, bn=False, steps=5)
    r1 = interpolation_losses(a, b, F.cross_entropy, data, n_points=3)
    r2 = interpolation_losses(a, b, F.cross_entropy, data, n_points=3, refit_bn=False)
    np.testing.assert_array_equal(r1.losses, r2.losses)


def test_interpolation_refuses_bad_input():
    data = _data()
    a = _ToyResNet()
    with pytest.raises(ValueError, match="same architecture"):
        interpolation_losses(a, _mlp(), F.cross_entropy, data)
    with pytest.raises(TypeError, match="one-shot"):
        interpolation_losses(a, _ToyResNet(), F.cross_entropy, iter(data))
    with pytest.raises(ValueError, match="n_points"):
        interpolation_losses(a, _ToyResNet(), F.cross_entropy, data, n_points=1)


class _ShortcutNet(nn.Module):
    """conv -> residual stage with a 1x1 shortcut -> flatten -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.shortcut = nn.Conv2d(4, 8, 1)
        self.fc = nn.Linear(8 * 6 * 6, 3)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h) + self.shortcut(h))
        return self.fc(h.flatten(1))


def test_report_lists_skipped_pairs_of_a_store(tmp_path):
    from conjugacy.analysis.checkpoints import spectral_dynamics_report

    torch.manual_seed(0)
    model = _ShortcutNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    (x, y), *_ = _data()
    with CheckpointRecorder(tmp_path / "s.zarr", "net", model, [0, 2, 4],
                            metadata={"condition": "toy", "seed": 0}) as ck:
        for step in range(5):
            if step:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            ck.record(step)
    res = spectral_dynamics_report(tmp_path / "s.zarr", draw=False)["sections"]
    run = res["runs"]["net.checkpoints"]
    assert run["steps"] == [0, 2, 4] and run["of"] == "net"
    assert [(p["first"], p["next"], p["kind"]) for p in run["chain"]["pairs"]] == [
        ("conv1.weight", "conv2.weight", "conv")]
    skipped = {(s["first"], s["next"]): s["reason"] for s in run["chain"]["skipped"]}
    assert skipped[("conv2.weight", "shortcut.weight")].startswith("residual shortcut")
    assert skipped[("shortcut.weight", "fc.weight")].startswith("conv -> linear after flattening")
    assert list(res["groups"]) == ["toy"]
    assert res["groups"]["toy"]["alignment_score"]["conv1.weight->conv2.weight"]["std"] == [0.0] * 3
