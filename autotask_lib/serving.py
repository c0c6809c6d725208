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
    if path.is_dir():
        raise IsADirectoryError(
            f"path {str(path)!r} is a folder; give the ONNX file's name, e.g. "
            f"{str(path / 'model.onnx')!r}"
        )
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # Input checks in forward are Python conditions the tracer cannot
        # record; it warns about each one. The exported graph omits them.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                module, (example,), str(tmp), input_names=["x"],
                output_names=["logits"], dynamic_axes=axes, dynamo=False,
            )
        _write_shape_metadata(tmp, model)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_shape_metadata(path: Path, model: AutoTask | MultiTaskDNN) -> None:
    # The graph does not keep forward's input checks; the sizes they need travel
    # in the file's metadata so that OnnxScorer can check inputs itself.
    import onnx

    proto = onnx.load(str(path))
    meta = {"autotask.kind": type(model).__name__, "autotask.d": str(model.cfg.d),
            "autotask.num_tasks": str(model.cfg.num_tasks)}
    if isinstance(model, AutoTask):
        meta["autotask.block_len"] = str(model.cfg.block_len)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


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
        cores = os.cpu_count() or 1
        if (not isinstance(threads, (int, np.integer)) or isinstance(threads, bool)
                or not 1 <= threads <= cores):
            raise ValueError(
                f"threads must be an integer from 1 to this machine's {cores} "
                f"cores; got {threads!r}"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime's own error types
            raise ValueError(
                f"{str(path)!r} is not a readable ONNX model ({err})"
            ) from err
        meta = self.session.get_modelmeta().custom_metadata_map
        if "autotask.d" not in meta:
            raise ValueError(
                f"{str(path)!r} was not written by export_onnx: it lacks the "
                "model's sizes"
            )
        self.kind = meta["autotask.kind"]  # "AutoTask" or "MultiTaskDNN"
        self.d = int(meta["autotask.d"])
        self.num_tasks = int(meta["autotask.num_tasks"])
        self.block_len = int(meta.get("autotask.block_len", 1))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits of ``x``, laid out as the exported model expects.

        Parameters
        ----------
        x : array of shape (blocks, t, d) for AutoTask, (rows, d) for the
            baseline; the task ID is the last column.

        Raises
        ------
        TypeError
            If ``x`` is not an array of numbers.
        ValueError
            On a wrong shape, an empty input, a block longer than
            ``block_len``, non-finite values or task IDs outside
            [0, num_tasks - 1].
        """
        autotask = self.kind == "AutoTask"
        rank = 3 if autotask else 2
        layout = "(blocks, t, d)" if autotask else "(rows, d)"
        if x is None or isinstance(x, (str, bytes)):
            raise TypeError(
                f"x must be an array of numbers of shape {layout}; got "
                f"{type(x).__name__}"
            )
        try:
            x = np.ascontiguousarray(x, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"x must be an array of numbers of shape {layout}; got a "
                f"{type(x).__name__} that is not one ({err})"
            ) from None
        if x.ndim != rank or x.shape[-1] != self.d or x.size == 0:
            raise ValueError(
                f"x must be a non-empty array of shape {layout} with d={self.d}; "
                f"got shape {x.shape}"
            )
        if autotask and x.shape[1] > self.block_len:
            raise ValueError(
                f"blocks may hold at most block_len={self.block_len} rows; got "
                f"t={x.shape[1]}"
            )
        if not np.isfinite(x).all():
            raise ValueError("x must be finite; got NaN or infinite values")
        ids = x[..., -1]
        if (ids != np.round(ids)).any() or ids.min() < 0 or ids.max() >= self.num_tasks:
            raise ValueError(
                f"task IDs (last column of x) must be integers in [0, "
                f"{self.num_tasks - 1}]; got values from {ids.min()} to {ids.max()}"
            )
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

    Raises
    ------
    TypeError
        If ``model`` is not an AutoTask or ``rows`` not a tensor.
    ValueError
        If ``rows`` is not of shape (k, d) with ``1 <= k <= block_len``, or
        its rows carry different task IDs: a request is one query's
        candidates, and they all belong to one scenario.
    """
    if not isinstance(model, AutoTask):
        raise TypeError(f"model must be an AutoTask; got {type(model).__name__}")
    if not isinstance(rows, torch.Tensor):
        raise TypeError(
            f"rows must be a torch tensor of shape (k, d); got {type(rows).__name__}"
        )
    if rows.ndim != 2:
        raise ValueError(f"rows must have shape (k, d); got {tuple(rows.shape)}")
    if not 1 <= len(rows) <= model.cfg.block_len:
        raise ValueError(
            f"a request holds 1 to block_len={model.cfg.block_len} rows; "
            f"got {len(rows)}"
        )
    task_ids = rows[:, -1]  # (k,); NaN and inf are left to the model's checks
    if bool(torch.isfinite(task_ids).all()) and bool((task_ids != task_ids[0]).any()):
        raise ValueError(
            "a request holds one query's candidates, all of one scenario: the "
            "task IDs of rows (last column) must all be equal; got "
            f"{torch.unique(task_ids).tolist()}"
        )
    return torch.sigmoid(model(rows[None]))[0]
