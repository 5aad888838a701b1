"""Tests of windowed spectra and the transition finder (conjugacy.windows)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from conjugacy import distance_matrix, koopman_spectrum
from conjugacy.spectrum import spectrum_from_gram
from conjugacy.windows import find_transitions, plan_windows, windowed_spectra

A_EIGS = np.array([0.995 * np.exp(0.3j), 0.995 * np.exp(-0.3j), 0.99, 0.97])
B_EIGS = np.array([0.99 * np.exp(0.7j), 0.99 * np.exp(-0.7j), 0.985, 0.96])


def _real_block(eigs: np.ndarray) -> np.ndarray:
    z = eigs[0]
    rot = np.array([[z.real, -z.imag], [z.imag, z.real]])
    out = np.zeros((4, 4))
    out[:2, :2] = rot
    out[2, 2], out[3, 3] = eigs[2].real, eigs[3].real
    return out


def switching_system(switch: int, n_steps: int = 160, n_traj: int = 4, n_obs: int = 30, seed=0):
    """z' = A z before step ``switch``, z' = B z from it on; observed through a random matrix."""
    rng = np.random.default_rng(seed)
    P, Q = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    A = P @ _real_block(A_EIGS) @ np.linalg.inv(P)
    B = Q @ _real_block(B_EIGS) @ np.linalg.inv(Q)
    C = rng.standard_normal((n_obs, 4))
    out = np.empty((n_traj, n_steps, n_obs))
    for i in range(n_traj):
        z = rng.standard_normal(4)
        for t in range(n_steps):
            out[i, t] = C @ z
            z = (A if t + 1 < switch else B) @ z
    return out


def _sorted(e):
    return np.sort_complex(np.round(e, 10))


def _assert_same(spec, ref, tol=1e-12):
    """Every field of a windowed spectrum equals koopman_spectrum's on the slice."""
    assert spec.rank == ref.rank and spec.method == ref.method
    assert spec.residuals_informative == ref.residuals_informative
    scale = max(1.0, float(np.abs(ref.eigenvalues).max()))
    if ref.settings["path"] == "gram" and ref.rank:
        # Two Gram computations (summed in a different order) agree to the Gram path's own
        # accuracy, ~eps (s_1 / s_k)^2 (README, "Paths"); for well-conditioned data that is 1e-12.
        sv = ref.singular_values
        tol = max(tol, 100 * np.finfo(float).eps * (sv[0] / sv[ref.rank - 1]) ** 2)
    np.testing.assert_allclose(spec.eigenvalues, ref.eigenvalues, atol=tol * scale, rtol=0)
    # the Gram path resolves residuals to ~1e-8 ||B_k|| only (README); exact data have ~0 ones,
    # whose noise-level values depend on the order of the Gram's sums
    res_tol = 1e-6
    if ref.settings["path"] == "gram" and ref.rank:
        res_tol = max(res_tol, 1e-7 * float(ref.singular_values[0]))
    np.testing.assert_allclose(spec.residuals, ref.residuals, atol=res_tol, rtol=1e-6)
    np.testing.assert_allclose(spec.plain_residuals, ref.plain_residuals, atol=res_tol, rtol=1e-6)
    if ref.data_residuals is not None:
        np.testing.assert_allclose(spec.data_residuals, ref.data_residuals, atol=1e-6, rtol=1e-6)
    k = ref.rank
    np.testing.assert_allclose(
        spec.singular_values[:k], ref.singular_values[:k], rtol=1e-10, atol=0
    )
    if ref.modes is not None:
        # modes are eigenvectors: equal up to a unit phase per column (rounding picks the phase)
        inner = np.einsum("ij,ij->j", ref.modes.conj(), spec.modes)
        phase = np.where(np.abs(inner) > 0, inner / np.maximum(np.abs(inner), 1e-300), 1.0)
        np.testing.assert_allclose(
            spec.modes / phase, ref.modes, atol=1e-7 * np.abs(ref.modes).max()
        )
    settings = {key: v for key, v in spec.settings.items() if key != "window"}
    assert settings == ref.settings


# ----------------------------------------------------------------------------- plan
def test_plan_windows_disjoint_overlapping_and_ragged():
    w = plan_windows([10, 10], 4)
    assert [(x.start, x.stop, x.members) for x in w] == [(0, 4, (0, 1)), (4, 8, (0, 1))]
    w = plan_windows([10], 4, 3)
    assert [(x.start, x.stop) for x in w] == [(0, 4), (3, 7), (6, 10)]
    w = plan_windows([12, 8, 5], 4)
    assert [(x.start, x.members) for x in w] == [(0, (0, 1, 2)), (4, (0, 1)), (8, (0,))]
    assert [x.index for x in w] == [0, 1, 2]


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        (([10], 1), ValueError, "window"),
        (([10], 11), ValueError, "longer than every trajectory"),
        (([10], 4, 0), ValueError, "stride"),
        (([10], 4.5), (TypeError, ValueError), "window"),
    ],
)
def test_plan_windows_bad_input(args, exc, match):
    with pytest.raises(exc, match=match):
        plan_windows(*args)


# ----------------------------------------------------------------------------- equality
@pytest.mark.parametrize("stride", [None, 20, 7, 5])
@pytest.mark.parametrize("method", ["rrr", "exact", "standard"])
def test_each_window_equals_koopman_spectrum_on_its_slice(stride, method):
    x = switching_system(switch=80, n_steps=100, n_traj=3, n_obs=90)
    kw = dict(delays=2, rank=4, method=method)
    specs = windowed_spectra(x, 20, stride, **kw)
    assert len(specs) == (100 - 20) // (stride or 20) + 1
    paths = set()
    for s in specs:
        w = s.settings["window"]
        assert w["stop"] - w["start"] == 20 and w["trajectories"] == [0, 1, 2]
        _assert_same(s, koopman_spectrum(x[:, w["start"] : w["stop"]], **kw))
        paths.add(s.settings["path"])
    assert paths == {"gram"}  # 90 features >= 60 snapshots: the shared-Gram fast path


@pytest.mark.parametrize(
    "kw",
    [
        dict(delays=1, rank=4, path="dense"),
        dict(delays=1, rank=3, pca=5),
        dict(delays=1, rank=4, path="subspace"),
        dict(delays=3, rank=None),
        dict(delays=1, rank=4, scale=True, modes=False),
    ],
)
def test_other_paths_and_settings_equal_koopman_spectrum(kw):
    x = switching_system(switch=50, n_steps=80, n_traj=3, n_obs=40)
    for s in windowed_spectra(x, 20, 10, **kw):
        w = s.settings["window"]
        _assert_same(s, koopman_spectrum(x[:, w["start"] : w["stop"]], **kw))


def test_overlapping_windows_take_the_public_gram_route(monkeypatch):
    # windows after the first, overlapping, with the Gram path: spectrum_from_gram on the shared
    # Gram (no second copy of the Gram path); each still equals koopman_spectrum, which forms
    # its own Gram (the independent route)
    import conjugacy.windows as windows

    calls = []

    def counting(slices, gram, **kw):
        calls.append(gram.shape)
        return spectrum_from_gram(slices, gram, **kw)

    monkeypatch.setattr(windows, "spectrum_from_gram", counting)
    x = switching_system(switch=60, n_steps=100, n_traj=3, n_obs=90)
    specs = windowed_spectra(x, 20, 10, delays=2, rank=4)
    assert calls == [(60, 60)] * (len(specs) - 1)
    for s in specs:
        w = s.settings["window"]
        _assert_same(s, koopman_spectrum(x[:, w["start"] : w["stop"]], delays=2, rank=4))
    calls.clear()
    windowed_spectra(x, 20, delays=2, rank=4)  # disjoint windows: no shared Gram
    windowed_spectra(x, 20, 10, delays=2, rank=None)  # auto picks dense: no Gram
    assert calls == []


def test_windows_the_gram_cannot_resolve_are_recomputed_on_the_dense_path():
    # path="gram" with the tolerance rule on exact low-rank data: every window falls back to the
    # dense path, as koopman_spectrum does; the note's s_k/s_1 is read off the shared Gram
    # (noise, 1e-9 or so) and is the one number allowed to differ
    import re
    from dataclasses import replace

    number = re.compile(r"s_k/s_1 = [0-9.e+-]+ implies an error of ~[0-9.e+-]+")

    def without_numbers(spec):
        notes = [number.sub("", n) for n in spec.settings["notes"]]
        return replace(spec, settings={**spec.settings, "notes": notes})

    x = switching_system(switch=50, n_steps=80, n_traj=3, n_obs=40)
    kw = dict(delays=1, rank=None, path="gram")
    for s in windowed_spectra(x, 20, 10, **kw):
        w = s.settings["window"]
        ref = koopman_spectrum(x[:, w["start"] : w["stop"]], **kw)
        assert s.settings["path"] == ref.settings["path"] == "dense"
        assert any(number.search(n) for n in s.settings["notes"])
        _assert_same(without_numbers(s), without_numbers(ref))


def test_ragged_lists_single_trajectories_float32_and_complex():
    x = switching_system(switch=1000, n_steps=90, n_traj=3, n_obs=80)
    ragged = [x[0], x[1, :70], x[2, :45]]
    specs = windowed_spectra(ragged, 20, 5, delays=1, rank=4)
    assert len(specs) == (90 - 20) // 5 + 1
    for s in specs:
        w = s.settings["window"]
        members = w["trajectories"]
        assert members == [i for i, t in enumerate(ragged) if t.shape[0] >= w["stop"]]
        ref = koopman_spectrum([ragged[i][w["start"] : w["stop"]] for i in members], delays=1, rank=4)
        _assert_same(s, ref)
    # one trajectory as a 2-D array
    for s in windowed_spectra(x[0], 30, 10, delays=2, rank=4):
        w = s.settings["window"]
        _assert_same(s, koopman_spectrum(x[0, w["start"] : w["stop"]], delays=2, rank=4))
    # float32 input keeps its precision rule (input_eps) in every window
    x32 = x.astype(np.float32)
    for s in windowed_spectra(x32, 30, 15, delays=1, rank=4):
        w = s.settings["window"]
        _assert_same(s, koopman_spectrum(x32[:, w["start"] : w["stop"]], delays=1, rank=4))
    # complex data
    rng = np.random.default_rng(3)
    xc = x[:, :60] + 1j * rng.standard_normal((80,)) * x[:, :60]
    for s in windowed_spectra(xc, 20, 10, delays=1, rank=4):
        w = s.settings["window"]
        _assert_same(s, koopman_spectrum(xc[:, w["start"] : w["stop"]], delays=1, rank=4))


def test_store_reads_and_memory_maps(tmp_path):
    pytest.importorskip("zarr")
    from conjugacy.store import TrajectoryStore

    x = switching_system(switch=30, n_steps=60, n_traj=2, n_obs=6).astype(np.float32)
    with TrajectoryStore.open(tmp_path / "runs.zarr", "w") as st:
        for r in range(2):
            st.create_run(f"r{r}", {"w": ((2, 3), "float32")}, chunk_steps=16)
            st.append(f"r{r}", np.arange(60), {"w": x[r].reshape(60, 2, 3)})
    with TrajectoryStore.open(tmp_path / "runs.zarr", "r") as st:
        read = st.read("w")
    assert read.shape == (2, 60, 6) and read.dtype == np.float32
    np.save(tmp_path / "runs.npy", read)
    mapped = np.load(tmp_path / "runs.npy", mmap_mode="r")
    for data in (read, mapped):
        for s in windowed_spectra(data, 20, 10, delays=2, rank=4):
            w = s.settings["window"]
            _assert_same(s, koopman_spectrum(read[:, w["start"] : w["stop"]], delays=2, rank=4))


def test_bad_arguments_name_the_problem():
    x = switching_system(switch=50, n_steps=60, n_traj=2, n_obs=10)
    with pytest.raises(ValueError, match="too short for delays=8"):
        windowed_spectra(x, 9, delays=8)
    with pytest.raises(TypeError, match="unexpected keyword"):
        windowed_spectra(x, 20, delay=2)
    with pytest.raises(ValueError, match="stride"):
        windowed_spectra(x, 20, 0)
    with pytest.raises(ValueError, match=r"window 0 \(steps 0:20\).*rank=500"):
        windowed_spectra(x, 20, rank=500)
    with pytest.raises(ValueError, match="method"):
        windowed_spectra(x, 20, 5, method="nope")
    with pytest.raises(ValueError, match="NaN|finite"):
        windowed_spectra(np.full((2, 30, 3), np.nan), 10)


# ----------------------------------------------------------------------------- switching system
def test_switching_system_equal_inside_regimes_distinct_across_and_switch_found():
    # switch at step 80 = a window boundary: windows 0-3 see A, 4-7 see B
    x = switching_system(switch=80, n_steps=160)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact rank 4: no rank warning
        specs = windowed_spectra(x, 20, delays=1, rank=4)
    assert len(specs) == 8
    for i, s in enumerate(specs):
        truth = A_EIGS if i < 4 else B_EIGS
        np.testing.assert_allclose(_sorted(s.eigenvalues), _sorted(truth), atol=1e-9)
    d = distance_matrix(specs)
    inside = max(d[:4, :4].max(), d[4:, 4:].max())
    across = d[:4, 4:].min()
    assert inside < 1e-9 and across > 0.1
    tr = find_transitions(specs)
    assert tr.change_points.tolist() == [3]
    assert tr.classes.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert tr.settled_from == 4 and tr.segments() == [(0, 3), (4, 7)]
    assert tr.threshold == pytest.approx(1e-8) and "atol" in tr.rule
    summary = tr.as_dict()
    assert summary["change_points"] == [3] and summary["n_classes"] == 2


def test_switch_inside_overlapping_windows():
    # switch at step 65, windows of 20 every 5: pure-A windows start <= 45, pure-B start >= 65
    x = switching_system(switch=65, n_steps=120)
    specs = windowed_spectra(x, 20, 5, delays=1, rank=4)
    starts = [s.settings["window"]["start"] for s in specs]
    pure_a = [i for i, s in enumerate(starts) if s + 20 <= 65]
    pure_b = [i for i, s in enumerate(starts) if s >= 64]  # step 64 -> 65 is the first B step
    mixed = [i for i in range(len(specs)) if i not in pure_a + pure_b]
    assert pure_a == list(range(10)) and mixed == [10, 11, 12]
    tr = find_transitions(specs)
    labels = tr.classes.labels
    assert len(set(labels[pure_a])) == 1 and len(set(labels[pure_b])) == 1
    assert labels[pure_a[0]] != labels[pure_b[0]]
    assert tr.change_points.min() == pure_a[-1]
    assert tr.settled_from == pure_b[0]
    for i in pure_b:
        np.testing.assert_allclose(_sorted(specs[i].eigenvalues), _sorted(B_EIGS), atol=1e-8)


# ----------------------------------------------------------------------------- transition rule
def test_find_transitions_rules_on_a_matrix():
    # steps 5, 1, 0.1, 0.1, 0.1: median 0.1 -> threshold 0.2 -> changes after windows 0 and 1
    pos = np.cumsum([0.0, 5.0, 1.0, 0.1, 0.1, 0.1])
    d = np.abs(pos[:, None] - pos[None, :])
    tr = find_transitions(d)
    assert tr.threshold == pytest.approx(0.2)
    assert tr.change_points.tolist() == [0, 1] and tr.settled_from == 2
    assert tr.steps.tolist() == pytest.approx([5.0, 1.0, 0.1, 0.1, 0.1])
    assert tr.classes.labels.tolist() == [0, 1, 2, 2, 2, 2]
    tr = find_transitions(d, noise_floor=1.5)  # threshold 3: only the first step
    assert tr.threshold == 3.0 and tr.change_points.tolist() == [0]
    assert tr.classes.labels.tolist() == [0, 1, 1, 1, 1, 1]
    tr = find_transitions(d, threshold=0.05)
    assert tr.change_points.tolist() == [0, 1, 2, 3, 4] and tr.settled_from == 5
    tr = find_transitions(np.zeros((3, 3)))
    assert tr.change_points.size == 0 and tr.settled_from == 0 and tr.classes.n_classes == 1


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"threshold": 1.0, "noise_floor": 1.0}, ValueError, "at most one"),
        ({"threshold": -1.0}, ValueError, "threshold"),
        ({"factor": 0.0}, ValueError, "factor"),
        ({"noise_floor": "a"}, TypeError, "noise_floor"),
    ],
)
def test_find_transitions_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        find_transitions(np.zeros((3, 3)), **kwargs)
    with pytest.raises(ValueError, match="at least 2"):
        find_transitions(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="symmetric"):
        find_transitions(np.array([[0.0, 1.0], [2.0, 0.0]]))


def test_two_windows_warn_that_the_median_rule_cannot_fire():
    import warnings as _w

    from conjugacy import find_transitions

    d = np.array([[0.0, 1.0], [1.0, 0.0]])
    with pytest.warns(UserWarning, match="too few for the median rule"):
        res = find_transitions(d)
    assert len(res.change_points) == 0
    with _w.catch_warnings():
        _w.simplefilter("error")
        assert list(find_transitions(d, threshold=0.5).change_points) == [0]


def test_windowed_spectra_fit_no_modes_unless_asked():
    rng = np.random.default_rng(3)
    data = np.cumsum(rng.standard_normal((2, 60, 200)), axis=1)
    plain = windowed_spectra(data, 20, 10, delays=2, rank=3)
    assert all(s.modes is None for s in plain)
    asked = windowed_spectra(data, 20, 10, delays=2, rank=3, modes=True)
    assert all(s.modes is not None and s.modes.shape == (600, 3) for s in asked)
    for a, b in zip(plain, asked):
        np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=0, atol=1e-12)


def test_find_transitions_reads_a_nested_list_matrix_as_results_json_stores_it():
    """Issue 26: the distance matrix of results.json (nested lists, None for non-finite values)
    was read as one eigenvalue list per window (0 change points instead of 1)."""
    pos = np.cumsum([0.0, 5.0, 0.1, 0.1])
    d = np.abs(pos[:, None] - pos[None, :])
    expected = find_transitions(d)
    assert expected.change_points.tolist() == [0]
    for form in (d.tolist(), tuple(map(tuple, d.tolist())), json.loads(json.dumps(d.tolist()))):
        tr = find_transitions(form)
        assert tr.change_points.tolist() == [0] and tr.threshold == expected.threshold
        np.testing.assert_array_equal(tr.distance_matrix, d)
    with_null = d.tolist()
    with_null[0][3] = with_null[3][0] = None  # a non-finite distance, as JSON stores it
    with pytest.raises(ValueError, match=r"contains NaN at index \(0, 3\)"):
        find_transitions(with_null, threshold=1.0)
    # lists of eigenvalues (not square, or not a distance matrix) stay spectra
    spectra = [[0.9, 0.5], [0.9, 0.5], [0.2, 0.1]]
    assert find_transitions(spectra, threshold=0.3).change_points.tolist() == [1]
    square_spectra = [[0.9, 0.5], [0.2, 0.1]]  # 2 windows x 2 eigenvalues: diagonal not zero
    assert find_transitions(square_spectra, threshold=0.3).change_points.tolist() == [0]


def test_find_transitions_reads_a_list_of_array_rows_as_the_matrix():
    """Issue 26 review: ``find_transitions(list(D))`` (a list of ndarray rows) was read as one
    eigenvalue array per window: [] instead of [4]. Rows may be lists, tuples or real 1-D arrays;
    complex 1-D arrays stay eigenvalues."""
    pos = np.cumsum([0.0, 0.1, 0.1, 0.1, 0.1, 5.0, 0.1, 0.1])
    d = np.abs(pos[:, None] - pos[None, :])
    assert find_transitions(d).change_points.tolist() == [4]
    for form in (list(d), tuple(d), [tuple(r) for r in d], [list(r) for r in d],
                 [d[0].tolist(), *d[1:]]):
        tr = find_transitions(form)
        assert tr.change_points.tolist() == [4]
        np.testing.assert_array_equal(tr.distance_matrix, d)
    eigs = [np.array([0.9 + 0.1j, 0.9 - 0.1j]), np.array([0.9 + 0.1j, 0.9 - 0.1j]),
            np.array([0.2 + 0.0j, 0.1 + 0.0j])]  # complex rows: spectra, not a matrix
    assert find_transitions(eigs, threshold=0.3).change_points.tolist() == [1]
