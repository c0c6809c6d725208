"""Synthetic multi-scenario ads relevance data for the AutoTask reproduction.

The paper's data (Microsoft Advertising search logs) is private; this package
generates a documented stand-in with the same structure: eleven ad scenarios,
two of them unseen in training, numeric query-ad features, teacher soft labels,
LLM labels and test labels. It knows nothing of the models.
"""

from .features import FEATURE_KINDS, FEATURE_NAMES, FEATURES, NUM_FEATURES
from .generator import (
    PROFILE_SIZES,
    SPLITS,
    DataConfig,
    SyntheticData,
    config_for_profile,
    data_card,
    fingerprint_frames,
    generate,
    target_correlation,
)
from .io import dataset_key, load, load_or_generate, save
from .scenarios import (
    NUM_TASK_SLOTS,
    SCENARIO_NAMES,
    SCENARIOS,
    SEEN,
    UNSEEN,
    scenario,
    task_id_of,
)

__all__ = [
    "FEATURES", "FEATURE_KINDS", "FEATURE_NAMES", "NUM_FEATURES", "NUM_TASK_SLOTS",
    "PROFILE_SIZES", "SCENARIOS", "SCENARIO_NAMES", "SEEN", "SPLITS", "UNSEEN",
    "DataConfig", "SyntheticData", "config_for_profile", "data_card",
    "dataset_key", "fingerprint_frames", "generate", "load", "load_or_generate",
    "save", "scenario", "target_correlation", "task_id_of",
]
