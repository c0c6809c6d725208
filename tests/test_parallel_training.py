"""Training runs side by side in worker processes, and scoring trimmed blocks."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import autotask_lib.experiments as ex
from autotask_lib import (AutoTask, AutoTaskConfig, BaselineConfig, TrainConfig,
                          get_profile, prepare)
from autotask_lib.data import gather_blocks, group_blocks, random_blocks
from autotask_lib.experiments import (artifacts_dir, cache_events, fit_many,
                                      training_log, training_threads,
                                      training_workers)
from autotask_lib.train import predict_autotask, score_blocks

from conftest import TINY

FAST = TrainConfig(batch_size=128, epochs_teacher=1, epochs_llm=1)
REPO = Path(__file__).resolve().parents[1]


def default_sigint():
    # A shell starts background jobs with SIGINT ignored, and Python then
    # never turns it into KeyboardInterrupt; a user at a terminal has it.
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)



def fast_profile():
    return dataclasses.replace(get_profile("smoke"), train=FAST)


def by_action(events):
    return events.groupby("action")["count"].sum()


def padded_reference(model, x, blocks):
    # Every block scored at its full length, padding included.
    with torch.no_grad():
        xb, valid = gather_blocks(x, blocks)
        prob = torch.sigmoid(model(xb, valid))
    out = np.full(len(x), np.nan, dtype=np.float32)
    out[blocks[valid.numpy()]] = prob[valid].numpy()
    return out


# ---------------------------------------------------------------------------
# Scoring blocks cut to their real rows
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["causal", "full"])
def test_trimmed_blocks_score_as_padded_blocks(tiny_data, attention):
    prepared = prepare(tiny_data)
    test = prepared["test"]
    torch.manual_seed(0)
    model = AutoTask(AutoTaskConfig(attention=attention)).eval()
    blocks = group_blocks(test.query_id, 16)
    assert (blocks < 0).any()  # short blocks: there is padding to skip
    trimmed = score_blocks(model, test.x, blocks, batch_blocks=7)
    assert not np.isnan(trimmed).any()
    np.testing.assert_allclose(trimmed, padded_reference(model, test.x, blocks),
                               atol=2e-6, rtol=0)
    np.testing.assert_array_equal(predict_autotask(model, test, batch_blocks=7),
                                  trimmed)


def test_rows_outside_every_block_stay_nan(tiny_data):
    test = prepare(tiny_data)["test"]
    model = AutoTask(AutoTaskConfig()).eval()
    blocks = random_blocks(np.arange(10), 4)  # 10 of the split's rows only
    out = score_blocks(model, test.x, blocks, batch_blocks=2)
    assert not np.isnan(out[:10]).any() and np.isnan(out[10:]).all()


def test_score_blocks_refuses_a_bad_batch(tiny_data):
    test = prepare(tiny_data)["test"]
    with pytest.raises(ValueError, match="batch_blocks must be a positive integer"):
        score_blocks(AutoTask(AutoTaskConfig()), test.x,
                     group_blocks(test.query_id, 16), batch_blocks=0)


# ---------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------


def test_workers_and_threads_follow_the_environment(monkeypatch):
    monkeypatch.setattr(ex, "_usable_cpus", lambda: 4)  # 3 workers fit
    monkeypatch.setenv("AUTOTASK_WORKERS", "1")
    assert training_workers() == 1
    assert training_threads() == ex._usable_cpus()
    monkeypatch.setenv("AUTOTASK_WORKERS", "3")
    assert training_workers() == 3
    assert training_threads() == max(1, ex._usable_cpus() // 3)
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv("AUTOTASK_WORKERS", bad)
        with pytest.raises(ValueError, match="AUTOTASK_WORKERS must be a positive"):
            training_workers()


def test_the_thread_count_is_part_of_a_run_key(monkeypatch):
    # Another thread count changes the last digits, so it names another run.
    monkeypatch.setattr(ex, "_usable_cpus", lambda: 4)
    keys = {}
    for workers in ("1", "2", "3"):
        monkeypatch.setenv("AUTOTASK_WORKERS", workers)
        keys[workers] = ex.run_key("autotask", AutoTaskConfig(), TrainConfig(), 0,
                                   "fingerprint", src="src")
    assert keys["1"] != keys["2"]  # 4 threads, then 2
    assert keys["2"] != keys["3"]  # 2 threads, then 1
    monkeypatch.setenv("AUTOTASK_WORKERS", "2")
    assert ex.run_key("autotask", AutoTaskConfig(), TrainConfig(), 0,
                      "fingerprint", src="src") == keys["2"]


JOBS = [("autotask", AutoTaskConfig(), 0), ("baseline", BaselineConfig(), 0),
        ("autotask", AutoTaskConfig(), 1)]


def test_runs_trained_in_workers_equal_runs_trained_here(tiny_data, tmp_path,
                                                         monkeypatch):
    prof, prepared = fast_profile(), prepare(tiny_data)
    monkeypatch.setenv("AUTOTASK_WORKERS", "2")  # one thread per run
    monkeypatch.setenv("AUTOTASK_ARTIFACTS", str(tmp_path / "side-by-side"))
    before = cache_events()
    apart = fit_many(JOBS, prof, prepared=prepared, progress=False)
    events = cache_events()
    assert [(r.kind, r.seed) for r in apart] == [(k, s) for k, _, s in JOBS]
    log = training_log(prof)
    assert sorted(log["run"]) == sorted(r.folder.name for r in apart)
    assert len(set(log["pid"])) == 2 and os.getpid() not in set(log["pid"])
    gained = by_action(events).sub(by_action(before), fill_value=0)
    assert gained.get("trained", 0) == 3 and gained.get("loaded", 0) == 0

    monkeypatch.setenv("AUTOTASK_ARTIFACTS", str(tmp_path / "one-by-one"))
    alone = fit_many(JOBS, prof, prepared=prepared, workers=1, progress=False)
    assert set(training_log(prof)["pid"]) == {os.getpid()}
    for a, b in zip(apart, alone):
        assert a.folder.name == b.folder.name
        for col in a.scores.columns:
            np.testing.assert_array_equal(a.scores[col].to_numpy(),
                                          b.scores[col].to_numpy())


def test_a_reused_pool_writes_where_the_parent_now_points(tiny_data, tmp_path,
                                                          monkeypatch):
    prof, prepared = fast_profile(), prepare(tiny_data)
    jobs = JOBS[:1] + JOBS[2:]
    for name in ("first", "second"):
        monkeypatch.setenv("AUTOTASK_ARTIFACTS", str(tmp_path / name))
        fit_many(jobs, prof, prepared=prepared, workers=2, progress=False)
        runs = artifacts_dir(prof) / "runs"
        assert len([p for p in runs.iterdir() if p.is_dir()]) == 2
        assert len(training_log(prof)) == 2


def test_an_error_in_a_worker_reaches_the_caller(tiny_data):
    bad = TrainConfig(batch_size=100, epochs_teacher=1, epochs_llm=1)
    jobs = [("autotask", AutoTaskConfig(), s, bad) for s in (0, 1)]
    with pytest.raises(ValueError, match="multiple of the block length 16"):
        fit_many(jobs, fast_profile(), prepared=prepare(tiny_data), workers=2,
                 progress=False)
    runs = artifacts_dir(fast_profile()) / "runs"
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]


@pytest.mark.parametrize("jobs, workers, error, match", [
    ("autotask", 2, TypeError, "jobs must be a sequence of tuples"),
    ([("autotask", AutoTaskConfig())], 2, ValueError, "each job must be a tuple"),
    ([("autotask", AutoTaskConfig(), -1)], 2, ValueError, "seed must be an integer"),
    ([("autotask", BaselineConfig(), 0)], 2, TypeError, "AutoTaskConfig"),
    ([("autotask", AutoTaskConfig(), 0, {"lr": 1})], 2, TypeError, "train_cfg"),
    ([("autotask", AutoTaskConfig(), 0)], 0, ValueError, "workers must be a pos"),
])
def test_fit_many_refuses_malformed_jobs(tiny_data, jobs, workers, error, match):
    with pytest.raises(error, match=match):
        fit_many(jobs, fast_profile(), prepared=prepare(tiny_data),
                 workers=workers, progress=False)


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    # Spawned workers must neither re-run the caller's script nor fail on it.
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import dataclasses
        import data_synth as ds
        from autotask_lib import AutoTaskConfig, TrainConfig, get_profile, prepare
        from autotask_lib.experiments import fit_many
        print("script body ran", flush=True)
        prof = dataclasses.replace(get_profile("smoke"), train=TrainConfig(
            batch_size=128, epochs_teacher=1, epochs_llm=1))
        data = ds.generate(ds.DataConfig(sizes={TINY!r}), seed=3)
        runs = fit_many([("autotask", AutoTaskConfig(), s) for s in (0, 1)],
                        prof, prepared=prepare(data), workers=2, progress=False)
        print("runs", len(runs))
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("script body ran") == 1
    assert "runs 2" in out.stdout
    log = Path(env["AUTOTASK_ARTIFACTS"]) / "smoke" / "runs" / "training_log.jsonl"
    pids = {json.loads(line)["pid"] for line in log.read_text().splitlines()}
    assert len(pids) == 2


def test_ctrl_c_stops_the_workers_and_a_rerun_completes(tmp_path):
    # Ctrl-C reaches the whole process group, as in a terminal or when a
    # Jupyter kernel shuts down.
    import signal
    import time
    artifacts = tmp_path / "artifacts"
    script = tmp_path / "long.py"
    script.write_text(textwrap.dedent(f"""
        import dataclasses
        import data_synth as ds
        from autotask_lib import AutoTaskConfig, TrainConfig, get_profile, prepare
        from autotask_lib.experiments import fit_many
        prof = dataclasses.replace(get_profile("smoke"), train=TrainConfig(
            batch_size=128, epochs_teacher=4, epochs_llm=1))
        data = ds.generate(ds.DataConfig(sizes={TINY!r}), seed=3)
        runs = fit_many([("autotask", AutoTaskConfig(), s) for s in (0, 1)],
                        prof, prepared=prepare(data), workers=2, progress=False)
        print("scores", [float(r.scores["autotask"].sum()) for r in runs])
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "AUTOTASK_ARTIFACTS": str(artifacts)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=default_sigint)
    deadline = time.time() + 120
    while not list(artifacts.glob("smoke/.prepared.*")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # the workers are importing or training
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert "SpawnProcess" not in err  # no traceback from the workers
    time.sleep(1)
    # Nothing of the group is left running (a dead child may await reaping).
    states = subprocess.run(["ps", "-o", "stat=", "-g", str(proc.pid)],
                            capture_output=True, text=True).stdout.split()
    assert all(state.startswith("Z") for state in states), states
    runs = artifacts / "smoke" / "runs"

    again = subprocess.run([sys.executable, str(script)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    finished = sorted(p.name for p in runs.iterdir() if p.is_dir())
    assert len(finished) == 2 and all(n.startswith("autotask-") for n in finished)
    # the interrupted runs' temporary folders were cleaned away
    third = subprocess.run([sys.executable, str(script)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert third.stdout == again.stdout  # loaded from the cache, same numbers


def test_an_experiment_measured_in_workers_equals_one_measured_here(
        tiny_data, tmp_path, monkeypatch):
    import pandas as pd

    from autotask_lib.experiments import ExperimentConfig, Variant, run_experiment
    prof, prepared = fast_profile(), prepare(tiny_data)
    variants = {"autotask": Variant("autotask", AutoTaskConfig()),
                "specific": Variant("baseline", BaselineConfig(),
                                    "baseline_specific", "isotonic")}
    config = ExperimentConfig(n_boot=20)
    tables = {}
    for workers in ("2", "1"):
        monkeypatch.setenv("AUTOTASK_WORKERS", workers)
        monkeypatch.setenv("AUTOTASK_ARTIFACTS", str(tmp_path / workers))
        exp = run_experiment("parity", variants, prof, seeds=(0, 1),
                             config=config, prepared=prepared, progress=False)
        tables[workers] = exp
    reps = tables["2"].replicates
    assert set(reps["variant"]) == set(variants) and set(reps["seed"]) == {0, 1}
    assert reps["replicate"].nunique() == 20
    pd.testing.assert_frame_equal(tables["2"].results, tables["1"].results)
    pd.testing.assert_frame_equal(tables["2"].replicates, tables["1"].replicates)


def test_workers_leave_when_their_parent_is_killed(tmp_path):
    import signal
    import time
    artifacts = tmp_path / "artifacts"
    script = tmp_path / "long.py"
    script.write_text(textwrap.dedent(f"""
        import dataclasses, sys
        import data_synth as ds
        from autotask_lib import AutoTaskConfig, TrainConfig, get_profile, prepare
        from autotask_lib.experiments import fit_many
        prof = dataclasses.replace(get_profile("smoke"), train=TrainConfig(
            batch_size=128, epochs_teacher=int(sys.argv[1]), epochs_llm=1))
        data = ds.generate(ds.DataConfig(sizes={TINY!r}), seed=3)
        fit_many([("autotask", AutoTaskConfig(), s) for s in (0, 1)],
                 prof, prepared=prepare(data), workers=2, progress=False)
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "AUTOTASK_ARTIFACTS": str(artifacts)}
    proc = subprocess.Popen([sys.executable, str(script), "50"], env=env,
                            start_new_session=True)
    deadline = time.time() + 120
    while not list(artifacts.glob("smoke/.prepared.*")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # the workers are training
    proc.kill()  # the parent only, as an out-of-memory killer would
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline:
        states = subprocess.run(["ps", "-o", "stat=", "-g", str(proc.pid)],
                                capture_output=True, text=True).stdout.split()
        if all(state.startswith("Z") for state in states):
            break
        time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"workers still running 20 s after their parent died: {states}")
    assert list(artifacts.glob("smoke/.prepared.*"))  # the parent left it

    again = subprocess.run([sys.executable, str(script), "1"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not list(artifacts.glob("smoke/.prepared.*"))  # cleaned away
