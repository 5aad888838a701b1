"""conjugacy: identify equivalent training dynamics from Koopman spectra.

Implements the method of Redman et al., "Identifying Equivalent Training Dynamics" (NeurIPS 2024):
record weight trajectories, lift them with time delays, approximate the Koopman operator with
DMD-RRR, and compare Koopman eigenvalues.
"""

from ._spectrum_io import SpectrumFileError
from ._version import __version__
from .compare import (
    EquivalenceClasses,
    WassersteinResult,
    distance_matrix,
    equivalence_classes,
    semiconjugacy_distance,
    wasserstein,
    wasserstein_plan,
)
from .observables import PCAProjection, delay_embed, fit_pca
from .spectral_dynamics import alignment, barrier, effective_rank, singular_vector_agreement
from .spectrum import RankWarning, Spectrum, koopman_spectrum
from .stats import (
    ConjugacyTestResult,
    KSResult,
    ShuffleControlResult,
    conjugacy_test,
    ks_test,
    shuffle_control,
)
from .uncertainty import (
    DistanceInterval,
    EigenvalueIntervals,
    bootstrap_distance,
    bootstrap_spectrum,
)
from .windows import TransitionResult, find_transitions, windowed_spectra

__all__ = [
    "AnalysisResults",
    "ConjugacyTestResult",
    "DistanceInterval",
    "EigenvalueIntervals",
    "EquivalenceClasses",
    "KSResult",
    "PCAProjection",
    "RankWarning",
    "Results",
    "ShuffleControlResult",
    "Spectrum",
    "SpectrumFileError",
    "TrajectoryStore",
    "TransitionResult",
    "WassersteinResult",
    "__version__",
    "alignment",
    "analyze",
    "barrier",
    "bootstrap_distance",
    "bootstrap_spectrum",
    "conjugacy_test",
    "delay_embed",
    "distance_matrix",
    "effective_rank",
    "equivalence_classes",
    "find_transitions",
    "fit_pca",
    "interpolation_losses",
    "koopman_spectrum",
    "ks_test",
    "semiconjugacy_distance",
    "shuffle_control",
    "singular_vector_agreement",
    "wasserstein",
    "wasserstein_plan",
    "windowed_spectra",
]


def __getattr__(name: str):
    # The store needs the optional `zarr` extra: import it only when asked for.
    if name == "TrajectoryStore":
        from .store import TrajectoryStore

        return TrajectoryStore
    if name == "interpolation_losses":  # needs torch
        from .torch.snapshots import interpolation_losses

        return interpolation_losses
    if name in ("analyze", "AnalysisResults", "Results"):  # reads a store: needs `store`
        from .analysis import own_runs

        return getattr(own_runs, name)
    raise AttributeError(f"module 'conjugacy' has no attribute {name!r}")
