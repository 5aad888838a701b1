"""Fig. S5 of the CNN study read per seed: do the per-epoch spectra settle? (issue 24,
``docs/results_cnn.md``).

The paper (Redman et al. 2024, fig. S5) fits one Koopman spectrum per epoch over 20 epochs and
shows the epoch x epoch W1 matrix. ``conjugacy reproduce cnn --scale paper`` writes only the mean
of that matrix over seeds (``results.json`` ``sections.s5``); this script refits the epoch
spectra from the run's stores (:func:`conjugacy.analysis.windowed.epoch_spectra`, the same fit),
checks that their mean matrix equals the run's, and reads them as the 700-iteration claim is
read (:func:`hypotheses_cnn.similarity_criteria`, windows = epochs): the between-seed floor per
epoch, the consecutive distances over the floor (mean and per seed), the distance of each epoch
to the last, where the lower-right block of mutually close epochs starts (mean and per seed,
within 1, 1.5 and 2 floors) and the trend of the consecutive distances.

Usage (from the repository root; ``RUN`` is the ``--out`` of the CNN run; writes ``OUT``, a few
KB of JSON, and prints a summary)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/conjugacy reproduce cnn --arch lenet --scale paper \
        --out RUN
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/s5_epochs.py RUN OUT.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from hypotheses_cnn import _late_block_start, similarity_criteria  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _round(x: Any, digits: int = 5) -> Any:
    """Floats (also nested in lists and dicts) to ``digits`` significant digits."""
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, list):
        return [_round(v, digits) for v in x]
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    return x


def per_seed_settling(w: dict[str, Any]) -> list[dict[str, Any]]:
    """Per seed: its consecutive epoch distances over the floor (the mean between-seed W1 within
    an epoch) and the first epoch of its lower-right block of epochs mutually within k floors
    (k = 1, 1.5, 2), from ``w`` as :func:`conjugacy.analysis.windowed.window_distances`."""
    floor, labels = float(w["noise_floor"]), w["labels"]
    out = []
    for m in w["per_seed_matrices"]:
        m = np.asarray(m, dtype=float)
        out.append({"consecutive_over_floor": (np.diag(m, 1) / floor).tolist(),
                    "late_block_start": {str(k): labels[_late_block_start(m, k * floor)]
                                         for k in (1.0, 1.5, 2.0)}})
    return out


def refit(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The epoch spectra of every LeNet seed of the run in ``run_dir``, their
    :func:`window_distances` (windows = epochs) and the run's ``results.json`` content."""
    from conjugacy.analysis import SpectrumGroup
    from conjugacy.analysis.windowed import epoch_spectra, window_distances
    from conjugacy.study import StudyReader
    from conjugacy.torch.models import OBSERVED_LAYERS

    content = json.loads((run_dir / "results.json").read_text())
    cfg, info = content["config"], content["archs"]["lenet"]
    spe, n_epochs = int(info["steps_per_epoch"]), int(cfg["s5_epochs"])
    groups = [SpectrumGroup("lenet", s, [f"lenet_seed{s}_{i}" for i in range(info["n_replicas"])])
              for s in range(info["n_seeds"])]
    with StudyReader.open(run_dir / "lenet") as reader:
        spectra = epoch_spectra(reader, groups, OBSERVED_LAYERS[info["model"]], spe, n_epochs,
                                delays=cfg["delays"], rank=cfg["rank"], dtype=np.float64)
    windows = [(e * spe, (e + 1) * spe) for e in range(n_epochs)]
    w = window_distances(spectra, windows, [f"epoch {e + 1}" for e in range(n_epochs)])
    return w, content


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="--out of `conjugacy reproduce cnn --scale paper`")
    p.add_argument("out", type=Path, help="JSON file to write")
    a = p.parse_args(argv)
    c0 = _cpu()
    w, content = refit(a.run)
    saved = np.asarray(content["sections"]["s5"]["lenet"]["mean_matrix"])
    same = bool(np.allclose(w["mean_matrix"], saved, rtol=1e-9, atol=1e-12))
    crit = similarity_criteria({"windows": {"lenet": w}})
    loss = np.asarray(content["windows"]["lenet"]["loss"]["mean"])
    spe = int(content["archs"]["lenet"]["steps_per_epoch"])
    result = {"run": str(a.run), "config": content["config"],
              "steps_per_epoch": spe, "mean_matrix_equals_run": same,
              "epoch_loss": [float(loss[e * spe:(e + 1) * spe].mean())
                             for e in range(len(loss) // spe)],
              "mean_matrix": w["mean_matrix"], "findings": w["findings"],
              "mean_distance_to_other_windows": w["mean_distance_to_other_windows"],
              "criteria": crit, "per_seed": per_seed_settling(w),
              "transitions": w.get("transitions"),
              "transitions_noise_floor": w.get("transitions_noise_floor"),
              "refit_cpu_s": _cpu() - c0}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(_round(result), indent=1))
    print(json.dumps(_round({k: result[k] for k in ("mean_matrix_equals_run", "epoch_loss",
                                                   "findings", "criteria", "per_seed",
                                                   "refit_cpu_s")},
                            3)))


if __name__ == "__main__":
    main()
