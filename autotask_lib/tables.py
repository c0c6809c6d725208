"""Tables that set our summaries beside each other and beside the paper's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import HIGHER_IS_BETTER, summarise


def name_column(frame: pd.DataFrame, column: str | None = None) -> str:
    """The column that names what is compared: ``column``, else ``variant``
    when the frame has one (experiment results), else ``model``."""
    if column is not None:
        if column not in frame.columns:
            raise ValueError(
                f"column must be a column of the table; got {column!r}, columns "
                f"are {list(frame.columns)}"
            )
        return column
    return "variant" if "variant" in frame.columns else "model"


def _fmt(mean: float, lo: float, hi: float) -> str:
    if np.isnan(mean):
        return "n/a"
    if np.isnan(lo):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def side_by_side(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    models: dict[str, tuple[str, str]],
    *,
    scenarios: list[str],
    metric: str,
    column: str | None = None,
) -> pd.DataFrame:
    """One metric, one row per scenario: our mean and interval beside the paper.

    Parameters
    ----------
    ours : DataFrame
        Summary with a name column (``model`` or ``variant``) and ``scenario,
        metric, mean, lo, hi`` in [0, 1].
    paper : DataFrame
        The paper's table with ``model, task, metric, value_percent``.
    models : dict
        Our model name -> (the paper's model name, column label).
    scenarios : list of str
        Row order.
    metric : str
        ``roc_auc`` or ``pr_auc``.
    column : str, optional
        The name column of ``ours``; see :func:`name_column`.

    Returns
    -------
    DataFrame
        Indexed by scenario; for every model a column of our value in percent
        with its 95% interval as text, and a column of the paper's value.
    """
    col = name_column(ours, column)
    out = pd.DataFrame(index=pd.Index(scenarios, name="scenario"))
    for ours_name, (paper_name, label) in models.items():
        o = ours[(ours[col] == ours_name) & (ours["metric"] == metric)]
        o = o.set_index("scenario").reindex(scenarios)
        out[f"{label} (ours)"] = [
            _fmt(m, lo, hi) for m, lo, hi in zip(o["mean"], o["lo"], o["hi"])
        ]
        p = paper[(paper["model"] == paper_name) & (paper["metric"] == metric)]
        p = p.set_index("task").reindex(scenarios)["value_percent"]
        out[f"{label} (paper)"] = [
            "" if np.isnan(v) else f"{v:.1f}" for v in p.to_numpy()
        ]
    return out


def summary_table(
    summary: pd.DataFrame,
    labels: dict[str, str],
    *,
    scenarios: list[str],
    metric: str,
    column: str | None = None,
) -> pd.DataFrame:
    """One metric, one row per scenario, one column per model: mean [interval].

    Parameters
    ----------
    summary : DataFrame
        From :func:`autotask_lib.metrics.summarise`, values in [0, 1].
    labels : dict
        Name in the summary -> column label, in column order.
    scenarios : list of str
        Row order; a scenario a model lacks shows ``n/a``.
    metric : str
        The metric to show, in percent.
    column : str, optional
        The name column; see :func:`name_column`.

    Returns
    -------
    DataFrame of str
    """
    col = name_column(summary, column)
    out = pd.DataFrame(index=pd.Index(scenarios, name="scenario"))
    for name, label in labels.items():
        s = summary[(summary[col] == name) & (summary["metric"] == metric)]
        s = s.set_index("scenario").reindex(scenarios)
        out[label] = [_fmt(m, lo, hi) for m, lo, hi in
                      zip(s["mean"], s["lo"], s["hi"])]
    return out


def paired_gains(
    results: pd.DataFrame, model: str, reference: str, *, column: str | None = None
) -> pd.DataFrame:
    """Per-seed difference ``model - reference`` per scenario and metric.

    Parameters
    ----------
    results : DataFrame
        Tidy results: a name column (see :func:`name_column`), ``seed,
        scenario, metric, value``, and ``replicate`` for bootstrap values
        (differences are then taken replicate by replicate).
    model, reference : str
        The two names to compare.
    column : str, optional
        The name column.

    Returns
    -------
    DataFrame
        The name column (``"model - reference"``), ``seed, scenario, metric``,
        ``replicate`` when present, and ``value``, the difference.
    """
    col = name_column(results, column)
    key = ["seed", "scenario", "metric"]
    if "replicate" in results.columns:
        key.append("replicate")
    a = results[results[col] == model].set_index(key)["value"]
    b = results[results[col] == reference].set_index(key)["value"]
    if a.empty or b.empty:
        raise ValueError(
            f"results must hold rows of both {model!r} and {reference!r}"
        )
    diff = (a - b).dropna().rename("value").reset_index()
    diff.insert(0, col, f"{model} - {reference}")
    return diff


def paired_summary(
    results: pd.DataFrame, model: str, reference: str, *,
    replicates: pd.DataFrame | None = None, column: str | None = None,
) -> pd.DataFrame:
    """Mean and 95% interval of ``model - reference`` per scenario and metric.

    With ``replicates`` the interval covers the test rows as well as the
    seeds (see :func:`autotask_lib.metrics.summarise`); the differences are
    paired on both.
    """
    col = name_column(results, column)
    gains = paired_gains(results, model, reference, column=col)
    reps = None
    if replicates is not None and len(replicates):
        reps = paired_gains(replicates, model, reference, column=col)
    return summarise(gains, by=(col, "scenario", "metric"), replicates=reps)


def win_counts(
    results: pd.DataFrame, model: str, reference: str, *,
    replicates: pd.DataFrame | None = None, column: str | None = None,
) -> pd.DataFrame:
    """How often ``model`` beats ``reference`` per metric, across scenarios.

    A scenario counts as a win (loss) when the mean over seeds of the paired
    difference is better (worse) than zero, and as a clear win (clear loss)
    when the whole 95% interval of that difference is. Better means above
    zero for ROC AUC and PR AUC, below zero for the calibration error.

    Parameters
    ----------
    results : DataFrame
        Tidy results (see :func:`paired_gains`).
    model, reference : str
        The two names to compare.
    replicates : DataFrame, optional
        Bootstrap values over test rows; the interval then covers them too.
    column : str, optional
        The name column.

    Returns
    -------
    DataFrame
        Indexed by metric: ``scenarios, wins, losses, clear_wins,
        clear_losses, mean_gain`` (gains in [0, 1] units, ``model -
        reference``).
    """
    gains = paired_summary(results, model, reference, replicates=replicates,
                           column=column)
    rows = {}
    for metric, g in gains.groupby("metric", sort=False):
        sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
        mean, lo, hi = sign * g["mean"], sign * g["lo"], sign * g["hi"]
        if sign < 0:
            lo, hi = hi, lo
        rows[metric] = {
            "scenarios": len(g),
            "wins": int((mean > 0).sum()),
            "losses": int((mean < 0).sum()),
            "clear_wins": int((lo > 0).sum()),
            "clear_losses": int((hi < 0).sum()),
            "mean_gain": float(g["mean"].mean()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
