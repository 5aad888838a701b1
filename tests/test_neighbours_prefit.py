"""The base fits share one factorization with their rank neighbours, which the neighbour check
reuses instead of refitting (issue 19, the realistic store's cost)."""

import warnings

import numpy as np

from conjugacy import koopman_spectrum
from conjugacy.analysis import SpectrumGroup, fit_spectra, group_runs, run_pipeline
from conjugacy.analysis import neighbours as neighbours_module
from conjugacy.analysis.demo import decay_store
from conjugacy.store import TrajectoryStore

SETTINGS = {"delays": 2, "rank": 3}


def _groups(store):
    return [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]


def test_base_and_rank_neighbours_equal_the_fits_alone(tmp_path):
    path = decay_store(tmp_path / "runs.zarr")
    with TrajectoryStore.open(path, "r") as store:
        groups = _groups(store)
        found: dict = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shared = fit_spectra(store, groups, SETTINGS, params="w", neighbour_fits=found)
            alone = fit_spectra(store, groups, SETTINGS, params="w")
            g = groups[0]
            traj = store.read(params="w", runs=list(g.runs))
            refits = {r: koopman_spectrum(traj, delays=2, rank=r) for r in (2, 4)}
    assert sorted(found) == sorted(g.key for g in groups)
    for key, sp in alone.items():
        np.testing.assert_allclose(shared[key].eigenvalues, sp.eigenvalues, rtol=1e-10,
                                   atol=1e-12)
        assert sorted(found[key]) == [(2, 2), (2, 4)]  # rank x0.8 and x1.25 around 3
    for r, sp in refits.items():
        np.testing.assert_allclose(found[groups[0].key][(2, r)].eigenvalues, sp.eigenvalues,
                                   rtol=1e-10, atol=1e-12)


def test_neighbour_check_reuses_the_rank_neighbours(tmp_path, monkeypatch):
    path = decay_store(tmp_path / "runs.zarr")
    asked: list = []
    real = neighbours_module._group_fits

    def counting(x, kwargs, variants, next_states=None):
        asked.extend((v["delays"], v["rank"]) for v in variants)
        return real(x, kwargs, variants, next_states)

    def run(prefit: bool) -> dict:
        monkeypatch.setattr(neighbours_module, "_group_fits", counting)
        if not prefit:
            monkeypatch.setattr("conjugacy.analysis.groups._with_rank_neighbours",
                                lambda traj, kw, key, fits: koopman_spectrum(traj, **kw))
        with TrajectoryStore.open(path, "r") as store:
            res = run_pipeline(store, _groups(store), SETTINGS, params="w", experiment="toy",
                               stats={"seed": 0}, neighbours=True)
        return res["comparison"]["neighbourhood"]

    with_prefit = run(True)
    assert sorted(set(asked)) == [(1, 3), (4, 3)]  # the delay neighbours only
    assert len(asked) == 2 * 8  # 8 groups, 2 refits each (4 before)
    asked.clear()
    without = run(False)
    assert sorted(set(asked)) == [(1, 3), (2, 2), (2, 4), (4, 3)]
    assert len(asked) == 4 * 8
    assert with_prefit["n_fits"] == without["n_fits"] == 32
    assert (with_prefit["n_reused"], without["n_reused"]) == (16, 0)
    assert with_prefit["pairs"] == without["pairs"]


def test_a_rank_neighbour_beyond_the_numerical_rank_warns_nothing():
    """Issue 20 review, defect 2: the base fit shares its factorization with its rank
    neighbours; a neighbour's 'rank=4 requested but the data have numerical rank 3' reached
    the user, who asked for rank 3. The base fit's own warnings still do."""
    from conjugacy import RankWarning
    from conjugacy.analysis.groups import _with_rank_neighbours

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 1, 3)) * np.power([0.9, 0.7, 0.5], np.arange(30)[:, None])
         ) @ rng.standard_normal((3, 6))
    found: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        base = _with_rank_neighbours(x, {"delays": 0, "rank": 3}, ("a", 0), found)
    assert base.rank == 3 and (0, 4) in found[("a", 0)]
    assert not [w for w in caught if issubclass(w.category, RankWarning)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _with_rank_neighbours(x, {"delays": 0, "rank": 5}, ("a", 0), {})
    assert [str(w.message)[:19] for w in caught
            if issubclass(w.category, RankWarning)] == ["rank=5 requested bu"]
