"""The sealed pseudonym directory: keyed pseudonym (`subscriber_ref`) → the number, sealed, so an
information supervisor can learn who is behind the pseudonyms an incident affects (RevealNumbers)
while the trail itself never holds a number.

Why a directory: the trail names a subscriber by `subscriber_ref = HMAC(key, number)` (gateway/domain/
rules.py) and a mask shared by many numbers; an HMAC cannot be turned back. The directory keeps,
per pseudonym, the number sealed with AES-256-GCM (gateway/domain/secretbox.py) under a key derived
from the server secret with a label of its own, bound to the pseudonym as associated data (a sealed
value copied to another field does not open). Redis, a backup or an AOF alone discloses nothing.

Who writes it: the audit Recorder (gateway/pipeline/audit.py) calls `note(ref, number)` for each
number of each event. `note` is synchronous and O(1): a pseudonym this process has already written
this month (a bounded LRU) is ignored; a new one is put in a bounded pending map that a background task writes
with HSETNX (idempotent across processes), off the call's path: a call never waits for it. If Redis
is away or the pending map is full, the pseudonym is not marked written and is tried again the next
time an event names it. So a number is revealable once any event naming it was recorded by a process
whose write succeeded; a reveal that finds none says so (an empty number).

    hg:{pseudonyms}:dir:<YYYY-MM>    hash    ref → hgbox1.<kid>.<sealed number>, for the pseudonyms
                                             events of that month (UTC) named
    hg:{pseudonyms}:months           set     the months that have a hash

Retention (R8): an entry lives in the hash of each month an event named it, so a month's hash can be
destroyed with that month's audit events: `dispose_before(cutoff)` removes every month that ended
before the cutoff (the trail's retention cutoff), and the directory never outlives the trail that
names its pseudonyms by more than a month. A reveal reads the months still kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from adapters.redis_state import guarded
from gateway.domain import rules
from gateway.domain.secretbox import SecretBox, SecretBoxError

log = structlog.get_logger("hallgate.pseudonyms")
PREFIX = "hg:{pseudonyms}:"
MONTHS = PREFIX + "months"
LABEL = b"hallgate/pseudonym-directory/v1"


def directory_box(key: bytes) -> SecretBox:
    """The sealing key: HMAC(server secret key, label); never the key the pseudonyms are made with."""
    return SecretBox(hmac.new(key, LABEL, hashlib.sha256).hexdigest())


class RedisPseudonymDirectory:
    def __init__(self, client: aioredis.Redis, key: bytes, seen_limit: int = 100_000, pending_limit: int = 10_000,
                 batch: int = 500) -> None:
        self.r = client
        self.key = key
        self.box = directory_box(key)
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.seen_limit = seen_limit
        self.pending: dict[str, str] = {}
        self.pending_limit = pending_limit
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._month = ("", 0.0, 0.0)  # (this month, its first instant, the first instant after it), as timestamps

    def note(self, ref: str, msisdn: str, now: datetime | None = None) -> None:
        """Called on the call path: never blocks, never raises."""
        month = month_of(now) if now is not None else self._this_month()
        seen = f"{month}|{ref}"
        if seen in self.seen:
            self.seen.move_to_end(seen)
            return
        if seen in self.pending or len(self.pending) >= self.pending_limit or not rules.MSISDN_RE.fullmatch(msisdn):
            return
        self.pending[seen] = msisdn
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._flush())
            except RuntimeError:  # no loop (a synchronous caller): the next event retries
                self.pending.pop(seen, None)

    def _this_month(self) -> str:
        """The current month (UTC), formatted only when it changes: every event notes its numbers."""
        month, start, end = self._month
        t = time.time()
        if not start <= t < end:
            month = month_of(datetime.fromtimestamp(t, UTC))
            self._month = (month, month_start(month).timestamp(), month_end(month).timestamp())
        return month

    async def _flush(self) -> None:
        for _ in range(1 + self.pending_limit // self.batch):  # bounded: each round takes a batch
            if not self.pending:
                return
            batch = list(self.pending)[: self.batch]
            items = [(seen, self.pending.pop(seen)) for seen in batch]
            try:
                pipe = self.r.pipeline(transaction=False)
                for seen, msisdn in items:
                    month, ref = seen.split("|", 1)
                    pipe.hsetnx(month_key(month), ref, self.box.seal(msisdn, f"pseudonym:{ref}"))
                    pipe.sadd(MONTHS, month)
                await pipe.execute()
            except (RedisError, OSError) as e:  # not marked: tried again when an event names it
                log.warning("pseudonym_directory_unavailable", error_type=type(e).__name__, dropped=len(items))
                return
            for seen, _ in items:
                self.seen[seen] = None
            while len(self.seen) > self.seen_limit:
                self.seen.popitem(last=False)

    async def drain(self) -> None:
        """Wait for the pending writes (tests, shutdown)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    @guarded
    async def months(self) -> list[str]:
        return sorted(_s(m) for m in await self.r.smembers(MONTHS))  # type: ignore[misc]

    @guarded
    async def reveal(self, refs: Sequence[str]) -> dict[str, str]:
        """ref → number for each ref the directory holds (newest month first) and whose number
        checks against it."""
        out: dict[str, str] = {}
        for month in reversed(await self.months()):
            wanted = [r for r in dict.fromkeys(refs) if r not in out]
            if not wanted:
                break
            raw = await self.r.hmget(month_key(month), wanted)  # type: ignore[misc]
            for ref, sealed in zip(wanted, raw, strict=True):
                if sealed is None:
                    continue
                try:
                    msisdn = self.box.open(_s(sealed), f"pseudonym:{ref}")
                except SecretBoxError:
                    log.error("pseudonym_directory_unreadable", subscriber_ref=ref, month=month)
                    continue
                if hmac.compare_digest(rules.subscriber_ref(self.key, msisdn), ref):
                    out[ref] = msisdn
        return out

    @guarded
    async def count_before(self, before: datetime) -> tuple[int, datetime | None]:
        """How many months `dispose_before(before)` would destroy, and when the oldest began."""
        due = [m for m in await self.months() if month_end(m) <= before]
        return len(due), (datetime.strptime(due[0], "%Y-%m").replace(tzinfo=UTC) if due else None)

    @guarded
    async def dispose_before(self, before: datetime) -> list[str]:
        """Destroy every month's hash whose month ended at or before `before` (R8: with the audit
        events of that month). Returns the months destroyed."""
        gone = []
        for month in await self.months():
            if month_end(month) <= before:
                pipe = self.r.pipeline(transaction=True)
                pipe.delete(month_key(month))
                pipe.srem(MONTHS, month)
                await pipe.execute()
                gone.append(month)
        return gone


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def month_of(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m")


def month_key(month: str) -> str:
    return f"{PREFIX}dir:{month}"


def month_start(month: str) -> datetime:
    y, m = (int(x) for x in month.split("-"))
    return datetime(y, m, 1, tzinfo=UTC)


def month_end(month: str) -> datetime:
    """The first instant after the month (UTC)."""
    y, m = (int(x) for x in month.split("-"))
    return datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC)
