"""Per-scenario metrics agree with scikit-learn on each scenario's rows."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from autotask_lib import UndefinedMetricWarning, scenario_metrics, summarise
from autotask_lib.tables import paired_gains, win_counts


def fake(n=600, seed=0):
    rng = np.random.default_rng(seed)
    scenario = rng.choice(["Hotel", "Store", "Clinics"], size=n)
    y = rng.integers(0, 2, size=n)
    prob = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    return y, prob, scenario


def test_metrics_equal_sklearn_per_scenario():
    y, prob, scenario = fake()
    table = scenario_metrics(y, prob, scenario).set_index(["scenario", "metric"])
    for name in ("Hotel", "Store", "Clinics"):
        m = scenario == name
        assert table.loc[(name, "roc_auc"), "value"] == pytest.approx(
            roc_auc_score(y[m], prob[m]), abs=1e-12)
        assert table.loc[(name, "pr_auc"), "value"] == pytest.approx(
            average_precision_score(y[m], prob[m]), abs=1e-12)
        assert table.loc[(name, "roc_auc"), "n_rows"] == m.sum()


def test_single_class_scenario_gives_nan_with_warning():
    y, prob, scenario = fake()
    y[scenario == "Store"] = 1
    with pytest.warns(UndefinedMetricWarning, match="'Store'"):
        table = scenario_metrics(y, prob, scenario)
    assert table[table["scenario"] == "Store"]["value"].isna().all()
    assert table[table["scenario"] == "Hotel"]["value"].notna().all()


def test_bad_inputs_are_refused():
    y, prob, scenario = fake()
    with pytest.raises(ValueError, match="binary labels"):
        scenario_metrics(prob, prob, scenario)
    bad = prob.copy()
    bad[np.flatnonzero(scenario == "Clinics")[0]] = np.nan
    with pytest.raises(ValueError, match="NaN for scenario 'Clinics'"):
        scenario_metrics(y, bad, scenario)
    with pytest.raises(ValueError, match="same length"):
        scenario_metrics(y[:-1], prob, scenario)
    with pytest.raises(ValueError, match="'Home' has no rows"):
        scenario_metrics(y, prob, scenario, scenarios=["Home"])


def test_summary_interval_covers_the_mean_and_widens_with_spread():
    rows = [{"model": "a", "scenario": "s", "metric": "roc_auc", "value": v}
            for v in (0.70, 0.72, 0.74)]
    rows += [{"model": "b", "scenario": "s", "metric": "roc_auc", "value": v}
             for v in (0.60, 0.72, 0.84)]
    s = summarise(pd.DataFrame(rows)).set_index("model")
    assert s.loc["a", "mean"] == pytest.approx(0.72)
    assert s.loc["a", "lo"] < 0.72 < s.loc["a", "hi"]
    assert (s.loc["b", "hi"] - s.loc["b", "lo"]) > (s.loc["a", "hi"] - s.loc["a", "lo"])


def test_summary_of_no_rows_has_the_usual_columns():
    rows = [{"model": "a", "scenario": "s", "metric": "roc_auc", "value": 0.7}]
    full = summarise(pd.DataFrame(rows))
    empty = summarise(pd.DataFrame(rows).iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == list(full.columns)


def test_win_counts_from_paired_differences():
    rows = []
    offsets = {"win": [0.05, 0.051, 0.052], "loss": [-0.05, -0.049, -0.048],
               "tie": [-0.01, 0.0, 0.012]}  # the tie's mean is just above 0
    for seed in range(3):
        for scen, delta in offsets.items():
            rows.append({"model": "a", "seed": seed, "scenario": scen,
                         "metric": "roc_auc", "value": 0.7 + delta[seed]})
            rows.append({"model": "b", "seed": seed, "scenario": scen,
                         "metric": "roc_auc", "value": 0.7})
    results = pd.DataFrame(rows)
    w = win_counts(results, "a", "b").loc["roc_auc"]
    assert (w.wins, w.losses, w.clear_wins, w.clear_losses) == (2, 1, 1, 1)
    with pytest.raises(ValueError, match="both 'a' and 'c'"):
        paired_gains(results, "a", "c")
