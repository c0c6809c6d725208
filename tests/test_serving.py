"""Exported models score exactly as the eager ones do."""

import numpy as np
import pytest
import torch

from autotask_lib import AutoTask, AutoTaskConfig, BaselineConfig, MultiTaskDNN
from autotask_lib.serving import OnnxScorer, export_onnx, score_request

TOL = 1e-5  # absolute tolerance on logits, onnxruntime against eager fp32


def rows(*shape, d=24, num_tasks=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, d, generator=gen)
    x[..., -1] = torch.randint(0, num_tasks, shape, generator=gen).float()
    return x


@pytest.mark.parametrize("cfg", [AutoTaskConfig(),
                                 AutoTaskConfig(task_id_mode="number"),
                                 AutoTaskConfig(attention="full", fusion="sum")])
def test_onnx_autotask_equals_eager_for_any_block_shape(tmp_path, cfg):
    model = AutoTask(cfg).eval()
    scorer = OnnxScorer(export_onnx(model, tmp_path / "m.onnx"))
    for shape in [(1, 16), (5, 7), (3, 1)]:
        x = rows(*shape)
        with torch.no_grad():
            eager = model(x).numpy()
        np.testing.assert_allclose(scorer.logits(x.numpy()), eager, atol=TOL)


def test_onnx_baseline_general_branch_equals_eager(tmp_path):
    model = MultiTaskDNN(BaselineConfig()).eval()
    scorer = OnnxScorer(export_onnx(model, tmp_path / "b.onnx"))
    x = rows(33)
    with torch.no_grad():
        eager = model(x)[0].numpy()
    np.testing.assert_allclose(scorer.logits(x.numpy()), eager, atol=TOL)


def test_score_request_checks_its_size():
    model = AutoTask().eval()
    request = rows(5)
    request[:, -1] = 3  # one request: one query's candidates, one scenario
    assert score_request(model, request).shape == (5,)
    with pytest.raises(ValueError, match="1 to block_len=16 rows; got 17"):
        score_request(model, rows(17))
    with pytest.raises(ValueError, match="shape \\(k, d\\)"):
        score_request(model, rows(2, 3))


def test_export_refuses_other_models(tmp_path):
    with pytest.raises(TypeError, match="AutoTask or MultiTaskDNN"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        OnnxScorer(tmp_path / "missing.onnx")
