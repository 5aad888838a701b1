"""The report draws every run's early-warning alarm and onset on the loss figure (issue 23
review, item 3): the figure's lines, its caption, and report.md after `analyze --window`."""

from __future__ import annotations

import numpy as np
import pytest

from conjugacy.report._content import ReportError
from conjugacy.report._figures import _draw_loss, alarm_marks, report_figures

ALARMS = {"rule": {}, "runs": {
    "p0": {"alarm_step": 159, "onset": 160, "lead_time": 1, "condition": "pos"},
    "p1": {"alarm_step": None, "onset": 170, "lead_time": None, "condition": "pos"},
    "n0": {"alarm_step": 120, "onset": None, "lead_time": None, "condition": "neg"}}}
LOSS = {c: {"steps": [0, 100, 200], "mean": [1.0, 0.5, 0.2], "std": [0.1, 0.1, 0.1]}
        for c in ("pos", "neg")}


def test_alarm_marks_groups_runs_by_condition():
    assert alarm_marks({"windows": {"alarms": ALARMS}}) == {
        "pos": [("p0", 159, 160), ("p1", None, 170)], "neg": [("n0", 120, None)]}
    assert alarm_marks({"windows": {"alarms": {"error": "too few windows"}}}) == {}
    assert alarm_marks({}) == {}
    bad = {"windows": {"alarms": {"runs": {"x": {"alarm_step": "159", "condition": "pos"}}}}}
    with pytest.raises(ReportError, match=r"\['x'\]: alarm_step and onset must be integer"):
        alarm_marks(bad)


def test_loss_figure_draws_each_alarm_solid_and_each_onset_dotted():
    from conjugacy.plots import new_figure

    _fig, ax = new_figure()
    _draw_loss(ax, LOSS, alarm_marks({"windows": {"alarms": ALARMS}}))
    from matplotlib.colors import to_hex

    marks = [c for c in ax.collections if c.get_gid() in ("alarm", "onset")]
    assert len(marks) == 3  # one collection per condition and kind, not one line per run
    lines = set()
    for c in marks:
        style = {"alarm": "-", "onset": ":"}[c.get_gid()]
        assert (c.get_linestyle()[0][1] is None) == (style == "-")  # solid / dotted (dashes)
        assert c.get_transform() == ax.get_xaxis_transform()  # the whole height, as axvline
        for seg in c.get_segments():
            assert seg[0][0] == seg[1][0] and (seg[0][1], seg[1][1]) == (0, 1)
            lines.add((c.get_gid(), style, float(seg[0][0]), to_hex(c.get_color()[0])))
    pos, neg = (next(ln.get_color() for ln in ax.lines if ln.get_label() == c)
                for c in ("pos", "neg"))
    assert lines == {("alarm", "-", 159.0, pos), ("onset", ":", 160.0, pos),
                     ("onset", ":", 170.0, pos), ("alarm", "-", 120.0, neg)}


def test_report_figure_caption_names_each_run_alarm_and_onset():
    figs = {f.name: f for f in report_figures({"loss": LOSS, "windows": {"alarms": ALARMS}})}
    caption = figs["loss"].caption
    assert "p0: alarm 159, onset 160; p1: no alarm, onset 170; n0: alarm 120." in caption
    only = {f.name: f for f in report_figures({"windows": {"alarms": ALARMS}})}  # no loss
    assert only["loss"].caption.startswith("Early-warning alarms (no loss was recorded).")
    assert "alarm" not in {f.name: f for f in report_figures({"loss": LOSS})}["loss"].caption


def test_analyze_window_report_shows_the_alarms_on_the_loss_figure(tmp_path):
    pytest.importorskip("zarr")
    import conjugacy
    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(0)
    n = 200
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for cond, flip in (("pos", True), ("neg", False)):
            for seed in range(3):
                coef = np.where((np.arange(n) >= 120) & flip, -0.9, 0.9)
                x = np.zeros((n, 3))
                for t in range(1, n):
                    x[t] = coef[t] * x[t - 1] + rng.standard_normal(3)
                name = f"{cond}{seed}"
                scalars = {"loss": np.linspace(1, 0.1, n)}
                if flip:
                    scalars["test_accuracy"] = (np.arange(n) >= 160).astype(float)
                st.create_run(name, {"w": ((3,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                st.append(name, np.arange(n), {"w": x}, scalars=scalars)
                st.set_finished(name)
    res = conjugacy.analyze(tmp_path / "s.zarr", window=40, delays=1, rank=2, n_permutations=9,
                            neighbours=False, out=tmp_path / "o")
    runs = res.results["windows"]["alarms"]["runs"]
    assert runs["pos0"]["onset"] == 160 and runs["pos0"]["condition"] == "pos"
    text = (tmp_path / "o" / "report.md").read_text()
    a = runs["pos0"]["alarm_step"]
    assert f"pos0: {'no alarm' if a is None else f'alarm {a}'}, onset 160" in text
    assert "neg0: no alarm" in text or "neg0: alarm" in text


def test_a_null_in_a_loss_curve_is_drawn_as_a_gap():
    from conjugacy.plots import new_figure

    fig, ax = new_figure()
    _draw_loss(ax, {"sgd": {"steps": [0, 100, 200], "mean": [1.0, None, 0.2],
                            "std": [0.1, None, 0.1]}}, {})
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1.0, np.nan, 0.2])
    with pytest.raises(ReportError, match=r"'steps' and 'mean' differ in length"):
        _draw_loss(ax, {"sgd": {"steps": [0, 100], "mean": [1.0, None, 0.2]}}, {})
