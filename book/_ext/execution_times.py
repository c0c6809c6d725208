"""A Sphinx extension that reports how long each notebook took to execute.

myst-nb records, for every notebook it executes, the wall time of that run. At
the end of a build this extension prints them as a table, slowest first, and
writes the same table to ``execution_times.txt`` beside the built pages, so the
cost of every chapter is visible after ``make book``.
"""

from __future__ import annotations

from pathlib import Path


def execution_times(env) -> list[tuple[str, float, bool]]:
    """``(docname, seconds, succeeded)`` of every notebook executed in ``env``."""
    rows = []
    for docname, data in sorted(getattr(env, "nb_metadata", {}).items()):
        exec_data = data.get("exec_data") if isinstance(data, dict) else None
        if exec_data and exec_data.get("runtime") is not None:
            rows.append((docname, float(exec_data["runtime"]),
                         bool(exec_data.get("succeeded"))))
    return sorted(rows, key=lambda row: -row[1])


def format_table(rows: list[tuple[str, float, bool]]) -> str:
    """The rows as aligned text, with a total line."""
    if not rows:
        return "no notebook was executed in this build\n"
    width = max(len("all notebooks"), *(len(name) for name, _, _ in rows))
    lines = [f"{'notebook':<{width}}  {'seconds':>8}"]
    for name, seconds, ok in rows:
        lines.append(f"{name:<{width}}  {seconds:8.1f}" + ("" if ok else "  FAILED"))
    total = sum(seconds for _, seconds, _ in rows)
    lines.append(f"{'all notebooks':<{width}}  {total:8.1f}")
    return "\n".join(lines) + "\n"


def report(app, exception) -> None:
    """Print the table and write it beside the pages (successful builds only)."""
    if exception is not None:
        return
    table = format_table(execution_times(app.env))
    print("\nNotebook execution times (wall clock):\n" + table, flush=True)
    Path(app.outdir, "execution_times.txt").write_text(table)


def setup(app):
    app.connect("build-finished", report)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
