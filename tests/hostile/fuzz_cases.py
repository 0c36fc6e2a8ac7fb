"""What the RPC fuzzer sends (tests/hostile/rpc_fuzz.py): the public API found from its
descriptors, the sources of randomness (hypothesis or a seeded Random), live values and valid
seed messages that get calls past the first checks, and the generator of request bytes. No I/O."""

from __future__ import annotations

import importlib
import pkgutil
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from adapters.billing_sim.data import SeededBilling
from gateway.domain.identity import Channel
from gateway.domain.policy import POLICY, SIGN_IN_CHANNELS, Role
from hallgate_pb.v1 import clerk_pb2, incident_pb2, legal_pb2
from tests.support.clerk import id_card as clerk_id_card
from tests.support.dates import month

T = TypeVar("T")
STAFF_PASSWORD = "fuzzing2026"
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


def base_live(billing: SeededBilling) -> Live:
    live = Live()
    for n in FUZZ_NUMBERS:
        live.add("msisdn", n)
        live.add("targets", n)
        live.add("service_password", billing.password_for(n) if billing.index(n) is not None else "123456")
    for name, values in {"month": [month(), month(-8), "2026-13"],
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
    live.seeds["hallgate.v1.ReportIncidentRequest"] = [report_incident_seed()]
    for name, values in {"summary": ["fuzz: a suspected leak"], "text": ["fuzz: a remediation step"],
                         "reference": ["FUZZ-1"], "incident_id": ["INC-20260101-00000000"]}.items():
        for v in values:
            live.add(name, v)
    live.seeds["hallgate.v1.OpenCustomerSessionRequest"] = [clerk_pb2.OpenCustomerSessionRequest(
        msisdn=SESSION_NUMBER, id_document=id_card(billing, SESSION_NUMBER),
        purpose=clerk_pb2.SESSION_PURPOSE_COMPLAINT, reason="fuzz: the customer complains")]
    return live


def id_card(billing: SeededBilling, msisdn: str) -> clerk_pb2.IdDocumentProof:
    return clerk_id_card(billing.owner_of(msisdn))


def report_incident_seed() -> incident_pb2.ReportIncidentRequest:
    """A report the incident desk accepts: a staff id and the last day."""
    now = datetime.now(UTC)
    suspect = incident_pb2.Suspect(kind=incident_pb2.ACTOR_KIND_STAFF, id="C1001")
    suspect.start.FromDatetime(now - timedelta(days=1))
    suspect.end.FromDatetime(now)
    return incident_pb2.ReportIncidentRequest(summary="fuzz: a suspected leak", suspect=suspect)


def register_seed() -> legal_pb2.RegisterRequestRequest:
    """A registration the legal desk accepts (last month's 3rd to 10th, one target)."""
    y, m = (int(x) for x in month().split("-"))
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


