"""Concurrent guessing storms across two gateway processes on one Redis: every attempt is counted
before it is checked, so at most the limit of guesses ever reaches a comparison, whatever the
concurrency; a right attempt in the burst is judged by the same rule."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pyotp
import pytest

from adapters.billing_sim.server import start_billing_sim
from adapters.redis_client import connect
from adapters.redis_staff import RedisStaffStore
from gateway.domain import passwords
from gateway.domain.ports import StaffRecord
from gateway.domain.secretbox import staff_box
from gateway.runtime.settings import Settings
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc, staff_pb2, staff_pb2_grpc
from tests.support.outbox import code_for
from tests.support.processes import Proc
from tests.support.status import outcome
from tests.support.subscribers import ORDINARY, OTHER
from tests.support.tls import KIOSK_CERT, client_credentials, tls_env
from tests.support.trail import trail_sync

Code = grpc.StatusCode
LIMIT = 5
STORM = 50
PHONES = "phones.jsonl"  # what the phones received, from both gateways' SMSC simulators


@pytest.fixture
async def two(tmp_path: Path, redis_url: str, clean_redis: str, pki: Path, billing_data: Any
              ) -> AsyncIterator[tuple[list[Proc], list[Path]]]:
    """Two gateway processes on one Redis, sharing one billing simulator that runs in this test's
    process, so the test can count the password checks that reached billing."""
    billing_server, port = await start_billing_sim(billing_data)
    env = {"HALLGATE_REDIS_URL": redis_url, "HALLGATE_BILLING_TARGET": f"127.0.0.1:{port}",
           "HALLGATE_SECRET_KEY": "k", "HALLGATE_LOCK_THRESHOLD": str(LIMIT), "HALLGATE_ANSWER_FLOOR": "0",
           "HALLGATE_STAFF_HASH_N": "1024", **tls_env(pki),
           # One phone network: the queue is shared, so either gateway's dispatcher may send a code
           # asked for through the other; both embedded SMSC simulators write what phones get here.
           "HALLGATE_SMS_OUTBOX": str(tmp_path / PHONES)}
    dirs = [tmp_path / f"d{i}" for i in (1, 2)]
    gws = [Proc(["serve", "--listen", "{address}", "--dev"], {**env, "HALLGATE_DATA_DIR": str(d)},
                tmp_path / f"gw{i}.log") for i, d in enumerate(dirs)]
    try:
        for g in gws:
            await asyncio.to_thread(g.wait_serving, pki)
        yield gws, dirs
    finally:
        for g in gws:
            await asyncio.to_thread(g.stop)
        await billing_server.stop(0)


def kiosk(gw: Proc, pki: Path) -> kiosk_pb2_grpc.KioskServiceStub:
    return kiosk_pb2_grpc.KioskServiceStub(grpc.aio.secure_channel(gw.address, client_credentials(pki, KIOSK_CERT)))


async def test_a_wrong_password_storm_reaches_billing_at_most_the_limit(two, pki, billing_data):
    gws, dirs = two
    stubs = [kiosk(g, pki) for g in gws]
    await stubs[0].RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=ORDINARY), timeout=10)
    code = await asyncio.to_thread(code_for, dirs[0].parent / PHONES, ORDINARY)
    before = billing_data.password_checks[ORDINARY]
    wrong = [kiosk_pb2.AuthenticateRequest(msisdn=ORDINARY, service_password=f"{i:06d}", one_time_code=code)
             for i in range(STORM)]
    right = kiosk_pb2.AuthenticateRequest(msisdn=ORDINARY, service_password=billing_data.password_for(ORDINARY),
                                          one_time_code=code)
    requests = [*wrong[:STORM // 2], right, *wrong[STORM // 2:]]
    codes = await asyncio.gather(*(outcome(stubs[i % 2].Authenticate(r, timeout=20)) for i, r in enumerate(requests)))
    checked = billing_data.password_checks[ORDINARY] - before
    tally = Counter(codes)
    assert checked <= LIMIT, f"{checked} guesses reached billing's password check ({tally})"
    assert tally[Code.RESOURCE_EXHAUSTED] >= STORM + 1 - LIMIT  # the rest got the lock answer
    assert set(tally) <= {Code.OK, Code.UNAUTHENTICATED, Code.RESOURCE_EXHAUSTED}
    assert tally[Code.OK] <= 1  # the right one: allowed only if it was among the counted
    await asyncio.sleep(0.5)  # notices leave after the answer
    outboxes = [o for o in (dirs[0].parent / PHONES,) if o.exists()]
    notices = sum(1 for o in outboxes for line in o.read_text().splitlines() if "locked" in line and ORDINARY in line)
    assert notices <= 1


async def test_a_wrong_code_storm_across_two_processes_is_held_at_the_limit(two, pki, billing_data):
    gws, dirs = two
    stubs = [kiosk(g, pki) for g in gws]
    await stubs[1].RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=OTHER), timeout=10)
    code = await asyncio.to_thread(code_for, dirs[1].parent / PHONES, OTHER)
    before = billing_data.password_checks[OTHER]
    password = billing_data.password_for(OTHER)
    guesses = [f"{(int(code) + i) % 10**6:06d}" for i in range(1, STORM + 2)]
    codes = await asyncio.gather(*(outcome(stubs[i % 2].Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=OTHER, service_password=password, one_time_code=g), timeout=20)) for i, g in enumerate(guesses)))
    assert billing_data.password_checks[OTHER] - before <= LIMIT
    assert Counter(codes)[Code.UNAUTHENTICATED] <= LIMIT - 1 and Code.OK not in codes
    # The owner's own code no longer opens anything: the number is locked for self-service.
    assert await outcome(stubs[0].Authenticate(kiosk_pb2.AuthenticateRequest(
        msisdn=OTHER, service_password=password, one_time_code=code), timeout=10)) == Code.RESOURCE_EXHAUSTED


async def test_a_wrong_totp_storm_against_one_staff_account_is_held_at_the_limit(two, pki, redis_url):
    gws, _ = two
    client = connect(redis_url, 1.0)
    try:  # enrolled through the same store and key the gateways use (HALLGATE_SECRET_KEY=k)
        box = staff_box(Settings(secret_key="k"), create_server_secret=False)
        await RedisStaffStore(client, box).put(StaffRecord(
            "C9001", "Storm Clerk", "clerk", "H001", passwords.hash_password("stormclerk2026", 2**10),
            time.time() - 86400, pyotp.random_base32(), employee_no="E9001"))
    finally:
        await client.aclose()
    stubs = [staff_pb2_grpc.StaffServiceStub(grpc.aio.secure_channel(
        g.address, client_credentials(pki, "clerk-H001-T07"))) for g in gws]
    codes = await asyncio.gather(*(outcome(stubs[i % 2].SignIn(staff_pb2.SignInRequest(
        staff_id="C9001", password="stormclerk2026", totp_code=f"{i:06d}"), timeout=20)) for i in range(STORM)))
    events = [e for e in trail_sync(redis_url) if e["method"].endswith("StaffService/SignIn")]
    judged = [e for e in events if e["reason"] in ("bad_staff_credentials", "staff_locked_now")]
    assert len(events) == STORM
    assert len(judged) <= LIMIT, Counter(e["reason"] for e in events)  # compared: at most the limit
    assert Counter(codes)[Code.RESOURCE_EXHAUSTED] >= STORM - LIMIT + 1
