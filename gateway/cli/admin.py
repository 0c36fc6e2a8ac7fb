"""Administration on the gateway host: the staff directory, the terminal deny-list, the SMS outbox.

These commands talk to the gateway's Redis directly (HALLGATE_REDIS_URL, or the embedded one
under the data directory while `hallgate serve` runs), as an operator on the host would.

Staff commands seal and open TOTP secrets with the gateway's key (HALLGATE_STAFF_SECRET_KEY, else the
server secret: HALLGATE_SECRET_KEY or the data directory's secret.key; docs/secrets.md), so they
need the same settings as the gateway. They never make a key: pointed at the wrong data directory
they stop rather than seal under a key no gateway holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pyotp

from adapters.redis_client import connect
from adapters.redis_staff import PersonTaken, RedisStaffStore, StaffExists, normalize_employee_no
from adapters.revocations import RevocationList
from adapters.sms_outbox import read_outbox
from gateway.cli.connect import ask_new
from gateway.domain import passwords
from gateway.domain.errors import DependencyUnavailable
from gateway.domain.policy import Role
from gateway.domain.ports import StaffRecord
from gateway.domain.secretbox import is_sealed
from gateway.runtime.settings import from_env
from gateway.runtime.startup import outbox_path

T = TypeVar("T")
ISSUER = "hallgate"


def add_commands(sub: Any) -> None:
    env = from_env()

    def with_store(p: argparse.ArgumentParser) -> None:
        p.add_argument("--redis-url", default=env.redis_url,
                       help="[HALLGATE_REDIS_URL; default: the embedded Redis under --data-dir]")
        p.add_argument("--data-dir", default=env.data_dir, help="[HALLGATE_DATA_DIR, default .hallgate]")

    sms = sub.add_parser("sms", help="the SMS queue, and what the simulated phones received")
    ss = sms.add_subparsers(title="sms commands")
    qu = ss.add_parser("queue", help="messages waiting for the SMSC, and the newest dead letters (no texts)")
    qu.add_argument("--dead", type=int, default=5, help="how many dead letters to show [5]")
    with_store(qu)
    qu.set_defaults(run=cmd_sms_queue)
    ob = ss.add_parser("outbox", help="what the SMSC simulator delivered to a number's phone, newest last")
    ob.add_argument("msisdn")
    ob.add_argument("--data-dir", default=env.data_dir, help="gateway data directory [HALLGATE_DATA_DIR]")
    ob.add_argument("--last", type=int, default=5, help="how many messages to show [5]")
    ob.set_defaults(run=cmd_outbox)

    staff = sub.add_parser("staff", help="the staff directory")
    st = staff.add_subparsers(title="staff commands")
    add = st.add_parser("add", help="add a staff member; prints the TOTP enrolment (URI and QR code)")
    add.add_argument("staff_id")
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--hall", default="", help="hall (or branch) the staff member works at, e.g. H001")
    add.add_argument("--employee-no", required=True,
                     help="the person's employee number: one account per person (four eyes compares people)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--no-qr", action="store_true", help="print the provisioning URI only")
    with_store(add)
    add.set_defaults(run=cmd_staff_add)
    for name, helptext, run in (("disable", "disable an account (its sessions end at their next use)", cmd_disable),
                                ("enable", "enable a disabled account", cmd_enable),
                                ("reset-totp", "issue a new TOTP secret; prints the new enrolment", cmd_reset_totp)):
        p = st.add_parser(name, help=helptext)
        p.add_argument("staff_id")
        p.add_argument("--no-qr", action="store_true")
        with_store(p)
        p.set_defaults(run=run)
    ls = st.add_parser("list", help="list staff (never secrets): the person, and how each TOTP secret is stored")
    ls.add_argument("--json", action="store_true", help="one JSON object per account")
    with_store(ls)
    ls.set_defaults(run=cmd_staff_list)
    en = st.add_parser("set-employee-no", help="give an account from before employee numbers its person's number")
    en.add_argument("staff_id")
    en.add_argument("--employee-no", required=True)
    with_store(en)
    en.set_defaults(run=cmd_set_employee_no)
    rk = st.add_parser("rekey", help="re-seal every TOTP secret under the current staff secret key "
                                     "(after a rotation, or for plain-text secrets of older versions)")
    with_store(rk)
    rk.set_defaults(run=cmd_rekey)

    term = sub.add_parser("terminal", help="the terminal deny-list (takes effect without restart)")
    tt = term.add_subparsers(title="terminal commands")
    for name, helptext, run in (("revoke", "revoke a terminal id (H001/clerk/T07) or serial:<hex>", cmd_revoke),
                                ("unrevoke", "lift a revocation", cmd_unrevoke)):
        p = tt.add_parser(name, help=helptext)
        p.add_argument("entry")
        with_store(p)
        p.set_defaults(run=run)
    rl = tt.add_parser("revoked", help="list revoked terminals and serials")
    with_store(rl)
    rl.set_defaults(run=cmd_revoked)


def _redis_url(args: argparse.Namespace) -> str:
    return args.redis_url or f"unix://{(Path(args.data_dir) / 'redis' / 'redis.sock').resolve()}"


def _run(args: argparse.Namespace, work: Callable[[Any], Awaitable[T]]) -> T:
    async def go() -> T:
        client = connect(_redis_url(args), 2.0)
        try:
            return await work(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    except DependencyUnavailable as e:  # one line for the operator, not a traceback
        cause = f": {e.__cause__}" if e.__cause__ else ""
        raise RuntimeError(f"{e.dependency} unavailable{cause}") from e


def _store(client: Any, args: argparse.Namespace) -> RedisStaffStore:
    """The staff store with the gateway's key; RuntimeError if this host has no key to use."""
    from gateway.runtime.bootstrap import staff_store

    return staff_store(from_env().with_(data_dir=args.data_dir), client, create_server_secret=False)


def _employee_no(raw: str) -> str:
    try:
        return normalize_employee_no(raw)
    except ValueError as e:
        raise RuntimeError(f"--employee-no {raw!r}: {e}") from None


def _enrolment(record: StaffRecord, qr: bool) -> None:
    uri = pyotp.TOTP(record.totp_secret).provisioning_uri(name=record.staff_id, issuer_name=ISSUER)
    print(f"TOTP enrolment for {record.staff_id}: scan the QR code with an authenticator app, or enter the URI")
    print(uri)
    if qr:
        import qrcode  # type: ignore[import-untyped]

        code = qrcode.QRCode(border=1)
        code.add_data(uri)
        code.print_ascii(invert=True)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return ask_new("password (letters and digits, at least 8): ", "password", "--password-stdin")


def cmd_staff_add(args: argparse.Namespace) -> int:
    employee_no = _employee_no(args.employee_no)
    password = _read_password(args)
    problems = passwords.staff_password_problems(password)
    if problems:
        raise RuntimeError("password " + "; ".join(problems))
    settings = from_env()
    record = StaffRecord(args.staff_id, args.name, args.role, args.hall,
                         passwords.hash_password(password, settings.staff_hash_n), time.time(), pyotp.random_base32(),
                         employee_no=employee_no)

    async def work(client: Any) -> list[StaffRecord]:
        store = _store(client, args)
        try:
            await store.create(record)  # the person and the id are claimed atomically, not read first
        except PersonTaken as e:
            raise RuntimeError(f"employee number {e.employee_no} already has an account, {e.holder}: one person "
                               f"holds one account (change that account's role instead)") from None
        except StaffExists:
            raise RuntimeError(f"{args.staff_id} exists already") from None
        name = " ".join(record.name.split()).casefold()
        return [r for r in await store.all()
                if r.staff_id != record.staff_id and " ".join(r.name.split()).casefold() == name]

    namesakes = _run(args, work)
    print(f"added {args.staff_id} ({args.role}, {args.hall or 'no hall'}, employee {employee_no})")
    for r in namesakes:
        print(f"note: {r.staff_id} has the same name ({r.person}); if that is this person, they now hold two "
              "accounts: disable one", file=sys.stderr)
    _enrolment(record, not args.no_qr)
    return 0


def _update(args: argparse.Namespace, change: Callable[[StaffRecord], StaffRecord]) -> StaffRecord:
    async def work(client: Any) -> StaffRecord:
        store = _store(client, args)
        record = await store.get(args.staff_id)
        if record is None:
            raise RuntimeError(f"no staff member {args.staff_id}")
        updated = change(record)
        await store.put(updated)
        return updated

    return _run(args, work)


def cmd_disable(args: argparse.Namespace) -> int:
    _update(args, lambda r: replace(r, disabled=True))
    print(f"disabled {args.staff_id}")
    return 0


def cmd_enable(args: argparse.Namespace) -> int:
    _update(args, lambda r: replace(r, disabled=False))
    print(f"enabled {args.staff_id}")
    return 0


def cmd_reset_totp(args: argparse.Namespace) -> int:
    record = _update(args, lambda r: replace(r, totp_secret=pyotp.random_base32()))
    _enrolment(record, not args.no_qr)
    return 0


def cmd_staff_list(args: argparse.Namespace) -> int:
    """One line per account: id, role, hall, state, the person (employee number, or "own person"
    for a record from before employee numbers), how the TOTP secret is stored, password age, name."""
    async def work(client: Any) -> list[tuple[StaffRecord, str]]:
        store = _store(client, args)
        assert store.box is not None
        rows = []
        for r in await store.all():
            stored = await store.stored_secret(r.staff_id) or ""
            kid = store.box.kid_of(stored)
            rows.append((r, "PLAIN TEXT" if not is_sealed(stored) else
                         f"sealed {kid}" if kid == store.box.current_kid else f"sealed {kid} (retired key)"))
        return rows

    for r, at_rest in _run(args, work):
        age = (time.time() - r.password_changed_at) / 86400
        state = "disabled" if r.disabled else "active"
        if args.json:
            print(json.dumps({"staff_id": r.staff_id, "name": r.name, "role": r.role, "hall": r.hall, "state": state,
                              "employee_no": r.employee_no, "totp_at_rest": at_rest,
                              "password_age_days": round(age, 1)}, ensure_ascii=False))
            continue
        person = f"employee {r.employee_no}" if r.employee_no else "own person (no employee no.)"
        print(f"{r.staff_id:10} {r.role:15} {r.hall or '-':6} {state:8} {person:30} totp {at_rest:28} "
              f"password {age:.0f} days old  {r.name}")
    return 0


def cmd_set_employee_no(args: argparse.Namespace) -> int:
    employee_no = _employee_no(args.employee_no)

    def change(r: StaffRecord) -> StaffRecord:
        if r.employee_no and r.employee_no != employee_no:
            raise RuntimeError(f"{r.staff_id} belongs to employee {r.employee_no}: an account never changes person")
        return replace(r, employee_no=employee_no)

    try:
        _update(args, change)
    except PersonTaken as e:
        raise RuntimeError(f"employee number {e.employee_no} already has an account, {e.holder}: one person holds "
                           "one account") from None
    print(f"{args.staff_id} belongs to employee {employee_no}")
    return 0


def cmd_rekey(args: argparse.Namespace) -> int:
    async def work(client: Any) -> tuple[Any, str]:
        store = _store(client, args)
        assert store.box is not None
        return await store.rekey(), store.box.current_kid

    result, kid = _run(args, work)
    print(f"re-sealed {result.resealed} TOTP secrets under key id {kid} ({result.were_plain} were plain text); "
          f"{result.current} already current")
    if result.unreadable:
        raise RuntimeError(f"no configured key opens the TOTP secrets of {', '.join(result.unreadable)}: add the key "
                           "they were sealed with to HALLGATE_STAFF_SECRET_RETIRED_KEYS, or reset-totp them")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    _run(args, lambda client: RevocationList(client).add(args.entry))
    print(f"revoked {args.entry}")
    return 0


def cmd_unrevoke(args: argparse.Namespace) -> int:
    _run(args, lambda client: RevocationList(client).remove(args.entry))
    print(f"no longer revoked: {args.entry}")
    return 0


def cmd_revoked(args: argparse.Namespace) -> int:
    async def work(client: Any) -> frozenset[str]:
        revocations = RevocationList(client)
        await revocations.refresh()
        return revocations.entries

    for entry in sorted(_run(args, work)):
        print(entry)
    return 0


def cmd_sms_queue(args: argparse.Namespace) -> int:
    from adapters.sms.queue import DEAD, GROUP, STREAM

    async def work(client: Any) -> tuple[int, int, list[Any]]:
        waiting = int(await client.xlen(STREAM))
        held = 0
        if waiting:
            groups = await client.xinfo_groups(STREAM)
            held = sum(int(g.get("pending", g.get(b"pending", 0))) for g in groups
                       if g.get("name", g.get(b"name")) in (GROUP, GROUP.encode()))
        return waiting, held, list(await client.xrevrange(DEAD, count=args.dead))

    waiting, held, dead = _run(args, work)
    print(f"{waiting} waiting for the SMSC ({held} of them in a dispatcher's hands)")
    for entry, fields in dead:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        print(f"dead letter {entry.decode()}: {f.get('kind', '')} message {f.get('id', '')}: {f.get('error', '')}")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    path = outbox_path(from_env().with_(data_dir=args.data_dir))
    messages = read_outbox(path, args.msisdn)[-args.last:]
    if not messages:
        print(f"no messages to {args.msisdn} in {path}")
    for m in messages:
        print(f"{m['at']}  to {m['to']}: {m['text']}")
    return 0
