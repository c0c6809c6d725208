"""The facets step by step, every variant, and a check against reference blocks.

Property tests draw many random inputs from seeded generators, so each run is
repeatable and each property is checked on more than one example.
"""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autotask_lib import AutoTask, AutoTaskConfig, MultiTaskDNN, TaskTensors
from autotask_lib.model import (Block, CrossTaskFacet, TaskAwareFeatureFacet,
                                task_id_inputs)
from autotask_lib.train import (TrainConfig, parameter_groups, predict_autotask,
                                train_two_stage)

CFG = AutoTaskConfig()


def rows(gen, *shape, cfg=CFG):
    """Random standardised rows with a random task ID in the last column."""
    x = torch.randn(*shape, cfg.d, generator=gen)
    x[..., -1] = torch.randint(0, cfg.num_tasks, shape, generator=gen).float()
    return x


# Every combination of the ablation fields, plus the readings of the paper's
# ambiguities (which exist only in "encoding" mode).
GRID = [
    dict(task_id_mode=m, attention=a, fusion=f, facets=s, embeddings=e)
    for m, a, f, s, e in itertools.product(
        ("encoding", "number", "none"), ("causal", "full"), ("concat", "sum"),
        ("both", "facet1", "facet2"), (True, False))
] + [
    dict(facet2_task_id=v, unseen_encoding=u)
    for v, u in itertools.product(("number", "encoding", "none"),
                                  ("slot", "zeros", "mean"))
]


def _name(kw):
    return "-".join(f"{v}" for v in kw.values())


# ---------------------------------------------------------------------------
# Shapes of every variant
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", GRID, ids=_name)
def test_every_variant_has_the_paper_shapes(kwargs):
    cfg = AutoTaskConfig(**kwargs)
    model = AutoTask(cfg).eval()
    gen = torch.Generator().manual_seed(1)
    b, t = 3, 7
    x = rows(gen, b, t, cfg=cfg)
    t1, t2 = model.facet_outputs(x)
    if cfg.facets != "facet2":
        assert t1.shape == (b, t, cfg.d * cfg.e1)
    else:
        assert t1 is None
    if cfg.facets != "facet1":
        assert t2.shape == (b, t, cfg.e2)
    else:
        assert t2 is None
    both = cfg.facets == "both" and cfg.fusion == "concat"
    assert model.fuse(t1, t2).shape == (b, t, 2 * cfg.e2 if both else cfg.e2)
    assert model(x).shape == (b, t)


@pytest.mark.parametrize("kwargs", GRID, ids=_name)
def test_facet_steps_have_the_paper_shapes_and_compose_to_forward(kwargs):
    cfg = AutoTaskConfig(**kwargs)
    gen = torch.Generator().manual_seed(2)
    B, d, N = 6, cfg.d, cfg.num_tasks
    x = rows(gen, B, cfg=cfg)
    values, task_id = x.clone(), x[:, -1].long()

    f1 = TaskAwareFeatureFacet(cfg).eval()
    tokens = f1.tokens(values, task_id)
    width = N + 1 if cfg.task_id_mode == "encoding" else 1
    assert tokens.shape == (B, d, width)
    h = f1.embed(tokens)
    assert h.shape == (B, d, cfg.e1)
    by_steps = f1.block(h).reshape(B, d * cfg.e1)
    torch.testing.assert_close(by_steps, f1(values, task_id))
    assert f1.attention_map(values, task_id).shape == (B, cfg.n_head1, d, d)

    f2 = CrossTaskFacet(cfg).eval()
    blocks, ids = values.view(2, 3, d), task_id.view(2, 3)
    tokens2 = f2.tokens(blocks, ids)
    appends = cfg.task_id_mode == "encoding" and cfg.facet2_task_id == "encoding"
    assert tokens2.shape == (2, 3, d + N if appends else d)
    assert f2.embed(tokens2).shape == (2, 3, cfg.e2)
    assert f2(blocks, None, ids).shape == (2, 3, cfg.e2)
    assert f2.attention_map(blocks, None, ids).shape == (2, cfg.n_head2, 3, 3)


def test_without_embeddings_nothing_before_the_blocks_is_trained():
    learned = AutoTask(AutoTaskConfig())
    fixed = AutoTask(AutoTaskConfig(embeddings=False))
    for facet in (fixed.facet1, fixed.facet2):
        assert facet.pos_emb is None
        assert not list(facet.tok_emb.parameters())
        assert "tok_emb.weight" in dict(facet.named_buffers())
    for facet in (learned.facet1, learned.facet2):
        assert facet.pos_emb.requires_grad and facet.tok_emb.weight.requires_grad
    # The fixed projection is saved with the model and restored with it.
    again = AutoTask(AutoTaskConfig(embeddings=False))
    again.load_state_dict(fixed.state_dict())
    x = rows(torch.Generator().manual_seed(3), 2, 4)
    torch.testing.assert_close(again.eval()(x), fixed.eval()(x))


def test_position_embedding_is_what_separates_equal_tokens():
    # Two equal rows in one block: with position embeddings and full attention
    # their outputs differ; without them, nothing tells the rows apart.
    x = rows(torch.Generator().manual_seed(4), 1, 1).expand(1, 2, CFG.d)
    for embeddings, differ in ((True, True), (False, False)):
        facet = CrossTaskFacet(AutoTaskConfig(attention="full",
                                              embeddings=embeddings)).eval()
        out = facet(x.clone())
        assert (not torch.allclose(out[0, 0], out[0, 1], atol=1e-6)) == differ


# ---------------------------------------------------------------------------
# Causality, as a property over random inputs
# ---------------------------------------------------------------------------

CAUSAL_VARIANTS = [
    dict(),
    dict(embeddings=False),
    dict(task_id_mode="number"),
    dict(task_id_mode="none", fusion="sum"),
    dict(facet2_task_id="encoding", unseen_encoding="mean"),
]


@pytest.mark.parametrize("kwargs", CAUSAL_VARIANTS, ids=_name)
def test_facet1_token_depends_only_on_itself_and_earlier_features(kwargs):
    cfg = AutoTaskConfig(**kwargs)
    facet = TaskAwareFeatureFacet(cfg).eval()
    gen = torch.Generator().manual_seed(5)
    for _ in range(20):
        B = int(torch.randint(1, 9, (1,), generator=gen))
        k = int(torch.randint(0, cfg.d, (1,), generator=gen))
        x = rows(gen, B, cfg=cfg)
        task_id = x[:, -1].long()
        y = x.clone()
        y[:, k] += 1.0 + torch.rand(B, generator=gen)
        a = facet(x, task_id).view(B, cfg.d, cfg.e1)
        b = facet(y, task_id).view(B, cfg.d, cfg.e1)
        torch.testing.assert_close(a[:, :k], b[:, :k], rtol=0, atol=1e-6)
        assert (a[:, k] - b[:, k]).abs().amax(dim=-1).min() > 1e-5


@pytest.mark.parametrize("kwargs", CAUSAL_VARIANTS, ids=_name)
def test_row_score_depends_only_on_itself_and_earlier_rows_of_its_block(kwargs):
    cfg = AutoTaskConfig(**kwargs)
    model = AutoTask(cfg).eval()
    gen = torch.Generator().manual_seed(6)
    for _ in range(20):
        b = int(torch.randint(1, 4, (1,), generator=gen))
        t = int(torch.randint(1, cfg.block_len + 1, (1,), generator=gen))
        i = int(torch.randint(0, b, (1,), generator=gen))
        k = int(torch.randint(0, t, (1,), generator=gen))
        x = rows(gen, b, t, cfg=cfg)
        y = x.clone()
        y[i, k, :-1] = torch.randn(cfg.d - 1, generator=gen)  # a new row k
        a, c = model(x), model(y)
        torch.testing.assert_close(a[i, :k], c[i, :k], rtol=0, atol=1e-6)
        assert abs(a[i, k] - c[i, k]) > 1e-6
        others = [j for j in range(b) if j != i]
        torch.testing.assert_close(a[others], c[others], rtol=0, atol=0)


def test_full_attention_breaks_causality_in_both_facets():
    # The negative control: the causal checks above can fail.
    gen = torch.Generator().manual_seed(7)
    cfg = AutoTaskConfig(attention="full")
    facet = TaskAwareFeatureFacet(cfg).eval()
    x = rows(gen, 4)
    y = x.clone()
    y[:, 10] += 2.0
    a = facet(x, x[:, -1].long()).view(4, cfg.d, cfg.e1)
    b = facet(y, y[:, -1].long()).view(4, cfg.d, cfg.e1)
    assert not torch.allclose(a[:, :10], b[:, :10], atol=1e-5)
    model = AutoTask(AutoTaskConfig(attention="full", facets="facet2")).eval()
    x = rows(gen, 1, 8)
    y = x.clone()
    y[0, 5, :-1] += 2.0
    assert not torch.allclose(model(x)[0, :5], model(y)[0, :5], atol=1e-5)


@pytest.mark.parametrize("attention", ["causal", "full"])
def test_attention_weights_are_the_ones_the_block_uses(attention):
    cfg = AutoTaskConfig(attention=attention)
    block = Block(cfg.e1, 2, attention == "causal", 4, 0.0).eval()
    x = torch.randn(5, 9, cfg.e1, generator=torch.Generator().manual_seed(8))
    w = block.attention_weights(x)  # (5, H, 9, 9)
    torch.testing.assert_close(w.sum(-1), torch.ones(5, 2, 9))
    if attention == "causal":
        assert (w.triu(diagonal=1) == 0).all()
    else:
        assert (w > 0).all()
    # Weights times values, merged and projected, is the attention's output.
    attn = block.attn
    _, _, v = attn._heads(block.ln1(x))
    y = (w @ v).transpose(1, 2).reshape(5, 9, cfg.e1)
    torch.testing.assert_close(attn.proj(y), attn(block.ln1(x)), atol=1e-6,
                               rtol=1e-5)


# ---------------------------------------------------------------------------
# Facet 1's input: the task ID and nothing else tells scenarios apart
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("unseen_encoding", ["slot", "zeros", "mean"])
def test_only_the_task_id_differs_between_two_scenarios_equal_rows(unseen_encoding):
    cfg = AutoTaskConfig(unseen_encoding=unseen_encoding)
    facet = TaskAwareFeatureFacet(cfg)
    features = torch.randn(cfg.d - 1, generator=torch.Generator().manual_seed(9))
    seen_slots = set(range(1, cfg.num_tasks))
    for a, b in itertools.combinations(range(cfg.num_tasks), 2):
        x = torch.stack([torch.cat([features, torch.tensor([float(i)])])
                         for i in (a, b)])  # (2, d): equal features, IDs a, b
        values, task_id = task_id_inputs(x, cfg)
        tokens = facet.tokens(values, task_id)  # (2, d, N + 1)
        diff = tokens[0] != tokens[1]  # (d, N + 1)

        # Feature tokens hold equal values; the one-hot is the same on every
        # token of a row, so the rows differ in the same slots on every token.
        assert not diff[:-1, 0].any()
        assert (diff[:, 1:] == diff[0, 1:]).all()
        # The last token is the task-ID column itself: its value is the ID
        # number (paper section 3.2), the only other place the rows differ.
        assert diff[-1, 0]

        slots = set(diff[0, 1:].nonzero().flatten().tolist())
        if a > 0 or unseen_encoding == "slot":
            assert slots == {a, b}
        elif unseen_encoding == "zeros":  # ID 0 reads as no scenario at all
            assert slots == {b} and tokens[0, :, 1:].sum() == 0
        else:  # ID 0 reads as the average of the seen scenarios
            assert slots == seen_slots
            torch.testing.assert_close(tokens[0, :, 1:].sum(-1),
                                       torch.ones(cfg.d))


def test_facet2_sees_the_task_id_only_as_configured():
    gen = torch.Generator().manual_seed(10)
    x = rows(gen, 2, 5)
    y = x.clone()
    y[..., -1] = (x[..., -1] + 1) % CFG.num_tasks
    for view, moves in (("number", True), ("encoding", True), ("none", False)):
        model = AutoTask(AutoTaskConfig(facets="facet2", facet2_task_id=view))
        model.eval()
        assert (not torch.allclose(model(x), model(y))) == moves, view


def test_only_the_encoding_tells_unseen_scenarios_apart_in_facet1():
    # Rows of task ID 0 read the same one-hot whatever unseen scenario they
    # belong to; a seen ID changes the output of the feature tokens.
    facet = TaskAwareFeatureFacet(CFG).eval()
    x = rows(torch.Generator().manual_seed(11), 3)
    zero, one = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    assert torch.equal(facet(x, zero), facet(x.clone(), zero))
    assert not torch.allclose(facet(x, zero), facet(x, one))


# ---------------------------------------------------------------------------
# Flexible block length
# ---------------------------------------------------------------------------


def _split(gen, n, n_queries, cfg=CFG):
    x = rows(gen, n, cfg=cfg)
    query = torch.randint(0, n_queries, (n,), generator=gen).numpy()
    return TaskTensors(x=x, target=torch.zeros(n), scenario=np.array(["s"] * n),
                       query_id=query.astype(np.int64))


@pytest.mark.parametrize("attention", ["causal", "full"])
@pytest.mark.parametrize("n", [1, 2, 5, 15, 16, 17, 33, 47, 100])
def test_every_row_of_a_split_of_any_length_gets_exactly_its_own_score(n, attention):
    model = AutoTask(AutoTaskConfig(attention=attention)).eval()
    gen = torch.Generator().manual_seed(n)
    for n_queries in (1, 3, n):
        split = _split(gen, n, n_queries)
        prob = predict_autotask(model, split, batch_blocks=2)
        assert prob.shape == (n,) and np.isfinite(prob).all()
        # Each query's candidates, cut into blocks of at most t rows, scored on
        # their own: the last, shorter block is scored as it is.
        expected = np.full(n, np.nan)
        for q in np.unique(split.query_id):
            idx = np.flatnonzero(split.query_id == q)
            for lo in range(0, len(idx), CFG.block_len):
                part = idx[lo: lo + CFG.block_len]
                with torch.no_grad():
                    logit = model(split.x[part][None])[0]
                expected[part] = torch.sigmoid(logit).numpy()
        np.testing.assert_allclose(prob, expected, rtol=1e-5, atol=1e-6)


def test_a_single_request_is_scored_alone_with_t_equal_to_one():
    model = AutoTask(CFG).eval()
    split = _split(torch.Generator().manual_seed(12), 23, 2)
    prob = predict_autotask(model, split, block_len=1)
    with torch.no_grad():
        alone = torch.sigmoid(model(split.x[:, None, :]))[:, 0].numpy()
    np.testing.assert_allclose(prob, alone, rtol=1e-5, atol=1e-6)
    for i in (0, 7, 22):
        with torch.no_grad():
            one = torch.sigmoid(model(split.x[i][None, None]))[0, 0].item()
        assert prob[i] == pytest.approx(one, rel=1e-5)


def test_padding_before_a_real_row_is_refused():
    model = AutoTask(CFG)
    x = rows(torch.Generator().manual_seed(13), 1, 4)
    with pytest.raises(ValueError, match="padding only after a block's real rows"):
        model(x, torch.tensor([[True, False, True, True]]))
    with pytest.raises(ValueError, match="valid must be a bool tensor of shape"):
        model(x, torch.ones(1, 3, dtype=torch.bool))


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    ({"facet2_task_id": "raw"}, ValueError, "facet2_task_id must be one of"),
    ({"unseen_encoding": "noise"}, ValueError, "unseen_encoding must be one of"),
    ({"task_id_mode": "number", "facet2_task_id": "encoding"}, ValueError,
     "facet2_task_id applies only when task_id_mode='encoding'"),
    ({"task_id_mode": "none", "unseen_encoding": "zeros"}, ValueError,
     "unseen_encoding applies only when task_id_mode='encoding'"),
    ({"embeddings": "no"}, TypeError, "embeddings must be a bool; got str"),
    ({"num_tasks": 1, "unseen_encoding": "mean"}, ValueError,
     "needs at least one seen slot"),
])
def test_bad_variant_fields_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        AutoTaskConfig(**kwargs)


def test_bad_model_arguments_are_refused():
    with pytest.raises(TypeError, match="cfg must be an AutoTaskConfig; got dict"):
        AutoTask({"d": 24})
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(b', t, d\)"):
        AutoTask(CFG)(torch.zeros(4, CFG.d))


def test_facet2_encoding_needs_the_task_ids():
    facet = CrossTaskFacet(AutoTaskConfig(facet2_task_id="encoding"))
    with pytest.raises(ValueError, match="task_id is required"):
        facet(rows(torch.Generator().manual_seed(14), 1, 3))


# ---------------------------------------------------------------------------
# A learning rate per facet (paper section 4.3.2)
# ---------------------------------------------------------------------------


def test_default_training_keeps_one_parameter_group():
    model = AutoTask()
    groups = parameter_groups(model, TrainConfig())
    assert len(groups) == 1 and groups[0]["lr"] == 6e-4
    assert len(groups[0]["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("facets", ["both", "facet1", "facet2"])
def test_per_facet_rates_cover_every_parameter_once(facets):
    model = AutoTask(AutoTaskConfig(facets=facets))
    cfg = TrainConfig(lr=1e-3, lr_facet1=2e-3, lr_facet2=None)
    groups = parameter_groups(model, cfg)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["head"] == 1e-3
    if facets != "facet2":
        assert rates["facet1"] == 2e-3
    if facets != "facet1":
        assert rates["facet2"] == 1e-3
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_per_facet_rates_are_what_training_uses(tiny_data):
    from autotask_lib import prepare

    p = prepare(tiny_data)
    torch.manual_seed(0)
    model = AutoTask()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(batch_size=256, epochs_teacher=1, epochs_llm=0,
                      lr_facet1=1e-12)
    train_two_stage(model, p["teacher_train"], p["llm_train"], cfg, seed=0,
                    progress=False)
    moved = {k: (v - before[k]).abs().max().item()
             for k, v in model.state_dict().items()}
    assert max(v for k, v in moved.items() if k.startswith("facet1.")) < 1e-9
    assert max(v for k, v in moved.items() if k.startswith("facet2.")) > 1e-5
    assert max(v for k, v in moved.items() if k.startswith("head.")) > 1e-5


def test_per_facet_rates_are_refused_for_the_baseline_and_when_not_positive():
    with pytest.raises(ValueError, match="apply to AutoTask only"):
        parameter_groups(MultiTaskDNN(), TrainConfig(lr_facet2=1e-3))
    with pytest.raises(ValueError, match="lr_facet1 must be None or positive"):
        TrainConfig(lr_facet1=0.0)


# ---------------------------------------------------------------------------
# Our GPT-2 block against independent reference implementations
# ---------------------------------------------------------------------------


def _block_and_input(dim, n_head, causal, seed):
    torch.manual_seed(seed)
    block = Block(dim, n_head, causal, 4, 0.0).eval()
    with torch.no_grad():  # non-trivial layer norms, not the identity
        for ln in (block.ln1, block.ln2):
            ln.weight.normal_(1.0, 0.2)
            ln.bias.normal_(0.0, 0.2)
    x = torch.randn(3, 11, dim)
    return block, x


@pytest.mark.parametrize("dim, n_head", [(8, 2), (192, 4)])
def test_block_equals_hugging_face_gpt2_block(dim, n_head, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing is downloaded
    transformers = pytest.importorskip("transformers")
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    block, x = _block_and_input(dim, n_head, True, seed=dim)
    config = transformers.GPT2Config(
        n_embd=dim, n_head=n_head, n_inner=4 * dim, n_positions=64,
        activation_function="gelu_new", resid_pdrop=0.0, attn_pdrop=0.0,
        embd_pdrop=0.0, layer_norm_epsilon=block.ln1.eps,
    )
    config._attn_implementation = "eager"
    ref = GPT2Block(config).eval()
    # Hugging Face's Conv1D stores weights as (in, out): transposed Linear.
    with torch.no_grad():
        ref.ln_1.load_state_dict(block.ln1.state_dict())
        ref.ln_2.load_state_dict(block.ln2.state_dict())
        for conv, lin in ((ref.attn.c_attn, block.attn.qkv),
                          (ref.attn.c_proj, block.attn.proj),
                          (ref.mlp.c_fc, block.mlp[0]),
                          (ref.mlp.c_proj, block.mlp[2])):
            conv.weight.copy_(lin.weight.T)
            conv.bias.copy_(lin.bias)
    L = x.shape[1]
    future = torch.ones(L, L, dtype=torch.bool).triu(diagonal=1)
    mask = torch.zeros(L, L).masked_fill(future, torch.finfo(x.dtype).min)
    with torch.no_grad():
        out = ref(x, attention_mask=mask[None, None])
        ours = block(x)
    out = out[0] if isinstance(out, tuple) else out
    torch.testing.assert_close(ours, out, rtol=1e-5, atol=1e-5)


class _ReferenceBlock(nn.Module):
    """A pre-norm GPT-2 block assembled from torch.nn.MultiheadAttention."""

    def __init__(self, block: Block, n_head: int):
        super().__init__()
        dim = block.ln1.normalized_shape[0]
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, n_head, batch_first=True)
        self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        with torch.no_grad():
            self.ln1.load_state_dict(block.ln1.state_dict())
            self.ln2.load_state_dict(block.ln2.state_dict())
            self.attn.in_proj_weight.copy_(block.attn.qkv.weight)
            self.attn.in_proj_bias.copy_(block.attn.qkv.bias)
            self.attn.out_proj.load_state_dict(block.attn.proj.state_dict())
            self.fc.load_state_dict(block.mlp[0].state_dict())
            self.out.load_state_dict(block.mlp[2].state_dict())

    def forward(self, x, causal, key_padding=None):
        L = x.shape[1]
        future = torch.ones(L, L, dtype=torch.bool).triu(diagonal=1)
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, attn_mask=future if causal else None,
                         key_padding_mask=key_padding, need_weights=False)
        x = x + a
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dim, n_head", [(8, 2), (192, 4)])
def test_block_equals_a_multihead_attention_reference(dim, n_head, causal):
    block, x = _block_and_input(dim, n_head, causal, seed=dim + causal)
    ref = _ReferenceBlock(block, n_head).eval()
    with torch.no_grad():
        torch.testing.assert_close(block(x), ref(x, causal), rtol=1e-5, atol=1e-5)
        if not causal:  # full attention ignores padded keys
            valid = torch.arange(11)[None] < torch.tensor([[11], [6], [1]])
            torch.testing.assert_close(
                block(x, valid)[valid], ref(x, False, ~valid)[valid],
                rtol=1e-5, atol=1e-5)
