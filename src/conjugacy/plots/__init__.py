"""Matplotlib figures of Koopman spectra, distances, losses and trajectories.

:mod:`conjugacy.plots.core` holds the reusable functions, re-exported here; experiments may add
their own submodules (``conjugacy.plots.<experiment>``) built on them. Nothing here uses ``pyplot``
or changes global Matplotlib state.
"""

# ruff: noqa: E402 - the check below must run before the imports that need the extra
from .._launch import require

# without the extra: one line naming it (pip install 'conjugacy[...]'), not a bare
# ModuleNotFoundError from deep inside; the imports below need it
require("matplotlib", "import conjugacy.plots")

from . import core
from .core import *  # noqa: F403  (the public names, listed once: core.__all__)

__all__ = list(core.__all__)
