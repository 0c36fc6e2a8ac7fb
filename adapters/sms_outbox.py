"""Development SMS sender: appends each message to a JSON Lines outbox a person and tests can read.

It stands in for the operator's SMSC. The outbox holds what the subscriber's phone would show,
codes included, so it lives in the data directory with owner-only permissions.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUTBOX_NAME = "sms-outbox.jsonl"


class OutboxSms:
    """SmsSender port writing to `<data_dir>/sms-outbox.jsonl`; safe for several processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    async def send(self, msisdn: str, text: str) -> None:
        # One small O_APPEND write to a local file: cheaper inline than a thread hand-off.
        line = json.dumps({"at": datetime.now(UTC).isoformat(), "to": msisdn, "text": text}) + "\n"
        self._append(line.encode())

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, data)
        finally:
            os.close(fd)


def read_outbox(path: Path, msisdn: str | None = None) -> list[dict[str, Any]]:
    """Messages in the outbox, oldest first, optionally only those to one number."""
    if not path.exists():
        return []
    messages = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [m for m in messages if msisdn is None or m["to"] == msisdn]
