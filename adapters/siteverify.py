"""The website's bot challenge in production: a vendor's widget in the page, its token checked here
against the vendor's siteverify API (the Challenge port, gateway/domain/ports.py).

Cloudflare Turnstile and hCaptcha speak the same protocol: the page renders the vendor's widget,
which hands the page a one-use token once a person solved it; the server POSTs the token with the
site's secret (and the caller's address) as a form to the vendor, and the JSON answer's `success`
says whether it holds. A token is good once: the vendor refuses it the second time.

Why h11 and not an HTTP client library: one POST per code request or sign-in from the website
(already throttled per address), no redirects, no cookies, no pooling worth having; h11 (the HTTP/1.1
state machine hypercorn already brings in) does the protocol, and TLS is the standard library's with
the system's trust store.

Fail closed: a vendor that does not answer in `timeout`, answers anything but 200 with a JSON
object carrying a boolean `success`, or sends more than `MAX_ANSWER` bytes raises
DependencyUnavailable("challenge"): the call is refused UNAVAILABLE, never waved through. The
secret is only ever in the request body: never logged, never in an error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import h11
import structlog

from gateway.domain.errors import DependencyUnavailable

log = structlog.get_logger("hallgate.challenge")

MAX_ANSWER = 64 * 1024  # a siteverify answer is a few hundred bytes
MAX_TOKEN = 4096  # Turnstile's are at most 2048 characters; anything longer is not a token
# siteverify error codes that say the gateway's own keys are wrong (the vendors share these names)
MISCONFIGURED = {"missing-input-secret", "invalid-input-secret", "sitekey-secret-mismatch", "invalid-sitekey"}


@dataclass(frozen=True)
class Provider:
    """What the page and the gateway need to know of one vendor (from its documentation)."""

    script: str  # the widget's script, loaded by the page (explicit rendering)
    verify: str  # the siteverify endpoint
    js_global: str  # the object the script defines: render(element, options) -> id, reset(id)
    csp: tuple[str, ...]  # the page's CSP directives that must admit the vendor's origins
    sources: tuple[str, ...]  # those origins
    sends_sitekey: bool = False  # siteverify is also told the site key (hCaptcha: a token of another site fails)


PROVIDERS = {
    "turnstile": Provider(script="https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit",
                          verify="https://challenges.cloudflare.com/turnstile/v0/siteverify",
                          js_global="turnstile", csp=("script-src", "frame-src"),
                          sources=("https://challenges.cloudflare.com",)),
    "hcaptcha": Provider(script="https://js.hcaptcha.com/1/api.js?render=explicit&recaptchacompat=off",
                         verify="https://api.hcaptcha.com/siteverify",
                         js_global="hcaptcha", csp=("script-src", "frame-src", "style-src", "connect-src"),
                         sources=("https://hcaptcha.com", "https://*.hcaptcha.com"), sends_sitekey=True),
}


def origin_of(url: str) -> str:
    """scheme://host[:port] of `url` (never its user:password part)."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def check_script(url: str, name: str) -> None:
    """ValueError unless `url` is a plain https URL that can go into a Content-Security-Policy as an
    origin: a host, no user:password, nothing a policy would read as a separator."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{name}: {url!r} is not an https:// URL (the page is HTTPS)")
    if parts.username is not None or parts.password is not None or any(c in url for c in " \t\n;,'\""):
        raise ValueError(f"{name}: {url!r} cannot be named in the page's Content-Security-Policy")


def check_url(url: str, name: str) -> None:
    """ValueError unless `url` is https (or http to a loopback address: a local relay or a test's
    stand-in), with a host."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise ValueError(f"{name}: {url!r} is not an https:// URL")
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if not loopback:
            raise ValueError(f"{name}: {url!r} is plain http to another host; the secret must travel over TLS")


class SiteVerify:
    """`await verify(token, client)`: True if the vendor says the token was solved and not used."""

    def __init__(self, url: str, secret: str, timeout: float = 5.0, context: ssl.SSLContext | None = None,
                 site_key: str = "") -> None:
        check_url(url, "web_challenge_verify_url")
        if not secret:
            raise ValueError("the bot challenge needs its secret (HALLGATE_WEB_CHALLENGE_SECRET_FILE)")
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.authority = parts.netloc
        self.secret = secret
        self.site_key = site_key  # sent when given (hCaptcha)
        self.timeout = timeout
        self.context = context or (ssl.create_default_context() if self.tls else None)

    async def verify(self, token: str, client: str) -> bool:
        if not token or len(token) > MAX_TOKEN:
            return False
        form = {"secret": self.secret, "response": token}
        if client:
            form["remoteip"] = client
        if self.site_key:
            form["sitekey"] = self.site_key
        try:
            async with asyncio.timeout(self.timeout):
                status, body = await self._post(urlencode(form).encode())
        except (OSError, TimeoutError, h11.ProtocolError, ssl.SSLError, ValueError) as err:
            log.warning("challenge_unavailable", error=type(err).__name__, host=self.host)
            raise DependencyUnavailable("challenge") from None
        answer = _json(body) if status == 200 else None
        if answer is None or not isinstance(answer.get("success"), bool):
            log.warning("challenge_unavailable", status=status, host=self.host)
            raise DependencyUnavailable("challenge")
        if not answer["success"]:
            codes = answer.get("error-codes")
            errors = [str(c)[:40] for c in codes[:5]] if isinstance(codes, list) else []
            if MISCONFIGURED & set(errors):  # our fault, not the caller's: UNAVAILABLE, and said loudly
                log.error("challenge_misconfigured", errors=errors, host=self.host,
                          hint="check HALLGATE_WEB_CHALLENGE_SECRET_FILE (and the site key) against the vendor's")
                raise DependencyUnavailable("challenge")
            log.info("challenge_refused", errors=errors)
        return bool(answer["success"])

    async def _post(self, body: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.context,
                                                       server_hostname=self.host if self.tls else None)
        try:
            conn = h11.Connection(our_role=h11.CLIENT)
            writer.write(conn.send(h11.Request(method="POST", target=self.target, headers=[
                ("Host", self.authority), ("User-Agent", "hallgate"), ("Accept", "application/json"),
                ("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", str(len(body))),
                ("Connection", "close")])) or b"")
            writer.write(conn.send(h11.Data(data=body)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            status, data = 0, bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(16384))
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    data += event.data
                    if len(data) > MAX_ANSWER:
                        raise ValueError("answer too large")
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    return status, bytes(data)
        finally:
            writer.close()


def _json(body: bytes) -> dict[str, object] | None:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None
    return answer if isinstance(answer, dict) else None
