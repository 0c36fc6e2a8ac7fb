"""RedisSignInState (adapters/redis_state.py) on a real redis-server: atomicity under concurrency,
TTLs, key layout, and failing fast when Redis is gone."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from adapters.redis_client import connect
from adapters.redis_server import RedisServerProcess
from adapters.redis_state import RedisSignInState
from gateway.domain import rules
from gateway.domain.errors import DependencyUnavailable, TooManyRequests, Unauthenticated
from gateway.domain.kiosk import KioskConfig, KioskFlows
from gateway.domain.notices import NoticeConfig, Notices
from gateway.domain.ports import Attempt, AttemptLimits, CodeClaim, SendSlot, Session
from gateway.runtime.settings import Settings
from tests.unit.fakes import FakeBilling, FakeSms

pytestmark = pytest.mark.asyncio

N = 50
A, B = "13800000001", "13800000002"
PURPOSE = rules.Purpose.CALL_LIST.value
KEY = b"integration-key"


@pytest.fixture
def state(client: aioredis.Redis) -> RedisSignInState:
    return RedisSignInState(client)


class SlowBilling(FakeBilling):
    """Answers after a real network-like pause, so concurrent sign-ins interleave."""

    async def verify_service_password(self, msisdn: str, password: str) -> bool:
        await asyncio.sleep(0.01)
        return await super().verify_service_password(msisdn, password)


def digest(code: str, msisdn: str = A) -> str:
    return rules.code_digest(KEY, msisdn, rules.Purpose.CALL_LIST, code)


OPEN = AttemptLimits(threshold=1000, lock_for=60, memory=600)


async def check_code(state: RedisSignInState, msisdn: str, purpose: str, d: str, max_tries: int) -> Attempt:
    """One attempt that compares a code, under a limit too high to matter."""
    return await state.begin_attempt(msisdn, OPEN, CodeClaim(purpose, d, max_tries))


async def record_failure(state: RedisSignInState, subject: str, threshold: int, lock_for: float,
                         memory: float) -> float:
    """One failed attempt: reserved, then failed; the lock ms it set (0 if refused or not locking)."""
    limits = AttemptLimits(threshold, lock_for, memory)
    attempt = await state.begin_attempt(subject, limits)
    return 0.0 if attempt.locked_for > 0 else await state.fail_attempt(attempt, limits)


async def take_send_slot(state: RedisSignInState, msisdn: str, interval: float, per_hour: int) -> SendSlot:
    return await state.issue_code(msisdn, PURPOSE, None, 60, interval, per_hour)


# --- concurrency ---------------------------------------------------------------------------------


async def test_one_right_code_checked_concurrently_is_accepted_exactly_once(state):
    await state.store_code(A, PURPOSE, digest("123456"), 60)
    results = await asyncio.gather(*(check_code(state, A, PURPOSE, digest("123456"), 5) for _ in range(N)))
    assert sum(r.code_ok for r in results) == 1
    assert all(r.locked_for == 0 for r in results)


async def test_concurrent_wrong_codes_kill_the_code_at_the_limit(state, client):
    await state.store_code(A, PURPOSE, digest("123456"), 60)
    results = await asyncio.gather(*(check_code(state, A, PURPOSE, digest("000000"), 5) for _ in range(N)))
    assert not any(r.code_ok for r in results)
    assert await client.exists(f"hg:{{{A}}}:code:{PURPOSE}") == 0
    assert not (await check_code(state, A, PURPOSE, digest("123456"), 5)).code_ok


async def test_the_right_code_among_concurrent_wrong_ones_is_accepted_once(state):
    await state.store_code(A, PURPOSE, digest("123456"), 60)
    mixed = [digest("000000")] * 20 + [digest("123456")] * 10 + [digest("000000")] * 20
    results = await asyncio.gather(*(check_code(state, A, PURPOSE, d, 1000) for d in mixed))
    assert [r.code_ok for r in results].count(True) == 1


async def test_concurrent_failures_all_count(state, client):
    locks = await asyncio.gather(*(record_failure(state, A, 1000, 60, 600) for _ in range(N)))
    assert locks == [0] * N
    assert int(await client.get(f"hg:{{{A}}}:fails")) == N
    assert 590_000 < await client.pttl(f"hg:{{{A}}}:fails") <= 600_000


async def test_concurrent_failures_reaching_the_threshold_lock_exactly_once(state, client):
    locks = await asyncio.gather(*(record_failure(state, A, N, 60, 600) for _ in range(N)))
    assert sorted(locks) == [0] * (N - 1) + [60]
    assert 59_000 < await client.pttl(f"hg:{{{A}}}:lock") <= 60_000
    assert await client.exists(f"hg:{{{A}}}:fails") == 0


async def test_failures_racing_past_the_threshold_lock_only_once(state):
    locks = await asyncio.gather(*(record_failure(state, A, 5, 60, 600) for _ in range(N)))
    assert sum(1 for x in locks if x > 0) == 1


async def test_racing_wrong_sign_ins_text_the_owner_once(state):
    billing = SlowBilling()
    billing.add(A, "987654")
    sms = FakeSms()
    settings = Settings(lock_threshold=5, answer_floor=0)
    flows = KioskFlows(KioskConfig.from_settings(settings), state, billing,
                       Notices(NoticeConfig.from_settings(settings), sms, sms), KEY)
    outcomes = await asyncio.gather(*(flows.authenticate(A, "000000", "000000") for _ in range(20)),
                                    return_exceptions=True)
    assert all(isinstance(o, Unauthenticated | TooManyRequests) for o in outcomes)
    assert len(sms.to(A)) == 1


async def test_concurrent_send_requests_get_exactly_one_slot(state, client):
    slots = await asyncio.gather(*(take_send_slot(state, A, 60, 5) for _ in range(N)))
    assert sum(s.allowed for s in slots) == 1
    assert all(55 < s.retry_after <= 60 for s in slots if not s.allowed)
    assert int(await client.get(f"hg:{{{A}}}:send:hour")) == 1


async def test_attempts_in_flight_count_so_a_burst_gets_at_most_the_threshold(state, client):
    limits = AttemptLimits(threshold=5, lock_for=60, memory=600)
    attempts = await asyncio.gather(*(state.begin_attempt(A, limits) for _ in range(N)))
    admitted = sorted(a.number for a in attempts if a.locked_for == 0)
    assert admitted == [1, 2, 3, 4, 5]  # nothing failed yet: the reservations alone close the door
    assert all(a.locked_for == 60 for a in attempts if a.number == 0)
    assert int(await client.get(f"hg:{{{A}}}:fails")) == 5  # refused attempts are not counted
    locks = await asyncio.gather(*(state.fail_attempt(a, limits) for a in attempts if a.locked_for == 0))
    assert sorted(locks) == [0, 0, 0, 0, 60]  # the fifth failure locks, once
    assert (await state.begin_attempt(A, limits)).locked_for > 59


async def test_a_released_attempt_is_uncounted_and_its_claimed_code_put_back(state, client):
    limits = AttemptLimits(threshold=5, lock_for=60, memory=600)
    await state.store_code(A, PURPOSE, digest("123456"), 60)
    claimed = await state.begin_attempt(A, limits, CodeClaim(PURPOSE, digest("123456"), 5))
    assert claimed.code_ok and await client.exists(f"hg:{{{A}}}:code:{PURPOSE}") == 0  # taken: nobody else
    rival = await state.begin_attempt(A, limits, CodeClaim(PURPOSE, digest("123456"), 5))
    assert not rival.code_ok
    await state.release_attempt(claimed)  # billing failed: the owner keeps the code
    await state.release_attempt(rival)
    assert await client.get(f"hg:{{{A}}}:fails") == b"0"
    assert 55_000 < await client.pttl(f"hg:{{{A}}}:code:{PURPOSE}") <= 60_000
    wrong = await state.begin_attempt(A, limits, CodeClaim(PURPOSE, digest("000000"), 5))
    assert await client.hget(f"hg:{{{A}}}:code:{PURPOSE}", "tries") == b"1"
    await state.release_attempt(wrong)  # a wrong guess a fault kept from being judged costs no try
    assert await client.hget(f"hg:{{{A}}}:code:{PURPOSE}", "tries") == b"0"
    assert (await state.begin_attempt(A, limits, CodeClaim(PURPOSE, digest("123456"), 5))).code_ok


async def test_a_code_is_stored_only_with_a_free_slot_and_no_lock(state, client):
    assert (await state.issue_code(A, PURPOSE, digest("111111"), 60, 60, 5)).allowed
    assert await client.hget(f"hg:{{{A}}}:code:{PURPOSE}", "d") == digest("111111").encode()
    throttled = await state.issue_code(A, PURPOSE, digest("222222"), 60, 60, 5)
    assert not throttled.allowed
    assert await client.hget(f"hg:{{{A}}}:code:{PURPOSE}", "d") == digest("111111").encode()
    await record_failure(state, B, 1, 30, 60)
    locked = await state.issue_code(B, PURPOSE, digest("333333", B), 60, 60, 5)
    assert locked.allowed and locked.locked_for > 29
    assert await client.exists(f"hg:{{{B}}}:code:{PURPOSE}") == 0


# --- send throttle -------------------------------------------------------------------------------


async def test_send_slot_interval_hourly_cap_and_lock_report(state, client):
    assert (await take_send_slot(state, A, 0.05, 2)).allowed
    await asyncio.sleep(0.08)
    assert (await take_send_slot(state, A, 0.05, 2)).allowed
    await asyncio.sleep(0.08)
    capped = await take_send_slot(state, A, 0.05, 2)
    assert not capped.allowed and 3590 < capped.retry_after <= 3600
    assert (await take_send_slot(state, B, 0.05, 2)).allowed  # per number
    await record_failure(state, B, 1, 30, 60)
    await asyncio.sleep(0.08)
    locked = await take_send_slot(state, B, 0.05, 2)
    assert locked.allowed and 29 < locked.locked_for <= 30


# --- codes ---------------------------------------------------------------------------------------


async def test_tries_exhausted_kill_the_code(state, client):
    await state.store_code(A, PURPOSE, digest("123456"), 60)
    for _ in range(3):
        assert not (await check_code(state, A, PURPOSE, digest("000000"), 3)).code_ok
    assert await client.exists(f"hg:{{{A}}}:code:{PURPOSE}") == 0
    assert not (await check_code(state, A, PURPOSE, digest("123456"), 3)).code_ok


async def test_one_try_short_of_the_limit_the_right_code_still_works(state):
    await state.store_code(A, PURPOSE, digest("123456"), 60)
    for _ in range(2):
        await check_code(state, A, PURPOSE, digest("000000"), 3)
    assert (await check_code(state, A, PURPOSE, digest("123456"), 3)).code_ok


async def test_a_new_code_replaces_the_old_one_with_fresh_tries(state):
    await state.store_code(A, PURPOSE, digest("111111"), 60)
    for _ in range(2):
        await check_code(state, A, PURPOSE, digest("000000"), 3)
    await state.store_code(A, PURPOSE, digest("222222"), 60)
    assert not (await check_code(state, A, PURPOSE, digest("111111"), 3)).code_ok
    assert not (await check_code(state, A, PURPOSE, digest("000000"), 3)).code_ok
    assert (await check_code(state, A, PURPOSE, digest("222222"), 3)).code_ok


async def test_codes_expire_and_are_per_purpose_and_number(state, client):
    await state.store_code(A, PURPOSE, digest("123456"), 0.1)
    assert not (await check_code(state, A, "bill_copy", digest("123456"), 5)).code_ok
    assert not (await check_code(state, B, PURPOSE, digest("123456"), 5)).code_ok
    await asyncio.sleep(0.15)
    assert not (await check_code(state, A, PURPOSE, digest("123456"), 5)).code_ok


async def test_a_locked_number_checks_nothing(state, client):
    await state.store_code(A, PURPOSE, digest("123456"), 60)
    assert await record_failure(state, A, 1, 30, 60) == 30
    check = await check_code(state, A, PURPOSE, digest("123456"), 5)
    assert not check.code_ok and 29 < check.locked_for <= 30
    assert await client.hget(f"hg:{{{A}}}:code:{PURPOSE}", "d") == digest("123456").encode()  # not consumed


# --- sessions ------------------------------------------------------------------------------------


async def test_touch_session_extends_idle_but_never_past_the_absolute_deadline(state, client):
    session, key = Session(A, "call_list", "kiosk-1"), "hg:tok:t1"
    t0 = time.time()
    await record_failure(state, A, 10, 60, 600)
    await state.open_session(A, "t1", session, idle=10, absolute=15, now=t0)
    assert await client.exists(f"hg:{{{A}}}:fails") == 0  # a sign-in clears the failure count
    assert 9_000 < await client.pttl(key) <= 10_000
    assert await state.touch_session("t1", idle=10, now=t0 + 2) == session
    assert 9_000 < await client.pttl(key) <= 10_000  # extended by a full idle period
    assert await state.touch_session("t1", idle=10, now=t0 + 12) == session
    assert 2_000 < await client.pttl(key) <= 3_000  # only up to the deadline at t0 + 15
    assert await state.touch_session("t1", idle=10, now=t0 + 15.01) is None
    assert await client.exists(key) == 0


async def test_session_idles_out_in_real_time_and_ends(state):
    t0 = time.time()
    await state.open_session(A, "t2", Session(A, "call_list", ""), idle=0.1, absolute=60, now=t0)
    await state.open_session(A, "t3", Session(A, "call_list", ""), idle=60, absolute=60, now=t0)
    await asyncio.sleep(0.15)
    assert await state.touch_session("t2", idle=0.1, now=time.time()) is None
    assert await state.touch_session("t3", idle=60, now=time.time()) == Session(A, "call_list", "")
    await state.end_session("t3", "kiosk-9")  # another terminal: nothing happens
    assert await state.touch_session("t3", idle=60, now=time.time()) == Session(A, "call_list", "")
    await state.end_session("t3", "")
    assert await state.touch_session("t3", idle=60, now=time.time()) is None


async def test_absolute_shorter_than_idle_caps_the_first_ttl(state, client):
    await state.open_session(A, "t4", Session(A, "call_list", ""), idle=300, absolute=2, now=time.time())
    assert 1_000 < await client.pttl("hg:tok:t4") <= 2_000


# --- key layout ----------------------------------------------------------------------------------


async def test_all_keys_of_a_number_share_its_hash_tag(state, client):
    await take_send_slot(state, A, 60, 5)
    await state.store_code(A, PURPOSE, digest("123456"), 60)
    await check_code(state, A, PURPOSE, digest("000000"), 5)
    await record_failure(state, A, 10, 60, 600)
    await record_failure(state, B, 1, 60, 600)
    keys = sorted(k.decode() for k in await client.keys("*"))
    of_a = [k for k in keys if f"{{{A}}}" in k]
    assert of_a == [f"hg:{{{A}}}:{what}" for what in ("code:call_list", "fails", "send:hour", "send:last")]
    assert [k for k in keys if k not in of_a] == [f"hg:{{{B}}}:lock"]
    assert len({key_slot(k.encode()) for k in [*of_a, f"hg:{{{A}}}:lock"]}) == 1
    assert key_slot(f"hg:{{{A}}}:lock".encode()) != key_slot(f"hg:{{{B}}}:lock".encode())
    for k in keys:  # the hash tag is the whole number, and the only braces in the key
        assert k.count("{") == k.count("}") == 1 and rules.MSISDN_RE.fullmatch(k[k.index("{") + 1:k.index("}")])


# --- Redis gone ----------------------------------------------------------------------------------


def every_call(state: RedisSignInState):
    s = Session(A, "call_list", "")
    return {
        "issue_code": lambda: state.issue_code(A, PURPOSE, "d", 60, 60, 5),
        "store_code": lambda: state.store_code(A, PURPOSE, "d", 60),
        "begin_attempt": lambda: state.begin_attempt(A, OPEN, CodeClaim(PURPOSE, "d", 5)),
        "fail_attempt": lambda: state.fail_attempt(Attempt(A, 0, 5), AttemptLimits(5, 60, 600)),
        "release_attempt": lambda: state.release_attempt(Attempt(A, 0, 1, CodeClaim(PURPOSE, "d", 5), True, 0, 60)),
        "open_session": lambda: state.open_session(A, "t", s, 60, 60, time.time()),
        "touch_session": lambda: state.touch_session("t", 60, time.time()),
        "end_session": lambda: state.end_session("t", ""),
    }


async def assert_every_call_fails_fast(state: RedisSignInState, limit: float) -> None:
    for name, call in every_call(state).items():
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable) as e:
            await asyncio.wait_for(call(), 10)  # a hang shows as TimeoutError, not a stuck suite
        took = time.monotonic() - started
        assert e.value.dependency == "redis" and e.value.reason == "redis_unavailable"
        assert took < limit, f"{name} took {took:.2f}s"


async def test_a_stopped_redis_raises_dependency_unavailable_fast(own_redis: RedisServerProcess):
    client = connect(own_redis.url, 0.5)
    state = RedisSignInState(client)
    try:
        assert (await take_send_slot(state, A, 60, 5)).allowed  # connected and scripts loaded
        own_redis.stop()
        await assert_every_call_fails_fast(state, 2.0)
    finally:
        await client.aclose()


async def test_a_hung_redis_raises_dependency_unavailable_within_the_timeout(own_redis: RedisServerProcess):
    client = connect(own_redis.url, 0.3)
    state = RedisSignInState(client)
    assert own_redis.proc is not None
    try:
        await state.store_code(A, PURPOSE, "d", 60)
        own_redis.proc.send_signal(signal.SIGSTOP)  # accepts connections, never answers
        try:
            started = time.monotonic()
            with pytest.raises(DependencyUnavailable):
                await asyncio.wait_for(check_code(state, A, PURPOSE, "d", 5), 10)
            assert time.monotonic() - started < 2.0
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
    finally:
        await client.aclose()
