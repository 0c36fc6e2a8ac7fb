"""The notice rules (gateway/domain/notices.py) on the in-memory SmsOutbox (FakeSms) and a clock
moved by hand: what each SMS is (kind, expiry, daily cap), and how call-list releases in one kiosk
session become one immediate notice plus one folded notice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.domain import effects, request_context
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.notices import FOLDED_RELEASE_TEXT, RELEASE_TEXT, NoticeConfig, Notices
from gateway.domain.ports import ReleaseFold, Session, SmsKind
from tests.unit.fakes import FakeClock, FakeSms

OWNER = "13800000001"
OTHER = "13800000002"
TERMINAL = "H001-K07"
CONFIG = NoticeConfig(notice_daily_cap=3, notice_ttl=7200, token_idle=300, token_absolute=900)


def world(config: NoticeConfig = CONFIG) -> tuple[Notices, FakeSms, FakeClock]:
    clock, sms = FakeClock(), FakeSms()
    return Notices(config, sms, sms, clock=clock), sms, clock


def session(ref: str = "s1", msisdn: str = OWNER, terminal: str = TERMINAL) -> Session:
    return Session(msisdn, "call_list", terminal, ref=ref)


def folded(months: str, terminal: str = TERMINAL) -> str:
    return FOLDED_RELEASE_TEXT.format(terminal=terminal, months=months)


# --- what each message is ---------------------------------------------------------------------------


async def test_a_code_expires_with_the_code_and_has_no_daily_cap():
    notices, sms, clock = world()
    for _ in range(CONFIG.notice_daily_cap + 3):  # codes are limited by the code throttle, not a cap
        await notices.code(OWNER, "Your code is 123456", ttl=120)
    assert len(sms.messages) == CONFIG.notice_daily_cap + 3 and sms.capped == 0
    first = sms.messages[0]
    assert first.kind == SmsKind.CODE and first.to == OWNER and first.text == "Your code is 123456"
    assert first.expires_at == clock.t + 120  # with the code, not the notice ttl
    assert first.daily_cap == 0


async def test_lock_reset_and_sim_swap_notices_carry_the_notice_ttl_and_daily_cap():
    notices, sms, clock = world()
    for kind in (SmsKind.LOCK, SmsKind.RESET, SmsKind.SIM_SWAP):
        await notices.tell(kind, OWNER, f"{kind} notice")
    assert [(m.kind, m.to, m.text) for m in sms.messages] == [
        (SmsKind.LOCK, OWNER, "lock notice"), (SmsKind.RESET, OWNER, "reset notice"),
        (SmsKind.SIM_SWAP, OWNER, "sim_swap notice")]
    assert {m.expires_at for m in sms.messages} == {clock.t + CONFIG.notice_ttl}
    assert {m.daily_cap for m in sms.messages} == {CONFIG.notice_daily_cap}


async def test_the_notice_ttl_is_measured_from_the_moment_of_sending():
    notices, sms, clock = world()
    clock.advance(5000)
    await notices.tell(SmsKind.LOCK, OWNER, "locked")
    assert sms.messages[-1].expires_at == clock.t + CONFIG.notice_ttl


async def test_the_daily_cap_holds_back_immediate_notices_beyond_it_per_kind_and_number():
    notices, sms, _ = world()
    for _ in range(CONFIG.notice_daily_cap + 2):
        await notices.tell(SmsKind.LOCK, OWNER, "locked")
    await notices.tell(SmsKind.RESET, OWNER, "reset")  # another kind: its own cap
    await notices.tell(SmsKind.LOCK, OTHER, "locked")  # another number: its own cap
    assert sms.capped == 2
    assert [(m.kind, m.to) for m in sms.messages] == (
        [(SmsKind.LOCK, OWNER)] * CONFIG.notice_daily_cap + [(SmsKind.RESET, OWNER), (SmsKind.LOCK, OTHER)])


# --- call-list releases, folded per kiosk session -------------------------------------------------------


async def test_the_first_release_of_a_session_is_told_at_once_naming_the_month():
    notices, sms, clock = world()
    await notices.released(session(), "2025-04")
    [message] = sms.messages
    assert message.kind == SmsKind.RELEASE and message.to == OWNER
    assert message.text == RELEASE_TEXT.format(month="2025-04", terminal=TERMINAL, day="2025-06-15")
    assert message.expires_at == clock.t + CONFIG.notice_ttl and message.daily_cap == CONFIG.notice_daily_cap


async def test_the_day_named_in_the_release_notice_is_the_local_day_of_the_hall():
    notices, sms, clock = world()
    clock.t = datetime(2025, 6, 15, 20, 30, tzinfo=UTC).timestamp()  # 04:30 on the 16th in Asia/Shanghai
    await notices.released(session(), "2025-05")
    assert "on 2025-06-16." in sms.messages[0].text


async def test_later_months_are_folded_and_the_first_month_again_is_not():
    notices, sms, _ = world()
    s = session()
    await notices.released(s, "2025-04")
    await notices.released(s, "2025-02")
    await notices.released(s, "2025-04")  # the first month again: already told, not folded
    await notices.released(s, "2025-03")
    await notices.released(s, "2025-02")  # a folded month again: once in the fold
    assert len(sms.messages) == 1  # only the first, at once
    await notices.session_ended(s.ref)
    assert len(sms.messages) == 2
    last = sms.messages[-1]
    assert last.kind == SmsKind.RELEASE and last.to == OWNER
    assert last.text == folded("2025-02, 2025-03")  # sorted; neither 2025-04 nor a month twice
    assert last.daily_cap == CONFIG.notice_daily_cap


async def test_the_fold_is_told_once_when_the_session_ends():
    notices, sms, _ = world()
    s = session()
    for month in ("2025-01", "2025-05", "2025-03"):
        await notices.released(s, month)
    await notices.session_ended(s.ref)  # outside an RPC, `effects.defer` runs at once
    await notices.session_ended(s.ref)
    assert await notices.sweep() == 0  # taken: the sweep does not tell it again
    assert [m.text for m in sms.messages][1:] == [folded("2025-03, 2025-05")]


async def test_a_session_with_only_its_first_release_has_no_fold_to_tell():
    notices, sms, clock = world()
    s = session()
    await notices.released(s, "2025-04")
    await notices.session_ended(s.ref)
    clock.advance(CONFIG.token_absolute * 2)
    assert await notices.sweep() == 0
    assert len(sms.messages) == 1


async def test_months_are_sorted_in_the_folded_text():
    notices, sms, _ = world()
    s = session()
    for month in ("2025-06", "2024-12", "2025-05", "2025-01", "2024-11"):
        await notices.released(s, month)
    await notices.session_ended(s.ref)
    assert sms.messages[-1].text == folded("2024-11, 2024-12, 2025-01, 2025-05")


class UnsortedFolds(FakeSms):
    """An outbox whose folds come back in no particular order (the port does not promise one)."""

    async def take_folds(self, *, session: str | None = None, due_by: float | None = None) -> list[ReleaseFold]:
        return [ReleaseFold(f.to, f.terminal, tuple(reversed(f.months)))
                for f in await super().take_folds(session=session, due_by=due_by)]


async def test_the_notice_sorts_the_months_itself():
    clock, sms = FakeClock(), UnsortedFolds()
    notices = Notices(CONFIG, sms, sms, clock=clock)
    s = session()
    for month in ("2025-01", "2025-02", "2025-04", "2025-03"):
        await notices.released(s, month)
    assert (await sms.take_folds(session="nobody")) == []
    clock.advance(CONFIG.token_idle)
    assert await notices.sweep() == 1
    assert sms.messages[-1].text == folded("2025-02, 2025-03, 2025-04")


async def test_sessions_are_folded_apart():
    notices, sms, _ = world()
    a, b = session("a"), session("b", OTHER, "H002-K01")
    await notices.released(a, "2025-01")
    await notices.released(b, "2025-01")  # another session's first release: told at once too
    await notices.released(a, "2025-02")
    await notices.released(b, "2025-03")
    assert [m.to for m in sms.messages] == [OWNER, OTHER]
    await notices.session_ended("b")
    assert (sms.messages[-1].to, sms.messages[-1].text) == (OTHER, folded("2025-03", "H002-K01"))
    await notices.session_ended("a")
    assert (sms.messages[-1].to, sms.messages[-1].text) == (OWNER, folded("2025-02"))
    assert len(sms.messages) == 4


async def test_the_sweep_tells_only_folds_that_fell_due():
    notices, sms, clock = world()
    quiet, busy = session("quiet"), session("busy", OTHER)
    await notices.released(quiet, "2025-01")
    await notices.released(quiet, "2025-02")  # due at t + token_idle
    clock.advance(200)
    await notices.released(busy, "2025-01")
    await notices.released(busy, "2025-03")  # due at t + 200 + token_idle
    clock.advance(CONFIG.token_idle - 200 - 1)
    assert await notices.sweep() == 0  # neither is due yet
    clock.advance(1)
    assert await notices.sweep() == 1  # the quiet session's fold, exactly at its due time
    assert (sms.messages[-1].to, sms.messages[-1].text) == (OWNER, folded("2025-02"))
    assert await notices.sweep() == 0  # told once
    clock.advance(200)
    assert await notices.sweep() == 1
    assert (sms.messages[-1].to, sms.messages[-1].text) == (OTHER, folded("2025-03"))
    assert len(sms.messages) == 4


async def test_another_release_puts_the_fold_due_later():
    notices, sms, clock = world()
    s = session()
    await notices.released(s, "2025-01")
    await notices.released(s, "2025-02")
    clock.advance(CONFIG.token_idle - 10)
    await notices.released(s, "2025-03")  # the session is still in use: due token_idle from now
    clock.advance(20)
    assert await notices.sweep() == 0
    clock.advance(CONFIG.token_idle)
    assert await notices.sweep() == 1
    assert sms.messages[-1].text == folded("2025-02, 2025-03")


class CountedFolds(FakeSms):
    """An outbox that counts fold calls and can be made to fail them (the store is down)."""

    calls: int = 0
    down: bool = False

    async def fold_release(self, session: str, to: str, terminal: str, month: str, due: float, ttl: float) -> bool:
        self.calls += 1
        if self.down:
            raise DependencyUnavailable("redis")
        return await super().fold_release(session, to, terminal, month, due, ttl)


async def test_a_month_already_folded_here_costs_no_store_call_and_a_failed_fold_is_tried_again():
    clock, sms = FakeClock(), CountedFolds()
    notices = Notices(CONFIG, sms, sms, clock=clock, folded_limit=2)
    s = session()
    for month in ("2025-01", "2025-02", "2025-01", "2025-02", "2025-02"):
        await notices.released(s, month)
    assert sms.calls == 2  # once per (session, month)
    sms.down = True
    with pytest.raises(DependencyUnavailable):
        await notices.released(s, "2025-03")
    sms.down = False
    await notices.released(s, "2025-03")  # not remembered as folded: it is folded now
    assert sms.calls == 4
    await notices.released(s, "2025-01")  # dropped from the bounded memory (limit 2): folded again, harmlessly
    assert sms.calls == 5
    await notices.session_ended(s.ref)
    assert [m.text for m in sms.messages] == [
        RELEASE_TEXT.format(month="2025-01", terminal=TERMINAL, day="2025-06-15"), folded("2025-02, 2025-03")]


async def test_notify_subscriber_off_sends_nothing_and_folds_nothing():
    notices, sms, clock = world(NoticeConfig(notify_subscriber=False))
    s = session()
    for month in ("2025-01", "2025-02", "2025-03"):
        await notices.released(s, month)
    await notices.session_ended(s.ref)
    clock.advance(10_000)
    assert await notices.sweep() == 0
    assert sms.messages == [] and sms.sent == [] and sms.folds == {} and sms.firsts == {}


async def test_folded_notices_are_under_the_daily_cap_of_release_notices():
    notices, sms, _ = world(NoticeConfig(notice_daily_cap=2))
    for n in range(3):
        s = session(f"s{n}")
        await notices.released(s, "2025-01")
        await notices.released(s, "2025-02")
        await notices.session_ended(s.ref)
    assert len(sms.messages) == 2 and sms.capped == 4  # six release notices to one number, two let through


# --- inside an RPC: the fold is taken only once the call is on record ------------------------------------


async def test_inside_a_call_the_fold_is_taken_only_when_the_call_releases_its_effects():
    notices, sms, _ = world()
    s = session()
    await notices.released(s, "2025-01")
    await notices.released(s, "2025-02")

    async def sign_out() -> list[request_context.Effect]:
        call = request_context.begin("/hallgate.v1.KioskService/EndSession", "ipv4:127.0.0.1:1")
        await notices.session_ended(s.ref)
        return call.effects

    pending = await asyncio.create_task(sign_out())  # a task: the call's context stays in it
    assert len(pending) == 1
    assert len(sms.messages) == 1 and s.ref in sms.folds  # nothing taken, nothing told yet
    await pending[0]()  # the audit stage stored the event
    assert len(sms.messages) == 2 and sms.messages[-1].text == folded("2025-02")
    assert s.ref not in sms.folds


async def test_a_call_whose_effects_never_run_leaves_the_fold_to_the_sweep():
    notices, sms, clock = world()
    s = session()
    await notices.released(s, "2025-01")
    await notices.released(s, "2025-03")

    async def failed_sign_out() -> None:
        request_context.begin("/hallgate.v1.KioskService/EndSession", "ipv4:127.0.0.1:1")
        await notices.session_ended(s.ref)  # the call fails: its effects are dropped

    await asyncio.create_task(failed_sign_out())
    assert request_context.active() is None  # the call's context did not leak into the test
    assert len(sms.messages) == 1
    clock.advance(CONFIG.token_idle)
    assert await notices.sweep() == 1
    assert sms.messages[-1].text == folded("2025-03")


async def test_effects_defer_runs_at_once_outside_a_call():
    ran: list[int] = []

    async def effect() -> None:
        ran.append(1)

    await effects.defer(effect)
    assert ran == [1]
