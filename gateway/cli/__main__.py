"""`python -m gateway.cli` runs the `hallgate` command."""

import sys

from gateway.cli.main import main

sys.exit(main())
