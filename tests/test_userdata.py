"""The loader of user tables: reading, validation, task IDs, standardisation."""

import json
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from autotask_lib import (DataSchema, fit_schema, load_user_data, model_config,
                          prepare, read_table, to_tensors, validate_frame)
from autotask_lib.data import Standardizer
from autotask_lib.userdata import (block_groups, empty_tensors,
                                   parse_feature_columns, select_feature_columns,
                                   with_columns)
from data_synth import FEATURE_NAMES


def user_frame(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ad_type": np.repeat(["Shoes", "Hotel", "Cars"], n // 3),
        "row_text": [f"r{i}" for i in range(n)],  # not numeric: never a feature
        "f_sim": rng.random(n),
        "query": np.repeat([f"q{i}" for i in range(n // 2)], 2),
        "f_count": rng.integers(0, 50, n),
        "f_flag": rng.random(n) > 0.5,
        "y": rng.random(n),  # soft labels
    })


COLUMNS = dict(scenario_column="ad_type", feature_columns=["f_sim", "f_count",
                                                           "f_flag"])


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def test_parquet_csv_and_frames_read_alike(tmp_path):
    frame = user_frame()
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.csv.gz", index=False)
    assert read_table(frame) is frame
    for name in ("t.parquet", "t.csv", "t.csv.gz"):
        got = read_table(tmp_path / name)
        pd.testing.assert_frame_equal(got, frame, check_dtype=False)


def test_a_csv_cut_mid_row_is_called_cut_off(tmp_path):
    text = user_frame().to_csv(index=False)
    whole = tmp_path / "whole.csv"
    whole.write_text(text.rstrip("\n"))  # no last line break, but whole
    with pytest.warns(UserWarning, match="does not end with a line break; if it "
                      "was cut off, the last value of its last row"):
        got = read_table(whole)
    pd.testing.assert_frame_equal(got, user_frame(), check_dtype=False)
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: text.rindex(",") - 3])  # stops inside a row
    with pytest.raises(ValueError, match=r"--data file '.*cut.csv' looks cut off: "
                       r"its last row has 6 of 7 fields and no line break"):
        read_table(cut, name="--data")
    cut.write_text(text[: text.rindex(",") - 3] + "\n")  # cut, then ended
    with pytest.raises(ValueError, match=r"looks cut off: its last row has 6 of 7 "
                       "fields; copy"):
        read_table(cut, name="--data")
    quoted = tmp_path / "quoted.csv"  # a last field of two lines is not judged
    quoted.write_text('a,b,c\n1,2,"one\ntwo"\n')
    assert read_table(quoted)["c"].tolist() == ["one\ntwo"]


def test_feature_columns_must_be_a_list_not_one_name():
    for call in (lambda f: validate_frame(user_frame(), scenario_column="ad_type",
                                          feature_columns=f),
                 lambda f: fit_schema(user_frame(), scenario_column="ad_type",
                                      feature_columns=f),
                 lambda f: load_user_data(user_frame(), scenario_column="ad_type",
                                          label_column="y", feature_columns=f)):
        with pytest.raises(TypeError, match=r"feature_columns must be a list of "
                           r"column names, such as \['f_sim'\] for one "
                           "column; got 'f_sim'"):
            call("f_sim")
        call(["f_sim"])  # the same column as a list is taken


def test_numeric_columns_named_like_ids_are_features_with_a_warning():
    frame = user_frame().assign(row_id=range(12), QueryId=range(12), valid=1.0,
                                qid=range(12), session=range(12),
                                session_count=range(12))
    with pytest.warns(UserWarning, match=r"the column\(s\) \['row_id', 'QueryId', "
                      r"'qid', 'session'\] look like IDs but are taken as "
                      "features"):
        data = load_user_data(frame, scenario_column="ad_type", label_column="y")
    assert data.schema.feature_columns == ("f_sim", "f_count", "f_flag", "row_id",
                                           "QueryId", "valid", "qid", "session",
                                           "session_count")
    # Named features, and a table refused for another reason, get no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_user_data(frame, scenario_column="ad_type", label_column="y",
                       feature_columns=["f_sim", "row_id"])
        with pytest.raises(ValueError, match="label column 'y'"):
            load_user_data(frame.assign(y=2.0), scenario_column="ad_type",
                           label_column="y")


def test_scenario_names_that_differ_only_in_case_or_spaces_are_warned_of():
    frame = user_frame()
    frame.loc[0, "ad_type"] = " shoes "
    with pytest.warns(UserWarning, match=r"'ad_type' holds names that differ "
                      r"only in case or surrounding spaces \(' shoes ' and "
                      r"'Shoes'\); each gets a task ID of its own"):
        schema = fit_schema(frame, **COLUMNS)
    assert len(schema.task_ids) == 4


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data file '.*nope\.csv' does "
                                                "not exist"):
        read_table(tmp_path / "nope.csv", name="--data")


def test_unknown_file_type_is_refused(tmp_path):
    (tmp_path / "t.xlsx").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"data must be a parquet \(.parquet, "
                                         r".pq\) or CSV .* got '.*t\.xlsx'"):
        read_table(tmp_path / "t.xlsx")


def test_empty_file_and_header_only_file_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"'.*empty\.csv' is empty \(0 bytes\)"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("ad_type,f_sim,y\n")
    with pytest.raises(ValueError, match="data holds no rows; it needs at least one"):
        read_table(tmp_path / "header.csv")


def test_unreadable_file_is_refused(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(ValueError, match=r"could not read data file "
                                         r"'.*bad\.parquet' as parquet: "):
        read_table(tmp_path / "bad.parquet")
    (tmp_path / "bad.csv").write_bytes(b'a,b\n1,"2\n')  # unterminated quote
    with pytest.raises(ValueError, match=r"could not read data file '.*bad\.csv' "
                                         "as csv: "):
        read_table(tmp_path / "bad.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ValueError, match=r"'.*dir\.csv' is a folder"):
        read_table(tmp_path / "dir.csv")


def test_a_file_of_another_encoding_or_format_is_named_with_the_fix(tmp_path):
    frame = pd.DataFrame({"ad_type": ["Café", "Hôtel"], "y": [0, 1],
                          "f_sim": [0.1, 0.2]})
    frame.to_csv(tmp_path / "latin.csv", index=False, encoding="latin-1")
    with pytest.raises(ValueError, match=r"'.*latin\.csv' as csv: .*\(the file is "
                                         r"not UTF-8 text; save it again as UTF-8"):
        read_table(tmp_path / "latin.csv")
    frame.to_parquet(tmp_path / "table.csv")
    with pytest.raises(ValueError, match=r"\(the file is a parquet file, not CSV "
                                         r"text: name it with the \.parquet"):
        read_table(tmp_path / "table.csv")
    frame.to_csv(tmp_path / "packed.csv", index=False, compression="gzip")
    with pytest.raises(ValueError, match=r"\(the file is a gzip-compressed file, "
                                         r"not CSV text: name it with the \.csv\.gz"):
        read_table(tmp_path / "packed.csv")
    frame.to_csv(tmp_path / "text.parquet", index=False)
    with pytest.raises(ValueError, match=r"does not start as parquet files do; a "
                                         r"CSV file must be named \.csv"):
        read_table(tmp_path / "text.parquet")
    # The same bytes under the right names read as they should.
    (tmp_path / "packed.csv").rename(tmp_path / "packed.csv.gz")
    (tmp_path / "table.csv").rename(tmp_path / "table.parquet")
    for right in ("packed.csv.gz", "table.parquet"):
        assert list(read_table(tmp_path / right)["ad_type"]) == ["Café", "Hôtel"]


def test_duplicate_columns_are_refused(tmp_path):
    (tmp_path / "dup.csv").write_text("ad_type,f_sim,f_sim,y\nA,1,2,0\n")
    with pytest.raises(ValueError, match=r"duplicate column names \['f_sim'\]"):
        read_table(tmp_path / "dup.csv")
    frame = pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"])
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        read_table(frame)
    table = pa.table([pa.array([1.0]), pa.array([2.0]), pa.array(["A"])],
                     names=["f", "f", "ad_type"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(ValueError, match=r"data has duplicate column names \['f'\]"):
        read_table(tmp_path / "dup.parquet")


def test_sources_other_than_frames_and_paths_are_refused():
    with pytest.raises(TypeError, match="pandas DataFrame or the path .* got int"):
        read_table(3)


# ---------------------------------------------------------------------------
# Feature columns
# ---------------------------------------------------------------------------


def test_default_features_are_the_other_numeric_columns_in_file_order():
    frame = user_frame()
    got = select_feature_columns(frame, scenario_column="ad_type",
                                 label_columns="y", query_column="query")
    assert got == ["f_sim", "f_count", "f_flag"]
    with pytest.raises(ValueError, match="found no numeric feature columns"):
        select_feature_columns(frame[["ad_type", "row_text", "y"]],
                               scenario_column="ad_type", label_columns=["y"])


def test_feature_list_parsing():
    assert parse_feature_columns(" a, b ,c") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="comma-separated list of names; got 'a,,b'"):
        parse_feature_columns("a,,b")
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        parse_feature_columns("a,b,a")


# ---------------------------------------------------------------------------
# Validation: every error names the column and what is wrong
# ---------------------------------------------------------------------------


def test_a_valid_frame_passes():
    validate_frame(user_frame(), label_column="y", query_column="query", **COLUMNS)


@pytest.mark.parametrize("kwargs, match", [
    (dict(scenario_column="kind"), "data lacks the scenario column 'kind'"),
    (dict(label_column="click"), "data lacks the label column 'click'"),
    (dict(query_column="qid"), "data lacks the query column 'qid'"),
    (dict(feature_columns=["f_sim", "f_a", "f_b"]),
     r"data lacks 2 feature column\(s\): \['f_a', 'f_b'\]"),
    (dict(label_column="f_sim"), "label column 'f_sim' cannot also be a feature"),
    (dict(label_column="ad_type"), "scenario and label columns must differ"),
    (dict(feature_columns=[]), "must name at least one column"),
])
def test_missing_or_conflicting_columns(kwargs, match):
    args = {**COLUMNS, **kwargs}
    with pytest.raises(ValueError, match=match):
        validate_frame(user_frame(), **args)


def test_non_numeric_features_are_refused():
    frame = user_frame().assign(f_sim=["0.5"] * 11 + ["high"])
    with pytest.raises(ValueError, match=r"feature column 'f_sim' of data must be "
                                         r"numeric; got dtype \w+ with values "
                                         "such as 'high'"):
        validate_frame(frame, **COLUMNS)
    frame = user_frame().assign(f_sim=pd.Categorical(["a"] * 12))
    with pytest.raises(ValueError, match="'f_sim' of data must be numeric; got "
                                         "dtype category"):
        validate_frame(frame, **COLUMNS)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused(bad):
    frame = user_frame()
    frame["f_count"] = frame["f_count"].astype(float)
    frame.loc[4, "f_count"] = bad
    with pytest.raises(ValueError, match=f"features must be finite; column "
                                         f"'f_count' of data holds {bad} at row 4"):
        validate_frame(frame, **COLUMNS)


@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_labels_outside_zero_one_are_refused(bad):
    frame = user_frame()
    frame.loc[7, "y"] = bad
    with pytest.raises(ValueError, match=rf"label column 'y' of data must hold "
                                         rf"values in \[0, 1\]; got {bad} at row 7"):
        validate_frame(frame, label_column="y", **COLUMNS)


def test_text_labels_are_refused():
    frame = user_frame().assign(y=["yes"] * 12)
    with pytest.raises(ValueError, match="label column 'y' of data must be numeric "
                                         r"in \[0, 1\]; got dtype \w+ with "
                                         "values such as 'yes'"):
        validate_frame(frame, label_column="y", **COLUMNS)


def test_missing_scenarios_and_queries_are_refused():
    frame = user_frame()
    frame.loc[[3, 5], "ad_type"] = None
    with pytest.raises(ValueError, match=r"the scenario column 'ad_type' of data "
                                         r"has 2 missing or blank value\(s\), the "
                                         "first at "
                                         "row 3; every row needs a scenario"):
        validate_frame(frame, **COLUMNS)
    frame = user_frame()
    frame.loc[9, "query"] = np.nan
    with pytest.raises(ValueError, match="query column 'query' of data has 1 "
                                         "missing or blank value"):
        validate_frame(frame, query_column="query", **COLUMNS)


def test_errors_name_the_table():
    with pytest.raises(ValueError, match="--eval-data lacks the label column 'z'"):
        validate_frame(user_frame(), label_column="z", name="--eval-data",
                       **COLUMNS)


# ---------------------------------------------------------------------------
# Schema: task IDs and standardisation
# ---------------------------------------------------------------------------


def test_schema_numbers_scenarios_and_standardises_on_all_training_rows():
    a, b = user_frame(seed=1), user_frame(seed=2).assign(ad_type="Boats")
    schema = fit_schema([a, b], **COLUMNS)
    assert schema.task_ids == {"Boats": 1, "Cars": 2, "Hotel": 3, "Shoes": 4}
    assert (schema.d, schema.num_tasks) == (4, 5)
    both = pd.concat([a, b])[list(COLUMNS["feature_columns"])].to_numpy(float)
    np.testing.assert_array_equal(schema.standardizer.mean, both.mean(axis=0))
    np.testing.assert_array_equal(schema.standardizer.std, both.std(axis=0))


@pytest.mark.parametrize("scenarios, rows_each, refused", [
    (101, 19, True),    # a query ID column: a few rows per value
    (101, 1, True),     # a row ID column
    (101, 20, False),   # many scenarios, each with enough rows
    (100, 1, False),    # at most 100 scenarios are always taken
])
def test_scenario_columns_that_look_like_ids_are_refused(scenarios, rows_each,
                                                         refused):
    frame = pd.DataFrame({
        "ad_type": np.repeat([f"s{i}" for i in range(scenarios)], rows_each),
        "f": np.arange(scenarios * rows_each, dtype=float)})
    fit = lambda: fit_schema(frame, scenario_column="ad_type",  # noqa: E731
                             feature_columns=["f"])
    if refused:
        with pytest.raises(ValueError, match=rf"'ad_type' names {scenarios} "
                           rf"scenarios with a median of {rows_each} rows"):
            fit()
    else:
        assert fit().num_tasks == scenarios + 1


def test_unseen_scenarios_get_task_id_zero_and_training_statistics():
    train = user_frame(seed=1)
    schema = fit_schema(train, **COLUMNS)
    new = user_frame(seed=5)
    new.loc[:3, "ad_type"] = "Clinics"
    split = to_tensors(new, schema, label_column="y")
    expected_ids = schema.task_id_of(new["ad_type"])
    assert (expected_ids[:4] == 0).all() and (expected_ids[4:] > 0).all()
    np.testing.assert_array_equal(split.task_id.numpy(), expected_ids)
    # Standardised with the training rows' statistics, not the new table's.
    raw = new[list(COLUMNS["feature_columns"])].to_numpy(float)
    np.testing.assert_allclose(split.x[:, :-1].numpy(),
                               schema.standardizer.transform(raw), rtol=0, atol=0)
    np.testing.assert_allclose(split.target.numpy(), new["y"].to_numpy(np.float32))


def test_unlabelled_tables_get_nan_targets():
    schema = fit_schema(user_frame(), **COLUMNS)
    split = to_tensors(user_frame().drop(columns="y"), schema)
    assert torch.isnan(split.target).all() and len(split) == 12


def test_a_query_of_two_scenarios_makes_two_blocks():
    frame = pd.DataFrame({"ad_type": ["A", "A", "B", "A", "B"],
                          "query": ["q1", "q1", "q1", "q2", "q2"], "f": range(5)})
    schema = fit_schema(frame, scenario_column="ad_type", feature_columns=["f"],
                        query_column="query")
    groups = block_groups(frame, schema)
    assert groups.tolist() == [0, 0, 1, 2, 3]
    alone = with_columns(schema, no_query=True)
    assert block_groups(frame, alone).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"query_column='query' and no_query="
                                         "True contradict each other"):
        with_columns(schema, query_column="query", no_query=True)


def test_schema_survives_json_exactly():
    schema = fit_schema(user_frame(), query_column="query", **COLUMNS)
    again = DataSchema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again == schema
    np.testing.assert_array_equal(again.standardizer.mean, schema.standardizer.mean)
    np.testing.assert_array_equal(again.standardizer.std, schema.standardizer.std)
    with pytest.raises(ValueError, match="schema is incomplete or malformed"):
        DataSchema.from_dict({"feature_columns": ["a"]})


def test_schema_checks_its_parts():
    with pytest.raises(ValueError, match="must hold 2 means and standard "
                                         "deviations, one per feature; got 1"):
        DataSchema(("a", "b"), "s", None, {"x": 1},
                   Standardizer(np.zeros(1), np.ones(1)))
    with pytest.raises(ValueError, match=r"task_ids must number the scenarios "
                                         r"1..2; got \[1, 3\]"):
        DataSchema(("a",), "s", None, {"x": 1, "y": 3},
                   Standardizer(np.zeros(1), np.ones(1)))


# ---------------------------------------------------------------------------
# One call, and the model's size
# ---------------------------------------------------------------------------


def test_load_user_data_fits_then_reuses_a_schema(tmp_path):
    user_frame().to_csv(tmp_path / "train.csv", index=False)
    train = load_user_data(tmp_path / "train.csv", scenario_column="ad_type",
                           label_column="y", query_column="query")
    assert train.schema.feature_columns == ("f_sim", "f_count", "f_flag")
    test = load_user_data(user_frame(seed=3).drop(columns="y"),
                          scenario_column="ad_type", schema=train.schema)
    assert test.schema is train.schema and test.label_column is None
    with pytest.raises(ValueError, match="label_column is required to fit"):
        load_user_data(user_frame(), scenario_column="ad_type")
    with pytest.raises(ValueError, match="come from the schema when one is given"):
        load_user_data(user_frame(), scenario_column="ad_type",
                       schema=train.schema, feature_columns=["f_sim"])


def test_synthetic_data_read_as_a_user_table_matches_prepare(tiny_data):
    # The user loader and the synthetic-data loader agree on the same rows.
    p = prepare(tiny_data)
    llm = tiny_data["llm_train"]
    schema = DataSchema(tuple(FEATURE_NAMES), "scenario", "query_id", p.task_ids,
                        p.standardizer)
    split = to_tensors(llm, schema, label_column="llm_label")
    np.testing.assert_array_equal(split.x.numpy(), p["llm_train"].x.numpy())


def test_model_is_sized_for_the_schema():
    schema = fit_schema(user_frame(), **COLUMNS)  # 3 features, 3 scenarios
    cfg = model_config(schema, e1=6, block_len=4)
    assert (cfg.d, cfg.num_tasks, cfg.e1, cfg.e2) == (4, 4, 6, 24)
    assert (cfg.n_head1, cfg.n_head2, cfg.block_len) == (2, 4, 4)
    assert cfg.task_id_scale == 3.0 and cfg.fusion_hidden == 24
    odd = model_config(schema, e1=3)
    assert (odd.n_head1, odd.n_head2, odd.e2) == (1, 4, 12)
    with pytest.raises(ValueError, match="e1 must be a positive integer; got 0"):
        model_config(schema, e1=0)


def test_an_empty_split_has_the_schema_width():
    schema = fit_schema(user_frame(), **COLUMNS)
    empty = empty_tensors(schema)
    assert tuple(empty.x.shape) == (0, 4) and len(empty) == 0


def test_numbers_written_with_decimal_commas_are_refused_not_dropped():
    frame = user_frame()
    frame["f_sim"] = frame["f_sim"].map(lambda v: f"{v:.4f}".replace(".", ","))
    with pytest.raises(ValueError, match="column 'f_sim' holds numbers written "
                       "with commas, such as '0,"):
        load_user_data(frame, scenario_column="ad_type", label_column="y")
    # Named features leave such a column out, as any other.
    load_user_data(frame, scenario_column="ad_type", label_column="y",
                   feature_columns=["f_count"])


def test_a_set_of_feature_columns_is_refused_for_its_lack_of_order():
    for unordered in ({"f_sim", "f_count"}, frozenset({"f_sim"}), {"f_sim": 1}):
        with pytest.raises(TypeError, match="must be a list or tuple: the order"):
            load_user_data(user_frame(), scenario_column="ad_type",
                           label_column="y", feature_columns=unordered)
    with pytest.raises(TypeError, match=r"such as \['f_sim'\] for one column"):
        fit_schema(user_frame(), scenario_column="ad_type", feature_columns="f_sim")


def test_constant_features_everywhere_are_warned_of():
    frame = user_frame().assign(f_sim=0.5, f_count=3, f_flag=True)
    with pytest.warns(UserWarning, match="every feature column is constant"):
        fit_schema(frame, **COLUMNS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_schema(user_frame().assign(f_sim=0.5, f_count=3), **COLUMNS)


def test_a_feature_ruled_by_a_few_extreme_values_is_warned_of():
    frame = user_frame(n=300).astype({"f_count": float})
    frame.loc[7, "f_count"] = 1e39  # finite, but it alone sets the scale
    with pytest.warns(UserWarning, match=r"feature column 'f_count' has a standard "
                      r"deviation of .*, over 1,000 times its interquartile range "
                      r".*such as 1e\+39"):
        fit_schema(frame, **COLUMNS)
    with warnings.catch_warnings():  # heavy tails within reason: no warning
        warnings.simplefilter("error")
        frame.loc[7, "f_count"] = 1e4
        fit_schema(frame, **COLUMNS)


def test_a_blank_scenario_name_is_refused_as_missing():
    for blank in ("", "   "):
        frame = user_frame().astype({"ad_type": object})
        frame.loc[4, "ad_type"] = blank
        with pytest.raises(ValueError, match="the scenario column 'ad_type' of data "
                                             "has 1 missing or blank value"):
            validate_frame(frame, **COLUMNS)
        with pytest.raises(ValueError, match="missing or blank value"):
            fit_schema(frame, **COLUMNS)
    frame = user_frame().astype({"query": "string"})
    frame.loc[2, "query"] = ""
    with pytest.raises(ValueError, match="query column 'query' of data has 1 "
                                         "missing or blank value"):
        validate_frame(frame, query_column="query", **COLUMNS)


def test_a_table_of_only_unseen_scenarios_is_warned_of():
    schema = fit_schema(user_frame(), **COLUMNS)
    codes = user_frame().assign(ad_type=7)  # codes where training had names
    with pytest.warns(UserWarning, match=r"none of the scenarios of data was seen "
                      r"in training \(got \['7'\]; trained: .*every row gets "
                      "task ID 0"):
        to_tensors(codes, schema)
    with warnings.catch_warnings():  # some unseen among seen ones: as designed
        warnings.simplefilter("error")
        to_tensors(user_frame().assign(ad_type=["Hotel", "Boats"] * 6), schema)


def test_scenario_codes_read_from_csv_stay_text(tmp_path):
    frame = user_frame(n=18).assign(
        ad_type=np.repeat(["01", "1", "1.0", "2", "NaNa", "x"], 3))
    frame.to_csv(tmp_path / "codes.csv", index=False)
    data = load_user_data(tmp_path / "codes.csv", scenario_column="ad_type",
                          label_column="y", feature_columns=["f_sim"])
    assert sorted(data.schema.task_ids) == ["01", "1", "1.0", "2", "NaNa", "x"]
    again = load_user_data(tmp_path / "codes.csv", scenario_column="ad_type",
                           schema=data.schema)
    assert (again.tensors.task_id.numpy() > 0).all()


def test_query_ids_read_from_csv_stay_text(tmp_path):
    frame = user_frame().assign(query=["000", "0", "00", "0.0"] * 3,
                                ad_type="Hotel")
    frame.to_csv(tmp_path / "queries.csv", index=False)
    data = load_user_data(tmp_path / "queries.csv", scenario_column="ad_type",
                          label_column="y", feature_columns=["f_sim"],
                          query_column="query")
    assert data.frame["query"].tolist()[:4] == ["000", "0", "00", "0.0"]
    assert len(set(data.tensors.query_id.tolist())) == 4  # not one query
    again = load_user_data(tmp_path / "queries.csv", scenario_column="ad_type",
                           schema=data.schema)
    assert again.tensors.query_id.tolist() == data.tensors.query_id.tolist()


def test_features_far_outside_training_are_warned_of():
    schema = fit_schema(user_frame(), **COLUMNS)
    far = user_frame().assign(f_count=1e9)
    with pytest.warns(UserWarning, match="12 row\\(s\\) with a feature more than "
                      "1,000 training standard deviations"):
        to_tensors(far, schema)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_tensors(user_frame(seed=3), schema)


def test_a_schema_that_is_not_one_is_named():
    for call in (lambda: to_tensors(user_frame(), {"feature_columns": []}),
                 lambda: load_user_data(user_frame(), scenario_column="ad_type",
                                        schema={"a": 1})):
        with pytest.raises(TypeError, match="schema must be a DataSchema"):
            call()


def test_a_csv_separated_otherwise_is_named(tmp_path):
    user_frame().to_csv(tmp_path / "semi.csv", index=False, sep=";")
    with pytest.raises(ValueError, match="its fields look separated by ';'"):
        read_table(tmp_path / "semi.csv", name="--data")


def test_a_pipe_is_not_taken_for_an_empty_file(tmp_path):
    import os
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(ValueError, match="is not a regular file"):
        read_table(tmp_path / "pipe.csv", name="--data")


def test_dates_and_durations_are_left_out_of_the_default_features():
    frame = user_frame().assign(
        when=pd.Timestamp("2024-01-01") + pd.to_timedelta(range(12), unit="h"),
        took=pd.to_timedelta(range(12), unit="s"))
    assert select_feature_columns(frame, scenario_column="ad_type",
                                  label_columns="y") == ["f_sim", "f_count", "f_flag"]


def test_a_written_index_and_the_generators_truth_are_warned_of():
    frame = user_frame().assign(relevance_prob=0.5)
    frame.insert(0, "Unnamed: 0", range(12))
    with pytest.warns(UserWarning) as record:
        load_user_data(frame, scenario_column="ad_type", label_column="y")
    text = " | ".join(str(w.message) for w in record)
    assert "['relevance_prob'] hold the synthetic generator's true relevance" in text
    assert "['Unnamed: 0'] look like IDs" in text


def test_unseen_names_that_nearly_match_a_trained_one_are_warned_of():
    schema = fit_schema(user_frame(), **COLUMNS)
    new = user_frame().assign(ad_type=["Hotel ", "shoes", "Cars"] * 4)
    with pytest.warns(UserWarning, match=r"differ from a trained one only in case "
                      r"or surrounding spaces: 'Hotel ' \(trained: 'Hotel'\); "
                      r"'shoes' \(trained: 'Shoes'\)"):
        to_tensors(new, schema)


def test_the_scenario_column_must_be_named():
    with pytest.raises(TypeError, match="scenario_column must name"):
        validate_frame(user_frame(), scenario_column=None,
                       feature_columns=["f_sim"])
    with pytest.raises(TypeError, match="scenario_column must name"):
        load_user_data(user_frame(), scenario_column=None, label_column="y")
