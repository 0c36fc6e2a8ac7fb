"""Connect, gRPC-Web and gRPC from browsers into the call pipeline: a thin adapter, deciding nothing.

connectrpc's generated ASGI applications (hallgate_pb/v1/*_connect.py, generated with
protobuf=google: the very *_pb2 messages gRPC uses) negotiate the protocol and codec and carry the
bytes. Each endpoint here turns the HTTP request into CallFacts and hands the servicer's behaviour,
the same object gRPC serves, to the pipeline, as gateway/transport/grpc_server.py does; a Refusal's
Status leaves as a ConnectError with the same code, message and google.rpc details (Connect's error
details). Request bytes are decoded tolerantly (TolerantCodec), so a body that is not the method's
message, in JSON or binary, reaches the pipeline, and the audit trail, as Malformed. A stream's
messages are handed over one at a time: `send` returns once connectrpc has written the message and
asked for the next, so the pipeline's "a message has left once send returns" holds here as on gRPC.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from connectrpc.code import Code as ConnectCode
from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.errors import ConnectError, ErrorDetail
from cryptography import x509
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from protobuf.wkt import Any as ConnectAny

from gateway.domain.client_address import Network, client_address
from gateway.pipeline.decoding import Malformed, oversized
from gateway.pipeline.facts import BrowserFacts, CallFacts
from gateway.pipeline.run import CallerGone, Pipeline, Refusal
from gateway.transport.browser import session_cookie
from hallgate_pb.v1 import (
    audit_connect,
    clerk_connect,
    incident_connect,
    kiosk_connect,
    legal_connect,
    lending_connect,
    staff_connect,
)

# The generated application of each public service, by full service name.
APPLICATIONS: dict[str, Any] = {
    "hallgate.v1.KioskService": kiosk_connect.KioskServiceASGIApplication,
    "hallgate.v1.StaffService": staff_connect.StaffServiceASGIApplication,
    "hallgate.v1.ClerkService": clerk_connect.ClerkServiceASGIApplication,
    "hallgate.v1.LegalService": legal_connect.LegalServiceASGIApplication,
    "hallgate.v1.AuditService": audit_connect.AuditServiceASGIApplication,
    "hallgate.v1.LendingService": lending_connect.LendingServiceASGIApplication,
    "hallgate.v1.IncidentService": incident_connect.IncidentServiceASGIApplication,
}
CHALLENGE_HEADER = "x-hallgate-challenge"
CSRF_HEADER = "x-csrf-token"
MAX_HEADER_TEXT = 4096
TIMEOUT_HEADERS = (b"connect-timeout-ms", b"grpc-timeout")
GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def timeout_of(headers: Mapping[str, str]) -> float | None:
    """The caller's timeout in seconds, from Connect's `connect-timeout-ms` or gRPC's `grpc-timeout`.
    The transport applies it itself (the library never sees it), so a call whose time runs out is
    always ended inside the pipeline, on record, never before it (docs/browser.md)."""
    raw = headers.get("connect-timeout-ms", "")
    if raw:
        return int(raw) / 1000 if raw.isdigit() and len(raw) <= 10 else 0.0
    raw = headers.get("grpc-timeout", "")
    if raw:
        value, unit = raw[:-1], raw[-1:]
        return int(value) * GRPC_TIMEOUT_UNITS[unit] if value.isdigit() and len(value) <= 8 and \
            unit in GRPC_TIMEOUT_UNITS else 0.0
    return None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What site.py learnt of the HTTP request before the API got it: the connection's peer, the
    headers (lower-case names), the cookies, the verified client certificate (PEM, b"" without one)
    and the site the request was addressed to (https://<Host>)."""

    peer: tuple[str, int] | None
    headers: Mapping[str, str]
    cookies: Mapping[str, str]
    client_cert_pem: bytes = b""
    site: str = ""
    deadline: float | None = None  # the caller's deadline on the event loop's clock (None: none)
    timers: list[asyncio.Timeout] = field(default_factory=list, compare=False, repr=False)

    def time_left(self) -> float | None:
        """Seconds before the deadline; 0 once `timeout()` fired, whatever the clock says: uvloop's
        timers fire up to a millisecond early, and a call its deadline ended must not be put on
        record as cancelled by its caller."""
        if self.deadline is None:
            return None
        if any(t.expired() for t in self.timers):
            return 0.0
        return self.deadline - asyncio.get_running_loop().time()

    def timeout(self) -> asyncio.Timeout:
        """The deadline as an `async with` timeout (none without one)."""
        timer = asyncio.timeout_at(self.deadline)
        self.timers.append(timer)
        return timer


REQUEST: ContextVar[HttpRequest] = ContextVar("hallgate_browser_request")


@dataclass(frozen=True)
class BrowserConfig:
    """The transport's settings: the trusted proxies and their header (client_address.py), and the
    request size limits (per request message type; `ceiling` the largest request read at all)."""

    proxies: tuple[Network, ...] = ()
    client_ip_header: str = "x-forwarded-for"
    max_bytes: int = 64 * 1024
    limits: Mapping[str, int] = field(default_factory=dict)  # by request message full name
    ceiling: int = 64 * 1024


# -- request facts -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def certificate_uris(pem: bytes) -> tuple[str, ...]:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier))


def _peer_label(address: str, port: int | None) -> str:
    """An address in grpc's form (`ipv4:203.0.113.7:40001`, `ipv6:[2001:db8::1]`), as the trail has it."""
    if ":" in address:
        return f"ipv6:[{address}]" + (f":{port}" if port is not None else "")
    return f"ipv4:{address}" + (f":{port}" if port is not None else "")


def facts_of(method: str, kind: str, http: HttpRequest, config: BrowserConfig,
             time_left: Callable[[], float | None] = lambda: None) -> CallFacts:
    uris = certificate_uris(http.client_cert_pem) if http.client_cert_pem else ()
    peer_host, peer_port = http.peer if http.peer else ("", 0)
    client = client_address(peer_host, http.headers.get(config.client_ip_header, ""), config.proxies)
    token, cookie = http.headers.get(CSRF_HEADER, ""), http.cookies.get(session_cookie.CSRF, "")
    browser = BrowserFacts(origin=http.headers.get("origin", "")[:MAX_HEADER_TEXT], site=http.site,
                           csrf=bool(token) and hmac.compare_digest(token.encode(), cookie.encode()),
                           client=client, challenge=http.headers.get(CHALLENGE_HEADER, "")[:MAX_HEADER_TEXT])
    peer = _peer_label(client, peer_port if client == peer_host else None) if client else ""
    return CallFacts(method=method, peer=peer, tls=bool(http.client_cert_pem), peer_uris=uris,
                     peer_cert_pem=http.client_cert_pem, metadata=http.headers, time_left=time_left, kind=kind,
                     browser=browser)


# -- errors --------------------------------------------------------------------------------------

CONNECT_CODES = {code_number: code for code_number, code in enumerate(
    [None, ConnectCode.CANCELED, ConnectCode.UNKNOWN, ConnectCode.INVALID_ARGUMENT, ConnectCode.DEADLINE_EXCEEDED,
     ConnectCode.NOT_FOUND, ConnectCode.ALREADY_EXISTS, ConnectCode.PERMISSION_DENIED,
     ConnectCode.RESOURCE_EXHAUSTED, ConnectCode.FAILED_PRECONDITION, ConnectCode.ABORTED, ConnectCode.OUT_OF_RANGE,
     ConnectCode.UNIMPLEMENTED, ConnectCode.INTERNAL, ConnectCode.UNAVAILABLE, ConnectCode.DATA_LOSS,
     ConnectCode.UNAUTHENTICATED])}


def connect_error(status: status_pb2.Status) -> ConnectError:
    """The Status as Connect carries it: the same code, message and google.rpc details."""
    details = [ErrorDetail(ConnectAny(type_url=d.type_url, value=d.value)) for d in status.details]
    return ConnectError(CONNECT_CODES.get(status.code) or ConnectCode.UNKNOWN, status.message, details)


HTTP_OF = {ConnectCode.INVALID_ARGUMENT: 400, ConnectCode.UNAUTHENTICATED: 401, ConnectCode.PERMISSION_DENIED: 403,
           ConnectCode.NOT_FOUND: 404, ConnectCode.RESOURCE_EXHAUSTED: 429, ConnectCode.UNIMPLEMENTED: 501,
           ConnectCode.UNAVAILABLE: 503}


def error_body(status: status_pb2.Status) -> tuple[int, bytes]:
    """A unary Connect error response (HTTP status, JSON body) for a Status, for what site.py
    answers itself (a method no service has)."""
    code = CONNECT_CODES.get(status.code) or ConnectCode.UNKNOWN
    body: dict[str, Any] = {"code": code.value, "message": status.message}
    return HTTP_OF.get(code, 500), json.dumps(body).encode()


# -- codecs --------------------------------------------------------------------------------------

FIELD_RE = re.compile(r'(?:Failed to parse|no field named|field named) "?(\w+)"?')


class TolerantCodec(Codec):
    """A codec whose decode never fails: a body that is not the method's message, or is larger than
    its limit, decodes to Malformed naming what was wrong, for the pipeline to refuse on record.
    JSON is strict (an unknown field is an error, not ignored). A violation names a field only when
    it is one of the message's; it never repeats a value."""

    def __init__(self, inner: Codec, config: BrowserConfig) -> None:
        self.inner = inner
        self.config = config

    def name(self) -> str:
        return self.inner.name()

    def encode(self, message: Any) -> bytes:
        if self.name() == "json":  # compact, and UTF-8 as it is (connectrpc's compat codec indents)
            return json_format.MessageToJson(message, indent=None, ensure_ascii=False).encode()
        return self.inner.encode(message)

    def _strict(self, data: bytes | bytearray, message_class: Any) -> Any:
        if self.name() != "json":
            return self.inner.decode(data, message_class)
        message = message_class()
        try:
            json_format.Parse(bytes(data), message, ignore_unknown_fields=False)
        except (json_format.ParseError, UnicodeDecodeError, RecursionError) as err:
            raise DecodeError(_json_violation(err, message_class)) from None
        return message

    def decode(self, data: bytes | bytearray, message_class: Any) -> Any:
        limit = self.config.limits.get(message_class.DESCRIPTOR.full_name, self.config.max_bytes)
        if len(data) > limit:
            return oversized(lambda d: self._strict(d, message_class), bytes(data), limit,
                             max(limit, self.config.ceiling))
        try:
            return self._strict(data, message_class)
        except DecodeError as err:
            text = str(err)
            if text.startswith("field:"):
                name, _, why = text.removeprefix("field:").partition(":")
                return Malformed("", [(name, why)])
            return Malformed(f"the request is not a valid {self.name()} message of this method's type")


def _json_violation(err: BaseException, message_class: Any) -> str:
    found = FIELD_RE.search(str(err)) if isinstance(err, json_format.ParseError) else None
    if found:
        fields = message_class.DESCRIPTOR.fields
        for f in fields:
            if found.group(1) in (f.name, f.json_name):
                return f"field:{f.name}:has the wrong type or format"
    return "not valid JSON for this method's request (unknown field, wrong type or not JSON)"


# -- the services --------------------------------------------------------------------------------

class ServicerContext:
    """The little of a gRPC ServicerContext the servicers read: the request headers (SignOut's bearer)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = headers

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple(self.headers.items())


Unary = Callable[[Any, Any], Awaitable[Any]]
Streaming = Callable[[Any, Any], AsyncIterator[Any]]
_END = object()
DEADLINE_MESSAGE = "the caller's deadline passed"


class ConnectTransport:
    """The public services as connectrpc ASGI applications over one pipeline, by path prefix."""

    def __init__(self, pipeline: Pipeline, services: Mapping[str, Any], config: BrowserConfig) -> None:
        self.pipeline = pipeline
        self.config = config
        codecs = [TolerantCodec(google_protobuf_binary_codec(), config),
                  TolerantCodec(google_protobuf_json_codec(), config)]
        read_max = max(config.ceiling, config.max_bytes) + 1024
        self.apps: dict[str, Any] = {}
        for name, servicer in services.items():
            bridge = _Bridge(self, name, servicer)
            app = APPLICATIONS[name](bridge, codecs=codecs, read_max_bytes=read_max)
            self.apps.update({f"/{name}/{m}": app for m in bridge.methods})

    def app_for(self, path: str) -> Any | None:
        """The application serving the method at `path`, or None for a method no service has."""
        return self.apps.get(path)

    def _facts(self, method: str, kind: str, http: HttpRequest) -> CallFacts:
        return facts_of(method, kind, http, self.config, http.time_left)

    async def unary(self, method: str, behaviour: Unary, request: Any, ctx: Any) -> Any:
        http = REQUEST.get()
        session_cookie.fill_token(request, http.cookies)
        try:
            async with http.timeout():
                response = await self.pipeline.unary(self._facts(method, "unary", http), request,
                                                     lambda r: behaviour(r, ServicerContext(http.headers)))
        except Refusal as r:
            raise connect_error(r.status) from None
        except TimeoutError:
            raise ConnectError(ConnectCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE) from None
        cookie = session_cookie.on_response(method, response)
        if cookie is not None:
            ctx.response_headers.add("set-cookie", cookie)
        return response

    async def stream(self, method: str, behaviour: Streaming, request: Any, ctx: Any) -> AsyncIterator[Any]:
        http = REQUEST.get()
        session_cookie.fill_token(request, http.cookies)
        facts = self._facts(method, "server_stream", http)
        handover: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        taken = asyncio.Event()

        async def send(message: Any) -> None:
            # The deadline is also checked at every message: on Python 3.11 a cancellation can be lost
            # inside asyncio.wait_for (redis-py waits with it), and a stream must not outlive it.
            left = http.time_left()
            if left is not None and left <= 0:
                raise TimeoutError()  # the pipeline ends the stream: DEADLINE_EXCEEDED, on record
            taken.clear()
            await handover.put(message)
            await taken.wait()  # connectrpc wrote it and came back for the next

        async def produce() -> None:
            try:
                async with http.timeout():
                    await self.pipeline.stream(facts, request, lambda r: behaviour(r, ServicerContext(http.headers)),
                                               send)
            except CallerGone:
                left = http.time_left()
                if left is not None and left <= 0:
                    raise TimeoutError() from None
                raise
            finally:
                handover.put_nowait(_END) if handover.empty() else None

        producer = asyncio.create_task(produce())
        try:
            while True:
                message = await handover.get()
                if message is _END:
                    break
                yield message
                taken.set()
            await producer
        except Refusal as r:
            raise connect_error(r.status) from None
        except TimeoutError:
            raise ConnectError(ConnectCode.DEADLINE_EXCEEDED, DEADLINE_MESSAGE) from None
        finally:
            # Cancelled until it is done: a cancellation lost inside asyncio.wait_for (Python 3.11)
            # must not leave the producer waiting for a hand-over nobody takes.
            while not producer.done():
                producer.cancel()
                await asyncio.wait([producer], timeout=0.1)
            if not producer.cancelled():
                producer.exception()  # retrieved: it was reported above or ended by the cancellation

    async def unimplemented(self, method: str) -> tuple[int, bytes]:
        """A method of the public API's package that no service has: on record, as on gRPC."""
        http = REQUEST.get()
        try:
            await self.pipeline.unimplemented(facts_of(method, "unary", http, self.config))
        except Refusal as r:
            return error_body(r.status)
        raise AssertionError("unimplemented answered OK")


class _Bridge:
    """The object a generated application calls: one endpoint per method of the service, each the
    servicer's behaviour through the pipeline. Endpoints are found by the method's name whatever
    snake_case spelling the generator chose."""

    def __init__(self, transport: ConnectTransport, service: str, servicer: Any) -> None:
        self._endpoints: dict[str, Any] = {}
        descriptor = _service_descriptor(service)
        self.methods = [m.name for m in descriptor.methods]
        for m in descriptor.methods:
            method = f"/{service}/{m.name}"
            behaviour = getattr(servicer, m.name)
            if m.client_streaming:
                raise ValueError(f"{method}: client streaming is not carried over Connect here")
            call = transport.stream if m.server_streaming else transport.unary
            self._endpoints[m.name.lower()] = functools.partial(call, method, behaviour)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._endpoints[name.replace("_", "").lower()]
        except KeyError:
            raise AttributeError(name) from None


def _service_descriptor(service: str) -> Any:
    module = APPLICATIONS[service].__module__.replace("_connect", "_pb2")
    import importlib

    return importlib.import_module(module).DESCRIPTOR.services_by_name[service.rsplit(".", 1)[1]]
