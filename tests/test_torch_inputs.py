"""torch tensors as trajectories: plain CPU data are used as is, others get the package's message
naming the argument and the fix (issue 13, section 2)."""

from __future__ import annotations

import numpy as np
import pytest

from conjugacy import koopman_spectrum

torch = pytest.importorskip("torch")


def _linear_trajectories() -> np.ndarray:
    a = np.array([[0.9, 0.0], [0.0, 0.5]])
    x = np.empty((2, 15, 2))
    x[:, 0] = [[1.0, 2.0], [-1.0, 0.5]]
    for t in range(1, 15):
        x[:, t] = x[:, t - 1] @ a.T
    return x


def test_cpu_tensors_give_the_numpy_answer():
    x = _linear_trajectories()
    ref = koopman_spectrum(x, rank=2)
    for given in (torch.from_numpy(x), [torch.from_numpy(t) for t in x]):
        spec = koopman_spectrum(given, rank=2)
        np.testing.assert_array_equal(spec.eigenvalues, ref.eigenvalues)
    np.testing.assert_allclose(np.sort(ref.eigenvalues.real), [0.5, 0.9], atol=1e-12)


def test_bfloat16_is_widened_exactly():
    x = torch.from_numpy(_linear_trajectories()).to(torch.bfloat16)
    spec = koopman_spectrum(x, rank=2)
    ref = koopman_spectrum(x.float().numpy(), rank=2)
    np.testing.assert_array_equal(spec.eigenvalues, ref.eigenvalues)


def test_tensor_requiring_grad_names_the_argument_and_the_fix():
    x = torch.from_numpy(_linear_trajectories()).requires_grad_(True)
    with pytest.raises(TypeError, match=r"^trajectories is a torch tensor that requires grad; "
                                        r"pass trajectories\.detach\(\)"):
        koopman_spectrum(x, rank=2)
    with pytest.raises(TypeError, match=r"^trajectories\[1\] is a torch tensor that requires grad"):
        koopman_spectrum([x[0].detach(), x[1]], rank=2)
    with pytest.raises(TypeError, match="requires grad"):
        koopman_spectrum(torch.nn.Parameter(torch.ones(10, 2, dtype=torch.float64)))


def test_tensor_on_another_device_names_the_argument_and_the_fix():
    x = torch.zeros(2, 15, 2, device="meta")
    with pytest.raises(TypeError, match=r"^trajectories is a torch tensor on device meta; pass "
                                        r"trajectories\.detach\(\)\.cpu\(\)"):
        koopman_spectrum(x, rank=2)
