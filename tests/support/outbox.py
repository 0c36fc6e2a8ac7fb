"""One-time codes from the development SMS outbox a gateway process writes (one JSON line a
message). SMS leave after the call's answer, once its audit event is stored: reads wait a little."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.sms_outbox import OUTBOX_NAME
from tests.support.waiting import wait_until

CODE_RE = re.compile(r"code is ([0-9]{6})")


def code_for(outbox: Path, msisdn: str, timeout: float = 5.0) -> str:
    """The newest one-time code the outbox file holds for a number (waits up to `timeout`)."""
    def newest() -> str | None:
        lines = [x for x in outbox.read_text().splitlines() if msisdn in x] if outbox.exists() else []
        found = [m.group(1) for x in lines if (m := CODE_RE.search(x))]
        return found[-1] if found else None

    return wait_until(f"a one-time code for {msisdn} in {outbox}", newest, timeout, every=0.02, retry_on=())


def code_in(data: Path, msisdn: str, timeout: float = 5.0) -> str:
    """The same, from the outbox in the data directory `data` (or HALLGATE_SMS_OUTBOX=data/OUTBOX_NAME)."""
    return code_for(data / OUTBOX_NAME, msisdn, timeout)
