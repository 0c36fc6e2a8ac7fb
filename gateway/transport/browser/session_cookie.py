"""Session tokens in cookies page scripts cannot read (HttpOnly; Secure; SameSite=Strict; the __Host-
prefix, so no subdomain can set or shadow them).

Each credential the API hands out in a response field leaves as its cookie instead, never in the body:
the kiosk path's access token (Authenticate), a staff member's token (SignIn), a clerk's customer
session (OpenCustomerSession). A request that names none gets the cookie's: in its token field, or
for the staff token in the `authorization` header the policy reads. The call that ends a session
clears its cookie. The tokens are checked by the pipeline and the flows like any other: the cookies
only carry them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

CSRF = "__Host-hallgate-csrf"


@dataclass(frozen=True)
class Credential:
    cookie: str
    issued_by: str  # the method whose response carries it
    field: str  # the response field, and the request field it fills ("" for the header)
    ended_by: str
    header: str = ""  # a request header it fills instead of a field ("authorization": Bearer)


CREDENTIALS = (
    Credential("__Host-hallgate-session", "/hallgate.v1.KioskService/Authenticate", "access_token",
               "/hallgate.v1.KioskService/EndSession"),
    Credential("__Host-hallgate-staff", "/hallgate.v1.StaffService/SignIn", "staff_token",
               "/hallgate.v1.StaffService/SignOut", header="authorization"),
    Credential("__Host-hallgate-customer", "/hallgate.v1.ClerkService/OpenCustomerSession", "customer_session",
               "/hallgate.v1.ClerkService/CloseCustomerSession"),
)
NAME = CREDENTIALS[0].cookie  # the kiosk path's session cookie
ISSUED = {c.issued_by: c for c in CREDENTIALS}
ENDED = {c.ended_by: c for c in CREDENTIALS}


def cookies(header: str) -> dict[str, str]:
    """The request's cookies by name (an unparsable header: none)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:
        return {}
    return {k: m.value for k, m in jar.items()}


def set_cookie(name: str, value: str, max_age: int | None, http_only: bool = True) -> str:
    age = "" if max_age is None else f"; Max-Age={max_age}"
    flags = "; HttpOnly" if http_only else ""
    return f"{name}={value}; Path=/{age}; Secure{flags}; SameSite=Strict"


def headers_with_credentials(headers: Mapping[str, str], jar: Mapping[str, str]) -> dict[str, str]:
    """The request headers, with the staff cookie as `authorization` when the request names none."""
    out = dict(headers)
    for c in CREDENTIALS:
        if c.header and c.header not in out and jar.get(c.cookie):
            out[c.header] = f"Bearer {jar[c.cookie]}"
    return out


def fill_token(request: Any, jar: Mapping[str, str]) -> None:
    """A request whose token fields are empty takes the cookies' tokens."""
    fields = getattr(getattr(request, "DESCRIPTOR", None), "fields_by_name", {})
    for c in CREDENTIALS:
        if not c.header and c.field in fields and not getattr(request, c.field) and jar.get(c.cookie):
            setattr(request, c.field, jar[c.cookie])


def on_response(method: str, response: Any) -> str | None:
    """The Set-Cookie header for a response (its token moved out of the body), or None."""
    issued = ISSUED.get(method)
    if issued is not None and getattr(response, issued.field, None):
        token = str(getattr(response, issued.field))
        setattr(response, issued.field, "")
        max_age = None  # a browser-session cookie: the server's idle timeout ends the session itself
        if "expires_at" in response.DESCRIPTOR.fields_by_name and response.HasField("expires_at"):
            max_age = max(1, math.ceil(response.expires_at.seconds - time.time()))
        return set_cookie(issued.cookie, token, max_age)
    ended = ENDED.get(method)
    if ended is not None:
        return set_cookie(ended.cookie, "", 0)
    return None
