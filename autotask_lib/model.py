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

Every variant that the ablations of section 4.3 need is a field of
:class:`AutoTaskConfig`, not a copy of the model. The default configuration is
the paper's model.

Shape letters used throughout this module:

    B   rows in a batch (B = b' * t)
    b'  blocks in a batch
    t   block length (rows per block)
    d   features per row, the task-ID column included as the last one
    N   task slots of the one-hot task ID (slot 0 means "unknown")
    e1  facet 1 embedding size per feature token
    e2  facet 2 embedding size per row token (d * e1 == e2)
    w   width of one token before its embedding
    H   attention heads
"""

from __future__ import annotations

import math
import numbers
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
FACET2_TASK_IDS = ("number", "encoding", "none")
UNSEEN_ENCODINGS = ("slot", "zeros", "mean")


@dataclass(frozen=True)
class AutoTaskConfig:
    """Architecture of one AutoTask variant; every ablation is a field here.

    Notes
    -----
    The paper leaves four things open; each reading taken is a field, and the
    defaults are the readings we take for the paper's model.

    * How the task ID number is scaled (``task_id_scale``). The features are
      standardised (section 4.1.2) but the task ID is placed in the row as is
      (section 3.2). We divide it by the number of seen IDs, 9, so it lies in
      [0, 1] like a flag; 1.0 gives the raw number.
    * What facet 2 reads of the task ID (``facet2_task_id``). Section 4.3.1 says
      the model uses "task ID number and task ID encoding" in both facets; we
      read it as: facet 2 reads the rows as they are, the ID number in the last
      column ("number"); "encoding" also appends the one-hot; "none" hides the
      ID from facet 2.
    * How the unknown task ID 0 of unseen scenarios is one-hot encoded
      (``unseen_encoding``). "slot" gives it a slot of its own, as for any other
      ID; as no training row has ID 0, that slot keeps its initial weights.
      "zeros" encodes it as the all-zero vector (no scenario), "mean" as the
      average of the seen scenarios' one-hot vectors.
    * What "without token and position embeddings" means (``embeddings``,
      section 4.3.2). With False, each facet maps its tokens to the embedding
      size by a fixed random projection (drawn at initialisation, never
      trained) and adds no position term, so every shape stays the same.
    """

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
    embeddings: bool = True  # learned token + position embeddings, or fixed ones
    facet2_task_id: str = "number"  # facet 2's view of the ID in "encoding" mode
    unseen_encoding: str = "slot"  # one-hot of ID 0: "slot", "zeros" or "mean"

    def __post_init__(self) -> None:
        for name, allowed in (("task_id_mode", TASK_ID_MODES),
                              ("attention", ATTENTIONS), ("fusion", FUSIONS),
                              ("facets", FACETS),
                              ("facet2_task_id", FACET2_TASK_IDS),
                              ("unseen_encoding", UNSEEN_ENCODINGS)):
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
        scale = self.task_id_scale
        if not (isinstance(scale, numbers.Real) and not isinstance(scale, bool)
                and math.isfinite(scale) and scale > 0):
            # Infinity would silently zero every task ID; NaN would poison training.
            raise ValueError(
                "task_id_scale must be a finite positive number; got "
                f"{self.task_id_scale!r}"
            )
        if not isinstance(self.embeddings, bool):
            raise TypeError(
                f"embeddings must be a bool; got {type(self.embeddings).__name__}"
            )
        # The two readings below only exist when there is a one-hot encoding;
        # refusing them elsewhere keeps one config per distinct model.
        if self.task_id_mode != "encoding":
            for name, default in (("facet2_task_id", "number"),
                                  ("unseen_encoding", "slot")):
                if getattr(self, name) != default:
                    raise ValueError(
                        f"{name} applies only when task_id_mode='encoding'; "
                        f"got {name}={getattr(self, name)!r} with "
                        f"task_id_mode={self.task_id_mode!r}"
                    )
        if self.unseen_encoding == "mean" and self.num_tasks < 2:
            raise ValueError(
                "unseen_encoding='mean' needs at least one seen slot "
                f"(num_tasks >= 2); got num_tasks={self.num_tasks}"
            )


# ---------------------------------------------------------------------------
# One GPT-2 block
# ---------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head self-attention, causal or full, over a token sequence.

    Parameters
    ----------
    dim : int
        Embedding size of a token.
    n_head : int
        Number of heads; ``dim`` must be divisible by it.
    causal : bool
        Let each token attend to itself and the tokens before it only.
    dropout : float
        Dropout on the attention weights while training.
    """

    def __init__(self, dim: int, n_head: int, causal: bool, dropout: float):
        super().__init__()
        self.n_head = n_head
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Queries, keys and values of shape (M, H, L, E/H) each."""
        M, L, E = x.shape  # sequences, tokens per sequence, embedding size
        H = self.n_head
        q, k, v = self.qkv(x).split(E, dim=2)
        q = q.view(M, L, H, E // H).transpose(1, 2)  # (M, H, L, E/H)
        k = k.view(M, L, H, E // H).transpose(1, 2)  # (M, H, L, E/H)
        v = v.view(M, L, H, E // H).transpose(1, 2)  # (M, H, L, E/H)
        return q, k, v

    def forward(
        self, x: torch.Tensor, key_valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend over tokens of shape (M, L, E); returns shape (M, L, E)."""
        M, L, E = x.shape

        # Project to queries, keys and values, split into heads.
        q, k, v = self._heads(x)  # (M, H, L, E/H) each

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

    def weights(
        self, x: torch.Tensor, key_valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attention weights of every head, computed explicitly.

        Parameters
        ----------
        x : tensor of shape (M, L, E)
            Tokens, already layer-normalised as the block feeds them.
        key_valid : bool tensor of shape (M, L), optional
            False marks padded tokens, which full attention ignores.

        Returns
        -------
        tensor of shape (M, H, L, L)
            Row ``i`` holds how much token ``i`` attends to each token; each row
            sums to 1.
        """
        _, L, E = x.shape
        q, k, _ = self._heads(x)  # (M, H, L, E/H)
        scores = q @ k.transpose(-2, -1) / math.sqrt(E // self.n_head)  # (M, H, L, L)
        if self.causal:
            allowed = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
            scores = scores.masked_fill(~allowed, float("-inf"))
        elif key_valid is not None:
            scores = scores.masked_fill(~key_valid[:, None, None, :], float("-inf"))
        return scores.softmax(dim=-1)  # (M, H, L, L)


class Block(nn.Module):
    """A GPT-2 transformer block: pre-norm attention and MLP, both residual.

    Parameters
    ----------
    dim : int
        Embedding size of a token.
    n_head : int
        Attention heads.
    causal : bool
        Causal (GPT-2) or full attention.
    mlp_ratio : int
        Hidden width of the MLP in multiples of ``dim`` (4 in GPT-2).
    dropout : float
        Dropout in attention and after the MLP while training.
    """

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
        """Map tokens of shape (M, L, E) to tokens of the same shape."""
        x = x + self.attn(self.ln1(x), key_valid)
        return x + self.mlp(self.ln2(x))

    def attention_weights(
        self, x: torch.Tensor, key_valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The attention weights (M, H, L, L) this block uses on tokens ``x``."""
        return self.attn.weights(self.ln1(x), key_valid)


# ---------------------------------------------------------------------------
# The two facets
# ---------------------------------------------------------------------------


class FixedProjection(nn.Module):
    """A linear map drawn at random once and never trained.

    It stands in for a learned token embedding when ``embeddings=False``: the
    weights are a buffer, saved with the model but not a parameter.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    """

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.register_buffer("weight", torch.randn(n_in, n_out) / math.sqrt(n_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (..., n_in) to (..., n_out)."""
        return x @ self.weight


def encode_task_id(task_id: torch.Tensor, cfg: AutoTaskConfig,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot task IDs, with the unknown ID 0 encoded as ``cfg`` says.

    Parameters
    ----------
    task_id : long tensor of shape (...)
        Task IDs in [0, N - 1].
    cfg : AutoTaskConfig
        Gives N (``num_tasks``) and the reading for ID 0 (``unseen_encoding``).
    dtype : torch dtype
        Type of the result.

    Returns
    -------
    tensor of shape (..., N)
    """
    N = cfg.num_tasks
    one_hot = F.one_hot(task_id, N).to(dtype)  # (..., N)
    if cfg.unseen_encoding == "slot":
        return one_hot
    fill = torch.zeros(N, dtype=dtype, device=task_id.device)  # (N,)
    if cfg.unseen_encoding == "mean":
        fill[1:] = 1.0 / (N - 1)
    unknown = (task_id == 0).unsqueeze(-1)  # (..., 1)
    return torch.where(unknown, fill, one_hot)  # (..., N)


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
        The integer task ID, used by the one-hot encoding.
    """
    task_id = x[..., -1].round().long()
    if cfg.task_id_mode == "none":
        id_value = torch.zeros_like(x[..., -1:])
    else:
        id_value = x[..., -1:] / cfg.task_id_scale
    return torch.cat([x[..., :-1], id_value], dim=-1), task_id


class TaskAwareFeatureFacet(nn.Module):
    """Facet 1 (paper section 3.2): features as tokens, made task-aware.

    ``forward`` runs the steps :meth:`tokens`, :meth:`embed`, the GPT-2 block
    and a flatten; each step is public so that it can be shown on its own.

    Parameters
    ----------
    cfg : AutoTaskConfig
    """

    def __init__(self, cfg: AutoTaskConfig):
        super().__init__()
        self.cfg = cfg
        width = 1 + (cfg.num_tasks if cfg.task_id_mode == "encoding" else 0)
        if cfg.embeddings:
            self.tok_emb = nn.Linear(width, cfg.e1)
            self.pos_emb = nn.Parameter(torch.zeros(cfg.d, cfg.e1))
            nn.init.normal_(self.pos_emb, std=0.02)
        else:
            self.tok_emb = FixedProjection(width, cfg.e1)
            self.register_parameter("pos_emb", None)
        self.block = Block(cfg.e1, cfg.n_head1, cfg.attention == "causal",
                           cfg.mlp_ratio, cfg.dropout)

    def tokens(self, values: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        """Feature tokens before embedding.

        Parameters
        ----------
        values : tensor of shape (B, d)
            Rows as :func:`task_id_inputs` returns them.
        task_id : long tensor of shape (B,)

        Returns
        -------
        tensor of shape (B, d, w)
            Token ``j`` of a row is ``[value_j]``, followed in "encoding" mode
            by the row's one-hot task ID (w = N + 1); otherwise w = 1.
        """
        B, d = values.shape
        N = self.cfg.num_tasks

        # Each feature value becomes a token of width 1.
        tokens = values.unsqueeze(-1)  # (B, d, 1)

        # Task ID encoding: one-hot, broadcast over the d feature tokens and
        # concatenated to each token's value.
        if self.cfg.task_id_mode == "encoding":
            one_hot = encode_task_id(task_id, self.cfg, values.dtype)  # (B, N)
            one_hot = one_hot.unsqueeze(1).expand(B, d, N)  # (B, d, N)
            tokens = torch.cat([tokens, one_hot], dim=-1)  # (B, d, N + 1)
        return tokens

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embedding plus position embedding: (B, d, w) to (B, d, e1)."""
        h = self.tok_emb(tokens)  # (B, d, e1)
        if self.pos_emb is not None:
            h = h + self.pos_emb  # (B, d, e1)
        return h

    def forward(self, values: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        """Map rows of shape (B, d) and task IDs (B,) to T1 of shape (B, d * e1)."""
        B, d = values.shape

        # Tokens, then their embeddings.
        h = self.embed(self.tokens(values, task_id))  # (B, d, e1)

        # One GPT-2 block along the feature axis, then flatten.
        h = self.block(h)  # (B, d, e1)
        return h.reshape(B, d * self.cfg.e1)  # (B, d * e1)

    def attention_map(self, values: torch.Tensor,
                      task_id: torch.Tensor) -> torch.Tensor:
        """Attention weights of shape (B, H, d, d) over the feature tokens."""
        return self.block.attention_weights(self.embed(self.tokens(values, task_id)))


class CrossTaskFacet(nn.Module):
    """Facet 2 (paper section 3.3): rows of a block as tokens.

    Parameters
    ----------
    cfg : AutoTaskConfig
    """

    def __init__(self, cfg: AutoTaskConfig):
        super().__init__()
        self.cfg = cfg
        width = cfg.d + (cfg.num_tasks if self._appends_one_hot else 0)
        if cfg.embeddings:
            self.tok_emb = nn.Linear(width, cfg.e2)
            self.pos_emb = nn.Parameter(torch.zeros(cfg.block_len, cfg.e2))
            nn.init.normal_(self.pos_emb, std=0.02)
        else:
            self.tok_emb = FixedProjection(width, cfg.e2)
            self.register_parameter("pos_emb", None)
        self.block = Block(cfg.e2, cfg.n_head2, cfg.attention == "causal",
                           cfg.mlp_ratio, cfg.dropout)

    @property
    def _appends_one_hot(self) -> bool:
        """Whether facet 2's row tokens carry the one-hot task ID."""
        return (self.cfg.task_id_mode == "encoding"
                and self.cfg.facet2_task_id == "encoding")

    def tokens(self, values: torch.Tensor,
               task_id: torch.Tensor | None = None) -> torch.Tensor:
        """Row tokens before embedding.

        Parameters
        ----------
        values : tensor of shape (b', t, d)
            Blocks of rows as :func:`task_id_inputs` returns them.
        task_id : long tensor of shape (b', t), optional
            Needed only when facet 2 reads the one-hot task ID.

        Returns
        -------
        tensor of shape (b', t, w)
            The rows, the task-ID column zeroed when facet 2 does not read it,
            with the one-hot appended when it does (w = d + N); else w = d.
        """
        if self.cfg.task_id_mode == "encoding" and self.cfg.facet2_task_id == "none":
            zero = torch.zeros_like(values[..., -1:])
            values = torch.cat([values[..., :-1], zero], dim=-1)  # (b', t, d)
        if self._appends_one_hot:
            if task_id is None:
                raise ValueError(
                    "task_id is required when facet2_task_id='encoding'; got None"
                )
            one_hot = encode_task_id(task_id, self.cfg, values.dtype)  # (b', t, N)
            values = torch.cat([values, one_hot], dim=-1)  # (b', t, d + N)
        return values

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embedding plus position in the block: (b', t, w) to (b', t, e2)."""
        _, t, _ = tokens.shape
        h = self.tok_emb(tokens)  # (b', t, e2)
        if self.pos_emb is not None:
            h = h + self.pos_emb[:t]  # (b', t, e2)
        return h

    def forward(
        self, values: torch.Tensor, valid: torch.Tensor | None = None,
        task_id: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Map blocks of shape (b', t, d) to T2 of shape (b', t, e2).

        ``valid`` (b', t) marks real rows (False: padding, after the real rows);
        ``task_id`` (b', t) is needed only when facet 2 reads the one-hot.
        """
        # Token embedding of each row plus the position of the row in its block.
        h = self.embed(self.tokens(values, task_id))  # (b', t, e2)

        # One GPT-2 block along the block axis.
        return self.block(h, valid)  # (b', t, e2)

    def attention_map(
        self, values: torch.Tensor, valid: torch.Tensor | None = None,
        task_id: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention weights of shape (b', H, t, t) over the rows of each block."""
        h = self.embed(self.tokens(values, task_id))  # (b', t, e2)
        return self.block.attention_weights(h, valid)


# ---------------------------------------------------------------------------
# The whole model
# ---------------------------------------------------------------------------


class AutoTask(nn.Module):
    """The multi-faceted single model (paper figure 1).

    ``forward`` runs :meth:`facet_outputs`, :meth:`fuse` and the linear head;
    each step is public so that it can be shown on its own.

    Parameters
    ----------
    cfg : AutoTaskConfig
        Architecture and variant.
    """

    def __init__(self, cfg: AutoTaskConfig | None = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else AutoTaskConfig()
        if not isinstance(self.cfg, AutoTaskConfig):
            raise TypeError(
                f"cfg must be an AutoTaskConfig; got {type(self.cfg).__name__}"
            )
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
        """Normal weights scaled by fan-in and zero biases for every linear map."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
                nn.init.zeros_(m.bias)

    def _check_input(self, x: torch.Tensor, valid: torch.Tensor | None) -> None:
        """Refuse blocks of the wrong shape, bad task IDs and misplaced padding."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            raise ValueError(
                "x must be a tensor of shape (b', t, d); got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        b, t, d = x.shape
        if d != self.cfg.d:
            raise ValueError(f"x must have d={self.cfg.d} columns; got {d}")
        if b == 0 or t == 0:
            raise ValueError(
                "x must hold at least one block of at least one row; got shape "
                f"{tuple(x.shape)}"
            )
        if x.dtype.is_complex or x.dtype == torch.bool:
            raise ValueError(f"x must hold real numbers; got dtype {x.dtype}")
        if t > self.cfg.block_len:
            raise ValueError(
                f"blocks may hold at most block_len={self.cfg.block_len} rows; "
                f"got t={t}"
            )
        task_id = x[..., -1].round().long()
        if task_id.numel() and (
            task_id.min() < 0 or task_id.max() >= self.cfg.num_tasks
            or bool((x[..., -1] != task_id).any())
        ):
            raise ValueError(
                f"task IDs (last column of x) must be integers in [0, "
                f"{self.cfg.num_tasks - 1}]; got values from "
                f"{x[..., -1].min().item()} to {x[..., -1].max().item()}"
            )
        if valid is not None:
            if tuple(valid.shape) != tuple(x.shape[:2]) or valid.dtype != torch.bool:
                raise ValueError(
                    f"valid must be a bool tensor of shape {tuple(x.shape[:2])}; "
                    f"got {valid.dtype} of shape {tuple(valid.shape)}"
                )
            if bool((valid[:, 1:] & ~valid[:, :-1]).any()):
                raise ValueError(
                    "valid must mark padding only after a block's real rows; "
                    "got a real row after padding"
                )
        # A NaN or inf in one real row would spread to every row of its block
        # through the attention; padded slots are zeroed later and may hold any.
        bad = ~torch.isfinite(x).all(dim=-1)  # (b', t)
        if valid is not None:
            bad &= valid
        if bool(bad.any()):
            block, row = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"x must be finite; block {block}, row {row} holds NaN or inf "
                f"({int(bad.sum())} rows affected)"
            )

    def facet_outputs(
        self, x: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The two facets' representations of blocks of rows.

        Parameters
        ----------
        x : tensor of shape (b', t, d)
            Blocks of standardised rows, the raw integer task ID as the last
            column. ``t`` may be anything from 1 to ``block_len``.
        valid : bool tensor of shape (b', t), optional
            False marks padding. Padding must come after a block's real rows.

        Returns
        -------
        t1 : tensor of shape (b', t, d * e1), or None without facet 1
        t2 : tensor of shape (b', t, e2), or None without facet 2

        Raises
        ------
        ValueError
            On a wrong shape, an empty block axis, a task ID outside
            [0, N - 1], or padding before a real row.
        """
        self._check_input(x, valid)
        b, t, d = x.shape
        if x.dtype != torch.float32:
            x = x.float()  # float64 or integer rows are read as float32
        if valid is not None:
            # Padded slots hold no data: zero them so that nothing in them,
            # not even a NaN, can reach a real row through the attention.
            x = x.masked_fill(~valid[..., None], 0.0)  # (b', t, d)
        values, task_id = task_id_inputs(x, self.cfg)  # (b', t, d), (b', t)

        # Facet 1 treats every row on its own: fold the block axis into the batch.
        t1 = t2 = None
        if self.facet1 is not None:
            t1 = self.facet1(values.reshape(b * t, d), task_id.reshape(b * t))
            t1 = t1.view(b, t, -1)  # (b', t, d * e1)

        # Facet 2 attends across the rows of each block.
        if self.facet2 is not None:
            t2 = self.facet2(values, valid, task_id)  # (b', t, e2)
        return t1, t2

    def fuse(self, t1: torch.Tensor | None, t2: torch.Tensor | None) -> torch.Tensor:
        """Concatenate (paper) or add the facets' representations.

        Returns
        -------
        tensor of shape (b', t, 2 * e2) for "concat" with both facets, else
        (b', t, e2)
        """
        parts = [p for p in (t1, t2) if p is not None]
        if len(parts) == 2 and self.cfg.fusion == "concat":
            return torch.cat(parts, dim=-1)  # (b', t, 2 * e2)
        return sum(parts)  # (b', t, e2)

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

        Raises
        ------
        ValueError
            On a wrong shape, a task ID outside [0, N - 1], or padding before
            a real row.
        """
        h = self.fuse(*self.facet_outputs(x, valid))  # (b', t, 2 * e2) or (b', t, e2)
        return self.head(h).squeeze(-1)  # (b', t)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
