"""conjugacy: identify equivalent training dynamics from Koopman spectra.

Implements the method of Redman et al., "Identifying Equivalent Training Dynamics" (NeurIPS 2024):
record weight trajectories, lift them with time delays, approximate the Koopman operator with
DMD-RRR, and compare Koopman eigenvalues.
"""

from importlib.metadata import PackageNotFoundError, version

from .observables import PCAProjection, delay_embed, fit_pca
from .spectrum import Spectrum, koopman_spectrum

try:
    __version__ = version("conjugacy")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "PCAProjection",
    "Spectrum",
    "__version__",
    "delay_embed",
    "fit_pca",
    "koopman_spectrum",
]
