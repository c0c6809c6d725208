"""The command line and saved models: a round trip through new processes."""

import json
import os
import shutil
import re
import subprocess
import textwrap
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from autotask_lib import (AutoTask, TrainConfig, load_model, load_user_data,
                          model_config, prepare, save_model, train_two_stage)
from autotask_lib import saved as saved_module
from autotask_lib.cli import evaluation_table, main
from autotask_lib.saved import score_tensors
from autotask_lib.train import predict_autotask
from autotask_lib.userdata import empty_tensors, to_tensors, with_columns

# Columns only the generator knows; a user's own file would not have them.
GENERATOR_ONLY = ["task_id", "relevance_prob"]
COMMON = ["--scenario-col", "scenario", "--query-col", "query_id"]


def default_sigint():
    # A shell starts background jobs with SIGINT ignored, and Python then
    # never turns it into KeyboardInterrupt; a user at a terminal has it.
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)



def write_user_files(data, folder):
    """The synthetic splits as a user would have them: CSV and parquet files."""
    folder.mkdir(parents=True, exist_ok=True)
    data["teacher_train"].drop(columns=GENERATOR_ONLY).to_csv(
        folder / "teacher.csv", index=False)
    data["llm_train"].drop(columns=GENERATOR_ONLY).to_csv(
        folder / "train.csv", index=False)
    data["test"].drop(columns=GENERATOR_ONLY).to_csv(folder / "test.csv", index=False)
    return folder


def run_cli(*args, cwd):
    """``python -m autotask_lib ARGS`` in a new process."""
    return subprocess.run([sys.executable, "-m", "autotask_lib", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """A model trained by the command line in a new process, and its files."""
    folder = write_user_files(tiny_data, tmp_path_factory.mktemp("cli"))
    result = run_cli("train", "--data", "train.csv", "--label-col", "llm_label",
                     *COMMON, "--stage1-data", "teacher.csv", "--stage1-label-col",
                     "teacher_prob", "--stage1-epochs", 1, "--epochs", 1,
                     "--batch-size", 64, "--seed", 1, "--out", "model", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, result


# ---------------------------------------------------------------------------
# The round trip
# ---------------------------------------------------------------------------


def test_train_prints_its_plan_and_an_evaluation(trained):
    folder, result = trained
    out = result.stdout
    assert "features: 23 columns" in out
    assert "model: AutoTask with d=24, num_tasks=10, e1=8, e2=192" in out
    assert ("training: 1 epoch(s) on 1,500 rows of --stage1-data, then 1 "
            "epoch(s) on 800 rows of --data; 1 process") in out
    assert "evaluation on the training rows of --data (in-sample)" in out
    for name in ("Hotel", "RealEstate"):
        assert name in out
    assert "training AutoTask" in result.stderr  # the progress bar
    assert sorted(p.name for p in (folder / "model").iterdir()) == [
        "checksums.json", "config.json", "data.json", "model.safetensors"]


def test_scores_of_a_new_process_equal_in_process_scores(trained):
    folder, _ = trained
    result = run_cli("score", "--model", "model", "--data", "test.csv", "--out",
                     "scores.parquet", "--label-col", "label", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "unseen in training, scored as task ID 0: Clinics, Home" in result.stdout
    assert "0 (unseen)" in result.stdout  # the evaluation marks unseen scenarios
    scores = pd.read_parquet(folder / "scores.parquet")
    # The scenario and query columns are copied as written: as text.
    test = pd.read_csv(folder / "test.csv", dtype={"scenario": str, "query_id": str})
    assert list(scores.columns) == ["scenario", "query_id", "label", "score"]
    pd.testing.assert_frame_equal(scores[["scenario", "query_id", "label"]],
                                  test[["scenario", "query_id", "label"]])

    saved = load_model(folder / "model")
    in_process = saved.score(folder / "test.csv")
    np.testing.assert_array_equal(scores["score"].to_numpy(), in_process)
    # The block-by-block scoring is predict_autotask's, bit for bit.
    split = to_tensors(test, saved.schema)
    np.testing.assert_array_equal(predict_autotask(saved.model, split), in_process)


def test_csv_scores_read_back_as_the_same_float32(trained):
    folder, _ = trained
    assert main(["score", "--model", str(folder / "model"), "--data",
                 str(folder / "test.csv"), "--out", str(folder / "s.csv"),
                 "--no-query", "--quiet"]) == 0
    scores = pd.read_csv(folder / "s.csv")
    assert list(scores.columns) == ["scenario", "score"]
    saved = load_model(folder / "model")
    alone = saved.score(folder / "test.csv",
                        schema=with_columns(saved.schema, no_query=True))
    np.testing.assert_array_equal(scores["score"].to_numpy(np.float32), alone)


def test_a_model_saved_in_process_scores_the_same_in_a_new_process(tiny_data,
                                                                   tmp_path):
    folder = write_user_files(tiny_data, tmp_path)
    train = load_user_data(folder / "train.csv", scenario_column="scenario",
                           label_column="llm_label", query_column="query_id")
    torch.manual_seed(0)
    model = AutoTask(model_config(train.schema, e1=4, block_len=8))
    history = train_two_stage(model, empty_tensors(train.schema), train.tensors,
                              TrainConfig(batch_size=64, epochs_teacher=0,
                                          epochs_llm=1), seed=0, progress=False)
    save_model(model, folder / "m", schema=train.schema, history=history, seed=0)
    test = load_user_data(folder / "test.csv", scenario_column="scenario",
                          schema=train.schema)
    expected = score_tensors(model, test.tensors)

    result = run_cli("score", "--model", "m", "--data", "test.csv", "--out",
                     "new.parquet", "--quiet", cwd=folder)
    assert result.returncode == 0, result.stderr
    got = pd.read_parquet(folder / "new.parquet")["score"].to_numpy()
    np.testing.assert_array_equal(got, expected)
    assert list(load_model(folder / "m").history["stage"]) == ["llm"]


def test_one_labelled_file_trains_one_stage(tiny_data, tmp_path, capsys):
    folder = write_user_files(tiny_data, tmp_path)
    code = main(["train", "--data", str(folder / "train.csv"), "--scenario-col",
                 "scenario", "--label-col", "llm_label", "--feature-cols",
                 "sim_query_title,q_ad_quality,flag_exact_match", "--epochs", "1",
                 "--e1", "4", "--batch-size", "64", "--out", str(folder / "m"),
                 "--eval-data", str(folder / "test.csv"), "--eval-label-col",
                 "label", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "training: 1 epoch(s) on 800 rows of --data; 1 process" in out
    assert "evaluation on --eval-data" in out and "Clinics" in out
    saved = load_model(folder / "m")
    assert saved.schema.feature_columns == ("sim_query_title", "q_ad_quality",
                                            "flag_exact_match")
    assert (saved.model.cfg.d, saved.model.cfg.e2) == (4, 16)
    assert saved.schema.query_column is None
    assert saved.train_config.epochs_teacher == 0


def test_a_stage_with_epochs_needs_rows(tiny_data):
    p = prepare(tiny_data)
    schema_like = p["llm_train"].x[:0]
    empty = type(p["llm_train"])(schema_like, torch.zeros(0), np.array([]),
                                 np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match=r"the teacher split must hold rows to "
                                         r"train 1 epoch\(s\) on it; got 0 rows"):
        train_two_stage(AutoTask(), empty, p["llm_train"],
                        TrainConfig(epochs_teacher=1, epochs_llm=1), seed=0,
                        progress=False)


# ---------------------------------------------------------------------------
# Errors: one line, exit status 2, no traceback
# ---------------------------------------------------------------------------


def test_errors_in_a_new_process_are_one_line_with_status_2(trained):
    folder, _ = trained
    result = run_cli("train", "--data", "train.csv", "--scenario-col", "scenario",
                     "--label-col", "relevance", "--out", "m2", cwd=folder)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "python -m autotask_lib train: error: --data lacks the label column "
        "'relevance'; its columns are ['query_id', 'scenario', 'sim_query_title', "
        "'sim_query_description', 'sim_query_landing_page', 'sim_query_keyword', "
        "'sim_semantic_embedding', 'sim_category', ... (18 more)]")
    assert "Traceback" not in result.stderr and result.stdout == ""


def _bad_csv(folder, **changes):
    frame = pd.read_csv(folder / "train.csv").head(50)
    for column, (row, value) in changes.items():
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    frame.to_csv(folder / "bad.csv", index=False)
    return folder / "bad.csv"


@pytest.mark.parametrize("args, match", [
    (["train", "--data", "{f}/nope.csv"], "--data file '.*nope.csv' does not exist"),
    (["train", "--data", "{f}/train.csv", "--scenario-col", "kind"],
     "--data lacks the scenario column 'kind'"),
    (["train", "--data", "{f}/train.csv", "--feature-cols", "sim_brand,oops"],
     r"--data lacks 1 feature column\(s\): \['oops'\]"),
    (["train", "--data", "{f}/train.csv", "--stage1-data", "{f}/teacher.csv"],
     "--stage1-data needs --stage1-label-col; got none"),
    (["train", "--data", "{f}/train.csv", "--stage1-data", "{f}/teacher.csv",
      "--stage1-label-col", "llm_label"],
     "--stage1-data lacks the label column 'llm_label'"),
    (["train", "--data", "{f}/train.csv", "--out", "{f}"],
     "exists and is not a saved AutoTask model"),
    (["train", "--data", "{f}/train.csv", "--batch-size", "100"],
     "--batch-size must be a multiple of --block-len 16; got 100"),
    # Option mistakes are named before the data is read: nope.csv is missing.
    (["train", "--data", "{f}/nope.csv", "--batch-size", "24", "--block-len",
      "16"], "--batch-size must be a multiple of --block-len 16; got 24"),
    (["train", "--data", "{f}/nope.csv", "--out", "{f}/train.csv/m"],
     "--out '.*train.csv/m' cannot be written: '.*train.csv' is a file, "
     "not a folder"),
    (["train", "--data", "{f}/train.txt"], "--data must be a parquet"),
    # A block longer than the rows is padding whose attention costs t squared.
    (["train", "--data", "{f}/train.csv", "--query-col", "query_id",
      "--block-len", "100000", "--batch-size", "100000"],
     "--block-len 100,000 is longer than the [0-9,]+ rows of the largest "
     "training table: .* choose at most"),
    (["score", "--model", "{f}/nomodel", "--data", "{f}/test.csv", "--out",
      "{f}/s.parquet"], "no saved model at '.*nomodel'"),
    (["score", "--model", "{f}/model", "--data", "{f}/test.csv", "--out",
      "{f}/s.json"], "--out must be a parquet"),
    (["score", "--model", "{f}/model", "--data", "{f}/test.csv", "--out",
      "{f}/s.csv", "--query-col", "qid"], "--data lacks the query column 'qid'"),
])
def test_bad_input_gives_one_line_and_status_2(trained, capsys, args, match):
    folder, _ = trained
    (folder / "train.txt").write_text("x")
    args = [a.format(f=folder) for a in args]
    if args[0] == "train":
        defaults = {"--scenario-col": "scenario", "--label-col": "llm_label",
                    "--out": str(folder / "new_model")}
        for option, value in defaults.items():
            if option not in args:
                args += [option, value]
        args.append("--quiet")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"python -m autotask_lib {args[0]}: error: ")
    assert re.search(match, err), err


@pytest.mark.parametrize("change, match", [
    ({"llm_label": (3, 2.0)}, r"label column 'llm_label' of --data must hold "
                              r"values in \[0, 1\]; got 2.0 at row 3"),
    ({"sim_brand": (5, "n/a")}, "features must be finite; column 'sim_brand' of "
                                "--data holds nan at row 5"),
    ({"sim_brand": (5, "high")}, "feature column 'sim_brand' of --data must be "
                                 "numeric"),
    ({"scenario": (0, "")}, "the scenario column 'scenario' of --data has 1 "
                            "missing or blank value"),
])
def test_bad_values_give_one_line_and_status_2(trained, capsys, tmp_path, change,
                                               match):
    folder, _ = trained
    bad = _bad_csv(folder, **change)
    code = main(["train", "--data", str(bad), "--scenario-col", "scenario",
                 "--label-col", "llm_label", "--feature-cols",
                 "sim_brand,sim_category", "--out", str(tmp_path / "m"),
                 "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert re.search(match, err), err


@pytest.mark.parametrize("args, match", [
    (["train", "--data", "x.csv"], "the following arguments are required: "
                                   "--scenario-col, --label-col, --out"),
    (["train", "--data", "x.csv", "--scenario-col", "s", "--label-col", "y",
      "--out", "m", "--epochs", "-1"],
     "argument --epochs: must be a positive integer; got '-1'"),
    (["train", "--data", "x.csv", "--scenario-col", "s", "--label-col", "y",
      "--out", "m", "--epochs", "0"],
     "argument --epochs: must be a positive integer; got '0'"),
    # A first stage of no epochs would still give its scenarios task IDs.
    (["train", "--data", "x.csv", "--scenario-col", "s", "--label-col", "y",
      "--out", "m", "--stage1-epochs", "0"],
     "argument --stage1-epochs: must be a positive integer; got '0'"),
    (["train", "--data", "x.csv", "--scenario-col", "s", "--label-col", "y",
      "--out", "m", "--epoch", "2"], "unrecognized arguments: --epoch 2"),
    (["train", "--data", "x.csv", "--scenario-col", "s", "--label-col", "y",
      "--out", "m", "--lr", "zero"], "argument --lr: must be a number; got 'zero'"),
    (["score", "--model", "m", "--data", "x.csv", "--out", "s.csv", "--bogus"],
     "unrecognized arguments: --bogus"),
    (["predict"], "invalid choice: 'predict'"),
    ([], "the following arguments are required: {train,score}"),
])
def test_bad_options_exit_with_status_2(capsys, args, match):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert match in err and err.rstrip().endswith("(see --help)")


# ---------------------------------------------------------------------------
# The saved-model folder
# ---------------------------------------------------------------------------


def _small_model(tiny_data):
    train = load_user_data(tiny_data["llm_train"], scenario_column="scenario",
                           label_column="llm_label",
                           feature_columns=["sim_brand", "q_ad_quality"])
    return AutoTask(model_config(train.schema, e1=2, block_len=4)), train.schema


def test_save_refuses_folders_that_are_not_models(tiny_data, tmp_path):
    model, schema = _small_model(tiny_data)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not a saved AutoTask model"):
        save_model(model, tmp_path / "notes", schema=schema)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        save_model(model, tmp_path / "file", schema=schema)
    with pytest.raises(TypeError, match="model must be an AutoTask; got Linear"):
        save_model(torch.nn.Linear(2, 1), tmp_path / "m", schema=schema)
    with pytest.raises(ValueError, match=r"the model \(d=24, num_tasks=10\) does "
                                         "not fit the schema"):
        save_model(AutoTask(), tmp_path / "m", schema=schema)


def test_save_replaces_a_model_only_when_the_new_one_is_whole(tiny_data, tmp_path,
                                                              monkeypatch):
    model, schema = _small_model(tiny_data)
    target = save_model(model, tmp_path / "m", schema=schema, seed=1)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(saved_module, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_model(AutoTask(model.cfg), target, schema=schema, seed=2)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no leftovers

    monkeypatch.undo()
    torch.manual_seed(5)
    save_model(AutoTask(model.cfg), target, schema=schema, seed=2)
    assert load_model(target).seed == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_load_explains_missing_and_damaged_folders(tiny_data, tmp_path):
    model, schema = _small_model(tiny_data)
    with pytest.raises(TypeError, match="folder must be the path of a saved model; "
                                        "got NoneType"):
        load_model(None)
    with pytest.raises(FileNotFoundError, match="no saved model at '.*absent'"):
        load_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a saved AutoTask model: it has "
                                         "no config.json"):
        load_model(tmp_path / "empty")

    target = save_model(model, tmp_path / "m", schema=schema)
    config = (target / "config.json").read_text()
    (target / "config.json").write_text(config[:40])
    with pytest.raises(ValueError, match="is damaged: config.json cannot be read"):
        load_model(target)
    meta = json.loads(config)
    (target / "config.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(ValueError, match="lacks format='autotask-saved-model'"):
        load_model(target)
    (target / "config.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ValueError, match="layout version 99; this library reads "
                                         "version 2"):
        load_model(target)
    (target / "config.json").write_text(config)
    (target / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="is damaged: model.safetensors changed "
                                         "after the model was saved"):
        load_model(target)
    (target / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="is damaged: it has no model.safetensors"):
        load_model(target)
    (target / "data.json").unlink()
    with pytest.raises(ValueError, match="is not a saved AutoTask model: it has "
                                         "no data.json"):
        load_model(target)


def test_evaluation_orders_scenarios_and_splits_soft_labels():
    y = np.array([0.9, 0.1, 0.7, 0.2, 1.0, 1.0])
    prob = np.array([0.8, 0.3, 0.6, 0.4, 0.5, 0.9])
    scenario = np.array(["B", "B", "A", "A", "New", "New"])
    table = evaluation_table(y, prob, scenario, {"A": 1, "B": 2})
    assert table["scenario"].tolist() == ["A", "B", "New"]
    assert table["task_id"].tolist() == [1, 2, 0]
    assert table["positives"].tolist() == [1, 1, 2]
    assert table["roc_auc"].iloc[:2].tolist() == [1.0, 1.0]
    assert np.isnan(table["roc_auc"].iloc[2])  # one class only


# ---------------------------------------------------------------------------
# Mistakes that could cost a user their data
# ---------------------------------------------------------------------------


def test_scores_never_replace_the_table_they_come_from(trained, tmp_path):
    folder, _ = trained
    victim = tmp_path / "victim.csv"
    shutil.copy(folder / "test.csv", victim)
    before = victim.read_bytes()
    for out in (victim, "victim.csv", "missing/../victim.csv"):
        result = run_cli("score", "--model", folder / "model", "--data", victim,
                         "--out", out, cwd=tmp_path)
        assert result.returncode == 2
        assert "is the --data file" in result.stderr
        assert victim.read_bytes() == before
    assert not (tmp_path / "missing").exists()


def test_scores_replace_only_an_earlier_table_of_scores(trained, tmp_path):
    folder, _ = trained
    score = ["score", "--model", folder / "model", "--data", folder / "test.csv",
             "--quiet"]
    for name, content, why in (
            ("notes.parquet", b"keep", "it has no 'score' column"),
            ("notes.csv", b"a,b\n1,2\n", "it has no 'score' column"),
            # A user's table that merely has a score column is not ours.
            ("marks.csv", b"scenario,notes,score\nHotel,good,0.9\n",
             "it has the column(s) ['notes'] that score would not write")):
        (tmp_path / name).write_bytes(content)
        result = run_cli(*score, "--out", name, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert (f"--out '{name}' exists and is not a table of scores like this one "
                f"({why})") in result.stderr
        assert (tmp_path / name).read_bytes() == content
    # Its own earlier output is replaced.
    assert run_cli(*score, "--out", "s.csv", cwd=tmp_path).returncode == 0
    # ... but not through a link, which would be replaced in its target's stead.
    (tmp_path / "latest.csv").symlink_to(tmp_path / "s.csv")
    before = (tmp_path / "s.csv").read_bytes()
    result = run_cli(*score, "--out", "latest.csv", cwd=tmp_path)
    assert result.returncode == 2 and "is a symbolic link" in result.stderr
    assert (tmp_path / "latest.csv").is_symlink()
    assert (tmp_path / "s.csv").read_bytes() == before
    (tmp_path / "s.csv").write_text("scenario,score\nHotel,0.5\n")
    assert run_cli(*score, "--out", "s.csv", cwd=tmp_path).returncode == 0
    assert len(pd.read_csv(tmp_path / "s.csv")) > 1


def test_a_seed_beyond_64_bits_is_named(trained):
    folder, _ = trained
    result = run_cli("train", "--data", "train.csv", "--label-col", "llm_label",
                     *COMMON, "--seed", 2**64, "--out", "never", cwd=folder)
    assert result.returncode == 2
    assert ("--seed: must be an integer from 0 to 4294967295 (2**32 - 1)"
            in result.stderr)
    assert not (folder / "never").exists()


def test_a_stray_word_in_a_feature_column_is_refused(trained, tmp_path):
    folder, _ = trained
    table = pd.read_csv(folder / "train.csv")
    table["sim_brand"] = table["sim_brand"].astype(object)
    table.loc[5, "sim_brand"] = "abc"
    table["note"] = "free text"  # a text column is not a feature, and is fine
    table.to_csv(tmp_path / "spoiled.csv", index=False)
    result = run_cli("train", "--data", "spoiled.csv", "--label-col", "llm_label",
                     *COMMON, "--out", "m", cwd=tmp_path)
    assert result.returncode == 2
    assert ("column 'sim_brand' holds numbers but 1 value(s) that are not, such "
            "as 'abc' at row 5") in result.stderr
    table.loc[5, "sim_brand"] = 0.5
    table.to_csv(tmp_path / "fixed.csv", index=False)
    result = run_cli("train", "--data", "fixed.csv", "--label-col", "llm_label",
                     *COMMON, "--epochs", 1, "--out", "m", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note" not in load_model(tmp_path / "m").schema.feature_columns


def test_a_saved_model_whose_files_disagree_is_called_damaged(trained, tmp_path):
    folder, _ = trained
    copy = tmp_path / "model"
    shutil.copytree(folder / "model", copy)
    described = json.loads((copy / "data.json").read_text())
    described["feature_columns"] = described["feature_columns"][:-1]
    (copy / "data.json").write_text(json.dumps(described))
    with pytest.raises(ValueError, match=r"is damaged: data.json changed after "
                                         r"the model was saved"):
        load_model(copy)


@pytest.mark.parametrize("name", ["config.json", "data.json", "model.safetensors"])
def test_any_edit_of_a_saved_model_is_refused(trained, tmp_path, name):
    folder, _ = trained
    copy = tmp_path / "model"
    shutil.copytree(folder / "model", copy)
    raw = bytearray((copy / name).read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit, somewhere in the middle
    (copy / name).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"is damaged: {name} changed after"):
        load_model(copy)
    result = run_cli("score", "--model", copy, "--data", folder / "test.csv",
                     "--out", tmp_path / "s.csv", cwd=tmp_path)
    assert result.returncode == 2 and f"{name} changed after" in result.stderr


def test_numbers_stored_as_text_are_refused_not_dropped(trained, tmp_path):
    folder, _ = trained
    table = pd.read_csv(folder / "train.csv")
    table["sim_brand"] = table["sim_brand"].astype(str)
    table.to_parquet(tmp_path / "text.parquet")
    result = run_cli("train", "--data", "text.parquet", "--label-col", "llm_label",
                     *COMMON, "--out", "m", cwd=tmp_path)
    assert result.returncode == 2
    assert "column 'sim_brand' holds numbers stored as text" in result.stderr


def test_a_cut_off_gzip_file_is_named(trained, tmp_path):
    import gzip
    folder, _ = trained
    packed = gzip.compress((folder / "train.csv").read_bytes())
    (tmp_path / "cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    result = run_cli("train", "--data", "cut.csv.gz", "--label-col", "llm_label",
                     *COMMON, "--out", "m", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "could not read --data file 'cut.csv.gz' as csv" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("stop, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_or_sigterm_ends_training_with_one_line(trained, tmp_path, stop,
                                                        status):
    import signal
    import time
    folder, _ = trained
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autotask_lib", "train", "--data",
             str(folder / "teacher.csv"), "--label-col", "teacher_prob", *COMMON,
             "--epochs", "200", "--batch-size", "64", "--out", "m"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
            preexec_fn=default_sigint)
        deadline = time.time() + 120
        while "training AutoTask" not in log.read_text() and proc.poll() is None:
            assert time.time() < deadline, log.read_text()
            time.sleep(0.2)
        proc.send_signal(getattr(signal, stop))
        proc.wait(timeout=60)
    text = log.read_text()
    # A shell's $? is 130 after Ctrl-C either way: CPython ends a `python -m`
    # run by SIGINT itself (-2 here) when the KeyboardInterrupt passed through
    # code run by exec() of a string, such as a lazy import making dataclasses,
    # even though the command caught it and returned 130.
    ended_by_sigint = stop == "SIGINT" and proc.returncode == -signal.SIGINT
    assert proc.returncode == status or ended_by_sigint, text
    assert text.strip().split("\n")[-1].endswith(
        "python -m autotask_lib train: interrupted; --out is either complete or "
        "untouched")
    assert "Traceback" not in text
    assert not (tmp_path / "m").exists()


def test_a_row_id_given_as_the_scenario_column_is_refused(trained, tmp_path):
    folder, _ = trained
    table = pd.read_csv(folder / "train.csv")
    table["scenario"] = [f"s{i}" for i in range(len(table))]
    table.to_csv(tmp_path / "ids.csv", index=False)
    result = run_cli("train", "--data", "ids.csv", "--label-col", "llm_label",
                     *COMMON, "--out", "m", cwd=tmp_path)
    assert result.returncode == 2
    assert f"names {len(table):,} scenarios with a median of 1 rows each" in (
        result.stderr)


def test_a_query_id_given_as_the_scenario_column_is_refused(trained, tmp_path):
    folder, _ = trained
    table = pd.read_csv(folder / "train.csv")
    result = run_cli("train", "--data", folder / "train.csv", "--label-col",
                     "llm_label", "--scenario-col", "query_id", "--out", "m",
                     cwd=tmp_path)
    assert result.returncode == 2
    groups = table["query_id"].value_counts()
    assert f"names {len(groups):,} scenarios with a median of" in result.stderr
    assert "not a column of row or query IDs" in result.stderr
    assert not (tmp_path / "m").exists()


def test_an_unwritable_out_folder_is_named_before_the_data_is_read(
        trained, tmp_path, capsys, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    read = []
    monkeypatch.setattr("autotask_lib.cli.read_table",
                        lambda *a, **k: read.append(a))
    code = main(["train", "--data", "x.csv", "--scenario-col", "scenario",
                 "--label-col", "y", "--out", str(tmp_path / "sub" / "m")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot be written: Permission denied" in err, err
    assert read == [] and not (tmp_path / "sub").exists()


def test_a_scenario_named_na_in_a_csv_gets_a_hint(trained, tmp_path, capsys):
    folder, _ = trained
    table = pd.read_csv(folder / "train.csv")
    first = table["scenario"].iloc[0]
    table["scenario"] = table["scenario"].replace(first, "NA")
    table.to_csv(tmp_path / "na.csv", index=False)
    code = main(["train", "--data", str(tmp_path / "na.csv"), *COMMON,
                 "--label-col", "llm_label", "--out", str(tmp_path / "m"),
                 "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "the scenario column 'scenario' of --data has" in err
    assert "texts such as 'NA', 'N/A', 'null' and 'nan' are read as missing" in err


def test_warnings_are_one_line_like_the_errors(trained, tmp_path, capsys):
    folder, _ = trained
    table = pd.read_csv(folder / "train.csv")
    first = table["scenario"].iloc[0]
    table.loc[0, "scenario"] = f" {first.lower()}"
    table.to_csv(tmp_path / "twins.csv", index=False)
    code = main(["train", "--data", str(tmp_path / "twins.csv"), *COMMON,
                 "--label-col", "llm_label", "--epochs", "1", "--batch-size",
                 "64", "--out", str(tmp_path / "m"), "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert lines == [
        f"python -m autotask_lib train: warning: the scenario column 'scenario' "
        f"holds names that differ only in case or surrounding spaces "
        f"({f' {first.lower()}'!r} and {first!r}); each gets a task ID of its "
        "own, so make them one name if they are one scenario"], err


def test_a_model_too_large_for_memory_is_named_by_its_option(trained, tmp_path,
                                                             capsys, monkeypatch):
    folder, _ = trained

    def refuse(cfg):  # what PyTorch raises when the allocator says no
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. "
                           "DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr("autotask_lib.cli.AutoTask", refuse)
    code = main(["train", "--data", str(folder / "train.csv"), *COMMON,
                 "--label-col", "llm_label", "--e1", "100000", "--out",
                 str(tmp_path / "m"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: the model does not fit in memory: --e1 100000 with d=" in err
    assert "choose a smaller --e1" in err and len(err.strip().splitlines()) == 1


def test_a_column_name_with_a_comma_is_explained(trained, tmp_path, capsys):
    folder, _ = trained
    table = pd.read_csv(folder / "train.csv").rename(
        columns={"sim_brand": "sim brand, x"})
    table.to_csv(tmp_path / "commas.csv", index=False)
    code = main(["train", "--data", str(tmp_path / "commas.csv"), *COMMON,
                 "--label-col", "llm_label", "--feature-cols",
                 "sim brand, x,sim_category", "--out", str(tmp_path / "m"),
                 "--quiet"])
    assert code == 2
    assert ("--feature-cols is split at commas, so the column(s) ['sim brand, x'] "
            "cannot be named in it") in capsys.readouterr().err


def test_an_id_column_taken_as_a_feature_is_warned_of(trained, tmp_path, capsys):
    folder, _ = trained
    code = main(["train", "--data", str(folder / "train.csv"), "--scenario-col",
                 "scenario", "--label-col", "llm_label", "--epochs", "1",
                 "--batch-size", "64", "--out", str(tmp_path / "m"), "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    assert ("train: warning: the column(s) ['query_id'] look like IDs but are "
            "taken as features") in err
    code = main(["train", "--data", str(folder / "train.csv"), *COMMON,
                 "--label-col", "llm_label", "--epochs", "1", "--batch-size",
                 "64", "--out", str(tmp_path / "m2"), "--quiet"])
    assert code == 0 and "look like IDs" not in capsys.readouterr().err


def test_a_huge_feature_is_named_by_its_column(trained, tmp_path):
    folder, _ = trained
    table = pd.read_csv(folder / "train.csv")
    table.loc[3, "sim_brand"] = 1e300
    table.to_csv(tmp_path / "huge.csv", index=False)
    result = run_cli("train", "--data", "huge.csv", "--label-col", "llm_label",
                     *COMMON, "--out", "m", cwd=tmp_path)
    assert result.returncode == 2
    assert "feature column 'sim_brand' overflows float64" in result.stderr


def test_a_killed_write_of_the_scores_is_cleaned_by_the_next(trained, tmp_path):
    folder, _ = trained
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    from data_synth.io import temporary_owner
    host = temporary_owner().rsplit("-", 1)[0]
    left = tmp_path / f".s.csv.{host}-{dead}.abc123"
    left.write_text("half")
    other = tmp_path / f".s.csv.{host}-{os.getpid()}.live99"  # a live writer's
    other.write_text("in progress")
    # A killed write to another --out of this folder; and a file of the user's
    # that only looks like a temporary (not a table's name).
    elsewhere = tmp_path / f".old.parquet.{host}-{dead}.xyz789"
    elsewhere.write_text("half")
    mine = tmp_path / f".notes.{host}-{dead}.txt"
    mine.write_text("mine")
    result = run_cli("score", "--model", folder / "model", "--data",
                     folder / "test.csv", "--out", "s.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not left.exists() and not elsewhere.exists()
    assert other.exists() and mine.read_text() == "mine"
    assert (tmp_path / "s.csv").exists()


def test_other_files_beside_a_saved_model_are_never_deleted(trained, tmp_path):
    folder, _ = trained
    target = tmp_path / "model"
    shutil.copytree(folder / "model", target)
    (target / "NOTES.txt").write_text("mine")
    result = run_cli("train", "--data", folder / "train.csv", "--label-col",
                     "llm_label", *COMMON, "--epochs", 1, "--out", target,
                     cwd=tmp_path)
    assert result.returncode == 2
    assert "holds a saved model and other files too (NOTES.txt)" in result.stderr
    assert (target / "NOTES.txt").read_text() == "mine"
    load_model(target)  # the model is still whole


def test_scores_name_the_problems_of_their_table_and_model(trained, tmp_path):
    folder, _ = trained
    table = pd.read_csv(folder / "test.csv")
    table["cnt_ad_clicks"] = table["cnt_ad_clicks"].astype(float)
    table.loc[4, "cnt_ad_clicks"] = 1e300
    table.to_csv(tmp_path / "huge.csv", index=False)
    result = run_cli("score", "--model", folder / "model", "--data", "huge.csv",
                     "--out", "s.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert ("feature column 'cnt_ad_clicks' of --data holds a value too large to "
            "score at row 4") in result.stderr

    table = pd.read_csv(folder / "test.csv")
    table["rowid"] = np.arange(len(table))
    table.to_csv(tmp_path / "ids.csv", index=False)
    result = run_cli("score", "--model", folder / "model", "--data", "ids.csv",
                     "--scenario-col", "rowid", "--out", "s.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no scenario of --data was seen in training" in result.stderr
    assert f"and {len(table) - 10:,} more" in result.stdout


def test_saved_statistics_must_be_finite():
    from autotask_lib.userdata import DataSchema
    d = {"feature_columns": ["a"], "scenario_column": "s", "query_column": None,
         "task_ids": {"A": 1},
         "standardizer": {"mean": [float("nan")], "std": [1.0]}}
    with pytest.raises(ValueError, match="statistics must be finite"):
        DataSchema.from_dict(d)
    d["standardizer"] = {"mean": [0.0], "std": [-1.0]}
    with pytest.raises(ValueError, match="no negative spread"):
        DataSchema.from_dict(d)


def test_running_out_of_memory_in_training_is_one_line(trained, tmp_path, capsys,
                                                       monkeypatch):
    folder, _ = trained

    def refuse(*args, **kwargs):  # what the allocator says in backward()
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 414720000 bytes. Error code 12")

    monkeypatch.setattr("autotask_lib.cli.train_two_stage", refuse)
    code = main(["train", "--data", str(folder / "train.csv"), *COMMON,
                 "--label-col", "llm_label", "--out", str(tmp_path / "m"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "error: training ran out of memory" in err
    assert "(an allocation of 414,720,000 bytes failed)" in err
    assert "choose a smaller --e1 or --batch-size" in err
    assert not (tmp_path / "m").exists()


def test_a_path_the_system_refuses_is_one_line(trained, tmp_path, capsys):
    folder, _ = trained
    long = tmp_path / ("a" * 300)
    code = main(["train", "--data", str(folder / "train.csv"), *COMMON,
                 "--label-col", "llm_label", "--out", str(long), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "error: File name too long: " in err
    code = main(["score", "--model", str(folder / "model"), "--data",
                 str(folder / "test.csv"), "--out", f"{long}.csv", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "error: File name too long: " in err


def test_a_failed_write_of_the_weights_is_one_line_and_keeps_the_old_model(
        trained, tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError
    folder, _ = trained
    shutil.copytree(folder / "model", tmp_path / "m")
    before = (tmp_path / "m" / "model.safetensors").read_bytes()

    def full_disk(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: File too large")

    monkeypatch.setattr(saved_module, "save_file", full_disk)
    code = main(["train", "--data", str(folder / "train.csv"), *COMMON,
                 "--label-col", "llm_label", "--epochs", "1", "--batch-size",
                 "64", "--out", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"the model could not be saved to {str(tmp_path / 'm')!r}" in err
    assert "File too large" in err
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_symbolic_link_as_out_is_refused_before_training(trained, tmp_path,
                                                           capsys):
    folder, _ = trained
    (tmp_path / "nowhere").symlink_to(tmp_path / "missing")
    (tmp_path / "current").symlink_to(folder / "model")
    for link in ("nowhere", "current"):
        code = main(["train", "--data", str(folder / "train.csv"), *COMMON,
                     "--label-col", "llm_label", "--out", str(tmp_path / link),
                     "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "is a symbolic link" in err, err
        assert "name the folder itself or a new path" in err
        assert (tmp_path / link).is_symlink()


def test_scores_far_outside_training_warn_and_nan_scores_write_nothing(
        trained, tmp_path, capsys):
    folder, _ = trained
    test = pd.read_csv(folder / "test.csv")
    far = test.assign(sim_brand=test["sim_brand"] * 1e4)
    far.to_csv(tmp_path / "far.csv", index=False)
    code = main(["score", "--model", str(folder / "model"), "--data",
                 str(tmp_path / "far.csv"), "--out", str(tmp_path / "s.csv"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    assert ("more than 1,000 training standard deviations from the training "
            "mean") in err and "in column 'sim_brand'" in err
    huge = test.assign(sim_brand=test["sim_brand"] * 1e30)
    huge.to_csv(tmp_path / "huge.csv", index=False)
    code = main(["score", "--model", str(folder / "model"), "--data",
                 str(tmp_path / "huge.csv"), "--out", str(tmp_path / "h.csv"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "NaN score(s)" in err, err
    assert not (tmp_path / "h.csv").exists()


def test_no_query_scores_a_table_without_the_query_column(trained, tmp_path):
    folder, _ = trained
    test = pd.read_csv(folder / "test.csv")
    test.drop(columns=["query_id"]).to_csv(tmp_path / "noq.csv", index=False)
    assert main(["score", "--model", str(folder / "model"), "--data",
                 str(tmp_path / "noq.csv"), "--out", str(tmp_path / "s.csv"),
                 "--no-query", "--quiet"]) == 0
    scores = pd.read_csv(tmp_path / "s.csv")
    assert list(scores.columns) == ["scenario", "score"] and len(scores) == len(test)


def test_scenario_codes_in_a_csv_stay_distinct(trained, tmp_path, capsys):
    folder, _ = trained
    table = pd.read_csv(folder / "train.csv")
    names = sorted(table["scenario"].unique())
    codes = dict(zip(names, ["01", "1", "1.0", *map(str, range(2, len(names)))]))
    table.assign(scenario=table["scenario"].map(codes)).to_csv(
        tmp_path / "codes.csv", index=False)
    assert main(["train", "--data", str(tmp_path / "codes.csv"), *COMMON,
                 "--label-col", "llm_label", "--epochs", "1", "--batch-size", "64",
                 "--out", str(tmp_path / "m"), "--quiet"]) == 0
    assert f"scenarios: {len(names)} in training" in capsys.readouterr().out
    assert {"01", "1", "1.0"} <= set(load_model(tmp_path / "m").schema.task_ids)


def test_save_refuses_nan_weights_and_arguments_of_the_wrong_type(tiny_data,
                                                                  tmp_path):
    model, schema = _small_model(tiny_data)
    with pytest.raises(TypeError, match="history must be a DataFrame"):
        save_model(model, tmp_path / "m", schema=schema, history=[1, 2])
    with pytest.raises(ValueError, match="seed must be an integer"):
        save_model(model, tmp_path / "m", schema=schema, seed="x")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="weights hold NaN or infinite values"):
        save_model(model, tmp_path / "m", schema=schema)
    assert not (tmp_path / "m").exists()


def test_a_replaced_model_that_cannot_be_deleted_is_named(tiny_data, tmp_path,
                                                          monkeypatch):
    model, schema = _small_model(tiny_data)
    save_model(model, tmp_path / "m", schema=schema, seed=1)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(saved_module.shutil, "rmtree", refuse)
    with pytest.warns(UserWarning, match=r"the model that '.*m' held before could "
                      r"not be deleted \(Permission denied\) and is left at"):
        save_model(model, tmp_path / "m", schema=schema, seed=2)
    assert load_model(tmp_path / "m").seed == 2


def test_long_but_legal_names_can_be_written(trained, tmp_path):
    folder, _ = trained
    name = "b" * 250  # legal: the limit is 255 bytes
    assert main(["train", "--data", str(folder / "train.csv"), *COMMON,
                 "--label-col", "llm_label", "--epochs", "1", "--batch-size", "64",
                 "--out", str(tmp_path / name), "--quiet"]) == 0
    assert main(["train", "--data", str(folder / "train.csv"), *COMMON,
                 "--label-col", "llm_label", "--epochs", "1", "--batch-size", "64",
                 "--out", str(tmp_path / name), "--quiet"]) == 0  # replaced
    assert main(["score", "--model", str(tmp_path / name), "--data",
                 str(folder / "test.csv"), "--out", str(tmp_path / f"{name[:246]}.csv"),
                 "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name[:246]}.csv", name]


def test_a_schema_of_another_model_is_refused_when_scoring(trained, tmp_path):
    folder, _ = trained
    assert main(["train", "--data", str(folder / "train.csv"), *COMMON,
                 "--label-col", "llm_label", "--epochs", "1", "--batch-size", "64",
                 "--feature-cols", "sim_brand,sim_location", "--out",
                 str(tmp_path / "small"), "--quiet"]) == 0
    other = load_model(tmp_path / "small").schema
    with pytest.raises(ValueError, match=r"the schema \(d=3, num_tasks=10\) does "
                       r"not fit the model \(d=24"):
        load_model(folder / "model").score(folder / "test.csv", schema=other)


def test_a_schema_of_the_same_width_but_other_features_is_refused(trained,
                                                                  tmp_path):
    folder, _ = trained
    for name, cols in (("b", "sim_brand,sim_location"),
                       ("c", "sim_category,sim_query_title")):
        assert main(["train", "--data", str(folder / "train.csv"), *COMMON,
                     "--label-col", "llm_label", "--epochs", "1", "--batch-size",
                     "64", "--feature-cols", cols, "--out", str(tmp_path / name),
                     "--quiet"]) == 0
    b, c = load_model(tmp_path / "b"), load_model(tmp_path / "c")
    with pytest.raises(ValueError, match="the schema is not this model's"):
        b.score(folder / "test.csv", schema=c.schema)
    renamed = with_columns(b.schema, scenario_column="placement")
    table = pd.read_csv(folder / "test.csv").rename(columns={"scenario": "placement"})
    np.testing.assert_array_equal(b.score(table, schema=renamed),
                                  b.score(folder / "test.csv"))


def test_score_refuses_a_query_column_together_with_no_query(trained, capsys,
                                                             tmp_path):
    folder, _ = trained
    with pytest.raises(SystemExit) as stop:
        main(["score", "--model", str(folder / "model"), "--data",
              str(folder / "test.csv"), "--out", str(tmp_path / "s.csv"),
              "--query-col", "query_id", "--no-query"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --no-query: not allowed with argument --query-col" in err
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("module, argv", [
    ("autotask_lib", ["score", "--model", "nowhere", "--data", "t.csv", "--out",
                      "s.csv"]),
    ("data_synth", ["--describe", "Hotel"]),
])
def test_sigterm_after_the_work_is_done_does_not_report_a_kill(tmp_path, module,
                                                               argv):
    # The command has finished and --out is as it will stay; a SIGTERM during
    # the interpreter's exit must not turn its status into a kill's (143).
    script = tmp_path / "late_kill.py"
    script.write_text(textwrap.dedent(f"""
        import os, runpy, signal, sys
        def exit_after_a_late_kill(status):
            os.kill(os.getpid(), signal.SIGTERM)
            print("exit status", status, flush=True)
            os._exit(status)
        sys.exit = exit_after_a_late_kill
        sys.argv = [{module!r}, *{argv!r}]
        runpy.run_module({module!r}, run_name="__main__")
    """))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    expected = 2 if module == "autotask_lib" else 0
    assert result.returncode == expected, result.stderr
    assert result.stdout.strip().endswith(f"exit status {expected}")
