"""Hostile user strings through the command line (issue 26, item 2): condition labels, parameter
names, metadata, file and folder names holding terminal control sequences (``ESC[31m`` recolours,
``ESC[2K`` erases the line, the OSC ``ESC]0;TITLE BEL`` retitles the window), C1 controls, a bidi
override and Rich markup. No control character of them may reach stdout or stderr: each is shown
as an escape (``\\x1b``), and markup is shown as text. One function does it:
:func:`conjugacy._text.shown`; the Markdown report uses it too."""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("typer")

from typer.testing import CliRunner  # noqa: E402

from conjugacy._text import shown  # noqa: E402
from conjugacy.cli import app  # noqa: E402
from conjugacy.store import TrajectoryStore  # noqa: E402

runner = CliRunner()
RED, ERASE, TITLE = "\x1b[31m", "\x1b[2K", "\x1b]0;PWNED-TITLE\x07"
C1_CSI, BIDI = "\x9b31m", "\u202e"
HOSTILE_A = f"adam{RED}RED{ERASE}{BIDI}[link=https://e.example]hidden[/link]:smile:"
HOSTILE_B = f"sgd{TITLE}{C1_CSI}[/lr]"
#: characters a terminal acts on (newline aside) or that reorder the text shown
_ACTING = {"Cc", "Cf", "Zl", "Zp"}


def controls(text: str) -> list[str]:
    """The control and format characters in ``text`` other than newline."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in _ACTING]


def _out(result) -> str:  # noqa: ANN001
    """stdout and stderr as the terminal gets them (Click's runner interleaves them in output)."""
    return result.output


# ----- the one function --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    (RED, "\\x1b[31m"),
    (TITLE, "\\x1b]0;PWNED-TITLE\\x07"),
    (C1_CSI, "\\x9b31m"),
    ("\x7f\x00\t\n\r", "\\x7f\\x00\\x09\\x0a\\x0d"),
    (BIDI + "\u2066\u200b\u2028", "\\u202e\\u2066\\u200b\\u2028"),
    ("\udcff", "\\udcff"),  # an undecodable byte of a file name
    ("é中 😀 plain-text_1.0", "é中 😀 plain-text_1.0"),
])
def test_shown_escapes_each_control_character(text: str, expected: str) -> None:
    assert shown(text, markup=False) == expected
    assert not controls(shown(text))


def test_shown_escapes_rich_markup() -> None:
    assert shown("[link=https://e.example]x[/link] sgd[/lr]") == (
        "\\[link=https://e.example]x\\[/link] sgd\\[/lr]")
    assert shown("[bold]b[/bold]", markup=False) == "[bold]b[/bold]"


# ----- the commands ------------------------------------------------------------------------------
def _store(path, n_seeds: int = 3, n_rec: int = 30):  # noqa: ANN001, ANN202
    """Two conditions with hostile labels, a parameter and metadata with hostile names."""
    rng = np.random.default_rng(0)
    c_mat = rng.standard_normal((6, 3))
    eigs = np.array([0.9, 0.7, 0.5])
    param = f"layer[0].w{RED}{BIDI}"
    with TrajectoryStore.open(path, "w") as st:
        for cond in (HOSTILE_A, HOSTILE_B):
            for s in range(n_seeds):
                name = f"r{len(st.runs()):02d}"
                x = (rng.standard_normal(3) * eigs ** np.arange(n_rec)[:, None]) @ c_mat.T
                x += 1e-3 * rng.standard_normal(x.shape)
                st.create_run(name, {param: ((6,), "float64")},
                              metadata={"condition": cond, "seed": s, f"note{TITLE}": HOSTILE_B})
                st.append(name, np.arange(n_rec), {param: x})
                if s:  # one unfinished run per condition: a warning names it
                    st.set_finished(name)
    return path, param


def test_analyze_report_and_store_commands_escape_every_user_string(tmp_path) -> None:
    store, param = _store(tmp_path / "s.zarr")
    out = tmp_path / f"out{TITLE}{RED}"
    got = runner.invoke(app, ["analyze", str(store), "--out", str(out), "--delays", "1",
                              "--rank", "3"])
    said = _out(got)
    assert got.exit_code == 0, said
    assert not controls(said), said
    flat = "".join(said.split())
    assert "adam\\x1b[31mRED\\x1b[2K\\u202e[link=https://e.example]hidden[/link]:smile:vs" in flat
    assert "sgd\\x1b]0;PWNED-TITLE\\x07\\x9b31m[/lr]" in flat
    assert "out\\x1b]0;PWNED-TITLE\\x07\\x1b[31m" in flat  # the output folder

    md = (out / "report.md").read_text(encoding="utf-8")
    assert not controls(md)
    # control characters as escapes, then Markdown syntax escaped (a backslash too)
    assert ("adam\\\\x1b\\[31mRED\\\\x1b\\[2K\\\\u202e\\[link=https://e.example\\]hidden"
            "\\[/link\\]:smile:") in md

    got = runner.invoke(app, ["report", str(out / "results.json")])
    assert got.exit_code == 0, _out(got)
    assert not controls(_out(got))
    assert "out\\x1b]0;PWNED-TITLE\\x07" in "".join(_out(got).split())

    for args in (["store", "ls", str(store)], ["store", "show", str(store), "r00"],
                 ["store", "verify", str(store)]):
        got = runner.invoke(app, args)
        assert got.exit_code == 0, _out(got)
        assert not controls(_out(got)), (args, _out(got))
    got = runner.invoke(app, ["store", "show", str(store), "r00"])
    flat = "".join(_out(got).split())
    assert shown(param) in flat  # the parameter name, escaped
    assert "note\\x1b]0;PWNED-TITLE\\x07" in flat  # a metadata key
    assert "sgd\\x1b]0;PWNED-TITLE\\x07\\x9b31m[/lr]" in flat  # its value


def test_errors_that_quote_user_strings_escape_them(tmp_path) -> None:
    store, _ = _store(tmp_path / "s.zarr", n_seeds=1, n_rec=8)
    for args in (["store", "show", str(store), f"r{RED}{TITLE}"],
                 ["store", "ls", str(tmp_path / f"missing{ERASE}{BIDI}")],
                 ["report", str(tmp_path / f"none{TITLE}.json")],
                 ["analyze", str(store), "--group-by", f"cond{RED}[bold]"]):
        got = runner.invoke(app, args)
        said = _out(got)
        assert got.exit_code == 2, (args, said)
        assert not controls(said), (args, said)
        assert said.count("error:") == 1 and "Traceback" not in said, said


def test_conjugacy_test_escapes_file_names_and_settings(tmp_path) -> None:
    from conjugacy import koopman_spectrum

    rng = np.random.default_rng(1)
    paths = []
    for i in range(4):
        x = np.cumsum(rng.standard_normal((2, 30, 4)), axis=1)
        sp = koopman_spectrum(x, delays=1, rank=3)
        sp.settings["notes"] = [f"planted {TITLE}{RED}"]
        paths.append(str(sp.save(tmp_path / f"s{i}{RED}{BIDI}[b].npz")))
    got = runner.invoke(app, ["test", paths[0], paths[1], "--vs", paths[2], "--vs", paths[3],
                              "--all"])
    said = _out(got)
    assert got.exit_code == 0, said
    assert not controls(said), said
    got = runner.invoke(app, ["compare", paths[0], paths[2]], env={"COLUMNS": "400"})
    assert got.exit_code == 0, _out(got)
    assert not controls(_out(got)) and "s0\\x1b[31m\\u202e[b].npz" in _out(got)


def _many(n: int, seed: int):  # noqa: ANN202
    """A valid Spectrum of ``n`` eigenvalues in the unit disk (with data residuals)."""
    from conjugacy import Spectrum

    rng = np.random.default_rng(seed)
    ev = rng.uniform(0, 1, n) * np.exp(1j * rng.uniform(-3, 3, n))
    r = rng.uniform(0, 1e-3, n)
    return Spectrum(eigenvalues=ev, residuals=r, plain_residuals=r, modes=None,
                    singular_values=np.sort(rng.uniform(0, 1, n))[::-1], rank=n, method="rrr",
                    residuals_informative=True, data_residuals=r)


def test_spectrum_files_too_large_to_compare_are_refused_in_one_line(tmp_path) -> None:
    """Issue 26 review: `conjugacy compare` on two files of 6,000 eigenvalues (388 KB each)
    allocated > 20 GB (transport on 6,000 x 6,000). `compare` and `test` now load at most
    MAX_COMPARED_EIGENVALUES per file, checked from the file's headers before any array is
    read: one line naming the file, the count and the limit, exit 2. (One over the limit: the
    old code compared it, exit 0.)"""
    import time
    import tracemalloc

    from conjugacy import SpectrumFileError
    from conjugacy.compare import MAX_COMPARED_EIGENVALUES as MAX
    from conjugacy.compare import load_compared

    big = [str(_many(MAX + 1, i).save(tmp_path / f"big{i}.npz")) for i in range(2)]
    fine = [str(_many(5, i).save(tmp_path / f"ok{i}.npz")) for i in range(2)]
    line = f"error: '{big[0]}' holds {MAX + 1} eigenvalues, more than the {MAX} a comparison takes"
    for args in (["compare", *big], ["compare", fine[0], big[0]],
                 ["test", big[0], fine[0], "--vs", fine[1], "--vs", fine[0]]):
        got = runner.invoke(app, args, env={"COLUMNS": "2000"})
        said = _out(got)
        assert got.exit_code == 2, (args, said)
        assert said.count("\n") == 1 and said.startswith(line), said
    assert len(load_compared(str(_many(MAX, 0).save(tmp_path / "max.npz")))) == MAX
    huge = _many(6000, 0).save(tmp_path / "huge.npz")
    tracemalloc.start()
    t0 = time.process_time()
    with pytest.raises(SpectrumFileError, match=f"holds 6000 eigenvalues, more than the {MAX}"):
        load_compared(huge)
    dt, peak = time.process_time() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert dt < 5 and peak < 2**20, (dt, peak)  # refused from the headers: no array read


def _labelled(path, labels, n_rec: int, seed: int):  # noqa: ANN001, ANN202
    """A store of 3 seeds (runs of ``n_rec`` random-walk records of 4 features) per label."""
    rng = np.random.default_rng(seed)
    with TrajectoryStore.open(path, "w") as st:
        for cond in labels:
            for s in range(3):
                name = f"r{len(st.runs()):02d}"
                st.create_run(name, {"w": ((4,), "float64")},
                              metadata={"condition": cond, "seed": s})
                st.append(name, np.arange(n_rec),
                          {"w": rng.standard_normal((n_rec, 4)).cumsum(0)})
                st.set_finished(name)
    return path


def _recorded(path, data: dict[str, np.ndarray], chunk_steps: int = 256):  # noqa: ANN001, ANN202
    """A store with one run per entry of ``data`` (records x features, float64)."""
    with TrajectoryStore.open(path, "w") as st:
        for run, x in data.items():
            st.create_run(run, {"w": ((x.shape[1],), "float64")}, chunk_steps=chunk_steps)
            st.append(run, np.arange(len(x)), {"w": x})
            st.set_finished(run)
    return path


def test_a_compression_bomb_store_is_refused_in_one_line(tmp_path, monkeypatch) -> None:
    """Issue 26 review: a 472 KB store of zeros decoded to 1.18 GB in `conjugacy spectrum`.
    A chunk whose records decode to more than MAX_COMPRESSION (256) times its file size (+4 kB)
    is refused before it is read, in one line (exit 2) that names the override. Here 8 MiB of
    zeros in 4 chunk files of ~100 bytes; recorded weights compress ~1.1x and read as before,
    a last chunk mostly fill included; CONJUGACY_MAX_COMPRESSION=0 reads the zeros."""
    import tracemalloc

    from conjugacy.store._safe import MAX_COMPRESSION

    bomb = _recorded(tmp_path / "bomb.zarr", {"a": np.zeros((512, 1024)), "b": np.zeros((512, 1024))})
    files = [f for f in bomb.rglob("*") if "/c/" in str(f) and f.is_file()]
    assert sum(f.stat().st_size for f in files) * MAX_COMPRESSION < 2 * 512 * 1024 * 8
    tracemalloc.start()
    got = runner.invoke(app, ["spectrum", str(bomb), "--out", str(tmp_path / "z.npz"),
                              "--rank", "2"], env={"COLUMNS": "3000"})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    said = _out(got)
    assert got.exit_code == 2 and said.count("\n") == 1, said
    assert re.search(r"^error: .* chunk file has \d+ bytes but decodes to 2097152, more than "
                     r"256x .* read with the environment variable CONJUGACY_MAX_COMPRESSION=0; "
                     r"and 1 more damaged chunk; ",
                     said), said
    assert peak < 8 * 2**20, peak  # refused before any chunk was decoded
    monkeypatch.setenv("CONJUGACY_MAX_COMPRESSION", "0")
    got = runner.invoke(app, ["spectrum", str(bomb), "--out", str(tmp_path / "z.npz"),
                              "--rank", "2"])
    assert got.exit_code == 0, _out(got)
    monkeypatch.setenv("CONJUGACY_MAX_COMPRESSION", "lots")
    got = runner.invoke(app, ["store", "verify", str(bomb)])
    assert got.exit_code == 2 and "CONJUGACY_MAX_COMPRESSION='lots' must be a number" in _out(got)
    monkeypatch.delenv("CONJUGACY_MAX_COMPRESSION")
    rng = np.random.default_rng(0)
    walk = {r: np.cumsum(rng.standard_normal((300, 1024)), 0) for r in ("a", "b")}
    real = _recorded(tmp_path / "real.zarr", walk)  # chunk 2: 44 records, 212 rows of fill
    got = runner.invoke(app, ["spectrum", str(real), "--out", str(tmp_path / "r.npz"),
                              "--rank", "2"])
    assert got.exit_code == 0, _out(got)


def test_results_json_strings_are_escaped_by_the_printer(tmp_path, capsys) -> None:
    from conjugacy.cli.summaries import print_results

    content = {"title": f"T{TITLE}", "warnings": [f"w{RED}[red]x[/red]"],
               "claims": [{"claim": f"c{ERASE}", "holds": None, "evidence": f"e{C1_CSI}"}],
               "files": {"report": f"report{BIDI}.html"}}
    print_results(content, tmp_path)
    said = capsys.readouterr().out
    assert not controls(said), said
    flat = "".join(said.split())
    assert "T\\x1b]0;PWNED-TITLE\\x07" in flat and "w\\x1b[31m[red]x[/red]" in flat
    assert "c\\x1b[2K" in flat and "e\\x9b31m" in flat and "report\\u202e.html" in flat


def test_saved_results_keep_the_raw_labels(tmp_path) -> None:
    """Escaping is for display only: results.json keeps the labels as they were recorded."""
    store, _ = _store(tmp_path / "s.zarr", n_seeds=3, n_rec=20)
    out = tmp_path / "o"
    got = runner.invoke(app, ["analyze", str(store), "--out", str(out), "--no-report",
                              "--delays", "1", "--rank", "3"])
    assert got.exit_code == 0, _out(got)
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(doc["comparison"]["conditions"]) == {HOSTILE_A, HOSTILE_B}


# ----- metadata values of mixed types ------------------------------------------------------------
def test_seeds_recorded_as_1_and_text_1_are_one_seed_with_a_warning(tmp_path) -> None:
    """Issue 26: seeds 1 and "1" counted as two seeds (more seeds: a smaller p-value), silently."""
    from conjugacy.analysis.groups import canonical, group_runs

    rng = np.random.default_rng(2)
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for cond, seeds in (("a", [0, 1, "1", 2]), ("b", [0, 1, 2])):
            for seed in seeds:
                name = f"r{len(st.runs()):02d}"
                st.create_run(name, {"w": ((4,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                st.append(name, np.arange(12), {"w": rng.standard_normal((12, 4)).cumsum(0)})
                st.set_finished(name)
        with pytest.warns(UserWarning, match=r"metadata 'seed' has values of mixed types "
                                             r"\('1' as int, str\)"):
            groups = group_runs(st)
    assert list(groups) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert groups[("a", 1)] == ["r01", "r02"]  # both runs of seed 1: replicas of one seed
    assert [canonical(v) for v in (1, "1", 1.0, np.int64(1), True, "01", None)] == [
        "1", "1", "1", "1", "true", "01", "null"]
    out = tmp_path / "o"
    got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out", str(out),
                              "--no-report", "--delays", "0", "--rank", "2"])
    assert got.exit_code == 0, _out(got)
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["seeds"] == {"a": [0, 1, 2], "b": [0, 1, 2]}
    assert "different numbers of seeds" not in _out(got)
    assert any("mixed types ('1' as int, str)" in w for w in doc["warnings"])


# ----- report files as one set -------------------------------------------------------------------
def test_a_killed_write_never_leaves_files_of_two_analyses(tmp_path, monkeypatch) -> None:
    """Issue 26: a killed `conjugacy analyze` left its new results.json beside the previous
    report.html (9 of 20 kills). A kill is simulated before every rename and every unlink of
    Results.write; afterwards every file of the set present must come from one analysis."""
    import os

    from conjugacy.analysis.results import Results

    store, _ = _store(tmp_path / "s.zarr", n_seeds=3, n_rec=16)
    got = runner.invoke(app, ["analyze", str(store), "--out", str(tmp_path / "a"), "--no-report",
                              "--delays", "1", "--rank", "3"])
    assert got.exit_code == 0, _out(got)
    base = json.loads((tmp_path / "a" / "results.json").read_text(encoding="utf-8"))
    old, new = ({**base, "title": f"analysis {tag}"} for tag in ("OLD-7f3a", "NEW-9c1d"))
    from conjugacy.report import ReportFigure, _render

    figure = ReportFigure("eigenvalues_all", "stand-in", b"\x89PNG\r\n\x1a\n")  # drawing: ~1 s
    monkeypatch.setattr(_render, "report_figures", lambda _r: [figure])
    out = tmp_path / "out"
    Results(old, {}).write(out)
    names = ("results.json", "report.html", "report.md")
    real = {"replace": os.replace, "unlink": os.unlink}
    kills, point = 0, 1
    while True:
        calls = [0]

        def dying(name: str, calls: list[int] = calls, point: int = point):  # noqa: ANN202
            def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                calls[0] += 1
                if calls[0] == point:
                    raise SystemExit("killed")
                return real[name](*args, **kwargs)
            return call

        for name in real:
            monkeypatch.setattr(os, name, dying(name))
        try:
            Results(new, {}).write(out)
            finished = True
        except SystemExit:
            finished, kills = False, kills + 1
        for name in real:
            monkeypatch.setattr(os, name, real[name])
        present = {n: (out / n).read_text(encoding="utf-8") for n in names if (out / n).exists()}
        tags = {tag for tag in ("OLD-7f3a", "NEW-9c1d") for text in present.values() if tag in text}
        assert len(tags) <= 1, (point, sorted(present), tags)
        if finished:
            assert tags == {"NEW-9c1d"} and len(present) == 3
            break
        Results(old, {}).write(out)  # the previous analysis again, for the next kill point
        point += 1
    assert kills >= 5  # 3 removals, the figures, report.html, report.md, results.json


def test_labels_with_invalid_tex_do_not_stop_the_report(tmp_path) -> None:
    """Issue 26: a condition named ``$\\frac{$`` (invalid TeX for Matplotlib) stopped the
    report; figure labels are shown literally now."""
    labels = ("$\\frac{$", "b$_$x^")
    _labelled(tmp_path / "s.zarr", labels, 16, 3)
    out = tmp_path / "o"
    got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out", str(out),
                              "--delays", "0", "--rank", "2"])
    assert got.exit_code == 0, _out(got)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "\\$\\\\frac{\\$ vs b\\$\\_\\$x^" in md  # Markdown syntax ($, \\, _) escaped
    assert (out / "figures" / "eigenvalues_all.png").is_file()


def test_warnings_printed_during_a_command_are_escaped(tmp_path, monkeypatch) -> None:
    """A library warning quoting a label reached stderr raw (Matplotlib's missing-glyph warnings
    printed ESC and BEL); the CLI prints every warning's message through `shown`."""
    import warnings

    from conjugacy.store import TrajectoryStore as Store

    store, _ = _store(tmp_path / "s.zarr", n_seeds=1, n_rec=8)
    real = Store.run_info

    def noisy(self, run):  # noqa: ANN001, ANN202
        warnings.warn(f"run {run}: label {HOSTILE_B}", UserWarning, stacklevel=1)
        return real(self, run)

    monkeypatch.setattr(Store, "run_info", noisy)
    got = runner.invoke(app, ["store", "ls", str(store)])
    assert got.exit_code == 0, _out(got)
    assert "UserWarning: run r00: label sgd\\x1b]0;PWNED-TITLE\\x07\\x9b31m[/lr]" in _out(got)
    assert not controls(_out(got))
    assert warnings.showwarning.__name__ != "_show_warning"  # restored after the command


def test_an_all_zero_condition_is_refused_in_one_line_naming_it(tmp_path) -> None:
    """Issue 26: one all-zero condition failed with "b is empty" (and, with delays chosen from
    the data, an IndexError traceback)."""
    rng = np.random.default_rng(5)
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for cond in ("a", "zero"):
            for seed in range(3):
                name = f"r{len(st.runs()):02d}"
                st.create_run(name, {"w": ((4,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                x = rng.standard_normal((16, 4)).cumsum(0) if cond == "a" else np.zeros((16, 4))
                st.append(name, np.arange(16), {"w": x})
                st.set_finished(name)
    for extra, says in (([], "trajectories do not change (constant, e.g. all zero)"),
                        (["--delays", "1"], "condition 'zero', seed 0: the spectrum has no "
                                            "eigenvalues")):
        got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out",
                                  str(tmp_path / "o"), "--no-report", *extra])
        assert got.exit_code == 2 and got.exception is None or isinstance(
            got.exception, SystemExit), _out(got)
        lines = [ln for ln in _out(got).splitlines() if ln.strip()]
        assert len(lines) == 1 and says in lines[0], _out(got)


# ----- report.html in a real browser -------------------------------------------------------------
XSS = ("<img src=x onerror=\"document.documentElement.setAttribute('data-xss','img')\">"
       "<script>document.documentElement.setAttribute('data-xss','script')</script>"
       "\"'><svg onload=\"document.documentElement.setAttribute('data-xss','svg')\">")


def _poison(x: object) -> object:
    """Every string value of a results dict with the XSS payload appended (keys stay: labels
    come from the store, hostile there)."""
    if isinstance(x, str):
        return x + XSS
    if isinstance(x, list):
        return [_poison(v) for v in x]
    if isinstance(x, dict):
        return {k: _poison(v) for k, v in x.items()}
    return x


@pytest.mark.skipif(__import__("shutil").which("chromium") is None,
                    reason="no chromium (CI installs Debian's chromium)")
def test_no_script_runs_from_any_report_field_in_headless_chromium(tmp_path) -> None:
    """Issue 26 done-when: a <script>, onerror= or onload= payload in every user-controlled field
    of results.json (condition labels from the store, every string value) runs nothing in
    report.html; the page's own check (data-report-status) still runs."""
    import re
    import shutil
    import subprocess

    from conjugacy.report import write_report

    rng = np.random.default_rng(4)
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for cond in ("a" + XSS, "b" + XSS):
            for seed in range(3):
                name = f"r{len(st.runs()):02d}"
                st.create_run(name, {"w": ((4,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                st.append(name, np.arange(16), {"w": rng.standard_normal((16, 4)).cumsum(0)})
                st.set_finished(name)
    got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "a"),
                              "--no-report", "--delays", "0", "--rank", "2", "--window", "8"])
    assert got.exit_code == 0, _out(got)
    base = json.loads((tmp_path / "a" / "results.json").read_text(encoding="utf-8"))
    keep = {"schema", "comparison", "spectra", "pooled_spectra", "windows"}  # branched on
    poisoned = {k: (v if k in keep else _poison(v)) for k, v in base.items()}
    html_path, _ = write_report(poisoned, tmp_path / "rep")
    text = html_path.read_text(encoding="utf-8")
    assert text.count("data-xss") >= 10  # the payload is there, escaped
    assert "<script>document.documentElement" not in text
    assert "onerror=\"document" not in text and "onload=\"document" not in text
    dom = subprocess.run(
        [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", html_path.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    root = re.search(r"<html[^>]*>", dom.stdout).group(0)
    assert "data-xss" not in root, root
    assert 'data-report-status="ok"' in root, root  # the page's own check ran and passed


# ----- the figures folder -------------------------------------------------------------------------
def test_a_figures_link_is_refused_and_nothing_is_written_through_it(tmp_path) -> None:
    """Issue 26 review: with ``out/figures -> elsewhere``, `conjugacy report` and `analyze --out`
    wrote (and replaced) PNGs in the link's target. Refused in one line naming it (exit 2)."""
    rng = np.random.default_rng(6)
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for cond in ("a", "b"):
            for seed in range(3):
                name = f"r{len(st.runs()):02d}"
                st.create_run(name, {"w": ((4,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                st.append(name, np.arange(16), {"w": rng.standard_normal((16, 4)).cumsum(0)})
                st.set_finished(name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "eigenvalues_all.png"
    victim.write_bytes(b"IMPORTANT USER DATA\n")
    dl = tmp_path / "dl"
    dl.mkdir()
    (dl / "figures").symlink_to(elsewhere, target_is_directory=True)
    (dl / "results.json").write_text("the previous analysis")
    got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out", str(dl),
                              "--delays", "0", "--rank", "2"])
    lines = [ln for ln in _out(got).splitlines() if ln.strip() and "error:" in ln]
    assert got.exit_code == 2 and len(lines) == 1, _out(got)
    assert "figures" in lines[0] and "symbolic link" in lines[0], lines
    # refused before the previous set is removed
    assert (dl / "results.json").read_text() == "the previous analysis"
    got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "a"),
                              "--no-report", "--delays", "0", "--rank", "2"])
    assert got.exit_code == 0, _out(got)
    (dl / "results.json").write_bytes((tmp_path / "a" / "results.json").read_bytes())
    got = runner.invoke(app, ["report", str(dl / "results.json")])
    said = "".join(_out(got).split())
    assert got.exit_code == 2 and _out(got).count("error:") == 1, _out(got)
    assert "figures'isasymboliclink" in said, _out(got)
    assert victim.read_bytes() == b"IMPORTANT USER DATA\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["eigenvalues_all.png"]
    assert (dl / "figures").is_symlink()  # the link itself is left as it was
    (dl / "figures").unlink()
    (dl / "figures").write_text("a file")  # a file at the name: NotADirectoryError, one line
    got = runner.invoke(app, ["report", str(dl / "results.json")])
    assert got.exit_code == 2 and "is not a folder" in _out(got), _out(got)


def test_seeds_true_and_1_and_conditions_true_and_text_true_stay_apart(tmp_path) -> None:
    """Issue 26 review: seeds ``true`` and ``1`` (and conditions ``true`` and ``"True"``) were
    merged silently: groups were keyed by raw values (Python's True == 1) and labels by str()."""
    from conjugacy.analysis.groups import group_runs

    rng = np.random.default_rng(7)
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for cond in (True, "True"):
            for seed in (True, 1, 2):
                name = f"r{len(st.runs()):02d}"
                st.create_run(name, {"w": ((4,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                st.append(name, np.arange(12), {"w": rng.standard_normal((12, 4)).cumsum(0)})
                st.set_finished(name)
        with pytest.warns(UserWarning) as caught:
            groups = group_runs(st)
    said = [str(w.message) for w in caught]
    assert any("'seed' has values of mixed types ('true' as bool; '1' as int; '2' as int)" in w
               for w in said), said
    assert any("'condition' has values of mixed types ('true' as bool; 'True' as str)" in w
               for w in said), said
    assert groups == {("True", 1): ["r04"], ("True", 2): ["r05"], ("True", "true"): ["r03"],
                      ("true", 1): ["r01"], ("true", 2): ["r02"], ("true", "true"): ["r00"]}
    out = tmp_path / "o"
    got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out", str(out),
                              "--no-report", "--delays", "0", "--rank", "2"])
    assert got.exit_code == 0, _out(got)
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["seeds"] == {"True": [1, 2, "true"], "true": [1, 2, "true"]}
    assert "True vs true" in _out(got)
    assert any("'condition' has values of mixed types ('true' as bool; 'True' as str)" in w
               for w in doc["warnings"])
    assert any("'seed' has values of mixed types ('true' as bool; '1' as int; '2' as int)" in w
               for w in doc["warnings"])


def test_a_label_with_a_lone_surrogate_is_refused_up_front(tmp_path) -> None:
    """Issue 26 review: a label "sgd\\udc9b" made analyze fail at the end with a UTF-8 encode
    error naming no label, leaving figures/ without results.json. Refused before anything is
    written, in one line naming the run and the label (escaped); any metadata likewise."""
    rng = np.random.default_rng(8)
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for cond in ("adam", "sgd\udc9b"):
            for seed in range(3):
                name = f"r{len(st.runs()):02d}"
                st.create_run(name, {"w": ((4,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                st.append(name, np.arange(12), {"w": rng.standard_normal((12, 4)).cumsum(0)})
                st.set_finished(name)
    out = tmp_path / "o"
    got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out", str(out),
                              "--delays", "0", "--rank", "2"])
    lines = [ln for ln in _out(got).splitlines() if ln.strip()]
    assert got.exit_code == 2 and len(lines) == 1, _out(got)
    assert "run r03: metadata condition = sgd\\udc9b is not valid Unicode text" in lines[0]
    assert not out.exists()  # nothing written
    with TrajectoryStore.open(tmp_path / "s.zarr", "a") as st:  # valid labels, a bad note
        for r in ("r03", "r04", "r05"):
            st.update_metadata(r, {"condition": "sgd"})
        st.update_metadata("r01", {"notes": ["ok", {"by": "x\udcff"}]})
    got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out", str(out),
                              "--delays", "0", "--rank", "2"])
    assert got.exit_code == 2 and not out.exists(), _out(got)
    assert "run r01: metadata notes = [\"ok\", {\"by\": \"x\\udcff\"}] is not valid" in _out(
        got).replace("\n", "")
    with TrajectoryStore.open(tmp_path / "s.zarr", "a") as st:  # all valid: analysed
        st.update_metadata("r01", {"notes": []})
    got = runner.invoke(app, ["analyze", str(tmp_path / "s.zarr"), "--out", str(out),
                              "--delays", "0", "--rank", "2", "--no-report"])
    assert got.exit_code == 0, _out(got)
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["seeds"] == {
        "adam": [0, 1, 2], "sgd": [0, 1, 2]}


def test_an_over_long_condition_or_seed_label_is_refused_at_analyze(tmp_path) -> None:
    """Review 3, item 3: a 7 MB condition label (within the store's metadata bound) made analyze
    print 7.1 MB and write a 245 MB results.json its own report refused. A label over
    MAX_GROUP_LABEL characters is refused up front in one line naming the run, the key, the
    length and the limit; nothing is written. At the limit it is analysed."""
    from conjugacy.analysis.own_runs import MAX_GROUP_LABEL

    long = "a" * (MAX_GROUP_LABEL + 1)
    _labelled(tmp_path / "s.zarr", ("adam", long), 12, 8)
    out = tmp_path / "o"
    args = ["analyze", str(tmp_path / "s.zarr"), "--out", str(out), "--delays", "0", "--rank", "2",
            "--no-report"]
    got = runner.invoke(app, args)
    lines = [ln for ln in _out(got).replace("\n ", " ").splitlines() if ln.strip()]
    assert got.exit_code == 2 and not out.exists(), _out(got)
    assert (f"run r03: metadata condition is {MAX_GROUP_LABEL + 1} characters as a label, over "
            f"the limit of {MAX_GROUP_LABEL}") in " ".join(lines), _out(got)
    with TrajectoryStore.open(tmp_path / "s.zarr", "a") as st:
        for r in ("r03", "r04", "r05"):
            st.update_metadata(r, {"condition": long[:-1]})
        st.update_metadata("r00", {"seed": "s" * (MAX_GROUP_LABEL + 1)})
    got = runner.invoke(app, args)
    assert got.exit_code == 2 and "run r00: metadata seed is 1001 characters" in _out(
        got).replace("\n", " ").replace("  ", " "), _out(got)
    with TrajectoryStore.open(tmp_path / "s.zarr", "a") as st:
        st.update_metadata("r00", {"seed": 0})
    got = runner.invoke(app, args)
    assert got.exit_code == 0, _out(got)
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert sorted(doc["seeds"]) == sorted(["adam", long[:-1]])


def test_equal_sized_spectra_over_1024_are_an_assignment_not_pot(monkeypatch) -> None:
    """Review 3, item 4: 1,500 vs 1,500 went to POT's network simplex (its import pulled in
    PyTorch: 5 s / 512 MB for `conjugacy compare`). Equal sizes are solved as an assignment at
    any size (exact for W1 between equal-size uniform sets): the same value as SciPy's
    linear_sum_assignment on the distances, without calling the network simplex."""
    from scipy.optimize import linear_sum_assignment

    from conjugacy import compare

    def no_pot(*_: object) -> None:
        raise AssertionError("the network simplex was called")

    monkeypatch.setattr(compare, "_transport_lp", no_pot)
    rng = np.random.default_rng(4)
    a, b = (np.array([1, 1j]) @ rng.uniform(0, 1, (2, 1100)) for _ in range(2))
    d = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(d)
    assert compare.wasserstein(a, b) == pytest.approx(d[rows, cols].mean(), rel=1e-11)
