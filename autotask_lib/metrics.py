"""Per-scenario ranking metrics and their summaries across seeds.

ROC AUC and PR AUC come from scikit-learn (``roc_auc_score`` and
``average_precision_score``; PR AUC here is average precision, the usual
step-wise estimate of the area under the precision-recall curve).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

METRICS = {"roc_auc": roc_auc_score, "pr_auc": average_precision_score}


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for a scenario (its labels hold a single class)."""


def scenario_metrics(y_true, y_prob, scenario, *, scenarios=None) -> pd.DataFrame:
    """ROC AUC and PR AUC of every scenario, computed on that scenario's rows.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Binary labels, 0 or 1.
    y_prob : array-like of shape (n,)
        Scores; any monotone score works, probabilities are usual.
    scenario : array-like of shape (n,)
        Scenario name of each row.
    scenarios : list of str, optional
        Scenarios to report, in this order; all present ones when omitted.

    Returns
    -------
    DataFrame
        Columns ``scenario``, ``metric``, ``value``, ``n_rows``, ``n_pos``.
        A scenario whose labels hold one class gets NaN, with a warning.

    Raises
    ------
    ValueError
        On mismatched lengths, non-binary labels, or NaN scores (naming the
        scenario).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    scenario = np.asarray(scenario).astype(str)
    if not (len(y_true) == len(y_prob) == len(scenario)):
        raise ValueError(
            "y_true, y_prob and scenario must have the same length; got "
            f"{len(y_true)}, {len(y_prob)} and {len(scenario)}"
        )
    if len(y_true) == 0:
        raise ValueError("y_true is empty: there is nothing to score")
    if not np.all((y_true == 0) | (y_true == 1)):
        raise ValueError(
            "y_true must hold binary labels 0 or 1; got other values (soft "
            "labels must be thresholded or sampled first)"
        )
    names = [str(s) for s in (dict.fromkeys(scenario) if scenarios is None
                              else scenarios)]
    rows = []
    for name in names:
        mask = scenario == name
        if not mask.any():
            raise ValueError(f"scenario {name!r} has no rows to score")
        yt, yp = y_true[mask], y_prob[mask]
        if np.isnan(yp).any():
            raise ValueError(
                f"y_prob holds NaN for scenario {name!r} "
                f"({int(np.isnan(yp).sum())} of {len(yp)} rows)"
            )
        single = len(np.unique(yt)) < 2
        if single:
            warnings.warn(
                f"scenario {name!r} has labels of a single class; its metrics "
                "are undefined and reported as NaN",
                UndefinedMetricWarning, stacklevel=2,
            )
        for metric, fn in METRICS.items():
            rows.append({
                "scenario": name, "metric": metric,
                "value": np.nan if single else float(fn(yt, yp)),
                "n_rows": int(mask.sum()), "n_pos": int(yt.sum()),
            })
    return pd.DataFrame(rows)


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and a t-interval over seeds; the interval is NaN for one value."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1)
    half /= np.sqrt(len(v))
    return mean, mean - half, mean + half


def summarise(results: pd.DataFrame, by=("model", "scenario", "metric")) -> pd.DataFrame:
    """Mean and 95% interval across seeds of a tidy results table.

    Parameters
    ----------
    results : DataFrame
        Tidy results with a ``value`` column and the ``by`` columns.

    Returns
    -------
    DataFrame
        The ``by`` columns, then ``mean``, ``lo``, ``hi`` and ``n_seeds``.
    """
    missing = [c for c in (*by, "value") if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks the columns {missing}")
    rows = []
    for key, g in results.groupby(list(by), sort=False, observed=True):
        mean, lo, hi = mean_interval(g["value"])
        rows.append({**dict(zip(by, key)), "mean": mean, "lo": lo, "hi": hi,
                     "n_seeds": int(g["value"].notna().sum())})
    return pd.DataFrame(rows)
