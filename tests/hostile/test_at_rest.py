"""Secrets at rest: staff TOTP secrets are sealed in Redis (AES-GCM, a key id on each value, retired
keys still open, `hallgate staff rekey` re-seals), older plain-text secrets are read and re-sealed,
and after a whole working session on a real `hallgate serve` no password, one-time code, token or
TOTP secret the session used is found in Redis (DUMP of every key, SAVE, the AOF), in any file of the
data directory, or in the gateway's output."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import replace

import pyotp
import pytest
import redis

from adapters.redis_client import connect
from adapters.redis_server import free_port
from adapters.redis_staff import STAFF_INDEX, RedisStaffStore
from adapters.sms_outbox import OUTBOX_NAME
from gateway.domain import passwords
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.ports import StaffRecord
from gateway.domain.secretbox import SecretBox, SecretBoxError, is_sealed, staff_box
from gateway.runtime.settings import Settings
from hallgate_pb.v1 import clerk_pb2, clerk_pb2_grpc, kiosk_pb2, kiosk_pb2_grpc, staff_pb2, staff_pb2_grpc
from tests.support.clerk import id_card
from tests.support.connect_client import browser_client, browser_headers
from tests.support.dates import month
from tests.support.outbox import code_for
from tests.support.processes import add_staff, hallgate, serve
from tests.support.subscribers import BILLING
from tests.support.tls import KIOSK_CERT, tls_env
from tests.support.waiting import wait_port

KEY_A, KEY_B = "staff-key-a-" + "1" * 20, "staff-key-b-" + "2" * 20


def record(staff_id: str, secret: str | None = None, employee_no: str = "") -> StaffRecord:
    return StaffRecord(staff_id, f"Staff {staff_id}", "clerk", "H001", passwords.hash_password("counter2026", 2**10),
                       time.time(), secret or pyotp.random_base32(), employee_no=employee_no)


def stored(url: str, staff_id: str) -> str:
    with redis.Redis.from_url(url) as r:
        return r.hget(f"hg:staff:{{{staff_id}}}", "totp_secret").decode()  # type: ignore[union-attr]


# --- the box ------------------------------------------------------------------------------------


def test_a_sealed_value_opens_only_with_its_key_and_in_its_context():
    box = SecretBox(KEY_A)
    sealed = box.seal("JBSWY3DPEHPK3PXP", "staff:C1:totp_secret")
    assert is_sealed(sealed) and "JBSWY3DPEHPK3PXP" not in sealed and sealed.split(".")[1] == box.current_kid
    assert box.seal("JBSWY3DPEHPK3PXP", "staff:C1:totp_secret") != sealed  # a fresh nonce every time
    assert box.open(sealed, "staff:C1:totp_secret") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretBoxError, match="altered or misplaced"):
        box.open(sealed, "staff:C2:totp_secret")  # copied into another account's record
    with pytest.raises(SecretBoxError, match="neither the current nor a retired key"):
        SecretBox(KEY_B).open(sealed, "staff:C1:totp_secret")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretBoxError):
        box.open(tampered, "staff:C1:totp_secret")
    assert box.open("JBSWY3DPEHPK3PXP", "staff:C1:totp_secret") == "JBSWY3DPEHPK3PXP"  # older plain text


def test_after_a_rotation_the_retired_key_still_opens_and_rekey_is_needed():
    old = SecretBox(KEY_A)
    sealed = old.seal("S3CRET", "ctx")
    rotated = SecretBox(KEY_B, [KEY_A])
    assert rotated.current_kid != old.current_kid and rotated.open(sealed, "ctx") == "S3CRET"
    assert rotated.needs_rekey(sealed) and rotated.needs_rekey("PLAIN")
    assert not rotated.needs_rekey(rotated.seal("S3CRET", "ctx"))


def test_the_staff_key_comes_from_its_setting_else_from_the_server_secret(tmp_path):
    own = staff_box(Settings(staff_secret_key=KEY_A, secret_key="server"))
    assert own.current_kid == SecretBox(KEY_A).current_kid
    derived = staff_box(Settings(secret_key="server", staff_secret_retired_keys=f" {KEY_A} ,"))
    assert derived.current_kid == SecretBox("server").current_kid and len(derived.key_ids) == 2
    # A host command never makes a key: pointed at a data directory without one, it stops.
    with pytest.raises(RuntimeError, match="no staff secret key"):
        staff_box(Settings(data_dir=str(tmp_path / "nowhere")), create_server_secret=False)
    assert not (tmp_path / "nowhere").exists()


# --- the store on a real Redis ------------------------------------------------------------------


async def test_redis_holds_only_the_sealed_secret_and_the_gateway_reads_it(clean_redis):
    client = connect(clean_redis, 2.0)
    try:
        store = RedisStaffStore(client, SecretBox(KEY_A))
        secret = pyotp.random_base32()
        await store.put(record("C1", secret, "E1"))
        value = stored(clean_redis, "C1")
        assert value.startswith(f"hgbox1.{store.box.current_kid}.")  # type: ignore[union-attr]
        with redis.Redis.from_url(clean_redis) as r:
            r.config_set("rdbcompression", "no")
            everything = b"".join(r.dump(k) or b"" for k in r.scan_iter())
        assert secret.encode() not in everything
        assert (await store.get("C1")).totp_secret == secret  # type: ignore[union-attr]
        # The wrong key, or none, fails closed (UNAVAILABLE at the edge), never a garbage secret.
        for blind in (RedisStaffStore(client, SecretBox(KEY_B)), RedisStaffStore(client)):
            with pytest.raises(DependencyUnavailable):
                await blind.get("C1")
    finally:
        await client.aclose()


async def test_a_plain_secret_from_an_older_version_is_read_and_sealed_at_the_next_write(clean_redis):
    secret = pyotp.random_base32()
    old = record("OLD1", secret)
    with redis.Redis.from_url(clean_redis) as r:  # as the version before sealing wrote it
        fields = {"staff_id": old.staff_id, "name": old.name, "role": old.role, "hall": old.hall,
                  "password_hash": old.password_hash, "password_changed_at": str(old.password_changed_at),
                  "totp_secret": secret, "disabled": "0"}
        r.hset("hg:staff:{OLD1}", mapping=fields)
        r.sadd(STAFF_INDEX, "OLD1")
    client = connect(clean_redis, 2.0)
    try:
        store = RedisStaffStore(client, SecretBox(KEY_A))
        got = await store.get("OLD1")
        assert got is not None and got.totp_secret == secret and got.employee_no == "" and got.person == "staff:OLD1"
        await store.put(replace(got, disabled=True))  # any write, e.g. `hallgate staff disable`
        assert is_sealed(stored(clean_redis, "OLD1")) and secret not in stored(clean_redis, "OLD1")
        assert (await store.get("OLD1")).totp_secret == secret  # type: ignore[union-attr]
    finally:
        await client.aclose()


async def test_rekey_reseals_plain_and_retired_secrets_under_the_current_key(clean_redis):
    client = connect(clean_redis, 2.0)
    try:
        before = RedisStaffStore(client, SecretBox(KEY_A))
        secrets_by_id = {i: pyotp.random_base32() for i in ("R1", "R2", "R3")}
        for i in ("R1", "R2"):
            await before.put(record(i, secrets_by_id[i]))
        await RedisStaffStore(client).put(record("R3", secrets_by_id["R3"]))  # plain, as an old version
        after = RedisStaffStore(client, SecretBox(KEY_B, [KEY_A]))
        result = await after.rekey()
        assert (result.resealed, result.were_plain, result.current, result.unreadable) == (3, 1, 0, [])
        new_only = RedisStaffStore(client, SecretBox(KEY_B))  # the retired key may go now
        for i, s in secrets_by_id.items():
            assert stored(clean_redis, i).split(".")[1] == new_only.box.current_kid  # type: ignore[union-attr]
            assert (await new_only.get(i)).totp_secret == s  # type: ignore[union-attr]
        assert (await new_only.rekey()).current == 3
        # A secret no configured key opens is named, and left as it was.
        await RedisStaffStore(client, SecretBox("a key nobody configured")).put(record("R4"))
        untouched = stored(clean_redis, "R4")
        assert (await new_only.rekey()).unreadable == ["R4"] and stored(clean_redis, "R4") == untouched
        # The re-seal is a compare-and-set: a secret changed since it was read is not overwritten.
        assert await new_only._reseal(keys=["hg:staff:{R1}"], args=["stale", "x"]) == 0
        assert stored(clean_redis, "R1") != "x"
    finally:
        await client.aclose()


def test_rotation_with_the_cli_on_the_host(clean_redis, tmp_path):
    """`hallgate staff add` seals under the configured key; after a rotation `staff list` shows which
    secrets are under the retired key, and `staff rekey` re-seals them."""
    data = tmp_path / "host"
    env_a = {"HALLGATE_REDIS_URL": clean_redis, "HALLGATE_STAFF_SECRET_KEY": KEY_A}
    env_b = {"HALLGATE_REDIS_URL": clean_redis, "HALLGATE_STAFF_SECRET_KEY": KEY_B,
             "HALLGATE_STAFF_SECRET_RETIRED_KEYS": KEY_A}
    secret = add_staff(data, "K1", "clerk", "H001", "E501", "counter2026", env=env_a)
    kid_a, kid_b = SecretBox(KEY_A).current_kid, SecretBox(KEY_B).current_kid
    assert stored(clean_redis, "K1").split(".")[1] == kid_a and secret not in stored(clean_redis, "K1")
    listed = hallgate("staff", "list", env=env_b)
    assert listed.returncode == 0 and f"sealed {kid_a} (retired key)" in listed.stdout, listed.stderr
    rekeyed = hallgate("staff", "rekey", env=env_b)
    assert rekeyed.returncode == 0 and "re-sealed 1 TOTP secrets" in rekeyed.stdout, rekeyed.stderr
    assert stored(clean_redis, "K1").split(".")[1] == kid_b
    only_b = {"HALLGATE_REDIS_URL": clean_redis, "HALLGATE_STAFF_SECRET_KEY": KEY_B}
    assert f"sealed {kid_b}" in hallgate("staff", "list", env=only_b).stdout
    # Without any key the host refuses one line, and makes none.
    keyless = hallgate("staff", "list", "--data-dir", str(data), env={"HALLGATE_REDIS_URL": clean_redis})
    assert keyless.returncode == 1 and "no staff secret key" in keyless.stderr and "Traceback" not in keyless.stderr
    assert not (data / "secret.key").exists()
    # The enrolment secret still works after the rotation: it is the same secret, re-sealed.
    assert pyotp.TOTP(secret).now().isdigit()


# --- the scan -----------------------------------------------------------------------------------


def _found(value: str, haystack: bytes) -> bool:
    """Whether `value` occurs; a code or service password (digits) only as a number of its own, so
    a timestamp that happens to contain the same six digits is no hit, nor are a time's microseconds
    (`10:27:19.101166Z`: a debug log has thousands, and a six-digit code matched one once)."""
    if value.isdigit():
        return re.search(rb"(?<![0-9])(?<!:[0-9][0-9]\.)" + value.encode() + rb"(?![0-9])", haystack) is not None
    return value.encode() in haystack


def _logical_values(r: redis.Redis) -> bytes:
    """Every key's contents as redis-py reads them (values an encoding could hide from a byte scan,
    such as small integers in a listpack, come out as text here)."""
    out: list[bytes] = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        if kind == b"string":
            out.append(r.get(key) or b"")
        elif kind == b"hash":
            out += [x for kv in r.hgetall(key).items() for x in kv]
        elif kind == b"list":
            out += r.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(r.smembers(key))
        elif kind == b"zset":
            out += [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            out += [x for _, fields in r.xrange(key) for kv in fields.items() for x in kv]
        out.append(key)
    return b"\n".join(out)


@pytest.mark.timeout(120)
def test_no_secret_a_whole_session_used_is_in_redis_the_data_directory_or_the_logs(tmp_path, pki):
    """A production gateway (TLS material and signing key given, embedded Redis and billing), debug
    logs. The session: a clerk added on the host and signed in; a customer session by ID card and
    one by service password + PIN-pad code at the counter; a kiosk code, sign-in, call list and end.
    SMS go through the Redis queue and SMPP to the embedded SMSC simulator, whose log is scanned with
    the gateway's. The data directory's sms-outbox.jsonl is left out of the scan: it is what the
    simulated phones received, and holds the codes by design."""
    data = tmp_path / "d"
    browser_port = free_port()
    gw = serve(tmp_path, data, "--log-level", "debug", "--browser-listen", f"127.0.0.1:{browser_port}",
               env=tls_env(pki))
    outbox = data / OUTBOX_NAME
    kiosk_number, counter_id, counter_pin = "13800000141", "13800000142", "13800000143"
    staff_password = "Scan" + secrets.token_hex(6)
    used: dict[str, str] = {"staff password": staff_password}
    dumps = values = b""
    try:
        gw.wait_serving(pki)
        secret = add_staff(data, "C7001", "clerk", "H001", "E7001", staff_password)
        used["TOTP secret"] = secret
        with gw.channel(pki, "clerk-H001-T07") as channel:
            totp = pyotp.TOTP(secret).now()
            used["TOTP code"] = totp
            token = staff_pb2_grpc.StaffServiceStub(channel).SignIn(staff_pb2.SignInRequest(
                staff_id="C7001", password=staff_password, totp_code=totp), timeout=10).staff_token
            used["staff token"] = token
            md = (("authorization", f"Bearer {token}"),)
            clerk = clerk_pb2_grpc.ClerkServiceStub(channel)
            owner = BILLING.owner_of(counter_id)
            doc = id_card(owner)
            by_id = clerk.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
                msisdn=counter_id, id_document=doc, purpose=clerk_pb2.SESSION_PURPOSE_BILL_ENQUIRY),
                metadata=md, timeout=10).customer_session
            used["customer session (ID card)"] = by_id
            clerk.GetCustomerProfile(clerk_pb2.GetCustomerProfileRequest(customer_session=by_id), metadata=md,
                                     timeout=10)
            clerk.CloseCustomerSession(clerk_pb2.CloseCustomerSessionRequest(customer_session=by_id), metadata=md,
                                       timeout=10)
            clerk.RequestCustomerCode(clerk_pb2.RequestCustomerCodeRequest(msisdn=counter_pin), metadata=md,
                                      timeout=10)
            pin_code = code_for(outbox, counter_pin)
            used["counter service password"] = BILLING.password_for(counter_pin)
            used["counter one-time code"] = pin_code
            by_pin = clerk.OpenCustomerSession(clerk_pb2.OpenCustomerSessionRequest(
                msisdn=counter_pin, password_and_code=clerk_pb2.PasswordAndCodeProof(
                    service_password=BILLING.password_for(counter_pin), one_time_code=pin_code),
                purpose=clerk_pb2.SESSION_PURPOSE_PLAN_CHANGE), metadata=md, timeout=10).customer_session
            used["customer session (PIN pad)"] = by_pin
            clerk.CloseCustomerSession(clerk_pb2.CloseCustomerSessionRequest(customer_session=by_pin), metadata=md,
                                       timeout=10)
            staff_pb2_grpc.StaffServiceStub(channel).SignOut(staff_pb2.SignOutRequest(), metadata=md, timeout=10)
        with gw.channel(pki) as channel:
            kiosk = kiosk_pb2_grpc.KioskServiceStub(channel)
            kiosk.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=kiosk_number), timeout=10)
            code = code_for(outbox, kiosk_number)
            used["kiosk service password"] = BILLING.password_for(kiosk_number)
            used["kiosk one-time code"] = code
            access = kiosk.Authenticate(kiosk_pb2.AuthenticateRequest(
                msisdn=kiosk_number, service_password=BILLING.password_for(kiosk_number), one_time_code=code),
                timeout=10).access_token
            used["access token"] = access
            assert list(kiosk.ListCallDetails(kiosk_pb2.ListCallDetailsRequest(access_token=access, month=month()),
                                              timeout=30))
            kiosk.EndSession(kiosk_pb2.EndSessionRequest(access_token=access), timeout=10)
        # The same path in a browser-based kiosk (Connect, JSON; the session in an HttpOnly cookie).
        browser_number = "13800000144"
        wait_port(browser_port)
        web = browser_client(browser_port, pki, KIOSK_CERT)
        kiosk_path = "/hallgate.v1.KioskService/"
        assert web.unary(kiosk_path + "RequestOneTimeCode", kiosk_pb2.RequestOneTimeCodeRequest(
            msisdn=browser_number), json_body=True, headers=browser_headers()).code == "ok"
        browser_code = code_for(outbox, browser_number)
        used["browser service password"] = BILLING.password_for(browser_number)
        used["browser one-time code"] = browser_code
        assert web.unary(kiosk_path + "Authenticate", kiosk_pb2.AuthenticateRequest(
            msisdn=browser_number, service_password=BILLING.password_for(browser_number),
            one_time_code=browser_code), json_body=True, headers=browser_headers()).code == "ok"
        used["browser session cookie"] = web.cookies["__Host-hallgate-session"]
        assert web.stream(kiosk_path + "ListCallDetails", kiosk_pb2.ListCallDetailsRequest(month=month()),
                          json_body=True, headers=browser_headers()).messages
        assert web.unary(kiosk_path + "EndSession", b"{}", json_body=True, headers=browser_headers()).code == "ok"
        # Redis as a thief of a backup, a replica or `DUMP` would see it: every key, uncompressed.
        with redis.Redis(unix_socket_path=str(data / "redis" / "redis.sock")) as r:
            r.config_set("rdbcompression", "no")
            dumps = b"".join(r.dump(k) or b"" for k in r.scan_iter(count=1000))
            values = _logical_values(r)
            r.save()
    finally:
        exit_code = gw.stop()
    assert exit_code == 0, gw.log.read_text()[-2000:]
    haystacks = {"Redis DUMP of every key": dumps, "Redis values": values, "gateway output": gw.log.read_bytes()}
    for path in sorted(data.rglob("*")):
        if path.is_file() and path.name != OUTBOX_NAME:
            haystacks[str(path.relative_to(data))] = path.read_bytes()
    # The scan looks at the real thing: the staff record (sealed), the RDB and the AOF are there,
    # and the outbox does hold codes (so a code leaking elsewhere would be found).
    assert b"C7001" in values and b"hgbox1." in values
    assert "redis/dump.rdb" in haystacks and any(k.endswith(".incr.aof") for k in haystacks)
    assert _found(code, outbox.read_bytes()) and _found(pin_code, outbox.read_bytes())
    assert b"SignIn" in haystacks["gateway output"]
    # The codes went over SMPP to the embedded SMSC simulator (its own process, whose log is part of
    # the gateway output scanned here): the queue, the dispatcher and the simulator's side included.
    assert b"smpp_bound" in haystacks["gateway output"] and b'"logger": "smsc_sim"' in haystacks["gateway output"]
    assert b"sms_submitted" in haystacks["gateway output"]
    hits = [f"{what} in {where}" for what, value in used.items() for where, hay in haystacks.items()
            if _found(value, hay)]
    assert not hits, hits
