"""AutoTask: a task-aware multi-faceted single model for multi-task ads relevance.

A reproduction of Guo, Damani and Chang (arXiv 2407.06549): the two-facet model,
the multi-task DNN baseline, two-stage training, per-scenario metrics, an
experiment cache and the figures of the book.
"""

import os as _os

# Idle OpenMP threads sleep rather than spin (read once, when torch loads): a
# spinning thread made training 30x slower on a 2-core machine whenever another
# process was busy. It takes effect when this package is imported before torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .baseline import BaselineConfig, MultiTaskDNN
from .calibration import CalibrationWarning, ScenarioCalibrator, calibrate
from .data import (
    PreparedData,
    Standardizer,
    TaskTensors,
    frame_to_tensors,
    gather_blocks,
    group_blocks,
    prepare,
    random_blocks,
)
from .experiments import (
    cache_summary,
    fit_and_score,
    load_data,
    run_experiment,
    run_metrics,
)
from .metrics import UndefinedMetricWarning, scenario_metrics, summarise
from .model import AutoTask, AutoTaskConfig, count_parameters
from .paper import paper_table, paper_tables
from .profiles import PROFILES, Profile, get_profile
from .saved import SavedModel, load_model, save_model
from .train import (
    TrainConfig,
    predict_autotask,
    predict_baseline,
    soft_bce_with_logits,
    train_two_stage,
)
from .userdata import (
    DataSchema,
    UserData,
    fit_schema,
    load_user_data,
    model_config,
    read_table,
    to_tensors,
    validate_frame,
)

__all__ = [
    "CalibrationWarning", "ScenarioCalibrator", "cache_summary", "calibrate",
    "fit_and_score", "load_data", "run_experiment", "run_metrics",
    "AutoTask", "AutoTaskConfig", "BaselineConfig", "MultiTaskDNN", "PROFILES",
    "PreparedData", "Profile", "Standardizer", "TaskTensors", "TrainConfig",
    "UndefinedMetricWarning", "count_parameters", "frame_to_tensors",
    "gather_blocks", "get_profile", "group_blocks", "paper_table", "paper_tables",
    "predict_autotask", "predict_baseline", "prepare", "random_blocks",
    "scenario_metrics", "soft_bce_with_logits", "summarise", "train_two_stage",
    "DataSchema", "SavedModel", "UserData", "fit_schema", "load_model",
    "load_user_data", "model_config", "read_table", "save_model", "to_tensors",
    "validate_frame",
]
