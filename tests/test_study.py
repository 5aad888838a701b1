"""The study protocol: declaration, jobs, per-job stores, resume, and the Dask runner."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from conjugacy.analysis import SpectrumGroup, fit_spectra, group_runs
from conjugacy.store import TrajectoryStore
from conjugacy.study import Job, Study, StudyReader, check_stamp, run_study, store_path

N_STEPS = 12


def _train(job, ctx, resumable=False):
    """Tiny regression net, SGD or Adam by condition; all randomness from the job's seed."""
    from conjugacy.torch import train_replicas

    gen = torch.Generator().manual_seed(1000 + job.seed)
    x = torch.randn(24, 3, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    base = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    with torch.no_grad():  # a local generator: in-process Dask workers share torch's global one
        for p in base.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    lr = job.params["lr"]
    opt = torch.optim.SGD if job.params["optimizer"] == "sgd" else torch.optim.Adam
    train_replicas(
        base, n_replicas=job.n_replicas, eps=1e-2, seed=job.seed,
        batches=[(x[:12], y[:12]), (x[12:], y[12:])], loss_fn=nn.functional.mse_loss,
        make_optimizer=lambda p: opt(p, lr=lr), n_steps=job.n_records - 1, store=ctx.store,
        run_prefix=job.key, params="2.weight", metadata=dict(ctx.metadata),
        checkpoint_dir=ctx.checkpoint_dir if resumable else None,
    )
    return {"lr": lr}


def _study(**overrides):
    settings = dict(
        name="toy",
        conditions={"sgd": {"optimizer": "sgd", "lr": 0.1}, "adam": {"optimizer": "adam", "lr": 0.01}},
        seeds=(0, 1),
        n_replicas=3,
        n_records=N_STEPS + 1,
        train=_train,
        settings={"n_steps": N_STEPS, "eps": 1e-2},
    )
    return Study(**{**settings, **overrides})


def _all_runs(out):
    with StudyReader.open(out) as r:
        return {run: (r.read(runs=run), r.scalars(run, "loss")) for run in r.runs()}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return run_study(_study(), out), out


# ----------------------------------------------------------------------------- declaration
def test_jobs_are_the_conditions_times_seeds():
    jobs = _study().jobs()
    assert [j.key for j in jobs] == ["sgd-seed0", "adam-seed0", "sgd-seed1", "adam-seed1"]
    assert [j.key for j in _study(seed_major=False).jobs()] == [
        "sgd-seed0", "sgd-seed1", "adam-seed0", "adam-seed1"]
    j = jobs[1]
    assert (j.condition, j.seed, j.n_replicas, j.n_records) == ("adam", 0, 3, N_STEPS + 1)
    assert j.run_names == ("adam-seed0_0", "adam-seed0_1", "adam-seed0_2")
    assert j.params == {"optimizer": "adam", "lr": 0.01}
    extra = Job("long", 0, {}, "long-run", 1, 50)
    assert _study(extra_jobs=[extra]).jobs()[-1] == extra
    assert Job("a", 0, {}, "k", 11, 2).run_names[10] == "k_10"  # zero-padded like train_replicas


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"conditions": {}}, ValueError, "conditions must be a non-empty mapping"),
        ({"conditions": {"a b": {}}}, ValueError, re.escape(
            "each condition label must be a string of letters, digits and _.+=,- not starting "
            "with a punctuation mark (it names runs and stores), got 'a b'")),
        # the store's rule for run names (a full match: "$" let a final newline through)
        ({"conditions": {"sgd\n": {}}}, ValueError, r"each condition label .*got 'sgd\\n'$"),
        ({"name": "toy\n"}, ValueError, r"^name must be .*got 'toy\\n'$"),
        ({"job_key": lambda c, s: f"{c}-{s}\n"}, ValueError, r"each job key .*got 'sgd-0\\n'$"),
        ({"conditions": {"a": 3}}, TypeError, r"conditions\['a'\] must be a mapping"),
        ({"seeds": (0, 0)}, ValueError, "distinct integers"),
        ({"seeds": (-1,)}, ValueError, "each seed"),
        ({"n_replicas": 0}, ValueError, "n_replicas"),
        ({"train": 3}, TypeError, "train must be callable"),
        ({"settings": {"x": object()}}, TypeError, "settings"),
        ({"job_key": lambda c, s: "same"}, ValueError, "job keys must be unique"),
        ({"name": ""}, ValueError, "name must be"),
    ],
)
def test_bad_declarations_are_refused(overrides, error, match):
    with pytest.raises(error, match=match):
        _study(**overrides)


# ----------------------------------------------------------------------------- serial run
def test_serial_run_writes_one_store_per_job(serial):
    res, out = serial
    assert res.trained == ("sgd-seed0", "adam-seed0", "sgd-seed1", "adam-seed1")
    assert res.skipped == () and res.executor["kind"] == "serial"
    assert res.info["adam-seed1"] == {"lr": 0.01}
    assert sorted(p.name for p in (out / "trajectories").iterdir()) == [
        "adam-seed0.zarr", "adam-seed1.zarr", "sgd-seed0.zarr", "sgd-seed1.zarr"]
    stamp = json.loads((out / "study.json").read_text())
    assert stamp == {"layout": 1, "study": "toy", "settings": {"n_steps": N_STEPS, "eps": 0.01}}
    with TrajectoryStore.open(store_path(out, "adam-seed1"), "r") as st:
        assert st.runs() == ["adam-seed1_0", "adam-seed1_1", "adam-seed1_2"]
    with res.reader() as reader:
        assert len(reader.runs()) == 12
        traj = reader.read(params="2.weight", runs=["sgd-seed1_2", "adam-seed0_0", "sgd-seed1_0"])
        assert traj.shape == (3, N_STEPS + 1, 4)  # runs from two stores, in the order asked
        with TrajectoryStore.open(store_path(out, "sgd-seed1"), "r") as st:
            np.testing.assert_array_equal(traj[0], st.read(runs="sgd-seed1_2")[0])
        meta = reader.metadata("adam-seed0_2")
        assert (meta["study"], meta["condition"], meta["seed"], meta["job"]) == (
            "toy", "adam", 0, "adam-seed0")
        groups = group_runs(reader)
        assert list(groups) == [("adam", 0), ("adam", 1), ("sgd", 0), ("sgd", 1)]
        assert groups[("sgd", 1)] == ["sgd-seed1_0", "sgd-seed1_1", "sgd-seed1_2"]
        assert list(group_runs(reader, by=("condition",), where=lambda m: m["seed"] == 0)) == [
            ("adam",), ("sgd",)]


def test_conditions_and_seeds_give_different_runs(serial):
    runs = _all_runs(serial[1])
    a = runs["sgd-seed0_0"][0]
    assert not np.array_equal(a, runs["adam-seed0_0"][0])
    assert not np.array_equal(a, runs["sgd-seed1_0"][0])
    assert not np.array_equal(a, runs["sgd-seed0_1"][0])  # a perturbed replica


def test_resume_skips_complete_jobs_and_retrains_incomplete_ones(serial, tmp_path):
    import shutil

    _, out = serial
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with TrajectoryStore.open(store_path(copy, "adam-seed0"), "a") as st:
        st.delete_run("adam-seed0_2")
    with TrajectoryStore.open(store_path(copy, "sgd-seed1"), "a") as st:
        st.set_finished("sgd-seed1_0", False)
    again = run_study(_study(), copy)
    assert again.trained == ("adam-seed0", "sgd-seed1")
    assert again.skipped == ("sgd-seed0", "adam-seed1")
    before, after = _all_runs(out), _all_runs(copy)
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k][0], after[k][0])


def test_a_resumable_study_extends_finished_runs_that_a_job_now_wants_longer(tmp_path):
    """Same settings, but the sgd jobs now ask for 21 records (like grokking's constrained runs
    when --s6 is added): their finished 13-record runs are extended, the adam jobs skipped, and
    everything equals a study run at the new lengths from scratch, bit for bit."""
    import functools

    train = functools.partial(_train, resumable=True)
    longer = {"n_records": lambda cond, params: 21 if cond == "sgd" else N_STEPS + 1}
    first = run_study(_study(train=train, resumable=True), tmp_path / "a")
    short = _all_runs(tmp_path / "a")
    again = run_study(_study(train=train, resumable=True, **longer), tmp_path / "a")
    assert again.trained == ("sgd-seed0", "sgd-seed1")
    assert again.skipped == ("adam-seed0", "adam-seed1") and len(first.trained) == 4
    run_study(_study(train=train, resumable=True, **longer), tmp_path / "b")
    extended, scratch = _all_runs(tmp_path / "a"), _all_runs(tmp_path / "b")
    assert extended.keys() == scratch.keys() == short.keys()
    for k in scratch:
        n = 21 if k.startswith("sgd") else N_STEPS + 1
        assert extended[k][0].shape[1] == n
        np.testing.assert_array_equal(extended[k][0], scratch[k][0])
        np.testing.assert_array_equal(extended[k][1], scratch[k][1])
        np.testing.assert_array_equal(extended[k][0][:, :N_STEPS + 1], short[k][0])
    with StudyReader.open(tmp_path / "a") as r:
        assert all(r.run_info(k)["finished"] for k in r.runs())


def test_resume_refuses_other_settings_or_another_study(serial, tmp_path):
    _, out = serial
    with pytest.raises(ValueError, match=r"other settings \(n_steps: 12 there, 13 now\)"):
        check_stamp(_study(settings={"n_steps": 13, "eps": 1e-2}), out)
    with pytest.raises(ValueError, match="holds the study 'toy', not 'other'"):
        check_stamp(_study(name="other"), out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        check_stamp(_study(), tmp_path / "file")


def test_a_training_function_that_records_nothing_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="did not record the runs"):
        run_study(_study(train=lambda job, ctx: None), tmp_path)


def test_runner_arguments_are_checked(tmp_path):
    with pytest.raises(TypeError, match="study must be a Study"):
        run_study({"name": "x"}, tmp_path)
    with pytest.raises(ValueError, match="not both"):
        run_study(_study(), tmp_path, client=object(), workers=2)
    with pytest.raises(FileNotFoundError, match="no study was run"):
        StudyReader.open(tmp_path / "nothing")


# ----------------------------------------------------------------------------- Dask
def test_dask_local_cluster_equals_the_serial_run_bit_for_bit(serial, tmp_path):
    pytest.importorskip("dask.distributed")
    from conjugacy.study import dask_client

    _, out = serial
    groups = [SpectrumGroup(c, s, tuple(f"{c}-seed{s}_{i}" for i in range(3)))
              for c in ("sgd", "adam") for s in (0, 1)]
    settings = {"delays": 2, "rank": 4}
    with dask_client(workers=2, processes=False) as client:
        res = run_study(_study(), tmp_path, client=client)
        assert res.executor["kind"] == "dask" and res.executor["workers"] == 2
        assert sorted(res.trained) == sorted(j.key for j in _study().jobs())
        with res.reader() as reader:
            on_dask = fit_spectra(reader, groups, settings, params="2.weight", client=client)
    serial_runs, dask_runs = _all_runs(out), _all_runs(tmp_path)
    assert serial_runs.keys() == dask_runs.keys()
    for k in serial_runs:
        np.testing.assert_array_equal(serial_runs[k][0], dask_runs[k][0])
        np.testing.assert_array_equal(serial_runs[k][1], dask_runs[k][1])
    with StudyReader.open(out) as reader:
        here = fit_spectra(reader, groups, settings, params="2.weight")
    assert here.keys() == on_dask.keys()
    for k in here:
        np.testing.assert_array_equal(here[k].eigenvalues, on_dask[k].eigenvalues)
    assert run_study(_study(), tmp_path).skipped == tuple(j.key for j in _study().jobs())


def test_dask_client_needs_exactly_one_target():
    from conjugacy.study import dask_client

    with pytest.raises(ValueError, match="exactly one"), dask_client():
        pass
    with pytest.raises(ValueError, match="exactly one"), dask_client("tcp://x:1", 2):
        pass


def test_limit_threads_limits_torch_and_blas_and_restores_torch():
    torch = pytest.importorskip("torch")
    from threadpoolctl import threadpool_info, threadpool_limits

    from conjugacy.study import limit_threads

    def blas() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            assert blas() == {2}  # so that the limit below is seen
            with limit_threads(1):
                assert torch.get_num_threads() == 1 and blas() == {1}
            assert torch.get_num_threads() == 2 and blas() == {2}
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads"):
        with limit_threads(0):
            pass


def test_run_experiment_trains_each_study_into_its_folder_and_adds_the_common_fields(tmp_path):
    import dataclasses

    from conjugacy.analysis.demo import random_walk_study
    from conjugacy.study import run_experiment

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        seed: int = 3
        n_permutations: int = 99

        def to_dict(self):
            return {"seed": self.seed, "n_permutations": self.n_permutations}

    studies = {name: dataclasses.replace(random_walk_study(), name=name, config=Cfg())
               for name in ("a", "b")}

    def analyse(run):
        n_runs = {name: len(reader.runs()) for name, reader in run.readers.items()}
        return run, n_runs, run.common({"stats": {"n_permutations": 9}, "fields": {"x": 1},
                                        "timing": {"spectra": 2.0}})

    with pytest.raises(TypeError, match="several studies needs experiment="):
        run_experiment(studies, tmp_path, analyse)
    assert not tmp_path.joinpath("a").exists()
    run, n_runs, common = run_experiment(studies, tmp_path, analyse, figures=False,
                                         experiment="demo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert json.loads((tmp_path / "b" / "study.json").read_text())["study"] == "b"
    assert n_runs == {"a": 8, "b": 8}  # 2 conditions x 2 seeds x 2 replicas each
    assert common["out"] == tmp_path and run.figures is False
    assert common["stats"] == {"seed": 3, "n_permutations": 9}  # the given option wins
    assert common["fields"]["config"] == {"seed": 3, "n_permutations": 99}
    assert common["fields"]["x"] == 1
    assert list(common["fields"]["training"]) == ["a", "b"]  # per study
    assert common["fields"]["training"]["a"]["trained"] == [
        "flat-seed0", "up-seed0", "flat-seed1", "up-seed1"]
    assert "training" not in common["fields"]["training"]["a"]  # the total is a timing
    assert common["timing"]["spectra"] == 2.0
    assert common["timing"]["training"] == run.runs["a"].seconds + run.runs["b"].seconds
    again = run_experiment(studies["a"], tmp_path / "a", lambda r: r.training())
    assert again["trained"] == [] and len(again["skipped"]) == 4  # resumed: nothing retrained
    with pytest.raises(TypeError, match="out_dir must be a folder"):
        run_experiment(studies["a"], None, lambda r: r)


def test_an_experiment_refuses_the_folder_of_another_before_training(tmp_path):
    """The results.json (its ``experiment``) or study.json (its ``study``) of another
    experiment in ``out_dir`` is refused before any training and left as it was; the
    experiment's own folder resumes."""
    from conjugacy.analysis.demo import random_walk_study
    from conjugacy.study import run_experiment

    study = random_walk_study(seeds=range(2), n_records=8)  # named "demo"
    for file, content in (("results.json", {"experiment": "optimizers", "kept": 1}),
                          ("study.json", {"study": "fcn", "kept": 1}),
                          ("results.json", [1, 2])):
        out = tmp_path / file / type(content).__name__
        out.mkdir(parents=True)
        (out / file).write_text(json.dumps(content))
        owner = "another program" if isinstance(content, list) else repr(content.get(
            "experiment", content.get("study")))
        with pytest.raises(ValueError) as info:
            run_experiment(study, out, lambda r: r.training())
        assert str(info.value) == (
            f"output folder {str(out)!r} holds the "
            f"{'results' if file == 'results.json' else 'training'} of {owner}, not of 'demo': "
            "give another output folder, or delete that folder")
        assert sorted(p.name for p in out.iterdir()) == [file]  # nothing trained
        assert json.loads((out / file).read_text()) == content
    first = run_experiment(study, tmp_path / "own", lambda r: r.training())
    (tmp_path / "own" / "results.json").write_text(json.dumps({"experiment": "demo"}))
    again = run_experiment(study, tmp_path / "own", lambda r: r.training())
    assert len(first["trained"]) == 4 and again["trained"] == [] and len(again["skipped"]) == 4


def test_analyse_study_takes_the_experiments_route(tmp_path):
    """analyse_study adds out, provenance, the training report and timing through
    ExperimentRun.pipeline, as the experiments do (issue 19): the report under ``training``
    without its total, which is ``timing_seconds["training"]`` (analyse_study kept it in ``training``);
    no ``config`` for a study without one; the options given win. Fails when the total stays
    in ``training`` or a config-less study gets ``"config": null``."""
    from conjugacy.analysis import analyse_study
    from conjugacy.analysis.demo import random_walk_study

    study = random_walk_study(seeds=(0, 1, 2, 3), n_records=20, sd=0.1, settings={})
    trained = run_study(study, tmp_path)
    res = analyse_study(study, tmp_path, params="w", spectrum={"delays": 0, "rank": 2},
                        training=trained, data={"name": "walks"}, seed=3, n_permutations=199)
    r = json.loads((tmp_path / "results.json").read_text())
    assert r == json.loads(json.dumps(res.to_dict()))
    assert r["training"] == {"per_job": trained.job_seconds, "trained": list(trained.trained),
                             "skipped": [], "executor": {"kind": "serial", "threads_per_job": 1}}
    assert r["timing_seconds"]["training"] == trained.seconds
    assert "config" not in r and r["n_replicas"] == 2 and r["experiment"] == "demo"
    assert r["statistics"] == {"alpha": 0.05, "seed": 3, "n_permutations": 199, "n_shuffles": 100}
    assert r["provenance"]["study"] == "demo" and r["provenance"]["data"] == {"name": "walks"}
    assert r["conditions"] == {"flat": {"drift": 0.0, "sd": 0.1}, "up": {"drift": 1.0, "sd": 0.1}}
    assert r["comparison"]["verdicts"]["flat-up"]["pvalue"] == 1 / 35  # 4 seeds: exact, least p
    bare = analyse_study(study, tmp_path, params="w", spectrum={"delays": 0, "rank": 2})
    assert bare["training"] is None and "training" not in bare["timing_seconds"]
    assert bare.verdicts == res.verdicts == {"flat-up": "not conjugate"}


def test_analyse_study_groups_the_grid_as_the_experiments_do(tmp_path):
    """analyse_study's groups are study_groups' (issue 19): the conditions x seeds grid,
    condition by condition, so the ``runs`` table lists every run of ``flat`` before ``up``;
    an extra job outside the grid (here a longer run of ``flat``, seed 9) is no fifth seed of
    ``flat`` (the job-order grouping took it for one and refused the study: "every condition
    needs the same number (>= 1) of per-seed spectra", and listed the runs seed by seed)."""
    from dataclasses import replace

    from conjugacy.analysis import analyse_study
    from conjugacy.analysis.demo import random_walk_study

    grid = random_walk_study(seeds=(0, 1, 2, 3), n_records=20, sd=0.1, settings={})
    long = Job("flat", 9, grid.conditions["flat"], "flat-long", 2, 30)
    study = replace(grid, extra_jobs=[long])
    assert run_study(study, tmp_path).trained[-1] == "flat-long"
    res = analyse_study(study, tmp_path, params="w", spectrum={"delays": 0, "rank": 2},
                        n_permutations=99)
    assert [(r["run"], r["seed"]) for r in res["runs"]] == [
        (f"{c}-seed{s}_{i}", s) for c in ("flat", "up") for s in range(4) for i in range(2)]
    assert res["seeds"] == {"flat": [0, 1, 2, 3], "up": [0, 1, 2, 3]}
    assert [len(res["spectra"][c]) for c in ("flat", "up")] == [4, 4]
