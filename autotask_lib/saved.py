"""A trained model in a folder of its own, to score new tables later.

A saved-model folder holds:

* ``model.safetensors``: the weights;
* ``config.json``: the model and training configurations, the seed, the
  training history and the versions it was written with;
* ``data.json``: the :class:`~autotask_lib.userdata.DataSchema`, that is the
  scenario and query column names, the scenario-to-task-ID map, the feature
  columns and the standardisation statistics of the training rows;
* ``checksums.json``: the SHA-256 of the three files above, so that a file
  changed after saving (an edited statistic, a flipped bit) is refused instead
  of silently scoring differently.

:func:`save_model` writes into a temporary folder beside the target and renames
it into place, so an interrupted save leaves any earlier model untouched; it
refuses to replace a folder that is not a saved model. :func:`load_model`
rebuilds the model, whose scores equal the saved one's bit for bit on the same
machine and library versions (JSON stores every float64 exactly; the weights
are stored as they are).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .data import TaskTensors, group_blocks
from .model import AutoTask, AutoTaskConfig
from .train import TrainConfig, check_seed, score_blocks
from .userdata import DataSchema, read_table, to_tensors

FORMAT = "autotask-saved-model"  # marks a folder as a saved model
VERSION = 2  # layout version of the folder (2: with checksums.json)
WEIGHTS, CONFIG, DATA = "model.safetensors", "config.json", "data.json"
CHECKSUMS = "checksums.json"  # SHA-256 of WEIGHTS, CONFIG and DATA


@dataclass
class SavedModel:
    """A model read back by :func:`load_model`, with what it was trained with."""

    model: AutoTask  # in eval mode, on the CPU
    schema: DataSchema  # how it reads a table
    train_config: TrainConfig | None  # how it was trained, if saved
    seed: int | None  # its seed, if saved
    history: pd.DataFrame  # one row per training epoch (may be empty)
    folder: Path  # where it was read from

    def score(self, source, *, schema: DataSchema | None = None,
              progress: bool = False) -> np.ndarray:
        """Relevance probabilities of every row of a table, in table order.

        Parameters
        ----------
        source : DataFrame, str or path
            A table with the model's feature and scenario columns (and its
            query column, if it was trained with one).
        schema : DataSchema, optional
            The model's schema with other column names
            (:func:`~autotask_lib.userdata.with_columns`).
        progress : bool
            Show a progress bar.

        Returns
        -------
        float32 ndarray of shape (n,)
        """
        schema = schema or self.schema
        if not isinstance(schema, DataSchema):
            raise TypeError(f"schema must be a DataSchema; got {type(schema).__name__}")
        if schema.d != self.model.cfg.d or schema.num_tasks > self.model.cfg.num_tasks:
            raise ValueError(
                f"the schema (d={schema.d}, num_tasks={schema.num_tasks}) does not "
                f"fit the model (d={self.model.cfg.d}, num_tasks="
                f"{self.model.cfg.num_tasks}); pass this model's own schema, or "
                "with_columns(model.schema, ...) to rename its columns")
        # Only the scenario and query columns may be renamed: the features,
        # their statistics and the task IDs are what the model was trained on.
        ours, theirs = self.schema.to_dict(), schema.to_dict()
        for d in (ours, theirs):
            d.pop("scenario_column", None)
            d.pop("query_column", None)
        if ours != theirs:
            raise ValueError(
                "the schema is not this model's: its features, their "
                "standardisation or its task IDs differ from those the model was "
                "trained with; pass with_columns(model.schema, ...) to rename the "
                "scenario or query column")
        frame = read_table(source, text_columns=[schema.scenario_column,
                                                 schema.query_column])
        split = to_tensors(frame, schema)
        return score_tensors(self.model, split, progress=progress)


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


@torch.no_grad()
def score_tensors(
    model: AutoTask, split: TaskTensors, *, batch_blocks: int = 512,
    progress: bool = False,
) -> np.ndarray:
    """Score a split block by block, as :func:`~autotask_lib.predict_autotask`.

    Each group of ``split.query_id`` (one query's rows of one scenario) is
    scored as one block of at most ``block_len`` rows (paper section 3.1);
    the batches are :func:`~autotask_lib.train.score_blocks`'s, as
    ``predict_autotask``'s, so the scores are too.

    Returns
    -------
    float32 ndarray of shape (n,)

    Raises
    ------
    FloatingPointError
        If a score is NaN, naming the scenarios: the model's weights hold NaN,
        or features lie so far outside the training range that the model's
        arithmetic overflows.
    """
    blocks = group_blocks(split.query_id, model.cfg.block_len)  # (b', t)
    prob = score_blocks(model, split.x, blocks, batch_blocks, progress=progress)
    bad = np.isnan(prob)
    if bad.any():
        where = pd.Series(np.asarray(split.scenario)[bad]).value_counts()
        raise FloatingPointError(
            f"the model gave {int(bad.sum()):,} NaN score(s) of {len(prob):,}, "
            f"in the scenario(s) {', '.join(map(str, where.index[:5]))}"
            f"{', ...' if len(where) > 5 else ''}: its weights hold NaN, or "
            "features lie so far outside the training range that its "
            "arithmetic overflows"
        )
    return prob


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a ``config.json`` that marks a saved model."""
    try:
        meta = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def check_save_target(folder: str | os.PathLike) -> Path:
    """Refuse a target that :func:`save_model` would not replace.

    A new path, an empty folder or a saved-model folder is fine.

    Raises
    ------
    FileExistsError
        If the path is a file, a folder with other contents, or a saved model
        with other files beside it.
    """
    folder = Path(folder)
    if folder.is_symlink():
        raise FileExistsError(
            f"{str(folder)!r} is a symbolic link (to {os.readlink(folder)!r}); "
            "saving would replace the link with a folder, so name the folder "
            "itself or a new path"
        )
    if folder.is_dir():
        if any(folder.iterdir()) and not _is_model_folder(folder):
            raise FileExistsError(
                f"{str(folder)!r} exists and is not a saved AutoTask model; "
                "choose a new folder (a saved model is replaced, anything "
                "else is left alone)"
            )
        others = sorted(p.name for p in folder.iterdir()
                        if p.name not in (WEIGHTS, CONFIG, DATA, CHECKSUMS))
        if others:
            raise FileExistsError(
                f"{str(folder)!r} holds a saved model and other files too "
                f"({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}); "
                "replacing the model would delete them, so move them out or "
                "choose a new folder"
            )
    elif folder.exists():
        raise FileExistsError(f"{str(folder)!r} exists and is not a folder")
    return folder


# How much of a name its temporary companions keep: a name of up to 255 bytes
# is legal, and ``.<name>.saving-<random>`` must be too.
TEMP_NAME = 120


def umask_mode(base: int) -> int:
    """``base`` (0o777 for folders, 0o666 for files) less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _swap_into_place(tmp: Path, folder: Path) -> None:
    """Rename ``tmp`` to ``folder``, replacing a model there only once it is whole."""
    if not folder.exists():
        os.rename(tmp, folder)
        return
    old = folder.with_name(f".{folder.name[-TEMP_NAME:]}.old-{uuid.uuid4().hex[:8]}")
    os.rename(folder, old)
    try:
        os.rename(tmp, folder)
    except BaseException:
        os.rename(old, folder)
        raise
    try:
        shutil.rmtree(old)
    except OSError as err:
        warnings.warn(
            f"the model that {str(folder)!r} held before could not be deleted "
            f"({err.strerror or err}) and is left at {str(old)!r}",
            UserWarning, stacklevel=3,
        )


def save_model(
    model: AutoTask, folder: str | os.PathLike, *, schema: DataSchema,
    train_config: TrainConfig | None = None, seed: int | None = None,
    history: pd.DataFrame | None = None,
) -> Path:
    """Write a trained model and its data schema into ``folder``, atomically.

    Parameters
    ----------
    model : AutoTask
    folder : str or path
        A new folder, an empty one, or a saved model to replace.
    schema : DataSchema
        How the model reads a table (fitted on its training rows).
    train_config : TrainConfig, optional
    seed : int, optional
    history : DataFrame, optional
        What :func:`~autotask_lib.train_two_stage` returned.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    TypeError
        If ``model`` is not an AutoTask, ``schema`` not a DataSchema or
        ``history`` not a DataFrame.
    ValueError
        If the model's size does not fit the schema, its weights hold NaN or
        infinite values, or ``seed`` is not an integer in [0, 2**32 - 1].
    FileExistsError
        If ``folder`` is a file, a symbolic link or a folder that is not a
        saved model.
    OSError
        If writing fails (the folder is left as it was).
    """
    if not isinstance(model, AutoTask):
        raise TypeError(f"model must be an AutoTask; got {type(model).__name__}")
    if not isinstance(schema, DataSchema):
        raise TypeError(f"schema must be a DataSchema; got {type(schema).__name__}")
    if model.cfg.d != schema.d or model.cfg.num_tasks < schema.num_tasks:
        raise ValueError(
            f"the model (d={model.cfg.d}, num_tasks={model.cfg.num_tasks}) does "
            f"not fit the schema (d={schema.d}, num_tasks={schema.num_tasks})"
        )
    if seed is not None:
        seed = check_seed(seed)
    if history is not None and not isinstance(history, pd.DataFrame):
        raise TypeError("history must be a DataFrame (what train_two_stage "
                        f"returns) or None; got {type(history).__name__}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    broken = next((k for k, v in state.items()
                   if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise ValueError(
            f"the model's weights hold NaN or infinite values (in {broken!r}), "
            "so it cannot score; it was not saved (did training diverge?)"
        )
    folder = check_save_target(folder)
    meta = {
        "format": FORMAT, "version": VERSION, "model_class": "AutoTask",
        "model": asdict(model.cfg),
        "train": None if train_config is None else asdict(train_config),
        "seed": None if seed is None else int(seed),
        "history": [] if history is None else history.to_dict("records"),
        "versions": {"torch": torch.__version__, "numpy": np.__version__,
                     "pandas": pd.__version__},
    }

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name[-TEMP_NAME:]}.saving-",
                                dir=folder.parent))
    try:
        try:
            save_file(state, str(tmp / WEIGHTS))
        except SafetensorError as err:  # a full disk, a file size limit
            raise OSError(
                f"the model could not be saved to {str(folder)!r}: "
                f"{' '.join(str(err).split())}") from None
        (tmp / DATA).write_text(json.dumps(schema.to_dict(), indent=2))
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2))
        (tmp / CHECKSUMS).write_text(json.dumps(
            {name: _sha256(tmp / name) for name in (WEIGHTS, CONFIG, DATA)},
            indent=2))
        # mkdtemp makes a private folder; give it the usual permissions.
        for path in tmp.iterdir():
            path.chmod(umask_mode(0o666))
        tmp.chmod(umask_mode(0o777))
        _swap_into_place(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def _read_json(folder: Path, name: str) -> dict:
    """One JSON file of a model folder, or a clear error."""
    path = folder / name
    if not path.is_file():
        raise ValueError(
            f"{str(folder)!r} is not a saved AutoTask model: it has no {name}")
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"the saved model in {str(folder)!r} is damaged: {name} cannot be "
            f"read ({' '.join(str(err).split())})"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"the saved model in {str(folder)!r} is damaged: {name} does not "
            "hold a JSON object"
        )
    return value


def load_model(folder: str | os.PathLike) -> SavedModel:
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    folder : str or path

    Returns
    -------
    SavedModel

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    ValueError
        If it is not a saved model, or one of its files is missing or damaged.
    TypeError
        If ``folder`` is not a path.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(
            f"folder must be the path of a saved model; got {type(folder).__name__}")
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"no saved model at {str(folder)!r}")
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is a file, not a saved-model folder")
    meta = _read_json(folder, CONFIG)
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{str(folder)!r} is not a saved AutoTask model: its {CONFIG} lacks "
            f"format={FORMAT!r}"
        )
    if meta.get("version") != VERSION:
        raise ValueError(
            f"the saved model in {str(folder)!r} has layout version "
            f"{meta.get('version')!r}; this library reads version {VERSION}"
        )
    damaged = f"the saved model in {str(folder)!r} is damaged"
    sums = _read_json(folder, CHECKSUMS)
    for name in (WEIGHTS, CONFIG, DATA):
        if (folder / name).is_file() and sums.get(name) != _sha256(folder / name):
            raise ValueError(
                f"{damaged}: {name} changed after the model was saved (its "
                f"SHA-256 does not match {CHECKSUMS}); save the model again "
                "instead of editing its files"
            )
    try:
        cfg = AutoTaskConfig(**meta["model"])
        train_cfg = None if meta.get("train") is None else TrainConfig(
            **meta["train"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{damaged}: its configuration is invalid ({err})") from None
    described = _read_json(folder, DATA)
    try:
        schema = DataSchema.from_dict(described)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{damaged}: {DATA} does not describe a consistent table ({err})"
        ) from None
    if schema.d != cfg.d or schema.num_tasks > cfg.num_tasks:
        raise ValueError(
            f"{damaged}: {DATA} describes d={schema.d} and "
            f"num_tasks={schema.num_tasks}, the model d={cfg.d} and "
            f"num_tasks={cfg.num_tasks}"
        )
    if not (folder / WEIGHTS).is_file():
        raise ValueError(f"{damaged}: it has no {WEIGHTS}")
    model = AutoTask(cfg)
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
    except (SafetensorError, RuntimeError, OSError) as err:
        raise ValueError(
            f"{damaged}: {WEIGHTS} cannot be loaded "
            f"({' '.join(str(err).split())[:300]})"
        ) from None
    model.eval()
    return SavedModel(
        model=model, schema=schema, train_config=train_cfg, seed=meta.get("seed"),
        history=pd.DataFrame(meta.get("history") or []), folder=folder,
    )
