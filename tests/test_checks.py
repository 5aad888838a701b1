"""The declared parameter domains of conjugacy._checks (Param, validate) and the output-folder
check, and every experiment config against its declaration."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conjugacy._checks import (
    Choice,
    Float,
    Int,
    Param,
    check_choice,
    check_out_dir,
    check_seed,
    check_unit_interval,
    validate,
)

SPEC = {
    "n": Int(2),
    "rank": Int(1, allow_none=True),
    "every": Int(1, 64),
    "lr": Float(0, open_minimum=True),
    "alpha": Float(0, 1, open_minimum=True, open_maximum=True),
    "decay": Float(0),
    "mode": Choice("a", "b-c"),
    "flag": Param("bool"),
    "where": Param("path", allow_none=True),
    "widths": Param("tuple", item=Int(1, name="each width"), nonempty=True, distinct=True),
    "betas": Param("tuple", item=Float(0, 1, open_maximum=True), length=2),
}
GOOD = {"n": 2, "rank": None, "every": 64, "lr": 1, "alpha": 0.5, "decay": 0, "mode": "b-c",
        "flag": True, "where": Path("x"), "widths": [5, 10], "betas": (0.9, 0.98)}


def test_validate_returns_canonical_values():
    got = validate({**GOOD, "n": np.int64(3)}, SPEC)
    assert got["n"] == 3 and type(got["n"]) is int
    assert got["lr"] == 1.0 and type(got["lr"]) is float
    assert got["where"] == "x" and got["widths"] == (5, 10) and got["rank"] is None


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("n", 1, ValueError, "n must be an integer >= 2, got 1"),
        ("n", 2.0, TypeError, "n must be an integer, got 2.0 of type float"),
        ("n", True, TypeError, "n must be an integer, got True"),
        ("n", None, TypeError, "n must be an integer, got None"),
        ("rank", 0, ValueError, "rank must be >= 1 or None, got 0"),
        ("rank", "3", TypeError, "rank must be an integer or None, got '3'"),
        ("every", 65, ValueError, r"every must be an integer in \[1, 64\], got 65"),
        ("lr", 0, ValueError, "lr must be finite and > 0, got 0"),
        ("lr", np.inf, ValueError, "lr must be finite and > 0, got inf"),
        ("lr", "0.1", TypeError, "lr must be a real number, got '0.1'"),
        ("alpha", 1.0, ValueError, r"alpha must be in \(0, 1\), got 1.0"),
        ("decay", -1e-9, ValueError, "decay must be finite and >= 0"),
        ("mode", "c", ValueError, "mode must be one of 'a', 'b-c', got 'c'"),
        ("mode", None, ValueError, "mode must be one of 'a', 'b-c', got None"),
        ("flag", 1, TypeError, "flag must be a bool, got 1"),
        ("where", 3, TypeError, "where must be a path"),
        ("widths", (), ValueError, "widths must be a non-empty sequence"),
        ("widths", "5", TypeError, "widths must be a sequence"),
        ("widths", (5, 0), ValueError, "each width must be an integer >= 1, got 0"),
        ("widths", (5, 5), ValueError, r"widths must be distinct, got \(5, 5\)"),
        ("betas", (0.9,), ValueError, "betas must hold 2 items"),
        ("betas", (0.9, 1.0), ValueError, r"betas\[1\] must be in \[0, 1\), got 1.0"),
    ],
)
def test_one_error_names_the_field_the_value_and_the_domain(field, value, error, message):
    with pytest.raises(error, match=message):
        validate({**GOOD, field: value}, SPEC)


def test_a_choice_is_one_rule_for_fields_and_arguments():
    # check_choice and Choice(...).check: the same ValueError for any value outside the
    # choices, None included (None is a valid value only when a choice or allow_none says so)
    for check in (lambda v: check_choice(v, "mode", ("a", "b-c")),
                  lambda v: Choice("a", "b-c").check(v, "mode")):
        for bad in (None, "c", 1):
            with pytest.raises(ValueError) as err:
                check(bad)
            assert str(err.value) == f"mode must be one of 'a', 'b-c', got {bad!r}"
        assert check("b-c") == "b-c"
    assert check_choice(None, "shuffle", ("pooled", None)) is None
    assert Choice("a", allow_none=True).check(None, "mode") is None


def test_validate_sets_canonical_values_on_a_frozen_dataclass():
    @dataclass(frozen=True)
    class Config:
        n: int = 2
        widths: tuple[int, ...] = (5,)

        def __post_init__(self):
            validate(self, {"n": SPEC["n"], "widths": SPEC["widths"]})

    cfg = Config(n=np.int32(4), widths=[10, 5])
    assert cfg.n == 4 and type(cfg.n) is int and cfg.widths == (10, 5)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        Config(n=1)


def test_a_param_is_checked_when_declared():
    with pytest.raises(ValueError, match="kind must be one of"):
        Param("integer")
    with pytest.raises(ValueError, match="choices"):
        Param("choice")


def test_check_out_dir(tmp_path):
    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="--out .* it exists and is not a folder"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(NotADirectoryError, match=r"cannot be an output folder: '.*f' exists"):
        check_out_dir(tmp_path / "f" / "sub", "out_dir")


CONFIGS = [
    ("conjugacy.experiments.fcn", "FCNConfig"),
    ("conjugacy.experiments.cnn", "CNNConfig"),
    ("conjugacy.experiments.grokking", "GrokkingConfig"),
    ("conjugacy.experiments.optimizers", "OptimizerConfig"),
    ("conjugacy.experiments.spectral_dynamics", "SpectralConfig"),
]


def _config(module: str, name: str):
    if module != "conjugacy.experiments.optimizers":
        pytest.importorskip("torch")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("module", "name"), CONFIGS)
def test_every_config_field_has_a_declared_domain(module, name):
    cls = _config(module, name)
    assert set(cls.constraints) == {f.name for f in dataclasses.fields(cls)}
    cls()  # the defaults lie in their domains


@pytest.mark.parametrize(("module", "name"), CONFIGS)
def test_every_integer_field_refuses_a_float_and_a_value_below_its_minimum(module, name):
    cls = _config(module, name)
    for field, param in cls.constraints.items():
        if param.kind != "int":
            continue
        with pytest.raises(TypeError, match=f"^{field} must be an integer"):
            cls(**{field: 2.5})
        if param.minimum is not None:
            with pytest.raises(ValueError, match=f"^{field} must be "):
                cls(**{field: int(param.minimum) - 1})


@pytest.mark.parametrize(("module", "name"), CONFIGS)
def test_every_config_field_is_declared_once_with_its_help_in_the_docstring(module, name):
    cls = _config(module, name)
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == list(cls.constraints)  # the declaration order
    doc = inspect.getdoc(cls)
    for f in fields:
        param = f.metadata["param"]
        assert param is cls.constraints[f.name] and param.help, f.name
        assert f"\n{f.name} : {f.type}, default {f.default!r}\n" in doc, f.name
    assert doc.count("\nAttributes\n----------\n") == 1
    assert doc.index("\nAttributes\n") < doc.index("\nExamples\n")


def test_setting_declares_default_domain_and_help_once():
    from dataclasses import dataclass

    from conjugacy._checks import DeclaredConfig, Int, setting

    shared = Int(0, help="A shared seed.")

    @dataclass(frozen=True)
    class Toy(DeclaredConfig):
        """A toy.

        Examples
        --------
        >>> Toy().n
        2
        """

        n: int = setting(2, Int(1), "How many things, at least one.")
        seed: int = setting(0, shared)
        other: int = setting(0, shared, "Another seed.")

    assert Toy.constraints == {"n": Int(1, help="How many things, at least one."),
                               "seed": shared, "other": Int(0, help="Another seed.")}
    assert inspect.getdoc(Toy) == (
        "A toy.\n\nAttributes\n----------\nn : int, default 2\n    How many things, at least "
        "one.\nseed : int, default 0\n    A shared seed.\nother : int, default 0\n    Another "
        "seed.\n\nExamples\n--------\n>>> Toy().n\n2")
    with pytest.raises(ValueError, match="^n must be an integer >= 1, got 0$"):
        Toy(n=0)
    with pytest.raises(ValueError, match="a setting needs help"):
        setting(1, Int(1))


def test_declared_config_presets_are_data_with_overrides_checks_and_rules():
    from dataclasses import dataclass
    from types import MappingProxyType

    from conjugacy._checks import DeclaredConfig, Int

    @dataclass(frozen=True)
    class Toy(DeclaredConfig):
        n: int = 1
        m: int = 5
        scale: str = "custom"
        constraints = MappingProxyType({"n": Int(1), "m": Int(1)})
        scales = MappingProxyType({"quick": {"n": 2}, "paper": {"n": 7, "m": 9}})

        def check(self) -> None:
            if self.n > self.m:
                raise ValueError(f"n must be <= m, got {self.n} > {self.m}")

    assert Toy.quick() == Toy(n=2, scale="quick")
    assert Toy.paper(m=8) == Toy.preset("paper", m=8) == Toy(n=7, m=8, scale="paper")
    assert Toy.from_scale("quick", n=3).to_dict() == {"n": 3, "m": 5, "scale": "quick"}
    assert Toy(n=2).with_overrides(m=3) == Toy(n=2, m=3)
    with pytest.raises(ValueError, match=r"scale must be one of \('quick', 'paper'\), got 'huge'"):
        Toy.preset("huge")
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        Toy.quick(n=0)
    with pytest.raises(ValueError, match="n must be <= m"):
        Toy(n=2).with_overrides(m=1)


def test_cli_parse_rank_is_check_rank_plus_the_command_s_own_words(monkeypatch):
    # issue 20 review, defect 3: the CLI kept its own list of rank words; now the rules are
    # check_rank's (conjugacy.dmd.RANK_RULES), the command adds only its own words ("all")
    from conjugacy import dmd
    from conjugacy.cli._errors import UserError, parse_rank

    assert parse_rank(" SVHT ") == "svht" and parse_rank("7") == 7 and parse_rank(None) is None
    assert parse_rank("All", ("all",)) == "all"
    for bad in ("0", "-2", "ten", "1_0", "3.0", "all"):
        with pytest.raises(UserError) as err:
            parse_rank(bad)
        assert str(err.value) == f"--rank must be a positive integer or 'svht', got {bad!r}"
    with pytest.raises(UserError) as err:
        parse_rank("x", ("all",))
    assert str(err.value) == "--rank must be a positive integer, 'all' or 'svht', got 'x'"
    monkeypatch.setattr(dmd, "RANK_RULES", ("svht", "elbow"))  # a new rule reaches the CLI
    assert parse_rank("ELBOW") == "elbow"


def test_rank_param_takes_what_analyze_takes():
    # issue 20 review, defect 3: a config's rank field can take "svht" and None as analyze does
    from dataclasses import dataclass
    from types import MappingProxyType

    from conjugacy._checks import DeclaredConfig, Rank

    @dataclass(frozen=True)
    class Toy(DeclaredConfig):
        rank: int | str | None = 10
        constraints = MappingProxyType({"rank": Rank()})

    assert [Toy(rank=r).rank for r in (" SVHT", 7, None)] == ["svht", 7, None]
    with pytest.raises(ValueError, match=r"rank must be >= 1, got 0"):
        Toy(rank=0)
    with pytest.raises(ValueError, match=r"rank must be a positive int, None or one of \['svht'\]"):
        Toy(rank="elbow")
    with pytest.raises(TypeError, match="rank must be a positive integer or one of 'svht', got None"):
        Rank(allow_none=False).check(None, "rank")


def test_unit_interval_and_seed_rules_name_the_argument():
    assert check_unit_interval(np.float32(0.25), "alpha") == 0.25
    assert check_seed(np.int64(3)) == 3 and type(check_seed(np.int64(3))) is int
    for bad in (0, 1, 1.5, -0.1, float("nan")):  # a Float(0, 1) field's rule and messages
        with pytest.raises(ValueError) as err:
            check_unit_interval(bad, "level")
        assert str(err.value) == f"level must be in (0, 1), got {bad!r}"
    for bad in (True, "0.5"):
        with pytest.raises(TypeError) as err:
            check_unit_interval(bad, "level")
        assert str(err.value) == f"level must be a real number, got {bad!r}"
    with pytest.raises(ValueError) as err:
        check_seed(-1)
    assert str(err.value) == "seed must be a non-negative integer, got -1"
    for bad in (1.5, True, "3"):  # not an integer: a TypeError, as check_int's
        with pytest.raises(TypeError) as err:
            check_seed(bad)
        assert str(err.value) == (f"seed must be a non-negative integer, got {bad!r} of type "
                                  f"{type(bad).__name__}")
    gen = np.random.default_rng(0)
    assert check_seed(gen, generator=True) is gen and check_seed(None, generator=True) is None
    with pytest.raises(TypeError, match="^seed must be None, a non-negative integer or a numpy "
                                        "Generator, got 1.5 of type float$"):
        check_seed(1.5, generator=True)
    with pytest.raises(TypeError, match="got None of type NoneType"):
        check_seed(None)
