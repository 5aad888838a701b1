"""
Koopman eigenvalues of a system whose answer is known exactly
=============================================================

x1' = 0.9 x1, x2' = 0.5 x2 + x1^2 observed through (x1, x2, x1^2): the Koopman eigenvalues are
{0.9, 0.5, 0.81}. The same system seen through the homeomorphism h(x) = x + x^3 is conjugate, and
its spectrum is the same.  Run: python examples/linear_system.py
"""

import numpy as np

from conjugacy import koopman_spectrum, wasserstein


def simulate(n_traj: int = 8, n_steps: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n_traj, n_steps, 3))
    for i in range(n_traj):
        x = rng.uniform(-1, 1, size=2)
        for t in range(n_steps):
            out[i, t] = [x[0], x[1], x[0] ** 2]
            x = np.array([0.9 * x[0], 0.5 * x[1] + x[0] ** 2])
    return out


if __name__ == "__main__":
    data = simulate()
    spec = koopman_spectrum(data, delays=2)
    print(spec)
    print("residuals:", spec.residuals)
    other = koopman_spectrum(simulate(seed=1), delays=2)
    print("Wasserstein distance between two sets of initial conditions:", wasserstein(spec, other))

    import matplotlib.pyplot as plt  # the plots extra

    from conjugacy.plots import plot_eigenvalues

    _, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    plot_eigenvalues({"initial conditions, seed 0": spec, "initial conditions, seed 1": other}, ax=ax)
    ax.set_title("Koopman eigenvalues {0.9, 0.5, 0.81} of both sets")
