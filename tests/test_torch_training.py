"""The training helpers shared by the experiments (conjugacy.torch.training)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conjugacy.torch.training import (  # noqa: E402
    FinalTestLoss,
    augmented_batches,
    endless_batches,
    evaluate,
    seeded_mlp,
    sgd_step,
)


def test_augmented_batches_are_flips_and_crops_of_the_images_and_repeat_with_the_seed():
    x = torch.arange(4 * 3 * 32 * 32, dtype=torch.float32).reshape(4, 3, 32, 32)
    y = torch.arange(4)
    order = np.array([[0, 1], [2, 3]])
    first = list(augmented_batches(x, y, order, seed=5, device="cpu"))
    again = list(augmented_batches(x, y, order, seed=5, device="cpu"))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))
    assert [b[1].tolist() for b in first] == [[0, 1], [2, 3]]
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for (xb, _), idx in zip(first, order):
        for img, i in zip(xb, idx):  # each image is a 32 x 32 window of the padded one, maybe flipped
            windows = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
            assert any(torch.equal(img, w) or torch.equal(img, w.flip(-1)) for w in windows)


def test_mlp_batches_step_and_evaluate():
    a, b = seeded_mlp(6, 5, 3, seed=1), seeded_mlp(6, 5, 3, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, seeded_mlp(6, 5, 3, seed=2)[0].weight)
    batches = endless_batches(10, 4, [0, 1])
    epoch = [next(batches) for _ in range(2)]  # 2 batches of 4 per epoch, the remainder dropped
    assert all(len(i) == 4 for i in epoch) and len(set(torch.cat(epoch).tolist())) == 8
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    loss0, acc0 = evaluate(a, x, y)
    opt = torch.optim.SGD(a.parameters(), lr=0.5)
    assert sgd_step(a, opt, x, y) == pytest.approx(loss0)
    assert evaluate(a, x, y)[0] < loss0 and 0 <= acc0 <= 1


def test_final_test_loss_counts_records_per_module():
    from conjugacy.torch.models import FCN

    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(20, 8, generator=gen), torch.arange(20) % 10
    a, b = FCN(8, 4, generator=gen), FCN(8, 4, generator=gen)
    hook = FinalTestLoss(x, y, n_steps=2)
    assert [hook(a), hook(a), hook(b)] == [{}, {}, {}]  # records 0, 1 of a; record 0 of b
    with torch.no_grad():
        last = hook(a)
        want = torch.nn.functional.cross_entropy(a(x), y)
    assert last["test_loss"] == pytest.approx(float(want), rel=1e-6)
    assert last["test_accuracy"] == pytest.approx(float((a(x).argmax(-1) == y).float().mean()))
    assert hook(b) == {} and set(hook(b)) == {"test_loss", "test_accuracy"}


def test_train_minibatch_job_draws_init_noise_and_order_from_the_jobs_seed_streams(tmp_path):
    import types

    from torch.nn import functional as F

    from conjugacy.data import batch_order
    from conjugacy.study import Study, run_study, seed_streams
    from conjugacy.torch.training import train_minibatch_job

    cfg = types.SimpleNamespace(seed=3, batch_size=2, lr=0.1, eps=1e-3, device="cpu")
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    y = np.arange(8) % 3

    def train(job, ctx):
        train_minibatch_job(job, ctx, lambda s: seeded_mlp(4, 8, 3, s), x, y, inits={"a": 1, "b": 2},
                            init_key=job.condition, metadata={"who": job.condition},
                            loss_fn=F.cross_entropy, params=["6.weight"],
                            make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1))

    study = Study("t", {"a": {}, "b": {}}, seeds=[1], n_replicas=2, n_records=4, train=train,
                  settings={}, config=cfg)
    with run_study(study, tmp_path).reader() as reader:
        meta = reader.metadata("b-seed1_0")
        w = reader.read(params="6.weight", runs=["b-seed1_0"], dtype=np.float64)[0]
    streams = seed_streams(3, 1, {"a": 1, "b": 2})
    assert meta["init_seed"] == streams["init"]["b"] != streams["init"]["a"]
    assert (meta["batch_order_seed"], meta["seed_index"], meta["who"]) == (streams["order"], 1, "b")
    assert (meta["lr"], meta["batch_size"], meta["n_steps"], meta["n_replicas"]) == (0.1, 2, 3, 2)
    # the base run (replica 0) is the init stream's network trained on the order stream's batches
    model = seeded_mlp(4, 8, 3, streams["init"]["b"])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = model[6].weight.detach().numpy().ravel().copy()
    for idx in batch_order(8, 2, 3, streams["order"]):
        sgd_step(model, opt, torch.from_numpy(x[idx]), torch.from_numpy(y[idx]))
    np.testing.assert_array_equal(w[0], first)
    np.testing.assert_allclose(w[-1], model[6].weight.detach().numpy().ravel(), rtol=1e-6, atol=1e-7)
