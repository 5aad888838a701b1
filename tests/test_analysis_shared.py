"""The analysis layer's shared pieces that the experiments call instead of their own copies:
the claim rule on verdicts, the loss entry, the reasons for a missing distance, the groups of a
study, the scalar curves and the replica measures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conjugacy.analysis.comparison import no_distance_reason, pair_distance
from conjugacy.analysis.demo import decay_store, random_walk_study
from conjugacy.analysis.groups import (
    SpectrumGroup,
    max_relative_perturbation,
    relative_final_scalar,
    scalar_curves,
    study_groups,
)
from conjugacy.analysis.results import curve_summary, verdict_claim


def _v(word: str, reason: str = "r") -> dict:
    return {"verdict": word, "reason": reason}


@pytest.mark.parametrize(("words", "expect", "holds"), [
    (["not conjugate"], "not conjugate", True),
    (["conjugate"], "not conjugate", False),
    (["undecided"], "not conjugate", None),
    (["conjugate", "conjugate"], "conjugate", True),
    (["conjugate", "undecided"], "conjugate", None),
    (["undecided", "not conjugate"], "conjugate", False),  # one contradiction decides
])
def test_verdict_claim_holds_only_when_every_pair_has_the_expected_verdict(words, expect, holds):
    claim = verdict_claim("c", [_v(w, f"why {i}") for i, w in enumerate(words)], expect)
    assert claim.holds is holds
    assert claim.evidence == "; ".join(f"{w}: why {i}" for i, w in enumerate(words))


def test_verdict_claim_without_a_comparison_is_undecided_and_keeps_given_evidence():
    assert verdict_claim("c", None).to_dict() == {"claim": "c", "holds": None,
                                                  "evidence": "not compared"}
    assert verdict_claim("c", _v("not conjugate"), evidence="p = 0.01").evidence == "p = 0.01"


def test_curve_summary_ignores_missing_values_and_takes_the_last_tenth():
    y = np.array([np.arange(20.0), np.full(20, np.nan)])
    y[1, :10] = 1.0
    c = curve_summary(y, range(100, 120))
    assert c["steps"][0] == 100 and c["n_runs"] == 2
    assert c["mean"][:10] == [(t + 1) / 2 for t in range(10)] and c["mean"][10:] == list(
        np.arange(10.0, 20.0))
    assert c["min"][0] == 0.0 and c["max"][0] == 1.0 and c["std"][0] == 0.5
    assert c["final_mean"] == pytest.approx((18 + 19) / 2)  # 20 steps: the last 2
    assert curve_summary(np.full((2, 3), np.nan), [0, 1, 2]) is None
    with pytest.raises(ValueError, match="n_steps = len\\(steps\\) = 2"):
        curve_summary(np.zeros((2, 3)), [0, 1])


def test_no_distance_reason_names_the_empty_spectra_and_the_infinite_distances():
    cmp = {"pairs": {"a-b": ["a", "b"], "a-c": ["a", "c"], "b-c": ["b", "c"]},
           "verdict_uses": "all",
           "all": {"distances": {"a-b": {"mean": 0.5}, "b-c": {"mean": math.inf}},
                   "kept_nothing": {"a-c": ["a seed 1", "c seed 0"]}}}
    d = {p: pair_distance(cmp, p) for p in cmp["pairs"]}
    assert d == {"a-b": 0.5, "a-c": None, "b-c": None}
    assert no_distance_reason(cmp, d) == (
        "undecided, no distance (a-c: the filter kept no eigenpair of a seed 1, c seed 0; "
        "b-c: no finite distance)")
    assert no_distance_reason(cmp, {"a-b": 0.5}) == ""


def test_study_groups_follow_the_conditions_then_the_seeds():
    study = random_walk_study(seeds=(3, 1), n_replicas=3)
    groups = study_groups(study)
    assert [(g.condition, g.seed) for g in groups] == [("flat", 3), ("flat", 1), ("up", 3),
                                                        ("up", 1)]
    assert groups[2].runs == ("up-seed3_0", "up-seed3_1", "up-seed3_2")


def test_scalar_curves_and_replica_measures_read_the_store(tmp_path):
    from conjugacy.store import TrajectoryStore

    path = decay_store(tmp_path / "runs.zarr", n_seeds=3, n_records=12)
    with TrajectoryStore.open(path, "r") as store:
        slow = SpectrumGroup("slow", 0, ("slow_s0", "slow_s1", "slow_s2"))
        short = SpectrumGroup("fast", 0, ("fast_s0", "fast_s1"), steps=(0, 6))
        window = SpectrumGroup("fast", 1, ("fast_s2",), window="w")
        curves = scalar_curves(store, [slow, short, window])
        w0 = store.read(runs=list(slow.runs), steps=slice(0, 1))[:, 0]
        rel = max_relative_perturbation(store, [slow], "w")
        ratio = relative_final_scalar(store, [slow, short], "loss")
        assert scalar_curves(store, [slow], "accuracy") == {}  # nobody recorded it
    values, steps = curves["slow"]
    np.testing.assert_array_equal(steps, np.arange(1, 12))
    np.testing.assert_array_equal(values, np.tile(0.95 ** np.arange(1, 12), (3, 1)))
    assert curves["fast"][0].shape == (2, 5)  # the group's steps range, first record left out
    assert rel == {"slow": float(np.abs(w0[1:] / w0[0] - 1).max())}
    assert ratio["slow"]["ratios"] == [[1.0, 1.0]] and ratio["slow"]["base"] == [0.95 ** 11]
    assert ratio["fast"]["n"] == 1 and ratio["fast"]["sd"] == 0.0
