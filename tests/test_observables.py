"""Delay embedding and PCA."""

import numpy as np
import pytest

from conjugacy import delay_embed, fit_pca
from conjugacy.observables import DelayOperator, delay_grams, snapshot_gram


def test_delay_embed_by_hand():
    a = np.arange(5.0).reshape(5, 1)  # x_t = t
    b = 10 + np.arange(4.0).reshape(4, 1)
    X, Y = delay_embed([a, b], delays=1)
    # trajectory a: h_t = [t; t+1], pairs t=0..2; trajectory b: [10+t; 11+t], t=0..1
    np.testing.assert_array_equal(X, [[0, 1, 2, 10, 11], [1, 2, 3, 11, 12]])
    np.testing.assert_array_equal(Y, [[1, 2, 3, 11, 12], [2, 3, 4, 12, 13]])


def test_delay_embed_never_crosses_trajectories():
    data = np.random.default_rng(0).standard_normal((3, 7, 2))
    X, Y = delay_embed(data, delays=2)
    assert X.shape == (6, 3 * 4)
    joined = np.concatenate(list(data))  # pairs across a joint would appear if joined
    Xj, _ = delay_embed(joined, delays=2)
    assert Xj.shape[1] == 21 - 3 > X.shape[1]
    # oldest block on top
    np.testing.assert_array_equal(X[:2, 0], data[0, 0])
    np.testing.assert_array_equal(X[4:, 0], data[0, 2])


def test_delay_embed_single_2d_and_3d_agree():
    data = np.random.default_rng(1).standard_normal((9, 3))
    X1, Y1 = delay_embed(data, 3)
    X3, Y3 = delay_embed(data[None], 3)
    np.testing.assert_array_equal(X1, X3)
    np.testing.assert_array_equal(Y1, Y3)


def test_structured_grams_and_products_equal_explicit_ones():
    rng = np.random.default_rng(2)
    trajs = [rng.standard_normal((n, 4)) for n in (9, 12, 7)]
    d = 2
    X, Y = delay_embed(trajs, d)
    gram, offsets = snapshot_gram(trajs)
    gxx, gxy, gyy = delay_grams(gram, offsets, d)
    np.testing.assert_allclose(gxx, X.T @ X, atol=1e-12)
    np.testing.assert_allclose(gxy, X.T @ Y, atol=1e-12)
    np.testing.assert_allclose(gyy, Y.T @ Y, atol=1e-12)
    op = DelayOperator(trajs, d)
    V = rng.standard_normal((X.shape[1], 3))
    U = rng.standard_normal((X.shape[0], 3))
    np.testing.assert_allclose(op.x_times(V), X @ V, atol=1e-12)
    np.testing.assert_allclose(op.y_times(V), Y @ V, atol=1e-12)
    np.testing.assert_allclose(op.xh_times(U), X.T @ U, atol=1e-12)
    np.testing.assert_allclose(op.x_column_norms(), np.linalg.norm(X, axis=0), rtol=1e-12)


def test_pca_gram_path_equals_svd_path():
    rng = np.random.default_rng(3)
    wide = rng.standard_normal((2, 10, 6)) @ rng.standard_normal((6, 500))  # 500 >> 20 snapshots
    gram = fit_pca(wide, 4, center=False)
    z = wide.reshape(-1, 500)
    _, s, vh = np.linalg.svd(z, full_matrices=False)
    np.testing.assert_allclose(gram.singular_values, s[:4], rtol=1e-10)
    for c, v in zip(gram.components.T, vh[:4]):
        assert abs(abs(c @ v) - 1) < 1e-10
    projected = gram.transform(list(wide))
    assert projected[0].shape == (10, 4)
    # deterministic orientation: largest entry of each component is positive
    idx = np.argmax(np.abs(gram.components), axis=0)
    assert np.all(gram.components[idx, range(4)] > 0)


def test_centred_pca_gram_path_equals_scikit_learn():
    sklearn = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(5)
    wide = 3.0 + rng.standard_normal((2, 10, 6)) @ rng.standard_normal((6, 500))  # Gram path
    tall = 3.0 + rng.standard_normal((4, 30, 5)) @ rng.standard_normal((5, 8))  # SVD path
    for data in (wide, tall):
        z = data.reshape(-1, data.shape[-1])
        ref = sklearn.PCA(n_components=3, svd_solver="full").fit(z)
        ours = fit_pca(data, 3)
        assert ours.center
        np.testing.assert_allclose(ours.singular_values, ref.singular_values_, rtol=1e-9)
        for c, v in zip(ours.components.T, ref.components_):
            assert abs(abs(c @ v) - 1) < 1e-9
        # projection of the raw, uncentred snapshots, as the reference code does
        np.testing.assert_allclose(
            np.concatenate(ours.transform(list(data))) @ ours.components.T @ ref.components_.T,
            z @ ref.components_.T, atol=1e-9,
        )


def test_pca_centred_option_is_not_centred():
    data = np.ones((1, 5, 3)) + 1e-3 * np.random.default_rng(0).standard_normal((1, 5, 3))
    pca = fit_pca(data, 1, center=False)
    # uncentred: the first direction is the mean direction (1, 1, 1)/sqrt(3)
    np.testing.assert_allclose(np.abs(pca.components[:, 0]), np.ones(3) / np.sqrt(3), atol=1e-3)


def test_pca_rank_too_large():
    with pytest.raises(ValueError, match=r"pca=7 exceeds .* n_features=6"):
        fit_pca(np.zeros((2, 10, 6)) + 1, 7)


def test_pooled_gram_equals_blockwise_gram():
    data = np.random.default_rng(4).standard_normal((3, 6, 5))
    from conjugacy.observables import pooled_view

    pooled, _ = snapshot_gram(list(data))  # consecutive views of one buffer: pooled syrk
    assert pooled_view(list(data)) is not None
    copies = [np.array(t) for t in data]
    assert pooled_view(copies[::-1]) is None
    blockwise, _ = snapshot_gram([copies[0], copies[1], copies[2]])
    np.testing.assert_allclose(pooled, blockwise, atol=1e-12)
    z = data.reshape(-1, 5)
    np.testing.assert_allclose(pooled, z @ z.T, atol=1e-12)


@pytest.mark.parametrize("lengths", [(12, 12, 12), (9, 14, 11)])
def test_delay_gram_blocks_equal_the_delay_grams(lengths):
    from conjugacy.observables import delay_gram_blocks, delay_grams, snapshot_gram

    rng = np.random.default_rng(5)
    trajs = [rng.standard_normal((t, 7)) for t in lengths]
    gram, offsets = snapshot_gram(trajs)
    gxx, gxy, gyy = delay_grams(gram, offsets, 2)
    bxx, bxy, byy = delay_gram_blocks(gram, offsets, 2)
    np.testing.assert_allclose(bxx, gxx, rtol=1e-13, atol=0)
    A = rng.standard_normal((3, gxx.shape[0]))
    np.testing.assert_allclose(bxy.lmul(A), A @ gxy, rtol=1e-12, atol=1e-12 * np.abs(gxy).max())
    np.testing.assert_allclose(byy.lmul(A), A @ gyy, rtol=1e-12, atol=1e-12 * np.abs(gyy).max())
    np.testing.assert_allclose(byy.diagonal(), np.diagonal(gyy), rtol=1e-13)


@pytest.mark.parametrize("chunk", [8 * 2**20, 40])
def test_delay_operator_adjoint_equals_the_explicit_products(monkeypatch, chunk):
    # features >= 8 k: one product against the stacked blocks of U (in row chunks)
    import conjugacy.observables as obs

    monkeypatch.setattr(obs, "_ADJOINT_CHUNK", chunk)
    rng = np.random.default_rng(6)
    trajs = [rng.standard_normal((t, 40)) for t in (23, 18)]
    for delays in (0, 3):
        op = DelayOperator(trajs, delays)
        X, Y = delay_embed(trajs, delays)
        U = rng.standard_normal((X.shape[0], 3))
        np.testing.assert_allclose(op.xh_times(U), X.T @ U, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(op.yh_times(U), Y.T @ U, rtol=1e-12, atol=1e-12)
