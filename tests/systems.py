"""Analytic systems with known Koopman eigenvalues, shared by the engine tests."""

from __future__ import annotations

import numpy as np


def linear_system(n_traj=5, n_steps=40, seed=0, n_obs=50):
    """z' = A z (6-D, eigenvalues below) observed through a random (n_obs x 6) matrix."""
    rng = np.random.default_rng(seed)
    blocks = np.zeros((6, 6))
    blocks[:4, :4] = np.diag([0.95, 0.9, 0.5, -0.3])
    blocks[4:, 4:] = [[0.7, 0.2], [-0.2, 0.7]]
    P = rng.standard_normal((6, 6))
    A = P @ blocks @ np.linalg.inv(P)
    C = rng.standard_normal((n_obs, 6))
    out = np.empty((n_traj, n_steps, n_obs))
    for i in range(n_traj):
        z = rng.standard_normal(6)
        for t in range(n_steps):
            out[i, t] = C @ z
            z = A @ z
    true = np.array([0.95, 0.9, 0.5, -0.3, 0.7 + 0.2j, 0.7 - 0.2j])
    return out, true


def quadratic_system(n_traj=6, n_steps=30, a=0.9, b=0.5, c=1.0, seed=1, h=None):
    """x1' = a x1, x2' = b x2 + c x1^2 observed through (x1, x2, x1^2): eigenvalues {a, b, a^2}.

    With ``h`` (a homeomorphism of R) the state is seen as y = h(x) componentwise and the
    observables are computed from y through h^-1: the conjugate system has the same eigenvalues.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n_traj, n_steps, 3))
    for i in range(n_traj):
        x = rng.uniform(-1, 1, size=2)
        for t in range(n_steps):
            state = x if h is None else h_inverse(h_forward(x))
            out[i, t] = [state[0], state[1], state[0] ** 2]
            x = np.array([a * x[0], b * x[1] + c * x[0] ** 2])
    return out, np.array([a, b, a * a])


def h_forward(x):
    return x + x**3


def h_inverse(y):
    # Cardano's formula for x^3 + x - y = 0 (one real root, h strictly increasing).
    disc = np.sqrt(y**2 / 4 + 1 / 27)
    return np.cbrt(y / 2 + disc) + np.cbrt(y / 2 - disc)


def damped_oscillations(n_steps=120):
    """A scalar sum of two damped oscillations and a decay: 5 eigenvalues."""
    r = np.array([0.97, 0.9, 0.8])
    w = np.array([0.3, 1.1, 0.0])
    t = np.arange(n_steps)
    x = (
        1.0 * r[0] ** t * np.cos(w[0] * t + 0.3)
        + 0.7 * r[1] ** t * np.cos(w[1] * t - 1.0)
        + 0.5 * r[2] ** t
    )
    true = np.array(
        [r[0] * np.exp(1j * w[0]), r[0] * np.exp(-1j * w[0]), r[1] * np.exp(1j * w[1]),
         r[1] * np.exp(-1j * w[1]), r[2]]
    )
    return x.reshape(-1, 1), true


def match_error(found, true):
    """Largest distance between two equal-size eigenvalue sets under the best matching."""
    from scipy.optimize import linear_sum_assignment

    found, true = np.asarray(found), np.asarray(true)
    assert found.shape == true.shape, (found, true)
    cost = np.abs(found[:, None] - true[None, :])
    r, c = linear_sum_assignment(cost)
    return cost[r, c].max()
