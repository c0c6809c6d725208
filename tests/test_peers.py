"""The peer baselines MMoE and PLE: shapes, routing, gates, training, errors."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from autotask_lib import BaselineConfig, TrainConfig, get_profile, prepare
from autotask_lib.experiments import Variant, fit_and_score, run_key, run_metrics
from autotask_lib.peers import MMoE, PLE, MMoEConfig, PLEConfig, predict_peer
from autotask_lib.train import soft_bce_with_logits, train_two_stage

MODELS = {
    "mmoe": lambda: MMoE(),
    "cgc": lambda: PLE(PLEConfig(num_levels=1)),
    "ple": lambda: PLE(),
}


def rows(task_ids, seed=0):
    """Random standardised rows with the given task IDs in the last column."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(task_ids), 24, generator=gen)
    x[:, -1] = torch.tensor(task_ids, dtype=torch.float32)
    return x


def perturb_route(model, route, *, towers=True, gates=True):
    """Add noise to a route's tower and gates, weights that belong to it only."""
    gen = torch.Generator().manual_seed(route)

    def noise(w):
        # Random, not constant: a constant added to a gate leaves its softmax.
        w += torch.randn(w.shape, generator=gen)

    with torch.no_grad():
        if towers:
            for w in (*model.towers.weights, *model.towers.biases):
                noise(w[route])
        if not gates:
            return
        if isinstance(model, MMoE):
            noise(model.gates[route])
        elif route > 0:
            for level in model.levels:
                noise(level.task_gates[route - 1])
        else:
            noise(model.levels[-1].shared_gate)


# ---------------------------------------------------------------------------
# Shapes and gates
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shapes(name):
    model = MODELS[name]().eval()
    x = rows([0, 1, 5, 9, 3, 0, 2])
    assert model(x).shape == (7,)
    assert model.route_logits(x).shape == (7, 10)
    assert model.row_loss(x, torch.rand(7)).shape == ()


def test_mmoe_gates_are_distributions_over_the_experts():
    model = MMoE(MMoEConfig(num_experts=5))
    g = model.gate_weights(rows([0, 1, 2, 9]))
    assert g.shape == (4, 10, 5)
    assert (g >= 0).all()
    torch.testing.assert_close(g.sum(-1), torch.ones(4, 10))


@pytest.mark.parametrize("levels", [1, 2])
def test_ple_gates_are_distributions_over_their_experts(levels):
    cfg = PLEConfig(num_levels=levels, shared_experts=3, task_experts=2)
    gates = PLE(cfg).gate_weights(rows([0, 4, 7]))
    assert len(gates) == levels
    for task, shared in gates:
        # A scenario's gate: its own 2 experts and the 3 shared ones.
        assert task.shape == (3, 9, 2 + 3)
        # The shared gate: every scenario's experts and the shared ones.
        assert shared.shape == (3, 9 * 2 + 3)
        for g in (task, shared):
            assert (g >= 0).all()
            torch.testing.assert_close(g.sum(-1), torch.ones(g.shape[:-1]))


@pytest.mark.parametrize("cfg, expected", [
    (MMoEConfig(), 111_598), (PLEConfig(), 108_212),
    (PLEConfig(num_levels=1), 60_020),
])
def test_default_sizes_are_comparable_to_the_baseline(cfg, expected):
    from autotask_lib import MultiTaskDNN, count_parameters

    model = MMoE(cfg) if isinstance(cfg, MMoEConfig) else PLE(cfg)
    assert count_parameters(model) == expected
    baseline = count_parameters(MultiTaskDNN(BaselineConfig()))
    if cfg == PLEConfig() or cfg == MMoEConfig():
        assert 0.8 * baseline < expected < 1.2 * baseline


# ---------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("part", ["towers", "gates"])
def test_a_row_depends_only_on_its_own_route(name, part):
    model = MODELS[name]().eval()
    x = rows([3, 3, 5, 0, 0, 5])
    before = model(x).detach()
    perturb_route(model, 5, towers=part == "towers", gates=part == "gates")
    after = model(x).detach()
    own3, own0, own5 = [0, 1], [3, 4], [2, 5]
    torch.testing.assert_close(after[own3], before[own3], rtol=0, atol=0)
    assert (after[own5] - before[own5]).abs().min() > 1e-6
    if name == "ple" and part == "gates":
        # In two-layer PLE the general route mixes every expert of the top
        # layer, and scenario 5's top experts read what its lower gate
        # mixed: by design, ID 0 depends on scenario 5's lower gate.
        assert (after[own0] - before[own0]).abs().max() > 0
    else:
        torch.testing.assert_close(after[own0], before[own0], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_task_id_zero_takes_the_general_route(name):
    model = MODELS[name]().eval()
    x = rows([0, 0, 4, 8])
    torch.testing.assert_close(model(x)[:2], model.route_logits(x)[:2, 0])
    before = model(x).detach()
    perturb_route(model, 0)
    after = model(x).detach()
    assert (after[:2] - before[:2]).abs().min() > 1e-4
    torch.testing.assert_close(after[2:], before[2:], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rows_of_task_id_zero_train_the_general_route_only(name):
    model = MODELS[name]()
    model.row_loss(rows([0, 0, 0, 0]), torch.rand(4)).backward()
    tower = model.towers.weights[0].grad  # (N, i, o)
    assert tower[0].abs().sum() > 0
    assert tower[1:].abs().sum() == 0


def test_row_loss_adds_the_general_and_the_own_route():
    model = MMoE()
    x, y = rows([0, 2, 2, 7]), torch.tensor([0.2, 0.9, 0.0, 1.0])
    logits = model.route_logits(x)
    expected = (soft_bce_with_logits(logits[:, 0], y)
                + soft_bce_with_logits(logits[[1, 2, 3], [2, 2, 7]], y[1:]))
    torch.testing.assert_close(model.row_loss(x, y), expected)


# ---------------------------------------------------------------------------
# Training and scoring
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mmoe", "ple"])
def test_two_stage_training_lowers_the_loss_and_learns(tiny_data, name):
    p = prepare(tiny_data)
    torch.manual_seed(0)
    model = MODELS[name]()
    history = train_two_stage(
        model, p["teacher_train"], p["llm_train"],
        TrainConfig(batch_size=64, epochs_teacher=3, epochs_llm=1), seed=0,
        progress=False,
    )
    teacher = history[history["stage"] == "teacher"]["loss"].to_numpy()
    assert teacher[-1] < teacher[0]
    test = p["test"]
    own = predict_peer(model, test)
    general = predict_peer(model, test, route="general")
    assert own.shape == general.shape == (len(test),)
    assert np.isfinite(own).all() and ((own > 0) & (own < 1)).all()
    unseen = test.task_id.numpy() == 0
    np.testing.assert_array_equal(own[unseen], general[unseen])
    assert not np.array_equal(own[~unseen], general[~unseen])
    assert roc_auc_score(test.target.numpy(), own) > 0.7


@pytest.mark.parametrize("kind, cfg", [("mmoe", MMoEConfig()),
                                       ("ple", PLEConfig(num_levels=1))])
def test_the_runner_trains_scores_and_caches_peers(tiny_data, kind, cfg):
    prof = dataclasses.replace(
        get_profile("smoke"), train=TrainConfig(batch_size=64, epochs_teacher=1,
                                                epochs_llm=1))
    p = prepare(tiny_data)
    run = fit_and_score(kind, cfg, prof, 0, prepared=p, progress=False)
    assert {kind, f"{kind}_general"} <= set(run.scores.columns)
    np.testing.assert_allclose(run.scores[kind], predict_peer(run.model, p["test"]),
                               rtol=1e-6)
    again = fit_and_score(kind, cfg, prof, 0, prepared=p, progress=False)
    assert again.key == run.key
    np.testing.assert_array_equal(predict_peer(again.model, p["test"]),
                                  run.scores[kind].to_numpy())
    table = run_metrics(run, kind)
    assert set(table["scenario"]) == set(p["test"].scenario)
    assert Variant(kind, cfg, f"{kind}_general").output == f"{kind}_general"


def test_task_id_dropout_and_peer_configs_change_the_run_key():
    base = TrainConfig(batch_size=64)
    key = run_key("mmoe", MMoEConfig(), base, 0, "data")
    assert run_key("mmoe", MMoEConfig(), dataclasses.replace(
        base, task_id_dropout=0.1), 0, "data") != key
    assert run_key("mmoe", MMoEConfig(num_experts=4), base, 0, "data") != key
    assert run_key("ple", PLEConfig(), base, 0, "data") != run_key(
        "ple", PLEConfig(num_levels=1), base, 0, "data")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda: MMoEConfig(num_experts=0),
     "num_experts must be an integer of at least 1; got 0"),
    (lambda: MMoEConfig(expert=()), r"expert must be a non-empty tuple .* got \(\)"),
    (lambda: MMoEConfig(tower=(32, 0)), r"tower must be .* got \(32, 0\)"),
    (lambda: MMoEConfig(dropout=1.0), r"dropout must be in \[0, 1\); got 1.0"),
    (lambda: MMoEConfig(num_tasks=1), "num_tasks must be an integer of at least 2"),
    (lambda: PLEConfig(num_levels=3), "num_levels must be 1 or 2 .* got 3"),
    (lambda: PLEConfig(num_levels=0), "num_levels must be an integer of at least 1"),
    (lambda: PLEConfig(shared_experts=0), "shared_experts must be an integer"),
    (lambda: PLEConfig(task_experts=1.5), "task_experts must be an integer .* 1.5"),
    (lambda: PLEConfig(expert=[64]), r"expert must be a non-empty tuple .* \[64\]"),
])
def test_bad_configs_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_config_of_the_other_kind_is_refused(tiny_data):
    with pytest.raises(TypeError, match="cfg must be an MMoEConfig; got PLEConfig"):
        MMoE(PLEConfig())
    with pytest.raises(TypeError, match="cfg must be a PLEConfig; got MMoEConfig"):
        PLE(MMoEConfig())
    with pytest.raises(TypeError, match="model_cfg for kind 'ple' must be a PLEConfig"):
        fit_and_score("ple", BaselineConfig(), get_profile("smoke"), 0,
                      data=tiny_data)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("task_id, shown", [(10.0, "10.0"), (-1.0, "-1.0"),
                                            (2.5, "2.5")])
def test_bad_task_ids_are_refused(name, task_id, shown):
    model = MODELS[name]()
    x = rows([1, 2, 3])
    x[1, -1] = task_id
    for call in (model, model.route_logits, model.gate_weights,
                 lambda x: model.row_loss(x, torch.rand(3))):
        with pytest.raises(ValueError, match=rf"task IDs .* integers in \[0, 9\]; "
                           rf"got {shown} in row 1"):
            call(x)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bad_shapes_are_refused(name):
    model = MODELS[name]()
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(B, d\); "
                       r"got \(2, 3, 24\)"):
        model(torch.zeros(2, 3, 24))
    with pytest.raises(ValueError, match="x must have d=24 columns; got 20"):
        model(torch.zeros(2, 20))


def test_predict_peer_refuses_a_bad_route_or_model(tiny_data):
    split = prepare(tiny_data)["test"]
    with pytest.raises(ValueError, match=r"route must be one of \['own', "
                       r"'general'\]; got 'specific'"):
        predict_peer(MMoE(), split, route="specific")
    with pytest.raises(TypeError, match="model must be an MMoE or a PLE; got "
                       "MultiTaskDNN"):
        from autotask_lib import MultiTaskDNN

        predict_peer(MultiTaskDNN(), split)
    with pytest.raises(ValueError, match="batch_rows must be an integer of at "
                       "least 1; got 0"):
        predict_peer(PLE(), split, batch_rows=0)
