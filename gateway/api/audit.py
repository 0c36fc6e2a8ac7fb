"""AuditService over gRPC: auditors' queries, chain verification and export (R10)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc

from gateway.domain import audit_chain as ac
from gateway.domain import request_context, rules
from gateway.domain.ports import AuditReader
from hallgate_pb.v1 import audit_pb2, audit_pb2_grpc

MAX_EVENTS = 100_000
EXPORT_CHUNK = 256 * 1024
TEXT_RE = re.compile(r"[A-Za-z0-9_./:-]{1,128}")
DECISIONS = {"allowed", "denied", "invalid", "failed"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _filter(v: rules.Violations, f: audit_pb2.EventFilter, key: bytes) -> ac.AuditFilter:
    """The proto filter as an AuditFilter. A number is matched by its keyed pseudonym, so the
    trail never needs to hold it, and masked numbers (shared by many) are never what matches."""
    ref = None
    if f.msisdn:
        rules.check_msisdn(v, f.msisdn, "filter.msisdn")
        ref = rules.subscriber_ref(key, f.msisdn)
    for name in ("staff_id", "terminal", "hall", "method", "channel"):
        if getattr(f, name):
            v.check(f"filter.{name}", getattr(f, name), TEXT_RE, "letters, digits and ._/:- (at most 128)")
    if f.decision and f.decision not in DECISIONS:
        v.items.append(("filter.decision", f"must be one of {', '.join(sorted(DECISIONS))}"))
    start = _time(v, f, "start_time")
    end = _time(v, f, "end_time")
    if start and end and end < start:
        v.items.append(("filter.end_time", "must not be before start_time"))
    v.raise_if_any()
    if start is not None and start <= EPOCH:
        start = None  # nothing is older than the stream itself
    if end is not None:
        end += timedelta(milliseconds=1)  # the API's end is inclusive; the filter's is exclusive
    return ac.AuditFilter(staff_id=f.staff_id or None, terminal=f.terminal or None, hall=f.hall or None,
                          method=f.method or None, decision=f.decision or None, channel=f.channel or None,
                          start=start, end=end, subscriber_ref=ref)


def _time(v: rules.Violations, f: audit_pb2.EventFilter, name: str) -> datetime | None:
    if not f.HasField(name):
        return None
    try:
        return getattr(f, name).ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError):
        v.items.append((f"filter.{name}", "must be a valid time between years 1 and 9999"))
        return None


def _event(record: dict[str, str]) -> audit_pb2.AuditEvent:
    fields = {k: v for k, v in record.items() if k not in {"chain", "id"}}
    return audit_pb2.AuditEvent(seq=int(fields.get("seq", "0") or 0), id=record.get("id", ""), fields=fields)


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, reader: AuditReader, key: bytes) -> None:
        self.reader = reader
        self.key = key

    async def QueryEvents(self, request: audit_pb2.QueryEventsRequest, context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[audit_pb2.QueryEventsResponse]:
        v = rules.Violations()
        where = _filter(v, request.filter, self.key)
        if request.limit < 0:
            v.items.append(("limit", "must not be negative"))
        v.raise_if_any()
        call = request_context.current()
        call.msisdn = request.filter.msisdn
        call.detail = "query"
        async for record in self.reader.query(where, limit=request.limit or MAX_EVENTS):
            call.records += 1
            yield audit_pb2.QueryEventsResponse(event=_event(record))

    async def VerifyChain(self, request: audit_pb2.VerifyChainRequest, context: grpc.aio.ServicerContext
                          ) -> audit_pb2.VerifyChainResponse:
        v = rules.Violations()
        for name in ("start_seq", "end_seq"):
            if getattr(request, name) < 0:
                v.items.append((name, "must not be negative"))
        if not v.items and request.end_seq and request.start_seq > request.end_seq:
            v.items.append(("end_seq", "must not be below start_seq"))
        v.raise_if_any()
        # No range: incremental when the reader keeps verified positions (only events after the last
        # one are read, and a new one is recorded on success). A range: exactly that range, as ever.
        rejected = ""
        positions: dict[str, int] = {"started_after_seq": max(0, request.start_seq - 1)}
        if not request.start_seq and not request.end_seq:
            run: ac.IncrementalResult = await self.reader.verify_incremental()
            result, rejected = run.result, run.rejected
            positions = {"started_after_seq": run.started_after_seq, "checkpoint_seq": run.checkpoint_seq,
                         "verified_through_seq": run.verified_through_seq}
        else:
            result = await self.reader.verify(request.start_seq or None, request.end_seq or None)
        start = result.anchor if not (request.start_seq or request.end_seq) else "range"
        request_context.current().detail = (f"verify ok={result.ok} checked={result.checked} from={start}"
                                            + (" verified-position-rejected" if rejected else ""))
        return audit_pb2.VerifyChainResponse(
            ok=result.ok, checked=result.checked, first_bad_seq=result.first_bad_seq or 0,
            first_bad_id=result.first_bad_id or "", reason=result.reason or "", verified_from=start,
            verified_position_rejected="".join(c if " " <= c <= "~" else "?" for c in rejected)[:300],
            last_checked_seq=result.last_seq or 0, **positions)

    async def ExportEvents(self, request: audit_pb2.ExportEventsRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[audit_pb2.ExportEventsResponse]:
        v = rules.Violations()
        where = _filter(v, request.filter, self.key)
        call = request_context.current()
        call.msisdn = request.filter.msisdn
        call.detail = "export"
        buffer: list[bytes] = []
        size = 0
        async for record in self.reader.query(where, limit=MAX_EVENTS):
            line = ac.to_json_line(record).encode()
            buffer.append(line)
            size += len(line)
            call.records += 1
            if size >= EXPORT_CHUNK:
                yield audit_pb2.ExportEventsResponse(jsonl=b"".join(buffer))
                buffer, size = [], 0
        if buffer:
            yield audit_pb2.ExportEventsResponse(jsonl=b"".join(buffer))
