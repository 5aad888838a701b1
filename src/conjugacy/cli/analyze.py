"""``conjugacy analyze STORE`` (verdicts and a report for your runs) and ``conjugacy report RESULTS``.

``analyze`` parses the options, calls :func:`conjugacy.analyze` once, prints the verdicts
and where the results went; ``report`` lays out any ``results.json`` of that schema (also those of
``conjugacy reproduce``) with :func:`conjugacy.report.write_report`. No math lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .._checks import UNIT_INTERVAL, Int, check_out_dir
from .._text import shown
from . import app
from ._errors import fail, number_option, parse_rank, rich_console, source_and_out


@app.command("analyze")
def analyze_command(
    store: Annotated[Path, typer.Argument(
        help="A trajectory store (e.g. runs.zarr) or a study output folder (with trajectories/).")],
    group_by: Annotated[str, typer.Option(
        "--group-by", help="Run metadata key naming the condition (dotted keys reach into nested "
        "metadata, e.g. optimizer.class).")] = "condition",
    seed_key: Annotated[str, typer.Option(
        "--seed-key", help="Run metadata key naming the independent seed; runs of one "
        "(condition, seed) are replicas, pooled into one spectrum.")] = "seed",
    params: Annotated[list[str] | None, typer.Option(
        "--params", help="Recorded parameters (names or globs) to use as observables; "
        "repeatable. Default: every recorded parameter.")] = None,
    window: Annotated[int | None, number_option(
        "--window", domain=Int(4), help="Also compute spectra of windows of N records and the "
        "transitions between them; runs with a metadata 'onset' or a test_accuracy series also "
        "get the early-warning alarm step and lead time.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output folder for results.json, report.html and report.md "
        "(default: runs_analysis beside runs.zarr; OUT/analysis for a study folder).")] = None,
    delays: Annotated[int | None, number_option(
        "--delays", domain=Int(0), help="Time delays (default: chosen from the data, reasoning in "
        "results.json).")] = None,
    rank: Annotated[str | None, typer.Option(
        "--rank", help="Modes kept: a positive integer, or 'svht' (per spectrum, the singular "
        "values above the Gavish-Donoho optimal hard threshold). Default: one rank for every "
        "spectrum, the largest SVHT rank of the conditions' pilots (first seed), at most 70.")
    ] = None,
    filter: Annotated[str, typer.Option(
        "--filter", help="What the verdicts compare: none (all eigenvalues, the default: it "
        "separated conditions best on real training runs), per-spectrum (each spectrum's "
        "residual filter) or shared-count (one count for the comparison).")] = "none",
    alpha: Annotated[float, number_option(
        "--alpha", domain=UNIT_INTERVAL, help="Level of the permutation test.")] = 0.05,
    time: Annotated[str, typer.Option(
        "--time", help="How spectra are compared: auto (continuous-time exponents "
        "log(lambda)/interval exactly when runs were recorded at different intervals), discrete "
        "(the eigenvalues; nothing aliases, differing intervals make verdicts undecided) or "
        "continuous.")] = "auto",
    bootstrap: Annotated[int, number_option(
        "--bootstrap", domain=Int(0), help="Bootstrap draws over replicas for an extra distance "
        "interval (0: none; costs 2 spectrum fits per draw, pair and seed).")] = 0,
    seed: Annotated[int, number_option("--seed", domain=Int(0),
                                       help="Seed of every random stream.")] = 0,
    report: Annotated[bool, typer.Option(
        "--report/--no-report", help="Write report.html and report.md.")] = True,
    neighbours: Annotated[bool, typer.Option(
        "--neighbours/--no-neighbours", help="Refit every comparison at neighbouring settings "
        "(delays x1/2, x2; rank x0.8, x1.25, from the base fit's factorization; the other filter: "
        "the per-spectrum filter under the default, all eigenvalues with --filter) and mark "
        "verdicts that flip as fragile (up to 2 more fits per spectrum).")] = True,
) -> None:
    """Group the runs of STORE into conditions and seeds, compare every pair of conditions, and
    write results.json and a self-contained report.html (plus report.md)."""
    from ..analysis.own_runs import FILTERS, analyze
    from ..compare import TIMES

    console = rich_console()
    fit_rank = parse_rank(rank)
    if time not in TIMES:
        fail(f"--time must be one of {', '.join(TIMES)}, got {time!r}")
    if filter not in FILTERS:
        fail(f"--filter must be one of {', '.join(FILTERS)}, got {filter!r}")
    target = source_and_out(store, out, "analysis", f"{store.stem}_analysis",
                            ": give a trajectory store or a study output folder")
    try:
        with _Progress() as progress:
            res = analyze(store, group_by=group_by, seed_key=seed_key,
                          params=(params[0] if params and len(params) == 1 else params or None),
                          window=window, delays=delays, rank=fit_rank, alpha=alpha, seed=seed,
                          time=time, filter=filter,
                          n_boot=bootstrap, out=target, report=report, progress=progress,
                          neighbours=neighbours)
    except (ValueError, KeyError) as exc:
        fail(f"{store}: {exc}")
    _print_results(console, res, target)


def _print_results(console: Console, res: Any, target: Path) -> None:
    """What ``analyze`` prints: the data and settings, the verdicts, from which step on each
    pair differs (``--window``, read from the results as the report reads it), the neighbour
    check, the warnings (with the records no window holds: ``own_runs.left_out_note``), the
    alarms and the files. Every condition is shown by the report's name for it
    (:func:`conjugacy.report._content.short_names`)."""
    from ..report._content import differ_sentence, named, short_names
    from .summaries import filter_note, neighbour_lines

    r = res.results
    names = short_names(r)
    console.print(f"{len(r['runs'])} runs, {len(res.spectra)} conditions x "
                  f"{len(next(iter(res.spectra.values())))} seeds, {r['n_records']} records, "
                  f"{r['n_features']} features; delays {r['settings']['delays']}, "
                  f"rank {shown(_rank_text(r['settings'], res.spectra, names))}")
    for line in res.verdict_lines():  # condition names are the user's: never Rich markup
        console.print(f"- {shown(line)}")
    windows = r.get("windows") or {}
    for entry in ((windows.get("between_conditions") or {}).get("pairs") or {}).values():
        console.print(f"- {shown(differ_sentence(entry, names))}")
    for line in neighbour_lines(_named_pairs(r, names)):  # markup of its own; names escaped
        console.print(line)
    if filter_note(r.get("comparison") or {}):  # e.g. only some runs carry the second branch
        console.print(f"[yellow]filter:[/yellow] {shown(named(filter_note(r['comparison']), names))}")
    for w in r.get("warnings") or []:  # with the records no window holds (own_runs)
        console.print(f"[yellow]warning:[/yellow] {shown(named(w, names))}")
    _print_alarms(console, windows.get("alarms"))
    console.print(f"results: {shown(target / 'results.json')}")
    if res.report is not None:
        console.print(f"report:  {shown(res.report[0])} (and {shown(res.report[1].name)})")


def _named_pairs(r: Any, names: Any) -> Any:
    """``r`` with the neighbour check's pairs keyed ``"a vs b"`` by the conditions' names where
    a name is not its label (a ``--group-by`` JSON label), else as they are."""
    from ..report._content import name_of

    cmp = r.get("comparison") or {}
    nb = cmp.get("neighbourhood")
    if not nb or all(names.get(c, c) == c for c in names):
        return r
    pairs = {(f"{name_of(names, cmp['pairs'][k][0])} vs {name_of(names, cmp['pairs'][k][1])}"
              if k in cmp.get("pairs", {}) else k): v for k, v in nb["pairs"].items()}
    return {**r, "comparison": {**cmp, "neighbourhood": {**nb, "pairs": pairs}}}



def _rank_text(settings: Any, spectra: Any, names: Any = None) -> str:
    """The rank as given; for the default, the rank with its rule (the pilots' SVHT ranks, each
    condition by its name in ``names``, and the cap); for a per-spectrum rule, the rule and the
    range of ranks it chose."""
    from ..report._content import name_of

    rank, rule = settings["rank"], settings.get("rank_rule")
    if rule:
        pilots = ", ".join(f"{name_of(names or {}, c)} {k}"
                           for c, k in rule["pilot_ranks"].items())
        whose = ("of the delay folds (lower bounds of the pilots')" if rule.get("source")
                 else "of the pilots")
        return (f"{rank} (SVHT {whose}: {pilots}; "
                + (f"capped at {rule['cap']})" if rule["capped"] else f"cap {rule['cap']})"))
    if not isinstance(rank, str):
        return str(rank)
    ranks = [sp.rank for v in spectra.values() for sp in v]
    return f"{rank} ({min(ranks)}-{max(ranks)} kept)" if ranks else rank


def _print_alarms(console: Console, alarms: Any) -> None:
    """The early-warning rule's alarm step, onset and lead time of each run (``--window`` on
    runs that carry an onset or a test-accuracy series; :func:`conjugacy.monitor.window_alarms`)."""
    if not alarms:
        return
    if alarms.get("error"):
        console.print(f"[yellow]warning:[/yellow] no alarms: {shown(alarms['error'])}")
        return
    rule = alarms["rule"]
    console.print(f"early warning (consecutive windows > {rule['factor']:g} noise floors for "
                  f"{rule['sustain']} windows):")
    for run, a in alarms["runs"].items():
        alarm = "no alarm" if a["alarm_step"] is None else f"alarm at step {a['alarm_step']}"
        onset = "no onset" if a["onset"] is None else f"onset {a['onset']}"
        lead = "" if a["lead_time"] is None else f", lead time {a['lead_time']} steps"
        console.print(f"- {shown(run)}: {alarm} ({onset}{lead})")


@app.command("report")
def report_command(
    results: Annotated[Path, typer.Argument(
        help="A results.json written by `conjugacy analyze` or `conjugacy reproduce ...`.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output folder (default: the folder of RESULTS).")] = None,
) -> None:
    """Write report.html (self-contained) and report.md from a results.json."""
    from ..analysis.results import ResultsFileError, read_results
    from ..report import write_report

    try:  # bounded: size, values, depth, schema and declared sizes (conjugacy.analysis.results)
        content = read_results(results)
    except ResultsFileError as exc:
        fail(str(exc))
    target = check_out_dir(out or results.parent)
    try:
        html_path, md_path = write_report(content, target, source_dir=results.parent)
    except (TypeError, ValueError) as exc:
        fail(f"{str(results)!r}: {exc}")
    rich_console().print(f"report: {shown(html_path)} (and {shown(md_path.name)})")


class _Progress:
    """Progress of :func:`conjugacy.analyze`'s ``progress`` callback on stderr: a Rich progress
    bar on a terminal (one task per stage; the stage's text says how much work it is;
    transient: it leaves the terminal to the results); elsewhere (``analyze ... > log 2>&1``)
    plain lines once the analysis has run :data:`PLAIN_AFTER` seconds (a quick one prints only
    the estimate and its result, one that stops on bad input before any work its one error
    line): each stage's
    start with its size, one line per tenth of it done, its end with the stage's time, each
    with the seconds since the start. A message (``total`` 0: the work estimate, before the
    first stage) is printed once, stamped with when it came: on a terminal as soon as a unit of
    work is done, elsewhere as the first of the plain lines or at a clean end (so input refused
    within the first seconds, before or during the first stage, is one error line)."""

    #: Seconds before the plain lines start (a terminal's bar is transient: nothing stays).
    PLAIN_AFTER = 2.0

    def __enter__(self) -> _Progress:
        from time import perf_counter

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._console = rich_console(stderr=True, soft_wrap=True)
        self._plain = not self._console.is_terminal
        self._t0, self._clock = perf_counter(), perf_counter
        self._tasks: dict[str, Any] = {}
        self._shown: dict[str, int] = {}  # plain: stage -> the last tenth printed (-1: none)
        self._began: dict[str, float] = {}  # plain: stage -> when it started
        self._held: list[tuple[str, float]] = []  # messages until work is done (_flush)
        if not self._plain:
            self._bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self._console, transient=True)
            self._bar.__enter__()
        return self

    def __call__(self, what: str, done: int, total: int) -> None:
        if total == 0 and done == 0:  # a message (the work estimate): held until work is done
            self._held.append((what, self._clock()))
            return
        if done > 0 and not self._plain:
            self._flush()
        if self._plain:  # held until the plain lines start (_print flushes) or a clean end
            self._line(what, done, total)
            return
        if what not in self._tasks:
            for task in self._tasks.values():
                self._bar.update(task, completed=self._bar.tasks[task].total)
            self._tasks[what] = self._bar.add_task(shown(what), total=total)
        self._bar.update(self._tasks[what], completed=done)

    def _line(self, what: str, done: int, total: int) -> None:
        """A plain line when a stage starts, passes a tenth of its ``total`` or ends."""
        if what not in self._shown:
            self._end_open_stages()
            self._shown[what] = -1
            self._began[what] = self._clock()
        if self._clock() - self._t0 < self.PLAIN_AFTER:
            return
        if self._shown[what] < 0:  # stamped with its start (plain lines may begin later)
            self._print(f"{what}: started ({total} to do)", at=self._began[what])
            self._shown[what] = 0
        tenth = 10 * done // total if total > 0 else 10
        if tenth > self._shown[what]:
            self._shown[what] = tenth
            self._print(f"{what}: {self._done(what) if done >= total else f'{done}/{total}'}")

    def _end_open_stages(self) -> None:
        for stage, tenth in self._shown.items():
            if 0 <= tenth < 10:
                self._shown[stage] = 10
                self._print(f"{stage}: {self._done(stage)}")

    def _done(self, stage: str) -> str:
        """``done in N s``: a stage's end with its time."""
        return f"done in {self._clock() - self._began[stage]:.1f} s"

    def _flush(self) -> None:
        """Print the held messages, once: at the first unit of work done, before any other
        line, or at a clean end (input refused before any work stays one error line)."""
        held, self._held = self._held, []
        for text, at in held:
            if self._plain:
                self._print(text, at=at)
            else:
                self._console.print(shown(text, markup=False), markup=False)

    def _print(self, text: str, at: float | None = None) -> None:
        self._flush()
        when = (self._clock() if at is None else at) - self._t0
        # a stage names the output folder: its control characters escaped, as every user string
        self._console.print(f"[{when:6.1f} s] {shown(text, markup=False)}", markup=False)

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self._flush()
        if self._plain:
            if exc[0] is None:
                self._end_open_stages()
            return
        self._bar.__exit__(*exc)
