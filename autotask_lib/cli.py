"""Command line: train AutoTask on your own table, then score new tables.

::

    python -m autotask_lib train --data train.csv --scenario-col scenario \\
        --label-col label --out model/
    python -m autotask_lib score --model model/ --data new.parquet \\
        --out scores.parquet
    torchrun --nproc_per_node 2 -m autotask_lib train ...   # 2 processes

``train`` reads a parquet or CSV table (:mod:`autotask_lib.userdata`), sizes
the model for it (``d`` = features + 1, ``num_tasks`` = training scenarios + 1,
``e2 = d * e1``), trains it with :func:`~autotask_lib.train_two_stage` and
saves it (:mod:`autotask_lib.saved`). With ``--stage1-data`` it trains in the
paper's two stages (section 4.1.2): first on that table (for example teacher
soft labels), then on ``--data``; otherwise one stage on ``--data``. Under
``torchrun`` every process trains on its shard of the rows with
DistributedDataParallel (gloo backend): each process reads the whole table,
fits the same schema and keeps its shard of the rows; rank 0 alone saves and
prints.

``score`` writes the input's scenario and query columns (and the label
column, if named) with a ``score`` column, as parquet or CSV by the output's
file name. Both commands print a per-scenario evaluation when labels are
present. Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from data_synth.io import (
    TERMINATED_STATUS,
    Terminated,
    owner_is_gone,
    sigterm_as_interrupt,
    temporary_owner,
)

from . import distributed
from .metrics import UndefinedMetricWarning, scenario_metrics
from .model import AutoTask, count_parameters
from .saved import (
    TEMP_NAME,
    check_save_target,
    load_model,
    save_model,
    score_tensors,
    umask_mode,
)
from .train import MAX_SEED, TrainConfig, train_two_stage
from .userdata import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    DataSchema,
    empty_tensors,
    fit_schema,
    model_config,
    parse_feature_columns,
    read_table,
    select_feature_columns,
    table_format,
    to_tensors,
    validate_frame,
    warn_of_id_features,
    with_columns,
)

PROG = "python -m autotask_lib"

# What a user can get wrong; each is reported in one line, with exit status 2.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError,
               NotADirectoryError, IsADirectoryError, PermissionError,
               FloatingPointError, MemoryError)


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def evaluation_table(y_true, y_prob, scenario, task_ids: dict[str, int],
                     *, threshold: float = 0.5) -> pd.DataFrame:
    """ROC AUC, PR AUC, rows and positives of every scenario.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Labels in [0, 1]; soft labels count as positive from ``threshold``.
    y_prob : array-like of shape (n,)
        Scores.
    scenario : array-like of shape (n,)
        Scenario names.
    task_ids : dict of str to int
        The model's training scenarios; others are marked unseen (task ID 0).
    threshold : float
        Where soft labels are split into positives and negatives.

    Returns
    -------
    DataFrame
        One row per scenario, training scenarios first in task-ID order:
        ``scenario, task_id, rows, positives, roc_auc, pr_auc``. A scenario
        whose labels hold one class gets NaN metrics.
    """
    y = np.asarray(y_true, dtype=np.float64)
    if not np.isin(y, (0.0, 1.0)).all():
        y = (y >= threshold).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        long = scenario_metrics(y, y_prob, np.asarray(scenario))
    table = long.pivot_table(index="scenario", columns="metric", values="value",
                             dropna=False)
    counts = long.groupby("scenario")[["n_rows", "n_pos"]].first()
    table = table.join(counts).reset_index()
    table["task_id"] = [task_ids.get(s, 0) for s in table["scenario"]]
    table["order"] = np.where(table["task_id"] > 0, table["task_id"], 10**9)
    table = table.sort_values(["order", "scenario"]).rename(
        columns={"n_rows": "rows", "n_pos": "positives"})
    cols = ["scenario", "task_id", "rows", "positives", "roc_auc", "pr_auc"]
    return table[cols].reset_index(drop=True)


def format_evaluation(table: pd.DataFrame) -> str:
    """The evaluation as aligned text, unseen scenarios marked."""
    shown = pd.DataFrame({
        "scenario": table["scenario"],
        "task ID": [f"{t}" if t > 0 else "0 (unseen)" for t in table["task_id"]],
        "rows": [f"{n:,}" for n in table["rows"]],
        "positives": [f"{n:,}" for n in table["positives"]],
        "ROC AUC": [f"{v:.4f}" if np.isfinite(v) else "n/a" for v in table["roc_auc"]],
        "PR AUC": [f"{v:.4f}" if np.isfinite(v) else "n/a" for v in table["pr_auc"]],
    })
    return shown.to_string(index=False)


def _print_evaluation(title: str, y_true, y_prob, scenario, schema) -> None:
    """Print the evaluation table under a title, with a note on soft labels."""
    table = evaluation_table(y_true, y_prob, scenario, schema.task_ids)
    print(f"\n{title}")
    if not np.isin(np.asarray(y_true, dtype=np.float64), (0.0, 1.0)).all():
        print("(soft labels: a label of 0.5 or more counts as a positive)")
    print(format_evaluation(table))
    if table[["roc_auc", "pr_auc"]].isna().any().any():
        print("n/a: the scenario's labels hold a single class")


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, with exit status 2.

    Options must be spelt in full: a prefix such as ``--epoch`` is an error,
    not a silent ``--epochs``.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"must be a non-negative integer; got {text!r}")
    return value


def _seed(text: str) -> int:
    value = _non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"must be an integer from 0 to {MAX_SEED} (2**32 - 1); got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m autotask_lib``."""
    parser = _Parser(
        prog=PROG,
        description="Train AutoTask on your own multi-scenario table and score "
        "new tables with it.",
    )
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{train,score}", parser_class=_Parser)

    train = sub.add_parser(
        "train", help="train a model on a labelled table and save it",
        description="Train AutoTask on a parquet or CSV table with a scenario "
        "column, numeric features and labels in [0, 1], and save it to a "
        "folder. Run it under 'torchrun --nproc_per_node P -m autotask_lib "
        "train ...' to train on P processes.")
    train.add_argument("--data", required=True, metavar="FILE",
                       help="training table (.parquet, .pq, .csv or .csv.gz)")
    train.add_argument("--scenario-col", required=True, metavar="C",
                       help="column of scenario names")
    train.add_argument("--label-col", required=True, metavar="L",
                       help="column of labels in [0, 1], binary or soft")
    train.add_argument("--out", required=True, metavar="DIR",
                       help="folder to save the model in (a new folder, an "
                       "empty one or an earlier saved model)")
    train.add_argument("--feature-cols", metavar="A,B,...",
                       help="feature columns, comma-separated; default: every "
                       "numeric column but the scenario, label and query "
                       "columns, in file order")
    train.add_argument("--query-col", metavar="Q",
                       help="column of query IDs: one query's candidates are "
                       "scored as one block; default: every row alone")
    train.add_argument("--epochs", type=_positive_int, default=3, metavar="N",
                       help="epochs on --data, at least 1 (default 3)")
    train.add_argument("--seed", type=_seed, default=0, metavar="S",
                       help="seed of the initialisation and the shuffles "
                       "(default 0)")
    train.add_argument("--stage1-data", metavar="FILE",
                       help="a first-stage table trained on before --data, for "
                       "example with teacher soft labels")
    train.add_argument("--stage1-label-col", metavar="L",
                       help="label column of --stage1-data")
    train.add_argument("--stage1-epochs", type=_positive_int, default=2,
                       metavar="N", help="epochs on --stage1-data (default 2; "
                       "leave out --stage1-data to skip the first stage)")
    train.add_argument("--eval-data", metavar="FILE",
                       help="labelled table to evaluate on after training; "
                       "default: the training rows of --data (in-sample)")
    train.add_argument("--eval-label-col", metavar="L",
                       help="label column of --eval-data (default: --label-col)")
    train.add_argument("--e1", type=_positive_int, default=8,
                       help="facet 1 embedding size per feature; e2 = d * e1 "
                       "(default 8)")
    train.add_argument("--block-len", type=_positive_int, default=16, metavar="T",
                       help="longest block of rows facet 2 attends over "
                       "(default 16)")
    train.add_argument("--batch-size", type=_positive_int, default=512,
                       metavar="B", help="rows per step, over all processes; a "
                       "multiple of the block length (default 512)")
    train.add_argument("--lr", type=_positive_float, default=6e-4,
                       help="Adam learning rate (default 6e-4, as in the paper)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=run_train)

    score = sub.add_parser(
        "score", help="score a table with a saved model",
        description="Score every row of a parquet or CSV table with a saved "
        "model; write the scenario and query columns and a 'score' column.")
    score.add_argument("--model", required=True, metavar="DIR",
                       help="folder written by 'train'")
    score.add_argument("--data", required=True, metavar="FILE",
                       help="table to score (.parquet, .pq, .csv or .csv.gz)")
    score.add_argument("--out", required=True, metavar="FILE",
                       help="scores to write, parquet or CSV by file name")
    score.add_argument("--label-col", metavar="L",
                       help="labels to evaluate against (also copied to --out)")
    score.add_argument("--scenario-col", metavar="C",
                       help="scenario column, if named otherwise than in training")
    query = score.add_mutually_exclusive_group()
    query.add_argument("--query-col", metavar="Q",
                       help="query column, if named otherwise than in training")
    query.add_argument("--no-query", action="store_true",
                       help="score every row alone, ignoring the query column")
    score.add_argument("--quiet", action="store_true", help="no progress bars")
    score.set_defaults(func=run_score)
    return parser


# ---------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------


def _say(*args) -> None:
    """Print on rank 0 only."""
    if distributed.get_rank() == 0:
        print(*args, flush=True)


def _read_training_tables(args) -> tuple[DataSchema, list, pd.DataFrame]:
    """Read and validate --data and --stage1-data; fit the schema on both."""
    data = read_table(args.data, name="--data",
                      text_columns=[args.scenario_col, args.query_col])
    if args.feature_cols is not None:
        features = parse_feature_columns(args.feature_cols)
        _refuse_split_names(features, data)
    else:
        features = select_feature_columns(
            data, scenario_column=args.scenario_col, label_columns=args.label_col,
            query_column=args.query_col)
    columns = dict(scenario_column=args.scenario_col, feature_columns=features,
                   query_column=args.query_col)
    validate_frame(data, label_column=args.label_col, name="--data", **columns)
    stages = [(None, None), (data, args.label_col)]
    if args.stage1_data is not None:
        if args.stage1_label_col is None:
            raise ValueError("--stage1-data needs --stage1-label-col; got none")
        first = read_table(args.stage1_data, name="--stage1-data",
                           text_columns=[args.scenario_col, args.query_col])
        validate_frame(first, label_column=args.stage1_label_col,
                       name="--stage1-data", **columns)
        stages[0] = (first, args.stage1_label_col)
    elif args.stage1_label_col is not None:
        raise ValueError("--stage1-label-col needs --stage1-data; got none")
    schema = fit_schema([f for f, _ in stages if f is not None], **columns)
    if args.feature_cols is None:
        warn_of_id_features(features)
    return schema, stages, data


def _out_of_memory(err: BaseException, what: str, advice: str) -> BaseException:
    """A one-line error for an allocation that failed; any other error as it is."""
    if not isinstance(err, MemoryError) and "allocate" not in str(err):
        return err
    asked = re.search(r"allocate (?:memory: you tried to allocate )?(\d+) bytes",
                      str(err))
    size = f" (an allocation of {int(asked[1]):,} bytes failed)" if asked else ""
    return MemoryError(f"{what}{size}; {advice}")


def _refuse_split_names(features: list[str], data: pd.DataFrame) -> None:
    """Explain a missing feature that is a piece of a column name with a comma."""
    missing = [c for c in features if c not in data.columns]
    with_commas = [str(c) for c in data.columns if "," in str(c)]
    if missing and with_commas:
        raise ValueError(
            f"--data lacks the feature column(s) {missing}; --feature-cols is "
            f"split at commas, so the column(s) {with_commas} cannot be named in "
            "it: rename them, or leave --feature-cols out to take every numeric "
            "column"
        )


def run_train(args) -> int:
    """``train``: read, size, train on every process, save and evaluate on rank 0."""
    check_save_target(args.out)
    if args.batch_size % args.block_len:
        raise ValueError(f"--batch-size must be a multiple of --block-len "
                         f"{args.block_len}; got {args.batch_size}")
    _probe_out_folder(Path(args.out))
    eval_frame = None
    if args.eval_data is not None:
        eval_frame = read_table(args.eval_data, name="--eval-data",
                                text_columns=[args.scenario_col, args.query_col])
    elif args.eval_label_col is not None:
        raise ValueError("--eval-label-col needs --eval-data; got none")
    schema, stages, data = _read_training_tables(args)
    eval_label = args.eval_label_col or args.label_col
    eval_split = None
    if eval_frame is not None:
        eval_split = to_tensors(eval_frame, schema, label_column=eval_label,
                                name="--eval-data")
    splits = [empty_tensors(schema) if f is None else
              to_tensors(f, schema, label_column=label,
                         name="--stage1-data" if i == 0 else "--data")
              for i, (f, label) in enumerate(stages)]
    rows = max(len(s) for s in splits)
    if args.block_len > rows:
        # Training blocks are drawn from the rows: a longer block is padding,
        # its attention costs t * t and its position table t * e2 untrained.
        raise ValueError(
            f"--block-len {args.block_len:,} is longer than the {rows:,} rows of "
            "the largest training table: every training block would be mostly "
            "padding, and attention over it costs block length squared; choose "
            f"at most {rows:,} (the default is 16)")
    cfg = model_config(schema, e1=args.e1, block_len=args.block_len)
    train_cfg = TrainConfig(
        lr=args.lr, batch_size=args.batch_size, epochs_llm=args.epochs,
        epochs_teacher=args.stage1_epochs if stages[0][0] is not None else 0,
    )

    with distributed.process_group():
        world = distributed.get_world_size()
        torch.manual_seed(args.seed)
        try:
            model = AutoTask(cfg)
        except (RuntimeError, MemoryError) as err:
            raise _out_of_memory(
                err, f"the model does not fit in memory: --e1 {cfg.e1} with "
                f"d={cfg.d} makes each row token e2 = d * e1 = {cfg.e2:,} wide",
                "choose a smaller --e1") from None
        shown = ", ".join(schema.feature_columns[:6]) + (
            ", ..." if len(schema.feature_columns) > 6 else "")
        _say(f"features: {len(schema.feature_columns)} columns ({shown})")
        _say(f"scenarios: {len(schema.task_ids)} in training, task IDs 1.."
             f"{len(schema.task_ids)} ({', '.join(schema.task_ids)}); others get 0")
        _say(f"model: AutoTask with d={cfg.d}, num_tasks={cfg.num_tasks}, "
             f"e1={cfg.e1}, e2={cfg.e2}, block_len={cfg.block_len}: "
             f"{count_parameters(model):,} parameters")
        plan = [f"{train_cfg.epochs_teacher} epoch(s) on {len(splits[0]):,} rows "
                "of --stage1-data"] if train_cfg.epochs_teacher else []
        plan.append(f"{train_cfg.epochs_llm} epoch(s) on {len(splits[1]):,} rows "
                    "of --data")
        where = (f"{world} processes (DistributedDataParallel, gloo), each on "
                 "its shard of the rows" if world > 1 else "1 process")
        _say(f"training: {', then '.join(plan)}; {where}")
        # Known limitation: every process has read and validated the whole
        # table, so that all fit the same schema; only then does each keep its
        # shard. A table larger than one process's memory needs a reader of
        # row groups and a schema reduced across processes.
        shards = [distributed.shard_tensors(s, seed=args.seed) for s in splits]
        try:
            history = train_two_stage(model, *shards, train_cfg, args.seed,
                                      progress=not args.quiet)
        except (RuntimeError, MemoryError) as err:
            raise _out_of_memory(
                err, f"training ran out of memory: the model's "
                f"{count_parameters(model):,} parameters need about four times "
                "their size (weights, gradients and the optimiser's two "
                "moments), plus the activations of a batch of "
                f"{args.batch_size:,} rows", "choose a smaller --e1 or "
                "--batch-size, or fewer features") from None
        if distributed.get_rank() == 0:
            try:
                folder = save_model(model, args.out, schema=schema,
                                    train_config=train_cfg, seed=args.seed,
                                    history=history)
            except OSError as err:
                if err.filename is None:
                    raise  # the library's own message, which names --out
                raise _out_error(err, Path(args.out)) from err
            last = history.iloc[-1]["loss"] if len(history) else float("nan")
            print(f"saved the model to {folder} (last epoch's loss {last:.4f})")
            if eval_split is not None:
                title = f"evaluation on --eval-data ({args.eval_data})"
                split = eval_split
            else:
                title = "evaluation on the training rows of --data (in-sample)"
                split = splits[1]
            prob = score_tensors(model, split)
            _print_evaluation(title, split.target.numpy(), prob, split.scenario,
                              schema)
        distributed.barrier()
    return 0


_SCORES_TEMP = re.compile(r"^\.(?P<table>.+)\.[A-Za-z0-9_]+-\d+\.[^.]+$")
TABLE_SUFFIXES = PARQUET_SUFFIXES + CSV_SUFFIXES


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write parquet or CSV by file name, through a temporary file and a rename.

    An operating system error names ``path``, the user's --out, never the
    temporary file.
    """
    kind = table_format(path, name="--out")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # What killed earlier writes of scores to this folder left behind:
        # ``.<table>.<host>-<pid>.<random>`` of a process that is gone.
        for entry in path.parent.glob(".*"):
            table = _SCORES_TEMP.match(entry.name)
            if (table and table["table"].lower().endswith(TABLE_SUFFIXES)
                    and entry.is_file() and owner_is_gone(entry.name)):
                entry.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[-TEMP_NAME:]}."
                                   f"{temporary_owner()}.",
                                   dir=path.parent)
        os.close(fd)
        if kind == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False,
                         compression="gzip" if path.name.endswith(".gz") else None)
        os.chmod(tmp, umask_mode(0o666))  # mkstemp makes a private file
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _out_error(err, path) from err
        raise


def _probe_out_folder(out: Path) -> None:
    """Fail now, not after training, if the model could not be saved at ``out``.

    The model is written to a temporary folder beside ``out`` and renamed, so
    the nearest folder that exists on the way to ``out`` must take a new entry.
    """
    base = next((p for p in [out.parent, *out.parent.parents] if p.exists()),
                Path("."))
    try:
        if not base.is_dir():
            raise NotADirectoryError(f"{str(base)!r} is not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=f".{out.name[-TEMP_NAME:]}.probe-",
                                  dir=base))
    except OSError as err:
        raise _out_error(err, out) from err


def _out_error(err: OSError, path: Path) -> Exception:
    """A one-line error naming the user's --out rather than a file made for it."""
    reason = err.strerror or str(err) or type(err).__name__
    reason += f" (in or under the folder {str(path.parent)!r})"
    kind = type(err) if isinstance(err, USER_ERRORS) else ValueError
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        reason, kind = f"{str(existing)!r} is a file, not a folder", NotADirectoryError
    return kind(f"--out {str(path)!r} cannot be written: {reason}")


def _check_replaceable_scores(out: Path, columns: list[str]) -> None:
    """Refuse to replace a file at ``out`` that is not a table of scores.

    As ``train`` replaces only a saved model, ``score`` replaces only a table
    of scores: a ``score`` column and, besides it, only columns this run
    writes too (the scenario, query and label columns), as an earlier run of
    the same command wrote. A user table that merely has a ``score`` column
    is left alone.
    """
    if out.is_symlink():
        # The new table would replace the link itself, leaving its target stale.
        raise ValueError(
            f"--out {str(out)!r} is a symbolic link (to {os.readlink(out)!r}); "
            "score would replace the link, not the file it leads to: give the "
            "file's own path")
    if not out.exists():
        return
    try:
        if not out.is_file():
            raise ValueError("not a regular file")
        found = (pq.read_schema(out).names if table_format(out) == "parquet"
                 else list(pd.read_csv(out, nrows=0).columns))
    except Exception:  # unreadable as a table: not one of our outputs
        found = []
    others = [str(c) for c in found if c not in columns]
    if "score" not in found or others:
        what = (f"has the column(s) {others[:5]}{' ...' if len(others) > 5 else ''}"
                " that score would not write" if "score" in found
                else "has no 'score' column")
        raise ValueError(
            f"--out {str(out)!r} exists and is not a table of scores like this "
            f"one (it {what}); score replaces only such a table, as its own "
            "earlier output, so remove the file or choose another --out")


def run_score(args) -> int:
    """``score``: score a table with a saved model and write the scores."""
    out = Path(args.out)
    table_format(out, name="--out")
    if out.is_dir():
        raise ValueError(f"--out must be a file; {str(out)!r} is a folder")
    if os.path.realpath(out) == os.path.realpath(args.data) or (
            out.exists() and Path(args.data).exists() and out.samefile(args.data)):
        raise ValueError(
            f"--out {str(out)!r} is the --data file; the scores would replace "
            "the table they are computed from, so write them to another file")
    saved = load_model(args.model)
    schema = with_columns(saved.schema, scenario_column=args.scenario_col,
                          query_column=args.query_col, no_query=args.no_query)
    keep = [schema.scenario_column]
    if schema.query_column is not None:
        keep.append(schema.query_column)
    if args.label_col is not None:
        keep.append(args.label_col)
    _check_replaceable_scores(out, [*keep, "score"])
    frame = read_table(args.data, name="--data",
                       text_columns=[schema.scenario_column,
                                     schema.query_column])
    split = to_tensors(frame, schema, label_column=args.label_col, name="--data")
    if "score" in keep:
        raise ValueError(
            "the output's 'score' column would overwrite an input column named "
            "'score'; rename that column first")
    prob = score_tensors(saved.model, split, progress=not args.quiet)
    result = frame[keep].reset_index(drop=True)
    result["score"] = prob
    _write_table(result, out)

    unseen = sorted({s for s in split.scenario if s not in schema.task_ids})
    shown = ", ".join(unseen[:10]) + (f" and {len(unseen) - 10:,} more"
                                      if len(unseen) > 10 else "")
    note = f"; unseen in training, scored as task ID 0: {shown}" if unseen else ""
    if unseen and not any(s in schema.task_ids for s in set(split.scenario)):
        print(f"{PROG} score: warning: no scenario of --data was seen in "
              f"training, so every row was scored as task ID 0; check that "
              f"{schema.scenario_column!r} is the scenario column",
              file=sys.stderr)
    print(f"scored {len(frame):,} rows of {len(set(split.scenario))} "
          f"scenario(s) into {out}{note}")
    if args.label_col is not None:
        _print_evaluation(f"evaluation on --data ({args.data})",
                          split.target.numpy(), prob, split.scenario, schema)
    return 0


# Exit status after the reader of the output went away (``... | head``): the
# shells' status of a process ended by SIGPIPE, 128 + 13.
BROKEN_PIPE_STATUS = 141


def _one_line_warning(command: str):
    """A ``warnings.showwarning`` that prints one line, like the errors."""
    def show(message, category, filename, lineno, file=None, line=None):
        if distributed.env_rank() == 0:
            text = " ".join(str(message).split())
            print(f"{PROG} {command}: warning: {text}", file=sys.stderr)
    return show


class _ReaderGoneStdout(io.TextIOBase):
    """Standard output that outlives its reader (``... | head -1``).

    When the reader goes away, what is left to print goes to devnull and the
    command carries on, so that a model being trained is still saved.
    """

    def __init__(self, stream):
        self.stream, self.gone = stream, False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._to_devnull()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._to_devnull()

    def _to_devnull(self) -> None:
        self.gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.stream.fileno())  # so that the exit's flush succeeds
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    The status is 0 on success, 2 for a user error and
    :data:`BROKEN_PIPE_STATUS` when standard output was closed by its reader
    (for example ``| head -1``): the command then finishes its work (a model
    is still saved) without printing more.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    stdout = sys.stdout = _ReaderGoneStdout(sys.stdout)
    try:
        with warnings.catch_warnings(), sigterm_as_interrupt():
            warnings.showwarning = _one_line_warning(args.command)
            status = args.func(args)
            sys.stdout.flush()  # a closed pipe shows here, not at the exit
        return BROKEN_PIPE_STATUS if stdout.gone else status
    except KeyboardInterrupt as stop:
        # Ctrl-C or SIGTERM. Every write of this command is atomic: nothing
        # half-written is left.
        print(f"{PROG} {args.command}: interrupted; --out is either complete "
              "or untouched", file=sys.stderr)
        # The shells' status of a process ended by SIGTERM or SIGINT.
        return TERMINATED_STATUS if isinstance(stop, Terminated) else 130
    except BrokenPipeError:
        # The reader is gone: send what is left to devnull, so that Python's
        # own flush at the exit does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.stream.fileno())
        os.close(devnull)
        return BROKEN_PIPE_STATUS
    except (*USER_ERRORS, OSError) as err:
        # Every process meets the same bad input; one line from rank 0 suffices.
        # An operating system error (a name too long, a full disk) is the
        # machine's answer about a path the user gave: shown as one line too.
        if distributed.env_rank() == 0:
            message = str(err)
            if isinstance(err, OSError) and err.strerror and err.filename:
                message = f"{err.strerror}: {str(err.filename)!r}"
            message = " ".join(message.split()) or type(err).__name__
            print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout.stream
