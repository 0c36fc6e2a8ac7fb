"""Four eyes per person: a staff record names its person (an employee number, unique, claimed
atomically in Redis), one person holds one account, and a legal request is never approved by any
account of the person who registered it. The old trick — a second account under the same name
with the approver role — fails at `hallgate staff add`, and should such an account exist anyway
(inconsistent or restored data), its approval is refused with reason four_eyes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import replace

import grpc
import pyotp
import pytest
import redis
from grpc_status import rpc_status

from adapters.redis_client import connect
from adapters.redis_staff import STAFF_INDEX, PersonTaken, RedisStaffStore, StaffExists
from gateway.domain import passwords
from gateway.domain.errors import DependencyUnavailable, PermissionDenied
from gateway.domain.legal import Actor
from gateway.domain.ports import StaffRecord
from gateway.domain.secretbox import SecretBox
from gateway.runtime.demo import DEMO_STAFF, seed_demo_staff
from hallgate_pb.v1 import legal_pb2, legal_pb2_grpc
from tests.support.legal import register_message
from tests.support.legal_world import make_world, registered
from tests.support.processes import HALLGATE, add_staff, hallgate, serve, staff_token
from tests.support.tls import LEGAL_CERT, tls_env

KEY = "four-eyes-test-key-0123456789"
PASSWORD = "counter2026"


def record(staff_id: str, employee_no: str = "", role: str = "legal_officer", name: str = "") -> StaffRecord:
    return StaffRecord(staff_id, name or f"Staff {staff_id}", role, "B01", passwords.hash_password(PASSWORD, 2**10),
                       time.time(), pyotp.random_base32(), employee_no=employee_no)


def legacy_write(url: str, r: StaffRecord) -> None:
    """A record as a version before employee numbers (and before sealing) wrote it — or as data
    restored from a backup that bypasses the person index."""
    fields = {"staff_id": r.staff_id, "name": r.name, "role": r.role, "hall": r.hall,
              "password_hash": r.password_hash, "password_changed_at": str(r.password_changed_at),
              "totp_secret": r.totp_secret, "disabled": "0"}
    if r.employee_no:
        fields["employee_no"] = r.employee_no
    with redis.Redis.from_url(url) as client:
        client.hset(f"hg:staff:{{{r.staff_id}}}", mapping=fields)
        client.sadd(STAFF_INDEX, r.staff_id)


# --- one person, one account --------------------------------------------------------------------


def test_staff_add_requires_an_employee_number(clean_redis, tmp_path):
    done = hallgate("staff", "add", "L9", "--name", "Li Lei", "--role", "legal_officer", "--password-stdin",
                    env={"HALLGATE_REDIS_URL": clean_redis, "HALLGATE_STAFF_SECRET_KEY": KEY}, stdin=PASSWORD + "\n")
    assert done.returncode != 0 and "--employee-no" in done.stderr


def test_a_second_account_for_the_same_employee_number_is_refused(clean_redis, tmp_path):
    env = {"HALLGATE_REDIS_URL": clean_redis, "HALLGATE_STAFF_SECRET_KEY": KEY}
    add_staff(tmp_path, "L3001", "legal_officer", "B01", "E3001", PASSWORD, env=env, name="Li Lei")
    # The old trick: the same person again, the approver role, the same name. The number is the
    # person's; its spelling does not matter.
    done = hallgate("staff", "add", "L3002", "--name", "Li Lei", "--role", "legal_approver", "--hall", "B01",
                    "--employee-no", " e3001 ", "--password-stdin", "--no-qr", env=env, stdin=PASSWORD + "\n")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == ("error: employee number E3001 already has an account, L3001: one person holds "
                                   "one account (change that account's role instead)")
    assert "Traceback" not in done.stderr and "otpauth" not in done.stdout  # nothing enrolled
    with redis.Redis.from_url(clean_redis) as r:
        assert not r.exists("hg:staff:{L3002}")
        assert r.get("hg:person:{E3001}") == b"L3001"
    # The same id again is refused too, and keeps the person index as it was.
    again = hallgate("staff", "add", "L3001", "--name", "X", "--role", "clerk", "--employee-no", "E3999",
                     "--password-stdin", env=env, stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "L3001 exists already" in again.stderr
    with redis.Redis.from_url(clean_redis) as r:
        assert not r.exists("hg:person:{E3999}")
    bad = hallgate("staff", "add", "L3003", "--name", "X", "--role", "clerk", "--employee-no", "E{1}",
                   "--password-stdin", env=env, stdin=PASSWORD + "\n")
    assert bad.returncode == 1 and "employee number" in bad.stderr


async def test_the_person_is_claimed_atomically_whatever_the_timing(clean_redis):
    """Twelve accounts for one employee number created at once over separate connections: one wins."""
    clients = [connect(clean_redis, 2.0) for _ in range(12)]
    try:
        stores = [RedisStaffStore(c, SecretBox(KEY)) for c in clients]
        results = await asyncio.gather(*(s.create(record(f"R{i:02d}", "E4001")) for i, s in enumerate(stores)),
                                       return_exceptions=True)
        winners = [i for i, r in enumerate(results) if r is None]
        assert len(winners) == 1 and all(isinstance(r, PersonTaken) for r in results if r is not None)
        everyone = await stores[0].all()
        assert [r.staff_id for r in everyone] == [f"R{winners[0]:02d}"]
        # put() claims too: no write path gives a second account that person.
        with pytest.raises(PersonTaken):
            await stores[1].put(record("R99", "E4001"))
        with pytest.raises(StaffExists):
            await stores[1].create(record(f"R{winners[0]:02d}", "E4002"))
        assert await stores[1].holder_of("E4002") is None  # the refused create gave its claim back
    finally:
        for c in clients:
            await c.aclose()


def test_concurrent_staff_add_processes_give_one_account(clean_redis, tmp_path):
    env = {"HALLGATE_REDIS_URL": clean_redis, "HALLGATE_STAFF_SECRET_KEY": KEY}
    procs = [subprocess.Popen([*HALLGATE, "staff", "add", f"P{i}", "--name", "Wang Fang", "--role", "legal_approver",
                               "--employee-no", "E5001", "--password-stdin", "--no-qr"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **env}) for i in range(3)]
    outcomes = [p.communicate(PASSWORD + "\n", timeout=60) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 1, 1], outcomes
    with redis.Redis.from_url(clean_redis) as r:
        assert sorted(m.decode() for m in r.smembers(STAFF_INDEX) if r.exists(f"hg:staff:{{{m.decode()}}}")) == [
            f"P{codes.index(0)}"]


def test_staff_list_shows_the_person_and_older_records_are_their_own_person(clean_redis, tmp_path):
    env = {"HALLGATE_REDIS_URL": clean_redis, "HALLGATE_STAFF_SECRET_KEY": KEY}
    add_staff(tmp_path, "C6001", "clerk", "H001", "E6001", PASSWORD, env=env)
    legacy_write(clean_redis, record("C6000", role="clerk"))
    listed = hallgate("staff", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "employee E6001" in lines["C6001"] and "sealed" in lines["C6001"]
    assert "own person (no employee no.)" in lines["C6000"] and "PLAIN TEXT" in lines["C6000"]
    # An older record gets its person's number once; a number never moves to another account.
    assert hallgate("staff", "set-employee-no", "C6000", "--employee-no", "E6001", env=env).returncode == 1
    done = hallgate("staff", "set-employee-no", "C6000", "--employee-no", "E6000", env=env)
    assert done.returncode == 0, done.stderr
    moved = hallgate("staff", "set-employee-no", "C6000", "--employee-no", "E6002", env=env)
    assert moved.returncode == 1 and "never changes person" in moved.stderr
    assert "employee E6000" in hallgate("staff", "list", env=env).stdout


async def test_demo_staff_are_persons_with_employee_numbers(clean_redis):
    client = connect(clean_redis, 2.0)
    try:
        store = RedisStaffStore(client, SecretBox(KEY))
        await seed_demo_staff(store, 2**10)
        numbers = {r.staff_id: r.employee_no for r in await store.all()}
        assert numbers == {i: e for i, _, _, e in DEMO_STAFF} and len(set(numbers.values())) == len(DEMO_STAFF)
        # Demo accounts an older version made, without numbers, get theirs.
        await client.flushall()
        for staff_id, role, hall, _ in DEMO_STAFF:
            legacy_write(clean_redis, replace(record(staff_id, role=role.value), hall=hall))
        await seed_demo_staff(store, 2**10)
        assert {r.staff_id: r.employee_no for r in await store.all()} == numbers
    finally:
        await client.aclose()


# --- the legal desk -----------------------------------------------------------------------------


class People:
    def __init__(self, *records: StaffRecord, fail: bool = False) -> None:
        self.records = {r.staff_id: r for r in records}
        self.fail = fail

    async def get(self, staff_id: str) -> StaffRecord | None:
        if self.fail:
            raise DependencyUnavailable("redis")
        return self.records.get(staff_id)


async def test_the_desk_compares_people_not_accounts():
    w = make_world()
    w.desk.people = People(record("L001", "E1"), record("A009", "E1", "legal_approver"),
                           record("A001", "E2", "legal_approver"), record("A010", "", "legal_approver"))
    r = await registered(w)  # by L001, employee E1
    with pytest.raises(PermissionDenied) as e:
        await w.desk.approve(Actor("A009", "legal_approver"), r.request_id, "same person, other account")
    assert e.value.reason == "four_eyes"
    # A record without an employee number is a person of its own; so is an unknown account.
    assert (await w.desk.approve(Actor("A010", "legal_approver"), r.request_id, "ok")).approved_by == "A010"
    r2 = await registered(w)
    assert (await w.desk.approve(Actor("A001", "legal_approver"), r2.request_id, "ok")).approved_by == "A001"


async def test_the_desk_fails_closed_when_the_directory_cannot_answer():
    w = make_world()
    w.desk.people = People(fail=True)
    r = await registered(w)
    with pytest.raises(DependencyUnavailable):
        await w.desk.approve(Actor("A001", "legal_approver"), r.request_id, "directory down")
    assert (await w.store.get(r.request_id)).state.value == "awaiting_approval"  # type: ignore[union-attr]


@pytest.mark.timeout(90)
def test_no_account_of_the_registering_person_approves_on_a_real_gateway(tmp_path, pki):
    """`hallgate serve` wires the staff directory into the legal desk: an officer registers, the old
    trick is refused at `staff add`; an approver account of the same person that exists anyway is
    refused four_eyes at approval; another person approves."""
    data = tmp_path / "d"
    gw = serve(tmp_path, data, env=tls_env(pki))
    try:
        gw.wait_serving(pki)
        officer_secret = add_staff(data, "L7001", "legal_officer", "B01", "E7001", PASSWORD, name="Li Lei")
        approver_secret = add_staff(data, "L7002", "legal_approver", "B01", "E7002", PASSWORD, name="Wang Fang")
        trick = hallgate("staff", "add", "L7003", "--name", "Li Lei", "--role", "legal_approver", "--hall", "B01",
                         "--employee-no", "E7001", "--password-stdin", "--data-dir", str(data), stdin=PASSWORD + "\n")
        assert trick.returncode == 1 and "E7001 already has an account, L7001" in trick.stderr
        # Such an account anyway, written around the person index (restored or inconsistent data).
        second = record("L7003", "E7001", "legal_approver", "Li Lei")
        legacy_write(f"unix://{data / 'redis' / 'redis.sock'}", second)
        officer = staff_token(gw, pki, LEGAL_CERT, "L7001", PASSWORD, officer_secret)
        alias = staff_token(gw, pki, LEGAL_CERT, "L7003", PASSWORD, second.totp_secret)
        approver = staff_token(gw, pki, LEGAL_CERT, "L7002", PASSWORD, approver_secret)
        with gw.channel(pki, LEGAL_CERT) as channel:
            stub = legal_pb2_grpc.LegalServiceStub(channel)
            reg = stub.RegisterRequest(register_message(), metadata=(("authorization", f"Bearer {officer}"),),
                                       timeout=10).request
            with pytest.raises(grpc.RpcError) as e:
                stub.ApproveRequest(legal_pb2.ApproveRequestRequest(request_id=reg.request_id, reason="mine again"),
                                    metadata=(("authorization", f"Bearer {alias}"),), timeout=10)
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
            status = rpc_status.from_call(e.value)  # type: ignore[arg-type]
            assert status is not None and b"FOUR_EYES" in b"".join(d.value for d in status.details)
            done = stub.ApproveRequest(legal_pb2.ApproveRequestRequest(request_id=reg.request_id, reason="checked"),
                                       metadata=(("authorization", f"Bearer {approver}"),), timeout=10).request
            assert done.approved_by == "L7002"
    finally:
        code = gw.stop()
    assert code == 0, gw.log.read_text()[-2000:]
    assert '"reason": "four_eyes"' in gw.log.read_text()
