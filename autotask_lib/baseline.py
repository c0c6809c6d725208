"""The multi-task DNN baseline of paper section 4.2.1.

Shared fully connected layers feed one branch per seen scenario, trained on that
scenario's rows only, and a general branch trained on the rows of every
scenario. Unseen scenarios have no branch of their own and are scored by the
general branch. The baseline reads the features without the task-ID column: a
scenario reaches it only through the branch that scores the row.

Shape letters: ``B`` rows, ``p`` features without the task ID (p = d - 1),
``S`` seen scenarios (one branch each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


class ConfigTypeError(TypeError, ValueError):
    """A field of a model config holds a value of the wrong type.

    A ``TypeError``; also a ``ValueError``, so that one ``except ValueError``
    still catches every bad config field, whatever was wrong with it.
    """


def _is_int(value) -> bool:
    # Python ints only: configs are written to JSON, which numpy scalars are not.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int_field(name: str, value, lo: int) -> int:
    """``value`` as an int, or an error naming the field ``name``."""
    if not _is_int(value):
        raise ConfigTypeError(
            f"{name} must be an integer of at least {lo}; got "
            f"{type(value).__name__} {value!r}"
        )
    if value < lo:
        raise ValueError(f"{name} must be an integer of at least {lo}; got {value!r}")
    return int(value)


def _check_dropout_field(value) -> float:
    """A dropout rate in [0, 1), or an error naming ``dropout``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigTypeError(
            f"dropout must be a number in [0, 1); got {type(value).__name__} "
            f"{value!r}"
        )
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"dropout must be in [0, 1); got {value!r}")
    return value


@dataclass(frozen=True)
class BaselineConfig:
    """Architecture of the multi-task DNN baseline.

    ``shared`` and ``branch`` may be given as lists; the config keeps tuples.
    """

    d: int = 24  # columns of the input rows, the task-ID column (last) included
    num_tasks: int = 10  # task slots: seen scenarios have IDs 1..num_tasks-1
    shared: tuple[int, ...] = (256, 128)  # widths of the shared layers
    branch: tuple[int, ...] = (64,)  # hidden widths of every branch
    dropout: float = 0.0  # dropout after each hidden layer

    def __post_init__(self) -> None:
        _check_int_field("d", self.d, 2)
        _check_int_field("num_tasks", self.num_tasks, 2)
        for name in ("shared", "branch"):
            widths = getattr(self, name)
            if not isinstance(widths, (tuple, list)) or not all(
                _is_int(w) for w in widths
            ):
                raise ConfigTypeError(
                    f"{name} must be a tuple of integer widths, e.g. (256, 128); "
                    f"got {type(widths).__name__} {widths!r}"
                )
            if not widths or any(w < 1 for w in widths):
                raise ValueError(
                    f"{name} must be a non-empty tuple of positive widths; "
                    f"got {widths!r}"
                )
            object.__setattr__(self, name, tuple(int(w) for w in widths))
        _check_dropout_field(self.dropout)


def _mlp(widths: list[int], dropout: float, last_linear: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if not (last_linear and i == len(widths) - 2):
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class MultiTaskDNN(nn.Module):
    """Shared-bottom DNN with a general branch and one branch per seen scenario."""

    def __init__(self, cfg: BaselineConfig | None = None):
        super().__init__()
        if cfg is not None and not isinstance(cfg, BaselineConfig):
            raise TypeError(
                f"cfg must be a BaselineConfig; got {type(cfg).__name__}"
            )
        self.cfg = cfg if cfg is not None else BaselineConfig()
        c = self.cfg
        p = c.d - 1
        self.shared = _mlp([p, *c.shared], c.dropout, last_linear=False)
        head = [c.shared[-1], *c.branch, 1]
        self.general = _mlp(head, c.dropout, last_linear=True)
        self.branches = nn.ModuleList(
            _mlp(head, c.dropout, last_linear=True) for _ in range(c.num_tasks - 1)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the general branch and of every scenario branch.

        Parameters
        ----------
        x : tensor of shape (B, d)
            Standardised features with the task ID as the last column (ignored
            here: the baseline does not read it).

        Returns
        -------
        general : tensor of shape (B,)
            The general branch's logits.
        specific : tensor of shape (B, S)
            Each seen scenario branch's logits; column ``i`` is task ID ``i + 1``.
        """
        d = self.cfg.d
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[-1] != d:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (B, {d}); got {got}")
        if x.dtype != torch.float32:
            x = x.float()  # float64 or integer rows are read as float32
        bad = ~torch.isfinite(x).all(dim=-1)
        if bool(bad.any()):
            raise ValueError(
                f"x must be finite; row {int(bad.nonzero()[0, 0])} holds NaN or "
                f"inf ({int(bad.sum())} rows affected)"
            )
        h = self.shared(x[:, :-1])  # (B, shared[-1])
        general = self.general(h).squeeze(-1)  # (B,)
        specific = torch.cat([b(h) for b in self.branches], dim=-1)  # (B, S)
        return general, specific

    def own_branch_logits(
        self, specific: torch.Tensor, task_id: torch.Tensor
    ) -> torch.Tensor:
        """Pick each row's own scenario branch; rows of task ID 0 get NaN.

        Parameters
        ----------
        specific : tensor of shape (B, S)
        task_id : long tensor of shape (B,)

        Returns
        -------
        tensor of shape (B,)

        Raises
        ------
        ValueError
            If a task ID lies outside [0, num_tasks - 1].
        """
        S = self.cfg.num_tasks - 1
        if task_id.is_floating_point() or task_id.dtype == torch.bool:
            raise TypeError(f"task_id must be an integer tensor; got {task_id.dtype}")
        if task_id.numel() and (task_id.min() < 0 or task_id.max() > S):
            raise ValueError(
                f"task_id must lie in [0, {S}]; got values from "
                f"{task_id.min().item()} to {task_id.max().item()}"
            )
        idx = (task_id - 1).clamp(min=0)
        out = specific.gather(1, idx[:, None]).squeeze(1)  # (B,)
        return torch.where(task_id > 0, out, torch.full_like(out, float("nan")))
