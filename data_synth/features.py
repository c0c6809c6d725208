"""The numeric features a query-ad feature extractor produces.

Each feature is the observed form of one latent signal ``z`` (a standard-normal
quantity per query-ad pair). Relevance is a function of the latent signals; a
model sees only the observed features, so part of the latent information is lost
on the way (a match flag keeps one bit of its latent similarity, a count is
rounded), as it is with real extractors.
"""

from __future__ import annotations

import numpy as np

# (name, kind) in column order. The task ID is appended after these, as the last
# column of the feature matrix (paper section 3.2).
FEATURES: tuple[tuple[str, str], ...] = (
    ("sim_query_title", "similarity"),
    ("sim_query_description", "similarity"),
    ("sim_query_landing_page", "similarity"),
    ("sim_query_keyword", "similarity"),
    ("sim_semantic_embedding", "similarity"),
    ("sim_category", "similarity"),
    ("sim_brand", "similarity"),
    ("sim_location", "similarity"),
    ("flag_exact_match", "flag"),
    ("flag_phrase_match", "flag"),
    ("flag_brand_match", "flag"),
    ("flag_location_match", "flag"),
    ("cnt_query_frequency", "count"),
    ("cnt_ad_impressions", "count"),
    ("cnt_ad_clicks", "count"),
    ("cnt_advertiser_ads", "count"),
    ("cnt_keyword_tokens", "count"),
    ("q_ad_quality", "quality"),
    ("q_landing_page_quality", "quality"),
    ("q_advertiser_reputation", "quality"),
    ("q_spam_score", "quality"),
    ("q_offer_freshness", "quality"),
    ("q_price_competitiveness", "quality"),
)

# What each feature stands for, in the words of the data card.
FEATURE_DESCRIPTIONS: dict[str, str] = {
    "sim_query_title": "text similarity of the query and the ad title",
    "sim_query_description": "text similarity of the query and the ad description",
    "sim_query_landing_page": "text similarity of the query and the landing page",
    "sim_query_keyword": "similarity of the query and the bid keyword",
    "sim_semantic_embedding": "cosine of query and ad embeddings",
    "sim_category": "agreement of the query's and the ad's categories",
    "sim_brand": "similarity of a brand named in the query and the ad's brand",
    "sim_location": "closeness of a place named in the query and the ad's place",
    "flag_exact_match": "the query appears verbatim in the ad title",
    "flag_phrase_match": "the query contains the bid keyword as a phrase",
    "flag_brand_match": "the query names the ad's brand",
    "flag_location_match": "the query names the ad's place",
    "cnt_query_frequency": "how often the query is searched (same for a query's ads)",
    "cnt_ad_impressions": "how often the ad was shown",
    "cnt_ad_clicks": "how often the ad was clicked",
    "cnt_advertiser_ads": "how many ads the advertiser runs",
    "cnt_keyword_tokens": "words in the bid keyword",
    "q_ad_quality": "editorial quality score of the ad",
    "q_landing_page_quality": "quality score of the landing page",
    "q_advertiser_reputation": "reputation score of the advertiser",
    "q_spam_score": "likelihood that the ad is spam",
    "q_offer_freshness": "how recent the offer is",
    "q_price_competitiveness": "how the offer's price compares with the market",
}

FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FEATURES)
FEATURE_KINDS: tuple[str, ...] = tuple(kind for _, kind in FEATURES)
NUM_FEATURES = len(FEATURES)  # 23; with the task-ID column, d = 24

# The similarity each match flag goes with: a flag is a one-bit view of a latent
# match strength that is strongly correlated with that similarity's.
FLAG_SOURCE: dict[str, str] = {
    "flag_exact_match": "sim_query_title",
    "flag_phrase_match": "sim_query_keyword",
    "flag_brand_match": "sim_brand",
    "flag_location_match": "sim_location",
}

# Query-level signals: shared by every candidate ad of one query.
QUERY_LEVEL: tuple[str, ...] = ("cnt_query_frequency",)

# Pairs of latent signals whose product enters relevance (feature interactions):
# a title match counts for more on a good landing page, a location match for more
# when the query names a place, a brand match for more from a reputable advertiser.
INTERACTIONS: tuple[tuple[str, str], ...] = (
    ("sim_query_title", "q_landing_page_quality"),
    ("sim_location", "sim_query_keyword"),
    ("sim_brand", "q_advertiser_reputation"),
    ("sim_semantic_embedding", "sim_category"),
    ("q_spam_score", "cnt_ad_clicks"),
    ("sim_query_description", "q_offer_freshness"),
)


def index_of(name: str) -> int:
    """Column index of feature ``name``."""
    return FEATURE_NAMES.index(name)


def relevance_prior() -> np.ndarray:
    """The direction of relevance every scenario shares, of shape (23,).

    Whatever the scenario, a closer match and a better ad make a query-ad pair
    more relevant and spam makes it less; popularity counts matter a little.
    """
    sign = {
        "similarity": 1.0, "flag": 0.7, "count": 0.0, "quality": 0.6,
    }
    prior = np.array([sign[kind] for kind in FEATURE_KINDS])
    prior[index_of("q_spam_score")] = -1.0
    prior[index_of("cnt_ad_clicks")] = 0.4
    prior[index_of("cnt_ad_impressions")] = 0.2
    prior[index_of("cnt_keyword_tokens")] = -0.2
    return prior / np.linalg.norm(prior)


def latent_correlation() -> np.ndarray:
    """Correlation of the latent signals across features, of shape (23, 23).

    Similarities share a "topical match" factor, quality signals share an
    "advertiser quality" factor, and each flag follows its source similarity.
    """
    p = NUM_FEATURES
    loadings = np.zeros((p, 2))
    for j, kind in enumerate(FEATURE_KINDS):
        if kind == "similarity":
            loadings[j, 0] = 0.6
        elif kind == "quality":
            loadings[j, 1] = 0.5
    loadings[index_of("q_spam_score"), 1] = -0.5  # spam goes against quality
    for flag, source in FLAG_SOURCE.items():
        loadings[index_of(flag)] = loadings[index_of(source)]
    corr = loadings @ loadings.T
    # A flag's latent signal is a close cousin of its source similarity's.
    for flag, source in FLAG_SOURCE.items():
        i, j = index_of(flag), index_of(source)
        corr[i, j] = corr[j, i] = 0.8
    np.fill_diagonal(corr, 1.0)
    return corr


def observe(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turn latent signals into the features an extractor reports.

    Parameters
    ----------
    z : ndarray of shape (n, 23)
        Latent signals.
    rng : numpy Generator
        Source of the flags' sampling noise.

    Returns
    -------
    ndarray of shape (n, 23), float32
        Similarities and quality scores in (0, 1), flags in {0, 1}, and counts
        as non-negative integers with heavy (log-normal) tails.
    """
    x = np.empty_like(z)
    for j, (name, kind) in enumerate(FEATURES):
        if kind in ("similarity", "quality"):
            x[:, j] = 1.0 / (1.0 + np.exp(-1.3 * z[:, j]))
        elif kind == "flag":
            # The flag fires when its latent match strength clears a noisy bar.
            x[:, j] = z[:, j] + 0.3 * rng.standard_normal(len(z)) > 0.5
        else:
            x[:, j] = np.floor(np.exp(1.5 + 1.2 * z[:, j]))
    return x.astype(np.float32)
