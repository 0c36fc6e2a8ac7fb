"""An RPC fuzzer for the public API: every request message of every service in hallgate_pb.v1
(found from the descriptors, so a new RPC is covered without a change here), random and hostile
field values, unknown fields, mutated and random bytes, sent as raw bytes over real mutual-TLS
channels, and every answer checked:

- its status is one of ALLOWED (never INTERNAL, UNKNOWN, DEADLINE_EXCEEDED, …);
- neither its message nor its details name internals (LEAKS: exception classes, tracebacks, file
  paths, Redis, module names);
- INVALID_ARGUMENT carries a google.rpc.BadRequest with at least one violation;
- an OK answer decodes as the method's response type.

Cases come from a `Source`: hypothesis in the test suite (tests/hostile/test_request_properties.py),
a seeded `random.Random` in the long run (`make fuzz`, this module's `main`), so both drive the same
generator. To reach past the first checks the generator also uses live values (a kiosk token, a
customer session, legal request ids, staff ids) and valid seed messages it then damages, and the
calls are made from the certificate of the channel the RPC belongs to with a staff member of a
fitting role signed in (and, in the long run, from every other channel's certificate too).

    FUZZ_CASES=200 make fuzz        # or: python -m tests.hostile.rpc_fuzz --cases 200 --seconds 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import importlib
import itertools
import os
import pkgutil
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
import pyotp
import redis.asyncio as aioredis
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

from adapters.billing_sim.data import SeededBilling
from adapters.redis_staff import RedisStaffStore
from adapters.sms_outbox import read_outbox
from gateway import passwords, rules
from gateway.identity import Channel
from gateway.policy import POLICY, SIGN_IN_CHANNELS, Role
from hallgate_pb.v1 import clerk_pb2, kiosk_pb2, legal_pb2, staff_pb2

T = TypeVar("T")
Code = grpc.StatusCode
ALLOWED = frozenset({Code.OK, Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.PERMISSION_DENIED,
                     Code.RESOURCE_EXHAUSTED, Code.FAILED_PRECONDITION, Code.NOT_FOUND, Code.UNIMPLEMENTED})
# What a status message or its details must never show: internals of the gateway.
LEAKS = [
    re.compile(r"Traceback|\bFile \"|\.py\b|<class |object at 0x|\bself\.", re.I),
    re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Warning|Exit|Interrupt)\b"),
    re.compile(r"redis|hiredis|\blua\b|EVALSHA|NOSCRIPT|WRONGTYPE", re.I),
    re.compile(r"\b(?:gateway|adapters|hallgate_pb|tests|asyncio|grpc|google\.protobuf|structlog)\.[a-z_]"),
    re.compile(r"(?:^|[\s'\"(=])/(?:[\w.-]+/)+[\w.-]+"),  # an absolute file path
]
CERTS = {Channel.KIOSK: "kiosk-H001-K01", Channel.CLERK: "clerk-H001-T07", Channel.LEGAL: "legal-B01-L01",
         Channel.AUDIT: "audit-B01-A01"}
OTHER_CERTS = ["kiosk-H001-K02", "clerk-H001-T08", "clerk-H002-T01"]
STAFF_HALL = {Channel.CLERK: "H001", Channel.LEGAL: "B01", Channel.AUDIT: "B01"}
STAFF_PASSWORD = "fuzzing2026"
DEADLINE = 5.0
TOKEN_NUMBERS = ["13800000301", "13800000302", "13800000303"]  # kiosk sessions of the fuzzer's own
SESSION_NUMBER = "13800000311"  # a counter session of the fuzzer's own
FUZZ_NUMBERS = ["13800000001", "13800000321", "13800000322", "13900000001", "13800000007"]
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


# --- the API, from its descriptors ------------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    """One method of the public API and where it is called from."""

    method: str
    request: type[Message]
    response: type[Message]
    streaming: bool
    channel: Channel  # the channel it belongs to (its first in the policy; kiosk if it has no row)
    roles: tuple[Role, ...]  # staff roles that may call it and sign in on that channel; () if none needed

    @property
    def name(self) -> str:
        return self.method.rsplit("/", 2)[1].removesuffix("Service") + "." + self.method.rsplit("/", 1)[1]


def _rpc(method: MethodDescriptor) -> Rpc:
    path = f"/{method.containing_service.full_name}/{method.name}"
    rule = POLICY.get(path)
    channels = sorted(rule.channels) if rule else [Channel.KIOSK]
    channel = channels[0]
    roles = tuple(r for r in Role if rule and r in rule.roles and channel in SIGN_IN_CHANNELS[r])
    return Rpc(path, message_factory.GetMessageClass(method.input_type),
               message_factory.GetMessageClass(method.output_type), method.server_streaming, channel, roles)


def public_rpcs() -> list[Rpc]:
    """Every method of every service in the hallgate_pb.v1 package."""
    package = importlib.import_module("hallgate_pb.v1")
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"hallgate_pb.v1.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                found += [_rpc(m) for m in service.methods]
    return found


# --- where randomness comes from -------------------------------------------------------------


class Source(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...

    def text(self, max_size: int) -> str: ...

    def binary(self, max_size: int) -> bytes: ...

    def choice(self, options: Sequence[T]) -> T: ...

    def chance(self, p: float) -> bool: ...


UNICODE_POOLS = ["0123456789", "abcXYZ-_.:/ ", "\u0000\u0001\u001f\u007f\u0085\u00a0", "郭明上海市公安局号",
                 "\u202e\u200b\ufeff\u2028", "\uff11\uff12\uff13\uff14\uff15\uff16", "😀🇨🇳\U0010fffd",
                 "'\"\\%{}<>&;$`", "é\u0301ǅ"]


class RandomSource:
    """A seeded `random.Random`: fast, reproducible by seed, for the long run."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def text(self, max_size: int) -> str:
        n = self.r.randint(0, max_size)
        pools = self.r.sample(UNICODE_POOLS, self.r.randint(1, 3))
        alphabet = "".join(pools)
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def binary(self, max_size: int) -> bytes:
        return self.r.randbytes(self.r.randint(0, max_size))

    def choice(self, options: Sequence[T]) -> T:
        return options[self.r.randrange(len(options))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p


class HypothesisSource:
    """Draws from a hypothesis `st.data()` object, so hypothesis picks (and varies) every value."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return int(self.data.draw(self.st.integers(lo, hi)))

    def text(self, max_size: int) -> str:
        return str(self.data.draw(self.st.text(max_size=max_size)))

    def binary(self, max_size: int) -> bytes:
        return bytes(self.data.draw(self.st.binary(max_size=max_size)))

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def chance(self, p: float) -> bool:
        return self.integer(0, 999) < p * 1000


# --- live values that get a call past the first checks -----------------------------------------


@dataclass
class Live:
    """Values the gateway will accept, by field name, refreshed as the run goes (a session the
    fuzzer ended is replaced). Every list may be empty: the generator then makes something up."""

    by_field: dict[str, list[str]] = field(default_factory=dict)
    seeds: dict[str, list[Message]] = field(default_factory=dict)

    def add(self, name: str, value: str) -> None:
        self.by_field.setdefault(name, []).append(value)


def last_month(offset: int = -1) -> str:
    return rules.month_add(rules.local_today(datetime.now(UTC), "Asia/Shanghai"), offset)


def base_live(billing: SeededBilling) -> Live:
    live = Live()
    for n in FUZZ_NUMBERS:
        live.add("msisdn", n)
        live.add("targets", n)
        live.add("service_password", billing.password_for(n) if billing.index(n) is not None else "123456")
    for name, values in {"month": [last_month(), last_month(-8), "2026-13"],
                         "one_time_code": ["123456", "000000"], "new_service_password": ["135790", "111111"],
                         "staff_id": ["F9001", "F9002", "C1001", "nobody"], "password": [STAFF_PASSWORD],
                         "current_password": [STAFF_PASSWORD], "new_password": ["Another2026x", "short"],
                         "totp_code": ["123456"], "reason": ["fuzz: checking the answer", ""],
                         "media_type": ["application/pdf", "image/png", "text/html"],
                         "case_number": ["SH-2026-0113"], "date": ["2026-01-02", "2026-02-30"]}.items():
        for v in values:
            live.add(name, v)
    owner = billing.owner_of(SESSION_NUMBER)
    for name in ("document_number", "name", "birth_date"):
        live.add(name, getattr(owner, name))
    live.seeds["hallgate.v1.RegisterRequestRequest"] = [register_seed()]
    live.seeds["hallgate.v1.OpenCustomerSessionRequest"] = [clerk_pb2.OpenCustomerSessionRequest(
        msisdn=SESSION_NUMBER, id_document=id_card(billing, SESSION_NUMBER))]
    return live


def id_card(billing: SeededBilling, msisdn: str) -> clerk_pb2.IdDocumentProof:
    owner = billing.owner_of(msisdn)
    return clerk_pb2.IdDocumentProof(
        document_type=clerk_pb2.ID_DOCUMENT_TYPE_RESIDENT_ID_CARD, document_number=owner.document_number,
        name=owner.name, birth_date=owner.birth_date,
        sex=clerk_pb2.DOCUMENT_SEX_MALE if owner.sex == "male" else clerk_pb2.DOCUMENT_SEX_FEMALE)


def register_seed() -> legal_pb2.RegisterRequestRequest:
    """A registration the legal desk accepts (last month's 3rd to 10th, one target)."""
    y, m = (int(x) for x in last_month().split("-"))
    zone = timedelta(hours=8)
    window = legal_pb2.DataWindow()
    window.start.FromDatetime(datetime(y, m, 3) - zone)
    window.end.FromDatetime(datetime(y, m, 10) - zone)
    return legal_pb2.RegisterRequestRequest(
        agency=legal_pb2.Agency(kind=legal_pb2.AGENCY_KIND_PUBLIC_SECURITY, name="上海市公安局刑事侦查总队",
                                level=legal_pb2.AGENCY_LEVEL_PREFECTURE),
        letter=legal_pb2.Letter(reference="沪公(刑)调字[2026]0113号",
                                date=(datetime.now(UTC).date() - timedelta(days=2)).isoformat(),
                                media_type="application/pdf", content=PDF),
        legal_basis="Criminal Procedure Law of the PRC, art. 54", case_number="SH-2026-0113",
        officers=[legal_pb2.Officer(name="Chen Jing", badge_number="310-044721"),
                  legal_pb2.Officer(name="Wang Lei", badge_number="310-051190")],
        targets=["13800000001"], categories=[legal_pb2.DATA_CATEGORY_SUBSCRIBER_INFO,
                                             legal_pb2.DATA_CATEGORY_CALL_DETAILS],
        window=window)


# --- the generator -----------------------------------------------------------------------------

NASTY_TEXT = ["", " ", "\x00", "0" * 64, "A" * 43, "A" * 44, "1" * 65, "13800000001\n", "+8613800000001",
              "../../etc/passwd", "%s%s%n", "'; DROP TABLE x;--", "{{7*7}}", "\u202e10000008831",
              "\uff11\uff13\uff18" + "\uff10" * 6 + "01",
              "null", "NaN", "-1", "9" * 30, "LR-" + "F" * 16, "DL-0123456789ABCDEF", "REQUEST_STATE_DISCLOSED",
              "Bearer x", "*", "?", "\ud7ff\ue000", "\U0001f600" * 20]
INTS = [0, 1, -1, 2, 7, 255, 256, 2**31 - 1, -(2**31), 2**32 - 1, 2**63 - 1, -(2**63), 10**9, 10**12]
UINTS = [0, 1, 2, 255, 2**31, 2**32 - 1, 2**64 - 1]
FLOATS = [0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 1e308, -1e-308]
SECONDS = [0, 1, -1, 253402300799, 253402300800, -62135596800, -62135596801, 2**62, -(2**62),
           int(time.time()), int(time.time()) - 40 * 86400, int(time.time()) + 86400]
NANOS = [0, 1, 999_999_999, 1_000_000_000, -1, 2**31 - 1, -(2**31)]
SIGNED = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT32,
          FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64}
BITS = {FieldDescriptor.TYPE_INT32: 32, FieldDescriptor.TYPE_SINT32: 32, FieldDescriptor.TYPE_SFIXED32: 32,
        FieldDescriptor.TYPE_UINT32: 32, FieldDescriptor.TYPE_FIXED32: 32}


def _fits(value: int, f: FieldDescriptor) -> int:
    bits = BITS.get(f.type, 64)
    if f.type in SIGNED or f.type == FieldDescriptor.TYPE_ENUM:
        bits = 32 if f.type == FieldDescriptor.TYPE_ENUM else bits
        return (value + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)
    return value % 2**bits


class Maker:
    """Builds request bytes for an RPC from a Source. `limit(method)` is the method's size limit
    (strings are made up to just past it, to reach the oversized path)."""

    def __init__(self, live: Live, limit: Callable[[str], int]) -> None:
        self.live = live
        self.limit = limit

    def string(self, src: Source, f: FieldDescriptor, big: int) -> str:
        known = self.live.by_field.get(f.name, [])
        kind = src.integer(0, 9)
        if kind <= 2 and known:
            return src.choice(known)
        if kind <= 4:
            return src.text(24)
        if kind <= 6:
            return src.choice(NASTY_TEXT)
        if kind == 7:
            return src.choice(["7", "x", "郭", "\U0001f600"]) * src.choice([65, 200, 1000, 4000])
        if kind == 8 and big:
            return "9" * src.choice([big // 2, big - 64, big + 100])  # around the request size limit
        return src.text(300)

    def scalar(self, src: Source, f: FieldDescriptor, big: int) -> Any:
        t = f.type
        if t == FieldDescriptor.TYPE_STRING:
            return self.string(src, f, big)
        if t == FieldDescriptor.TYPE_BYTES:
            kind = src.integer(0, 4)
            if kind == 0:
                return PDF + src.binary(64)
            if kind == 1 and big:
                return src.choice([b"\x89PNG\r\n\x1a\n", PDF[:5], b""]) + b"\0" * src.choice([big // 2, big + 100])
            return src.binary(64)
        if t == FieldDescriptor.TYPE_BOOL:
            return src.chance(0.5)
        if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return src.choice(FLOATS)
        if t == FieldDescriptor.TYPE_ENUM:
            values = [v.number for v in f.enum_type.values]
            return src.choice(values) if src.chance(0.7) else _fits(src.choice([*INTS, 99, 12345]), f)
        pool = UINTS if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
                              FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64) else INTS
        return _fits(src.choice(pool) if src.chance(0.8) else src.integer(-(2**63), 2**64 - 1), f)

    def fill(self, src: Source, msg: Message, big: int, depth: int = 0) -> Message:
        desc: Descriptor = msg.DESCRIPTOR
        if desc.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
            msg.seconds = src.choice(SECONDS)  # type: ignore[attr-defined]
            msg.nanos = src.choice(NANOS)  # type: ignore[attr-defined]
            return msg
        for f in desc.fields:
            if not src.chance(0.7):
                continue
            if f.is_repeated:
                n = src.choice([0, 1, 1, 2, 3, 5, 40]) if depth < 3 else 0
                container = getattr(msg, f.name)
                for _ in range(n):
                    if f.type == FieldDescriptor.TYPE_MESSAGE:
                        if f.message_type.GetOptions().map_entry:
                            continue
                        self.fill(src, container.add(), big // 4, depth + 1)
                    else:
                        container.append(self.scalar(src, f, big // 4))
            elif f.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < 4:
                    self.fill(src, getattr(msg, f.name), big // 2, depth + 1)
            else:
                setattr(msg, f.name, self.scalar(src, f, big))
        return msg

    def request(self, src: Source, rpc: Rpc) -> tuple[str, bytes]:
        """(kind of case, request bytes). Values reach just past the method's size limit, up to
        32 KiB (RegisterRequest's 8 MiB letter limit has tests of its own)."""
        big = min(self.limit(rpc.method), 1 << 15)
        kind = src.choice(["message", "message", "message", "seeded", "seeded", "unknown", "mutated", "raw",
                           "empty"])
        seeds = self.live.seeds.get(rpc.request.DESCRIPTOR.full_name)
        if kind == "seeded":
            msg = rpc.request()
            if seeds:
                msg.CopyFrom(src.choice(seeds))
            else:  # live values by field name for every field: the call closest to a real one
                for f in rpc.request.DESCRIPTOR.fields:
                    known = self.live.by_field.get(f.name)
                    if known and f.type == FieldDescriptor.TYPE_STRING:
                        if f.is_repeated:
                            getattr(msg, f.name).append(src.choice(known))
                        else:
                            setattr(msg, f.name, src.choice(known))
            for _ in range(src.integer(0, 2)):  # damage a field or two
                damaged = self.fill(src, rpc.request(), big)
                for f, value in damaged.ListFields():
                    if src.chance(0.5):
                        msg.ClearField(f.name)
                        if f.is_repeated:
                            getattr(msg, f.name).extend(value)
                        elif f.type == FieldDescriptor.TYPE_MESSAGE:
                            getattr(msg, f.name).CopyFrom(value)
                        else:
                            setattr(msg, f.name, value)
            return kind, msg.SerializeToString()
        if kind == "raw":
            return kind, src.binary(src.choice([8, 64, 512]))
        if kind == "empty":
            return kind, b""
        data = self.fill(src, rpc.request(), big).SerializeToString()
        if kind == "unknown":
            number = src.choice([999, 2**29 - 1, 19000, 15, 16, 1, 2])
            wire = src.integer(0, 5)
            payload = {0: _varint(src.integer(0, 2**64 - 1)), 1: src.binary(8).ljust(8, b"\0"),
                       2: _varint(n := src.integer(0, 40)) + src.binary(n).ljust(n, b"u"),
                       5: src.binary(4).ljust(4, b"\0")}.get(wire, b"")
            data += _varint(number << 3 | wire) + payload
        elif kind == "mutated" and data:
            b = bytearray(data)
            for _ in range(src.integer(1, 4)):
                op = src.integer(0, 2)
                at = src.integer(0, len(b))
                if op == 0 and b:
                    b[min(at, len(b) - 1)] ^= 1 << src.integer(0, 7)
                elif op == 1:
                    del b[at:]
                else:
                    b[at:at] = src.binary(4)
            data = bytes(b)
        return kind, data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


# --- the gateway under test ----------------------------------------------------------------------


@dataclass
class Target:
    """A running gateway: where it listens, its PKI, its Redis, billing data and SMS outbox."""

    port: int
    pki: Path
    redis: aioredis.Redis
    billing: SeededBilling
    outbox: Path
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def channel(self, cert: str) -> grpc.aio.Channel:
        if cert not in self.channels:
            creds = grpc.ssl_channel_credentials((self.pki / "ca.crt").read_bytes(),
                                                 (self.pki / f"{cert}.key").read_bytes(),
                                                 (self.pki / f"{cert}.crt").read_bytes())
            self.channels[cert] = grpc.aio.secure_channel(f"127.0.0.1:{self.port}", creds)
        return self.channels[cert]

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()
        self.channels.clear()


class Staff:
    """Signed-in staff, one per (terminal certificate, role), replaced when a session dies (the
    fuzzer may sign one out): each replacement is a new account, so no TOTP step is ever reused."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.sessions: dict[tuple[str, Role], str] = {}
        self.serial = itertools.count(1)
        self.renewals = 0

    async def token(self, cert: str, channel: Channel, role: Role) -> str | None:
        key = (cert, role)
        if key not in self.sessions:
            self.sessions[key] = await self._sign_in(cert, channel, role) or ""
        return self.sessions[key] or None

    def died(self, cert: str, role: Role) -> None:
        if self.sessions.pop((cert, role), None):
            self.renewals += 1

    async def _sign_in(self, cert: str, channel: Channel, role: Role) -> str | None:
        staff_id = f"Z{next(self.serial):04d}"
        secret = pyotp.random_base32()
        hall = "H002" if cert == "clerk-H002-T01" else STAFF_HALL.get(channel, "H001")
        from gateway.ports import StaffRecord

        await RedisStaffStore(self.target.redis).put(StaffRecord(
            staff_id, f"Fuzz {staff_id}", role.value, hall, passwords.hash_password(STAFF_PASSWORD, 2**10),
            time.time() - 86400, secret))
        stub = self.target.channel(cert).unary_unary("/hallgate.v1.StaffService/SignIn")
        try:
            raw = await stub(staff_pb2.SignInRequest(staff_id=staff_id, password=STAFF_PASSWORD,
                                                     totp_code=pyotp.TOTP(secret).now()).SerializeToString(),
                             timeout=DEADLINE)
        except grpc.aio.AioRpcError:
            return None
        return str(staff_pb2.SignInResponse.FromString(raw).staff_token)


async def prepare_live(target: Target, staff: Staff, live: Live) -> list[str]:
    """Kiosk tokens, a counter session and legal request ids for the generator; returns notes on
    whatever could not be made (the run goes on without it)."""
    notes = []
    kiosk = target.channel(CERTS[Channel.KIOSK])
    for n in TOKEN_NUMBERS:
        try:
            await kiosk.unary_unary("/hallgate.v1.KioskService/RequestOneTimeCode")(
                kiosk_pb2.RequestOneTimeCodeRequest(msisdn=n).SerializeToString(), timeout=DEADLINE)
            code = await _code(target, n)
            raw = await kiosk.unary_unary("/hallgate.v1.KioskService/Authenticate")(kiosk_pb2.AuthenticateRequest(
                msisdn=n, service_password=target.billing.password_for(n), one_time_code=code).SerializeToString(),
                timeout=DEADLINE)
            live.add("access_token", kiosk_pb2.AuthenticateResponse.FromString(raw).access_token)
        except (grpc.aio.AioRpcError, LookupError) as err:
            notes.append(f"no kiosk token for {n}: {err}")
    clerk_cert = CERTS[Channel.CLERK]
    clerk = await staff.token(clerk_cert, Channel.CLERK, Role.CLERK)
    if clerk:
        try:
            raw = await target.channel(clerk_cert).unary_unary("/hallgate.v1.ClerkService/OpenCustomerSession")(
                clerk_pb2.OpenCustomerSessionRequest(msisdn=SESSION_NUMBER, id_document=id_card(
                    target.billing, SESSION_NUMBER)).SerializeToString(),
                metadata=(("authorization", f"Bearer {clerk}"),), timeout=DEADLINE)
            live.add("customer_session", clerk_pb2.OpenCustomerSessionResponse.FromString(raw).customer_session)
        except grpc.aio.AioRpcError as err:
            notes.append(f"no customer session: {err.code().name} {err.details()}")
    legal_cert = CERTS[Channel.LEGAL]
    officer = await staff.token(legal_cert, Channel.LEGAL, Role.LEGAL_OFFICER)
    approver = await staff.token(legal_cert, Channel.LEGAL, Role.LEGAL_APPROVER)
    channel = target.channel(legal_cert)
    for approve in (False, True):
        try:
            raw = await channel.unary_unary("/hallgate.v1.LegalService/RegisterRequest")(
                register_seed().SerializeToString(), metadata=(("authorization", f"Bearer {officer}"),),
                timeout=DEADLINE)
            rid = legal_pb2.RegisterRequestResponse.FromString(raw).request.request_id
            live.add("request_id", rid)
            if approve:
                await channel.unary_unary("/hallgate.v1.LegalService/ApproveRequest")(
                    legal_pb2.ApproveRequestRequest(request_id=rid, reason="fuzz: approved to reach fulfil")
                    .SerializeToString(), metadata=(("authorization", f"Bearer {approver}"),), timeout=DEADLINE)
        except grpc.aio.AioRpcError as err:
            notes.append(f"legal request not made: {err.code().name} {err.details()}")
    return notes


async def _code(target: Target, msisdn: str) -> str:
    """The latest one-time code texted to `msisdn` (the SMS leaves off the request path)."""
    until = time.monotonic() + 5
    while time.monotonic() < until:
        found = [m.group(1) for t in read_outbox(target.outbox, msisdn)
                 if (m := re.search(r"code is ([0-9]{6})", t["text"]))]
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise LookupError(f"no code reached {msisdn}")


# --- one call, checked -------------------------------------------------------------------------


@dataclass
class Outcome:
    code: Code
    problems: list[str]
    reason: str = ""  # ErrorInfo.reason, if any


def _texts(status: status_pb2.Status) -> tuple[list[str], error_details_pb2.BadRequest | None, str]:
    texts, bad, reason = [status.message], None, ""
    for d in status.details:
        texts.append(d.type_url)
        for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if d.Is(kind.DESCRIPTOR):
                msg = kind()
                d.Unpack(msg)
                texts.append(str(msg))
                if isinstance(msg, error_details_pb2.BadRequest):
                    bad = msg
                if isinstance(msg, error_details_pb2.ErrorInfo):
                    reason = msg.reason
    return texts, bad, reason


def judge(rpc: Rpc, code: Code, message: str, trailers: Sequence[tuple[str, Any]], responses: list[bytes]
          ) -> Outcome:
    problems = []
    if code not in ALLOWED:
        problems.append(f"status {code.name}")
    status = status_pb2.Status(code=code.value[0], message=message)
    raw = [v for k, v in trailers if k == "grpc-status-details-bin"]
    if raw:
        try:
            status = status_pb2.Status.FromString(raw[0])
        except DecodeError:
            problems.append("undecodable grpc-status-details-bin")
        if status.code != code.value[0] or status.message != message:
            problems.append("details disagree with the status")
    texts, bad, reason = _texts(status)
    texts.append(message)
    for pattern in LEAKS:
        for t in texts:
            if m := pattern.search(t):
                problems.append(f"leak {m.group(0)!r} in {t[:200]!r}")
    if code == Code.INVALID_ARGUMENT and (bad is None or not bad.field_violations):
        problems.append("INVALID_ARGUMENT without a BadRequest violation")
    if code == Code.OK:
        for r in responses:
            try:
                rpc.response.FromString(r)
            except DecodeError:
                problems.append("an OK response that does not decode")
    return Outcome(code, problems, reason)


async def call(target: Target, rpc: Rpc, cert: str, metadata: tuple[tuple[str, str], ...], data: bytes
               ) -> Outcome:
    channel = target.channel(cert)
    responses: list[bytes] = []
    try:
        if rpc.streaming:
            stream = channel.unary_stream(rpc.method)(data, metadata=metadata, timeout=DEADLINE)
            async for r in stream:
                responses.append(r)
                if len(responses) > 100_000:
                    break
            code, message = await stream.code(), await stream.details()
            trailers = list(await stream.trailing_metadata() or ())
        else:
            unary = channel.unary_unary(rpc.method)(data, metadata=metadata, timeout=DEADLINE)
            responses.append(await unary)
            code, message, trailers = Code.OK, "", list(await unary.trailing_metadata() or ())
    except grpc.aio.AioRpcError as err:
        code, message, trailers = err.code(), err.details() or "", list(err.trailing_metadata() or ())
    except grpc.aio.UsageError as err:  # the client would not send it: a bug of the fuzzer's, said as such
        raise RuntimeError(f"the client refused {rpc.method} with {metadata!r}") from err
    return judge(rpc, code, message, trailers, responses)


# --- a run ---------------------------------------------------------------------------------------


@dataclass
class Failure:
    case: Case
    outcome: Outcome

    def __str__(self) -> str:
        c = self.case
        shown = c.data[:120].hex() + ("…" if len(c.data) > 120 else "")
        who = f"{c.cert}" + (f" as {c.role.value}" if c.role else "") + (f" with {c.header!r}" if c.header else "")
        return (f"{c.rpc.name} from {who} ({c.kind}, {len(c.data)} bytes: {shown}): "
                f"{self.outcome.code.name}: {'; '.join(self.outcome.problems)}")


@dataclass
class Tally:
    codes: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False

    def table(self) -> str:
        names = sorted({c for counts in self.codes.values() for c in counts},
                       key=lambda c: (c != "OK", c))
        width = max([len(r) for r in self.codes] + [4])
        lines = [f"{'rpc':{width}}  {'cases':>6}  " + "  ".join(f"{n:>{max(len(n), 5)}}" for n in names)]
        for rpc, counts in self.codes.items():
            lines.append(f"{rpc:{width}}  {sum(counts.values()):>6}  "
                         + "  ".join(f"{counts.get(n, 0):>{max(len(n), 5)}}" for n in names))
        return "\n".join(lines)


@dataclass
class Plan:
    """How to choose the caller of each case."""

    every_channel: bool = False  # also call from other channels' certificates (the long run)


@dataclass(frozen=True)
class Case:
    """One call to make: what to send, from which terminal, with which staff session."""

    rpc: Rpc
    kind: str
    data: bytes
    cert: str
    role: Role | None  # the live session of this role on `cert` goes in the metadata
    header: str | None = None  # else this authorization header, if any


def plan_case(maker: Maker, src: Source, rpc: Rpc, plan: Plan) -> Case:
    """Everything random about a case, drawn from `src` (no I/O, so hypothesis can drive it)."""
    kind, data = maker.request(src, rpc)
    cert = CERTS[rpc.channel]
    if plan.every_channel and src.chance(0.3):
        cert = src.choice(list(CERTS.values()) + OTHER_CERTS)
    signable = [r for r in Role if channel_of(cert) in SIGN_IN_CHANNELS[r]]
    pick = src.integer(0, 9)
    if signable and pick <= 7:
        if rpc.method.endswith("/SignOut") and src.chance(0.8):
            # Mostly not the live session: signing it out costs a new account.
            return Case(rpc, kind, data, cert, None, "Bearer " + "B" * 43)
        role = src.choice([r for r in rpc.roles if r in signable] or signable)
        return Case(rpc, kind, data, cert, role)
    if pick == 8:
        return Case(rpc, kind, data, cert, None,
                    src.choice(["Bearer ", "Basic abc", "Bearer " + "A" * 43, "bearer x", "Bearer  x"]))
    return Case(rpc, kind, data, cert, None)


def channel_of(cert: str) -> Channel:
    return Channel(cert.split("-", 1)[0])


async def run_case(target: Target, staff: Staff, case: Case) -> Outcome:
    metadata: tuple[tuple[str, str], ...] = ()
    if case.role is not None:
        token = await staff.token(case.cert, channel_of(case.cert), case.role)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
    elif case.header is not None:
        metadata = (("authorization", case.header),)
    outcome = await call(target, case.rpc, case.cert, metadata, case.data)
    if case.role is not None and (outcome.reason == "STAFF_SIGN_IN_REQUIRED" or (
            case.rpc.method.endswith("/SignOut") and outcome.code == Code.OK)):
        staff.died(case.cert, case.role)  # the next case signs a new account in
    return outcome


def random_cases(maker: Maker, seed: int, plan: Plan) -> Callable[[Rpc], Iterator[Case]]:
    """Case i of an RPC from its own seeded Source: reproducible one by one."""

    def cases(rpc: Rpc) -> Iterator[Case]:
        for i in itertools.count():
            yield plan_case(maker, RandomSource(case_seed(seed, rpc.method, i)), rpc, plan)

    return cases


def hypothesis_cases(maker: Maker, n: int, plan: Plan) -> Callable[[Rpc], Iterator[Case]]:
    """Up to `n` cases of an RPC, every random choice made by hypothesis (generation only: the
    calls are made afterwards, over the network, outside hypothesis)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    def cases(rpc: Rpc) -> Iterator[Case]:
        made: list[Case] = []

        @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.data())
        def collect(data: Any) -> None:
            made.append(plan_case(maker, HypothesisSource(data), rpc, plan))

        collect()
        return iter(made)

    return cases


async def fuzz(target: Target, cases_of: Callable[[Rpc], Iterator[Case]], cases: int, seconds: float,
               rpcs: list[Rpc] | None = None, concurrency: int = 8, progress: Callable[[str], None] | None = None,
               staff: Staff | None = None) -> Tally:
    """`cases` per RPC, `concurrency` at a time, all within `seconds` (each RPC gets its share of
    what is left, so a time-bounded run still reaches every RPC)."""
    rpcs = rpcs if rpcs is not None else public_rpcs()
    staff = staff or Staff(target)
    tally = Tally()
    started = time.monotonic()
    for index, rpc in enumerate(rpcs):
        share = (seconds - (time.monotonic() - started)) / (len(rpcs) - index)
        until = time.monotonic() + max(share, 1.0)
        counts: Counter[str] = Counter()
        tally.codes[rpc.name] = counts
        todo = itertools.islice(cases_of(rpc), cases)

        async def worker(counts: Counter[str] = counts, todo: Iterator[Case] = todo, until: float = until) -> None:
            while time.monotonic() < until:
                case = next(todo, None)
                if case is None:
                    return
                outcome = await run_case(target, staff, case)
                counts[outcome.code.name] += 1
                if outcome.problems:
                    tally.failures.append(Failure(case, outcome))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        done = sum(counts.values())
        if done < cases and next(todo, None) is not None:
            tally.stopped_early = True
        if progress:
            progress(f"[{index + 1}/{len(rpcs)}] {rpc.name}: {done} cases, {time.monotonic() - started:.0f} s, "
                     f"{len(tally.failures)} failures so far")
    tally.seconds = time.monotonic() - started
    return tally


# --- the long run: its own redis-server, billing simulator and gateway ------------------------


@contextlib.asynccontextmanager
async def own_gateway(workdir: Path) -> AsyncIterator[tuple[Target, Callable[[str], int]]]:
    """redis-server on a free loopback port, the billing simulator and the gateway, in this
    process as the test fixtures start them; everything stopped on the way out."""
    from adapters.billing_client import GrpcBilling
    from adapters.billing_sim.server import start_billing_sim
    from adapters.dev_pki import ensure_dev_pki
    from adapters.redis_client import connect
    from adapters.redis_server import RedisServerProcess, free_port
    from adapters.sms_outbox import OutboxSms
    from gateway.bootstrap import REGISTER_LEGAL_REQUEST, Deps, create_server, legal_desk, redis_deps
    from gateway.settings import Settings

    pki = ensure_dev_pki(workdir / "pki", "hallgate.fuzz")
    redis_proc = RedisServerProcess(workdir / "redis", port=free_port(), appendfsync="always").start()
    stack = contextlib.AsyncExitStack()
    try:
        names = {f.name for f in dataclasses.fields(Settings)}
        wanted = {"listen": "127.0.0.1:0", "data_dir": str(workdir / "data"), "secret_key": "fuzz-secret",
                  "sim_hash_n": 2**10, "staff_hash_n": 2**10, "trust_domain": "hallgate.fuzz",
                  "tls_cert": str(pki / "server.crt"), "tls_key": str(pki / "server.key"),
                  "tls_client_ca": str(pki / "ca.crt"), "revocation_refresh": 0.5, "failure_floor": 0,
                  "send_min_interval": 0, "send_max_per_hour": 10**9}
        settings = Settings(**{k: v for k, v in wanted.items() if k in names})
        billing_data = SeededBilling(seed="hallgate-fuzz", subscribers=1200, hash_n=2**10)
        billing_server, billing_port = await start_billing_sim(billing_data)
        stack.push_async_callback(billing_server.stop, 0)
        client = connect(redis_proc.url, settings.redis_timeout)
        stack.push_async_callback(client.aclose)
        billing = GrpcBilling(f"127.0.0.1:{billing_port}", timeout=settings.billing_timeout,
                              page_size=settings.billing_page_size)
        stack.push_async_callback(billing.close)
        outbox = Path(settings.data_dir) / "sms-outbox.jsonl"
        deps = Deps(billing=billing, sms=OutboxSms(outbox), key=settings.key_bytes(),
                    legal=legal_desk(settings, client, billing), **redis_deps(client, settings))
        server, port, _ = create_server(settings, deps)
        await server.start()
        stack.push_async_callback(server.stop, 0)
        refresher = asyncio.create_task(deps.revocations.run(settings.revocation_refresh))
        stack.callback(refresher.cancel)
        target = Target(port, pki, client, billing_data, outbox)
        stack.push_async_callback(target.close)
        large = {REGISTER_LEGAL_REQUEST: settings.legal_max_letter_bytes + 64 * 1024}
        async with stack:
            yield target, lambda method: large.get(method, settings.max_message_bytes)
    finally:
        redis_proc.stop()


def case_seed(seed: int, method: str, i: int) -> int:
    """The seed of case `i` of `method`: the same in every process (unlike hash()), so a failure
    printed with its seed and number can be made again."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{method}/{i}".encode()).digest()[:8], "big")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.hostile.rpc_fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=int(os.environ.get("FUZZ_CASES", "10000")),
                   help="cases per RPC (env FUZZ_CASES; default 10000)")
    p.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", "3600")),
                   help="time bound of the whole run (env FUZZ_SECONDS; default 3600)")
    p.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "0")) or int(time.time()))
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--only", default="", help="run only RPCs whose name contains this")
    args = p.parse_args(argv)
    return asyncio.run(_long_run(args))


async def _long_run(args: argparse.Namespace) -> int:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    rpcs = [r for r in public_rpcs() if args.only in r.name]
    print(f"fuzzing {len(rpcs)} RPCs, {args.cases} cases each, within {args.seconds:.0f} s, seed {args.seed}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="hallgate-fuzz-") as tmp:
        async with own_gateway(Path(tmp)) as (target, limit):
            live = base_live(target.billing)
            staff = Staff(target)
            for note in await prepare_live(target, staff, live):
                print(f"note: {note}", flush=True)

            cases = random_cases(Maker(live, limit), args.seed, Plan(every_channel=True))
            tally = await fuzz(target, cases, args.cases, args.seconds, rpcs, args.concurrency,
                               progress=lambda line: print(line, flush=True), staff=staff)
    print()
    print(tally.table())
    total = sum(sum(c.values()) for c in tally.codes.values())
    print(f"\n{total} cases in {tally.seconds:.0f} s ({total / max(tally.seconds, 1e-9):.0f}/s), seed {args.seed}")
    if tally.stopped_early:
        print(f"note: the time bound ({args.seconds:.0f} s) ended some RPCs before {args.cases} cases")
    for f in tally.failures[:50]:
        print(f"FAILURE {f}")
    if tally.failures:
        print(f"{len(tally.failures)} failures")
        return 1
    print("no failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
