"""The paper's Tables 1 to 3 as data (values in percent, as printed)."""

from __future__ import annotations

from importlib import resources

import pandas as pd


def paper_tables() -> pd.DataFrame:
    """All three tables, tidy: ``table, metric, model, task, value_percent``."""
    with resources.files(__package__).joinpath("paper_tables.csv").open() as f:
        return pd.read_csv(f)


def paper_table(number: int) -> pd.DataFrame:
    """One table of the paper (1, 2 or 3), tidy, with values in percent.

    Raises
    ------
    ValueError
        If ``number`` is not 1, 2 or 3.
    """
    if isinstance(number, bool) or number not in (1, 2, 3) or not isinstance(
        number, int
    ):
        raise ValueError(f"number must be 1, 2 or 3; got {number!r}")
    tables = paper_tables()
    return tables[tables["table"] == f"table{number}"].reset_index(drop=True)
