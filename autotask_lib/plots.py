"""Figures that set our results beside the paper's."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

METRIC_LABELS = {"roc_auc": "ROC AUC (%)", "pr_auc": "PR AUC (%)"}


def plot_vs_paper(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    models: dict[str, tuple[str, str]],
    *,
    scenarios: list[str],
    unseen: tuple[str, ...] = (),
    metrics: tuple[str, ...] = ("roc_auc", "pr_auc"),
):
    """Per-scenario metrics of our models beside the paper's, one panel a metric.

    Parameters
    ----------
    ours : DataFrame
        Summary from :func:`autotask_lib.metrics.summarise`: ``model, scenario,
        metric, mean, lo, hi`` with values in [0, 1].
    paper : DataFrame
        The paper's table: ``model, task, metric, value_percent``.
    models : dict
        Our model name -> (the paper's model name, label shown in the legend).
    scenarios : list of str
        Scenarios in display order.
    unseen : tuple of str
        Scenarios to shade as unseen in training.

    Returns
    -------
    matplotlib Figure
    """
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, 3.3 * len(metrics)),
                             sharex=True, constrained_layout=True)
    axes = np.atleast_1d(axes)
    x = np.arange(len(scenarios))
    width = 0.8 / max(1, len(models))
    for ax, metric in zip(axes, metrics):
        for k, (ours_name, (paper_name, label)) in enumerate(models.items()):
            offset = (k - (len(models) - 1) / 2) * width
            o = ours[(ours["model"] == ours_name) & (ours["metric"] == metric)]
            o = o.set_index("scenario").reindex(scenarios)
            mean = 100 * o["mean"].to_numpy()
            err = np.vstack([mean - 100 * o["lo"].to_numpy(),
                             100 * o["hi"].to_numpy() - mean])
            ax.errorbar(x + offset, mean, yerr=np.nan_to_num(err), fmt="o",
                        color=colours[k], capsize=3, label=f"{label}: ours")
            p = paper[(paper["model"] == paper_name) & (paper["metric"] == metric)]
            p = p.set_index("task").reindex(scenarios)["value_percent"]
            ax.plot(x + offset, p.to_numpy(), "s", mfc="none", ms=8,
                    color=colours[k], label=f"{label}: paper")
        for name in unseen:
            if name in scenarios:
                i = scenarios.index(name)
                ax.axvspan(i - 0.5, i + 0.5, color="0.9", zorder=0)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=2, fontsize=8, loc="lower left")
    axes[-1].set_xticks(x, scenarios, rotation=30)
    if unseen:
        axes[-1].set_xlabel("scenario (shaded: unseen in training)")
    return fig
