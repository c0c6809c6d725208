"""Measurements of the generator's story: relatedness and label agreement.

These functions do not change any data set; they redraw the world of a seed
(cheap) and measure what the story says it built:

* :func:`relevance_correlation` is the *realised relatedness* of the scenarios:
  the Pearson correlation between two scenarios' relevance functions, each
  evaluated on one common sample of latent query-ad signals. It sees everything
  the relevance functions hold (weights, sinusoids, interactions and silent
  extractors), unlike the cosine of the weight vectors alone.
* :func:`relatedness_sweep` measures it over a grid of ``relatedness`` values.
* :func:`label_audit` labels the same query-ad pairs with all three label
  sources, so their agreement can be measured pair by pair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .generator import (
    _COMMON_INPUTS_CODE,
    DataConfig,
    _check_cfg,
    _check_seed,
    _concat_parts,
    _draw_world,
    _relevance_score,
    _scenario_rows,
    _standard_latents,
)
from .scenarios import SCENARIO_NAMES, SCENARIOS

MEASURES: tuple[str, ...] = ("target_cosine", "weight_cosine", "logit_correlation")


def _check_positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or (
        value <= 0
    ):
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _check_sample_size(n) -> int:
    """``n`` of a correlation: an integer of at least 2."""
    n = _check_positive_int("n", n)
    if n < 2:
        raise ValueError(
            f"n must be at least 2: a correlation needs two or more samples; "
            f"got {n}"
        )
    return n


def relevance_correlation(
    cfg: DataConfig | None = None, seed: int = 0, *, n: int = 20_000
) -> np.ndarray:
    """Realised relatedness: correlation of scenarios' relevance functions.

    Every scenario's relevance score is evaluated on the same ``n`` latent
    signal vectors, drawn without any scenario's covariate shift; the result is
    the Pearson correlation of those scores between scenarios. The score is
    taken before its scale and bias, which leave a correlation unchanged, and
    without the query effect, which is noise rather than part of the function.

    Parameters
    ----------
    cfg : DataConfig, optional
        Story parameters (sizes are ignored); the `default` profile's when
        omitted.
    seed : int
        The data seed whose relevance functions are measured.
    n : int
        Size of the common latent sample.

    Returns
    -------
    ndarray of shape (11, 11)
        Rows and columns in the order of ``SCENARIO_NAMES``.

    Raises
    ------
    ValueError
        If ``seed`` is negative or ``n`` is not an integer of at least 2.
    """
    cfg = _check_cfg(cfg)
    seed = _check_seed(seed)
    n = _check_sample_size(n)
    return _logit_correlation(_draw_world(cfg, seed), cfg, seed, n)


def _logit_correlation(world, cfg: DataConfig, seed: int, n: int) -> np.ndarray:
    """Correlation of the world's relevance scores on common latent inputs."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _COMMON_INPUTS_CODE]))
    z = _standard_latents(n, rng)
    scores = np.stack(
        [_relevance_score(world, cfg, i, z) for i in range(len(SCENARIOS))]
    )  # (11, n)
    return np.corrcoef(scores)


def _off_diagonal(m: np.ndarray) -> np.ndarray:
    return m[~np.eye(len(m), dtype=bool)]


def relatedness_sweep(
    knobs, cfg: DataConfig | None = None, seed: int = 0, *, n: int = 20_000
) -> pd.DataFrame:
    """Target and realised relatedness over a grid of ``relatedness`` values.

    Parameters
    ----------
    knobs : sequence of float in [0, 1]
        Values of ``DataConfig.relatedness`` to measure.
    cfg : DataConfig, optional
        Every other story parameter; the `default` profile's when omitted.
    seed : int
        The data seed; the same seed at every knob value, so the sweep moves one
        world along the knob rather than drawing a new world at each value.
    n : int
        Size of the common latent sample of :func:`relevance_correlation`.

    Returns
    -------
    DataFrame
        One row per knob value and measure, with columns ``relatedness,
        measure, mean, min, max, seen_unseen_mean``: summaries over the 55
        pairs of distinct scenarios (``seen_unseen_mean`` over the 18 pairs of a
        seen and an unseen scenario). Measures: ``target_cosine`` (the target
        correlation), ``weight_cosine`` (cosine of the realised weight vectors,
        after silent extractors are removed) and ``logit_correlation`` (see
        :func:`relevance_correlation`).

    Raises
    ------
    ValueError
        If a knob value is outside [0, 1], or ``n`` is not an integer of at
        least 2.
    """
    cfg = _check_cfg(cfg)
    seed = _check_seed(seed)
    n = _check_sample_size(n)
    seen = np.array([s.seen for s in SCENARIOS])
    cross = np.outer(seen, ~seen)  # (11, 11): seen row, unseen column
    rows = []
    for knob in knobs:
        c = dataclasses.replace(cfg, relatedness=knob)
        world = _draw_world(c, seed)
        mats = {
            "target_cosine": world.corr,
            "weight_cosine": world.weights @ world.weights.T,
            "logit_correlation": _logit_correlation(world, c, seed, n),
        }
        for measure, m in mats.items():
            off = _off_diagonal(m)
            rows.append({
                "relatedness": float(knob), "measure": measure,
                "mean": off.mean(), "min": off.min(), "max": off.max(),
                "seen_unseen_mean": m[cross].mean(),
            })
    return pd.DataFrame(rows)


def label_audit(
    cfg: DataConfig | None = None,
    seed: int = 0,
    *,
    rows_per_scenario: int = 2_000,
    scenarios=None,
) -> pd.DataFrame:
    """Query-ad pairs labelled by all three label sources at once.

    The splits each carry one label source; this sample, drawn from its own
    random stream of the same world, carries all of them, so their agreement
    can be measured on the same pairs. The teacher and the LLM also label the
    unseen scenarios here, as they would if asked.

    Parameters
    ----------
    cfg : DataConfig, optional
        Story parameters (sizes are ignored); the `default` profile's when
        omitted.
    seed : int
        The data seed.
    rows_per_scenario : int
        Rows drawn for every scenario.
    scenarios : sequence of str, optional
        Scenario names to draw; all eleven when omitted.

    Returns
    -------
    DataFrame
        The columns of a split, with ``relevance_prob``, ``teacher_prob``,
        ``llm_label`` and ``label`` all present.

    Raises
    ------
    TypeError
        If ``scenarios`` is a single string rather than a sequence of names.
    ValueError
        If ``rows_per_scenario`` is not a positive integer or a scenario name is
        unknown.
    """
    cfg = _check_cfg(cfg)
    seed = _check_seed(seed)
    n = _check_positive_int("rows_per_scenario", rows_per_scenario)
    if isinstance(scenarios, (str, bytes)):
        raise TypeError(
            f"scenarios must be a list of scenario names, not one string; got "
            f"{scenarios!r} (write [{scenarios!r}] for one scenario)"
        )
    if scenarios is not None and not isinstance(scenarios, Iterable):
        raise TypeError(
            f"scenarios must be a list of scenario names; got "
            f"{type(scenarios).__name__} {scenarios!r}"
        )
    names = list(SCENARIO_NAMES) if scenarios is None else list(scenarios)
    if not names:
        raise ValueError("scenarios must name at least one scenario; got none")
    unknown = [name for name in names if name not in SCENARIO_NAMES]
    if unknown:
        raise ValueError(
            f"scenarios must be names from {list(SCENARIO_NAMES)}; got "
            f"unknown {unknown}"
        )
    world = _draw_world(cfg, seed)
    parts = [
        _scenario_rows(world, cfg, "audit", SCENARIO_NAMES.index(name), n, seed)
        for name in names
    ]
    return _concat_parts(parts)
