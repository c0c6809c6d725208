"""Write and read generated data sets: parquet splits plus a JSON data card.

A data set is written into a temporary folder beside its destination and renamed
into place when complete, so an interrupted run never leaves a half-written data
set that a later run could mistake for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .card import data_card, read_card
from .generator import SPLITS, DataConfig, SyntheticData, generate


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
    """True when ``folder`` holds a complete data set with ``fingerprint``."""
    card = folder / "data_card.json"
    return card.exists() and json.loads(card.read_text())["fingerprint"] == (
        fingerprint
    )


def save(data: SyntheticData, out: str | os.PathLike) -> Path:
    """Write ``data`` into folder ``out`` atomically and return the folder.

    The splits are written as parquet files, the card as ``data_card.json`` and
    the relevance weights as ``relevance_weights.npy``. Saving into a folder
    that already holds the same data (same fingerprint) does nothing, also when
    another process finishes writing it first.

    Raises
    ------
    FileExistsError
        If ``out`` exists and holds something other than this same data set.
    """
    out = Path(out)
    if out.exists():
        if _holds(out, data.fingerprint):
            data.folder = out
            return out
        raise FileExistsError(
            f"out folder {str(out)!r} already exists and holds other data; "
            "choose an empty or new folder"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for split, frame in data.splits.items():
            frame.to_parquet(tmp / f"{split}.parquet", index=False)
        (tmp / "data_card.json").write_text(json.dumps(data_card(data), indent=2))
        np.save(tmp / "relevance_weights.npy", data.weights)
        try:
            os.replace(tmp, out)
        except OSError:
            # Another process wrote the same data set first: keep its copy.
            if not _holds(out, data.fingerprint):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    data.folder = out
    return out


def load(folder: str | os.PathLike) -> SyntheticData:
    """Read a data set written by :func:`save`.

    Raises
    ------
    FileNotFoundError
        If ``folder`` lacks a split or the data card.
    """
    folder = Path(folder)
    card = read_card(folder)
    splits = {}
    for split in SPLITS:
        path = folder / f"{split}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"data set {str(folder)!r} lacks {path.name}")
        splits[split] = pd.read_parquet(path)
    return SyntheticData(
        splits=splits,
        config=DataConfig(**card["config"]),
        seed=int(card["seed"]),
        fingerprint=card["fingerprint"],
        weights=np.load(folder / "relevance_weights.npy"),
        target_corr=np.asarray(card["target_correlation"]),
        folder=folder,
    )


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
    """
    folder = Path(root) / dataset_key(cfg, seed)
    if (folder / "data_card.json").exists():
        return load(folder)
    data = generate(cfg, seed, progress=progress)
    save(data, folder)
    return data
