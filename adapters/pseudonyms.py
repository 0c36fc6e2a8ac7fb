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
(a bounded LRU) is ignored; a new one is put in a bounded pending map that a background task writes
with HSETNX (idempotent across processes), off the call's path: a call never waits for it. If Redis
is away or the pending map is full, the pseudonym is not marked written and is tried again the next
time an event names it. So a number is revealable once any event naming it was recorded by a process
whose write succeeded; a reveal that finds none says so (an empty number).

    hg:{pseudonyms}:dir    hash    ref → hgbox1.<kid>.<sealed number>

Kept as long as the deployment (a pseudonym is as old as the trail that names it); the number
itself is the operator's customer data, sealed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Sequence

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from adapters.redis_state import guarded
from gateway.domain import rules
from gateway.domain.secretbox import SecretBox, SecretBoxError

log = structlog.get_logger("hallgate.pseudonyms")
KEY = "hg:{pseudonyms}:dir"
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

    def note(self, ref: str, msisdn: str) -> None:
        """Called on the call path: never blocks, never raises."""
        if ref in self.seen:
            self.seen.move_to_end(ref)
            return
        if ref in self.pending or len(self.pending) >= self.pending_limit or not rules.MSISDN_RE.fullmatch(msisdn):
            return
        self.pending[ref] = msisdn
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._flush())
            except RuntimeError:  # no loop (a synchronous caller): the next event retries
                self.pending.pop(ref, None)

    async def _flush(self) -> None:
        for _ in range(1 + self.pending_limit // self.batch):  # bounded: each round takes a batch
            if not self.pending:
                return
            refs = list(self.pending)[: self.batch]
            items = [(ref, self.pending.pop(ref)) for ref in refs]
            try:
                pipe = self.r.pipeline(transaction=False)
                for ref, msisdn in items:
                    pipe.hsetnx(KEY, ref, self.box.seal(msisdn, f"pseudonym:{ref}"))
                await pipe.execute()
            except (RedisError, OSError) as e:  # not marked: tried again when an event names it
                log.warning("pseudonym_directory_unavailable", error_type=type(e).__name__, dropped=len(items))
                return
            for ref, _ in items:
                self.seen[ref] = None
            while len(self.seen) > self.seen_limit:
                self.seen.popitem(last=False)

    async def drain(self) -> None:
        """Wait for the pending writes (tests, shutdown)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    @guarded
    async def reveal(self, refs: Sequence[str]) -> dict[str, str]:
        """ref → number for each ref the directory holds and whose number checks against it."""
        if not refs:
            return {}
        raw = await self.r.hmget(KEY, list(refs))  # type: ignore[misc]
        out: dict[str, str] = {}
        for ref, sealed in zip(refs, raw, strict=True):
            if sealed is None:
                continue
            try:
                msisdn = self.box.open(sealed.decode() if isinstance(sealed, bytes) else sealed, f"pseudonym:{ref}")
            except SecretBoxError:
                log.error("pseudonym_directory_unreadable", subscriber_ref=ref)
                continue
            if hmac.compare_digest(rules.subscriber_ref(self.key, msisdn), ref):
                out[ref] = msisdn
        return out
