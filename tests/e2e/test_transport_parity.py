"""One call pipeline, two transports: every public RPC, from every hall and branch terminal, with and
without a signed-in staff member, ends with the same status over gRPC and over Connect (the browser
listener, binary protobuf, the terminal's certificate presented to it), and leaves the same audit event.
The website (no certificate) gets the kiosk path only: everything else is refused `wrong_channel`,
on record with the channel `web`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.domain.policy import POLICY
from tests.hostile.fuzz_cases import public_rpcs
from tests.support.connect_client import Answer, browser_client, browser_headers
from tests.support.parity import CERTS, HALLS, through_grpc

# Not staff_id (each transport has its own staff member, so that a SignOut on one leaves the other's
# session), nor the records an audit query read (the trail grew by the gRPC call's own events).
COMPARED = ("method", "channel", "hall", "terminal", "decision", "code", "reason", "role", "subscriber_ref")


def over_connect(gw: Any, method: str, streaming: bool, cert: str | None, md: tuple[tuple[str, str], ...]) -> Answer:
    client = browser_client(gw.browser.port, gw.pki, cert)
    headers = {**browser_headers(), **{k.title(): v for k, v in md}}
    return client.stream(method, b"", headers=headers) if streaming else client.unary(method, b"", headers=headers)


async def web_gateway(make_gateway: Any) -> Any:
    return await make_gateway(browser_listen="127.0.0.1:0", web_channel=True, web_challenge="dev-pass",
                              web_calls_per_minute=100_000, web_proofs_per_hour=100_000)


def event(e: dict[str, str]) -> dict[str, str]:
    out = {k: e.get(k, "") for k in COMPARED}
    if not e.get("method", "").startswith("/hallgate.v1.AuditService/"):
        out["records"] = e.get("records", "")
    return out


@pytest.mark.parametrize("signed_in", [False, True])
async def test_every_rpc_ends_the_same_and_is_audited_the_same_over_grpc_and_connect(make_gateway, signed_in):
    gw = await web_gateway(make_gateway)
    mismatches: list[tuple[Any, ...]] = []
    outcomes = set()
    serial = 0
    for rpc in public_rpcs():
        for cert, role in CERTS.items():
            sessions: list[tuple[tuple[str, str], ...]] = [(), ()]
            if signed_in and role:  # a session each: one transport's SignOut must not end the other's
                for k in range(2):
                    serial += 1
                    secret = await gw.add_staff(f"C{serial:04d}", role, hall=HALLS[role])
                    sessions[k] = await gw.staff_sign_in(cert, f"C{serial:04d}", secret)
            seen = len(await gw.audit_events())
            over_grpc = (await through_grpc(gw, rpc, cert, sessions[0])).name.lower()
            grpc_events = (await gw.audit_events())[seen:]
            seen += len(grpc_events)
            answer = await asyncio.to_thread(over_connect, gw, rpc.method, rpc.streaming, cert, sessions[1])
            connect_events = (await gw.audit_events())[seen:]
            outcomes.add(over_grpc)
            if over_grpc != answer.code:
                mismatches.append((rpc.method, cert, over_grpc, answer.code))
            ours = [event(e) for e in grpc_events]
            theirs = [event(e) for e in connect_events]
            if ours != theirs:
                mismatches.append((rpc.method, cert, ours, theirs))
    for m in mismatches[:6]:
        print(m)
    assert mismatches == []
    assert len(outcomes) >= 3, outcomes  # the matrix reaches several outcomes, not one refusal for all


async def test_the_website_gets_the_kiosk_path_and_nothing_else(make_gateway):
    gw = await web_gateway(make_gateway)
    for rpc in public_rpcs():
        seen = len(await gw.audit_events())
        answer = await asyncio.to_thread(over_connect, gw, rpc.method, rpc.streaming, None, ())
        events = (await gw.audit_events())[seen:]
        assert [e["channel"] for e in events] == ["web"], rpc.method
        rule = POLICY.get(rpc.method)
        if rpc.method.startswith("/hallgate.v1.KioskService/"):
            assert rule is not None and "web" in rule.channels
            assert answer.code in ("invalid_argument", "unauthenticated"), (rpc.method, answer.error)
        else:
            assert (answer.code, events[0]["reason"]) == ("permission_denied", "wrong_channel"), rpc.method
