"""Shared fixtures: a tiny synthetic data set and an isolated artifacts folder."""

import pytest
import torch

import data_synth as ds

TINY = {"teacher_train": 1500, "llm_train": 800, "calibration": 400, "test": 1800}


@pytest.fixture(scope="session")
def tiny_data():
    return ds.generate(ds.DataConfig(sizes=dict(TINY)), seed=3)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # Tests never touch the real artifacts folder or depend on the caller's profile.
    monkeypatch.setenv("AUTOTASK_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("AUTOTASK_PROFILE", raising=False)
    torch.manual_seed(0)
