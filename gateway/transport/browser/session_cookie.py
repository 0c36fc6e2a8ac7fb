"""The kiosk path's session token in a cookie page scripts cannot read (HttpOnly; Secure;
SameSite=Strict; the __Host- prefix, so no subdomain can set or shadow it).

Authenticate's token leaves as the cookie, never in the body; a request naming no token gets the
cookie's; EndSession clears it. The token is still checked by the kiosk flows like any other: the
cookie only carries it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any

NAME = "__Host-hallgate-session"
CSRF = "__Host-hallgate-csrf"
TOKEN_FIELD = "access_token"  # noqa: S105 - a field name
AUTHENTICATE = "/hallgate.v1.KioskService/Authenticate"
END_SESSION = "/hallgate.v1.KioskService/EndSession"


def cookies(header: str) -> dict[str, str]:
    """The request's cookies by name (an unparsable header: none)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:
        return {}
    return {k: m.value for k, m in jar.items()}


def set_cookie(name: str, value: str, max_age: int, http_only: bool = True) -> str:
    flags = "; HttpOnly" if http_only else ""
    return f"{name}={value}; Path=/; Max-Age={max_age}; Secure{flags}; SameSite=Strict"


def fill_token(request: Any, jar: Mapping[str, str]) -> None:
    """A request with an empty token field takes the session cookie's token."""
    if NAME in jar and hasattr(request, "DESCRIPTOR") and TOKEN_FIELD in request.DESCRIPTOR.fields_by_name \
            and not getattr(request, TOKEN_FIELD):
        setattr(request, TOKEN_FIELD, jar[NAME])


def on_response(method: str, response: Any) -> str | None:
    """The Set-Cookie header for a response (the token moved out of the body), or None."""
    if method == AUTHENTICATE and getattr(response, TOKEN_FIELD, None):
        token = str(getattr(response, TOKEN_FIELD))
        setattr(response, TOKEN_FIELD, "")
        left = response.expires_at.seconds - time.time() if response.HasField("expires_at") else 0
        return set_cookie(NAME, token, max(1, math.ceil(left)))
    if method == END_SESSION:
        return set_cookie(NAME, "", 0)
    return None
