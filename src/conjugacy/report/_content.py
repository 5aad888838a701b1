"""What a report says, read from a results dict: the comparison, the verdicts, the warnings.

Nothing is computed here beyond reading and formatting: every number comes from the results (see
the schema in :mod:`conjugacy.report`). The functions return plain Python structures (strings,
lists of rows) that the HTML and Markdown writers lay out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._text import cut

__all__ = [
    "ReportError",
    "comparison_rows",
    "complex_values",
    "condition_rows",
    "differ_sentence",
    "drawn",
    "named",
    "neighbourhood_rows",
    "overview",
    "short_names",
    "verdicts",
    "warnings_of",
    "window_comparisons",
]


class ReportError(ValueError):
    """The results dict lacks what a report needs, or holds it in the wrong shape.

    Examples
    --------
    >>> from conjugacy.report import render_html
    >>> render_html({"title": "nothing"})
    Traceback (most recent call last):
    ...
    conjugacy.report._content.ReportError: results hold neither 'comparison' nor 'spectra': ...
    """


# ----- reading helpers ----------------------------------------------------------------------------
def complex_values(pairs: Any, where: str) -> np.ndarray:
    """``[[re, im], ...]`` (JSON) or complex numbers -> complex128 (n,); ``None`` entries (non-finite
    values in JSON) become NaN."""
    if pairs is None:
        return np.zeros(0, complex)
    if isinstance(pairs, np.ndarray) and np.iscomplexobj(pairs):
        return pairs.astype(complex).ravel()
    try:
        arr = np.array([[np.nan if v is None else v for v in p] for p in pairs], dtype=float)
    except (TypeError, ValueError):
        raise ReportError(f"{where} must be a list of [re, im] pairs") from None
    if arr.size == 0:
        return np.zeros(0, complex)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ReportError(f"{where} must be a list of [re, im] pairs, got shape {arr.shape}")
    return arr[:, 0] + 1j * arr[:, 1]


def fmt(value: Any, digits: int = 3) -> str:
    """A number for people: 3 significant digits, ``-`` when missing or not finite."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "-"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{max(digits, len(str(int(abs(v)))))}g}"


def _span(pair: Any, form: str = "{}-{}") -> str:
    """A range or interval ``[low, high]`` as ``form`` of the two numbers (:func:`fmt`); ``-``
    when missing."""
    return "-" if not pair else form.format(fmt(pair[0]), fmt(pair[1]))


def _mapping(results: Any, key: str) -> Mapping[str, Any]:
    value = results.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ReportError(f"results[{key!r}] must be a dict, got {type(value).__name__}")
    return value


def comparison_of(results: Mapping[str, Any]) -> Mapping[str, Any]:
    """``results["comparison"]`` (the :func:`conjugacy.analysis.compare_conditions` record)."""
    cmp = _mapping(results, "comparison")
    lacking = [key for key in ("conditions", "pairs", "verdicts", "all") if key not in cmp]
    if cmp and lacking:
        raise ReportError(f"results['comparison'] lacks {lacking[0]!r}: it must be the record of "
                          "conjugacy.analysis.compare_conditions")
    return cmp


def chosen(cmp: Mapping[str, Any]) -> Mapping[str, Any]:
    """The comparison the verdicts use (filtered spectra when available)."""
    uses = cmp.get("verdict_uses", "all")
    return cmp.get(uses) or cmp["all"]


# ----- condition names and settings ---------------------------------------------------------------
#: Condition labels up to this long are shown as they are; longer ones (``--group-by optimizer``
#: makes ~300 characters of JSON) are named by the settings that differ between conditions.
SHORT_NAME = 40
#: Longest name the report gives a condition (text and figures): a longer one is cut in the
#: middle with "…" and a warning says so (a 300,000-character label took 131 s CPU to draw).
MAX_NAME = 80
#: Longest label shown whole in the table of conditions (``--group-by`` JSON labels fit).
MAX_LABEL = 1000
#: Longest any one string of results.json is shown in the report (title, warnings, verdict
#: explanations, table cells; HTML and Markdown alike): a longer one is cut in the middle with
#: "…" (a 60,000,000-character title made a 480 MB report.html in 11 s and 2.57 GB).
MAX_TEXT = 2000
#: Most eigenvalues the figures draw, over all spectra of a figure: beyond, each spectrum is
#: drawn with its first ``MAX_DRAWN // number of spectra`` (at least 1) and a warning says so
#: (16,000 eigenvalues per spectrum took 11.5 s and 231 MB to draw).
MAX_DRAWN = 10_000


def _flat_settings(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of nested settings; a list of dicts (an optimizer's ``param_groups``) by
    index, ``optimizer.param_groups.0.lr``, so one differing rate is shown, not the list."""
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat_settings(v, f"{prefix}{k}."))
        elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
            out.update(_flat_settings({str(i): x for i, x in enumerate(v)}, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def condition_settings(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """condition -> its settings (dotted keys): ``results["conditions"][c]`` when it is a dict
    (``conjugacy analyze`` records the run metadata shared by the condition's runs), else the
    label itself when it is a JSON object (a ``--group-by`` key whose value is a dict)."""
    import json

    described = _mapping(results, "conditions")
    out = {}
    for c in _labels(results):
        value = described.get(c)
        if not isinstance(value, Mapping) or not value:
            try:
                value = json.loads(c)
            except ValueError:
                value = None
        out[c] = _flat_settings(value) if isinstance(value, Mapping) else {}
    return out


def _labels(results: Mapping[str, Any]) -> list[str]:
    cmp = comparison_of(results)
    return [str(c) for c in (cmp.get("conditions") if cmp else None)
            or _mapping(results, "spectra") or _mapping(results, "conditions")]


def differing_keys(settings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The setting keys whose values are not the same in every condition (in first-seen order)."""
    keys = list(dict.fromkeys(k for s in settings.values() for k in s))
    return [k for k in keys if len({repr(s.get(k)) for s in settings.values()}) > 1]


def short_names(results: Mapping[str, Any]) -> dict[str, str]:
    """condition label -> the name the report shows: the label when every label is at most
    :data:`SHORT_NAME` characters, else ``"key=value, ..."`` of the fewest settings that differ
    between conditions and tell them apart (:func:`naming_keys`; not ``group_by`` itself; its
    prefix dropped: ``optimizer.lr`` -> ``lr``), cut to :data:`SHORT_NAME` characters with "…";
    the labels as they are when no such settings tell them apart or the names would not be
    unique. No name is longer than :data:`MAX_NAME`: a longer
    one is cut in the middle with "…" (and numbered, ``[2]``, if that made two names equal).

    Parameters
    ----------
    results : dict
        A results dict (schema in :mod:`conjugacy.report`); ``conditions`` and ``group_by`` are
        read.

    Returns
    -------
    dict str -> str

    Examples
    --------
    >>> a = "optimizer=sgd,lr=0.1,momentum=0.9,batch=128"
    >>> b = "optimizer=adam,lr=0.001,momentum=0.9,batch=128"
    >>> conditions = {a: {"lr": 0.1, "momentum": 0.9}, b: {"lr": 0.001, "momentum": 0.9}}
    >>> names = short_names({"spectra": {a: [], b: []}, "conditions": conditions})
    >>> names[a], names[b]  # the settings that differ (momentum does not)
    ('lr=0.1', 'lr=0.001')
    >>> short_names({"spectra": {"sgd": [], "adam": []}})  # short labels are kept
    {'sgd': 'sgd', 'adam': 'adam'}
    """
    labels = _labels(results)
    if all(len(c) <= SHORT_NAME for c in labels):
        return {c: c for c in labels}
    return _bounded_names(_setting_names(results, labels))


def name_of(names: Mapping[str, str], label: Any) -> str:
    """The name ``names`` (:func:`short_names`) gives ``label``; a label it lacks (a condition
    found elsewhere in the results) is cut to :data:`MAX_NAME` characters."""
    return names.get(str(label)) or cut(label, MAX_NAME)


def _bounded_names(names: dict[str, str]) -> dict[str, str]:
    """``names`` cut to :data:`MAX_NAME` characters; numbered (``[2]``) if cutting merged two."""
    out = {c: cut(n, MAX_NAME) for c, n in names.items()}
    if len(set(out.values())) < len(out):
        out = {c: cut(n, MAX_NAME - 7) + f" [{i + 1}]" if len(n) > MAX_NAME else n
               for i, (c, n) in enumerate(names.items())}
    return out


def _setting_names(results: Mapping[str, Any], labels: list[str]) -> dict[str, str]:
    """label -> "key=value, ..." of the fewest differing settings that tell the conditions apart
    (:func:`naming_keys`; see :func:`short_names`), or the labels themselves."""
    settings = condition_settings(results)
    group_by = str(results.get("group_by"))
    candidates = [k for k in differing_keys(settings) if k != group_by]  # that key is the label
    keys = naming_keys({c: settings[c] for c in labels}, candidates)
    if not keys:
        return {c: c for c in labels}
    for absent in ("", "-"):  # a key a condition lacks: left out, or shown as "-" if needed
        names = {}
        for c in labels:
            text = ", ".join(f"{k.removeprefix(group_by + '.')}={settings[c].get(k, absent)}"
                             for k in keys if k in settings[c] or absent) or c
            names[c] = text if len(text) <= SHORT_NAME else text[:SHORT_NAME - 1] + "…"
        if len(set(names.values())) == len(names):
            return names
    return {c: c for c in labels}  # not unique: the labels, as they are


def naming_keys(settings: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> list[str]:
    """The fewest of ``keys`` (settings that differ between some conditions) whose values tell
    every condition apart: greedily the key that splits the conditions into the most groups
    (ties: the first in ``keys``), then every key not needed for that dropped; in ``keys``'
    order. Empty when even all of them do not tell the conditions apart.

    Examples
    --------
    >>> s = {"adam": {"class": "Adam", "lr": 0.001, "betas": [0.9, 0.999]},
    ...      "sgd": {"class": "SGD", "lr": 0.05, "momentum": 0.9},
    ...      "warmup": {"class": "SGD", "lr": 0.001, "momentum": 0.9}}
    >>> naming_keys(s, ["class", "lr", "betas", "momentum"])  # momentum: shared by two
    ['class', 'lr']
    """
    def groups(chosen: Sequence[str]) -> int:
        return len({tuple(repr(st.get(k, _ABSENT)) for k in chosen) for st in settings.values()})

    chosen: list[str] = []
    while groups(chosen) < len(settings):
        rest = [k for k in keys if k not in chosen]
        if not rest:
            return []
        chosen.append(max(rest, key=lambda k: (groups([*chosen, k]), -keys.index(k))))
    for k in list(chosen):
        if groups([c for c in chosen if c != k]) == len(settings):
            chosen.remove(k)
    return [k for k in keys if k in chosen]


_ABSENT = object()


def named(text: Any, names: Mapping[str, str]) -> str:
    """``text`` with every condition label of ``names`` (:func:`short_names`) that is longer
    than its name replaced by the name (longest labels first), so a sentence written with the
    full labels (a warning, a summary) shows the names of the tables.

    Examples
    --------
    >>> label = '{"class": "SGD", "lr": 0.1}'
    >>> named(f"delays of {label}: 0 taken", {label: "lr=0.1"})
    'delays of lr=0.1: 0 taken'
    """
    out = str(text)
    for label in sorted(names, key=len, reverse=True):
        if len(label) > len(names[label]):
            out = out.replace(label, names[label])
    return out


def condition_rows(results: Mapping[str, Any]) -> list[list[str]] | None:
    """Table rows (header first): each condition's name, its label (a column only when some
    name is not its label), the recorded settings that differ between conditions, then one row
    of the settings all conditions share; each value on one line (:func:`setting_text`); None
    without any settings.

    Examples
    --------
    >>> conditions = {"sgd": {"optimizer": {"name": "sgd", "lr": 0.1}, "model": "MLP(\\n  ...\\n)"},
    ...               "adam": {"optimizer": {"name": "adam", "lr": 0.001}, "model": "MLP(\\n  ...\\n)"}}
    >>> for row in condition_rows({"spectra": {"sgd": [], "adam": []}, "conditions": conditions}):
    ...     print(row)
    ['condition', 'settings that differ']
    ['sgd', 'optimizer.name = sgd, optimizer.lr = 0.1']
    ['adam', 'optimizer.name = adam, optimizer.lr = 0.001']
    ['(all)', 'shared: model = MLP( … (3 lines, whole in results.json)']
    >>> condition_rows({"spectra": {"sgd": [], "adam": []}}) is None
    True
    """
    settings = condition_settings(results)
    if not any(settings.values()):
        return None
    names, keys = short_names(results), differing_keys(settings)
    labelled = any(names[c] != c for c in settings)
    rows = [["condition", *(["label"] if labelled else []), "settings that differ"]]
    for c, st in settings.items():
        rows.append([names[c], *([cut(c, MAX_LABEL)] if labelled else []),
                     ", ".join(f"{k} = {setting_text(st[k])}" for k in keys if k in st) or "-"])
    first = next(iter(settings.values()))
    shared = [k for k in first if k not in keys and all(k in s for s in settings.values())]
    if shared:
        rows.append(["(all)", *([""] if labelled else []), "shared: " + ", ".join(
            f"{k} = {setting_text(first[k])}" for k in shared)])
    return rows


#: Longest one setting's value is shown in the table of conditions.
MAX_SETTING = 80


def setting_text(value: Any) -> str:
    """One recorded setting's value on one line: a value of several lines (a model's printout)
    by its first line and how many lines results.json holds; cut to :data:`MAX_SETTING`.

    Examples
    --------
    >>> setting_text("Sequential(\\n  (0): Linear()\\n)"), setting_text(0.1)
    ('Sequential( … (3 lines, whole in results.json)', '0.1')
    """
    text = str(value)
    lines = text.splitlines()
    if len(lines) > 1:
        return f"{cut(lines[0], MAX_SETTING)} … ({len(lines)} lines, whole in results.json)"
    return cut(text, MAX_SETTING)


# ----- overview: what was compared ------------------------------------------------------------------
def overview(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(label, text)`` rows: conditions, seeds, runs, steps, observables, settings, data.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.analysis import compare_conditions, spectra_to_json
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> spectra = {"sgd": [fit() for _ in range(3)], "adam": [fit() for _ in range(3)]}
    >>> results = {"title": "SGD <vs> Adam", "spectra": spectra_to_json(spectra),
    ...            "comparison": compare_conditions(spectra, n_shuffles=10)}
    >>> overview(results)[:2]
    [('conditions', 'sgd, adam'), ('seeds per condition', '3')]
    """
    rows: list[tuple[str, str]] = []
    cmp = comparison_of(results)
    spectra = _mapping(results, "spectra")
    conditions = list(cmp.get("conditions") or spectra)
    names = short_names(results)
    if conditions:  # their settings: condition_rows
        rows.append(("conditions", ", ".join(name_of(names, c) for c in conditions)))
    if "group_by" in results:
        rows.append(("grouped by", f"{results['group_by']} (conditions), "
                                   f"{results.get('seed_key', 'seed')} (seeds)"))
    if cmp:
        rows.append(("seeds per condition", str(cmp.get("n_seeds"))))
    runs = results.get("runs")
    if isinstance(runs, Sequence) and runs:
        n_unfinished = sum(1 for r in runs if isinstance(r, Mapping) and r.get("finished") is False)
        per = Counter((r.get("condition"), r.get("seed")) for r in runs if isinstance(r, Mapping))
        counts = sorted(set(per.values()))
        text = f"{len(runs)} runs"
        if counts:
            text += f", {'/'.join(map(str, counts))} replica run(s) per (condition, seed)"
        if n_unfinished:
            text += f", {n_unfinished} unfinished"
        rows.append(("runs", text))
        steps = sorted({(r.get("first_step"), r.get("last_step"), r.get("n_complete"))
                        for r in runs if isinstance(r, Mapping) and "n_complete" in r},
                       key=str)
        if steps:
            rows.append(("steps", "; ".join(f"{a}..{b} ({n} records)" for a, b, n in steps[:4])
                         + (f" (4 of {len(steps)} shown)" if len(steps) > 4 else "")))
    obs = results.get("observables")
    if obs is not None:
        rows.append(("observables", ", ".join(map(str, obs)) if isinstance(obs, list | tuple)
                     else str(obs)))
    settings = dict(_mapping(results, "settings"))
    firsts = {c: s[0] for c, s in spectra.items()
              if isinstance(s, Sequence) and s and isinstance(s[0], Mapping)}
    for key in ("method", "delays", "rank_requested", "pca", "n_features", "n_observables"):
        if key in settings:
            continue
        values = {c: (sp.get(key) if key == "method" else (sp.get("settings") or {}).get(key))
                  for c, sp in firsts.items()}
        values = {c: v for c, v in values.items() if v is not None or key == "pca"}
        if not values:
            continue
        distinct = {repr(v) for v in values.values()}
        settings[key] = (next(iter(values.values())) if len(distinct) == 1 else
                         " / ".join(f"{name_of(names, c)}: {v}" for c, v in values.items()))
    if settings:
        rows.append(("spectrum settings", ", ".join(f"{k} = {v}" for k, v in settings.items()
                                                     if not isinstance(v, Mapping | list))))
    rows += [(f"why {key}", named(why, names))
             for key, why in _mapping(results, "settings_reasoning").items()]
    if cmp:
        rows.append(("verdict rule", str(cmp.get("verdict_rule", ""))))
        filt = cmp.get("filter") or {}
        if filt.get("available"):
            kept = filt.get("kept") or {}
            of = filt.get("of") or {}
            rows.append(("residual filter", "; ".join(
                f"{name_of(names, c)}: kept {'/'.join(map(str, kept.get(c, [])))} of "
                f"{'/'.join(map(str, of.get(c, [])))} eigenvalues per seed" for c in kept)))
    data = _mapping(results, "data")
    if data:
        rows.append(("data", ", ".join(f"{k} = {v}" for k, v in data.items()
                                       if isinstance(v, str | int | float))))
    store = results.get("store")
    if store:
        rows.append(("store", str(store)))
    return rows


# ----- verdicts -----------------------------------------------------------------------------------
#: What the distance columns of the report's tables mean (shown under each table, and in
#: docs/own_runs.md): the effect size is built from the two means beside it.
UNITS_LEGEND = (
    "W1 seed by seed: mean W1 between the spectra of the same seed index of the two conditions, "
    "with its 95% t-interval over seeds. The permutation test's own means: between = mean W1 "
    "over all pairs of one seed of each condition; noise floor = mean W1 between two seeds of "
    "one condition (the two conditions' means averaged); effect size = (between - noise floor) "
    "/ noise floor, so it is negative exactly when between < noise floor.")


def between_mean(noise_floor: Any, effect_size: Any) -> float | None:
    """The permutation test's mean W1 over all between-condition pairs of seeds, from the two
    numbers every test record holds: ``noise_floor * (1 + effect_size)`` (the statistic is
    between - floor and the effect size statistic / floor, :func:`conjugacy.conjugacy_test`);
    None when either is missing.

    Examples
    --------
    >>> between_mean(0.02, 0.5), between_mean(None, 1.0)
    (0.03, None)
    """
    if noise_floor is None or effect_size is None:
        return None
    return float(noise_floor) * (1.0 + float(effect_size))


def verdicts(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One dict per pair of conditions: ``pair, a, b, verdict``, ``explanation`` (why, in words,
    with the numbers), ``sentence`` (``"a vs b: verdict"``, a full stop, the explanation) and
    the numbers.

    Keys: ``distance`` (mean per-seed W1 on the spectra the verdict uses), ``distance_std``,
    ``interval`` ([lo, hi] or None), ``distance_all`` (all eigenvalues), ``pvalue``, ``min_pvalue``,
    ``effect_size``, ``noise_floor``, ``between`` (:func:`between_mean`: effect size =
    (between - noise_floor) / noise_floor, :data:`UNITS_LEGEND`), ``n_seeds``, ``uses``.

    Raises
    ------
    ReportError
        If ``comparison`` has the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.analysis import compare_conditions, spectra_to_json
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> spectra = {"sgd": [fit() for _ in range(3)], "adam": [fit() for _ in range(3)]}
    >>> results = {"title": "SGD <vs> Adam", "spectra": spectra_to_json(spectra),
    ...            "comparison": compare_conditions(spectra, n_shuffles=10)}
    >>> r = verdicts(results)[0]
    >>> r["pair"], r["verdict"], r["reason"]
    ('sgd-adam', 'undecided', 'p = 0.7, but the smallest attainable p is 0.1 >= alpha = 0.05: add seeds')
    """
    cmp = comparison_of(results)
    if not cmp:
        return []
    alpha = float(cmp.get("alpha", 0.05))
    ch = chosen(cmp)
    floor = (ch.get("equivalence_classes") or {}).get("noise_floor")
    names = short_names(results)
    out = []
    for name, (a, b) in cmp["pairs"].items():
        a, b = name_of(names, a), name_of(names, b)
        d = (ch.get("distances") or {}).get(name, {})
        d_all = (cmp["all"].get("distances") or {}).get(name, {})
        t = (ch.get("permutation_tests") or {}).get(name)
        t = t if isinstance(t, Mapping) else {}
        v = (cmp.get("verdicts") or {}).get(name, {})
        row = {
            "pair": name, "a": a, "b": b,
            "verdict": v.get("verdict"),
            "reason": v.get("reason"),
            "uses": v.get("uses", cmp.get("verdict_uses", "all")),
            "distance": d.get("mean"), "distance_std": d.get("std"),
            **{k: list(d[k]) if isinstance(d.get(k), Sequence) else None
               for k in ("interval", "bootstrap_interval")},
            "distance_all": d_all.get("mean"),
            "pvalue": t.get("pvalue"),
            "min_pvalue": t.get("min_pvalue"),
            "effect_size": t.get("effect_size"),
            "noise_floor": t.get("noise_floor", floor),
            "n_seeds": cmp.get("n_seeds"),
            "alpha": alpha,
        }
        row["between"] = between_mean(row["noise_floor"], row["effect_size"])
        row["explanation"] = _sentence(row)
        row["sentence"] = f"{a} vs {b}: {row['verdict'] or 'not tested'}. {row['explanation']}"
        out.append(row)
    return out


def _sentence(r: Mapping[str, Any]) -> str:
    n = r["n_seeds"]
    numbers = [f"W1 seed by seed = {fmt(r['distance'])}"
               + (f" ± {fmt(r['distance_std'])} over seeds" if r["distance_std"] is not None else "")]
    if r["interval"]:
        numbers.append(_span(r["interval"], "95% interval [{}, {}]"))
    if r["bootstrap_interval"]:
        numbers.append(_span(r["bootstrap_interval"], "bootstrap over replicas [{}, {}]"))
    if r["effect_size"] is not None:
        numbers.append(f"W1 over all pairs of seeds {fmt(r['between'])} vs noise floor "
                       f"{fmt(r['noise_floor'])}: effect size {fmt(r['effect_size'])}")
    elif r["noise_floor"] is not None:
        numbers.append(f"noise floor (distance between seeds) {fmt(r['noise_floor'])}")
    if r["pvalue"] is not None:
        numbers.append(f"permutation p = {fmt(r['pvalue'])}")
    if r["min_pvalue"] is not None:
        numbers.append(f"smallest p {n} seeds allow = {fmt(r['min_pvalue'])}")
    which = "the filtered spectra" if r["uses"] == "filtered" else "all eigenvalues"
    tail = f" ({'; '.join(numbers)}; on {which})."
    few = (f" With {n} seeds per condition the test cannot reach p < {fmt(r['alpha'])}: this is "
           "not evidence of equivalence; record more seeds.")
    if r["verdict"] == "not conjugate":
        return ("Spectra of different conditions lie farther apart than spectra of different seeds "
                "of one condition" + tail)
    if r["verdict"] == "undecided":
        if r.get("reason") and not str(r["reason"]).startswith("p = "):
            return f"Undecided: {r['reason']}" + tail  # e.g. spectra fitted with other settings
        return f"Too few seeds for the test to reject at α = {fmt(r['alpha'])}" + tail + few
    if r["verdict"] == "conjugate":
        text = (f"No evidence that their training dynamics differ (p ≥ α = {fmt(r['alpha'])}); "
                "consistent with conjugate dynamics" + tail)
        if r["min_pvalue"] is not None and r["min_pvalue"] >= r["alpha"]:
            text += few
        return text
    return (f"The permutation test needs at least 2 seeds per condition; {n} given" + tail)


def comparison_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """Table rows (header first): per pair, the numbers behind its verdict (:func:`verdicts`).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.analysis import compare_conditions, spectra_to_json
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> spectra = {"sgd": [fit() for _ in range(3)], "adam": [fit() for _ in range(3)]}
    >>> results = {"title": "SGD <vs> Adam", "spectra": spectra_to_json(spectra),
    ...            "comparison": compare_conditions(spectra, n_shuffles=10)}
    >>> rows = comparison_rows(results)
    >>> rows[0][2:4], rows[1][:4]
    (['W1 seed by seed (used)', '± std'], ['sgd vs adam', 'undecided', '0.052', '0.0215'])
    """
    rows = [["pair", "verdict", "W1 seed by seed (used)", "± std", "95% interval", *TEST_COLUMNS,
             "W1 seed by seed (all eigenvalues)", "p", "smallest p"]]
    for r in verdicts(results):
        rows.append([f"{r['a']} vs {r['b']}", str(r["verdict"] or "not tested"), fmt(r["distance"]),
                     fmt(r["distance_std"]), _span(r["interval"], "[{}, {}]"),
                     fmt(r["between"]), fmt(r["noise_floor"]), fmt(r["effect_size"]),
                     fmt(r["distance_all"]), fmt(r["pvalue"]), fmt(r["min_pvalue"])])
    return rows


#: The three columns of the permutation test's own means and its effect size
#: (:data:`UNITS_LEGEND`), in both tables.
TEST_COLUMNS = ("W1 between conditions (all seed pairs)", "noise floor (W1 between seeds)",
                "effect size = (between - floor) / floor")


def between_conditions(results: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``results["windows"]["between_conditions"]`` checked for what the report reads (pairs of
    dicts, each window a dict whose numbers are numbers or null); None when absent.

    Raises
    ------
    ReportError
        Naming the first entry of the wrong shape.
    """
    between = _mapping(results, "windows").get("between_conditions")
    if between is None:
        return None
    where = "results['windows']['between_conditions']"
    pairs = between.get("pairs") if isinstance(between, Mapping) else None
    if not isinstance(pairs, Mapping):
        raise ReportError(f"{where} must be a dict with 'pairs' (pair -> dict)")
    for name, entry in pairs.items():
        per = entry.get("per_window") if isinstance(entry, Mapping) else None
        if not isinstance(per, list) or not all(isinstance(w, Mapping) for w in per):
            raise ReportError(f"{where}['pairs'][{name!r}] must hold 'per_window', a list of dicts")
        for i, w in enumerate(per):
            for key in ("start", "distance", "noise_floor", "effect_size", "pvalue"):
                v = w.get(key)
                if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                    raise ReportError(f"{where}['pairs'][{name!r}]['per_window'][{i}][{key!r}] "
                                      f"must be a number or null, got {type(v).__name__}")
            iv = w.get("interval")
            if iv is not None and not (isinstance(iv, list) and len(iv) == 2 and all(
                    isinstance(x, int | float) and not isinstance(x, bool) for x in iv)):
                raise ReportError(f"{where}['pairs'][{name!r}]['per_window'][{i}]['interval'] "
                                  "must be [low, high]")
        if entry.get("differ_from_step") is not None and not isinstance(
                entry["differ_from_step"], int):
            raise ReportError(f"{where}['pairs'][{name!r}]['differ_from_step'] must be a step")
    return between


def window_comparisons(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per pair of conditions compared window by window (``results["windows"]
    ["between_conditions"]``): ``title``, ``summary`` (from which step on they differ,
    :func:`differ_sentence`) and the table rows (header first): the seed-by-seed W1 with its
    interval, the test's between-condition mean, noise floor and effect size
    (:data:`UNITS_LEGEND`), p and verdict.

    Raises
    ------
    ReportError
        If ``results["windows"]["between_conditions"]`` has the wrong shape (naming the entry).

    Examples
    --------
    >>> window = lambda start, d, p, v: {"start": start, "label": f"{start}-{start + 19}",
    ...     "distance": d, "interval": None, "noise_floor": 0.02, "effect_size": d / 0.02,
    ...     "pvalue": p, "verdict": v}
    >>> pair = {"a": "sgd", "b": "adam", "differ_from_step": 20, "differ_from_window": "20-39",
    ...         "per_window": [window(0, 0.02, 0.6, "conjugate"),
    ...                        window(20, 0.3, 0.001, "not conjugate")]}
    >>> results = {"spectra": {"sgd": [], "adam": []},
    ...            "windows": {"between_conditions": {"pairs": {"sgd-adam": pair}}}}
    >>> c = window_comparisons(results)[0]
    >>> c["title"], c["rows"][2]
    ('sgd vs adam', ['20-39', '0.3', '-', '0.32', '0.02', '15', '0.001', 'not conjugate'])
    >>> c["summary"]
    'sgd and adam differ from step 20 on (window 20-39 and every later one is not conjugate).'
    """
    between = between_conditions(results)
    if between is None:
        return []
    names = short_names(results)
    out = []
    for entry in (between.get("pairs") or {}).values():
        a, b = (name_of(names, entry.get(k)) for k in ("a", "b"))
        rows = [["window (steps)", "W1 seed by seed", "95% interval", *TEST_COLUMNS, "p",
                 "verdict"]]
        for w in entry.get("per_window") or []:
            rows.append([str(w.get("label")), fmt(w.get("distance")),
                         _span(w.get("interval"), "[{}, {}]"),
                         fmt(between_mean(w.get("noise_floor"), w.get("effect_size"))),
                         fmt(w.get("noise_floor")), fmt(w.get("effect_size")),
                         fmt(w.get("pvalue")), str(w.get("verdict"))])
        out.append({"title": f"{a} vs {b}", "summary": differ_sentence(entry, names),
                    "rows": rows})
    return out


def differ_sentence(entry: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """From which step on two conditions differ, in one sentence, read from one pair of
    ``results["windows"]["between_conditions"]["pairs"]`` (the report's headline and the
    console's line; condition names by ``names``, :func:`short_names`).

    Examples
    --------
    >>> entry = {"a": "sgd", "b": "adam", "differ_from_step": 40, "differ_from_window": "40-59",
    ...          "summary": "sgd vs adam differ from step 40 on: windows 40-59 to 80-99 ..."}
    >>> differ_sentence(entry, {})
    'sgd and adam differ from step 40 on (window 40-59 and every later one is not conjugate).'
    """
    a, b = (name_of(names, entry.get(k)) for k in ("a", "b"))
    step = entry.get("differ_from_step")
    if step is not None:
        return (f"{a} and {b} differ from step {step} on (window "
                f"{entry.get('differ_from_window')} and every later one is not conjugate).")
    why = str(entry.get("summary", ""))
    prefix = f"{entry.get('a')} vs {entry.get('b')}: "  # the labels may hold ': ' themselves
    why = named(why.removeprefix(prefix), names)
    return f"{a} and {b}: no step from which on every window differs. {why[:1].upper()}{why[1:]}"\
        .rstrip()


def neighbourhood_rows(results: Mapping[str, Any]) -> tuple[list[list[str]], str] | None:
    """The neighbour check (``comparison["neighbourhood"]``): table rows (header first) per pair
    -- verdict, how many neighbouring settings agree, stable or FRAGILE, the p and W1 ranges,
    the neighbours that differ -- and a line on what was refitted; None without one."""
    cmp = comparison_of(results)
    nb = cmp.get("neighbourhood")
    if not nb:
        return None
    names = short_names(results)
    pairs = cmp["pairs"]
    rows = [["pair", "verdict", "neighbours agreeing", "", "p range", "W1 range", "differs at"]]
    for name, r in (nb.get("pairs") or {}).items():
        a, b = (name_of(names, c) for c in pairs.get(name, (name, "")))
        differ = [k for k, v in (r.get("neighbours") or {}).items()
                  if v.get("verdict") != r.get("verdict")]
        rows.append([f"{a} vs {b}", str(r.get("verdict")), f"{r.get('same')} of {r.get('of')}",
                     "FRAGILE" if r.get("fragile") else "stable",
                     _span(r.get("pvalue_range")), _span(r.get("distance_range")),
                     ", ".join(differ) or "-"])
    line = (f"Each comparison refitted at {', '.join(str(s.get('name')) for s in nb['settings'])} "
            f"({_refits(nb)}, {fmt(nb.get('cpu_seconds'))} s CPU); a verdict that "
            "flips at any of them is fragile.")
    from ..analysis.neighbours import not_tried_text

    return rows, " ".join(filter(None, (line, not_tried_text(nb))))


def _refits(nb: Mapping[str, Any]) -> str:
    """"N refits" of the neighbour check, and the spectra it took from the base fits (n_reused)."""
    n, reused = nb.get("n_fits"), nb.get("n_reused")
    if isinstance(n, int) and isinstance(reused, int) and 0 < reused <= n:
        return f"{n - reused} refits and {reused} spectra from the base fits' factorization"
    return f"{n} refits"


# ----- bounds: what a results file may ask the report to show ----------------------------------
def _eigenvalue_sets(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The eigenvalue sets the figures draw: ``results["spectra"]`` (condition -> per seed
    ``{"eigenvalues": [...]}``) and ``comparison["filtered"]["eigenvalues"]`` (condition -> per
    seed ``[[re, im], ...]``), where they are dicts."""
    out = [("all", results.get("spectra"))]
    cmp = results.get("comparison")
    filtered = cmp.get("filtered") if isinstance(cmp, Mapping) else None
    if isinstance(filtered, Mapping):
        out.append(("filtered", filtered.get("eigenvalues")))
    return [(name, s) for name, s in out if isinstance(s, Mapping)]


def _seeds(per_seed: Any) -> list[Any]:
    """The spectra of one condition (a list), or none when it is not a list."""
    return list(per_seed) if isinstance(per_seed, Sequence) and not isinstance(per_seed, str) \
        else []


def _pairs(spectrum: Any) -> Sequence[Any] | None:
    """A spectrum's eigenvalue list (``{"eigenvalues": [...]}`` or the list), or None."""
    pairs = spectrum.get("eigenvalues") if isinstance(spectrum, Mapping) else spectrum
    return pairs if isinstance(pairs, Sequence) and not isinstance(pairs, str) else None


def _cut_spectrum(spectrum: Any, k: int) -> Any:
    pairs = _pairs(spectrum)
    if pairs is None:
        return spectrum  # the figure names what is wrong with it
    return {**spectrum, "eigenvalues": pairs[:k]} if isinstance(spectrum, Mapping) else pairs[:k]


def drawn_per_spectrum(sets: Mapping[str, Any]) -> tuple[int | None, int, int]:
    """``(k, held, n)``: the figures draw the first ``k`` eigenvalues of each of the ``n``
    spectra of ``sets`` (condition -> per seed), or all (``k`` None) when all ``held`` of them
    are at most :data:`MAX_DRAWN`."""
    sizes = [len(p) for per in sets.values() for p in map(_pairs, _seeds(per)) if p is not None]
    held = sum(sizes)
    if held <= MAX_DRAWN:
        return None, held, len(sizes)
    return max(1, MAX_DRAWN // len(sizes)), held, len(sizes)


def drawn(results: Mapping[str, Any]) -> Mapping[str, Any]:
    """``results`` as the figures draw them: each spectrum cut to its first ``k`` eigenvalues
    when a figure would hold more than :data:`MAX_DRAWN` (:func:`drawn_per_spectrum`; the rest of
    ``results`` shared, not copied). The tables and warnings read ``results`` itself;
    :func:`warnings_of` says when a figure is cut.

    Examples
    --------
    >>> many = {"spectra": {"a": [{"eigenvalues": [[0.5, 0.0]] * 30_000}] * 2}}
    >>> len(drawn(many)["spectra"]["a"][1]["eigenvalues"])  # MAX_DRAWN // 2 spectra
    5000
    """
    out = dict(results)
    for name, sets in _eigenvalue_sets(results):
        k = drawn_per_spectrum(sets)[0]
        if k is None:
            continue
        cut_sets = {c: [_cut_spectrum(sp, k) for sp in per] if _seeds(per) else per
                    for c, per in sets.items()}
        if name == "all":
            out["spectra"] = cut_sets
        else:
            cmp = dict(out["comparison"])
            cmp["filtered"] = {**cmp["filtered"], "eigenvalues": cut_sets}
            out["comparison"] = cmp
    return out


def _bound_notes(results: Mapping[str, Any]) -> list[str]:
    """What the report shows cut: condition names (:data:`MAX_NAME`), eigenvalues drawn
    (:data:`MAX_DRAWN`)."""
    notes = []
    names = short_names(results)  # a long label shown by its differing settings is not cut
    long = sum(len(str(c)) > MAX_NAME and "…" in names.get(str(c), "…")
               for c in _labels(results))
    if long:
        notes.append(f"{long} condition label(s) are longer than {MAX_NAME} characters: the "
                     "report shows them cut in the middle (…); results.json holds them whole.")
    for name, sets in _eigenvalue_sets(results):
        k, held, n = drawn_per_spectrum(sets)
        if k is not None:
            notes.append(f"The figure of {name} eigenvalues draws the first {k} eigenvalues of "
                         f"each of its {n} spectra ({min(held, k * n)} of {held}, at most "
                         f"{MAX_DRAWN} drawn); the tables use all.")
    return notes


# ----- warnings -----------------------------------------------------------------------------------
def filter_note(comparison: Mapping[str, Any]) -> str | None:
    """The comparison filter's note (e.g. a store where only some runs carry the second branch:
    every spectrum filtered by the single-sample rule), or None."""
    rule = (comparison.get("filter") or {}).get("rule") or {}
    found = rule.get("comparison") if isinstance(rule, Mapping) else None
    return found.get("note") if isinstance(found, Mapping) else None


def warnings_of(results: Mapping[str, Any]) -> list[str]:
    """Warnings a reader must see: given ones (``results["warnings"]``), then those the results
    show: rank reduced, residuals uninformative, too few seeds, unfinished runs, no filter,
    spectra of different sizes. Deduplicated, in that order.

    Raises
    ------
    ReportError
        If ``results["warnings"]`` is not a list of strings.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.analysis import compare_conditions, spectra_to_json
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> spectra = {"sgd": [fit() for _ in range(3)], "adam": [fit() for _ in range(3)]}
    >>> results = {"title": "SGD <vs> Adam", "spectra": spectra_to_json(spectra),
    ...            "comparison": compare_conditions(spectra, n_shuffles=10)}
    >>> given, uninformative, few_seeds = warnings_of({**results, "warnings": ["on a laptop"]})
    >>> given, few_seeds
    ('on a laptop', 'Too few seeds: with 3 per condition the smallest attainable p-value is
    0.1 ≥ α = 0.05; no pair can be declared different.')
    """
    out: list[str] = []
    given = results.get("warnings") or []
    if isinstance(given, str) or not isinstance(given, Sequence):
        raise ReportError("results['warnings'] must be a list of strings")
    names = short_names(results)
    out.extend(named(w, names) for w in given)
    out.extend(_bound_notes(results))
    spectra = _mapping(results, "spectra")
    reduced, uninformative, sizes = [], [], {}
    for key, specs in spectra.items():
        c, where = name_of(names, key), f"results['spectra'][{cut(key, MAX_NAME)!r}]"
        if not isinstance(specs, Sequence):
            raise ReportError(f"{where} must be a list (one spectrum per seed)")
        for s, sp in enumerate(specs):
            if not isinstance(sp, Mapping):
                raise ReportError(f"{where}[{s}] must be a spectrum dict")
            st = sp.get("settings") or {}
            if st.get("rank_reduced"):
                reduced.append(f"{c} seed {s} (requested {st.get('rank_requested')}, "
                               f"kept {sp.get('rank')})")
            if sp.get("residuals_informative") is False:
                uninformative.append(f"{c} seed {s}")
            sizes.setdefault(c, set()).add(len(sp.get("eigenvalues") or []))
    if reduced:
        out.append("Rank reduced to what the data support: " + "; ".join(reduced) + ".")
    if uninformative:
        out.append("DMD residuals are uninformative (rank = number of observables) for "
                   + ", ".join(uninformative[:6]) + (" ..." if len(uninformative) > 6 else "")
                   + "; the residual filter uses the data residuals instead.")
    all_sizes = {n for v in sizes.values() for n in v}
    if len(all_sizes) > 1:
        out.append("Spectra have different numbers of eigenvalues ("
                   + "; ".join(f"{c}: {'/'.join(map(str, sorted(v)))}" for c, v in sizes.items())
                   + "): distances between them mix in mass splitting.")
    cmp = comparison_of(results)
    if cmp:
        n = cmp.get("n_seeds")
        alpha = float(cmp.get("alpha", 0.05))
        mins = [r["min_pvalue"] for r in verdicts(results) if r["min_pvalue"] is not None]
        if isinstance(n, int) and n < 2:
            out.append(f"Too few seeds: {n} per condition; the permutation test needs 2 or more "
                       "(4 or more to reach p < 0.05).")
        elif mins and min(mins) >= alpha:
            out.append(f"Too few seeds: with {n} per condition the smallest attainable p-value is "
                       f"{fmt(min(mins))} ≥ α = {fmt(alpha)}; no pair can be declared different.")
        elif isinstance(n, int) and n < 4 and not mins:
            out.append(f"Few seeds: {n} per condition; the permutation test cannot reach p < 0.05 "
                       "with fewer than 4.")
        filt = cmp.get("filter") or {}
        if not filt.get("available", False) and cmp.get("verdict_uses") != "all":
            out.append("Residual filter unavailable: the verdicts use all eigenvalues.")
        if filter_note(cmp):  # e.g. only some runs carry the second branch
            out.append(f"Residual filter: {filter_note(cmp)}.")
    runs = results.get("runs") or []
    unfinished = [r.get("run") for r in runs if isinstance(r, Mapping) and r.get("finished") is False]
    said = any("not marked finished" in str(w) for w in results.get("warnings") or [])
    if unfinished and not said:  # analyze's own warning (analysis.own_runs) says it already
        out.append(f"{len(unfinished)} unfinished run(s) (training stopped before the end): "
                   + ", ".join(map(str, unfinished[:8])) + (" ..." if len(unfinished) > 8 else ""))
    # the fits' own notes, but those said above (rank reduced, residuals uninformative)
    notes = [str(note) for specs in spectra.values() for sp in specs
             for note in (sp.get("settings") or {}).get("notes") or []
             if "rank equals the number of observables" not in note and "requested but" not in note]
    out.extend(f"Note from the spectrum fit: {n}" for n in dict.fromkeys(notes))
    return list(dict.fromkeys(out))
