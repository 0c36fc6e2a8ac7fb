"""What the subscriber is told by SMS, and how often (R10 transparency without flooding).

A subscriber who looks at six months of calls at a kiosk should learn that it happened, not get
six texts: the first release in a kiosk session is told at once (someone holding a stolen password
and code learns nothing by waiting, and the owner hears of it while it happens); the months
released after it in the same session are told together in one notice when the session ends or
expires. Each notice kind has a per-number daily cap, so a script hammering a number cannot turn
the gateway into an SMS flooder. Lock, reset and SIM-swap notices are immediate (under the cap).

Codes are not notices: they are limited by the code throttle (gateway/domain/owner_proof.py) and
expire with the code they carry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.domain import effects, rules
from gateway.domain.config import pick
from gateway.domain.ports import ReleaseFold, Session, Sms, SmsKind, SmsOutbox, SmsSender

RELEASE_TEXT = ("[hallgate] Your call list for {month} was shown at self-service kiosk {terminal} on {day}. "
                "If this was not you, call customer service and change your service password.")
FOLDED_RELEASE_TEXT = ("[hallgate] In the same kiosk session at {terminal}, your call lists for {months} were "
                       "also shown. If this was not you, call customer service and change your service password.")


@dataclass(frozen=True, slots=True)
class NoticeConfig:
    """How notices are sent (gateway/runtime/settings.py has each one's meaning)."""

    notify_subscriber: bool = True
    notice_daily_cap: int = 5
    notice_ttl: float = 86400
    token_idle: float = 300
    token_absolute: float = 900
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_settings(cls, settings: Any) -> NoticeConfig:
        return pick(cls, settings)


class Notices:
    """Every SMS to a subscriber: builds each message (kind, expiry, cap) and folds call-list
    releases per kiosk session.

    `sms` sends (deferred inside a call, so a notice leaves only once the call is on record);
    `outbox` keeps the folds in the shared store, so any gateway process can end a session or
    sweep the expired ones, and exactly one of them tells each fold.

    A month this process has already folded for a session is not folded again: the fold is a set
    of months, so a repeat could only push back when the fold falls due, never add a month to tell
    (and the session's first month is told at once in any case). That keeps a subscriber paging
    through one month from costing a store round trip and a sealing per call (issue 18). The
    memory is bounded (`folded_limit` pairs, least recently used dropped first); a dropped pair is
    folded again, which is harmless."""

    def __init__(self, config: NoticeConfig, sms: SmsSender, outbox: SmsOutbox,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), folded_limit: int = 50_000) -> None:
        self.s = config
        self.sms = sms
        self.outbox = outbox
        self.clock = clock
        self.folded: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.folded_limit = folded_limit

    def notice(self, kind: SmsKind, to: str, text: str) -> Sms:
        return Sms(kind, to, text, self.clock().timestamp() + self.s.notice_ttl, self.s.notice_daily_cap)

    async def code(self, to: str, text: str, ttl: float) -> None:
        """A one-time code: worthless (so never sent) once the code itself expired."""
        await self.sms.send(Sms(SmsKind.CODE, to, text, self.clock().timestamp() + ttl))

    async def tell(self, kind: SmsKind, to: str, text: str) -> None:
        """An immediate notice (lock, reset, SIM swap), under the daily cap of its kind."""
        await self.sms.send(self.notice(kind, to, text))

    async def released(self, session: Session, month: str) -> None:
        """A call-list month left the gateway in this kiosk session."""
        if not self.s.notify_subscriber:
            return
        seen = (session.ref, month)
        if seen in self.folded:
            self.folded.move_to_end(seen)
            return
        now = self.clock()
        first = await self.outbox.fold_release(session.ref, session.msisdn, session.terminal, month,
                                               due=now.timestamp() + self.s.token_idle, ttl=self.s.token_absolute)
        self.folded[seen] = None  # only once the store has it: a failed fold is tried again
        if len(self.folded) > self.folded_limit:
            self.folded.popitem(last=False)
        if first:
            day = rules.local_today(now, self.s.timezone).isoformat()
            await self.tell(SmsKind.RELEASE, session.msisdn,
                            RELEASE_TEXT.format(month=month, terminal=session.terminal, day=day))

    async def session_ended(self, session_ref: str) -> None:
        """The kiosk session ended: its folded months are told now. The fold is taken only once
        the call is on record; if it never is, the sweep tells it when it falls due."""
        await effects.defer(lambda: self._tell_folds(session_ref))

    async def _tell_folds(self, session_ref: str) -> None:
        for fold in await self.outbox.take_folds(session=session_ref):
            await self._tell_fold(fold)

    async def sweep(self) -> int:
        """Tell the folds of sessions that went quiet (expired); run periodically by every gateway
        process. Returns how many were told."""
        folds = await self.outbox.take_folds(due_by=self.clock().timestamp())
        for fold in folds:
            await self._tell_fold(fold)
        return len(folds)

    async def _tell_fold(self, fold: ReleaseFold) -> None:
        await self.tell(SmsKind.RELEASE, fold.to,
                        FOLDED_RELEASE_TEXT.format(terminal=fold.terminal, months=", ".join(sorted(fold.months))))
