"""results.json carries the two-branch residuals of each spectrum when a branch was recorded,
typed by the packaged JSON Schema and named in docs/results.md."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from test_residuals import noisy_system

from conjugacy import koopman_spectrum
from conjugacy.analysis import schema, validate
from conjugacy.analysis.pipeline import summarize
from conjugacy.results import spectrum_to_dict

BRANCH = ("projection_residuals", "variance_residuals", "noise_fractions")


@pytest.fixture(scope="module")
def doc_and_spectra():
    """Two conditions (process noise 0.05 and 0.3) x 2 seeds, fitted with their second branch."""
    spectra = {}
    for cond, sigma in (("calm", 0.05), ("noisy", 0.3)):
        spectra[cond] = []
        for seed in (0, 1):
            x, xb = noisy_system(sigma, seed=seed, n_traj=3, steps=40, n_obs=8)
            spectra[cond].append(koopman_spectrum(x, rank=6, method="standard", next_states=xb))
    res = summarize(spectra, experiment="t", stats={"n_permutations": 9})
    return json.loads(json.dumps(res.to_dict())), spectra


def test_each_spectrum_entry_has_its_branch_residuals_and_validates(doc_and_spectra):
    doc, spectra = doc_and_spectra
    validate(doc)
    for cond, specs in spectra.items():
        for entry, sp in zip(doc["spectra"][cond], specs):
            for name in BRANCH:
                np.testing.assert_array_equal(entry[name], getattr(sp, name))  # same order
                assert len(entry[name]) == len(entry["eigenvalues"]) == sp.rank
            assert entry["settings"]["branch"] == json.loads(json.dumps(sp.settings["branch"]))
    # the noisy condition's eigenpairs carry more noise (what the fields are for)
    noise = {c: np.mean([np.median(e["noise_fractions"]) for e in doc["spectra"][c]])
             for c in spectra}
    assert noise["noisy"] > noise["calm"]


def test_spectra_without_a_branch_have_no_branch_fields():
    x, _ = noisy_system(0.1, seed=0, n_traj=2, steps=30, n_obs=6)
    entry = spectrum_to_dict(koopman_spectrum(x, rank=4))
    assert not set(BRANCH) & set(entry)
    s = schema()
    jsonschema.validate(entry, {"$schema": s["$schema"], "$defs": s["$defs"],
                                "$ref": "#/$defs/spectrum"})


@pytest.mark.parametrize("damage", ["text", "one_missing", "nested"])
def test_the_schema_refuses_damaged_branch_fields(doc_and_spectra, damage):
    doc = copy.deepcopy(doc_and_spectra[0])
    entry = doc["spectra"]["calm"][0]
    if damage == "text":
        entry["noise_fractions"][0] = "x"
        match = "'x' is not of type 'number', 'null'"
    elif damage == "one_missing":
        del entry["variance_residuals"]
        match = "'variance_residuals' is a dependency of 'projection_residuals'"
    else:
        entry["projection_residuals"] = [[0.1, 0.2]]
        match = r"\[0.1, 0.2\] is not of type 'number', 'null'"
    with pytest.raises(jsonschema.ValidationError, match=match):
        validate(doc)


def test_docs_name_the_branch_fields():
    doc = (Path(__file__).parents[1] / "docs" / "results.md").read_text()
    spectra_row = next(line for line in doc.splitlines() if line.startswith("| `spectra` |"))
    for name in BRANCH:
        assert f"`{name}`" in spectra_row, name
    assert set(BRANCH) <= set(schema()["$defs"]["spectrum"]["properties"])
