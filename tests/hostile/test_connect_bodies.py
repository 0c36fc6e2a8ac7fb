"""Hostile bodies on the browser listener: for every public RPC, six drawn from random bytes as binary
protobuf, random and wrongly typed JSON, and oversized bodies, from the website or a kiosk certificate.
None ends INTERNAL or UNKNOWN, none hangs, and every call leaves exactly one audit event (two for a
stream that opened), so nothing reaches the API without being on record."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from tests.hostile.fuzz_cases import public_rpcs
from tests.support.connect_client import browser_client, browser_headers
from tests.support.tls import KIOSK_CERT

SEED = 20261130
ACCEPTABLE = {"ok", "invalid_argument", "unauthenticated", "permission_denied", "resource_exhausted",
              "failed_precondition", "not_found", "unimplemented"}


def bodies(rng: random.Random, rpc: Any) -> list[tuple[bytes, bool]]:
    """(body, is_json) cases for one RPC."""
    fields = [f.json_name for f in rpc.request.DESCRIPTOR.fields] or ["x"]
    values: list[Any] = [None, 1, -1, 2**70, 1.5, True, "", "\u0000", "x" * 300, [], {}, [1, "a"], {"a": {"b": []}}]
    out: list[tuple[bytes, bool]] = [(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))), False)
                                     for _ in range(3)]
    out.append((b"\x0a\xff\xff\xff\xff\x0f", False))  # a length far past the end
    for _ in range(4):
        obj = {rng.choice(fields): rng.choice(values) for _ in range(rng.randint(1, 3))}
        out.append((json.dumps(obj).encode(), True))
    out += [(b"{", True), (b"[]", True), (b'"\xff\xfe"', True), (b"null", True),
            (json.dumps({fields[0]: "y" * 200_000}).encode(), True)]  # over the request limit
    return out


async def test_hostile_bodies_never_fail_inside_and_are_all_on_record(make_gateway):
    gw = await make_gateway(browser_listen="127.0.0.1:0", web_channel=True, web_challenge="dev-pass",
                            web_calls_per_minute=100_000, web_proofs_per_hour=100_000)
    rng = random.Random(SEED)
    failures: list[tuple[str, str, bytes]] = []
    calls = 0

    clients = {cert: browser_client(gw.browser.port, gw.pki, cert) for cert in (None, KIOSK_CERT)}

    def run(rpc: Any, cert: str | None, body: bytes, is_json: bool) -> str:
        client = clients[cert]
        call = client.stream if rpc.streaming else client.unary
        return call(rpc.method, body, json_body=is_json, headers=browser_headers()).code

    before = len(await gw.audit_events())
    for i, rpc in enumerate(public_rpcs()):  # six cases each, from the website or a kiosk in turn
        cert = (None, KIOSK_CERT)[i % 2]
        for body, is_json in rng.sample(bodies(rng, rpc), 6):
            code = await asyncio.wait_for(asyncio.to_thread(run, rpc, cert, body, is_json), 30)
            calls += 1
            if code not in ACCEPTABLE:
                failures.append((rpc.method, code, body[:80]))
    assert failures == []
    events = (await gw.audit_events())[before:]
    assert len([e for e in events if e.get("phase") != "close"]) == calls
