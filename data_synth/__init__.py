"""Synthetic multi-scenario ads relevance data for the AutoTask reproduction.

The paper's data (Microsoft Advertising search logs) is private; this package
generates a documented stand-in with the same structure: eleven ad scenarios,
two of them unseen in training, numeric query-ad features grouped by query,
teacher soft labels, LLM labels and test labels. It knows nothing of the models.

The story behind every parameter is told in the data chapter of the book and in
the data card saved beside every data set (:func:`data_card`).
"""

from .card import (
    LIMITS,
    card_check,
    card_targets,
    data_card,
    rate_tolerance,
    read_card,
    story,
)
from .diagnostics import label_audit, relatedness_sweep, relevance_correlation
from .features import (
    FEATURE_DESCRIPTIONS,
    FEATURE_KINDS,
    FEATURE_NAMES,
    FEATURES,
    NUM_FEATURES,
)
from .generator import (
    LABEL_COLUMNS,
    PROFILE_SIZES,
    SPLITS,
    DataConfig,
    SyntheticData,
    config_for_profile,
    fingerprint_frames,
    generate,
    scenario_directions,
    target_correlation,
    target_rows,
)
from .io import (
    DamagedDataSetError,
    DataSetChangedWarning,
    clean_stale_temporaries,
    dataset_key,
    load,
    load_or_generate,
    save,
)
from .scenarios import (
    FAMILIES,
    NUM_TASK_SLOTS,
    SCENARIO_NAMES,
    SCENARIOS,
    SEEN,
    UNSEEN,
    scenario,
    task_id_of,
)

__all__ = [
    "FAMILIES", "FEATURES", "FEATURE_DESCRIPTIONS", "FEATURE_KINDS",
    "FEATURE_NAMES", "LABEL_COLUMNS", "LIMITS", "NUM_FEATURES", "NUM_TASK_SLOTS",
    "PROFILE_SIZES", "SCENARIOS", "SCENARIO_NAMES", "SEEN", "SPLITS", "UNSEEN",
    "DamagedDataSetError", "DataConfig", "DataSetChangedWarning",
    "SyntheticData", "card_check", "clean_stale_temporaries", "card_targets",
    "config_for_profile", "data_card", "dataset_key", "fingerprint_frames",
    "generate", "label_audit", "load", "load_or_generate", "rate_tolerance",
    "read_card", "relatedness_sweep", "relevance_correlation", "save",
    "scenario", "scenario_directions", "story", "target_correlation",
    "target_rows", "task_id_of",
]
