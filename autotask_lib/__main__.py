"""``python -m autotask_lib train|score ...``: see :mod:`autotask_lib.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
