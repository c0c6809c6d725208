"""Per-scenario calibration of relevance scores (paper section 4.2.1, Table 2).

The baseline's task-specific branches are calibrated with each scenario's own
calibration data, so that every ad scenario serves a stable score distribution;
the paper calibrates AutoTask the same way before comparing the two (Table 2).
Two calibrators are offered, both through scikit-learn, one fitted per scenario
on that scenario's rows of the calibration split:

* ``"platt"``: Platt scaling, a logistic regression on the score's logit,
  ``sigmoid(a * logit(p) + b)``. With a positive slope ``a`` it is strictly
  increasing, so it leaves every ranking metric (ROC AUC, PR AUC) unchanged.
* ``"isotonic"``: isotonic regression, a non-decreasing step function fitted by
  pooling adjacent violators, interpolated linearly between steps and clipped
  to its end values outside the fitted range. Its flat steps tie scores that
  were distinct, which is the only way it can change a ranking metric.

Scenarios without calibration data (the unseen ones) get no calibrator: their
scores pass through unchanged, or become NaN on request.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

METHODS = ("platt", "isotonic")


class CalibrationWarning(UserWarning):
    """A scenario could not be calibrated as asked, or its calibrator is suspect."""


# ---------------------------------------------------------------------------
# Logits that keep every distinct probability distinct
# ---------------------------------------------------------------------------


def prob_to_logit(y_prob) -> np.ndarray:
    """``log(p / (1 - p))`` in float64, strictly increasing on every input value.

    A probability of exactly 0 or 1 has an infinite logit. It is mapped just
    beyond the most extreme finite logit its floating-point type can hold, so
    that it stays apart from (and on the right side of) every other value: a
    float32 score of 1.0 gets ``25 ln 2``, beyond the ``24 ln 2`` of the largest
    float32 below 1.

    Parameters
    ----------
    y_prob : array-like of shape (n,)
        Probabilities in [0, 1]; float32 input keeps float32's limits.

    Returns
    -------
    float64 ndarray of shape (n,)

    Raises
    ------
    ValueError
        If a value is NaN or outside [0, 1].
    """
    p = np.asarray(y_prob)
    if p.dtype.kind not in "fiub":
        raise TypeError(f"y_prob must be numeric; got dtype {p.dtype}")
    outside = ~((p >= 0) & (p <= 1))
    if outside.any():
        raise ValueError(
            f"y_prob must hold probabilities in [0, 1]; got {int(outside.sum())} "
            f"values outside, e.g. {float(p[outside].flat[0])!r}"
        )
    bits = 24 if p.dtype == np.float32 else 53  # significand bits, as epsneg
    low = 150 if p.dtype == np.float32 else 1075  # beyond the smallest subnormal
    p = p.astype(np.float64)
    with np.errstate(divide="ignore"):
        z = np.log(p) - np.log1p(-p)
    z = np.where(p >= 1.0, (bits + 1) * math.log(2.0), z)
    return np.where(p <= 0.0, -low * math.log(2.0), z)


def _check_inputs(y_prob, scenario, y_true=None):
    y_prob_arr = np.asarray(y_prob)
    if y_prob_arr.ndim != 1:
        raise ValueError(
            f"y_prob must be one-dimensional; got shape {y_prob_arr.shape}"
        )
    values = y_prob_arr.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"y_prob must be finite; got {int((~np.isfinite(values)).sum())} "
            "NaN or infinite values"
        )
    if len(values) and (values.min() < 0 or values.max() > 1):
        raise ValueError(
            "y_prob must hold probabilities in [0, 1]; got values from "
            f"{values.min()} to {values.max()}"
        )
    scenario = np.asarray(scenario)
    if scenario.dtype.kind in "OfcU" and len(scenario):
        # None or NaN would otherwise become a scenario called 'None' or 'nan'.
        empty = pd.isna(scenario) if scenario.dtype.kind != "U" else np.zeros(
            len(scenario), dtype=bool)
        if empty.any():
            raise ValueError(
                f"scenario has {int(empty.sum())} missing value(s) (None or NaN), "
                f"the first at row {int(np.argmax(empty))}; every row needs a "
                "scenario")
    scenario = scenario.astype(str)
    if len(scenario) != len(values):
        raise ValueError(
            "y_prob and scenario must have the same length; got "
            f"{len(values)} and {len(scenario)}"
        )
    if y_true is None:
        return y_prob_arr, scenario, None
    y_true = np.asarray(y_true, dtype=np.float64)
    if len(y_true) != len(values):
        raise ValueError(
            "y_true and y_prob must have the same length; got "
            f"{len(y_true)} and {len(values)}"
        )
    if not np.all((y_true == 0) | (y_true == 1)):
        raise ValueError("y_true must hold binary labels 0 or 1; got other values")
    return y_prob_arr, scenario, y_true


# ---------------------------------------------------------------------------
# One calibrator per scenario
# ---------------------------------------------------------------------------


class ScenarioCalibrator:
    """A Platt or isotonic calibrator fitted separately for every scenario.

    Parameters
    ----------
    method : {"platt", "isotonic"}
        Platt scaling on logits or isotonic regression on probabilities.

    Attributes
    ----------
    calibrators_ : dict of str to estimator
        The fitted scikit-learn estimator of every calibrated scenario.
    fit_info_ : DataFrame
        One row per scenario seen by :meth:`fit`: rows, positives, whether it
        was calibrated, and the Platt slope and intercept or the number of
        isotonic steps.

    Examples
    --------
    >>> cal = ScenarioCalibrator("isotonic").fit(y_cal, p_cal, scenario_cal)
    >>> p_test_calibrated = cal.transform(p_test, scenario_test)
    """

    def __init__(self, method: str = "platt"):
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}")
        self.method = method
        self.calibrators_: dict[str, object] = {}
        self.fit_info_ = pd.DataFrame()

    def __repr__(self) -> str:
        return (f"ScenarioCalibrator(method={self.method!r}, "
                f"scenarios={sorted(self.calibrators_)})")

    @property
    def scenarios_(self) -> list[str]:
        """Names of the scenarios that have a fitted calibrator, sorted."""
        return sorted(self.calibrators_)

    def fit(self, y_true, y_prob, scenario) -> ScenarioCalibrator:
        """Fit one calibrator on each scenario's rows.

        Parameters
        ----------
        y_true : array-like of shape (n,)
            Binary labels of the calibration rows.
        y_prob : array-like of shape (n,)
            The model's probabilities for those rows.
        scenario : array-like of shape (n,)
            Scenario name of every row.

        Returns
        -------
        ScenarioCalibrator
            ``self``, fitted.

        Raises
        ------
        ValueError
            On mismatched lengths, non-binary labels, or probabilities that
            are not finite or outside [0, 1].

        Warns
        -----
        CalibrationWarning
            For a scenario whose labels hold one class (it is left
            uncalibrated) and for a Platt slope that is not positive (the
            calibrator then reverses or flattens that scenario's ranking).
        """
        y_prob, scenario, y_true = _check_inputs(y_prob, scenario, y_true)
        if len(y_true) == 0:
            raise ValueError("y_true is empty: there is nothing to calibrate on")
        self.calibrators_ = {}
        info = []
        for name in sorted({str(x) for x in scenario}):
            mask = scenario == name
            yt, yp = y_true[mask], y_prob[mask]
            row = {"scenario": name, "n_rows": int(mask.sum()),
                   "n_pos": int(yt.sum()), "calibrated": False}
            if len(np.unique(yt)) < 2:
                warnings.warn(
                    f"scenario {name!r} has calibration labels of a single "
                    "class; it is left uncalibrated",
                    CalibrationWarning, stacklevel=2,
                )
                info.append(row)
                continue
            if self.method == "platt":
                # No penalty: the slope and intercept of Platt (1999), fitted
                # by maximum likelihood on the logit of the score.
                est = LogisticRegression(C=np.inf)
                est.fit(prob_to_logit(yp)[:, None], yt.astype(int))
                slope, intercept = float(est.coef_[0, 0]), float(est.intercept_[0])
                row.update(slope=slope, intercept=intercept)
                if not slope > 0:
                    warnings.warn(
                        f"scenario {name!r}: the Platt slope is {slope:.3g}, not "
                        "positive, so calibration reverses or flattens its "
                        "ranking (its scores rank no better than chance)",
                        CalibrationWarning, stacklevel=2,
                    )
            else:
                est = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True,
                                         out_of_bounds="clip")
                est.fit(yp.astype(np.float64), yt)
                row.update(n_steps=int(len(np.unique(est.y_thresholds_))))
            row["calibrated"] = True
            self.calibrators_[name] = est
            info.append(row)
        self.fit_info_ = pd.DataFrame(info)
        return self

    def transform(self, y_prob, scenario, *, missing: str | None = None,
                  logit: bool = False) -> np.ndarray:
        """Calibrated probabilities (or logits) of each row, by its scenario.

        Parameters
        ----------
        y_prob : array-like of shape (n,)
            Uncalibrated probabilities in [0, 1].
        scenario : array-like of shape (n,)
            Scenario name of every row.
        missing : {None, "keep", "nan"}
            What rows of a scenario without a calibrator get: their
            uncalibrated score (None, the default, also warns and names those
            scenarios; "keep" does not warn), or NaN.
        logit : bool
            Return calibrated logits instead of probabilities. For Platt
            scaling these are ``a * logit(p) + b`` exactly, a strictly
            increasing map that float64 probabilities near 0 or 1 could not
            resolve; ranking metrics computed on them equal the uncalibrated
            ones exactly (with ``a > 0``).

        Returns
        -------
        float64 ndarray of shape (n,)

        Raises
        ------
        ValueError
            On bad input (see :meth:`fit`), an unknown ``missing``, or a
            calibrator that was never fitted.
        """
        if not isinstance(logit, (bool, np.bool_)):
            raise TypeError(f"logit must be True or False; got {logit!r}")
        if missing not in (None, "keep", "nan"):
            raise ValueError(
                f"missing must be None, 'keep' or 'nan'; got {missing!r}")
        if self.fit_info_.empty:
            raise ValueError("this ScenarioCalibrator is not fitted; call fit first")
        y_prob, scenario, _ = _check_inputs(y_prob, scenario)
        raw = y_prob.astype(np.float64)
        out = prob_to_logit(y_prob) if logit else raw.copy()
        if missing == "nan":
            out[:] = np.nan
        if missing is None:
            alone = sorted(set(scenario.tolist()) - set(self.calibrators_))
            if alone:
                warnings.warn(
                    f"scenario(s) {alone[:5]}{' ...' if len(alone) > 5 else ''} "
                    "have no calibrator (absent from the calibration rows, or "
                    "left uncalibrated there) and keep their uncalibrated scores; "
                    "pass missing='keep' to accept that without this warning, or "
                    "missing='nan'", CalibrationWarning, stacklevel=2,
                )
        for name, est in self.calibrators_.items():
            mask = scenario == name
            if not mask.any():
                continue
            if self.method == "platt":
                z = prob_to_logit(y_prob[mask])
                a, b = est.coef_[0, 0], est.intercept_[0]
                out[mask] = a * z + b if logit else est.predict_proba(z[:, None])[:, 1]
            else:
                cal = np.clip(est.predict(raw[mask]), 0.0, 1.0)
                out[mask] = prob_to_logit(cal) if logit else cal
        return out

    def is_calibrated(self, scenario) -> np.ndarray:
        """Bool ndarray of shape (n,): whether each row's scenario has a calibrator."""
        scenario = np.asarray(scenario).astype(str)
        return np.isin(scenario, list(self.calibrators_))


def calibrate(y_true_cal, y_prob_cal, scenario_cal, y_prob, scenario, *,
              method: str = "platt", missing: str | None = None) -> np.ndarray:
    """Fit per-scenario calibrators on calibration rows and apply them to others.

    A shortcut for ``ScenarioCalibrator(method).fit(...).transform(...)``; see
    :class:`ScenarioCalibrator` for the parameters.

    Returns
    -------
    float64 ndarray of shape (n,)
        Calibrated probabilities of the rows to transform.
    """
    cal = ScenarioCalibrator(method).fit(y_true_cal, y_prob_cal, scenario_cal)
    return cal.transform(y_prob, scenario, missing=missing)
