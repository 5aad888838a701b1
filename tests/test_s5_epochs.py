"""benchmarks/s5_epochs.py's per-seed reading of fig. S5 on hand-made epoch matrices (issue 24)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "s5_epochs.py"


@pytest.fixture(scope="module")
def s5():
    spec = importlib.util.spec_from_file_location("s5_epochs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["s5_epochs"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["s5_epochs"]


def _matrix(upper):
    """A symmetric 4 x 4 matrix from its 6 upper entries, row by row."""
    m = np.zeros((4, 4))
    m[np.triu_indices(4, 1)] = upper
    return (m + m.T).tolist()


def test_per_seed_consecutive_over_floor_and_late_block(s5):
    # seed 0 settles from epoch 2 within 1 floor (0.01); seed 1 only its last two epochs are
    # within 1 floor, epochs 2-4 within 1.5 floors (0.015 >= 0.012, 0.014, 0.008)
    seed0 = _matrix([0.05, 0.06, 0.07, 0.009, 0.01, 0.004])
    seed1 = _matrix([0.05, 0.06, 0.07, 0.012, 0.014, 0.008])
    w = {"noise_floor": 0.01, "labels": ["e1", "e2", "e3", "e4"],
         "per_seed_matrices": [seed0, seed1]}
    out = s5.per_seed_settling(w)
    np.testing.assert_allclose(out[0]["consecutive_over_floor"], [5.0, 0.9, 0.4])
    np.testing.assert_allclose(out[1]["consecutive_over_floor"], [5.0, 1.2, 0.8])
    assert out[0]["late_block_start"] == {"1.0": "e2", "1.5": "e2", "2.0": "e2"}
    assert out[1]["late_block_start"] == {"1.0": "e3", "1.5": "e2", "2.0": "e2"}


def test_round_keeps_significant_digits_in_nested_values(s5):
    assert s5._round({"a": [0.0123456789, 3], "b": 12345.678}) == {"a": [0.012346, 3],
                                                                    "b": 12346.0}
