"""The legal department's desk: every LegalService use case, given the actor."""


from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.domain import delivery, rules
from gateway.domain.errors import DomainError, FailedPrecondition, NotFound, PermissionDenied
from gateway.domain.legal.lifecycle import FulfilScope, Scope, advance, check_step, lapse, reopened, resolve_scope
from gateway.domain.legal.model import (
    READER_ROLES,
    SYSTEM,
    Action,
    Actor,
    AgencyKind,
    AgencyLevel,
    Category,
    LegalConfig,
    LegalRequest,
    State,
    Transition,
)
from gateway.domain.legal.ports import DocumentStore, LegalBilling, LegalStore, People, person_of
from gateway.domain.legal.validation import (
    DEFAULT_PAGE_SIZE,
    MAX_NAME,
    MAX_PAGE_SIZE,
    MAX_REFERENCE,
    RequestDraft,
    check_reason,
    check_request_id,
    months_covering,
    validate_draft,
)

# --- the desk ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestPage:
    requests: list[LegalRequest]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class ListFilter:
    state: State | None = None
    case_number: str = ""
    agency_name: str = ""
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryStart:
    request: LegalRequest  # in state DISCLOSING
    delivery_id: str
    scope: Scope


@dataclass(frozen=True, slots=True)
class DeliveryChunk:
    target: str
    data: bytes  # a serialized hallgate.v1.DeliveryRecords
    call_details: int


@dataclass(frozen=True, slots=True)
class DeliveryEnd:
    request: LegalRequest  # in its final state
    signed: delivery.SignedManifest


DeliveryPart = DeliveryStart | DeliveryChunk | DeliveryEnd


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8).upper()}"


def _describe(err: BaseException) -> str:
    if isinstance(err, DomainError):
        return err.reason
    if isinstance(err, GeneratorExit | asyncio.CancelledError):
        return "the receiving client went away"
    return type(err).__name__


@dataclass
class LegalDesk:
    """The legal department's desk: every use case of the LegalService, given the actor."""

    store: LegalStore
    documents: DocumentStore
    billing: LegalBilling
    signer: delivery.Signer
    config: LegalConfig = field(default_factory=LegalConfig)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    make_id: Callable[[str], str] = field(default=new_id)
    # The staff directory, so four eyes compares people, not accounts: a second account of the
    # registering officer (same employee number) may not approve either. Without it only the
    # registering account itself is refused.
    people: People | None = None

    # --- registration and decisions

    async def register(self, actor: Actor, draft: RequestDraft) -> LegalRequest:
        check_step(Action.REGISTER, actor, None)
        now = self.clock()
        d = validate_draft(draft, now, self.config)
        ref = await self.documents.put(d.letter_content)
        for _ in range(3):
            request = LegalRequest(
                request_id=self.make_id("LR"), state=State.AWAITING_APPROVAL, version=1,
                agency_kind=AgencyKind(d.agency_kind), agency_name=d.agency_name,
                agency_level=AgencyLevel(d.agency_level), letter_reference=d.letter_reference,
                letter_date=d.letter_date, letter_media_type=d.letter_media_type, letter_sha256=ref,
                letter_size=len(d.letter_content), legal_basis=d.legal_basis, case_number=d.case_number,
                officers=tuple(d.officers), targets=tuple(d.targets),
                categories=tuple(Category(c) for c in d.categories), window_start=d.window_start or now,
                window_end=d.window_end or now, registered_by=actor.staff_id, registered_at=now)
            first = Transition(now, Action.REGISTER, None, State.AWAITING_APPROVAL, actor.staff_id, actor.role,
                               f"registered letter {d.letter_reference} of {d.agency_name}")
            if await self.store.create(request, first):
                return request
        raise RuntimeError("could not allocate a request id")

    async def approve(self, actor: Actor, request_id: str, reason: str) -> LegalRequest:
        return await self._decide(actor, request_id, reason, Action.APPROVE)

    async def reject(self, actor: Actor, request_id: str, reason: str) -> LegalRequest:
        return await self._decide(actor, request_id, reason, Action.REJECT)

    async def mark_invalid(self, actor: Actor, request_id: str, reason: str) -> LegalRequest:
        return await self._decide(actor, request_id, reason, Action.MARK_INVALID)

    async def cancel(self, actor: Actor, request_id: str, reason: str) -> LegalRequest:
        return await self._decide(actor, request_id, reason, Action.CANCEL)

    async def _decide(self, actor: Actor, request_id: str, reason: str, action: Action) -> LegalRequest:
        v = rules.Violations()
        request_id, why = check_request_id(v, request_id), check_reason(v, reason)
        v.raise_if_any()
        request = await self._current(request_id)
        same = action == Action.APPROVE and await self._same_person(actor.staff_id, request.registered_by)
        check_step(action, actor, request, same_person=same)
        now = self.clock()
        changes: dict[str, Any] = {"approved_by": actor.staff_id, "approved_at": now} \
            if action == Action.APPROVE else {}
        after = advance(request, action, **changes)
        t = Transition(now, action, request.state, after.state, actor.staff_id, actor.role, why)
        if not await self.store.transition(after, t):
            raise FailedPrecondition("request_changed")
        return after

    async def _same_person(self, staff_id: str, other: str) -> bool:
        """Whether two accounts belong to one person (by the directory as it stands now; a
        directory that cannot answer fails the call: DependencyUnavailable)."""
        if not staff_id or staff_id == other:
            return bool(staff_id)
        if self.people is None:
            return False
        return person_of(staff_id, await self.people.get(staff_id)) == person_of(other, await self.people.get(other))

    # --- queries

    async def get_request(self, actor: Actor, request_id: str) -> tuple[LegalRequest, list[Transition]]:
        self._reader(actor)
        v = rules.Violations()
        request_id = check_request_id(v, request_id)
        v.raise_if_any()
        request = await self._current(request_id)
        return request, await self.store.history(request_id)

    async def get_letter(self, actor: Actor, request_id: str) -> tuple[LegalRequest, bytes]:
        """The request and its letter's bytes, checked against the request's SHA-256 (as a
        fulfilment checks it): the readers see the very letter that authorises the request."""
        request, _ = await self.get_request(actor, request_id)
        await self._check_letter(request)
        data = await self.documents.get(request.letter_sha256)
        if data is None or hashlib.sha256(data).hexdigest() != request.letter_sha256:  # changed meanwhile
            raise FailedPrecondition("letter_corrupt")
        return request, data

    async def list_requests(self, actor: Actor, f: ListFilter) -> RequestPage:
        self._reader(actor)
        v = rules.Violations()
        size = f.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            v.items.append(("page_size", f"must be between 1 and {MAX_PAGE_SIZE}"))
        if f.page_token and not (f.page_token.isascii() and f.page_token.isdigit() and len(f.page_token) < 10):
            v.items.append(("page_token", "must be a next_page_token from a previous page"))
        if len(f.case_number) > MAX_REFERENCE:
            v.items.append(("case_number", f"must be at most {MAX_REFERENCE} characters"))
        if len(f.agency_name) > MAX_NAME:
            v.items.append(("agency_name", f"must be at most {MAX_NAME} characters"))
        v.raise_if_any()
        await self.settle_lapses()
        offset = int(f.page_token or 0)
        found = await self.store.list(state=f.state, case_number=f.case_number, agency_name=f.agency_name,
                                      offset=offset, limit=size + 1)
        more = len(found) > size
        return RequestPage(found[:size], str(offset + size) if more else "")

    def _reader(self, actor: Actor) -> None:
        if not actor.staff_id:
            raise PermissionDenied("no_staff_identity")
        if actor.role not in READER_ROLES:
            raise PermissionDenied("role")

    # --- lazily recorded lapses

    async def _current(self, request_id: str) -> LegalRequest:
        """The request as it stands now, any lapse recorded first."""
        for _ in range(3):
            request = await self.store.get(request_id)
            if request is None:
                raise NotFound("legal_request")
            due = lapse(request, self.clock(), self.config)
            if due is None:
                return request
            await self._record_lapse(request, *due)
        raise FailedPrecondition("request_changed")

    async def _record_lapse(self, request: LegalRequest, action: Action, at: datetime) -> bool:
        if action == Action.EXPIRE:
            after = advance(request, action)
            why = f"the approval lapsed: not disclosed within {self.config.approval_days:g} days"
        else:
            after = reopened(request)
            why = (f"delivery {request.delivery_id} did not finish within {self.config.fulfil_lease:g} seconds; "
                   "a new approval is needed")
        t = Transition(at, action, request.state, after.state, SYSTEM.staff_id, SYSTEM.role, why)
        return await self.store.transition(after, t)

    async def settle_lapses(self) -> None:
        """Record every lapse that is due, so lists by state are right. Concurrent callers are
        harmless: only one transition per version can win."""
        now = self.clock()
        for state in (State.AWAITING_DISCLOSURE, State.DISCLOSING):
            for request in await self.store.list(state=state, limit=10_000):
                due = lapse(request, now, self.config)
                if due is not None:
                    await self._record_lapse(request, *due)

    # --- fulfilment

    async def fulfil(self, actor: Actor, request_id: str, reason: str,
                     scope: FulfilScope | None = None) -> AsyncGenerator[DeliveryPart, None]:
        """Stream the delivery: DeliveryStart, DeliveryChunk…, DeliveryEnd. Nothing is checked
        before the first `anext`; every refusal is raised before DeliveryStart."""
        v = rules.Violations()
        request_id, why = check_request_id(v, request_id), check_reason(v, reason)
        v.raise_if_any()
        request = await self._current(request_id)
        check_step(Action.START_FULFILMENT, actor, request)
        sc = resolve_scope(request, scope or FulfilScope(), self.config)
        await self._check_letter(request)
        now, delivery_id = self.clock(), self.make_id("DL")
        started = advance(request, Action.START_FULFILMENT, delivery_id=delivery_id, fulfilment_started_at=now,
                          fulfilled_by=actor.staff_id)
        t = Transition(now, Action.START_FULFILMENT, request.state, started.state, actor.staff_id, actor.role,
                       f"{why} (delivery {delivery_id})")
        if not await self.store.transition(started, t):
            raise FailedPrecondition("request_changed")
        builder = delivery.DeliveryBuilder(
            request_id=request.request_id, delivery_id=delivery_id, case_number=request.case_number,
            letter_sha256=request.letter_sha256, targets=sc.targets, categories=[c.value for c in sc.categories],
            window_start=sc.window_start, window_end=sc.window_end)
        finished = False
        try:
            yield DeliveryStart(started, delivery_id, sc)
            async with contextlib.aclosing(self._chunks(builder, sc, started)) as chunks:
                async for chunk in chunks:
                    yield chunk
            end = await self._finish(actor, started, builder)
            finished = True
            yield end
        except BaseException as err:
            if not finished:
                await asyncio.shield(self._interrupt(started, builder, err))
            raise

    async def _check_letter(self, request: LegalRequest) -> None:
        """Disclose nothing unless the authorising letter is still on file, unaltered."""
        data = await self.documents.get(request.letter_sha256)
        if data is None:
            raise FailedPrecondition("letter_missing")
        if hashlib.sha256(data).hexdigest() != request.letter_sha256:
            raise FailedPrecondition("letter_corrupt")

    def _within_lease(self, started: LegalRequest) -> None:
        assert started.fulfilment_started_at is not None
        if self.clock() >= started.fulfilment_started_at + timedelta(seconds=self.config.fulfil_lease):
            raise FailedPrecondition("fulfilment_lapsed")

    async def _chunks(self, b: delivery.DeliveryBuilder, sc: Scope,
                      started: LegalRequest) -> AsyncGenerator[DeliveryChunk, None]:
        """Target by target, subscriber record first, then call details oldest first, one billing
        page at a time: only the targets, categories and window in scope ever leave billing."""
        for target in sc.targets:
            if Category.SUBSCRIBER_INFO in sc.categories:
                subscriber = await self.billing.get_subscriber(target)
                profile = await self.billing.get_customer_profile(target) if subscriber.exists else None
                yield DeliveryChunk(target, b.subscriber_chunk(target, subscriber, profile), 0)
            if Category.CALL_DETAILS in sc.categories:
                for month in months_covering(sc.window_start, sc.window_end, self.config.timezone):
                    async for page in self.billing.call_detail_pages(target, month):
                        self._within_lease(started)
                        records = delivery.records_in_window(page, sc.window_start, sc.window_end)
                        if records:
                            yield DeliveryChunk(target, b.call_details_chunk(target, records), len(records))
        self._within_lease(started)

    async def _finish(self, actor: Actor, started: LegalRequest, b: delivery.DeliveryBuilder) -> DeliveryEnd:
        now = self.clock()
        signed = self.signer.sign(b.manifest(now, self.signer.key_id))
        action = Action.DISCLOSE if b.has_data else Action.NOT_AVAILABLE
        after = advance(started, action, manifest=signed.manifest, manifest_signature=signed.signature,
                        manifest_key_id=signed.key_id)
        found = sum(c.subscriber == "found" for c in b.counts.values())
        why = (f"delivery {b.delivery_id}: {b.call_details} call details and {found} subscriber records for "
               f"{len(b.targets)} targets; content sha256 {b.digest}") if b.has_data else \
            f"delivery {b.delivery_id}: billing holds none of the data asked for"
        t = Transition(now, action, started.state, after.state, actor.staff_id, actor.role, why)
        if not await self.store.transition(after, t):
            raise FailedPrecondition("fulfilment_lapsed")
        return DeliveryEnd(after, signed)

    async def _interrupt(self, started: LegalRequest, b: delivery.DeliveryBuilder, err: BaseException) -> None:
        why = (f"delivery {b.delivery_id} interrupted after {b.call_details} call details in {b.chunks} chunks "
               f"({_describe(err)}); a new approval is needed")
        t = Transition(self.clock(), Action.INTERRUPT, started.state, State.AWAITING_APPROVAL, SYSTEM.staff_id,
                       SYSTEM.role, why)
        try:
            await self.store.transition(reopened(started), t)
        except DomainError:
            pass  # the store is down: the lease runs out and the next look records the interruption
