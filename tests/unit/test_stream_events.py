"""A stream's events against what left, on the pipeline alone (a list-keeping sink, a send that
records what the trail held when each message left): the closing event of a stream that ends by
sending its last message is stored before that message leaves, in the opening event's append when it
is the only one; a last message that fails to leave is corrected by a second closing event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from gateway.domain import request_context
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.request_context import CallContext
from gateway.pipeline.audit import Recorder
from gateway.pipeline.facts import CallFacts
from gateway.pipeline.run import Pipeline, Refusal

LIST = CallFacts("/hallgate.v1.KioskService/ListCallDetails", kind="server_stream")


class SeeEveryone:
    async def authorize(self, facts: CallFacts, call: CallContext, request: Any) -> None:
        call.channel, call.hall, call.terminal = "kiosk", "H001", "H001/kiosk/K01"


class Appends:
    """AuditSink fake that keeps each append as one group, and can be made to fail."""

    def __init__(self) -> None:
        self.appends: list[list[dict[str, Any]]] = []
        self.checks = 0
        self.down = False

    async def append(self, *events: Mapping[str, Any]) -> None:
        if self.down:
            raise DependencyUnavailable("audit")
        self.appends.append([dict(e) for e in events])

    async def check(self) -> None:
        self.checks += 1
        if self.down:
            raise DependencyUnavailable("audit")

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for group in self.appends for e in group]


def pages(*sizes: int, fail_after: int | None = None) -> Any:
    async def handler(request: Any) -> AsyncIterator[list[int]]:
        call = request_context.current()
        for i, n in enumerate(sizes):
            if fail_after is not None and i == fail_after:
                raise DependencyUnavailable("billing")
            call.records += n
            yield list(range(n))
    return handler


def shape(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["phase"], e["code"], int(e["records"])) for e in events]


async def run(sizes: tuple[int, ...], *, fail_send: int | None = None, fail_after: int | None = None,
              sink: Appends | None = None) -> tuple[Appends, list[list[tuple[str, str, int]]], BaseException | None]:
    """Run a stream of pages of `sizes`; what the trail held as each message left, and the error."""
    sink = sink or Appends()
    seen: list[list[tuple[str, str, int]]] = []

    async def send(message: list[int]) -> None:
        if fail_send is not None and len(seen) == fail_send:
            raise ConnectionResetError("the caller went away")
        seen.append(shape(sink.events))

    err: BaseException | None = None
    try:
        handler = pages(*sizes, fail_after=fail_after)
        await Pipeline(SeeEveryone(), Recorder(sink, b"k")).stream(LIST, None, handler, send)  # type: ignore[arg-type]
    except (Refusal, asyncio.CancelledError) as e:
        err = e
    return sink, seen, err


async def test_a_one_message_stream_is_opened_and_closed_in_one_append_before_it_leaves() -> None:
    sink, seen, err = await run((200,))
    assert err is None
    assert seen == [[("open", "OK", 0), ("close", "OK", 200)]]  # on record before the message left
    assert [shape(group) for group in sink.appends] == [[("open", "OK", 0), ("close", "OK", 200)]]
    assert sink.checks == 0
    opening, closing = sink.events
    assert opening["call"] == closing["call"] and opening["decision"] == closing["decision"] == "allowed"


async def test_a_longer_stream_is_closed_before_its_last_message_and_probed_before_the_others() -> None:
    sink, seen, err = await run((500, 500, 120))
    assert err is None
    assert seen == [[("open", "OK", 0)],
                    [("open", "OK", 0)],
                    [("open", "OK", 0), ("close", "OK", 1120)]]
    assert len(sink.appends) == 2 and sink.checks == 1  # the middle message was preceded by a probe


async def test_a_last_message_that_fails_to_leave_is_corrected_by_a_second_closing_event() -> None:
    sink, seen, err = await run((200,), fail_send=0)
    assert seen == [] and isinstance(err, asyncio.CancelledError)  # the caller went away: ended as the caller's stop
    assert shape(sink.events) == [("open", "OK", 0), ("close", "OK", 200), ("close", "CANCELLED", 0)]
    sink, _, err = await run((500, 70), fail_send=1)
    assert shape(sink.events) == [("open", "OK", 0), ("close", "OK", 570), ("close", "CANCELLED", 500)]


async def test_a_failure_while_the_next_message_is_made_stops_before_the_one_in_hand_leaves() -> None:
    sink, seen, err = await run((500, 500), fail_after=1)  # the second page never comes
    assert seen == [] and isinstance(err, Refusal)  # the first was held back: nothing left
    assert shape(sink.events) == [("", "UNAVAILABLE", 0)]
    assert sink.events[0]["decision"] == "failed"
    sink, seen, err = await run((500, 500, 500), fail_after=2)
    assert len(seen) == 1 and isinstance(err, Refusal) and "incomplete" in err.status.message
    assert shape(sink.events) == [("open", "OK", 0), ("close", "UNAVAILABLE", 500)]


async def test_a_trail_that_cannot_take_the_closing_event_keeps_the_last_message_back() -> None:
    sink = Appends()

    sent: list[int] = []

    async def send(message: list[int]) -> None:
        sent.append(len(message))
        sink.down = True  # the trail goes away as the first message leaves

    with pytest.raises(Refusal) as e:
        await Pipeline(SeeEveryone(), Recorder(sink, b"k")).stream(LIST, None, pages(500, 80), send)  # type: ignore[arg-type]
    assert sent == [500] and "incomplete" in e.value.status.message
    assert shape(sink.events) == [("open", "OK", 0)]  # the closing event waits for the trail (kept late)


async def test_a_stream_with_no_message_leaves_one_event() -> None:
    sink, seen, err = await run(())
    assert err is None and seen == [] and shape(sink.events) == [("", "OK", 0)]
