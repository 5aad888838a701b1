"""benchmarks/hypotheses_cnn.py's readings of "windows similar after ~700 iterations" on a window
matrix whose every entry is chosen by hand (issue 24)."""


import numpy as np
import pytest


@pytest.fixture(scope="module")
def hyp(load_benchmark):
    return load_benchmark("hypotheses_cnn")


MEAN = [[0.0, 0.08, 0.09, 0.10],
        [0.08, 0.0, 0.02, 0.019],
        [0.09, 0.02, 0.0, 0.005],
        [0.10, 0.019, 0.005, 0.0]]


def _content(labels, per_seed):
    return {"windows": {"lenet": {
        "labels": labels, "mean_matrix": MEAN, "noise_floor": 0.01,
        "between_seeds_per_window": [0.01] * 4, "per_seed_matrices": per_seed}}}


def _seed(c1, c2):
    m = np.zeros((4, 4))
    m[1, 2], m[2, 3] = c1, c2
    return (m + m.T).tolist()


def test_every_reading_of_similar_on_a_hand_made_matrix(hyp):
    labels = ["0-99", "100-199", "600-699", "700-799"]
    c = hyp.similarity_criteria(_content(labels, [_seed(0.01, 0.02), _seed(0.02, 0.01)]))
    np.testing.assert_allclose(c["consecutive_over_floor"], [8.0, 2.0, 0.5])
    np.testing.assert_allclose(c["to_last_over_floor"], [10.0, 1.9, 0.5, 0.0])
    pair = c["paper_pair"]
    assert pair["distance"] == 0.005 and pair["over_floor"] == pytest.approx(0.5)
    # the smallest consecutive distance and the darkest colour of the log10 scale
    assert (pair["rank_among_consecutive"], pair["n_consecutive"]) == (1, 3)
    assert pair["log10_colour_position"] == pytest.approx(0.0)
    # within 1 and 1.5 floors only 600-699..700-799 are mutually close; within 2 floors
    # (0.02 >= 0.019, 0.02, 0.005) 100-199 joins; 0-99 never does
    assert c["late_block_start"] == {"1.0": "600-699", "1.5": "600-699", "2.0": "100-199"}
    assert c["trend_rho"]["mean"] == pytest.approx(-1.0)
    assert c["trend_rho"]["per_seed"] == pytest.approx([1.0, -1.0])


def test_no_paper_pair_without_window_700_799(hyp):
    labels = ["0-99", "100-199", "200-299", "300-399"]
    c = hyp.similarity_criteria(_content(labels, [_seed(0.01, 0.02), _seed(0.02, 0.01)]))
    assert "paper_pair" not in c
    assert c["late_block_start"]["2.0"] == "100-199"


def test_late_block_start_takes_the_whole_tail_or_only_the_last_window(hyp):
    m = np.array(MEAN)
    assert hyp._late_block_start(m, 1.0) == 0
    assert hyp._late_block_start(m, 0.001) == 3
