"""Tables that set our summaries beside the paper's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd


def side_by_side(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    models: dict[str, tuple[str, str]],
    *,
    scenarios: list[str],
    metric: str,
) -> pd.DataFrame:
    """One metric, one row per scenario: our mean and interval beside the paper.

    Parameters
    ----------
    ours : DataFrame
        Summary with ``model, scenario, metric, mean, lo, hi`` in [0, 1].
    paper : DataFrame
        The paper's table with ``model, task, metric, value_percent``.
    models : dict
        Our model name -> (the paper's model name, column label).
    scenarios : list of str
        Row order.
    metric : str
        ``roc_auc`` or ``pr_auc``.

    Returns
    -------
    DataFrame
        Indexed by scenario; for every model a column of our value in percent
        with its 95% interval as text, and a column of the paper's value.
    """
    out = pd.DataFrame(index=pd.Index(scenarios, name="scenario"))
    for ours_name, (paper_name, label) in models.items():
        o = ours[(ours["model"] == ours_name) & (ours["metric"] == metric)]
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


def _fmt(mean: float, lo: float, hi: float) -> str:
    if np.isnan(mean):
        return "n/a"
    if np.isnan(lo):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def paired_gains(
    results: pd.DataFrame, model: str, reference: str
) -> pd.DataFrame:
    """Per-seed difference ``model - reference`` per scenario and metric.

    Parameters
    ----------
    results : DataFrame
        Tidy results ``model, seed, scenario, metric, value``.

    Returns
    -------
    DataFrame
        ``seed, scenario, metric, value`` where value is the difference.
    """
    key = ["seed", "scenario", "metric"]
    a = results[results["model"] == model].set_index(key)["value"]
    b = results[results["model"] == reference].set_index(key)["value"]
    if a.empty or b.empty:
        raise ValueError(
            f"results must hold rows of both {model!r} and {reference!r}"
        )
    diff = (a - b).dropna().rename("value").reset_index()
    diff.insert(0, "model", f"{model} - {reference}")
    return diff


def win_counts(results: pd.DataFrame, model: str, reference: str) -> pd.DataFrame:
    """How often ``model`` beats ``reference`` per metric, across scenarios.

    A scenario counts as a win (loss) when the mean over seeds of the paired
    difference is above (below) zero, and as a clear win (clear loss) when the
    whole 95% interval of that difference is above (below) zero.

    Returns
    -------
    DataFrame
        Indexed by metric: ``scenarios, wins, losses, clear_wins,
        clear_losses, mean_gain`` (gains in [0, 1] units).
    """
    from .metrics import summarise

    gains = summarise(paired_gains(results, model, reference))
    rows = {}
    for metric, g in gains.groupby("metric", sort=False):
        rows[metric] = {
            "scenarios": len(g),
            "wins": int((g["mean"] > 0).sum()),
            "losses": int((g["mean"] < 0).sum()),
            "clear_wins": int((g["lo"] > 0).sum()),
            "clear_losses": int((g["hi"] < 0).sum()),
            "mean_gain": float(g["mean"].mean()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
