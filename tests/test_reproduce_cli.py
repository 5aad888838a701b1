"""``conjugacy reproduce``: one table of commands whose options come from the configs' declared
domains, one error path (exit 2) and one output-folder check for every command that writes."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from conjugacy._checks import Choice, Int
from conjugacy.cli import app
from conjugacy.cli.reproduce import EXPERIMENTS, Experiment, Opt, _config_class, build_command

runner = CliRunner()
REPRODUCE = ("cnn", "fcn", "grokking", "optimizers", "spectral-dynamics")


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_reproduce_lists_every_experiment_without_importing_them():
    code = ("import sys; from typer.testing import CliRunner; from conjugacy.cli import app; "
            "r = CliRunner().invoke(app, ['reproduce', '--help']); print(r.output); "
            "print(sorted(m for m in sys.modules if m.startswith('conjugacy.experiments.') "
            "or m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert all(name in out.stdout for name in REPRODUCE)
    assert out.stdout.strip().endswith("[]"), out.stdout


def test_the_table_holds_every_reproduce_command():
    assert tuple(EXPERIMENTS) == REPRODUCE


@pytest.mark.parametrize("name", REPRODUCE)
def test_options_take_their_domain_from_the_config(name):
    if name != "optimizers":
        pytest.importorskip("torch")
    exp = EXPERIMENTS[name]
    command = build_command(exp)
    constraints = _config_class(exp.config).constraints
    options = {p.name: p for p in command.params}
    for opt in exp.options:
        if opt.field is None:
            continue
        domain = constraints[opt.field]
        param = options[opt.param]
        if domain.kind == "int":
            want = domain.minimum if opt.minimum is None else opt.minimum
            bounds = param.metavar.removeprefix("<int range> [").removesuffix("]")
            assert bounds in (f"x>={want}", f"{want}<=x<={domain.maximum}"), (name, opt.param)
        item = domain.item if domain.kind == "tuple" else domain
        if item.kind == "choice":
            assert param.metavar == f"<{'|'.join((*item.choices, *opt.extra_choices))}>"


@dataclass(frozen=True)
class ToyConfig:
    n: int = 2
    mode: str = "slow"
    constraints: ClassVar[dict[str, Any]] = {"n": Int(3), "mode": Choice("slow", "fast")}


def test_a_new_bound_in_the_config_is_the_option_bound(monkeypatch):
    seen = {}
    exp = Experiment("toy", "A toy.", f"{__name__}:ToyConfig",
                     (Opt("n", "--n", "How many.", field="n"),
                      Opt("mode", "--mode", "How.", "slow", field="mode")), seen.update)
    monkeypatch.setitem(EXPERIMENTS, "toy", exp)
    ok = runner.invoke(app, ["reproduce", "toy", "--n", "3", "--mode", "fast"])
    assert ok.exit_code == 0, ok.output
    assert seen == {"n": 3, "mode": "fast"}  # plain values, not Enum members
    for n in ("2", "+3"):  # the command line's one rule of numbers: no sign
        bad = runner.invoke(app, ["reproduce", "toy", "--n", n])
        assert _error_line(bad) == (f"error: Invalid value for '--n': must be an integer >= 3, "
                                    f"got '{n}' (see `conjugacy reproduce toy --help`)")
    bad = runner.invoke(app, ["reproduce", "toy", "--mode", "medium"])
    assert _error_line(bad) == "error: --mode must be one of 'slow', 'fast', got 'medium'"
    assert "A toy." in runner.invoke(app, ["reproduce", "--help"]).output


@dataclass(frozen=True)
class HelpConfig:
    n: int = 2
    constraints: ClassVar[dict[str, Any]] = {
        "n": Int(1, help="How many ``things`` (:func:`conjugacy.koopman_spectrum`).")}


def test_an_option_without_help_shows_its_field_s_help_as_plain_text(monkeypatch):
    exp = Experiment("toy", "A toy.", f"{__name__}:HelpConfig",
                     (Opt("n", "--n", field="n"), Opt("m", "--m", "Own words.", field="n")),
                     lambda v: None)
    monkeypatch.setitem(EXPERIMENTS, "toy", exp)
    command = build_command(exp)
    helps = {p.name: p.help for p in command.params}
    assert helps == {"n": "How many things (conjugacy.koopman_spectrum).", "m": "Own words."}
    bare = Experiment("bare", "Bare.", f"{__name__}:ToyConfig", (Opt("n", "--n", field="n"),),
                      lambda v: None)
    with pytest.raises(ValueError, match="option --n needs help"):
        build_command(bare)


@pytest.mark.parametrize("name", REPRODUCE)
def test_every_reproduce_command_refuses_a_file_as_out_with_exit_2(name, tmp_path, monkeypatch):
    if name != "optimizers":
        pytest.importorskip("torch")
    module = __import__(f"conjugacy.experiments.{name.replace('-', '_')}", fromlist=["run"])

    def must_not_run(*args, **kwargs):
        raise AssertionError("the output folder is checked before anything runs")

    monkeypatch.setattr(module, "run", must_not_run)
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    for out in (target, target / "sub"):
        line = _error_line(runner.invoke(app, ["reproduce", name, "--out", str(out)]))
        assert "--out" in line and "exists and is not a folder" in line and str(out) in line


def test_reproduce_optimizers_run_errors_exit_2_not_1(tmp_path, monkeypatch):
    import conjugacy.experiments.optimizers as optimizers

    def broken(config, out=None):
        raise ValueError("the spectra could not be fitted")

    monkeypatch.setattr(optimizers, "run", broken)
    result = runner.invoke(app, ["reproduce", "optimizers", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "error: the spectra could not be fitted" in result.output
    assert "Traceback" not in result.output


def test_config_errors_of_reproduce_commands_are_one_line(tmp_path):
    pytest.importorskip("torch")
    line = _error_line(runner.invoke(app, ["reproduce", "grokking", "--seeds", "1", "--out",
                                           str(tmp_path / "g")]))
    assert "--seeds must be an integer >= 2, got 1" in line
    line = _error_line(runner.invoke(app, ["reproduce", "fcn", "--widths", "5,x", "--out",
                                           str(tmp_path / "f")]))
    assert "--widths must be a comma-separated list of positive integers" in line


def test_commands_that_write_share_the_output_folder_check(tmp_path):
    import numpy as np

    from conjugacy import koopman_spectrum
    from conjugacy.analysis import summarize
    from conjugacy.results import write_json

    afile = tmp_path / "afile"
    afile.write_text("x")
    # report reads its results.json (schema and sizes) before the output folder: a valid one
    rng = np.random.default_rng(0)
    spectra = {c: [koopman_spectrum(rng.standard_normal((2, 20, 3)).cumsum(axis=1), rank=3)
                   for _ in range(2)] for c in ("a", "b")}
    results = write_json(tmp_path / "results.json", summarize(spectra, experiment="toy").to_dict())
    line = _error_line(runner.invoke(app, ["report", str(results), "--out", str(afile)]))
    assert "exists and is not a folder" in line
    line = _error_line(runner.invoke(app, ["spectrum", str(results), "--out",
                                           str(afile / "s.npz")]))
    assert "exists and is not a folder" in line
    line = _error_line(runner.invoke(app, ["spectrum", str(results), "--out",
                                           str(tmp_path / "missing" / "s.npz")]))
    assert "does not exist" in line and "--out" in line
    line = _error_line(runner.invoke(app, ["spectrum", str(results), "--out", str(tmp_path)]))
    assert "is a folder; give a file name" in line


def test_store_errors_are_one_line_exit_2(tmp_path):
    line = _error_line(runner.invoke(app, ["store", "ls", str(tmp_path / "nothing")]))
    assert str(tmp_path / "nothing") in line


def _grokking_configs(monkeypatch) -> dict:
    """``reproduce grokking`` stops after building its config, kept in the returned dict."""
    pytest.importorskip("torch")
    import conjugacy.experiments.grokking as grokking

    seen = {}

    def capture(config, out, **kwargs):
        seen["config"] = config
        raise ValueError("stop after the config")

    monkeypatch.setattr(grokking, "run", capture)
    return seen


def test_grokking_eval_every_reaches_the_config_within_its_bounds(tmp_path, monkeypatch):
    seen = _grokking_configs(monkeypatch)
    out = str(tmp_path / "g")
    line = _error_line(runner.invoke(app, ["reproduce", "grokking", "--eval-every", "20",
                                           "--out", out]))
    assert "stop after the config" in line
    assert seen["config"].eval_every == 20 and seen["config"].n_replicas == 10
    runner.invoke(app, ["reproduce", "grokking", "--scale", "paper", "--out", out])
    assert seen["config"].eval_every == 1  # the paper preset's value when not given
    for bad in ("0", "65"):  # the declared domain [1, 64]: one store chunk of records
        result = runner.invoke(app, ["reproduce", "grokking", "--eval-every", bad, "--out", out])
        assert result.exit_code == 2 and "--eval-every" in result.output


def test_grokking_train_fraction_reaches_the_config(tmp_path, monkeypatch):
    """The 40 % split that reaches the grokking onset on a CPU (docs/results_grokking.md) is one
    option; 0 and 1 are outside the declared open interval: one line, exit 2."""
    seen = _grokking_configs(monkeypatch)
    out = str(tmp_path / "g")
    runner.invoke(app, ["reproduce", "grokking", "--train-fraction", "0.4", "--out", out])
    assert seen["config"].train_fraction == 0.4
    runner.invoke(app, ["reproduce", "grokking", "--out", out])
    assert seen["config"].train_fraction == 0.3  # the paper's, when not given
    for bad in ("0", "1", "1.5"):
        result = runner.invoke(app, ["reproduce", "grokking", "--train-fraction", bad,
                                     "--out", out])
        assert result.exit_code == 2 and "train_fraction" in result.output.replace("-", "_")


def test_spectral_dynamics_reads_cifar10_from_the_command_line(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("zarr")
    import json

    from test_spectral_dynamics import _write_tiny_cifar

    _write_tiny_cifar(tmp_path / "cifar", n_per_file=100)  # 500 train, 100 test images
    r = runner.invoke(app, ["reproduce", "spectral-dynamics", "--scale", "tiny", "--data", "cifar10",
                            "--data-dir", str(tmp_path / "cifar"), "--seeds", "1",
                            "--no-figures", "--no-progress", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())["sections"]["data"]
    assert (data["name"], data["n_train"], data["n_test"]) == ("cifar10", 500, 100)


@pytest.mark.parametrize(("args", "match"), [
    (["--data", "cifar10"], "needs data_dir"),
    (["--data", "cifar10", "--data-dir", "/nonexistent-folder"], "is not a folder"),
    (["--data", "digits", "--n-train", "1000"], "MNIST sample only"),
    (["--data", "digits", "--data-dir", "."], "with --data cifar10 only"),
    (["--data-dir", "."], "with --data cifar10 only"),
])
def test_spectral_dynamics_data_options_fail_in_one_line(tmp_path, args, match):
    pytest.importorskip("torch")
    r = runner.invoke(app, ["reproduce", "spectral-dynamics", *args, "--out", str(tmp_path / "o")])
    assert match in _error_line(r)


def _stop_at_run(monkeypatch, name: str) -> list:
    """``reproduce <name>``'s experiment ``run`` replaced: records its call and stops there."""
    if name != "optimizers":
        pytest.importorskip("torch")
    module = __import__(f"conjugacy.experiments.{name.replace('-', '_')}", fromlist=["run"])
    calls = []

    def stop(*args, **kwargs):
        calls.append(args)
        raise ValueError("reached the run")

    monkeypatch.setattr(module, "run", stop)
    return calls


@pytest.mark.parametrize("name", REPRODUCE)
def test_the_folder_of_another_experiment_is_refused_before_any_work(name, tmp_path,
                                                                    monkeypatch):
    """``reproduce fcn --out`` the folder of ``reproduce optimizers`` overwrote its results.json:
    another experiment's results.json or study.json is refused, naming --out, before the run
    (and before the optimizers' header); the experiment's own folder goes on to the run."""
    import json

    calls = _stop_at_run(monkeypatch, name)
    other = "fcn" if name == "optimizers" else "optimizers"
    for file, key in (("results.json", "experiment"), ("study.json", "study")):
        out = tmp_path / file
        out.mkdir()
        content = json.dumps({key: other, "verdicts": {"a-b": "conjugate"}})
        (out / file).write_text(content)
        line = _error_line(runner.invoke(app, ["reproduce", name, "--out", str(out)]))
        what = "results" if key == "experiment" else "training"
        assert line == (f"error: --out {str(out)!r} holds the {what} of {other!r}, not of "
                        f"{name!r}: give another --out, or delete that folder")
        assert (out / file).read_text() == content and [p.name for p in out.iterdir()] == [file]
    assert calls == []
    own = tmp_path / "own"
    own.mkdir()
    (own / "results.json").write_text(json.dumps({"experiment": name}))
    result = runner.invoke(app, ["reproduce", name, "--out", str(own)])
    assert result.exit_code == 2 and len(calls) == 1  # a rerun resumes (optimizers: the header)
    assert result.output.splitlines()[-1] == "error: reached the run"


@pytest.mark.parametrize(("name", "args", "want"), [
    ("fcn", ["--scheduler", "bogus"], "error: --scheduler must be a Dask scheduler address such "
     "as 'tcp://host:8786', 'tls://host:8786' or 'host:8786', got 'bogus'"),
    ("cnn", ["--steps", "40"], "error: --steps=40 gives 41 records, fewer than one window of 100"),
    ("grokking", ["--seeds", "1"], "error: --seeds must be an integer >= 2, got 1"),
    ("fcn", ["--scale", "paper", "--scheduler", "x"], "error: --scheduler must be a Dask "
     "scheduler address such as 'tcp://host:8786', 'tls://host:8786' or 'host:8786', got 'x'"),
    ("optimizers", ["--out", "/proc/conjugacy-x"], "error: --out '/proc/conjugacy-x' cannot be "
     "created (No such file or directory): give another --out"),
])
def test_option_errors_name_the_option_and_make_no_folder(name, args, want, tmp_path,
                                                          monkeypatch):
    """A bad --scheduler, a config error of --steps or --seeds (named as the option, not as the
    config field: n_steps, n_seeds) and an --out that cannot be made: one line before the run,
    nothing printed before it, no folder made."""
    if name == "fcn":
        pytest.importorskip("dask.distributed")
    if "--out" in args and not Path("/proc").is_dir():
        pytest.skip("needs /proc")
    calls = _stop_at_run(monkeypatch, name)
    out = ["--out", str(tmp_path / "out")] if "--out" not in args else []
    result = runner.invoke(app, ["reproduce", name, *args, *out])
    assert _error_line(result) == want and calls == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("command", "source"), [("analyze", "."), ("analyze", ".."),
                                                 ("spectral-dynamics", ".")])
def test_a_store_named_from_inside_is_not_written_into(command, source, tmp_path, monkeypatch):
    """``conjugacy analyze .`` run inside a store wrote ``_analysis/`` into the store (the
    default folder beside ``.`` is inside it): one line naming --out, nothing written."""
    pytest.importorskip("zarr")
    from conjugacy.analysis.demo import decay_store

    store = decay_store(tmp_path / "runs.zarr", n_seeds=2, n_records=12)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    inner = next(p for p in sorted(Path(store).iterdir()) if p.is_dir())
    monkeypatch.chdir(store if source == "." else inner)
    line = _error_line(runner.invoke(app, [command, source]))
    assert line.startswith("error: the default output folder ") and "would be inside the store" in line
    assert "give --out" in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_bad_choice_names_the_option_and_the_choices(tmp_path):
    """``reproduce optimizers --loss bogus`` said "Value error, 'bogus' is not one of ..."."""
    for args, want in ((["optimizers", "--loss", "bogus"], "--loss must be one of 'tan', "
                        "'quartic', got 'bogus'"),
                       (["optimizers", "--method", "RRR"], "--method must be one of 'rrr', 'standard', "
                        "'exact', got 'RRR'")):
        result = runner.invoke(app, ["reproduce", *args, "--out", str(tmp_path / "o")])
        assert _error_line(result) == f"error: {want}"
    assert list(tmp_path.iterdir()) == []
