"""Turning arrays, lists and ragged inputs into one canonical form.

The canonical form is a list of 2-D arrays, one per trajectory, each shaped
``(n_steps_i, n_features)`` with a common ``n_features`` and dtype float64 (complex128 if any input
is complex). Every trajectory is validated: finite, numeric, at least ``min_steps`` steps.

PyTorch tensors are accepted when they are plain data: on the CPU and not requiring grad (they are
then viewed through ``Tensor.numpy()``, without a copy; bfloat16 and float8 tensors, which NumPy
cannot hold, are widened to float32 first, exactly). A tensor that requires grad (a live
parameter, or a result still attached to a graph) or lives on another device raises ``TypeError``
naming the argument and the fix (``x.detach()``, ``x.detach().cpu()``): the spectrum is not
differentiable, so silently detaching would hide that no gradient flows back.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from ._checks import as_numeric_array, check_finite, check_ndim

TrajectoriesLike = Union[np.ndarray, Sequence[np.ndarray]]

_SHAPE_HINT = (
    "pass an array (n_trajectories, n_steps, n_features), one trajectory (n_steps, n_features), "
    "or a list of (n_steps_i, n_features) arrays; reshape a scalar series with x.reshape(-1, 1)"
)


def _from_torch(value: Any, name: str) -> Any:
    """A CPU tensor without grad as a NumPy view; a clear ``TypeError`` for any other tensor.
    Anything that is not a torch tensor is returned unchanged (torch is never imported here)."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.Tensor):
        return value
    if value.requires_grad:
        raise TypeError(
            f"{name} is a torch tensor that requires grad; pass {name}.detach() (recorded "
            "trajectories are data: the spectrum is not differentiable)"
        )
    if value.device.type != "cpu":
        raise TypeError(
            f"{name} is a torch tensor on device {value.device}; pass {name}.detach().cpu() "
            "(the spectrum is computed with NumPy on the CPU)"
        )
    if value.dtype == torch.bfloat16 or "float8" in str(value.dtype):
        value = value.float()  # exact: these formats are subsets of float32
    try:
        return value.numpy()
    except (TypeError, RuntimeError) as exc:
        raise TypeError(f"{name} is a torch tensor of dtype {value.dtype} that NumPy cannot "
                        f"hold ({exc}); convert it with {name}.double()") from None


class OneTrajectoryWarning(UserWarning):
    """A 2-D array was taken as one trajectory ``(n_steps, n_features)``. Silence it with
    ``warnings.filterwarnings("ignore", category=OneTrajectoryWarning)`` when that is meant."""


def one_trajectory_note(shape: tuple[int, ...], name: str = "trajectories") -> str:
    """The note for a 2-D array of ``shape`` taken as one trajectory, with how to pass several
    (a first user's (runs, steps) array was read as one run of ``runs`` steps without a word)."""
    n_steps, n_features = shape
    return (f"{name} is a 2-D array {tuple(shape)}: taken as ONE trajectory of {n_steps} steps "
            f"x {n_features} features; for several trajectories pass an array (n_trajectories, "
            "n_steps, n_features) or a list of (n_steps, n_features) arrays")


def as_trajectory_list(
    trajectories: TrajectoriesLike, *, name: str = "trajectories", min_steps: int = 1,
    finite: bool = True,
) -> list[np.ndarray]:
    """Validate ``trajectories`` and return them as a list of 2-D arrays.

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features), array (n_steps, n_features),
        or a sequence of arrays (n_steps_i, n_features)
        The recorded observables. Steps run along axis -2, features along axis -1.
    name : str
        Name used in error messages.
    min_steps : int
        Minimum number of steps every trajectory must have.
    finite : bool, default True
        Check for NaN/Inf here. False: the caller checks later (the Gram routes of
        :func:`conjugacy.koopman_spectrum` read it off the snapshot Gram's diagonal and call
        :func:`check_trajectories_finite` only when that is not finite).

    Returns
    -------
    list of ndarray (n_steps_i, n_features)

    Warns
    -----
    OneTrajectoryWarning
        When ``trajectories`` is a 2-D array: it is taken as one trajectory (the note says how to
        pass several).

    Raises
    ------
    TypeError
        Non-numeric data, or a torch tensor that requires grad or is not on the CPU (the message
        names the argument, e.g. ``trajectories[2]``, and the fix).
    ValueError
        Wrong number of dimensions, no trajectories, no features, mismatched features, too few
        steps, NaN or Inf (naming the argument and index).
    """
    if isinstance(trajectories, np.ndarray) or not isinstance(trajectories, (list, tuple)):
        arr = as_numeric_array(_from_torch(trajectories, name), name)
        check_ndim(arr, name, (2, 3), _SHAPE_HINT)
        items = [arr] if arr.ndim == 2 else list(arr)
        if arr.ndim == 2:
            warnings.warn(one_trajectory_note(arr.shape, name), OneTrajectoryWarning,
                          stacklevel=2)
        labels = [name] if arr.ndim == 2 else [f"{name}[{i}]" for i in range(len(items))]
    else:
        if len(trajectories) == 0:
            raise ValueError(f"{name} is empty; at least one trajectory is required")
        items, labels = [], []
        for i, traj in enumerate(trajectories):
            label = f"{name}[{i}]"
            arr = as_numeric_array(_from_torch(traj, label), label)
            check_ndim(arr, label, (2,), "each trajectory must be (n_steps, n_features)")
            items.append(arr)
            labels.append(label)
    if len(items) == 0:
        raise ValueError(f"{name} holds no trajectories (n_trajectories == 0)")

    n_features = items[0].shape[1]
    if n_features == 0:
        raise ValueError(f"{name} has zero features (n_features == 0)")
    any_complex = any(np.iscomplexobj(a) for a in items)
    out = []
    for arr, label in zip(items, labels):
        if arr.shape[1] != n_features:
            raise ValueError(
                f"{label} has {arr.shape[1]} features but {labels[0]} has {n_features}; "
                "all trajectories must have the same number of features"
            )
        if arr.shape[0] < min_steps:
            raise ValueError(f"{label} has {arr.shape[0]} steps; at least {min_steps} are required")
        if finite:
            check_finite(arr, label)
        out.append(arr.astype(np.complex128 if any_complex else np.float64, copy=False))
    return out


def trajectory_labels(trajectories: TrajectoriesLike, n: int, name: str = "trajectories") -> list[str]:
    """The names :func:`as_trajectory_list` gives the ``n`` trajectories in its errors."""
    if isinstance(trajectories, (list, tuple)):
        return [f"{name}[{i}]" for i in range(n)]
    return [name] if getattr(trajectories, "ndim", 3) == 2 else [f"{name}[{i}]" for i in range(n)]


def check_trajectories_finite(trajs: list[np.ndarray], labels: list[str]) -> None:
    """:func:`conjugacy._checks.check_finite` on every trajectory (ValueError naming the first
    NaN/Inf and its index)."""
    for arr, label in zip(trajs, labels):
        check_finite(arr, label)
