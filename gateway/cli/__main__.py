"""`python -m gateway.cli` runs the `hallgate` command."""

import sys

from gateway.cli import main

sys.exit(main())
