"""Per-scenario calibration and the calibration error."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from autotask_lib.calibration import (CalibrationWarning, ScenarioCalibrator,
                                      calibrate, prob_to_logit)
from autotask_lib.metrics import (expected_calibration_error, reliability_curve,
                                  scenario_metrics)

SCENARIOS = ["Hotel", "Store", "Card"]


def scores(n=3000, seed=0, slope=2.5, spread=4.0):
    """float32 probabilities of a miscalibrated model, as a run stores them.

    The true logit is ``z``; the model reports ``sigmoid(slope * z + shift)``
    per scenario, so it is overconfident and biased; with a large ``spread``
    many scores saturate at exactly 1.0 in float32.
    """
    rng = np.random.default_rng(seed)
    scenario = rng.choice(SCENARIOS, size=n)
    shift = pd.Series({"Hotel": -1.0, "Store": 0.5, "Card": 1.5})[scenario]
    z = rng.normal(0.0, spread / 2, size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    prob = (1 / (1 + np.exp(-(slope * z + shift.to_numpy())))).astype(np.float32)
    return y, prob, scenario


# ---------------------------------------------------------------------------
# Platt scaling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_platt_leaves_every_scenarios_ranking_metrics_exactly_unchanged(name):
    y_cal, p_cal, s_cal = scores(seed=1, spread=12.0)
    y, p, s = scores(seed=2, spread=12.0)
    assert (p == 1.0).sum() > 50  # saturated float32 scores are part of the test
    cal = ScenarioCalibrator("platt").fit(y_cal, p_cal, s_cal)
    m = s == name
    assert cal.fit_info_.set_index("scenario").loc[name, "slope"] > 0
    ranked = cal.transform(p, s, logit=True)
    assert roc_auc_score(y[m], ranked[m]) == roc_auc_score(y[m], p[m])
    assert average_precision_score(y[m], ranked[m]) == average_precision_score(
        y[m], p[m])


def test_platt_probabilities_keep_the_ranking_of_moderate_scores():
    y_cal, p_cal, s_cal = scores(seed=1)
    y, p, s = scores(seed=2)
    out = calibrate(y_cal, p_cal, s_cal, p, s, method="platt")
    assert np.all((out > 0) & (out < 1))
    before = scenario_metrics(y, p, s)["value"].to_numpy()
    after = scenario_metrics(y, out, s)["value"].to_numpy()
    np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_lowers_the_calibration_error_of_a_miscalibrated_model(method):
    y_cal, p_cal, s_cal = scores(n=6000, seed=1)
    y, p, s = scores(n=6000, seed=2)
    out = calibrate(y_cal, p_cal, s_cal, p, s, method=method)
    for name in SCENARIOS:
        m = s == name
        before = expected_calibration_error(y[m], p[m])
        after = expected_calibration_error(y[m], out[m])
        assert after < 0.5 * before, name


def test_platt_matches_a_logistic_regression_on_the_logit():
    from sklearn.linear_model import LogisticRegression

    y, p, s = scores(seed=4)
    cal = ScenarioCalibrator("platt").fit(y, p, s)
    m = s == "Store"
    z = np.log(p[m].astype(np.float64)) - np.log1p(-p[m].astype(np.float64))
    ref = LogisticRegression(C=np.inf).fit(z[:, None], y[m])
    np.testing.assert_allclose(cal.transform(p, s)[m],
                               ref.predict_proba(z[:, None])[:, 1], rtol=1e-6)


# ---------------------------------------------------------------------------
# Isotonic regression
# ---------------------------------------------------------------------------


def test_isotonic_is_finite_and_in_unit_interval_outside_the_fitted_range():
    rng = np.random.default_rng(0)
    p_cal = rng.uniform(0.2, 0.8, size=400)
    y_cal = (rng.random(400) < p_cal).astype(int)
    cal = ScenarioCalibrator("isotonic").fit(y_cal, p_cal, ["Hotel"] * 400)
    outside = np.array([0.0, 1e-12, 0.05, 0.19, 0.81, 0.99, 1.0])
    out = cal.transform(outside, ["Hotel"] * len(outside))
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))
    inside = cal.transform(np.array([p_cal.min(), p_cal.max()]), ["Hotel"] * 2)
    # Clipped: below the range it returns the lowest step, above it the highest.
    np.testing.assert_array_equal(out[:4], inside[0])
    np.testing.assert_array_equal(out[4:], inside[1])
    logits = cal.transform(outside, ["Hotel"] * len(outside), logit=True)
    assert np.all(np.isfinite(logits))


def test_isotonic_changes_roc_auc_only_through_the_ties_it_makes():
    y_cal, p_cal, s_cal = scores(seed=1)
    y, p, s = scores(seed=2)
    out = calibrate(y_cal, p_cal, s_cal, p, s, method="isotonic")
    m = s == "Hotel"
    yy, pp, cc = y[m], p[m].astype(np.float64), out[m]
    pos, neg = yy == 1, yy == 0
    # Monotone: no pair changes order.
    order = np.argsort(pp, kind="mergesort")
    assert np.all(np.diff(cc[order]) >= 0)
    # The change equals what the pairs tied by calibration alone contribute.
    dp = pp[pos][:, None] - pp[neg][None, :]
    dc = cc[pos][:, None] - cc[neg][None, :]
    newly_tied = (dc == 0) & (dp != 0)
    change = np.where(newly_tied, 0.5 - (dp > 0), 0.0).sum() / dp.size
    assert newly_tied.any()
    assert roc_auc_score(yy, cc) - roc_auc_score(yy, pp) == pytest.approx(
        change, abs=1e-12)


# ---------------------------------------------------------------------------
# Scenarios without calibration data, and bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_unseen_scenarios_pass_through_or_become_nan(method):
    y, p, s = scores(seed=3)
    cal = ScenarioCalibrator(method).fit(y, p, s)
    test_p = np.array([0.3, 0.7, 0.3], dtype=np.float32)
    test_s = np.array(["Clinics", "Home", "Hotel"])
    with pytest.warns(CalibrationWarning, match=r"scenario\(s\) \['Clinics', "
                      r"'Home'\] have no calibrator .* keep their uncalibrated"):
        kept = cal.transform(test_p, test_s)
    np.testing.assert_array_equal(kept[:2], test_p[:2].astype(np.float64))
    assert kept[2] != pytest.approx(0.3)
    with warnings.catch_warnings():  # asked for by name: no warning
        warnings.simplefilter("error")
        np.testing.assert_array_equal(
            cal.transform(test_p, test_s, missing="keep"), kept)
    nan = cal.transform(test_p, test_s, missing="nan")
    assert np.isnan(nan[:2]).all() and np.isfinite(nan[2])
    np.testing.assert_array_equal(cal.is_calibrated(test_s), [False, False, True])


def test_single_class_scenario_warns_and_stays_uncalibrated():
    y, p, s = scores(seed=3)
    y[s == "Card"] = 1
    with pytest.warns(CalibrationWarning, match="'Card' has calibration labels of"):
        cal = ScenarioCalibrator("isotonic").fit(y, p, s)
    assert cal.scenarios_ == ["Hotel", "Store"]
    info = cal.fit_info_.set_index("scenario")
    assert not info.loc["Card", "calibrated"]


def test_platt_warns_on_a_reversed_ranking():
    y, p, s = scores(seed=3)
    with pytest.warns(CalibrationWarning, match="Platt slope .* not positive"):
        ScenarioCalibrator("platt").fit(1 - y, p, s)


def test_bad_calibration_inputs_are_refused():
    y, p, s = scores(n=200)
    with pytest.raises(ValueError, match="method must be one of .* got 'beta'"):
        ScenarioCalibrator("beta")
    cal = ScenarioCalibrator("platt")
    with pytest.raises(ValueError, match="not fitted"):
        cal.transform(p, s)
    bad = p.copy()
    bad[3] = 1.5
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]; got .* to 1.5"):
        cal.fit(y, bad, s)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="y_prob must be finite; got 1 NaN"):
        cal.fit(y, bad, s)
    with pytest.raises(ValueError, match="same length; got 200 and 199"):
        cal.fit(y, p, s[:-1])
    with pytest.raises(ValueError, match="binary labels"):
        cal.fit(y * 0.5, p, s)
    gaps = s.astype(object)
    gaps[[4, 9]] = [None, np.nan]  # not scenarios called 'None' and 'nan'
    with pytest.raises(ValueError, match=r"scenario has 2 missing value\(s\) "
                                         r"\(None or NaN\), the first at row 4"):
        cal.fit(y, p, gaps)
    cal.fit(y, p, s)
    with pytest.raises(ValueError, match="scenario has 2 missing value"):
        cal.transform(p, gaps)
    with pytest.raises(ValueError,
                       match="missing must be None, 'keep' or 'nan'; got 'drop'"):
        cal.transform(p, s, missing="drop")


def test_logit_map_is_strictly_increasing_on_float32_including_0_and_1():
    p = np.array([0.0, np.float32(1e-45), 1e-30, 0.5,
                  np.nextafter(np.float32(1), np.float32(0)), 1.0],
                 dtype=np.float32)
    z = prob_to_logit(p)
    assert np.all(np.isfinite(z)) and np.all(np.diff(z) > 0)
    p64 = np.array([0.0, 5e-324, 0.5, np.nextafter(1.0, 0.0), 1.0])
    z64 = prob_to_logit(p64)
    assert np.all(np.isfinite(z64)) and np.all(np.diff(z64) > 0)


# ---------------------------------------------------------------------------
# The calibration error and the reliability curve
# ---------------------------------------------------------------------------


def test_expected_calibration_error_equals_a_hand_computation():
    y = np.array([0, 1, 1, 0, 1, 1])
    p = np.array([0.05, 0.15, 0.45, 0.55, 0.62, 0.95])
    # Four bins of width 0.25:
    #   [0, .25):  p .05, .15 -> mean p .10, rate 1/2 -> gap .40, weight 2/6
    #   [.25, .5): p .45      -> mean p .45, rate 1   -> gap .55, weight 1/6
    #   [.5, .75): p .55, .62 -> mean p .585, rate 1/2 -> gap .085, weight 2/6
    #   [.75, 1]:  p .95      -> mean p .95, rate 1   -> gap .05, weight 1/6
    hand = (2 * 0.40 + 1 * 0.55 + 2 * 0.085 + 1 * 0.05) / 6
    assert expected_calibration_error(y, p, n_bins=4) == pytest.approx(hand,
                                                                      abs=1e-12)
    curve = reliability_curve(y, p, n_bins=4)
    assert curve["n_rows"].tolist() == [2, 1, 2, 1]
    np.testing.assert_allclose(curve["mean_prob"], [0.10, 0.45, 0.585, 0.95])
    np.testing.assert_allclose(curve["frac_pos"], [0.5, 1.0, 0.5, 1.0])


def test_calibration_error_puts_one_in_the_last_bin_and_skips_empty_bins():
    curve = reliability_curve([1, 0], [1.0, 0.0], n_bins=10)
    assert curve["bin"].tolist() == [0, 9]
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0


def test_calibration_error_refuses_bad_input():
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        expected_calibration_error([0, 1], [0.2, 1.2])
    with pytest.raises(ValueError, match="n_bins must be a positive integer; got 0"):
        expected_calibration_error([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match="same length; got 2 and 3"):
        reliability_curve([0, 1], [0.2, 0.8, 0.5])
    with pytest.raises(ValueError, match="metrics must be a non-empty selection"):
        scenario_metrics([0, 1], [0.2, 0.8], ["a", "a"], metrics=("brier",))


def test_scenario_metrics_reports_the_calibration_error_per_scenario():
    y, p, s = scores(seed=5)
    table = scenario_metrics(y, p, s, metrics=("ece",)).set_index("scenario")
    for name in SCENARIOS:
        m = s == name
        assert table.loc[name, "value"] == pytest.approx(
            expected_calibration_error(y[m], p[m]), abs=1e-12)
