"""Training across processes: the process group, shards of rows, and sums.

``torchrun --nproc_per_node P`` starts ``P`` copies of one program and tells
each its rank through environment variables (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``). Each copy joins the process group
(:func:`process_group`), keeps its shard of the training rows
(:func:`shard_tensors`) and calls :func:`autotask_lib.train.train_two_stage`,
which wraps the model in ``DistributedDataParallel`` when a group of more than
one process is active: gradients are averaged across processes after every
step, so every process holds the same weights throughout.

The backend is gloo, which runs on CPUs. Outside ``torchrun`` every helper
here is a no-op for a single process, so the same program runs either way.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from .data import TaskTensors

log = logging.getLogger(__name__)

# How long a process waits for the others at a collective before giving up.
DEFAULT_TIMEOUT_S = 600


def _env_int(name: str, default: int) -> int:
    """An integer environment variable, ``default`` when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"environment variable {name} must be an integer; got {value!r}"
        ) from None


def env_rank() -> int:
    """This process's rank as ``torchrun`` set it (``RANK``); 0 when unset."""
    return _env_int("RANK", 0)


def env_world_size() -> int:
    """The number of processes ``torchrun`` started (``WORLD_SIZE``); 1 when unset."""
    return _env_int("WORLD_SIZE", 1)


def is_active() -> bool:
    """Whether a process group of more than one process is initialised."""
    return (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


def get_rank() -> int:
    """This process's rank in the active group; 0 without one."""
    return dist.get_rank() if is_active() else 0


def get_world_size() -> int:
    """The number of processes in the active group; 1 without one."""
    return dist.get_world_size() if is_active() else 1


@contextlib.contextmanager
def process_group(
    backend: str = "gloo", *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Iterator[None]:
    """Join the process group ``torchrun`` describes, and leave it on exit.

    With ``WORLD_SIZE`` unset or 1, or a group already initialised by the
    caller, nothing is done.

    Parameters
    ----------
    backend : str
        ``"gloo"`` (CPU) or ``"nccl"`` (CUDA).
    timeout_s : float
        Seconds a collective waits for the other processes.

    Raises
    ------
    RuntimeError
        If ``torch.distributed`` is not available in this build of PyTorch.
    """
    if env_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        yield
        return
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch")
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    log.info("joined the %s process group as rank %d of %d", backend,
             dist.get_rank(), dist.get_world_size())
    try:
        yield
    finally:
        dist.destroy_process_group()


def shard_indices(
    n: int, *, seed: int = 0, rank: int | None = None,
    world_size: int | None = None,
) -> np.ndarray:
    """The rows of ``range(n)`` that one process trains on.

    The rows are shuffled once with ``seed`` and dealt out in turn, so every
    shard holds a fair mix of the file's scenarios whatever its row order,
    and the shards' sizes differ by at most one row. Every process must pass
    the same ``n`` and ``seed``.

    Parameters
    ----------
    n : int
        Rows in the split.
    seed : int
        Seeds the shuffle.
    rank, world_size : int, optional
        This process and the number of processes; the active group's when
        omitted.

    Returns
    -------
    int64 ndarray of shape (about n / world_size,)
        Sorted row indices of this process's shard.

    Raises
    ------
    ValueError
        If ``rank`` is not in ``[0, world_size)`` or a count is negative.
    """
    r = get_rank() if rank is None else rank
    w = get_world_size() if world_size is None else world_size
    for name, value in (("n", n), ("world_size", w), ("rank", r)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer; got {value!r}")
    if n < 0 or w < 1 or not 0 <= r < w:
        raise ValueError(
            "shard_indices needs n >= 0, world_size >= 1 and 0 <= rank < "
            f"world_size; got n={n}, rank={r}, world_size={w}"
        )
    order = np.random.default_rng(int(seed)).permutation(int(n))
    return np.sort(order[r::w]).astype(np.int64)


def shard_tensors(split: TaskTensors, *, seed: int = 0) -> TaskTensors:
    """This process's shard of ``split`` (all of it for a single process)."""
    if get_world_size() == 1:
        return split
    idx = shard_indices(len(split), seed=seed)
    return TaskTensors(
        x=split.x[idx], target=split.target[idx], scenario=split.scenario[idx],
        query_id=split.query_id[idx],
    )


def all_sum(values: Sequence[float]) -> np.ndarray:
    """Element-wise sum of ``values`` over all processes, in float64.

    Every process must call it with the same number of values. For a single
    process the values come back unchanged.
    """
    out = torch.tensor(np.asarray(values, dtype=np.float64))
    if is_active():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.numpy()


def all_min_max(value: float) -> tuple[float, float]:
    """The smallest and the largest of ``value`` over all processes."""
    out = torch.tensor([-float(value), float(value)], dtype=torch.float64)
    if is_active():
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return -out[0].item(), out[1].item()


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for alone)."""
    if is_active():
        dist.barrier()
