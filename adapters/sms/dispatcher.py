"""The dispatcher: takes messages from the shared queue and hands them to the SMS centre.

Any number of dispatchers (one in each gateway process, or `hallgate sms-dispatch` processes)
share the queue through one Redis consumer group, so each message is taken by one of them. A
message stays in the queue, sealed, until the SMSC has taken it; then its text is gone. The
promises (docs/sms.md):

- at least once to the SMSC: a message leaves the queue only once the SMSC answered with its id,
  or it expired, or it failed for good (dead letter). A dispatcher that dies holding messages
  loses nothing: after `claim_idle` seconds another one takes them over;
- never after expiry: a message (a code) whose expiry passed while it waited is dropped, counted,
  never sent; the SMSC is told the same expiry as the validity period;
- throttling (ESME_RTHROTTLED) backs off and tries again without counting an attempt; other
  transient failures count, up to `max_attempts`; a permanent refusal dead-letters at once;
- every final state (delivered, undeliverable, expired, no receipt in `receipt_timeout`) is
  recorded on the message, for the clerk's delivery check and the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from adapters.sms.events import NoEvents, SmsEvents
from adapters.sms.queue import Queued, RedisSmsQueue
from adapters.sms.transport import Rejected, SmsTransport, Throttled, Transient
from gateway.domain.secretbox import SecretBoxError

log = structlog.get_logger("hallgate.sms")


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    max_attempts: int = 5
    receipt_timeout: float = 600
    window: int = 10
    claim_idle: float = 30
    backoff: float = 0.5
    max_backoff: float = 30
    poll: float = 0.5  # longest wait for new messages in one read (must stay under the Redis timeout)
    housekeeping: float = 1.0


class Dispatcher:
    def __init__(self, queue: RedisSmsQueue, transport: SmsTransport, config: DispatchConfig | None = None,
                 events: SmsEvents | None = None, consumer: str | None = None) -> None:
        self.queue = queue
        self.transport = transport
        self.s = config or DispatchConfig()
        self.events = events or NoEvents()
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.held: dict[str, Queued] = {}  # entry id -> message being handed over or waiting to retry
        self._slots = asyncio.Semaphore(self.s.window)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self.redis_ok = True
        self.handed_over = 0  # messages this dispatcher got the SMSC to take

    def status(self) -> str:
        return self.transport.status() if self.redis_ok else "queue unreachable (Redis)"

    async def run(self) -> None:
        """Until `stop`: read, hand over, keep house. Redis or SMSC trouble is logged and waited
        out, never raised: the gateway goes on serving while messages wait in the queue."""
        await self.transport.start(self._receipt)
        keeper = asyncio.get_running_loop().create_task(self._keep_house())
        try:
            while not self._stopping.is_set():
                try:
                    await self._cycle()
                    self.redis_ok = True
                except RedisError as err:
                    if self.redis_ok:
                        log.error("sms_queue_unreachable", error_type=type(err).__name__)
                    self.redis_ok = False
                    await self._pause(1.0)
        finally:
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper

    async def stop(self, grace: float = 2.0) -> None:
        self._stopping.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        await self.transport.close()

    async def _cycle(self) -> None:
        await self.queue.ensure_group()
        if not self.transport.ready:
            await self._pause(0.2)
            return
        await self._slots.acquire()  # at least one free slot before reading
        self._slots.release()
        free = max(1, self._free())
        batch = await self.queue.read(self.consumer, free, int(self.s.poll * 1000))
        for q in batch:
            await self._start(q)

    def _free(self) -> int:
        return self.s.window - len(self.held)

    async def _start(self, q: Queued) -> None:
        await self._slots.acquire()
        self.held[q.entry] = q
        task = asyncio.get_running_loop().create_task(self._deliver(q))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, q: Queued) -> None:
        delay = self.s.backoff
        unbound_since = time.monotonic()
        try:
            while True:
                if time.time() >= q.expires_at:
                    await self.queue.finished(q, "expired")
                    self.events.dropped(q.kind, "expired")
                    log.warning("sms_expired_unsent", message=q.id, kind=q.kind)
                    return
                if not self.transport.ready:
                    if time.monotonic() - unbound_since > self.s.claim_idle / 2:
                        # This dispatcher lost the SMSC: let a connected one take the message over
                        # (it stays pending; after `claim_idle` any bound dispatcher claims it).
                        log.info("sms_left_to_others", message=q.id, kind=q.kind)
                        return
                    await self._pause(min(0.2, max(0.0, q.expires_at - time.time())))
                    continue
                unbound_since = time.monotonic()
                started = time.monotonic()
                try:
                    smsc_id = await self.transport.submit(q)
                except Throttled:
                    self.events.throttled()
                except Transient as err:
                    if await self.queue.attempted(q) >= self.s.max_attempts:
                        await self._dead(q, f"transient: {err}")
                        return
                    log.info("sms_retry", message=q.id, kind=q.kind, reason=str(err))
                except Rejected as err:
                    await self._dead(q, f"rejected: {err}")
                    return
                else:
                    await self.queue.submitted(q, smsc_id, self.s.receipt_timeout)
                    self.handed_over += 1
                    self.events.submitted(q.kind, time.monotonic() - started)
                    log.info("sms_submitted", message=q.id, kind=q.kind, smsc_id=smsc_id)
                    return
                await self._pause(min(delay, max(0.0, q.expires_at - time.time())))
                delay = min(delay * 2, self.s.max_backoff)
        except RedisError as err:  # left pending: this dispatcher or another takes it up again
            log.error("sms_queue_unreachable", message=q.id, error_type=type(err).__name__)
        except Exception as err:
            log.error("sms_delivery_failed", message=q.id, error_type=type(err).__name__)
        finally:
            self.held.pop(q.entry, None)
            self._slots.release()

    async def _dead(self, q: Queued, why: str) -> None:
        await self.queue.finished(q, "failed", why)
        self.events.dropped(q.kind, "failed")
        log.error("sms_dead_letter", message=q.id, kind=q.kind, reason=why)

    async def _receipt(self, smsc_id: str, state: str) -> None:
        # A receipt may overtake the record of its own hand-over (another process's, or ours a
        # moment before it is written): look a few times before calling it unknown.
        for wait in (0.0, 0.1, 0.3, 1.0):
            await asyncio.sleep(wait)
            try:
                kind = await self.queue.receipt(smsc_id, state)
            except RedisError:
                continue
            if kind is not None:
                self.events.receipt(state)
                log.info("sms_receipt", smsc_id=smsc_id, state=state, kind=kind)
                return
        log.debug("sms_receipt_unmatched", smsc_id=smsc_id)

    async def _keep_house(self) -> None:
        last_keep = last_claim = last_forget = 0.0
        failing = False  # logged when it starts and when it ends, not once a second while Redis is away
        while True:
            await asyncio.sleep(self.s.housekeeping)
            try:
                now = time.monotonic()
                for _ in range(await self.queue.overdue()):
                    self.events.receipt("no_receipt")
                self.events.depth(await self.queue.depth())
                self.events.link(self.transport.ready)
                if now - last_forget >= 300:
                    last_forget = now
                    await self.queue.forget_idle_consumers(idle=86400)
                if now - last_keep >= self.s.claim_idle / 3:
                    await self.queue.keep(self.consumer, list(self.held))
                    last_keep = now
                if now - last_claim >= self.s.claim_idle / 2 and self.transport.ready and self._free() > 0:
                    last_claim = now
                    for q in await self.queue.claim_stale(self.consumer, self.s.claim_idle, self._free()):
                        if q.entry not in self.held:
                            log.info("sms_taken_over", message=q.id, kind=q.kind)
                            await self._start(q)
                if failing:
                    failing = False
                    log.info("sms_housekeeping_recovered")
            except (RedisError, SecretBoxError) as err:
                if not failing:
                    failing = True
                    log.warning("sms_housekeeping_failed", error_type=type(err).__name__)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
