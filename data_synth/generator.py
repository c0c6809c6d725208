"""Generate the synthetic multi-scenario ads relevance data.

The story, step by step (the data chapter of the book tells it in full):

1. Each scenario's relevance is a function of latent query-ad signals. Its weight
   vector is drawn so that the cosine between any two scenarios' weights equals a
   target correlation matrix exactly (the MMoE paper's construction, extended from
   two tasks to eleven): a ``relatedness`` knob moves every scenario towards one
   shared function, and family loadings make travel scenarios closer to each other
   than to finance ones.
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
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from . import features as F
from .scenarios import FAMILIES, SCENARIO_NAMES, SCENARIOS, SEEN, Scenario

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

SPLITS: tuple[str, ...] = ("teacher_train", "llm_train", "calibration", "test")

# Rows per split for each profile. The test split of `default` and `paper` has the
# paper's 258,000 rows (section 4.1.1).
PROFILE_SIZES: dict[str, dict[str, int]] = {
    "smoke": {"teacher_train": 8_000, "llm_train": 4_000, "calibration": 3_000,
              "test": 11_000},
    "default": {"teacher_train": 240_000, "llm_train": 60_000,
                "calibration": 30_000, "test": 258_000},
    "paper": {"teacher_train": 2_000_000, "llm_train": 400_000,
              "calibration": 100_000, "test": 258_000},
}


@dataclass(frozen=True)
class DataConfig:
    """Parameters of one generated data set."""

    sizes: dict[str, int] = field(
        default_factory=lambda: dict(PROFILE_SIZES["default"])
    )  # rows per split
    relatedness: float = 0.5  # 0: only family structure; 1: identical scenarios
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


def config_for_profile(profile: str, **overrides) -> DataConfig:
    """The data configuration of a named profile, with optional overrides.

    Raises
    ------
    ValueError
        If ``profile`` is not one of the known profiles.
    """
    if profile not in PROFILE_SIZES:
        raise ValueError(
            f"profile must be one of {sorted(PROFILE_SIZES)}; got {profile!r}"
        )
    return DataConfig(sizes=dict(PROFILE_SIZES[profile]), **overrides)


def _check_config(cfg: DataConfig) -> None:
    if set(cfg.sizes) != set(SPLITS):
        raise ValueError(
            f"sizes must give rows for exactly the splits {list(SPLITS)}; "
            f"got {sorted(cfg.sizes)}"
        )
    for split, n in cfg.sizes.items():
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
            raise ValueError(
                f"sizes[{split!r}] must be a positive integer; got {n!r}"
            )
    for name in ("relatedness", "family_strength", "teacher_genericness"):
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; got {value!r}")
    if cfg.mean_candidates < 1:
        raise ValueError(
            f"mean_candidates must be at least 1; got {cfg.mean_candidates!r}"
        )
    if not 1 <= cfg.max_candidates:
        raise ValueError(
            f"max_candidates must be at least 1; got {cfg.max_candidates!r}"
        )
    for name in ("query_effect", "sinusoid_strength", "interaction_strength",
                 "shift_scale"):
        if getattr(cfg, name) < 0:
            raise ValueError(
                f"{name} must be non-negative; got {getattr(cfg, name)!r}"
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
    """
    m = family_loadings()
    k = len(SCENARIOS)
    within = family_strength * (m @ m.T) + (1 - family_strength) * np.eye(k)
    return relatedness * np.ones((k, k)) + (1 - relatedness) * within


def correlated_unit_vectors(
    corr: np.ndarray, dim: int, rng: np.random.Generator,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """Rows of unit vectors in ``dim`` dimensions whose Gram matrix is ``corr``.

    The MMoE construction for two tasks (orthonormal basis vectors mixed by the
    target cosine) generalised through a square-root factor: with ``L L^T =
    corr`` and ``Q`` of orthonormal columns, ``W = L Q^T`` has ``W W^T = corr``.
    ``L`` comes from the eigendecomposition of ``corr``, so its leading column
    (the Perron vector, all of one sign) is what every scenario shares; when
    ``prior`` is given, that shared direction is ``prior`` and the other
    directions are random and orthogonal to it.
    """
    k = len(corr)
    vals, vecs = np.linalg.eigh(corr)  # ascending: the shared direction is last
    vecs[:, -1] *= np.sign(vecs[:, -1].sum())  # every scenario loads positively
    factor = vecs * np.sqrt(np.clip(vals, 0.0, None))  # factor @ factor.T == corr
    basis = rng.standard_normal((dim, k))
    if prior is not None:
        basis[:, 0] = prior
    q, r = np.linalg.qr(basis)  # (dim, k), orthonormal
    q *= np.sign(np.diag(r))  # keep q[:, 0] pointing along the prior
    q = np.roll(q, -1, axis=1)  # the prior pairs with the shared direction
    w = factor @ q.T
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


def _draw_world(cfg: DataConfig, seed: int) -> _World:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    k, p = len(SCENARIOS), F.NUM_FEATURES
    corr = target_correlation(cfg.relatedness, cfg.family_strength)
    weights = correlated_unit_vectors(corr, p, rng, prior=F.relevance_prior())
    pair_weights = correlated_unit_vectors(corr, len(F.INTERACTIONS) + k, rng)
    pair_weights = pair_weights[:, : len(F.INTERACTIONS)]
    # A signal that a scenario's extractors never see cannot carry its relevance.
    for i, s in enumerate(SCENARIOS):
        weights[i, _missing_mask(s)] = 0.0
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
        if np.mean(1.0 / (1.0 + np.exp(-(score + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------
# Step 2: latent signals and relevance
# ---------------------------------------------------------------------------


def _latents(
    world: _World, i: int, n: int, rng: np.random.Generator,
    query_of_row: np.ndarray | None = None,
) -> np.ndarray:
    """Latent signals of ``n`` query-ad pairs of scenario ``i``, shape (n, 23)."""
    chol = np.linalg.cholesky(F.latent_correlation())
    z = rng.standard_normal((n, F.NUM_FEATURES)) @ chol.T
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
    """Local query index of each of ``n`` rows, candidates of a query adjacent."""
    sizes = []
    total = 0
    while total < n:
        k = 1 + rng.poisson(cfg.mean_candidates - 1)
        k = int(min(k, cfg.max_candidates, n - total))
        sizes.append(k)
        total += k
    return np.repeat(np.arange(len(sizes)), sizes)


def _scenario_rows(
    world: _World, cfg: DataConfig, split: str, i: int, n: int, seed: int,
) -> pd.DataFrame:
    s = SCENARIOS[i]
    split_code = SPLITS.index(split) + 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, split_code, i + 1]))
    query = _queries(n, cfg, rng)
    z = _latents(world, i, n, rng, query_of_row=query)

    # The truth: relevance probability, with a query effect shared by candidates.
    q_effect = cfg.query_effect * rng.standard_normal(int(query.max()) + 1)
    true_logit = (
        world.scale[i] * _relevance_score(world, cfg, i, z)
        + world.bias[i]
        + q_effect[query]
    )
    relevance_prob = 1.0 / (1.0 + np.exp(-true_logit))

    # What the extractors report; silent extractors report their default, 0.
    x = F.observe(z, rng)
    x[:, _missing_mask(s)] = 0.0

    frame = pd.DataFrame(x, columns=list(F.FEATURE_NAMES))
    frame.insert(0, "scenario", s.name)
    frame.insert(0, "query_id", query.astype(np.int64))
    frame["task_id"] = np.int64(s.task_id)
    frame["relevance_prob"] = relevance_prob.astype(np.float32)

    if split == "teacher_train":
        # A generic, miscalibrated teacher: it blurs the scenario's own function
        # towards the seen average and errs on the logit scale.
        g = cfg.teacher_genericness
        generic = world.scale[i] * _generic_score(world, cfg, z)
        generic += world.teacher_bias[i]
        blurred = (1 - g) * true_logit + g * (generic + q_effect[query])
        noisy = blurred + s.teacher_noise * rng.standard_normal(n)
        teacher_logit = s.teacher_temperature * noisy + s.teacher_shift
        frame["teacher_prob"] = (1.0 / (1.0 + np.exp(-teacher_logit))).astype(
            np.float32
        )
    elif split in ("llm_train", "calibration"):
        truth = rng.random(n) < relevance_prob
        flip = rng.random(n) < s.llm_flip
        frame["llm_label"] = (truth ^ flip).astype(np.int64)
    else:
        frame["label"] = (rng.random(n) < relevance_prob).astype(np.int64)
    return frame


def _split_counts(total: int, shares: np.ndarray) -> np.ndarray:
    """Integer rows per scenario summing to ``total``, by largest remainder."""
    raw = total * shares / shares.sum()
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def generate_split(
    split: str, cfg: DataConfig, seed: int, world: _World | None = None
) -> pd.DataFrame:
    """Generate one split as a data frame (see :func:`generate`)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}; got {split!r}")
    world = world if world is not None else _draw_world(cfg, seed)
    if split == "test":
        shares = np.array([s.test_share for s in SCENARIOS])
    else:
        shares = np.array([s.train_share for s in SCENARIOS])
    counts = _split_counts(cfg.sizes[split], shares)
    parts = []
    offset = 0
    for i, n in enumerate(counts):
        if n == 0:
            continue
        part = _scenario_rows(world, cfg, split, i, int(n), seed)
        part["query_id"] += offset  # query IDs unique within the split
        offset = int(part["query_id"].max()) + 1
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["scenario"] = pd.Categorical(frame["scenario"], categories=SCENARIO_NAMES)
    return frame


@dataclass
class SyntheticData:
    """The four splits, the configuration that made them, and their fingerprint."""

    splits: dict[str, pd.DataFrame]
    config: DataConfig
    seed: int
    fingerprint: str
    weights: np.ndarray  # (11, 23) the scenarios' relevance weights
    target_corr: np.ndarray  # (11, 11) target cosine between those weights

    def __getitem__(self, split: str) -> pd.DataFrame:
        if split not in self.splits:
            raise KeyError(f"split must be one of {list(SPLITS)}; got {split!r}")
        return self.splits[split]


def fingerprint_frames(frames: dict[str, pd.DataFrame]) -> str:
    """A content hash of the splits: equal data gives an equal fingerprint."""
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
        data, and so the same fingerprint.
    progress : bool
        Show a progress bar over the splits.

    Returns
    -------
    SyntheticData
        Splits ``teacher_train`` (teacher soft labels), ``llm_train`` and
        ``calibration`` (binary LLM labels), all of seen scenarios only, and
        ``test`` (test labels) of all eleven scenarios.

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative integer.
    """
    cfg = cfg if cfg is not None else DataConfig()
    if not isinstance(cfg, DataConfig):
        raise TypeError(f"cfg must be a DataConfig; got {type(cfg).__name__}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    from tqdm.auto import tqdm

    world = _draw_world(cfg, int(seed))
    frames = {}
    for split in tqdm(SPLITS, desc="generating splits", disable=not progress):
        frames[split] = generate_split(split, cfg, int(seed), world)
    return SyntheticData(
        splits=frames,
        config=cfg,
        seed=int(seed),
        fingerprint=fingerprint_frames(frames),
        weights=world.weights.copy(),
        target_corr=world.corr.copy(),
    )


def data_card(data: SyntheticData) -> dict:
    """A JSON-ready description of the data: story parameters and realised sizes."""
    rows = {}
    for split, frame in data.splits.items():
        label = {"teacher_train": "teacher_prob", "test": "label"}.get(
            split, "llm_label"
        )
        by = frame.groupby("scenario", observed=True)
        rows[split] = {
            name: {
                "rows": int(len(g)),
                "queries": int(g["query_id"].nunique()),
                "label_mean": float(g[label].mean()),
                "relevance_mean": float(g["relevance_prob"].mean()),
            }
            for name, g in by
        }
    return {
        "seed": data.seed,
        "fingerprint": data.fingerprint,
        "config": asdict(data.config),
        "features": [{"name": n, "kind": k} for n, k in F.FEATURES],
        "task_id_column": "task_id (last column of the feature matrix)",
        "scenarios": [
            {**asdict(s), "missing": list(s.missing)} for s in SCENARIOS
        ],
        "seen": list(SEEN),
        "target_correlation": data.target_corr.round(4).tolist(),
        "splits": rows,
    }
