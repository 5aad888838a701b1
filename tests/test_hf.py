"""Tests of conjugacy.torch.hf: the transformers Trainer callback, on a tiny BERT built from a config."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")
transformers = pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (the hf extra)")

from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from conjugacy.store import StoreError, TrajectoryStore  # noqa: E402
from conjugacy.torch.hf import TrajectoryTrainerCallback  # noqa: E402

PARAMS = "classifier.*"


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    """A 2-layer BERT with hidden size 16 built from a config: no download."""
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16, num_labels=2)
    return BertForSequenceClassification(cfg)


def dataset(n: int = 64, length: int = 8) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 32, (n, length), generator=g)
    return [{"input_ids": ids[i], "attention_mask": torch.ones(length, dtype=torch.long),
             "labels": ids[i, 0] % 2} for i in range(n)]


def args(tmp_path, **kw) -> TrainingArguments:
    base = dict(output_dir=str(tmp_path / "hf"), max_steps=10, per_device_train_batch_size=8,
                logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, seed=0,
                disable_tqdm=True, learning_rate=1e-3, log_level="error")
    base.update(kw)
    return TrainingArguments(**base)


class Snapshots(TrainerCallback):
    """Copies the classifier weights at every step end: what the store must hold."""

    def __init__(self) -> None:
        self.weights: dict[int, np.ndarray] = {}

    def _take(self, state, model) -> None:
        self.weights[state.global_step] = np.concatenate(
            [p.detach().numpy().ravel() for n, p in model.named_parameters()
             if n.startswith("classifier.")])

    def on_train_begin(self, args, state, control, model=None, **kw):
        self._take(state, model)

    def on_step_end(self, args, state, control, model=None, **kw):
        self._take(state, model)


def test_records_every_step_with_the_logged_loss(tmp_path):
    snaps = Snapshots()
    cb = TrajectoryTrainerCallback(tmp_path / "s.zarr", "r0", PARAMS,
                                   metadata={"condition": "adamw", "seed": 0})
    trainer = Trainer(model=tiny_bert(), args=args(tmp_path), train_dataset=dataset(),
                      callbacks=[cb, snaps])
    trainer.train()
    assert cb.recorder is None  # closed at on_train_end
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as st:
        np.testing.assert_array_equal(st.steps("r0"), np.arange(11))
        x = st.read(params=PARAMS)[0]
        info = st.run_info("r0")
        loss = st.scalars("r0", "loss")
    assert info["finished"] is True
    assert x.shape == (11, 2 * 16 + 2)
    for t in range(11):
        np.testing.assert_array_equal(x[t], snaps.weights[t])
    assert not np.array_equal(x[0], x[10])
    logged = {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}
    assert np.isnan(loss[0])
    np.testing.assert_allclose(loss[1:], [logged[t] for t in range(1, 11)], rtol=0, atol=1e-7)
    meta = info["metadata"]
    assert meta["condition"] == "adamw" and meta["seed"] == 0
    assert meta["transformers_version"] == transformers.__version__
    assert meta["training_arguments"]["learning_rate"] == 1e-3
    assert meta["model_config"]["hidden_size"] == 16
    assert meta["optimizer"]["class"] == "AdamW"


def test_every_and_sparse_logging(tmp_path):
    cb = TrajectoryTrainerCallback(tmp_path / "s.zarr", "r0", PARAMS, every=2, chunk_steps=2)
    trainer = Trainer(model=tiny_bert(), args=args(tmp_path, logging_steps=3),
                      train_dataset=dataset(), callbacks=[cb])
    trainer.train()
    logged = {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as st:
        np.testing.assert_array_equal(st.steps("r0"), [0, 2, 4, 6, 8, 10])
        loss = st.scalars("r0", "loss")
    # logged at steps 3, 6, 9: only step 6 is also recorded
    assert np.isnan(loss[[0, 1, 2, 4, 5]]).all()
    assert loss[3] == pytest.approx(logged[6], abs=1e-7)


def test_existing_run_is_refused_and_the_store_released(tmp_path):
    path = tmp_path / "s.zarr"
    Trainer(model=tiny_bert(), args=args(tmp_path, max_steps=2), train_dataset=dataset(),
            callbacks=[TrajectoryTrainerCallback(path, "r0", PARAMS)]).train()
    cb = TrajectoryTrainerCallback(path, "r0", PARAMS)
    trainer = Trainer(model=tiny_bert(), args=args(tmp_path, max_steps=2),
                      train_dataset=dataset(), callbacks=[cb])
    with pytest.raises(StoreError, match="already exists.*resume=True"):
        trainer.train()
    with TrajectoryStore.open(path, "a") as st:  # the writer lock was released
        assert st.n_complete("r0") == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="every must be a positive integer"):
        TrajectoryTrainerCallback("s.zarr", "r0", every=0)
    with pytest.raises(ValueError, match="log_keys must be a sequence of strings"):
        TrajectoryTrainerCallback("s.zarr", "r0", log_keys="loss")
    with pytest.raises(ValueError, match="run must be a non-empty string"):
        TrajectoryTrainerCallback("s.zarr", "")
    with pytest.raises(TypeError, match="store must be a TrajectoryStore or a path"):
        TrajectoryTrainerCallback(3, "r0")


class Interrupt(TrainerCallback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.at:
            raise KeyboardInterrupt


def test_resume_from_a_trainer_checkpoint(tmp_path):
    kw = dict(max_steps=6, save_strategy="steps", save_steps=3)
    ref = TrajectoryTrainerCallback(tmp_path / "ref.zarr", "r0", PARAMS)
    Trainer(model=tiny_bert(), args=args(tmp_path / "a", **kw), train_dataset=dataset(),
            callbacks=[ref]).train()

    path = tmp_path / "s.zarr"
    cb = TrajectoryTrainerCallback(path, "r0", PARAMS, chunk_steps=2, resume=True)
    with pytest.raises(KeyboardInterrupt):
        Trainer(model=tiny_bert(), args=args(tmp_path / "b", **kw), train_dataset=dataset(),
                callbacks=[cb, Interrupt(5)]).train()
    cb.close()  # after an exception the Trainer calls no callback: release the store
    with TrajectoryStore.open(path, "r") as st:
        assert st.run_info("r0")["finished"] is False
        assert list(st.steps("r0")) == [0, 1, 2, 3, 4]  # close() wrote the buffered step 4
    trainer = Trainer(model=tiny_bert(), args=args(tmp_path / "b", **kw), train_dataset=dataset(),
                      callbacks=[cb])
    trainer.train(resume_from_checkpoint=str(tmp_path / "b" / "hf" / "checkpoint-3"))
    with TrajectoryStore.open(path, "r") as st, TrajectoryStore.open(tmp_path / "ref.zarr",
                                                                     "r") as rs:
        np.testing.assert_array_equal(st.steps("r0"), np.arange(7))
        assert st.run_info("r0")["finished"] is True
        np.testing.assert_allclose(st.read(params=PARAMS), rs.read(params=PARAMS), rtol=0,
                                   atol=1e-6)
