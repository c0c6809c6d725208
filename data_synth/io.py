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

from .generator import SPLITS, DataConfig, SyntheticData, data_card, generate

_SOURCE_FILES = ("scenarios.py", "features.py", "generator.py")


def source_hash() -> str:
    """Hash of the generator's source: a change to the story changes the key."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _SOURCE_FILES:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def dataset_key(cfg: DataConfig, seed: int) -> str:
    """Folder name of a data set: seed, configuration and generator source."""
    blob = json.dumps({"cfg": asdict(cfg), "seed": seed, "src": source_hash()},
                      sort_keys=True)
    return f"seed{seed}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def save(data: SyntheticData, out: str | os.PathLike) -> Path:
    """Write ``data`` into folder ``out`` atomically and return the folder.

    Raises
    ------
    FileExistsError
        If ``out`` exists and holds something other than this same data set.
    """
    out = Path(out)
    if out.exists():
        card = out / "data_card.json"
        if card.exists() and json.loads(card.read_text())["fingerprint"] == (
            data.fingerprint
        ):
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
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load(folder: str | os.PathLike) -> SyntheticData:
    """Read a data set written by :func:`save`.

    Raises
    ------
    FileNotFoundError
        If ``folder`` lacks a split or the data card.
    """
    folder = Path(folder)
    card_path = folder / "data_card.json"
    if not card_path.exists():
        raise FileNotFoundError(
            f"{str(folder)!r} holds no data_card.json: not a generated data set"
        )
    card = json.loads(card_path.read_text())
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
    )


def load_or_generate(
    cfg: DataConfig, seed: int, root: str | os.PathLike, *, progress: bool = False
) -> SyntheticData:
    """Load the data set for ``(cfg, seed)`` under ``root``, generating it once."""
    folder = Path(root) / dataset_key(cfg, seed)
    if (folder / "data_card.json").exists():
        return load(folder)
    data = generate(cfg, seed, progress=progress)
    save(data, folder)
    return data
