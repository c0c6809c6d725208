"""From data frames to model-ready tensors, and from rows to blocks.

One loader serves the synthetic data and any user data frame alike: it checks the
columns and values, maps scenario names to task IDs (names unseen in training map
to 0, "unknown"), standardises the features with statistics fitted on training
rows only (paper section 4.1.2), and appends the task ID as the last column
(paper section 3.2).

Shape letters: ``n`` rows, ``p`` features, ``d = p + 1`` columns with the task
ID, ``t`` block length, ``b'`` blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

# ---------------------------------------------------------------------------
# Standardisation
# ---------------------------------------------------------------------------


def _check_finite(features: np.ndarray, names: list[str] | None = None) -> None:
    """Raise on the first NaN or infinite value of an (n, p) array, naming it."""
    bad = ~np.isfinite(features)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        where = f"column {names[col]!r}" if names else f"feature {col}"
        raise ValueError(
            f"features must be finite; {where} holds {features[row, col]} at "
            f"row {row} ({int(bad.sum())} bad values)"
        )


@dataclass
class Standardizer:
    """Zero mean, unit variance per feature, fitted on training rows only.

    A feature that is constant on the training rows (spread below 1e-9 of its
    size) has nothing to divide by: its ``std`` is stored as 0 and it
    standardises to 0 on every row, whatever value it later takes.
    """

    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (p,)
    std: np.ndarray = field(default_factory=lambda: np.ones(0))  # (p,); 0: constant

    @classmethod
    def fit(cls, features: np.ndarray, names=None) -> Standardizer:
        """Fit on training features of shape (n, p); ``names`` (p,), if given,
        name the features in errors."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) == 0:
            raise ValueError(
                "features must be a non-empty array of shape (n, p); got shape "
                f"{features.shape}"
            )
        _check_finite(features)
        with np.errstate(over="ignore"):
            mean = features.mean(axis=0)
            std = features.std(axis=0)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            col = int(np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))[0])
            what = (f"feature {col}" if names is None
                    else f"feature column {str(list(names)[col])!r}")
            raise ValueError(
                f"features are too large to standardise: {what} overflows "
                "float64 when squared; rescale it first"
            )
        std = np.where(std > 1e-9 * np.maximum(1.0, np.abs(mean)), std, 0.0)
        return cls(mean=mean, std=std)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Standardise features of shape (n, p); returns float32 (n, p)."""
        if len(self.mean) == 0:
            raise ValueError("this Standardizer is not fitted; call Standardizer.fit")
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.mean):
            raise ValueError(
                f"features must have shape (n, {len(self.mean)}); got "
                f"{features.shape}"
            )
        _check_finite(features)
        std = np.asarray(self.std, dtype=np.float64)
        out = np.zeros_like(features)
        np.divide(features - self.mean, std, out=out, where=std > 0)
        with np.errstate(over="ignore"):  # callers check what overflowed
            return out.astype(np.float32)


# ---------------------------------------------------------------------------
# Validated tensors of one split
# ---------------------------------------------------------------------------


@dataclass
class TaskTensors:
    """One split, ready for the models.

    Attributes
    ----------
    x : float tensor of shape (n, d)
        Standardised features, the integer task ID as the last column.
    target : float tensor of shape (n,)
        Labels in [0, 1]: soft teacher probabilities or binary labels.
    scenario : ndarray of str, shape (n,)
        Scenario name of every row.
    query_id : int64 ndarray of shape (n,)
        Query of every row; candidates of one query share it.
    """

    x: torch.Tensor
    target: torch.Tensor
    scenario: np.ndarray
    query_id: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or self.x.dim() != 2:
            got = (tuple(self.x.shape) if isinstance(self.x, torch.Tensor)
                   else type(self.x).__name__)
            raise ValueError(f"x must be a tensor of shape (n, d); got {got}")
        n = len(self.x)
        lengths = {"target": len(self.target), "scenario": len(self.scenario),
                   "query_id": len(self.query_id)}
        wrong = {k: v for k, v in lengths.items() if v != n}
        if wrong:
            raise ValueError(
                f"target, scenario and query_id must each have one entry per row "
                f"of x ({n} rows); got {wrong}"
            )

    def __len__(self) -> int:
        return len(self.target)

    @property
    def task_id(self) -> torch.Tensor:
        """Long tensor of shape (n,): the task-ID column."""
        return self.x[:, -1].long()


def scenario_task_ids(train_scenarios) -> dict[str, int]:
    """Map each training scenario name to a task ID 1..S, in sorted order."""
    names = sorted({str(s) for s in train_scenarios})
    return {name: i + 1 for i, name in enumerate(names)}


def frame_to_tensors(
    frame: pd.DataFrame,
    *,
    feature_columns: list[str],
    label_column: str,
    standardizer: Standardizer,
    task_ids: dict[str, int],
    scenario_column: str = "scenario",
    query_column: str | None = "query_id",
    binary_labels: bool = False,
) -> TaskTensors:
    """Validate a data frame and turn it into :class:`TaskTensors`.

    Parameters
    ----------
    frame : DataFrame
        One row per query-ad pair.
    feature_columns : list of str
        The numeric feature columns, in model order.
    label_column : str
        Column of labels in [0, 1].
    standardizer : Standardizer
        Fitted on training rows.
    task_ids : dict of str to int
        Task ID of every scenario seen in training; other names map to 0.
    scenario_column, query_column : str
        Scenario names and query IDs (``query_column=None``: every row is its
        own query).
    binary_labels : bool
        Require labels to be exactly 0 or 1.

    Raises
    ------
    ValueError
        On an empty frame, a missing column, non-finite features, or labels
        outside [0, 1] (or not binary when ``binary_labels``).
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame; got {type(frame).__name__}")
    if isinstance(feature_columns, str) or not all(
            isinstance(c, str) for c in feature_columns):
        raise TypeError(
            f"feature_columns must be a list of column names; got {feature_columns!r}"
        )
    feature_columns = list(feature_columns)
    if len(frame) == 0:
        raise ValueError("frame is empty: it must hold at least one row")
    needed = [*feature_columns, label_column, scenario_column]
    if query_column is not None:
        needed.append(query_column)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks the columns {missing}")
    repeated = sorted({c for c in feature_columns if feature_columns.count(c) > 1})
    if repeated:
        raise ValueError(f"feature_columns names {repeated} more than once")
    doubled = sorted({c for c in needed if (frame.columns == c).sum() > 1})
    if doubled:
        raise ValueError(f"frame has more than one column named {doubled}")
    _check_task_ids(task_ids)

    features = _numeric(frame, feature_columns, "feature")
    _check_finite(features, feature_columns)
    labels = _numeric(frame, [label_column], "label")[:, 0]
    if not np.all((labels >= 0) & (labels <= 1)):
        raise ValueError(
            f"{label_column} must hold values in [0, 1]; got values from "
            f"{np.nanmin(labels)} to {np.nanmax(labels)}"
            + (" and NaN" if np.isnan(labels).any() else "")
        )
    if binary_labels and not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"{label_column} must hold binary labels 0 or 1")

    if frame[scenario_column].isna().any():
        row = int(np.flatnonzero(frame[scenario_column].isna().to_numpy())[0])
        raise ValueError(
            f"{scenario_column} must name a scenario on every row; row {row} is "
            "empty"
        )
    scenario = frame[scenario_column].astype(str).to_numpy()
    task_id = np.array([task_ids.get(s, 0) for s in scenario], dtype=np.float32)
    x = np.concatenate(
        [standardizer.transform(features), task_id[:, None]], axis=1
    )  # (n, d)
    if query_column is None:
        query = np.arange(len(frame), dtype=np.int64)
    else:
        query = _numeric(frame, [query_column], "query")[:, 0]
        if not np.all(np.isfinite(query) & (query == np.round(query))):
            raise ValueError(
                f"{query_column} must hold integer query IDs; got e.g. "
                f"{query[~(np.isfinite(query) & (query == np.round(query)))][0]}"
            )
        query = query.astype(np.int64)
    return TaskTensors(
        x=torch.from_numpy(x),
        target=torch.from_numpy(labels.astype(np.float32)),
        scenario=scenario,
        query_id=query,
    )


def _numeric(frame: pd.DataFrame, columns: list[str], what: str) -> np.ndarray:
    """Columns of ``frame`` as float64 (n, len(columns)); names a non-numeric one."""
    for c in columns:
        col = frame[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise ValueError(
                f"{what} column {c!r} must be numeric; got dtype {col.dtype} "
                f"(e.g. {col.iloc[0]!r})"
            )
    return frame[columns].to_numpy(dtype=np.float64)


def _check_task_ids(task_ids) -> None:
    if not isinstance(task_ids, dict):
        raise TypeError(f"task_ids must be a dict; got {type(task_ids).__name__}")
    for name, tid in task_ids.items():
        if not isinstance(tid, (int, np.integer)) or isinstance(tid, bool) or tid < 1:
            raise ValueError(
                "task_ids must map each training scenario to an integer ID >= 1 "
                f"(0 is kept for unseen scenarios); got {name!r}: {tid!r}"
            )
    ids = list(task_ids.values())
    if len(set(ids)) != len(ids):
        raise ValueError(f"task_ids must give each scenario its own ID; got {task_ids}")


@dataclass
class PreparedData:
    """The four splits of a data set as tensors, with what was fitted on them."""

    splits: dict[str, TaskTensors]
    standardizer: Standardizer
    task_ids: dict[str, int]
    feature_columns: list[str]
    fingerprint: str

    def __getitem__(self, split: str) -> TaskTensors:
        return self.splits[split]


# Label column of each split of the synthetic data.
LABEL_COLUMNS = {
    "teacher_train": "teacher_prob",
    "llm_train": "llm_label",
    "calibration": "llm_label",
    "test": "label",
}


def prepare(data) -> PreparedData:
    """Turn a :class:`data_synth.SyntheticData` into model-ready tensors.

    The standardiser is fitted on the two training splits (teacher and LLM
    labelled) only; calibration and test rows are transformed with it.

    Raises
    ------
    TypeError
        If ``data`` is not a SyntheticData (for a table of your own, see
        :func:`autotask_lib.load_user_data`).
    """
    from data_synth import FEATURE_NAMES, SyntheticData

    if not isinstance(data, SyntheticData):
        raise TypeError(
            "data must be a data_synth.SyntheticData (data_synth.generate or "
            "data_synth.load makes one; for a table of your own use "
            f"load_user_data); got {type(data).__name__}"
        )

    columns = list(FEATURE_NAMES)
    train_rows = pd.concat(
        [data["teacher_train"][columns], data["llm_train"][columns]]
    )
    standardizer = Standardizer.fit(train_rows.to_numpy())
    task_ids = {}
    for frame in (data["teacher_train"], data["llm_train"]):
        ids = frame.groupby("scenario", observed=True)["task_id"].first()
        task_ids.update({str(k): int(v) for k, v in ids.items()})
    splits = {
        split: frame_to_tensors(
            data[split],
            feature_columns=columns,
            label_column=label,
            standardizer=standardizer,
            task_ids=task_ids,
            binary_labels=split != "teacher_train",
        )
        for split, label in LABEL_COLUMNS.items()
    }
    return PreparedData(splits, standardizer, task_ids, columns, data.fingerprint)


# ---------------------------------------------------------------------------
# Blocks of rows for facet 2
# ---------------------------------------------------------------------------


def _check_block_len(t) -> int:
    if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or t < 1:
        raise ValueError(f"block length t must be an integer >= 1; got {t!r}")
    return int(t)


def random_blocks(order: np.ndarray, t: int) -> np.ndarray:
    """Cut an ordering of rows into consecutive blocks of ``t`` rows.

    Parameters
    ----------
    order : int ndarray of shape (n,)
        Row indices, for example a random permutation (mixed-scenario blocks,
        paper section 3.3).
    t : int
        Block length.

    Returns
    -------
    int64 ndarray of shape (ceil(n / t), t)
        Row indices per block; the last block is padded with -1 at its end.
    """
    t = _check_block_len(t)
    order = np.asarray(order)
    if order.ndim != 1 or (order.size and order.dtype.kind not in "iu"):
        raise ValueError(
            "order must be a 1-D array of integer row indices; got dtype "
            f"{order.dtype} and shape {order.shape}"
        )
    n = len(order)
    n_blocks = -(-n // t)
    index = np.full(n_blocks * t, -1, dtype=np.int64)
    index[:n] = order
    return index.reshape(n_blocks, t)


def group_blocks(groups: np.ndarray, t: int) -> np.ndarray:
    """Blocks that each hold rows of one group only, at most ``t`` of them.

    Used at inference: with ``groups`` the query IDs, a block is one query's
    candidates (a query with more than ``t`` candidates fills several blocks).
    Rows keep their original order within a group.

    Returns
    -------
    int64 ndarray of shape (b', t)
        Row indices per block, padded with -1 at the end of short blocks.
    """
    t = _check_block_len(t)
    groups = np.asarray(groups)
    n = len(groups)
    if n == 0:
        return np.zeros((0, t), dtype=np.int64)
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.r_[True, g[1:] != g[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    pos = np.arange(n) - group_start  # position of each row within its group
    new_block = starts | (pos % t == 0)
    block = np.cumsum(new_block) - 1
    index = np.full((int(block[-1]) + 1, t), -1, dtype=np.int64)
    index[block, pos % t] = order
    return index


def gather_blocks(
    x: torch.Tensor, index: np.ndarray | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``x`` (n, d) laid out as blocks (b', t, d), with a validity mask.

    Padded slots (index -1) are filled with row 0 and marked invalid; they
    always come after a block's real rows, so causal attention never lets a
    real row see them.
    """
    index = torch.as_tensor(index)
    if index.numel() and (index.min() < -1 or index.max() >= len(x)):
        raise ValueError(
            f"index must hold row numbers in [0, {len(x) - 1}] or -1 (padding); "
            f"got values from {index.min().item()} to {index.max().item()}"
        )
    valid = index >= 0  # (b', t)
    rows = x[index.clamp(min=0)]  # (b', t, d)
    return rows, valid
