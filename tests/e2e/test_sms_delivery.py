"""SMS over SMPP, end to end: a real gateway (real gRPC, real Redis) queues each message; its
dispatcher submits it over SMPP to the SMSC simulator, a separate process with its own protocol
implementation (adapters/smsc_sim), on a loopback port. What the simulator received is what the
phone got (its outbox file). Faults are the simulator's: down, throttling, a dropped connection
mid-window, a wrong bind password, lost receipts."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from adapters.redis_server import free_port
from adapters.sms.queue import STREAM
from adapters.sms.sim_process import SmscSimProcess
from adapters.sms_outbox import read_outbox
from gateway.domain.ports import Sms, SmsKind
from hallgate_pb.v1 import kiosk_pb2
from tests.support.dates import month
from tests.support.outbox import CODE_RE
from tests.support.processes import HALLGATE, hallgate, serve
from tests.support.tls import KIOSK_CERT, tls_env
from tests.support.waiting import wait_for, wait_until

pytestmark = pytest.mark.timeout(90)

OWNER = "13800000001"
LONG_CHINESE = "【通知】" + "您的通话详单已于营业厅自助终端查询。如非本人操作，请致电客服并修改服务密码。" * 3  # noqa: RUF001


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    return data / "sms-outbox.jsonl"


@pytest.fixture
def smsc(outbox: Path) -> Iterator[SmscSimProcess]:
    sim = SmscSimProcess(outbox, listen=f"127.0.0.1:{free_port()}").start()
    yield sim
    sim.stop()


def smpp(sim: SmscSimProcess, **more: Any) -> dict[str, Any]:
    """Gateway settings for the simulator, with short timeouts so faults show within seconds."""
    return {"sms_url": sim.url, "sms_password": sim.password, "sms_submit_timeout": 2.0, "sms_claim_idle": 3.0,
            "sms_receipt_timeout": 30.0, "send_min_interval": 0, **more}


def lines(outbox: Path, number: str | None = None) -> list[dict[str, Any]]:
    return read_outbox(outbox, number)


async def state_of(gw: Any, number: str, kind: SmsKind = SmsKind.CODE) -> str:
    found = await gw.deps.sms.last_delivery(number, kind)
    return found.state if found else "none"


async def reaches(gw: Any, number: str, state: str, kind: SmsKind = SmsKind.CODE, limit: float = 10.0) -> None:
    async def there() -> bool:
        return await state_of(gw, number, kind) == state

    await wait_for(there, limit, what=f"the {kind} SMS to {number} reaching {state}")


async def notices(gw: Any, texts: list[str], number: str = OWNER) -> None:
    for text in texts:
        await gw.deps.sms.send(Sms(SmsKind.RELEASE, number, text, time.time() + 60))


async def arrived(outbox: Path, texts: list[str], limit: float = 20.0) -> None:
    async def all_there() -> bool:
        got = [m["text"] for m in lines(outbox)]
        return all(t in got for t in texts)

    await wait_for(all_there, limit, what=f"{len(texts)} messages in the outbox")


# --- the happy path ------------------------------------------------------------------------------


async def test_a_code_reaches_the_phone_over_smpp_and_its_receipt_is_recorded(make_gateway, smsc, outbox):
    gw = await make_gateway(**smpp(smsc))
    code = await gw.request_code(OWNER)
    [line] = lines(outbox, OWNER)
    assert code in line["text"] and line["segments"] == 1
    await reaches(gw, OWNER, "delivered")
    stats = smsc.stats()
    assert stats["binds"] == 1 and stats["accepted"] == 1 and stats["receipts_sent"] == 1
    # The queue kept nothing once the SMSC took it: no entry, so no sealed text either.
    assert await gw.redis.xlen(STREAM) == 0


async def test_a_chinese_text_longer_than_one_segment_arrives_whole(make_gateway, smsc, outbox):
    gw = await make_gateway(**smpp(smsc))
    await notices(gw, [LONG_CHINESE])
    await arrived(outbox, [LONG_CHINESE])
    [line] = lines(outbox, OWNER)
    assert line["text"] == LONG_CHINESE and line["segments"] > 1 and line["data_coding"] == 8


# --- the SMSC away ---------------------------------------------------------------------------------


async def test_with_the_smsc_down_the_kiosk_answer_is_unchanged_and_the_code_goes_when_it_returns(
        make_gateway, smsc, outbox):
    gw = await make_gateway(**smpp(smsc))
    await gw.request_code("13800000002")  # bound and working
    smsc.kill()
    started = time.monotonic()
    reply = await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=OWNER))
    assert time.monotonic() - started < 0.5  # nobody waits for the SMSC
    assert reply.code_valid_for.seconds == 300 and reply.resend_after.seconds == 0  # as when the SMSC is up
    await asyncio.sleep(1.0)
    assert lines(outbox, OWNER) == [] and await gw.redis.xlen(STREAM) == 1 and await state_of(gw, OWNER) == "queued"
    # In the queue the message is sealed: neither the number nor the text is there in the clear.
    [(_, fields)] = await gw.redis.xrange(STREAM)
    raw = json.dumps({k.decode(): v.decode() for k, v in fields.items()})
    assert OWNER not in raw and "code" not in raw.replace('"kind": "code"', "") and "hgbox1." in raw
    smsc.start()  # the same port: the dispatcher reconnects with its backoff
    await reaches(gw, OWNER, "delivered", limit=30)
    [line] = lines(outbox, OWNER)
    found = CODE_RE.search(line["text"])
    assert found and found.group(1) not in raw  # the code itself was never in Redis in the clear


async def test_a_code_that_expired_while_the_smsc_was_down_is_never_sent(make_gateway, smsc, outbox):
    gw = await make_gateway(**smpp(smsc, code_ttl=1.5))
    await gw.request_code("13800000002")
    smsc.kill()
    dropped = metric("hallgate_sms_dropped_total", kind="code", reason="expired")
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=OWNER))
    await asyncio.sleep(2.0)  # the code is dead now
    smsc.start()
    await reaches(gw, OWNER, "expired", limit=30)
    await asyncio.sleep(0.5)
    assert lines(outbox, OWNER) == [] and smsc.stats()["submits"] == 0
    assert await gw.redis.xlen(STREAM) == 0
    assert metric("hallgate_sms_dropped_total", kind="code", reason="expired") == dropped + 1


# --- the SMSC pushing back ---------------------------------------------------------------------------


async def test_throttling_backs_off_and_every_message_arrives_once(make_gateway, smsc, outbox):
    gw = await make_gateway(**smpp(smsc))
    await gw.request_code("13800000002")
    before = metric("hallgate_sms_throttled_total")
    assert smsc.command("throttle 4") == "ok"
    texts = [f"throttled notice {i}" for i in range(6)]
    await notices(gw, texts)
    await arrived(outbox, texts)
    got = [m["text"] for m in lines(outbox, OWNER)]
    assert sorted(got) == sorted(texts)  # each once
    assert smsc.stats()["throttled"] == 4 and metric("hallgate_sms_throttled_total") == before + 4


async def test_a_connection_dropped_mid_window_loses_nothing_and_sends_nothing_twice(make_gateway, smsc, outbox):
    gw = await make_gateway(**smpp(smsc))
    await gw.request_code("13800000002")
    reconnects = metric("hallgate_sms_reconnects_total")
    assert smsc.command("drop-after 3") == "ok"
    texts = [f"window notice {i:02d}" for i in range(12)]
    await notices(gw, texts)
    await arrived(outbox, texts, limit=30)
    await asyncio.sleep(0.5)
    got = [m["text"] for m in lines(outbox, OWNER)]
    assert sorted(got) == sorted(texts), "each message exactly once"
    stats = smsc.stats()
    assert stats["dropped_connections"] >= 1 and stats["binds"] >= 2
    assert metric("hallgate_sms_reconnects_total") >= reconnects + 1


async def test_lost_receipts_end_as_no_receipt_and_nothing_is_sent_again(make_gateway, smsc, outbox):
    gw = await make_gateway(**smpp(smsc, sms_receipt_timeout=1.0))
    before = metric("hallgate_sms_receipts_total", state="no_receipt")
    assert smsc.command("receipts off") == "ok"
    await gw.request_code(OWNER)
    await reaches(gw, OWNER, "no_receipt", limit=15)
    assert smsc.stats()["accepted"] == 1 and len(lines(outbox, OWNER)) == 1

    async def counted() -> bool:  # the dispatcher counts once the state is written: a turn of its loop later
        return metric("hallgate_sms_receipts_total", state="no_receipt") >= before + 1

    await wait_for(counted, 5, what="the no_receipt counted in hallgate_sms_receipts_total")


async def test_an_undeliverable_number_is_recorded_as_such(make_gateway, smsc, outbox):
    gw = await make_gateway(**smpp(smsc))
    assert smsc.command(f"undeliverable {OWNER}") == "ok"
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=OWNER))
    await reaches(gw, OWNER, "undeliverable")
    assert lines(outbox, OWNER) == []


async def test_a_wrong_bind_password_is_reported_retried_slowly_and_the_gateway_serves_on(make_gateway, smsc,
                                                                                      outbox):
    gw = await make_gateway(**smpp(smsc, sms_password="wrong"))
    await gw.stub.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=OWNER))  # answered as ever
    await asyncio.sleep(3.0)
    assert gw.sms is not None and not gw.sms.ready()
    assert gw.sms.status() == "bind refused: ESME_RINVPASWD"
    failures = smsc.stats()["bind_failures"]
    assert 1 <= failures <= 5, f"{failures} binds in 3 s: a crash loop, not a backoff"
    assert await gw.redis.xlen(STREAM) == 1 and lines(outbox) == []  # waiting, sealed, in the queue


# --- several dispatchers ---------------------------------------------------------------------------


async def test_two_dispatchers_on_one_queue_send_each_message_once(make_gateway, smsc, outbox, clean_redis, tmp_path):
    gw = await make_gateway(**smpp(smsc))
    other = await make_gateway(**smpp(smsc))  # a second process's dispatcher, on the same Redis
    await gw.request_code("13800000002")
    texts = [f"shared notice {i:02d}" for i in range(40)]
    await notices(gw, texts)
    await arrived(outbox, texts, limit=30)
    await asyncio.sleep(0.5)
    got = [m["text"] for m in lines(outbox, OWNER)]
    assert sorted(got) == sorted(texts)
    assert smsc.stats()["binds"] == 2
    assert gw.sms is not None and other.sms is not None
    assert gw.sms.dispatchers[0].handed_over > 0 and other.sms.dispatchers[0].handed_over > 0


async def test_a_dispatcher_process_takes_over_what_a_dead_dispatcher_held(make_gateway, smsc, outbox, clean_redis,
                                                                           tmp_path):
    """`hallgate sms-dispatch` as its own process; the gateway's own dispatcher stopped holding
    messages (as if its process died): after the idle time the process takes them over."""
    gw = await make_gateway(**smpp(smsc, sms_dispatchers=0))
    texts = [f"orphan notice {i}" for i in range(3)]
    await notices(gw, texts)
    # Read by a consumer that then "dies": the entries stay pending under its name.
    await gw.deps.sms.ensure_group()
    taken = await gw.deps.sms.read("dead-dispatcher", 10, 100)
    assert len(taken) == 3
    env = {"HALLGATE_REDIS_URL": clean_redis, "HALLGATE_SECRET_KEY": "test-secret", "HALLGATE_SMS_URL": smsc.url,
           "HALLGATE_SMS_PASSWORD": smsc.password, "HALLGATE_SMS_CLAIM_IDLE": "1", "HALLGATE_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(*HALLGATE, "sms-dispatch", env={**os.environ, **env},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        await arrived(outbox, texts, limit=30)
        assert sorted(m["text"] for m in lines(outbox, OWNER)) == sorted(texts)
    finally:
        proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert b"sms_taken_over" in out


# --- notices that inform without flooding -----------------------------------------------------------


async def test_a_quiet_session_gets_its_folded_notice_when_it_expires(make_gateway, smsc, outbox):
    """Three months in one kiosk session, then the kiosk goes quiet (no EndSession): the first month
    was told at once, the other two in one notice once the session expired."""
    gw = await make_gateway(**smpp(smsc, token_idle=1.0))
    token = await gw.sign_in(OWNER)
    for back in (-1, -2, -3):
        async for _ in gw.stub.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=token,
                                                                                month=month(back))):
            pass
    told = [t for t in await gw.messages(OWNER) if "shown" in t]
    assert len(told) == 1 and f"call list for {month(-1)} was shown" in told[0]

    async def folded() -> bool:
        return any("also shown" in t for t in await gw.messages(OWNER))

    await wait_for(folded, 15, what="the folded release notice")
    [notice] = [t for t in await gw.messages(OWNER) if "also shown" in t]
    assert f"{month(-3)}, {month(-2)}" in notice


async def test_notices_of_one_kind_are_capped_per_number_and_day(make_gateway):
    gw = await make_gateway(notice_daily_cap=2)
    before = metric("hallgate_sms_capped_total", kind="release")
    for i in range(3):
        await gw.deps.sms.send(Sms(SmsKind.RELEASE, OWNER, f"release {i}", time.time() + 60, daily_cap=2))
    await gw.deps.sms.send(Sms(SmsKind.LOCK, OWNER, "lock 0", time.time() + 60, daily_cap=2))  # its own cap
    texts = await gw.messages(OWNER)
    assert texts == ["release 0", "release 1", "lock 0"]
    assert metric("hallgate_sms_capped_total", kind="release") == before + 1



# --- as the platform team sees it: a real `hallgate serve` ------------------------------------------


def test_a_served_gateway_with_a_wrong_smpp_password_says_so_in_health_and_log_and_serves_on(smsc, tmp_path, pki):
    """`hallgate serve` pointed at the SMSC with a wrong password: the kiosk service stays SERVING
    (messages wait in the queue), `hallgate.sms` is NOT_SERVING, the log names the refusal, and the
    binds back off instead of looping."""
    password_file = tmp_path / "smpp-password"
    password_file.write_text("wrong\n")
    env = {**tls_env(pki), "HALLGATE_SMS_URL": smsc.url, "HALLGATE_SMS_PASSWORD_FILE": str(password_file)}
    gw = serve(tmp_path, tmp_path / "served", env=env)
    try:
        gw.wait_serving(pki)
        gw.request_code(pki, OWNER)

        def sms_health() -> int | None:
            done = hallgate("health", "--service", "hallgate.sms", "--target", gw.address,
                            "--cert", str(pki / f"{KIOSK_CERT}.crt"), "--ca", str(pki / "ca.crt"))
            return 1 if done.stdout.strip() == "NOT_SERVING" and done.returncode == 1 else None

        wait_until("hallgate.sms NOT_SERVING", sms_health, 10, every=0.2, retry_on=())
        time.sleep(2.0)
        failures = smsc.stats()["bind_failures"]
        assert 1 <= failures <= 6, f"{failures} refused binds in about 3 s: a loop, not a backoff"
        queue = hallgate("sms", "queue", "--data-dir", str(tmp_path / "served"))
        assert queue.returncode == 0 and queue.stdout.startswith("1 waiting for the SMSC"), queue.stdout + queue.stderr
    finally:
        assert gw.stop() == 0
    log = gw.log.read_text()
    assert "smpp_bind_refused" in log and "ESME_RINVPASWD" in log and "wrong" not in log.replace("wrong_", "")


# --- Redis killed under the queue ---------------------------------------------------------------------


async def test_redis_killed_while_messages_wait_loses_none_and_sends_none_twice(make_gateway, own_redis, smsc, outbox):
    """Messages wait (the SMSC is down); Redis is SIGKILLed and comes back from its AOF; then the
    SMSC returns: every message arrives, once. The dispatcher rode out both outages in-process."""
    gw = await make_gateway(redis_url=own_redis.url, **smpp(smsc))
    await gw.request_code("13800000002")
    smsc.kill()
    texts = [f"kept notice {i:02d}" for i in range(10)]
    await notices(gw, texts)
    assert await gw.redis.xlen(STREAM) == 10
    own_redis.kill()
    await asyncio.sleep(1.5)  # the dispatcher meets the outage (and keeps running)
    await asyncio.to_thread(own_redis.start)
    smsc.start()
    await arrived(outbox, texts, limit=30)
    await asyncio.sleep(0.5)
    assert sorted(m["text"] for m in lines(outbox, OWNER)) == sorted(texts)
    assert await gw.redis.xlen(STREAM) == 0


async def test_redis_killed_in_the_middle_of_dispatching_loses_nothing(make_gateway, own_redis, smsc, outbox):
    """Redis SIGKILLed while the dispatcher is handing a burst to the SMSC: after it is back, every
    message has arrived; a message may arrive twice only if the SMSC took it just before its
    record could be written (at least once), so never more than the window's worth."""
    gw = await make_gateway(redis_url=own_redis.url, **smpp(smsc, sms_claim_idle=1.0))
    await gw.request_code("13800000002")
    texts = [f"burst notice {i:02d}" for i in range(40)]
    await notices(gw, texts)
    own_redis.kill()
    await asyncio.sleep(1.0)
    await asyncio.to_thread(own_redis.start)
    await arrived(outbox, texts, limit=30)
    await asyncio.sleep(1.0)
    got = [m["text"] for m in lines(outbox, OWNER)]
    assert set(got) == set(texts)
    assert len(got) - len(texts) <= gw.settings.sms_window, f"{len(got) - len(texts)} sent twice"
    assert await gw.redis.xlen(STREAM) == 0
