"""Your own multi-scenario data: read, validate, map scenarios, standardise.

A user's table has one row per query-ad pair and named columns: the scenario
(ad type) of the row, numeric features, and, for training, a label in [0, 1]
(binary, or a soft probability such as a teacher model's). An optional query
column groups the candidate ads of one query, which are scored together as
one block (paper section 3.1); without it every row is scored alone.

The steps build on :mod:`autotask_lib.data`:

1. :func:`read_table` reads a parquet or CSV file (or takes a DataFrame) and
   refuses unreadable, empty or ambiguous tables;
2. :func:`select_feature_columns` picks the features when they are not named:
   every numeric column other than the scenario, label and query columns, in
   file order;
3. :func:`validate_frame` checks columns and values;
4. :func:`fit_schema` fits what a model must keep to read new tables the same
   way (a :class:`DataSchema`): the feature list, the scenario-to-task-ID map
   (IDs 1..S in sorted name order; unseen names get 0, "unknown", as the paper
   does for new scenarios, section 4.2.1) and the standardisation statistics
   of the training rows (section 4.1.2);
5. :func:`to_tensors` turns a validated table into
   :class:`~autotask_lib.data.TaskTensors` with a schema.

:func:`load_user_data` runs all five; :func:`model_config` sizes an AutoTask
for a schema.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from .data import Standardizer, TaskTensors, frame_to_tensors, scenario_task_ids
from .model import AutoTaskConfig

# File name endings read (and written) as each format.
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")

# Column name used internally for the absent labels of an unlabelled table.
_NO_LABEL = "__autotask_no_label__"


# ---------------------------------------------------------------------------
# Reading a table
# ---------------------------------------------------------------------------


def table_format(path: str | os.PathLike, *, name: str = "data") -> str:
    """``"parquet"`` or ``"csv"``, from the file name's ending.

    Raises
    ------
    ValueError
        If the ending is neither.
    """
    lower = Path(path).name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    raise ValueError(
        f"{name} must be a parquet ({', '.join(PARQUET_SUFFIXES)}) or CSV "
        f"({', '.join(CSV_SUFFIXES)}) file; got {str(path)!r}"
    )


def _csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's first line, as written."""
    head = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [str(c) for c in head.iloc[0].tolist()]


# The first bytes of the formats a file named like a CSV may really hold.
_MAGIC = {b"PAR1": "a parquet file", b"\x1f\x8b": "a gzip-compressed file"}


def _reading_hint(path: Path, kind: str, err: Exception) -> str:
    """What to do about a file that pandas could not read, when it is clear."""
    with open(path, "rb") as f:
        start = f.read(4)
    if kind != "csv":
        return ("" if start == b"PAR1" else
                " (the file does not start as parquet files do; a CSV file "
                "must be named .csv or .csv.gz)")
    for magic, what in _MAGIC.items():
        if start.startswith(magic):
            if what.startswith("a gzip") and path.suffix.lower() == ".gz":
                break
            right = ".parquet" if magic == b"PAR1" else ".csv.gz"
            return (f" (the file is {what}, not CSV text: name it with "
                    f"the {right} extension)")
    if isinstance(err, UnicodeDecodeError):
        return (" (the file is not UTF-8 text; save it again as UTF-8, "
                "or as parquet)")
    return ""


def _refuse_cut_csv(path: Path, columns: int, name: str) -> None:
    """Refuse a plain CSV file whose last row stops short, as a cut copy does.

    pandas fills the missing fields of a short row with NaN, which would
    otherwise be reported as a bad value rather than a cut file. A last row
    with every field but no line break after it gets a warning instead.
    """
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 65536))
        tail = f.read()
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    if not lines:
        return
    last = lines[-1].decode("utf-8", errors="replace")
    if '"' in last:
        return  # may close a quoted field that spans lines: not judged here
    ended = tail.rstrip(b" \t").endswith((b"\n", b"\r"))
    fields = next(csv.reader([last]), [])
    if len(fields) < columns:
        raise ValueError(
            f"{name} file {str(path)!r} looks cut off: its last row has "
            f"{len(fields)} of {columns} fields"
            + ("" if ended else " and no line break")
            + "; copy or write the file again"
        )
    if not ended:  # whole files may lack the last line break too
        warnings.warn(
            f"{name} file {str(path)!r} does not end with a line break; if it "
            f"was cut off, the last value of its last row ({last[-40:]!r}) may "
            "be cut short", UserWarning, stacklevel=3,
        )


class _DuplicateColumns(ValueError):
    """Two columns of a table share a name."""


def _check_unique_columns(columns: Sequence, name: str) -> None:
    """Refuse a table in which two columns share a name."""
    seen, dup = set(), []
    for c in columns:
        if c in seen and c not in dup:
            dup.append(c)
        seen.add(c)
    if dup:
        raise _DuplicateColumns(
            f"{name} has duplicate column names {[str(c) for c in dup]}; every "
            "column needs a name of its own"
        )


def read_table(source, *, name: str = "data",
               text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Read a parquet or CSV file, or check a DataFrame, as a user table.

    Parameters
    ----------
    source : DataFrame, str or path
        A DataFrame, or the path of a ``.parquet``/``.pq`` or
        ``.csv``/``.csv.gz`` file.
    name : str
        What to call the table in error messages (for example the command
        line option that named it).
    text_columns : sequence of str or None
        Columns of a CSV file to read as text, such as the scenario and query
        columns: codes '01', '1' and '1.0' then stay three names instead of
        becoming the number 1. None entries (no such column) are skipped.

    Returns
    -------
    DataFrame
        The table (a DataFrame is returned as it is, not copied).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file type is unknown, the file is empty or cannot be read, two
        columns share a name, or the table has no rows.
    TypeError
        If ``source`` is neither a DataFrame nor a path.
    """
    if isinstance(source, pd.DataFrame):
        frame = source
        _check_unique_columns(list(frame.columns), name)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{name} file {str(path)!r} does not exist")
        if path.is_dir():
            raise ValueError(
                f"{name} must be a parquet or CSV file; {str(path)!r} is a folder"
            )
        kind = table_format(path, name=name)
        if not path.is_file():
            raise ValueError(
                f"{name} {str(path)!r} is not a regular file (a pipe or a "
                "device); save the table to a file first")
        if path.stat().st_size == 0:
            raise ValueError(f"{name} file {str(path)!r} is empty (0 bytes)")
        try:
            # Column names as written: pandas renames repeated CSV names.
            header = (_csv_header(path) if kind == "csv"
                      else pq.read_schema(path).names)
            _check_unique_columns(header, name)
            frame = (pd.read_csv(path, dtype={c: str for c in text_columns
                                              if c in header})
                     if kind == "csv" else pd.read_parquet(path))
        except (ValueError, OSError, EOFError) as err:  # EOF: a cut-off .gz
            if isinstance(err, _DuplicateColumns):
                raise
            reason = " ".join(str(err).split()) or type(err).__name__
            raise ValueError(
                f"could not read {name} file {str(path)!r} as {kind}: {reason}"
                + _reading_hint(path, kind, err)
            ) from None
        if kind == "csv" and path.suffix.lower() != ".gz":
            _refuse_cut_csv(path, len(header), name)
        if kind == "csv" and len(header) == 1:
            sep = next((s for s in (";", "\t", "|") if s in str(header[0])), None)
            if sep is not None:
                raise ValueError(
                    f"{name} file {str(path)!r} reads as one column, "
                    f"{str(header[0])[:60]!r}...: its fields look separated by "
                    f"{sep!r}, and a CSV file here must separate them by commas")
    else:
        raise TypeError(
            f"{name} must be a pandas DataFrame or the path of a parquet or CSV "
            f"file; got {type(source).__name__}"
        )
    if len(frame) == 0:
        raise ValueError(f"{name} holds no rows; it needs at least one")
    return frame


# ---------------------------------------------------------------------------
# Columns and values
# ---------------------------------------------------------------------------


def _is_numeric(series: pd.Series) -> bool:
    """Numbers or booleans (flags), not text, dates or categories."""
    return pd.api.types.is_numeric_dtype(series) and not isinstance(
        series.dtype, pd.CategoricalDtype)


def _example_bad_value(series: pd.Series):
    """A value of ``series`` that is not a number, to show in a message."""
    for v in series.dropna().head(1000):
        try:
            float(v)
        except (TypeError, ValueError):
            return v
    return series.dropna().iloc[0] if series.notna().any() else None


def _refuse_missing(values: pd.Series, role: str, column, where: str) -> None:
    # Every row needs its scenario (and its query, when there is a query column).
    # An empty or blank text is missing too, as a CSV reader reads it.
    empty = values.isna().to_numpy().copy()
    try:  # texts only: .str is missing for numbers
        empty |= values.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    except AttributeError:
        pass
    if empty.any():
        raise ValueError(
            f"the {role} column {column!r} of {where} has {int(empty.sum())} "
            f"missing or blank value(s), the first at row {int(np.argmax(empty))}; "
            f"every row needs a {role} (in a CSV file, empty fields and texts "
            "such as 'NA', 'N/A', 'null' and 'nan' are read as missing: rename "
            f"a {role} spelt so, or store the table as parquet)"
        )


def _refuse_mostly_numeric(series: pd.Series, column) -> None:
    # A text column is not a feature; but a column of numbers with a few
    # stray words is a feature the table spoiled, and is refused, not dropped.
    if isinstance(series.dtype, pd.CategoricalDtype) or (
            pd.api.types.is_datetime64_any_dtype(series)
            or pd.api.types.is_timedelta64_dtype(series)):
        return  # categories, dates and durations are not features
    parsed = pd.to_numeric(series, errors="coerce")
    bad = (series.notna() & parsed.isna()).to_numpy()
    if bad.sum() >= parsed.notna().sum():
        _refuse_decimal_commas(series, column)
        return  # a text column
    if not bad.any():
        raise ValueError(
            f"column {column!r} holds numbers stored as text; store them as "
            "numbers, or name the features explicitly to leave the column out"
        )
    row = int(np.flatnonzero(bad)[0])
    raise ValueError(
        f"column {column!r} holds numbers but {int(bad.sum())} value(s) that "
        f"are not, such as {series.iloc[row]!r} at row {row}; fix those "
        "values, or name the features explicitly to leave the column out"
    )


_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+(,\d+)+\s*$")


def _refuse_decimal_commas(series: pd.Series, column) -> None:
    # Numbers written as "0,4372" read as text and would drop out of the
    # default features without a word.
    texts = series.dropna().astype(str).head(1000)
    if len(texts) and texts.str.match(_DECIMAL_COMMA).mean() > 0.5:
        raise ValueError(
            f"column {column!r} holds numbers written with commas, such as "
            f"{texts.iloc[0]!r}, which are read as text; write them with "
            "decimal points and no thousands separators, or name the features "
            "explicitly to leave the column out"
        )


def select_feature_columns(
    frame: pd.DataFrame, *, scenario_column: str, label_columns=(),
    query_column: str | None = None,
) -> list[str]:
    """The default features: every numeric column but scenario, labels, query.

    Columns keep the table's order. A numeric column that is not a feature
    (a row ID, another label) must be left out by naming the features
    explicitly instead.

    Parameters
    ----------
    frame : DataFrame
    scenario_column : str
    label_columns : str or sequence of str
        Label columns of the table, never features.
    query_column : str, optional

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        If no numeric column is left, or a column of numbers holds a few
        values that are not numbers (a spoiled feature, not a text column).

    """
    if isinstance(label_columns, str):
        label_columns = [label_columns]
    skip = {scenario_column, query_column, *label_columns}
    for c in frame.columns:
        if c not in skip and not _is_numeric(frame[c]):
            _refuse_mostly_numeric(frame[c], c)
    features = [c for c in frame.columns if c not in skip and _is_numeric(frame[c])]
    if not features:
        raise ValueError(
            "found no numeric feature columns besides the scenario, label and "
            f"query columns; the table has the columns {list(map(str, frame.columns))}"
        )
    return [str(c) for c in features]


# Names such as id, row_id, query-ID, QueryId, ID_1, qid or session: an
# identifier, which a model should not learn from.
_ID_NAME = re.compile(
    r"(^|[_\s.-])(id|ID|Id)([_\s.-]\w*)?$|[a-z](Id|ID)$"
    r"|(?i:(^|[_\s.-])(qid|sid|uid|uuid|guid|session)$)"
    r"|^Unnamed: \d+$|^(index|level_\d+)$")  # a written pandas index


# Columns of data_synth's tables that only the generator can know.
GENERATOR_TRUTH = ("relevance_prob",)


def warn_of_id_features(features: Sequence[str]) -> None:
    """Warn of features chosen by default whose names look like IDs.

    Called once a table with features from :func:`select_feature_columns` has
    passed validation, so that a warning never comes before an error.
    """
    truth = [str(c) for c in features if str(c) in GENERATOR_TRUTH]
    if truth:
        warnings.warn(
            f"the column(s) {truth} hold the synthetic generator's true relevance, "
            "which a real table would not have, and are taken as features; drop "
            "them or name the features (--feature-cols, feature_columns)",
            UserWarning, stacklevel=3,
        )
    ids = [str(c) for c in features if _ID_NAME.search(str(c))]
    if ids:
        warnings.warn(
            f"the column(s) {ids} look like IDs but are taken as features, as "
            "every numeric column is by default; if they are not features, "
            "name the query column (--query-col, query_column) or the features "
            "(--feature-cols, feature_columns)", UserWarning, stacklevel=3,
        )


def _column_list(feature_columns) -> list:
    """``feature_columns`` as a list, refusing one name given as a string."""
    if isinstance(feature_columns, (str, bytes)) or not isinstance(
            feature_columns, Iterable):
        example = ([feature_columns] if isinstance(feature_columns, str)
                   else ["sim_brand"])
        raise TypeError(
            "feature_columns must be a list of column names, such as "
            f"{example} for one column; got {feature_columns!r}"
        )
    if isinstance(feature_columns, (set, frozenset, dict)):
        raise TypeError(
            "feature_columns must be a list or tuple: the order of the features "
            f"fixes the model's inputs, and a {type(feature_columns).__name__} "
            "has no order that stays the same from one process to the next; "
            f"got {feature_columns!r}"
        )
    feature_columns = list(feature_columns)
    if not feature_columns:
        raise ValueError("feature_columns must name at least one column; got none")
    return feature_columns


def parse_feature_columns(text: str) -> list[str]:
    """Split ``"a,b,c"`` into ``["a", "b", "c"]``, refusing empty or repeated names.

    Raises
    ------
    ValueError
        If a name is empty or given twice.
    """
    names = [n.strip() for n in str(text).split(",")]
    if not names or any(not n for n in names):
        raise ValueError(
            f"feature columns must be a comma-separated list of names; got {text!r}"
        )
    _check_unique_columns(names, "the feature column list")
    return names


def validate_frame(
    frame: pd.DataFrame, *, scenario_column: str, feature_columns: Sequence[str],
    label_column: str | None = None, query_column: str | None = None,
    name: str = "data",
) -> None:
    """Check that a table has the columns and values a model needs.

    Parameters
    ----------
    frame : DataFrame
    scenario_column : str
        Scenario names; every row needs one.
    feature_columns : sequence of str
        Numeric, finite features.
    label_column : str, optional
        Labels in [0, 1]; not checked when None.
    query_column : str, optional
        Query IDs (any type); every row needs one.
    name : str
        What to call the table in messages.

    Raises
    ------
    ValueError
        On a missing column, a feature used as the scenario, label or query
        column, a non-numeric or non-finite feature, a missing scenario or
        query, or a label that is not a number in [0, 1].
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"{name} must be a pandas DataFrame; got {type(frame).__name__}")
    feature_columns = _column_list(feature_columns)
    if scenario_column is None:
        raise TypeError("scenario_column must name the table's scenario column; "
                        "got None")
    roles = [("scenario", scenario_column), ("label", label_column),
             ("query", query_column)]
    named = [(role, col) for role, col in roles if col is not None]
    for i, (role, col) in enumerate(named):
        for other, col2 in named[i + 1:]:
            if col == col2:
                raise ValueError(
                    f"the {role} and {other} columns must differ; got {col!r} "
                    "for both"
                )
    for role, col in roles:
        if col is not None and col in feature_columns:
            raise ValueError(
                f"the {role} column {col!r} cannot also be a feature column"
            )
    for role, col in roles:
        if col is not None and col not in frame.columns:
            raise ValueError(
                f"{name} lacks the {role} column {col!r}; its columns are "
                f"{_short_list(frame.columns)}"
            )
    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} lacks {len(missing)} feature column(s): {_short_list(missing)}"
        )

    for role, col in (("scenario", scenario_column), ("query", query_column)):
        if col is not None:
            _refuse_missing(frame[col], role, col, name)

    for col in feature_columns:
        if not _is_numeric(frame[col]):
            raise ValueError(
                f"feature column {col!r} of {name} must be numeric; got dtype "
                f"{frame[col].dtype} with values such as "
                f"{_example_bad_value(frame[col])!r}"
            )
    values = frame[feature_columns].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        row, j = np.argwhere(bad)[0]
        raise ValueError(
            f"features must be finite; column {feature_columns[j]!r} of {name} "
            f"holds {values[row, j]} at row {row} ({int(bad.sum())} non-finite "
            "value(s) in all); fill or drop them first"
        )

    if label_column is not None:
        labels = frame[label_column]
        if not _is_numeric(labels):
            raise ValueError(
                f"label column {label_column!r} of {name} must be numeric in "
                f"[0, 1]; got dtype {labels.dtype} with values such as "
                f"{_example_bad_value(labels)!r}"
            )
        y = labels.to_numpy(dtype=np.float64, na_value=np.nan)
        outside = ~((y >= 0) & (y <= 1))
        if outside.any():
            row = int(np.argmax(outside))
            raise ValueError(
                f"label column {label_column!r} of {name} must hold values in "
                f"[0, 1]; got {y[row]} at row {row} ({int(outside.sum())} bad "
                "value(s) in all)"
            )


def _short_list(names, limit: int = 8) -> str:
    """``['a', 'b', ...]`` with at most ``limit`` names shown."""
    names = [str(n) for n in names]
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"[{shown}{more}]"


# ---------------------------------------------------------------------------
# What a model keeps about its data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSchema:
    """How a model reads a table; fitted on its training rows, saved with it.

    Attributes
    ----------
    feature_columns : tuple of str
        The features, in the model's order (``p`` of them, ``d = p + 1``).
    scenario_column : str
        The column of scenario names.
    query_column : str or None
        The column of query IDs; None: every row is its own query.
    task_ids : dict of str to int
        Task ID 1..S of every training scenario; other names map to 0.
    standardizer : Standardizer
        Mean and standard deviation of every feature on the training rows.
    """

    feature_columns: tuple[str, ...]  # the p features, in model order
    scenario_column: str  # column of scenario names
    query_column: str | None  # column of query IDs, or None
    task_ids: Mapping[str, int]  # training scenario -> task ID 1..S
    standardizer: Standardizer = field(compare=False)  # training mean and std

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_columns",
                           tuple(_column_list(self.feature_columns)))
        object.__setattr__(self, "task_ids", dict(self.task_ids))
        p = len(self.feature_columns)
        if len(self.standardizer.mean) != p or len(self.standardizer.std) != p:
            raise ValueError(
                f"standardizer must hold {p} means and standard deviations, one "
                f"per feature; got {len(self.standardizer.mean)} and "
                f"{len(self.standardizer.std)}"
            )
        ids = sorted(self.task_ids.values())
        if ids != list(range(1, len(ids) + 1)):
            raise ValueError(
                f"task_ids must number the scenarios 1..{len(ids)}; got {ids}"
            )

    @property
    def d(self) -> int:
        """Columns of a model row: the features plus the task ID."""
        return len(self.feature_columns) + 1

    @property
    def num_tasks(self) -> int:
        """One-hot width: the training scenarios plus slot 0, unknown."""
        return len(self.task_ids) + 1

    def task_id_of(self, scenarios) -> np.ndarray:
        """Task IDs of scenario names; names unseen in training get 0.

        Raises
        ------
        ValueError
            If a name is missing (None or NaN): it is no scenario, not an
            unseen one.
        """
        names = pd.Series(scenarios, dtype=object)
        missing = names.isna().to_numpy()
        if missing.any():
            raise ValueError(
                f"scenarios must name a scenario on every row; "
                f"{int(missing.sum())} of {len(names)} are missing (None or "
                f"NaN), the first at position {int(np.argmax(missing))}"
            )
        return np.array([self.task_ids.get(str(s), 0) for s in names],
                        dtype=np.int64)

    def to_dict(self) -> dict:
        """A JSON-ready dict; floats written by ``json`` read back exactly."""
        return {
            "feature_columns": list(self.feature_columns),
            "scenario_column": self.scenario_column,
            "query_column": self.query_column,
            "task_ids": dict(self.task_ids),
            "standardizer": {"mean": [float(v) for v in self.standardizer.mean],
                             "std": [float(v) for v in self.standardizer.std]},
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> DataSchema:
        """Rebuild a schema from :meth:`to_dict`.

        Raises
        ------
        ValueError
            If a key is missing or a value does not fit.
        """
        try:
            std = d["standardizer"]
            stats = np.asarray([std["mean"], std["std"]], dtype=np.float64)
            if not np.isfinite(stats).all() or (stats[1] < 0).any():
                raise ValueError(
                    "the standardisation statistics must be finite, with no "
                    "negative spread"
                )
            return cls(
                feature_columns=tuple(str(c) for c in d["feature_columns"]),
                scenario_column=str(d["scenario_column"]),
                query_column=(None if d["query_column"] is None
                              else str(d["query_column"])),
                task_ids={str(k): int(v) for k, v in d["task_ids"].items()},
                standardizer=Standardizer(
                    mean=np.asarray(std["mean"], dtype=np.float64),
                    std=np.asarray(std["std"], dtype=np.float64)),
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"schema is incomplete or malformed: {err!r}") from None


# A scenario is a kind of ad placement with many rows (the paper has 11).
# Hundreds of scenarios with a handful of rows each mean that a row or query
# ID column was named instead: each would get its own task ID, learnt from a
# few rows and useless on any new row.
MANY_SCENARIOS = 100
FEW_ROWS_PER_SCENARIO = 20


def _refuse_id_like_scenarios(counts: pd.Series, scenario_column) -> None:
    """Refuse a scenario column that looks like a row or query ID column."""
    if len(counts) <= MANY_SCENARIOS:
        return
    median = float(counts.median())
    if median < FEW_ROWS_PER_SCENARIO:
        raise ValueError(
            f"the scenario column {scenario_column!r} names {len(counts):,} "
            f"scenarios with a median of {median:g} rows each; a scenario "
            "should be a kind of placement with many rows, so check that it "
            "is not a column of row or query IDs"
        )


def _warn_of_unseen_twins(names, schema: DataSchema, table: str) -> None:
    """Warn of unseen scenario names that match a trained one but for case or
    spaces, and of a table whose scenarios are all unseen."""
    names = set(names)
    if names and not names & set(schema.task_ids):
        # Unseen scenarios are expected, but not a table of nothing else:
        # more likely the wrong column, or codes where training had names.
        shown = sorted(map(str, names))
        warnings.warn(
            f"none of the scenarios of {table} was seen in training (got "
            f"{shown[:5]}{' ...' if len(shown) > 5 else ''}; trained: "
            f"{list(schema.task_ids)[:5]}{' ...' if len(schema.task_ids) > 5 else ''}"
            "): every row gets task ID 0, the slot of unseen scenarios; check "
            "that the scenario column is the one the model was trained with",
            UserWarning, stacklevel=3,
        )
    trained = {n.strip().casefold(): n for n in schema.task_ids}
    near = sorted((n, trained[n.strip().casefold()]) for n in map(str, names)
                  if n not in schema.task_ids and n.strip().casefold() in trained)
    if near:
        shown = "; ".join(f"{a!r} (trained: {b!r})" for a, b in near[:3])
        warnings.warn(
            f"{table} names scenario(s) unseen in training that differ from a "
            f"trained one only in case or surrounding spaces: {shown}"
            f"{'; ...' if len(near) > 3 else ''}; they get task ID 0, so spell "
            "them as in training if they are the same scenario",
            UserWarning, stacklevel=3,
        )


def _warn_of_near_twins(names, scenario_column) -> None:
    """Warn of scenario names that differ only in case or surrounding spaces."""
    groups: dict[str, list[str]] = {}
    for name in sorted(map(str, names)):
        groups.setdefault(name.strip().casefold(), []).append(name)
    twins = [g for g in groups.values() if len(g) > 1]
    if twins:
        shown = "; ".join(" and ".join(repr(n) for n in g) for g in twins[:3])
        warnings.warn(
            f"the scenario column {scenario_column!r} holds names that differ "
            f"only in case or surrounding spaces ({shown}"
            f"{'; ...' if len(twins) > 3 else ''}); each gets a task ID of its "
            "own, so make them one name if they are one scenario",
            UserWarning, stacklevel=3,
        )


def fit_schema(
    frames, *, scenario_column: str, feature_columns: Sequence[str],
    query_column: str | None = None,
) -> DataSchema:
    """Fit the task IDs and the standardisation on validated training tables.

    Parameters
    ----------
    frames : DataFrame or sequence of DataFrame
        Every training table (for two-stage training, both stages'); run
        :func:`validate_frame` on each first.
    scenario_column, feature_columns, query_column
        As in :func:`validate_frame`.

    Returns
    -------
    DataSchema

    Raises
    ------
    ValueError
        If a scenario name is missing: every training row needs a scenario,
        and a missing one must not become a scenario called 'None' or 'nan'.
        If the scenario column names more than 100 scenarios with a median
        of fewer than 20 rows each, as a row or query ID column would.
    """
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    for i, f in enumerate(frames):
        _refuse_missing(f[scenario_column], "scenario", scenario_column,
                        f"training table {i}")
    features = [str(c) for c in _column_list(feature_columns)]
    values = np.concatenate(
        [f[features].to_numpy(dtype=np.float64) for f in frames])  # (n, p)
    names = np.concatenate([f[scenario_column].astype(str).to_numpy()
                            for f in frames])
    counts = pd.Series(names).value_counts()
    _refuse_id_like_scenarios(counts, scenario_column)
    _warn_of_near_twins(counts.index, scenario_column)
    standardizer = Standardizer.fit(values, names=features)
    if len(values) > 1 and not standardizer.std.any():
        warnings.warn(
            f"every feature column is constant in the training rows "
            f"({_short_list(features)}), so the model can learn only from the "
            "scenario and the order of rows within a query; check the feature "
            "columns", UserWarning, stacklevel=2,
        )
    _warn_of_dominating_values(values, standardizer.std, features)
    return DataSchema(
        feature_columns=tuple(features), scenario_column=scenario_column,
        query_column=query_column, task_ids=scenario_task_ids(names),
        standardizer=standardizer,
    )


def block_groups(frame: pd.DataFrame, schema: DataSchema) -> np.ndarray:
    """One integer per row naming its scoring block's group.

    A group is one query's rows of one scenario, so that a block never mixes
    scenarios (paper section 3.1); without a query column every row is its
    own group.
    """
    if schema.query_column is None:
        return np.arange(len(frame), dtype=np.int64)
    keys = frame[[schema.scenario_column, schema.query_column]]
    return keys.groupby(list(keys.columns), sort=False, observed=True,
                        dropna=False).ngroup().to_numpy(dtype=np.int64)


# A training column whose standard deviation exceeds its interquartile range
# this many times is ruled by a few extreme values (on the synthetic data the
# ratio stays below 4).
DOMINATED_SPREAD = 1000


def _warn_of_dominating_values(values: np.ndarray, std: np.ndarray,
                               features: list[str]) -> None:
    """Warn of features whose spread a few extreme training values make.

    Standardisation divides by the standard deviation; when one huge value
    sets it, every other row of the column standardises to nearly the same
    number and the feature is lost to the model without any error.
    """
    if len(values) < 4:
        return
    q1, q3 = np.percentile(values, [25, 75], axis=0)
    iqr = q3 - q1
    ruled = (iqr > 0) & (std > DOMINATED_SPREAD * iqr)
    for j in np.flatnonzero(ruled)[:3]:
        far = values[np.argmax(np.abs(values[:, j] - np.median(values[:, j]))), j]
        warnings.warn(
            f"feature column {features[j]!r} has a standard deviation of "
            f"{std[j]:.3g}, over {DOMINATED_SPREAD:,} times its interquartile "
            f"range {iqr[j]:.3g}: a few extreme values (such as {far:.6g}) set "
            "its scale, so after standardisation its other "
            "rows are nearly equal and the feature is nearly lost; fix, clip or "
            "log-transform those values", UserWarning, stacklevel=3,
        )


# A standardised feature beyond this many standard deviations is far outside
# anything training saw (a training column of n rows stays within sqrt(n)).
FAR_FROM_TRAINING = 1000


def to_tensors(
    frame: pd.DataFrame, schema: DataSchema, *, label_column: str | None = None,
    name: str = "data",
) -> TaskTensors:
    """Validate a table and turn it into tensors the way ``schema`` says.

    Parameters
    ----------
    frame : DataFrame
        Needs the schema's scenario, feature and query columns; other columns
        are ignored.
    schema : DataSchema
    label_column : str, optional
        Labels in [0, 1]; without it ``target`` is NaN (nothing to learn from
        or evaluate against).
    name : str
        What to call the table in messages.

    Returns
    -------
    TaskTensors
        ``x`` standardised, the task ID (0 for unseen scenarios) last;
        ``query_id`` numbers the scoring groups of :func:`block_groups`.

    Raises
    ------
    ValueError
        As :func:`validate_frame`.
    """
    if not isinstance(schema, DataSchema):
        raise TypeError("schema must be a DataSchema (fit_schema makes one); got "
                        f"{type(schema).__name__}")
    features = list(schema.feature_columns)
    validate_frame(frame, scenario_column=schema.scenario_column,
                   feature_columns=features, label_column=label_column,
                   query_column=schema.query_column, name=name)
    label = label_column if label_column is not None else _NO_LABEL
    view = pd.DataFrame({
        **{c: frame[c] for c in features},
        schema.scenario_column: frame[schema.scenario_column],
        label: frame[label_column] if label_column is not None else 0.0,
    }, index=frame.index)
    split = frame_to_tensors(
        view, feature_columns=features, label_column=label,
        standardizer=schema.standardizer, task_ids=schema.task_ids,
        scenario_column=schema.scenario_column, query_column=None,
    )
    bad = ~torch.isfinite(split.x[:, : len(features)])
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"feature column {features[col]!r} of {name} holds a value too large "
            f"to score at row {row} ({frame[features[col]].iloc[row]!r}): "
            "standardised with the training statistics it overflows float32"
        )
    far = split.x[:, : len(features)].abs() > FAR_FROM_TRAINING
    if far.any():
        rows, cols = far.nonzero(as_tuple=True)
        col = int(cols[0])
        warnings.warn(
            f"{name} holds {int(far.any(dim=1).sum()):,} row(s) with a feature "
            f"more than {FAR_FROM_TRAINING:,} training standard deviations from "
            f"the training mean, such as "
            f"{float(frame[features[col]].iloc[int(rows[0])]):.6g} in column "
            f"{features[col]!r} at row {int(rows[0])}; the model has "
            "never seen such values, so their scores say little (check the "
            "column's units)", UserWarning, stacklevel=2,
        )
    _warn_of_unseen_twins(set(split.scenario), schema, name)
    target = split.target if label_column is not None else torch.full(
        (len(frame),), float("nan"))
    return TaskTensors(x=split.x, target=target, scenario=split.scenario,
                       query_id=block_groups(frame, schema))


def empty_tensors(schema: DataSchema) -> TaskTensors:
    """A split with no rows, for a training stage that is skipped."""
    return TaskTensors(
        x=torch.zeros(0, schema.d), target=torch.zeros(0),
        scenario=np.array([], dtype=str), query_id=np.zeros(0, dtype=np.int64),
    )


@dataclass
class UserData:
    """A validated user table with its schema and tensors."""

    frame: pd.DataFrame  # the table as read
    schema: DataSchema  # fitted on it, or given
    tensors: TaskTensors  # model-ready rows
    label_column: str | None  # the labels, or None


def load_user_data(
    source, *, scenario_column: str, label_column: str | None = None,
    feature_columns: Sequence[str] | None = None, query_column: str | None = None,
    schema: DataSchema | None = None, name: str = "data",
) -> UserData:
    """Read, validate and prepare a user table in one call.

    Without ``schema`` the table is training data: the features are chosen
    (named ones, or by :func:`select_feature_columns`) and a schema is
    fitted on it. With ``schema`` (a saved model's), the table is read the
    way that model was trained, and ``feature_columns`` and ``query_column``
    must not be given.

    Parameters
    ----------
    source : DataFrame, str or path
        As in :func:`read_table`.
    scenario_column : str
    label_column : str, optional
        Required to fit a schema.
    feature_columns : sequence of str, optional
    query_column : str, optional
    schema : DataSchema, optional
    name : str
        What to call the table in messages.

    Returns
    -------
    UserData

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        As :func:`read_table` and :func:`validate_frame`.

    Examples
    --------
    >>> train = load_user_data("train.csv", scenario_column="scenario",
    ...                        label_column="label")  # doctest: +SKIP
    >>> test = load_user_data("test.csv", scenario_column="scenario",
    ...                       schema=train.schema)  # doctest: +SKIP
    """
    if schema is not None and not isinstance(schema, DataSchema):
        raise TypeError("schema must be a DataSchema (a saved model's, or "
                        f"fit_schema's) or None; got {type(schema).__name__}")
    query = schema.query_column if schema is not None else query_column
    frame = read_table(source, name=name, text_columns=[scenario_column, query])
    if schema is None:
        if label_column is None:
            raise ValueError("label_column is required to fit a schema; got None")
        chosen = feature_columns is None
        if chosen:
            feature_columns = select_feature_columns(
                frame, scenario_column=scenario_column, label_columns=label_column,
                query_column=query_column)
        validate_frame(frame, scenario_column=scenario_column,
                       feature_columns=feature_columns, label_column=label_column,
                       query_column=query_column, name=name)
        schema = fit_schema(frame, scenario_column=scenario_column,
                            feature_columns=feature_columns,
                            query_column=query_column)
        if chosen:
            warn_of_id_features(feature_columns)
    else:
        if feature_columns is not None or query_column is not None:
            raise ValueError(
                "feature_columns and query_column come from the schema when one "
                f"is given; got feature_columns={feature_columns!r}, "
                f"query_column={query_column!r}"
            )
        if scenario_column != schema.scenario_column:
            schema = _replace_columns(schema, scenario_column=scenario_column)
    tensors = to_tensors(frame, schema, label_column=label_column, name=name)
    return UserData(frame, schema, tensors, label_column)


def _replace_columns(schema: DataSchema, **columns) -> DataSchema:
    """The schema with other scenario or query column names."""
    d = schema.to_dict()
    d.update(columns)
    return DataSchema.from_dict(d)


def with_columns(
    schema: DataSchema, *, scenario_column: str | None = None,
    query_column: str | None = None, no_query: bool = False,
) -> DataSchema:
    """The schema reading a table whose scenario or query column is named otherwise.

    Parameters
    ----------
    schema : DataSchema
    scenario_column, query_column : str, optional
        New names; None keeps the schema's.
    no_query : bool
        Score every row alone, ignoring the schema's query column.

    Raises
    ------
    ValueError
        If both ``query_column`` and ``no_query`` are given: they contradict
        each other.
    """
    if no_query and query_column is not None:
        raise ValueError(
            f"query_column={query_column!r} and no_query=True contradict each "
            "other: name the query column to score each query's rows together, "
            "or ask for no query to score every row alone")
    changes = {}
    if scenario_column is not None:
        changes["scenario_column"] = scenario_column
    if no_query:
        changes["query_column"] = None
    elif query_column is not None:
        changes["query_column"] = query_column
    return _replace_columns(schema, **changes) if changes else schema


# ---------------------------------------------------------------------------
# A model of the right size
# ---------------------------------------------------------------------------


def model_config(
    schema: DataSchema, *, e1: int = 8, block_len: int = 16, **overrides
) -> AutoTaskConfig:
    """An AutoTask configuration sized for a schema.

    ``d`` is the number of features plus one (the task ID), ``num_tasks`` the
    number of training scenarios plus one (slot 0, unknown), and
    ``e2 = d * e1`` as the paper sets (section 4.1.2). The fusion layer is
    ``e2`` wide and the task ID number is divided by the number of training
    scenarios, as in the default model (9 of each). The heads are the default
    model's (2 and 4) where they divide ``e1`` and ``e2``, fewer otherwise.

    Parameters
    ----------
    schema : DataSchema
    e1 : int
        Facet 1's embedding size per feature token.
    block_len : int
        Longest block facet 2 attends over.
    **overrides
        Any other :class:`~autotask_lib.AutoTaskConfig` field.

    Returns
    -------
    AutoTaskConfig

    Raises
    ------
    ValueError
        If ``e1`` or ``block_len`` is not a positive integer, or an override
        breaks a rule of :class:`~autotask_lib.AutoTaskConfig`.
    """
    for arg, value in (("e1", e1), ("block_len", block_len)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or (
            value < 1
        ):
            raise ValueError(f"{arg} must be a positive integer; got {value!r}")
    d = schema.d
    e2 = d * int(e1)
    fields = {
        "d": d, "num_tasks": schema.num_tasks, "block_len": int(block_len),
        "e1": int(e1), "e2": e2,
        "n_head1": next(h for h in (2, 1) if e1 % h == 0),
        "n_head2": next(h for h in (4, 2, 1) if e2 % h == 0),
        "fusion_hidden": e2, "task_id_scale": float(max(1, len(schema.task_ids))),
    }
    fields.update(overrides)
    return AutoTaskConfig(**fields)
