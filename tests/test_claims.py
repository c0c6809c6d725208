"""Verdict rules of the paper's claims, fed hand-made results."""

import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from autotask_lib import AutoTaskConfig, TrainConfig, get_profile
from autotask_lib.claims import (
    ALL,
    CLAIM_TESTS,
    CLAIMS,
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    SEEN,
    UNSEEN,
    ClaimTest,
    Evidence,
    ablation_variants,
    claim_tests_markdown,
    claim_verdicts,
    combine_verdicts,
    contrast_summary,
    count_verdict,
    describe_result,
    evaluate_tests,
    exploratory_variants,
    format_interval,
    interval_verdict,
    loss_summary,
    paper_evidence,
    paper_gains,
    per_facet_train,
    scenario_differences,
    table3_variants,
    verdict_phrase,
    weighted_difference,
)
from autotask_lib.plots import plot_forest, plot_gains_vs_paper
from autotask_lib.tables import paired_summary

SEEDS = (0, 1, 2)


# ---------------------------------------------------------------------------
# Rule 1: one interval
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lo, hi, better, expected", [
    (0.01, 0.03, "higher", HELD),  # a clear win
    (-0.03, -0.01, "higher", NOT_HELD),  # a clear loss
    (-0.01, 0.02, "higher", INCONCLUSIVE),  # overlapping zero
    (0.0, 0.02, "higher", INCONCLUSIVE),  # touching zero is not clear
    (float("nan"), float("nan"), "higher", INCONCLUSIVE),  # no interval
    (-0.03, -0.01, "lower", HELD),  # lower is the claimed side
    (0.01, 0.03, "lower", NOT_HELD),
    (-0.01, 0.02, "lower", INCONCLUSIVE),
])
def test_interval_verdict(lo, hi, better, expected):
    assert interval_verdict(lo, hi, better=better) == expected


def test_interval_verdict_refuses_bad_input():
    with pytest.raises(ValueError, match=r"better must be one of .* got 'up'"):
        interval_verdict(0.1, 0.2, better="up")
    with pytest.raises(ValueError, match=r"lo must not exceed hi; got lo=0.2"):
        interval_verdict(0.2, 0.1)


# ---------------------------------------------------------------------------
# Rules 2 and 3: counts and combinations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("verdicts, need, expected", [
    ([HELD] * 3, 3, HELD),
    ([HELD, HELD, INCONCLUSIVE], 3, INCONCLUSIVE),
    ([HELD, HELD, NOT_HELD], 3, NOT_HELD),  # one clear loss breaks "all"
    ([HELD] * 5 + [NOT_HELD] * 4, 5, HELD),  # "most" of 9 tolerates losses
    ([HELD] * 4 + [NOT_HELD] * 4 + [INCONCLUSIVE], 5, INCONCLUSIVE),
    ([HELD] * 4 + [NOT_HELD] * 5, 5, NOT_HELD),  # at most 4 wins possible
    ([INCONCLUSIVE] * 9, 5, INCONCLUSIVE),
])
def test_count_verdict(verdicts, need, expected):
    assert count_verdict(verdicts, need) == expected


def test_count_verdict_refuses_bad_input():
    with pytest.raises(ValueError, match=r"need must be an integer from 1 to "
                       r"the number of scenarios \(2\); got 3"):
        count_verdict([HELD, HELD], 3)
    with pytest.raises(ValueError, match=r"need must be .* got 0"):
        count_verdict([HELD], 0)
    with pytest.raises(ValueError, match=r"verdicts must hold only .* got 'yes'"):
        count_verdict([HELD, "yes"], 1)


@pytest.mark.parametrize("verdicts, expected", [
    ([HELD, HELD], HELD),
    ([HELD, INCONCLUSIVE], INCONCLUSIVE),
    ([HELD, NOT_HELD], NOT_HELD),
    ([INCONCLUSIVE, NOT_HELD], NOT_HELD),
])
def test_combine_verdicts(verdicts, expected):
    assert combine_verdicts(verdicts) == expected


def test_combine_verdicts_refuses_nothing():
    with pytest.raises(ValueError, match="at least one verdict; got none"):
        combine_verdicts([])


# ---------------------------------------------------------------------------
# Hand-made results
# ---------------------------------------------------------------------------


def tidy(values: dict, seeds=SEEDS, metric="roc_auc", n_boot=0, row_sd=0.0):
    """Results (and replicates) from {(variant, scenario): per-seed values}."""
    rng = np.random.default_rng(0)
    rows, reps = [], []
    for (variant, scenario), per_seed in values.items():
        for seed, v in zip(seeds, per_seed):
            rows.append({"variant": variant, "seed": seed, "scenario": scenario,
                         "metric": metric, "value": v})
            for r in range(n_boot):
                reps.append({"variant": variant, "seed": seed,
                             "scenario": scenario, "metric": metric,
                             "replicate": r,
                             "value": v + row_sd * rng.standard_normal()})
    return pd.DataFrame(rows), pd.DataFrame(reps)


def three_scenarios():
    # A clear win on Hotel, a clear loss on Store, overlapping zero on Tours.
    return {
        ("a", "Hotel"): [0.80, 0.81, 0.80], ("b", "Hotel"): [0.70, 0.70, 0.71],
        ("a", "Store"): [0.60, 0.61, 0.60], ("b", "Store"): [0.70, 0.70, 0.71],
        ("a", "Tours"): [0.72, 0.68, 0.75], ("b", "Tours"): [0.70, 0.71, 0.69],
    }


def count_test(need, scenarios=("Hotel", "Store", "Tours")):
    return ClaimTest("C1", "test", "x", "a", "b", "roc_auc", "count",
                     scenarios, need=need)


def test_scenario_differences_judge_each_scenario():
    results, _ = tidy(three_scenarios())
    table = scenario_differences(count_test(1), Evidence(results))
    assert table["scenario"].tolist() == ["Hotel", "Store", "Tours"]
    assert table["verdict"].tolist() == [HELD, NOT_HELD, INCONCLUSIVE]
    # The interval is the t-interval over seeds of the paired differences.
    d = np.array([0.80, 0.81, 0.80]) - np.array([0.70, 0.70, 0.71])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert table.loc[0, "mean"] == pytest.approx(d.mean())
    assert table.loc[0, "hi"] - table.loc[0, "mean"] == pytest.approx(half)


@pytest.mark.parametrize("need, expected", [(1, HELD), (2, INCONCLUSIVE),
                                            (3, NOT_HELD)])
def test_count_test_verdicts(need, expected):
    results, _ = tidy(three_scenarios())
    out = evaluate_tests({"x": Evidence(results)}, [count_test(need)])
    assert out.loc[0, ["clear_wins", "clear_losses", "n"]].tolist() == [1, 1, 3]
    assert out.loc[0, "verdict"] == expected


def test_bootstrap_widens_the_interval():
    # Three identical seeds: no interval over seeds, so only the test rows
    # (the replicates) can give one.
    values = {("a", "Hotel"): [0.72] * 3, ("b", "Hotel"): [0.70] * 3}
    test = count_test(1, ("Hotel",))
    results, reps = tidy(values, n_boot=200, row_sd=0.002)
    tight = scenario_differences(test, Evidence(results, reps))
    assert tight.loc[0, "verdict"] == HELD
    assert tight.loc[0, "covers"] == "seeds and test rows"
    results, reps = tidy(values, n_boot=200, row_sd=0.05)
    wide = scenario_differences(test, Evidence(results, reps))
    assert wide.loc[0, "verdict"] == INCONCLUSIVE


def test_contrast_is_the_weighted_sum_of_differences():
    values = {("a", "Hotel"): [0.9, 0.8, 0.85], ("b", "Hotel"): [0.7] * 3,
              ("a", "Store"): [0.6, 0.6, 0.6], ("b", "Store"): [0.5] * 3}
    results, reps = tidy(values, n_boot=100, row_sd=0.01)
    test = ClaimTest("C2", "gap", "x", "a", "b", "roc_auc", "contrast",
                     ("Hotel", "Store"), weights=(1.0, -1.0))
    s = contrast_summary(test, Evidence(results, reps)).iloc[0]
    per_seed = np.array([0.2, 0.1, 0.15]) - 0.1
    assert s["mean"] == pytest.approx(per_seed.mean())
    half_seeds = stats.t.ppf(0.975, 2) * per_seed.std(ddof=1) / np.sqrt(3)
    assert s["half_seeds"] == pytest.approx(half_seeds)
    # Over test rows: the spread of the seed-averaged contrast per replicate.
    d = (reps.pivot_table(index=["seed", "replicate"],
                          columns=["variant", "scenario"], values="value"))
    c = (d["a", "Hotel"] - d["b", "Hotel"]) - (d["a", "Store"] - d["b", "Store"])
    sd = c.groupby("replicate").mean().std(ddof=1)
    assert s["half_rows"] == pytest.approx(stats.norm.ppf(0.975) * sd)
    assert s["covers"] == "seeds and test rows"


def test_loss_test_reads_the_mean_loss_of_one_stage():
    rows = []
    for seed in SEEDS:
        for variant, shift in (("paper", 0.0), ("no_embeddings", 0.05)):
            for stage, base in (("teacher", 0.6), ("llm", 0.4)):
                for epoch in (1, 2):
                    rows.append({"variant": variant, "seed": seed,
                                 "stage": stage, "epoch": epoch,
                                 "loss": base + shift + 0.01 * seed / epoch})
    ev = Evidence(pd.DataFrame(columns=["variant"]), histories=pd.DataFrame(rows))
    test = next(t for t in CLAIM_TESTS if t.metric == "loss_llm")
    s = loss_summary(test, ev).iloc[0]
    assert s["mean"] == pytest.approx(-0.05)
    assert s["covers"] == "seeds"
    # Every seed shifts both variants alike: the paired difference is exact.
    assert s["hi"] - s["lo"] == pytest.approx(0.0, abs=1e-12)
    assert evaluate_tests({"ablations": ev}, [test])["verdict"].iloc[0] == HELD


# ---------------------------------------------------------------------------
# Every claim on hand-made worlds: a clear win, a clear loss, no difference
# ---------------------------------------------------------------------------


OFFSETS = (1.0, -1.0, 0.0)  # per-seed deviations: mean 0, standard deviation 1


def world(effect: float, noise: float) -> dict:
    """Evidence of every experiment the claims read, with hand-set effects.

    Every claimed model is better than its reference by ``effect`` on the
    unseen scenarios and by half as much on the seen ones (so that the unseen
    gain is the larger, for C2), and its training loss is lower by
    ``effect``. The paired difference of seed ``k`` deviates from that by
    ``noise * OFFSETS[k]``.
    """

    def pair(model, reference, metrics=("roc_auc", "pr_auc")):
        rows = []
        for metric in metrics:
            for scenario in ALL:
                base = 0.75 + 0.01 * ALL.index(scenario)
                gain = effect * (1.0 if scenario in UNSEEN else 0.5)
                for seed, off in zip(SEEDS, OFFSETS):
                    for variant, v in ((model, base + gain + noise * off),
                                       (reference, base)):
                        rows.append({"variant": variant, "seed": seed,
                                     "scenario": scenario, "metric": metric,
                                     "value": v})
        return pd.DataFrame(rows)

    ablations = pd.concat([
        pair("paper", "full_attention"),
        pair("paper", "sum_fusion")[lambda d: d["variant"] == "sum_fusion"],
    ])
    histories = []
    for seed, off in zip(SEEDS, OFFSETS):
        for variant, shift in (("paper", -effect + noise * off),
                               ("no_embeddings", 0.0)):
            for stage in ("teacher", "llm"):
                for epoch in (1, 2):
                    histories.append({"variant": variant, "seed": seed,
                                      "stage": stage, "epoch": epoch,
                                      "loss": 0.5 + shift})
    return {
        "table1": Evidence(pair("autotask", "baseline_general")),
        "table2": Evidence(pair("autotask_isotonic", "specific_isotonic")),
        "table3": Evidence(pd.concat([
            pair("encoding", "none"),
            pair("encoding", "number")[lambda d: d["variant"] == "number"],
        ])),
        "ablations": Evidence(ablations, histories=pd.DataFrame(histories)),
    }


@pytest.mark.parametrize("effect, noise, expected", [
    (0.05, 0.002, HELD),  # a clear win everywhere
    (-0.05, 0.002, NOT_HELD),  # a clear loss everywhere
    (0.0, 0.02, INCONCLUSIVE),  # intervals that overlap zero
])
def test_every_claim_on_hand_made_results(effect, noise, expected):
    tests = evaluate_tests(world(effect, noise))
    assert len(tests) == len(CLAIM_TESTS)
    assert set(tests["verdict"]) == {expected}
    verdicts = claim_verdicts(tests)
    assert verdicts["claim"].tolist() == list(CLAIMS)
    assert set(verdicts["verdict"]) == {expected}
    parts = claim_verdicts(tests, by="part")
    assert len(parts) == len({(t.claim, t.part) for t in CLAIM_TESTS})


def test_a_single_seed_without_bootstrap_is_inconclusive():
    ev = world(0.05, 0.002)
    for e in ev.values():
        e.results = e.results[e.results["seed"] == 0]
        if e.histories is not None:
            e.histories = e.histories[e.histories["seed"] == 0]
    assert set(evaluate_tests(ev)["verdict"]) == {INCONCLUSIVE}


def test_results_are_described_in_words():
    tests = evaluate_tests(world(0.05, 0.002))
    text = [describe_result(r) for _, r in tests.iterrows()]
    assert text[0] == ("11 clear wins and 0 clear losses in 11 scenarios "
                       "(needs 11 clear wins)")
    assert "points [" in text[2]  # C2, a contrast in AUC points
    assert tests.loc[2, "mean"] == pytest.approx(0.05 - 0.025)


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------


def test_evaluation_refuses_incomplete_evidence():
    ev = world(0.05, 0.002)
    with pytest.raises(ValueError, match=r"must hold the experiment 'table3'"):
        evaluate_tests({k: v for k, v in ev.items() if k != "table3"})
    results = ev["table1"].results
    no_home = Evidence(results[results["scenario"] != "Home"])
    with pytest.raises(ValueError, match=r"lacks roc_auc for the scenarios "
                       r"\['Home'\]"):
        evaluate_tests({**ev, "table1": no_home})
    no_ref = Evidence(results[results["variant"] != "baseline_general"])
    with pytest.raises(ValueError, match=r"missing \['baseline_general'\]"):
        evaluate_tests({**ev, "table1": no_ref})
    no_hist = Evidence(ev["ablations"].results)
    with pytest.raises(ValueError, match="needs training histories; got none"):
        evaluate_tests({**ev, "ablations": no_hist})


def test_claim_test_refuses_inconsistent_fields():
    with pytest.raises(ValueError, match=r"claim must be one of .* got 'C9'"):
        ClaimTest("C9", "p", "x", "a", "b", "roc_auc", "count", need=1)
    with pytest.raises(ValueError, match=r"need must be from 1 to 2 .* got 3"):
        ClaimTest("C1", "p", "x", "a", "b", "roc_auc", "count", UNSEEN, need=3)
    with pytest.raises(ValueError, match=r"weights must give one weight per "
                       r"scenario .* for 2 scenarios"):
        ClaimTest("C2", "p", "x", "a", "b", "roc_auc", "contrast", UNSEEN,
                  weights=(1.0,))
    with pytest.raises(ValueError, match=r"exactly when kind is 'loss'; got "
                       r"metric='roc_auc', kind='loss'"):
        ClaimTest("C5", "p", "x", "a", "b", "roc_auc", "loss")
    with pytest.raises(ValueError, match=r"kind must be one of .* got 'vote'"):
        ClaimTest("C5", "p", "x", "a", "b", "roc_auc", "vote")


# ---------------------------------------------------------------------------
# The claims' tests and experiments as defined
# ---------------------------------------------------------------------------


def test_the_paper_evidence_is_computed_from_its_tables():
    text = {(t.claim, t.metric, t.reference): paper_evidence(t)
            for t in CLAIM_TESTS}
    assert text["C1", "roc_auc", "baseline_general"] == (
        "ROC AUC higher on 11 of 11 scenarios")
    assert text["C1", "pr_auc", "baseline_general"] == (
        "PR AUC higher on 10 of 11 scenarios")
    assert text["C2", "roc_auc", "baseline_general"] == "+7.5 ROC AUC points"
    assert text["C3", "roc_auc", "specific_isotonic"] == (
        "ROC AUC higher on 7 of 9 scenarios")
    assert text["C4", "roc_auc", "number"] == (
        "ROC AUC higher on 2 of 2 scenarios")
    assert text["C5", "roc_auc", "full_attention"].startswith("stated without")


def test_every_claim_has_a_test_and_scopes_are_right():
    assert {t.claim for t in CLAIM_TESTS} == set(CLAIMS)
    by_claim = {t.claim: t for t in CLAIM_TESTS}
    assert by_claim["C3"].scenarios == SEEN
    assert by_claim["C4"].scenarios == UNSEEN
    c2 = by_claim["C2"]
    assert sum(c2.weights) == pytest.approx(0.0)
    assert sum(w for w in c2.weights if w > 0) == pytest.approx(1.0)


def test_variants_change_one_thing_each():
    paper = dataclasses.asdict(AutoTaskConfig())
    for name, v in {**ablation_variants(),
                    **exploratory_variants(get_profile("smoke"))}.items():
        changed = {k for k, x in dataclasses.asdict(v.model_cfg).items()
                   if paper[k] != x}
        changed |= {"train"} if v.train is not None else set()
        assert len(changed) == (0 if name == "paper" else 1), (name, changed)
    assert [v.model_cfg.task_id_mode for v in table3_variants().values()] == [
        "none", "number", "encoding"]


@pytest.mark.parametrize("values, kw, expected", [
    ((0.0123, 0.0045, 0.0201), {}, "+1.23 [+0.45, +2.01]"),
    ((0.006, 0.0000041, 0.012), {}, "+0.60 [+4.1e-04, +1.20]"),
    ((-0.5, 0.0, -0.25), {"scale": 1.0, "digits": 1}, "-0.5 [+0.0, -0.2]"),
    ((0.01, np.nan, np.nan), {}, "+1.00 (no interval)"),
])
def test_format_interval(values, kw, expected):
    assert format_interval(*values, **kw) == expected


def test_verdict_phrases_and_test_list():
    assert [verdict_phrase(v) for v in (HELD, NOT_HELD, INCONCLUSIVE)] == [
        "held", "did not hold", "was inconclusive"]
    with pytest.raises(ValueError, match=r"verdict must hold only .* got 'ok'"):
        verdict_phrase("ok")
    text = claim_tests_markdown()
    assert text.count("\n") == len(CLAIM_TESTS) - 1
    assert "**C3, beats calibrated branches** (rule 2)" in text


def test_paper_gains_are_differences_of_the_paper_tables():
    g = paper_gains("table3", "encoding", "number").set_index(
        ["scenario", "metric"])["value"]
    assert g["Clinics", "roc_auc"] == pytest.approx(75.127 - 62.298)
    assert g["Home", "pr_auc"] == pytest.approx(97.394 - 96.766)
    assert len(g) == 10  # five scenarios, two metrics
    with pytest.raises(ValueError, match=r"model and reference must be among "
                       r".* got 'paper'"):
        paper_gains("table1", "paper", "baseline_general")
    with pytest.raises(ValueError, match=r"table must be one of .* got 'table4'"):
        paper_gains("table4", "a", "b")


def test_per_facet_rates_straddle_the_shared_rate():
    cfg = per_facet_train(TrainConfig(lr=6e-4))
    assert cfg.lr_facet1 / cfg.lr_facet2 == pytest.approx(2.0)
    assert math.sqrt(cfg.lr_facet1 * cfg.lr_facet2) == pytest.approx(6e-4)
    with pytest.raises(TypeError, match="train must be a TrainConfig; got dict"):
        per_facet_train({})


def test_weighted_difference_defaults_to_the_macro_average():
    ev = world(0.04, 0.002)["table1"]
    d = weighted_difference(ev, "autotask", "baseline_general").iloc[0]
    # Unseen scenarios gain 0.04, the nine seen ones 0.02: (2 * 0.04 + 9 *
    # 0.02) / 11 on average over seeds (the seed deviations cancel).
    assert d["mean"] == pytest.approx((2 * 0.04 + 9 * 0.02) / 11)
    with pytest.raises(ValueError, match=r"lacks pr_auc for the scenarios"):
        weighted_difference(ev, "autotask", "baseline_general",
                            weights={"Mars": 1.0}, metric="pr_auc")


# ---------------------------------------------------------------------------
# The figures of the claims chapters
# ---------------------------------------------------------------------------


def test_plot_forest_draws_one_row_per_difference():
    table = pd.DataFrame({"label": ["a", "b", "c"], "mean": [0.01, -0.02, 0.0],
                          "lo": [0.005, -0.03, -0.01], "hi": [0.02, -0.01, 0.01],
                          "verdict": [HELD, NOT_HELD, INCONCLUSIVE],
                          "paper": [1.5, np.nan, 0.2]})
    fig = plot_forest(table, colour_by="verdict", paper="paper")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    labels = ax.get_legend_handles_labels()[1]
    assert set(labels) == {HELD, NOT_HELD, INCONCLUSIVE, "paper"}
    plt.close(fig)
    with pytest.raises(ValueError, match=r"table lacks the columns \['paper'\]"):
        plot_forest(table.drop(columns="paper"), paper="paper")


def test_plot_gains_vs_paper_marks_ours_and_the_papers():
    results, reps = tidy(three_scenarios(), n_boot=20, row_sd=0.01)
    gains = paired_summary(results, "a", "b", replicates=reps)
    paper = pd.DataFrame({"variant": "a - b", "scenario": ["Hotel", "Store"],
                          "metric": "roc_auc", "value": [2.0, -1.0]})
    kw = {"scenarios": ["Hotel", "Store", "Tours"]}
    fig = plot_gains_vs_paper(gains, paper, {"a - b": "A over B"}, **kw)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert sorted(labels) == ["A over B: ours", "A over B: paper"]
    plt.close(fig)
    fig = plot_gains_vs_paper(gains, None, {"a - b": "A over B"}, **kw)
    assert fig.axes[0].get_legend_handles_labels()[1] == ["A over B"]
    plt.close(fig)
