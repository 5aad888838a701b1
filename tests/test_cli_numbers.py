"""One rule for the number options of every command (issue 19, "one error path"): the text of an
int or float option is ASCII digits (``conjugacy.cli._errors.number_option``), checked by the
package's domain, and anything else is one line naming the option, exit status 2, in every
command alike (``analyze --delays +3`` ran, ``spectrum --delays +3`` stopped; ``--rank ٣`` meant
3)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from conjugacy.cli import app

runner = CliRunner()

#: Every int option of the app's commands (``reproduce``'s excepted: built from the experiments'
#: configs in cli/reproduce.py) with what it accepts; a new one must be added here.
INT_OPTIONS = {
    ("analyze", "--window"): 4,
    ("analyze", "--delays"): 0,
    ("analyze", "--bootstrap"): 0,
    ("analyze", "--seed"): 0,
    ("spectrum", "--pca"): 1,
    ("test", "--permutations"): 1,
    ("test", "--seed"): 0,
    ("spectral-dynamics", "--max-rank"): 1,
}

#: Every float option of the app's commands with what it accepts (the package's domains:
#: ``--alpha`` is ``_checks.UNIT_INTERVAL``, check_unit_interval's rule).
FLOAT_OPTIONS = {
    ("analyze", "--alpha"): "in (0, 1)",
    ("test", "--alpha"): "in (0, 1)",
    ("compare", "--p"): "finite and >= 1",
}

#: Texts Python's int() reads (all but the last two) that the rule refuses.
NOT_INTEGERS = ("+3", "1_0", "\u0663", " \u0663 ", "\xa05", "5\n", "3.0", "three", "")


def _commands() -> dict[str, typer.core.TyperCommand]:
    group = typer.main.get_command(app)
    found = {}
    for name, cmd in group.commands.items():
        if name == "reproduce":
            continue
        subs = getattr(cmd, "commands", None)
        for sub, c in (subs.items() if subs else [("", cmd)]):
            found[f"{name} {sub}".strip()] = c
    return found


def _numeric_options(kind: type) -> set[tuple[str, str]]:
    """(command, option) of every option whose declared type is ``kind`` (or ``kind | None``)."""
    out = set()
    for name, cmd in _commands().items():
        for p in cmd.params:
            annotation = p.type_descriptor.annotation
            if p.param_type_name == "option" and annotation is kind:
                out.add((name, p.opts[0]))
    return out


def _args(command: str, option: str, value: str) -> list[str]:
    """The command line of ``command`` with ``option value`` first, then its required inputs."""
    cmd = _commands()[command]
    args = [*command.split(), option, value]
    for p in cmd.params:
        if p.required:
            args += ["x"] if p.param_type_name == "argument" else [p.opts[0], "x"]
    return args


def _refused(command: str, option: str, text: str, accepted: str) -> None:
    """``command option text`` exits 2 with the one line naming the option and what it takes."""
    got = runner.invoke(app, _args(command, option, text))
    assert got.exit_code == 2, (command, option, text, got.output)
    assert got.output == (f"error: Invalid value for '{option}': must be {accepted}, got "
                          f"{text!r} (see `conjugacy {command} --help`)\n"), (command, option, text)


def test_every_int_option_is_listed():
    assert _numeric_options(int) == set(INT_OPTIONS)


def test_every_int_option_refuses_what_is_not_ascii_digits_in_one_line():
    for (command, option), minimum in INT_OPTIONS.items():
        for bad in (*NOT_INTEGERS, str(minimum - 1)):
            _refused(command, option, bad, f"an integer >= {minimum}")


def test_every_int_option_takes_digits_as_an_int():
    for (command, option), minimum in INT_OPTIONS.items():
        cmd = _commands()[command]
        for text, value in ((str(minimum), minimum), (f" {minimum + 12} ", minimum + 12)):
            ctx = cmd.make_context(command, _args(command, option, text)[len(command.split()):])
            got = ctx.params[option.lstrip("-").replace("-", "_")]
            assert got == value and type(got) is int, (command, option, text, got)


def test_every_float_option_is_listed():
    assert _numeric_options(float) == set(FLOAT_OPTIONS)


def test_alpha_is_the_open_unit_interval_in_every_command_in_one_line():
    """``--alpha nan`` said "Input should be less than or equal to 1", ``analyze --alpha 0``
    "s1.zarr: alpha must be in (0, 1)" and ``test --alpha 0`` "must lie in (0, 1)"."""
    not_numbers = ("nan", "inf", "-inf", "1e999", "+0.5", "0,5", "0.0_5", "\u0660.\u0665",
                   "five", "")
    outside = {"--alpha": ("0", "0.0", "1", "1.0", "-0.5", "1.5"), "--p": ("0.5", "0", "-2")}
    for (command, option), domain in FLOAT_OPTIONS.items():
        for text in (*not_numbers, *outside[option]):
            _refused(command, option, text, domain)


def test_alpha_takes_numbers_in_the_open_interval():
    for command in ("analyze", "test"):
        cmd = _commands()[command]
        for text, value in (("0.01", 0.01), (" .5 ", 0.5), ("5e-2", 0.05), ("0.999", 0.999)):
            ctx = cmd.make_context(command, _args(command, "--alpha", text)[1:])
            assert ctx.params["alpha"] == value and type(ctx.params["alpha"]) is float
        ctx = cmd.make_context(command, _args(command, "--seed", "0")[1:])
        assert ctx.params["alpha"] == 0.05  # the default


def test_alpha_shows_the_open_interval_in_the_help():
    for command in ("analyze", "test"):
        got = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert got.exit_code == 0
        assert "--alpha <float range> [0<x<1]" in " ".join(got.output.split()), got.output


def test_analyze_passes_the_parsed_numbers(tmp_path, monkeypatch):
    """``analyze``'s integers and ``--alpha`` reach :func:`conjugacy.analyze` as parsed (values
    and types)."""
    import conjugacy.analysis.own_runs as own_runs

    seen = {}

    def analyze(store, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(own_runs, "analyze", analyze)
    got = runner.invoke(app, ["analyze", str(tmp_path), "--window", "12", "--delays", "0",
                              "--bootstrap", " 3", "--seed", "007", "--alpha", "0.25"])
    assert got.exit_code == 2 and "stop here" in got.output
    keys = ("window", "delays", "n_boot", "seed", "alpha")
    assert {k: (seen[k], type(seen[k])) for k in keys} == {
        "window": (12, int), "delays": (0, int), "n_boot": (3, int), "seed": (7, int),
        "alpha": (0.25, float)}


def test_delays_and_rank_read_integers_by_the_same_rule(tmp_path):
    """``spectrum --delays`` and ``--rank`` take their integers by the same rule: ``+3`` and
    other scripts' digits are refused as every int option refuses them."""
    for bad in ("+3", "1_0", "\u0663"):
        got = runner.invoke(app, ["spectrum", str(tmp_path / "z.npy"), "--delays", bad])
        assert got.exit_code == 2 and got.output == (
            f"error: Invalid value for '--delays': must be a non-negative integer or 'auto', "
            f"got {bad!r} (see `conjugacy spectrum --help`)\n")
        got = runner.invoke(app, ["spectrum", str(tmp_path / "z.npy"), "--rank", bad])
        assert got.exit_code == 2 and got.output == (
            f"error: --rank must be a positive integer, 'all' or 'svht', got {bad!r}\n")


def test_int_options_show_their_range_in_the_help():
    got = runner.invoke(app, ["analyze", "--help"], env={"COLUMNS": "200"})
    assert got.exit_code == 0
    text = " ".join(got.output.split())
    assert "--window <int range> [x>=4]" in text and "--seed <int range> [x>=0]" in text


def test_text_that_spells_no_number_is_not_unset_where_none_is_allowed(tmp_path):
    """``--long-steps`` / ``--n-train`` may be left unset (domain ``allow_none``): text that
    spells no number is refused, not read as unset (it started training)."""
    for command, option in (("grokking", "--long-steps"), ("spectral-dynamics", "--n-train")):
        for bad in ("+3", "1_0", "nan", "", "\xa05"):
            out = tmp_path / "out"
            got = runner.invoke(app, ["reproduce", command, option, bad, "--out", str(out)])
            assert got.exit_code == 2, (command, bad, got.output)
            assert got.output.count("\n") == 1 and f"'{option}'" in got.output, got.output
            assert f"got {bad!r}" in got.output and not out.exists(), got.output
