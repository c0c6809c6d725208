"""The experiment runner and its on-disk cache (DESIGN.md section 3).

Two levels of results live under ``artifacts/<profile>/``:

* ``runs/<kind>-<key>/``: one trained model. It holds ``model.safetensors``
  (weights, loaded without unpickling), ``run.json`` (configs, key parts,
  training history) and ``scores.parquet`` (one row per calibration and test
  row, with a ``split`` column), so that calibrators can be fitted later
  without retraining.
* ``experiments/<name>-<key>/``: a named experiment, several variants of
  models over several seeds, as one tidy table ``results.parquet`` (columns
  ``experiment, variant, seed, scenario, metric, value``), the test-row
  bootstrap ``replicates.parquet`` and ``experiment.json``.

Every key hashes everything that can change what it names: model kind and
config, training config, seed, the data set's content fingerprint and the
source of this library (and, for experiments, the variants, the metric
settings and the versions of the numeric packages). A key that does not match
is never read, so nothing shown was computed by older code or on other data.

A result is written into a dot-prefixed temporary folder beside its place and
renamed into place when complete, so an interrupted run leaves no half-written
result; the temporary folders of processes that died are removed by later
runs. A lock per key makes concurrent processes train a model once, and every
training is recorded in ``runs/training_log.jsonl``, so a whole build can show
that each model was trained exactly once (:func:`training_log`).

Runs an experiment still needs are trained side by side in
``AUTOTASK_WORKERS`` processes (:func:`fit_many`; two by default, one on a
one-core machine), each with its share of the machine's cores. Small models
use one core barely less well than two, so two processes of one thread train
twice as many rows per second as one process of two. Every cached run is
trained with that share of threads, whether alone or beside another, so where
a run was trained never changes its numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import types
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import sklearn
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

import data_synth
from data_synth.io import STALE_AFTER_S, clean_stale_temporaries  # noqa: F401
from data_synth.io import temporary_owner as _owner

from .baseline import BaselineConfig, MultiTaskDNN
from .calibration import METHODS as CALIBRATION_METHODS
from .calibration import ScenarioCalibrator
from .data import PreparedData, group_blocks, prepare, random_blocks
from .metrics import (HIGHER_IS_BETTER, bootstrap_scenario_metrics,
                      reliability_curve, scenario_metrics, summarise)
from .model import AutoTask, AutoTaskConfig
from .peers import MMoE, PLE, MMoEConfig, PLEConfig, predict_peer
from .profiles import Profile, get_profile
from .train import (TrainConfig, check_seed, predict_autotask, predict_baseline,
                    score_blocks, train_two_stage)

try:  # POSIX file locks; elsewhere concurrent processes may train a model twice
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

log = logging.getLogger(__name__)

KINDS = {"autotask": (AutoTask, AutoTaskConfig),
         "baseline": (MultiTaskDNN, BaselineConfig),
         "mmoe": (MMoE, MMoEConfig),
         "ple": (PLE, PLEConfig)}

# Score columns of each kind of run; the first is the kind's main output. A
# peer's main output is each row's own route (the general route for unseen
# scenarios); ``<kind>_general`` is the general route for every row.
OUTPUTS = {"autotask": ("autotask",),
           "baseline": ("baseline_general", "baseline_specific"),
           "mmoe": ("mmoe", "mmoe_general"),
           "ple": ("ple", "ple_general")}

# The kinds scored row by row through :func:`autotask_lib.peers.predict_peer`.
PEER_KINDS = ("mmoe", "ple")

# Splits a run scores: calibration rows fit calibrators, test rows are reported.
SCORED_SPLITS = ("calibration", "test")

# What this process did with the cache: ("run" | "experiment" | "table", "trained" |
# "loaded" | "computed", name) -> count.
_EVENTS: Counter = Counter()


# ---------------------------------------------------------------------------
# Where things live
# ---------------------------------------------------------------------------


class CacheWarning(UserWarning):
    """A cache entry could not be read and is computed again."""


def repo_root() -> Path:
    """The checkout this library is installed from (an editable install)."""
    return Path(__file__).resolve().parents[1]


# The folders of a profile's cache.
_CACHE_FOLDERS = ("data", "locks", "runs", "experiments", "tables")


def artifacts_dir(profile: Profile | str) -> Path:
    """``artifacts/<profile>/`` under ``AUTOTASK_ARTIFACTS`` or the checkout.

    Raises
    ------
    ValueError
        If ``profile`` names no profile, or a file stands where the cache
        needs a folder: the root, the profile's folder or one of its folders
        (``data``, ``locks``, ``runs``, ``experiments``, ``tables``), or a
        symbolic link there leads nowhere.
    """
    if isinstance(profile, str):
        profile = get_profile(profile)  # an unknown name is an error
    elif not isinstance(profile, Profile):
        raise TypeError("profile must be a Profile or a profile's name; got "
                        f"{type(profile).__name__}")
    name = profile.name
    root = Path(os.environ.get("AUTOTASK_ARTIFACTS") or repo_root() / "artifacts")
    folder = root / name
    for path in (*reversed(root.parents), root, folder,
                 *(folder / sub for sub in _CACHE_FOLDERS)):
        if path.is_symlink() and not path.exists():
            raise ValueError(
                f"the artifacts cache needs a folder at {str(path)!r}, but a "
                f"symbolic link there (to {os.readlink(path)!r}) leads nowhere: "
                "its target is missing or the links form a loop; fix or remove "
                "the link, or set AUTOTASK_ARTIFACTS to a folder"
            )
    above = next((p for p in root.parents if p.exists()), None)
    for path in (above, root, folder, *(folder / sub for sub in _CACHE_FOLDERS)):
        if path is not None and path.exists() and not path.is_dir():
            raise ValueError(
                f"the artifacts cache needs a folder at {str(path)!r}, but a "
                "file is there; move the file aside"
                + (", or set AUTOTASK_ARTIFACTS to a folder" if path in (above, root)
                   else "")
            )
    return folder


def load_data(profile: Profile, *, progress: bool = False):
    """The profile's synthetic data set, generated once and then read from disk.

    Raises
    ------
    PermissionError
        If the data set must be generated and its cache folder cannot be
        written.
    """
    folder = artifacts_dir(profile) / "data"
    try:
        return data_synth.load_or_generate(profile.data, profile.data_seed,
                                           folder, progress=progress)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        where = Path(err.filename) if err.filename else folder
        raise _unwritable(where if where.is_dir() else where.parent, err) from None


def library_source_hash(folder: str | os.PathLike | None = None) -> str:
    """Hash of this library's Python source: any code change changes every key.

    Parameters
    ----------
    folder : path, optional
        A folder of ``.py`` files to hash instead of this package's own.
    """
    folder = Path(__file__).parent if folder is None else Path(folder)
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


# ---------------------------------------------------------------------------
# Atomic folders, stale temporaries, locks and the training log
# ---------------------------------------------------------------------------


def _checksums(folder: Path, names) -> dict[str, str]:
    """SHA-256 of each named file in ``folder``, recorded when it is written."""
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


def _verify_checksums(folder: Path, meta: dict) -> None:
    """Raise if a file of a cache entry changed after it was written."""
    recorded = meta.get("checksums")
    if not isinstance(recorded, dict) or not recorded:
        raise ValueError("the entry records no checksums")
    now = _checksums(folder, recorded)
    changed = sorted(n for n in recorded if now[n] != recorded[n])
    if changed:
        raise ValueError(f"{changed} changed after the entry was written")


def _unwritable(folder, err: OSError) -> PermissionError:
    return PermissionError(
        f"the cache folder {str(folder)!r} cannot be written "
        f"({err.strerror or err}); make it writable, or set "
        "AUTOTASK_ARTIFACTS to another folder"
    )


def _check_writable(folder: Path) -> None:
    # Fail before the work, not after it, when a cache folder cannot be written.
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".probe.{_owner()}.", dir=folder))
    except OSError as err:
        raise _unwritable(folder, err) from None


def _write_atomic_dir(folder: Path, write) -> None:
    # Write into a temporary folder beside ``folder``, then rename it into place.
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{_owner()}.",
                                dir=folder.parent))
    try:
        write(tmp)
        if folder.exists():  # a concurrent run finished first: same key, same data
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def _key_lock(profile: Profile, name: str):
    # Hold an exclusive lock on ``name`` while it is computed and written.
    if fcntl is None:  # pragma: no cover
        yield
        return
    folder = artifacts_dir(profile) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.lock"
    if path.is_dir():
        raise ValueError(
            f"the lock file {str(path)!r} is a folder; remove it (locks hold "
            "nothing but are needed to keep processes from training a model "
            "twice)"
        )
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log_training(profile: Profile, record: dict) -> None:
    # One JSON line per training, appended in a single write.
    path = artifacts_dir(profile) / "runs" / "training_log.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def training_log(profile: Profile | str, *, current: bool = False) -> pd.DataFrame:
    """Every training recorded under a profile's artifacts, oldest first.

    Parameters
    ----------
    profile : Profile or str
    current : bool
        Keep only trainings by the current library source.

    Returns
    -------
    DataFrame
        ``run`` (folder name: kind and key), ``kind, seed, seconds,
        finished`` (UTC time), ``pid`` and ``library_source``; empty when
        nothing was trained.
    """
    path = artifacts_dir(profile) / "runs" / "training_log.jsonl"
    columns = ["run", "kind", "seed", "seconds", "finished", "pid",
               "library_source"]
    if not path.exists():
        return pd.DataFrame(columns=columns)
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            warnings.warn(
                f"line {number} of {str(path)!r} is not a training record and "
                "is skipped", CacheWarning, stacklevel=2,
            )
            continue
        records.append(record)
    table = pd.DataFrame(records).reindex(columns=columns)
    if current:
        table = table[table["library_source"] == library_source_hash()]
    return table.reset_index(drop=True)


def cache_events() -> pd.DataFrame:
    """What this process did with the cache so far.

    Returns
    -------
    DataFrame
        ``what`` (``run``, ``experiment`` or ``table``), ``action``
        (``trained``, ``loaded`` or ``computed``), ``name`` and ``count``.
    """
    rows = [{"what": w, "action": a, "name": n, "count": c}
            for (w, a, n), c in _EVENTS.items()]
    return pd.DataFrame(rows, columns=["what", "action", "name", "count"])


def cache_summary(profile: Profile | str | None = None) -> str:
    """A few sentences on the cache, for a notebook to show.

    They count the models this process trained and loaded and the experiment
    tables it computed and loaded; with ``profile``, they also say how many
    distinct models the current library source has trained under that
    profile's artifacts, and whether any of them was trained more than once.
    """
    ev = cache_events()

    def count(what: str, action: str) -> int:
        return int(ev.loc[(ev["what"] == what) & (ev["action"] == action),
                          "count"].sum())

    text = (f"This process (with its training workers) trained "
            f"{count('run', 'trained')} model(s) and "
            f"loaded {count('run', 'loaded')} from the cache; it computed "
            f"{count('experiment', 'computed')} experiment table(s) and "
            f"loaded {count('experiment', 'loaded')}.")
    if profile is None:
        return text
    name = profile if isinstance(profile, str) else profile.name
    counts = training_log(profile, current=True)["run"].value_counts()
    twice = counts[counts > 1]
    text += (f" With the current library source, {len(counts)} distinct "
             f"model(s) have been trained under the `{name}` profile's "
             f"artifacts, ")
    if twice.empty:
        return text + "each exactly once."
    return text + f"{len(twice)} of them more than once: {list(twice.index)}."


# ---------------------------------------------------------------------------
# One run: a trained model and its scores
# ---------------------------------------------------------------------------


@dataclass
class Run:
    """A trained model and its scores on the calibration and test splits."""

    kind: str  # "autotask", "baseline", "mmoe" or "ple"
    seed: int  # the model seed: initialisation and shuffles
    key: str  # hash of everything that determines the run
    model: torch.nn.Module  # the trained model, in eval mode
    scores: pd.DataFrame  # test rows: scenario, query_id, label, one column an output
    history: pd.DataFrame  # training loss per stage and epoch
    folder: Path  # where the run is stored
    calib_scores: pd.DataFrame  # the same columns for the calibration rows


def run_key(kind: str, model_cfg, train_cfg: TrainConfig, seed: int,
            fingerprint: str, *, src: str | None = None) -> str:
    """Hash of everything that determines a run's result.

    ``src`` is the library source hash, computed now when omitted. The
    number of training threads (:func:`training_threads`) is part of the key:
    another thread count sums in another order and changes the last digits,
    so a run trained with one never stands in for a run with another.
    """
    src = library_source_hash() if src is None else src
    blob = json.dumps({
        "kind": kind, "model": asdict(model_cfg), "train": asdict(train_cfg),
        "seed": int(seed), "data": fingerprint, "src": src,
        "torch": torch.__version__, "threads": training_threads(),
    }, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _score(kind: str, model, prepared: PreparedData) -> pd.DataFrame:
    frames = []
    for split in SCORED_SPLITS:
        rows = prepared[split]
        scores = pd.DataFrame({
            "split": split,
            "scenario": rows.scenario,
            "query_id": rows.query_id,
            "label": rows.target.numpy().astype(np.int64),
        })
        if kind == "autotask":
            scores["autotask"] = predict_autotask(model, rows)
        elif kind in PEER_KINDS:
            scores[kind] = predict_peer(model, rows)
            scores[f"{kind}_general"] = predict_peer(model, rows, route="general")
        else:
            general, own = predict_baseline(model, rows)
            scores["baseline_general"] = general
            scores["baseline_specific"] = own
        frames.append(scores)
    return pd.concat(frames, ignore_index=True)


def _split_scores(scores: pd.DataFrame, split: str) -> pd.DataFrame:
    part = scores[scores["split"] == split].drop(columns="split")
    return part.reset_index(drop=True)


def _check_kind_and_config(kind: str, model_cfg) -> tuple:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}; got {kind!r}")
    model_cls, cfg_cls = KINDS[kind]
    if not isinstance(model_cfg, cfg_cls):
        raise TypeError(
            f"model_cfg for kind {kind!r} must be a {cfg_cls.__name__}; "
            f"got {type(model_cfg).__name__}"
        )
    return model_cls, cfg_cls


def _check_fits_data(kind: str, model_cfg, prepared: PreparedData,
                     what: str = "") -> None:
    """Refuse a model config whose input width or task slots miss the data."""
    width = int(prepared["llm_train"].x.shape[1])
    slots = max(prepared.task_ids.values(), default=0) + 1
    name = f"{what} ({kind})" if what else f"model_cfg of kind {kind!r}"
    cfg = type(model_cfg).__name__
    if model_cfg.d != width:
        raise ValueError(
            f"{name}: {cfg}.d is {model_cfg.d}, but the data's rows have {width} "
            f"columns ({len(prepared.feature_columns)} features and the task "
            f"ID); set d={width}")
    if model_cfg.num_tasks < slots:
        raise ValueError(
            f"{name}: {cfg}.num_tasks is {model_cfg.num_tasks}, but the data "
            f"has task IDs up to {slots - 1} (slot 0 is for unseen scenarios); "
            f"set num_tasks={slots} or more")


def fit_and_score(
    kind: str,
    model_cfg,
    profile: Profile,
    seed: int,
    *,
    data=None,
    prepared: PreparedData | None = None,
    train_cfg: TrainConfig | None = None,
    progress: bool = True,
) -> Run:
    """Train a model with one seed and score the calibration and test splits,
    through the cache.

    Parameters
    ----------
    kind : {"autotask", "baseline", "mmoe", "ple"}
        The model: AutoTask, the multi-task DNN baseline, or one of the peer
        baselines of :mod:`autotask_lib.peers`.
    model_cfg : AutoTaskConfig, BaselineConfig, MMoEConfig or PLEConfig
        The kind's config.
    profile : Profile
        Data, training schedule and where artifacts live.
    seed : int
        Seeds the model's initialisation and the training shuffles.
    data, prepared : optional
        The profile's data set and its tensors, to avoid reloading them.
    train_cfg : TrainConfig, optional
        Overrides the profile's training config; every field, such as
        ``task_id_dropout``, is part of the run's key.
    progress : bool
        Show a progress bar while training.

    Returns
    -------
    Run

    Raises
    ------
    ValueError
        On an unknown kind.
    TypeError
        On a config that does not belong to the kind.
    """
    model_cls, _ = _check_kind_and_config(kind, model_cfg)
    if not isinstance(profile, Profile):
        raise TypeError(
            f"profile must be a Profile (get_profile({profile!r}) makes one); "
            f"got {type(profile).__name__}"
        )
    seed = check_seed(seed)
    if train_cfg is not None and not isinstance(train_cfg, TrainConfig):
        raise TypeError(
            f"train_cfg must be a TrainConfig or None; got {type(train_cfg).__name__}"
        )
    train_cfg = profile.train if train_cfg is None else train_cfg
    if prepared is None:
        prepared = prepare(data if data is not None else load_data(profile))
    _check_fits_data(kind, model_cfg, prepared)
    src = library_source_hash()
    key = run_key(kind, model_cfg, train_cfg, seed, prepared.fingerprint, src=src)
    runs_dir = artifacts_dir(profile) / "runs"
    folder = runs_dir / f"{kind}-{key}"
    clean_stale_temporaries(runs_dir)

    if not (folder / "run.json").exists():
        _check_writable(runs_dir)  # a read-only cache still serves what it holds
        with _key_lock(profile, folder.name):
            if not (folder / "run.json").exists():  # nobody finished it meanwhile
                return _train_and_store(kind, model_cls, model_cfg, train_cfg,
                                        profile, seed, key, src, prepared,
                                        folder, progress)

    log.info("loading cached run %s", folder.name)
    try:
        meta = json.loads((folder / "run.json").read_text())
        _verify_checksums(folder, meta)
        model = model_cls(model_cfg)
        model.load_state_dict(load_file(folder / "model.safetensors"))
        model.eval()
        scores = pd.read_parquet(folder / "scores.parquet")
    except Exception as err:  # a damaged cache entry is retrained, not trusted
        warnings.warn(
            f"cached run {str(folder)!r} is unreadable ({type(err).__name__}: "
            f"{err}); it is moved aside and the model is trained again",
            CacheWarning, stacklevel=2,
        )
        with _key_lock(profile, folder.name):
            shutil.rmtree(folder, ignore_errors=True)
            return _train_and_store(kind, model_cls, model_cfg, train_cfg,
                                    profile, seed, key, src, prepared,
                                    folder, progress)
    _EVENTS["run", "loaded", folder.name] += 1
    return Run(kind, seed, key, model, _split_scores(scores, "test"),
               pd.DataFrame(meta["history"]), folder,
               _split_scores(scores, "calibration"))


def _train_and_store(kind, model_cls, model_cfg, train_cfg, profile, seed, key,
                     src, prepared, folder, progress) -> Run:
    # Train, score both splits, write the run atomically and log the training.
    log.info("training run %s (seed %d)", folder.name, seed)
    start = time.perf_counter()
    with _torch_threads(training_threads()):
        torch.manual_seed(seed)
        model = model_cls(model_cfg)
        history = train_two_stage(
            model, prepared["teacher_train"], prepared["llm_train"], train_cfg,
            seed, progress=progress, device=profile.device,
        )
        scores = _score(kind, model, prepared)
    meta = {
        "kind": kind, "seed": seed, "key": key, "model_config": asdict(model_cfg),
        "train_config": asdict(train_cfg), "data_fingerprint":
        prepared.fingerprint, "library_source": src,
        "torch": torch.__version__, "history": history.to_dict("records"),
    }

    def write(tmp: Path) -> None:
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, tmp / "model.safetensors")
        scores.to_parquet(tmp / "scores.parquet", index=False)
        meta["checksums"] = _checksums(tmp, ("model.safetensors", "scores.parquet"))
        (tmp / "run.json").write_text(json.dumps(meta, indent=2, default=list))

    _write_atomic_dir(folder, write)
    seconds = time.perf_counter() - start
    _log_training(profile, {
        "run": folder.name, "kind": kind, "seed": int(seed),
        "seconds": round(seconds, 1), "pid": os.getpid(),
        "library_source": meta["library_source"],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    _EVENTS["run", "trained", folder.name] += 1
    log.info("trained run %s in %.1f s", folder.name, seconds)
    return Run(kind, seed, key, model, _split_scores(scores, "test"), history,
               folder, _split_scores(scores, "calibration"))


# ---------------------------------------------------------------------------
# Training several runs side by side
# ---------------------------------------------------------------------------

WORKERS_ENV = "AUTOTASK_WORKERS"


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def training_workers() -> int:
    """Processes that train missing runs side by side.

    ``AUTOTASK_WORKERS`` when set (1 trains every run in this process);
    otherwise 2, or 1 on a machine with a single core.

    Raises
    ------
    ValueError
        If ``AUTOTASK_WORKERS`` is not a positive integer.
    """
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw:
        return min(2, _usable_cpus())
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(
            f"{WORKERS_ENV} must be a positive integer; got {raw!r}"
        )
    if int(raw) > _usable_cpus():
        warnings.warn(
            f"{WORKERS_ENV}={raw} is more than the {_usable_cpus()} usable "
            "core(s): the workers share the cores, one thread each, which is "
            "slower than one worker per core (the results are the same)",
            UserWarning, stacklevel=2,
        )
    return int(raw)


def training_threads() -> int:
    """Threads of one run's training: the cores shared among the workers."""
    return max(1, _usable_cpus() // training_workers())


@contextlib.contextmanager
def _torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# In a worker process: the prepared data sets it has read, by file.
_WORKER_DATA: dict[str, PreparedData] = {}


# The settings a worker must share with its parent at every call: a pool
# outlives changes to the parent's environment.
_SHARED_ENV = ("AUTOTASK_ARTIFACTS", WORKERS_ENV)


def _fit_in_worker(env: dict, data_file: str, kind, model_cfg, profile, seed,
                   train_cfg) -> tuple[str, bool]:
    # Runs in a worker: train one run into the cache; the parent loads it.
    for name in _SHARED_ENV:
        if env.get(name) is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = env[name]
    if data_file not in _WORKER_DATA:
        _WORKER_DATA.clear()
        # A file this library's parent process wrote a moment ago in a private
        # temporary folder, not a checkpoint from elsewhere.
        _WORKER_DATA[data_file] = torch.load(data_file, weights_only=False)
    run = fit_and_score(kind, model_cfg, profile, seed, train_cfg=train_cfg,
                        prepared=_WORKER_DATA[data_file], progress=False)
    return run.folder.name, _EVENTS["run", "trained", run.folder.name] > 0


_POOL: dict = {}  # the worker pool of this process, reused across calls


def _pool(workers: int) -> ProcessPoolExecutor:
    # Fresh processes (spawn): forking a process that already runs OpenMP
    # threads can hang the child.
    if _POOL.get("workers") != workers:
        _close_pool()
        _POOL.update(workers=workers, pool=ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"),
            initializer=_start_worker, initargs=(os.getpid(),)))
    return _POOL["pool"]


def _start_worker(parent: int) -> None:
    # Ctrl-C, or a Jupyter kernel shutting down, interrupts the whole process
    # group. The parent then stops the workers itself (and exits, which ends
    # idle workers), so a worker needs no traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed outright cannot stop its workers: each leaves as soon
    # as it is handed to another parent.
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()


def _exit_without(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


@contextlib.contextmanager
def _without_main_module():
    # A spawned process first re-runs the script that started its parent,
    # unless that script guards its work with `if __name__ == "__main__"`. The
    # workers need nothing from the caller's script (they run this module's
    # functions on this library's configs), so while they start, the script
    # is hidden from them: a user's unguarded script is neither repeated nor
    # broken by the workers.
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _close_pool(kill: bool = False) -> None:
    pool = _POOL.pop("pool", None)
    _POOL.clear()
    if pool is None:
        return
    if kill:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
    pool.shutdown(wait=not kill, cancel_futures=True)


def fit_many(
    jobs,
    profile: Profile,
    *,
    data=None,
    prepared: PreparedData | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[Run]:
    """Train the missing runs of several jobs side by side, then load them all.

    Parameters
    ----------
    jobs : sequence of tuples
        ``(kind, model_cfg, seed)`` or ``(kind, model_cfg, seed, train_cfg)``,
        each as the arguments of :func:`fit_and_score`.
    profile : Profile
    data, prepared : optional
        The profile's data set or its tensors, to avoid reloading them.
    workers : int, optional
        Training processes; :func:`training_workers` when omitted. With 1,
        or with at most one run missing, training happens in this process.
    progress : bool
        Show a bar over the runs being trained.

    Returns
    -------
    list of Run
        In the order of ``jobs``.

    Raises
    ------
    ValueError, TypeError
        On a malformed job, as :func:`fit_and_score` does on its arguments.
    """
    if isinstance(jobs, (str, bytes)) or not hasattr(jobs, "__iter__"):
        raise TypeError(f"jobs must be a sequence of tuples; got {jobs!r}")
    jobs = list(jobs)
    for job in jobs:
        if not isinstance(job, tuple) or len(job) not in (3, 4):
            raise ValueError(
                "each job must be a tuple (kind, model_cfg, seed[, train_cfg]); "
                f"got {job!r}"
            )
    workers = training_workers() if workers is None else workers
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or (
            workers < 1):
        raise ValueError(f"workers must be a positive integer; got {workers!r}")
    if not isinstance(profile, Profile):
        raise TypeError(
            f"profile must be a Profile (get_profile({profile!r}) makes one); "
            f"got {type(profile).__name__}"
        )
    if prepared is None:
        prepared = prepare(data if data is not None else load_data(profile))
    jobs = [(*job, None) if len(job) == 3 else job for job in jobs]

    # Which runs are missing from the cache (checking every job's arguments).
    src = library_source_hash()
    missing = {}
    for kind, model_cfg, seed, train_cfg in jobs:
        _check_kind_and_config(kind, model_cfg)
        _check_fits_data(kind, model_cfg, prepared)
        check_seed(seed)
        if train_cfg is not None and not isinstance(train_cfg, TrainConfig):
            raise TypeError(
                "train_cfg must be a TrainConfig or None; got "
                f"{type(train_cfg).__name__}"
            )
        key = run_key(kind, model_cfg, profile.train if train_cfg is None
                      else train_cfg, int(seed), prepared.fingerprint, src=src)
        name = f"{kind}-{key}"
        if not (artifacts_dir(profile) / "runs" / name / "run.json").exists():
            missing.setdefault(name, (kind, model_cfg, int(seed), train_cfg))

    trained = set()
    if workers > 1 and len(missing) > 1:
        trained = _train_in_workers(list(missing.values()), profile, prepared,
                                    workers, progress)
    runs = [fit_and_score(kind, model_cfg, profile, seed, prepared=prepared,
                          train_cfg=train_cfg, progress=progress)
            for kind, model_cfg, seed, train_cfg in jobs]
    for name in trained:  # trained for this process, not loaded from before
        _EVENTS["run", "loaded", name] -= 1
        if _EVENTS["run", "loaded", name] <= 0:
            del _EVENTS["run", "loaded", name]
    return runs


def _train_in_workers(jobs, profile, prepared, workers, progress) -> set[str]:
    # Train jobs in worker processes; returns the names of the runs they
    # trained. The workers read the data from one file instead of each being
    # sent a copy.
    cache = artifacts_dir(profile)
    _check_writable(cache / "runs")  # before the workers start, not after
    clean_stale_temporaries(cache)  # what killed processes left behind
    with tempfile.TemporaryDirectory(prefix=f".prepared.{_owner()}.",
                                     dir=cache) as tmp:
        data_file = os.path.join(tmp, f"{prepared.fingerprint}.pt")
        torch.save(prepared, data_file)
        env = {name: os.environ.get(name) for name in _SHARED_ENV}
        done = _map_in_workers(
            _fit_in_worker,
            [(env, data_file, kind, model_cfg, profile, seed, train_cfg)
             for kind, model_cfg, seed, train_cfg in jobs],
            workers,
            desc=f"training {len(jobs)} runs in {min(workers, len(jobs))} processes",
            unit="run", progress=progress)
    trained_here = {name for name, trained in done if trained}
    for name in trained_here:  # counted here, where cache_events looks
        _EVENTS["run", "trained", name] += 1
    return trained_here


def _map_in_workers(fn, calls: list[tuple], workers: int, *, desc: str = "",
                    unit: str = "it", progress: bool = False) -> list:
    # fn(*call) for every call in the worker pool; results in call order. An
    # error in any call, or an interrupt, stops every worker and is raised.
    pool = _pool(workers)
    with _without_main_module():  # worker processes start on submit
        futures = [pool.submit(fn, *call) for call in calls]
    bar = tqdm(total=len(futures), unit=unit, desc=desc, disable=not progress)
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            bar.update(len(done))
            for f in done:
                f.result()  # re-raises a worker's error
    except BaseException:
        # A run killed mid-write leaves only a temporary folder, which later
        # runs clean away.
        _close_pool(kill=True)
        raise
    finally:
        bar.close()
    return [f.result() for f in futures]


def run_metrics(run: Run, output: str, model_name: str | None = None,
                scenarios=None) -> pd.DataFrame:
    """Tidy per-scenario metrics of one output column of a run's test scores.

    Returns
    -------
    DataFrame
        Columns ``model, seed, scenario, metric, value, n_rows, n_pos``.
    """
    if output not in run.scores.columns:
        raise ValueError(
            f"output must be a score column of the run, one of "
            f"{list(OUTPUTS[run.kind])}; got {output!r}"
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


# ---------------------------------------------------------------------------
# Calibrated scores of one output of a run
# ---------------------------------------------------------------------------


def fit_calibrator(run: Run, output: str, method: str) -> ScenarioCalibrator:
    """Per-scenario calibrator of one output, fitted on the run's calibration rows.

    Rows whose score is NaN (a task-specific branch has none for unseen
    scenarios) are left out; scenarios absent from the calibration split
    (the unseen ones) get no calibrator.

    Raises
    ------
    ValueError
        On an unknown output or method.
    """
    _check_output(run, output)
    cal = run.calib_scores
    keep = cal[output].notna().to_numpy()
    return ScenarioCalibrator(method).fit(
        cal["label"].to_numpy()[keep], cal[output].to_numpy()[keep],
        cal["scenario"].to_numpy()[keep],
    )


def _check_output(run: Run, output: str) -> None:
    if output not in OUTPUTS[run.kind]:
        raise ValueError(
            f"output must be one of {list(OUTPUTS[run.kind])} for a "
            f"{run.kind} run; got {output!r}"
        )


def scored_rows(run: Run, output: str, calibration: str | None = None,
                split: str = "test") -> pd.DataFrame:
    """One output of a run on one split, calibrated per scenario if asked.

    Parameters
    ----------
    run : Run
    output : str
        A score column of the run (see ``OUTPUTS``).
    calibration : {None, "platt", "isotonic"}
        Fitted on the run's calibration rows, per scenario; scenarios without
        calibration rows keep their uncalibrated scores.
    split : {"test", "calibration"}

    Returns
    -------
    DataFrame
        The rows whose score is defined: ``scenario, label, y_prob`` (the
        probability), ``y_rank`` (a score that ranks exactly as the
        calibrated probability would with unlimited precision: the calibrated
        logit for Platt scaling, otherwise ``y_prob``) and ``calibrated``
        (whether the row's scenario had a calibrator).
    """
    _check_output(run, output)
    if calibration is not None and calibration not in CALIBRATION_METHODS:
        raise ValueError(
            f"calibration must be None or one of {list(CALIBRATION_METHODS)}; "
            f"got {calibration!r}"
        )
    if split not in SCORED_SPLITS:
        raise ValueError(f"split must be one of {list(SCORED_SPLITS)}; got {split!r}")
    frame = run.scores if split == "test" else run.calib_scores
    frame = frame[frame[output].notna()]
    raw = frame[output].to_numpy()
    out = pd.DataFrame({"scenario": frame["scenario"].to_numpy(),
                        "label": frame["label"].to_numpy()})
    if calibration is None:
        out["y_prob"] = raw.astype(np.float64)
        out["y_rank"] = raw.astype(np.float64)
        out["calibrated"] = False
        return out
    cal = fit_calibrator(run, output, calibration)
    scen = out["scenario"].to_numpy()
    # Scenarios without a calibrator (the unseen ones) keep their raw scores,
    # and the "calibrated" column says which rows those are.
    out["y_prob"] = cal.transform(raw, scen, missing="keep")
    out["y_rank"] = (cal.transform(raw, scen, missing="keep", logit=True)
                     if calibration == "platt" else out["y_prob"])
    out["calibrated"] = cal.is_calibrated(scen)
    return out


# ---------------------------------------------------------------------------
# Named experiments
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One model output in an experiment, optionally calibrated per scenario."""

    kind: str  # "autotask", "baseline", "mmoe" or "ple": the model to train
    model_cfg: AutoTaskConfig | BaselineConfig | MMoEConfig | PLEConfig  # its config
    output: str | None = None  # score column; None: the kind's main output
    calibration: str | None = None  # None, "platt" or "isotonic"
    train: TrainConfig | None = None  # None: the profile's training config

    def __post_init__(self) -> None:
        _check_kind_and_config(self.kind, self.model_cfg)
        if self.output is None:
            object.__setattr__(self, "output", OUTPUTS[self.kind][0])
        if self.output not in OUTPUTS[self.kind]:
            raise ValueError(
                f"output must be one of {list(OUTPUTS[self.kind])} for kind "
                f"{self.kind!r}; got {self.output!r}"
            )
        if self.calibration is not None and (
            self.calibration not in CALIBRATION_METHODS
        ):
            raise ValueError(
                f"calibration must be None or one of {list(CALIBRATION_METHODS)}; "
                f"got {self.calibration!r}"
            )
        if self.train is not None and not isinstance(self.train, TrainConfig):
            raise TypeError(
                f"train must be a TrainConfig or None; got {type(self.train).__name__}"
            )

    def describe(self) -> dict:
        """A JSON-ready description (configs as dicts)."""
        d = asdict(self)
        d["model_config_class"] = type(self.model_cfg).__name__
        return d


@dataclass(frozen=True)
class ExperimentConfig:
    """What an experiment measures on every variant and seed."""

    metrics: tuple[str, ...] = ("roc_auc", "pr_auc", "ece")  # per scenario
    n_boot: int = 200  # bootstrap resamples of the test rows; 0: seeds only
    boot_seed: int = 0  # seeds the resamples, shared by all variants and seeds
    ece_bins: int = 15  # equal-width bins of the expected calibration error

    def __post_init__(self) -> None:
        metrics = tuple(self.metrics)
        object.__setattr__(self, "metrics", metrics)
        unknown = [m for m in metrics if m not in HIGHER_IS_BETTER]
        if unknown or not metrics:
            raise ValueError(
                f"metrics must be a non-empty selection of {list(HIGHER_IS_BETTER)}; "
                f"got {list(metrics)}"
            )
        for name in ("n_boot", "boot_seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer; got {v!r}")
        if not isinstance(self.ece_bins, int) or self.ece_bins < 1:
            raise ValueError(f"ece_bins must be a positive integer; got "
                             f"{self.ece_bins!r}")


RESULT_COLUMNS = ["experiment", "variant", "seed", "scenario", "metric", "value"]


@dataclass
class Experiment:
    """The tidy results of a named experiment, and the way back to its runs."""

    name: str  # the experiment's name
    key: str  # hash of everything that determines the results
    profile: Profile  # data, schedule and artifacts folder
    variants: dict[str, Variant]  # variant name -> what it scores
    seeds: tuple[int, ...]  # model seeds
    config: ExperimentConfig  # metrics and bootstrap settings
    results: pd.DataFrame  # experiment, variant, seed, scenario, metric, value
    replicates: pd.DataFrame  # the same plus ``replicate``; empty without bootstrap
    folder: Path  # where the tables are stored
    prepared: PreparedData | None = field(default=None, repr=False)
    _runs: dict = field(default_factory=dict, repr=False)

    def run(self, variant: str, seed: int, *, progress: bool = False) -> Run:
        """The trained run behind a variant and seed (from the cache)."""
        v = self._variant(variant)
        memo = (v.kind, _cfg_id(v), int(seed))
        if memo not in self._runs:
            if self.prepared is None:
                self.prepared = prepare(load_data(self.profile))
            self._runs[memo] = fit_and_score(
                v.kind, v.model_cfg, self.profile, seed, prepared=self.prepared,
                train_cfg=v.train, progress=progress)
        return self._runs[memo]

    def fit_all(self, *, progress: bool = True) -> None:
        """Train every variant's missing runs side by side (:func:`fit_many`)."""
        if self.prepared is None:
            self.prepared = prepare(load_data(self.profile))
        memos, jobs = [], []
        for seed in self.seeds:
            for v in self.variants.values():
                memo = (v.kind, _cfg_id(v), int(seed))
                if memo not in self._runs and memo not in memos:
                    memos.append(memo)
                    jobs.append((v.kind, v.model_cfg, int(seed), v.train))
        runs = fit_many(jobs, self.profile, prepared=self.prepared,
                        progress=progress)
        self._runs.update(zip(memos, runs))

    def scores(self, variant: str, seed: int, split: str = "test") -> pd.DataFrame:
        """A variant's (calibrated) scores on a split; see :func:`scored_rows`."""
        v = self._variant(variant)
        return scored_rows(self.run(variant, seed), v.output, v.calibration, split)

    def calibrator(self, variant: str, seed: int) -> ScenarioCalibrator | None:
        """The per-scenario calibrator of a variant and seed; None if uncalibrated."""
        v = self._variant(variant)
        if v.calibration is None:
            return None
        return fit_calibrator(self.run(variant, seed), v.output, v.calibration)

    def reliability(self, variant: str, *, n_bins: int | None = None
                    ) -> pd.DataFrame:
        """Reliability curve of a variant per scenario, rows of all seeds pooled.

        Parameters
        ----------
        variant : str
        n_bins : int, optional
            The experiment's ``ece_bins`` when omitted.

        Returns
        -------
        DataFrame
            ``variant, scenario`` and the columns of
            :func:`autotask_lib.metrics.reliability_curve`.
        """
        n_bins = self.config.ece_bins if n_bins is None else n_bins
        rows = pd.concat([self.scores(variant, s) for s in self.seeds])
        curves = [
            reliability_curve(g["label"], g["y_prob"], n_bins=n_bins).assign(
                variant=variant, scenario=name)
            for name, g in rows.groupby("scenario", sort=False)
        ]
        curves = pd.concat(curves, ignore_index=True)
        return curves[["variant", "scenario",
                       *[c for c in curves.columns
                         if c not in ("variant", "scenario")]]]

    def summary(self, *, rows: bool = True) -> pd.DataFrame:
        """Mean and 95% interval per variant, scenario and metric.

        With ``rows`` (and bootstrap replicates) the interval covers the test
        rows as well as the seeds; see :func:`autotask_lib.metrics.summarise`.
        """
        reps = self.replicates if rows and len(self.replicates) else None
        return summarise(self.results, by=("variant", "scenario", "metric"),
                         replicates=reps)

    def _variant(self, variant: str) -> Variant:
        if variant not in self.variants:
            raise ValueError(
                f"variant must be one of {list(self.variants)}; got {variant!r}"
            )
        return self.variants[variant]


def _cfg_id(v: Variant) -> str:
    # Names a model: variants with the same id share its runs.
    return json.dumps([v.kind, asdict(v.model_cfg), None if v.train is None
                       else asdict(v.train)], sort_keys=True, default=list)


def _as_variant(name: str, spec) -> Variant:
    if isinstance(spec, Variant):
        return spec
    if isinstance(spec, tuple) and 2 <= len(spec) <= 4:
        return Variant(*spec)
    raise TypeError(
        f"variants[{name!r}] must be a Variant or a tuple (kind, model_cfg"
        f"[, output[, calibration]]); got {type(spec).__name__}"
    )


def _check_name(name) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ValueError(
            "name must be a non-empty string of letters, digits, '_' and '-'; "
            f"got {name!r}"
        )
    return name


def _check_seeds(seeds) -> tuple[int, ...]:
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(
            "seeds must be a sequence of distinct integers from 0 to 2**32 - 1, such "
            f"as (0, 1, 2); got {seeds!r}"
        )
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(
            f"seeds must be distinct integers from 0 to 2**32 - 1, at least one; got "
            f"{list(seeds)}"
        )
    return tuple(check_seed(s) for s in seeds)


def experiment_key(name: str, variants: dict[str, Variant], seeds, config:
                   ExperimentConfig, run_keys: dict, *, src: str | None = None
                   ) -> str:
    """Hash of everything that determines an experiment's tables.

    ``src`` is the library source hash, computed now when omitted.
    """
    src = library_source_hash() if src is None else src
    blob = json.dumps({
        "name": name,
        "variants": {k: _as_variant(k, v).describe() for k, v in variants.items()},
        "seeds": list(seeds), "config": asdict(config),
        "runs": {f"{k[0]}|{k[1]}": v for k, v in sorted(run_keys.items())},
        "src": src, "numpy": np.__version__,
        "sklearn": sklearn.__version__, "scipy": scipy.__version__,
        "pandas": pd.__version__,
    }, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def measure_scores(rows: pd.DataFrame, config: ExperimentConfig, *,
                   experiment: str, variant: str, seed: int
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-scenario metrics of scored rows, and their test-row bootstrap.

    This is how every experiment measures a variant on one seed; a study
    that scores rows its own way (other blocks, other task IDs) measures
    them with it, so that its tables and intervals match the experiments'.

    Parameters
    ----------
    rows : DataFrame
        ``scenario, label, y_prob`` and optionally ``y_rank`` (a score that
        ranks as the probability; ``y_prob`` when absent), one row per
        scored test row. Rows in the same order give the same bootstrap
        resamples, so differences between variants stay paired.
    config : ExperimentConfig
        Metrics and bootstrap settings.
    experiment, variant : str
        Names written into the tables.
    seed : int
        The model seed, written into the tables.

    Returns
    -------
    results : DataFrame
        ``experiment, variant, seed, scenario, metric, value``.
    replicates : DataFrame
        The same plus ``replicate``; empty when ``config.n_boot`` is 0.

    Raises
    ------
    ValueError
        On missing columns, or as :func:`autotask_lib.metrics.scenario_metrics`.
    """
    missing = [c for c in ("scenario", "label", "y_prob") if c not in rows.columns]
    if missing:
        raise ValueError(f"rows lacks the columns {missing}")
    y, scen = rows["label"].to_numpy(), rows["scenario"].to_numpy()
    ranking = rows["y_rank"] if "y_rank" in rows.columns else rows["y_prob"]
    rank = [m for m in config.metrics if m != "ece"]
    parts, reps = [], []
    for metrics, score in ((rank, ranking), (
            [m for m in config.metrics if m == "ece"], rows["y_prob"])):
        if not metrics:
            continue
        parts.append(scenario_metrics(y, score.to_numpy(), scen, metrics=metrics,
                                      n_bins=config.ece_bins))
        if config.n_boot:
            reps.append(bootstrap_scenario_metrics(
                y, score.to_numpy(), scen, metrics=metrics, n_boot=config.n_boot,
                seed=config.boot_seed, n_bins=config.ece_bins))
    table = pd.concat(parts, ignore_index=True)
    table = table.assign(experiment=experiment, variant=variant, seed=int(seed))
    rep = pd.DataFrame(columns=[*RESULT_COLUMNS[:-1], "replicate", "value"])
    if reps:
        rep = pd.concat(reps, ignore_index=True).assign(
            experiment=experiment, variant=variant, seed=int(seed))
        rep = rep[[*RESULT_COLUMNS[:-1], "replicate", "value"]]
    return table[RESULT_COLUMNS], rep


def _measure_in_worker(rows: pd.DataFrame, config: ExperimentConfig,
                       name: str, variant: str, seed: int):
    # Metrics (and bootstrap replicates) of one variant on one seed's test rows.
    return measure_scores(rows, config, experiment=name, variant=variant,
                          seed=seed)


def run_experiment(
    name: str,
    variants: dict,
    profile: Profile | None = None,
    *,
    seeds=None,
    config: ExperimentConfig | None = None,
    data=None,
    prepared: PreparedData | None = None,
    progress: bool = True,
) -> Experiment:
    """Train (or load) every variant's model with every seed and measure it.

    Variants that share a model (same kind, config and training config)
    share its runs: a baseline trained once serves both its general and its
    task-specific output, raw and calibrated; and a model any notebook
    trained before is loaded from the cache. The tidy table is cached too,
    under a key of everything that determines it.

    Parameters
    ----------
    name : str
        The experiment's name, e.g. ``"table2"``; letters, digits, ``_``, ``-``.
    variants : dict
        Variant name -> :class:`Variant`, or a tuple ``(kind, model_cfg[,
        output[, calibration]])``.
    profile : Profile, optional
        The profile ``AUTOTASK_PROFILE`` names when omitted.
    seeds : sequence of int, optional
        The profile's seeds when omitted.
    config : ExperimentConfig, optional
        Metrics and the test-row bootstrap.
    data, prepared : optional
        The profile's data set or its tensors, to avoid reloading them.
    progress : bool
        Show progress bars while training.

    Returns
    -------
    Experiment
        ``results``: one row per variant, seed, scenario and metric (columns
        ``experiment, variant, seed, scenario, metric, value``);
        ``replicates``: the same per bootstrap replicate.

    Raises
    ------
    ValueError
        On a bad name, no variants, bad seeds or a bad variant.
    TypeError
        On a variant that is neither a Variant nor a tuple.
    """
    name = _check_name(name)
    if not isinstance(variants, dict) or not variants:
        raise ValueError(
            f"variants must be a non-empty dict of name -> Variant; got {variants!r}"
        )
    variants = {str(k): _as_variant(str(k), v) for k, v in variants.items()}
    profile = get_profile() if profile is None else profile
    if not isinstance(profile, Profile):
        raise TypeError(
            f"profile must be a Profile (get_profile({profile!r}) makes one) or "
            f"None; got {type(profile).__name__}"
        )
    seeds = _check_seeds(profile.seeds if seeds is None else seeds)
    config = ExperimentConfig() if config is None else config
    if not isinstance(config, ExperimentConfig):
        raise TypeError(
            f"config must be an ExperimentConfig; got {type(config).__name__}"
        )
    if prepared is None:
        prepared = prepare(data if data is not None else load_data(profile))

    for label, v in variants.items():
        _check_fits_data(v.kind, v.model_cfg, prepared, f"variant {label!r}")
    # The runs every variant needs, keyed without training anything.
    src = library_source_hash()
    run_keys = {}
    for v in variants.values():
        for seed in seeds:
            train_cfg = profile.train if v.train is None else v.train
            run_keys[_cfg_id(v), seed] = run_key(v.kind, v.model_cfg, train_cfg,
                                                 seed, prepared.fingerprint,
                                                 src=src)
    key = experiment_key(name, variants, seeds, config, run_keys, src=src)
    exp_dir = artifacts_dir(profile) / "experiments"
    folder = exp_dir / f"{name}-{key}"
    experiment = Experiment(name, key, profile, variants, seeds, config,
                            pd.DataFrame(columns=RESULT_COLUMNS),
                            pd.DataFrame(columns=[*RESULT_COLUMNS, "replicate"]),
                            folder, prepared)
    clean_stale_temporaries(exp_dir)

    if not (folder / "results.parquet").exists():
        _check_writable(exp_dir)
        with _key_lock(profile, folder.name):
            if not (folder / "results.parquet").exists():
                _compute_experiment(experiment, progress)
                return experiment
    try:
        meta = json.loads((folder / "experiment.json").read_text())
        _verify_checksums(folder, meta)
        results = pd.read_parquet(folder / "results.parquet")
        replicates = pd.read_parquet(folder / "replicates.parquet")
    except Exception as err:  # a damaged table is recomputed, not trusted
        warnings.warn(
            f"cached experiment {str(folder)!r} is unreadable "
            f"({type(err).__name__}: {err}); it is computed again",
            CacheWarning, stacklevel=2,
        )
        with _key_lock(profile, folder.name):
            shutil.rmtree(folder, ignore_errors=True)
            _compute_experiment(experiment, progress)
        return experiment
    _EVENTS["experiment", "loaded", folder.name] += 1
    log.info("loading cached experiment %s", folder.name)
    experiment.results, experiment.replicates = results, replicates
    return experiment


def _compute_experiment(experiment: Experiment, progress: bool) -> None:
    # Measure every variant on every seed, then write the tables atomically.
    experiment.fit_all(progress=progress)
    calls = [(experiment.scores(variant, seed), experiment.config,
              experiment.name, variant, seed)
             for seed in experiment.seeds for variant in experiment.variants]
    # The bootstrap of each variant and seed is independent of the others:
    # the workers share it out when there are several.
    workers = training_workers()
    measured = (_map_in_workers(_measure_in_worker, calls, workers)
                if workers > 1 and len(calls) > 1
                else [_measure_in_worker(*c) for c in calls])
    tables, reps = zip(*measured)
    results = pd.concat(tables, ignore_index=True)
    replicates = pd.concat(reps, ignore_index=True)
    meta = {
        "name": experiment.name, "key": experiment.key,
        "profile": experiment.profile.name, "seeds": list(experiment.seeds),
        "config": asdict(experiment.config),
        "variants": {k: v.describe() for k, v in experiment.variants.items()},
        "runs": sorted({r.folder.name for r in experiment._runs.values()}),
        "library_source": sorted({json.loads((r.folder / "run.json").read_text())[
            "library_source"] for r in experiment._runs.values()}),
    }

    def write(tmp: Path) -> None:
        results.to_parquet(tmp / "results.parquet", index=False)
        replicates.to_parquet(tmp / "replicates.parquet", index=False)
        meta["checksums"] = _checksums(tmp, ("results.parquet", "replicates.parquet"))
        (tmp / "experiment.json").write_text(json.dumps(meta, indent=2,
                                                        default=list))

    _write_atomic_dir(experiment.folder, write)
    _EVENTS["experiment", "computed", experiment.folder.name] += 1
    experiment.results = results
    experiment.replicates = replicates


# ---------------------------------------------------------------------------
# Studies beyond the paper: other data, cached derived tables, other blocks,
# other task IDs
# ---------------------------------------------------------------------------

# Splits scaled by ``train_fraction`` in :func:`profile_variant`; the test
# split is scaled by ``test_fraction``.
_TRAINING_SPLITS = ("teacher_train", "llm_train", "calibration")


def _check_fraction(name: str, value) -> float:
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or not 0 < value <= 1):
        raise ValueError(f"{name} must be a number in (0, 1]; got {value!r}")
    return float(value)


def profile_variant(profile: Profile, *, train_fraction: float = 1.0,
                    test_fraction: float = 1.0, **data_overrides) -> Profile:
    """The profile on other data: fewer rows, or other story parameters.

    The name, seeds, training schedule and artifacts folder stay the
    profile's; only its data configuration changes. The data set therefore
    has a key of its own (it is generated once and then read from disk), and
    so has every run trained on it, through the data's fingerprint.

    Parameters
    ----------
    profile : Profile
    train_fraction : float in (0, 1]
        Share of the profile's rows kept in the two training splits and the
        calibration split (rounded, at least one row).
    test_fraction : float in (0, 1]
        Share of the profile's test rows kept.
    **data_overrides
        Story parameters of :class:`data_synth.DataConfig` to change, such
        as ``relatedness``.

    Returns
    -------
    Profile

    Raises
    ------
    ValueError
        On a fraction outside (0, 1] or a parameter out of its range.
    TypeError
        On an override that is not a field of ``DataConfig`` (or names
        ``sizes``: use the fractions).
    """
    train_fraction = _check_fraction("train_fraction", train_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    known = set(data_synth.DataConfig.__dataclass_fields__) - {"sizes"}
    unknown = sorted(set(data_overrides) - known)
    if unknown:
        raise TypeError(
            f"data_overrides must be fields of DataConfig {sorted(known)}; got "
            f"{unknown}"
        )
    sizes = {
        split: max(1, round(n * (test_fraction if split == "test"
                                 else train_fraction)))
        for split, n in profile.data.sizes.items()
    }
    data = dataclasses.replace(profile.data, sizes=sizes, **data_overrides)
    return dataclasses.replace(profile, data=data)


def cached_tables(profile: Profile, name: str, parts: dict, compute) -> dict:
    """Tables that a study derives from trained runs, computed once.

    Stored under ``artifacts/<profile>/tables/<name>-<key>/`` as one parquet
    file per table, written atomically; the key hashes ``name``, ``parts``
    (everything the tables depend on, such as the run keys and the study's
    settings) and the library source, so a table is never read for other
    runs, settings or code.

    Parameters
    ----------
    profile : Profile
        Where the tables live.
    name : str
        The study's name; letters, digits, ``_`` and ``-``.
    parts : dict
        JSON-serialisable description of everything the tables depend on.
    compute : callable
        Called without arguments when the tables are not cached; returns a
        dict of table name -> DataFrame.

    Returns
    -------
    dict of str to DataFrame
    """
    name = _check_name(name)
    blob = json.dumps({"name": name, "parts": parts, "src": library_source_hash(),
                       "pandas": pd.__version__, "numpy": np.__version__},
                      sort_keys=True, default=list)
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    parent = artifacts_dir(profile) / "tables"
    folder = parent / f"{name}-{key}"
    clean_stale_temporaries(parent)

    def read() -> dict:
        return {path.stem: pd.read_parquet(path)
                for path in sorted(folder.glob("*.parquet"))}

    if not (folder / "done").exists():
        with _key_lock(profile, folder.name):
            if not (folder / "done").exists():
                tables = compute()
                if not isinstance(tables, dict) or any(
                        not isinstance(v, pd.DataFrame) for v in tables.values()):
                    raise TypeError(
                        "compute must return a dict of table name -> DataFrame; "
                        f"got {type(tables).__name__}"
                        + (f" of {sorted({type(v).__name__ for v in tables.values()})}"
                           if isinstance(tables, dict) else "")
                    )
                for table_name in tables:
                    _check_name(table_name)

                def write(tmp: Path) -> None:
                    for table_name, table in tables.items():
                        table.to_parquet(tmp / f"{table_name}.parquet", index=False)
                    (tmp / "done").write_text(json.dumps(parts, default=list))

                _write_atomic_dir(folder, write)
                _EVENTS["table", "computed", folder.name] += 1
                return read()
    _EVENTS["table", "loaded", folder.name] += 1
    return read()


BLOCKINGS = ("alone", "query", "scenario", "mixed")


def inference_blocks(split, blocking: str, block_len: int, *,
                     seed: int = 0) -> np.ndarray:
    """How the rows of a split are laid out in blocks for facet 2 at scoring.

    Parameters
    ----------
    split : TaskTensors
    blocking : {"alone", "query", "scenario", "mixed"}
        ``"alone"``: every row in a block of its own (``t = 1``);
        ``"query"``: one query's candidates per block, the default of
        :func:`autotask_lib.train.predict_autotask` (paper section 3.1);
        ``"scenario"``: consecutive rows of one scenario, several queries per
        block; ``"mixed"``: a random mixture of scenarios, as in training
        (section 3.3), which a serving system that sees one scenario at a
        time could not form.
    block_len : int
        The longest block, ``t``.
    seed : int
        Seeds the shuffle of ``"mixed"``.

    Returns
    -------
    int64 ndarray of shape (b', t)
        Row indices per block, padded with -1 at the end of short blocks.

    Raises
    ------
    ValueError
        On an unknown blocking.
    """
    if blocking not in BLOCKINGS:
        raise ValueError(f"blocking must be one of {list(BLOCKINGS)}; got "
                         f"{blocking!r}")
    if blocking == "alone":
        return random_blocks(np.arange(len(split)), 1)
    if blocking == "query":
        return group_blocks(split.query_id, block_len)
    if blocking == "scenario":
        codes = pd.factorize(pd.Series(split.scenario))[0]
        return group_blocks(codes, block_len)
    order = np.random.default_rng(seed).permutation(len(split))
    return random_blocks(order, block_len)


@torch.no_grad()
def predict_in_blocks(model: AutoTask, split, blocks: np.ndarray, *,
                      batch_rows: int = 8192) -> np.ndarray:
    """AutoTask's probabilities for the rows of ``split`` laid out in ``blocks``.

    Parameters
    ----------
    model : AutoTask
    split : TaskTensors
    blocks : int ndarray of shape (b', t)
        Row indices, -1 for padding at a block's end, each row exactly once
        (see :func:`inference_blocks`); ``t`` at most the model's block length.
    batch_rows : int
        Row slots per forward pass.

    Returns
    -------
    float ndarray of shape (n,)

    Raises
    ------
    ValueError
        When the blocks do not hold every row of the split exactly once.
    """
    blocks = np.asarray(blocks)
    real = blocks[blocks >= 0]
    if blocks.ndim != 2 or len(real) != len(split) or (
            len(real) and np.bincount(real, minlength=len(split)).max() != 1):
        raise ValueError(
            f"blocks must be a 2-D array holding each of the {len(split)} rows "
            f"exactly once; got shape {blocks.shape} with {len(real)} row slots"
        )
    per_pass = max(1, batch_rows // blocks.shape[1])
    return score_blocks(model, split.x, blocks, per_pass)


def feature_mean_distances(prepared: PreparedData, scenarios, *,
                           split: str = "test") -> pd.DataFrame:
    """Distance from each scenario's mean feature vector to each seen one's.

    A rule for lending an unseen scenario the task ID of its nearest seen
    scenario that needs no label: the mean of the standardised features of
    the scenario's rows in ``split`` (features only) is compared with the
    mean of every seen scenario's training rows (teacher and LLM splits).

    Parameters
    ----------
    prepared : PreparedData
    scenarios : sequence of str
        The scenarios to place, for example the unseen ones.
    split : str
        Where their rows come from; their labels are never read.

    Returns
    -------
    DataFrame
        Indexed by ``scenarios``, one column per seen scenario (in task-ID
        order): the Euclidean distance between the two mean vectors.

    Raises
    ------
    ValueError
        On a scenario without rows in ``split``.
    """
    train_x = torch.cat([prepared["teacher_train"].x, prepared["llm_train"].x])
    train_s = np.concatenate([prepared["teacher_train"].scenario,
                              prepared["llm_train"].scenario])
    seen = sorted(prepared.task_ids, key=prepared.task_ids.get)
    seen_means = np.stack([train_x[train_s == s, :-1].double().mean(0).numpy()
                           for s in seen])  # (S, p)
    rows = prepared[split]
    out = {}
    for name in scenarios:
        mask = rows.scenario == name
        if not mask.any():
            raise ValueError(
                f"scenarios must have rows in the {split!r} split; {name!r} has none"
            )
        mean = rows.x[mask, :-1].double().mean(0).numpy()  # (p,)
        out[name] = np.linalg.norm(seen_means - mean, axis=1)
    return pd.DataFrame.from_dict(out, orient="index", columns=seen)


def with_task_ids(split, task_ids: dict):
    """A copy of a split in which the rows of some scenarios carry other task IDs.

    Parameters
    ----------
    split : TaskTensors
    task_ids : dict of str to int
        Scenario -> the task ID its rows get; other scenarios keep theirs.

    Returns
    -------
    TaskTensors
        The split's own tensors are not changed.
    """
    x = split.x.clone()
    for name, task_id in task_ids.items():
        x[torch.from_numpy(split.scenario == name), -1] = float(task_id)
    return dataclasses.replace(split, x=x)
