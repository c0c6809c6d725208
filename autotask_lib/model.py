"""The AutoTask model: two GPT-2 style facets fused into one relevance logit.

Follows section 3 of the paper (Guo, Damani, Chang, arXiv 2407.06549):

* facet 1, task-aware feature modelling (section 3.2): each feature is a token,
  the one-hot task ID is broadcast over the tokens, one causal transformer block
  runs along the feature axis;
* facet 2, cross-task interaction modelling (section 3.3): rows are grouped into
  blocks of ``t`` rows, each row is a token, one causal transformer block runs
  along the block axis;
* fusion: the two representations are concatenated and mapped to a logit by
  linear layers.

Shape letters used throughout this module:

    B   rows in a batch (B = b' * t)
    b'  blocks in a batch
    t   block length (rows per block)
    d   features per row, the task-ID column included as the last one
    N   task slots of the one-hot task ID (slot 0 means "unknown")
    e1  facet 1 embedding size per feature token
    e2  facet 2 embedding size per row token (d * e1 == e2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

TASK_ID_MODES = ("encoding", "number", "none")
ATTENTIONS = ("causal", "full")
FUSIONS = ("concat", "sum")
FACETS = ("both", "facet1", "facet2")


@dataclass(frozen=True)
class AutoTaskConfig:
    """Architecture of one AutoTask variant; every ablation is a field here."""

    d: int = 24  # features per row, the task-ID column (last) included
    num_tasks: int = 10  # one-hot width N: 9 seen scenarios plus slot 0, unknown
    block_len: int = 16  # t, the longest block facet 2 attends over
    e1: int = 8  # facet 1 embedding size per feature token
    e2: int = 192  # facet 2 embedding size per row; the paper sets d * e1 == e2
    n_head1: int = 2  # attention heads in facet 1
    n_head2: int = 4  # attention heads in facet 2
    mlp_ratio: int = 4  # hidden width of each block's MLP, in embedding sizes
    fusion_hidden: int = 192  # width of the hidden linear layer after fusion
    dropout: float = 0.0  # dropout in attention and MLP (the paper gives none)
    task_id_mode: str = "encoding"  # "encoding" (paper), "number" or "none"
    task_id_scale: float = 9.0  # the ID number is divided by this (9 seen IDs)
    attention: str = "causal"  # "causal" (paper) or "full" (ablation)
    fusion: str = "concat"  # "concat" (paper) or "sum" (ablation)
    facets: str = "both"  # "both" (paper), "facet1" or "facet2" alone

    def __post_init__(self) -> None:
        for name, allowed in (("task_id_mode", TASK_ID_MODES),
                              ("attention", ATTENTIONS), ("fusion", FUSIONS),
                              ("facets", FACETS)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {list(allowed)}; "
                    f"got {getattr(self, name)!r}"
                )
        for name in ("d", "num_tasks", "block_len", "e1", "e2", "n_head1",
                     "n_head2", "mlp_ratio", "fusion_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.d < 2:
            raise ValueError(f"d must be at least 2 (features + task ID); got {self.d}")
        if self.d * self.e1 != self.e2:
            raise ValueError(
                f"d * e1 must equal e2 (paper section 4.1.2); got d={self.d}, "
                f"e1={self.e1}, e2={self.e2}"
            )
        if self.e1 % self.n_head1 or self.e2 % self.n_head2:
            raise ValueError(
                f"e1 must be divisible by n_head1 and e2 by n_head2; got "
                f"e1={self.e1}, n_head1={self.n_head1}, e2={self.e2}, "
                f"n_head2={self.n_head2}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}")
        if self.task_id_scale <= 0:
            raise ValueError(
                f"task_id_scale must be positive; got {self.task_id_scale!r}"
            )


# ---------------------------------------------------------------------------
# One GPT-2 block
# ---------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head self-attention, causal or full, over a token sequence."""

    def __init__(self, dim: int, n_head: int, causal: bool, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, key_valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        M, L, E = x.shape  # sequences, tokens per sequence, embedding size
        H = self.n_head

        # Project to queries, keys and values, split into heads.
        q, k, v = self.qkv(x).split(E, dim=2)
        q = q.view(M, L, H, E // H).transpose(1, 2)  # (M, H, L, E/H)
        k = k.view(M, L, H, E // H).transpose(1, 2)  # (M, H, L, E/H)
        v = v.view(M, L, H, E // H).transpose(1, 2)  # (M, H, L, E/H)

        # Attend: causal attention never needs a padding mask, because padding
        # only ever sits after the real tokens; full attention masks padded keys.
        mask = None
        if not self.causal and key_valid is not None:
            mask = key_valid[:, None, None, :]  # (M, 1, 1, L)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=self.causal,
            dropout_p=self.dropout if self.training else 0.0,
        )  # (M, H, L, E/H)

        # Merge the heads and project back.
        y = y.transpose(1, 2).reshape(M, L, E)  # (M, L, E)
        return self.proj(y)


class Block(nn.Module):
    """A GPT-2 transformer block: pre-norm attention and MLP, both residual."""

    def __init__(self, dim: int, n_head: int, causal: bool, mlp_ratio: int,
                 dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, n_head, causal, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * dim, dim),
            nn.Dropout(dropout),
        )

    def forward(
        self, x: torch.Tensor, key_valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), key_valid)
        return x + self.mlp(self.ln2(x))


# ---------------------------------------------------------------------------
# The two facets
# ---------------------------------------------------------------------------


def task_id_inputs(x: torch.Tensor, cfg: AutoTaskConfig) -> tuple[torch.Tensor, ...]:
    """Split rows into feature values and the task ID the chosen mode allows.

    Parameters
    ----------
    x : tensor of shape (..., d)
        Standardised features with the raw integer task ID as the last column.
    cfg : AutoTaskConfig

    Returns
    -------
    values : tensor of shape (..., d)
        The row as both facets read it: features, then the task ID number
        divided by ``task_id_scale`` ("number", "encoding") or 0 ("none").
    task_id : long tensor of shape (...)
        The integer task ID, used by facet 1's one-hot encoding.
    """
    task_id = x[..., -1].round().long()
    if cfg.task_id_mode == "none":
        id_value = torch.zeros_like(x[..., -1:])
    else:
        id_value = x[..., -1:] / cfg.task_id_scale
    return torch.cat([x[..., :-1], id_value], dim=-1), task_id


class TaskAwareFeatureFacet(nn.Module):
    """Facet 1 (paper section 3.2): features as tokens, made task-aware."""

    def __init__(self, cfg: AutoTaskConfig):
        super().__init__()
        self.cfg = cfg
        width = 1 + (cfg.num_tasks if cfg.task_id_mode == "encoding" else 0)
        self.tok_emb = nn.Linear(width, cfg.e1)
        self.pos_emb = nn.Parameter(torch.zeros(cfg.d, cfg.e1))
        nn.init.normal_(self.pos_emb, std=0.02)
        self.block = Block(cfg.e1, cfg.n_head1, cfg.attention == "causal",
                           cfg.mlp_ratio, cfg.dropout)

    def forward(self, values: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        """Map rows of shape (B, d) to T1 of shape (B, d * e1)."""
        B, d = values.shape
        N = self.cfg.num_tasks

        # Each feature value becomes a token of width 1.
        tokens = values.unsqueeze(-1)  # (B, d, 1)

        # Task ID encoding: one-hot, broadcast over the d feature tokens and
        # concatenated to each token's value.
        if self.cfg.task_id_mode == "encoding":
            one_hot = F.one_hot(task_id, N).to(values.dtype)  # (B, N)
            one_hot = one_hot.unsqueeze(1).expand(B, d, N)  # (B, d, N)
            tokens = torch.cat([tokens, one_hot], dim=-1)  # (B, d, N + 1)

        # Token embedding plus position embedding.
        h = self.tok_emb(tokens) + self.pos_emb  # (B, d, e1)

        # One GPT-2 block along the feature axis, then flatten.
        h = self.block(h)  # (B, d, e1)
        return h.reshape(B, d * self.cfg.e1)  # (B, d * e1)


class CrossTaskFacet(nn.Module):
    """Facet 2 (paper section 3.3): rows of a block as tokens."""

    def __init__(self, cfg: AutoTaskConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Linear(cfg.d, cfg.e2)
        self.pos_emb = nn.Parameter(torch.zeros(cfg.block_len, cfg.e2))
        nn.init.normal_(self.pos_emb, std=0.02)
        self.block = Block(cfg.e2, cfg.n_head2, cfg.attention == "causal",
                           cfg.mlp_ratio, cfg.dropout)

    def forward(
        self, values: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Map blocks of shape (b', t, d) to T2 of shape (b', t, e2)."""
        _, t, _ = values.shape

        # Token embedding of each row plus the position of the row in its block.
        h = self.tok_emb(values) + self.pos_emb[:t]  # (b', t, e2)

        # One GPT-2 block along the block axis.
        return self.block(h, valid)  # (b', t, e2)


# ---------------------------------------------------------------------------
# The whole model
# ---------------------------------------------------------------------------


class AutoTask(nn.Module):
    """The multi-faceted single model (paper figure 1).

    Parameters
    ----------
    cfg : AutoTaskConfig
        Architecture and variant.
    """

    def __init__(self, cfg: AutoTaskConfig | None = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else AutoTaskConfig()
        c = self.cfg
        self.facet1 = TaskAwareFeatureFacet(c) if c.facets != "facet2" else None
        self.facet2 = CrossTaskFacet(c) if c.facets != "facet1" else None
        width = 2 * c.e2 if (c.facets == "both" and c.fusion == "concat") else c.e2
        self.head = nn.Sequential(
            nn.Linear(width, c.fusion_hidden),
            nn.GELU(approximate="tanh"),
            nn.Linear(c.fusion_hidden, 1),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
                nn.init.zeros_(m.bias)

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Relevance logits of blocks of rows.

        Parameters
        ----------
        x : tensor of shape (b', t, d)
            Blocks of standardised rows, the raw integer task ID as the last
            column. ``t`` may be anything from 1 to ``block_len``.
        valid : bool tensor of shape (b', t), optional
            False marks padding. Padding must come after a block's real rows.

        Returns
        -------
        tensor of shape (b', t)
            One logit per row; the logits of padded rows mean nothing.
        """
        b, t, d = x.shape
        if d != self.cfg.d:
            raise ValueError(f"x must have d={self.cfg.d} columns; got {d}")
        if t > self.cfg.block_len:
            raise ValueError(
                f"blocks may hold at most block_len={self.cfg.block_len} rows; "
                f"got t={t}"
            )
        values, task_id = task_id_inputs(x, self.cfg)  # (b', t, d), (b', t)
        if task_id.numel() and (
            task_id.min() < 0 or task_id.max() >= self.cfg.num_tasks
        ):
            raise ValueError(
                f"task IDs (last column of x) must be integers in [0, "
                f"{self.cfg.num_tasks - 1}]; got values from "
                f"{x[..., -1].min().item()} to {x[..., -1].max().item()}"
            )

        # Facet 1 treats every row on its own: fold the block axis into the batch.
        parts = []
        if self.facet1 is not None:
            t1 = self.facet1(values.reshape(b * t, d), task_id.reshape(b * t))
            parts.append(t1.view(b, t, -1))  # (b', t, d * e1)

        # Facet 2 attends across the rows of each block.
        if self.facet2 is not None:
            parts.append(self.facet2(values, valid))  # (b', t, e2)

        # Fusion: concatenate (paper) or add the two representations.
        if len(parts) == 2 and self.cfg.fusion == "concat":
            h = torch.cat(parts, dim=-1)  # (b', t, 2 * e2)
        else:
            h = sum(parts)  # (b', t, e2)
        return self.head(h).squeeze(-1)  # (b', t)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
