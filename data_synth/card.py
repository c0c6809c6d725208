"""The data card: what the data stands for, how it was made, what it must hold.

A card is written as ``data_card.json`` beside every saved data set, and the
book renders it as a page. It records the story (in words and as parameters),
the targets the story sets for every split and scenario with a tolerance, the
realised values, the measured relatedness, the library versions and the
fingerprint. :func:`card_check` compares a data set with its card's targets.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from . import features as F
from .diagnostics import relevance_correlation
from .generator import (
    LABEL_COLUMNS,
    PROFILE_SIZES,
    SPLITS,
    DataConfig,
    SyntheticData,
    target_correlation,
    target_rows,
)
from .scenarios import FAMILIES, SCENARIO_NAMES, SCENARIOS, SEEN, UNSEEN, Scenario

CARD_VERSION = 3  # bump when the card's layout changes

# How the card names the families of ``scenarios.FAMILIES``.
FAMILY_NAMES: dict[str, str] = {
    "travel": "travel",
    "retail": "retail",
    "finance": "finance and insurance",
    "health": "health",
    "local": "local services",
}

# ---------------------------------------------------------------------------
# The story in words
# ---------------------------------------------------------------------------

_STORY: dict[str, str] = {
    "purpose": (
        "A stand-in for the private multi-scenario ads relevance data of the "
        "AutoTask paper (arXiv 2407.06549, section 4.1.1): query-ad pairs "
        "described by numeric features, each labelled relevant or not, from "
        "eleven ad scenarios. It has the structure the paper's problem has; it "
        "does not have the paper's numbers."
    ),
    "scenarios": (
        "The paper's eleven scenarios, in five families: {families}. A "
        "scenario may belong to two families. The nine seen scenarios get task "
        "IDs 1 to 9; {unseen} appear only in the test split and get task ID 0, "
        "unknown."
    ),
    "relevance": (
        "A scenario's relevance is a logistic function of {p} latent query-ad "
        "signals: a linear part along the scenario's weight vector, three "
        "sinusoids of that linear part (as in the MMoE paper's synthetic "
        "tasks), {n_pairs} pairwise interactions (a title match counts for more "
        "on a good landing page, a location match for more when the keyword "
        "names a place, and so on), an effect shared by every candidate of one "
        "query, and a bias that sets the scenario's positive rate. Its scale "
        "sets how separable the scenario is."
    ),
    "relatedness": (
        "Each scenario's weight vector mixes one shared direction (a closer "
        "match and a better ad are more relevant whatever the ad sells) with a "
        "scenario-specific direction; specific directions of one family are "
        "correlated. The relatedness knob r sets the mix, so the cosine between "
        "two scenarios' weights is r + (1 - r) times their family similarity: "
        "r = 1 gives one shared function, r = 0 with no family structure gives "
        "unrelated ones. For one seed the specific directions stay fixed as r "
        "moves, so a sweep moves one world along the knob."
    ),
    "unseen_scenarios": (
        "{unseen_families} Each therefore resembles some seen scenarios "
        "through shared families ({unseen_nearest}, by target cosine), but has "
        "its own specific direction, covariate shift, silent extractors, "
        "signal and positive rate: it copies none of them."
    ),
    "features": (
        "A model sees the outputs of feature extractors, not the latent "
        "signals: {kinds}. Similarities share a topical factor and quality "
        "scores an advertiser factor; a flag is a noisy one-bit view of a "
        "similarity; counts have heavy log-normal tails. Each scenario shifts "
        "and rescales the latent signals (covariate shift), and some "
        "extractors never fire in some scenarios (a credit card has no "
        "location, a tour no brand): they report 0 there and carry none of "
        "that scenario's relevance."
    ),
    "queries": (
        "Rows come as in ads logs: a query has 1 + Poisson({poisson:g}) "
        "candidate ads (at most {max_candidates}), all of its scenario, listed "
        "together under one query_id. The query's frequency and its effect on "
        "relevance are the same for all of its candidates."
    ),
    "labels": (
        "Three label sources, as in the paper (section 4.1.1). Teacher soft "
        "labels: a generic model that blurs each scenario's relevance towards "
        "the seen scenarios' average, errs on the logit scale, and is over- or "
        "under-confident and shifted per scenario; they label the large initial "
        "training split. LLM labels: a draw from the true relevance, flipped "
        "at a scenario-dependent rate of {flip_lo:.0%} to {flip_hi:.0%}; they "
        "label the fine-tuning and calibration splits. Test labels: a draw "
        "from the true relevance. The true relevance probability is kept in "
        "relevance_prob, which no model reads."
    ),
    "splits": (
        "teacher_train (teacher labels, seen scenarios), llm_train and "
        "calibration (LLM labels, seen scenarios), test (test labels, all "
        "eleven scenarios; {default_test:,} rows on the default profile, as in "
        "the paper). Scenario sizes and positive rates are imbalanced: shares "
        "of the test split run from {share_lo:.0%} to {share_hi:.0%}, positive "
        "rates from {rate_lo:.0%} to {rate_hi:.0%}."
    ),
    "parameters": (
        "Every story parameter was fixed from this story before any model was "
        "compared, and none is tuned to make one model win. Signal strengths "
        "were set from the order of difficulty of the paper's Table 1 baseline "
        "(Cruise and Store easy; Hotel, Insurance and RealEstate hard); "
        "positive rates are high, as the paper's PR AUCs, mostly above its ROC "
        "AUCs, suggest."
    ),
}


def story(cfg: DataConfig) -> dict[str, str]:
    """The generative story in words, with the numbers of ``cfg`` filled in."""

    def names(xs) -> str:
        xs = list(xs)
        return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]

    families = []
    for f in FAMILIES:
        members = [s.name for s in SCENARIOS if s.family.get(f, 0.0) > 0]
        families.append(f"{FAMILY_NAMES[f]} ({names(members)})")
    corr = target_correlation(cfg.relatedness, cfg.family_strength)
    seen_idx = [SCENARIO_NAMES.index(n) for n in SEEN]
    nearest, unseen_families = [], []
    for name in UNSEEN:
        i = SCENARIO_NAMES.index(name)
        top = sorted(seen_idx, key=lambda j: -corr[i, j])[:3]
        nearest.append(f"{names(SCENARIO_NAMES[j] for j in top)} for {name}")
        fams = [FAMILY_NAMES[f] for f in FAMILIES
                if SCENARIOS[i].family.get(f, 0.0) > 0]
        unseen_families.append(f"{name} loads on the {names(fams)} families.")
    kinds = [
        f"{F.FEATURE_KINDS.count(k)} {k} features"
        for k in dict.fromkeys(F.FEATURE_KINDS)
    ]
    values = {
        "families": "; ".join(families),
        "unseen": names(UNSEEN),
        "p": F.NUM_FEATURES,
        "n_pairs": len(F.INTERACTIONS),
        "unseen_families": " ".join(unseen_families),
        "unseen_nearest": "; ".join(nearest),
        "kinds": names(kinds),
        "poisson": cfg.mean_candidates - 1,
        "max_candidates": cfg.max_candidates,
        "flip_lo": min(s.llm_flip for s in SCENARIOS),
        "flip_hi": max(s.llm_flip for s in SCENARIOS),
        "default_test": PROFILE_SIZES["default"]["test"],
        "share_lo": min(s.test_share for s in SCENARIOS),
        "share_hi": max(s.test_share for s in SCENARIOS),
        "rate_lo": min(s.positive_rate for s in SCENARIOS),
        "rate_hi": max(s.positive_rate for s in SCENARIOS),
    }
    return {key: text.format(**values) for key, text in _STORY.items()}


def _default_relatedness_reason() -> str:
    """Why the relatedness knob defaults to its value, in words."""
    fields = DataConfig.__dataclass_fields__
    r = fields["relatedness"].default
    f = fields["family_strength"].default
    return (
        "The paper (section 3.1) describes relevance whose core is the same in "
        "every scenario while queries and offers differ in properties and "
        "distribution, and a general model that is good but beaten by "
        "scenario-specific ones on some scenarios (Tables 1 and 2). Half "
        f"shared, half specific is the plain reading, so r = {r:g}: with the "
        f"family strength of {f:g}, two scenarios of unrelated families then "
        f"have a weight cosine of {r:g}, two of one family up to "
        f"{r + (1 - r) * f:g}."
    )


RELATEDNESS_MEASURE = (
    "Realised relatedness is the Pearson correlation of two scenarios' "
    "relevance scores evaluated on one common sample of latent signals, drawn "
    "without any scenario's covariate shift (data_synth.relevance_correlation). "
    "It includes the sinusoids, the interactions and the silent extractors. "
    "The cosine of the realised weight vectors is reported beside it."
)

TOLERANCE_RULE = (
    "Rows per scenario and split must equal the target exactly. A mean of "
    "relevance_prob or of a binary label must lie within 0.01 + 4 * "
    "sqrt(p (1 - p) / n) of its target p, with n the rows: four standard errors "
    "of a sampled rate plus 0.01 for the bias, which is fitted on a finite "
    "sample of 20,000 rows. The teacher's mean has no target: it is "
    "miscalibrated on purpose."
)

LIMITS: tuple[str, ...] = (
    "It can show whether a mechanism of the paper (task-ID encoding, attention "
    "across rows, one model for all scenarios) helps on data with the "
    "structure the paper describes, and how that answer moves with the "
    "structure (relatedness, label noise, scenario sizes).",
    "It cannot show that the paper's numbers hold on Microsoft's data: the "
    "story is ours, and a model that wins here wins on our story.",
    "The features are numbers drawn from a story, not extracted from text; "
    "the paper's claim that its model could read language as well as features "
    "is out of reach.",
    "Absolute metric levels depend on parameters we chose (signal, label "
    "noise); compare models with each other, not with the paper's levels.",
    "The same seed, configuration and library versions give the same data on "
    "one machine; another CPU can round floating point differently in its "
    "linear algebra and change the fingerprint.",
)


# ---------------------------------------------------------------------------
# Targets and tolerances
# ---------------------------------------------------------------------------


def rate_tolerance(rate: float, rows: int) -> float:
    """Allowed gap between a realised mean over ``rows`` rows and its target.

    Parameters
    ----------
    rate : float in [0, 1]
        The target mean ``p``.
    rows : int
        Rows the mean is taken over, at least 1.

    Returns
    -------
    float
        ``0.01 + 4 * sqrt(p (1 - p) / rows)`` (see ``TOLERANCE_RULE``).

    Raises
    ------
    TypeError
        If ``rate`` is not a real number or ``rows`` not an integer.
    ValueError
        If ``rate`` is NaN or outside [0, 1], or ``rows`` is below 1.
    """
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool):
        raise TypeError(f"rate must be a real number in [0, 1]; got {rate!r}")
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise ValueError(f"rate must be a number in [0, 1]; got {rate!r}")
    if not isinstance(rows, numbers.Integral) or isinstance(rows, bool):
        raise TypeError(f"rows must be an integer of at least 1; got {rows!r}")
    if rows < 1:
        raise ValueError(
            f"rows must be at least 1 (a mean over no rows has no tolerance); "
            f"got {rows!r}"
        )
    return 0.01 + 4.0 * float(np.sqrt(rate * (1.0 - rate) / rows))


def expected_label_mean(split: str, s: Scenario) -> float | None:
    """Expected mean of ``split``'s label column for scenario ``s``.

    Test labels are drawn from the truth, so their mean is the positive rate;
    LLM labels are flipped at rate ``f``, so theirs is ``p (1 - f) + (1 - p) f``;
    the teacher has no target (None).
    """
    p = s.positive_rate
    if split == "test":
        return p
    if split in ("llm_train", "calibration"):
        return p * (1 - s.llm_flip) + (1 - p) * s.llm_flip
    return None


def card_targets(cfg: DataConfig) -> list[dict]:
    """What the story promises for every split and scenario, with tolerances.

    Returns
    -------
    list of dict
        Records ``split, scenario, quantity, target, tolerance`` for the
        quantities ``rows``, ``relevance_mean`` and ``label_mean``.
    """
    out = []
    rows = target_rows(cfg)
    for split in SPLITS:
        for s in SCENARIOS:
            n = rows[split][s.name]
            if n == 0:
                continue
            out.append({"split": split, "scenario": s.name, "quantity": "rows",
                        "target": n, "tolerance": 0})
            out.append({"split": split, "scenario": s.name,
                        "quantity": "relevance_mean", "target": s.positive_rate,
                        "tolerance": rate_tolerance(s.positive_rate, n)})
            label = expected_label_mean(split, s)
            if label is not None:
                out.append({"split": split, "scenario": s.name,
                            "quantity": "label_mean", "target": label,
                            "tolerance": rate_tolerance(label, n)})
    return out


def _realised(data: SyntheticData) -> list[dict]:
    """Realised size, queries and means of every split and scenario."""
    out = []
    for split in SPLITS:
        frame = data[split]
        label = LABEL_COLUMNS[split]
        for name, g in frame.groupby("scenario", observed=True):
            queries = int(g["query_id"].nunique())
            out.append({
                "split": split, "scenario": str(name), "rows": int(len(g)),
                "queries": queries,
                "mean_candidates": float(len(g) / queries),
                "relevance_mean": float(g["relevance_prob"].mean()),
                "label_column": label,
                "label_mean": float(g[label].mean()),
            })
    return out


def card_check(data: SyntheticData, card: dict | None = None) -> pd.DataFrame:
    """Compare a data set with the targets of a data card.

    Parameters
    ----------
    data : SyntheticData
        The data set; realised values are computed from its frames.
    card : dict, optional
        A data card; by default the card of ``data`` itself.

    Returns
    -------
    DataFrame
        One row per target: ``split, scenario, quantity, target, realised,
        tolerance, gap, within``; ``within`` is True when ``gap <= tolerance``.

    Raises
    ------
    TypeError
        If ``data`` is not a SyntheticData or ``card`` is not a dict.
    ValueError
        If ``card`` lacks its ``targets``, or a target lacks one of its keys.
    """
    if not isinstance(data, SyntheticData):
        raise TypeError(f"data must be a SyntheticData; got {type(data).__name__}")
    targets = card_targets(data.config) if card is None else _card_targets_of(card)
    realised = {(r["split"], r["scenario"]): r for r in _realised(data)}
    rows = []
    for t in targets:
        r = realised.get((t["split"], t["scenario"]))
        value = np.nan if r is None else r[t["quantity"]]
        gap = abs(value - t["target"])
        rows.append({**t, "realised": value, "gap": gap,
                     "within": bool(gap <= t["tolerance"])})
    columns = ["split", "scenario", "quantity", "target", "realised",
               "tolerance", "gap", "within"]
    return pd.DataFrame(rows)[columns]


_TARGET_KEYS = ("split", "scenario", "quantity", "target", "tolerance")
_QUANTITIES = ("rows", "relevance_mean", "label_mean")


def _card_targets_of(card) -> list[dict]:
    """The ``targets`` of a data card, each checked for the keys it needs."""
    if not isinstance(card, dict):
        raise TypeError(
            f"card must be a data card dict (data_card or read_card makes one); "
            f"got {type(card).__name__}"
        )
    targets = card.get("targets")
    if not isinstance(targets, list):
        raise ValueError(
            "card must hold a list of targets under 'targets' (see "
            f"card_targets); got keys {sorted(card)[:8]!r}"
        )
    for i, t in enumerate(targets):
        missing = ([k for k in _TARGET_KEYS if k not in t]
                   if isinstance(t, dict) else list(_TARGET_KEYS))
        if missing:
            raise ValueError(
                f"card target {i} must have the keys {list(_TARGET_KEYS)}; it "
                f"lacks {missing}"
            )
        if t["quantity"] not in _QUANTITIES:
            raise ValueError(
                f"card target {i} must measure one of {list(_QUANTITIES)}; got "
                f"{t['quantity']!r}"
            )
    return targets


# ---------------------------------------------------------------------------
# The card
# ---------------------------------------------------------------------------


def card_checksum(config: dict, seed: int, fingerprint: str) -> str:
    """Checksum of the three card entries that say what made the files.

    The fingerprint covers the splits' content only; this checksum, written on
    the card beside them, covers the configuration and seed that made the
    splits and the fingerprint they had, so that an edit of any of them on a
    saved card is detected when the data set is loaded.

    Parameters
    ----------
    config : dict
        The configuration as the card records it (``asdict`` of a DataConfig).
    seed : int
    fingerprint : str

    Returns
    -------
    str
        16 hexadecimal digits.
    """
    blob = json.dumps({"config": config, "seed": seed, "fingerprint": fingerprint},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _versions() -> dict[str, str]:
    import pyarrow
    import tqdm

    return {"python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "pyarrow": pyarrow.__version__,
            "tqdm": tqdm.__version__}


def _profile_of(cfg: DataConfig) -> str | None:
    for name, sizes in PROFILE_SIZES.items():
        if sizes == cfg.sizes:
            return name
    return None


def data_card(data: SyntheticData) -> dict:
    """A JSON-ready description of a data set: story, targets, realised values.

    Returns
    -------
    dict
        Keys ``card_version, name, seed, fingerprint, checksum, profile,
        config, library_versions, story, limits, relatedness, families, scenarios,
        seen, unseen, features, task_id_column, splits, tolerance_rule,
        targets, realised, target_correlation``.
    """
    cfg = data.config
    realised_corr = relevance_correlation(cfg, data.seed)
    cosine = data.weights @ data.weights.T
    off = ~np.eye(len(SCENARIOS), dtype=bool)
    seen_idx = [SCENARIO_NAMES.index(n) for n in SEEN]
    nearest = {}
    for name in UNSEEN:
        i = SCENARIO_NAMES.index(name)
        order = sorted(seen_idx, key=lambda j: -realised_corr[i, j])[:3]
        nearest[name] = [
            {"scenario": SCENARIO_NAMES[j],
             "logit_correlation": round(float(realised_corr[i, j]), 4),
             "target_cosine": round(float(data.target_corr[i, j]), 4)}
            for j in order
        ]
    relatedness = {
        "knob": cfg.relatedness,
        "default": DataConfig.__dataclass_fields__["relatedness"].default,
        "why_default": _default_relatedness_reason(),
        "family_strength": cfg.family_strength,
        "measure": RELATEDNESS_MEASURE,
        "mean_target_cosine": float(data.target_corr[off].mean()),
        "mean_weight_cosine": float(cosine[off].mean()),
        "mean_logit_correlation": float(realised_corr[off].mean()),
        "unseen_nearest_seen": nearest,
        "logit_correlation": realised_corr.round(4).tolist(),
    }
    splits = {
        split: {
            "rows": int(len(data[split])),
            "label_column": LABEL_COLUMNS[split],
            "scenarios": sorted(
                data[split]["scenario"].astype(str).unique().tolist(),
                key=SCENARIO_NAMES.index,
            ),
        }
        for split in SPLITS
    }
    return {
        "card_version": CARD_VERSION,
        "name": "AutoTask synthetic multi-scenario ads relevance data",
        "seed": data.seed,
        "fingerprint": data.fingerprint,
        "checksum": card_checksum(asdict(cfg), data.seed, data.fingerprint),
        "profile": _profile_of(cfg),
        "config": asdict(cfg),
        "library_versions": _versions(),
        "story": story(cfg),
        "limits": list(LIMITS),
        "relatedness": relatedness,
        "families": list(FAMILIES),
        "scenarios": [
            {**asdict(s), "missing": list(s.missing)} for s in SCENARIOS
        ],
        "seen": list(SEEN),
        "unseen": list(UNSEEN),
        "features": [
            {"name": n, "kind": k, "description": F.FEATURE_DESCRIPTIONS[n]}
            for n, k in F.FEATURES
        ],
        "task_id_column": "task_id (last column of the feature matrix)",
        "splits": splits,
        "tolerance_rule": TOLERANCE_RULE,
        "targets": card_targets(cfg),
        "realised": _realised(data),
        "target_correlation": data.target_corr.round(4).tolist(),
    }


def read_card(folder: str | os.PathLike) -> dict:
    """The data card saved in ``folder`` by :func:`data_synth.save`.

    Raises
    ------
    FileNotFoundError
        If ``folder`` holds no ``data_card.json``.
    """
    path = Path(folder) / "data_card.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{str(folder)!r} holds no data_card.json: not a generated data set"
        )
    return json.loads(path.read_text())
