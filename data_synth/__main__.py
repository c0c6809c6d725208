"""Command line: ``python -m data_synth --profile default --seed 0 --out DIR``.

Writes the four splits as parquet files, the data card as ``data_card.json`` and
the relevance weights into a new folder ``DIR``. ``--describe NAME`` prints one
scenario's story parameters instead. Bad arguments exit with status 2 and a
message that names the argument and the value received.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from .generator import PROFILE_SIZES, SPLITS, config_for_profile, generate
from .io import TERMINATED_STATUS, Terminated, save, sigterm_as_interrupt
from .scenarios import SCENARIO_NAMES, scenario


def _parse_rows(items: list[str]) -> dict[str, int]:
    """Turn ``["test=5000", ...]`` into ``{"test": 5000}``."""
    sizes = {}
    for item in items:
        split, sep, value = item.partition("=")
        if not sep or split not in SPLITS:
            raise ValueError(
                f"--rows must be SPLIT=N with SPLIT one of {list(SPLITS)}; "
                f"got {item!r}"
            )
        if split in sizes:
            raise ValueError(f"--rows names {split} twice; give each split once")
        try:
            sizes[split] = int(value)
        except ValueError:
            raise ValueError(
                f"--rows {split}= must be a positive integer; got {value!r}"
            ) from None
    return sizes


def _describe(name: str) -> str:
    """One scenario's story parameters as indented JSON."""
    s = scenario(name)
    return json.dumps({**asdict(s), "missing": list(s.missing)}, indent=2)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m data_synth``."""
    parser = argparse.ArgumentParser(
        prog="python -m data_synth",
        description="Generate the synthetic 11-scenario ads relevance data.",
    )
    parser.add_argument("--profile", default=None,
                        help=f"size profile, one of {sorted(PROFILE_SIZES)}; "
                        "default: AUTOTASK_PROFILE when set, else default")
    parser.add_argument("--seed", type=int, default=0, help="random seed (>= 0)")
    parser.add_argument("--relatedness", type=float, default=None,
                        help="scenario relatedness knob in [0, 1] (default 0.5)")
    parser.add_argument("--rows", action="append", default=[],
                        metavar="SPLIT=N",
                        help="rows of one split, overriding the profile; "
                        "repeat for several splits")
    parser.add_argument("--out", help="new folder to write into")
    parser.add_argument("--describe", metavar="SCENARIO",
                        help="print the story parameters of one scenario, one "
                        f"of {list(SCENARIO_NAMES)}, and exit")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar")
    return parser


def _check_out(out: Path) -> None:
    # A new folder or an empty one; a data set there is checked by save().
    if out.is_symlink() and not out.exists():
        raise FileExistsError(
            f"--out {str(out)!r} is a symbolic link (to {os.readlink(out)!r}) "
            "that leads nowhere; give a folder, or remove the link")
    if out.is_dir() and not any(out.iterdir()) and not os.access(out, os.W_OK):
        raise PermissionError(f"--out folder {str(out)!r} is empty but "
                              "write-protected; make it writable or choose "
                              "another folder")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "data_card.json").exists():
        raise FileExistsError(
            f"--out folder {str(out)!r} already holds other files; choose an "
            "empty or new folder"
        )
    # The data set is written beside --out and renamed into place, so the
    # nearest folder that exists on the way to it must take a new entry.
    base = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not base.is_dir():
        raise NotADirectoryError(
            f"--out {str(out)!r} cannot be written: {str(base)!r} is a file, "
            "not a folder")
    if base == out:
        base = out.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=base))
    except OSError as err:
        raise PermissionError(
            f"--out {str(out)!r} cannot be written: "
            f"{err.strerror or err} (in the folder {str(base)!r})") from None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors exit with 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with sigterm_as_interrupt():
            return _run(parser, args)
    except KeyboardInterrupt as stop:
        # Data sets are written atomically: nothing half-written is left.
        status = TERMINATED_STATUS if isinstance(stop, Terminated) else 130
        parser.exit(status, f"\n{parser.prog}: interrupted; --out is either "
                    "complete or untouched\n")


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        if args.describe is not None:
            print(_describe(args.describe))
            return 0
        if args.out is None:
            parser.error("the argument --out is required to generate data")
        overrides = {}
        if args.relatedness is not None:
            overrides["relatedness"] = args.relatedness
        if args.rows:
            overrides["sizes"] = _parse_rows(args.rows)
        profile = args.profile
        if profile is None:  # the one switch of the project, as the book uses it
            profile = os.environ.get("AUTOTASK_PROFILE", "").strip() or "default"
        cfg = config_for_profile(profile, **overrides)
        out = Path(args.out)
        _check_out(out)  # before the work, not after it
        # save() accepts a filled folder only when it holds this same data set.
        held = out.is_dir() and any(out.iterdir())
        data = generate(cfg, args.seed, progress=not args.quiet)
        folder = save(data, args.out)
    except OSError as err:
        # Past the checks above, the only files touched are under --out.
        if err.errno is None:  # this package's own message
            parser.exit(2, f"{parser.prog}: error: {err}\n")
        if err.filename is None:
            reason = err.strerror or " ".join(str(err).split())
            parser.exit(2, f"{parser.prog}: error: --out {args.out!r} could not "
                        f"be written or read: {reason}\n")
        parser.exit(2, f"{parser.prog}: error: --out {args.out!r} could not be "
                    f"written or read: {err.strerror} ({str(err.filename)!r})\n")
    except (ValueError, TypeError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    rows = ", ".join(f"{split} {len(data[split]):,}" for split in SPLITS)
    if held:
        print(f"{folder} already holds this data set (fingerprint "
              f"{data.fingerprint}): {rows} rows; nothing written")
    else:
        print(f"wrote {folder} (fingerprint {data.fingerprint}): {rows} rows")
    return 0


if __name__ == "__main__":
    status = main()
    # The work is over and --out complete: a SIGTERM now would only cut the
    # interpreter's exit short and report a kill that stopped nothing.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(status)
