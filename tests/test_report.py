"""Tests of conjugacy.report: content read from real analysis output, self-containment, a browser.

The fixtures are real results: spectra from :func:`conjugacy.koopman_spectrum` of noisy linear
systems with known eigenvalues, compared by :func:`conjugacy.analysis.compare_conditions`.
"""

from __future__ import annotations

import base64
import copy
import html
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from conjugacy import koopman_spectrum  # noqa: E402
from conjugacy.analysis import compare_conditions, spectra_to_json  # noqa: E402
from conjugacy.report import (  # noqa: E402
    ReportError,
    overview,
    render_html,
    render_markdown,
    verdicts,
    warnings_of,
    write_report,
)

PNG = b"\x89PNG\r\n\x1a\n"


def linear_runs(eigs, seed, n_runs=4, steps=40, noise=1e-3):
    """Runs of z' = diag(eigs) z + noise, observed through a random 12 x k orthonormal map."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.standard_normal((12, len(eigs))))[0]
    out = np.empty((n_runs, steps, 12))
    for r in range(n_runs):
        z = rng.standard_normal(len(eigs))
        for t in range(steps):
            out[r, t] = q @ z
            z = np.asarray(eigs) * z + noise * rng.standard_normal(len(eigs))
    return out


def make_results(n_seeds=4):
    systems = {"sgd": [0.95, 0.8, 0.5], "sgd_again": [0.95, 0.8, 0.5], "adam": [0.9, 0.7, 0.3]}
    spectra = {c: [koopman_spectrum(linear_runs(e, 100 * i + s), delays=1, rank=6)
                   for s in range(n_seeds)] for i, (c, e) in enumerate(systems.items())}
    cmp = compare_conditions(spectra, seed=0, n_shuffles=10)
    steps = list(range(1, 31))
    return {
        "title": "Optimizers on a linear toy",
        "spectra": spectra_to_json(spectra),
        "comparison": cmp,
        "group_by": "condition",
        "seed_key": "seed",
        "observables": ["fc2.weight"],
        "loss": {c: {"mean": [float(np.exp(-t / (5 + i))) for t in steps], "std": [0.02] * 30,
                     "steps": steps} for i, c in enumerate(systems)},
        "runs": [{"run": f"{c}_s{s}_r{r}", "condition": c, "seed": s, "n_complete": 40,
                  "first_step": 0, "last_step": 39, "finished": True}
                 for c in systems for s in range(n_seeds) for r in range(4)],
        "timing_seconds": {"spectra": 0.5, "statistics": 0.25},
    }


@pytest.fixture(scope="module")
def results():
    return make_results()


@pytest.fixture(scope="module")
def written(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(results, out)


def test_verdicts_read_the_comparison(results):
    rows = {r["pair"]: r for r in verdicts(results)}
    assert set(rows) == {"sgd-sgd_again", "sgd-adam", "sgd_again-adam"}
    cmp = results["comparison"]
    assert cmp["verdict_uses"] == "filtered"
    for name, r in rows.items():
        test = cmp["filtered"]["permutation_tests"][name]
        assert r["pvalue"] == test["pvalue"] and r["min_pvalue"] == test["min_pvalue"]
        assert r["distance"] == cmp["filtered"]["distances"][name]["mean"]
        assert r["distance_all"] == cmp["all"]["distances"][name]["mean"]
        assert r["verdict"] == cmp["verdicts"][name]["verdict"]
    # 4 seeds per condition: exact enumeration of C(8, 4) = 70 labelings, the best p is 2/70
    assert rows["sgd-adam"]["verdict"] == "not conjugate"
    assert rows["sgd-adam"]["pvalue"] == pytest.approx(2 / 70)
    assert rows["sgd-sgd_again"]["verdict"] == "conjugate"
    s = rows["sgd-adam"]["sentence"]
    assert s.startswith("sgd vs adam: not conjugate. Spectra of different conditions lie farther")
    assert "permutation p = 0.0286" in s and "smallest p 4 seeds allow = 0.0286" in s
    assert f"W1 seed by seed = {rows['sgd-adam']['distance']:.3g}" in s
    assert "on the filtered spectra" in s
    assert rows["sgd-sgd_again"]["sentence"].startswith(
        "sgd vs sgd_again: conjugate. No evidence that their training dynamics differ")


def test_html_is_one_self_contained_file(results, written):
    html_path, md_path = written
    text = html_path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"(?:src|href)\s*=\s*[\"'](?!data:)", text)  # nothing fetched
    assert "<link" not in text and "@import" not in text and "url(" not in text
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == text.count("<img") == 4  # eigenvalues, filtered, distances, loss
    assert all(base64.b64decode(b).startswith(PNG) for b in images)
    assert "sgd vs adam: not conjugate." in text
    assert "sgd vs sgd_again: conjugate." in text
    for word in ("What was compared", "Warnings", "Wall time", "unit circle"):
        assert word in text


def test_markdown_links_the_saved_figures(written):
    _, md_path = written
    md = md_path.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\((figures/[\w]+\.png)\)", md)
    assert links == ["figures/eigenvalues_all.png", "figures/eigenvalues_filtered.png",
                     "figures/distances.png", "figures/loss.png"]
    for link in links:
        assert (md_path.parent / link).read_bytes().startswith(PNG)
    assert "- **sgd vs adam: not conjugate.**" in md
    assert "| sgd vs adam | not conjugate |" in md


def test_warnings_say_what_the_results_show(results):
    assert warnings_of(results) == []
    r = copy.deepcopy(results)
    r["warnings"] = ["given first"]
    r["runs"][5]["finished"] = False
    sp = r["spectra"]["adam"][1]
    sp["settings"]["rank_reduced"] = True
    sp["rank"] = 4
    sp["residuals_informative"] = False
    w = warnings_of(r)
    assert w[0] == "given first"
    assert "Rank reduced to what the data support: adam seed 1 (requested 6, kept 4)." in w
    assert any(x.startswith("DMD residuals are uninformative") and "adam seed 1" in x for x in w)
    assert any(x.startswith("1 unfinished run(s)") and r["runs"][5]["run"] in x for x in w)


def test_too_few_seeds_is_said_in_the_warnings_and_the_verdict():
    r = make_results(n_seeds=3)  # 3 vs 3: the best exact p is 2/20 = 0.1 > 0.05
    w = warnings_of(r)
    assert any("smallest attainable p-value is 0.1 ≥ α = 0.05" in x for x in w), w
    row = {v["pair"]: v for v in verdicts(r)}["sgd-adam"]
    assert row["verdict"] == "undecided" and row["min_pvalue"] == pytest.approx(0.1)
    assert row["sentence"].startswith("sgd vs adam: undecided. Too few seeds")
    assert "cannot reach p < 0.05: this is not evidence of equivalence" in row["sentence"]
    from conjugacy.report import comparison_rows

    assert ["sgd vs adam", "undecided"] in [row[:2] for row in comparison_rows(r)]


def test_windows_heatmap():
    from conjugacy.compare import distance_matrix
    from conjugacy.windows import find_transitions, windowed_spectra

    rng = np.random.default_rng(0)
    a, b = np.diag([0.9, 0.5]), np.array([[0.6, -0.5], [0.5, 0.6]])  # switch at step 30
    runs = []
    for _ in range(3):
        z, xs = rng.standard_normal(2), []
        for t in range(60):
            xs.append(np.concatenate([z, z ** 2]))
            z = (a if t < 30 else b) @ z
        runs.append(xs)
    spectra = windowed_spectra(np.array(runs), window=15, delays=0, rank=2)
    d = distance_matrix(spectra)
    tr = find_transitions(d)
    results = {"spectra": {"run": [{"eigenvalues": [[z.real, z.imag] for z in spectra[0].eigenvalues]}]},
               "windows": {"window": 15, "stride": 15, "conditions": {"run": {
                   "labels": ["0-14", "15-29", "30-44", "45-59"], "distance_matrix": d.tolist(),
                   "transitions": tr.as_dict()}}}}
    assert tr.as_dict()["change_points"] == [1]
    text = render_html(results)
    assert 'id="fig-windows"' in text and text.count("<img") == 2


def test_bad_input_is_named(tmp_path, results):
    with pytest.raises(TypeError, match="results must be a dict"):
        render_html([1, 2])
    with pytest.raises(ReportError, match="neither 'comparison' nor 'spectra'"):
        render_markdown({"title": "x"})
    bad = copy.deepcopy(results)
    bad["spectra"]["sgd"][0]["eigenvalues"] = [[1.0, 2.0, 3.0]]
    with pytest.raises(ReportError, match=r"results\['spectra'\]\['sgd'\]\[0\]"):
        render_html(bad)
    bad = {"comparison": {"conditions": ["a", "b"]}}
    with pytest.raises(ReportError, match="lacks 'pairs'"):
        render_html(bad)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"^out_dir '.*file/out' cannot be an output "
                                                  r"folder: '.*file' exists and is not a folder$"):
        write_report(results, tmp_path / "file" / "out")


# ----- a real browser -----------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browse(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = _chromium()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", *args, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _render(page: Path, tmp_path: Path) -> tuple[str, np.ndarray]:
    dom = _browse(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp_path / f"{page.stem}.png"
    res = _browse(page, tmp_path, "--window-size=1100,2400", f"--screenshot={shot}")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    from matplotlib.image import imread

    return dom.stdout, imread(shot)


@pytest.mark.skipif(_chromium() is None,
                    reason="no chromium installed (CI installs Debian's chromium: apt-get install "
                           "chromium); the headless-browser check of report.html is skipped")
def test_report_renders_in_a_headless_browser(written, tmp_path):
    html_path, _ = written
    dom, pixels = _render(html_path, tmp_path)
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-report-status="ok"' in root and 'data-report-images="4/4"' in root, root
    assert "data-report-error" not in root
    # non-blank: far from uniform, with dark text and coloured markers on the white page
    rgb = pixels[..., :3]
    assert rgb.std() > 0.1
    assert (rgb.mean(axis=-1) < 0.5).mean() > 0.005
    # negative control: the same check sees a broken image and a script error
    broken = tmp_path / "broken.html"
    text = html_path.read_text(encoding="utf-8")
    text = text.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
    text = text.replace("</body>", "<script>undefinedFunction();</script></body>")
    broken.write_text(text, encoding="utf-8")
    dom = _browse(broken, tmp_path, "--dump-dom").stdout
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-report-status="broken"' in root and 'data-report-images="3/4"' in root
    assert "data-report-error=" in root and "undefinedFunction" in root


def test_report_command_on_a_results_json(tmp_path, results):
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from conjugacy.analysis import summarize
    from conjugacy.cli import app
    from conjugacy.results import write_json

    systems = {"sgd": [0.95, 0.8, 0.5], "sgd_again": [0.95, 0.8, 0.5], "adam": [0.9, 0.7, 0.3]}
    spectra = {c: [koopman_spectrum(linear_runs(e, 100 * i + s), delays=1, rank=6)
                   for s in range(3)] for i, (c, e) in enumerate(systems.items())}
    r = summarize(spectra, experiment="fcn", stats={"n_shuffles": 10}).to_dict()
    r["spectra"]["adam"][0]["settings"]["delays"] = 3  # conditions fitted with other delays
    path = write_json(tmp_path / "results.json", r)
    got = CliRunner().invoke(app, ["report", str(path), "--out", str(tmp_path / "rep")])
    assert got.exit_code == 0, got.output
    text = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "<title>conjugacy: fcn</title>" in text
    assert "delays = sgd: 1 / sgd_again: 1 / adam: 3" in text
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    got = CliRunner().invoke(app, ["report", str(tmp_path / "bad.json")])
    assert got.exit_code == 2 and "is not a JSON file" in got.output
    got = CliRunner().invoke(app, ["report", str(tmp_path / "none.json")])
    assert got.exit_code == 2 and "is not a file" in got.output
    # JSON that is not a results.json of the schema: one line, exit 2, nothing written
    write_json(tmp_path / "old.json", results)
    got = CliRunner().invoke(app, ["report", str(tmp_path / "old.json"), "--out", str(tmp_path / "o")])
    assert got.exit_code == 2 and "is not a results.json of schema conjugacy.results/2" in got.output
    bad = copy.deepcopy(r)
    bad["comparison"]["all"] = None
    write_json(tmp_path / "bad_all.json", bad)
    got = CliRunner().invoke(app, ["report", str(tmp_path / "bad_all.json"), "--out",
                                   str(tmp_path / "o")])
    assert got.exit_code == 2 and "does not follow schema conjugacy.results/2 at comparison" \
        in " ".join(got.output.split())
    assert not (tmp_path / "o").exists()


def test_study_figures_are_embedded_from_the_results_folder_only(tmp_path, results):
    from conjugacy.report import study_figures

    (tmp_path / "res" / "figs").mkdir(parents=True)
    png = (tmp_path / "res" / "fig3a_loss.png")
    png.write_bytes(PNG + b"rest")
    (tmp_path / "res" / "figs" / "fake.png").write_text("not a png")
    (tmp_path / "outside.png").write_bytes(PNG)
    r = {**results, "figures": ["fig3a_loss.png", "fig3a_loss.svg", "figs/fake.png",
                                "missing.png", "../outside.png", str(tmp_path / "outside.png")]}
    figs, notes = study_figures(r, tmp_path / "res")
    assert [(f.name, f.png) for f in figs] == [("study_fig3a_loss", PNG + b"rest")]
    assert notes == [
        "figure 'figs/fake.png' is not a PNG file: not embedded",
        "figure 'missing.png' is listed in results.json but missing",
        f"figure '../outside.png' lies outside {str((tmp_path / 'res').resolve())!r}: not embedded",
        f"figure {str(tmp_path / 'outside.png')!r} lies outside "
        f"{str((tmp_path / 'res').resolve())!r}: not embedded",
    ]


# ----- issue 25: when do conditions differ, their settings, one scale, units, cut tables, names --
def _window_spectra(centres, n_seeds, rng):
    return [[c + 0.01 * rng.standard_normal(4) + 0j for c in centres] for _ in range(n_seeds)]


def test_report_says_from_which_step_on_the_conditions_differ(results, tmp_path):
    from conjugacy.analysis.windowed import conditions_by_window

    rng = np.random.default_rng(2)
    spectra = {"sgd": _window_spectra([0.0, 0.5, 0.5, 0.5], 5, rng),
               "adam": _window_spectra([0.0, 0.5, 0.9, 0.9], 5, rng)}
    between = conditions_by_window(spectra, [0, 100, 200, 300], 100)
    r = {**results, "windows": {"window": 100, "between_conditions": between}}
    html_path, md_path = write_report(r, tmp_path)
    md = md_path.read_text()
    assert "## When do the conditions differ? (window by window)" in md
    assert "**sgd and adam differ from step 200 on (window 200-299 and every later one is not " \
           "conjugate).**" in md
    section = md.split("## When do the conditions differ?")[1].split("## What was compared")[0]
    assert "| 200-299 | 0.4" in section and section.count("| not conjugate |") == 2
    assert section.count("| conjugate |") == 2
    assert (tmp_path / "figures" / "windows_between_conditions.png").read_bytes()[:8] == PNG
    assert 'id="fig-windows_between_conditions"' in html_path.read_text()
    same = conditions_by_window({"sgd": spectra["sgd"], "sgd2": spectra["sgd"]}, [0, 1, 2, 3], 1)
    md = render_markdown({**results, "windows": {"between_conditions": same}})
    assert "sgd and sgd2: no step from which on every window differs." in md


def test_distance_heatmaps_show_the_seed_floor_on_the_diagonal_on_one_scale(results):
    from conjugacy.report._content import chosen
    from conjugacy.report._figures import distance_panels, report_figures

    ch = chosen(results["comparison"])
    panels = distance_panels(results["comparison"], {})
    conds = results["comparison"]["conditions"]
    floors = [ch["between_seeds"][c]["mean"] for c in conds]
    assert np.allclose(np.diag(panels[0][0]), floors) and min(floors) > 0
    assert [p[2] for p in panels[1:]] == [f"W1 between seeds of {c}" for c in conds]
    top = max(float(p[0].max()) for p in panels)
    caption = next(f.caption for f in report_figures(results) if f.name == "distances")
    assert f"one colour scale (0 to {top:.3g}) for every panel" in caption


def test_effect_size_is_built_from_the_between_and_floor_columns_beside_it(results):
    """Issue 25 review item 1: the effect size column is (between - floor) / floor of the two
    columns shown beside it, both the permutation test's own means (between: all pairs of seeds
    of the two conditions, recomputed here from the spectra), in both tables, with a legend."""
    from conjugacy import conjugacy_test
    from conjugacy.report import comparison_rows, window_comparisons
    from conjugacy.report._content import UNITS_LEGEND, chosen, fmt

    head = comparison_rows(results)[0]
    assert head[5:8] == ["W1 between conditions (all seed pairs)", "noise floor (W1 between seeds)",
                         "effect size = (between - floor) / floor"]
    cmp = results["comparison"]
    for row, (a, b) in zip(comparison_rows(results)[1:], cmp["pairs"].values()):
        ev = chosen(cmp)["eigenvalues"]
        t = conjugacy_test([np.array(e, float) @ [1, 1j] for e in ev[a]],
                           [np.array(e, float) @ [1, 1j] for e in ev[b]], n_permutations=1)
        assert row[5:8] == [fmt(t.mean_between), fmt(t.mean_within), fmt(t.effect_size)]
        assert (float(row[7]) < 0) == (float(row[5]) < float(row[6]))
    # a window whose seed-by-seed W1 (0.077) is above the floor (0.0625) but whose test says
    # between < floor (effect -0.136): the shown between column agrees with the sign
    w = {"start": 0, "label": "0-9", "distance": 0.077, "interval": None, "noise_floor": 0.0625,
         "effect_size": -0.136, "pvalue": 0.9, "verdict": "conjugate"}
    pair = {"a": "sgd", "b": "adam", "differ_from_step": None, "per_window": [w],
            "summary": "sgd vs adam: the last window is not 'not conjugate'; 0 of 1 windows differ."}
    rows = window_comparisons({**results, "windows": {"between_conditions": {
        "pairs": {"sgd-adam": pair}}}})[0]["rows"]
    assert rows[0][1] == "W1 seed by seed" and rows[0][3:6] == head[5:8]
    assert rows[1][3:6] == ["0.054", "0.0625", "-0.136"]
    for text in (render_markdown(results, figures=[]), render_html(results, figures=[])):
        assert "effect size = (between - noise floor) / noise floor" in text
    assert "negative exactly when between &lt; noise floor" in render_html(results, figures=[])
    assert UNITS_LEGEND.startswith("W1 seed by seed")


def test_html_and_markdown_show_the_same_sections_in_the_same_order(results):
    """Both formats are laid out from one list of blocks: same headings, tables and verdicts."""
    r = {**results, "timing_seconds": {"fit": 1.25}}
    page, md = render_html(r, figures=[]), render_markdown(r, figures=[])
    html_heads = [(int(n), html.unescape(t))
                  for n, t in re.findall(r"<h([1-3])>(.*?)</h\1>", page)]
    md_heads = [(len(h), re.sub(r"\\(.)", r"\1", t))  # Markdown's escapes undone
                for h, t in re.findall(r"^(#{1,3}) (.*)$", md, re.M)]
    assert html_heads == md_heads
    assert [t for _, t in md_heads[1:4]] == ["Verdicts", "The numbers behind the verdicts",
                                             "Warnings"]
    assert md_heads[-1] == (2, "Wall time") and "| fit | 1.2 s |" in md
    assert page.count("<table>") == len(re.findall(r"^\|(---\|)+$", md, re.M)) >= 4
    assert page.count('<div class="verdict ') == len(re.findall(r"^- \*\*", md, re.M)) == 3
    assert "\n\n\n" not in md


def test_overview_counts_the_replica_runs_of_each_condition_and_seed():
    def run(c, s, finished=True):
        return {"condition": c, "seed": s, "finished": finished, "first_step": 0,
                "last_step": 90, "n_complete": 10}

    runs = [run("sgd", 0), run("sgd", 0), run("sgd", 1), run("sgd", 1), run("adam", 0),
            run("adam", 0), run("adam", 0, False), run("adam", 1), "not a run"]
    rows = dict(overview({"spectra": {"sgd": [], "adam": []}, "runs": runs}))
    assert rows["runs"] == "9 runs, 1/2/3 replica run(s) per (condition, seed), 1 unfinished"
    assert rows["steps"] == "0..90 (10 records)"


def test_the_fits_notes_are_warnings_once_each_but_those_said_otherwise():
    def spectrum(notes):
        return {"eigenvalues": [[0.5, 0.0]], "settings": {"notes": notes}}

    r = {"spectra": {"a": [spectrum(["rank equals the number of observables: x", "pilot y"]),
                           spectrum(["pilot y"])],
                     "b": [spectrum(["rank 9 requested but 4 kept", "other z"])]}}
    assert warnings_of(r) == ["Note from the spectrum fit: pilot y",
                              "Note from the spectrum fit: other z"]


def test_tables_say_when_they_are_cut(results):
    r = copy.deepcopy(results)
    sp = r["spectra"]["sgd"][0]
    sp["eigenvalues"] = [[0.9 - 0.01 * k, 0.0] for k in range(20)]
    sp["residuals"] = [0.01] * 20
    sp.pop("data_residuals", None)
    md = render_markdown(r)
    assert "12 of 20 eigenvalues shown (in the fit's order); results.json holds all" in md
    assert f"all {len(results['spectra']['adam'][0]['eigenvalues'])} eigenvalues" in md


def _relabelled(results, labels: dict[str, str]) -> dict:
    """``results`` as JSON grouped by optimizer, every condition name ``c`` replaced by
    ``labels[c]`` (a long JSON label, as ``--group-by optimizer`` names conditions)."""
    import json

    text = json.dumps(results, default=lambda o: o.to_dict())
    for old, new in labels.items():
        text = text.replace(f'"{old}"', json.dumps(new))
    r = json.loads(text)
    r["group_by"] = "optimizer"
    return r


def test_long_condition_labels_are_named_by_the_settings_that_differ(results):
    import json

    from conjugacy.report import condition_rows, short_names

    labels = {c: json.dumps({"class": "SGD" if c != "adam" else "Adam", "lr": lr,
                             "betas_or_momentum": [0.9, 0.999], "weight_decay": 0.0,
                             "nesterov": False, "padding": "x" * 200}, sort_keys=True)
              for c, lr in (("sgd", 0.1), ("sgd_again", 0.05), ("adam", 0.001))}
    r = _relabelled(results, labels)
    r["conditions"] = {lab: {"optimizer." + k: v for k, v in json.loads(lab).items()}
                       | {"model": "mlp"} for lab in labels.values()}
    names = short_names(r)  # lr alone tells the three apart: the fewest keys
    assert sorted(names.values()) == ["lr=0.001", "lr=0.05", "lr=0.1"]
    assert [v["sentence"].split(":")[0] for v in verdicts(r)][0] == "lr=0.1 vs lr=0.05"
    rows = condition_rows(r)
    assert rows[0] == ["condition", "label", "settings that differ"]
    assert rows[1][0] == "lr=0.1" and rows[1][1] == labels["sgd"] and rows[1][2] == \
        "optimizer.class = SGD, optimizer.lr = 0.1"
    assert rows[-1][0] == "(all)" and "model = mlp" in rows[-1][2]
    md = render_markdown(r)
    assert "### Conditions and their recorded settings" in md
    assert "**lr=0.1 vs lr=0.001:" in md


def test_short_names_keep_only_the_keys_that_tell_conditions_apart(results):
    """Issue 25 review item 4: three --group-by optimizer conditions (Adam; SGD; SGD at another
    lr) keep class and lr, not momentum/nesterov (shared by the two SGDs) nor betas; the window
    headline and the given warnings show the names, never the JSON."""
    import json

    from conjugacy.report import short_names, window_comparisons

    opts = {"sgd": {"class": "SGD", "lr": 0.05, "momentum": 0.9, "nesterov": False},
            "sgd_again": {"class": "SGD", "lr": 0.001, "momentum": 0.9, "nesterov": False},
            "adam": {"betas": [0.9, 0.999], "class": "Adam", "lr": 0.001}}
    labels = {c: json.dumps(o, sort_keys=True) for c, o in opts.items()}
    r = _relabelled(results, labels)
    r["conditions"] = {labels[c]: {"optimizer": o} for c, o in opts.items()}
    names = short_names(r)
    assert [names[labels[c]] for c in opts] == ["class=SGD, lr=0.05", "class=SGD, lr=0.001",
                                                "class=Adam, lr=0.001"]
    a, b = labels["adam"], labels["sgd"]
    pair = {"a": a, "b": b, "differ_from_step": None, "per_window": [],
            "summary": f"{a} vs {b}: the last window is not 'not conjugate'; 0 of 2 windows differ."}
    r["windows"] = {"between_conditions": {"pairs": {"p": pair}}}
    r["warnings"] = [f"delays of {a}: the fewest candidate delays, 0, are taken"]
    summary = window_comparisons(r)[0]["summary"]
    assert summary == ("class=Adam, lr=0.001 and class=SGD, lr=0.05: no step from which on every "
                       "window differs. The last window is not 'not conjugate'; 0 of 2 windows "
                       "differ.")
    assert warnings_of(r)[0] == "delays of class=Adam, lr=0.001: the fewest candidate delays, " \
        "0, are taken"
    md = render_markdown(r, figures=[])
    assert md.count('"class": "Adam"') == 1  # the label column of the conditions table only


def test_a_malformed_window_comparison_is_named(results):
    bad = [({"pairs": [1, 2]}, "must be a dict with 'pairs'"),
           ({"pairs": {"a-b": {"per_window": [{"distance": "far"}]}}},
            r"\['pairs'\]\['a-b'\]\['per_window'\]\[0\]\['distance'\] must be a number or null"),
           ({"pairs": {"a-b": {"per_window": [{"interval": [0, "x"]}]}}}, "must be \\[low, high\\]")]
    for between, message in bad:
        with pytest.raises(ReportError, match=message):
            render_markdown({**results, "windows": {"between_conditions": between}})


def test_an_optimizers_param_groups_are_shown_by_their_differing_entries():
    """Issue 25 review item 3: the recorded optimizer's param_groups (a list of dicts) were one
    long value cut in the middle (the lr lost); now each entry is a setting of its own."""
    from conjugacy.report import condition_rows

    def opt(lr, **more):
        return {"class": "SGD", "param_groups": [{"n_params": 6, "lr": lr, "momentum": 0.9,
                                                  **more}]}
    conditions = {"sgd": {"optimizer": opt(0.05)},
                  "warm": {"optimizer": opt(0.001, initial_lr=0.05)}}
    rows = condition_rows({"spectra": {"sgd": [], "warm": []}, "conditions": conditions})
    assert rows[1:] == [
        ["sgd", "optimizer.param_groups.0.lr = 0.05"],
        ["warm", "optimizer.param_groups.0.lr = 0.001, optimizer.param_groups.0.initial_lr = 0.05"],
        ["(all)", "shared: optimizer.class = SGD, optimizer.param_groups.0.n_params = 6, "
                  "optimizer.param_groups.0.momentum = 0.9"]]


def test_neighbour_line_counts_reused_spectra_apart_from_refits():
    """The neighbour check takes its rank neighbours from the base fits' factorization
    (``n_reused``): the report says so instead of counting them as refits; hostile counts are
    shown as given."""
    from conjugacy.report._content import _refits

    assert _refits({"n_fits": 24, "n_reused": 24}) == (
        "0 refits and 24 spectra from the base fits' factorization")
    assert _refits({"n_fits": 48, "n_reused": 16}).startswith("32 refits and 16")
    assert _refits({"n_fits": 48}) == "48 refits"
    assert _refits({"n_fits": 4, "n_reused": 9}) == "4 refits"  # inconsistent: not subtracted


def test_window_points_sit_at_the_middle_step_of_their_window():
    """Issue 25 second review, defect 4: a window of steps 80-115 was drawn at start + (window -
    1) / 2 in records (80 + 3.5); now at its middle step, from its label."""
    from conjugacy.report._figures import _window_middle

    assert _window_middle({"start": 80, "label": "80-115"}, 8) == 97.5
    assert _window_middle({"start": 10, "label": None}, 8) == 13.5  # no label: records
    assert np.isnan(_window_middle({"start": None, "label": "x"}, 8))
