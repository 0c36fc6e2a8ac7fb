"""The browser listener's HTTP surface (ASGI): the API, the self-service page, and the headers a
browser needs to keep both safe.

- `/hallgate.v1.<Service>/<Method>`: the public API (connect.py); a method no service has is refused
  on record like on gRPC. API responses are never cached (they carry customer data).
- `/page-config.json`: what the page needs to know (its channel, idle timeout, month window).
- Anything else: a file of static/ (listed once at start: nothing outside it can be named), `/` the
  page itself, which also sets the CSRF cookie the page echoes in X-CSRF-Token.
- Every response: a strict Content-Security-Policy (scripts and styles from this origin only, no
  inline code, nothing third-party), no framing, no sniffing, no referrer, HSTS. The one exception:
  with a bot-challenge vendor (web_challenge), the self-service page's own document admits the
  vendor's origins for its widget (script, frame and what the vendor needs) when it is opened
  without a client certificate (the website), and no other page does: a hall kiosk or a desk
  never runs a vendor's script beside a subscriber's data.
- CORS: a preflight is answered only for an allowed origin (web_origins); any other gets 403 and no
  CORS headers, so the browser never sends the call. The pipeline refuses a disallowed Origin again
  (gateway/pipeline/web_gate.py), for clients that skip preflights.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import structlog

from gateway.domain.identity import parse_spiffe
from gateway.transport.browser import session_cookie
from gateway.transport.browser.connect import (
    REQUEST,
    TIMEOUT_HEADERS,
    ConnectTransport,
    HttpRequest,
    certificate_uris,
    timeout_of,
)

log = structlog.get_logger("hallgate.browser")

STATIC = Path(__file__).parent / "static"
API_PREFIX = "/hallgate."
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# The legal desk shows the agency's letter (a PDF) inline from a blob: URL; no other page may frame.
FRAME_BLOBS = "/legal"
# The self-service page's documents: only they get a bot-challenge vendor's sources.
SELF_SERVICE = ("/", "/index.html")
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
]
NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
ALLOWED_REQUEST_HEADERS = ("content-type, connect-protocol-version, connect-timeout-ms, x-csrf-token, "
                           "x-hallgate-challenge, x-grpc-web, x-user-agent, grpc-timeout, authorization")
EXPOSED_HEADERS = "grpc-status, grpc-message, grpc-status-details-bin"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class PageConfig:
    """What /page-config.json tells the page; `today` is asked per request."""

    web_channel: bool
    idle_timeout: float
    retention_months: int
    challenge: str
    today: Callable[[], date] = date.today
    trust_domain: str = ""
    challenge_site_key: str = ""  # a vendor's widget (adapters/siteverify.py): its site key, script, global
    challenge_script: str = ""
    challenge_global: str = ""
    challenge_csp: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # directive -> the vendor's sources


def csp_with(base: str, extra: Mapping[str, Iterable[str]]) -> str:
    """`base` with `extra` sources added to their directives (a directive it lacks is added)."""
    out, seen = [], set()
    for directive in (d.strip() for d in base.split(";")):
        name = directive.split()[0]
        if name in extra:
            directive = " ".join([directive, *extra[name]])
            seen.add(name)
        out.append(directive)
    out += [" ".join([name, *sources]) for name, sources in extra.items() if name not in seen]
    return "; ".join(out)


def static_files(root: Path = STATIC) -> dict[str, tuple[Path, str]]:
    """URL path → (file, content type), for every regular file under `root` (read once)."""
    files: dict[str, tuple[Path, str]] = {}
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind in ("application/javascript", "application/json",
                                                        "image/svg+xml"):
                    kind += "; charset=utf-8"
                files["/" + path.relative_to(root).as_posix()] = (path, kind)
    for page in [p for p in files if p.endswith("/index.html")]:  # a directory's page: /counter/ and /counter
        files[page.removesuffix("index.html")] = files[page]
        if page != "/index.html":
            files[page.removesuffix("/index.html")] = files[page]
    return files


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name; repeated ones joined as HTTP allows (cookies with "; ")."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in out:
            out[name] += ("; " if name == "cookie" else ", ") + value
        else:
            out[name] = value
    return out


class Site:
    """The ASGI application the listener serves."""

    def __init__(self, transport: ConnectTransport, page: PageConfig, origins: Iterable[str] = (),
                 static: Mapping[str, tuple[Path, str]] | None = None) -> None:
        self.transport = transport
        self.page = page
        self.origins = frozenset(origins)
        self.static = dict(static_files() if static is None else static)
        self.self_service_csp = csp_with(CSP, page.challenge_csp).encode() if page.challenge_csp else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        headers = _headers(scope)
        site = f"https://{headers.get('host', '')}"
        origin = headers.get("origin", "")
        cross = bool(origin) and origin != site
        path, method = scope["path"], scope["method"]
        if method == "OPTIONS":
            await self._preflight(send, origin, cross, path)
            return
        extra = list(SECURITY_HEADERS)
        if cross and origin in self.origins:
            extra += [(b"access-control-allow-origin", origin.encode()), (b"access-control-allow-credentials", b"true"),
                      (b"access-control-expose-headers", EXPOSED_HEADERS.encode()), (b"vary", b"Origin")]
        if path.startswith(API_PREFIX):
            await self._api(scope, receive, send, headers, site, extra + NO_STORE)
        elif path == "/page-config.json" and method in ("GET", "HEAD"):
            await self._page_config(scope, send, extra + NO_STORE)
        elif path in self.static and method in ("GET", "HEAD"):
            await self._file(send, path, headers, extra, method == "HEAD", website=not _client_chain(scope))
        else:
            await _respond(send, 404, [*extra, (b"content-type", b"text/plain; charset=utf-8")], b"not found\n")

    async def _preflight(self, send: Send, origin: str, cross: bool, path: str) -> None:
        if not cross or origin not in self.origins or not path.startswith(API_PREFIX):
            log.info("cors_refused", origin=origin[:200], path=path[:200])
            await _respond(send, 403, list(SECURITY_HEADERS), b"")
            return
        await _respond(send, 204, [*SECURITY_HEADERS, (b"access-control-allow-origin", origin.encode()),
                                   (b"access-control-allow-credentials", b"true"),
                                   (b"access-control-allow-methods", b"POST, GET"),
                                   (b"access-control-allow-headers", ALLOWED_REQUEST_HEADERS.encode()),
                                   (b"access-control-max-age", b"600"), (b"vary", b"Origin")], b"")

    async def _api(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], site: str,
                   extra: list[tuple[bytes, bytes]]) -> None:
        chain = _client_chain(scope)
        client = scope.get("client")
        jar = session_cookie.cookies(headers.get("cookie", ""))
        timeout = timeout_of(headers)
        http = HttpRequest(peer=(client[0], client[1]) if client else None,
                           headers=session_cookie.headers_with_credentials(headers, jar), cookies=jar,
                           client_cert_pem=chain[0].encode() if chain else b"", site=site,
                           deadline=None if timeout is None else asyncio.get_running_loop().time() + timeout)
        # The deadline is the transport's to apply (connect.timeout_of): the library does not see it.
        scope = {**scope, "headers": [(k, v) for k, v in scope.get("headers", ()) if k.lower() not in TIMEOUT_HEADERS]}
        token = REQUEST.set(http)
        try:
            app = self.transport.app_for(scope["path"])
            if app is None:
                status, body = await self.transport.unimplemented(scope["path"])
                await _respond(send, status, [*extra, (b"content-type", b"application/json")], body)
                return
            await app(scope, receive, _with_headers(send, extra))
        finally:
            REQUEST.reset(token)

    async def _page_config(self, scope: Scope, send: Send, extra: list[tuple[bytes, bytes]]) -> None:
        chain = _client_chain(scope)
        terminal = hall = ""
        channel = "web" if self.page.web_channel else "none"
        if chain:  # what the certificate names, for the page to show; the pipeline decides on every call
            channel = "unknown"
            for uri in certificate_uris(chain[0].encode()):
                found = parse_spiffe(uri, self.page.trust_domain)
                if found is not None:
                    channel, terminal, hall = found.channel.value, found.terminal, found.hall
        body = json.dumps({"channel": channel, "terminal": terminal, "hall": hall,
                           "idleTimeoutSeconds": self.page.idle_timeout,
                           "retentionMonths": self.page.retention_months, "today": self.page.today().isoformat(),
                           "challenge": "dev" if self.page.challenge.startswith("dev-") else self.page.challenge,
                           **({"challengeSiteKey": self.page.challenge_site_key,
                               "challengeScript": self.page.challenge_script,
                               "challengeGlobal": self.page.challenge_global}
                              if self.page.challenge_script and channel == "web" else {})
                           }).encode()
        await _respond(send, 200, [*extra, (b"content-type", b"application/json")], body)

    async def _file(self, send: Send, path: str, headers: dict[str, str], extra: list[tuple[bytes, bytes]],
                    head: bool, website: bool) -> None:
        file, kind = self.static[path]
        body = file.read_bytes()
        if path == FRAME_BLOBS or path.startswith(FRAME_BLOBS + "/"):
            extra = [(k, v + b"; frame-src blob:" if k == b"content-security-policy" else v) for k, v in extra]
        elif path in SELF_SERVICE and self.self_service_csp is not None and website:
            extra = [(k, self.self_service_csp if k == b"content-security-policy" else v) for k, v in extra]
        out = [*extra, (b"content-type", kind.encode()), (b"cache-control", b"no-cache")]
        if kind.startswith("text/html"):  # a page: it gets the CSRF cookie it echoes
            jar = session_cookie.cookies(headers.get("cookie", ""))
            if not jar.get(session_cookie.CSRF):
                # Not HttpOnly: the page reads it to send it back in X-CSRF-Token (a double submit).
                out.append((b"set-cookie", session_cookie.set_cookie(session_cookie.CSRF, secrets.token_urlsafe(24),
                                                                     86400, http_only=False).encode()))
        await _respond(send, 200, out, b"" if head else body)


def _client_chain(scope: Scope) -> list[str]:
    """The client certificate chain the connection presented (PEM), [] without one."""
    tls = scope.get("extensions", {}).get("tls") or {}
    return list(tls.get("client_cert_chain") or [])


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return wrapped


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
