"""Per-scenario metrics, their bootstrap over test rows, and summaries.

ROC AUC and PR AUC come from scikit-learn (``roc_auc_score`` and
``average_precision_score``; PR AUC here is average precision, the usual
step-wise estimate of the area under the precision-recall curve). The expected
calibration error (ECE) and the reliability curve measure calibration, the
subject of the paper's Table 2 (section 4.2.1).

Uncertainty comes from two sources, and :func:`summarise` can combine them:
training (the model seed: initialisation and shuffles) and the test rows (the
finite sample every seed is scored on, resampled by the bootstrap of
:func:`bootstrap_scenario_metrics`).
"""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

# Ranking metrics: any monotone score works.
METRICS = {"roc_auc": roc_auc_score, "pr_auc": average_precision_score}

# Every metric the library computes, and whether a larger value is better.
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "ece": False}

# Replicates drawn at once by the bootstrap; fixed, so that the draws for a
# seed do not depend on memory.
_BOOT_CHUNK = 50


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for a scenario (its labels hold a single class)."""


# ---------------------------------------------------------------------------
# Calibration error
# ---------------------------------------------------------------------------


def _check_binning(y_true, y_prob, n_bins):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or (
        n_bins < 1
    ):
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
    if len(y_true) != len(y_prob):
        raise ValueError(
            "y_true and y_prob must have the same length; got "
            f"{len(y_true)} and {len(y_prob)}"
        )
    if len(y_true) == 0:
        raise ValueError("y_true is empty: there is nothing to measure")
    if not np.all((y_prob >= 0) & (y_prob <= 1)):
        raise ValueError(
            "y_prob must hold probabilities in [0, 1] (NaN is not allowed); got "
            f"values from {np.nanmin(y_prob)} to {np.nanmax(y_prob)}"
        )
    if not np.all((y_true == 0) | (y_true == 1)):
        raise ValueError("y_true must hold binary labels 0 or 1; got other values")
    return y_true, y_prob, int(n_bins)


def _bin_index(y_prob: np.ndarray, n_bins: int) -> np.ndarray:
    # Bin k holds the p with k <= n_bins * p < k + 1; p = 1 joins the last bin.
    return np.minimum((y_prob * n_bins).astype(np.int64), n_bins - 1)


def reliability_curve(y_true, y_prob, *, n_bins: int = 15) -> pd.DataFrame:
    """Mean predicted probability against the observed rate, in equal-width bins.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Binary labels.
    y_prob : array-like of shape (n,)
        Probabilities in [0, 1].
    n_bins : int
        Bins of equal width over [0, 1]; row ``p`` falls in bin
        ``floor(n_bins * p)`` (the last bin also holds ``p = 1``).

    Returns
    -------
    DataFrame
        One row per non-empty bin: ``bin, lo, hi, mean_prob, frac_pos,
        n_rows``.

    Raises
    ------
    ValueError
        On mismatched lengths, an empty input, non-binary labels, scores
        outside [0, 1], or a bad ``n_bins``.
    """
    y_true, y_prob, n_bins = _check_binning(y_true, y_prob, n_bins)
    k = _bin_index(y_prob, n_bins)
    n = np.bincount(k, minlength=n_bins)
    keep = n > 0
    sum_p = np.bincount(k, weights=y_prob, minlength=n_bins)
    sum_y = np.bincount(k, weights=y_true, minlength=n_bins)
    bins = np.arange(n_bins)
    return pd.DataFrame({
        "bin": bins[keep], "lo": bins[keep] / n_bins, "hi": (bins[keep] + 1) / n_bins,
        "mean_prob": sum_p[keep] / n[keep], "frac_pos": sum_y[keep] / n[keep],
        "n_rows": n[keep],
    })


def expected_calibration_error(y_true, y_prob, *, n_bins: int = 15) -> float:
    """Expected calibration error: ``sum_k (n_k / n) |mean(y)_k - mean(p)_k|``.

    The gap between the observed rate of positives and the mean predicted
    probability in each equal-width bin, weighted by the bin's share of rows.
    0 is perfect calibration.

    Parameters
    ----------
    y_true, y_prob, n_bins
        As in :func:`reliability_curve`.

    Returns
    -------
    float
    """
    curve = reliability_curve(y_true, y_prob, n_bins=n_bins)
    gap = np.abs(curve["frac_pos"] - curve["mean_prob"])
    return float((curve["n_rows"] * gap).sum() / curve["n_rows"].sum())


def _metric_fn(metric: str, n_bins: int):
    if metric == "ece":
        return lambda yt, yp: expected_calibration_error(yt, yp, n_bins=n_bins)
    return METRICS[metric]


def _check_metrics(metrics) -> tuple[str, ...]:
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in metrics if m not in HIGHER_IS_BETTER]
    if unknown or not metrics:
        raise ValueError(
            f"metrics must be a non-empty selection of {list(HIGHER_IS_BETTER)}; "
            f"got {list(metrics)}"
        )
    return metrics


# ---------------------------------------------------------------------------
# Per-scenario metrics
# ---------------------------------------------------------------------------


def _check_scored_rows(y_true, y_prob, scenario):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    scenario = np.asarray(scenario)
    for name, values in (("y_true", y_true), ("y_prob", y_prob),
                         ("scenario", scenario)):
        if values.ndim != 1:
            raise ValueError(
                f"{name} must be one-dimensional, one value per row; got shape "
                f"{values.shape}"
            )
    missing = pd.isna(scenario) if scenario.dtype.kind in "Of" else None
    if missing is not None and missing.any():
        # str() would turn a missing name into a scenario called 'None' or 'nan'.
        raise ValueError(
            f"scenario must name a scenario on every row; {int(missing.sum())} "
            f"row(s) hold None or NaN, the first at row {int(np.argmax(missing))}"
        )
    scenario = scenario.astype(str)
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
    return y_true, y_prob, scenario


def _scenario_names(scenario: np.ndarray, scenarios) -> list[str]:
    """The scenarios to score: those given, or every one present, in order."""
    if scenarios is None:
        return [str(s) for s in dict.fromkeys(scenario)]
    if isinstance(scenarios, str) or len(scenarios) == 0:
        raise ValueError(
            f"scenarios must be a non-empty list of names; got {scenarios!r}"
        )
    if any(s is None or (isinstance(s, float) and s != s) for s in scenarios):
        raise ValueError(
            f"scenarios must be a list of scenario names; got a missing name "
            f"in {list(scenarios)!r}"
        )
    return [str(s) for s in scenarios]


def _scenario_rows(y_prob, scenario, name):
    mask = scenario == name
    if not mask.any():
        raise ValueError(f"scenario {name!r} has no rows to score")
    yp = y_prob[mask]
    bad = ~np.isfinite(yp)
    if bad.any():
        kinds = " and ".join(k for k, m in (("NaN", np.isnan(yp)),
                                             ("inf", np.isinf(yp))) if m.any())
        raise ValueError(
            f"y_prob holds {kinds} for scenario {name!r} "
            f"({int(bad.sum())} of {len(yp)} rows)"
        )
    return mask


def scenario_metrics(y_true, y_prob, scenario, *, scenarios=None,
                     metrics=("roc_auc", "pr_auc"), n_bins: int = 15) -> pd.DataFrame:
    """Metrics of every scenario, each computed on that scenario's rows.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Binary labels, 0 or 1.
    y_prob : array-like of shape (n,)
        Scores; any monotone score works for the ranking metrics, ``"ece"``
        needs probabilities.
    scenario : array-like of shape (n,)
        Scenario name of each row.
    scenarios : list of str, optional
        Scenarios to report, in this order; all present ones when omitted.
    metrics : sequence of str
        Any of ``"roc_auc"``, ``"pr_auc"`` and ``"ece"``.
    n_bins : int
        Bins of the expected calibration error.

    Returns
    -------
    DataFrame
        Columns ``scenario``, ``metric``, ``value``, ``n_rows``, ``n_pos``.
        A scenario whose labels hold one class gets NaN, with a warning.

    Raises
    ------
    ValueError
        On mismatched lengths, non-binary labels, NaN scores (naming the
        scenario) or an unknown metric.
    """
    metrics = _check_metrics(metrics)
    y_true, y_prob, scenario = _check_scored_rows(y_true, y_prob, scenario)
    names = _scenario_names(scenario, scenarios)
    rows = []
    for name in names:
        mask = _scenario_rows(y_prob, scenario, name)
        yt, yp = y_true[mask], y_prob[mask]
        single = len(np.unique(yt)) < 2
        if single:
            warnings.warn(
                f"scenario {name!r} has labels of a single class; its metrics "
                "are undefined and reported as NaN",
                UndefinedMetricWarning, stacklevel=2,
            )
        for metric in metrics:
            fn = _metric_fn(metric, n_bins)
            rows.append({
                "scenario": name, "metric": metric,
                "value": np.nan if single else float(fn(yt, yp)),
                "n_rows": int(mask.sum()), "n_pos": int(yt.sum()),
            })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# The bootstrap over test rows
# ---------------------------------------------------------------------------


def _group_weights(y: np.ndarray, s: np.ndarray, w: np.ndarray):
    # Weighted positives and negatives of each group of tied scores, in
    # ascending score order, for each row of weights w (R, n): two (R, G).
    order = np.argsort(s, kind="mergesort")
    s, y, w = s[order], y[order], w[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    pos = np.add.reduceat(w * y, starts, axis=1)
    neg = np.add.reduceat(w, starts, axis=1) - pos
    return pos, neg


def _weighted_roc_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    # The chance that a positive outranks a negative, ties counting one half.
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _weighted_average_precision(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    # sum_k (R_k - R_{k-1}) P_k over thresholds from the top, as scikit-learn
    # computes it: a group adds its positives to recall at the precision of
    # everything scored at or above it.
    tp = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1]  # (R, G)
    fp = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1]  # (R, G)
    total = tp[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = (pos * precision).sum(axis=1) / total
    return np.where(total > 0, ap, np.nan)


def _weighted_ece(y: np.ndarray, p: np.ndarray, w: np.ndarray,
                  n_bins: int) -> np.ndarray:
    # Expected calibration error of each row of weights w (R, n).
    onehot = np.zeros((len(p), n_bins))
    onehot[np.arange(len(p)), _bin_index(p, n_bins)] = 1.0  # (n, K)
    n = w @ onehot  # (R, K)
    gap = np.abs((w * y) @ onehot - (w * p) @ onehot)  # (R, K)
    return gap.sum(axis=1) / n.sum(axis=1)


_WEIGHTED = {"roc_auc": _weighted_roc_auc, "pr_auc": _weighted_average_precision}


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator):
    """Yield how often each of ``n`` rows is drawn, in chunks of replicates.

    Each replicate draws ``n`` rows with replacement. Yields int ndarrays of
    shape (r, n), ``r <= 50``, together ``n_boot`` rows.
    """
    done = 0
    while done < n_boot:
        r = min(_BOOT_CHUNK, n_boot - done)
        idx = rng.integers(0, n, size=(r, n)) + n * np.arange(r)[:, None]
        yield np.bincount(idx.ravel(), minlength=r * n).reshape(r, n)
        done += r


def bootstrap_scenario_metrics(
    y_true, y_prob, scenario, *, metrics=("roc_auc", "pr_auc"),
    n_boot: int = 200, seed: int = 0, n_bins: int = 15, scenarios=None,
) -> pd.DataFrame:
    """Metrics of every scenario on bootstrap resamples of its rows.

    Each replicate redraws a scenario's rows with replacement, as many as it
    has. The draws depend only on ``seed``, the scenario's name and its row
    count, so two models scored on the same rows in the same order see the
    same resamples: differences between them are paired.

    Parameters
    ----------
    y_true, y_prob, scenario, scenarios, metrics, n_bins
        As in :func:`scenario_metrics`.
    n_boot : int
        Replicates per scenario.
    seed : int
        Seeds the draws.

    Returns
    -------
    DataFrame
        ``scenario, metric, replicate, value``. A replicate whose resample
        holds a single class gets NaN.

    Raises
    ------
    ValueError
        As :func:`scenario_metrics`, and for ``n_boot < 1``.
    """
    metrics = _check_metrics(metrics)
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or (
        n_boot < 1
    ):
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not (
            0 <= seed <= 2**32 - 1):
        raise ValueError(
            f"seed must be an integer from 0 to {2**32 - 1} (2**32 - 1); got {seed!r}")
    y_true, y_prob, scenario = _check_scored_rows(y_true, y_prob, scenario)
    if "ece" in metrics:
        _check_binning(y_true, y_prob, n_bins)
    names = _scenario_names(scenario, scenarios)
    frames = []
    for name in names:
        mask = _scenario_rows(y_prob, scenario, name)
        yt, yp = y_true[mask], y_prob[mask]
        rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
        values = {m: [] for m in metrics}
        for w in bootstrap_counts(len(yt), int(n_boot), rng):
            w = w.astype(np.float64)
            if any(m in _WEIGHTED for m in metrics):
                pos, neg = _group_weights(yt, yp, w)
            for m in metrics:
                if m == "ece":
                    values[m].append(_weighted_ece(yt, yp, w, n_bins))
                else:
                    values[m].append(_WEIGHTED[m](pos, neg))
        for m in metrics:
            frames.append(pd.DataFrame({
                "scenario": name, "metric": m,
                "replicate": np.arange(n_boot), "value": np.concatenate(values[m]),
            }))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------
# Summaries across seeds and test rows
# ---------------------------------------------------------------------------


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and a t-interval over seeds; the interval is NaN for one value.

    Raises
    ------
    ValueError
        If ``confidence`` is not strictly between 0 and 1.
    """
    if not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
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


def _row_spread(replicates: pd.DataFrame, by: tuple[str, ...]) -> dict:
    # Standard deviation over replicates of the seed-averaged value, per group.
    missing = [c for c in (*by, "replicate", "value") if c not in replicates.columns]
    if missing:
        raise ValueError(f"replicates lacks the columns {missing}")
    per = replicates.groupby([*by, "replicate"], observed=True, sort=False)[
        "value"].mean()
    sd = per.groupby(level=list(range(len(by))), observed=True, sort=False).std(
        ddof=1)
    return {(k if isinstance(k, tuple) else (k,)): v for k, v in sd.items()}


def summarise(results: pd.DataFrame, by=("model", "scenario", "metric"), *,
              replicates: pd.DataFrame | None = None,
              confidence: float = 0.95) -> pd.DataFrame:
    """Mean and a 95% interval of a tidy results table, per group.

    The interval can cover two sources of uncertainty:

    * seeds: a t-interval of the mean over seeds (half-width
      ``t * sd / sqrt(n_seeds)``), for training's randomness on fixed test
      rows; it needs two seeds or more;
    * test rows, when ``replicates`` is given: the normal interval of the
      seed-averaged value over bootstrap resamples of the test rows
      (half-width ``z * sd`` over replicates).

    With both, the half-widths add in quadrature, as variances of independent
    sources do.

    Parameters
    ----------
    results : DataFrame
        Tidy results with a ``value`` column and the ``by`` columns, one row
        per seed.
    by : sequence of str
        The columns that name a group.
    replicates : DataFrame, optional
        Bootstrap values with the ``by`` columns, ``seed``, ``replicate`` and
        ``value`` (see :func:`bootstrap_scenario_metrics`).
    confidence : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    DataFrame
        The ``by`` columns, then ``mean``, ``lo``, ``hi``, ``n_seeds``,
        ``half_seeds``, ``half_rows`` (NaN for a source not covered) and
        ``covers``: ``"seeds"``, ``"test rows"``, ``"seeds and test rows"``
        or ``"nothing"`` (one seed, no replicates: no interval).

    Raises
    ------
    ValueError
        On missing columns, a confidence outside (0, 1), or (when ``results``
        has a ``seed`` column) more than one row for a seed in a group, which
        would count rows as seeds.
    """
    by = tuple(by)
    missing = [c for c in (*by, "value") if c not in results.columns]
    if missing:
        raise ValueError(f"results lacks the columns {missing}")
    if "seed" in results.columns and "seed" not in by and len(results):
        counts = results.groupby([*by, "seed"], observed=True).size()
        if (counts > 1).any():
            key = counts[counts > 1].index[0]
            raise ValueError(
                f"results must hold one row per seed in each group of {list(by)}; "
                f"got {int(counts.max())} rows for {dict(zip([*by, 'seed'], key))}. "
                "Add the column that tells them apart to by, or average first"
            )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    spread = {} if replicates is None else _row_spread(replicates, by)
    z = stats.norm.ppf(0.5 + confidence / 2)
    rows = []
    for key, g in results.groupby(list(by), sort=False, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        if np.isinf(g["value"].to_numpy(dtype=np.float64)).any():
            raise ValueError(
                f"results hold an infinite value for {dict(zip(by, key))}; a "
                "metric is finite or NaN (undefined)")
        dropped = int(g["value"].isna().sum())
        if 0 < dropped < len(g):
            # The seeds score the same test rows, so a metric undefined there
            # is undefined for all of them; NaN for only some is unusual.
            warnings.warn(
                f"{dropped} of {len(g)} values of {dict(zip(by, key))} are NaN "
                "and left out of its mean and interval", RuntimeWarning,
                stacklevel=2,
            )
        mean, lo, hi = mean_interval(g["value"], confidence)
        half_seeds = (hi - mean) if not np.isnan(lo) else np.nan
        half_rows = z * spread.get(key, np.nan)
        parts = [h for h in (half_seeds, half_rows) if not np.isnan(h)]
        half = math.sqrt(sum(h * h for h in parts)) if parts else np.nan
        covers = " and ".join(
            name for name, h in (("seeds", half_seeds), ("test rows", half_rows))
            if not np.isnan(h)
        ) or "nothing"
        rows.append({**dict(zip(by, key)), "mean": mean, "lo": mean - half,
                     "hi": mean + half,
                     "n_seeds": int(g["value"].notna().sum()),
                     "half_seeds": half_seeds, "half_rows": half_rows,
                     "covers": covers})
    # The same columns when there is no group, so callers may select them.
    return pd.DataFrame(rows, columns=[*by, "mean", "lo", "hi", "n_seeds",
                                       "half_seeds", "half_rows", "covers"])
