"""Shapes and causality of both facets, and the whole model's variants."""

import pytest
import torch

from autotask_lib import AutoTask, AutoTaskConfig
from autotask_lib.model import CrossTaskFacet, TaskAwareFeatureFacet

CFG = AutoTaskConfig()


def rows(*shape, cfg=CFG):
    x = torch.randn(*shape, cfg.d)
    x[..., -1] = torch.randint(0, cfg.num_tasks, shape).float()
    return x


def test_facet1_shapes():
    facet = TaskAwareFeatureFacet(CFG)
    x = rows(32)
    out = facet(x, x[:, -1].long())
    assert out.shape == (32, CFG.d * CFG.e1)


def test_facet2_shapes_and_flexible_block_length():
    facet = CrossTaskFacet(CFG)
    assert facet(rows(4, CFG.block_len)).shape == (4, CFG.block_len, CFG.e2)
    assert facet(rows(4, 5)).shape == (4, 5, CFG.e2)
    assert facet(rows(3, 1)).shape == (3, 1, CFG.e2)


@pytest.mark.parametrize("task_id_mode", ["encoding", "number", "none"])
@pytest.mark.parametrize("fusion", ["concat", "sum"])
@pytest.mark.parametrize("facets", ["both", "facet1", "facet2"])
def test_model_output_shape_for_every_variant(task_id_mode, fusion, facets):
    cfg = AutoTaskConfig(task_id_mode=task_id_mode, fusion=fusion, facets=facets)
    assert AutoTask(cfg)(rows(3, 7, cfg=cfg)).shape == (3, 7)


def test_facet1_is_causal_over_feature_tokens():
    facet = TaskAwareFeatureFacet(CFG).eval()
    x = rows(8)
    k = 10  # change feature k: tokens before it must not move
    y = x.clone()
    y[:, k] += 3.0
    a = facet(x, x[:, -1].long()).view(8, CFG.d, CFG.e1)
    b = facet(y, y[:, -1].long()).view(8, CFG.d, CFG.e1)
    assert torch.allclose(a[:, :k], b[:, :k], atol=1e-6)
    assert not torch.allclose(a[:, k:], b[:, k:], atol=1e-4)


def test_facet1_full_attention_is_not_causal():
    facet = TaskAwareFeatureFacet(AutoTaskConfig(attention="full")).eval()
    x = rows(8)
    y = x.clone()
    y[:, 10] += 3.0
    a = facet(x, x[:, -1].long()).view(8, CFG.d, CFG.e1)
    b = facet(y, y[:, -1].long()).view(8, CFG.d, CFG.e1)
    assert not torch.allclose(a[:, :10], b[:, :10], atol=1e-4)


def test_facet2_is_causal_over_rows_of_a_block():
    model = AutoTask(CFG).eval()
    x = rows(2, CFG.block_len)
    y = x.clone()
    y[:, 9] += 3.0  # change row 9 of each block
    a, b = model(x), model(y)
    assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6)
    assert not torch.allclose(a[:, 9], b[:, 9], atol=1e-4)


def test_padding_after_real_rows_changes_nothing():
    model = AutoTask(CFG).eval()
    x = rows(1, 5)
    padded = torch.cat([x, rows(1, 11)], dim=1)
    valid = torch.arange(16)[None] < 5
    assert torch.allclose(model(x), model(padded, valid)[:, :5], atol=1e-6)
    full = AutoTask(AutoTaskConfig(attention="full")).eval()
    assert torch.allclose(full(x), full(padded, valid)[:, :5], atol=1e-5)


def test_task_id_changes_output_only_when_the_model_reads_it():
    x = rows(1, 1)
    y = x.clone()
    y[..., -1] = (x[..., -1] + 1) % CFG.num_tasks
    for mode, changes in (("encoding", True), ("number", True), ("none", False)):
        model = AutoTask(AutoTaskConfig(task_id_mode=mode)).eval()
        assert (not torch.allclose(model(x), model(y))) == changes, mode


@pytest.mark.parametrize("kwargs, match", [
    ({"e2": 100}, "d \\* e1 must equal e2"),
    ({"task_id_mode": "onehot"}, "task_id_mode must be one of"),
    ({"attention": "sparse"}, "attention must be one of"),
    ({"block_len": 0}, "block_len must be a positive integer"),
    ({"e1": 6, "e2": 144, "n_head1": 4}, "divisible"),
    # Infinity would zero every task ID silently; NaN would poison training.
    ({"task_id_scale": float("inf")}, "task_id_scale must be a finite positive"),
    ({"task_id_scale": float("nan")}, "task_id_scale must be a finite positive"),
    ({"task_id_scale": 0}, "task_id_scale must be a finite positive"),
])
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoTaskConfig(**kwargs)


def test_bad_input_shapes_are_refused():
    model = AutoTask(CFG)
    with pytest.raises(ValueError, match="d=24 columns"):
        model(torch.zeros(2, 3, 10))
    with pytest.raises(ValueError, match="at most block_len=16"):
        model(rows(1, 17))


def test_task_ids_out_of_range_are_refused():
    x = rows(1, 2)
    x[0, 1, -1] = CFG.num_tasks
    with pytest.raises(ValueError, match="task IDs .* must be integers in"):
        AutoTask(CFG)(x)
