"""The helpers of the studies beyond the paper: other data, cached tables,
inference blocks, borrowed task IDs, and metrics of rows scored elsewhere."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from autotask_lib import AutoTask, get_profile, predict_autotask, prepare
from autotask_lib.experiments import (BLOCKINGS, ExperimentConfig, cache_events,
                                      cached_tables, feature_mean_distances,
                                      inference_blocks, measure_scores,
                                      predict_in_blocks, profile_variant,
                                      with_task_ids)
from autotask_lib.metrics import scenario_metrics

# ---------------------------------------------------------------------------
# A profile on other data
# ---------------------------------------------------------------------------


def test_profile_variant_scales_rows_and_changes_the_story():
    prof = get_profile("default")
    other = profile_variant(prof, train_fraction=0.25, test_fraction=0.5,
                            relatedness=0.9)
    sizes = prof.data.sizes
    assert other.data.sizes == {
        "teacher_train": sizes["teacher_train"] // 4,
        "llm_train": sizes["llm_train"] // 4,
        "calibration": round(sizes["calibration"] / 4),
        "test": sizes["test"] // 2,
    }
    assert other.data.relatedness == 0.9
    assert (other.name, other.seeds, other.train) == (prof.name, prof.seeds,
                                                      prof.train)
    assert dataclasses.replace(other.data, relatedness=prof.data.relatedness,
                               sizes=sizes) == prof.data
    assert profile_variant(prof) == prof


@pytest.mark.parametrize("kw, error, match", [
    ({"train_fraction": 0.0}, ValueError, r"train_fraction must be a number in "
     r"\(0, 1\]; got 0.0"),
    ({"test_fraction": 1.5}, ValueError, "test_fraction must be .* got 1.5"),
    ({"relatedness": 1.2}, ValueError, r"relatedness must be in \[0, 1\]"),
    ({"sizes": {}}, TypeError, r"data_overrides must be fields .* got \['sizes'\]"),
    ({"colour": 1}, TypeError, r"data_overrides must be fields .* \['colour'\]"),
])
def test_profile_variant_refuses_bad_settings(kw, error, match):
    with pytest.raises(error, match=match):
        profile_variant(get_profile("smoke"), **kw)


# ---------------------------------------------------------------------------
# Cached tables
# ---------------------------------------------------------------------------


def test_cached_tables_are_computed_once_per_key():
    prof = get_profile("smoke")
    calls = []

    def compute():
        calls.append(1)
        return {"scores": pd.DataFrame({"a": [1.0, 2.0]})}

    first = cached_tables(prof, "study", {"runs": ["x"]}, compute)
    again = cached_tables(prof, "study", {"runs": ["x"]}, compute)
    pd.testing.assert_frame_equal(first["scores"], again["scores"])
    assert len(calls) == 1
    ev = cache_events()
    assert set(ev.loc[ev["what"] == "table", "action"]) == {"computed", "loaded"}
    cached_tables(prof, "study", {"runs": ["y"]}, compute)
    assert len(calls) == 2


def test_cached_tables_refuse_what_is_not_a_table():
    prof = get_profile("smoke")
    with pytest.raises(TypeError, match="compute must return a dict of table "
                       r"name -> DataFrame; got dict of \['list'\]"):
        cached_tables(prof, "bad", {}, lambda: {"t": [1, 2]})
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        cached_tables(prof, "bad name", {}, lambda: {})


# ---------------------------------------------------------------------------
# Inference blocks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("blocking", BLOCKINGS)
def test_every_blocking_holds_every_row_once(tiny_data, blocking):
    split = prepare(tiny_data)["test"]
    blocks = inference_blocks(split, blocking, 16, seed=1)
    assert blocks.shape[1] == (1 if blocking == "alone" else 16)
    real = blocks[blocks >= 0]
    np.testing.assert_array_equal(np.sort(real), np.arange(len(split)))
    # Padding only at the end of a block.
    valid = blocks >= 0
    assert not (valid[:, 1:] & ~valid[:, :-1]).any()
    groups = {"query": split.query_id, "scenario": split.scenario}
    if blocking in groups:
        g = groups[blocking]
        for row in blocks[:200]:
            assert len(set(g[row[row >= 0]])) == 1
    if blocking == "mixed":
        np.testing.assert_array_equal(
            blocks, inference_blocks(split, "mixed", 16, seed=1))
        assert not np.array_equal(
            blocks, inference_blocks(split, "mixed", 16, seed=2))
        mixed = [len(set(split.scenario[r[r >= 0]])) > 1 for r in blocks]
        assert np.mean(mixed) > 0.5


def test_an_unknown_blocking_is_refused(tiny_data):
    split = prepare(tiny_data)["test"]
    with pytest.raises(ValueError, match=r"blocking must be one of \['alone', "
                       r"'query', 'scenario', 'mixed'\]; got 'random'"):
        inference_blocks(split, "random", 16)


def test_predicting_in_blocks_matches_the_default_scoring(tiny_data):
    split = prepare(tiny_data)["test"]
    model = AutoTask().eval()
    query = predict_in_blocks(model, split, inference_blocks(split, "query", 16))
    np.testing.assert_allclose(query, predict_autotask(model, split), rtol=1e-5,
                               atol=1e-6)
    alone = predict_in_blocks(model, split, inference_blocks(split, "alone", 16))
    np.testing.assert_allclose(alone, predict_autotask(model, split, block_len=1),
                               rtol=1e-5, atol=1e-6)
    # Causal attention: the first row of a block is scored as if alone, the
    # others generally are not.
    first = inference_blocks(split, "query", 16)[:, 0]
    np.testing.assert_allclose(query[first], alone[first], rtol=1e-5, atol=1e-6)
    later = np.setdiff1d(np.arange(len(split)), first)
    assert np.abs(query[later] - alone[later]).max() > 1e-4


def test_predicting_in_blocks_refuses_blocks_that_miss_or_repeat_rows(tiny_data):
    split = prepare(tiny_data)["test"]
    blocks = inference_blocks(split, "alone", 16)
    with pytest.raises(ValueError, match="blocks must be a 2-D array holding each "
                       f"of the {len(split)} rows exactly once"):
        predict_in_blocks(AutoTask(), split, blocks[1:])
    twice = blocks.copy()
    twice[1] = 0
    with pytest.raises(ValueError, match="exactly once"):
        predict_in_blocks(AutoTask(), split, twice)


# ---------------------------------------------------------------------------
# Borrowed task IDs
# ---------------------------------------------------------------------------


def test_feature_mean_distances_find_a_seen_scenario_nearest_to_itself(tiny_data):
    p = prepare(tiny_data)
    seen = sorted(p.task_ids, key=p.task_ids.get)
    dist = feature_mean_distances(p, seen, split="llm_train")
    assert list(dist.columns) == seen and list(dist.index) == seen
    assert (dist.to_numpy() >= 0).all()
    assert list(dist.idxmin(axis=1)) == seen
    unseen = feature_mean_distances(p, ["Clinics", "Home"])
    assert unseen.shape == (2, len(seen)) and (unseen.to_numpy() > 0).all()
    with pytest.raises(ValueError, match="scenarios must have rows in the "
                       "'llm_train' split; 'Clinics' has none"):
        feature_mean_distances(p, ["Clinics"], split="llm_train")


def test_with_task_ids_changes_only_the_named_scenarios(tiny_data):
    split = prepare(tiny_data)["test"]
    before = split.x.clone()
    moved = with_task_ids(split, {"Clinics": 6})
    clinics = torch.from_numpy(split.scenario == "Clinics")
    assert (moved.task_id[clinics] == 6).all()
    torch.testing.assert_close(moved.x[~clinics], split.x[~clinics])
    torch.testing.assert_close(moved.x[:, :-1], split.x[:, :-1])
    torch.testing.assert_close(split.x, before)


# ---------------------------------------------------------------------------
# Metrics of rows scored elsewhere
# ---------------------------------------------------------------------------


def test_measure_scores_matches_scenario_metrics_and_pairs_resamples():
    rng = np.random.default_rng(0)
    n = 600
    rows = pd.DataFrame({"scenario": rng.choice(["A", "B"], n),
                         "label": rng.integers(0, 2, n)})
    rows["y_prob"] = np.clip(0.3 * rows["label"] + 0.7 * rng.random(n), 0, 1)
    config = ExperimentConfig(metrics=("roc_auc", "pr_auc"), n_boot=20)
    results, reps = measure_scores(rows, config, experiment="e", variant="v",
                                   seed=3)
    expected = scenario_metrics(rows["label"], rows["y_prob"], rows["scenario"],
                                metrics=("roc_auc", "pr_auc"))
    np.testing.assert_allclose(results["value"], expected["value"])
    assert set(results["seed"]) == {3} and set(results["variant"]) == {"v"}
    assert len(reps) == 2 * 2 * 20
    # Another score on the same rows sees the same resamples: a score equal
    # to the first gives identical replicates.
    _, reps2 = measure_scores(rows.assign(y_prob=rows["y_prob"] ** 2), config,
                              experiment="e", variant="w", seed=3)
    np.testing.assert_allclose(
        reps.loc[reps["metric"] == "roc_auc", "value"].to_numpy(),
        reps2.loc[reps2["metric"] == "roc_auc", "value"].to_numpy())
    with pytest.raises(ValueError, match=r"rows lacks the columns \['y_prob'\]"):
        measure_scores(rows.drop(columns="y_prob"), config, experiment="e",
                       variant="v", seed=0)
