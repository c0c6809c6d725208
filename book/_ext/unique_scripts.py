"""A Sphinx extension that writes each script of a page once.

With Sphinx 7.4, the inline scripts that sphinx-thebe and sphinx-togglebutton
add while the sources are read appear twice on every page. The second copy of
sphinx-thebe's ``const THEBE_JS_URL`` is a script error in the browser, which
the book's browser check (tools/check_book.py) rightly fails on. This extension
keeps the first copy of every script, by file name, attributes and body.
"""

from __future__ import annotations

from typing import Any

# Run after every other handler of the event, so that late additions are seen.
_LAST = 900


def _script_key(script: Any) -> tuple:
    """Identify a script by its file name and its attributes (body included)."""
    # An inline script is registered once with the file name None and once with
    # "", which Sphinx takes for two different scripts.
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {})
    return (filename, tuple(sorted(attributes.items())))


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep the first copy of each script in the page's context."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", drop_repeated_scripts, priority=_LAST)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
