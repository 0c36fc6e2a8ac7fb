"""A small Connect protocol client for tests (http.client over TLS, HTTP/1.1): unary and
server-streaming calls in binary protobuf or JSON, with the headers and cookies a test chooses,
and the answer as the HTTP status, headers, messages and Connect error. Written from the Connect
protocol specification, independent of connectrpc (the server's library)."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.rpc import error_details_pb2

CODE_NAMES = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
              "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
              "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated"]


def context(pki: Path | None = None, cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt") if pki else None)
    ctx.check_hostname = False
    if pki is None:
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None and pki is not None:
        ctx.load_cert_chain(pki / f"{cert}.crt", pki / f"{cert}.key")
    return ctx


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    messages: list[bytes] = field(default_factory=list)
    error: dict[str, Any] | None = None
    set_cookies: list[str] = field(default_factory=list)

    @property
    def code(self) -> str:
        return "ok" if self.error is None else str(self.error.get("code"))

    def detail(self, kind: type) -> Any:
        """The first error detail of protobuf type `kind`, decoded, or None."""
        for d in (self.error or {}).get("details", []):
            if d["type"] == kind.DESCRIPTOR.full_name:
                raw = d["value"] + "=" * (-len(d["value"]) % 4)
                return kind.FromString(base64.b64decode(raw))
        return None

    def violations(self) -> list[tuple[str, str]]:
        bad = self.detail(error_details_pb2.BadRequest)
        return [(v.field, v.description) for v in bad.field_violations] if bad else []


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def unframe(body: bytes) -> tuple[list[bytes], dict[str, Any] | None]:
    """A streaming response's messages and its end-of-stream JSON."""
    messages, end, i = [], None, 0
    while i + 5 <= len(body):
        flags, n = struct.unpack(">BI", body[i:i + 5])
        payload = body[i + 5:i + 5 + n]
        i += 5 + n
        if flags & 0x02:
            end = json.loads(payload or b"{}")
        else:
            messages.append(payload)
    return messages, end


class ConnectClient:
    def __init__(self, port: int, ctx: ssl.SSLContext, host: str = "127.0.0.1", timeout: float = 30) -> None:
        self.port, self.ctx, self.host, self.timeout = port, ctx, host, timeout
        self.cookies: dict[str, str] = {}
        self._conn: http.client.HTTPSConnection | None = None

    def _send(self, path: str, body: bytes, headers: dict[str, str]) -> http.client.HTTPResponse:
        """On the kept-alive connection; once more on a new one if the server had closed it."""
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
            try:
                self._conn.request("POST", path, body=body, headers=headers)
                return self._conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, list[str]]:
        jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            r = self._send(path, body, {**({"Cookie": jar} if jar else {}), **headers})
            data = r.read()
            cookies = r.headers.get_all("set-cookie") or []
            for c in cookies:
                name, _, rest = c.partition("=")
                value = rest.split(";", 1)[0]
                if "Max-Age=0" in c:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data, cookies
        except BaseException:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def unary(self, method: str, request: Any = b"", *, json_body: bool = False, headers: dict[str, str] | None = None
              ) -> Answer:
        kind = "application/json" if json_body else "application/proto"
        body = request if isinstance(request, bytes) else (
            json_format.MessageToJson(request).encode() if json_body else request.SerializeToString())
        status, hdrs, data, cookies = self.post(method, body, {"Content-Type": kind, "Connect-Protocol-Version": "1",
                                                               **(headers or {})})
        if status == 200:
            return Answer(status, hdrs, [data], None, cookies)
        try:
            error = json.loads(data)
        except ValueError:
            error = {"code": f"http_{status}"}
        return Answer(status, hdrs, [], error, cookies)

    def stream(self, method: str, request: Any = b"", *, json_body: bool = False,
               headers: dict[str, str] | None = None) -> Answer:
        kind = "application/connect+json" if json_body else "application/connect+proto"
        payload = request if isinstance(request, bytes) else (
            json_format.MessageToJson(request).encode() if json_body else request.SerializeToString())
        status, hdrs, data, cookies = self.post(method, envelope(payload), {
            "Content-Type": kind, "Connect-Protocol-Version": "1", **(headers or {})})
        if status != 200:
            try:
                return Answer(status, hdrs, [], json.loads(data), cookies)
            except ValueError:
                return Answer(status, hdrs, [], {"code": f"http_{status}"}, cookies)
        messages, end = unframe(data)
        return Answer(status, hdrs, messages, (end or {}).get("error"), cookies)


CSRF = "test-csrf-token"


def browser_headers(challenge: str = "dev") -> dict[str, str]:
    """What the self-service page sends: the CSRF double submit and the bot challenge's token."""
    return {"X-CSRF-Token": CSRF, "X-Hallgate-Challenge": challenge}


def browser_client(port: int, pki: Path | None = None, cert: str | None = None) -> ConnectClient:
    """A client holding the CSRF cookie, as the page's browser does after loading the page."""
    client = ConnectClient(port, context(pki, cert))
    client.cookies["__Host-hallgate-csrf"] = CSRF
    return client
