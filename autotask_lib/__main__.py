"""``python -m autotask_lib train|score ...``: see :mod:`autotask_lib.cli`."""

import signal
import sys

from .cli import main

if __name__ == "__main__":
    status = main()
    # The work is over and --out complete: a SIGTERM now would only cut the
    # interpreter's exit short and report a kill that stopped nothing.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(status)
