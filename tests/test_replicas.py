"""Tests of conjugacy.torch replicas: perturbation, identical batch order, vmap == sequential."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from conjugacy.store import TrajectoryStore  # noqa: E402
from conjugacy.torch import make_replicas, perturb_model, train_replicas  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return torch.tensor(d.data / 16.0), torch.tensor(d.target)


def mlp(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).to(dtype)


def make_batches(x, y, dtype=torch.float64):
    def batches():
        g = torch.Generator().manual_seed(7)  # same shuffled order on every call
        perm = torch.randperm(320, generator=g)
        for i in range(0, 320, 32):
            idx = perm[i : i + 32]
            yield x[idx].to(dtype), y[idx]
    return batches


def ce(out, y):
    return nn.functional.cross_entropy(out, y), {"accuracy": (out.argmax(-1) == y).double().mean()}


def test_perturbation_is_multiplicative_and_seeded():
    base = mlp()
    gen = torch.Generator().manual_seed(3)
    p = perturb_model(base, 0.01, noise="uniform", generator=gen)
    for (name, a), b in zip(base.named_parameters(), p.parameters()):
        xi = (b / a - 1) / 0.01
        assert xi.abs().max() <= 1 + 1e-9 and xi.std() > 0.3, name
    g = perturb_model(base, 0.01, noise="gaussian", generator=torch.Generator().manual_seed(3))
    xi = torch.cat([((b / a - 1) / 0.01).ravel() for a, b in zip(base.parameters(),
                                                                   g.parameters())])
    assert 0.9 < xi.std() < 1.1 and xi.abs().max() > 1.5
    reps = make_replicas(base, 3, eps=0.01, seed=5)
    again = make_replicas(base, 3, eps=0.01, seed=5)
    other = make_replicas(base, 3, eps=0.01, seed=6)
    for a, b in zip(base.parameters(), reps[0].parameters()):
        assert torch.equal(a, b)  # replica 0 is the base
    for r, s, o in zip(reps[1:], again[1:], other[1:]):
        for a, b, c in zip(r.parameters(), s.parameters(), o.parameters()):
            assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(reps[1][0].weight, reps[2][0].weight)
    assert all(not torch.equal(a, b) for a, b in zip(
        base.parameters(), make_replicas(base, 1, include_base=False)[0].parameters()))
    with pytest.raises(ValueError, match="noise must be"):
        perturb_model(base, 0.1, noise="cauchy")
    with pytest.raises(ValueError, match="eps must be"):
        perturb_model(base, -1.0)


@pytest.mark.parametrize("vectorize", [False, True])
def test_replicas_start_at_perturbation_and_share_batches(tmp_path, digits, vectorize):
    x, y = digits
    base = mlp()
    seen = []

    def loss_fn(out, t):
        seen.append(t.clone())
        return ce(out, t)

    names = train_replicas(base, n_replicas=3, eps=0.05, noise="gaussian", seed=1,
                           batches=make_batches(x, y), loss_fn=loss_fn,
                           make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1), n_steps=12,
                           store=tmp_path / "s", run_prefix="mlp", vectorize=vectorize,
                           chunk_steps=5)
    assert names == ["mlp_0", "mlp_1", "mlp_2"]
    reps = make_replicas(base, 3, eps=0.05, noise="gaussian", seed=1)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        data = st.read()
        assert data.shape == (3, 13, 16 * 64 + 16 + 170)
        for i, r in enumerate(reps):  # step 0 is the intended perturbation, exactly
            init = np.concatenate([p.detach().numpy().ravel() for p in r.parameters()])
            np.testing.assert_array_equal(data[i, 0], init)
        digests = {st.run_info(n)["metadata"]["batch_order_sha256"] for n in names}
        assert len(digests) == 1
        meta = st.run_info("mlp_2")["metadata"]
        assert meta["replica"] == 2 and meta["perturbation"]["eps"] == 0.05
        assert meta["vectorized"] is vectorize and meta["seed"] == 1
        loss = st.scalars("mlp_1", "loss")
        assert np.isnan(loss[0]) and np.all(np.isfinite(loss[1:]))
        assert np.all(st.scalars("mlp_1", "accuracy")[1:] >= 0)
    # every replica saw the same targets in the same order
    per_rep = [seen[i::3] for i in range(3)] if vectorize else [seen[12 * i:12 * i + 12]
                                                                 for i in range(3)]
    for other in per_rep[1:]:
        assert all(torch.equal(a, b) for a, b in zip(per_rep[0], other))


def test_vectorized_equals_sequential(tmp_path, digits):
    x, y = digits
    base = mlp()
    evaluate = lambda m: {"w_norm": sum(p.square().sum() for p in m.parameters()).sqrt()}  # noqa
    for vec in (False, True):
        train_replicas(base, n_replicas=4, eps=1e-2, seed=0, batches=make_batches(x, y),
                       loss_fn=ce, n_steps=15, store=tmp_path / "s", run_prefix=f"v{int(vec)}",
                       make_optimizer=lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
                       vectorize=vec, evaluate=evaluate, every=2, chunk_steps=4)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        a = st.read(runs=[f"v0_{i}" for i in range(4)])
        b = st.read(runs=[f"v1_{i}" for i in range(4)])
        np.testing.assert_array_equal(st.steps("v1_3"), np.arange(0, 16, 2))
        assert np.abs(a[1:, -1] - a[0, -1]).max() > 1e-4  # replicas differ...
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)  # ...but both paths agree
        for n in ("loss", "accuracy", "w_norm"):
            np.testing.assert_allclose(st.scalars("v1_2", n), st.scalars("v0_2", n), atol=1e-12)


@pytest.mark.parametrize("vectorize", [False, True])
def test_scalars_that_require_grad_are_recorded_without_torch_warning(tmp_path, digits, vectorize):
    """A loss_fn's extra values that require grad are detached before conversion: no torch
    UserWarning ("Converting a tensor with requires_grad=True to a scalar"), same values."""
    x, y = digits

    def loss_fn(out, t):
        loss = nn.functional.cross_entropy(out, t)
        return loss, {"twice": 2 * loss, "quarter": out.sum() * 0 + 0.25}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_replicas(mlp(), n_replicas=2, eps=1e-2, seed=0, batches=make_batches(x, y),
                       loss_fn=loss_fn, n_steps=3, store=tmp_path / "s", vectorize=vectorize,
                       make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        for run in st.runs():
            loss = st.scalars(run, "loss")
            np.testing.assert_array_equal(st.scalars(run, "twice")[1:], 2 * loss[1:])
            np.testing.assert_array_equal(st.scalars(run, "quarter")[1:], [0.25] * 3)


def test_after_step_projection_both_paths(tmp_path, digits):
    x, y = digits

    def project(m):  # in place: unit-norm rows of the first layer
        w = m[0].weight
        w.div_(w.norm(dim=1, keepdim=True))

    for vec in (False, True):
        train_replicas(mlp(), n_replicas=2, eps=1e-2, seed=0, batches=make_batches(x, y),
                       loss_fn=ce, n_steps=6, store=tmp_path / "s", run_prefix=f"p{int(vec)}",
                       make_optimizer=lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),
                       after_step=project, vectorize=vec)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        a, b = st.read("0.weight", runs=["p0_0", "p0_1"]), st.read("0.weight",
                                                                    runs=["p1_0", "p1_1"])
        rows = a[:, 1:].reshape(2, 6, 16, 64)
        np.testing.assert_allclose(np.linalg.norm(rows, axis=-1), 1.0, atol=1e-12)
        np.testing.assert_allclose(b, a, atol=1e-12)


def test_different_batch_order_is_detected(tmp_path, digits):
    x, y = digits
    calls = []

    def batches():
        calls.append(None)
        g = torch.Generator().manual_seed(len(calls))  # a new order on every call: wrong
        perm = torch.randperm(320, generator=g)
        return [(x[perm[i:i + 32]], y[perm[i:i + 32]]) for i in range(0, 320, 32)]

    with pytest.raises(ValueError, match="different batch at step 1"):
        train_replicas(mlp(), n_replicas=2, eps=1e-2, batches=batches, loss_fn=ce, n_steps=3,
                       make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
                       store=tmp_path / "s", vectorize=False)
    with pytest.raises(ValueError, match="vectorised path is not exact.*not element-wise"):
        train_replicas(mlp(), n_replicas=2, eps=1e-2, batches=make_batches(x, y), loss_fn=ce,
                       n_steps=3, make_optimizer=lambda p: torch.optim.LBFGS(p),
                       store=tmp_path / "t", vectorize=True)


@pytest.mark.parametrize("vectorize", [False, True])
def test_checkpoint_dir_resumes_interrupted_training(tmp_path, digits, vectorize):
    x, y = digits
    kw = dict(n_replicas=2, eps=1e-2, seed=0, batches=make_batches(x, y), loss_fn=ce,
              n_steps=11, make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
              vectorize=vectorize, chunk_steps=4)
    train_replicas(mlp(), store=tmp_path / "ref", **kw)
    calls = []

    def evaluate(m):
        calls.append(None)
        if len(calls) == 2 * 9:  # 9th recorded state of the 2nd replica (or of both)
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train_replicas(mlp(), store=tmp_path / "s", checkpoint_dir=tmp_path / "ck",
                       evaluate=evaluate, **kw)
    names = train_replicas(mlp(), store=tmp_path / "s", checkpoint_dir=tmp_path / "ck", **kw)
    with TrajectoryStore.open(tmp_path / "s", "r") as st, TrajectoryStore.open(tmp_path / "ref",
                                                                               "r") as ref:
        assert all(st.run_info(n)["finished"] for n in names)
        np.testing.assert_array_equal(st.steps(names[1]), np.arange(12))
        np.testing.assert_array_equal(st.read(), ref.read())


@pytest.mark.parametrize("vectorize", [False, True])
def test_recording_reads_no_store_metadata_per_step_or_chunk(tmp_path, digits, monkeypatch,
                                                             vectorize):
    """The store's metadata reads (run attributes, array metadata) of a train_replicas call do
    not grow with the number of steps: the recorders count n_complete themselves and the store
    keeps each run's arrays open between appends."""
    x, y = digits
    reads = []
    orig = TrajectoryStore._json

    def spy(self, *a, **k):
        reads.append(a)
        return orig(self, *a, **k)

    monkeypatch.setattr(TrajectoryStore, "_json", spy)
    counts = []
    for n_steps in (8, 40):
        reads.clear()
        train_replicas(mlp(), n_replicas=2, eps=1e-2, seed=0, batches=make_batches(x, y),
                       loss_fn=ce, n_steps=n_steps, store=tmp_path / f"s{n_steps}",
                       make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1), chunk_steps=4,
                       vectorize=vectorize)
        counts.append(len(reads))
    assert counts[0] == counts[1] and counts[0] > 0, counts
    with TrajectoryStore.open(tmp_path / "s40", "r") as st:
        assert st.verify().ok
        assert all(st.n_complete(n) == 41 and st.run_info(n)["finished"] for n in st.runs())


def test_branch_batches_record_a_branch_without_changing_the_replicas(tmp_path, digits):
    x, y = digits

    def branch_batches(g):
        i = torch.randint(0, 1700, (32,), generator=g)
        return x[i], y[i]

    common = dict(n_replicas=2, eps=1e-2, seed=4, batches=make_batches(x, y), loss_fn=ce,
                  n_steps=8, store=tmp_path / "s", every=2, chunk_steps=3,
                  make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    train_replicas(mlp(), run_prefix="plain", vectorize=False, **common)
    train_replicas(mlp(), run_prefix="branch", branch_batches=branch_batches, **common)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        plain = st.read(runs=["plain_0", "plain_1"])
        main = st.read(runs=["branch_0", "branch_1"])
        nxt = st.read(runs=["branch_0", "branch_1"], branch="next")
        np.testing.assert_array_equal(main, plain)  # bit-identical replicas
        assert st.run_info("branch_1")["metadata"]["vectorized"] is False
        assert st.run_info("branch_1")["metadata"]["branch"]["n_steps"] == 2  # the stride
        assert st.run_info("plain_0")["branches"] == []
        # each replica's branch has its own generator: the two branches differ beyond the
        # replicas' own difference, and no branch equals the next record
        assert np.abs(nxt[:, :-1] - main[:, 1:]).max(axis=2).min() > 0
        d_main = np.abs(main[0] - main[1]).max()
        assert np.abs(nxt[0] - nxt[1]).max() > 3 * d_main  # 5.7x measured
    with pytest.raises(ValueError, match="branch_batches is given"):
        train_replicas(mlp(), run_prefix="vec", branch_batches=branch_batches, vectorize=True,
                       **common)
    with pytest.raises(TypeError, match="branch_batches must be a callable"):
        train_replicas(mlp(), run_prefix="bad", branch_batches=[1], **common)
