"""Write and read generated data sets: parquet splits plus a JSON data card.

A data set is written into a temporary folder beside its destination and renamed
into place when complete, so an interrupted run never leaves a half-written data
set that a later run could mistake for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .card import card_checksum, data_card, read_card
from .features import FEATURE_NAMES
from .generator import (
    LABEL_COLUMNS,
    SPLITS,
    DataConfig,
    SyntheticData,
    _check_seed,
    fingerprint_frames,
    generate,
)

log = logging.getLogger(__name__)

# A temporary folder older than this is stale whoever made it.
STALE_AFTER_S = 3600.0


def source_hash() -> str:
    """Hash of the package's source, part of every data set's key.

    A change to the story or to the card changes the key, so a saved data set is
    never older than the code that made it.
    """
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def dataset_key(cfg: DataConfig, seed: int) -> str:
    """Folder name of a data set: seed, configuration and generator source."""
    blob = json.dumps({"cfg": asdict(cfg), "seed": seed, "src": source_hash()},
                      sort_keys=True)
    return f"seed{seed}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _holds(folder: Path, fingerprint: str) -> bool:
    """True when ``folder`` holds a whole, unedited data set with ``fingerprint``."""
    try:
        card = json.loads((folder / "data_card.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(card, dict) and card.get("fingerprint") == fingerprint
            and _card_edit(card) is None)


def _card_edit(card: dict) -> str | None:
    """Why the card's config, seed and fingerprint cannot be trusted, or None.

    They are trusted when the checksum written beside them still matches.
    """
    if "checksum" not in card:
        return ("its data_card.json holds no checksum of its config and seed "
                "(written by an older version), so they cannot be verified")
    try:
        expected = card_checksum(card["config"], card["seed"], card["fingerprint"])
    except (KeyError, TypeError, ValueError):
        return "its data_card.json lacks its config, seed or fingerprint"
    if card["checksum"] != expected:
        return ("the config, seed or fingerprint on its data_card.json was "
                "edited after it was written: they no longer match the "
                "checksum written with them, so the card no longer says what "
                "made the files")
    return None


# ---------------------------------------------------------------------------
# Temporary folders of interrupted writes
# ---------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: a command line stops as it does for Ctrl-C."""


#: The shells' exit status of a process ended by SIGTERM.
TERMINATED_STATUS = 128 + signal.SIGTERM


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`Terminated`.

    A command line then cleans up after ``kill PID`` exactly as after Ctrl-C:
    temporary files are removed and one line says that ``--out`` is complete
    or untouched. Outside the main thread signals cannot be caught, and the
    block runs with SIGTERM's handling left as it was.
    """
    def stop(signum, frame):
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def temporary_owner() -> str:
    """``host-pid`` of this process, written into its temporary folders' names."""
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]+$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def owner_is_gone(name: str) -> bool:
    """Whether a temporary named ``.<name>.<host>-<pid>.<suffix>`` was made by a
    process of this host that no longer runs (see :func:`temporary_owner`)."""
    m = _TEMP.match(name)
    host = temporary_owner().rsplit("-", 1)[0]
    return bool(m) and m["host"] == host and not _pid_alive(int(m["pid"]))


def clean_stale_temporaries(parent: str | os.PathLike) -> list[str]:
    """Remove the temporary folders that interrupted writes left in ``parent``.

    A temporary folder is dot-prefixed and names the host and process that made
    it. It is stale when that process is gone from this host, or when it is
    older than :data:`STALE_AFTER_S` whoever made it. Folders of live processes
    (a write in progress) are left alone.

    Returns
    -------
    list of str
        Names of the removed folders.
    """
    parent = Path(parent)
    removed = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        if not (_TEMP.match(entry.name) and entry.is_dir()):
            continue
        try:
            age = time.time() - entry.stat().st_mtime
        except FileNotFoundError:
            continue
        if owner_is_gone(entry.name) or age > STALE_AFTER_S:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
            log.info("removed the stale temporary folder %s", entry.name)
    return removed


def save(data: SyntheticData, out: str | os.PathLike) -> Path:
    """Write ``data`` into folder ``out`` atomically and return the folder.

    The splits are written as parquet files, the card as ``data_card.json`` and
    the relevance weights as ``relevance_weights.npy``. Saving into a folder
    that already holds the same data (same fingerprint) does nothing, also when
    another process finishes writing it first; an empty folder is filled.

    The fingerprint is recomputed from the splits first, so a data set whose
    frames were edited after generation is saved under its new content's
    fingerprint (``data.fingerprint`` is updated).

    Raises
    ------
    FileExistsError
        If ``out`` exists and holds something other than this same data set,
        or is a symbolic link to anything else or to nowhere.
    NotADirectoryError
        If ``out`` is a file.
    PermissionError
        If ``out`` is an empty folder that is write-protected.
    ValueError
        If a split is missing, or holds a non-finite feature or a label
        outside [0, 1] (a data set that every later step would refuse).
    """
    if not isinstance(data, SyntheticData):
        raise TypeError(f"data must be a SyntheticData; got {type(data).__name__}")
    _check_splits(data)
    out = Path(out)
    data.fingerprint = fingerprint_frames(data.splits)
    if out.is_symlink() and not out.exists():
        raise FileExistsError(
            f"out {str(out)!r} is a symbolic link (to {os.readlink(out)!r}) that "
            "leads nowhere; give a folder, or remove the link")
    if out.exists():
        if not out.is_dir():
            raise NotADirectoryError(
                f"out {str(out)!r} is a file; give a folder to write the data "
                "set into"
            )
        if _holds(out, data.fingerprint):
            data.folder = out
            return out
        if any(out.iterdir()):
            raise FileExistsError(
                f"out folder {str(out)!r} already holds other files; choose an "
                "empty or new folder"
            )
        if out.is_symlink():
            raise FileExistsError(
                f"out {str(out)!r} is a symbolic link (to {os.readlink(out)!r}); "
                "writing would replace the link, so give the folder itself")
        if not os.access(out, os.W_OK):
            raise PermissionError(
                f"out folder {str(out)!r} is empty but write-protected; make it "
                "writable or choose another folder")
        out.rmdir()  # empty: replaced by the complete data set below
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{temporary_owner()}.",
                                dir=out.parent))
    try:
        for split, frame in data.splits.items():
            frame.to_parquet(tmp / f"{split}.parquet", index=False)
        (tmp / "data_card.json").write_text(json.dumps(data_card(data), indent=2))
        np.save(tmp / "relevance_weights.npy", data.weights)
        mask = os.umask(0)
        os.umask(mask)
        tmp.chmod(0o777 & ~mask)  # mkdtemp makes a private folder
        try:
            os.replace(tmp, out)
        except OSError:
            # Another process wrote a data set there first: keep its copy.
            if not _holds(out, data.fingerprint):
                raise FileExistsError(
                    f"out folder {str(out)!r} was filled with other data by "
                    "another process while this one was writing; choose "
                    "another folder"
                ) from None
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    data.folder = out
    return out


def _check_splits(data: SyntheticData) -> None:
    missing = [s for s in SPLITS if s not in data.splits]
    if missing:
        raise ValueError(f"data lacks the splits {missing}; a data set has {SPLITS}")
    for split, frame in data.splits.items():
        label = LABEL_COLUMNS[split]
        absent = [c for c in (*FEATURE_NAMES, label) if c not in frame.columns]
        if absent:
            raise ValueError(f"split {split!r} lacks the columns {absent}")
        feats = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
        if not np.isfinite(feats).all():
            raise ValueError(f"split {split!r} holds NaN or infinite features")
        y = frame[label].to_numpy(dtype=np.float64)
        if not ((y >= 0) & (y <= 1)).all():
            raise ValueError(
                f"split {split!r} holds {label} values outside [0, 1] or NaN"
            )


def load(folder: str | os.PathLike) -> SyntheticData:
    """Read a data set written by :func:`save`.

    The fingerprint is recomputed from the files' content. When it differs
    from the one on the card (the files were edited after they were written),
    the content's fingerprint is used, with a :class:`DataSetChangedWarning`,
    so results computed on the edited data are never mistaken for results on
    the original. The card's configuration and seed are checked against the
    checksum written with them; when they were edited (or the card, written
    by an older version, has no checksum) the same warning says so, and the
    card's values are returned as they are.

    Raises
    ------
    TypeError
        If ``folder`` is not a path.
    FileNotFoundError
        If ``folder`` lacks a split, the data card or the relevance weights.
    DamagedDataSetError
        If a file is there but cannot be read.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(
            f"folder must be a path (str or os.PathLike) of a saved data set; "
            f"got {type(folder).__name__}"
        )
    folder = Path(folder)
    try:
        card = read_card(folder)
        config = DataConfig(**card["config"])
        seed, recorded = int(card["seed"]), card["fingerprint"]
        target_corr = np.asarray(card["target_correlation"], dtype=float)
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise DamagedDataSetError(
            f"data set {str(folder)!r}: data_card.json cannot be read ({err})"
        ) from err
    edit = _card_edit(card)
    if edit is not None:
        warnings.warn(
            f"data set {str(folder)!r} was changed after it was written: {edit}",
            DataSetChangedWarning,
            stacklevel=2,
        )
    splits = {split: _read(folder / f"{split}.parquet", pd.read_parquet)
              for split in SPLITS}
    weights = _read(folder / "relevance_weights.npy", np.load)
    if weights.shape != (len(target_corr), len(FEATURE_NAMES)):
        raise DamagedDataSetError(
            f"data set {str(folder)!r}: relevance_weights.npy has shape "
            f"{weights.shape}; expected ({len(target_corr)}, {len(FEATURE_NAMES)})"
        )
    fingerprint = fingerprint_frames(splits)
    if fingerprint != recorded:
        warnings.warn(
            f"data set {str(folder)!r} was changed after it was written: its "
            f"content's fingerprint is {fingerprint}, the card says {recorded}; "
            "using the content's",
            DataSetChangedWarning,
            stacklevel=2,
        )
    return SyntheticData(
        splits=splits,
        config=config,
        seed=seed,
        fingerprint=fingerprint,
        weights=weights,
        target_corr=target_corr,
        folder=folder,
    )


def _read(path: Path, reader):
    """``reader(path)``, with errors that name the data set and the file."""
    if not path.exists():
        raise FileNotFoundError(f"data set {str(path.parent)!r} lacks {path.name}")
    try:
        return reader(path)
    except Exception as err:  # pyarrow and numpy raise several types on bad files
        raise DamagedDataSetError(
            f"data set {str(path.parent)!r}: {path.name} cannot be read ({err})"
        ) from err


class DamagedDataSetError(OSError):
    """A data set's file exists but cannot be read."""


class DataSetChangedWarning(UserWarning):
    """A saved data set was edited after it was written.

    Its files no longer match the fingerprint on its card, or the card's
    config, seed or fingerprint no longer match the checksum written with them.
    """


def load_or_generate(
    cfg: DataConfig, seed: int, root: str | os.PathLike, *, progress: bool = False
) -> SyntheticData:
    """Load the data set for ``(cfg, seed)`` under ``root``, generating it once.

    Parameters
    ----------
    cfg : DataConfig
        Sizes and story parameters.
    seed : int
        Seed of the data set.
    root : path
        Folder of data sets; this one lives in ``root / dataset_key(cfg, seed)``.
    progress : bool
        Show a progress bar when the data set has to be generated.

    Returns
    -------
    SyntheticData
        With ``folder`` set to where the data set is saved.

    Raises
    ------
    TypeError
        If ``cfg`` is not a DataConfig or ``root`` is not a path.
    NotADirectoryError
        If ``root`` is a file.
    """
    if not isinstance(cfg, DataConfig):
        raise TypeError(f"cfg must be a DataConfig; got {type(cfg).__name__}")
    seed = _check_seed(seed)
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(
            f"root must be a path (str or os.PathLike) of a folder of data sets; "
            f"got {type(root).__name__}"
        )
    if Path(root).exists() and not Path(root).is_dir():
        raise NotADirectoryError(
            f"root {str(root)!r} is a file; give a folder to keep data sets in"
        )
    folder = Path(root) / dataset_key(cfg, seed)
    clean_stale_temporaries(folder.parent)
    if folder.exists():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", DataSetChangedWarning)
                return load(folder)
        except (OSError, DataSetChangedWarning) as err:
            # This folder is the generator's own cache: a damaged or edited
            # copy is set aside and regenerated, never used.
            warnings.warn(
                f"regenerating the data set in {str(folder)!r}: {err}",
                DataSetChangedWarning,
                stacklevel=2,
            )
            _set_aside(folder)
    data = generate(cfg, seed, progress=progress)
    save(data, folder)
    return data


def _set_aside(folder: Path) -> None:
    # Rename first (atomic), then delete, so no reader sees a half-deleted set.
    trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{temporary_owner()}.",
                                  dir=folder.parent))
    try:
        os.replace(folder, trash / folder.name)
    except FileNotFoundError:  # another process set it aside first
        pass
    shutil.rmtree(trash, ignore_errors=True)
