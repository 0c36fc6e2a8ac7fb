"""`python -m adapters.smsc_sim --outbox PATH [--listen HOST:PORT] [--control HOST:PORT] ...`"""

from __future__ import annotations

import sys

from adapters.smsc_sim.server import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
