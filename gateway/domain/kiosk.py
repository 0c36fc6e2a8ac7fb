"""The kiosk call-list path (R4, R9 way 1): one-time code, owner sign-in, call list, sign-out.

Pure service logic over the ports: no gRPC, no Redis. Inputs arrive validated by the servicer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway.domain import purposes, rules
from gateway.domain.config import pick
from gateway.domain.errors import Unauthenticated
from gateway.domain.notices import Notices
from gateway.domain.owner_proof import OwnerProof, ProofConfig, Texts
from gateway.domain.ports import AccessLog, Billing, Session, SignInState

CALL_LIST_SCOPE = "call_list"
# What a subscriber is shown of each audited method; anything else never appears in their history.
HISTORY_WORDS = {
    "/hallgate.v1.KioskService/ListCallDetails": "call list viewed {where}",
    "/hallgate.v1.KioskService/Authenticate": "sign-in {where}",
    "/hallgate.v1.KioskService/ListAccessHistory": "access history viewed {where}",
    "/hallgate.v1.ClerkService/OpenCustomerSession": "identified at a service hall counter",
    "/hallgate.v1.ClerkService/GetCustomerProfile": "profile viewed at a service hall counter",
    "/hallgate.v1.ClerkService/ResetServicePassword": "service password reset at a service hall counter",
    "/hallgate.v1.ClerkService/GetCodeDelivery": "code SMS delivery checked at a service hall counter",
}
# The channels a subscriber sees in their history, and where each is (R9: a kiosk or the website).
HISTORY_CHANNELS = {"kiosk": "at a self-service kiosk", "web": "on the website", "clerk": "at a service hall counter"}
LIST_CALL_DETAILS = "/hallgate.v1.KioskService/ListCallDetails"

__all__ = ["CALL_LIST_SCOPE", "Grant", "KioskConfig", "KioskFlows", "Texts"]


@dataclass(frozen=True, slots=True)
class Grant:
    """A successful sign-in: the token goes to the kiosk, the rest to the audit trail."""

    token: str
    idle_timeout: float
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class KioskConfig:
    """What the kiosk's rules need of the settings, the owner proof's included."""

    proof: ProofConfig
    token_idle: float = 300
    token_absolute: float = 900
    timezone: str = "Asia/Shanghai"
    retention_months: int = 6
    history_days: int = 365

    @classmethod
    def from_settings(cls, settings: Any) -> KioskConfig:
        return pick(cls, settings, proof=ProofConfig.from_settings(settings))


class KioskFlows:
    """The kiosk's rules over the shared owner proof."""

    def __init__(self, config: KioskConfig, state: SignInState, billing: Billing, notices: Notices,
                 key: bytes, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 texts: Texts | None = None, access_log: AccessLog | None = None) -> None:
        self.s = config
        self.state = state
        self.billing = billing
        self.notices = notices
        self.key = key
        self.clock = clock
        self.access_log = access_log
        self.proof = OwnerProof(config.proof, state, billing, notices, key, clock, texts)

    async def request_code(self, msisdn: str, purpose: rules.Purpose = rules.Purpose.CALL_LIST) -> str:
        return await self.proof.request_code(msisdn, purpose)

    async def authenticate(self, msisdn: str, password: str, code: str, terminal: str = "",
                           purpose: rules.Purpose = rules.Purpose.CALL_LIST) -> Grant:
        """An access token bound to the number, the scope and the kiosk, after both proofs."""
        await self.proof.verify(msisdn, password, code, purpose)
        token = rules.new_token()
        now = self.clock()
        await self.state.open_session(msisdn, rules.token_digest(token), Session(msisdn, CALL_LIST_SCOPE, terminal),
                                      self.s.token_idle, self.s.token_absolute, now.timestamp())
        return Grant(token, self.s.token_idle, now + timedelta(seconds=self.s.token_absolute))

    async def session(self, token: str, terminal: str = "", scope: str = CALL_LIST_SCOPE) -> Session:
        """The live session behind a token, or Unauthenticated (unknown, expired, ended, issued for
        another scope, or presented by another terminal than the one it was issued to)."""
        digest = rules.token_digest(token)
        found = await self.state.touch_session(digest, self.s.token_idle, self.clock().timestamp())
        if found is None or found.scope != scope or found.terminal != terminal:
            raise Unauthenticated("bad_token")
        return replace(found, ref=digest)

    def today(self) -> date:
        return rules.local_today(self.clock(), self.s.timezone)

    def call_detail_pages(self, session: Session, month: str) -> AsyncIterator[bytes]:
        """The owner's month, page by page straight from billing: the gateway stores none of it."""
        return self.billing.call_detail_pages(session.msisdn, month)

    async def notify_release(self, session: Session, month: str) -> None:
        """R10 transparency: the owner learns of every release of their call list (one notice per
        session and its first month at once: gateway/domain/notices.py)."""
        await self.notices.released(session, month)

    async def history(self, session: Session) -> list[tuple[datetime, str, str, str, str, str]]:
        """The owner's accesses through halls and kiosks, newest first: (time, hall, channel, what,
        outcome, purpose). Only events about this subscriber's pseudonym on hall channels and of the
        methods in HISTORY_WORDS count, so legal-channel work can never show (no tipping off). The
        purpose is a counter session's, in words (R2, R10; never the clerk's reason)."""
        if self.access_log is None:
            return []
        since = self.clock() - timedelta(days=self.s.history_days)
        found: list[tuple[datetime, str, str, str, str, str, str]] = []
        released: dict[str, str] = {}  # call id -> records that left, from a stream's closing event
        async for e in self.access_log.accesses(rules.subscriber_ref(self.key, session.msisdn), since):
            what = HISTORY_WORDS.get(e.get("method", ""))
            if what is None or e.get("channel") not in HISTORY_CHANNELS:
                continue
            what = what.format(where=HISTORY_CHANNELS[e["channel"]])
            if e.get("phase") == "close":
                released[e.get("call", "")] = e.get("records", "0")
                continue
            outcome = "allowed" if e.get("decision") == "allowed" else "refused"
            found.append((datetime.fromisoformat(e["at"]), e.get("hall", ""), e["channel"], what, outcome,
                          purposes.words(e.get("purpose", "")),
                          e.get("call", "") if e.get("method") == LIST_CALL_DETAILS else ""))
        return sorted(((at, hall, channel, f"{what} ({released[call]} records)" if call in released else what, outcome,
                        purpose) for at, hall, channel, what, outcome, purpose, call in found), reverse=True)

    async def end_session(self, token: str, terminal: str) -> None:
        """Ends the token only on the kiosk it was issued to; elsewhere nothing happens (and the
        answer is the same, so another kiosk learns nothing about the token)."""
        digest = rules.token_digest(token)
        if await self.state.end_session(digest, terminal):
            await self.notices.session_ended(digest)
