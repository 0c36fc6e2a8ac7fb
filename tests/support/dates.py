"""Months in the operator's zone and protobuf timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from google.protobuf import timestamp_pb2

from gateway.domain import rules

ZONE_NAME = "Asia/Shanghai"  # the operator's zone
ZONE = ZoneInfo(ZONE_NAME)


def month(offset: int = -1) -> str:
    """A month relative to this one in the operator's zone; -1 is last month (complete)."""
    return rules.month_add(rules.local_today(datetime.now(UTC), ZONE_NAME), offset)


def ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out
