"""The environment files agree, and the profile switch works."""

import re
from pathlib import Path

import pytest

from autotask_lib import get_profile, paper_table

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    return {
        m.group(1).lower(): m.group(2)
        for m in (re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
                  for line in lines)
        if m
    }


def test_environment_yml_pins_the_same_versions_as_the_lock():
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert lock, "requirements.lock pins nothing"
    assert env == lock


def test_lock_pins_the_cpu_torch_and_jupyter_book_1():
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    assert lock["torch"] == "2.13.0"
    assert lock["jupyter-book"] == "1.0.4.post1"
    for name in ("nbmake", "pytest", "jupyterlab", "scikit-learn", "safetensors"):
        assert name in lock, name


def test_profile_comes_from_the_environment(monkeypatch):
    assert get_profile().name == "default"
    monkeypatch.setenv("AUTOTASK_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    monkeypatch.setenv("AUTOTASK_PROFILE", "fast")
    with pytest.raises(ValueError, match="profile must be one of .* got 'fast'"):
        get_profile()


def test_profiles_follow_the_paper_where_they_claim_to():
    paper = get_profile("paper")
    assert (paper.train.epochs_teacher, paper.train.epochs_llm) == (30, 45)
    assert paper.train.lr == 6e-4
    assert get_profile("default").data.sizes["test"] == 258_000
    assert len(get_profile("default").seeds) >= 3


def test_paper_tables_hold_all_three_tables():
    t1 = paper_table(1)
    assert len(t1) == 2 * 2 * 11
    assert t1.query("task == 'Clinics' and metric == 'roc_auc' "
                    "and model == 'proposed'")["value_percent"].item() == 75.127
    assert len(paper_table(2)) == 2 * 2 * 9
    assert len(paper_table(3)) == 3 * 2 * 5
    with pytest.raises(ValueError, match="number must be 1, 2 or 3"):
        paper_table(4)


def test_every_notebook_is_in_the_book_and_has_a_parameters_cell():
    import json
    toc = (ROOT / "book" / "_toc.yml").read_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{nb.stem}" in toc, nb.name
        cells = json.loads(nb.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert "parameters" in code[0].get("metadata", {}).get("tags", []), nb.name
        assert not any(c.get("outputs") for c in code), f"{nb.name} has outputs"


@pytest.mark.parametrize("bad", [1.0, True, "1"])
def test_paper_table_refuses_non_integer_numbers(bad):
    with pytest.raises(ValueError, match="number must be 1, 2 or 3"):
        paper_table(bad)
