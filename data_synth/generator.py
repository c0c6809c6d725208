"""Generate the synthetic multi-scenario ads relevance data.

The story, step by step (the data chapter of the book tells it in full):

1. Each scenario's relevance is a function of latent query-ad signals. Its weight
   vector mixes one direction every scenario shares with a scenario-specific one,
   as in the synthetic tasks of the MMoE paper (Ma et al., 2018), extended from
   two tasks to eleven: the cosine between two scenarios' weights equals a target
   correlation matrix exactly. A ``relatedness`` knob sets the mix, and family
   loadings make travel scenarios closer to each other than to finance ones.
2. Relevance adds MMoE-style sinusoidal terms, pairwise feature interactions, a
   query effect shared by all candidates of one query, and a bias that sets the
   scenario's positive rate.
3. Features are observed views of the latent signals, shifted and scaled per
   scenario (covariate shift), with some extractors silent in some scenarios.
4. Three label sources: a generic teacher that blurs scenario specifics and is
   miscalibrated, noisy binary LLM labels, and test labels drawn from the truth.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from . import features as F
from .scenarios import FAMILIES, SCENARIO_NAMES, SCENARIOS, Scenario

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

SPLITS: tuple[str, ...] = ("teacher_train", "llm_train", "calibration", "test")

# Label column of each split, and of the label audit sample (all three sources).
LABEL_COLUMNS: dict[str, str] = {
    "teacher_train": "teacher_prob",
    "llm_train": "llm_label",
    "calibration": "llm_label",
    "test": "label",
}

# Rows per split for each profile. The test split of `default` and `paper` has the
# paper's 258,000 rows (section 4.1.1). The training splits of `default` are sized
# so that the whole book, about 40 trained models, builds in under 20 minutes on
# two CPU cores.
PROFILE_SIZES: dict[str, dict[str, int]] = {
    "smoke": {"teacher_train": 8_000, "llm_train": 4_000, "calibration": 3_000,
              "test": 11_000},
    "default": {"teacher_train": 100_000, "llm_train": 50_000,
                "calibration": 30_000, "test": 258_000},
    "paper": {"teacher_train": 2_000_000, "llm_train": 400_000,
              "calibration": 100_000, "test": 258_000},
}

# Random streams: each (split, scenario) pair draws from its own stream, so a
# split's rows do not depend on the size of any other split.
_AUDIT_CODE = len(SPLITS) + 1  # stream of the label audit sample
_COMMON_INPUTS_CODE = len(SPLITS) + 2  # stream of the common latent inputs


class FrozenSizes(dict):
    """Rows per split of a :class:`DataConfig`, fixed once the config is made.

    It reads, compares and serialises as the plain dict it copies, and it is
    hashable; every method that would change it raises ``TypeError``. A config
    with other sizes is made with ``dataclasses.replace(cfg, sizes={...})``.
    """

    def _refuse(self, *args, **kwargs):
        raise TypeError(
            "DataConfig.sizes cannot be changed once the config is made; make "
            "a new config with dataclasses.replace(cfg, sizes={...}) or "
            "config_for_profile(profile, sizes={...})"
        )

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.items())))

    def __reduce__(self):
        # Copies and pickles are rebuilt from a plain dict, not item by item.
        return (type(self), (dict(self),))


@dataclass(frozen=True)
class DataConfig:
    """Parameters of one generated data set.

    The story parameters (everything but ``sizes``) were fixed from the
    generative story before any model was compared; see the data card.
    ``sizes`` may be given as any mapping; the config keeps a validated,
    unchangeable copy (:class:`FrozenSizes`, splits in the order of
    ``SPLITS``).
    """

    sizes: dict[str, int] = field(
        default_factory=lambda: dict(PROFILE_SIZES["default"])
    )  # rows per split
    relatedness: float = 0.5  # 0: only family structure; 1: one shared function
    family_strength: float = 0.6  # weight of family loadings in the correlation
    mean_candidates: float = 5.0  # mean number of candidate ads per query
    max_candidates: int = 16  # most candidates one query can have
    query_effect: float = 0.5  # std of the query effect on the relevance logit
    sinusoid_strength: float = 0.3  # weight of the MMoE-style sinusoidal terms
    interaction_strength: float = 0.4  # weight of the pairwise interactions
    teacher_genericness: float = 0.35  # how far the teacher blurs scenarios
    shift_scale: float = 0.4  # std of per-scenario covariate shift of latents

    def __post_init__(self) -> None:
        _check_config(self)
        frozen = FrozenSizes((split, int(self.sizes[split])) for split in SPLITS)
        object.__setattr__(self, "sizes", frozen)


def config_for_profile(profile: str, **overrides) -> DataConfig:
    """The data configuration of a named profile, with optional overrides.

    Parameters
    ----------
    profile : {"smoke", "default", "paper"}
        Sets the rows per split.
    **overrides
        Fields of :class:`DataConfig` to change. ``sizes`` may name only some
        splits; the others keep the profile's sizes.

    Raises
    ------
    ValueError
        If ``profile`` is not one of the known profiles, or an override is out
        of its range.
    TypeError
        If an override is not a field of :class:`DataConfig`.
    """
    if profile not in PROFILE_SIZES:
        raise ValueError(
            f"profile must be one of {sorted(PROFILE_SIZES)}; got {profile!r}"
        )
    known = {f.name for f in fields(DataConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(
            f"overrides must be fields of DataConfig {sorted(known)}; "
            f"got {unknown}"
        )
    sizes = dict(PROFILE_SIZES[profile])
    extra = overrides.pop("sizes", None) or {}
    if not isinstance(extra, Mapping):
        raise TypeError(f"sizes must be a dict; got {type(extra).__name__}")
    sizes.update(extra)
    return DataConfig(sizes=sizes, **overrides)


def _check_number(name: str, value, lo: float, hi: float | None = None) -> None:
    """Raise if ``value`` is not a real number in [lo, hi] (hi None: no bound)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if hi is None:
        if not value >= lo:
            rule = "non-negative" if lo == 0 else f"at least {lo}"
            raise ValueError(f"{name} must be {rule}; got {value!r}")
    elif not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}]; got {value!r}")


def _check_config(cfg: DataConfig) -> None:
    if not isinstance(cfg.sizes, Mapping):
        raise TypeError(
            f"sizes must be a dict of rows per split {list(SPLITS)}; got "
            f"{type(cfg.sizes).__name__} {cfg.sizes!r}"
        )
    if set(cfg.sizes) != set(SPLITS):
        raise ValueError(
            f"sizes must give rows for exactly the splits {list(SPLITS)}; "
            f"got {sorted(cfg.sizes, key=str)!r}"
        )
    for split, n in cfg.sizes.items():
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
            raise ValueError(
                f"sizes[{split!r}] must be a positive integer; got {n!r}"
            )
    for name in ("relatedness", "family_strength", "teacher_genericness"):
        _check_number(name, getattr(cfg, name), 0.0, 1.0)
    for name in ("query_effect", "sinusoid_strength", "interaction_strength",
                 "shift_scale"):
        _check_number(name, getattr(cfg, name), 0.0)
    _check_number("mean_candidates", cfg.mean_candidates, 1.0)
    m = cfg.max_candidates
    if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
        raise ValueError(f"max_candidates must be an integer >= 1; got {m!r}")
    if cfg.mean_candidates > m:
        raise ValueError(
            f"mean_candidates must not exceed max_candidates ({m}); "
            f"got {cfg.mean_candidates!r}"
        )


# ---------------------------------------------------------------------------
# Step 1: scenario relatedness and relevance weights
# ---------------------------------------------------------------------------


def family_loadings() -> np.ndarray:
    """Unit-norm family loadings of the scenarios, of shape (11, 5)."""
    m = np.array([[s.family.get(f, 0.0) for f in FAMILIES] for s in SCENARIOS])
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def target_correlation(relatedness: float, family_strength: float) -> np.ndarray:
    """Target cosine between scenarios' relevance weights, of shape (11, 11).

    ``R = r * J + (1 - r) * (f * M M^T + (1 - f) * I)`` with ``r`` the
    relatedness, ``f`` the family strength, ``M`` the family loadings and ``J``
    all ones. It has a unit diagonal and is positive semi-definite for
    ``r, f`` in [0, 1]; ``r = 1`` makes every scenario the same, and
    ``r = f = 0`` makes them unrelated.

    Raises
    ------
    ValueError
        If ``relatedness`` or ``family_strength`` is outside [0, 1].
    """
    _check_number("relatedness", relatedness, 0.0, 1.0)
    _check_number("family_strength", family_strength, 0.0, 1.0)
    m = family_loadings()
    k = len(SCENARIOS)
    within = family_strength * (m @ m.T) + (1 - family_strength) * np.eye(k)
    return relatedness * np.ones((k, k)) + (1 - relatedness) * within


def scenario_directions(
    relatedness: float,
    family_strength: float,
    dim: int,
    rng: np.random.Generator,
    shared: np.ndarray | None = None,
) -> np.ndarray:
    """Unit vectors, one per scenario, whose cosines are the target correlation.

    The MMoE paper's two synthetic tasks mix a shared unit vector with a second
    one orthogonal to it, and the mix sets their cosine. With eleven scenarios,
    ``w_k = sqrt(r) u + sqrt(1 - r) v_k``, where ``u`` is the shared direction and
    the ``v_k`` are orthogonal to it with Gram matrix ``f M M^T + (1 - f) I`` (the
    families). Then ``w_i . w_j = target_correlation(r, f)[i, j]``.

    ``u`` and the ``v_k`` do not depend on ``r``: for one seed, turning the knob
    moves every scenario along a fixed path towards the shared direction.

    Parameters
    ----------
    relatedness, family_strength : float in [0, 1]
        ``r`` and ``f`` of :func:`target_correlation`.
    dim : int
        Length of each vector; at least 12 (eleven scenarios plus ``u``).
    rng : numpy Generator
        Draws the scenario-specific directions.
    shared : ndarray of shape (dim,), optional
        The shared direction ``u``; random when omitted.

    Returns
    -------
    ndarray of shape (11, dim)
        Unit rows with ``w @ w.T == target_correlation(r, f)``.
    """
    k = len(SCENARIOS)
    if dim < k + 1:
        raise ValueError(f"dim must be at least {k + 1}; got {dim!r}")
    within = target_correlation(0.0, family_strength)  # (11, 11)
    # Cholesky gives a unique square root that varies smoothly with f; the tiny
    # ridge keeps it defined when f = 1 makes the family matrix singular.
    ridge = 1e-10
    root = np.linalg.cholesky(within + ridge * np.eye(k)) / np.sqrt(1 + ridge)
    basis = rng.standard_normal((dim, k + 1))
    if shared is not None:
        basis[:, 0] = shared
    q, r = np.linalg.qr(basis)  # (dim, k + 1), orthonormal columns
    q = q * np.sign(np.diag(r))  # unique signs: q[:, 0] points along ``shared``
    u, specific = q[:, 0], q[:, 1:]  # (dim,), (dim, 11)
    v = root @ specific.T  # (11, dim): Gram ``within``, orthogonal to u
    w = np.sqrt(relatedness) * u + np.sqrt(1.0 - relatedness) * v
    return w / np.linalg.norm(w, axis=1, keepdims=True)


@dataclass
class _World:
    """Everything drawn once per seed that all splits share."""

    weights: np.ndarray  # (11, 23) relevance weights on the latent signals
    pair_weights: np.ndarray  # (11, len(INTERACTIONS)) interaction weights
    sin_freq: np.ndarray  # (3,) MMoE sinusoid frequencies
    sin_phase: np.ndarray  # (3,) MMoE sinusoid phases
    shift: np.ndarray  # (11, 23) per-scenario mean shift of the latent signals
    spread: np.ndarray  # (11, 23) per-scenario scale of the latent signals
    scale: np.ndarray  # (11,) makes each relevance score's std equal its signal
    bias: np.ndarray  # (11,) logit bias that sets each positive rate
    teacher_bias: np.ndarray  # (11,) bias of the teacher's generic function
    corr: np.ndarray  # (11, 11) target correlation of the weights


def _missing_mask(s: Scenario) -> np.ndarray:
    """Boolean (23,) mask of the features whose extractor is silent in ``s``."""
    return np.array([name in s.missing for name in F.FEATURE_NAMES])


def _silent_pairs(s: Scenario) -> np.ndarray:
    """Boolean mask of the interactions that involve a feature silent in ``s``."""
    return np.array([u in s.missing or v in s.missing for u, v in F.INTERACTIONS])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, written through tanh so no ``|x|`` overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _draw_world(cfg: DataConfig, seed: int) -> _World:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    k, p = len(SCENARIOS), F.NUM_FEATURES
    n_pairs = len(F.INTERACTIONS)
    corr = target_correlation(cfg.relatedness, cfg.family_strength)
    weights = scenario_directions(
        cfg.relatedness, cfg.family_strength, p, rng, shared=F.relevance_prior()
    )
    # Interaction weights follow the same relatedness, in a space large enough
    # for the construction; keeping the first coordinates makes their cosines
    # approximately, not exactly, the target.
    pair_weights = scenario_directions(
        cfg.relatedness, cfg.family_strength, n_pairs + k + 1, rng
    )[:, :n_pairs]
    # A signal that a scenario's extractors never see carries none of its
    # relevance, neither alone nor through an interaction.
    for i, s in enumerate(SCENARIOS):
        weights[i, _missing_mask(s)] = 0.0
        pair_weights[i, _silent_pairs(s)] = 0.0
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    world = _World(
        weights=weights,
        pair_weights=pair_weights,
        sin_freq=rng.uniform(0.5, 1.5, size=3),
        sin_phase=rng.uniform(0.0, 2 * np.pi, size=3),
        shift=cfg.shift_scale * rng.standard_normal((k, p)),
        spread=np.exp(0.15 * rng.standard_normal((k, p))),
        scale=np.ones(k),
        bias=np.zeros(k),
        teacher_bias=np.zeros(k),
        corr=corr,
    )
    # Scale each relevance score so its std is the scenario's signal, and set its
    # bias so its positive rate meets the story's target, on a fixed sample drawn
    # from the world's own generator.
    for i, s in enumerate(SCENARIOS):
        z = _latents(world, i, 20_000, rng)
        raw = _relevance_score(world, cfg, i, z)
        world.scale[i] = s.signal / raw.std()
        score = world.scale[i] * raw
        score += cfg.query_effect * rng.standard_normal(len(z))
        world.bias[i] = _bias_for_rate(score, s.positive_rate)
        generic = world.scale[i] * _generic_score(world, cfg, z)
        world.teacher_bias[i] = _bias_for_rate(generic, s.positive_rate)
    return world


def _bias_for_rate(score: np.ndarray, rate: float) -> float:
    """Offset ``b`` with mean(sigmoid(score + b)) == rate, by bisection."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.mean(_sigmoid(score + mid)) < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------
# Step 2: latent signals and relevance
# ---------------------------------------------------------------------------


def _standard_latents(n: int, rng: np.random.Generator) -> np.ndarray:
    """Latent signals before any scenario's shift, of shape (n, 23)."""
    chol = np.linalg.cholesky(F.latent_correlation())
    return rng.standard_normal((n, F.NUM_FEATURES)) @ chol.T


def _latents(
    world: _World, i: int, n: int, rng: np.random.Generator,
    query_of_row: np.ndarray | None = None,
) -> np.ndarray:
    """Latent signals of ``n`` query-ad pairs of scenario ``i``, shape (n, 23)."""
    z = _standard_latents(n, rng)
    if query_of_row is not None:
        # Query-level signals are shared by all candidates of a query.
        n_queries = int(query_of_row.max()) + 1
        per_query = rng.standard_normal((n_queries, len(F.QUERY_LEVEL)))
        for c, name in enumerate(F.QUERY_LEVEL):
            z[:, F.index_of(name)] = per_query[query_of_row, c]
    return world.shift[i] + world.spread[i] * z


def _mmoe_score(
    w: np.ndarray, pairs: np.ndarray, world: _World, cfg: DataConfig,
    z: np.ndarray,
) -> np.ndarray:
    linear = z @ w
    wave = sum(
        np.sin(a * linear + b) for a, b in zip(world.sin_freq, world.sin_phase)
    )
    inter = sum(
        pairs[c] * z[:, F.index_of(u)] * z[:, F.index_of(v)]
        for c, (u, v) in enumerate(F.INTERACTIONS)
    )
    return (
        linear
        + cfg.sinusoid_strength * wave
        + cfg.interaction_strength * inter
    )


def _relevance_score(
    world: _World, cfg: DataConfig, i: int, z: np.ndarray
) -> np.ndarray:
    """Scenario ``i``'s relevance function of the latent signals, before scaling."""
    return _mmoe_score(world.weights[i], world.pair_weights[i], world, cfg, z)


def _generic_score(world: _World, cfg: DataConfig, z: np.ndarray) -> np.ndarray:
    """The generic relevance a scenario-blind teacher learns: the seen average."""
    seen = [i for i, s in enumerate(SCENARIOS) if s.seen]
    w = world.weights[seen].mean(axis=0)
    w /= np.linalg.norm(w)
    pairs = world.pair_weights[seen].mean(axis=0)
    return _mmoe_score(w, pairs, world, cfg, z)


# ---------------------------------------------------------------------------
# Step 3 and 4: rows of one split and their labels
# ---------------------------------------------------------------------------


def _queries(n: int, cfg: DataConfig, rng: np.random.Generator) -> np.ndarray:
    """Local query index of each of ``n`` rows, candidates of a query adjacent.

    A query has ``1 + Poisson(mean_candidates - 1)`` candidates, at most
    ``max_candidates``; the last query is cut short so the rows add up to ``n``.
    """
    sizes = np.zeros(0, dtype=np.int64)
    while sizes.sum() < n:
        batch = int(n / cfg.mean_candidates) + 16
        draw = 1 + rng.poisson(cfg.mean_candidates - 1, size=batch)
        sizes = np.concatenate([sizes, np.minimum(draw, cfg.max_candidates)])
    ends = np.cumsum(sizes)
    last = int(np.searchsorted(ends, n))  # first query whose rows reach n
    sizes = sizes[: last + 1].copy()
    sizes[-1] -= ends[last] - n
    return np.repeat(np.arange(len(sizes)), sizes)


def _teacher_prob(
    world: _World, cfg: DataConfig, i: int, z: np.ndarray,
    true_logit: np.ndarray, query_shift: np.ndarray, rng: np.random.Generator,
) -> np.ndarray:
    """Soft labels of a generic, miscalibrated teacher, of shape (n,).

    It blurs the scenario's own function towards the seen scenarios' average,
    errs on the logit scale, and is over- or under-confident and shifted per
    scenario.
    """
    s = SCENARIOS[i]
    g = cfg.teacher_genericness
    generic = world.scale[i] * _generic_score(world, cfg, z) + world.teacher_bias[i]
    blurred = (1 - g) * true_logit + g * (generic + query_shift)
    noisy = blurred + s.teacher_noise * rng.standard_normal(len(z))
    return _sigmoid(s.teacher_temperature * noisy + s.teacher_shift)


def _llm_label(
    i: int, relevance_prob: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Binary LLM labels: a draw from the truth, flipped at the scenario's rate."""
    truth = rng.random(len(relevance_prob)) < relevance_prob
    flip = rng.random(len(relevance_prob)) < SCENARIOS[i].llm_flip
    return (truth ^ flip).astype(np.int64)


def _test_label(relevance_prob: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Binary test labels: a draw from the truth."""
    return (rng.random(len(relevance_prob)) < relevance_prob).astype(np.int64)


def _scenario_rows(
    world: _World, cfg: DataConfig, split: str, i: int, n: int, seed: int,
) -> pd.DataFrame:
    """Rows of scenario ``i`` in ``split``; ``"audit"`` gets all three labels."""
    s = SCENARIOS[i]
    code = _AUDIT_CODE if split == "audit" else SPLITS.index(split) + 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, code, i + 1]))
    query = _queries(n, cfg, rng)
    z = _latents(world, i, n, rng, query_of_row=query)

    # The truth: relevance probability, with a query effect shared by candidates.
    q_effect = cfg.query_effect * rng.standard_normal(int(query.max()) + 1)
    true_logit = (
        world.scale[i] * _relevance_score(world, cfg, i, z)
        + world.bias[i]
        + q_effect[query]
    )
    relevance_prob = _sigmoid(true_logit)

    # What the extractors report; silent extractors report their default, 0.
    x = F.observe(z, rng)
    x[:, _missing_mask(s)] = 0.0

    frame = pd.DataFrame(x, columns=list(F.FEATURE_NAMES))
    frame.insert(0, "scenario", s.name)
    frame.insert(0, "query_id", query.astype(np.int64))
    frame["task_id"] = np.int64(s.task_id)
    frame["relevance_prob"] = relevance_prob.astype(np.float32)

    # The label sources of this split, in a fixed order of random draws.
    if split in ("teacher_train", "audit"):
        teacher = _teacher_prob(
            world, cfg, i, z, true_logit, q_effect[query], rng
        )
        frame["teacher_prob"] = teacher.astype(np.float32)
    if split in ("llm_train", "calibration", "audit"):
        frame["llm_label"] = _llm_label(i, relevance_prob, rng)
    if split in ("test", "audit"):
        frame["label"] = _test_label(relevance_prob, rng)
    return frame


def _split_counts(total: int, shares: np.ndarray) -> np.ndarray:
    """Integer rows per scenario summing to ``total``, by largest remainder."""
    raw = total * shares / shares.sum()
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def target_rows(cfg: DataConfig) -> dict[str, dict[str, int]]:
    """Rows of every scenario in every split, as the story's shares dictate.

    Training and calibration splits follow ``train_share`` (zero for the unseen
    scenarios), the test split ``test_share``; a split's rows add up exactly to
    its size in ``cfg.sizes``.

    Returns
    -------
    dict
        ``{split: {scenario: rows}}``, every scenario listed, zeros included.

    Raises
    ------
    TypeError
        If ``cfg`` is not a :class:`DataConfig`.
    ValueError
        If ``cfg.sizes`` no longer holds a positive size for every split.
    """
    if not isinstance(cfg, DataConfig):
        raise TypeError(f"cfg must be a DataConfig; got {type(cfg).__name__}")
    _check_config(cfg)  # cheap; sizes were validated when cfg was made
    out = {}
    for split in SPLITS:
        attr = "test_share" if split == "test" else "train_share"
        shares = np.array([getattr(s, attr) for s in SCENARIOS])
        counts = _split_counts(cfg.sizes[split], shares)
        out[split] = {s.name: int(n) for s, n in zip(SCENARIOS, counts)}
    return out


def _concat_parts(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack scenarios' rows, with query IDs made unique within the stack."""
    offset = 0
    for part in parts:
        part["query_id"] += offset
        offset = int(part["query_id"].max()) + 1
    frame = pd.concat(parts, ignore_index=True)
    frame["scenario"] = pd.Categorical(frame["scenario"], categories=SCENARIO_NAMES)
    return frame


def generate_split(
    split: str, cfg: DataConfig, seed: int, world: _World | None = None,
    *, bar=None,
) -> pd.DataFrame:
    """Generate one split as a data frame (see :func:`generate`).

    Parameters
    ----------
    split : str
        One of ``SPLITS``.
    cfg : DataConfig
        Sizes and story parameters.
    seed : int
        Seed of the data set.
    world : optional
        The seed's drawn world, to share between splits; drawn when omitted.
    bar : tqdm progress bar, optional
        Advanced once per scenario.

    Returns
    -------
    DataFrame
        One row per query-ad pair, scenarios in order, candidates of a query
        adjacent, query IDs unique within the split.

    Raises
    ------
    ValueError
        If ``split`` is not one of ``SPLITS``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")
    world = world if world is not None else _draw_world(cfg, seed)
    parts = []
    for i, n in enumerate(target_rows(cfg)[split].values()):
        if n == 0:
            continue
        parts.append(_scenario_rows(world, cfg, split, i, n, seed))
        if bar is not None:
            bar.update(1)
    return _concat_parts(parts)


@dataclass
class SyntheticData:
    """The four splits, the configuration that made them, and their fingerprint."""

    splits: dict[str, pd.DataFrame]  # split name -> one row per query-ad pair
    config: DataConfig  # the configuration that generated the splits
    seed: int  # the seed that generated the splits
    fingerprint: str  # content hash of the splits (see fingerprint_frames)
    weights: np.ndarray  # (11, 23) the scenarios' relevance weights
    target_corr: np.ndarray  # (11, 11) target cosine between those weights
    folder: Path | None = None  # where the data set is saved, once it is

    def __getitem__(self, split: str) -> pd.DataFrame:
        if split not in self.splits:
            raise KeyError(f"split must be one of {list(SPLITS)}; got {split!r}")
        return self.splits[split]


def fingerprint_frames(frames: dict[str, pd.DataFrame]) -> str:
    """A content hash of the splits: equal data gives an equal fingerprint.

    The hash covers every value bit for bit. The same seed, configuration and
    library versions give the same fingerprint on one machine; another CPU may
    round some floating-point operations (BLAS kernels, vectorised math)
    differently and so change it. That matters only when comparing data sets
    across machines, and the data card lists it under the data's limits.
    """
    h = hashlib.sha256()
    for split in sorted(frames):
        frame = frames[split]
        h.update(split.encode())
        for col in frame.columns:
            h.update(col.encode())
            values = frame[col]
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.astype(str)
            if values.dtype == object or pd.api.types.is_string_dtype(values):
                h.update("\x1f".join(values.astype(str)).encode())
            else:
                h.update(np.ascontiguousarray(values.to_numpy()).tobytes())
    return h.hexdigest()[:16]


# Peak memory of generation per row, measured with all four splits (about 120
# bytes per row are kept in the frames; the draws in between take the rest).
PEAK_BYTES_PER_ROW = 700


def available_memory_bytes() -> int | None:
    """Memory this process can still take: the lower of free RAM and the
    cgroup's limit; None where neither can be read."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            value = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if value != "max":
            limits.append(int(value) - used)
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def _check_memory(cfg: DataConfig) -> None:
    rows = sum(int(n) for n in cfg.sizes.values())
    need = rows * PEAK_BYTES_PER_ROW
    have = available_memory_bytes()
    if have is not None and need > have:
        raise ValueError(
            f"sizes ask for {rows:,} rows, which need about {need / 2**30:.1f} "
            f"GiB while generating; this machine has {have / 2**30:.1f} GiB "
            "free. Ask for fewer rows."
        )


# The same bound as the library's seeds (torch and numpy both take it).
MAX_SEED = 2**32 - 1


def _check_seed(seed) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not (
            0 <= seed <= MAX_SEED):
        raise ValueError(
            f"seed must be an integer from 0 to {MAX_SEED} (2**32 - 1); got {seed!r}"
        )
    return int(seed)


def _check_cfg(cfg) -> DataConfig:
    cfg = cfg if cfg is not None else DataConfig()
    if not isinstance(cfg, DataConfig):
        raise TypeError(f"cfg must be a DataConfig; got {type(cfg).__name__}")
    return cfg


def generate(
    cfg: DataConfig | None = None, seed: int = 0, *, progress: bool = False
) -> SyntheticData:
    """Generate all four splits of the synthetic data.

    Parameters
    ----------
    cfg : DataConfig, optional
        Sizes and story parameters; the `default` profile when omitted.
    seed : int
        Seed of every random draw; the same seed and configuration give the same
        data, and so the same fingerprint, with the same library versions.
    progress : bool
        Show a progress bar that advances once per scenario of each split.

    Returns
    -------
    SyntheticData
        Splits ``teacher_train`` (teacher soft labels), ``llm_train`` and
        ``calibration`` (binary LLM labels), all of seen scenarios only, and
        ``test`` (test labels) of all eleven scenarios.

    Raises
    ------
    ValueError
        If ``seed`` is not an integer from 0 to 2**32 - 1, or the sizes need more
        memory than the machine has free.
    TypeError
        If ``cfg`` is not a :class:`DataConfig`.
    """
    cfg = _check_cfg(cfg)
    seed = _check_seed(seed)
    _check_memory(cfg)
    from tqdm import tqdm

    rows = target_rows(cfg)
    parts = sum(n > 0 for split in SPLITS for n in rows[split].values())
    world = _draw_world(cfg, seed)
    frames = {}
    with tqdm(total=parts, desc="generating", unit="part",
              disable=not progress) as bar:
        for split in SPLITS:
            bar.set_postfix_str(split)
            frames[split] = generate_split(split, cfg, seed, world, bar=bar)
    return SyntheticData(
        splits=frames,
        config=cfg,
        seed=seed,
        fingerprint=fingerprint_frames(frames),
        weights=world.weights.copy(),
        target_corr=world.corr.copy(),
    )
