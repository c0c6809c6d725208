"""A Sphinx extension that puts author-year citations in round brackets.

sphinxcontrib-bibtex's ``author_year`` style writes "[Guo et al., 2024]". This
module registers ``author_year_round``, the same style with "(Guo et al.,
2024)", several works separated by semicolons, and "Guo et al. (2024)" for
textual citations. book/_config.yml selects it with ``bibtex_reference_style``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import (
    AuthorYearReferenceStyle,
)


def _round() -> BracketStyle:
    """Round brackets, works separated by semicolons."""
    return BracketStyle(left="(", right=")", sep="; ")


@dataclasses.dataclass
class RoundAuthorYearStyle(AuthorYearReferenceStyle):
    """Author-year references in round brackets."""

    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_year: BracketStyle = dataclasses.field(default_factory=_round)


def setup(app) -> dict[str, Any]:
    register_plugin(
        "sphinxcontrib.bibtex.style.referencing",
        "author_year_round",
        RoundAuthorYearStyle,
    )
    return {"parallel_read_safe": True, "parallel_write_safe": True}
