"""The load driver: one process of its own, many concurrent grpc.aio calls on one channel per target,
and, for the scale-out comparison, on several channels (each its own TCP connection) per gateway.

The orchestrator (bench.run) sends it one task at a time over a pipe. Every task is bounded in
count AND time, checks the status of every call, and reports successes, expected refusals (the
deny path) and unexpected errors separately, with every latency it saw.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
from connectrpc.errors import ConnectError

from bench.connect_path import ConnectPaths
from hallgate_pb.billing.v1 import billing_pb2, billing_pb2_grpc
from hallgate_pb.v1 import kiosk_pb2, kiosk_pb2_grpc

CALL_TIMEOUT = 30.0
CONNECT = {"connect-proto": "proto", "connect-json": "json"}  # scenario (x)'s targets: the browser listener
MAX_PAGES = 200  # a month of at most 400,000 records at 2,000 a page; more means a stuck server
CODE_RE = re.compile(r"code is (\d{6})")


class BenchError(Exception):
    """A call that answered OK with the wrong content, or a step the driver could not take."""


@dataclass
class Outcome:
    ok: int = 0
    records: int = 0
    elapsed: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    tokens: list[tuple[str, str]] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, to cross the pipe."""
        return {"ok": self.ok, "records": self.records, "elapsed": self.elapsed, "errors": dict(self.errors),
                "latencies": dict(self.latencies), "tokens": self.tokens, "codes": self.codes}


# One unit of work: (worker index, item index) -> records it returned. Raising grpc.aio.AioRpcError
# (or a Connect error) with an expected code counts as an expected refusal, any other exception as
# an error.
Op = Callable[[int, int], Awaitable[int]]


async def bounded(op: Op, concurrency: int, duration: float, max_count: int,
                  expected: frozenset[str] = frozenset()) -> Outcome:
    """`concurrency` workers run `op` back to back until `max_count` items were started or
    `duration` seconds passed, whichever comes first."""
    out = Outcome()
    deadline = time.monotonic() + duration
    started = 0

    async def worker(w: int) -> None:
        nonlocal started
        while started < max_count and time.monotonic() < deadline:
            i, started = started, started + 1
            t0 = time.perf_counter()
            try:
                out.records += await op(w, i)
            except grpc.aio.AioRpcError as e:
                if e.code().name in expected:
                    out.latencies[e.code().name].append(time.perf_counter() - t0)
                else:
                    out.errors[e.code().name] += 1
                continue
            except ConnectError as e:
                name = e.code.name
                if name in expected:
                    out.latencies[name].append(time.perf_counter() - t0)
                else:
                    out.errors[name] += 1
                continue
            except (BenchError, grpc.aio.UsageError) as e:
                out.errors[type(e).__name__ + ": " + str(e)[:60]] += 1
                continue
            out.ok += 1
            out.latencies["OK"].append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    out.elapsed = time.perf_counter() - t0
    return out


class OutboxTail:
    """Follows an SMS outbox (JSON Lines: the SMSC simulator's, or an older gateway's own file) and
    remembers the newest code per number."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.codes: dict[str, str] = {}

    def _read(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        for line in lines:
            if b"code is" not in line:  # release notices and other texts: no code to remember
                continue
            message = json.loads(line)
            if m := CODE_RE.search(message["text"]):
                self.codes[message["to"]] = m.group(1)

    def skip(self) -> None:
        """Forget everything sent so far (a task's numbers get fresh codes)."""
        try:
            self.offset = self.path.stat().st_size
        except FileNotFoundError:
            self.offset = 0
        self.rest, self.codes = b"", {}

    async def take(self, msisdn: str, wait: float = 2.0, every: float = 0.005) -> str:
        """The code last sent to `msisdn`, consumed; waits briefly for the line to appear, looking
        every `every` seconds."""
        deadline = time.monotonic() + wait
        while True:
            self._read()
            if (code := self.codes.pop(msisdn, None)) is not None:
                return code
            if time.monotonic() > deadline:
                raise BenchError(f"no code for {msisdn} in the outbox")
            await asyncio.sleep(every)


def spread_channels(address: str, count: int) -> list[grpc.aio.Channel]:
    """`count` channels to one address that share no connection: a local subchannel pool each and a
    distinct (otherwise meaningless) channel argument, so each opens its own TCP connection, and
    SO_REUSEPORT can hand each to a different worker."""
    return [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1),
                                                        ("hallgate.bench.connection", n)])
            for n in range(count)]


class Driver:
    """Holds one channel per target for the whole run, so connections are warm for every task; and
    `connections` channels for each gateway named in cfg["spread"]."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        targets: dict[str, str] = cfg["targets"]
        self.channels = {name: grpc.aio.insecure_channel(address) for name, address in targets.items()
                         if name != "gateway-tls"}
        spread: dict[str, str] = cfg.get("spread", {})
        self.spread_channels = {name: spread_channels(address, cfg["connections"]) for name, address in spread.items()}
        self.spread = {name: [kiosk_pb2_grpc.KioskServiceStub(c) for c in channels]
                       for name, channels in self.spread_channels.items()}
        if "gateway-tls" in targets:
            pki, cert = Path(cfg["pki"]), cfg["kiosk_cert"]
            creds = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.crt").read_bytes(),
                                                 private_key=(pki / f"{cert}.key").read_bytes(),
                                                 certificate_chain=(pki / f"{cert}.crt").read_bytes())
            self.channels["gateway-tls"] = grpc.aio.secure_channel(targets["gateway-tls"], creds)
        self.kiosks: dict[str, Any] = {name: kiosk_pb2_grpc.KioskServiceStub(channel)
                                       for name, channel in self.channels.items() if name.startswith("gateway")}
        self.kiosk = self.kiosks["gateway"]
        self.billing = {name: billing_pb2_grpc.BillingServiceStub(self.channels[name]) for name in ("proxy", "direct")}
        # The billing contract's ListCallDetails answered as a one-message stream (bench.proxy --stream-out).
        self.streamed = self.channels["proxy-stream"].unary_stream(
            "/hallgate.billing.v1.BillingService/ListCallDetails",
            request_serializer=billing_pb2.ListCallDetailsRequest.SerializeToString,
            response_deserializer=billing_pb2.ListCallDetailsResponse.FromString)
        # Where each gateway's codes land: the shared SMSC simulator's outbox for every gateway that
        # submits to it, an older candidate's own file for that candidate (one tail per file).
        paths = {name: Path(path) for name, path in cfg.get("outboxes", {}).items()}
        tails = {path: OutboxTail(path) for path in {*paths.values(), Path(cfg["outbox"])}}
        self.outbox = tails[Path(cfg["outbox"])]
        self.outboxes = {name: tails[path] for name, path in paths.items()}
        # Development mode: the kiosk names itself in a header (on mTLS its certificate does).
        self.metadata = (("x-hallgate-dev-identity", cfg["identity"]),) if cfg.get("identity") else None
        # The mTLS gateway's browser listener, over Connect with the same kiosk certificate (scenario x).
        self.connect = ConnectPaths(cfg["browser"], Path(cfg["pki"]), cfg["kiosk_cert"],
                                    http2=cfg.get("browser_http2", False),
                                    client=cfg.get("connect_client", "thin")) if cfg.get("browser") else None

    def outbox_of(self, target: str) -> OutboxTail:
        return self.outboxes.get(target, self.outbox)

    def all_channels(self) -> list[grpc.aio.Channel]:
        return [*self.channels.values(), *(c for channels in self.spread_channels.values() for c in channels)]

    async def close(self) -> None:
        for channel in self.all_channels():
            await channel.close()
        if self.connect is not None:
            await self.connect.close()

    async def run(self, task: dict[str, Any]) -> Outcome:
        kind = task["kind"]
        if kind == "ready":
            for channel in self.all_channels():
                await asyncio.wait_for(channel.channel_ready(), 20)
            return Outcome(ok=1)
        if kind in ("issue", "session"):
            self.outbox_of(task.get("target", "gateway")).skip()
        op, expected, out = self._op(task)
        result = await bounded(op, task["concurrency"], task["duration"], task["max_count"], expected)
        result.tokens, result.codes = out.tokens, out.codes
        return result

    def _op(self, t: dict[str, Any]) -> tuple[Op, frozenset[str], Outcome]:
        """The operation a task repeats; `out` collects what it hands back (tokens, codes)."""
        out = Outcome()
        items: list[Any] = t.get("items", [])
        kind = t["kind"]
        # Code requests and sign-ins go to `target` (a gateway; "gateway" by default), and its
        # codes are read from the outbox that gateway's SMS land in.
        target = t.get("target", "gateway")
        kiosk = self.kiosks.get(target, self.kiosk)
        outbox = self.outbox_of(target)
        codec = CONNECT.get(target)
        if codec and self.connect is None:
            raise BenchError("no browser listener to send Connect calls to")
        connect = self.connect

        async def issue(w: int, i: int) -> int:
            await kiosk.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=items[i]),
                                           timeout=CALL_TIMEOUT, metadata=self.metadata)
            out.codes[items[i]] = await outbox.take(items[i])
            return 0

        async def auth(w: int, i: int) -> int:
            msisdn, password, code = items[i]
            if codec:
                assert connect is not None
                token = await connect.authenticate(codec, w, msisdn, password, code)
                if not token:
                    raise BenchError("no session cookie")
                out.tokens.append((msisdn, token))
                return 0
            out.tokens.append((msisdn, await self._authenticate(msisdn, password, code, kiosk, target)))
            return 0

        async def verify(w: int, i: int) -> int:
            msisdn, password = items[i]
            req = billing_pb2.VerifyServicePasswordRequest(msisdn=msisdn, service_password=password)
            reply = await self.billing[t["target"]].VerifyServicePassword(req, timeout=CALL_TIMEOUT)
            if not reply.valid:
                raise BenchError("password refused")
            return 0

        async def wrong(w: int, i: int) -> int:
            msisdn, password = items[i % len(items)]
            await self._authenticate(msisdn, password, "000000")
            raise BenchError("a wrong password was accepted")

        async def listing(w: int, i: int) -> int:
            msisdn, token = items[i % len(items)]
            if t.get("spread"):  # client w always on connection w mod N: each connection carries its share
                stubs = self.spread[t["target"]]
                return await self._list_gateway(token, t["month"], stub=stubs[w % len(stubs)])
            if codec:
                assert connect is not None
                records = await connect.list_calls(codec, w, token, t["month"])
                if not records:
                    raise BenchError("empty month")
                return records
            if t["target"] in self.kiosks:
                return await self._list_gateway(token, t["month"], t.get("slow", 0.0), t["target"])
            return await self._list_billing(t["target"], msisdn, t["month"], t["page_size"])

        async def session(w: int, i: int) -> int:
            msisdn, password = items[w]
            await kiosk.RequestOneTimeCode(kiosk_pb2.RequestOneTimeCodeRequest(msisdn=msisdn),
                                           timeout=CALL_TIMEOUT, metadata=self.metadata)
            token = await self._authenticate(msisdn, password, await outbox.take(msisdn), kiosk)
            records = await self._list_gateway(token, t["month"], stub=kiosk)
            await kiosk.EndSession(kiosk_pb2.EndSessionRequest(access_token=token), timeout=CALL_TIMEOUT,
                                   metadata=self.metadata)
            return records

        ops: dict[str, Op] = {"issue": issue, "auth": auth, "verify": verify, "wrong": wrong,
                              "list": listing, "session": session}
        expected = frozenset({"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}) if kind == "wrong" else frozenset()
        return ops[kind], expected, out

    async def _authenticate(self, msisdn: str, password: str, code: str, kiosk: Any = None,
                            target: str = "gateway") -> str:
        req = kiosk_pb2.AuthenticateRequest(msisdn=msisdn, service_password=password, one_time_code=code)
        metadata = None if target == "gateway-tls" else self.metadata  # on mTLS the certificate names the kiosk
        reply = await (kiosk or self.kiosk).Authenticate(req, timeout=CALL_TIMEOUT, metadata=metadata)
        if not reply.access_token:
            raise BenchError("no access token")
        return str(reply.access_token)

    async def _list_gateway(self, token: str, month: str, slow: float = 0.0, target: str = "gateway",
                            stub: Any = None) -> int:
        records = 0
        req = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month)
        metadata = None if target == "gateway-tls" else self.metadata
        stub = stub or self.kiosks[target]
        async for chunk in stub.ListCallDetails(req, timeout=CALL_TIMEOUT, metadata=metadata):
            records += len(chunk.records)
            if slow:
                await asyncio.sleep(slow)
        if not records:
            raise BenchError("empty month")
        return records

    async def _list_billing(self, target: str, msisdn: str, month: str, page_size: int) -> int:
        """The billing contract's paging, straight or through the bare proxy."""
        records, token = 0, ""
        for _ in range(MAX_PAGES):
            req = billing_pb2.ListCallDetailsRequest(msisdn=msisdn, month=month, page_size=page_size, page_token=token)
            if target == "proxy-stream":
                pages = [p async for p in self.streamed(req, timeout=CALL_TIMEOUT)]
                if len(pages) != 1:
                    raise BenchError(f"{len(pages)} messages for one page")
                page = pages[0]
            else:
                page = await self.billing[target].ListCallDetails(req, timeout=CALL_TIMEOUT)
            records += len(page.records)
            token = page.next_page_token
            if not token:
                return records
        raise BenchError("billing kept paging")


def serve(conn: Connection, cfg: dict[str, Any]) -> None:
    """The driver process's main: run tasks from the pipe until it sends None."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # grpc.aio binds each channel to the loop current at its creation
    driver = Driver(cfg)
    try:
        while (task := conn.recv()) is not None:
            try:
                result: dict[str, Any] = loop.run_until_complete(driver.run(task)).to_dict()
            except Exception as e:  # report it to the orchestrator, which fails the run
                result = {"failure": f"{type(e).__name__}: {e}"}
            conn.send(result)
    finally:
        loop.run_until_complete(driver.close())
        loop.close()
