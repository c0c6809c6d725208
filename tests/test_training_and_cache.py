"""Two-stage training learns, and the experiment cache is keyed and atomic."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from autotask_lib import (AutoTask, AutoTaskConfig, BaselineConfig, MultiTaskDNN,
                          TrainConfig, get_profile, predict_autotask,
                          predict_baseline, prepare, soft_bce_with_logits,
                          train_two_stage)
from autotask_lib.experiments import artifacts_dir, fit_and_score, run_metrics


def test_soft_bce_matches_torch_and_validates_targets():
    logits = torch.tensor([0.3, -1.2, 2.0])
    target = torch.tensor([0.2, 0.9, 1.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert torch.allclose(soft_bce_with_logits(logits, target), expected)
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        soft_bce_with_logits(logits, torch.tensor([0.2, 1.5, 1.0]))
    with pytest.raises(ValueError, match="same shape"):
        soft_bce_with_logits(logits, target[:2])


@pytest.mark.parametrize("kind", ["autotask", "baseline"])
def test_two_stage_training_learns_relevance(tiny_data, kind):
    p = prepare(tiny_data)
    model = AutoTask() if kind == "autotask" else MultiTaskDNN()
    history = train_two_stage(
        model, p["teacher_train"], p["llm_train"],
        TrainConfig(batch_size=64, epochs_teacher=3, epochs_llm=2), seed=0,
        progress=False,
    )
    assert list(history["stage"]) == ["teacher"] * 3 + ["llm"] * 2
    assert history["loss"].iloc[2] < history["loss"].iloc[0]
    test = p["test"]
    if kind == "autotask":
        prob = predict_autotask(model, test)
    else:
        prob, own = predict_baseline(model, test)
        assert np.isnan(own[test.task_id.numpy() == 0]).all()
    assert np.isfinite(prob).all()
    # Far better than chance on the whole test split after a few epochs.
    assert roc_auc_score(test.target.numpy(), prob) > 0.7


def test_scoring_a_query_alone_equals_scoring_it_in_the_split(tiny_data):
    p = prepare(tiny_data)
    model = AutoTask().eval()
    prob = predict_autotask(model, p["test"])
    q = p["test"].query_id
    first = np.flatnonzero(q == q[0])
    xb = p["test"].x[first][None]  # one block: the query's candidates
    alone = torch.sigmoid(model(xb))[0].detach().numpy()
    np.testing.assert_allclose(prob[first], alone, rtol=1e-5, atol=1e-6)


def test_batch_size_must_be_a_multiple_of_the_block_length(tiny_data):
    p = prepare(tiny_data)
    with pytest.raises(ValueError, match="multiple of the block length 16"):
        train_two_stage(AutoTask(), p["teacher_train"], p["llm_train"],
                        TrainConfig(batch_size=100), seed=0, progress=False)


def test_cache_reuses_a_run_and_keys_on_config(tiny_data):
    prof = dataclasses.replace(
        get_profile("smoke"), train=TrainConfig(batch_size=64, epochs_teacher=1,
                                                epochs_llm=1))
    p = prepare(tiny_data)
    first = fit_and_score("autotask", AutoTaskConfig(), prof, 0, prepared=p,
                          progress=False)
    assert first.folder.parent == artifacts_dir(prof) / "runs"
    assert (first.folder / "model.safetensors").exists()
    again = fit_and_score("autotask", AutoTaskConfig(), prof, 0, prepared=p,
                          progress=False)
    assert again.key == first.key
    np.testing.assert_array_equal(again.scores["autotask"], first.scores["autotask"])
    # The reloaded model reproduces the stored scores exactly.
    reloaded = predict_autotask(again.model, p["test"])
    np.testing.assert_array_equal(reloaded, first.scores["autotask"].to_numpy())
    other = fit_and_score("autotask", AutoTaskConfig(task_id_mode="none"), prof,
                          0, prepared=p, progress=False)
    assert other.key != first.key
    # No temporary folders are left behind.
    assert not [f for f in first.folder.parent.iterdir() if f.name.startswith(".")]


def test_same_seed_gives_identical_metrics_in_one_process(tiny_data):
    prof = dataclasses.replace(
        get_profile("smoke"), train=TrainConfig(batch_size=64, epochs_teacher=1,
                                                epochs_llm=1))
    p = prepare(tiny_data)
    a = fit_and_score("baseline", BaselineConfig(), prof, 1, prepared=p,
                      progress=False)
    for f in a.folder.iterdir():
        f.unlink()
    a.folder.rmdir()
    b = fit_and_score("baseline", BaselineConfig(), prof, 1, prepared=p,
                      progress=False)
    ma = run_metrics(a, "baseline_general")
    mb = run_metrics(b, "baseline_general")
    np.testing.assert_array_equal(ma["value"], mb["value"])


def test_fit_and_score_refuses_bad_kind_and_config(tiny_data):
    prof = get_profile("smoke")
    with pytest.raises(ValueError, match="kind must be one of"):
        fit_and_score("gbdt", AutoTaskConfig(), prof, 0, data=tiny_data)
    with pytest.raises(TypeError, match="must be a BaselineConfig"):
        fit_and_score("baseline", AutoTaskConfig(), prof, 0, data=tiny_data)


def test_device_names_resolve_or_are_refused():
    from autotask_lib.train import resolve_device

    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is present"):
            resolve_device("cuda")


def test_fractional_task_ids_are_refused():
    x = torch.randn(1, 3, 24)
    x[..., -1] = torch.tensor([1.0, 2.5, 3.0])
    with pytest.raises(ValueError, match="task IDs .* must be integers"):
        AutoTask()(x)


def test_nothing_in_a_padded_slot_reaches_the_real_rows():
    model = AutoTask(AutoTaskConfig(attention="full")).eval()
    x = torch.randn(1, 4, 24)
    x[..., -1] = 1.0
    valid = torch.tensor([[True, True, True, False]])
    clean = model(x, valid)[0, :3]
    x[0, 3, :-1] = float("nan")
    dirty = model(x, valid)[0, :3]
    assert torch.isfinite(dirty).all()
    assert torch.allclose(clean, dirty)


def test_divergent_training_stops_with_a_clear_error(tiny_data):
    p = prepare(tiny_data)
    cfg = TrainConfig(lr=float("inf"), batch_size=64, epochs_teacher=1,
                      epochs_llm=0)
    with pytest.raises(FloatingPointError, match="training diverged"):
        train_two_stage(AutoTask(), p["teacher_train"], p["llm_train"], cfg,
                        seed=0, progress=False)


@pytest.mark.parametrize("damaged", ["model.safetensors", "run.json",
                                     "scores.parquet"])
def test_a_damaged_cache_entry_is_trained_again(tiny_data, damaged):
    from autotask_lib.experiments import CacheWarning

    prof = dataclasses.replace(
        get_profile("smoke"), train=TrainConfig(batch_size=64, epochs_teacher=1,
                                                epochs_llm=1))
    p = prepare(tiny_data)
    first = fit_and_score("baseline", BaselineConfig(), prof, 0, prepared=p,
                          progress=False)
    (first.folder / damaged).write_bytes(b"not what it should be")
    with pytest.warns(CacheWarning, match="unreadable"):
        again = fit_and_score("baseline", BaselineConfig(), prof, 0, prepared=p,
                              progress=False)
    np.testing.assert_array_equal(again.scores["baseline_general"],
                                  first.scores["baseline_general"])
    third = fit_and_score("baseline", BaselineConfig(), prof, 0, prepared=p,
                          progress=False)
    assert third.key == first.key


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_unknown_task_slot_learns_only_with_task_id_dropout(tiny_data, dropout):
    # Training rows carry IDs 1..9 only, so the one-hot slot of ID 0 (the
    # unseen scenarios' slot) gets gradient only when task IDs are dropped.
    p = prepare(tiny_data)
    assert int(p["teacher_train"].task_id.min()) >= 1
    model = AutoTask()
    slot = 1  # column 0 of a facet-1 token is the value, column 1 is ID 0
    before = model.facet1.tok_emb.weight[:, slot].detach().clone()
    others = model.facet1.tok_emb.weight[:, slot + 1].detach().clone()
    train_two_stage(
        model, p["teacher_train"], p["llm_train"],
        TrainConfig(batch_size=64, epochs_teacher=1, epochs_llm=1,
                    task_id_dropout=dropout), seed=0, progress=False,
    )
    after = model.facet1.tok_emb.weight[:, slot].detach()
    assert not torch.equal(model.facet1.tok_emb.weight[:, slot + 1], others)
    assert torch.equal(after, before) == (dropout == 0.0)


def test_task_id_dropout_is_validated_and_seeded(tiny_data):
    with pytest.raises(ValueError, match=r"task_id_dropout must be .*got 1.0"):
        TrainConfig(task_id_dropout=1.0)
    with pytest.raises(ValueError, match="task_id_dropout"):
        TrainConfig(task_id_dropout=-0.1)
    p = prepare(tiny_data)
    cfg = TrainConfig(batch_size=64, epochs_teacher=1, epochs_llm=0,
                      task_id_dropout=0.2)
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = AutoTask()
        train_two_stage(model, p["teacher_train"], p["llm_train"], cfg, seed=4,
                        progress=False)
        runs.append(predict_autotask(model, p["test"]))
    np.testing.assert_array_equal(runs[0], runs[1])
    # The split's own tensors are never changed by the dropout.
    assert int(p["teacher_train"].task_id.min()) >= 1
