"""The experiment runner and its on-disk cache.

A run trains one model variant with one seed on one data set and scores the
test split. Its result lives under ``artifacts/<profile>/runs/<key>/``, where
the key hashes everything that can change it: the model kind and config, the
training config, the seed, the data set's content fingerprint and the source of
this library. A key that does not match is never read, so a notebook never
shows a result computed by older code or on other data. A run is written into
a temporary folder and renamed into place when complete: an interrupted run
leaves nothing that a later one could mistake for a result.

Each run folder holds ``model.safetensors`` (weights, loaded without
unpickling), ``run.json`` (configs, key parts, training history) and
``scores.parquet`` (one row per test row).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

import data_synth

from .baseline import BaselineConfig, MultiTaskDNN
from .data import PreparedData, prepare
from .metrics import scenario_metrics
from .model import AutoTask, AutoTaskConfig
from .profiles import Profile
from .train import TrainConfig, predict_autotask, predict_baseline, train_two_stage

log = logging.getLogger(__name__)

KINDS = {"autotask": (AutoTask, AutoTaskConfig), "baseline": (MultiTaskDNN,
                                                            BaselineConfig)}


# ---------------------------------------------------------------------------
# Where things live
# ---------------------------------------------------------------------------


def repo_root() -> Path:
    """The checkout this library is installed from (an editable install)."""
    return Path(__file__).resolve().parents[1]


def artifacts_dir(profile: Profile | str) -> Path:
    """``artifacts/<profile>/`` under ``AUTOTASK_ARTIFACTS`` or the checkout."""
    name = profile if isinstance(profile, str) else profile.name
    root = os.environ.get("AUTOTASK_ARTIFACTS") or repo_root() / "artifacts"
    return Path(root) / name


def load_data(profile: Profile, *, progress: bool = False):
    """The profile's synthetic data set, generated once and then read from disk."""
    return data_synth.load_or_generate(
        profile.data, profile.data_seed, artifacts_dir(profile) / "data",
        progress=progress,
    )


def library_source_hash() -> str:
    """Hash of this library's Python source: any code change changes run keys."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------


@dataclass
class Run:
    """A trained model and its test scores."""

    kind: str  # "autotask" or "baseline"
    seed: int
    key: str
    model: torch.nn.Module
    scores: pd.DataFrame  # scenario, label, query_id and one column per output
    history: pd.DataFrame  # training loss per stage and epoch
    folder: Path


def run_key(kind: str, model_cfg, train_cfg: TrainConfig, seed: int,
            fingerprint: str) -> str:
    """Hash of everything that determines a run's result."""
    blob = json.dumps({
        "kind": kind, "model": asdict(model_cfg), "train": asdict(train_cfg),
        "seed": int(seed), "data": fingerprint, "src": library_source_hash(),
        "torch": torch.__version__,
    }, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _write_atomic_dir(folder: Path, write) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write(tmp)
        if folder.exists():  # a concurrent run finished first: same key, same data
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _score(kind: str, model, prepared: PreparedData) -> pd.DataFrame:
    test = prepared["test"]
    scores = pd.DataFrame({
        "scenario": test.scenario,
        "query_id": test.query_id,
        "label": test.target.numpy().astype(np.int64),
    })
    if kind == "autotask":
        scores["autotask"] = predict_autotask(model, test)
    else:
        general, own = predict_baseline(model, test)
        scores["baseline_general"] = general
        scores["baseline_specific"] = own
    return scores


def fit_and_score(
    kind: str,
    model_cfg,
    profile: Profile,
    seed: int,
    *,
    data=None,
    prepared: PreparedData | None = None,
    progress: bool = True,
) -> Run:
    """Train a model with one seed and score the test split, through the cache.

    Parameters
    ----------
    kind : {"autotask", "baseline"}
    model_cfg : AutoTaskConfig or BaselineConfig
    profile : Profile
        Data, training schedule and where artifacts live.
    seed : int
        Seeds the model's initialisation and the training shuffles.
    data, prepared : optional
        The profile's data set and its tensors, to avoid reloading them.
    progress : bool
        Show a progress bar while training.

    Returns
    -------
    Run
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}; got {kind!r}")
    model_cls, cfg_cls = KINDS[kind]
    if not isinstance(model_cfg, cfg_cls):
        raise TypeError(
            f"model_cfg for kind {kind!r} must be a {cfg_cls.__name__}; "
            f"got {type(model_cfg).__name__}"
        )
    if prepared is None:
        prepared = prepare(data if data is not None else load_data(profile))
    key = run_key(kind, model_cfg, profile.train, seed, prepared.fingerprint)
    folder = artifacts_dir(profile) / "runs" / f"{kind}-{key}"

    if (folder / "run.json").exists():
        log.info("loading cached run %s", folder.name)
        meta = json.loads((folder / "run.json").read_text())
        model = model_cls(model_cfg)
        model.load_state_dict(load_file(folder / "model.safetensors"))
        model.eval()
        return Run(kind, seed, key, model,
                   pd.read_parquet(folder / "scores.parquet"),
                   pd.DataFrame(meta["history"]), folder)

    torch.manual_seed(seed)
    model = model_cls(model_cfg)
    history = train_two_stage(
        model, prepared["teacher_train"], prepared["llm_train"], profile.train,
        seed, progress=progress,
    )
    scores = _score(kind, model, prepared)
    meta = {
        "kind": kind, "seed": seed, "key": key, "model_config": asdict(model_cfg),
        "train_config": asdict(profile.train), "data_fingerprint":
        prepared.fingerprint, "library_source": library_source_hash(),
        "torch": torch.__version__, "history": history.to_dict("records"),
    }

    def write(tmp: Path) -> None:
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, tmp / "model.safetensors")
        scores.to_parquet(tmp / "scores.parquet", index=False)
        (tmp / "run.json").write_text(json.dumps(meta, indent=2, default=list))

    _write_atomic_dir(folder, write)
    return Run(kind, seed, key, model, scores, history, folder)


def run_metrics(run: Run, output: str, model_name: str | None = None,
                scenarios=None) -> pd.DataFrame:
    """Tidy per-scenario metrics of one output column of a run.

    Returns
    -------
    DataFrame
        Columns ``model, seed, scenario, metric, value, n_rows, n_pos``.
    """
    if output not in run.scores.columns:
        raise ValueError(
            f"output must be a score column of the run, one of "
            f"{[c for c in run.scores.columns if c not in ('scenario', 'query_id', 'label')]}; "
            f"got {output!r}"
        )
    s = run.scores
    keep = s[output].notna().to_numpy()
    table = scenario_metrics(
        s["label"].to_numpy()[keep], s[output].to_numpy()[keep],
        s["scenario"].to_numpy()[keep], scenarios=scenarios,
    )
    table.insert(0, "seed", run.seed)
    table.insert(0, "model", model_name or output)
    return table
