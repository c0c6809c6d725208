"""Figures: our results beside the paper's, per-scenario comparisons and
reliability diagrams."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .tables import name_column

METRIC_LABELS = {"roc_auc": "ROC AUC (%)", "pr_auc": "PR AUC (%)",
                 "ece": "expected calibration error (%)"}


def _colours() -> list[str]:
    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _shade_unseen(ax, scenarios: list[str], unseen) -> None:
    for name in unseen:
        if name in scenarios:
            i = scenarios.index(name)
            ax.axvspan(i - 0.5, i + 0.5, color="0.9", zorder=0)


def _errorbar_series(ax, s: pd.DataFrame, x, colour, label, scale=100.0):
    mean = scale * s["mean"].to_numpy()
    err = np.vstack([mean - scale * s["lo"].to_numpy(),
                     scale * s["hi"].to_numpy() - mean])
    ax.errorbar(x, mean, yerr=np.nan_to_num(err), fmt="o", color=colour,
                capsize=3, label=label)


def plot_vs_paper(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    models: dict[str, tuple[str, str]],
    *,
    scenarios: list[str],
    unseen: tuple[str, ...] = (),
    metrics: tuple[str, ...] = ("roc_auc", "pr_auc"),
    column: str | None = None,
):
    """Per-scenario metrics of our models beside the paper's, one panel a metric.

    Parameters
    ----------
    ours : DataFrame
        Summary from :func:`autotask_lib.metrics.summarise`: a name column
        (``model`` or ``variant``), ``scenario, metric, mean, lo, hi`` with
        values in [0, 1].
    paper : DataFrame
        The paper's table: ``model, task, metric, value_percent``.
    models : dict
        Our model name -> (the paper's model name, label shown in the legend).
    scenarios : list of str
        Scenarios in display order.
    unseen : tuple of str
        Scenarios to shade as unseen in training.
    metrics : tuple of str
        One panel per metric, top to bottom.
    column : str, optional
        The name column of ``ours``; see :func:`autotask_lib.tables.name_column`.

    Returns
    -------
    matplotlib Figure
    """
    col = name_column(ours, column)
    colours = _colours()
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, 3.3 * len(metrics)),
                             sharex=True, constrained_layout=True)
    axes = np.atleast_1d(axes)
    x = np.arange(len(scenarios))
    width = 0.8 / max(1, len(models))
    for ax, metric in zip(axes, metrics):
        for k, (ours_name, (paper_name, label)) in enumerate(models.items()):
            offset = (k - (len(models) - 1) / 2) * width
            o = ours[(ours[col] == ours_name) & (ours["metric"] == metric)]
            o = o.set_index("scenario").reindex(scenarios)
            _errorbar_series(ax, o, x + offset, colours[k], f"{label}: ours")
            p = paper[(paper["model"] == paper_name) & (paper["metric"] == metric)]
            p = p.set_index("task").reindex(scenarios)["value_percent"]
            ax.plot(x + offset, p.to_numpy(), "s", mfc="none", ms=8,
                    color=colours[k], label=f"{label}: paper")
        _shade_unseen(ax, scenarios, unseen)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=2, fontsize=8, loc="lower left")
    axes[-1].set_xticks(x, scenarios, rotation=30)
    if unseen:
        axes[-1].set_xlabel("scenario (shaded: unseen in training)")
    return fig


def plot_variants(
    summary: pd.DataFrame,
    labels: dict[str, str],
    *,
    scenarios: list[str],
    metrics: tuple[str, ...] = ("roc_auc",),
    unseen: tuple[str, ...] = (),
    column: str | None = None,
    zero_line: bool = False,
    ylabels: dict[str, str] | None = None,
):
    """Per-scenario mean and 95% interval of several models, one panel a metric.

    Parameters
    ----------
    summary : DataFrame
        From :func:`autotask_lib.metrics.summarise` (values in [0, 1], shown
        in percent), for example of paired differences.
    labels : dict
        Name in the summary -> legend label, in drawing order.
    scenarios : list of str
        Scenarios in display order.
    metrics : tuple of str
        One panel per metric, top to bottom.
    unseen : tuple of str
        Scenarios to shade as unseen in training.
    column : str, optional
        The name column; see :func:`autotask_lib.tables.name_column`.
    zero_line : bool
        Draw a line at zero (for differences).
    ylabels : dict, optional
        Metric -> axis label, overriding the default labels.

    Returns
    -------
    matplotlib Figure
    """
    col = name_column(summary, column)
    colours = _colours()
    ylabels = {**METRIC_LABELS, **(ylabels or {})}
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, 3.0 * len(metrics)),
                             sharex=True, constrained_layout=True, squeeze=False)
    axes = axes[:, 0]
    x = np.arange(len(scenarios))
    width = 0.8 / max(1, len(labels))
    for ax, metric in zip(axes, metrics):
        for k, (name, label) in enumerate(labels.items()):
            offset = (k - (len(labels) - 1) / 2) * width
            s = summary[(summary[col] == name) & (summary["metric"] == metric)]
            s = s.set_index("scenario").reindex(scenarios)
            _errorbar_series(ax, s, x + offset, colours[k % len(colours)], label)
        if zero_line:
            ax.axhline(0.0, color="0.3", lw=0.8)
        _shade_unseen(ax, scenarios, unseen)
        ax.set_ylabel(ylabels.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=min(3, len(labels)), fontsize=8)
    axes[-1].set_xticks(x, scenarios, rotation=30)
    if unseen:
        axes[-1].set_xlabel("scenario (shaded: unseen in training)")
    return fig


def plot_reliability(
    curves: pd.DataFrame,
    labels: dict[str, str],
    *,
    scenarios: list[str],
    ece: pd.DataFrame | None = None,
    ncols: int = 4,
    column: str | None = None,
):
    """Reliability diagrams, one panel a scenario, one line a model.

    Each bin is a marker whose area grows with its share of the scenario's
    rows, so that sparse bins, whose observed rate is noisy, stand out.

    Parameters
    ----------
    curves : DataFrame
        A name column, ``scenario``, and the columns of
        :func:`autotask_lib.metrics.reliability_curve` (``mean_prob,
        frac_pos, n_rows``).
    labels : dict
        Name in ``curves`` -> legend label, in drawing order.
    scenarios : list of str
        One panel each, in order.
    ece : DataFrame, optional
        A summary (name column, ``scenario, metric, mean``) whose ``ece``
        rows are printed in each panel's legend.
    ncols : int
        Panels per row.
    column : str, optional
        The name column; see :func:`autotask_lib.tables.name_column`.

    Returns
    -------
    matplotlib Figure
    """
    col = name_column(curves, column)
    colours = _colours()
    nrows = -(-len(scenarios) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows),
                             sharex=True, sharey=True, constrained_layout=True,
                             squeeze=False)
    for ax, scenario in zip(axes.ravel(), scenarios):
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
        for k, (name, label) in enumerate(labels.items()):
            c = curves[(curves[col] == name) & (curves["scenario"] == scenario)]
            if c.empty:
                continue
            text = label
            if ece is not None:
                e = ece[(ece[col] == name) & (ece["scenario"] == scenario)
                        & (ece["metric"] == "ece")]
                if len(e):
                    text = f"{label}: ECE {100 * e['mean'].iloc[0]:.1f}%"
            colour = colours[k % len(colours)]
            ax.plot(c["mean_prob"], c["frac_pos"], "-", lw=1, color=colour,
                    label=text)
            # Marker area grows with the bin's share of the scenario's rows.
            share = c["n_rows"] / c["n_rows"].sum()
            ax.scatter(c["mean_prob"], c["frac_pos"], s=4 + 80 * share,
                       color=colour, zorder=3)
        ax.set_title(scenario, fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
        ax.set_aspect("equal")
    flat = axes.ravel()
    for ax in flat[len(scenarios):]:
        ax.set_visible(False)
    for i, ax in enumerate(flat[:len(scenarios)]):
        if i + ncols >= len(scenarios):  # the lowest panel of its column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("mean predicted probability", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("observed rate of relevant", fontsize=8)
    return fig


def plot_gains_vs_paper(
    gains: pd.DataFrame,
    paper_gains: pd.DataFrame | None,
    labels: dict[str, str],
    *,
    scenarios: list[str],
    metrics: tuple[str, ...] = ("roc_auc",),
    unseen: tuple[str, ...] = (),
    column: str | None = None,
):
    """Paired gains per scenario with their intervals, beside the paper's gains.

    Parameters
    ----------
    gains : DataFrame
        From :func:`autotask_lib.tables.paired_summary`: a name column, then
        ``scenario, metric, mean, lo, hi`` in [0, 1] units (shown in points).
    paper_gains : DataFrame or None
        The paper's gains in points: the same name column, ``scenario,
        metric, value``; drawn as hollow squares where the paper has them.
    labels : dict
        Name in ``gains`` -> legend label, in drawing order.
    scenarios : list of str
        Scenarios in display order.
    metrics : tuple of str
        One panel per metric, top to bottom.
    unseen : tuple of str
        Scenarios to shade as unseen in training.
    column : str, optional
        The name column; see :func:`autotask_lib.tables.name_column`.

    Returns
    -------
    matplotlib Figure
    """
    col = name_column(gains, column)
    with_paper = paper_gains is not None and not paper_gains.empty
    ours = {k: f"{v}: ours" if with_paper else v for k, v in labels.items()}
    fig = plot_variants(gains, ours, scenarios=scenarios, metrics=metrics,
                        unseen=unseen, column=col, zero_line=True, ylabels={
                            m: f"gain in {METRIC_LABELS.get(m, m)} points"
                            .replace(" (%)", "") for m in metrics})
    if not with_paper:
        return fig
    colours = _colours()
    x = np.arange(len(scenarios))
    width = 0.8 / max(1, len(labels))
    for ax, metric in zip(fig.axes, metrics):
        for k, name in enumerate(labels):
            p = paper_gains[(paper_gains[col] == name)
                            & (paper_gains["metric"] == metric)]
            if p.empty:
                continue
            p = p.set_index("scenario").reindex(scenarios)["value"]
            offset = (k - (len(labels) - 1) / 2) * width
            ax.plot(x + offset, p.to_numpy(), "s", mfc="none", ms=8,
                    color=colours[k % len(colours)],
                    label=f"{labels[name]}: paper")
    fig.axes[0].legend(ncol=2, fontsize=8)
    return fig


def plot_forest(
    table: pd.DataFrame,
    *,
    label: str = "label",
    colour_by: str | None = None,
    colours: dict[str, str] | None = None,
    paper: str | None = None,
    scale: float = 100.0,
    xlabel: str = "difference (points)",
    ax=None,
):
    """Differences with their 95% intervals, one row each, top to bottom.

    Parameters
    ----------
    table : DataFrame
        One row per difference: ``mean, lo, hi`` (multiplied by ``scale``
        for display) and the columns named below.
    label : str
        The column of row labels.
    colour_by : str, optional
        A column whose values pick each row's colour (through ``colours``)
        and make up the legend.
    colours : dict, optional
        Value of ``colour_by`` -> colour; the colour cycle when omitted.
    paper : str, optional
        A column of the paper's value of each difference, already in display
        units, drawn as a hollow square where it is not NaN.
    scale : float
        Display units per unit of ``mean, lo, hi``.
    xlabel : str
    ax : matplotlib Axes, optional
        Draw here instead of in a new figure.

    Returns
    -------
    matplotlib Figure
    """
    missing = [c for c in ("mean", "lo", "hi", label, colour_by, paper)
               if c is not None and c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the columns {missing}")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.8 + 0.24 * len(table)),
                             constrained_layout=True)
    y = -np.arange(len(table))
    keys = table[colour_by].tolist() if colour_by else [None] * len(table)
    cycle = _colours()
    lookup = dict(colours or {})
    for key in dict.fromkeys(keys):
        lookup.setdefault(key, cycle[len(lookup) % len(cycle)])
    mean = scale * table["mean"].to_numpy(dtype=float)
    lo = scale * table["lo"].to_numpy(dtype=float)
    hi = scale * table["hi"].to_numpy(dtype=float)
    for key in dict.fromkeys(keys):
        m = np.array([k == key for k in keys])
        err = np.nan_to_num(np.vstack([mean[m] - lo[m], hi[m] - mean[m]]))
        ax.errorbar(mean[m], y[m], xerr=err, fmt="o", color=lookup[key],
                    capsize=3, label=key)
    if paper is not None:
        p = table[paper].to_numpy(dtype=float)
        keep = ~np.isnan(p)
        if keep.any():
            ax.plot(p[keep], y[keep], "s", mfc="none", ms=8, color="0.3",
                    label="paper")
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_yticks(y, table[label].tolist(), fontsize=8)
    ax.set_ylim(y.min() - 0.7, 0.7)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return ax.figure
