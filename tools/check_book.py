"""Check a built Jupyter Book the way a reader sees it: in headless Chromium.

The HTML build is served from a local server on 127.0.0.1 and every page is
opened in Debian's Chromium, driven by Playwright. A page fails on

* a console error or an uncaught script error;
* a request that fails or answers with an HTTP error;
* a request to anything but the local server (the book must render offline);
* an image that does not load or cannot be decoded;
* a formula that MathJax did not typeset, or typeset as an error.

Screenshots of chosen pages are saved at the size of a 1280 x 900 window, plus
a full-page one of each.

Usage::

    python tools/check_book.py BUILD/html --screenshots DIR

It exits with 0 when every page is clean, 1 when a page has a problem and 2
when the check cannot run (no build, no browser, no Playwright).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # check_book() says what is missing when it is called
    sync_playwright = None
    PlaywrightError = RuntimeError

logger = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
# Chromium's own background traffic is switched off: the check allows no
# request but to the local server, and the machine may have no network.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1280, "height": 900}
SCREENSHOT_PAGES = ("intro.html", "notebooks/05_table1.html")
# Folders of a Sphinx build that hold assets, not pages.
ASSET_DIRS = ("_static", "_sources", "_images", "_downloads", ".doctrees")

# Every image on the page is loaded eagerly and decoded; returns the broken ones.
_BROKEN_IMAGES_JS = """
async () => {
  const broken = [];
  for (const img of Array.from(document.images)) {
    img.loading = "eager";
    try {
      await img.decode();
    } catch (err) {
      broken.push(img.getAttribute("src") || "(no src)");
    }
  }
  return broken;
}
"""
# Waits for MathJax's first typesetting pass when the page loads MathJax.
_MATHJAX_DONE_JS = """
async () => {
  const mj = window.MathJax;
  if (!(mj && mj.startup && mj.startup.promise)) return false;
  await mj.startup.promise;
  return true;
}
"""
# Counts Sphinx math elements left as raw TeX, and MathJax's error marks.
_MATH_STATE_JS = """
() => {
  const math = Array.from(document.querySelectorAll(".math"));
  const raw = math.filter((el) => !el.querySelector("mjx-container"));
  return {
    total: math.length,
    raw: raw.map((el) => el.textContent.trim().slice(0, 60)),
    errors: document.querySelectorAll("mjx-merror").length,
  };
}
"""


@dataclass(frozen=True)
class Problem:
    """One thing a reader would see go wrong on one page."""

    page: str  # the page's path in the build, e.g. "notebooks/01_data.html"
    kind: str  # "console", "script", "request", "outside request", "image", "math"
    detail: str  # what failed: the message, the URL or the image's src

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


def find_pages(html_dir: str | Path) -> list[str]:
    """List every page of an HTML build.

    Parameters
    ----------
    html_dir : str or Path
        The folder of the HTML build (the one holding ``index.html``).

    Returns
    -------
    list of str
        The paths of all ``.html`` files relative to `html_dir`, with ``/``
        separators, sorted, leaving out the asset folders of a Sphinx build.

    Raises
    ------
    ValueError
        If `html_dir` is not a folder or holds no page.
    """
    root = Path(html_dir)
    if not root.is_dir():
        raise ValueError(f"html_dir must be a folder of HTML pages, got '{root}'")
    pages = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*.html")
        if not set(path.relative_to(root).parts[:-1]) & set(ASSET_DIRS)
    )
    if not pages:
        raise ValueError(f"html_dir must hold at least one .html page, got '{root}'")
    return pages


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging every request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("server: " + format, *args)


@contextlib.contextmanager
def serve(html_dir: str | Path) -> Iterator[str]:
    """Serve a folder over HTTP on 127.0.0.1, on a free port, while in use.

    Parameters
    ----------
    html_dir : str or Path
        The folder to serve.

    Yields
    ------
    str
        The server's base URL, ending in ``/``.
    """
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def screenshot_name(page: str) -> str:
    """Name a page's screenshot after its file: ``notebooks/x.html`` -> ``x``."""
    return Path(page).stem


def check_book(
    html_dir: str | Path,
    screenshot_dir: str | Path | None = None,
    screenshot_pages: Sequence[str] = SCREENSHOT_PAGES,
    chromium: str | Path = CHROMIUM,
    timeout_s: float = 60.0,
) -> list[Problem]:
    """Open every page of an HTML build in headless Chromium and list problems.

    Parameters
    ----------
    html_dir : str or Path
        The folder of the HTML build.
    screenshot_dir : str or Path, optional
        Where to save screenshots of `screenshot_pages`: ``NAME.png`` at the
        window size (1280 x 900) and ``NAME-full.png`` of the whole page.
        None saves none.
    screenshot_pages : sequence of str
        Pages to photograph, as paths relative to `html_dir`. A page that is
        not in the build is a problem when `screenshot_dir` is given.
    chromium : str or Path
        The Chromium executable.
    timeout_s : float
        The longest wait, in seconds, for a page to load and settle.

    Returns
    -------
    list of Problem
        Every problem found, in page order; empty when the book is clean.

    Raises
    ------
    ValueError
        If `html_dir` holds no page, `chromium` is not an executable file or
        `timeout_s` is not positive.
    ImportError
        If Playwright is not installed.
    """
    pages = find_pages(html_dir)
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        raise ValueError(
            f"chromium must be the path of a Chromium executable, got '{chromium}'"
            " (Debian: apt-get install chromium)"
        )
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    if sync_playwright is None:
        raise ImportError(
            "the browser check needs Playwright: pip install -r requirements.lock"
        )

    shots = list(screenshot_pages) if screenshot_dir is not None else []
    problems = [
        Problem(page, "missing page", "asked for a screenshot, not in the build")
        for page in shots
        if page not in pages
    ]
    if screenshot_dir is not None:
        Path(screenshot_dir).mkdir(parents=True, exist_ok=True)

    with serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(timeout_s * 1000)
            for page in pages:
                shot = Path(screenshot_dir) if page in shots else None
                problems += _check_page(context, base, page, shot, timeout_s)
                logger.info("checked %s", page)
        finally:
            browser.close()
    return problems


def _check_page(
    context, base: str, page: str, shot_dir: Path | None, timeout_s: float
) -> list[Problem]:
    """Load one page in a new tab, let it settle, and list its problems."""
    found: list[Problem] = []
    outside: set[str] = set()  # URLs blocked for leaving the local server
    inflight: set = set()  # requests not finished yet, to know when all is quiet

    def add(kind: str, detail: str) -> None:
        found.append(Problem(page, kind, detail))

    # Requests to anything but the local server are blocked before they leave.
    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(base):
            request_route.continue_()
        else:
            outside.add(url)
            add("outside request", url)
            request_route.abort("blockedbyclient")

    def on_console(message) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            add("console", f"{message.text} ({where})" if where else message.text)

    def on_failed(request) -> None:
        inflight.discard(request)
        if request.url not in outside:
            add("request", f"{request.url}: {request.failure}")

    def on_response(response) -> None:
        if response.status >= 400:
            add("request", f"{response.url}: HTTP {response.status}")

    tab = context.new_page()
    tab.route("**/*", route)
    tab.on("console", on_console)
    tab.on("pageerror", lambda err: add("script", str(err)))
    tab.on("request", lambda request: inflight.add(request))
    tab.on("requestfinished", lambda request: inflight.discard(request))
    tab.on("requestfailed", on_failed)
    tab.on("response", on_response)
    tab.on("crash", lambda _: add("script", "the page crashed"))
    try:
        # 1. Load the page, and the page it redirects to, if any (index.html).
        tab.goto(base + page, wait_until="load")
        _follow_redirect(tab, base + page)

        # 2. Let MathJax finish, then look for formulas it left as raw TeX.
        tab.evaluate(_MATHJAX_DONE_JS)
        math = tab.evaluate(_MATH_STATE_JS)
        for tex in math["raw"]:
            add("math", f"not typeset: {tex}")
        if math["errors"]:
            add("math", f"{math['errors']} formula(s) typeset as an error")

        # 3. Every image must load and decode; then wait until no request has
        # been in flight for a moment (fonts, late scripts).
        for src in tab.evaluate(_BROKEN_IMAGES_JS):
            add("image", f"does not load or decode: {src}")
        _settle(tab, inflight, deadline_s=timeout_s)

        # 4. Screenshots, once fonts are in.
        if shot_dir is not None:
            tab.evaluate("() => document.fonts.ready.then(() => true)")
            name = screenshot_name(page)
            tab.screenshot(path=str(shot_dir / f"{name}.png"))
            tab.screenshot(path=str(shot_dir / f"{name}-full.png"), full_page=True)
    except (PlaywrightError, TimeoutError) as err:  # report it, go on
        add("script", f"the check could not finish: {type(err).__name__}: {err}")
    finally:
        tab.close()
    return found


def _follow_redirect(tab, url: str) -> None:
    """Wait for the page a meta refresh leads to, once it has been loaded."""
    refresh = "() => !!document.querySelector('meta[http-equiv=refresh i]')"
    try:
        redirects = tab.evaluate(refresh)
    except PlaywrightError:  # the redirect began while asking: the page is gone
        redirects = True
    if redirects:
        tab.wait_for_url(lambda now: now != url, wait_until="load")


def _settle(tab, inflight: set, deadline_s: float, quiet_s: float = 0.2) -> None:
    """Wait until no request has been in flight for `quiet_s` seconds."""
    quiet = waited = 0.0
    step_s = 0.05
    while quiet < quiet_s:
        if waited > deadline_s:
            raise TimeoutError(f"requests still in flight after {deadline_s} s")
        # Waiting in the browser also delivers its events to the handlers.
        tab.wait_for_timeout(step_s * 1000)
        waited += step_s
        quiet = quiet + step_s if not inflight else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", help="the HTML build, e.g. book/_build/html")
    parser.add_argument(
        "--screenshots", metavar="DIR", help="save screenshots of chosen pages here"
    )
    parser.add_argument(
        "--page",
        action="append",
        dest="pages",
        metavar="PAGE",
        help="a page to photograph, relative to html_dir (repeatable; "
        f"default: {', '.join(SCREENSHOT_PAGES)})",
    )
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium binary")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per page")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    try:
        pages = find_pages(args.html_dir)
        problems = check_book(
            args.html_dir,
            screenshot_dir=args.screenshots,
            screenshot_pages=args.pages or SCREENSHOT_PAGES,
            chromium=args.chromium,
            timeout_s=args.timeout,
        )
    except (ValueError, ImportError) as err:
        print(f"check_book: cannot run: {err}", file=sys.stderr)
        return 2

    for problem in problems:
        print(problem)
    bad = len({problem.page for problem in problems})
    print(f"check_book: {len(pages)} pages in Chromium, {bad} with problems")
    if args.screenshots:
        print(f"check_book: screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
