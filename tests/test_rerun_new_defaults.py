"""benchmarks/rerun_new_defaults.py: its pilots are what ``conjugacy analyze`` passes (the first
``own_runs.PILOT_SEEDS`` groups of each condition, one array each), and its refusals."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conjugacy.analysis import own_runs
from conjugacy.experiments import optimizers as opt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
rerun = pytest.importorskip("rerun_new_defaults")


@pytest.fixture(scope="module")
def opt_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("opt")
    opt.run(opt.OptimizerConfig(n_steps=30, n_shuffles=20, n_permutations=50, seed=3), out=out)
    return out


def test_optimizer_pilots_are_the_first_three_groups(opt_folder, monkeypatch):
    seen = {}
    real = rerun.pilot_delays

    def spy(pilots, **kw):
        seen.update(pilots)
        return real(pilots, **kw)

    monkeypatch.setattr(rerun, "pilot_delays", spy)
    paper = json.loads((opt_folder / "results.json").read_text())
    content, _ = rerun.rerun_optimizers(opt_folder, paper)
    idx = opt.initial_condition_groups(paper["config"]["n_groups"])
    with np.load(opt_folder / "trajectories.npz") as npz:
        traj = {m: npz[m] for m in ("omd", "ogd", "bm")}
    assert own_runs.PILOT_SEEDS == 3 and sorted(seen) == ["bm", "ogd", "omd"]
    for m, per_group in seen.items():
        # one array per group (5 runs each), groups 0, 1, 2 of the experiment; not all 25 runs
        assert [t.shape for t in per_group] == [(5, 30, 2)] * 3
        for k, t in enumerate(per_group):
            np.testing.assert_array_equal(t, traj[m][list(idx[k])])
    assert "geometric mean over the first 3 seeds" in content["settings_reasoning"]["delays"]


@pytest.mark.parametrize("argv, message", [
    (["spectral-dynamics", "{folder}"], "error: experiment: spectral-dynamics keeps no "
     "comparison of conditions to rerun; choose one of fcn, cnn, grokking, optimizers"),
    (["optimizers", "{folder}", "--seeds", "3"], "error: --seeds: give N >= 2 with fcn or "
     "grokking (got 3 with optimizers)"),
    (["fcn", "{folder}/nowhere"], "error: folder: {folder}/nowhere/results.json does not exist; "
     "give the output folder of 'conjugacy reproduce fcn'"),
])
def test_refusals_are_one_line_exit_2(opt_folder, capsys, argv, message):
    assert rerun.main([a.format(folder=opt_folder) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err == message.format(folder=opt_folder) + "\n"


def test_claim_rows_match_reword_and_escape():
    paper = {"claims": [{"claim": "a", "holds": True}, {"claim": "b (old words)", "holds": True},
                        {"claim": "c", "holds": False}]}
    new = {"claims": [{"claim": "a", "holds": False, "evidence": "|arg| > 0.01"},
                      {"claim": "b (new words)", "holds": True, "evidence": "median 0.005"}]}
    assert rerun._claim_rows(paper, new)[2:] == [
        "| a | True | False | \\|arg\\| > 0.01 |",
        "| b (old words) | True | not rerun (needs sections the rerun does not recompute) | |",
        "| c | False | not rerun (needs sections the rerun does not recompute) | |",
        "| b (new words) | (not in the folder's claims) | True | median 0.005 |"]
