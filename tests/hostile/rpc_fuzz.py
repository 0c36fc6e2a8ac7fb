"""An RPC fuzzer for the public API: every request message of every service in hallgate_pb.v1
(found from the descriptors, so a new RPC is covered without a change here), random and hostile
field values, unknown fields, mutated and random bytes, sent as raw bytes over real mutual-TLS
channels, and every answer checked:

- its status is one of ALLOWED, or UNAVAILABLE (never INTERNAL, UNKNOWN, DEADLINE_EXCEEDED, …);
- neither its message nor its details name internals (LEAKS: exception classes, tracebacks, file
  paths, Redis, module names);
- INVALID_ARGUMENT carries a google.rpc.BadRequest with at least one violation;
- an OK answer decodes as the method's response type.

What is sent comes from tests/hostile/fuzz_cases.py; this module makes the calls, judges the
answers and runs the whole. Cases come from a `Source`: hypothesis in the test suite
(tests/hostile/test_request_properties.py),
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
import itertools
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pyotp
import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from adapters.billing_sim.data import SeededBilling
from adapters.redis_staff import RedisStaffStore
from gateway.domain import passwords
from gateway.domain.identity import Channel
from gateway.domain.policy import SIGN_IN_CHANNELS, Role
from hallgate_pb.v1 import clerk_pb2, kiosk_pb2, legal_pb2, staff_pb2
from tests.hostile.fuzz_cases import (
    SESSION_NUMBER,
    STAFF_PASSWORD,
    TOKEN_NUMBERS,
    HypothesisSource,
    Live,
    Maker,
    RandomSource,
    Rpc,
    Source,
    base_live,
    id_card,
    public_rpcs,
    register_seed,
)
from tests.support.outbox import code_for
from tests.support.tls import client_credentials

Code = grpc.StatusCode
ALLOWED = frozenset({Code.OK, Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.PERMISSION_DENIED,
                     Code.RESOURCE_EXHAUSTED, Code.FAILED_PRECONDITION, Code.NOT_FOUND, Code.UNIMPLEMENTED})
# Fail-closed answers of a dependency under stress (a query while retention trims the trail waited
# past the Redis timeout, 2 in 30,000 audit cases): a proper status, counted in the table, not a
# failure. The in-suite property test still expects none of them (ALLOWED alone).
TOLERATED = frozenset({Code.UNAVAILABLE})
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
DEADLINE = 5.0


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
    # Retention, as `hallgate audit trim` runs it: drops the trail's events so far after a signed
    # checkpoint. The audit service's queries scan the trail (O(history) until the archive issue),
    # so the fuzzer keeps it short while it fuzzes them; None where the gateway is not its own.
    trim: Callable[[], Awaitable[Any]] | None = None

    def channel(self, cert: str) -> grpc.aio.Channel:
        if cert not in self.channels:
            self.channels[cert] = grpc.aio.secure_channel(f"127.0.0.1:{self.port}",
                                                          client_credentials(self.pki, cert))
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
        from gateway.domain.ports import StaffRecord

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
        except (grpc.aio.AioRpcError, TimeoutError) as err:  # TimeoutError: no code reached the outbox
            notes.append(f"no kiosk token for {n}: {err}")
    clerk_cert = CERTS[Channel.CLERK]
    clerk = await staff.token(clerk_cert, Channel.CLERK, Role.CLERK)
    if clerk:
        try:
            raw = await target.channel(clerk_cert).unary_unary("/hallgate.v1.ClerkService/OpenCustomerSession")(
                clerk_pb2.OpenCustomerSessionRequest(msisdn=SESSION_NUMBER, id_document=id_card(
                    target.billing, SESSION_NUMBER), purpose=clerk_pb2.SESSION_PURPOSE_PASSWORD_RESET
                ).SerializeToString(),
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
    return await asyncio.to_thread(code_for, target.outbox, msisdn)


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
    if code not in ALLOWED | TOLERATED:
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


AUDIT_SERVICE = "/hallgate.v1.AuditService/"
AUDIT_WEIGHT = 6  # the audit queries run at a fraction of the others' rate on this machine
TRIM_EVERY = 500  # cases of an audit-service RPC between two trims of the trail


async def fuzz(target: Target, cases_of: Callable[[Rpc], Iterator[Case]], cases: int, seconds: float,
               rpcs: list[Rpc] | None = None, concurrency: int = 8, progress: Callable[[str], None] | None = None,
               staff: Staff | None = None) -> Tally:
    """`cases` per RPC, `concurrency` at a time, all within `seconds` (each RPC gets its share of
    what is left, so a time-bounded run still reaches every RPC)."""
    rpcs = rpcs if rpcs is not None else public_rpcs()
    # The audit service's queries read the trail, which grows by an event or two a case, so they are
    # slower than the rest: they go first, while it is short, and get a larger share of the time.
    rpcs = sorted(rpcs, key=lambda r: not r.method.startswith(AUDIT_SERVICE))
    staff = staff or Staff(target)
    tally = Tally()
    started = time.monotonic()
    for index, rpc in enumerate(rpcs):
        weights = [AUDIT_WEIGHT if r.method.startswith(AUDIT_SERVICE) else 1 for r in rpcs[index:]]
        share = (seconds - (time.monotonic() - started)) * weights[0] / sum(weights)
        until = time.monotonic() + max(share, 1.0)
        counts: Counter[str] = Counter()
        tally.codes[rpc.name] = counts
        todo = itertools.islice(cases_of(rpc), cases)

        trims = rpc.method.startswith(AUDIT_SERVICE) and target.trim is not None

        async def worker(counts: Counter[str] = counts, todo: Iterator[Case] = todo, until: float = until,
                         trims: bool = trims) -> None:
            while time.monotonic() < until:
                case = next(todo, None)
                if case is None:
                    return
                outcome = await run_case(target, staff, case)
                counts[outcome.code.name] += 1
                if outcome.problems:
                    tally.failures.append(Failure(case, outcome))
                if trims and target.trim is not None and sum(counts.values()) % TRIM_EVERY == 0:
                    await target.trim()

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
    from gateway.runtime.bootstrap import REGISTER_LEGAL_REQUEST, build_deps, create_server, sms_worker
    from gateway.runtime.settings import Settings

    pki = ensure_dev_pki(workdir / "pki", "hallgate.fuzz")
    redis_proc = RedisServerProcess(workdir / "redis", port=free_port(), appendfsync="always").start()
    stack = contextlib.AsyncExitStack()
    try:
        names = {f.name for f in dataclasses.fields(Settings)}
        wanted = {"listen": "127.0.0.1:0", "data_dir": str(workdir / "data"), "secret_key": "fuzz-secret",
                  "sim_hash_n": 2**10, "staff_hash_n": 2**10, "trust_domain": "hallgate.fuzz",
                  "tls_cert": str(pki / "server.crt"), "tls_key": str(pki / "server.key"),
                  "tls_client_ca": str(pki / "ca.crt"), "revocation_refresh": 0.5, "answer_floor": 0,
                  "send_min_interval": 0, "send_max_per_hour": 10**9,
                  "sms_url": f"outbox:{workdir / 'data' / 'sms-outbox.jsonl'}"}
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
        deps = build_deps(settings, client, billing)
        sms = sms_worker(settings, deps)  # the queue and a dispatcher handing over to the outbox file
        sms.start()
        stack.push_async_callback(sms.stop)
        server, port, _ = create_server(settings, deps)
        await server.start()
        stack.push_async_callback(server.stop, 0)
        refresher = asyncio.create_task(deps.revocations.run(settings.revocation_refresh))
        stack.callback(refresher.cancel)
        keys, kid = settings.audit_keys()

        async def trim_trail() -> Any:
            from adapters.audit.retention import trim

            return await trim(client, settings.audit_chain, keys, kid, datetime.now(UTC), sink=deps.audit)

        target = Target(port, pki, client, billing_data, outbox, trim=trim_trail)
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
