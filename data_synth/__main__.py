"""Command line: ``python -m data_synth --profile default --seed 0 --out DIR``."""

from __future__ import annotations

import argparse
import sys

from .generator import PROFILE_SIZES, config_for_profile, generate
from .io import save


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_synth",
        description="Generate the synthetic 11-scenario ads relevance data.",
    )
    parser.add_argument("--profile", default="default",
                        help=f"size profile, one of {sorted(PROFILE_SIZES)}")
    parser.add_argument("--seed", type=int, default=0, help="random seed (>= 0)")
    parser.add_argument("--relatedness", type=float, default=None,
                        help="scenario relatedness knob in [0, 1]")
    parser.add_argument("--out", required=True, help="new folder to write into")
    args = parser.parse_args(argv)
    try:
        overrides = {}
        if args.relatedness is not None:
            overrides["relatedness"] = args.relatedness
        cfg = config_for_profile(args.profile, **overrides)
        data = generate(cfg, args.seed, progress=True)
        folder = save(data, args.out)
    except (ValueError, FileExistsError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {folder} (fingerprint {data.fingerprint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
