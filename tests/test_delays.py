"""The delay rule's cases where the data do not settle the choice (issue 20, item 4 of the
analyze-cost work): no candidate beats persistence, and the choice is the cap."""

from __future__ import annotations

import numpy as np
import pytest

from conjugacy import delays
from conjugacy.delays import choose_delays


def _rotation_seen_through_one_coordinate() -> np.ndarray:
    return _noisy_rotation()[:, :, :1]


def _noisy_rotation() -> np.ndarray:
    """6 trajectories x 80 steps of a damped rotation (0.4 rad, 0.98) with process noise 0.05."""
    rng = np.random.default_rng(0)
    z = np.zeros((6, 80, 2))
    z[:, 0] = rng.standard_normal((6, 2))
    rot = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]]) * 0.98
    for t in range(79):
        z[:, t + 1] = z[:, t] @ rot.T + 0.05 * rng.standard_normal((6, 2))
    return z


def test_no_candidate_beats_persistence_takes_the_fewest_delays_with_a_note():
    x = np.cumsum(np.random.default_rng(0).standard_normal((4, 60, 3)), axis=1)  # random walks
    choice = choose_delays(x)
    errors = np.array(choice.errors)
    assert errors.min() >= 1.0  # every candidate predicts worse than "nothing changes"
    assert int(np.argmin(errors)) == 1  # the old rule took the best: 1 delay
    assert choice.delays == 0 and choice.candidates[0] == 0
    assert len(choice.notes) == 1
    assert choice.notes[0].startswith("no number of delays predicts the held-out next record "
                                      "better than persistence (best error 1.48 ")
    assert "the fewest candidate delays, 0, are taken" in choice.notes[0]
    assert choice.reason.startswith("0 delays: the fewest of [0, 1, 2, 3, 4, 6, 8, 12], since "
                                    "none predicts")
    assert choice.as_dict()["notes"] == list(choice.notes)


def test_the_largest_candidate_is_noted_and_a_settled_choice_is_not():
    x = _rotation_seen_through_one_coordinate()
    capped = choose_delays(x, max_delays=3)  # the error falls up to 3 delays: the cap decides
    assert capped.delays == 3 and capped.candidates == (0, 1, 2, 3)
    assert capped.notes == ("the choice is the largest candidate (3 delays, the cap): more delays "
                            "might predict better still; the data do not settle the delays",)
    free = choose_delays(x)
    assert free.delays == 3 and free.candidates[-1] == 16 and free.notes == ()


@pytest.mark.parametrize("n_features", [1, 200])  # the direct route and the Gram route
def test_max_rank_caps_the_fold_fits_and_changes_nothing_at_or_above_the_svht_rank(n_features):
    x = _rotation_seen_through_one_coordinate()
    if n_features > 1:  # many channels: features outnumber the snapshots (the Gram route)
        mix = np.random.default_rng(1).standard_normal((1, n_features))
        x = x @ mix + 0.01 * np.random.default_rng(2).standard_normal((6, 80, n_features))
    free = choose_delays(x)
    same = choose_delays(x, max_rank=max(free.ranks))
    assert same.ranks == free.ranks and same.delays == free.delays
    np.testing.assert_allclose(same.errors, free.errors, rtol=1e-8)
    low = choose_delays(x, max_rank=1)
    assert max(low.ranks) == 1 < max(free.ranks)
    assert not np.allclose(low.errors, free.errors)


def test_choose_delays_scores_inside_the_blas_thread_policy(monkeypatch):
    from threadpoolctl import threadpool_info

    import conjugacy.delays as delays

    seen: list[int] = []
    score = delays._prediction_error_direct

    def spy(*args, **kwargs):
        seen.extend(p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas")
        return score(*args, **kwargs)

    monkeypatch.setattr(delays, "_prediction_error_direct", spy)
    choice = choose_delays(_rotation_seen_through_one_coordinate(), max_delays=3, threads=1)
    assert choice.delays == 3 and seen and set(seen) == {1}
    with pytest.raises(ValueError, match="threads must be 'auto', None or a positive integer"):
        choose_delays(_rotation_seen_through_one_coordinate(), threads=0)


def test_a_capped_rank_on_the_gram_route_needs_no_full_eigendecomposition(monkeypatch):
    x = _rotation_seen_through_one_coordinate()
    mix = np.random.default_rng(1).standard_normal((1, 200))
    x = x @ mix + 0.01 * np.random.default_rng(2).standard_normal((6, 80, 200))
    free = choose_delays(x, max_rank=2)
    calls: list[int] = []
    eigvalsh = np.linalg.eigvalsh

    def counting(a, *args, **kwargs):
        calls.append(a.shape[0])
        return eigvalsh(a, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "eigvalsh", counting)
    capped = choose_delays(x, max_rank=2)
    assert calls == []  # the top 2 eigenpairs settle SVHT's capped rank at every candidate
    assert capped.delays == free.delays == 2 and max(capped.ranks) == 2
    np.testing.assert_allclose(capped.errors, free.errors, rtol=1e-12)


def test_seeds_are_scored_one_by_one_and_their_errors_averaged():
    z = _rotation_seen_through_one_coordinate()  # 6 trajectories: seeds of 2, 3 and 1
    seeds = ["a", "a", "b", "b", "b", "c"]
    choice = choose_delays(z, seeds=seeds)  # "c" is cut in half: at most (40 - 2) // 4 delays
    alone = [choose_delays(x, max_delays=9) for x in (z[:2], z[2:5], [z[5]])]
    assert choice.candidates == alone[0].candidates == alone[2].candidates == (0, 1, 2, 3, 4, 6, 8)
    geometric = np.exp(np.mean(np.log([c.errors for c in alone]), axis=0))
    np.testing.assert_allclose(choice.errors, geometric, rtol=1e-12)
    assert choice.ranks == tuple(np.max([c.ranks for c in alone], axis=0))
    assert not np.allclose(choice.errors, choose_delays(z, max_delays=9).errors)  # not pooled
    assert "(geometric mean over 3 seeds)" in choice.reason
    assert "mean over" not in choose_delays(z, seeds=[0] * 6).reason
    assert choose_delays(z, seeds=[0] * 6) == choose_delays(z)


def test_seeds_must_label_every_trajectory():
    with pytest.raises(ValueError, match="seeds: one per trajectory, got 2 for 6"):
        choose_delays(_noisy_rotation(), seeds=[0, 1])


def test_one_bad_seed_does_not_drown_the_others():
    from conjugacy.delays import _seed_mean

    # two seeds predict best at the second candidate (0.05-0.06 of persistence); a third seed's
    # folds do not predict each other (9-20 times persistence), as the first-hour warm-up runs
    errors = np.array([[0.5, 0.05, 0.06], [0.4, 0.06, 0.07], [9.0, 20.0, 15.0]])
    assert errors.mean(axis=0).min() > 1.0  # an arithmetic mean: nothing beats persistence
    mean, left = _seed_mean(errors)
    np.testing.assert_allclose(mean, [1.8 ** (1 / 3), 0.06 ** (1 / 3), 0.063 ** (1 / 3)],
                               rtol=1e-12)
    assert left == [] and int(np.argmin(mean)) == 1 and mean[1] < 1.0


def test_a_constant_seed_is_left_out_and_a_candidate_one_seed_cannot_score_is_not_chosen():
    z = _rotation_seen_through_one_coordinate()[:4]
    flat = np.zeros((2, 80, 1))
    choice = choose_delays(np.concatenate([z, flat]), seeds=[0, 0, 1, 1, 2, 2], max_delays=16)
    kept = choose_delays(z, seeds=[0, 0, 1, 1], max_delays=16)
    assert choice.errors == kept.errors and choice.delays == kept.delays
    assert choice.notes[0].startswith("1 of 3 seeds do not change (no held-out error at any "
                                      "candidate: seeds [2]")
    assert "(geometric mean over 2 seeds)" in choice.reason
    from conjugacy.delays import _seed_mean

    errors, left = _seed_mean(np.array([[0.5, 0.4, 0.3], [0.5, 0.4, np.nan]]))
    assert left == [] and np.isnan(errors[2]) and errors[:2] == [0.5, 0.4]


@pytest.mark.parametrize("n_traj", [2, 5])  # folds of one run each (views), of several (gathers)
@pytest.mark.parametrize("complex_data", [False, True])
def test_the_gram_route_scores_as_the_explicit_delay_matrices(n_traj, complex_data):
    # every candidate's held-out error and SVHT rank from the snapshot Gram (the delay Grams
    # formed candidate after candidate, the traces and (k, k) products instead of W) equal the
    # explicit route's; max_rank None and capped
    rng = np.random.default_rng(21)
    # 80 features, more than the snapshots: _score_candidates takes the Gram route throughout
    trajs = [np.cumsum(rng.normal(size=(40 + 7 * i, 80)), axis=0) for i in range(n_traj)]
    if complex_data:
        trajs = [t + 1j * np.cumsum(rng.normal(size=t.shape), axis=0) for t in trajs]
    candidates = (0, 1, 2, 4, 6, 8)
    folds = np.arange(n_traj) % 2
    for max_rank in (None, 3):
        via_gram, gram_ranks = delays._score_candidates(trajs, candidates, max_rank)
        for d, err, rank in zip(candidates, via_gram, gram_ranks):
            direct, direct_rank = delays._prediction_error_direct(trajs, d, folds, max_rank)
            assert rank == direct_rank
            assert err == pytest.approx(direct, rel=1e-9)


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "Inf")])
def test_choose_delays_names_a_non_finite_value(bad, word):
    x = np.ones((3, 40, 2))
    x[1, 5, 0] = bad
    with pytest.raises(ValueError, match=rf"^trajectories\[1\] contains {word} at index \(5, 0\)"):
        choose_delays(x)
