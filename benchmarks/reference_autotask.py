"""A plain eager implementation of AutoTask, kept as the speed reference.

It computes what ``autotask_lib.model.AutoTask`` computes with the default
configuration, written the obvious way: the one-hot task ID is materialised and
concatenated to every feature token, attention is an explicit masked softmax,
and queries, keys and values have separate projections. ``load_from`` copies
the weights of an ``AutoTask`` so both give the same outputs, which the
benchmark checks before it times anything.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _Attention(nn.Module):
    def __init__(self, dim: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        M, L, E = x.shape
        H = self.n_head
        q = self.q(x).view(M, L, H, E // H).transpose(1, 2)
        k = self.k(x).view(M, L, H, E // H).transpose(1, 2)
        v = self.v(x).view(M, L, H, E // H).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(E // H)  # (M, H, L, L)
        causal = torch.ones(L, L, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        y = F.softmax(scores, dim=-1) @ v  # (M, H, L, E/H)
        return self.proj(y.transpose(1, 2).reshape(M, L, E))


class _Block(nn.Module):
    def __init__(self, dim: int, n_head: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, n_head)
        self.ln2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class ReferenceAutoTask(nn.Module):
    """AutoTask with the default configuration, written plainly."""

    def __init__(self, d=24, num_tasks=10, block_len=16, e1=8, e2=192,
                 n_head1=2, n_head2=4, hidden=192, task_id_scale=9.0):
        super().__init__()
        self.d, self.N, self.e1, self.scale = d, num_tasks, e1, task_id_scale
        self.tok1 = nn.Linear(1 + num_tasks, e1)
        self.pos1 = nn.Parameter(torch.zeros(d, e1))
        self.block1 = _Block(e1, n_head1)
        self.tok2 = nn.Linear(d, e2)
        self.pos2 = nn.Parameter(torch.zeros(block_len, e2))
        self.block2 = _Block(e2, n_head2)
        self.fc = nn.Linear(2 * e2, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        b, t, d = x.shape
        task_id = x[..., -1].round().long().reshape(b * t)
        values = torch.cat([x[..., :-1], x[..., -1:] / self.scale], dim=-1)

        # Facet 1: one token per feature, the one-hot task ID on every token.
        rows = values.reshape(b * t, d, 1)
        one_hot = F.one_hot(task_id, self.N).float()
        one_hot = one_hot[:, None, :].repeat(1, d, 1)
        h1 = self.block1(self.tok1(torch.cat([rows, one_hot], -1)) + self.pos1)
        t1 = h1.reshape(b, t, d * self.e1)

        # Facet 2: one token per row of a block.
        t2 = self.block2(self.tok2(values) + self.pos2[:t])

        h = torch.cat([t1, t2], dim=-1)
        return self.out(F.gelu(self.fc(h), approximate="tanh")).squeeze(-1)

    @torch.no_grad()
    def load_from(self, model) -> ReferenceAutoTask:
        """Copy the weights of an ``autotask_lib.AutoTask`` (default config)."""
        pairs = [
            (self.tok1, model.facet1.tok_emb), (self.tok2, model.facet2.tok_emb),
            (self.fc, model.head[0]), (self.out, model.head[2]),
        ]
        for ours, theirs in ((self.block1, model.facet1.block),
                             (self.block2, model.facet2.block)):
            pairs += [(ours.ln1, theirs.ln1), (ours.ln2, theirs.ln2),
                      (ours.attn.proj, theirs.attn.proj),
                      (ours.fc, theirs.mlp[0]), (ours.out, theirs.mlp[2])]
            E = ours.ln1.weight.numel()
            for i, lin in enumerate((ours.attn.q, ours.attn.k, ours.attn.v)):
                lin.weight.copy_(theirs.attn.qkv.weight[i * E:(i + 1) * E])
                lin.bias.copy_(theirs.attn.qkv.bias[i * E:(i + 1) * E])
        for ours, theirs in pairs:
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
        self.pos1.copy_(model.facet1.pos_emb)
        self.pos2.copy_(model.facet2.pos_emb)
        return self
