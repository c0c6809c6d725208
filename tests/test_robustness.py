"""Bad input at every public entry point ends in an error that names it, and the
same seed gives the same numbers in two fresh processes."""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from autotask_lib import (AutoTask, AutoTaskConfig, MultiTaskDNN, Standardizer,
                          TaskTensors, frame_to_tensors, predict_autotask,
                          predict_baseline, prepare, soft_bce_with_logits)
from autotask_lib.calibration import prob_to_logit
from autotask_lib.metrics import (bootstrap_scenario_metrics, mean_interval,
                                  scenario_metrics, summarise)
from autotask_lib.serving import OnnxScorer, export_onnx

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# The loader
# ---------------------------------------------------------------------------


@pytest.fixture
def loader_args(tiny_data):
    p = prepare(tiny_data)
    frame = tiny_data["test"].copy()
    kw = dict(feature_columns=list(p.feature_columns), label_column="label",
              standardizer=p.standardizer, task_ids=dict(p.task_ids))
    return frame, kw


@pytest.mark.parametrize("edit, match", [
    (lambda f, kw: f.assign(label=np.where(f["label"] > 0, "yes", "no")),
     "label column 'label' must be numeric; got dtype"),
    (lambda f, kw: f.assign(sim_brand="high"),
     "feature column 'sim_brand' must be numeric"),
    (lambda f, kw: f.assign(query_id=f["query_id"] + 0.5),
     "query_id must hold integer query IDs; got e.g. 0.5"),
    (lambda f, kw: f.assign(scenario=f["scenario"].astype(object).where(
        f.index != 2, None)), "scenario must name a scenario on every row; row 2"),
    (lambda f, kw: f.assign(sim_brand=np.where(f.index == 5, np.nan, 0.0)),
     "'sim_brand' holds nan at row 5"),
])
def test_loader_names_the_bad_column(loader_args, edit, match):
    frame, kw = loader_args
    with pytest.raises(ValueError, match=match):
        frame_to_tensors(edit(frame, kw), **kw)


def test_loader_refuses_repeated_columns_and_bad_task_ids(loader_args):
    frame, kw = loader_args
    cols = kw["feature_columns"]
    with pytest.raises(ValueError, match=r"names \['sim_brand'\] more than once"):
        frame_to_tensors(frame, **{**kw, "feature_columns": [*cols, "sim_brand"]})
    doubled = pd.concat([frame, frame[["label"]]], axis=1)
    with pytest.raises(ValueError, match=r"more than one column named \['label'\]"):
        frame_to_tensors(doubled, **kw)
    for bad in (1.5, 0, -2, True):
        ids = {**kw["task_ids"], "Hotel": bad}
        with pytest.raises(ValueError, match=f"got 'Hotel': {bad!r}"):
            frame_to_tensors(frame, **{**kw, "task_ids": ids})
    twice = {**kw["task_ids"], "Hotel": kw["task_ids"]["Store"]}
    with pytest.raises(ValueError, match="its own ID"):
        frame_to_tensors(frame, **{**kw, "task_ids": twice})


def test_standardizer_refuses_non_finite_rows():
    with pytest.raises(ValueError, match="feature 1 holds nan at row 1"):
        Standardizer.fit(np.array([[0.0, 1.0], [1.0, np.nan]]))
    fitted = Standardizer.fit(np.array([[0.0, 1.0], [1.0, 3.0]]))
    with pytest.raises(ValueError, match="feature 0 holds inf at row 0"):
        fitted.transform(np.array([[np.inf, 1.0]]))


def test_task_tensors_need_one_entry_per_row():
    x = torch.zeros(5, 24)
    with pytest.raises(ValueError, match=r"\(5 rows\); got \{'target': 3\}"):
        TaskTensors(x=x, target=torch.zeros(3), scenario=np.array(["a"] * 5),
                    query_id=np.arange(5))
    with pytest.raises(ValueError, match=r"'query_id': 4"):
        TaskTensors(x=x, target=torch.zeros(5), scenario=np.array(["a"] * 5),
                    query_id=np.arange(4))
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(n, d\)"):
        TaskTensors(x=torch.zeros(5), target=torch.zeros(5),
                    scenario=np.array(["a"] * 5), query_id=np.arange(5))


# ---------------------------------------------------------------------------
# The models, the loss and scoring
# ---------------------------------------------------------------------------


def test_forward_refuses_empty_blocks_and_reads_float64_as_float32():
    model = AutoTask().eval()
    for shape in [(2, 0, 24), (0, 4, 24)]:
        with pytest.raises(ValueError, match="at least one block of at least one"):
            model(torch.zeros(shape))
    x = torch.randn(3, 5, 24)
    x[..., -1] = torch.randint(0, 10, (3, 5)).float()
    with torch.no_grad():
        np.testing.assert_array_equal(model(x.double()).numpy(), model(x).numpy())
    with pytest.raises(ValueError, match="real numbers; got dtype torch.bool"):
        model(torch.zeros(1, 2, 24, dtype=torch.bool))


def test_baseline_checks_its_config_inputs_and_task_ids():
    with pytest.raises(TypeError, match="cfg must be a BaselineConfig; got Auto"):
        MultiTaskDNN(AutoTaskConfig())
    model = MultiTaskDNN().eval()
    with pytest.raises(ValueError, match=r"shape \(B, 24\); got \(2, 3, 24\)"):
        model(torch.zeros(2, 3, 24))
    _, specific = model(torch.zeros(2, 24))
    with pytest.raises(ValueError, match=r"task_id must lie in \[0, 9\]; got .* 42"):
        model.own_branch_logits(specific, torch.tensor([1, 42]))


def test_loss_takes_integer_labels_and_refuses_empty_input():
    logits = torch.tensor([0.5, -0.5])
    assert torch.allclose(soft_bce_with_logits(logits, torch.tensor([1, 0])),
                          soft_bce_with_logits(logits, torch.tensor([1.0, 0.0])))
    with pytest.raises(ValueError, match="empty: there is no loss"):
        soft_bce_with_logits(torch.zeros(0), torch.zeros(0))


def test_scoring_checks_batch_sizes_and_takes_empty_splits():
    empty = TaskTensors(x=torch.zeros(0, 24), target=torch.zeros(0),
                        scenario=np.array([], dtype=str),
                        query_id=np.zeros(0, np.int64))
    assert predict_autotask(AutoTask(), empty).shape == (0,)
    general, own = predict_baseline(MultiTaskDNN(), empty)
    assert general.shape == own.shape == (0,)
    with pytest.raises(ValueError, match="batch_blocks must be a positive integer"):
        predict_autotask(AutoTask(), empty, batch_blocks=0)
    with pytest.raises(ValueError, match="batch_rows must be a positive integer"):
        predict_baseline(MultiTaskDNN(), empty, batch_rows=-1)


def test_onnx_scorer_checks_what_the_graph_cannot(tmp_path):
    model = AutoTask().eval()
    scorer = OnnxScorer(export_onnx(model, tmp_path / "m.onnx"))
    assert (scorer.d, scorer.num_tasks, scorer.block_len) == (24, 10, 16)
    x = np.zeros((1, 4, 24), np.float32)
    for bad_id in (42, -1, 1.5):
        x[..., -1] = bad_id
        with pytest.raises(ValueError, match=r"integers in \[0, 9\]"):
            scorer.logits(x)
    with pytest.raises(ValueError, match="at most block_len=16 rows; got t=17"):
        scorer.logits(np.zeros((1, 17, 24), np.float32))
    with pytest.raises(ValueError, match=r"shape \(blocks, t, d\) with d=24"):
        scorer.logits(np.zeros((4, 24), np.float32))
    with pytest.raises(ValueError, match="must be finite"):
        scorer.logits(np.full((1, 2, 24), np.nan, np.float32))
    for threads in (0, -2, "2", 2.7, 10**6):
        with pytest.raises(ValueError, match=f"threads must be .* got {threads!r}"):
            OnnxScorer(tmp_path / "m.onnx", threads=threads)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        OnnxScorer(tmp_path / "junk.onnx")


# ---------------------------------------------------------------------------
# Metrics and calibration
# ---------------------------------------------------------------------------


def test_metric_inputs_are_checked():
    y = np.array([0, 1, 0, 1])
    scenario = np.array(["Hotel"] * 4)
    with pytest.raises(ValueError, match="holds inf for scenario 'Hotel' "
                       r"\(1 of 4 rows\)"):
        scenario_metrics(y, np.array([0.1, 0.9, np.inf, 0.4]), scenario)
    with pytest.raises(ValueError,
                       match="seed must be an integer from 0 to 4294967295"):
        bootstrap_scenario_metrics(y, np.array([0.1, 0.9, 0.2, 0.4]), scenario,
                                   n_boot=3, seed=-1)
    with pytest.raises(ValueError, match="got 4294967296"):
        bootstrap_scenario_metrics(y, np.array([0.1, 0.9, 0.2, 0.4]), scenario,
                                   n_boot=3, seed=2**32)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\); got 1.5"):
        mean_interval([1.0, 2.0, 3.0], 1.5)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]; got 1 values "
                       "outside, e.g. 1.5"):
        prob_to_logit(np.array([0.2, 1.5]))
    with pytest.raises(ValueError, match="outside"):
        prob_to_logit(np.array([np.nan]))


# ---------------------------------------------------------------------------
# Reproducibility and headless use
# ---------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, sys
    import torch
    import data_synth as ds
    from autotask_lib import (AutoTask, TrainConfig, predict_autotask, prepare,
                              scenario_metrics, train_two_stage)
    torch.set_num_threads(int(sys.argv[1]))
    sizes = {"teacher_train": 1200, "llm_train": 600, "calibration": 300,
             "test": 1500}
    p = prepare(ds.generate(ds.DataConfig(sizes=sizes), seed=5))
    torch.manual_seed(11)
    model = AutoTask()
    train_two_stage(model, p["teacher_train"], p["llm_train"],
                    TrainConfig(batch_size=128, epochs_teacher=1, epochs_llm=1),
                    seed=11, progress=False)
    prob = predict_autotask(model, p["test"])
    m = scenario_metrics(p["test"].target.numpy(), prob, p["test"].scenario)
    print(json.dumps({"prob": prob.tolist(), "metrics": m.to_dict("records")}))
""")


def _fresh_process(tmp_path, threads):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, str(script), str(threads)], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.splitlines()[-1])


def test_same_seed_and_threads_give_identical_numbers_in_fresh_processes(tmp_path):
    first, second = (_fresh_process(tmp_path, 1) for _ in range(2))
    assert first["prob"] == second["prob"]  # bit for bit
    assert first["metrics"] == second["metrics"]
    assert len(first["metrics"]) == 11 * 2


def test_plots_need_no_display(tmp_path):
    # A fresh process without DISPLAY or MPLBACKEND draws and saves a figure.
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    code = textwrap.dedent(f"""
        import matplotlib
        import autotask_lib.plots
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        fig.savefig({str(tmp_path / 'f.png')!r})
        print(matplotlib.get_backend())
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    assert out.stdout.strip().lower() in {"agg", "module://matplotlib_inline."
                                          "backend_inline"}
    assert (tmp_path / "f.png").stat().st_size > 0


def test_the_book_reexecutes_every_notebook_and_fails_on_any_cell_error():
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    # "force": never serve outputs cached from older library code.
    assert config["execute"]["execute_notebooks"] == "force"
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert "--all" in (ROOT / "Makefile").read_text().split("book:")[1].split("\n\n")[0]


# ---------------------------------------------------------------------------
# Found by trying the public API as a new user would
# ---------------------------------------------------------------------------


def test_a_non_finite_real_row_is_refused_but_padding_may_hold_anything():
    model = AutoTask().eval()
    x = torch.randn(2, 4, 24)
    x[..., -1] = 1.0
    x[0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"x must be finite; block 0, row 2"):
        model(x)
    valid = torch.tensor([[True, True, False, False], [True] * 4])
    with torch.no_grad():
        out = model(x, valid)
    assert torch.isfinite(out[valid]).all()
    with pytest.raises(ValueError, match="x must be finite; row 1"):
        MultiTaskDNN()(torch.tensor([[0.0] * 24, [float("inf")] * 24]))


def test_constant_training_features_stay_zero_and_huge_ones_are_refused():
    fitted = Standardizer.fit(np.c_[np.ones(10), np.arange(10.0)])
    assert fitted.std[0] == 0
    assert fitted.transform(np.array([[5.0, 0.0]]))[0, 0] == 0.0
    near = Standardizer.fit(np.c_[1.0 + 1e-12 * np.arange(10), np.arange(10.0)])
    assert near.transform(np.array([[7.0, 0.0]]))[0, 0] == 0.0
    with pytest.raises(ValueError, match="too large to standardise: feature 0"):
        Standardizer.fit(np.array([[1e300, 0.0], [-1e300, 1.0]]))
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().transform(np.zeros((1, 2)))


def test_summary_refuses_to_count_rows_as_seeds():
    results = pd.DataFrame({"model": "m", "metric": "roc_auc",
                            "scenario": ["A", "B", "A", "B"], "seed": [0, 0, 1, 1],
                            "value": [0.6, 0.7, 0.65, 0.75]})
    from autotask_lib import summarise
    with pytest.raises(ValueError, match="one row per seed .* 2 rows"):
        summarise(results, by=("model", "metric"))
    assert summarise(results)["n_seeds"].tolist() == [2, 2]


def test_block_helpers_refuse_indices_they_cannot_mean():
    from autotask_lib import gather_blocks, random_blocks
    with pytest.raises(ValueError, match="integer row indices; got dtype float64"):
        random_blocks(np.array([0.5, 1.5]), 4)
    x = torch.zeros(3, 24)
    for bad in ([[0, -5]], [[0, 3]]):
        with pytest.raises(ValueError, match=r"row numbers in \[0, 2\] or -1"):
            gather_blocks(x, np.array(bad))


def test_export_onto_a_folder_is_refused_and_leaves_nothing(tmp_path):
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export_onnx(AutoTask(), tmp_path / "dir.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx"]


def test_other_type_mistakes_are_named(loader_args):
    from autotask_lib import ScenarioCalibrator
    from autotask_lib.serving import score_request
    frame, kw = loader_args
    with pytest.raises(TypeError, match="feature_columns must be a list"):
        frame_to_tensors(frame, **{**kw, "feature_columns": "sim_brand"})
    with pytest.raises(ValueError, match="scenarios must be a non-empty list"):
        scenario_metrics(np.array([0, 1]), np.array([0.2, 0.8]),
                         np.array(["A", "A"]), scenarios=[])
    cal = ScenarioCalibrator().fit(np.array([0, 1, 0, 1]),
                                   np.array([0.2, 0.7, 0.3, 0.9]), ["A"] * 4)
    with pytest.raises(TypeError, match="logit must be True or False; got 'yes'"):
        cal.transform(np.array([0.5]), ["A"], logit="yes")
    with pytest.raises(TypeError, match="rows must be a torch tensor"):
        score_request(AutoTask(), np.zeros((2, 24), np.float32))
    with pytest.raises(TypeError, match="model must be an AutoTask; got Multi"):
        score_request(MultiTaskDNN(), torch.zeros(2, 24))
    with pytest.raises(TypeError, match="task_id must be an integer tensor"):
        MultiTaskDNN().own_branch_logits(torch.zeros(2, 9), torch.tensor([1.0, 2.0]))


def test_saving_checks_the_splits_and_loading_checks_the_weights(tmp_path):
    import dataclasses

    import data_synth as ds
    sizes = {"teacher_train": 300, "llm_train": 200, "calibration": 100,
             "test": 300}
    data = ds.generate(ds.DataConfig(sizes=sizes), seed=1)
    bad = dataclasses.replace(data, splits=dict(data.splits))
    bad.splits["test"] = data["test"].assign(label=5)
    with pytest.raises(ValueError, match=r"'test' holds label values outside"):
        ds.save(bad, tmp_path / "bad")
    del bad.splits["calibration"]
    with pytest.raises(ValueError, match=r"lacks the splits \['calibration'\]"):
        ds.save(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    folder = ds.save(data, tmp_path / "ok")
    np.save(folder / "relevance_weights.npy", np.zeros((3, 3)))
    with pytest.raises(ds.DamagedDataSetError, match=r"shape \(3, 3\); expected"):
        ds.load(folder)


def test_training_and_scoring_name_wrong_types_and_seeds(tiny_data):
    from autotask_lib import TrainConfig, train_two_stage
    p = prepare(tiny_data)
    args = (AutoTask(), p["teacher_train"], p["llm_train"])
    with pytest.raises(TypeError, match="cfg must be a TrainConfig; got dict"):
        train_two_stage(*args, {"lr": 1e-3}, seed=0, progress=False)
    for seed in (-1, 1.5, "0"):
        with pytest.raises(ValueError, match=r"seed must be an integer from 0 to "
                           rf"4294967295 \(2\*\*32 - 1\); got {seed!r}"):
            train_two_stage(*args, TrainConfig(), seed=seed, progress=False)
    with pytest.raises(TypeError, match="lr must be a number; got '1e-3'"):
        TrainConfig(lr="1e-3")
    with pytest.raises(TypeError, match="model must be an AutoTask; got MultiTaskDNN"):
        predict_autotask(MultiTaskDNN(), p["test"])
    with pytest.raises(TypeError, match="model must be a MultiTaskDNN; got AutoTask"):
        predict_baseline(AutoTask(), p["test"])


def test_fit_and_score_checks_profile_seed_and_training_config(tiny_data):
    from autotask_lib import BaselineConfig, fit_and_score, get_profile
    prof = get_profile("smoke")
    with pytest.raises(TypeError, match=r"profile must be a Profile \(get_profile"):
        fit_and_score("baseline", BaselineConfig(), "smoke", 0, data=tiny_data)
    for seed in (-1, 0.5, "0"):
        with pytest.raises(ValueError, match="seed must be an integer from 0 to"):
            fit_and_score("baseline", BaselineConfig(), prof, seed, data=tiny_data)
    with pytest.raises(TypeError, match="train_cfg must be a TrainConfig or None"):
        fit_and_score("baseline", BaselineConfig(), prof, 0, data=tiny_data,
                      train_cfg={"lr": 1e-3})


def test_edited_cache_files_are_recomputed_not_served(tiny_data):
    import dataclasses

    from autotask_lib import BaselineConfig, TrainConfig, fit_and_score, get_profile
    from autotask_lib.experiments import CacheWarning
    prof = dataclasses.replace(
        get_profile("smoke"),
        train=TrainConfig(batch_size=128, epochs_teacher=1, epochs_llm=1))
    first = fit_and_score("baseline", BaselineConfig(), prof, 0, data=tiny_data,
                          progress=False)
    path = first.folder / "scores.parquet"
    scores = pd.read_parquet(path)
    col = [c for c in scores.columns if c.startswith("baseline")][0]
    scores[col] = 1 - scores[col]
    scores.to_parquet(path, index=False)
    with pytest.warns(CacheWarning, match=r"\['scores.parquet'\] changed"):
        again = fit_and_score("baseline", BaselineConfig(), prof, 0, data=tiny_data,
                              progress=False)
    pd.testing.assert_frame_equal(again.scores, first.scores)


# ---------------------------------------------------------------------------
# A damaged artifacts cache
# ---------------------------------------------------------------------------


def _fast_smoke():
    import dataclasses

    from autotask_lib import TrainConfig, get_profile
    return dataclasses.replace(get_profile("smoke"), train=TrainConfig(
        batch_size=128, epochs_teacher=1, epochs_llm=1))


@pytest.mark.parametrize("where", ["above", "root", "profile", "runs", "locks"])
def test_a_file_where_the_cache_needs_a_folder_is_named(tiny_data, tmp_path,
                                                        monkeypatch, where):
    from autotask_lib import prepare
    from autotask_lib.experiments import fit_and_score
    root = tmp_path / "cache" / "sub" if where == "above" else tmp_path / "cache"
    target = {"above": root.parent, "root": root, "profile": root / "smoke",
              "runs": root / "smoke" / "runs", "locks": root / "smoke" / "locks"}
    target[where].parent.mkdir(parents=True, exist_ok=True)
    target[where].write_text("not a folder")
    monkeypatch.setenv("AUTOTASK_ARTIFACTS", str(root))
    with pytest.raises(ValueError, match="needs a folder at .*a file is there"):
        fit_and_score("autotask", AutoTaskConfig(), _fast_smoke(), 0,
                      prepared=prepare(tiny_data), progress=False)
    assert target[where].read_text() == "not a folder"  # left as it was


def test_a_folder_in_place_of_a_lock_file_is_named(tiny_data):
    from autotask_lib import prepare
    from autotask_lib.experiments import artifacts_dir, fit_and_score, run_key
    prof, prepared = _fast_smoke(), prepare(tiny_data)
    key = run_key("autotask", AutoTaskConfig(), prof.train, 0, prepared.fingerprint)
    (artifacts_dir(prof) / "locks" / f"autotask-{key}.lock").mkdir(parents=True)
    with pytest.raises(ValueError, match="lock file .* is a folder"):
        fit_and_score("autotask", AutoTaskConfig(), prof, 0, prepared=prepared,
                      progress=False)


def test_a_garbled_training_log_line_is_skipped_with_a_warning(tiny_data):
    from autotask_lib import prepare
    from autotask_lib.experiments import (CacheWarning, artifacts_dir,
                                          cache_summary, fit_and_score,
                                          training_log)
    prof = _fast_smoke()
    run = fit_and_score("autotask", AutoTaskConfig(), prof, 0,
                        prepared=prepare(tiny_data), progress=False)
    log = artifacts_dir(prof) / "runs" / "training_log.jsonl"
    with open(log, "a") as f:
        f.write("{half a rec\n[1, 2]\n\n")
    with pytest.warns(CacheWarning) as caught:
        table = training_log(prof)
    assert [str(w.message).split(" of ")[0] for w in caught] == ["line 2", "line 3"]
    assert all("is not a training record" in str(w.message) for w in caught)
    assert list(table["run"]) == [run.folder.name]
    with pytest.warns(CacheWarning):
        assert "each exactly once" in cache_summary(prof)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"seeds": 0}, ValueError, "seeds must be a sequence of distinct"),
    ({"seeds": "012"}, ValueError, "seeds must be a sequence of distinct"),
    ({"seeds": [0, 0]}, ValueError, "seeds must be distinct"),
    ({"profile": "smoke"}, TypeError, r"profile must be a Profile \(get_profile"),
    ({"config": {"n_boot": 0}}, TypeError, "config must be an ExperimentConfig"),
])
def test_run_experiment_names_a_bad_argument(tiny_data, kwargs, error, match):
    from autotask_lib import prepare
    from autotask_lib.experiments import run_experiment
    kwargs = {"profile": _fast_smoke(), **kwargs}
    with pytest.raises(error, match=match):
        run_experiment("t", {"a": ("autotask", AutoTaskConfig())},
                       prepared=prepare(tiny_data), progress=False, **kwargs)


def test_seeds_beyond_32_bits_are_named(tiny_data):
    from autotask_lib import prepare
    from autotask_lib.experiments import fit_and_score, run_experiment
    prepared = prepare(tiny_data)
    with pytest.raises(ValueError, match=r"seed must be an integer from 0 to "
                                         r"4294967295"):
        fit_and_score("autotask", AutoTaskConfig(), _fast_smoke(), 2**70,
                      prepared=prepared, progress=False)
    with pytest.raises(ValueError, match="seed must be an integer from 0 to"):
        run_experiment("t", {"a": ("autotask", AutoTaskConfig())}, _fast_smoke(),
                       seeds=(0, 2**40), prepared=prepared, progress=False)


def test_metrics_refuse_two_dimensional_rows():
    from autotask_lib.metrics import scenario_metrics
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([.1, .9, .2, .8, .7, .3])
    s = np.array(["A"] * 3 + ["B"] * 3)
    with pytest.raises(ValueError, match=r"y_true must be one-dimensional.*\(2, 3\)"):
        scenario_metrics(y.reshape(2, 3), p.reshape(2, 3), s.reshape(2, 3))


def test_the_data_command_line_follows_autotask_profile(tmp_path):
    env = {**os.environ, "AUTOTASK_PROFILE": "smoke"}
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "data_synth", "--quiet", "--out",
                          str(tmp_path / "d")], env=env, cwd=repo,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "test 11,000 rows" in out.stdout
    env["AUTOTASK_PROFILE"] = "huge"
    out = subprocess.run([sys.executable, "-m", "data_synth", "--out",
                          str(tmp_path / "e")], env=env, cwd=repo,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "huge" in out.stderr
    assert not (tmp_path / "e").exists()


def test_an_unwritable_cache_is_named_before_any_training(tiny_data, monkeypatch):
    import tempfile as tempfile_module

    from autotask_lib import prepare
    from autotask_lib.experiments import (fit_and_score, fit_many, run_experiment,
                                          training_log)
    real = tempfile_module.mkdtemp

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).name in ("runs", "experiments"):
            raise PermissionError(1, "Operation not permitted")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile_module, "mkdtemp", refuse)
    prof, prepared = _fast_smoke(), prepare(tiny_data)
    with pytest.raises(PermissionError, match=r"the cache folder '.*runs' cannot "
                                              r"be written \(Operation not"):
        fit_and_score("autotask", AutoTaskConfig(), prof, 0, prepared=prepared,
                      progress=False)
    with pytest.raises(PermissionError, match="experiments' cannot be written"):
        run_experiment("t", {"a": ("autotask", AutoTaskConfig())}, prof,
                       prepared=prepared, progress=False)
    # Several missing runs: named in this process, before any worker starts.
    with pytest.raises(PermissionError, match=r"'.*runs' cannot be written"):
        fit_many([("autotask", AutoTaskConfig(), 0), ("autotask",
                                                      AutoTaskConfig(), 1)],
                 prof, prepared=prepared, workers=2, progress=False)
    assert training_log(prof).empty  # nothing was trained


def test_an_unwritable_data_cache_is_named(monkeypatch):
    import dataclasses
    import tempfile as tempfile_module

    import data_synth as ds
    from autotask_lib.experiments import artifacts_dir, load_data
    prof = dataclasses.replace(_fast_smoke(), data=ds.DataConfig(sizes={
        "teacher_train": 50, "llm_train": 50, "calibration": 50, "test": 50}))

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(tempfile_module, "mkdtemp", refuse)
    with pytest.raises(PermissionError, match=r"the cache folder '.*smoke/data' cannot "
                       r"be written \(Operation not permitted\); make it "
                       "writable, or set AUTOTASK_ARTIFACTS"):
        load_data(prof)
    data = artifacts_dir(prof) / "data"
    assert not data.exists() or not any(data.iterdir())


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_an_artifacts_link_that_leads_nowhere_is_named(tmp_path, monkeypatch,
                                                       link):
    from autotask_lib.experiments import artifacts_dir
    if link == "dangling":
        (tmp_path / "cache").symlink_to(tmp_path / "missing")
    else:
        (tmp_path / "cache").symlink_to(tmp_path / "other")
        (tmp_path / "other").symlink_to(tmp_path / "cache")
    monkeypatch.setenv("AUTOTASK_ARTIFACTS", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="a symbolic link there .* leads nowhere"):
        artifacts_dir("smoke")
    assert not (tmp_path / "missing").exists()


def test_unknown_profile_names_are_refused_by_the_cache_helpers():
    from autotask_lib.experiments import artifacts_dir, cache_summary, training_log
    for call in (lambda: cache_summary("bogus"), lambda: training_log("Smoke"),
                 lambda: artifacts_dir("../x")):
        with pytest.raises(ValueError, match="profile must be one of"):
            call()
    with pytest.raises(TypeError, match="profile must be a Profile"):
        artifacts_dir(3)


def test_more_workers_than_cores_are_warned_of(monkeypatch):
    from autotask_lib import experiments as ex
    monkeypatch.setattr(ex, "_usable_cpus", lambda: 2)
    monkeypatch.setenv("AUTOTASK_WORKERS", "6")
    with pytest.warns(UserWarning, match="AUTOTASK_WORKERS=6 is more than the 2"):
        assert ex.training_workers() == 6
    monkeypatch.setenv("AUTOTASK_WORKERS", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ex.training_workers() == 2


def test_a_seed_whose_value_is_nan_is_warned_of_in_a_summary():
    results = pd.DataFrame({"model": "m", "scenario": "s", "metric": "roc_auc",
                            "seed": [0, 1, 2, 3],
                            "value": [0.7, np.nan, 0.72, 0.71]})
    with pytest.warns(RuntimeWarning, match="1 of 4 values of .* are NaN"):
        table = summarise(results)
    assert table["n_seeds"].tolist() == [3]
    assert table["mean"].iloc[0] == pytest.approx(0.71)
    # A metric undefined for every seed is NaN without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert summarise(results.assign(value=np.nan))["mean"].isna().all()


def test_count_parameters_names_what_is_not_a_model():
    from autotask_lib import count_parameters
    with pytest.raises(TypeError, match="model must be a torch.nn.Module; got "
                                        "NoneType"):
        count_parameters(None)


def test_an_infinite_metric_is_refused_by_a_summary():
    results = pd.DataFrame({"model": "m", "scenario": "s", "metric": "roc_auc",
                            "seed": [0, 1], "value": [0.7, np.inf]})
    with pytest.raises(ValueError, match="results hold an infinite value for"):
        summarise(results)
