"""PyTorch adapters: record weight trajectories into a :class:`~conjugacy.store.TrajectoryStore`.

Requires ``torch`` (``pip install conjugacy[torch]``); the Lightning callback lives in
:mod:`conjugacy.torch.lightning` and needs ``lightning``.
"""

# ruff: noqa: E402 - the check below must run before the imports that need the extra
from .._launch import require

# without the extra: one line naming it (pip install 'conjugacy[...]'), not a bare
# ModuleNotFoundError from deep inside; the imports below need it
require("torch", "import conjugacy.torch")

from .recorder import (
    BranchStep,
    Recorder,
    describe_optimizer,
    load_checkpoint,
    save_checkpoint,
    select_parameters,
)
from .replicas import make_replicas, perturb_model, train_replicas

__all__ = [
    "BranchStep",
    "Recorder",
    "describe_optimizer",
    "load_checkpoint",
    "make_replicas",
    "perturb_model",
    "save_checkpoint",
    "select_parameters",
    "train_replicas",
]
