"""The loader, the standardiser and the blocks of rows."""

import numpy as np
import pytest
import torch

import data_synth as ds
from autotask_lib import (Standardizer, frame_to_tensors, gather_blocks,
                          group_blocks, prepare, random_blocks)


def test_prepare_puts_task_id_last_and_standardises_on_training_rows(tiny_data):
    p = prepare(tiny_data)
    test = p["test"]
    assert test.x.shape == (len(tiny_data["test"]), ds.NUM_FEATURES + 1)
    np.testing.assert_array_equal(test.x[:, -1].numpy(),
                                  tiny_data["test"]["task_id"].to_numpy())
    train = torch.cat([p["teacher_train"].x, p["llm_train"].x])[:, :-1]
    mean, std = train.mean(0), train.std(0)
    moving = std > 0
    assert torch.allclose(mean[moving], torch.zeros_like(mean[moving]), atol=1e-4)
    assert torch.allclose(std[moving], torch.ones_like(std[moving]), atol=1e-2)
    assert not torch.allclose(p["test"].x[:, :-1].mean(0), mean, atol=1e-6)


def test_constant_feature_standardises_to_zero():
    feats = np.c_[np.full(10, 3.0), np.arange(10.0)]
    s = Standardizer.fit(feats)
    out = s.transform(feats)
    assert np.isfinite(out).all() and (out[:, 0] == 0).all()


def test_loader_refuses_bad_frames(tiny_data):
    p = prepare(tiny_data)
    frame = tiny_data["test"].copy()
    kw = dict(feature_columns=p.feature_columns, label_column="label",
              standardizer=p.standardizer, task_ids=p.task_ids)
    with pytest.raises(ValueError, match=r"lacks the columns \['label'\]"):
        frame_to_tensors(frame.drop(columns="label"), **kw)
    bad = frame.copy()
    bad.loc[3, "sim_brand"] = np.inf
    with pytest.raises(ValueError, match="'sim_brand' holds inf at row 3"):
        frame_to_tensors(bad, **kw)
    bad = frame.copy()
    bad.loc[0, "label"] = 2
    with pytest.raises(ValueError, match=r"label must hold values in \[0, 1\]"):
        frame_to_tensors(bad, **kw)
    with pytest.raises(ValueError, match="frame is empty"):
        frame_to_tensors(frame.iloc[:0], **kw)


def test_unknown_scenarios_get_task_id_zero(tiny_data):
    p = prepare(tiny_data)
    test = p["test"]
    unseen = np.isin(test.scenario, ds.UNSEEN)
    assert (test.task_id[torch.from_numpy(unseen)] == 0).all()
    assert (test.task_id[torch.from_numpy(~unseen)] > 0).all()


def test_group_blocks_hold_one_group_each_and_cover_every_row_once():
    groups = np.array([5, 5, 1, 5, 2, 2, 1, 5, 5, 5])
    idx = group_blocks(groups, 3)
    real = idx[idx >= 0]
    assert sorted(real.tolist()) == list(range(10))
    for block in idx:
        members = block[block >= 0]
        assert len(set(groups[members])) == 1
        # padding only at the end of a block
        assert (block[len(members):] == -1).all()
    assert len(idx) == 4  # group 5 (5 rows) needs two blocks of at most 3


def test_random_blocks_pad_only_the_last_block():
    order = np.random.default_rng(0).permutation(37)
    idx = random_blocks(order, 16)
    assert idx.shape == (3, 16)
    assert (idx[:2] >= 0).all() and (idx[2, 5:] == -1).all()
    x = torch.arange(37.0)[:, None]
    rows, valid = gather_blocks(x, idx)
    assert rows.shape == (3, 16, 1) and valid.sum() == 37


@pytest.mark.parametrize("t", [0, -1, 1.5, True])
def test_bad_block_length_is_refused(t):
    with pytest.raises(ValueError, match="block length t must be an integer >= 1"):
        group_blocks(np.arange(4), t)
