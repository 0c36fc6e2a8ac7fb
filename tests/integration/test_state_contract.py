"""The shared-state contract: one set of cases run against the in-memory fake the unit ring uses
(tests/unit/fakes.py, FakeSignInState on a FakeClock) and the Redis adapter the gateway uses
(adapters/redis_state.py, RedisSignInState on a real redis-server), so the fake cannot drift from
what Redis does: codes issued, claimed, released and expired; the send throttles; attempts counted
before anything is compared, failures, locks and their expiry; kiosk sessions (open, touch, end
from their own terminal only, idle and absolute expiry); reset_failures.

The staff directory and staff/customer sessions (adapters/redis_staff.py) have no in-memory fake
yet: their cases run on Redis alone, from STAFF_IMPLEMENTATIONS, which a fake joins once it exists.

Time: the fake's clock is moved by hand, Redis keeps real TTLs, so `advance` sleeps there and
`now` is the wall clock. Durations are a second or two at most; a "still there" check leaves at
least 0.25 s to spare on Redis, a "gone" check holds however late it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.redis_client import connect
from adapters.redis_staff import RedisStaffStore
from adapters.redis_state import RedisSignInState
from gateway.domain.ports import Attempt, AttemptLimits, CodeClaim, CustomerSession, Session, StaffRecord, StaffSession
from tests.unit.fakes import FakeClock, FakeSignInState

A, B = "13800000001", "13800000002"
STAFF = "staff:C1001"  # staff accounts are locked like numbers, under this subject
PURPOSE = "call_list"
TOLERANCE = 0.25  # seconds: how far a Redis TTL may be from the fake's exact one after real time passed
LIMITS = AttemptLimits(threshold=3, lock_for=0.5, memory=0.5)
OPEN = AttemptLimits(threshold=1000, lock_for=60, memory=600)  # never locks: for the code cases
KIOSK, OTHER_KIOSK = "H001/kiosk/K01", "H001/kiosk/K02"
SESSION = Session(A, "call_list", KIOSK)

IMPLEMENTATIONS = ["fake", "redis"]
STAFF_IMPLEMENTATIONS = ["redis"]  # no in-memory StaffDirectory/Sessions fake exists in tests/unit/fakes.py


@dataclass
class Subject:
    """One implementation under test, with its notion of time."""

    state: Any  # the SignInState port
    advance: Callable[[float], Awaitable[None]]
    now: Callable[[], float]


@pytest.fixture(params=IMPLEMENTATIONS)
async def s(request: pytest.FixtureRequest, clean_redis: str) -> AsyncIterator[Subject]:
    if request.param == "fake":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        yield Subject(FakeSignInState(clock), advance, lambda: clock.t)
        return
    client = connect(clean_redis, 1.0)
    try:
        yield Subject(RedisSignInState(client), asyncio.sleep, time.time)
    finally:
        await client.aclose()


def about(seconds: float) -> Any:
    return pytest.approx(seconds, abs=TOLERANCE)


def claim(digest: str, max_tries: int = 5, purpose: str = PURPOSE) -> CodeClaim:
    return CodeClaim(purpose, digest, max_tries)


async def fail_until_locked(s: Subject, subject: str, limits: AttemptLimits = LIMITS) -> list[float]:
    """`threshold` attempts, each failed: the locks each failure set."""
    locks = []
    for _ in range(limits.threshold):
        attempt = await s.state.begin_attempt(subject, limits)
        locks.append(await s.state.fail_attempt(attempt, limits))
    return locks


# --- codes ---------------------------------------------------------------------------------------


async def test_an_issued_code_is_claimed_once(s: Subject) -> None:
    slot = await s.state.issue_code(A, PURPOSE, "right", 60, 0.01, 5)
    assert (slot.allowed, slot.retry_after, slot.locked_for) == (True, 0, 0)
    first = await s.state.begin_attempt(A, OPEN, claim("right"))
    assert (first.locked_for, first.number, first.code, first.code_ok, first.code_tries) == (
        0, 1, claim("right"), True, 0)
    assert first.code_ttl == about(60)
    second = await s.state.begin_attempt(A, OPEN, claim("right"))
    assert second == Attempt(A, 0, 2, claim("right"), False, 0, 0)  # taken: nothing left to compare


async def test_wrong_codes_cost_a_try_each_and_the_last_try_kills_the_code(s: Subject) -> None:
    await s.state.store_code(A, PURPOSE, "right", 60)
    wrong = [await s.state.begin_attempt(A, OPEN, claim("wrong", max_tries=3)) for _ in range(3)]
    assert [(a.code_ok, a.code_tries) for a in wrong] == [(False, 1), (False, 2), (False, 3)]
    assert all(a.code_ttl == about(60) for a in wrong)
    assert not (await s.state.begin_attempt(A, OPEN, claim("right", max_tries=3))).code_ok


async def test_a_code_belongs_to_its_number_and_purpose(s: Subject) -> None:
    await s.state.store_code(A, PURPOSE, "right", 60)
    assert not (await s.state.begin_attempt(B, OPEN, claim("right"))).code_ok
    assert not (await s.state.begin_attempt(A, OPEN, claim("right", purpose="clerk_session"))).code_ok
    assert (await s.state.begin_attempt(A, OPEN, claim("right"))).code_ok


async def test_a_code_dies_with_its_ttl(s: Subject) -> None:
    await s.state.store_code(A, PURPOSE, "right", 0.3)
    await s.advance(0.5)
    expired = await s.state.begin_attempt(A, OPEN, claim("right"))
    assert (expired.code_ok, expired.code_tries, expired.code_ttl) == (False, 0, 0)


async def test_a_stored_code_replaces_the_older_one_with_fresh_tries(s: Subject) -> None:
    await s.state.store_code(A, PURPOSE, "old", 60)
    assert (await s.state.begin_attempt(A, OPEN, claim("wrong"))).code_tries == 1
    await s.state.store_code(A, PURPOSE, "new", 60)
    assert (await s.state.begin_attempt(A, OPEN, claim("old"))).code_tries == 1  # a wrong one now
    assert (await s.state.begin_attempt(A, OPEN, claim("new"))).code_ok


async def test_a_slot_without_a_digest_stores_no_code(s: Subject) -> None:
    assert (await s.state.issue_code(A, PURPOSE, None, 60, 0.01, 5)).allowed
    attempt = await s.state.begin_attempt(A, OPEN, claim("anything"))
    assert (attempt.code_ok, attempt.code_tries, attempt.code_ttl) == (False, 0, 0)


# --- send throttles ------------------------------------------------------------------------------


async def test_a_second_code_within_the_minimum_interval_is_refused_and_the_first_kept(s: Subject) -> None:
    assert (await s.state.issue_code(A, PURPOSE, "first", 60, 0.4, 5)).allowed
    refused = await s.state.issue_code(A, PURPOSE, "second", 60, 0.4, 5)
    assert (refused.allowed, refused.retry_after, refused.locked_for) == (False, about(0.4), 0)
    assert refused.retry_after > 0
    assert (await s.state.issue_code(B, PURPOSE, "other", 60, 0.4, 5)).allowed  # per number
    assert not (await s.state.begin_attempt(A, OPEN, claim("second"))).code_ok
    assert (await s.state.begin_attempt(A, OPEN, claim("first"))).code_ok
    await s.advance(0.6)
    assert (await s.state.issue_code(A, PURPOSE, "third", 60, 0.4, 5)).allowed


async def test_the_hourly_cap_refuses_until_the_hour_is_over(s: Subject) -> None:
    for _ in range(2):
        assert (await s.state.issue_code(A, PURPOSE, None, 60, 0.05, 2)).allowed
        await s.advance(0.1)
    refused = await s.state.issue_code(A, PURPOSE, "code", 60, 0.05, 2)
    assert not refused.allowed and 3600 - 5 < refused.retry_after <= 3600
    assert not (await s.state.begin_attempt(A, OPEN, claim("code"))).code_ok  # no code without a slot


async def test_a_locked_number_takes_a_slot_but_gets_no_code(s: Subject) -> None:
    await fail_until_locked(s, A)
    slot = await s.state.issue_code(A, PURPOSE, "right", 60, 0.01, 5)
    assert slot.allowed and slot.locked_for == about(LIMITS.lock_for)
    await s.state.reset_failures(A, unlock=True)
    assert not (await s.state.begin_attempt(A, OPEN, claim("right"))).code_ok


# --- attempts, failures and locks ----------------------------------------------------------------


@pytest.mark.parametrize("subject", [A, STAFF])
async def test_the_failure_that_reaches_the_threshold_locks_once(s: Subject, subject: str) -> None:
    assert await fail_until_locked(s, subject) == [0, 0, LIMITS.lock_for]
    assert await s.state.lock_remaining(subject) == about(LIMITS.lock_for)
    refused = await s.state.begin_attempt(subject, LIMITS, claim("x"))
    assert (refused.locked_for, refused.number, refused.code, refused.code_ok) == (
        about(LIMITS.lock_for), 0, claim("x"), False)
    assert await s.state.lock_remaining(B) == 0


async def test_attempts_in_flight_count_against_the_threshold(s: Subject) -> None:
    in_flight = [await s.state.begin_attempt(A, LIMITS) for _ in range(LIMITS.threshold)]
    assert [(a.locked_for, a.number) for a in in_flight] == [(0, 1), (0, 2), (0, 3)]
    over = await s.state.begin_attempt(A, LIMITS, claim("x"))
    assert over == Attempt(A, LIMITS.lock_for, 0, claim("x"))  # refused before anything is compared
    assert await s.state.lock_remaining(A) == 0  # no lock yet: the three have not failed
    locks = [await s.state.fail_attempt(a, LIMITS) for a in reversed(in_flight)]
    assert locks == [LIMITS.lock_for, 0, 0]  # the third locks, whenever it fails; nobody else


async def test_a_lock_runs_out_and_the_count_starts_again(s: Subject) -> None:
    await fail_until_locked(s, A)
    await s.advance(0.7)
    assert await s.state.lock_remaining(A) == 0
    assert (await s.state.begin_attempt(A, LIMITS)).number == 1


async def test_failures_add_up_within_the_memory_and_are_forgotten_after_it(s: Subject) -> None:
    await s.state.fail_attempt(await s.state.begin_attempt(A, LIMITS), LIMITS)
    assert (await s.state.begin_attempt(B, LIMITS)).number == 1  # per subject
    await s.advance(0.1)
    second = await s.state.begin_attempt(A, LIMITS)
    assert second.number == 2
    await s.state.fail_attempt(second, LIMITS)
    await s.advance(0.7)
    assert (await s.state.begin_attempt(A, LIMITS)).number == 1


async def test_reset_failures_forgets_the_count_and_unlocks_only_when_asked(s: Subject) -> None:
    await s.state.fail_attempt(await s.state.begin_attempt(A, LIMITS), LIMITS)
    await s.state.reset_failures(A)
    assert (await s.state.begin_attempt(A, LIMITS)).number == 1
    await fail_until_locked(s, B)
    await s.state.reset_failures(B)
    assert await s.state.lock_remaining(B) == about(LIMITS.lock_for)
    await s.state.reset_failures(B, unlock=True)
    assert await s.state.lock_remaining(B) == 0
    assert (await s.state.begin_attempt(B, LIMITS)).number == 1


# --- released attempts (a dependency failed before the attempt could be judged) ------------------


async def test_a_released_attempt_is_uncounted_and_its_taken_code_put_back(s: Subject) -> None:
    await s.state.store_code(A, PURPOSE, "right", 60)
    await s.state.begin_attempt(A, OPEN, claim("wrong"))  # one try used before
    taken = await s.state.begin_attempt(A, OPEN, claim("right"))
    assert (taken.number, taken.code_ok, taken.code_tries) == (2, True, 1)
    await s.state.release_attempt(taken)
    again = await s.state.begin_attempt(A, OPEN, claim("right", max_tries=2))
    assert (again.number, again.code_ok, again.code_tries) == (2, True, 1)
    assert again.code_ttl == about(60)


async def test_a_released_wrong_guess_gives_its_try_back(s: Subject) -> None:
    await s.state.store_code(A, PURPOSE, "right", 60)
    wrong = await s.state.begin_attempt(A, OPEN, claim("wrong", max_tries=2))
    assert wrong.code_tries == 1
    await s.state.release_attempt(wrong)
    assert (await s.state.begin_attempt(A, OPEN, claim("wrong", max_tries=2))).code_tries == 1
    assert (await s.state.begin_attempt(A, OPEN, claim("right", max_tries=2))).code_ok  # one try was left


async def test_a_code_put_back_never_replaces_a_newer_one(s: Subject) -> None:
    await s.state.store_code(A, PURPOSE, "old", 60)
    taken = await s.state.begin_attempt(A, OPEN, claim("old"))
    await s.state.store_code(A, PURPOSE, "new", 60)
    await s.state.release_attempt(taken)
    assert not (await s.state.begin_attempt(A, OPEN, claim("old"))).code_ok
    assert (await s.state.begin_attempt(A, OPEN, claim("new"))).code_ok


async def test_a_code_is_put_back_once_the_newer_one_has_run_out(s: Subject) -> None:
    await s.state.store_code(A, PURPOSE, "old", 60)
    taken = await s.state.begin_attempt(A, OPEN, claim("old"))
    await s.state.store_code(A, PURPOSE, "new", 0.3)
    await s.advance(0.5)
    await s.state.release_attempt(taken)
    assert (await s.state.begin_attempt(A, OPEN, claim("old"))).code_ok


async def test_releasing_an_attempt_without_a_code_only_uncounts_it(s: Subject) -> None:
    first = await s.state.begin_attempt(A, LIMITS)
    await s.state.release_attempt(first)
    await s.state.release_attempt(first)  # never below zero
    assert (await s.state.begin_attempt(A, LIMITS)).number == 1


# --- kiosk sessions ------------------------------------------------------------------------------


async def test_a_session_lives_until_it_is_ended_from_its_own_terminal(s: Subject) -> None:
    await s.state.open_session(A, "tok", SESSION, 60, 600, s.now())
    assert await s.state.touch_session("tok", 60, s.now()) == SESSION
    assert await s.state.touch_session("other", 60, s.now()) is None
    assert await s.state.end_session("tok", OTHER_KIOSK) is False  # another kiosk cannot end it
    assert await s.state.touch_session("tok", 60, s.now()) == SESSION
    assert await s.state.end_session("tok", KIOSK) is True
    assert await s.state.touch_session("tok", 60, s.now()) is None
    assert await s.state.end_session("tok", KIOSK) is False  # ending it again is no error, and ends nothing


async def test_opening_a_session_clears_the_numbers_failures(s: Subject) -> None:
    await s.state.fail_attempt(await s.state.begin_attempt(A, LIMITS), LIMITS)
    await s.state.open_session(A, "tok", SESSION, 60, 600, s.now())
    assert (await s.state.begin_attempt(A, LIMITS)).number == 1


async def test_an_idle_session_runs_out_and_each_use_extends_it(s: Subject) -> None:
    await s.state.open_session(A, "tok", SESSION, 0.8, 600, s.now())
    await s.advance(0.5)
    assert await s.state.touch_session("tok", 0.8, s.now()) == SESSION
    await s.advance(0.5)  # past the first idle end: alive because it was used
    assert await s.state.touch_session("tok", 0.8, s.now()) == SESSION
    await s.advance(1.0)
    assert await s.state.touch_session("tok", 0.8, s.now()) is None


async def test_a_session_ends_at_its_absolute_deadline_however_it_is_used(s: Subject) -> None:
    await s.state.open_session(A, "tok", SESSION, 1.0, 1.6, s.now())
    await s.advance(0.6)
    assert await s.state.touch_session("tok", 1.0, s.now()) == SESSION
    await s.advance(0.6)
    assert await s.state.touch_session("tok", 1.0, s.now()) == SESSION
    await s.advance(0.6)  # within its idle life, past the deadline
    assert await s.state.touch_session("tok", 1.0, s.now()) is None


async def test_a_session_never_idles_longer_than_its_absolute_life(s: Subject) -> None:
    await s.state.open_session(A, "tok", SESSION, 60, 0.3, s.now())
    await s.advance(0.5)
    assert await s.state.touch_session("tok", 60, s.now()) is None


# --- the staff directory and staff/customer sessions ----------------------------------------------


@dataclass
class StaffSubject:
    store: Any  # the StaffDirectory and Sessions ports
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=STAFF_IMPLEMENTATIONS)
async def staff(request: pytest.FixtureRequest, clean_redis: str) -> AsyncIterator[StaffSubject]:
    client = connect(clean_redis, 1.0)
    try:
        yield StaffSubject(RedisStaffStore(client), asyncio.sleep)
    finally:
        await client.aclose()


def record(staff_id: str, disabled: bool = False) -> StaffRecord:
    return StaffRecord(staff_id, f"Staff {staff_id}", "clerk", "H001", "scrypt$hash", 1_750_000_000.5,
                       "JBSWY3DPEHPK3PXP", disabled, employee_no=f"E{staff_id}")


STAFF_SESSION = StaffSession("C1001", "clerk", "H001/clerk/T07", "H001")
CUSTOMER_SESSION = CustomerSession(A, "C1001", "H001/clerk/T07", "H001", "id_document")


async def test_staff_records_read_back_as_written(staff: StaffSubject) -> None:
    await staff.store.put(record("C1002"))
    await staff.store.put(record("C1001", disabled=True))
    assert await staff.store.get("C1002") == record("C1002")
    assert await staff.store.get("C9999") is None
    assert [r.staff_id for r in await staff.store.all()] == ["C1001", "C1002"]
    assert (await staff.store.is_active("C1002"), await staff.store.is_active("C1001"),
            await staff.store.is_active("C9999")) == (True, False, False)


async def test_a_totp_step_is_accepted_once_and_only_after_every_earlier_one(staff: StaffSubject) -> None:
    accept = staff.store.accept_totp_step
    assert [await accept("C1001", step) for step in (100, 100, 99, 101)] == [True, False, False, True]
    assert await accept("C1002", 50)  # per account


@pytest.mark.parametrize(("kind", "session"), [("staff", STAFF_SESSION), ("customer", CUSTOMER_SESSION)])
async def test_staff_and_customer_sessions_are_apart_and_end_on_request(staff: StaffSubject, kind: str,
                                                                        session: Any) -> None:
    open_, read = getattr(staff.store, f"open_{kind}"), getattr(staff.store, kind)
    other = "customer" if kind == "staff" else "staff"
    await open_("tok", session, 60)
    assert await read("tok", 60) == session
    assert await read("other", 60) is None
    assert await getattr(staff.store, other)("tok", 60) is None
    await staff.store.end(other, "tok")
    assert await read("tok", 60) == session
    await staff.store.end(kind, "tok")
    assert await read("tok", 60) is None


@pytest.mark.parametrize(("kind", "session"), [("staff", STAFF_SESSION), ("customer", CUSTOMER_SESSION)])
async def test_staff_and_customer_sessions_idle_out_unless_used(staff: StaffSubject, kind: str,
                                                                 session: Any) -> None:
    open_, read = getattr(staff.store, f"open_{kind}"), getattr(staff.store, kind)
    await open_("tok", session, 0.6)
    await staff.advance(0.35)
    assert await read("tok", 0.6) == session
    await staff.advance(0.35)  # past the first idle end: alive because it was used
    assert await read("tok", 0.6) == session
    await staff.advance(0.8)
    assert await read("tok", 0.6) is None
