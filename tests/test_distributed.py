"""Training on two local processes (DDP, gloo) matches training on one.

The processes talk over the loopback interface only: a file-based store
rendezvous and gloo bound to ``lo``, or torchrun on 127.0.0.1.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.metrics import roc_auc_score

from autotask_lib import (AutoTask, AutoTaskConfig, TrainConfig, load_model,
                          predict_autotask, prepare, train_two_stage)
from autotask_lib.distributed import (all_min_max, all_sum, get_rank,
                                      get_world_size, shard_indices, shard_tensors)

# Full-batch training with one row per block: the mean loss of two equal
# shards is the mean loss of all rows, so both runs take the same Adam steps,
# up to float32 summation order. Bound on any test score's difference
# (measured: below 1e-6).
FULL_BATCH_TOL = 1e-5
# Mini-batch training puts the rows in other batches on two processes, so the
# runs differ as two seeds do. Bound on the difference of the test ROC AUC
# over all rows: five times its seed-to-seed standard deviation on this data
# (0.004, measured over four seeds of one process).
ROC_AUC_TOL = 0.02

FULL_BATCH = dict(model=AutoTaskConfig(block_len=1),
                  train=TrainConfig(batch_size=1500, epochs_teacher=1, epochs_llm=1))
MINI_BATCH = dict(model=AutoTaskConfig(),
                  train=TrainConfig(batch_size=128, epochs_teacher=2, epochs_llm=2))
CASES = {"full_batch": FULL_BATCH, "mini_batch": MINI_BATCH}


def _train(case, teacher, llm):
    torch.manual_seed(0)
    model = AutoTask(case["model"])
    history = train_two_stage(model, teacher, llm, case["train"], seed=0,
                              progress=False)
    return model, history


def _worker(rank, world, store, out, teacher, llm):
    # One of the two processes: join the group, train on its shards, and have
    # rank 0 save what it trained and whether both ended with equal weights.
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    try:
        assert (get_rank(), get_world_size()) == (rank, world)
        for name, case in CASES.items():
            model, history = _train(case, shard_tensors(teacher, seed=0),
                                    shard_tensors(llm, seed=0))
            flat = torch.cat([p.detach().flatten() for p in model.parameters()])
            gathered = [torch.zeros_like(flat) for _ in range(world)]
            dist.all_gather(gathered, flat)
            if rank == 0:
                torch.save({"state": model.state_dict(), "history": history,
                            "same_weights": all(torch.equal(g, flat)
                                                for g in gathered)},
                           Path(out) / f"{name}.pt")
        lo, hi = all_min_max(rank + 1)
        total = all_sum([rank + 1, 1.0])
        if rank == 0:
            torch.save({"min_max": (lo, hi), "sum": total.tolist()},
                       Path(out) / "collectives.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_runs(tiny_data, tmp_path_factory):
    p = prepare(tiny_data)
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(out / "store"), str(out), p["teacher_train"],
                            p["llm_train"]), nprocs=2, join=True)
    return p, {name: torch.load(out / f"{name}.pt", weights_only=False)
               for name in [*CASES, "collectives"]}


def test_shards_partition_the_rows_fairly():
    shards = [shard_indices(11, seed=4, rank=r, world_size=3) for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(11))
    assert sorted(len(s) for s in shards) == [3, 4, 4]
    np.testing.assert_array_equal(shards[1],
                                  shard_indices(11, seed=4, rank=1, world_size=3))
    assert shard_indices(5, seed=0).tolist() == list(range(5))  # one process
    with pytest.raises(ValueError, match=r"0 <= rank < world_size; got n=5, "
                                         r"rank=2, world_size=2"):
        shard_indices(5, rank=2, world_size=2)
    with pytest.raises(ValueError, match="world_size must be an integer; got 1.5"):
        shard_indices(5, rank=0, world_size=1.5)


def test_collectives_combine_both_processes(two_process_runs):
    _, runs = two_process_runs
    assert runs["collectives"]["min_max"] == (1.0, 2.0)
    assert runs["collectives"]["sum"] == [3.0, 2.0]


@pytest.mark.parametrize("name", list(CASES))
def test_both_processes_end_with_the_same_weights(two_process_runs, name):
    _, runs = two_process_runs
    assert runs[name]["same_weights"]


def test_full_batch_training_on_two_processes_equals_one(two_process_runs):
    p, runs = two_process_runs
    one, history = _train(FULL_BATCH, p["teacher_train"], p["llm_train"])
    two = AutoTask(FULL_BATCH["model"])
    two.load_state_dict(runs["full_batch"]["state"])
    gap = np.abs(predict_autotask(one, p["test"])
                 - predict_autotask(two.eval(), p["test"])).max()
    assert gap < FULL_BATCH_TOL
    np.testing.assert_allclose(runs["full_batch"]["history"]["loss"],
                               history["loss"], rtol=1e-5)


def test_mini_batch_training_on_two_processes_matches_one(two_process_runs):
    p, runs = two_process_runs
    one, _ = _train(MINI_BATCH, p["teacher_train"], p["llm_train"])
    two = AutoTask(MINI_BATCH["model"])
    two.load_state_dict(runs["mini_batch"]["state"])
    test = p["test"]
    y = test.target.numpy()
    auc_one = roc_auc_score(y, predict_autotask(one, test))
    auc_two = roc_auc_score(y, predict_autotask(two.eval(), test))
    assert auc_one > 0.7 and auc_two > 0.7  # both learned something
    assert abs(auc_one - auc_two) < ROC_AUC_TOL, (auc_one, auc_two)
    # Same number of steps per epoch, each over the same global batch size.
    assert list(runs["mini_batch"]["history"]["stage"]) == ["teacher"] * 2 + [
        "llm"] * 2


def test_ddp_needs_a_process_group(tiny_data):
    p = prepare(tiny_data)
    with pytest.raises(ValueError, match="needs an initialised process group"):
        train_two_stage(AutoTask(), p["teacher_train"], p["llm_train"],
                        TrainConfig(), seed=0, progress=False,
                        distributed_data_parallel=True)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_command_line_trains_under_torchrun(tiny_data, tmp_path):
    for split, name in (("llm_train", "train.csv"), ("test", "test.csv")):
        tiny_data[split].drop(columns=["task_id", "relevance_prob"]).to_csv(
            tmp_path / name, index=False)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
         "-m", "autotask_lib", "train", "--data", "train.csv", "--scenario-col",
         "scenario", "--label-col", "llm_label", "--query-col", "query_id",
         "--epochs", "2", "--batch-size", "64", "--out", "model", "--eval-data",
         "test.csv", "--eval-label-col", "label"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # Rank 0 alone prints and saves.
    assert out.count("saved the model to model") == 1
    assert out.count("evaluation on --eval-data") == 1
    assert "2 processes (DistributedDataParallel, gloo)" in out
    scores = pd.read_csv(tmp_path / "test.csv")
    prob = load_model(tmp_path / "model").score(scores)
    assert roc_auc_score(scores["label"], prob) > 0.7
