"""Administration on the gateway host: the staff directory, the terminal deny-list, the SMS outbox.

These commands talk to the gateway's Redis directly (HALLGATE_REDIS_URL, or the embedded one
under the data directory while `hallgate serve` runs), as an operator on the host would.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pyotp

from adapters.redis_client import connect
from adapters.redis_staff import RedisStaffStore
from adapters.revocations import RevocationList
from adapters.sms_outbox import OUTBOX_NAME, read_outbox
from gateway import passwords
from gateway.policy import Role
from gateway.ports import StaffRecord
from gateway.settings import from_env

T = TypeVar("T")
ISSUER = "hallgate"


def add_commands(sub: Any) -> None:
    env = from_env()

    def with_store(p: argparse.ArgumentParser) -> None:
        p.add_argument("--redis-url", default=env.redis_url,
                       help="[HALLGATE_REDIS_URL; default: the embedded Redis under --data-dir]")
        p.add_argument("--data-dir", default=env.data_dir, help="[HALLGATE_DATA_DIR, default .hallgate]")

    sms = sub.add_parser("sms", help="the development SMS outbox")
    ss = sms.add_subparsers(title="sms commands")
    ob = ss.add_parser("outbox", help="show the messages sent to a number, newest last")
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
    ls = st.add_parser("list", help="list staff (never secrets)")
    with_store(ls)
    ls.set_defaults(run=cmd_staff_list)

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

    return asyncio.run(go())


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
    first = getpass.getpass("password (letters and digits, at least 8): ")
    if getpass.getpass("again: ") != first:
        raise RuntimeError("the passwords differ")
    return first


def cmd_staff_add(args: argparse.Namespace) -> int:
    password = _read_password(args)
    problems = passwords.staff_password_problems(password)
    if problems:
        raise RuntimeError("password " + "; ".join(problems))
    settings = from_env()
    record = StaffRecord(args.staff_id, args.name, args.role, args.hall,
                         passwords.hash_password(password, settings.staff_hash_n), time.time(), pyotp.random_base32())

    async def work(client: Any) -> None:
        store = RedisStaffStore(client)
        if await store.get(args.staff_id) is not None:
            raise RuntimeError(f"{args.staff_id} exists already")
        await store.put(record)

    _run(args, work)
    print(f"added {args.staff_id} ({args.role}, {args.hall or 'no hall'})")
    _enrolment(record, not args.no_qr)
    return 0


def _update(args: argparse.Namespace, change: Callable[[StaffRecord], StaffRecord]) -> StaffRecord:
    async def work(client: Any) -> StaffRecord:
        store = RedisStaffStore(client)
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
    records = _run(args, lambda client: RedisStaffStore(client).all())
    for r in records:
        age = (time.time() - r.password_changed_at) / 86400
        state = "disabled" if r.disabled else "active"
        print(f"{r.staff_id:10} {r.role:15} {r.hall or '-':6} {state:8} password {age:.0f} days old  {r.name}")
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


def cmd_outbox(args: argparse.Namespace) -> int:
    path = Path(args.data_dir) / OUTBOX_NAME
    messages = read_outbox(path, args.msisdn)[-args.last:]
    if not messages:
        print(f"no messages to {args.msisdn} in {path}")
    for m in messages:
        print(f"{m['at']}  to {m['to']}: {m['text']}")
    return 0
