"""Two peer baselines from the multi-task literature: MMoE and PLE.

The paper compares AutoTask with one production baseline, a shared-bottom DNN
with a branch per scenario (section 4.2.1, :mod:`autotask_lib.baseline`). Two
stronger and widely used multi-task designs are added here, so that the book
can ask whether AutoTask's gain survives them:

* MMoE, the multi-gate mixture of experts of Ma et al. (2018, "Modeling Task
  Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts",
  section 4.2): ``E`` expert networks read the input; every task has a gate, a
  softmax over the experts computed from the input (their equation 5,
  ``g_k(x) = softmax(W_k x)``), that mixes the experts' outputs into the
  input of the task's tower (their equation 4).
* PLE, progressive layered extraction of Tang et al. (2020, "Progressive
  Layered Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for
  Personalized Recommendations", section 4): each extraction layer has shared
  experts and experts of each task. A task's gate mixes its own experts and
  the shared ones, read from the task's output of the layer below; a shared
  gate mixes every expert of the layer, read from the shared output below, and
  feeds the shared experts of the next layer. One layer is their customised
  gate control (CGC, section 4.2); two or more are PLE proper (section 4.3).

How they fit our setting, written down here once:

* Tasks are the scenarios. Each model has a route per seen scenario (task IDs
  1..9: a gate and a tower of its own) and one *general* route, route 0.
* Unseen scenarios carry task ID 0 (paper section 4.2.1) and have no route of
  their own. They take the general route, the counterpart of the baseline's
  general branch. In MMoE the general route is a gate and a tower like any
  other. In PLE it is the shared gate of the top layer, which mixes every
  expert (the paper's top layer has no shared gate: we add one for this
  route), followed by a tower.
* Training mirrors the baseline: the general route learns from every row and
  each scenario's route from that scenario's rows; experts learn from both
  (:meth:`MMoE.row_loss`). So a row of a seen scenario trains two routes.
* Like the baseline, the experts and gates read the features only, not the
  task-ID column: a scenario reaches the model through the route that scores
  its rows.
* Both read rows ``(B, d)`` with the task ID as the last column, so the
  two-stage training of :func:`autotask_lib.train.train_two_stage` trains
  them through :meth:`row_loss`, and :func:`predict_peer` scores them.

The default sizes give both about as many trainable parameters as the
baseline (about 122,000): MMoE about 112,000 and PLE about 109,000 (the book's
peer chapter prints the exact counts).

Shape letters: ``B`` rows, ``d`` columns with the task ID (last), ``p = d - 1``
features, ``N`` routes (``num_tasks``: route 0 general, 1..N-1 the seen
scenarios), ``S = N - 1`` seen scenarios, ``E`` experts, ``o`` an expert's
output width, ``n`` networks in a bank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .baseline import ConfigTypeError, _check_dropout_field, _check_int_field
from .data import TaskTensors
from .train import soft_bce_with_logits

ROUTES = ("own", "general")


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


# A wrong type raises ConfigTypeError (a TypeError and a ValueError); a value
# of the right type out of range raises ValueError.
_check_int = _check_int_field


def _check_widths(name: str, widths) -> None:
    message = (f"{name} must be a non-empty tuple of positive integer widths; "
               f"got {widths!r}")
    if not isinstance(widths, tuple) or any(
        not isinstance(w, int) or isinstance(w, bool) for w in widths
    ):
        raise ConfigTypeError(f"{message} ({type(widths).__name__})")
    if not widths or any(w < 1 for w in widths):
        raise ValueError(message)


def _check_common(cfg) -> None:
    _check_int("d", cfg.d, 2)
    _check_int("num_tasks", cfg.num_tasks, 2)
    _check_dropout_field(cfg.dropout)


@dataclass(frozen=True)
class MMoEConfig:
    """Architecture of the multi-gate mixture-of-experts peer (Ma et al. 2018)."""

    d: int = 24  # columns of the input rows, the task-ID column (last) included
    num_tasks: int = 10  # routes: 0 general (unseen scenarios), 1..N-1 seen ones
    num_experts: int = 6  # experts shared by every route
    expert: tuple[int, ...] = (128, 64)  # layer widths of an expert; last: output
    tower: tuple[int, ...] = (64,)  # hidden widths of every route's tower
    dropout: float = 0.0  # dropout after each hidden layer (the papers give none)

    def __post_init__(self) -> None:
        _check_common(self)
        _check_int("num_experts", self.num_experts, 1)
        _check_widths("expert", self.expert)
        _check_widths("tower", self.tower)


@dataclass(frozen=True)
class PLEConfig:
    """Architecture of the progressive layered extraction peer (Tang et al. 2020)."""

    d: int = 24  # columns of the input rows, the task-ID column (last) included
    num_tasks: int = 10  # routes: 0 general (unseen scenarios), 1..N-1 seen ones
    num_levels: int = 2  # extraction layers: 1 is CGC, 2 is PLE with two layers
    shared_experts: int = 2  # shared experts in every layer
    task_experts: int = 1  # experts of each seen scenario in every layer
    expert: tuple[int, ...] = (64,)  # layer widths of an expert; last: output
    tower: tuple[int, ...] = (64,)  # hidden widths of every route's tower
    dropout: float = 0.0  # dropout after each hidden layer (the papers give none)

    def __post_init__(self) -> None:
        _check_common(self)
        _check_int("num_levels", self.num_levels, 1)
        if self.num_levels > 2:
            raise ValueError(
                f"num_levels must be 1 or 2 (the extraction layers this "
                f"library implements and tests); got {self.num_levels!r}"
            )
        _check_int("shared_experts", self.shared_experts, 1)
        _check_int("task_experts", self.task_experts, 1)
        _check_widths("expert", self.expert)
        _check_widths("tower", self.tower)


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------


class MLPBank(nn.Module):
    """``n`` MLPs of one shape, evaluated together in one batched pass.

    Network ``i`` owns slice ``i`` of every weight, so changing one network's
    weights changes no other network's output.

    Parameters
    ----------
    n : int
        Number of networks.
    widths : list of int
        Input width, hidden widths, output width.
    dropout : float
        Dropout after every hidden layer.
    last_linear : bool
        Leave the last layer without ReLU and dropout (a logit); otherwise
        every layer is followed by them.
    """

    def __init__(self, n: int, widths: list[int], dropout: float, last_linear: bool):
        super().__init__()
        self.n = n
        self.last_linear = last_linear
        self.dropout = nn.Dropout(dropout)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):
            # The initialisation of torch.nn.Linear, network by network.
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter(torch.empty(n, a, b).uniform_(-bound,
                                                                           bound)))
            self.biases.append(nn.Parameter(torch.empty(n, b).uniform_(-bound, bound)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Run every network.

        Parameters
        ----------
        h : tensor of shape (B, i) or (B, n, i)
            One input shared by every network, or one input per network.

        Returns
        -------
        tensor of shape (B, n, o)
        """
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            if h.dim() == 2:
                h = torch.einsum("bi,nio->bno", h, w) + b  # (B, n, o)
            else:
                h = torch.einsum("bni,nio->bno", h, w) + b  # (B, n, o)
            if not (self.last_linear and k == last):
                h = self.dropout(F.relu(h))
        return h


def _mix(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Weighted sum over experts: weights (..., E), values (..., E, o) -> (..., o).

    A broadcast product and a sum: with the few experts of a PLE gate, a
    batched matrix product would be one tiny product per row and scenario,
    far slower on a CPU.
    """
    return (weights.unsqueeze(-1) * values).sum(-2)


def _gate_parameter(n: int, n_in: int, n_out: int) -> nn.Parameter:
    # Gate weights W of shape (n, n_in, n_out), softmax(x W) per gate; no bias,
    # as in equation 5 of Ma et al. and the gates of Tang et al.
    bound = 1.0 / math.sqrt(n_in)
    return nn.Parameter(torch.empty(n, n_in, n_out).uniform_(-bound, bound))


class _RowModel(nn.Module):
    """What MMoE and PLE share: input checks, routing, loss and scoring."""

    cfg: MMoEConfig | PLEConfig

    def _build_towers(self, n_in: int) -> None:
        c = self.cfg
        self.towers = MLPBank(c.num_tasks, [n_in, *c.tower, 1], c.dropout,
                              last_linear=True)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, p) and task IDs (B,) of validated rows."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (B, d); got {shape}")
        if x.shape[1] != self.cfg.d:
            raise ValueError(f"x must have d={self.cfg.d} columns; got {x.shape[1]}")
        raw = x[:, -1]
        task_id = raw.round().long()
        bad = (task_id < 0) | (task_id >= self.cfg.num_tasks) | (raw != task_id)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"task IDs (last column of x) must be integers in [0, "
                f"{self.cfg.num_tasks - 1}]; got {raw[row].item()} in row {row} "
                f"({int(bad.sum())} bad row(s))"
            )
        return x[:, :-1], task_id

    def route_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every route for every row.

        Parameters
        ----------
        x : tensor of shape (B, d)
            Standardised features, the integer task ID as the last column.

        Returns
        -------
        tensor of shape (B, N)
            Column 0 is the general route, column ``k`` the route of task ID
            ``k``.

        Raises
        ------
        ValueError
            On a wrong shape or a task ID outside [0, N - 1].
        """
        features, _ = self._split(x)
        return self._routes(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit of each row's own route; task ID 0 takes the general route.

        Parameters
        ----------
        x : tensor of shape (B, d)
            Standardised features, the integer task ID as the last column.

        Returns
        -------
        tensor of shape (B,)

        Raises
        ------
        ValueError
            On a wrong shape or a task ID outside [0, N - 1].
        """
        features, task_id = self._split(x)
        logits = self._routes(features)  # (B, N)
        return logits.gather(1, task_id[:, None]).squeeze(1)  # (B,)

    def row_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training loss of a batch of rows, as the baseline learns.

        The general route learns from every row, each scenario's route from
        its own rows only (rows of task ID 0 train the general route alone).

        Parameters
        ----------
        x : tensor of shape (B, d)
            Standardised features, the integer task ID as the last column.
        y : tensor of shape (B,)
            Targets in [0, 1], soft or binary.

        Returns
        -------
        scalar tensor
            Binary cross entropy of the general route plus that of the rows'
            own routes.
        """
        features, task_id = self._split(x)
        logits = self._routes(features)  # (B, N)
        loss = soft_bce_with_logits(logits[:, 0], y)
        seen = task_id > 0
        if seen.any():
            own = logits[seen].gather(1, task_id[seen][:, None]).squeeze(1)
            loss = loss + soft_bce_with_logits(own, y[seen])
        return loss


# ---------------------------------------------------------------------------
# MMoE
# ---------------------------------------------------------------------------


class MMoE(_RowModel):
    """Multi-gate mixture of experts with a general route for unseen scenarios.

    Route ``k`` (0 general, 1..N-1 a seen scenario) mixes the ``E`` experts'
    outputs with its gate, ``softmax(x W_k)`` over experts, and scores the
    mixture with its tower (Ma et al. 2018, equations 4 and 5).

    Parameters
    ----------
    cfg : MMoEConfig
    """

    def __init__(self, cfg: MMoEConfig | None = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else MMoEConfig()
        if not isinstance(self.cfg, MMoEConfig):
            raise TypeError(f"cfg must be an MMoEConfig; got {type(self.cfg).__name__}")
        c = self.cfg
        p = c.d - 1
        self.experts = MLPBank(c.num_experts, [p, *c.expert], c.dropout,
                               last_linear=False)
        self.gates = _gate_parameter(c.num_tasks, p, c.num_experts)  # (N, p, E)
        self._build_towers(c.expert[-1])

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Every route's mixture weights over the experts.

        Parameters
        ----------
        x : tensor of shape (B, d)

        Returns
        -------
        tensor of shape (B, N, E)
            Non-negative; each route's weights sum to 1.
        """
        features, _ = self._split(x)
        return self._gates(features)

    def _gates(self, features: torch.Tensor) -> torch.Tensor:
        logits = torch.einsum("bp,npe->bne", features, self.gates)  # (B, N, E)
        return torch.softmax(logits, dim=-1)

    def _routes(self, features: torch.Tensor) -> torch.Tensor:
        # Every expert reads the features; every route mixes them its own way.
        experts = self.experts(features)  # (B, E, o)
        gates = self._gates(features)  # (B, N, E)
        mixed = torch.bmm(gates, experts)  # (B, N, o)

        # Every route's tower scores its own mixture.
        return self.towers(mixed).squeeze(-1)  # (B, N)


# ---------------------------------------------------------------------------
# PLE
# ---------------------------------------------------------------------------


class ExtractionLayer(nn.Module):
    """One extraction layer of PLE (Tang et al. 2020, section 4.3).

    Parameters
    ----------
    num_seen : int
        ``S``, the seen scenarios; each has ``task_experts`` experts and a gate.
    task_experts, shared_experts : int
        Experts per scenario and shared experts.
    n_in : int
        Width of the layer's inputs.
    widths : tuple of int
        Layer widths of an expert.
    dropout : float
    """

    def __init__(self, num_seen: int, task_experts: int, shared_experts: int,
                 n_in: int, widths: tuple[int, ...], dropout: float):
        super().__init__()
        self.num_seen, self.m_t, self.m_s = num_seen, task_experts, shared_experts
        self.task_experts = MLPBank(num_seen * task_experts, [n_in, *widths],
                                    dropout, last_linear=False)
        self.shared_experts = MLPBank(shared_experts, [n_in, *widths], dropout,
                                      last_linear=False)
        # A scenario's gate mixes its own experts and the shared ones; the
        # shared gate mixes every expert of the layer.
        self.task_gates = _gate_parameter(num_seen, n_in, task_experts
                                          + shared_experts)  # (S, i, m_t + m_s)
        self.shared_gate = _gate_parameter(1, n_in, num_seen * task_experts
                                           + shared_experts)  # (1, i, S m_t + m_s)

    def gates(self, task_in: torch.Tensor, shared_in: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scenario gates (B, S, m_t + m_s) and the shared gate (B, S m_t + m_s)."""
        if task_in.dim() == 2:
            logits = torch.einsum("bi,sie->bse", task_in, self.task_gates)
        else:
            logits = torch.einsum("bsi,sie->bse", task_in, self.task_gates)
        shared = torch.einsum("bi,ie->be", shared_in, self.shared_gate[0])
        return torch.softmax(logits, dim=-1), torch.softmax(shared, dim=-1)

    def forward(self, task_in: torch.Tensor, shared_in: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """One layer of extraction.

        Parameters
        ----------
        task_in : tensor of shape (B, i) or (B, S, i)
            Each scenario's input: one for all (the first layer reads the
            features) or the scenario's output of the layer below.
        shared_in : tensor of shape (B, i)
            The shared input: the features, or the shared output below.

        Returns
        -------
        task_out : tensor of shape (B, S, o)
        shared_out : tensor of shape (B, o)
        """
        B, S, m_t = shared_in.shape[0], self.num_seen, self.m_t

        # Each scenario's experts read that scenario's input; shared ones the
        # shared input.
        if task_in.dim() == 3:
            task_in_e = task_in.repeat_interleave(m_t, dim=1)  # (B, S m_t, i)
        else:
            task_in_e = task_in  # (B, i), read by every expert
        own = self.task_experts(task_in_e)  # (B, S m_t, o)
        shared = self.shared_experts(shared_in)  # (B, m_s, o)
        o = own.shape[-1]

        # A scenario's gate mixes its own experts and the shared ones.
        g_task, g_shared = self.gates(task_in, shared_in)
        task_out = (_mix(g_task[..., :m_t], own.reshape(B, S, m_t, o))
                    + _mix(g_task[..., m_t:], shared[:, None]))  # (B, S, o)

        # The shared gate mixes every expert of the layer.
        shared_out = (_mix(g_shared[:, :S * m_t], own)
                      + _mix(g_shared[:, S * m_t:], shared))  # (B, o)
        return task_out, shared_out


class PLE(_RowModel):
    """Progressive layered extraction with a general route for unseen scenarios.

    Scenario ``k``'s route runs through its own gates and experts and the
    shared experts of every layer, then its tower. The general route (task
    ID 0) reads the shared gate of the top layer, a mixture of every expert,
    then its own tower.

    Parameters
    ----------
    cfg : PLEConfig
    """

    def __init__(self, cfg: PLEConfig | None = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else PLEConfig()
        if not isinstance(self.cfg, PLEConfig):
            raise TypeError(f"cfg must be a PLEConfig; got {type(self.cfg).__name__}")
        c = self.cfg
        widths = [c.d - 1] + [c.expert[-1]] * c.num_levels
        self.levels = nn.ModuleList(
            ExtractionLayer(c.num_tasks - 1, c.task_experts, c.shared_experts,
                            widths[k], c.expert, c.dropout)
            for k in range(c.num_levels)
        )
        self._build_towers(c.expert[-1])

    def gate_weights(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's gates.

        Parameters
        ----------
        x : tensor of shape (B, d)

        Returns
        -------
        list of (tensor of shape (B, S, m_t + m_s), tensor of shape (B, S m_t + m_s))
            Per layer, bottom first: the scenarios' gates (over their own
            experts, then the shared ones) and the shared gate (over every
            scenario's experts, then the shared ones). Each sums to 1.
        """
        features, _ = self._split(x)
        task_in, shared_in, out = features, features, []
        for level in self.levels:
            out.append(level.gates(task_in, shared_in))
            task_in, shared_in = level(task_in, shared_in)
        return out

    def _routes(self, features: torch.Tensor) -> torch.Tensor:
        # Extraction layers, bottom up; the first reads the features everywhere.
        task_in, shared_in = features, features  # (B, p)
        for level in self.levels:
            task_in, shared_in = level(task_in, shared_in)  # (B, S, o), (B, o)

        # Route 0 reads the top shared mixture, route k scenario k's output.
        reps = torch.cat([shared_in[:, None], task_in], dim=1)  # (B, N, o)
        return self.towers(reps).squeeze(-1)  # (B, N)


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


@torch.no_grad()
def predict_peer(
    model: MMoE | PLE, split: TaskTensors, *, route: str = "own",
    batch_rows: int = 8192,
) -> np.ndarray:
    """Relevance probabilities of a peer model, one row at a time.

    Parameters
    ----------
    model : MMoE or PLE
    split : TaskTensors
    route : {"own", "general"}
        ``"own"``: each row's own route, the general route for task ID 0
        (the unseen scenarios); ``"general"``: the general route for every row.
    batch_rows : int
        Rows per forward pass.

    Returns
    -------
    float ndarray of shape (n,)

    Raises
    ------
    TypeError
        If ``model`` is not an MMoE or PLE.
    ValueError
        On an unknown route or a bad ``batch_rows``.
    """
    if not isinstance(model, _RowModel):
        raise TypeError(f"model must be an MMoE or a PLE; got {type(model).__name__}")
    if route not in ROUTES:
        raise ValueError(f"route must be one of {list(ROUTES)}; got {route!r}")
    _check_int("batch_rows", batch_rows, 1)
    model.eval()
    out = []
    for lo in range(0, len(split), batch_rows):
        x = split.x[lo: lo + batch_rows]
        logits = model(x) if route == "own" else model.route_logits(x)[:, 0]
        out.append(torch.sigmoid(logits))
    if not out:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(out).numpy()
