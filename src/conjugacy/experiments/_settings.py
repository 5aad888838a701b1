"""The settings several experiment configs share, declared once: each a :class:`Param` with its
domain and help, used as ``seed: int = setting(0, SEED)`` (:func:`conjugacy._checks.setting`)."""

from __future__ import annotations

from .._checks import Choice, Float, Int, Param, Rank

SEED = Int(0, help="Master seed of every random stream.")
N_SEEDS = Int(1, help="Independent seeds: base initializations, one spectrum per condition and "
                      "seed.")
N_REPLICAS = Int(2, help="Trajectories per seed, the base one included: the base initialization "
                         "``W0`` and perturbed copies ``W0 * (1 + eps * noise)``.")
EPS = Float(0, open_minimum=True, help="Relative perturbation of the replicas: "
                                       "``W0 * (1 + eps * noise)``.")
NOISE = Choice("uniform", "gaussian", help="The perturbation's noise: ``\"uniform\"`` in [-1, 1] "
                                           "(the reference code) or ``\"gaussian\"``.")
BATCH_SIZE = Int(1, help="Training examples per step.")
RANK_RULE = Rank(help="Koopman modes kept: a positive int, a rank rule (``\"svht\"``: the "
                      "Gavish-Donoho threshold) or None (the numerical-rank tolerance rule), as "
                      "``rank=`` of :func:`conjugacy.koopman_spectrum` takes them.")
DELAYS = Int(0, help="Time delays of the Koopman fit.")
N_PERMUTATIONS = Int(1, help="Random relabelings of the permutation test (exact enumeration "
                             "when fewer suffice).")
N_SHUFFLES = Int(1, help="Shuffles of the paper's control (distances between shuffled "
                         "spectra).")
DEVICE = Choice("cpu", "cuda", help="Torch device the networks train on.")
THREADS = Int(1, help="CPU threads for torch and BLAS during the run (one was fastest on 2 "
                      "shared cores: 2 threads made training 5-20x, the spectra ~10x slower).")
SCALE = Param("str", help="The preset the config came from (``\"quick\"``, ``\"paper\"``; "
                          "``\"custom\"``: built field by field); informational.")
DATA_DIR = Param("path", allow_none=True, help="Folder with the data files (``data=\"mnist\"``: "
                                                "the MNIST IDX files); never downloaded.")
N_TRAIN = Int(10, 4990, allow_none=True,
              help="Training images taken from the MNIST sample (``data=\"mnist-sample\"`` only): "
                   "a multiple of 10, the same number per class (the sample's stratified split, "
                   "seed 0; the rest is the test set). None: 4,000.")
