"""Fig. S5 of the CNN study, per seed: do the per-epoch spectra settle? (issue 24).

See ``docs/results_cnn.md``.

The paper (Redman et al. 2024, fig. S5) fits one Koopman spectrum per epoch over 20 epochs and
shows the epoch x epoch W1 matrix. ``conjugacy reproduce cnn --scale paper`` writes only the mean
of that matrix over seeds (``results.json`` ``sections.s5``); this script refits the epoch
spectra from the run's stores (:func:`conjugacy.analysis.windowed.epoch_spectra`, the same fit),
checks that their mean matrix equals the run's, and reads them as the 700-iteration claim is
read (:func:`hypotheses_cnn.similarity_criteria`, windows = epochs): the between-seed floor per
epoch, the consecutive distances over the floor (mean and per seed), the distance of each epoch
to the last, where the lower-right block of mutually close epochs starts (mean and per seed,
within 1, 1.5 and 2 floors) and the trend of the consecutive distances.

Usage (from the repository root; ``RUN`` is the ``--out`` of the CNN run, ``--arch`` one of
its architectures, default ``lenet``; writes ``OUT``, a few KB of JSON, and prints a summary;
a run without fig. S5, i.e. without ``--scale paper`` or ``s5_epochs``, or without the
architecture, stops with one ``error:`` line and exit status 2)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/conjugacy reproduce cnn --arch lenet --scale paper \
        --out RUN
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/s5_epochs.py RUN OUT.json
    .venv/bin/python benchmarks/s5_epochs.py RUN OUT_resnet20.json --arch resnet20
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


ARCHS = ("lenet", "resnet20")


def load_run(run_dir: Path, arch: str = "lenet") -> dict[str, Any]:
    """The ``results.json`` content of the CNN run in ``run_dir``, checked to hold fig. S5 of
    ``arch`` (its ``sections.s5``, its ``archs`` entry and its store ``run_dir/<arch>``).

    Raises
    ------
    ValueError
        ``arch`` is not ``lenet`` or ``resnet20``; ``run_dir`` has no readable ``results.json``;
        the run has no fig. S5 (``s5_epochs`` 0: run ``--scale paper``) or not ``arch``.
    """
    if arch not in ARCHS:
        raise ValueError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    path = run_dir / "results.json"
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"RUN: cannot read {path} ({type(e).__name__}); give the --out folder "
                         "of `conjugacy reproduce cnn --scale paper`") from e
    if not content.get("config", {}).get("s5_epochs"):
        raise ValueError(f"RUN {run_dir} has no fig. S5 (s5_epochs is 0); rerun it with "
                         "`conjugacy reproduce cnn --scale paper` or s5_epochs > 0")
    if arch not in content.get("archs", {}) or arch not in content.get("sections", {}).get("s5", {}):
        raise ValueError(f"RUN {run_dir} has no {arch} (it has "
                         f"{', '.join(content.get('archs', {})) or 'none'}); choose --arch "
                         "accordingly or rerun the CNN study with that architecture")
    if not (run_dir / arch).is_dir():
        raise ValueError(f"RUN {run_dir} has no store folder {arch}/; the epoch spectra are "
                         "refitted from it")
    return content


def refit(run_dir: Path, content: dict[str, Any],
          arch: str = "lenet") -> dict[str, Any]:
    """The epoch spectra of every seed of ``arch`` in the run in ``run_dir`` (its
    ``results.json`` ``content``, see :func:`load_run`) and their :func:`window_distances`
    (windows = epochs)."""
    from conjugacy.analysis import SpectrumGroup
    from conjugacy.analysis.windowed import epoch_spectra, window_distances
    from conjugacy.study import StudyReader
    from conjugacy.torch.models import OBSERVED_LAYERS

    cfg, info = content["config"], content["archs"][arch]
    spe, n_epochs = int(info["steps_per_epoch"]), int(cfg["s5_epochs"])
    groups = [SpectrumGroup(arch, s, [f"{arch}_seed{s}_{i}" for i in range(info["n_replicas"])])
              for s in range(info["n_seeds"])]
    with StudyReader.open(run_dir / arch) as reader:
        spectra = epoch_spectra(reader, groups, OBSERVED_LAYERS[info["model"]], spe, n_epochs,
                                delays=cfg["delays"], rank=cfg["rank"], dtype=np.float64)
    windows = [(e * spe, (e + 1) * spe) for e in range(n_epochs)]
    return window_distances(spectra, windows, [f"epoch {e + 1}" for e in range(n_epochs)])


def read_s5(run_dir: Path, arch: str = "lenet") -> dict[str, Any]:
    """Everything this script writes for ``arch`` of the run in ``run_dir`` (see the module
    docstring); raises ``ValueError`` as :func:`load_run`."""
    c0 = _cpu()
    content = load_run(run_dir, arch)
    w = refit(run_dir, content, arch)
    saved = np.asarray(content["sections"]["s5"][arch]["mean_matrix"])
    same = bool(np.allclose(w["mean_matrix"], saved, rtol=1e-9, atol=1e-12))
    loss = np.asarray(content["windows"][arch]["loss"]["mean"])
    spe = int(content["archs"][arch]["steps_per_epoch"])
    return {"run": str(run_dir), "arch": arch, "config": content["config"],
            "steps_per_epoch": spe, "mean_matrix_equals_run": same,
            "epoch_loss": [float(loss[e * spe:(e + 1) * spe].mean())
                           for e in range(len(loss) // spe)],
            "mean_matrix": w["mean_matrix"], "findings": w["findings"],
            "mean_distance_to_other_windows": w["mean_distance_to_other_windows"],
            "criteria": similarity_criteria({"windows": {arch: w}}, arch),
            "per_seed": per_seed_settling(w),
            "transitions": w.get("transitions"),
            "transitions_noise_floor": w.get("transitions_noise_floor"),
            "refit_cpu_s": _cpu() - c0}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="Fig. S5 of a CNN run read per seed: refit the per-epoch spectra of one "
                    "architecture and write where the epochs settle (docs/results_cnn.md).")
    p.add_argument("run", type=Path, help="--out of `conjugacy reproduce cnn --scale paper`")
    p.add_argument("out", type=Path, help="JSON file to write")
    p.add_argument("--arch", default="lenet", choices=ARCHS,
                   help="the architecture whose epochs are read (default: lenet)")
    a = p.parse_args(argv)
    try:
        result = read_s5(a.run, a.arch)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(_round(result), indent=1) + "\n")
    print(json.dumps(_round({k: result[k] for k in ("arch", "mean_matrix_equals_run",
                                                   "epoch_loss", "findings", "criteria",
                                                   "per_seed", "refit_cpu_s")},
                            3)))


if __name__ == "__main__":
    main()
