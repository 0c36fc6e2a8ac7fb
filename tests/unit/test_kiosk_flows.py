"""KioskFlows (gateway/domain/kiosk.py) over the in-memory fakes: the kiosk's rules without Redis or gRPC."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain import rules
from gateway.domain.errors import TooManyRequests, Unauthenticated
from gateway.domain.kiosk import CALL_LIST_SCOPE, KioskConfig, KioskFlows, Texts
from gateway.domain.notices import NoticeConfig, Notices
from gateway.domain.ports import Session
from gateway.runtime.settings import Settings
from hallgate_pb.billing.v1 import billing_pb2
from tests.unit.fakes import FakeBilling, FakeClock, FakeSignInState, FakeSms

KEY = b"unit-test-key"
OWNER, OWNER_PASSWORD = "13800000001", "987654"
OTHER, OTHER_PASSWORD = "13800000002", "123123"
SWAPPED, PORTED, UNKNOWN = "13800000007", "13800000008", "13900000001"
WINDOW = 72 * 3600
CODE_RE = re.compile(r"code is (\d{6})")


@dataclass
class World:
    flows: KioskFlows
    state: FakeSignInState
    billing: FakeBilling
    sms: FakeSms
    clock: FakeClock

    def code_sent_to(self, msisdn: str) -> str:
        codes = [m.group(1) for t in self.sms.to(msisdn) if (m := CODE_RE.search(t))]
        assert codes, f"no code was sent to {msisdn}"
        return codes[-1]

    async def fresh_code(self, msisdn: str) -> str:
        self.clock.advance(self.flows.s.proof.send_min_interval)
        assert await self.flows.request_code(msisdn) == "code_sent"
        return self.code_sent_to(msisdn)


def make_world(**overrides: object) -> World:
    clock = FakeClock()
    now = clock()
    billing = FakeBilling()
    billing.add(OWNER, OWNER_PASSWORD)
    billing.add(OTHER, OTHER_PASSWORD)
    billing.add(SWAPPED, "111111", sim_changed_at=now - timedelta(hours=24))
    billing.add(PORTED, "222222", ported_at=now - timedelta(hours=48))
    state, sms = FakeSignInState(clock), FakeSms()
    settings = Settings(secret_key="unused", answer_floor=0).with_(**overrides)
    notices = Notices(NoticeConfig.from_settings(settings), sms, sms, clock=clock)
    flows = KioskFlows(KioskConfig.from_settings(settings), state, billing, notices, KEY, clock=clock)
    return World(flows, state, billing, sms, clock)


@pytest.fixture
def w() -> World:
    return make_world()


def wrong(secret: str) -> str:
    return f"{(int(secret) + 1) % 1_000_000:06d}"


# --- RequestOneTimeCode --------------------------------------------------------------------------


async def test_existing_number_gets_one_code_stored_only_as_its_digest(w):
    assert await w.flows.request_code(OWNER) == "code_sent"
    [text] = w.sms.to(OWNER)
    code = w.code_sent_to(OWNER)
    assert text == Texts().code[rules.Purpose.CALL_LIST].format(code=code, minutes=5)
    [(digest, tries, _)] = w.state.codes.values()
    assert digest == rules.code_digest(KEY, OWNER, rules.Purpose.CALL_LIST, code) and tries == 0


async def test_unknown_number_gets_nothing_but_takes_a_send_slot(w):
    assert await w.flows.request_code(UNKNOWN) == "unknown_number"
    assert w.sms.sent == [] and w.state.codes == {}
    with pytest.raises(TooManyRequests) as e:
        await w.flows.request_code(UNKNOWN)
    assert e.value.reason == "send_throttled" and e.value.retry_after == 60


@pytest.mark.parametrize("msisdn", [SWAPPED, PORTED])
async def test_sim_swap_window_sends_the_come_in_text_instead_of_a_code(w, msisdn):
    assert await w.flows.request_code(msisdn) == "sim_swap_hold"
    assert w.sms.to(msisdn) == [Texts().sim_swap]
    assert w.state.codes == {}
    assert not CODE_RE.search(Texts().sim_swap)


@pytest.mark.parametrize(("age", "reason"), [(WINDOW - 1, "sim_swap_hold"), (WINDOW, "code_sent"),
                                             (WINDOW + 1, "code_sent")])
async def test_sim_swap_window_edge(age, reason):
    w = make_world()
    w.billing.add(OWNER, OWNER_PASSWORD, sim_changed_at=w.clock() - timedelta(seconds=age))
    assert await w.flows.request_code(OWNER) == reason


async def test_sim_swap_window_follows_the_setting():
    w = make_world(sim_swap_window=3600)  # SWAPPED changed its SIM 24 h ago
    assert await w.flows.request_code(SWAPPED) == "code_sent"


async def test_sends_are_throttled_by_interval_and_per_hour():
    w = make_world(send_min_interval=60, send_max_per_hour=2)
    assert await w.flows.request_code(OWNER) == "code_sent"
    w.clock.advance(59)
    with pytest.raises(TooManyRequests) as e:
        await w.flows.request_code(OWNER)
    assert e.value.retry_after == pytest.approx(1)
    w.clock.advance(1)
    assert await w.flows.request_code(OWNER) == "code_sent"
    w.clock.advance(60)
    with pytest.raises(TooManyRequests) as e:
        await w.flows.request_code(OWNER)
    assert e.value.retry_after == pytest.approx(3600 - 120)
    assert len(w.sms.to(OWNER)) == 2


async def test_a_new_code_replaces_the_old_one(w, monkeypatch):
    codes = iter(["111111", "222222"])
    monkeypatch.setattr(rules, "new_code", lambda: next(codes))
    assert [await w.fresh_code(OWNER), await w.fresh_code(OWNER)] == ["111111", "222222"]
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, OWNER_PASSWORD, "111111")
    assert (await w.flows.authenticate(OWNER, OWNER_PASSWORD, "222222")).token


# --- Authenticate --------------------------------------------------------------------------------


async def test_right_password_and_code_give_a_token_and_a_session(w):
    code = await w.fresh_code(OWNER)
    grant = await w.flows.authenticate(OWNER, OWNER_PASSWORD, code, terminal="kiosk-7")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", grant.token)
    assert grant.idle_timeout == 300 and grant.expires_at == w.clock() + timedelta(seconds=900)
    assert await w.flows.session(grant.token, terminal="kiosk-7") == Session(OWNER, CALL_LIST_SCOPE, "kiosk-7")
    assert grant.token not in str(w.state.sessions)


async def test_a_code_works_once(w):
    code = await w.fresh_code(OWNER)
    await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)


async def test_a_code_expires_with_its_ttl(w):
    code = await w.fresh_code(OWNER)
    w.clock.advance(300)
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)


async def test_a_code_is_bound_to_its_number(w):
    code = await w.fresh_code(OWNER)
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OTHER, OTHER_PASSWORD, code)


async def test_a_code_dies_after_max_wrong_tries():
    w = make_world(code_max_tries=3, lock_threshold=100)
    code = await w.fresh_code(OWNER)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await w.flows.authenticate(OWNER, OWNER_PASSWORD, wrong(code))
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)


def other_purpose_digest(code: str, purpose: str = "bill_copy") -> str:
    """rules.Purpose has one member only, so a code issued for another purpose is built by hand,
    the way rules.code_digest would build it for a purpose of that value."""
    return hmac.new(KEY, f"{OWNER}|{purpose}|{code}".encode(), hashlib.sha256).hexdigest()


async def test_a_code_for_another_purpose_does_not_verify_for_the_call_list(w):
    code = "424242"
    # Stored under the other purpose's key: nothing for the call list.
    await w.state.store_code(OWNER, "bill_copy", other_purpose_digest(code), 300)
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)
    # Even stored under the call list's key, its digest is bound to the other purpose.
    await w.state.store_code(OWNER, rules.Purpose.CALL_LIST.value, other_purpose_digest(code), 300)
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)
    # Control: the same code digested for the call list does verify.
    await w.state.store_code(OWNER, rules.Purpose.CALL_LIST.value, other_purpose_digest(code, "call_list"), 300)
    assert (await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)).token


async def test_password_is_verified_by_billing_even_when_the_code_is_wrong(w):
    code = await w.fresh_code(OWNER)
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, OWNER_PASSWORD, wrong(code))
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OTHER, "555555", "000000")  # no code was ever sent to OTHER
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(UNKNOWN, "666666", "000000")
    assert w.billing.password_checks == [(OWNER, OWNER_PASSWORD), (OTHER, "555555"), (UNKNOWN, "666666")]


async def test_wrong_password_with_right_code_fails_and_burns_the_code(w):
    code = await w.fresh_code(OWNER)
    with pytest.raises(Unauthenticated) as e:
        await w.flows.authenticate(OWNER, wrong(OWNER_PASSWORD), code)
    assert e.value.reason == "bad_credentials"
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)


@pytest.mark.parametrize("bad", ["password", "code", "both"])
async def test_every_kind_of_failure_counts(w, bad):
    code = await w.fresh_code(OWNER)
    password = wrong(OWNER_PASSWORD) if bad in ("password", "both") else OWNER_PASSWORD
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, password, wrong(code) if bad in ("code", "both") else code)
    assert w.state.fail_count(OWNER) == 1


@pytest.mark.parametrize("msisdn", [OWNER, UNKNOWN])
async def test_lock_at_the_threshold_and_the_owner_is_told_only_if_the_number_exists(msisdn):
    w = make_world(lock_threshold=3, lock_duration=1800)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await w.flows.authenticate(msisdn, "000000", "000000")
    assert w.sms.sent == []
    with pytest.raises(TooManyRequests) as e:
        await w.flows.authenticate(msisdn, "000000", "000000")
    assert e.value.reason == "locked_now" and e.value.retry_after == 1800
    expected = [Texts().locked.format(tries=3, minutes=30)] if msisdn == OWNER else []
    assert w.sms.to(msisdn) == expected and len(w.sms.sent) == len(expected)
    assert w.state.lock_count == 1


class SlowBilling(FakeBilling):
    """Yields to the event loop while verifying, so concurrent sign-ins interleave as on a network."""

    async def verify_service_password(self, msisdn: str, password: str) -> bool:
        await asyncio.sleep(0)
        return await super().verify_service_password(msisdn, password)


async def test_concurrent_wrong_attempts_lock_once_and_tell_the_owner_once():
    w = make_world(lock_threshold=5)
    w.billing = SlowBilling(w.billing.subscribers, w.billing.passwords)
    w.flows.billing = w.flows.proof.billing = w.billing
    outcomes = await asyncio.gather(*(w.flows.authenticate(OWNER, "000000", "000000") for _ in range(20)),
                                    return_exceptions=True)
    assert len(w.billing.password_checks) == 5  # counted before checked: only the threshold reached billing
    reasons = sorted(e.reason for e in outcomes if isinstance(e, Unauthenticated | TooManyRequests))
    assert reasons == ["bad_credentials"] * 4 + ["locked"] * 15 + ["locked_now"]
    assert len(w.sms.to(OWNER)) == 1 and w.state.lock_count == 1


async def test_while_locked_nothing_is_checked_no_code_is_sent_and_the_lock_expires():
    w = make_world(lock_threshold=2, lock_duration=600)
    for _ in range(2):
        with pytest.raises((Unauthenticated, TooManyRequests)):
            await w.flows.authenticate(OWNER, "000000", "000000")
    checks, texts = len(w.billing.password_checks), len(w.sms.sent)
    w.clock.advance(60)
    assert await w.flows.request_code(OWNER) == "locked_no_code"
    with pytest.raises(TooManyRequests) as e:
        await w.flows.authenticate(OWNER, OWNER_PASSWORD, "000000")
    assert e.value.reason == "locked" and e.value.retry_after == pytest.approx(540)
    assert len(w.billing.password_checks) == checks and len(w.sms.sent) == texts
    w.clock.advance(540)
    code = await w.fresh_code(OWNER)
    assert (await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)).token


async def test_failures_are_forgotten_after_the_memory():
    w = make_world(lock_threshold=2, fail_memory=100)
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, "000000", "000000")
    w.clock.advance(100)
    with pytest.raises(Unauthenticated):
        await w.flows.authenticate(OWNER, "000000", "000000")


async def test_success_resets_the_failure_count():
    w = make_world(lock_threshold=3)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await w.flows.authenticate(OWNER, wrong(OWNER_PASSWORD), "000000")
    code = await w.fresh_code(OWNER)
    await w.flows.authenticate(OWNER, OWNER_PASSWORD, code)
    assert w.state.fail_count(OWNER) == 0
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await w.flows.authenticate(OWNER, wrong(OWNER_PASSWORD), "000000")
    assert w.state.locks == {}


# --- Sessions ------------------------------------------------------------------------------------


async def signed_in(w: World, terminal: str = "kiosk-1") -> str:
    code = await w.fresh_code(OWNER)
    return (await w.flows.authenticate(OWNER, OWNER_PASSWORD, code, terminal=terminal)).token


async def test_session_refuses_another_scope_and_another_terminal(w):
    token = await signed_in(w, "kiosk-1")
    with pytest.raises(Unauthenticated) as e:
        await w.flows.session(token, terminal="kiosk-1", scope="bill_copy")
    assert e.value.reason == "bad_token"
    for terminal in ("kiosk-2", ""):
        with pytest.raises(Unauthenticated):
            await w.flows.session(token, terminal=terminal)
    assert (await w.flows.session(token, terminal="kiosk-1")).msisdn == OWNER


async def test_session_refuses_unknown_and_ended_tokens(w):
    token = await signed_in(w)
    with pytest.raises(Unauthenticated):
        await w.flows.session(rules.new_token(), terminal="kiosk-1")
    await w.flows.end_session(token, terminal="kiosk-2")  # another kiosk cannot end it
    assert (await w.flows.session(token, terminal="kiosk-1")).msisdn == OWNER
    await w.flows.end_session(token, terminal="kiosk-1")
    with pytest.raises(Unauthenticated):
        await w.flows.session(token, terminal="kiosk-1")


async def test_session_idles_out_and_never_outlives_its_absolute_deadline(w):
    token = await signed_in(w)
    for _ in range(3):  # used every 299 s: still alive at 897 s
        w.clock.advance(299)
        await w.flows.session(token, terminal="kiosk-1")
    w.clock.advance(3)  # 900 s: the absolute deadline
    with pytest.raises(Unauthenticated):
        await w.flows.session(token, terminal="kiosk-1")
    token = await signed_in(w)
    w.clock.advance(300)
    with pytest.raises(Unauthenticated):
        await w.flows.session(token, terminal="kiosk-1")


async def test_call_detail_pages_are_the_sessions_owners(w):
    record = billing_pb2.CallDetail(other_party="13911112222", duration_seconds=42)
    w.billing.records[(OWNER, "2025-05")] = [record] * 3
    session = await w.flows.session(await signed_in(w), terminal="kiosk-1")
    pages = [billing_pb2.ListCallDetailsResponse.FromString(p) async for p in
             w.flows.call_detail_pages(session, "2025-05")]
    assert [len(p.records) for p in pages] == [2, 1]


async def test_today_is_in_the_operators_time_zone():
    w = make_world()
    w.clock.t = datetime(2024, 12, 31, 16, 30, tzinfo=UTC).timestamp()  # 00:30 on 1 January in Shanghai
    assert str(w.flows.today()) == "2025-01-01"
    w.clock.advance(-3600)  # 23:30 on 31 December in Shanghai
    assert str(w.flows.today()) == "2024-12-31"


# --- Texts ---------------------------------------------------------------------------------------


async def test_no_text_ever_contains_the_password(monkeypatch):
    monkeypatch.setattr(rules, "new_code", lambda: "135790")
    w = make_world(lock_threshold=2)
    for msisdn in (OWNER, SWAPPED):
        await w.flows.request_code(msisdn)
    await w.flows.authenticate(OWNER, OWNER_PASSWORD, "135790")
    for _ in range(2):
        with pytest.raises((Unauthenticated, TooManyRequests)):
            await w.flows.authenticate(OWNER, OWNER_PASSWORD, "000000")
    texts = [t for _, t in w.sms.sent]
    assert len(texts) == 3 and any("locked" in t for t in texts) and any("135790" in t for t in texts)
    for password in (OWNER_PASSWORD, "111111"):
        assert not [t for t in texts if password in t]
    assert [t for t in texts if CODE_RE.search(t)] == [texts[0]]  # the code only in the code message
