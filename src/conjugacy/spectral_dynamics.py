"""Spectral dynamics of weights: effective rank, alignment, singular vector agreement, barriers.

Implements the measures of the companion paper (Yunis et al., "Approaching deep learning through
the spectral dynamics of weights"; ``SPEC.md`` section 6), read from the SVD of every weight
matrix at every checkpoint. NumPy only: torch models enter through
:mod:`conjugacy.torch.snapshots` (``interpolation_losses``, ``CheckpointRecorder``).

Conventions
-----------
* A parameter with ``d >= 2`` dimensions ``(c_out, *rest)`` is read as the matrix
  ``(c_out, prod(rest))``: a convolution ``(c_out, c_in, kh, kw)`` becomes
  ``(c_out, c_in * kh * kw)`` (paper appendix D.1; C-order flattening, as ``torch.flatten(1)``).
* SVDs are thin (``full_matrices=False``), ``W = U diag(s) V^T`` with ``k = min(m, n)`` singular
  values in decreasing order. float32 weights are decomposed in float32 (LAPACK ``sgesdd``), other
  real types in float64.
* ``stacked=True`` means the first axis indexes checkpoints: ``(n_ckpt, *param_shape)``; all
  checkpoints are decomposed by one stacked ``np.linalg.svd`` call.
* Scores are the mean of the first ``k = 10`` diagonal entries (paper eq. 4 and 5; fewer when the
  matrices have fewer singular values).

Differences from the reference code (dyunis/spectral_dynamics): the effective rank uses
``0 log 0 = 0`` instead of adding ``1e-10`` to every singular value (identical up to ~1e-9 for
non-degenerate spectra, exact for rank-deficient ones), and layer pairs whose shapes do not chain
are listed with the reason (:func:`chain_layers`) instead of being skipped silently.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ._checks import check_finite, check_int

__all__ = [
    "TOP_K",
    "AgreementResult",
    "AlignmentResult",
    "CheckpointDynamics",
    "LayerChain",
    "LayerPair",
    "SkippedPair",
    "alignment",
    "as_matrix",
    "barrier",
    "chain_layers",
    "checkpoint_dynamics",
    "effective_rank",
    "effective_rank_from_singular_values",
    "singular_values",
    "singular_vector_agreement",
    "svd",
]

#: Number of leading diagonal entries averaged into the alignment and agreement scores.
TOP_K = 10


# ----------------------------------------------------------------------------- inputs
def _to_numpy(W: Any, name: str) -> np.ndarray:
    """Array from ``W`` (NumPy, nested lists, or a CPU/GPU torch tensor, detached)."""
    if hasattr(W, "detach") and hasattr(W, "cpu"):  # torch tensor, without importing torch
        W = W.detach().cpu()
        if str(getattr(W, "dtype", "")) == "torch.bfloat16":
            W = W.float()
        W = W.numpy()
    try:
        arr = np.asarray(W)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array; could not convert it: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    return arr


def as_matrix(W: Any, *, stacked: bool = False, name: str = "W") -> np.ndarray:
    """A weight (or a stack of checkpoints of one weight) as matrices ``(..., m, n)``.

    Parameters
    ----------
    W : array-like, shape (c_out, *rest) or, with ``stacked=True``, (n_ckpt, c_out, *rest)
        A parameter with at least 2 dimensions; a convolution ``(c_out, c_in, kh, kw)`` becomes
        ``(c_out, c_in * kh * kw)`` (paper appendix D.1). Torch tensors are accepted.
    stacked : bool
        Whether the first axis indexes checkpoints.
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray, shape (m, n) or (n_ckpt, m, n)
        float32 if ``W`` is float32, else float64 (a view when no conversion is needed).

    Raises
    ------
    TypeError
        Non-numeric or complex input.
    ValueError
        Too few dimensions, an empty axis, or non-finite values.

    References
    ----------
    Yunis et al. 2024 (arXiv:2408.11804), appendix D.1 (convolutions as matrices).

    Examples
    --------
    >>> import numpy as np
    >>> as_matrix(np.zeros((8, 3, 5, 5))).shape
    (8, 75)
    >>> as_matrix(np.zeros((4, 8, 3, 3)), stacked=True).shape
    (4, 8, 9)
    """
    arr = _to_numpy(W, name)
    lead = 1 if stacked else 0
    if arr.ndim < 2 + lead:
        what = "(n_ckpt, c_out, c_in, ...)" if stacked else "(c_out, c_in, ...)"
        raise ValueError(
            f"{name} must have at least {2 + lead} dimensions {what}, got shape {arr.shape}"
            + ("" if stacked else "; 1-D parameters (biases, norms) have no singular vectors")
        )
    if 0 in arr.shape:
        raise ValueError(f"{name} has an empty axis: shape {arr.shape}")
    check_finite(arr, name)
    return arr.reshape(*arr.shape[: lead + 1], -1)


def _svd(M: np.ndarray, compute_uv: bool = True) -> Any:
    return np.linalg.svd(M, full_matrices=False, compute_uv=compute_uv)


def svd(W: Any, *, stacked: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD of a weight or a stack of checkpoints, ``W = U diag(s) Vh``.

    Returns
    -------
    U : ndarray (..., m, k)
    s : ndarray (..., k), decreasing
    Vh : ndarray (..., k, n)
        With ``k = min(m, n)`` for the matrix ``(m, n)`` of :func:`as_matrix`.

    Parameters
    ----------
    W : array-like
        A weight, or with ``stacked=True`` a stack of checkpoints (see :func:`as_matrix`).
    stacked : bool
        Whether the first axis indexes checkpoints (one batched SVD).

    Raises
    ------
    TypeError, ValueError
        See :func:`as_matrix`.

    Examples
    --------
    >>> import numpy as np
    >>> U, s, Vh = svd(np.diag([1.0, 3.0]))
    >>> s, U.shape
    (array([3., 1.]), (2, 2))
    """
    return _svd(as_matrix(W, stacked=stacked))


def singular_values(W: Any, *, stacked: bool = False) -> np.ndarray:
    """Singular values ``(..., min(m, n))`` of a weight or a stack of checkpoints, decreasing.

    Parameters
    ----------
    W : array-like
        A weight, or with ``stacked=True`` a stack of checkpoints (see :func:`as_matrix`).
    stacked : bool
        Whether the first axis indexes checkpoints.

    Returns
    -------
    ndarray (min(m, n),) or (n_ckpt, min(m, n))

    Raises
    ------
    TypeError, ValueError
        See :func:`as_matrix`.

    Examples
    --------
    >>> import numpy as np
    >>> singular_values(np.diag([1.0, 3.0, 2.0]))
    array([3., 2., 1.])
    """
    return _svd(as_matrix(W, stacked=stacked), compute_uv=False)


# ----------------------------------------------------------------------------- effective rank
def effective_rank_from_singular_values(s: Any) -> np.ndarray | float:
    """Normalised effective rank from singular values ``(..., k)`` (Roy & Vetterli 2007).

    ``p = s / sum(s)``, ``erank = exp(-sum p log p)`` (``0 log 0 = 0``), divided by ``k``
    (= ``min(m, n)``, as in the companion paper's code). In ``[1/k, 1]``; NaN for an all-zero
    matrix, whose effective rank is undefined.

    Parameters
    ----------
    s : array-like (..., k)
        Non-negative singular values of one matrix per leading index.

    Returns
    -------
    float for a 1-D input, ndarray ``(...)`` otherwise.

    Raises
    ------
    ValueError
        Negative or non-finite singular values, or an empty last axis.

    References
    ----------
    Roy & Vetterli, *The effective rank: a measure of effective dimensionality*, EUSIPCO 2007.

    Examples
    --------
    >>> effective_rank_from_singular_values([1.0, 1.0])
    1.0
    >>> effective_rank_from_singular_values([[2.0, 0.0], [1.0, 1.0]])
    array([0.5, 1. ])
    """
    s = np.asarray(s, dtype=np.float64)
    if s.ndim < 1 or s.shape[-1] == 0:
        raise ValueError(f"singular values must have a non-empty last axis, got shape {s.shape}")
    if np.any(s < 0) or not np.isfinite(s).all():
        raise ValueError("singular values must be finite and non-negative")
    total = s.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = s / total
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    out = np.exp(-plogp.sum(axis=-1)) / s.shape[-1]
    out = np.where(total[..., 0] > 0, out, np.nan)
    return float(out) if out.ndim == 0 else out


def effective_rank(W: Any, *, stacked: bool = False) -> np.ndarray | float:
    """Normalised effective rank of a weight (Roy & Vetterli's exp-entropy / min(m, n)).

    Parameters
    ----------
    W : array-like (c_out, *rest) or, stacked, (n_ckpt, c_out, *rest)
        A conv weight ``(c_out, c_in, kh, kw)`` is flattened to ``(c_out, c_in*kh*kw)``.
    stacked : bool
        First axis indexes checkpoints (one stacked SVD).

    Returns
    -------
    float, or ndarray (n_ckpt,) when stacked
        1 for an identity (all singular values equal), ``1 / min(m, n)`` for a rank-1 matrix,
        NaN for an all-zero matrix.

    Raises
    ------
    TypeError, ValueError
        See :func:`as_matrix`.

    References
    ----------
    Roy & Vetterli, *The effective rank: a measure of effective dimensionality*, EUSIPCO 2007;
    Yunis et al. 2024 (arXiv:2408.11804), sec. 3.

    Examples
    --------
    >>> import numpy as np
    >>> effective_rank(np.eye(4))
    1.0
    >>> effective_rank(np.stack([np.eye(3), np.diag([1.0, 0.0, 0.0])]), stacked=True)
    array([1.        , 0.33333333])
    """
    return effective_rank_from_singular_values(singular_values(W, stacked=stacked))


# ----------------------------------------------------------------------------- alignment
class AlignmentResult(NamedTuple):
    """Alignment of consecutive layers, ``|V_{i+1}^T U_i|`` (companion paper eq. 3 and 4).

    Attributes
    ----------
    matrix : ndarray
        ``(..., k_next, k_i)`` for a linear next layer; ``(..., *kernel, k_next, k_i)`` (one matrix
        per kernel position) for a convolution.
    score : float or ndarray (n_ckpt,)
        Mean of the first ``TOP_K`` diagonal entries (at the centre kernel position for a conv).
    kernel_position : tuple of int or None
        The kernel position the score is taken at (centre, ``kh // 2, kw // 2``), None if linear.

    Examples
    --------
    >>> import numpy as np
    >>> r = alignment(np.diag([3.0, 2.0, 1.0]), np.diag([1.0, 2.0, 3.0]))
    >>> r.matrix.shape, r.kernel_position
    ((3, 3), None)
    """

    matrix: np.ndarray
    score: Any
    kernel_position: tuple[int, ...] | None


def _centre(kernel: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(k) // 2 for k in kernel)


def _score(diag: np.ndarray, k: int) -> Any:
    out = diag[..., : min(k, diag.shape[-1])].mean(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def _next_input_vectors(Vh_next: np.ndarray, next_shape: Sequence[int]) -> np.ndarray:
    """Right singular vectors of the next layer as ``(..., *kernel, c_in, k_next)``."""
    c_in, kernel = int(next_shape[1]), tuple(int(s) for s in next_shape[2:])
    lead = Vh_next.shape[:-2]
    k_next = Vh_next.shape[-2]
    V = Vh_next.reshape(*lead, k_next, c_in, *kernel)  # rows of Vh: (c_in, *kernel) in C order
    nk = len(kernel)
    nl = len(lead)
    # (..., k_next, c_in, *kernel) -> (..., *kernel, c_in, k_next)
    perm = (*range(nl), *range(nl + 2, nl + 2 + nk), nl + 1, nl)
    return V.transpose(perm)


def alignment(W_i: Any, W_next: Any, *, stacked: bool = False, k: int = TOP_K) -> AlignmentResult:
    """Alignment matrix ``|V_{i+1}^T U_i|`` of consecutive layers and its score.

    ``U_i`` are the left (output) singular vectors of layer ``i``, ``V_{i+1}`` the right (input)
    singular vectors of the layer it feeds. When the next layer is a convolution
    ``(c_out, c_in, kh, kw)``, its ``V`` (rows indexed by ``(c_in, kh, kw)``) is split per kernel
    position, giving one ``(k_next, k_i)`` matrix per position (as in the reference code, which
    reshapes ``V`` to ``(kh, kw, c_out, c_in)``); the score is read at the centre position
    (appendix D.1). Balanced layers (``V_{i+1} = U_i``) give the identity: score 1.

    Parameters
    ----------
    W_i : array-like (c_out, *rest), or stacked (n_ckpt, c_out, *rest)
    W_next : array-like (c_out', c_out, *kernel), or stacked (n_ckpt, ...)
        Its second axis must equal the first axis of ``W_i`` (see :func:`chain_layers`).
    stacked : bool
        Both inputs hold the same checkpoints along their first axis.
    k : int
        Number of leading diagonal entries in the score.

    Returns
    -------
    AlignmentResult

    Raises
    ------
    ValueError
        If the layers do not chain (input size of ``W_next`` != output size of ``W_i``), or the
        stacks hold different numbers of checkpoints.

    References
    ----------
    Yunis et al. 2024 (arXiv:2408.11804), eq. 3-4 and appendix D.1.

    Examples
    --------
    Balanced layers, ``V_2 = U_1``, are perfectly aligned:

    >>> import numpy as np
    >>> W1 = np.random.default_rng(0).normal(size=(16, 32))
    >>> U1 = np.linalg.svd(W1, full_matrices=False)[0]
    >>> W2 = np.diag(np.arange(10.0, 0.0, -1.0)) @ U1[:, :10].T  # (10, 16), V_2 = U_1
    >>> round(float(alignment(W1, W2).score), 6)
    1.0
    """
    A = as_matrix(W_i, stacked=stacked, name="W_i")
    raw_next = _to_numpy(W_next, "W_next")
    B = as_matrix(raw_next, stacked=stacked, name="W_next")
    lead = 1 if stacked else 0
    shape_i, shape_next = A.shape[lead:], raw_next.shape[lead:]
    if stacked and A.shape[0] != B.shape[0]:
        raise ValueError(
            f"W_i and W_next must hold the same number of checkpoints, got {A.shape[0]} and "
            f"{B.shape[0]}"
        )
    if int(shape_next[1]) != int(shape_i[0]):
        raise ValueError(
            f"layers do not chain: W_next {tuple(shape_next)} takes {shape_next[1]} input "
            f"channels, W_i gives {shape_i[0]} outputs (shape {tuple(raw_next.shape)} vs "
            f"{tuple(_to_numpy(W_i, 'W_i').shape)})"
        )
    k = check_int(k, "k", minimum=1)
    U, _, _ = _svd(A)
    _, _, Vh = _svd(B)
    V = _next_input_vectors(Vh, shape_next)
    kernel = tuple(int(s) for s in shape_next[2:])
    # broadcast U over the kernel axes: (..., 1.., m_i, k_i)
    U_b = U.reshape(*U.shape[:-2], *([1] * len(kernel)), *U.shape[-2:])
    M = np.abs(np.swapaxes(V, -1, -2) @ U_b)
    if kernel:
        pos = _centre(kernel)
        centre = M[(slice(None),) * lead + pos]
    else:
        pos, centre = None, M
    diag = np.diagonal(centre, axis1=-2, axis2=-1)
    return AlignmentResult(M, _score(diag, k), pos)


# ----------------------------------------------------------------------------- agreement
class AgreementResult(NamedTuple):
    """Singular vector agreement ``|(U_t^T U_T) * (V_t^T V_T)|`` (companion paper eq. 5).

    Attributes
    ----------
    matrix : ndarray (..., k, k)
        Entry ``(j, l)`` is ``|<u_j v_j^T, u'_l v'_l^T>|``, the Frobenius inner product of rank-1
        components (the element-wise product of the two overlap matrices).
    score : float or ndarray (n_ckpt,)
        Mean of the first ``TOP_K`` diagonal entries.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.diag([3.0, 2.0, 1.0])
    >>> singular_vector_agreement(W, W).score
    1.0
    """

    matrix: np.ndarray
    score: Any


def singular_vector_agreement(
    W_t: Any, W_T: Any, *, stacked: bool = False, k: int = TOP_K
) -> AgreementResult:
    """Agreement of the singular vectors of ``W_t`` with those of ``W_T`` (e.g. the final one).

    Parameters
    ----------
    W_t : array-like (c_out, *rest), or stacked (n_ckpt, c_out, *rest)
    W_T : array-like, the same parameter shape; with ``stacked=True`` either a stack of the same
        length or a single weight compared with every checkpoint.
    k : int
        Number of leading diagonal entries in the score.

    Returns
    -------
    AgreementResult
        A matrix agrees with itself: diagonal all 1 (for distinct singular values).

    Raises
    ------
    ValueError
        Different matrix shapes or stack lengths.

    References
    ----------
    Yunis et al. 2024 (arXiv:2408.11804), eq. 5.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.random.default_rng(0).normal(size=(16, 32))
    >>> a = singular_vector_agreement(W, W)
    >>> round(float(a.score), 6), a.matrix.shape
    (1.0, (16, 16))
    """
    A = as_matrix(W_t, stacked=stacked, name="W_t")
    raw_T = _to_numpy(W_T, "W_T")
    single_ref = stacked and raw_T.shape == _to_numpy(W_t, "W_t").shape[1:]
    B = as_matrix(raw_T, stacked=stacked and not single_ref, name="W_T")
    if A.shape[-2:] != B.shape[-2:]:
        raise ValueError(
            f"W_t and W_T must be the same parameter: matrices {A.shape[-2:]} and {B.shape[-2:]}"
        )
    if stacked and not single_ref and A.shape[0] != B.shape[0]:
        raise ValueError(
            f"W_t and W_T must hold the same number of checkpoints, got {A.shape[0]} and "
            f"{B.shape[0]} (or pass one W_T to compare every checkpoint with it)"
        )
    k = check_int(k, "k", minimum=1)
    U1, _, Vh1 = _svd(A)
    U2, _, Vh2 = _svd(B)
    M = np.abs((np.swapaxes(U1, -1, -2) @ U2) * (Vh1 @ np.swapaxes(Vh2, -1, -2)))
    return AgreementResult(M, _score(np.diagonal(M, axis1=-2, axis2=-1), k))


# ----------------------------------------------------------------------------- barrier
def barrier(losses: Any, alphas: Any = None) -> np.ndarray | float:
    """Linear-mode-connectivity barrier of a loss curve along a linear interpolation.

    ``b = max over interior points of L(alpha) - ((1 - alpha) L(0) + alpha L(1))`` (companion
    paper eq. 6, after Neyshabur et al. 2020): the largest excess of the loss over the straight line
    between its endpoint values. Not clipped at 0 (a curve below the line gives a negative value).

    Parameters
    ----------
    losses : array-like (..., n_points), n_points >= 3
        Loss (or error) at the interpolation points, endpoints included.
    alphas : array-like (n_points,), optional
        Interpolation coefficients, strictly increasing; default ``linspace(0, 1, n_points)``.

    Returns
    -------
    float for one curve, ndarray (...) for a stack of curves.

    Raises
    ------
    ValueError
        Fewer than 3 points, non-finite values, or ``alphas`` of the wrong length / not increasing.

    References
    ----------
    Yunis et al. 2024 (arXiv:2408.11804), eq. 6; Neyshabur, Sedghi & Zhang, *What is being
    transferred in transfer learning?*, NeurIPS 2020; Frankle et al., *Linear mode connectivity
    and the lottery ticket hypothesis*, ICML 2020.

    Examples
    --------
    >>> barrier([1.0, 1.5, 1.0])
    0.5
    >>> barrier([[1.0, 0.5, 1.0], [2.0, 1.5, 1.0]])  # below the line: negative, not clipped
    array([-0.5,  0. ])
    """
    L = _to_numpy(losses, "losses").astype(np.float64)
    if L.ndim < 1 or L.shape[-1] < 3:
        raise ValueError(
            f"losses must have at least 3 points along its last axis (2 endpoints and an interior "
            f"point), got shape {L.shape}"
        )
    if not np.isfinite(L).all():
        raise ValueError("losses contains NaN or Inf; every interpolation point needs a loss")
    n = L.shape[-1]
    if alphas is None:
        a = np.linspace(0.0, 1.0, n)
    else:
        a = _to_numpy(alphas, "alphas").astype(np.float64)
        if a.shape != (n,):
            raise ValueError(
                f"alphas must have shape ({n},) like the last axis of losses, got {a.shape}"
            )
        if not np.isfinite(a).all() or np.any(np.diff(a) <= 0):
            raise ValueError(f"alphas must be finite and strictly increasing, got {a}")
    t = (a - a[0]) / (a[-1] - a[0])
    line = L[..., :1] * (1 - t) + L[..., -1:] * t
    out = (L - line)[..., 1:-1].max(axis=-1)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------- layer chaining
@dataclass(frozen=True)
class LayerPair:
    """Two parameters that chain: ``next`` consumes the output of ``first``.

    ``kind`` is ``"linear"`` (``next`` is a matrix) or ``"conv"`` (alignment per kernel position,
    score at the centre).

    Examples
    --------
    >>> chain_layers({"fc1.weight": (32, 784), "fc2.weight": (10, 32)}).pairs
    [LayerPair(first='fc1.weight', next='fc2.weight', kind='linear')]
    """

    first: str
    next: str
    kind: str

    @property
    def key(self) -> str:
        """``"first->next"``, the key used in results."""
        return f"{self.first}->{self.next}"


@dataclass(frozen=True)
class SkippedPair:
    """Two consecutive parameters whose shapes do not chain, and why.

    Examples
    --------
    >>> chain = chain_layers({"conv.weight": (8, 1, 3, 3), "fc.weight": (10, 8 * 26 * 26)})
    >>> chain.skipped[0].reason.startswith("conv -> linear after flattening")
    True
    """

    first: str
    next: str
    reason: str


@dataclass(frozen=True)
class LayerChain:
    """Which consecutive weight parameters chain (:func:`chain_layers`).

    Attributes
    ----------
    layers : list of str
        The parameters with >= 2 dimensions, in the given order.
    pairs : list of LayerPair
    skipped : list of SkippedPair
        Consecutive pairs that were not aligned, each with its reason.
    ignored : list of str
        Parameters with fewer than 2 dimensions (biases, norm scales): no SVD.

    Examples
    --------
    >>> chain_layers({"fc1.weight": (32, 784), "fc1.bias": (32,), "fc2.weight": (10, 32)}).ignored
    ['fc1.bias']
    """

    layers: list[str]
    pairs: list[LayerPair]
    skipped: list[SkippedPair]
    ignored: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "layers": list(self.layers),
            "pairs": [{"first": p.first, "next": p.next, "kind": p.kind} for p in self.pairs],
            "skipped": [{"first": s.first, "next": s.next, "reason": s.reason}
                        for s in self.skipped],
            "ignored": list(self.ignored),
        }


_SHORTCUT_WORDS = ("shortcut", "downsample", "skip", "residual", "proj_res")


def _skip_reason(a: str, sa: tuple[int, ...], b: str, sb: tuple[int, ...]) -> str:
    gives, takes = sa[0], sb[1]
    base = f"{b} takes {takes} inputs, {a} gives {gives} outputs"
    if len(sa) >= 3 and len(sb) == 2:
        if takes % gives == 0:
            return (f"conv -> linear after flattening: {base} ({takes // gives} spatial positions "
                    "per channel; no one-to-one input basis)")
        return f"conv -> linear: {base}"
    low = (a + " " + b).lower()
    if any(w in low for w in _SHORTCUT_WORDS) or (len(sb) >= 3 and math.prod(sb[2:]) == 1):
        return (f"residual shortcut: {base} (a shortcut/downsample branch reads the block input, "
                "not the previous layer's output)")
    return f"shapes do not chain: {base}"


def chain_layers(
    shapes: Mapping[str, Sequence[int]],
    pairs: Sequence[tuple[str, str]] | None = None,
) -> LayerChain:
    """Decide which consecutive weight parameters chain, for :func:`alignment`.

    Rule (the companion paper aligns "pairs of layers that directly feed into each other, and
    ignores residual connections", appendix D): walk the parameters with >= 2 dimensions in the
    given order (``model.named_parameters()`` order); ``(W_i, W_next)`` chains when
    ``W_next.shape[1] == W_i.shape[0]`` (the next layer's input channels are this layer's
    outputs), as a ``"conv"`` pair when ``W_next`` has kernel axes (alignment per kernel position)
    and a ``"linear"`` pair otherwise. Other consecutive pairs are *skipped*, each with its
    reason: a residual shortcut / downsample branch (names containing shortcut, downsample, skip,
    residual, or a 1x1 conv whose input is the block input), a conv -> linear transition after a
    flatten (the linear layer takes ``c_out * positions`` inputs), or any other mismatch.

    The rule looks at shapes and order only: two layers whose shapes happen to chain are paired
    even if the model does not connect them (e.g. embedding tables, attention projections). Give
    ``pairs`` explicitly to override.

    Parameters
    ----------
    shapes : mapping name -> shape
        Every parameter (1-D ones are listed under ``ignored``).
    pairs : sequence of (first, next), optional
        Explicit pairs; each is checked to chain (ValueError otherwise); nothing is skipped.

    Returns
    -------
    LayerChain

    Raises
    ------
    ValueError
        An explicit pair that names an unknown parameter or does not chain.

    References
    ----------
    Yunis et al. 2024 (arXiv:2408.11804), appendix D (layers that directly feed into each other;
    residual connections ignored).

    Examples
    --------
    >>> chain = chain_layers({"fc1.weight": (32, 784), "fc1.bias": (32,), "fc2.weight": (10, 32)})
    >>> [(p.first, p.next, p.kind) for p in chain.pairs], chain.ignored
    ([('fc1.weight', 'fc2.weight', 'linear')], ['fc1.bias'])
    """
    if not isinstance(shapes, Mapping):
        raise TypeError(f"shapes must be a mapping name -> shape, got {type(shapes).__name__}")
    norm = {str(n): tuple(int(x) for x in s) for n, s in shapes.items()}
    layers = [n for n, s in norm.items() if len(s) >= 2]
    ignored = [n for n, s in norm.items() if len(s) < 2]

    def kind(s: tuple[int, ...]) -> str:
        return "conv" if len(s) >= 3 else "linear"

    if pairs is not None:
        out = []
        for item in pairs:
            if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
                raise ValueError(f"pairs must hold (first, next) name pairs, got {item!r}")
            a, b = str(item[0]), str(item[1])
            for n in (a, b):
                if n not in layers:
                    raise ValueError(
                        f"pair {item!r}: {n!r} is not a parameter with >= 2 dimensions; "
                        f"available: {', '.join(layers)}"
                    )
            if norm[b][1] != norm[a][0]:
                raise ValueError(f"pair {item!r} does not chain: {_skip_reason(a, norm[a], b, norm[b])}")
            out.append(LayerPair(a, b, kind(norm[b])))
        return LayerChain(layers, out, [], ignored)
    out, skipped = [], []
    for a, b in zip(layers[:-1], layers[1:]):
        sa, sb = norm[a], norm[b]
        if sb[1] == sa[0]:
            out.append(LayerPair(a, b, kind(sb)))
        else:
            skipped.append(SkippedPair(a, b, _skip_reason(a, sa, b, sb)))
    return LayerChain(layers, out, skipped, ignored)


# ----------------------------------------------------------------------------- many checkpoints
@dataclass(frozen=True)
class CheckpointDynamics:
    """Every measure of one run's checkpoints (:func:`checkpoint_dynamics`).

    Attributes
    ----------
    steps : ndarray (n_ckpt,)
        Training step of each checkpoint.
    reference_step : int
        The checkpoint the agreement is measured against (the final one by default).
    singular_values : dict name -> ndarray (n_ckpt, k)
    effective_rank : dict name -> ndarray (n_ckpt,)
    sva_diagonal : dict name -> ndarray (n_ckpt, min(k, max_rank))
        ``|<u_j(t), u_j(T)> <v_j(t), v_j(T)>|``: the diagonal of the agreement matrix.
    sva_score : dict name -> ndarray (n_ckpt,)
    alignment_diagonal : dict "first->next" -> ndarray (n_ckpt, min(k_next, k_first, max_rank))
        At the centre kernel position for convolutions.
    alignment_score : dict "first->next" -> ndarray (n_ckpt,)
    chain : LayerChain
    svd_seconds : float
        Wall time of the SVDs.

    Examples
    --------
    Made by :func:`checkpoint_dynamics`; three checkpoints of a two-layer network:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> weights = {"fc1.weight": rng.normal(size=(3, 8, 16)), "fc2.weight": rng.normal(size=(3, 4, 8))}
    >>> d = checkpoint_dynamics(weights, steps=[0, 5, 10])
    >>> d.steps, d.reference_step, d.singular_values["fc2.weight"].shape
    (array([ 0,  5, 10]), 10, (3, 4))
    >>> d.sva_diagonal["fc1.weight"].shape, list(d.alignment_diagonal)
    ((3, 8), ['fc1.weight->fc2.weight'])
    """

    steps: np.ndarray
    reference_step: int
    singular_values: dict[str, np.ndarray]
    effective_rank: dict[str, np.ndarray]
    sva_diagonal: dict[str, np.ndarray]
    sva_score: dict[str, np.ndarray]
    alignment_diagonal: dict[str, np.ndarray]
    alignment_score: dict[str, np.ndarray]
    chain: LayerChain
    svd_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as lists)."""
        per_layer = ("singular_values", "effective_rank", "sva_diagonal", "sva_score",
                     "alignment_diagonal", "alignment_score")
        return {
            "steps": self.steps.tolist(),
            "reference_step": int(self.reference_step),
            **{f: {k: v.tolist() for k, v in getattr(self, f).items()} for f in per_layer},
            "chain": self.chain.to_dict(),
            "svd_seconds": float(self.svd_seconds),
        }


def _col_dot(X: np.ndarray, Y: np.ndarray, r: int) -> np.ndarray:
    """``|sum_rows X[..., :, j] * Y[..., :, j]|`` for ``j < r``: diagonal of ``X^T Y``."""
    return np.abs(np.einsum("...ij,...ij->...j", X[..., :r], Y[..., :r]))


def _checked_checkpoints(weights: Any, steps: Any, reference: Any
                         ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The arrays of ``weights`` (one checkpoint count for all) and the steps, checked."""
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError("weights must be a non-empty mapping name -> (n_ckpt, *shape) array")
    arrays = {str(n): _to_numpy(w, f"weights[{n!r}]") for n, w in weights.items()}
    n_ckpt = None
    for n, w in arrays.items():
        if w.ndim < 1:
            raise ValueError(f"weights[{n!r}] must be shaped (n_ckpt, *shape), got a scalar")
        if n_ckpt is None:
            n_ckpt = w.shape[0]
        elif w.shape[0] != n_ckpt:
            raise ValueError(
                f"weights[{n!r}] has {w.shape[0]} checkpoints, others have {n_ckpt}"
            )
    assert n_ckpt is not None
    if n_ckpt < 1:
        raise ValueError("weights hold no checkpoints")
    st = np.arange(n_ckpt) if steps is None else np.asarray(steps)
    if st.shape != (n_ckpt,):
        raise ValueError(f"steps must have shape ({n_ckpt},), got {st.shape}")
    if isinstance(reference, bool) or not isinstance(reference, int | np.integer) \
            or not -n_ckpt <= reference < n_ckpt:
        raise ValueError(
            f"reference must be a checkpoint index in [-{n_ckpt}, {n_ckpt}), got {reference!r}"
        )
    return arrays, st


def _alignment_schedule(chain: LayerChain) -> tuple[dict[str, int], dict[str, list[LayerPair]]]:
    """When each layer's singular vectors can be dropped (the index of the last layer it is
    aligned with), and the pairs to align once each layer's SVD is done (the later of the two)."""
    order = {n: i for i, n in enumerate(chain.layers)}
    last_use: dict[str, int] = {}
    pairs_by_next: dict[str, list[LayerPair]] = {}
    for p in chain.pairs:
        done = max(order[p.first], order[p.next])
        for n in (p.first, p.next):
            last_use[n] = max(last_use.get(n, -1), done)
        later = p.next if order[p.next] >= order[p.first] else p.first
        pairs_by_next.setdefault(later, []).append(p)
    return last_use, pairs_by_next


def checkpoint_dynamics(
    weights: Mapping[str, Any],
    steps: Any = None,
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
    reference: int = -1,
    max_rank: int = 100,
    k: int = TOP_K,
) -> CheckpointDynamics:
    """Every spectral measure of one run's checkpoints, one stacked SVD per parameter.

    Parameters
    ----------
    weights : mapping name -> array (n_ckpt, *shape)
        Checkpoints of each parameter, in ``named_parameters`` order (1-D parameters are
        ignored); every entry has the same ``n_ckpt``.
    steps : array-like (n_ckpt,), optional
        Training step of each checkpoint (default ``0 .. n_ckpt-1``).
    pairs : sequence of (first, next), optional
        Layer pairs to align; default :func:`chain_layers` on the shapes.
    reference : int
        Index of the checkpoint the agreement is measured against (default: the last).
    max_rank : int
        Diagonals are kept for the first ``max_rank`` singular directions (paper: 100).
    k : int
        Entries averaged into the scores.

    Returns
    -------
    CheckpointDynamics

    Raises
    ------
    ValueError
        Parameters with different numbers of checkpoints, ``steps`` of the wrong length, a
        ``reference`` out of range, or a weight :func:`as_matrix` refuses.

    Notes
    -----
    Memory: one parameter's stacked SVD at a time, plus the singular vectors of a parameter until
    its last pair has been aligned.

    References
    ----------
    Yunis et al. 2024 (arXiv:2408.11804), sec. 3 and appendix D (effective rank, alignment,
    singular vector agreement).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> weights = {"fc1.weight": rng.normal(size=(5, 32, 64)),
    ...            "fc2.weight": rng.normal(size=(5, 10, 32))}
    >>> d = checkpoint_dynamics(weights, steps=[0, 10, 20, 30, 40])
    >>> d.reference_step, d.effective_rank["fc1.weight"].shape, list(d.alignment_score)
    (40, (5,), ['fc1.weight->fc2.weight'])
    >>> round(float(d.sva_score["fc1.weight"][-1]), 6)  # the last checkpoint agrees with itself
    1.0
    """
    arrays, st = _checked_checkpoints(weights, steps, reference)
    k = check_int(k, "k", minimum=1)
    max_rank = check_int(max_rank, "max_rank", minimum=1)
    chain = chain_layers({n: w.shape[1:] for n, w in arrays.items()}, pairs)
    last_use, pairs_by_next = _alignment_schedule(chain)
    sv, er, sva_d, sva_s, al_d, al_s = {}, {}, {}, {}, {}, {}
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> (U, Vh_as_input_vectors)
    t_svd = 0.0
    for idx, name in enumerate(chain.layers):
        M = as_matrix(arrays[name], stacked=True, name=f"weights[{name!r}]")
        t0 = time.perf_counter()
        U, s, Vh = _svd(M)
        t_svd += time.perf_counter() - t0
        sv[name] = s
        er[name] = np.asarray(effective_rank_from_singular_values(s))
        r = min(s.shape[-1], max_rank)
        Ut, Vt = U[reference], np.swapaxes(Vh[reference], -1, -2)
        V = np.swapaxes(Vh, -1, -2)
        d = _col_dot(U, Ut[None], r) * _col_dot(V, Vt[None], r)
        sva_d[name] = d
        sva_s[name] = d[:, : min(k, r)].mean(axis=-1)
        if name in last_use:
            cache[name] = (U, _next_input_vectors(Vh, arrays[name].shape[1:]))
        for p in pairs_by_next.get(name, []):
            U_prev = cache[p.first][0]
            V_next = cache[p.next][1]
            kernel = tuple(arrays[p.next].shape[3:])
            if kernel:
                V_next = V_next[(slice(None), *_centre(kernel), slice(None), slice(None))]
            rr = min(U_prev.shape[-1], V_next.shape[-1], max_rank)
            d = _col_dot(V_next, U_prev, rr)
            al_d[p.key] = d
            al_s[p.key] = d[:, : min(k, rr)].mean(axis=-1)
        for n in [n for n in cache if last_use[n] <= idx]:
            del cache[n]
    ref = int(st[reference])
    return CheckpointDynamics(st, ref, sv, er, sva_d, sva_s, al_d, al_s, chain, t_svd)
