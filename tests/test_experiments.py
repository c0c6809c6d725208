"""The experiment runner: keys, atomic writes, reuse of runs, intervals."""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

import autotask_lib.experiments as ex
from autotask_lib import AutoTaskConfig, BaselineConfig, TrainConfig, get_profile
from autotask_lib.experiments import (ExperimentConfig, Variant, artifacts_dir,
                                      cache_events, clean_stale_temporaries,
                                      experiment_key, fit_and_score,
                                      library_source_hash, run_experiment, run_key,
                                      run_metrics, training_log)
from autotask_lib.metrics import bootstrap_counts, bootstrap_scenario_metrics, summarise
from autotask_lib.tables import win_counts

from conftest import TINY

FAST = TrainConfig(batch_size=128, epochs_teacher=1, epochs_llm=1)


def fast_profile(**kw):
    return dataclasses.replace(get_profile("smoke"), train=FAST, **kw)


def trained(what="run"):
    ev = cache_events()
    return int(ev.loc[(ev["what"] == what) & (ev["action"] == "trained"),
                      "count"].sum())


TABLE2 = {
    "autotask": Variant("autotask", AutoTaskConfig()),
    "autotask_platt": Variant("autotask", AutoTaskConfig(), calibration="platt"),
    "autotask_isotonic": Variant("autotask", AutoTaskConfig(),
                                 calibration="isotonic"),
    "specific": Variant("baseline", BaselineConfig(), "baseline_specific"),
    "specific_isotonic": ("baseline", BaselineConfig(), "baseline_specific",
                          "isotonic"),
}


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind, cfg, changed", [
    ("autotask", AutoTaskConfig(), {"block_len": 8}),
    ("autotask", AutoTaskConfig(), {"dropout": 0.1}),
    ("autotask", AutoTaskConfig(), {"task_id_mode": "number"}),
    ("autotask", AutoTaskConfig(), {"fusion": "sum"}),
    ("baseline", BaselineConfig(), {"shared": (128, 64)}),
    ("baseline", BaselineConfig(), {"dropout": 0.2}),
])
def test_changing_one_model_config_field_changes_the_run_key(kind, cfg, changed):
    base = run_key(kind, cfg, FAST, 0, "data")
    assert run_key(kind, dataclasses.replace(cfg, **changed), FAST, 0,
                   "data") != base


@pytest.mark.parametrize("changed", [{"lr": 1e-3}, {"batch_size": 64},
                                     {"epochs_llm": 2}, {"weight_decay": 0.01}])
def test_changing_one_training_field_seed_or_data_changes_the_run_key(changed):
    base = run_key("autotask", AutoTaskConfig(), FAST, 0, "data")
    assert run_key("autotask", AutoTaskConfig(),
                   dataclasses.replace(FAST, **changed), 0, "data") != base
    assert run_key("autotask", AutoTaskConfig(), FAST, 1, "data") != base
    assert run_key("autotask", AutoTaskConfig(), FAST, 0, "other") != base


def test_changing_one_line_of_library_source_changes_every_key(tmp_path,
                                                               monkeypatch):
    package = Path(ex.__file__).parent
    copy = tmp_path / "lib"
    copy.mkdir()
    for f in package.glob("*.py"):
        shutil.copy(f, copy / f.name)
    assert library_source_hash(copy) == library_source_hash()
    lines = (copy / "metrics.py").read_text().splitlines(keepends=True)
    i = next(k for k, line in enumerate(lines) if "_BOOT_CHUNK = " in line)
    lines[i] = lines[i].replace("50", "51")
    (copy / "metrics.py").write_text("".join(lines))
    edited = library_source_hash(copy)
    assert edited != library_source_hash()

    run_before = run_key("autotask", AutoTaskConfig(), FAST, 0, "data")
    exp_before = experiment_key("e", TABLE2, (0,), ExperimentConfig(), {})
    monkeypatch.setattr(ex, "library_source_hash", lambda folder=None: edited)
    assert run_key("autotask", AutoTaskConfig(), FAST, 0, "data") != run_before
    assert experiment_key("e", TABLE2, (0,), ExperimentConfig(), {}) != exp_before


@pytest.mark.parametrize("changed", [{"n_boot": 100}, {"boot_seed": 1},
                                     {"ece_bins": 10},
                                     {"metrics": ("roc_auc", "pr_auc")}])
def test_changing_one_experiment_setting_changes_the_experiment_key(changed):
    base = experiment_key("e", TABLE2, (0,), ExperimentConfig(), {})
    other = experiment_key("e", TABLE2, (0,),
                           dataclasses.replace(ExperimentConfig(), **changed), {})
    assert other != base
    variants = {**TABLE2, "autotask": Variant("autotask",
                                              AutoTaskConfig(attention="full"))}
    assert experiment_key("e", variants, (0,), ExperimentConfig(), {}) != base


# ---------------------------------------------------------------------------
# Interrupted training leaves nothing behind
# ---------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import dataclasses, os, signal, sys
    from pathlib import Path

    import data_synth as ds
    import autotask_lib.experiments as ex
    from autotask_lib import BaselineConfig, TrainConfig, get_profile

    mode, marker, epochs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    data = ds.generate(ds.DataConfig(sizes={sizes!r}), seed=3)
    train = TrainConfig(batch_size=64, epochs_teacher=epochs, epochs_llm=1)
    prof = dataclasses.replace(get_profile("smoke"), train=train)
    if mode == "train":  # announce training, and slow it down to be caught
        import time
        import torch
        original_step = torch.optim.Adam.step
        def slow_step(self, *args, **kwargs):
            marker.write_text("training")
            time.sleep(0.05)
            return original_step(self, *args, **kwargs)
        torch.optim.Adam.step = slow_step
    else:  # die the hard way once the weights are written, mid-write
        original_save = ex.save_file
        def die(*args, **kwargs):
            original_save(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        ex.save_file = die
    ex.fit_and_score("baseline", BaselineConfig(), prof, 0, data=data,
                     progress=False)
""").format(sizes=TINY)


def _child(tmp_path, mode, epochs):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    marker = tmp_path / "marker"
    return subprocess.Popen(
        [sys.executable, str(script), mode, str(marker), str(epochs)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ), marker


def _rerun_and_compare(tiny_data, tmp_path, monkeypatch, epochs):
    prof = dataclasses.replace(
        get_profile("smoke"),
        train=TrainConfig(batch_size=64, epochs_teacher=epochs, epochs_llm=1))
    runs = artifacts_dir(prof) / "runs"
    rerun = fit_and_score("baseline", BaselineConfig(), prof, 0, data=tiny_data,
                          progress=False)
    assert rerun.folder.parent == runs
    assert not [e.name for e in runs.iterdir() if e.name.startswith(".")]
    assert (rerun.folder / "run.json").exists()
    monkeypatch.setenv("AUTOTASK_ARTIFACTS", str(tmp_path / "uninterrupted"))
    clean = fit_and_score("baseline", BaselineConfig(), prof, 0, data=tiny_data,
                          progress=False)
    assert clean.key == rerun.key
    for output in ("baseline_general", "baseline_specific"):
        np.testing.assert_array_equal(rerun.scores[output], clean.scores[output])
        np.testing.assert_array_equal(rerun.calib_scores[output],
                                      clean.calib_scores[output])
        pd.testing.assert_frame_equal(run_metrics(rerun, output),
                                      run_metrics(clean, output))


def test_a_run_killed_during_training_leaves_nothing_and_reruns_identically(
        tiny_data, tmp_path, monkeypatch):
    epochs = 2
    proc, marker = _child(tmp_path, "train", epochs)
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()[1].decode()[-2000:]
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before the kill"
    runs = artifacts_dir("smoke") / "runs"
    left = [e.name for e in runs.iterdir()] if runs.exists() else []
    assert left == []  # no run folder, no temporary, no training record
    _rerun_and_compare(tiny_data, tmp_path, monkeypatch, epochs)


def test_a_run_killed_while_writing_leaves_only_a_temporary_that_is_cleaned(
        tiny_data, tmp_path, monkeypatch):
    proc, _ = _child(tmp_path, "write", 1)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    runs = artifacts_dir("smoke") / "runs"
    left = sorted(runs.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".baseline-")
    assert (left[0] / "model.safetensors").exists()
    assert not (left[0] / "run.json").exists()
    assert training_log("smoke").empty
    _rerun_and_compare(tiny_data, tmp_path, monkeypatch, 1)


def test_only_stale_temporaries_are_cleaned(tmp_path):
    host = ex._owner().rsplit("-", 1)[0]
    dead_pid = 2**22 + 12_345  # beyond the largest pid Linux hands out
    dead = tmp_path / f".autotask-abc.{host}-{dead_pid}.x1y2"
    alive = tmp_path / f".autotask-abc.{ex._owner()}.z3w4"
    foreign = tmp_path / ".autotask-abc.otherhost-1.q5r6"
    other = tmp_path / ".not-a-temporary"
    for folder in (dead, alive, foreign, other):
        folder.mkdir()
    old = time.time() - 2 * ex.STALE_AFTER_S
    os.utime(foreign, (old, old))
    removed = clean_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead.name, foreign.name])
    assert alive.exists() and other.exists()


# ---------------------------------------------------------------------------
# Named experiments and the reuse of runs
# ---------------------------------------------------------------------------


def test_a_run_stores_calibration_and_test_scores(tiny_data):
    prof = fast_profile()
    run = fit_and_score("baseline", BaselineConfig(), prof, 0, data=tiny_data,
                        progress=False)
    assert len(run.scores) == TINY["test"]
    assert len(run.calib_scores) == TINY["calibration"]
    np.testing.assert_array_equal(run.calib_scores["label"],
                                  tiny_data["calibration"]["llm_label"])
    again = fit_and_score("baseline", BaselineConfig(), prof, 0, data=tiny_data,
                          progress=False)
    pd.testing.assert_frame_equal(again.calib_scores, run.calib_scores)
    pd.testing.assert_frame_equal(again.scores, run.scores)


def test_table2_reuses_the_table1_runs_and_is_cached(tiny_data):
    prof = fast_profile()
    # What a Table 1 chapter trains.
    fit_and_score("autotask", AutoTaskConfig(), prof, 0, data=tiny_data,
                  progress=False)
    fit_and_score("baseline", BaselineConfig(), prof, 0, data=tiny_data,
                  progress=False)
    before = trained()
    exp = run_experiment("table2", TABLE2, prof, data=tiny_data, progress=False)
    assert trained() == before  # every model came from the cache
    assert list(exp.results.columns) == ["experiment", "variant", "seed",
                                         "scenario", "metric", "value"]
    again = run_experiment("table2", TABLE2, prof, data=tiny_data, progress=False)
    assert again.key == exp.key and trained() == before
    ev = cache_events()
    assert ev.loc[(ev["what"] == "experiment") & (ev["action"] == "loaded")
                  & (ev["name"] == exp.folder.name), "count"].sum() == 1
    pd.testing.assert_frame_equal(again.results, exp.results)
    counts = training_log(prof)["run"].value_counts()
    assert len(counts) == 2 and (counts == 1).all()


def test_calibrated_variants_keep_or_change_rankings_as_they_should(tiny_data):
    prof = fast_profile()
    exp = run_experiment("table2", TABLE2, prof, data=tiny_data, progress=False,
                         config=ExperimentConfig(n_boot=0))
    r = exp.results.pivot_table(index=["scenario", "metric"], columns="variant",
                                values="value")
    rank = r.xs("roc_auc", level="metric")
    seen = [s for s in rank.index if s not in ("Clinics", "Home")]
    # Platt leaves every scenario's ROC AUC and PR AUC exactly unchanged.
    for metric in ("roc_auc", "pr_auc"):
        m = r.xs(metric, level="metric")
        np.testing.assert_array_equal(m["autotask_platt"], m["autotask"])
    # Isotonic changes some (through ties); unseen scenarios stay uncalibrated.
    assert (rank.loc[seen, "autotask_isotonic"] != rank.loc[seen, "autotask"]).any()
    for name in ("Clinics", "Home"):
        assert r.loc[(name, "ece"), "autotask_isotonic"] == r.loc[(name, "ece"),
                                                                  "autotask"]
        assert np.isnan(rank.loc[name, "specific"])
    rows = exp.scores("autotask_platt", 0)
    assert not rows.loc[rows["scenario"].isin(["Clinics", "Home"]),
                        "calibrated"].any()
    assert rows.loc[rows["scenario"].isin(seen), "calibrated"].all()
    assert exp.calibrator("autotask", 0) is None
    assert exp.calibrator("specific_isotonic", 0).scenarios_ == sorted(seen)


def test_experiment_summary_intervals_cover_seeds_and_test_rows(tiny_data):
    prof = fast_profile(seeds=(0, 1))
    exp = run_experiment("two_seeds", {"autotask": TABLE2["autotask"]}, prof,
                         data=tiny_data, progress=False,
                         config=ExperimentConfig(n_boot=20))
    assert len(exp.replicates) == 2 * 11 * 3 * 20
    s = exp.summary()
    assert (s["covers"] == "seeds and test rows").all()
    assert (s["n_seeds"] == 2).all()
    np.testing.assert_allclose(s["hi"] - s["mean"],
                               np.hypot(s["half_seeds"], s["half_rows"]))
    seeds_only = exp.summary(rows=False)
    assert (seeds_only["covers"] == "seeds").all()


def test_experiment_inputs_are_checked(tiny_data):
    prof = fast_profile()
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        run_experiment("table 2", TABLE2, prof, data=tiny_data)
    with pytest.raises(ValueError, match="variants must be a non-empty dict"):
        run_experiment("t", {}, prof, data=tiny_data)
    with pytest.raises(TypeError, match=r"variants\['a'\] must be a Variant"):
        run_experiment("t", {"a": "autotask"}, prof, data=tiny_data)
    with pytest.raises(ValueError,
                       match=r"seeds must be distinct integers from 0 to 2\*\*32 - 1"):
        run_experiment("t", TABLE2, prof, seeds=(0, 0), data=tiny_data)
    with pytest.raises(ValueError, match="output must be one of .* got 'autotask'"):
        Variant("baseline", BaselineConfig(), "autotask")
    with pytest.raises(ValueError, match="calibration must be None or one of"):
        Variant("autotask", AutoTaskConfig(), calibration="beta")
    with pytest.raises(TypeError, match="must be a AutoTaskConfig; got Baseline"):
        Variant("autotask", BaselineConfig())
    with pytest.raises(ValueError, match="metrics must be a non-empty selection"):
        ExperimentConfig(metrics=("accuracy",))
    with pytest.raises(ValueError, match="n_boot must be a non-negative integer"):
        ExperimentConfig(n_boot=-1)



def test_a_model_config_that_misses_the_data_is_named_before_training(tiny_data):
    prof = fast_profile()
    narrow = AutoTaskConfig(d=10, e2=80)
    with pytest.raises(ValueError, match=r"variant 'narrow' \(autotask\): "
                       r"AutoTaskConfig.d is 10, but the data's rows have 24 "
                       r"columns \(23 features and the task ID\); set d=24"):
        run_experiment("t", {"narrow": ("autotask", narrow)}, prof, data=tiny_data)
    few = BaselineConfig(num_tasks=3)
    with pytest.raises(ValueError, match=r"model_cfg of kind 'baseline': "
                       r"BaselineConfig.num_tasks is 3, but the data has task IDs "
                       r"up to 9 .* set num_tasks=10 or more"):
        ex.fit_and_score("baseline", few, prof, 0, data=tiny_data)
    with pytest.raises(ValueError, match="AutoTaskConfig.d is 10"):
        ex.fit_many([("autotask", narrow, 0)], prof, data=tiny_data)


# ---------------------------------------------------------------------------
# The bootstrap over test rows and the combined interval
# ---------------------------------------------------------------------------


def test_bootstrap_equals_sklearn_on_the_resampled_rows():
    rng = np.random.default_rng(0)
    n = 300
    scenario = np.array(["Hotel"] * 180 + ["Card"] * 120)
    y = rng.integers(0, 2, n)
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1), 2)  # with ties
    reps = bootstrap_scenario_metrics(y, p, scenario, n_boot=7, seed=5,
                                      metrics=("roc_auc", "pr_auc"))
    for name in ("Hotel", "Card"):
        m = scenario == name
        draw = np.random.default_rng([5, zlib.crc32(name.encode())])
        counts = next(bootstrap_counts(int(m.sum()), 7, draw))
        got = reps[reps["scenario"] == name].set_index(["metric", "replicate"])
        for b in range(7):
            idx = np.repeat(np.arange(m.sum()), counts[b])
            yy, pp = y[m][idx], p[m][idx]
            assert got.loc[("roc_auc", b), "value"] == pytest.approx(
                roc_auc_score(yy, pp), abs=1e-12)
            assert got.loc[("pr_auc", b), "value"] == pytest.approx(
                average_precision_score(yy, pp), abs=1e-12)


def test_summary_combines_seed_and_row_spreads_in_quadrature():
    results = pd.DataFrame({"variant": "a", "scenario": "s", "metric": "roc_auc",
                            "seed": [0, 1, 2], "value": [0.70, 0.72, 0.74]})
    # Replicates whose seed-average alternates 0.70 and 0.74: sd 0.02 * k.
    reps = pd.DataFrame([
        {"variant": "a", "scenario": "s", "metric": "roc_auc", "seed": seed,
         "replicate": b, "value": 0.72 + (0.02 if b % 2 else -0.02)}
        for seed in range(3) for b in range(10)])
    s = summarise(results, by=("variant", "scenario", "metric"),
                  replicates=reps).iloc[0]
    from scipy import stats
    half_seeds = stats.t.ppf(0.975, 2) * 0.02 / np.sqrt(3)
    half_rows = stats.norm.ppf(0.975) * np.std([0.70, 0.74] * 5, ddof=1)
    assert s["half_seeds"] == pytest.approx(half_seeds)
    assert s["half_rows"] == pytest.approx(half_rows)
    assert s["hi"] - s["mean"] == pytest.approx(np.hypot(half_seeds, half_rows))
    assert s["covers"] == "seeds and test rows"
    one = summarise(results[results["seed"] == 0],
                    by=("variant", "scenario", "metric"),
                    replicates=reps[reps["seed"] == 0]).iloc[0]
    assert one["covers"] == "test rows" and np.isnan(one["half_seeds"])
    with pytest.raises(ValueError,
                       match=r"replicates lacks the columns \['replicate'\]"):
        summarise(results, by=("variant", "scenario", "metric"),
                  replicates=reps.drop(columns="replicate"))


def test_win_counts_treat_a_lower_calibration_error_as_a_win():
    rows = []
    for seed in range(3):
        for metric, a, b in (("roc_auc", 0.80, 0.70), ("ece", 0.02, 0.10)):
            rows.append({"variant": "a", "seed": seed, "scenario": "s",
                         "metric": metric, "value": a + 0.001 * seed})
            rows.append({"variant": "b", "seed": seed, "scenario": "s",
                         "metric": metric, "value": b})
    w = win_counts(pd.DataFrame(rows), "a", "b")
    assert w.loc["roc_auc", "clear_wins"] == 1
    assert w.loc["ece", "clear_wins"] == 1 and w.loc["ece", "wins"] == 1
    assert w.loc["ece", "mean_gain"] < 0
