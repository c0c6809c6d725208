"""The browser check of the built book, and the book's offline and citation set-up.

The check runs on a small site written here, with one page per kind of problem,
so each test shows that the check fails where a reader would see something go
wrong, and passes where nothing does.
"""

import importlib.util
import json
import os
import re
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


check_book = _load("check_book", ROOT / "tools" / "check_book.py")

# Without a browser the browser tests are skipped on a developer's machine; in CI
# (CI is set) they run and fail, since `make test` installs Chromium first.
_HAVE_BROWSER = Path(check_book.CHROMIUM).is_file() and bool(
    importlib.util.find_spec("playwright")
)
needs_browser = pytest.mark.skipif(
    not _HAVE_BROWSER and not os.environ.get("CI"),
    reason="needs Debian's chromium and Playwright (make test installs them)",
)

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>
"""
# A page on the same host but another port is outside the book: the check
# blocks the request before it is sent.
OUTSIDE_URL = "http://127.0.0.1:9/outside.js"
BAD_PAGES = {
    "broken_image.html": '<img src="missing.png" alt="missing">',
    "corrupt_image.html": '<img src="corrupt.png" alt="corrupt">',
    "console_error.html": '<script>console.error("something broke")</script>',
    "script_error.html": "<script>notDefinedAnywhere();</script>",
    "outside_request.html": f'<script src="{OUTSIDE_URL}"></script>',
    "raw_math.html": '<p><span class="math">\\(x^2\\)</span></p>',
}


def _png(path):
    # A valid 1 x 1 PNG, written by hand so the test needs no image library.
    import zlib

    def chunk(kind, data):
        body = kind + data
        return (
            struct.pack(">I", len(data))
            + body
            + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x2f\x6d\xb5")
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def _png_size(path):
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def _write_site(root, bad=True):
    root.mkdir(parents=True, exist_ok=True)
    _png(root / "ok.png")
    (root / "ok.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10">'
        '<rect width="20" height="10" fill="#2f6db5"/></svg>'
    )
    (root / "corrupt.png").write_bytes(b"this is not an image")
    (root / "index.html").write_text(
        PAGE.format(
            title="Clean", body='<img src="ok.png" alt="ok"><img src="ok.svg" alt="ok">'
        )
    )
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "page.html").write_text(
        PAGE.format(title="Nested", body='<img src="../ok.png" alt="ok"><p>fine</p>')
    )
    # Jupyter Book's index.html sends the reader on to the first page.
    (root / "redirect.html").write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Refresh" '
        'content="0; url=index.html" /></head></html>'
    )
    # Asset folders of a Sphinx build are not pages, even when they hold HTML.
    (root / "_static").mkdir(exist_ok=True)
    (root / "_static" / "widget.html").write_text(
        PAGE.format(title="Asset", body='<img src="nothing.png" alt="">')
    )
    if bad:
        for name, body in BAD_PAGES.items():
            (root / name).write_text(PAGE.format(title=name, body=body))
    return root


@pytest.fixture(scope="module")
def site_run(tmp_path_factory):
    """Run the check once over a site with one bad page per kind of problem."""
    root = _write_site(tmp_path_factory.mktemp("site") / "html")
    shots = root.parent / "shots"
    problems = check_book.check_book(
        root,
        screenshot_dir=shots,
        screenshot_pages=["index.html", "sub/page.html", "absent.html"],
        timeout_s=30,
    )
    by_page = {}
    for problem in problems:
        by_page.setdefault(problem.page, []).append(problem)
    return by_page, shots


# ---------------------------------------------------------------------------
# Pages and arguments (no browser needed)
# ---------------------------------------------------------------------------


def test_find_pages_lists_every_page_but_asset_folders(tmp_path):
    root = _write_site(tmp_path / "html")
    pages = check_book.find_pages(root)
    assert pages == sorted(["index.html", "redirect.html", "sub/page.html", *BAD_PAGES])
    assert "_static/widget.html" not in pages


def test_find_pages_needs_a_folder_with_pages(tmp_path):
    with pytest.raises(ValueError, match="html_dir must be a folder .* got '.*nope'"):
        check_book.find_pages(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="must hold at least one .html page"):
        check_book.find_pages(tmp_path / "empty")


def test_check_book_needs_chromium_and_a_positive_timeout(tmp_path):
    root = _write_site(tmp_path / "html", bad=False)
    with pytest.raises(
        ValueError, match="chromium must be the path .* got '/no/chromium'"
    ):
        check_book.check_book(root, chromium="/no/chromium")
    with pytest.raises(ValueError, match="timeout_s must be positive, got 0"):
        check_book.check_book(root, timeout_s=0)


def test_screenshots_are_named_after_the_page():
    assert check_book.screenshot_name("notebooks/05_table1.html") == "05_table1"
    assert check_book.screenshot_name("intro.html") == "intro"


def test_cli_says_it_cannot_run_without_a_build(tmp_path, capsys):
    assert check_book.main([str(tmp_path / "no-build")]) == 2
    assert "cannot run: html_dir must be a folder" in capsys.readouterr().err


def test_cli_exit_status_follows_the_problems(tmp_path, monkeypatch, capsys):
    root = _write_site(tmp_path / "html", bad=False)
    found = []
    monkeypatch.setattr(check_book, "check_book", lambda *args, **kwargs: found)
    assert check_book.main([str(root)]) == 0
    assert "3 pages in Chromium, 0 with problems" in capsys.readouterr().out

    found.append(check_book.Problem("index.html", "image", "gone.png"))
    assert check_book.main([str(root)]) == 1
    out = capsys.readouterr().out
    assert "index.html: image: gone.png" in out
    assert "3 pages in Chromium, 1 with problems" in out


# ---------------------------------------------------------------------------
# The check in Chromium
# ---------------------------------------------------------------------------


@needs_browser
def test_clean_pages_pass(site_run):
    by_page, _ = site_run
    for page in ("index.html", "redirect.html", "sub/page.html"):
        assert page not in by_page, by_page.get(page)


@needs_browser
def test_a_page_with_a_broken_image_fails(site_run):
    by_page, _ = site_run
    kinds = {p.kind for p in by_page["broken_image.html"]}
    assert "image" in kinds and "request" in kinds
    assert any(
        "missing.png" in p.detail and "HTTP 404" in p.detail
        for p in by_page["broken_image.html"]
    )


@needs_browser
def test_an_image_that_loads_but_does_not_decode_fails(site_run):
    by_page, _ = site_run
    details = [p.detail for p in by_page["corrupt_image.html"] if p.kind == "image"]
    assert details == ["does not load or decode: corrupt.png"]


@needs_browser
@pytest.mark.parametrize(
    "page, kind, text",
    [
        ("console_error.html", "console", "something broke"),
        ("script_error.html", "script", "notDefinedAnywhere is not defined"),
        ("outside_request.html", "outside request", OUTSIDE_URL),
        ("raw_math.html", "math", "not typeset: \\(x^2\\)"),
    ],
)
def test_each_kind_of_problem_fails_its_page(site_run, page, kind, text):
    by_page, _ = site_run
    assert any(p.kind == kind and text in p.detail for p in by_page[page]), by_page.get(
        page
    )


@needs_browser
def test_screenshots_are_taken_at_the_window_size(site_run):
    by_page, shots = site_run
    assert _png_size(shots / "index.png") == (1280, 900)
    assert _png_size(shots / "page.png") == (1280, 900)
    assert (shots / "index-full.png").is_file()
    assert [p.kind for p in by_page["absent.html"]] == ["missing page"]


# ---------------------------------------------------------------------------
# The book's own set-up: offline math, one copy of each script, citations
# ---------------------------------------------------------------------------


def test_book_serves_mathjax_from_the_make_fetched_copy():
    import yaml

    config = yaml.safe_load((BOOK / "_config.yml").read_text())["sphinx"]["config"]
    assert "://" not in config["mathjax_path"]
    assert config["html_static_path"] == ["_vendor"]
    makefile = (ROOT / "Makefile").read_text()
    folder = re.search(r"^MATHJAX_DIR := book/(\S+)$", makefile, re.MULTILINE).group(1)
    # html_static_path copies _vendor/* into _static/, where mathjax_path points.
    assert folder.split("/", 1) == ["_vendor", config["mathjax_path"].split("/")[0]]
    # A `_static` folder would make Jupyter Book load every MathJax file on
    # every page.
    assert not (BOOK / "_static").exists()


def test_repeated_scripts_are_written_once():
    from sphinx.builders.html._assets import _JavaScript

    unique_scripts = _load("unique_scripts", BOOK / "_ext" / "unique_scripts.py")
    body = 'const THEBE_JS_URL = "x"'
    context = {
        "script_files": [
            _JavaScript("_static/a.js"),
            _JavaScript("", body=body),
            _JavaScript("_static/a.js"),
            _JavaScript(None, body=body),
            _JavaScript("", body="let other = 1"),
        ]
    }
    unique_scripts.drop_repeated_scripts(None, "intro", "page.html", context, None)
    assert [
        (s.filename or "", s.attributes.get("body")) for s in context["script_files"]
    ] == [("_static/a.js", None), ("", body), ("", "let other = 1")]


def test_citations_are_in_round_brackets():
    from sphinxcontrib.bibtex.plugin import find_plugin

    round_citations = _load("round_citations", BOOK / "_ext" / "round_citations.py")
    round_citations.setup(app=None)
    style = find_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_round")
    assert style is round_citations.RoundAuthorYearStyle
    brackets = style().bracket_parenthetical
    assert (brackets.left, brackets.right, brackets.sep) == ("(", ")", "; ")


def _cited_keys():
    sources = [p.read_text() for p in BOOK.glob("*.md")]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        sources += ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    for text in sources:
        for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            yield from (key.strip() for key in keys.split(","))


def test_every_cited_key_is_in_the_bibliography():
    bib = (BOOK / "references.bib").read_text()
    entries = re.findall(r"^@\w+\{([^,\s]+),", bib, re.MULTILINE)
    assert len(entries) == len(set(entries)), "a key is defined twice"
    cited = set(_cited_keys())
    assert "guo2024autotask" in cited
    assert cited <= set(entries), sorted(cited - set(entries))
    assert "- file: references" in (BOOK / "_toc.yml").read_text()
