"""Serving a trained model: ONNX export and request scoring.

The paper calls AutoTask light enough for online serving (sections 1 and
4.1.2). A serving system scores one request at a time: the candidate ads of one
query, which all belong to one scenario (section 3.1). Here a request is a
block of ``k <= block_len`` rows of shape (k, d), scored in one forward pass.

Export uses PyTorch's TorchScript-based ONNX exporter with dynamic block count
and block length, so one exported file serves requests of any size up to
``block_len``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .baseline import MultiTaskDNN
from .model import AutoTask


class _BaselineGeneral(torch.nn.Module):
    """The baseline's general branch alone, as served for unseen scenarios."""

    def __init__(self, model: MultiTaskDNN):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def export_onnx(model: AutoTask | MultiTaskDNN, path: str | os.PathLike) -> Path:
    """Write ``model`` as an ONNX file and return its path.

    AutoTask is exported with input ``x`` of shape (blocks, t, d) and output
    ``logits`` of shape (blocks, t), both axes dynamic. The baseline's general
    branch is exported with input (rows, d) and output (rows,).

    Raises
    ------
    TypeError
        If ``model`` is neither an AutoTask nor a MultiTaskDNN.
    """
    path = Path(path)
    if isinstance(model, AutoTask):
        d = model.cfg.d
        module, example = model, torch.zeros(1, model.cfg.block_len, d)
        axes = {"x": {0: "blocks", 1: "t"}, "logits": {0: "blocks", 1: "t"}}
    elif isinstance(model, MultiTaskDNN):
        module, example = _BaselineGeneral(model), torch.zeros(2, model.cfg.d)
        axes = {"x": {0: "rows"}, "logits": {0: "rows"}}
    else:
        raise TypeError(
            f"model must be AutoTask or MultiTaskDNN; got {type(model).__name__}"
        )
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # Input checks in forward are Python conditions the tracer cannot record;
    # it warns about each one. The exported graph simply omits them.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module, (example,), str(tmp), input_names=["x"],
            output_names=["logits"], dynamic_axes=axes, dynamo=False,
        )
    os.replace(tmp, path)
    return path


class OnnxScorer:
    """Score requests with onnxruntime on the CPU.

    Parameters
    ----------
    path : path of an ONNX file written by :func:`export_onnx`.
    threads : int
        Intra-op threads; 1 is the usual setting for one request per core.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        import onnxruntime as ort

        if not Path(path).exists():
            raise FileNotFoundError(f"no ONNX file at {str(path)!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits of ``x``, laid out as the exported model expects."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(None, {"x": x})[0]


@torch.no_grad()
def score_request(model: AutoTask, rows: torch.Tensor) -> torch.Tensor:
    """Relevance probabilities of one request: one query's candidate rows.

    Parameters
    ----------
    model : AutoTask
    rows : tensor of shape (k, d)
        Standardised rows, the task ID as the last column, ``1 <= k <=
        block_len``.

    Returns
    -------
    tensor of shape (k,)
    """
    if rows.ndim != 2:
        raise ValueError(f"rows must have shape (k, d); got {tuple(rows.shape)}")
    if not 1 <= len(rows) <= model.cfg.block_len:
        raise ValueError(
            f"a request holds 1 to block_len={model.cfg.block_len} rows; "
            f"got {len(rows)}"
        )
    return torch.sigmoid(model(rows[None]))[0]
