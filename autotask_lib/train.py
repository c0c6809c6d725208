"""Two-stage training and scoring (paper section 4.1.2).

Stage 1 fits teacher soft labels on the large initial training split; stage 2
fine-tunes on binary LLM labels. Both use Adam at lr 6e-4 and binary cross
entropy on logits. Training batches are random mixtures of scenarios cut into
blocks of ``t`` rows (section 3.3); scoring blocks hold one query's candidates,
so the model sees one scenario at a time (section 3.1).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm  # text bars: no widget library needed

from . import distributed
from .baseline import MultiTaskDNN
from .data import TaskTensors, gather_blocks, group_blocks, random_blocks
from .model import AutoTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained; saved beside every result."""

    lr: float = 6e-4  # Adam learning rate (paper section 4.1.2)
    batch_size: int = 512  # rows per step, a multiple of the block length
    epochs_teacher: int = 2  # stage 1 epochs on teacher soft labels (paper: 30)
    epochs_llm: int = 3  # stage 2 epochs on LLM labels (paper: 45)
    weight_decay: float = 0.0  # Adam weight decay (the paper gives none)
    lr_facet1: float | None = None  # facet 1's learning rate; None: lr (4.3.2)
    lr_facet2: float | None = None  # facet 2's learning rate; None: lr (4.3.2)
    task_id_dropout: float = 0.0  # chance a training row's task ID becomes 0

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise TypeError(f"{name} must be a number; got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive; got {self.lr!r}")
        for name in ("lr_facet1", "lr_facet2"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float))
                                      and not isinstance(v, bool) and v > 0):
                raise ValueError(f"{name} must be None or positive; got {v!r}")
        for name in ("batch_size",):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        for name in ("epochs_teacher", "epochs_llm"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer; got {v!r}")
        p = self.task_id_dropout
        if (not isinstance(p, (int, float)) or isinstance(p, bool)
                or not 0 <= p < 1):
            raise ValueError(
                f"task_id_dropout must be a number in [0, 1); got {p!r}"
            )
        if self.weight_decay < 0:
            raise ValueError(
                f"weight_decay must be non-negative; got {self.weight_decay!r}"
            )


# Largest model seed: the training shuffles derive their generators' seeds
# from it by arithmetic that must stay within 64 bits.
MAX_SEED = 2**32 - 1


def check_seed(seed) -> int:
    """``seed`` as an int, or a ValueError naming what a seed must be."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not (
            0 <= seed <= MAX_SEED):
        raise ValueError(
            f"seed must be an integer from 0 to {MAX_SEED} (2**32 - 1); got {seed!r}"
        )
    return int(seed)


def soft_bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy on logits, for soft or hard targets in [0, 1].

    Raises
    ------
    ValueError
        If shapes differ, there are no rows, or a target lies outside [0, 1].
    """
    target = torch.as_tensor(target)
    if not target.is_floating_point():
        target = target.to(logits.dtype)  # integer 0/1 labels are fine
    if logits.shape != target.shape:
        raise ValueError(
            f"logits and target must have the same shape; got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    if logits.numel() == 0:
        raise ValueError("logits and target are empty: there is no loss to take")
    if not bool(((target >= 0) & (target <= 1)).all()):
        raise ValueError(
            f"target must lie in [0, 1]; got values from {target.min().item()} "
            f"to {target.max().item()}"
        )
    return F.binary_cross_entropy_with_logits(logits, target)


# ---------------------------------------------------------------------------
# The losses of the two models on one batch of blocks
# ---------------------------------------------------------------------------


def _autotask_loss(model: AutoTask, xb, yb, valid) -> torch.Tensor:
    logits = model(xb, valid)  # (b', t)
    return soft_bce_with_logits(logits[valid], yb[valid])


def _baseline_loss(model: MultiTaskDNN, xb, yb, valid) -> torch.Tensor:
    x, y = xb[valid], yb[valid]  # (B, d), (B,)
    general, specific = model(x)
    task_id = x[:, -1].long()
    seen = task_id > 0

    # The general branch learns from every row, each scenario branch from its
    # own scenario's rows; the shared layers learn from both.
    loss = soft_bce_with_logits(general, y)
    if seen.any():
        own = model.own_branch_logits(specific[seen], task_id[seen])
        loss = loss + soft_bce_with_logits(own, y[seen])
    return loss


def _loss_fn(model: nn.Module):
    if isinstance(model, AutoTask):
        return _autotask_loss
    if isinstance(model, MultiTaskDNN):
        return _baseline_loss
    if callable(getattr(model, "row_loss", None)):
        # Any other row-wise model that says how it learns from a batch of rows.
        return lambda m, xb, yb, valid: m.row_loss(xb[valid], yb[valid])
    raise TypeError(
        "model must be AutoTask, MultiTaskDNN or a module with a "
        f"row_loss(x, y) method; got {type(model).__name__}"
    )


class _StepLoss(nn.Module):
    """A model and its loss as one module, so that DDP sees the whole step."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, xb, yb, valid) -> torch.Tensor:
        return self.loss_fn(self.model, xb, yb, valid)


def drop_task_ids(
    xb: torch.Tensor, valid: torch.Tensor, p: float, gen: torch.Generator
) -> torch.Tensor:
    """Replace each real row's task ID by 0 ("unknown") with probability ``p``.

    Task-ID dropout teaches the model what to do with the unknown slot that
    unseen scenarios are given at inference (the paper sets their ID to 0,
    section 4.2.1, a slot that plain training never visits). ``xb`` (b', t, d)
    is changed in place and returned; with ``p == 0`` nothing is drawn from
    ``gen``.
    """
    if p > 0:
        drop = (torch.rand(valid.shape, generator=gen) < p) & valid.cpu()
        xb[..., -1][drop.to(xb.device)] = 0.0
    return xb


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _block_len(model: nn.Module) -> int:
    return model.cfg.block_len if isinstance(model, AutoTask) else 1


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Adam parameter groups: one learning rate per facet (paper section 4.3.2).

    With ``lr_facet1`` and ``lr_facet2`` both None, every parameter is in one
    group at ``lr``. Otherwise facet 1, facet 2 and the fusion head each get a
    group; a facet without its own rate, and the head, use ``lr``.

    Parameters
    ----------
    model : AutoTask or MultiTaskDNN
    cfg : TrainConfig

    Returns
    -------
    list of dict
        Groups with keys ``params``, ``lr`` and ``name``.

    Raises
    ------
    ValueError
        If a per-facet rate is set for a model that has no facets.
    """
    if cfg.lr_facet1 is None and cfg.lr_facet2 is None:
        return [{"params": list(model.parameters()), "lr": cfg.lr, "name": "all"}]
    if not isinstance(model, AutoTask):
        raise ValueError(
            "lr_facet1 and lr_facet2 apply to AutoTask only; got "
            f"lr_facet1={cfg.lr_facet1!r}, lr_facet2={cfg.lr_facet2!r} for a "
            f"{type(model).__name__}"
        )
    groups = []
    for name, facet, lr in (("facet1", model.facet1, cfg.lr_facet1),
                            ("facet2", model.facet2, cfg.lr_facet2)):
        if facet is not None:
            groups.append({"params": list(facet.parameters()),
                           "lr": cfg.lr if lr is None else lr, "name": name})
    groups.append({"params": list(model.head.parameters()), "lr": cfg.lr,
                   "name": "head"})
    return groups


def train_two_stage(
    model: nn.Module,
    teacher: TaskTensors,
    llm: TaskTensors,
    cfg: TrainConfig,
    seed: int,
    *,
    progress: bool = True,
    device: str | torch.device = "cpu",
    distributed_data_parallel: bool | None = None,
) -> pd.DataFrame:
    """Train ``model`` on teacher soft labels, then fine-tune on LLM labels.

    Parameters
    ----------
    model : AutoTask or MultiTaskDNN
    teacher, llm : TaskTensors
        The teacher-labelled and the LLM-labelled training splits (under DDP,
        this process's shards of them). A stage trained for 0 epochs may have
        an empty split.
    cfg : TrainConfig
    seed : int
        Seeds the shuffling; seed the model's initialisation before building it.
    progress : bool
        Show a progress bar over steps (under DDP, on rank 0 only).
    device : str or torch.device
        Where to train ("cpu", "cuda", or "auto" for CUDA when present). The
        model is moved back to the CPU when training ends.
    distributed_data_parallel : bool, optional
        Train with ``DistributedDataParallel`` across the processes of the
        initialised process group, each passing its own shards (see
        :mod:`autotask_lib.distributed`). ``cfg.batch_size`` is then the
        batch of all processes together, each taking an equal part, and an
        epoch walks through the largest shard (smaller shards repeat a row or
        so). None (the default): DDP when a group of more than one process is
        initialised.

    Returns
    -------
    DataFrame
        One row per epoch: stage, epoch, mean training loss, rows per second
        (under DDP, of all processes together).

    Raises
    ------
    ValueError
        If a stage with epochs to train has no rows, or ``batch_size`` is not
        a multiple of the block length (times the number of processes).
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig; got {type(cfg).__name__}")
    check_seed(seed)
    device = resolve_device(device)
    ddp = distributed.is_active() if distributed_data_parallel is None else (
        bool(distributed_data_parallel))
    if ddp and not distributed.is_active():
        raise ValueError(
            "distributed_data_parallel=True needs an initialised process group "
            "of more than one process; got none"
        )
    world, rank = (distributed.get_world_size(), distributed.get_rank()) if ddp else (
        1, 0)
    loss_fn = _loss_fn(model)
    parameter_groups(model, cfg)  # refuse per-facet rates before any work
    t = _block_len(model)
    if cfg.batch_size % (t * world):
        raise ValueError(
            f"batch_size must be a multiple of the block length {t}"
            + (f" times the {world} processes" if ddp else "")
            + f"; got {cfg.batch_size}"
        )
    batch = cfg.batch_size // world  # rows per step of this process
    stages = [("teacher", teacher, cfg.epochs_teacher), ("llm", llm, cfg.epochs_llm)]

    # Rows per epoch of this process: under DDP every process takes as many
    # steps as the largest shard needs, so that their gradients pair up.
    rows, fewest, total_rows = {}, {}, {}
    for stage, split, _ in stages:
        fewest[stage], rows[stage] = (distributed.all_min_max(len(split)) if ddp
                                      else (len(split), len(split)))
        total_rows[stage] = (int(distributed.all_sum([len(split)])[0]) if ddp
                             else len(split))
    for stage, _, epochs in stages:
        if epochs > 0 and fewest[stage] == 0:
            raise ValueError(
                f"the {stage} split must hold rows to train {epochs} epoch(s) "
                "on it" + (" in every process" if ddp else "") + "; got 0 rows"
            )
    total = sum(-(-int(rows[s]) // batch) * e for s, _, e in stages)
    bar = tqdm(total=total, desc=f"training {type(model).__name__}",
               disable=not progress or rank != 0, unit="step", mininterval=1.0)
    history = []
    model.to(device).train()
    step = _StepLoss(model, loss_fn)
    if ddp:
        # DDP copies rank 0's weights and buffers to every process once, then
        # averages the gradients of every step; no buffer changes in training.
        step = DistributedDataParallel(
            step, forward_sync_buffers=False,
            find_unused_parameters=not isinstance(model, AutoTask),
        )
    try:
        for stage_no, (stage, split, epochs) in enumerate(stages):
            # Stage 2 is a fine-tuning run with a fresh optimiser.
            opt = torch.optim.Adam(parameter_groups(model, cfg), lr=cfg.lr,
                                   weight_decay=cfg.weight_decay)
            n_rows = int(rows[stage])
            for epoch in range(epochs):
                gen = torch.Generator().manual_seed(
                    int(seed) * 1_000_003 + stage_no * 1_009 + epoch + rank * 15_485_863
                )
                order = torch.randperm(len(split), generator=gen).numpy()
                if len(order) < n_rows:  # a smaller shard wraps round (DDP only)
                    order = np.resize(order, n_rows)
                drop_gen = torch.Generator().manual_seed(
                    int(seed) * 7_919 + stage_no * 104_729 + epoch + 1
                    + rank * 32_452_843
                )
                start, losses, weights = time.perf_counter(), [], []
                for lo in range(0, n_rows, batch):
                    # Random mixed-scenario blocks of t rows (paper section 3.3).
                    blocks = random_blocks(order[lo: lo + batch], t)
                    xb, valid = gather_blocks(split.x, blocks)  # (b', t, d), (b', t)
                    xb = drop_task_ids(xb, valid, cfg.task_id_dropout, drop_gen)
                    yb = split.target[torch.from_numpy(blocks).clamp(min=0)]  # (b', t)
                    xb, yb, valid = xb.to(device), yb.to(device), valid.to(device)

                    loss = step(xb, yb, valid)
                    value, weight = loss.item(), int(valid.sum())
                    if ddp:
                        # The loss of all processes' rows together; every process
                        # sees it, so all stop together if it is not finite.
                        loss_sum, weight = distributed.all_sum([value * weight, weight])
                        value = loss_sum / weight
                    if not np.isfinite(value):
                        raise FloatingPointError(
                            f"training diverged: the {stage} loss became "
                            f"{value} in epoch {epoch + 1}; lower lr "
                            f"(got {cfg.lr}) or check the inputs for non-finite "
                            "values"
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                    losses.append(value)
                    weights.append(weight)
                    bar.update(1)
                seconds = time.perf_counter() - start
                history.append({
                    "stage": stage, "epoch": epoch + 1,
                    "loss": float(np.average(losses, weights=weights)),
                    "rows_per_s": total_rows[stage] / seconds,
                })
                bar.set_postfix(stage=stage, loss=f"{history[-1]['loss']:.4f}")
                log.info("%s epoch %d: loss %.4f", stage, epoch + 1,
                         history[-1]["loss"])
    finally:
        bar.close()  # also when interrupted, so that the bar ends its line
    model.to("cpu").eval()
    return pd.DataFrame(history)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` becomes CUDA when present and the CPU otherwise.

    Raises
    ------
    ValueError
        If CUDA is asked for and not present, or the name is unknown.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'auto'; got {device!r}"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device is 'cuda' but no CUDA device is present")
    return device


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


def _check_batch(name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


@torch.no_grad()
def predict_autotask(
    model: AutoTask, split: TaskTensors, *, block_len: int | None = None,
    batch_blocks: int = 512,
) -> np.ndarray:
    """Relevance probabilities, scoring each query's candidates as one block.

    Parameters
    ----------
    model : AutoTask
    split : TaskTensors
    block_len : int, optional
        Longest block; ``model.cfg.block_len`` when omitted, 1 scores every row
        alone.
    batch_blocks : int
        Blocks per forward pass.

    Returns
    -------
    float ndarray of shape (n,)
    """
    if not isinstance(model, AutoTask):
        raise TypeError(f"model must be an AutoTask; got {type(model).__name__}")
    _check_batch("batch_blocks", batch_blocks)
    t = model.cfg.block_len if block_len is None else block_len
    blocks = group_blocks(split.query_id, t)  # (b', t)
    return score_blocks(model, split.x, blocks, batch_blocks)


@torch.no_grad()
def score_blocks(
    model: AutoTask, x: torch.Tensor, blocks: np.ndarray, batch_blocks: int, *,
    progress: bool = False,
) -> np.ndarray:
    """AutoTask's probabilities for rows of ``x`` laid out in ``blocks``.

    A real row never depends on the padding after it: causal attention does
    not look ahead, and full attention masks padded keys. So blocks are
    scored longest first, ``batch_blocks`` at a time, each batch cut to the
    length of its longest block. Query blocks average about five rows of
    sixteen slots, so this skips most of the padding's work; scores move
    only by float rounding (about 1e-7).

    Parameters
    ----------
    model : AutoTask
    x : float tensor of shape (n, d)
    blocks : int ndarray of shape (b', t)
        Row indices, -1 for padding at a block's end.
    batch_blocks : int
        Blocks per forward pass.
    progress : bool
        Show a bar over the batches.

    Returns
    -------
    float32 ndarray of shape (n,); NaN for rows in no block.
    """
    _check_batch("batch_blocks", batch_blocks)
    blocks = np.asarray(blocks)
    model.eval()
    out = np.full(len(x), np.nan, dtype=np.float32)
    lengths = (blocks >= 0).sum(axis=1)
    order = np.argsort(-lengths, kind="stable")  # longest first
    starts = range(0, len(order), batch_blocks)
    for lo in tqdm(starts, desc="scoring", unit="batch", disable=not progress,
                   mininterval=1.0):
        chosen = order[lo: lo + batch_blocks]
        idx = blocks[chosen, : max(1, int(lengths[chosen[0]]))]
        xb, valid = gather_blocks(x, idx)  # (b', t', d), (b', t')
        prob = torch.sigmoid(model(xb, valid))  # (b', t')
        out[idx[valid.numpy()]] = prob[valid].numpy()
    return out


@torch.no_grad()
def predict_baseline(
    model: MultiTaskDNN, split: TaskTensors, *, batch_rows: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of the general branch and of each row's own branch.

    Returns
    -------
    general : float ndarray of shape (n,)
    own : float ndarray of shape (n,)
        The row's scenario branch; NaN for unseen scenarios (task ID 0).
    """
    if not isinstance(model, MultiTaskDNN):
        raise TypeError(f"model must be a MultiTaskDNN; got {type(model).__name__}")
    _check_batch("batch_rows", batch_rows)
    if len(split) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    model.eval()
    general, own = [], []
    for lo in range(0, len(split), batch_rows):
        x = split.x[lo: lo + batch_rows]
        g, s = model(x)
        general.append(torch.sigmoid(g))
        own.append(torch.sigmoid(model.own_branch_logits(s, x[:, -1].long())))
    return torch.cat(general).numpy(), torch.cat(own).numpy()
