"""The SMS queue (adapters/sms/queue.py) and its dispatchers (adapters/sms/dispatcher.py) on the
session's real redis-server.

The SMSC is a scripted stand-in implementing the SmsTransport protocol: it answers each hand-over
as an SMSC would (accepted with a message id, Throttled, Transient, Rejected) and counts what it
took, so the dispatcher's retry, expiry, dead-letter and takeover rules can be checked exactly.
The real protocol (SMPP against the SMSC simulator) is tests/e2e/test_sms_delivery.py."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.sms.dispatcher import DispatchConfig, Dispatcher
from adapters.sms.queue import AWAITING, DEAD, FOLDS_DUE, GROUP, STREAM, TAG, Queued, RedisSmsQueue
from adapters.sms.transport import Receipts, Rejected, Throttled, Transient
from gateway.domain.ports import ReleaseFold, Sms, SmsKind
from gateway.domain.secretbox import SecretBox
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

KEY = b"sms-queue-test-key"
NUMBER = "13800000001"
OTHER = "13800000002"
TEXT = "Your hallgate code is 482913, valid for 5 minutes."
MSG_FIELDS = {"kind", "state", "queued", "updated", "attempts", "smsc", "error"}
# Short times so that retries, takeovers and housekeeping show within a second or two.
FAST = DispatchConfig(max_attempts=3, receipt_timeout=60, window=10, claim_idle=0.5, backoff=0.05,
                      max_backoff=0.4, poll=0.1, housekeeping=0.1)


# --- the stand-ins ------------------------------------------------------------------------------------


@dataclass
class Events:
    """An SmsEvents that records every event."""

    capped_kinds: list[str] = field(default_factory=list)
    submitted_kinds: list[str] = field(default_factory=list)
    receipts: list[str] = field(default_factory=list)
    drops: list[tuple[str, str]] = field(default_factory=list)
    throttles: int = 0

    def capped(self, kind: str) -> None:
        self.capped_kinds.append(kind)

    def submitted(self, kind: str, seconds: float) -> None:
        self.submitted_kinds.append(kind)

    def receipt(self, state: str) -> None:
        self.receipts.append(state)

    def dropped(self, kind: str, reason: str) -> None:
        self.drops.append((kind, reason))

    def throttled(self) -> None:
        self.throttles += 1

    def reconnected(self) -> None: ...

    def link(self, up: bool) -> None: ...

    def depth(self, messages: int) -> None: ...


@dataclass
class Ledger:
    """What the SMSC saw, shared by the transports of several dispatchers: every hand-over (time,
    which transport, the message) and the messages it took, by message id."""

    tries: list[tuple[float, str, Queued]] = field(default_factory=list)
    taken: Counter[str] = field(default_factory=Counter)

    def tries_of(self, mid: str) -> list[float]:
        return [t for t, _, q in self.tries if q.id == mid]


# answer(message, how many hand-overs of it this SMSC saw before) -> None (accept) or what to raise
Answer = Callable[[Queued, int], Exception | None]


def accept(q: Queued, n: int) -> Exception | None:
    return None


class ScriptedSmsc:
    """An SmsTransport answering like an SMSC, from a script."""

    def __init__(self, answer: Answer = accept, ledger: Ledger | None = None, name: str = "smsc") -> None:
        self.answer = answer
        self.ledger = ledger or Ledger()
        self.name = name
        self.receipts: Receipts | None = None

    @property
    def ready(self) -> bool:
        return True

    def status(self) -> str:
        return "bound"

    async def start(self, receipts: Receipts) -> None:
        self.receipts = receipts

    async def submit(self, message: Queued) -> str:
        seen = sum(1 for _, _, q in self.ledger.tries if q.id == message.id)
        self.ledger.tries.append((time.monotonic(), self.name, message))
        failure = self.answer(message, seen)
        if failure is not None:
            raise failure
        self.ledger.taken[message.id] += 1
        return f"{self.name}-{uuid.uuid4().hex[:10]}"

    async def close(self) -> None: ...


# --- helpers ---------------------------------------------------------------------------------------------


def make_queue(client: aioredis.Redis, events: Events | None = None, key: bytes = KEY,
               clock: Callable[[], float] = time.time) -> RedisSmsQueue:
    return RedisSmsQueue(client, SecretBox(key), key, events=events, clock=clock)


@asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        await dispatcher.stop(grace=1.0)
        task.cancel()
        try:
            await asyncio.wait_for(task, 2.0)
        except (asyncio.CancelledError, TimeoutError):
            pass


def code(text: str = TEXT, to: str = NUMBER, ttl: float = 60.0) -> Sms:
    return Sms(SmsKind.CODE, to, text, time.time() + ttl)


def s(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


async def entries(r: aioredis.Redis, stream: str = STREAM) -> list[tuple[str, dict[str, str]]]:
    return [(s(e), {s(k): s(v) for k, v in f.items()}) for e, f in await r.xrange(stream)]


async def ids_in_queue(r: aioredis.Redis) -> list[str]:
    return [f["id"] for _, f in await entries(r)]


async def everything(r: aioredis.Redis) -> str:
    """Every key in Redis and everything stored under it, as one text to search."""
    out: list[str] = []
    for raw in await r.keys("*"):
        key = s(raw)
        out.append(key)
        kind = s(await r.type(key))
        if kind == "string":
            out.append(s(await r.get(key)))
        elif kind == "hash":
            out += [f"{s(k)}={s(v)}" for k, v in (await r.hgetall(key)).items()]
        elif kind == "stream":
            out += [f"{s(k)}={s(v)}" for _, f in await r.xrange(key) for k, v in f.items()]
        elif kind == "set":
            out += [s(m) for m in await r.smembers(key)]
        elif kind == "zset":
            out += [s(m) for m in await r.zrange(key, 0, -1)]
        elif kind == "list":
            out += [s(m) for m in await r.lrange(key, 0, -1)]
        else:
            out.append(f"<{kind}>")
    return "\n".join(out)


async def pending(r: aioredis.Redis) -> int:
    return int((await r.xpending(STREAM, GROUP))["pending"])


async def state(queue: RedisSmsQueue, mid: str) -> str:
    return (await queue.state_of(mid)).get("state", "<none>")


async def reaches(queue: RedisSmsQueue, mid: str, wanted: str, limit: float = 5.0) -> None:
    async def there() -> bool:
        return await state(queue, mid) == wanted

    await wait_for(there, limit, what=f"message {mid} reaching {wanted}")


# --- (a) at rest: sealed in the queue, gone once the SMSC took it ------------------------------------------


async def test_a_queued_message_is_sealed_and_leaves_redis_once_submitted_then_its_receipt_is_recorded(client):
    events = Events()
    queue = make_queue(client, events)
    await queue.send(code())

    [(_, entry)] = await entries(client)
    assert set(entry) == {"id", "kind", "box", "exp"} and entry["kind"] == "code"
    assert entry["box"].startswith("hgbox1.")
    stored = await everything(client)
    assert NUMBER not in stored and TEXT not in stored and "482913" not in stored
    mid = entry["id"]
    life = await queue.state_of(mid)
    assert life["state"] == "queued" and life["attempts"] == "0" and set(life) <= MSG_FIELDS
    assert (await queue.last_delivery(NUMBER, SmsKind.CODE)).state == "queued"

    smsc = ScriptedSmsc()
    async with running(Dispatcher(queue, smsc, FAST, events)):
        await reaches(queue, mid, "submitted")
        [(_, _, handed)] = smsc.ledger.tries
        assert (handed.id, handed.kind, handed.to, handed.text) == (mid, "code", NUMBER, TEXT)  # opened right
        assert handed.expires_at == pytest.approx(time.time() + 60, abs=5)
        assert await client.xlen(STREAM) == 0 and await pending(client) == 0
        life = await queue.state_of(mid)
        assert life["smsc"].startswith("smsc-") and set(life) <= MSG_FIELDS
        stored = await everything(client)
        assert NUMBER not in stored and TEXT not in stored and "482913" not in stored

        assert smsc.receipts is not None
        await smsc.receipts(life["smsc"], "delivered")  # the SMSC's delivery receipt
        assert await state(queue, mid) == "delivered"
    assert (await queue.last_delivery(NUMBER, SmsKind.CODE)).state == "delivered"
    assert events.submitted_kinds == ["code"] and events.receipts == ["delivered"]
    assert await client.zcard(AWAITING) == 0  # no receipt awaited any more
    assert smsc.ledger.taken == Counter({mid: 1})
    stored = await everything(client)
    assert NUMBER not in stored and TEXT not in stored


# --- (b) never after expiry ---------------------------------------------------------------------------------


async def test_a_message_that_expired_before_it_could_go_is_dropped_unsent(client):
    events = Events()
    queue = make_queue(client, events)
    await queue.send(code(ttl=0.2))
    await queue.send(code("still fresh", ttl=60))
    stale, fresh = await ids_in_queue(client)
    await asyncio.sleep(0.3)

    smsc = ScriptedSmsc()
    async with running(Dispatcher(queue, smsc, FAST, events)):
        await reaches(queue, fresh, "submitted")
        await reaches(queue, stale, "expired")
    assert smsc.ledger.tries_of(stale) == []  # never handed to the SMSC
    assert smsc.ledger.taken == Counter({fresh: 1})
    assert events.drops == [("code", "expired")]
    assert await client.xlen(STREAM) == 0 and await pending(client) == 0
    assert await client.xlen(DEAD) == 0  # expiry is not a failure


async def test_a_message_that_expires_while_retrying_stops_at_its_expiry(client):
    events = Events()
    queue = make_queue(client, events)
    await queue.send(code(ttl=0.6))
    [mid] = await ids_in_queue(client)
    smsc = ScriptedSmsc(lambda q, n: Transient("SMSC system error"))
    async with running(Dispatcher(queue, smsc, DispatchConfig(
            max_attempts=1000, claim_idle=5, backoff=0.05, max_backoff=0.1, poll=0.1, housekeeping=0.1), events)):
        await reaches(queue, mid, "expired")
        tries = len(smsc.ledger.tries)
        await asyncio.sleep(0.3)
        assert len(smsc.ledger.tries) == tries  # nothing after the expiry
    assert tries >= 3
    assert all(t <= smsc.ledger.tries[0][0] + 0.6 + 0.05 for t, _, _ in smsc.ledger.tries)
    assert events.drops == [("code", "expired")] and await client.xlen(STREAM) == 0


# --- (c) retries, throttling, dead letters --------------------------------------------------------------


async def test_transient_failures_back_off_and_dead_letter_after_max_attempts(client):
    events = Events()
    queue = make_queue(client, events)
    await queue.send(code())
    [mid] = await ids_in_queue(client)
    smsc = ScriptedSmsc(lambda q, n: Transient("submit_sm timed out"))
    async with running(Dispatcher(queue, smsc, FAST, events)):
        await reaches(queue, mid, "failed")
    tries = smsc.ledger.tries_of(mid)
    assert len(tries) == FAST.max_attempts == 3
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= FAST.backoff * 0.9 and gaps[1] >= 2 * FAST.backoff * 0.9  # doubling back-off
    life = await queue.state_of(mid)
    assert life["attempts"] == "3" and "transient" in life["error"] and "smsc" not in life
    assert await client.xlen(STREAM) == 0 and await pending(client) == 0
    [(_, dead)] = await entries(client, DEAD)
    assert dead["id"] == mid and dead["kind"] == "code" and dead["error"].startswith("transient:")
    assert NUMBER not in str(dead) and TEXT not in str(dead)
    stored = await everything(client)
    assert NUMBER not in stored and TEXT not in stored
    assert events.drops == [("code", "failed")] and events.submitted_kinds == []


async def test_throttling_is_waited_out_without_counting_attempts(client):
    events = Events()
    queue = make_queue(client, events)
    await queue.send(code())
    [mid] = await ids_in_queue(client)
    smsc = ScriptedSmsc(lambda q, n: Throttled("ESME_RTHROTTLED") if n < 10 else None)
    config = DispatchConfig(max_attempts=2, claim_idle=5, backoff=0.01, max_backoff=0.02, poll=0.1,
                            housekeeping=0.1)
    async with running(Dispatcher(queue, smsc, config, events)):
        await reaches(queue, mid, "submitted")
    assert len(smsc.ledger.tries_of(mid)) == 11 and smsc.ledger.taken == Counter({mid: 1})
    assert events.throttles == 10
    assert (await queue.state_of(mid))["attempts"] == "0"
    assert await client.xlen(DEAD) == 0 and await client.xlen(STREAM) == 0


async def test_a_transient_failure_then_success_delivers_with_the_attempt_counted(client):
    queue = make_queue(client)
    await queue.send(code())
    [mid] = await ids_in_queue(client)
    smsc = ScriptedSmsc(lambda q, n: Transient("link lost") if n < 2 else None)
    async with running(Dispatcher(queue, smsc, FAST)):
        await reaches(queue, mid, "submitted")
    assert (await queue.state_of(mid))["attempts"] == "2" and smsc.ledger.taken == Counter({mid: 1})
    assert await client.xlen(DEAD) == 0


async def test_a_rejected_message_is_dead_lettered_at_once(client):
    events = Events()
    queue = make_queue(client, events)
    await queue.send(code())
    await queue.send(code("next one", to=OTHER))
    bad, good = await ids_in_queue(client)
    smsc = ScriptedSmsc(lambda q, n: Rejected("ESME_RINVDSTADR") if q.to == NUMBER else None)
    async with running(Dispatcher(queue, smsc, FAST, events)):
        await reaches(queue, bad, "failed")
        await reaches(queue, good, "submitted")
    assert len(smsc.ledger.tries_of(bad)) == 1  # no retry of a permanent refusal
    assert "rejected" in (await queue.state_of(bad))["error"]
    [(_, dead)] = await entries(client, DEAD)
    assert dead["id"] == bad and dead["error"].startswith("rejected:")
    assert await client.xlen(STREAM) == 0 and await pending(client) == 0


# --- (d) a message this process cannot open -----------------------------------------------------------


async def test_an_entry_sealed_under_another_key_is_dead_lettered_and_does_not_block_the_queue(client):
    events = Events()
    foreign = make_queue(client, key=b"another-gateway-key")
    queue = make_queue(client, events)
    await foreign.send(code("sealed elsewhere"))
    await queue.send(code())
    unreadable, readable = await ids_in_queue(client)
    smsc = ScriptedSmsc()
    one_at_a_time = DispatchConfig(max_attempts=3, window=1, claim_idle=5, backoff=0.05, poll=0.1, housekeeping=0.1)
    async with running(Dispatcher(queue, smsc, one_at_a_time, events)):
        await reaches(queue, readable, "submitted")
        await reaches(queue, unreadable, "failed")
    assert "unreadable" in (await queue.state_of(unreadable))["error"]
    assert smsc.ledger.tries_of(unreadable) == [] and smsc.ledger.taken == Counter({readable: 1})
    [(_, dead)] = await entries(client, DEAD)
    assert dead["id"] == unreadable and dead["error"].startswith("unreadable")
    assert ("code", "failed") in events.drops
    assert await client.xlen(STREAM) == 0 and await pending(client) == 0


# --- (e) takeover of a dead dispatcher's messages, and none of a live one's ---------------------------


async def test_messages_read_by_a_dispatcher_that_died_are_taken_over_after_claim_idle_and_sent_once(client):
    queue = make_queue(client)
    for i in range(5):
        await queue.send(code(f"message {i}", to=f"1380000010{i}"))
    await queue.ensure_group()
    read_at = time.monotonic()
    taken_by_the_dead = await queue.read("died-holding-these", 10, 100)  # read, never settled
    assert len(taken_by_the_dead) == 5 and await pending(client) == 5

    smsc = ScriptedSmsc()
    heir = Dispatcher(queue, smsc, FAST, consumer="heir")
    async with running(heir):
        async def all_sent() -> bool:
            return len(smsc.ledger.taken) == 5

        await wait_for(all_sent, 5.0, what="the dead dispatcher's messages taken over")
        await asyncio.sleep(3 * FAST.claim_idle)  # time for a second takeover, if there were one
    assert min(t for t, _, _ in smsc.ledger.tries) - read_at >= FAST.claim_idle * 0.95  # not before claim_idle
    assert set(smsc.ledger.taken) == {q.id for q in taken_by_the_dead}
    assert set(smsc.ledger.taken.values()) == {1}  # each once
    assert {q.text for _, _, q in smsc.ledger.tries} == {f"message {i}" for i in range(5)}
    assert await client.xlen(STREAM) == 0 and await pending(client) == 0
    for q in taken_by_the_dead:
        assert await state(queue, q.id) == "submitted"


async def test_a_live_dispatcher_that_is_retrying_keeps_its_messages(client):
    """The first dispatcher's SMSC fails each message a dozen times over ~2.5 s (several claim_idle
    periods); it keeps resetting their idle time, so the second dispatcher, claiming stale entries
    all along, takes none of them, and each message reaches the SMSC exactly once.

    The first one's window is exactly full (4 of 4), so it claims nothing itself: an XAUTOCLAIM of
    its own would reset the idle time of its own entries too, and hide a missing `keep`."""
    ledger = Ledger()
    config = DispatchConfig(max_attempts=50, window=4, claim_idle=1.0, backoff=0.1, max_backoff=0.25, poll=0.1,
                            housekeeping=0.1)
    queue = make_queue(client)
    first = Dispatcher(queue, ScriptedSmsc(lambda q, n: Transient("busy") if n < 12 else None, ledger, "first"),
                       config, consumer="first")
    second = Dispatcher(queue, ScriptedSmsc(accept, ledger, "second"), replace(config, window=10),
                        consumer="second")
    async with running(first):
        for i in range(4):
            await queue.send(code(f"message {i}", to=f"1380000020{i}"))

        async def held() -> bool:
            return len(first.held) == 4

        await wait_for(held, 5.0, what="the first dispatcher holding every message")
        started = time.monotonic()
        async with running(second):
            async def all_sent() -> bool:
                return len(ledger.taken) == 4

            await wait_for(all_sent, 10.0, what="every message submitted")
            await asyncio.sleep(2 * config.claim_idle)
    assert time.monotonic() - started >= 2 * config.claim_idle  # the race lasted well beyond claim_idle
    assert {name for _, name, _ in ledger.tries} == {"first"}  # the second never got one
    assert set(ledger.taken.values()) == {1} and len(ledger.taken) == 4
    assert first.handed_over == 4 and second.handed_over == 0
    assert await client.xlen(STREAM) == 0 and await pending(client) == 0


async def test_a_dead_dispatchers_messages_are_taken_over_even_behind_many_kept_by_a_live_one(client):
    """Ten older entries are held (and kept) by a live dispatcher that keeps retrying them; three
    newer ones were read by a dispatcher that died. An heir with one free slot must still take the
    three over within a few claim_idle periods."""
    queue = make_queue(client)
    busy = DispatchConfig(max_attempts=10_000, window=10, claim_idle=0.5, backoff=0.1, max_backoff=0.2, poll=0.1,
                          housekeeping=0.1)
    live = Dispatcher(queue, ScriptedSmsc(lambda q, n: Transient("route busy")), busy, consumer="live")
    async with running(live):
        for i in range(10):
            await queue.send(code(f"retrying {i}", to=f"1380000040{i}"))

        async def held() -> bool:
            return len(live.held) == 10

        await wait_for(held, 5.0, what="the live dispatcher holding ten messages")
        for i in range(3):
            await queue.send(code(f"orphan {i}", to=f"1380000050{i}"))
        orphans = await queue.read("died-holding-these", 10, 100)
        assert len(orphans) == 3
        heir_smsc = ScriptedSmsc()
        async with running(Dispatcher(queue, heir_smsc, replace(busy, window=1), consumer="heir")):
            async def taken_over() -> bool:
                return len(heir_smsc.ledger.taken) == 3

            await wait_for(taken_over, 3.0, what="the orphans taken over (6 x claim_idle)")
    assert set(heir_smsc.ledger.taken) == {q.id for q in orphans}


# --- (f) receipts -----------------------------------------------------------------------------------------


async def test_receipts_and_overdue_receipts(client):
    now = [1_750_000_000.0]
    queue = make_queue(client, clock=lambda: now[0])
    await queue.ensure_group()
    for i in range(4):
        await queue.send(code(f"m{i}", to=f"1380000030{i}"))
    q1, q2, q3, q4 = await queue.read("c", 10, 100)
    await queue.submitted(q1, "smsc-1", 60)
    await queue.submitted(q2, "smsc-2", 60)
    await queue.submitted(q3, "smsc-3", 600)
    await queue.submitted(q4, "smsc-4", 60)
    assert await client.xlen(STREAM) == 0

    assert await queue.receipt("no-such-id", "delivered") is None
    assert await queue.receipt("smsc-1", "delivered") == "code"
    assert await queue.receipt("smsc-1", "delivered") is None  # a duplicate names nothing we wait for
    await client.delete(f"{TAG}:msg:{q4.id}")  # its record ran out (TTL) while it waited

    now[0] += 59
    assert await queue.overdue() == 0  # none due yet
    now[0] += 2
    assert await queue.overdue() == 2  # q2 and q4 were due; q1 had its receipt; q3 waits longer
    assert await state(queue, q1.id) == "delivered"
    assert await state(queue, q2.id) == "no_receipt"
    assert await state(queue, q3.id) == "submitted"
    assert await client.exists(f"{TAG}:msg:{q4.id}") == 0  # not brought back as a bare record
    assert await queue.overdue() == 0  # each overdue message is marked once

    assert await queue.receipt("smsc-3", "undeliverable") == "code"
    assert await state(queue, q3.id) == "undeliverable"
    now[0] += 1000
    assert await queue.overdue() == 0
    assert await state(queue, q3.id) == "undeliverable"  # a final state is not overwritten by overdue
    assert await client.zcard(AWAITING) == 0


# --- (g) release folds ------------------------------------------------------------------------------------


async def test_fold_release_is_first_once_per_session_and_take_folds_takes_each_once(client):
    queue = make_queue(client)
    now = time.time()
    fold = queue.fold_release
    assert await fold("s1", NUMBER, "H001-K01", "2025-04", now + 300, 900) is True
    assert await fold("s1", NUMBER, "H001-K01", "2025-04", now + 300, 900) is False  # the first again
    assert await fold("s1", NUMBER, "H001-K01", "2025-06", now + 300, 900) is False
    assert await fold("s1", NUMBER, "H001-K01", "2025-01", now + 300, 900) is False
    assert await fold("s1", NUMBER, "H001-K01", "2025-06", now + 300, 900) is False
    assert await fold("s2", OTHER, "H001-K02", "2025-04", now + 300, 900) is True  # another session
    assert await fold("lonely", OTHER, "H001-K03", "2025-02", now + 300, 900) is True

    stored = await everything(client)
    assert NUMBER not in stored and OTHER not in stored and "H001-K01" not in stored  # sealed

    assert await queue.take_folds(session="s1") == [ReleaseFold(NUMBER, "H001-K01", ("2025-01", "2025-06"))]
    assert await queue.take_folds(session="s1") == []
    assert await queue.take_folds(session="s2") == []  # only its first release: nothing to fold
    assert await queue.take_folds(session="lonely") == []
    assert await queue.take_folds(due_by=now + 10_000) == []
    assert await client.keys(f"{TAG}:fold:*") == [] and await client.keys(f"{TAG}:fold-months:*") == []
    with pytest.raises(ValueError):
        await queue.take_folds()
    with pytest.raises(ValueError):
        await queue.take_folds(session="s1", due_by=now)


async def test_take_folds_due_by_takes_only_the_due_ones(client):
    queue = make_queue(client)
    now = time.time()
    for name, due in (("early", now + 10), ("late", now + 100)):
        await queue.fold_release(name, NUMBER, f"T-{name}", "2025-01", due, 900)
        await queue.fold_release(name, NUMBER, f"T-{name}", "2025-02", due, 900)
    assert await queue.take_folds(due_by=now + 9.9) == []
    assert await queue.take_folds(due_by=now + 50) == [ReleaseFold(NUMBER, "T-early", ("2025-02",))]
    assert await queue.take_folds(due_by=now + 50) == []
    assert await queue.take_folds(due_by=now + 100) == [ReleaseFold(NUMBER, "T-late", ("2025-02",))]
    assert await client.zcard(FOLDS_DUE) == 0


async def test_a_session_is_first_again_once_its_memory_ran_out(client):
    queue = make_queue(client)
    assert await queue.fold_release("s", NUMBER, "T", "2025-01", time.time() + 300, 0.2) is True
    assert await queue.fold_release("s", NUMBER, "T", "2025-02", time.time() + 300, 0.2) is False
    await asyncio.sleep(0.3)
    assert await queue.fold_release("s", NUMBER, "T", "2025-03", time.time() + 300, 0.2) is True


async def test_concurrent_take_folds_return_each_fold_exactly_once(client):
    """150 due folds (more than one call takes: 100), 20 takers at once by due time and 20 by
    session: every fold is returned once in total, with its months."""
    queue = make_queue(client)
    now = time.time()
    n = 150
    for i in range(n):
        for month in ("2025-01", "2025-03", f"2024-{1 + i % 12:02d}"):
            await queue.fold_release(f"s{i}", f"139{i:08d}", f"T{i:03d}", month, now - 1, 900)
    assert await client.zcard(FOLDS_DUE) == n

    takers = [queue.take_folds(due_by=now) for _ in range(20)]
    takers += [queue.take_folds(session=f"s{i}") for i in range(0, n, 7)]  # the session ends meanwhile
    results = await asyncio.gather(*takers)
    got = Counter(f.terminal for folds in results for f in folds)
    assert got == Counter({f"T{i:03d}": 1 for i in range(n)})
    assert max(len(folds) for folds in results) <= 100
    for folds in results:
        for f in folds:
            i = int(f.terminal[1:])
            assert f.to == f"139{i:08d}"
            assert f.months == tuple(sorted({"2025-03", f"2024-{1 + i % 12:02d}"}))
    assert await client.zcard(FOLDS_DUE) == 0


async def test_a_fold_sealed_under_another_key_does_not_take_the_other_folds_down_with_it(client):
    queue, foreign = make_queue(client), make_queue(client, key=b"another-gateway-key")
    now = time.time()
    for q, name in ((queue, "readable"), (foreign, "foreign")):
        await q.fold_release(name, NUMBER, f"T-{name}", "2025-01", now - 1, 900)
        await q.fold_release(name, NUMBER, f"T-{name}", "2025-02", now - 1, 900)
    taken = await queue.take_folds(due_by=now)  # today: raises SecretBoxError, and both folds are gone
    assert taken == [ReleaseFold(NUMBER, "T-readable", ("2025-02",))]


# --- (h) the daily cap under a storm ------------------------------------------------------------------


async def test_the_daily_cap_holds_under_a_concurrent_storm(client):
    events = Events()
    day = [1_750_075_200.0]  # 2025-06-16 12:00 UTC
    queue = make_queue(client, events, clock=lambda: day[0])
    cap = 5

    def notice(i: int, kind: SmsKind = SmsKind.LOCK, to: str = NUMBER) -> Sms:
        return Sms(kind, to, f"notice {i}", time.time() + 600, cap)

    await asyncio.gather(*(queue.send(notice(i)) for i in range(100)))
    assert await client.xlen(STREAM) == cap
    assert events.capped_kinds == ["lock"] * 95
    assert len(await client.keys(f"{TAG}:msg:*")) == cap  # a capped message leaves nothing behind

    # Its own cap for another kind and another number; none for codes.
    await asyncio.gather(*(queue.send(notice(i, SmsKind.RESET)) for i in range(10)),
                         *(queue.send(notice(i, to=OTHER)) for i in range(10)),
                         *(queue.send(code(f"code {i}")) for i in range(20)))
    assert await client.xlen(STREAM) == 3 * cap + 20
    assert Counter(events.capped_kinds) == Counter({"lock": 95 + 5, "reset": 5})

    day[0] += 86400  # the next UTC day: a fresh cap
    await asyncio.gather(*(queue.send(notice(i)) for i in range(20)))
    assert await client.xlen(STREAM) == 4 * cap + 20
    assert Counter(events.capped_kinds)["lock"] == 100 + 15
