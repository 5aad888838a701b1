"""The general parts the experiment modules call (issue 19, third pass): the planned-fit check
(analysis.fit_plan), every run's scalars (analysis.pipeline.run_scalars) and the per-epoch spectra
(analysis.windowed.epoch_spectra / epoch_section)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conjugacy import koopman_spectrum
from conjugacy.analysis import SpectrumGroup, group_runs
from conjugacy.analysis.demo import decay_store
from conjugacy.analysis.fit_plan import check_planned_rank, planned_fit
from conjugacy.analysis.pipeline import run_scalars
from conjugacy.analysis.windowed import epoch_section, epoch_spectra
from conjugacy.compare import wasserstein
from conjugacy.store import TrajectoryStore


def test_planned_fit_counts_observables_and_pairs() -> None:
    # the grokking quick scale: pca 10, 32 delays, 2 replicas, a 340-step window
    assert planned_fit(10, 32, 2, {"fig5": 340, "s6": 40}) == {
        "observables": 330, "snapshot_pairs": {"fig5": 616, "s6": 16},
        "determined": {"fig5": True, "s6": False}}


def test_planned_rank_bounds() -> None:
    windows = {"a": 10, "b": 20}  # 2 x (10 - 2) = 16 and 36 pairs; 3 x 3 = 9 observables
    check_planned_rank(9, 3, 2, 2, windows)  # at both bounds
    check_planned_rank("svht", 3, 2, 2, windows)  # a rule chooses within them
    check_planned_rank(None, 3, 2, 2, windows)
    with pytest.raises(ValueError, match=r"^rank=17 needs at least 17 snapshot pairs per "
                       r"spectrum, but the a window has reps=2 x \(steps=10 - delays=2\) = 16; "
                       r"fix it$"):
        check_planned_rank(17, 3, 2, 2, windows, names=("pca", "reps"), more_pairs="fix it")
    with pytest.raises(ValueError, match=r"^rank=10 exceeds the 9 observables \(pca=3 x "
                       r"\(delays=2 \+ 1\)\); lower it$"):
        check_planned_rank(10, 3, 2, 2, windows, more_observables="lower it")


class _Reader:
    """Two runs of 4 records; ``acc`` evaluated at records 0 and 3 only."""

    def steps(self, run: str) -> np.ndarray:
        return np.array([0, 5, 10, 15])

    def scalars(self, run: str, name: str) -> np.ndarray:
        base = {"r0": 0.0, "r1": 100.0}[run]
        if name == "acc":
            return np.array([base + 1, np.nan, np.nan, base + 4])
        return base + np.array([10.0, 11.0, 12.0, 13.0])


def test_run_scalars_stacks_runs_cuts_and_keeps_finite_records() -> None:
    out = run_scalars(_Reader(), ["r0", "r1"], ["loss"], stop=3)
    assert out["step"].tolist() == [0, 5, 10]
    assert out["loss"].tolist() == [[10.0, 11.0, 12.0], [110.0, 111.0, 112.0]]
    out = run_scalars(_Reader(), ["r1"], ["loss", "acc"], finite="acc")
    assert out["step"].tolist() == [0, 15]
    assert out["loss"].tolist() == [[110.0, 113.0]] and out["acc"].tolist() == [[101.0, 104.0]]


def test_epoch_spectra_fit_each_epochs_records(tmp_path: Path) -> None:
    with TrajectoryStore.open(decay_store(tmp_path / "runs.zarr"), "r") as store:
        groups = [SpectrumGroup(c, s, r) for (c, s), r in group_runs(store).items()][:2]
        spectra = epoch_spectra(store, groups, "w", 10, 3, delays=1, rank=2)
        # epoch 1 of group 1: records 10-19 of its runs, fitted directly
        x = store.read(params="w", runs=list(groups[1].runs), steps=slice(10, 20))
    direct = koopman_spectrum(x, delays=1, rank=2)
    assert [len(per) for per in spectra] == [3, 3]
    np.testing.assert_allclose(np.sort_complex(spectra[1][1].eigenvalues),
                               np.sort_complex(direct.eigenvalues), atol=1e-10)
    section = epoch_section(spectra)
    matrix = np.asarray(section["mean_matrix"])
    assert section["epochs"] == 3 and matrix.shape == (3, 3)
    expect = np.mean([wasserstein(per[0], per[2]) for per in spectra])
    assert matrix[0, 2] == pytest.approx(expect, rel=1e-12) and matrix[0, 2] > 0
