"""Time and peak memory of generating a profile's synthetic data.

Usage::

    .venv/bin/python benchmarks/bench_data.py [--profile default] [--seed 0]
                                              [--repeat 1] [--no-save]

Each repeat runs in a fresh Python process, so imports, caches and memory of
earlier work do not flatter the numbers. The child process times
``data_synth.generate`` and then ``data_synth.save`` into a temporary folder
(what ``python -m data_synth`` does), and reports its peak resident memory
(``ru_maxrss``, which includes the Python interpreter and the imported
libraries). The budget is 60 s and 2 GiB for the whole run; the script exits
with status 1 when a repeat goes over it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

BUDGET_SECONDS = 60.0
BUDGET_BYTES = 2 * 1024**3


def _peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def child(profile: str, seed: int, save: bool) -> dict:
    """Generate (and save) one data set; return what was measured."""
    start = time.perf_counter()
    import data_synth as ds

    cfg = ds.config_for_profile(profile)
    imported = time.perf_counter()
    rss_after_import = _peak_rss_bytes()

    data = ds.generate(cfg, seed)
    generated = time.perf_counter()

    saved = generated
    if save:
        with tempfile.TemporaryDirectory() as tmp:
            ds.save(data, os.path.join(tmp, "data"))
            saved = time.perf_counter()
    return {
        "profile": profile,
        "seed": seed,
        "rows": {split: len(frame) for split, frame in data.splits.items()},
        "fingerprint": data.fingerprint,
        "import_seconds": imported - start,
        "generate_seconds": generated - imported,
        "save_seconds": saved - generated,
        "total_seconds": saved - start,
        "rss_after_import_bytes": rss_after_import,
        "peak_rss_bytes": _peak_rss_bytes(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1,
                        help="fresh processes to run, one after another")
    parser.add_argument("--no-save", action="store_true",
                        help="time generate() only, without writing parquet")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.profile, args.seed, not args.no_save)))
        return 0

    print(f"data_synth benchmark: profile {args.profile}, seed {args.seed}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    cmd = [sys.executable, os.path.abspath(__file__), "--child",
           "--profile", args.profile, "--seed", str(args.seed)]
    if args.no_save:
        cmd.append("--no-save")
    over = False
    for k in range(args.repeat):
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            return out.returncode
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows = sum(r["rows"].values())
        peak_gib = r["peak_rss_bytes"] / 1024**3
        print(f"run {k + 1}: {rows:,} rows, fingerprint {r['fingerprint']}")
        print(f"  time:   {r['total_seconds']:.1f} s in all (import "
              f"{r['import_seconds']:.1f} s, generate "
              f"{r['generate_seconds']:.1f} s, save {r['save_seconds']:.1f} s); "
              f"budget {BUDGET_SECONDS:.0f} s")
        print(f"  memory: {peak_gib:.2f} GiB peak resident "
              f"({r['rss_after_import_bytes'] / 1024**3:.2f} GiB after "
              f"imports); budget {BUDGET_BYTES / 1024**3:.0f} GiB")
        within = (r["total_seconds"] < BUDGET_SECONDS
                  and r["peak_rss_bytes"] < BUDGET_BYTES)
        print(f"  {'within' if within else 'OVER'} budget")
        over |= not within
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
