"""Invariants of the synthetic data generator."""

import numpy as np
import pandas as pd
import pytest

import data_synth as ds
from data_synth.__main__ import main as cli_main

SMALL = {"teacher_train": 900, "llm_train": 500, "calibration": 300, "test": 1200}


def small(**kw):
    return ds.DataConfig(sizes=dict(SMALL), **kw)


@pytest.mark.parametrize("split", ["teacher_train", "llm_train", "calibration"])
def test_unseen_scenarios_absent_from_training_and_calibration(tiny_data, split):
    present = set(tiny_data[split]["scenario"].astype(str))
    assert present == set(ds.SEEN)
    assert not present & set(ds.UNSEEN)


def test_test_split_holds_all_eleven_scenarios(tiny_data):
    assert set(tiny_data["test"]["scenario"].astype(str)) == set(ds.SCENARIO_NAMES)


def test_task_ids_one_to_nine_for_seen_and_zero_for_unseen(tiny_data):
    test = tiny_data["test"]
    ids = test.groupby("scenario", observed=True)["task_id"].unique()
    for name in ds.SEEN:
        assert list(ids[name]) == [ds.task_id_of(name)]
    for name in ds.UNSEEN:
        assert list(ids[name]) == [0]
    assert sorted(ds.task_id_of(n) for n in ds.SEEN) == list(range(1, 10))


def test_same_seed_gives_identical_data_and_fingerprint():
    a, b = ds.generate(small(), seed=7), ds.generate(small(), seed=7)
    assert a.fingerprint == b.fingerprint
    for split in ds.SPLITS:
        pd.testing.assert_frame_equal(a[split], b[split])


def test_other_seed_gives_other_data():
    a, b = ds.generate(small(), seed=7), ds.generate(small(), seed=8)
    assert a.fingerprint != b.fingerprint


def test_split_sizes_match_config(tiny_data):
    for split, n in tiny_data.config.sizes.items():
        assert len(tiny_data[split]) == n


def test_labels_have_the_right_kind(tiny_data):
    teacher = tiny_data["teacher_train"]["teacher_prob"]
    assert teacher.between(0, 1).all() and teacher.nunique() > 100
    for split in ("llm_train", "calibration"):
        assert set(tiny_data[split]["llm_label"].unique()) <= {0, 1}
    assert set(tiny_data["test"]["label"].unique()) == {0, 1}


def test_features_are_finite_and_missing_extractors_report_zero(tiny_data):
    test = tiny_data["test"]
    x = test[list(ds.FEATURE_NAMES)].to_numpy()
    assert np.isfinite(x).all()
    card = test[test["scenario"] == "Card"]
    assert (card["sim_location"] == 0).all()
    assert (test[test["scenario"] == "Hotel"]["sim_location"] > 0).all()


def test_candidates_of_a_query_share_scenario_and_query_level_features(tiny_data):
    test = tiny_data["test"]
    per_query = test.groupby("query_id")
    assert (per_query["scenario"].nunique() == 1).all()
    assert (per_query["cnt_query_frequency"].nunique() == 1).all()
    assert per_query.size().max() <= 16


def test_positive_rates_near_the_story(tiny_data):
    big = ds.generate(ds.DataConfig(sizes={**SMALL, "test": 60_000}), seed=1)
    rate = big["test"].groupby("scenario", observed=True)["label"].mean()
    for s in ds.SCENARIOS:
        assert abs(rate[s.name] - s.positive_rate) < 0.05, s.name


def test_target_correlation_is_realised_exactly_without_silent_features():
    corr = ds.target_correlation(0.5, 0.6)
    from data_synth.generator import correlated_unit_vectors
    w = correlated_unit_vectors(corr, 23, np.random.default_rng(0))
    np.testing.assert_allclose(w @ w.T, corr, atol=1e-10)


@pytest.mark.parametrize("kwargs, match", [
    ({"relatedness": 1.5}, "relatedness must be in"),
    ({"relatedness": -0.1}, "relatedness must be in"),
    ({"sizes": {**SMALL, "test": 0}}, r"sizes\['test'\] must be a positive"),
    ({"sizes": {"test": 5}}, "sizes must give rows"),
])
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ds.DataConfig(**{"sizes": dict(SMALL), **kwargs})


def test_bad_profile_and_scenario_are_refused():
    with pytest.raises(ValueError, match="profile must be one of"):
        ds.config_for_profile("huge")
    with pytest.raises(ValueError, match="scenario must be one of"):
        ds.scenario("Casino")
    with pytest.raises(ValueError, match="seed must be a non-negative"):
        ds.generate(small(), seed=-1)


def test_save_load_round_trip_and_cli(tmp_path, capsys):
    data = ds.generate(small(), seed=2)
    folder = ds.save(data, tmp_path / "d")
    back = ds.load(folder)
    assert back.fingerprint == data.fingerprint
    assert ds.fingerprint_frames(back.splits) == data.fingerprint
    assert cli_main(["--profile", "smoke", "--seed", "0",
                     "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "test.parquet").exists()
    with pytest.raises(SystemExit) as err:
        cli_main(["--profile", "nope", "--out", str(tmp_path / "x")])
    assert err.value.code == 2
    assert "profile must be one of" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
