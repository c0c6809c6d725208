"""The book's own Sphinx extension that reports notebook execution times."""

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

import execution_times as et  # noqa: E402


def _env(**docs):
    return SimpleNamespace(nb_metadata={
        name: {"exec_data": data} for name, data in docs.items()
    } | {"intro": {}})


def test_times_are_listed_slowest_first_with_a_total(tmp_path):
    env = _env(**{"notebooks/01_data": {"runtime": 12.0, "succeeded": True},
                  "notebooks/05_table1": {"runtime": 95.5, "succeeded": True},
                  "notebooks/02_facet1": {"runtime": 3.25, "succeeded": False}})
    rows = et.execution_times(env)
    assert [r[0] for r in rows] == ["notebooks/05_table1", "notebooks/01_data",
                                    "notebooks/02_facet1"]
    table = et.format_table(rows)
    lines = table.splitlines()
    assert lines[1].split() == ["notebooks/05_table1", "95.5"]
    assert lines[3].endswith("FAILED")
    assert lines[-1].split()[-1] == "110.8"
    app = SimpleNamespace(env=env, outdir=str(tmp_path))
    et.report(app, None)
    assert (tmp_path / "execution_times.txt").read_text() == table


def test_a_failed_build_writes_nothing(tmp_path):
    app = SimpleNamespace(env=_env(), outdir=str(tmp_path))
    et.report(app, RuntimeError("a cell failed"))
    assert not (tmp_path / "execution_times.txt").exists()
    assert et.format_table([]).startswith("no notebook was executed")
