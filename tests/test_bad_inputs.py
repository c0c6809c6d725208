"""Bad input that once ended in a raw error or a silently wrong result now ends in
an error (or warning) that names the argument, what it expects and what it got."""

import copy
import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import data_synth as ds
from autotask_lib import (AutoTask, BaselineConfig, load_user_data, model_config,
                          load_model, prepare, save_model)
from autotask_lib.cli import BROKEN_PIPE_STATUS, evaluation_table, main
from autotask_lib.metrics import bootstrap_scenario_metrics, scenario_metrics
from autotask_lib.peers import MMoEConfig, PLEConfig
from autotask_lib.serving import OnnxScorer, export_onnx, score_request
from autotask_lib.userdata import fit_schema

SMALL = {"teacher_train": 300, "llm_train": 200, "calibration": 100, "test": 300}


def small(**kw):
    return ds.DataConfig(sizes=dict(SMALL), **kw)


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    """A small data set written by ``save``, generated once for this module."""
    data = ds.generate(small(), seed=2)
    return ds.save(data, tmp_path_factory.mktemp("saved") / "d")


def _copy_with_card(folder, tmp_path, edit):
    """A copy of a saved data set whose card ``edit(card)`` has changed."""
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    card = json.loads((target / "data_card.json").read_text())
    edit(card)
    (target / "data_card.json").write_text(json.dumps(card))
    return target


# ---------------------------------------------------------------------------
# A saved data set's card: config and seed are covered by a checksum
# ---------------------------------------------------------------------------


def _set_seed(card):
    card["seed"] = 7


def _set_relatedness(card):
    card["config"]["relatedness"] = 0.9


def _set_size(card):
    card["config"]["sizes"]["test"] = 301


@pytest.mark.parametrize("edit", [_set_seed, _set_relatedness, _set_size])
def test_an_edited_config_or_seed_on_the_card_is_detected(saved_folder, tmp_path,
                                                           edit):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ds.DataSetChangedWarning)
        assert ds.load(saved_folder).seed == 2  # the untouched copy loads quietly
    folder = _copy_with_card(saved_folder, tmp_path, edit)
    with pytest.warns(ds.DataSetChangedWarning,
                      match="no longer match the checksum written with them"):
        ds.load(folder)
    # Saving the same data there does not keep the edited card as if it were
    # this data set's own.
    with pytest.raises(FileExistsError, match="already holds other files"):
        ds.save(ds.load(saved_folder), folder)


def test_a_card_without_its_checksum_cannot_be_verified(saved_folder, tmp_path):
    folder = _copy_with_card(saved_folder, tmp_path, lambda c: c.pop("checksum"))
    with pytest.warns(ds.DataSetChangedWarning, match="holds no checksum"):
        ds.load(folder)


def test_load_or_generate_regenerates_a_data_set_whose_card_was_edited(tmp_path):
    first = ds.load_or_generate(small(), 4, tmp_path)
    card_path = first.folder / "data_card.json"
    card = json.loads(card_path.read_text())
    card["config"]["relatedness"] = 0.9
    card_path.write_text(json.dumps(card))
    with pytest.warns(ds.DataSetChangedWarning, match="regenerating the data set"):
        again = ds.load_or_generate(small(), 4, tmp_path)
    assert again.config.relatedness == 0.5
    assert ds.read_card(first.folder)["config"]["relatedness"] == 0.5


# ---------------------------------------------------------------------------
# DataConfig.sizes cannot change after the config is made
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    lambda s: s.__setitem__("test", -5),
    lambda s: s.__delitem__("test"),
    lambda s: s.update(test=5),
    lambda s: s.pop("test"),
    lambda s: s.clear(),
    lambda s: s.setdefault("other", 1),
    lambda s: s.popitem(),
])
def test_sizes_of_a_config_cannot_be_changed(change):
    cfg = small()
    with pytest.raises(TypeError, match="sizes cannot be changed once the config"):
        change(cfg.sizes)
    assert cfg.sizes == SMALL
    assert ds.target_rows(cfg)["test"]["Hotel"] > 0


def test_the_caller_s_dict_is_copied_and_the_config_still_behaves():
    given = dict(SMALL)
    cfg = ds.DataConfig(sizes=given)
    given["test"] = -5  # the caller's own dict: the config holds a copy
    assert cfg.sizes["test"] == 300
    assert cfg == small() and hash(cfg) == hash(small())
    assert dataclasses.replace(cfg, sizes={**SMALL, "test": 50}).sizes["test"] == 50
    assert ds.config_for_profile("smoke", sizes={"test": 40}).sizes["test"] == 40
    assert copy.deepcopy(cfg) == cfg and pickle.loads(pickle.dumps(cfg)) == cfg
    assert json.loads(json.dumps(dataclasses.asdict(cfg)))["sizes"] == SMALL


def test_target_rows_checks_the_sizes_again():
    cfg = small()
    dict.__setitem__(cfg.sizes, "test", -5)  # forced past the config's guard
    with pytest.raises(ValueError, match=r"sizes\['test'\] must be a positive"):
        ds.target_rows(cfg)


# ---------------------------------------------------------------------------
# Diagnostics and the card's tolerance
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenarios, match", [
    ("Hotel", r"not one string; got 'Hotel' \(write \['Hotel'\]"),
    (5, "scenarios must be a list of scenario names; got int 5"),
])
def test_label_audit_refuses_a_bare_string_of_scenarios(scenarios, match):
    with pytest.raises(TypeError, match=match):
        ds.label_audit(small(), rows_per_scenario=10, scenarios=scenarios)


def test_a_correlation_needs_two_samples():
    with pytest.raises(ValueError, match="n must be at least 2: a correlation"):
        ds.relevance_correlation(small(), 0, n=1)
    with pytest.raises(ValueError, match="n must be at least 2"):
        ds.relatedness_sweep([0.5], small(), n=1)
    assert ds.relevance_correlation(small(), 0, n=2).shape == (11, 11)


@pytest.mark.parametrize("rate, rows, error, match", [
    (0.5, 0, ValueError, "rows must be at least 1 .* got 0"),
    (0.5, -3, ValueError, "rows must be at least 1 .* got -3"),
    (0.5, 2.5, TypeError, "rows must be an integer of at least 1; got 2.5"),
    (0.5, float("nan"), TypeError, "rows must be an integer .* got nan"),
    (1.5, 10, ValueError, r"rate must be a number in \[0, 1\]; got 1.5"),
    (-0.1, 10, ValueError, r"rate must be a number in \[0, 1\]; got -0.1"),
    (float("nan"), 10, ValueError, r"rate must be a number in \[0, 1\]; got nan"),
    ("0.5", 10, TypeError, "rate must be a real number .* got '0.5'"),
])
def test_rate_tolerance_refuses_impossible_rates_and_row_counts(rate, rows, error,
                                                                match):
    with pytest.raises(error, match=match):
        ds.rate_tolerance(rate, rows)


def test_rate_tolerance_keeps_its_values():
    assert ds.rate_tolerance(0.5, 100) == pytest.approx(0.01 + 4 * 0.05)
    assert ds.rate_tolerance(1.0, 1) == pytest.approx(0.01)
    assert ds.rate_tolerance(0.25, np.int64(9)) == pytest.approx(
        0.01 + 4 * np.sqrt(0.25 * 0.75 / 9))


# ---------------------------------------------------------------------------
# Entry points given the wrong kind of object
# ---------------------------------------------------------------------------


def test_entry_points_name_the_wrong_argument(tmp_path):
    with pytest.raises(TypeError, match="data must be a data_synth.SyntheticData"
                                        r" .* got NoneType"):
        prepare(None)
    with pytest.raises(TypeError, match="folder must be a path .* got NoneType"):
        ds.load(None)
    with pytest.raises(TypeError, match="cfg must be a DataConfig; got dict"):
        ds.target_rows({})
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(NotADirectoryError, match="root '.*afile' is a file; give "
                                                 "a folder"):
        ds.load_or_generate(small(), 0, tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "keep me"
    with pytest.raises(TypeError, match="root must be a path .* got NoneType"):
        ds.load_or_generate(small(), 0, None)
    with pytest.raises(TypeError, match="cfg must be a DataConfig; got NoneType"):
        ds.load_or_generate(None, 0, tmp_path)


@pytest.mark.parametrize("card, error, match", [
    ({}, ValueError, "card must hold a list of targets under 'targets'"),
    ([], TypeError, "card must be a data card dict .* got list"),
    ({"targets": [{"split": "test"}]}, ValueError,
     r"card target 0 must have the keys .* lacks \['scenario', 'quantity', "),
    ({"targets": [{"split": "test", "scenario": "Hotel", "quantity": "speed",
                   "target": 1, "tolerance": 0}]}, ValueError,
     "card target 0 must measure one of .* got 'speed'"),
])
def test_card_check_names_what_the_card_lacks(card, error, match):
    data = ds.generate(small(), seed=2)
    with pytest.raises(error, match=match):
        ds.card_check(data, card=card)


# ---------------------------------------------------------------------------
# Model configs: a wrong type is a TypeError (and still a ValueError)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda: BaselineConfig(shared="256"),
     r"shared must be a tuple of integer widths, e.g. \(256, 128\); got str '256'"),
    (lambda: BaselineConfig(branch=64), "branch must be a tuple .* got int 64"),
    (lambda: BaselineConfig(shared=(256.5,)), r"got tuple \(256.5,\)"),
    (lambda: BaselineConfig(d="24"), "d must be an integer of at least 2; got str"),
    (lambda: BaselineConfig(num_tasks=True), "num_tasks must be .* got bool True"),
    (lambda: BaselineConfig(dropout="0.1"), r"dropout must be a number in \[0, 1\)"),
    (lambda: MMoEConfig(expert="64"), r"expert must be .* got '64' \(str\)"),
    (lambda: MMoEConfig(num_experts="6"), "num_experts must be .* got str '6'"),
    (lambda: MMoEConfig(dropout="0.1"), "dropout must be a number .* got str"),
    (lambda: PLEConfig(tower=64), r"tower must be .* got 64 \(int\)"),
    (lambda: PLEConfig(dropout=True), "dropout must be a number .* got bool True"),
])
def test_configs_refuse_wrong_types_with_a_type_error(make, match):
    with pytest.raises(TypeError, match=match) as caught:
        make()
    assert isinstance(caught.value, ValueError)  # one except catches both kinds


def test_config_values_out_of_range_stay_value_errors():
    for make in (lambda: BaselineConfig(shared=()),
                 lambda: BaselineConfig(dropout=float("nan")),
                 lambda: MMoEConfig(tower=(0,))):
        with pytest.raises(ValueError) as caught:
            make()
        assert not isinstance(caught.value, TypeError)


def test_baseline_widths_given_as_a_list_are_kept_as_a_tuple():
    cfg = BaselineConfig(shared=[128, 64])
    assert cfg.shared == (128, 64) and cfg == BaselineConfig(shared=(128, 64))
    assert hash(cfg) == hash(BaselineConfig(shared=(128, 64)))


# ---------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------


def test_onnx_scorer_names_input_that_is_no_array(tmp_path):
    scorer = OnnxScorer(export_onnx(AutoTask().eval(), tmp_path / "m.onnx"))
    for x, got in ((None, "NoneType"), ("abc", "str")):
        with pytest.raises(TypeError, match=r"x must be an array of numbers of "
                                            rf"shape \(blocks, t, d\); got {got}"):
            scorer.logits(x)
    with pytest.raises(TypeError, match="got a list that is not one"):
        scorer.logits([[["a"] * 24]])


def test_a_request_must_hold_one_scenario():
    model = AutoTask().eval()
    rows = torch.randn(4, 24)
    rows[:, -1] = torch.tensor([3.0, 3.0, 5.0, 3.0])
    with pytest.raises(ValueError, match=r"all of one scenario: the task IDs of "
                                         r"rows .* equal; got \[3.0, 5.0\]"):
        score_request(model, rows)
    rows[:, -1] = 5.0
    assert score_request(model, rows).shape == (4,)


# ---------------------------------------------------------------------------
# A missing scenario name is refused, never reported as 'None'
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [None, np.nan])
def test_metrics_refuse_a_missing_scenario_name(missing):
    y, p = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])
    scenario = np.array(["A", "A", missing, missing], dtype=object)
    match = "scenario must name a scenario on every row; 2 row.* first at row 2"
    with pytest.raises(ValueError, match=match):
        scenario_metrics(y, p, scenario)
    with pytest.raises(ValueError, match=match):
        bootstrap_scenario_metrics(y, p, scenario, n_boot=2)
    with pytest.raises(ValueError, match=match):
        evaluation_table(y, p, scenario, {"A": 1})
    with pytest.raises(ValueError, match="scenarios must be a list of scenario "
                                         "names; got a missing name"):
        scenario_metrics(y, p, np.array(["A", "A", "B", "B"]),
                         scenarios=["A", missing])
    # A categorical with a missing value is refused too.
    cat = pd.Categorical(["A", "A", None, "B"])
    with pytest.raises(ValueError, match="first at row 2"):
        scenario_metrics(y, p, cat)


def test_user_data_refuses_a_missing_scenario_name():
    frame = pd.DataFrame({"scenario": ["A", "A", "B", None], "f1": [1.0, 2, 3, 4],
                          "label": [0, 1, 0, 1]})
    with pytest.raises(ValueError, match="the scenario column 'scenario' of "
                                         "training table 0 has 1 missing or "
                                         "blank value"):
        fit_schema(frame, scenario_column="scenario", feature_columns=["f1"])
    good = frame.assign(scenario=["A", "A", "B", "B"])
    schema = load_user_data(good, scenario_column="scenario",
                            label_column="label").schema
    assert list(schema.task_id_of(["A", "C"])) == [1, 0]
    with pytest.raises(ValueError, match="1 of 2 are missing .* position 1"):
        schema.task_id_of(["A", None])


# ---------------------------------------------------------------------------
# The command line's --out and a closed standard output
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_and_table(tmp_path_factory):
    """An untrained saved model and a table it can score."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"scenario": np.repeat(["A", "B"], 20),
                          "f1": rng.normal(size=40), "f2": rng.normal(size=40),
                          "label": np.tile([0, 1], 20)})
    frame.to_csv(folder / "table.csv", index=False)
    user = load_user_data(frame, scenario_column="scenario", label_column="label")
    torch.manual_seed(0)
    model = AutoTask(model_config(user.schema))
    save_model(model, folder / "model", schema=user.schema)
    return folder


def test_out_errors_name_the_user_s_path(model_and_table, tmp_path, capsys,
                                         monkeypatch):
    folder = model_and_table
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "scores.csv"
    argv = ["score", "--model", str(folder / "model"), "--data",
            str(folder / "table.csv"), "--quiet"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out '{out}' cannot be written: '{tmp_path / 'afile'}' is a file" in err

    # The operating system's error names the temporary file; ours the --out.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".s.csv.x"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "s.csv"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out '{out}' cannot be written: Permission denied" in err
    assert ".s.csv.x" not in err


def test_a_closed_standard_output_ends_the_command_quietly(model_and_table):
    folder = model_and_table
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotask_lib", "score", "--model", "model",
         "--data", "table.csv", "--out", "scores.csv", "--label-col", "label",
         "--quiet"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == BROKEN_PIPE_STATUS
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
    assert (folder / "scores.csv").exists()  # the work itself was done


def test_a_closed_standard_output_still_saves_the_trained_model(model_and_table):
    folder = model_and_table
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotask_lib", "train", "--data", "table.csv",
         "--scenario-col", "scenario", "--label-col", "label", "--epochs", "1",
         "--out", "piped", "--quiet"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `... | head -1` does after its line
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == BROKEN_PIPE_STATUS, err
    assert b"Traceback" not in err
    assert load_model(folder / "piped").schema.feature_columns == ("f1", "f2")
