"""What the legal desk needs from outside: the request store, the document store, billing."""


from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.domain.legal.model import LegalRequest, State, Transition
from gateway.domain.legal.validation import DEFAULT_PAGE_SIZE
from gateway.domain.ports import CustomerProfile, StaffRecord, Subscriber

# --- ports -------------------------------------------------------------------------------------


class LegalStore(Protocol):
    """Requests and their histories. Every method is atomic; DependencyUnavailable when the store
    cannot answer."""

    async def create(self, request: LegalRequest, first: Transition) -> bool:
        """Store a new request with its first history entry; False if the id is taken."""
        ...

    async def transition(self, after: LegalRequest, t: Transition) -> bool:
        """Replace the stored request by `after` and append `t` to its history, only if the stored
        one is still version `after.version - 1` in state `t.from_state`; else change nothing and
        return False (someone else moved it first)."""
        ...

    async def get(self, request_id: str) -> LegalRequest | None: ...

    async def history(self, request_id: str) -> list[Transition]:
        """Oldest first."""
        ...

    async def list(self, *, state: State | None = None, case_number: str = "", agency_name: str = "",
                   offset: int = 0, limit: int = DEFAULT_PAGE_SIZE) -> list[LegalRequest]:
        """Newest registration first. Case number and agency name match by `index_key`."""
        ...


class DocumentStore(Protocol):
    """Scanned letters, addressed by their SHA-256."""

    async def put(self, data: bytes) -> str:
        """Store `data`; returns its lower-case hex SHA-256, the reference. Idempotent."""
        ...

    async def get(self, ref: str) -> bytes | None:
        """The stored bytes, None if missing. Not necessarily intact: callers check the digest."""
        ...


class People(Protocol):
    """What four eyes needs of the staff directory: the record behind an account, whose `person`
    (employee number, or the staff id for a record without one) says who is acting."""

    async def get(self, staff_id: str) -> StaffRecord | None: ...


def person_of(staff_id: str, record: StaffRecord | None) -> str:
    """The person behind an account; an account without a record (removed since) is its own person."""
    return record.person if record is not None else f"staff:{staff_id}"


class LegalBilling(Protocol):
    """What the legal desk needs of gateway.domain.ports.Billing."""

    async def get_subscriber(self, msisdn: str) -> Subscriber: ...

    async def get_customer_profile(self, msisdn: str) -> CustomerProfile | None: ...

    def call_detail_pages(self, msisdn: str, month: str) -> AsyncIterator[bytes]: ...


