"""`conjugacy analyze`, `conjugacy spectrum STORE` + `conjugacy test`: what a first user tried and
broke (recording intervals, markup in condition names, out-of-range options)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("typer")

from typer.testing import CliRunner  # noqa: E402

from conjugacy.cli import app  # noqa: E402
from conjugacy.store import TrajectoryStore  # noqa: E402

runner = CliRunner()
EIGS = np.array([0.9, 0.7, 0.5])


def _store(path, conditions, n_seeds=4, n_rep=2, n_rec=40, every=None):
    """Runs of one linear system (3 modes, 12 channels) per condition; ``every[c]`` is the
    recording interval of condition c."""
    rng = np.random.default_rng(0)
    c_mat = rng.standard_normal((12, 3))
    with TrajectoryStore.open(path, "w") as st:
        for cond in conditions:
            step = (every or {}).get(cond, 1)
            for s in range(n_seeds):
                for _r in range(n_rep):
                    name = f"{len(st.runs()):03d}"
                    z0 = rng.standard_normal(3)
                    x = (z0 * EIGS ** np.arange(n_rec)[:, None]) @ c_mat.T
                    x += 1e-3 * rng.standard_normal(x.shape)
                    st.create_run(name, {"w": ((12,), "float64")},
                                  metadata={"condition": cond, "seed": s})
                    st.append(name, np.arange(n_rec) * step, {"w": x})
                    st.set_finished(name)
    return path


def test_different_recording_intervals_are_compared_in_continuous_time(tmp_path):
    """Issue 23: b holds the same records as a, labelled every 5th step, so in continuous time
    it is a 5x slower process: W1 of log(lambda) vs log(lambda) / 5 is mean|log EIGS| * 4/5."""
    store = _store(tmp_path / "s.zarr", ["a", "b"], every={"b": 5})
    out = tmp_path / "out"
    got = runner.invoke(app, ["analyze", str(store), "--out", str(out), "--delays", "2",
                              "--rank", "3", "--filter", "per-spectrum"])
    assert got.exit_code == 0, got.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["comparison"]["time"] == "continuous"
    assert doc["comparison"]["settings_mismatch"] == []
    v = doc["comparison"]["verdicts"]["a-b"]
    assert v["verdict"] == "not conjugate" and v["reason"].startswith("p = ")
    np.testing.assert_allclose(doc["comparison"]["filtered"]["distances"]["a-b"]["per_seed"],
                               np.abs(np.log(EIGS)).mean() * 0.8, rtol=2e-3)
    said = " ".join(got.output.split())
    assert "a vs b: not conjugate." in said and "record_interval differs" not in said
    assert "recorded at different intervals (every 1, 5 steps)" in " ".join(doc["warnings"])
    assert not any("position by position" in n or "uneven" in n for n in doc["warnings"])
    md = (out / "report.md").read_text()
    assert "record_interval differs" not in md and "Too few seeds" not in md
    # the same runs through `conjugacy spectrum STORE` and `conjugacy test`
    specs = {}
    for cond, first in (("a", 0), ("b", 8)):
        specs[cond] = []
        for s in range(4):
            path = tmp_path / f"{cond}{s}.npz"
            runs = [f"{first + 2 * s:03d}", f"{first + 2 * s + 1:03d}"]
            args = ["spectrum", str(store), "--delays", "2", "--rank", "3", "--out", str(path)]
            for r in runs:
                args += ["--runs", r]
            got = runner.invoke(app, args)
            assert got.exit_code == 0, got.output
            specs[cond].append(str(path))
    args = ["test", *specs["a"]]
    for x in specs["b"]:
        args += ["--vs", x]
    got = runner.invoke(app, args)
    assert got.exit_code == 0, got.output
    assert "verdict: not conjugate (p = 0.0286 < alpha = 0.05)" in " ".join(got.output.split())
    for alpha in ("0", "1"):
        got = runner.invoke(app, [*args, "--alpha", alpha])
        assert got.exit_code == 2 and got.output == (
            f"error: Invalid value for '--alpha': must be in (0, 1), got '{alpha}' "
            "(see `conjugacy test --help`)\n")


def test_condition_names_are_not_rich_markup(tmp_path):
    store = _store(tmp_path / "m.zarr", ["[bold red]BOOM[/bold red]", "plain"], n_seeds=2)
    got = runner.invoke(app, ["analyze", str(store), "--out", str(tmp_path / "o"), "--delays", "1",
                              "--rank", "3", "--no-report"])
    assert got.exit_code == 0, got.output
    assert "[bold red]BOOM[/bold red] vs plain" in got.output


def test_options_out_of_range_get_one_line(tmp_path):
    store = _store(tmp_path / "s.zarr", ["a", "b"], n_seeds=2)
    got = runner.invoke(app, ["analyze", str(store), "--delays", "100", "--out",
                              str(tmp_path / "o")])
    assert got.exit_code == 2
    assert "delays=100 needs runs of at least 103 records" in " ".join(got.output.split())


def test_a_store_of_checkpoints_only_points_to_spectral_dynamics(tmp_path):
    with TrajectoryStore.open(tmp_path / "c.zarr", "w") as st:
        st.create_run("r.checkpoints", {"w1": ((4, 3), "float64")},
                      metadata={"kind": "checkpoints", "checkpoints_of": "r", "condition": "x",
                                "seed": 0})
        st.append("r.checkpoints", np.array([0, 5]), {"w1": np.ones((2, 4, 3))})
    got = runner.invoke(app, ["analyze", str(tmp_path / "c.zarr"), "--out", str(tmp_path / "o")])
    assert got.exit_code == 2
    assert "holds only checkpoint runs" in got.output and "spectral-dynamics" in got.output


def test_user_strings_are_escaped_in_report_md(tmp_path):
    store = _store(tmp_path / "h.zarr", ["<script>alert(1)</script>", "b\nc"], n_seeds=2)
    got = runner.invoke(app, ["analyze", str(store), "--out", str(tmp_path / "o"), "--delays", "1",
                              "--rank", "3"])
    assert got.exit_code == 0, got.output
    md = (tmp_path / "o" / "report.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "- **&lt;script&gt;alert(1)&lt;/script&gt; vs b c: undecided.**" in md
    html_text = (tmp_path / "o" / "report.html").read_text()
    assert "<script>alert(1)" not in html_text


def test_analyze_reports_progress_over_the_pilots_and_every_fit(tmp_path):
    import conjugacy

    store = _store(tmp_path / "p.zarr", ["a", "b"], n_seeds=3)
    calls = []
    conjugacy.analyze(store, n_permutations=9, neighbours=False,
                      progress=lambda *a: calls.append(a))
    # the estimate: a message (total 0), once, before the first stage (issue 25 leftovers: it
    # was the pilot stage's name, repeated on every pilot tick)
    assert calls[0][0].startswith("6 spectra (2 conditions x 3 seeds) of 12 runs x 40 records")
    assert calls[0][1:] == (0, 0) and sum("to read:" in c[0] for c in calls) == 1
    assert calls[1] == ("choosing the delays from the first 3 seeds and rank from the first seed of "
                        "each of 2 conditions, "
                        "pilot by pilot", 0, 4)
    fits = [c for c in calls if c[0].startswith("fitting")]
    assert fits[0][0].startswith("fitting 6 spectra (12 runs x 40 records x 12 features")
    assert re.search(r"delays \d+, rank \d+\)$", fits[0][0]), fits[0][0]
    assert [c[1:] for c in fits] == [(i, 6) for i in range(7)]


def _two_systems_store(path):
    """Conditions a and a2: one 3-mode system; b: another (eigenvalues 0.6, -0.5, 0.3); 4 seeds
    of 2 replicas each, 40 records, 12 channels, noise 1e-3."""
    rng = np.random.default_rng(1)
    c_mat = rng.standard_normal((12, 3))
    eigs = {"a": EIGS, "a2": EIGS, "b": np.array([0.6, -0.5, 0.3])}
    with TrajectoryStore.open(path, "w") as st:
        for cond, lam in eigs.items():
            for s in range(4):
                for _r in range(2):
                    name = f"{len(st.runs()):03d}"
                    x = (rng.standard_normal(3) * lam ** np.arange(40)[:, None]) @ c_mat.T
                    x += 1e-3 * rng.standard_normal(x.shape)
                    st.create_run(name, {"w": ((12,), "float64")},
                                  metadata={"condition": cond, "seed": s})
                    st.append(name, np.arange(40), {"w": x})
                    st.set_finished(name)
    return path


def test_analyze_defaults_svht_and_delays_from_data_with_the_neighbour_check(tmp_path):
    store = _two_systems_store(tmp_path / "n.zarr")
    got = runner.invoke(app, ["analyze", str(store), "--out", str(tmp_path / "o"),
                              "--no-report", "--filter", "per-spectrum"])
    assert got.exit_code == 0, got.output
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    # one rank for every spectrum: the pilots' SVHT rank, under the cap (analysis.own_runs)
    assert r["settings"]["rank"] == 3
    rule = r["settings"]["rank_rule"]
    assert (rule["rule"], rule["pilot_ranks"], rule["cap"], rule["capped"]) == (
        "svht pilot, capped", {"a": 3, "a2": 3, "b": 3}, 70, False)
    assert r["settings_reasoning"]["rank"] == rule["reason"]
    assert r["settings_reasoning"]["delays"].startswith(f"{r['settings']['delays']} delays: ")
    # 3 modes in 12 channels: fully observed (0 delays), SVHT keeps the 3 modes in every spectrum
    assert r["settings"]["delays"] == 0
    assert [sp["rank"] for v in r["spectra"].values() for sp in v] == [3] * 12
    nb = r["comparison"]["neighbourhood"]
    # no delay neighbours of 0 delays, said in not_tried; ranks x0.8 and x1.25 of 3: 2 and 4
    assert [s["name"] for s in nb["settings"]] == ["rank -1", "rank +1",
                                                   "other filter (all eigenvalues)"]
    assert [v["name"] for v in nb["not_tried"]] == ["delays x1/2", "delays x2"]
    assert nb["not_tried"][0]["reason"] == "not possible at 0 delays (a multiple of 0 is 0)"
    assert nb["n_fits"] == 2 * 12
    verdicts = r["comparison"]["verdicts"]
    assert verdicts["a-b"]["verdict"] == verdicts["a2-b"]["verdict"] == "not conjugate"
    # a and b differ at every neighbour (rank -2, i.e. 1, flagged a-b fragile: a 67 % cut)
    for pair in ("a-b", "a2-b"):
        assert (nb["pairs"][pair]["same"], nb["pairs"][pair]["fragile"]) == (3, False)
    # one rank more than the 3 modes: a noise eigenvalue splits a from a2 (p 0.029): fragile
    aa = nb["pairs"]["a-a2"]
    assert (aa["verdict"], aa["same"], aa["of"], aa["fragile"]) == ("conjugate", 2, 3, True)
    assert aa["neighbours"]["rank +1"]["verdict"] == "not conjugate"
    text = " ".join(got.output.split())
    assert ("neighbours a-a2: fragile, 2 of 3 neighbouring settings give conjugate" in text
            and "differs at rank +1" in text)
    assert "neighbours a-b: stable, 3 of 3" in text and "neighbours a2-b: stable, 3 of 3" in text
    assert "Not tried: delays x1/2, delays x2 (not possible at 0 delays" in text
    assert "rank 3 (SVHT of the pilots: a 3, a2 3, b 3; cap 70)" in text
    off = runner.invoke(app, ["analyze", str(store), "--out", str(tmp_path / "o2"),
                              "--no-report", "--no-neighbours", "--rank", "3", "--delays", "1"])
    assert off.exit_code == 0, off.output
    r2 = json.loads((tmp_path / "o2" / "results.json").read_text())
    assert "neighbourhood" not in r2["comparison"] and r2["settings"]["rank"] == 3
    bad = runner.invoke(app, ["analyze", str(store), "--rank", "svhtt"])
    assert bad.exit_code == 2 and "--rank must be a positive integer or 'svht'" in bad.output


def test_unevenly_spaced_records_are_noted():
    """DMD assumes equal steps: runs recorded at uneven intervals get a note naming the gaps."""
    from conjugacy.analysis.own_runs import _step_notes

    even, uneven = np.arange(10) * 2, np.r_[0, 1, 2, 4, 8, 9, 10, 11, 12, 13]
    two = {"a": {0: ["a"]}, "b": {0: ["b"]}}  # conditions a and b, one run each
    assert _step_notes({"a": even, "b": even}, two) == []
    notes = _step_notes({"a": even, "b": uneven}, two)
    assert any("1 run(s) were recorded at uneven intervals (e.g. 'b': 1 to 4 steps apart)" in n
               for n in notes)
    assert any("different intervals (every 1, 2 steps)" in n for n in notes)  # medians 2 and 1


def test_time_option_chooses_how_spectra_are_compared(tmp_path):
    """--time discrete compares eigenvalues: the differing interval (1 vs 5 steps) then makes
    the verdict undecided, and the note says so; a wrong --time gets one line."""
    store = _store(tmp_path / "s.zarr", ["a", "b"], n_seeds=2, every={"b": 5})
    out = tmp_path / "o"
    got = runner.invoke(app, ["analyze", str(store), "--out", str(out), "--delays", "1",
                              "--rank", "3", "--no-report", "--no-neighbours", "--time",
                              "discrete"])
    assert got.exit_code == 0, got.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["comparison"]["time"] == "discrete"
    assert doc["statistics"]["time"] == "discrete"
    assert doc["comparison"]["verdicts"]["a-b"]["verdict"] == "undecided"
    assert "record_interval" in doc["comparison"]["verdicts"]["a-b"]["reason"]
    notes = " ".join(doc["warnings"])
    assert "time='discrete' compares their eigenvalues as they are" in notes
    assert "continuous time" not in notes
    got = runner.invoke(app, ["analyze", str(store), "--out", str(out), "--time", "steps"])
    assert got.exit_code == 2
    assert got.output.strip() == ("error: --time must be one of auto, discrete, continuous, "
                                  "got 'steps'")


def _narrow_store(path, n_features=3, n_rec=30, branch=False):
    """Runs of 3 slow modes seen through ``n_features`` channels (process noise 0.05), 3
    conditions (a and b one system) x 4 seeds x 2 replicas; with ``branch`` a second next state
    of every record."""
    rng = np.random.default_rng(5)
    c_mat = rng.standard_normal((n_features, 3))
    eigs = {"a": [0.95, 0.8, 0.6], "b": [0.95, 0.8, 0.6], "c": [0.9, 0.4, -0.7]}
    with TrajectoryStore.open(path, "w") as st:
        for cond, lam in eigs.items():
            for seed in range(4):
                for rep in range(2):
                    z, zn = np.zeros((n_rec, 3)), np.zeros((n_rec, 3))
                    z[0] = rng.standard_normal(3)
                    for t in range(n_rec):
                        zn[t] = z[t] * lam + 0.05 * rng.standard_normal(3)
                        if t + 1 < n_rec:
                            z[t + 1] = z[t] * lam + 0.05 * rng.standard_normal(3)
                    x = z @ c_mat.T + 1e-3 * rng.standard_normal((n_rec, n_features))
                    xn = zn @ c_mat.T + 1e-3 * rng.standard_normal((n_rec, n_features))
                    name = f"{cond}{seed}_{rep}"
                    st.create_run(name, {"w": ((n_features,), "float64")},
                                  metadata={"condition": cond, "seed": seed}, next_states=branch)
                    st.append(name, np.arange(n_rec), {"w": x},
                              **({"next_states": {"w": xn}} if branch else {}))
                    st.set_finished(name)
    return path


def test_rank_neighbours_stay_within_what_the_data_allow(tmp_path):
    # 3 channels, rank 3, 0 delays: a rank neighbour above 3 exceeded the 3 observables and
    # stopped analyze; clipped it is the base rank 3 again, so it is no neighbour (not_tried)
    store = _narrow_store(tmp_path / "n.zarr")
    got = runner.invoke(app, ["analyze", str(store), "--out", str(tmp_path / "o"), "--rank", "3",
                              "--delays", "0", "--no-report", "--filter", "per-spectrum"])
    assert got.exit_code == 0, got.output
    nb = json.loads((tmp_path / "o" / "results.json").read_text())["comparison"]["neighbourhood"]
    assert nb["settings"] == [{"name": "rank -1", "delays": 0, "rank": 2},
                              {"name": "other filter (all eigenvalues)"}]
    assert nb["not_tried"][-1] == {"name": "rank +1",
                                   "reason": "rank 4: beyond the 3 the data allow at 0 delays"}
    assert nb["pairs"]["a-c"]["of"] == 2 and nb["n_fits"] == 12


def test_a_filter_that_keeps_nothing_leaves_that_pair_undecided(tmp_path):
    # 40 channels, 2 delays, two-branch residuals: the filter keeps no eigenpair of c seed 2;
    # analyze stopped ("b is empty"); now a-c and b-c are undecided naming it, a-b is compared
    store = _narrow_store(tmp_path / "e.zarr", n_features=40, n_rec=40, branch=True)
    got = runner.invoke(app, ["analyze", str(store), "--out", str(tmp_path / "o"), "--delays",
                              "2", "--no-report", "--no-neighbours", "--filter", "per-spectrum"])
    assert got.exit_code == 0, got.output
    cmp = json.loads((tmp_path / "o" / "results.json").read_text())["comparison"]
    assert cmp["filter"]["kept"] == {"a": [2, 5, 7, 6], "b": [5, 5, 2, 7], "c": [6, 7, 0, 9]}
    assert cmp["filter"]["kept_nothing"] == {"c": ["c seed 2"]}
    assert cmp["filtered"]["kept_nothing"] == {"a-c": ["c seed 2"], "b-c": ["c seed 2"]}
    for pair in ("a-c", "b-c"):
        v = cmp["verdicts"][pair]
        assert (v["verdict"], v["uses"], v["pvalue"]) == ("undecided", "filtered", None)
        assert v["reason"].startswith("the residual filter kept no eigenpair of c seed 2: ")
        assert cmp["filtered"]["permutation_tests"][pair] is None
        assert pair not in cmp["filtered"]["distances"]
        assert len(cmp["all"]["distances"][pair]["per_seed"]) == 4  # all eigenvalues: compared
    assert cmp["verdicts"]["a-b"]["verdict"] == "conjugate"
    assert list(cmp["filtered"]["distances"]) == ["a-b"]
    assert "equivalence_classes" not in cmp["filtered"] and "equivalence_classes" in cmp["all"]
    assert "kept no eigenpair of c seed 2" in " ".join(got.output.split())


def test_console_names_conditions_says_when_they_differ_and_what_no_window_holds(tmp_path,
                                                                                 monkeypatch):
    """Issue 25 review items 4, 5, 6, 9 on the console: --group-by optimizer conditions are
    shown by the report's short names (never the JSON label), the window comparison's 'differ
    from step' sentence is printed as the report has it, the record no window of 10 holds (the
    41st) is named, and progress without a terminal is plain lines on stderr."""
    from conjugacy.report._content import differ_sentence, short_names

    rng = np.random.default_rng(1)
    c_mat = rng.standard_normal((12, 3))
    opts = {"a": {"class": "SGD", "lr": 0.1, "momentum": 0.9, "nesterov": False, "pad": "x" * 30},
            "a2": {"class": "SGD", "lr": 0.05, "momentum": 0.9, "nesterov": False, "pad": "x" * 30},
            "b": {"class": "Adam", "lr": 0.1, "betas": [0.9, 0.999], "pad": "x" * 30}}
    eigs = {"a": EIGS, "a2": EIGS, "b": np.array([0.6, -0.5, 0.3])}
    with TrajectoryStore.open(tmp_path / "g.zarr", "w") as st:
        for cond, lam in eigs.items():
            for s in range(4):
                name = f"{len(st.runs()):03d}"
                x = (rng.standard_normal(3) * lam ** np.arange(41)[:, None]) @ c_mat.T
                x += 1e-3 * rng.standard_normal(x.shape)
                st.create_run(name, {"w": ((12,), "float64")},
                              metadata={"optimizer": opts[cond], "seed": s})
                st.append(name, np.arange(41), {"w": x})
                st.set_finished(name)
    from conjugacy.cli import analyze as analyze_cli

    monkeypatch.setattr(analyze_cli._Progress, "PLAIN_AFTER", 0.0)  # lines from the start
    got = runner.invoke(app, ["analyze", str(tmp_path / "g.zarr"), "--group-by", "optimizer",
                              "--out", str(tmp_path / "o"), "--no-report", "--no-neighbours",
                              "--rank", "3", "--delays", "0", "--window", "10"])
    assert got.exit_code == 0, got.output
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    names = short_names(r)
    assert sorted(names.values()) == ["class=Adam, lr=0.1", "class=SGD, lr=0.05",
                                      "class=SGD, lr=0.1"]
    out = " ".join(got.stdout.split())
    assert '"class"' not in out and "pad" not in out
    pairs = r["windows"]["between_conditions"]["pairs"]
    for entry in pairs.values():
        assert f"- {differ_sentence(entry, names)}" in out
    assert any(e["differ_from_step"] is not None for e in pairs.values())
    assert "differ from step" in out
    assert ("record 40 of 41 (step 40) is in no window of 10 records (the windows cover "
            "records 0-39, steps 0-39): not analysed" in out)
    err = got.stderr.splitlines()
    assert any(line.endswith("choosing the rank from one seed of each of 3 conditions: started "
                             "(1 to do)") or "fitting 12 spectra" in line for line in err), err
    fit = [line for line in err if "fitting 12 spectra" in line]
    assert fit[0].endswith("started (12 to do)") and re.search(r": done in \d+\.\d s$", fit[-1])
    assert 3 <= len(fit) <= 12  # a line per tenth at most, not one per fit
    monkeypatch.setattr(analyze_cli._Progress, "PLAIN_AFTER", 60.0)  # a quick run: no lines
    got = runner.invoke(app, ["analyze", str(tmp_path / "g.zarr"), "--group-by", "optimizer",
                              "--out", str(tmp_path / "o"), "--no-report", "--no-neighbours",
                              "--rank", "3", "--delays", "0"])
    # a quick run: the work estimate (always, before the first stage), no stage lines
    assert got.exit_code == 0 and len(got.stderr.splitlines()) == 1, got.stderr
    assert re.fullmatch(r"\[ *\d+\.\d s\] 12 spectra \(3 conditions x 4 seeds\) of 12 runs x 41 "
                        r"records x 12 features; to read: .* for the fits\n", got.stderr)


def test_a_window_longer_than_the_runs_is_a_warning_not_a_traceback(tmp_path):
    """Issue 25 second review, defect 1: --window 60 on runs of 40 records finished the analysis,
    then crashed in the console's left-out note (exit 1 with a traceback); now exit 0, no
    windowed analysis, and no note about records 'in no window'."""
    path = _store(tmp_path / "s.zarr", ("a", "b"), n_seeds=3, n_rec=40)
    got = runner.invoke(app, ["analyze", str(path), "--out", str(tmp_path / "o"), "--no-report",
                              "--no-neighbours", "--rank", "3", "--delays", "0",
                              "--window", "60"])
    assert got.exit_code == 0, got.output
    assert "Traceback" not in got.output and "in no window" not in got.output
    assert (tmp_path / "o" / "results.json").exists()


def test_plain_progress_counts_window_pairs_and_writing_and_says_the_estimate_once(
        tmp_path, monkeypatch):
    """Issue 25 leftovers, item 1: without a terminal the estimate is one line before the first
    stage (it was repeated on each pilot tick, and lost when the first stage ended within
    PLAIN_AFTER); the window pairs count their windows (were one unit); writing the results
    and the report has its own stage (had no line)."""
    from conjugacy.cli import analyze as analyze_cli

    path = _store(tmp_path / "s.zarr", ("a", "b"), n_seeds=3, n_rec=41)
    monkeypatch.setattr(analyze_cli._Progress, "PLAIN_AFTER", 0.0)
    got = runner.invoke(app, ["analyze", str(path), "--out", str(tmp_path / "o"),
                              "--no-neighbours", "--window", "10"])
    assert got.exit_code == 0, got.output
    err = [re.sub(r"done in \d+\.\d s$", "done", re.sub(r"^\[ *\d+\.\d s\] ", "", line))
           for line in got.stderr.splitlines()]
    assert re.search(r"^\[ *\d+\.\d s\] writing .*: done in \d+\.\d s$", got.stderr, re.M)
    assert err[0].startswith("6 spectra (2 conditions x 3 seeds) of 12 runs x 41 records")
    assert sum("to read:" in line for line in err) == 1
    assert err[1] == ("choosing the delays from the first 3 seeds and rank from the first seed of "
                      "each of 2 conditions, pilot by pilot: started (4 to do)")
    seeds = "windows of 10 records, seed by seed: fitting the windows of each of 6 " \
            "(condition, seed) groups"
    assert [line for line in err if line.startswith(seeds)] == [
        f"{seeds}: started (6 to do)", *[f"{seeds}: {i}/6" for i in range(1, 6)],
        f"{seeds}: done"]
    pairs = "windows of 10 records: 1 pair of conditions compared in each of 4 windows"
    assert [line for line in err if line.startswith(pairs)] == [
        f"{pairs}: started (4 to do)", f"{pairs}: 1/4", f"{pairs}: 2/4", f"{pairs}: 3/4",
        f"{pairs}: done"]
    writing = f"writing results.json and the report to {tmp_path / 'o'}"
    assert err[-2:] == [f"{writing}: started (1 to do)", f"{writing}: done"]


def test_left_out_records_are_named_in_records_and_steps(tmp_path):
    """Issue 25 leftovers, item 2: --window counts records; the note on the records no window
    holds said 'windows cover 0-39' (records) while the window labels are training steps
    (recorded every 10 steps: 0-90, ...). It now says both units."""
    path = _store(tmp_path / "s.zarr", ("a", "b"), n_seeds=3, n_rec=41, every={"a": 10, "b": 10})
    got = runner.invoke(app, ["analyze", str(path), "--out", str(tmp_path / "o"), "--no-report",
                              "--no-neighbours", "--rank", "3", "--delays", "0", "--window", "10"])
    assert got.exit_code == 0, got.output
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    note = ("record 40 of 41 (step 400) is in no window of 10 records (the windows cover "
            "records 0-39, steps 0-390): not analysed")
    assert r["warnings"].count(note) == 1 and sum("in no window" in w for w in r["warnings"]) == 1
    assert r["windows"]["between_conditions"]["labels"] == ["0-90", "100-190", "200-290",
                                                            "300-390"]
    assert " ".join(got.stdout.split()).count(note) == 1


def test_terminal_progress_shows_the_estimate_once_and_a_bar_per_stage(monkeypatch):
    """Issue 25 leftovers, item 1, on a terminal: the estimate (total 0) is printed once and
    stays (it was the pilot bar's text); each stage, the window pairs' too, is a bar counting
    its units."""
    import io

    from conjugacy.cli import analyze as analyze_cli
    from conjugacy.cli._errors import rich_console

    buf = io.StringIO()
    console = rich_console(file=buf, force_terminal=True, width=200)  # the CLI's settings
    monkeypatch.setattr(analyze_cli, "rich_console", lambda **_kw: console)
    with analyze_cli._Progress() as progress:
        progress("6 spectra [b]of[/b] 12 runs; to read: 1 KiB", 0, 0)
        progress("pairs compared in each of 4 windows", 0, 4)
        progress("pairs compared in each of 4 windows", 3, 4)
        bar = progress._bar.tasks[0]
        assert (bar.description, bar.completed, bar.total) == (
            "pairs compared in each of 4 windows", 3, 4)
        assert len(progress._bar.tasks) == 1  # the estimate is no bar
    assert buf.getvalue().count("6 spectra [b]of[/b] 12 runs; to read: 1 KiB") == 1


def test_plain_progress_stamps_a_stage_with_its_start(monkeypatch):
    """A stage begun before plain lines start (PLAIN_AFTER) is printed, when they do, stamped
    with the second it began, not the second of its next tick (the pilots read 4 s at 1.4 s
    were shown 'started' at 5.6 s), and its end with its time."""
    import io

    from conjugacy.cli import analyze as analyze_cli
    from conjugacy.cli._errors import rich_console

    buf, now = io.StringIO(), [0.0]
    console = rich_console(file=buf, force_terminal=False, width=200)
    monkeypatch.setattr(analyze_cli, "rich_console", lambda **_kw: console)
    with analyze_cli._Progress() as progress:
        progress._t0, progress._clock = 0.0, lambda: now[0]
        now[0] = 1.0
        progress("pilots", 0, 2)
        now[0] = 5.0
        progress("pilots", 1, 2)
        now[0] = 6.5
        progress("pilots", 2, 2)
    assert buf.getvalue().splitlines() == ["[   1.0 s] pilots: started (2 to do)",
                                           "[   5.0 s] pilots: 1/2",
                                           "[   6.5 s] pilots: done in 5.5 s"]


def test_progress_lines_escape_the_control_characters_of_a_stage(monkeypatch):
    """A stage names the output folder (the user's): its control characters are shown escaped
    in the plain lines and in a terminal's held message, never sent raw (a slow analysis of the
    hostile-label test printed the folder's ESC once the plain lines had started)."""
    import io

    from conjugacy.cli import analyze as analyze_cli
    from conjugacy.cli._errors import rich_console

    for terminal in (False, True):
        buf = io.StringIO()
        console = rich_console(file=buf, force_terminal=terminal, width=300)
        monkeypatch.setattr(analyze_cli, "rich_console", lambda c=console, **_kw: c)
        monkeypatch.setattr(analyze_cli._Progress, "PLAIN_AFTER", 0.0)
        with analyze_cli._Progress() as progress:
            progress("estimate for out\x1b]0;T\x07", 0, 0)
            progress("writing to out\x1b[31m", 0, 1)
            progress("writing to out\x1b[31m", 1, 1)
        text = buf.getvalue()
        assert "out\\x1b]0;T\\x07" in text, text
        if not terminal:
            assert "writing to out\\x1b[31m: done in" in text, text
            assert "\x1b" not in text and "\x07" not in text, text


def test_input_refused_before_any_work_is_one_line_without_the_estimate(tmp_path):
    """The estimate waits for the first unit of work: a rank the data cannot give (found when
    the first spectrum is fitted) and replicas recorded at different intervals (now refused
    before the estimate) stay one error line; a (quick) run that works prints the estimate
    once."""
    path = _store(tmp_path / "s.zarr", ("a", "b"), n_seeds=3)
    args = ["analyze", str(path), "--out", str(tmp_path / "o"), "--no-report", "--no-neighbours",
            "--delays", "0"]
    bad = runner.invoke(app, [*args, "--rank", "13"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1, bad.output
    assert "rank=13 exceeds what the data allow" in bad.output
    good = runner.invoke(app, [*args, "--rank", "3"])
    assert good.exit_code == 0 and good.stderr.count("to read:") == 1, good.stderr
    assert "to read:" in good.stderr.splitlines()[0]
    mixed = _store(tmp_path / "m.zarr", ("a", "b"), n_seeds=3, n_rec=40)
    with TrajectoryStore.open(mixed, "a") as st:  # a replica of (a, seed 0) every 5 steps
        st.create_run("late", {"w": ((12,), "float64")}, metadata={"condition": "a", "seed": 0})
        st.append("late", np.arange(40) * 5, {"w": np.ones((40, 12))})
        st.set_finished("late")
    bad = runner.invoke(app, [*args[:1], str(mixed), *args[2:], "--rank", "3"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1, bad.output
    assert "recorded at different intervals" in bad.output
    import conjugacy  # refused before the estimate and any work (was: after the pilots)

    calls = []
    with pytest.raises(ValueError, match="recorded at different intervals"):
        conjugacy.analyze(mixed, progress=lambda *a: calls.append(a))
    assert calls == []


def test_the_cli_console_does_not_colour_user_strings():
    """rich_console: highlighting off, so numbers, paths and quotes in a label are shown as
    written, in no colour of Rich's guessing (markup the CLI writes itself still styles)."""
    import io

    from conjugacy.cli._errors import rich_console

    buf = io.StringIO()
    console = rich_console(file=buf, force_terminal=True, width=200)
    console.print("lr=0.1 at step 160 in /tmp/runs.zarr 'sgd' :smile:")
    assert buf.getvalue() == "lr=0.1 at step 160 in /tmp/runs.zarr 'sgd' :smile:\n"
    console.print("[red]error:[/red] x")
    assert "\x1b[31merror:\x1b[0m x" in buf.getvalue()
