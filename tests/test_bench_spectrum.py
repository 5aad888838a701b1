"""benchmarks/bench_spectrum.py's DSA-tutorial workload: the data are DSA's own (checked against the
notebook's code, copied verbatim below), the clustering score, and kooplearn's harness at rank 15."""
# ruff: noqa: NPY002  (the oracle is the notebook's own code: NumPy's legacy global random state)


import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bench_spectrum")


@pytest.fixture
def global_random_state():
    state = np.random.get_state()
    yield
    np.random.set_state(state)


# ---- The oracle: cells 3-8 of examples/dsa_fig3_tutorial.ipynb, github.com/mitchellostrow/DSA
# (commit 8cbddcf, MIT licence, copyright Mitchell Ostrow), verbatim but for comments, plotting,
# the unused ``seeded`` branch, ``time`` passed through so that the test runs 100 steps, and the
# loop that models 2 and 3 share written once (``_steered``).
def run_model1(cohs, params, time=100, cond_avgs=None):
    a = params.get('a', -.6)
    b = params.get('b', 2)
    c = params.get('c', -1)
    dt = params.get('dt', 1)
    ntrials = params.get('ntrials', 10)
    sigma = params.get('sigma', 0)
    steps = int(time / dt)
    x = np.zeros((len(cohs), ntrials, steps, 2))
    cohs = np.array(cohs)
    cohs = np.repeat(cohs[:, np.newaxis], ntrials, axis=1)
    input_optimized = np.zeros((len(cohs), ntrials, steps, 2))
    for i in range(1, steps):
        dx = a*x[:, :, i-1, 0]**3 + b*x[:, :, i-1, 0] + cohs
        dy = c*x[:, :, i-1, 1] + cohs
        dx = np.concatenate([dx[:, :, np.newaxis], dy[:, :, np.newaxis]], axis=2)
        input_optimized[:, :, i] = 0
        rand = np.random.normal(0, sigma, size=(len(cohs), ntrials, 2))
        x[:, :, i] = x[:, :, i-1] + dt * (dx + input_optimized[:, :, i] + rand)
    cond_avg = np.mean(x, axis=1)
    return x, cond_avg


def _steered(A, cond_avgs, sigma, dt, ntrials, steps):
    """The loop models 2 and 3 share (the notebook repeats it in each): ``dx = A x`` plus the
    input that steers the trial average onto ``cond_avgs``, plus noise."""
    x = np.zeros((cond_avgs.shape[0], ntrials, steps, 2))
    input_optimized = np.zeros((cond_avgs.shape[0], ntrials, steps, 2))
    for i in range(1, steps):
        dx = np.einsum('ij,mkj->mki', A, x[:, :, i-1])
        xavg = x[:, :, i-1].mean(axis=1)
        dx_avg = A @ xavg
        inp = (1/dt) * (cond_avgs[:, i] - xavg - dx_avg * dt)
        input_optimized[:, :, i] = np.repeat(inp[:, np.newaxis], ntrials, axis=1)
        x[:, :, i] = x[:, :, i-1] + dt*(dx + input_optimized[:, :, i] +
                                        np.random.normal(0, sigma,
                                                         size=(cond_avgs.shape[0], ntrials, 2)))
    return x, input_optimized


def run_model2(cond_avgs, params, time=100):
    l0 = params.get('l0', [1, 1])
    l0 /= np.linalg.norm(l0)
    r0 = params.get('r0', [1, 0])
    sigma = params.get('sigma', 0)
    dt = params.get('dt', 1)
    ntrials = params.get('ntrials', 10)
    eval1 = params.get('eval1', -1)
    evals = np.diag([0, eval1])
    r1 = l0
    R = np.array([r0, r1])
    L = np.linalg.inv(R)
    A = R @ evals @ L
    theta = np.radians(45)
    c, s = np.cos(theta), np.sin(theta)
    Mrot = np.array(((c, -s), (s, c)))
    A = Mrot @ A
    steps = int(time / dt)
    return _steered(A, cond_avgs, sigma, dt, ntrials, steps)


def run_model3(cond_avgs, params, time=100):
    a1 = params.get('a1', -0.5)
    a2 = params.get('a2', -1)
    A = np.diag([-np.abs(a1), -np.abs(a2)])
    sigma = params.get('sigma', 0)
    dt = params.get('dt', 1)
    steps = int(time / dt)
    ntrials = params.get('ntrials', 10)
    return _steered(A, cond_avgs, sigma, dt, ntrials, steps)


def notebook_models(time):
    """Cells 1, 4, 5, 7 and 8 of the notebook (plots left out), every run ``time`` units long."""
    np.random.seed(2023)
    x1, cond_avg = run_model1([-.1, .1], dict(dt=0.01, sigma=0.1, ntrials=20), time)
    run_model2(cond_avg, dict(dt=0.01, sigma=0.1, ntrials=20), time)
    run_model3(cond_avg, dict(dt=0.01, sigma=0.1, ntrials=20), time)
    nmodels, sigma, ntrials, dt = 4, 0.05, 100, 0.01
    a = np.random.uniform(-5, -4, size=nmodels)
    b = np.random.uniform(4, 5, size=nmodels)
    c = np.random.uniform(-4, -3, size=nmodels)
    eval1 = np.random.uniform(-2, -3, size=nmodels)
    a1 = np.random.uniform(-4, -5, size=nmodels)
    a2 = np.random.uniform(-8, -9, size=nmodels)

    def flatten_x(x1):
        return x1.reshape(x1.shape[0]*x1.shape[1], x1.shape[2], x1.shape[3])

    models = [[], [], []]
    for i in range(nmodels):
        x1, cond_avg = run_model1([-.1, .1], dict(dt=dt, sigma=sigma, ntrials=ntrials, a=a[i], b=b[i],
                                                  c=c[i]), time)
        models[0].append(flatten_x(x1))
        x2, _ = run_model2(cond_avg, dict(dt=dt, sigma=sigma, ntrials=ntrials, eval1=eval1[i]), time)
        models[1].append(flatten_x(x2))
        x3, _ = run_model3(cond_avg, dict(dt=dt, sigma=sigma, ntrials=ntrials, a1=a1[i], a2=a2[i]),
                           time)
        models[2].append(flatten_x(x3))
    models = [x for mtype in models for x in mtype]
    return [i[:, ::10] for i in models]


def test_tutorial_data_equal_the_notebooks(bench, global_random_state):
    models, types = bench.dsa_tutorial_data(time=1)
    expected = notebook_models(time=1)
    assert len(models) == len(expected) == 12
    assert types == ["bistable"] * 4 + ["line attractor"] * 4 + ["point attractor"] * 4
    for got, want in zip(models, expected):
        assert got.shape == want.shape == (200, 10, 2)
        np.testing.assert_array_equal(got, want)
    assert np.std(models[0][:, -1]) > 0  # noise was drawn: not a vacuous comparison of zeros


def test_same_type_neighbours_exact(bench):
    # a, a, b, b on a line at 0, 1, 10, 11: both types separated
    x = np.array([0.0, 1.0, 10.0, 11.0])
    dist = np.abs(x[:, None] - x[None, :])
    assert bench.same_type_neighbours(dist, ["a", "a", "b", "b"]) == (1.0, 1.0)
    # interleaved types a, b, a, b at 0, 1, 10, 11: every nearest neighbour is of the other type
    assert bench.same_type_neighbours(dist, ["a", "b", "a", "b"]) == (0.0, 0.0)
    # a, a, b, b at 0, 3, 4, 10: models 1 and 2 are each other's nearest, of the other type
    y = np.array([0.0, 3.0, 4.0, 10.0])
    assert bench.same_type_neighbours(np.abs(y[:, None] - y[None, :]), list("aabb")) == (0.5, 0.5)
    # a, a, a, b, b at 0, 1, 2, 2.5, 9: each model's n_type - 1 nearest others (2 for a, 1 for b)
    z = np.array([0.0, 1.0, 2.0, 2.5, 9.0])
    nearest, within = bench.same_type_neighbours(np.abs(z[:, None] - z[None, :]), list("aaabb"))
    assert nearest == 3 / 5  # 0 -> 1 (a), 1 -> 0 (a), 2 -> 3 (b), 3 -> 2 (a), 4 -> 3 (b)
    assert within == pytest.approx((1 + 1 + 0.5 + 0 + 1) / 5)  # 2: {3, 1}; 3: {2}
    with pytest.raises(ValueError, match="types"):
        bench.same_type_neighbours(np.zeros((3, 3)), list("aab"))


def test_tutorial_kooplearn_uses_the_rank(bench, global_random_state):
    """kooplearn's harness fits rank 15 as conjugacy does (it fitted rank 10 whatever the
    workload said): equal eigenvalues, equal distances."""
    models, types = bench.dsa_tutorial_data(time=5)
    models = [x[:20] for x in models[::4]]  # one model per type, 20 trajectories x 50 steps
    ours = bench.tutorial_ours(models)
    theirs = bench.tutorial_kooplearn(models)
    assert [len(e) for e in bench.tutorial_kooplearn.eigenvalues] == [15, 15, 15]
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-9)
