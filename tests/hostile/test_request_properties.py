"""Property-based tests of every request message of the public API (hypothesis), over real
mutual-TLS channels to a real gateway on a real Redis: random field values (unicode, strings up to
and past the size limit, negative and out-of-range numbers, bad timestamps), unknown fields,
damaged valid messages and random bytes as the whole message, each sent from the certificate of
the channel the RPC belongs to with a staff member of a fitting role signed in. Every answer must
be a status of the allowed set whose message and details name no internals, INVALID_ARGUMENT must
carry a google.rpc.BadRequest, and OK answers must decode (tests/hostile/rpc_fuzz.py, whose long
run is `make fuzz`). The RPCs come from the service descriptors, so a new one is covered as it is
added."""

from __future__ import annotations

import time

import grpc

from gateway.domain.policy import POLICY
from gateway.runtime.bootstrap import REGISTER_LEGAL_REQUEST, SERVICES
from tests.hostile import rpc_fuzz as fz

EXAMPLES = 25  # per RPC: about 600 calls in all, a few seconds


async def test_every_rpc_of_the_api_is_found_and_called_from_its_own_channel():
    rpcs = fz.public_rpcs()
    assert {r.method.split("/")[1] for r in rpcs} == set(SERVICES) - {"grpc.health.v1.Health"}
    assert {r.method for r in rpcs} == set(POLICY)  # a new RPC without a policy row is caught here too
    for r in rpcs:
        assert r.channel in POLICY[r.method].channels
        assert set(r.roles) <= POLICY[r.method].roles and (r.roles or not POLICY[r.method].roles), r.name


async def test_every_request_gets_a_proper_status_and_no_internals(make_gateway):
    gw = await make_gateway(send_min_interval=0, send_max_per_hour=10**9)
    target = fz.Target(gw.port, gw.pki, gw.redis, gw.billing, gw.outbox_path)
    try:
        staff = fz.Staff(target)
        live = fz.base_live(gw.billing)
        notes = await fz.prepare_live(target, staff, live)
        assert not notes, notes  # the live values exist, so the cases get past the first checks
        limits = {REGISTER_LEGAL_REQUEST: gw.settings.legal_max_letter_bytes + 64 * 1024}
        maker = fz.Maker(live, lambda m: limits.get(m, gw.settings.max_message_bytes))
        started = time.monotonic()
        tally = await fz.fuzz(target, fz.hypothesis_cases(maker, EXAMPLES, fz.Plan()), EXAMPLES, seconds=90,
                              staff=staff)
    finally:
        await target.close()
    assert not tally.failures, "\n".join(str(f) for f in tally.failures[:20])
    assert not tally.stopped_early and time.monotonic() - started < 90
    codes = {code for counts in tally.codes.values() for code in counts}
    assert codes <= {c.name for c in fz.ALLOWED}
    assert {"OK", "INVALID_ARGUMENT"} <= codes  # both the happy path and the validators were reached
    assert all(sum(c.values()) >= EXAMPLES // 2 for c in tally.codes.values()), tally.table()


async def test_random_bytes_as_the_whole_message_get_invalid_argument_or_a_refusal(gw):
    """The plainest hostile input, for every RPC: bytes that are no protobuf at all."""
    for rpc in fz.public_rpcs():
        channel = gw.channel_for(fz.CERTS[rpc.channel])
        method = channel.unary_stream(rpc.method) if rpc.streaming else channel.unary_unary(rpc.method)
        call = method(b"\xff\xff\xff\x07", timeout=fz.DEADLINE)
        try:
            if rpc.streaming:
                async for _ in call:
                    pass
            else:
                await call
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as err:
            code = err.code()
            outcome = fz.judge(rpc, code, err.details() or "", list(err.trailing_metadata() or ()), [])
            assert not outcome.problems, (rpc.name, outcome)
        # Staff RPCs refuse the unsigned caller first; the others cannot decode the request.
        wanted = grpc.StatusCode.UNAUTHENTICATED if rpc.roles else grpc.StatusCode.INVALID_ARGUMENT
        assert code == wanted, (rpc.name, code)
