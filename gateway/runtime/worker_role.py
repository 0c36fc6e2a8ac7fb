"""What this process is within `hallgate serve --workers N`, known before anything is wired.

Apart from gateway/runtime/workers.py (the supervisor, which starts the runtime) so that the runtime can
ask without importing the supervisor back.
"""

from __future__ import annotations

import os

from gateway.runtime import metrics
from gateway.runtime.settings import Settings


def is_worker() -> bool:
    """Whether this process is a worker started by a supervisor."""
    return metrics.WORKER_ENV in os.environ


def reuse_port(settings: Settings) -> int:
    """The value of the gRPC option grpc.so_reuseport: 1 only when workers share the port, so a
    single gateway never silently shares its port with another process."""
    return 1 if settings.workers > 1 else 0
