"""Scenario (x), the driver's side: the gateway's browser listener driven with the Connect protocol.

The same calls as the gRPC scenarios: ListCallDetails, a server stream (`application/connect+proto`
or `application/connect+json`, each message in a 5-byte envelope, then the end-of-stream message),
and Authenticate, unary (`application/proto` or `application/json`, the bare message; an error is
a non-200 status with a JSON body).

Like a browser-based kiosk: the hall kiosk certificate the gRPC scenario on mTLS presents (so the
call is a kiosk call with the same identity, and tokens from either transport work on both), the
CSRF double submit every browser call needs, HTTP/1.1 with one kept-alive TLS connection per client
(`http2`: one HTTP/2 connection per client instead), no compression either way (gRPC sends none).
The access token goes in the request, as on gRPC; Authenticate's answer carries the session in its
cookie (`__Host-hallgate-session`), which is what a successful sign-in is checked by.

Two load clients, both on pyqwest (reqwest and rustls in Rust, on a Tokio thread of the driver
process, so its CPU counts as the driver's):
- "thin" (the default): the protocol framed here, from the Connect specification, in a few lines,
  over pyqwest's whole-body POST; binary answers decoded into the protobuf messages (upb, as the
  gRPC driver does), JSON answers parsed with the stdlib's C `json` (a browser's JSON.parse) and
  their records counted, not turned into protobuf messages.
- "connectrpc": connectrpc's own generated async client (hallgate_pb/v1/kiosk_connect.py
  `KioskServiceClient`) on the same transport. It costs the driver about twice the thin client's
  CPU per call in binary, and for JSON about 4 ms per 200-record month: it decodes with
  google.protobuf.json_format.Parse, pure Python; the driver would be the bottleneck.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from connectrpc.client import ResponseMetadata
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_binary_codec, google_protobuf_json_codec
from connectrpc.errors import ConnectError
from google.protobuf import json_format
from pyqwest import Client, HTTPTransport, HTTPVersion, ReadError, RemoteProtocolError, WriteError

from hallgate_pb.v1 import kiosk_pb2
from hallgate_pb.v1.kiosk_connect import KioskServiceClient

CSRF = "bench-csrf-token"  # any equal non-empty value in the cookie and the header
SESSION_COOKIE = "__Host-hallgate-session"
HEADERS = {"cookie": f"__Host-hallgate-csrf={CSRF}", "x-csrf-token": CSRF}
SERVICE = "/hallgate.v1.KioskService/"
CODECS = {"proto": google_protobuf_binary_codec, "json": google_protobuf_json_codec}
CLIENTS = {"thin": "a thin Connect client (framing from the spec) over pyqwest (Rust reqwest/rustls)",
           "connectrpc": "connectrpc 0.13's generated KioskServiceClient over pyqwest (Rust reqwest/rustls)"}
END_STREAM = 0x02
TRANSPORT_ERRORS = (OSError, TimeoutError, ReadError, WriteError, RemoteProtocolError)


def describe(client: str = "thin", http2: bool = False) -> str:
    return f"{CLIENTS[client]}, {'HTTP/2' if http2 else 'HTTP/1.1'}, one kept-alive TLS connection per client"


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def _error(body: bytes | str, fallback: str) -> ConnectError:
    """A Connect error object ({"code": "unauthenticated", "message": ...}) as a ConnectError."""
    try:
        found = json.loads(body) if body else {}
        return ConnectError(Code(found["code"]), str(found.get("message", "")))
    except (ValueError, KeyError, TypeError):
        return ConnectError(Code.UNKNOWN, fallback)


class ConnectPaths:
    """One HTTP client (one connection) per driver worker, made on first use and kept for the run,
    shared by that worker's binary and JSON calls."""

    def __init__(self, address: str, pki: Path, cert: str, timeout: float = 30.0, http2: bool = False,
                 client: str = "thin") -> None:
        if client not in CLIENTS:
            raise ValueError(f"unknown Connect load client {client!r}: {', '.join(CLIENTS)}")
        self.url = f"https://{address}"
        self.ca = (pki / "ca.crt").read_bytes()
        self.cert = (pki / f"{cert}.crt").read_bytes()
        self.key = (pki / f"{cert}.key").read_bytes()
        self.timeout = timeout
        self.http2 = http2
        self.client = client
        self.transports: list[HTTPTransport] = []
        self.http: list[Client] = []
        self.stubs: dict[str, list[KioskServiceClient]] = {codec: [] for codec in CODECS}

    def _connection(self, worker: int) -> Client:
        while len(self.transports) <= worker:
            transport = HTTPTransport(
                tls_ca_cert=self.ca, tls_cert=self.cert, tls_key=self.key,
                http_version=HTTPVersion.HTTP2 if self.http2 else HTTPVersion.HTTP1,
                pool_max_idle_per_host=1, max_connections_per_address=1, timeout=self.timeout,
                enable_gzip=False, enable_brotli=False, enable_zstd=False, follow_redirects=False,
                enable_otel=False)
            self.transports.append(transport)
            http = Client(transport)
            self.http.append(http)
            for name, make in CODECS.items():
                self.stubs[name].append(KioskServiceClient(self.url, codec=make(), accept_compression=(),
                                                           send_compression=None, http_client=http,
                                                           timeout_ms=int(self.timeout * 1000)))
        return self.http[worker]

    async def _post(self, worker: int, method: str, kind: str, body: bytes) -> Any:
        try:
            return await self._connection(worker).post(
                self.url + SERVICE + method, {**HEADERS, "content-type": kind, "connect-protocol-version": "1"}, body)
        except TRANSPORT_ERRORS as e:
            raise ConnectError(Code.UNAVAILABLE, f"{type(e).__name__}: {e}") from None

    @staticmethod
    def _encode(codec: str, message: Any) -> bytes:
        if codec == "json":
            return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()
        return bytes(message.SerializeToString())

    async def list_calls(self, codec: str, worker: int, token: str, month: str) -> int:
        """Records in the month, all of the stream read."""
        req = kiosk_pb2.ListCallDetailsRequest(access_token=token, month=month)
        records = 0
        if self.client == "connectrpc":
            self._connection(worker)
            async for chunk in self.stubs[codec][worker].list_call_details(req, headers=HEADERS):
                records += len(chunk.records)
            return records
        answer = await self._post(worker, "ListCallDetails", f"application/connect+{codec}",
                                  envelope(self._encode(codec, req)))
        data = answer.content
        if answer.status != 200:
            raise _error(data, f"HTTP {answer.status}")
        i, end = 0, None
        while i + 5 <= len(data):
            flags, n = struct.unpack_from(">BI", data, i)
            payload = data[i + 5:i + 5 + n]
            i += 5 + n
            if flags & END_STREAM:
                end = json.loads(payload or b"{}")
            elif codec == "json":
                records += len(json.loads(payload).get("records", ()))
            else:
                records += len(kiosk_pb2.ListCallDetailsResponse.FromString(payload).records)
        if end is None:
            raise ConnectError(Code.UNKNOWN, "stream without its end message")
        if "error" in end:
            raise _error(json.dumps(end["error"]), "bad end-of-stream error")
        return records

    async def authenticate(self, codec: str, worker: int, msisdn: str, password: str, code: str) -> str:
        """The session token, from the cookie the answer sets ("" if it set none)."""
        req = kiosk_pb2.AuthenticateRequest(msisdn=msisdn, service_password=password, one_time_code=code)
        if self.client == "connectrpc":
            self._connection(worker)
            with ResponseMetadata() as meta:
                await self.stubs[codec][worker].authenticate(req, headers=HEADERS)
            cookies = meta.headers.getall("set-cookie")
        else:
            answer = await self._post(worker, "Authenticate", f"application/{codec}", self._encode(codec, req))
            if answer.status != 200:
                raise _error(answer.content, f"HTTP {answer.status}")
            if codec == "json":
                json.loads(answer.content)
            else:
                kiosk_pb2.AuthenticateResponse.FromString(answer.content)
            cookies = answer.headers.getall("set-cookie")
        for value in cookies:
            name, _, rest = value.partition("=")
            if name.strip() == SESSION_COOKIE:
                return rest.split(";", 1)[0]
        return ""

    async def close(self) -> None:
        for stubs in self.stubs.values():
            for stub in stubs:
                await stub.close()
        for transport in self.transports:
            await transport.aclose()
        self.transports, self.http = [], []
        self.stubs = {codec: [] for codec in CODECS}
