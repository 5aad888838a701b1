"""``conjugacy analyze``'s bounded default settings (analysis.own_runs): one rank per comparison,
the pilots' SVHT rank under a cap, recorded and shown; the notes where the defaults are weak."""

from __future__ import annotations

import numpy as np
import pytest

from conjugacy.analysis import SpectrumGroup, group_runs
from conjugacy.analysis.own_runs import RANK_CAP, pilot_rank

pytest.importorskip("zarr")

from conjugacy.store import TrajectoryStore  # noqa: E402


def _low_rank(rank: int, seed: int, n_features: int = 30) -> np.ndarray:
    """3 runs x 80 records of ``rank`` strong random directions in ``n_features`` channels."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((3, 80, rank)) * np.linspace(3, 1, rank)
    return z @ rng.standard_normal((rank, n_features)) + 0.05 * rng.standard_normal(
        (3, 80, n_features))


def test_pilot_rank_is_the_largest_svht_rank_under_the_cap():
    pilots = {"a": _low_rank(8, 0), "b": _low_rank(3, 1)}
    k, rule, notes = pilot_rank(pilots, delays=0)
    assert (k, rule["pilot_ranks"], rule["cap"], rule["capped"]) == (8, {"a": 8, "b": 3},
                                                                     RANK_CAP, False)
    assert rule["reason"] == ("rank 8: the largest SVHT rank of the conditions' pilot delay "
                              "matrices (a: 8, b: 3; first seed, at most 2400 snapshots, 0 "
                              "delays); one rank for every spectrum of the comparison")
    assert notes == []
    k, rule, _ = pilot_rank(pilots, delays=0, cap=5)
    assert (k, rule["capped"]) == (5, True) and ", capped at 5: larger ranks separated" in rule["reason"]
    k, rule, _ = pilot_rank(pilots, delays=0, cap=20, max_rank=6)  # the data's limit, no cap
    assert (k, rule["capped"]) == (6, False)
    assert "(a: 8, b: 3; first seed, at most 2400 snapshots, 0 delays), at most 6, what every " \
           "spectrum's data allow;" in rule["reason"]


def _store(path, make, n_seeds=3, n_runs=2, n_records=60):
    with TrajectoryStore.open(path, "w") as st:
        for cond in ("a", "b"):
            for s in range(n_seeds):
                for r in range(n_runs):
                    x = make(cond, np.random.default_rng([ord(cond), s, r]), n_records)
                    name = f"{cond}{s}_{r}"
                    st.create_run(name, {"w": ((x.shape[1],), "float64")},
                                  metadata={"condition": cond, "seed": s})
                    st.append(name, np.arange(n_records), {"w": x})
                    st.set_finished(name)
    return path


def _rich(cond, rng, n):
    """12 channels of 6 noisy directions moving at rates that differ between conditions."""
    rates = np.linspace(0.95, 0.5, 6) if cond == "a" else np.linspace(0.9, 0.3, 6)
    z = rng.standard_normal(6) * rates ** np.arange(n)[:, None]
    mix = np.random.default_rng(7).standard_normal((6, 12))
    return z @ mix + 1e-3 * rng.standard_normal((n, 12))


def test_analyze_default_rank_is_one_capped_rank_for_every_spectrum(tmp_path):
    import conjugacy

    store = _store(tmp_path / "s.zarr", _rich)
    res = conjugacy.analyze(store, neighbours=False, n_permutations=99)
    st = res.content["settings"]
    rule = st["rank_rule"]
    assert st["rank"] == max(rule["pilot_ranks"].values()) == 6 and not rule["capped"]
    assert [sp.rank for v in res.spectra.values() for sp in v] == [6] * 6
    assert res.content["settings_reasoning"]["rank"] == rule["reason"]
    capped = conjugacy.analyze(store, neighbours=False, n_permutations=99, rank=None)
    assert capped.content["settings"]["rank"] == 6
    given = conjugacy.analyze(store, neighbours=False, n_permutations=99, rank="svht")
    assert "rank_rule" not in given.content["settings"]  # a rule given: per spectrum, uncapped
    assert given.content["settings_reasoning"]["rank"] == "rank svht: given"


def _walk_and_noise(cond, rng, n):
    """3 channels: one random walk seen in all three, plus small independent noise; the
    conditions differ only in how fast the noise decays (invisible at rank 1)."""
    walk = np.cumsum(rng.standard_normal(n))[:, None] * np.ones(3)
    return walk + (0.05 if cond == "a" else 0.2) * rng.standard_normal((n, 3))


def test_analyze_notes_one_mode_and_no_delay_beating_persistence(tmp_path):
    import conjugacy

    store = _store(tmp_path / "w.zarr", _walk_and_noise, n_records=40)
    res = conjugacy.analyze(store, neighbours=False, n_permutations=99)
    st, warnings = res.content["settings"], res.content["warnings"]
    assert (st["delays"], st["rank"]) == (0, 1)
    one_mode = [w for w in warnings if w.startswith("the SVHT rank of every pilot is 1")]
    assert one_mode == ["the SVHT rank of every pilot is 1 (a: 1, b: 1): each spectrum keeps one "
                        "eigenvalue, so conditions that differ in any other mode look alike (a "
                        "'conjugate' verdict says little); with few recorded features give more "
                        "delays (--delays) or a fixed rank (--rank)"]
    persistence = [w for w in warnings if "better than persistence" in w]
    assert persistence and all(w.startswith(("delays of a: no number of delays",
                                             "delays of b: no number of delays"))
                               for w in persistence)


def test_windows_cut_a_rank_above_what_one_seeds_window_allows_with_a_note(tmp_path):
    """A default (or given) rank above a window's snapshot pairs made every window fit fail
    ('rank=27 exceeds what the data allow'); the windows now use at most the pairs."""
    import conjugacy

    store = _store(tmp_path / "s.zarr", _rich)
    res = conjugacy.analyze(store, delays=2, rank=30, window=10, neighbours=False,
                            n_permutations=9)
    assert ("windows use rank 14: the comparison's rank 30 is more than the 14 snapshot pairs "
            "of one seed's window") in res.content["warnings"]
    assert res.content["windows"]["delays"] == 2
    assert [len(e) for e in res.content["windows"]["conditions"]["a"]["eigenvalues"]] == [14] * 6


def test_pilot_rank_takes_the_cap_from_delay_folds_that_reach_it():
    """A delay fold (half a pilot's snapshots) whose SVHT rank reaches the cap settles the rank
    without factoring the pilots; below the cap the pilots decide as before."""
    pilots = {"a": _low_rank(8, 0), "b": _low_rank(3, 1)}
    k, rule, notes = pilot_rank(pilots, delays=0, cap=5, known={"a": 5, "b": 2})
    assert (k, rule["pilot_ranks"], rule["capped"], notes) == (5, {"a": 5, "b": 2}, True, [])
    assert rule["source"] == "delay folds (lower bounds)"
    assert rule["reason"].startswith("rank 5: the SVHT rank of the delay choice's held-out "
                                     "folds at 0 delays (half of each pilot's snapshots; a: 5, "
                                     "b: 2, at most 5) already reaches the cap")
    assert pilot_rank(pilots, delays=0, cap=5)[0] == 5  # what factoring the pilots gives
    assert pilot_rank(pilots, delays=0, cap=5, known={"a": 5}, max_rank=4)[0] == 4
    k, rule, _ = pilot_rank(pilots, delays=0, known={"a": 2, "b": 2})  # below the cap (70)
    assert (k, rule["pilot_ranks"], "source" in rule) == (8, {"a": 8, "b": 3}, False)


def test_pilot_delays_report_the_fold_ranks_at_the_chosen_delays():
    from conjugacy.analysis.own_runs import pilot_delays
    from conjugacy.delays import choose_delays

    rng = np.random.default_rng(0)
    z = np.zeros((4, 60, 2))
    z[:, 0] = rng.standard_normal((4, 2))
    rot = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]]) * 0.98
    for t in range(59):
        z[:, t + 1] = z[:, t] @ rot.T + 0.05 * rng.standard_normal((4, 2))
    folds = {}
    assert pilot_delays({"a": z[:, :, :1], "b": z}, fold_ranks=folds)[0] == 3
    assert folds == {"a": 2, "b": 2} == {c: choose_delays(x).ranks[3]
                                         for c, x in (("a", z[:, :, :1]), ("b", z))}
    folds = {}
    pilot_delays({"a": z[:, :, :1], "b": z}, fold_ranks=folds, max_rank=1)
    assert folds == {"a": 1, "b": 1}  # at most max_rank


def test_comparison_options_name_the_filter():
    from conjugacy.analysis.own_runs import DEFAULT_FILTER, comparison_options

    assert DEFAULT_FILTER == "none"
    assert comparison_options() == {"use_filter": False}
    assert comparison_options("per-spectrum") == {"use_filter": True,
                                                  "filter_rule": "per-spectrum"}
    with pytest.raises(ValueError, match="filter"):
        comparison_options("residual")


def test_analyze_compares_all_eigenvalues_by_default_and_filters_on_request(tmp_path, monkeypatch):
    import conjugacy
    from conjugacy.analysis import own_runs

    store = _store(tmp_path / "s.zarr", _rich)
    res = conjugacy.analyze(store, neighbours=False, n_permutations=99)
    cmp = res.content["comparison"]
    assert cmp["verdict_uses"] == "all" and cmp["filtered"] is None
    assert res.content["settings_reasoning"]["filter"].startswith(
        "all eigenvalues (no residual filter): at the capped rank")
    kept = conjugacy.analyze(store, neighbours=False, n_permutations=99, filter="per-spectrum")
    assert kept.content["comparison"]["verdict_uses"] == "filtered"
    assert kept.content["settings_reasoning"]["filter"] == "per-spectrum: given"
    with pytest.raises(ValueError, match="filter"):
        conjugacy.analyze(store, neighbours=False, filter="two-branch")
    # a cap the delay folds reach: the rank comes from them (6 directions, cap 4)
    monkeypatch.setattr(own_runs, "RANK_CAP", 4)
    capped = conjugacy.analyze(store, neighbours=False, n_permutations=99)
    rule = capped.content["settings"]["rank_rule"]
    assert (capped.content["settings"]["rank"], rule["capped"], rule["source"]) == (
        4, True, "delay folds (lower bounds)")


def test_cli_analyze_filter_option(tmp_path, monkeypatch):
    """`conjugacy analyze` compares all eigenvalues by default (the per-spectrum filter is then
    the other-filter neighbour);
    --filter asks for a residual filter; a wrong name is one line, exit 2."""
    import json

    from typer.testing import CliRunner

    from conjugacy.cli import app

    store = _store(tmp_path / "s.zarr", _rich)
    runner = CliRunner()
    got = runner.invoke(app, ["analyze", str(store), "--out", str(tmp_path / "o"), "--no-report",
                              "--delays", "0", "--rank", "4"])
    assert got.exit_code == 0, got.output
    cmp = json.loads((tmp_path / "o" / "results.json").read_text())["comparison"]
    assert cmp["verdict_uses"] == "all"
    assert [s["name"] for s in cmp["neighbourhood"]["settings"]] == [
        "rank -1", "rank +1", "other filter (per-spectrum)"]
    from conjugacy.analysis import own_runs

    monkeypatch.setattr(own_runs, "RANK_CAP", 4)  # the delay folds reach it: no pilot SVD
    got = runner.invoke(app, ["analyze", str(store), "--out", str(tmp_path / "o2"),
                              "--no-report", "--no-neighbours"])
    assert got.exit_code == 0, got.output
    assert ("rank 4 (SVHT of the delay folds (lower bounds of the pilots'): a 4, b 4; capped at "
            "4)") in " ".join(got.output.split())
    bad = runner.invoke(app, ["analyze", str(store), "--filter", "residual"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        "error: --filter must be one of none, per-spectrum, shared-count, got 'residual'"]


def test_analyze_estimates_the_work_first_and_reports_each_pilot_and_window(tmp_path):
    import conjugacy
    from conjugacy.analysis.own_runs import left_out_note

    store = _store(tmp_path / "s.zarr", _rich, n_records=61)  # 61 records: one in no window
    calls: list[tuple[str, int, int]] = []
    res = conjugacy.analyze(store, neighbours=False, n_permutations=99, window=20,
                            progress=lambda *a: calls.append(a))
    # the size of the work before any pilot, a message (total 0) said once: 6 spectra of 12
    # runs x 61 records x 12 float64 features (70,272 bytes), the pilots 2 runs x 61 records of
    # the first 3 seeds of a and of b (the delays'; the rank's are the first of them)
    assert calls[0] == (
        "6 spectra (2 conditions x 3 seeds) of 12 runs x 61 records x 12 features; to read: "
        "69 KiB (float64) for the fits and 69 KiB for the pilots", 0, 0)
    # one tick per pilot: 2 delay pilots and 2 rank pilots
    pilots = ("choosing the delays from the first 3 seeds and rank from the first seed of each "
              "of 2 conditions, pilot by pilot")
    assert [c[1:] for c in calls if c[0] == pilots] == [(0, 4), (1, 4), (2, 4), (3, 4),
                                                        (4, 4), (4, 4)]
    fits = [c for c in calls if c[0].startswith("fitting 6 spectra")]
    assert [c[1] for c in fits] == list(range(7)) and calls.index(fits[0]) > 5
    per_condition = [c[1:] for c in calls if c[0].startswith("windows of 20 records: each of 2")]
    assert per_condition == [(0, 2), (1, 2), (2, 2)]
    # the windows seed by seed: one tick per (condition, seed) group; then one per window of the
    # pairs' comparison (was one unit for both)
    assert [c[1:] for c in calls if "seed by seed" in c[0]] == [(i, 6) for i in range(7)]
    assert [c[1:] for c in calls if "1 pair of conditions compared in each of 3 windows"
            in c[0]] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    note = left_out_note(61, 20, range(61))
    assert note == ("record 60 of 61 (step 60) is in no window of 20 records (the windows cover "
                    "records 0-59, steps 0-59): not analysed")
    assert res.content["warnings"].count(note) == 1


def test_one_rule_says_which_runs_are_checkpoints():
    """Issue 19 (one implementation of each rule): analyze's grouping and checkpoint_runs used two
    rules (kind or checkpoints_of vs kind alone); both now call is_checkpoint_run."""
    from conjugacy.analysis.checkpoints import checkpoint_runs, is_checkpoint_run

    metas = {"a": {"kind": "checkpoints", "checkpoints_of": "r0"}, "b": {"checkpoints_of": "r1"},
             "c": {"kind": "trajectory"}, "d": {}}

    class Reader:
        def runs(self):
            return list(metas)

        def run_info(self, run):
            return {"metadata": metas[run]}

    assert [r for r, m in metas.items() if is_checkpoint_run(m)] == ["a", "b"]
    assert checkpoint_runs(Reader()) == {"a": "r0", "b": "r1"}


def test_attributed_warnings_name_their_spectra_once():
    """Issue 25 leftovers, item 3: rank warnings name the spectra they come from; one spectrum's
    is prefixed, several spectra's one aggregated line with the range of each differing number
    and 'in k of n spectra', at most NAMED_SPECTRA named."""
    from types import SimpleNamespace

    from conjugacy.analysis.own_runs import attributed_warnings

    msg = "rank=5 requested but the data have numerical rank {}; kept {} modes"
    zero = "the data are zero (no direction above the rank tolerance): empty spectrum, rank 0"
    notes = [[msg.format(k, k)] for k in (3, 4, 3, 2, 3, 3, 3)] + [[zero], [], ["not raised"]]
    sources = [(f"sgd seed {i}", SimpleNamespace(settings={"notes": n}))
               for i, n in enumerate(notes)]
    raised = [msg.format(k, k) for k in (2, 3, 4)] + [zero]
    lines, used = attributed_warnings(sources, raised)
    assert lines == [
        "rank=5 requested but the data have numerical rank 2-4; kept 2-4 modes: in 7 of 10 "
        "spectra (sgd seed 0, sgd seed 1, sgd seed 2, sgd seed 3, sgd seed 4, sgd seed 5, ...)",
        f"sgd seed 7: {zero}"]
    assert used == set(raised)


def _deficient(cond, rng, n):
    """``_rich``, but condition a's 12 channels span 2 directions exactly (numerical rank 2)."""
    x = _rich(cond, rng, n)
    if cond == "a":
        x[:, 2:] = x[:, :2] @ np.ones((2, 10)) / 2  # rank 2 exactly
    return x


def test_analyze_rank_warnings_name_condition_seed_and_window(tmp_path):
    """Issue 25 leftovers, item 3: "rank=3 requested but ... kept 2 modes" came once, naming no
    condition, seed or window, for 3 spectra and their windows; now one line per kind of
    spectra, with where it comes from, and no unattributed copy."""
    import conjugacy

    store = _store(tmp_path / "s.zarr", _deficient, n_records=40)
    res = conjugacy.analyze(store, neighbours=False, n_permutations=9, window=20, delays=0,
                            rank=3)
    w = res.content["warnings"]
    msg = ("rank=3 requested but the data have numerical rank 2 (singular values above tol * "
           "s_1); kept 2 modes")
    assert msg not in w
    assert f"{msg}: in 3 of 6 spectra (a seed 0, a seed 1, a seed 2)" in w
    assert (f"{msg}: in 6 of 12 window spectra (a seed 0 (window 0-19), a seed 0 (window "
            "20-39), a seed 1 (window 0-19), a seed 1 (window 20-39), a seed 2 (window 0-19), "
            "a seed 2 (window 20-39))") in w
    assert (f"{msg}: in 2 of 4 window spectra (seeds pooled) (a (window 0-19, seeds pooled), "
            "a (window 20-39, seeds pooled))") in w
    assert sum("numerical rank" in x for x in w) == 3


def test_pilot_rank_says_when_svht_met_zero_singular_values():
    """Issue 20 second review, defect 5: what SVHT did with zero singular values (constant
    channels here) was only in each spectrum's settings; analyze's notes now say it per pilot."""
    from conjugacy.analysis.own_runs import pilot_rank

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 60, 4))
    padded = np.concatenate([x, np.ones((3, 60, 30))], axis=2)
    k, rule, notes = pilot_rank({"a": padded}, delays=0, cap=70)
    said = [n for n in notes if n.startswith("the SVHT rank of a's pilot: ")]
    assert len(said) == 1 and "29 of 34 singular values are zero" in said[0]
    assert not [n for n in pilot_rank({"a": x}, delays=0, cap=70)[2]
                if n.startswith("the SVHT rank of a's pilot")]


def test_analyze_chooses_the_delays_on_the_first_three_seeds_of_each_condition(tmp_path):
    from conjugacy.analysis.demo import decay_store
    from conjugacy.analysis.own_runs import PILOT_SEEDS, pilot_delays, read_pilots
    from conjugacy.store import TrajectoryStore

    path = decay_store(tmp_path / "runs.zarr")  # 2 conditions x 4 seeds
    with TrajectoryStore.open(path, "r") as store:
        groups = [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]
        pilots = read_pilots(store, groups, "w")
        firsts = {c: [g for g in groups if g.condition == c][:PILOT_SEEDS] for c in pilots}
        for c, arrays in pilots.items():
            assert PILOT_SEEDS == len(arrays) == 3
            for a, g in zip(arrays, firsts[c]):
                np.testing.assert_array_equal(a, store.read(params="w", runs=list(g.runs)))
    d, why = pilot_delays(pilots)
    assert "mean over the first 3 seeds of each condition" in why
    assert pilot_delays({c: a[0] for c, a in pilots.items()})[1].count("(first seed of each") == 1


def test_pilots_name_each_conditions_seed_count_and_a_run_with_nan(tmp_path):
    from conjugacy.analysis.demo import decay_store
    from conjugacy.analysis.own_runs import pilot_delays, read_pilots, work_estimate

    path = decay_store(tmp_path / "runs.zarr")  # 2 conditions x 4 seeds
    with TrajectoryStore.open(path, "r") as store:
        groups = [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]
        pilots = read_pilots(store, groups, "w")
        assert [len(v) for v in read_pilots(store, groups, "w", 1).values()] == [1, 1]
        n = int(store.run_info(groups[0].runs[0])["n_complete"])
    c0, c1 = list(pilots)
    why = pilot_delays({c0: pilots[c0], c1: pilots[c1][:1]})[1]
    assert f"geometric mean over each condition's first seeds: {c0} 3, {c1} 1;" in why
    # the delays read 3 seeds' pilots (2 x 3 x 30 records x 100 float64), the rank alone 1
    assert "and 141 KiB for the pilots" in work_estimate(groups, n, 100, "float64")
    assert "and 47 KiB for the pilots" in work_estimate(groups, n, 100, "float64", pilot_seeds=1)
    bad = tmp_path / "nan.zarr"
    with TrajectoryStore.open(bad, "w") as st:
        for s in range(3):
            for r in range(2):
                x = np.cumsum(np.ones((20, 2)), axis=0)
                if (s, r) == (2, 1):
                    x[5, 0] = np.nan
                st.create_run(f"a_s{s}_r{r}", {"w": ((2,), "float64")},
                              metadata={"condition": "a", "seed": s})
                st.append(f"a_s{s}_r{r}", np.arange(20), {"w": x})
        groups = [SpectrumGroup("a", s, (f"a_s{s}_r0", f"a_s{s}_r1")) for s in range(3)]
        with pytest.raises(ValueError, match=r"run 'a_s2_r1' \(condition 'a', seed 2\) holds "
                                             "NaN or Inf in its first 20"):
            read_pilots(st, groups, "w")


def test_a_run_with_nan_outside_the_pilots_is_named(tmp_path):
    import conjugacy

    path = tmp_path / "nan.zarr"
    with TrajectoryStore.open(path, "w") as st:
        for c in ("a", "b"):
            for s in range(4):
                for r in range(2):
                    x = np.cumsum(np.random.default_rng([s, r]).standard_normal((20, 2)), axis=0)
                    if (c, s, r) == ("a", 3, 1):
                        x[7, 1] = np.nan  # seed 3: not a pilot (the first three are)
                    name = f"{c}_s{s}_r{r}"
                    st.create_run(name, {"w": ((2,), "float64")},
                                  metadata={"condition": c, "seed": s})
                    st.append(name, np.arange(20), {"w": x})
                    st.set_finished(name)
    for given in ({}, {"delays": 1, "rank": 2}):
        with pytest.raises(ValueError, match=r"run 'a_s3_r1' \(condition 'a', seed 3\) contains "
                                             r"NaN at record 7, feature 1"):
            conjugacy.analyze(path, neighbours=False, report=False, **given)


def test_analyze_cuts_the_lists_of_unfinished_and_left_out_runs_after_six(tmp_path):
    from conjugacy import analyze

    rng = np.random.default_rng(0)
    with TrajectoryStore.open(tmp_path / "runs.zarr", "w") as st:
        for i in range(15):  # 8 unfinished runs of 2 conditions x 4 seeds, 7 without a condition
            meta = {"seed": i % 4} | ({"condition": "ab"[i // 4]} if i < 8 else {})
            st.create_run(f"r{i:02d}", {"w": ((2,), "float64")}, metadata=meta)
            st.append(f"r{i:02d}", np.arange(12), {"w": rng.standard_normal((12, 2))})
    notes = analyze(tmp_path / "runs.zarr", delays=0, rank=1, neighbours=False)["warnings"]
    assert ("7 run(s) without metadata 'condition' left out: r08, r09, r10, r11, r12, r13, and "
            "1 more") in notes
    assert ("8 run(s) are not marked finished (training stopped or still running): r00, r01, "
            "r02, r03, r04, r05, and 2 more") in notes


def test_group_runs_reaches_nested_metadata_and_is_analyzes_grouping(tmp_path):
    """Issue 19: "group runs by metadata" written once. group_runs takes dotted keys into nested
    metadata (a literal dotted key first), keys a dict value by its JSON text, and puts the
    mixed-types sentences in ``notes`` when given; ``analyze`` groups through it."""
    import warnings

    from conjugacy import analyze
    from conjugacy.analysis.groups import metadata_value

    metas = {"a1": {"opt": {"name": "a"}, "seed": 1}, "a1b": {"opt": {"name": "a"}, "seed": "1"},
             "a2": {"opt": {"name": "a"}, "seed": 2}, "b1": {"opt": {"name": "b"}, "seed": 1},
             "b2": {"opt": {"name": "b"}, "seed": 2.0},
             "c1": {"opt.name": "c", "opt": {"name": "b"}, "seed": 1},
             "c2": {"opt.name": "c", "seed": 2},
             "d1": {"opt": {"name": {"lr": [1, 2]}}, "seed": 1}}
    rng = np.random.default_rng(3)
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for name, meta in metas.items():
            st.create_run(name, {"w": ((3,), "float64")}, metadata=meta)
            st.append(name, np.arange(12), {"w": rng.standard_normal((12, 3)).cumsum(0)})
        notes: list[str] = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # with notes=, nothing is warned
            groups = group_runs(st, by=("opt.name", "seed"), notes=notes)
        assert groups == {("a", 1): ["a1", "a1b"], ("a", 2): ["a2"], ("b", 1): ["b1"],
                          ("b", 2): ["b2"], ("c", 1): ["c1"], ("c", 2): ["c2"],
                          ('{"lr": [1, 2]}', 1): ["d1"]}
        assert notes == ["metadata 'seed' has values of mixed types ('1' as int, str; '2' as "
                         "float, int): compared as one value each"]
        with pytest.warns(UserWarning, match=r"'seed' has values of mixed types \('1' as int"):
            assert group_runs(st, by=("seed",), where=lambda m: metadata_value(
                m, "opt.name") == "a") == {(1,): ["a1", "a1b"], (2,): ["a2"]}
        with pytest.raises(KeyError, match=r"run 'c2' has no metadata \['opt.name.x'\]; it has "
                                           r"\['opt.name', 'seed'\]"):
            group_runs(st, by=("opt.name.x",), where=lambda m: "opt" not in m)
    assert metadata_value(metas["c1"], "opt.name") == "c"  # the literal key first
    assert metadata_value(metas["d1"], "opt.name.lr") == [1, 2]
    assert metadata_value(metas["a1"], "seed.x", "none") == "none"
    res = analyze(tmp_path / "s.zarr", group_by="opt.name", delays=0, rank=1, neighbours=False)
    assert res.results["seeds"] == {"a": [1], "b": [1], "c": [1], '{"lr": [1, 2]}': [1]}
    assert [r["run"] for r in res.results["runs"]] == ["a1", "a1b", "b1", "c1", "d1"]
    w = res.results["warnings"]
    assert notes[0] in w and "metadata 'opt.name' has values of mixed types" not in " ".join(w)
    assert ('conditions have different numbers of seeds (a: 2, b: 2, c: 2, {"lr": [1, 2]}: 1); '
            "the first 1 of each are compared") in w
